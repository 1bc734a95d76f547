"""The pure-PyTorch reference against hand-derived facts (MODEL.md), its conventions, and autograd."""
import math

import numpy as np
import pytest
import torch
from scipy import optimize

import nmmfit
from nmmfit.philox import noise_ref
from nmmfit.presets import DECO2014, GRIFFITHS2022, PARAM_NAMES
from nmmfit.reference import CONSTANTS, rate_ref, simulate_ref

F64 = torch.float64
PRESETS = {"griffiths2022": GRIFFITHS2022, "deco2014": DECO2014}

# MODEL.md constants, written out here independently of the package
A_E, B_E, D_E, A_I, B_I, D_I = 310.0, 125.0, 0.16, 615.0, 177.0, 0.087
TAU_E, TAU_I, GAMMA_E, GAMMA_I, W_E, W_I = 100.0, 10.0, 0.641e-3, 1e-3, 1.0, 0.7
TAU_S, TAU_F, TAU_0, ALPHA, RHO = 0.65, 0.41, 0.98, 0.32, 0.34
K1, K2, K3 = 7 * RHO, 2.0, 2 * RHO - 0.2


def _W(N, B=None, seed=0, dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    shape = (N, N) if B is None else (B, N, N)
    W = torch.rand(shape, generator=gen, dtype=dtype) * 0.2
    return W * (1 - torch.eye(N, dtype=dtype))


def _close(a, b, **kw):
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, **kw)


def test_constants_match_model_md():
    want = dict(a_E=A_E, b_E=B_E, d_E=D_E, a_I=A_I, b_I=B_I, d_I=D_I, tau_E=TAU_E, tau_I=TAU_I,
                gamma_E=GAMMA_E, gamma_I=GAMMA_I, W_E=W_E, W_I=W_I, tau_s=TAU_S, tau_f=TAU_F,
                tau_0=TAU_0, alpha=ALPHA, rho=RHO, k1=K1, k2=K2, k3=K3)
    assert set(CONSTANTS) == set(want)
    for k, v in want.items():
        assert CONSTANTS[k] == pytest.approx(v, rel=1e-15), k


# ---------------------------------------------------------------- fixed points of an uncoupled node

def _H_standard(a, b, d, z):
    x = a * z - b
    return x / (1 - np.exp(-d * x))


def _H_griffiths(a, b, d, z):
    x = a * z - b
    return (1e-5 + abs(x)) / (1e-5 * d + abs(1 - np.exp(-d * x)))


def _drift(E, I, I0, gEE, gIE, gEI, squash, H):
    JE = W_E * I0 + gEE * E - gIE * I
    JI = W_I * I0 + gEI * E - I
    return (-E / TAU_E + GAMMA_E * (1 - E) * H(A_E, B_E, D_E, squash(JE)),
            -I / TAU_I + GAMMA_I * H(A_I, B_I, D_I, squash(JI)))


def _fixed_points(resid_E, resid_I):
    """All roots of (resid_E, resid_I) = 0 in (0, 1)^2: I(E) by bisection of the (monotone in I)
    I-residual, then every sign change of resid_E(E, I(E)) on a fine grid, refined by brentq."""
    lo, hi = 1e-12, 1 - 1e-12

    def I_of(E):
        return optimize.brentq(lambda I: resid_I(E, I), lo, hi, xtol=1e-15, rtol=1e-15)

    def F(E):
        return resid_E(E, I_of(E))

    grid = np.linspace(lo, hi, 401)
    vals = np.array([F(E) for E in grid])
    roots = []
    for k in np.nonzero(np.sign(vals[:-1]) != np.sign(vals[1:]))[0]:
        E = optimize.brentq(F, grid[k], grid[k + 1], xtol=1e-15, rtol=1e-15)
        roots.append((E, I_of(E)))
    return roots


