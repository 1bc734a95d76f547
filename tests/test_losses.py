"""Loss terms against independent numpy computations; the objective's composition."""
import numpy as np
import pytest
import torch

from nmmfit.losses import (BifurcationLoss, BoldMSELoss, EntropyLoss, FCCorrelationLoss, FCRMSELoss,
                           GaussianPrior, LossInput, Objective, griffiths2022_objective)
from nmmfit.model import RWW

B, T, N = 3, 25, 5


def _data(seed=0):
    rng = np.random.default_rng(seed)
    sim = rng.normal(size=(B, T, N)) + rng.normal(size=(B, T, 1))   # some shared signal
    emp = rng.normal(size=(B, T, N)) + 0.5 * sim
    return sim, emp


def _np_fc_r(sim, emp):
    i, j = np.tril_indices(sim.shape[-1], -1)
    return np.array([np.corrcoef(np.corrcoef(s.T)[i, j], np.corrcoef(e.T)[i, j])[0, 1] for s, e in zip(sim, emp)])


def _inp(sim, emp, **kw):
    return LossInput(torch.tensor(sim), torch.tensor(emp), **kw)


def test_fc_correlation_loss_vs_numpy():
    sim, emp = _data()
    got = FCCorrelationLoss()(_inp(sim, emp)).numpy()
    np.testing.assert_allclose(got, -np.log(0.5 + 0.5 * _np_fc_r(sim, emp)), rtol=1e-10)
    # identical FC -> r = 1 -> loss 0
    np.testing.assert_allclose(FCCorrelationLoss()(_inp(emp, emp)).numpy(), 0.0, atol=1e-12)


def test_fc_rmse_and_bold_mse_vs_numpy():
    sim, emp = _data(1)
    i, j = np.tril_indices(N, -1)
    want = [np.sqrt(np.mean((np.corrcoef(s.T)[i, j] - np.corrcoef(e.T)[i, j]) ** 2)) for s, e in zip(sim, emp)]
    np.testing.assert_allclose(FCRMSELoss()(_inp(sim, emp)).numpy(), want, rtol=1e-8)
    np.testing.assert_allclose(BoldMSELoss()(_inp(sim, emp)).numpy(), ((sim - emp) ** 2).mean(axis=(1, 2)), rtol=1e-12)


def test_entropy_loss_vs_numpy_and_needs_states():
    rng = np.random.default_rng(2)
    E = rng.uniform(0.01, 0.99, (B, 40, N))
    I = rng.uniform(0.01, 0.99, (B, 40, N))
    want = (E * np.log(E) + (1 - E) * np.log(1 - E) + 0.5 * I * np.log(I) + 0.5 * (1 - I) * np.log(1 - I)).mean(axis=(1, 2))
    sim, emp = _data()
    got = EntropyLoss()(_inp(sim, emp, E=torch.tensor(E), I=torch.tensor(I))).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # 0 and 1 are finite (x ln x -> 0)
    Z = torch.zeros(B, 3, N, dtype=torch.float64)
    assert torch.isfinite(EntropyLoss()(_inp(sim, emp, E=Z, I=Z + 1))).all()
    with pytest.raises(ValueError, match="record_every=1"):
        EntropyLoss()(_inp(sim, emp))


def _model(**kw):
    sc = np.random.default_rng(0).uniform(0, 1, (N, N))
    return RWW(sc, batch=B, fit_gains=False, dtype=torch.float64, **kw)


