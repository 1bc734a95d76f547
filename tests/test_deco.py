"""Deco 2014 fitting pieces: heterogeneity (maps, node groups), the FIC-derived g_IE in the model,
the FCD / FC-mean / firing-rate / regional-prior terms, cuBNM's cost, Preset.with_dt."""
import numpy as np
import pytest
import torch

import nmmfit
from nmmfit.losses import (FCDLoss, FCMeanLoss, FiringRateLoss, LossInput, RegionalPrior, cubnm_cost,
                           deco2014_objective, mean_rate_E)
from nmmfit.params.fic import IterativeFIC, fic_analytic
from nmmfit.params.heterogeneity import MapScaling
from nmmfit.params.schemes import DECO2014_FIC_SCHEME, DECO2014_SCHEME
from nmmfit.presets import DECO2014
from nmmfit.stats.fc import fc_matrix, lower_tri, pearson
from nmmfit.stats.fcd import fcd_values, ks_distance, wasserstein1

F64 = torch.float64
N = 6


def sc(n=N, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.rand(n, n, generator=g, dtype=F64)
    W = (W + W.T) / 2 * (1 - torch.eye(n, dtype=F64))
    return W / W.max()


def maps(n=N, k=2, seed=1):
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((k, n))
    return {f"m{i}": (m[i] - m[i].mean()) / m[i].std() for i in range(k)}


def fic_model(**kw):
    kw.setdefault("dtype", F64)
    kw["init"] = dict(dict(g=0.1), **kw.get("init", {}))
    return nmmfit.RWW(sc(), scheme=DECO2014_FIC_SCHEME, **kw)


# ------------------------------------------------------------------ heterogeneity
def test_map_scaling_values_and_least_squares_round_trip():
    ms = MapScaling.from_maps(maps(), N)
    m = fic_model(batch=2, heterogeneity={"g_EE": ms})
    a = torch.tensor([[0.1, -0.2], [0.05, 0.3]], dtype=F64)
    m.hetero["g_EE"].set_coefficients(a)
    expected = 0.21 * (1 + a @ torch.as_tensor(ms.maps))
    assert torch.allclose(m.value("g_EE"), expected)
    target = torch.stack([0.3 * (1 + torch.tensor([0.2, 0.1], dtype=F64) @ torch.as_tensor(ms.maps)),
                          0.15 * (1 + torch.tensor([-0.1, 0.0], dtype=F64) @ torch.as_tensor(ms.maps))])
    m.set_values({"g_EE": target})
    assert torch.allclose(m.value("g_EE"), target, atol=1e-10)
    assert torch.allclose(m.hetero["g_EE"].coef, torch.tensor([[0.2, 0.1], [-0.1, 0.0]], dtype=F64), atol=1e-10)


def test_node_groups_give_one_value_per_group():
    labels = np.array([0, 1, 2, 1, 0, 2])
    m = fic_model(heterogeneity={"g_EE": MapScaling.from_groups(labels, N, "yeo")})
    m.hetero["g_EE"].set_coefficients(torch.tensor([[0.5, -0.25]], dtype=F64))
    v = m.value("g_EE")[0]
    assert torch.allclose(v, 0.21 * torch.tensor([1, 1.5, 0.75, 1.5, 1, 0.75], dtype=F64))
    assert m.heterogeneity_report()["g_EE"]["maps"] == ["yeo1", "yeo2"]


def test_heterogeneity_coefficients_get_exact_gradients():
    ms = MapScaling.from_maps(maps(), N)
    m = fic_model(heterogeneity={"g_EE": ms, "g_EI": MapScaling.from_groups([0, 0, 1, 1, 2, 2], N)},
                  backend="reference")
    state = m.initial_state(seed=0)

    def loss(a, b):
        coefs = {"hetero.g_EE.coef": a, "hetero.g_EI.coef": b}
        out = torch.func.functional_call(m, coefs, kwargs=dict(n_steps=40, state=state, noise=False, record_every=1))
        return out.E.sum()

    a = torch.tensor([[0.05, -0.1]], dtype=F64, requires_grad=True)
    b = torch.tensor([[0.1, -0.05]], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(loss, (a, b), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("bad, message", [
    (dict(m0=np.ones(N - 1)), "expected 6 values"),
    (dict(m0=np.full(N, 2.0)), "constant"),
    (dict(m0=np.r_[np.nan, np.zeros(N - 1)]), "NaN"),
])
def test_bad_maps_are_refused_by_name(bad, message):
    with pytest.raises(ValueError, match=message):
        MapScaling.from_maps(bad, N)


def test_bad_groups_are_refused():
    with pytest.raises(ValueError, match=r"labels.*K <= N"):
        MapScaling.from_groups([0, 1, 2, 3, 4, 9], N, "yeo7")
    with pytest.raises(ValueError, match="skip group"):
        MapScaling.from_groups([0, 0, 2, 2, 0, 0], N)
    with pytest.raises(ValueError, match="two groups"):
        MapScaling.from_groups([0] * N, N)


def test_heterogeneity_checked_against_the_model():
    with pytest.raises(ValueError, match="one per region"):
        fic_model(heterogeneity={"g_EE": MapScaling.from_maps(maps(n=8), 8)})
    with pytest.raises(ValueError, match="is derived"):
        fic_model(heterogeneity={"g_IE": MapScaling.from_maps(maps(), N)})
    with pytest.raises(ValueError, match="regional"):
        fic_model(regional=("g_EE",), heterogeneity={"g_EE": MapScaling.from_maps(maps(), N)})
    with pytest.raises(ValueError, match="unknown parameter names"):
        fic_model(heterogeneity={"gEE": MapScaling.from_maps(maps(), N)})


def test_scale_reaching_zero_is_an_error_not_a_clip():
    m = fic_model(heterogeneity={"g_EE": MapScaling.from_maps(maps(), N)})
    m.hetero["g_EE"].set_coefficients(torch.tensor([[5.0, 0.0]], dtype=F64))
    with pytest.raises(ValueError, match=r"g_EE: .*<= 0 at model 0, region"):
        m.value("g_EE")


def test_a_fit_update_projects_infeasible_coefficients_to_the_floor():
    from nmmfit.params.heterogeneity import SCALE_FLOOR

    m = fic_model(batch=2, heterogeneity={"g_EE": MapScaling.from_maps(maps(), N)})
    h = m.hetero["g_EE"]
    a = torch.tensor([[5.0, -1.0], [0.1, 0.05]], dtype=F64)
    h.set_coefficients(a)
    assert m.project_()
    s = h.scale().detach()
    assert torch.isclose(s[0].min(), torch.tensor(SCALE_FLOOR, dtype=F64))          # shrunk to the floor
    c = h.coef.detach()
    assert torch.allclose(c[0] / c[0].norm(), a[0] / a[0].norm()) and c[0].norm() < a[0].norm()
    assert torch.equal(c[1], a[1])                                                   # feasible: untouched
    assert m.heterogeneity_report()["g_EE"]["projections"] == [1, 0]
    assert not m.project_()


def test_fit_with_a_huge_step_keeps_the_scale_feasible():
    m = nmmfit.RWW(sc(), scheme=DECO2014_FIC_SCHEME.replace(preset=DECO2014.with_dt(2.0)), init=dict(g=0.1),
                   heterogeneity={"g_EE": MapScaling.from_maps(maps(), N)})
    with torch.no_grad():
        bold = m(80).bold[0].double()
    m.hetero["g_EE"].set_coefficients(torch.tensor([[0.0, 0.0]]))
    nmmfit.fit(m, bold, objective=deco2014_objective(m), mode="full", resample_noise=False, epochs=4, lr=3.0,
               test=False, window=20, burn_in_windows=0)
    assert bool((m.hetero["g_EE"].scale() > 0).all())
    assert sum(m.heterogeneity_report()["g_EE"]["projections"]) > 0


# ------------------------------------------------------------------ FIC in the model
def test_fic_scheme_derives_g_IE_every_forward_with_gradient():
    m = fic_model()
    v = m.values()
    ref = fic_analytic(v["g"], v["g_EE"], v["g_EI"], v["I_0"], m.coupling()).g_IE
    assert torch.allclose(v["g_IE"], ref)
    (dg,) = torch.autograd.grad(m.value("g_IE").sum(), m.raw_g)
    assert float(dg.abs().sum()) > 0                    # g_IE depends on g through FIC
    with torch.no_grad():
        m.raw_g.add_(0.5)
    assert not torch.allclose(m.value("g_IE"), ref)       # re-derived from the new g
    assert bool(m.derived_report()["fic_ok"].all())


def test_fic_scheme_refuses_fitting_or_setting_g_IE_and_reports_instability():
    with pytest.raises(ValueError, match="derived"):
        fic_model(fit=("g", "g_IE"))
    m = fic_model()
    with pytest.raises(ValueError, match="derived"):
        m.set_values({"g_IE": 0.5})
    low = fic_model(init=dict(g=1e-4, g_EE=1e-3, I_0=0.2))      # too little excitation: g_IE < 0
    assert not bool(low.derived_report()["fic_ok"].any())
    assert bool((low.value("g_IE") < 0).all())                  # reported, never clipped


def test_iterative_fic_runs_once_per_parameter_set_without_gradient():
    rule = IterativeFIC(window_ms=(10.0, 50.0), max_trials=3)
    m = nmmfit.RWW(sc(), scheme=DECO2014_FIC_SCHEME.replace(derived=rule), init=dict(g=0.1), dtype=F64)
    g1 = m.value("g_IE")
    key = rule._last["key"]
    g2 = m.value("g_IE")
    assert rule._last["key"] is key and torch.equal(g1, g2) and not g1.requires_grad
    assert g1.shape == (1, N)
    v = m.values()
    analytic = fic_analytic(v["g"], v["g_EE"], v["g_EI"], v["I_0"], m.coupling()).g_IE
    assert float((g1 - analytic).abs().max()) <= 3 * 0.02 + 1e-9     # started there, <= 3 trials of delta 0.02


def test_deco2014_sigma_stays_positive():
    m = nmmfit.RWW(sc(), scheme=DECO2014_SCHEME, fit=("sigma",))
    with torch.no_grad():
        m.raw_sigma.fill_(-20.0)
    assert float(m.value("sigma")) > 0


# ------------------------------------------------------------------ losses
def _bold(B, T, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, N, generator=g, dtype=F64)
    return x.cumsum(1) * 0.1 + x


def test_fcd_and_fc_mean_terms_match_their_statistics():
    m = fic_model()             # tr 720 ms: 30 s windows = 42 frames, step 7
    sim, emp = _bold(1, 120, 0), _bold(1, 130, 1)
    x = LossInput(sim, emp, model=m)
    assert torch.allclose(FCDLoss()(x), wasserstein1(fcd_values(sim, 42, 7), fcd_values(emp, 42, 7)))
    fs, fe = lower_tri(fc_matrix(sim)), lower_tri(fc_matrix(emp))
    assert torch.allclose(FCMeanLoss()(x), (fs.mean(-1) - fe.mean(-1)).abs())
    total, parts = deco2014_objective(m, {"fc_mean": 0.0})(x)
    assert set(parts) == {"fc", "fcd"}


def test_fcd_window_longer_than_the_run_is_an_error():
    m = fic_model()
    with pytest.raises(ValueError, match="longer than the run"):
        FCDLoss()(LossInput(_bold(1, 30, 0), _bold(1, 30, 1), model=m))


def test_cubnm_cost_is_its_formula():
    sim, emp = _bold(2, 200, 0), _bold(1, 200, 1)
    rate = torch.tensor([[3.0] * N, [3.0] * (N - 1) + [6.0]], dtype=F64)
    c = cubnm_cost(sim, emp, 0.72, rate=rate)
    r = pearson(lower_tri(fc_matrix(sim)), lower_tri(fc_matrix(emp)))
    ks = ks_distance(fcd_values(sim, 42, 7), fcd_values(emp, 42, 7))
    assert torch.allclose(c["fc_corr"], r) and torch.allclose(c["fcd_ks"], ks)
    pen = 0.5 / N * (1 - np.exp(-0.05 * 2.0))
    assert c["fic_penalty"].tolist() == pytest.approx([0.0, pen])
    assert torch.allclose(c["cost"], -(r - ks) + c["fic_penalty"])


def test_firing_rate_term_from_recorded_states():
    m = fic_model(init=dict(g=0.05))
    out = m(n_steps=60_000, record_every=1, noise=False)
    rate = mean_rate_E(m, out.E[:, 40_000:], out.I[:, 40_000:])
    assert rate.shape == (1, N)
    assert torch.allclose(rate, torch.full_like(rate, 3.0773), atol=0.05)    # noise-free FIC holds the target
    x = LossInput(out.bold, out.bold, out.E[:, 40_000:], out.I[:, 40_000:], model=m)
    assert float(FiringRateLoss(tolerance=0.0)(x)) == pytest.approx(float(((rate - 3.0) ** 2).mean()), rel=1e-6)
    assert float(FiringRateLoss(tolerance=1.0)(x)) == 0.0
    with pytest.raises(ValueError, match="record_every=1"):
        FiringRateLoss()(LossInput(out.bold, out.bold, model=m))


def test_regional_prior():
    m = fic_model(regional=("g_EE",))
    x = LossInput(_bold(1, 10, 0), _bold(1, 10, 1), model=m)
    assert float(RegionalPrior("g_EE")(x)) == 0.0 and float(RegionalPrior("g_EE", "smooth")(x)) == 0.0
    m.set_values({"g_EE": torch.tensor([[0.2, 0.22, 0.18, 0.2, 0.21, 0.19]], dtype=F64)})
    assert float(RegionalPrior("g_EE")(x)) > 0 and float(RegionalPrior("g_EE", "smooth")(x)) > 0
    with pytest.raises(ValueError, match="'g' is global"):
        RegionalPrior("g")(x)


# ------------------------------------------------------------------ dt
def test_with_dt_keeps_the_hemodynamic_period():
    p = DECO2014.with_dt(0.5)
    assert (p.dt, p.hemo_every) == (0.5, 2) and p.hemo_dt == pytest.approx(1e-3)
    p = DECO2014.with_dt(2.0)
    assert (p.dt, p.hemo_every) == (2.0, 1) and p.hemo_dt == pytest.approx(2e-3)
    assert DECO2014.with_dt(1.0).for_tr(0.72).steps_per_sample == 720
    with pytest.raises(ValueError, match="dt: expected a positive number"):
        DECO2014.with_dt(0)