@pytest.mark.parametrize("name", ["deco2014", "griffiths2022"])
def test_fixed_point_uncoupled(name):
    if name == "deco2014":
        # dt changes only the transient (the clamp is inactive inside (0, 1)); 1 ms keeps it short
        preset, I0, n = DECO2014.replace(dt=1.0), [0.3, 0.45, 0.5], 3000
        squash, H = (lambda J: J), _H_standard
        prm = dict(g=5.0, g_EE=0.21, g_IE=1.0, g_EI=0.15, sigma=0.0)
    else:
        preset, I0, n = GRIFFITHS2022, [0.6, 0.8, 1.0], 1500
        squash, H = (lambda J: np.tanh(max(J, 0.0))), _H_griffiths
        prm = dict(g=5.0, g_EE=0.6, g_IE=0.9, g_EI=0.4, sigma=0.0)
    W = torch.zeros(3, 3, dtype=F64)
    out = simulate_ref(W, dict(prm, I_0=torch.tensor([I0], dtype=F64)), n_steps=n, preset=preset, noise=False)
    E_sim, I_sim = out.state[0, 0].numpy(), out.state[0, 1].numpy()
    dt = preset.dt
    for i, i0 in enumerate(I0):
        def drift(E, I):
            return _drift(E, I, i0, prm["g_EE"], prm["g_IE"], prm["g_EI"], squash, H)

        naive = _fixed_points(lambda E, I: drift(E, I)[0], lambda E, I: drift(E, I)[1])
        if name == "deco2014":
            # E' = clamp01(E + dt f): inside (0, 1) the fixed points are f(E, I) = 0
            roots = naive
        else:
            # E' = tanh(1e-5 + relu(E + dt f)); where E + dt f > 0 a fixed point E* in (0, 1)
            # solves atanh(E*) = 1e-5 + E* + dt f(E*, I*)   (likewise for I)
            roots = _fixed_points(lambda E, I: E + dt * drift(E, I)[0] + 1e-5 - np.arctanh(E),
                                  lambda E, I: I + dt * drift(E, I)[1] + 1e-5 - np.arctanh(I))
        assert roots
        E_fp, I_fp = min(roots, key=lambda r: abs(r[0] - E_sim[i]))
        if name == "griffiths2022":
            fE, fI = drift(E_fp, I_fp)
            assert E_fp + dt * fE > 0 and I_fp + dt * fI > 0  # relu inactive: the derivation holds
            # the bound matters: no root of f = 0 is the simulated point
            assert min(abs(r[0] - E_sim[i]) for r in naive) > 1e-3
        assert E_sim[i] == pytest.approx(E_fp, rel=1e-7, abs=1e-10)
        assert I_sim[i] == pytest.approx(I_fp, rel=1e-7, abs=1e-10)
    assert len(set(np.round(E_sim, 6))) == 3  # the three nodes really differ
    assert np.all(np.abs(E_sim - 0.001) > 1e-3)  # and moved away from the initial state


# ---------------------------------------------------------------- hemodynamics and BOLD

def _hemo_numpy(E, x, f, v, q, dt_h, bound):
    x2 = x + dt_h * (E - x / TAU_S - (f - 1) / TAU_F)
    f2 = f + dt_h * x
    v2 = v + dt_h * (f - v ** (1 / ALPHA)) / TAU_0
    q2 = q + dt_h * (f * (1 - (1 - RHO) ** (1 / f)) / RHO - q * v ** (1 / ALPHA) / v) / TAU_0
    if bound:
        x2, f2, v2, q2 = np.tanh(x2), 1 + np.tanh(f2 - 1), 1 + np.tanh(v2 - 1), 1 + np.tanh(q2 - 1)
    return x2, f2, v2, q2


def _bold_numpy(q, v, scale):
    return scale * (K1 * (1 - q) + K2 * (1 - q / v) + K3 * (1 - v))