def test_bifurcation_loss_vs_numpy_with_relu():
    m = _model(fit=("g_IE", "g_EI"))
    raw_ie = np.array([0.3, -0.5, 1.2])
    raw_ei = np.array([0.1, 0.7, -2.0])
    with torch.no_grad():
        m.raw("g_IE").copy_(torch.tensor(raw_ie))
        m.raw("g_EI").copy_(torch.tensor(raw_ei))
    term = BifurcationLoss(B, dtype=torch.float64)
    with torch.no_grad():
        term.ca.copy_(torch.tensor([0.5, -1.0, 2.0]))
        term.cb.copy_(torch.tensor([20.0, 18.0, 21.0]))
        term.cc.copy_(torch.tensor([10.0, 9.0, -3.0]))
    p = lambda x: 0.001 + np.maximum(x, 0)  # noqa: E731
    ca, cb, cc = p(term.ca.detach().numpy()), p(term.cb.detach().numpy()), p(term.cc.detach().numpy())
    gie, gei = p(raw_ie), p(raw_ei)
    want = (ca * gie ** 2 - cb * gie + cc - gei) ** 2
    sim, emp = _data()
    got = term(_inp(sim, emp, model=m))
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-12)
    got.sum().backward()
    assert term.ca.grad is not None and float(term.cb.grad.abs().sum()) > 0
    assert float(term.ca.grad[1]) == 0.0          # relu: no gradient below zero


def test_gaussian_prior_paper_form_vs_numpy():
    m = _model(fit=("g",), init=dict(g=torch.tensor([80.0, -5.0, 120.0])))
    prior = GaussianPrior("g", B, mean=torch.tensor([79.0, 10.0, -1.0], dtype=torch.float64),
                          std=torch.tensor([0.1, 0.5, 2.0], dtype=torch.float64), dtype=torch.float64)
    v = 0.001 + np.maximum(1 / np.array([0.1, 0.5, 2.0]), 0)
    want = v * (np.maximum([80.0, -5.0, 120.0], 0) - np.maximum([79.0, 10.0, -1.0], 0)) ** 2 + np.log(v)
    sim, emp = _data()
    got = prior(_inp(sim, emp, model=m))
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-12)
    got.sum().backward()
    # the paper's + log v' term: d/dv [v d^2 + log v] = d^2 + 1/v > 0, the precision is pushed down
    assert np.all(prior.precision.grad.numpy() > 0)
    assert m.raw("g").grad is not None


def test_gaussian_prior_textbook_form_and_regional():
    m = _model(fit=("g_EE",), regional=("g_EE",))
    vals = np.random.default_rng(3).uniform(1, 4, (B, N))
    m.set_values(dict(g_EE=torch.tensor(vals)))
    prior = GaussianPrior("g_EE", B, mean=2.0, std=0.5, form="gaussian", dtype=torch.float64)
    sim, emp = _data()
    got = prior(_inp(sim, emp, model=m)).detach().numpy()
    v = 0.001 + 1 / 0.5
    want = 0.5 * v * ((vals - 2.0) ** 2).mean(-1) - 0.5 * np.log(v)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    with pytest.raises(ValueError, match="form"):
        GaussianPrior("g", B, form="laplace")


def test_objective_weights_parts_and_per_model_independence():
    m = _model()
    obj = griffiths2022_objective(m)
    assert set(obj.terms) == {"fc", "bifurcation", "entropy", "prior_g", "prior_g_EE"}
    assert obj.weights == dict(fc=1.0, bifurcation=5.0, entropy=0.1, prior_g=1.0, prior_g_EE=1.0)
    assert obj.needs_states
    # priors start at the model's values and the paper's precision 1/0.1
    np.testing.assert_allclose(obj.terms["prior_g"].mean.detach().numpy(), m.value("g").detach().numpy())
    np.testing.assert_allclose(obj.terms["prior_g"].precision.detach().numpy(), 10.0)
    sim, emp = _data()
    rng = np.random.default_rng(4)
    E, I = (torch.tensor(rng.uniform(0.1, 0.9, (B, 30, N))) for _ in range(2))
    total, parts = obj(_inp(sim, emp, E=E, I=I, model=m))
    assert total.shape == (B,)
    torch.testing.assert_close(total, sum(parts.values()))
    torch.testing.assert_close(parts["entropy"], 0.1 * EntropyLoss()(_inp(sim, emp, E=E, I=I)))
    # changing model 1's data does not change model 0's loss
    sim2 = sim.copy()
    sim2[1] = rng.normal(size=(T, N))
    total2, _ = obj(_inp(sim2, emp, E=E, I=I, model=m))
    assert float(total2[0].detach()) == float(total[0].detach())
    assert float(total2[1].detach()) != float(total[1].detach())
    # weight 0 removes a term; custom objectives compose
    obj0 = griffiths2022_objective(m, weights=dict(entropy=0.0))
    assert not obj0.needs_states and "entropy" not in obj0(_inp(sim, emp, model=m))[1]
    custom = Objective({"fc": (FCCorrelationLoss(), 2.0), "mse": BoldMSELoss()})
    t, p = custom(_inp(sim, emp))
    torch.testing.assert_close(t, 2 * FCCorrelationLoss()(_inp(sim, emp)) + BoldMSELoss()(_inp(sim, emp)))
    with pytest.raises(ValueError, match="unknown term"):
        griffiths2022_objective(m, weights=dict(fcc=1.0))
    with pytest.raises(TypeError, match="LossTerm"):
        Objective({"x": (torch.nn.Linear(1, 1), 1.0)})


def test_moment_losses_vs_numpy_and_longer_simulation():
    from nmmfit.losses import BoldACFLoss, BoldLogSDLoss, BoldMeanLoss, FCMSELoss
    rng = np.random.default_rng(5)
    emp = rng.normal(1.0, 0.1, (B, 40, N)) + 0.05 * rng.normal(size=(B, 40, 1))
    sim = rng.normal(1.0, 0.12, (B, 70, N))              # a longer simulated run: statistics are compared
    sd = emp.std(1, ddof=1)
    want_mean = (((sim.mean(1) - emp.mean(1)) / sd) ** 2).mean(-1)
    want_sd = ((np.log(sim.std(1, ddof=1)) - np.log(sd)) ** 2).mean(-1)

    def acf1(x):
        x = x - x.mean(1, keepdims=True)
        return (x[:, 1:] * x[:, :-1]).mean(1) / (x * x).mean(1)

    want_acf = ((acf1(sim) - acf1(emp)) ** 2).mean(-1)
    i, j = np.tril_indices(N, -1)
    want_fc = np.array([np.mean((np.corrcoef(s.T)[i, j] - np.corrcoef(e.T)[i, j]) ** 2) for s, e in zip(sim, emp)])
    x = _inp(sim, emp)
    np.testing.assert_allclose(BoldMeanLoss()(x).numpy(), want_mean, rtol=1e-8)
    np.testing.assert_allclose(BoldLogSDLoss()(x).numpy(), want_sd, rtol=1e-8)
    np.testing.assert_allclose(BoldACFLoss()(x).numpy(), want_acf, rtol=1e-8)
    np.testing.assert_allclose(FCMSELoss()(x).numpy(), want_fc, rtol=1e-8)
    # normalize="blocks": divided by the variance over K blocks / K, pooled over the elements
    K = 4
    blocks = emp.reshape(B, K, 10, N)
    v = (blocks.mean(2) / sd[:, None]).var(1, ddof=1).mean(-1) / K
    np.testing.assert_allclose(BoldMeanLoss("blocks", K)(x).numpy(), want_mean / v, rtol=1e-8)
    with pytest.raises(ValueError, match="normalize"):
        BoldMeanLoss("bootstrap")
    with pytest.raises(ValueError, match="too few"):
        FCMSELoss("blocks", 20)(x)


def test_moments_objective_terms_and_weights():
    from nmmfit.losses import moments_objective
    obj = moments_objective(blocks=4)
    assert set(obj.terms) == {"fc", "mean", "logsd", "acf"} and not obj.needs_states
    sim, emp = _data(6)
    total, parts = obj(_inp(sim, emp))
    torch.testing.assert_close(total, sum(parts.values()))
    assert set(moments_objective(blocks=4, weights=dict(acf=0.0)).terms) == {"fc", "mean", "logsd"}
    # identical data: every term is zero
    assert float(obj(_inp(emp, emp))[0].abs().max()) < 1e-10
    with pytest.raises(ValueError, match="unknown term"):
        moments_objective(weights=dict(var=1.0))