@pytest.mark.parametrize("name", ["deco2014", "griffiths2022"])
def test_bold_zero_at_rest(name):
    preset = PRESETS[name].replace(hemo_every=1)
    N = 4
    s0 = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0], dtype=F64)[:, None].repeat(1, N)
    if name == "griffiths2022":
        s0[0] = 0.0  # E enters the first hemodynamic step at the start of the step
    out = simulate_ref(_W(N), None, s0, n_steps=1, preset=preset, steps_per_sample=1, noise=False)
    assert out.state[0, 0].abs().max() > 0  # E moved during the step ...
    # ... but the hemodynamics were driven by E = 0 at the start: rest is a fixed point
    torch.testing.assert_close(out.state[0, 2:], s0[2:], rtol=0, atol=1e-15)
    assert out.bold.shape == (1, 1, N) and out.bold.abs().max() <= 1e-14


@pytest.mark.parametrize("bound", [False, True])
def test_hemo_step_and_bold_formula(bound):
    N = 5
    gen = torch.Generator().manual_seed(3)
    s0 = torch.stack([torch.rand(N, generator=gen, dtype=F64) * 0.5,        # E
                      torch.rand(N, generator=gen, dtype=F64) * 0.5,        # I
                      torch.rand(N, generator=gen, dtype=F64) - 0.5,        # x
                      0.6 + torch.rand(N, generator=gen, dtype=F64),        # f
                      0.6 + torch.rand(N, generator=gen, dtype=F64),        # v
                      0.6 + torch.rand(N, generator=gen, dtype=F64)])       # q
    preset = DECO2014.replace(hemo_every=1, hemo_dt=0.07, hemo_bound=bound, bold_scale=3.0)
    out = simulate_ref(_W(N), None, s0, n_steps=1, preset=preset, steps_per_sample=1)
    E, x, f, v, q = (s0[k].numpy() for k in (0, 2, 3, 4, 5))
    want = _hemo_numpy(E, x, f, v, q, 0.07, bound)
    for k, w in zip(range(2, 6), want):
        np.testing.assert_allclose(out.state[0, k].numpy(), w, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(out.bold[0, 0].numpy(), _bold_numpy(want[3], want[2], 3.0), rtol=1e-12, atol=1e-14)


def test_hemo_every_and_sampling_conventions():
    preset = DECO2014.replace(hemo_every=4, hemo_dt=0.05)
    N, W = 3, _W(3)
    kw = dict(preset=preset, seed=2, steps_per_sample=6, record_every=5)
    full = simulate_ref(W, None, None, n_steps=25, **kw)
    assert full.bold.shape == (1, 4, N) and full.E.shape == (1, 5, N) and full.I.shape == (1, 5, N)
    s3 = simulate_ref(W, None, None, n_steps=3, **kw).state
    s4 = simulate_ref(W, None, None, n_steps=4, **kw).state
    s0 = torch.tensor([0.001, 0.001, 0, 1, 1, 1], dtype=F64)[:, None].expand(6, N)
    torch.testing.assert_close(s3[0, 2:], s0[2:], rtol=0, atol=0)  # no hemodynamic step before step 4
    want = _hemo_numpy(*(s3[0, k].numpy() for k in (0, 2, 3, 4, 5)), 0.05, False)  # driven by E at step 4's start
    for k, w in zip(range(2, 6), want):
        np.testing.assert_allclose(s4[0, k].numpy(), w, rtol=1e-13)
    for n in range(1, 26):
        st = simulate_ref(W, None, None, n_steps=n, **kw).state[0]
        if n % 6 == 0:
            torch.testing.assert_close(full.bold[0, n // 6 - 1], preset.bold_scale * (
                K1 * (1 - st[5]) + K2 * (1 - st[5] / st[4]) + K3 * (1 - st[4])))
        if n % 5 == 0:
            torch.testing.assert_close(full.E[0, n // 5 - 1], st[0])
            torch.testing.assert_close(full.I[0, n // 5 - 1], st[1])
    torch.testing.assert_close(full.state[0], st)
    none = simulate_ref(W, None, None, n_steps=5, preset=preset, steps_per_sample=6)
    assert none.bold.shape == (1, 0, N) and none.E.shape == (1, 0, N) and none.I.shape == (1, 0, N)


def test_noise_term_uses_the_philox_stream():
    # clamp01 is linear inside (0, 1): E'(noise) - E'(no noise) = sqrt(dt) sigma xi exactly
    N, W = 4, _W(4)
    s0 = torch.tensor([0.3, 0.2, 0, 1, 1, 1], dtype=F64)[:, None].repeat(1, N)
    kw = dict(preset="deco2014", seed=11, stream=[3], step_offset=7)
    prm = dict(sigma=torch.tensor([[0.01, 0.02, 0.03, 0.04]], dtype=F64))
    a = simulate_ref(W, prm, s0, n_steps=1, **kw, noise=True).state[0, :2]
    b = simulate_ref(W, prm, s0, n_steps=1, **kw, noise=False).state[0, :2]
    xi = noise_ref(11, [3], N, 1, 7, dtype=F64)[0, 0]
    torch.testing.assert_close(a - b, math.sqrt(0.1) * prm["sigma"][0] * xi, rtol=1e-9, atol=1e-15)


# ---------------------------------------------------------------- rate function

def test_standard_rate_series_branch():
    for dtype, eps in ((F64, 1e-2), (torch.float32, 0.1)):
        z0 = B_E / A_E
        # both sides of the branch switch |d x| = eps, and x = 0 exactly
        x = torch.tensor([-2 * eps, -eps * 1.0001, -eps * 0.9999, -1e-4, 0.0, 1e-4, eps * 0.9999, eps * 1.0001, 2 * eps],
                         dtype=F64) / D_E
        z = ((x + B_E) / A_E).to(dtype).requires_grad_()
        h = rate_ref(z, A_E, B_E, D_E, "standard")
        (gz,) = torch.autograd.grad(h.sum(), z)
        assert torch.isfinite(h).all() and torch.isfinite(gz).all()
        xd = (A_E * z.detach().double() - B_E)
        exact = torch.where(xd == 0, torch.full_like(xd, 1 / D_E), xd / (-torch.expm1(-D_E * xd)))
        tol = 1e-12 if dtype == F64 else 2e-5
        torch.testing.assert_close(h.double(), exact, rtol=tol, atol=0)
        # derivative of x/(1 - e^{-dx}) at x = 0 is 1/2
        zc = torch.tensor(z0, dtype=F64, requires_grad=True)
        (g0,) = torch.autograd.grad(rate_ref(zc, A_E, B_E, D_E, "standard"), zc)
        assert g0.item() == pytest.approx(A_E / 2, rel=1e-12)
    zz = (torch.linspace(-0.3, 0.3, 7, dtype=F64) * 0.1 / D_E / A_E + B_E / A_E).requires_grad_()
    assert torch.autograd.gradcheck(lambda z: rate_ref(z, A_E, B_E, D_E, "standard"), (zz,))


def test_standard_rate_far_below_threshold_float32():
    # y = d x from -200 (exp(-y) overflows float32 below -88) to +40: value and gradient finite,
    # non-negative and equal to float64's, where the float32 numbers are normal
    y = torch.cat([torch.linspace(-200, -1, 60, dtype=F64), torch.linspace(1, 40, 20, dtype=F64)])
    z64 = ((y / D_E + B_E) / A_E).requires_grad_()
    z32 = z64.detach().float().requires_grad_()
    h64, h32 = rate_ref(z64, A_E, B_E, D_E, "standard"), rate_ref(z32, A_E, B_E, D_E, "standard")
    (g64,) = torch.autograd.grad(h64.sum(), z64)
    (g32,) = torch.autograd.grad(h32.sum(), z32)
    assert torch.isfinite(h32).all() and torch.isfinite(g32).all() and (g32 >= 0).all() and (h32 >= 0).all()
    # the same function at the float32 inputs, in float64
    zr = z32.detach().double().requires_grad_()
    hr = rate_ref(zr, A_E, B_E, D_E, "standard")
    (gr,) = torch.autograd.grad(hr.sum(), zr)
    normal = gr > 1e-30
    torch.testing.assert_close(g32.double()[normal], gr[normal], rtol=1e-4, atol=0)
    torch.testing.assert_close(h32.double()[hr > 1e-30], hr[hr > 1e-30], rtol=1e-4, atol=0)


def test_griffiths_rate_formula():
    z = torch.linspace(-0.5, 1.0, 31, dtype=F64)
    got = rate_ref(z, A_I, B_I, D_I, "griffiths2022").numpy()
    np.testing.assert_allclose(got, _H_griffiths(A_I, B_I, D_I, z.numpy()), rtol=1e-14)


# ---------------------------------------------------------------- consistency of the API

@pytest.mark.parametrize("name,n", [("griffiths2022", 30), ("deco2014", 40)])
def test_continuation(name, n):
    W = _W(5)
    kw = dict(preset=name, seed=77, record_every=5, steps_per_sample=10 if name == "deco2014" else None)
    one = simulate_ref(W, None, None, n_steps=2 * n, **kw)
    a = simulate_ref(W, None, None, n_steps=n, **kw)
    b = simulate_ref(W, None, a.state, n_steps=n, step_offset=n, **kw)
    _close((torch.cat([a.bold, b.bold], 1), torch.cat([a.E, b.E], 1), torch.cat([a.I, b.I], 1), b.state),
           one, rtol=1e-13, atol=1e-15)
    c = simulate_ref(W, None, a.state, n_steps=n, step_offset=0, **kw)  # reusing the noise: different
    assert not torch.allclose(c.state, b.state)


@pytest.mark.parametrize("name", ["griffiths2022", "deco2014"])
def test_batch_equals_single_runs(name):
    B, N, n = 3, 4, 30
    W = _W(N, B)
    gen = torch.Generator().manual_seed(5)
    base = PRESETS[name].defaults
    prm = {"g": torch.tensor([base["g"], base["g"] * 0.5, base["g"] * 2], dtype=F64),
           "g_EE": base["g_EE"] * (0.8 + 0.4 * torch.rand(B, N, generator=gen, dtype=F64)),
           "sigma": torch.tensor([0.01, 0.03, 0.05], dtype=F64)}
    s0 = torch.rand(B, 6, N, generator=gen, dtype=F64) * 0.3 + torch.tensor([0, 0, 0, 1, 1, 1], dtype=F64)[:, None]
    kw = dict(preset=name, seed=123, record_every=3, steps_per_sample=10)
    out = simulate_ref(W, prm, s0, n_steps=n, **kw)
    for b in range(B):
        one = simulate_ref(W[b], {k: v[b:b + 1] for k, v in prm.items()}, s0[b:b + 1], n_steps=n, stream=[b], **kw)
        _close(one, tuple(o[b:b + 1] for o in out), rtol=1e-12, atol=1e-14)
    # shared W equals the batched W expanded
    shared = simulate_ref(W[0], prm, s0, n_steps=n, **kw)
    expanded = simulate_ref(W[0].expand(B, N, N), prm, s0, n_steps=n, **kw)
    _close(shared, expanded, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["griffiths2022", "deco2014"])
def test_regional_equals_global(name):
    B, N = 2, 3
    W = _W(N)
    defaults = PRESETS[name].defaults
    as_float = {k: float(v) * 1.1 for k, v in defaults.items()}
    as_global = {k: torch.full((B,), v, dtype=F64) for k, v in as_float.items()}
    as_regional = {k: torch.full((B, N), v, dtype=F64) for k, v in as_float.items()}
    kw = dict(preset=name, seed=4, record_every=2, steps_per_sample=5)
    ref = simulate_ref(W, as_float, None, n_steps=20, batch=B, **kw)
    _close(simulate_ref(W, as_global, None, n_steps=20, **kw), ref, rtol=0, atol=0)
    _close(simulate_ref(W, as_regional, None, n_steps=20, **kw), ref, rtol=0, atol=0)
    # the defaults are the preset's
    _close(simulate_ref(W, None, None, n_steps=20, batch=B, **kw),
           simulate_ref(W, dict(defaults), None, n_steps=20, batch=B, **kw), rtol=0, atol=0)
    assert not torch.equal(simulate_ref(W, None, None, n_steps=20, batch=B, **kw).state, ref.state)


@pytest.mark.parametrize("name,n", [("griffiths2022", 150), ("deco2014", 200)])
def test_float32_matches_float64(name, n):
    W = _W(6, seed=8)
    kw = dict(preset=name, seed=3, record_every=10, steps_per_sample=10)
    d = simulate_ref(W, None, None, n_steps=n, **kw)
    f = simulate_ref(W.float(), None, None, n_steps=n, **kw)
    assert all(o.dtype == torch.float32 for o in f)
    # float32 accuracy, absolute: the states are O(1); BOLD is a difference of O(1) hemodynamic
    # states (1 - q, 1 - v), so its error is eps times bold_scale (k1 + k2 + k3), not relative
    eps = torch.finfo(torch.float32).eps
    tol = [50 * eps * PRESETS[name].bold_scale * (K1 + K2 + K3)] + [50 * eps] * 3
    for a, b, t in zip(f, d, tol):
        assert (a.double() - b).abs().max().item() <= t


# ---------------------------------------------------------------- every switch of MODEL.md

_FLIPS = {
    "coupling": {"adjacency": "laplacian", "laplacian": "adjacency"},
    "current_squash": {"identity": "tanh_relu", "tanh_relu": "identity"},
    "rate": {"standard": "griffiths2022", "griffiths2022": "standard"},
    "state_bound": {"clamp01": "tanh_relu", "tanh_relu": "clamp01"},
}


def _switches(preset):
    out = [(k, {k: _FLIPS[k][getattr(preset, k)]}) for k in _FLIPS]
    out += [("hemo_bound", {"hemo_bound": not preset.hemo_bound}), ("dt", {"dt": preset.dt * 0.5}),
            ("hemo_dt", {"hemo_dt": preset.hemo_dt * 2}), ("hemo_every", {"hemo_every": 3}),
            ("bold_scale", {"bold_scale": preset.bold_scale * 2}),
            ("defaults", {"defaults": dict(preset.defaults, g_EE=preset.defaults["g_EE"] * 0.9)})]
    return out


@pytest.mark.parametrize("name", ["griffiths2022", "deco2014"])
def test_every_switch_changes_the_result(name):
    base = PRESETS[name].replace(hemo_every=1) if name == "deco2014" else PRESETS[name]
    W = _W(4, seed=1) * 5
    s0 = torch.tensor([0.2, 0.1, 0.1, 1.1, 1.05, 0.95], dtype=F64)[:, None].repeat(1, 4)
    kw = dict(seed=6, record_every=5, steps_per_sample=10)
    ref = simulate_ref(W, None, s0, n_steps=30, preset=base, **kw)
    assert all(torch.isfinite(o).all() for o in ref)
    for field, change in _switches(base):
        out = simulate_ref(W, None, s0, n_steps=30, preset=base.replace(**change), **kw)
        assert all(torch.isfinite(o).all() for o in out), field
        diff = max((a - b).abs().max().item() for a, b in zip(out, ref))
        assert diff > 1e-9, field
    # tr sets the default steps per sample
    out = simulate_ref(W, None, s0, n_steps=30, preset=base.replace(tr=base.dt * 6), seed=6)
    assert out.bold.shape == (1, 5, 4)
    torch.testing.assert_close(out.bold, simulate_ref(W, None, s0, n_steps=30, preset=base, seed=6,
                                                      steps_per_sample=6).bold, rtol=0, atol=0)
    # noise switch
    quiet = simulate_ref(W, None, s0, n_steps=30, preset=base, noise=False, **kw)
    assert (quiet.state - ref.state).abs().max() > 1e-6


def test_laplacian_coupling_is_translation_invariant():
    # with laplacian coupling a uniform E gives c = 0, so W does not matter
    preset = GRIFFITHS2022
    s0 = torch.tensor([0.3, 0.1, 0, 1, 1, 1], dtype=F64)[:, None].repeat(1, 4)
    a = simulate_ref(_W(4, seed=1), None, s0, n_steps=1, preset=preset, noise=False)
    b = simulate_ref(torch.zeros(4, 4, dtype=F64), None, s0, n_steps=1, preset=preset, noise=False)
    torch.testing.assert_close(a.state, b.state, rtol=1e-14, atol=1e-15)
    c = simulate_ref(_W(4, seed=1), None, s0, n_steps=1, preset=preset.replace(coupling="adjacency"), noise=False)
    assert (c.state[0, 0] - a.state[0, 0]).abs().min() > 1e-6


def test_external_input_enters_the_excitatory_current_by_rows():
    # u adds to J_E only: one noise-free step with u = delta moves E exactly as I_0 + delta / W_E
    # would (E's update reads J_E alone), and leaves I as it is without input
    preset, delta = DECO2014, 0.05
    s0 = torch.tensor([0.3, 0.1, 0, 1, 1, 1], dtype=F64)[:, None].repeat(1, 4)
    I_0 = DECO2014.defaults["I_0"]
    u = torch.full((1, 4), delta, dtype=F64)
    with_u = simulate_ref(_W(4), None, s0, n_steps=1, preset=preset, noise=False, u=u, u_every=1)
    shifted = simulate_ref(_W(4), {"I_0": I_0 + delta / CONSTANTS["W_E"]}, s0, n_steps=1, preset=preset, noise=False)
    plain = simulate_ref(_W(4), None, s0, n_steps=1, preset=preset, noise=False)
    torch.testing.assert_close(with_u.state[:, 0], shifted.state[:, 0], rtol=1e-14, atol=0)
    torch.testing.assert_close(with_u.state[:, 1], plain.state[:, 1], rtol=0, atol=0)
    assert (with_u.state[:, 0] > plain.state[:, 0]).all()
    # row t // u_every drives step t: rows [0, delta] with u_every=2 leave the first two steps alone
    rows = torch.tensor([[0.0] * 4, [delta] * 4], dtype=F64)
    two = simulate_ref(_W(4), None, s0, n_steps=2, preset=preset, noise=False)
    torch.testing.assert_close(simulate_ref(_W(4), None, s0, n_steps=2, preset=preset, noise=False, u=rows[:1],
                                            u_every=2).state, two.state, rtol=0, atol=0)
    four = simulate_ref(_W(4), None, s0, n_steps=4, preset=preset, noise=False, u=rows, u_every=2, record_every=1)
    ref4 = simulate_ref(_W(4), None, s0, n_steps=4, preset=preset, noise=False, record_every=1)
    torch.testing.assert_close(four.E[:, :2], ref4.E[:, :2], rtol=0, atol=0)
    assert (four.E[:, 2] > ref4.E[:, 2]).all()


# ---------------------------------------------------------------- gradients

@pytest.mark.parametrize("name", ["griffiths2022", "deco2014"])
def test_gradcheck(name):
    N = 3
    preset = PRESETS[name]
    if name == "deco2014":
        preset = preset.replace(hemo_every=2, hemo_dt=0.05)
    gen = torch.Generator().manual_seed(2)
    W = (0.1 + torch.rand(N, N, generator=gen, dtype=F64)).requires_grad_()
    d = preset.defaults
    # one global parameter ([B]) and the others regional ([B, N])
    prm = [torch.tensor([d["g"] * 0.5], dtype=F64)] + [
        (d[k] * (0.9 + 0.2 * torch.rand(1, N, generator=gen, dtype=F64))) for k in PARAM_NAMES[1:-1]]
    prm.append(torch.full((1, N), 0.05, dtype=F64))  # sigma
    prm = [p.requires_grad_() for p in prm]
    s0 = (torch.tensor([0.2, 0.1, 0.05, 1.05, 1.02, 0.98], dtype=F64)[:, None]
          + 0.05 * torch.rand(6, N, generator=gen, dtype=F64)).unsqueeze(0).requires_grad_()

    def fn(W, *rest):
        p, s = rest[:6], rest[6]
        return tuple(simulate_ref(W, dict(zip(PARAM_NAMES, p)), s, n_steps=6, preset=preset, seed=1,
                                  steps_per_sample=2, record_every=3))

    assert torch.autograd.gradcheck(fn, (W, *prm, s0))


def test_batched_W_gradient_finite():
    W = _W(3, B=2).requires_grad_()
    out = simulate_ref(W, None, None, n_steps=20, preset="griffiths2022", steps_per_sample=5)
    (gW,) = torch.autograd.grad(out.bold.sum(), W)
    assert gW.shape == (2, 3, 3) and torch.isfinite(gW).all() and gW.abs().max() > 0


# ---------------------------------------------------------------- bad input

def _bad(match, W=None, params=None, state0=None, n_steps=3, exc=(ValueError, TypeError), **kw):
    W = _W(3) if W is None else W
    with pytest.raises(exc, match=match):
        simulate_ref(W, params, state0, n_steps, **kw)


def test_bad_inputs():
    _bad("W", W=torch.zeros(3, 4, dtype=F64))
    _bad("W", W=torch.zeros(3, 3, dtype=torch.int64))
    _bad("W", W=[[0.0]])
    _bad("W", W=torch.full((3, 3), float("nan"), dtype=F64))
    _bad("W", W=-_W(3) - 0.1)
    _bad(r"params\['g'\]", params={"g": torch.zeros(1, 4, dtype=F64)})
    _bad(r"params\['g_EE'\]", params={"g_EE": torch.zeros(1, 3, dtype=torch.float32)})
    _bad(r"params\['sigma'\]", params={"sigma": torch.tensor([float("inf")], dtype=F64)})
    _bad(r"params\['I_0'\]", params={"I_0": float("nan")})
    _bad("params", params={"gain": 1.0})
    _bad("state0", state0=torch.zeros(5, 3, dtype=F64))
    _bad("state0", state0=torch.zeros(6, 3, dtype=torch.float32))
    _bad("state0", state0=torch.full((6, 3), float("inf"), dtype=F64))
    _bad("n_steps", n_steps=0)
    _bad("steps_per_sample", steps_per_sample=0)
    _bad("record_every", record_every=-1)
    _bad("step_offset", step_offset=-1)
    _bad("seed", seed=-1)
    _bad("stream", stream=[-1])
    _bad("preset", preset="wong2006")
    _bad("noise", noise=1)
    _bad("batch size", params={"g": torch.ones(2, dtype=F64)}, state0=torch.ones(3, 6, 3, dtype=F64))
    _bad(r"params\['g'\].*state0|state0.*params\['g'\]", params={"g": torch.ones(2, dtype=F64)},
         state0=torch.ones(3, 6, 3, dtype=F64))
    _bad("stream", W=_W(3, B=2), stream=[0, 1, 2])
    with pytest.raises(ValueError, match="dt"):
        GRIFFITHS2022.replace(dt=0.0)
    with pytest.raises(ValueError, match="hemo_dt"):
        DECO2014.replace(hemo_dt=-1e-3)
    with pytest.raises(ValueError, match="coupling"):
        DECO2014.replace(coupling="diffusive")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    W = _W(5)
    kw = dict(preset="griffiths2022", seed=9, record_every=5, steps_per_sample=15)
    cpu = simulate_ref(W, None, None, n_steps=60, **kw)
    gpu = simulate_ref(W.cuda(), None, None, n_steps=60, **kw)
    _close(tuple(o.cpu() for o in gpu), cpu, rtol=1e-10, atol=1e-12)


def test_exported():
    assert nmmfit.simulate_ref is simulate_ref
