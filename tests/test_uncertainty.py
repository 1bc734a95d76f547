"""nmmfit.fit.uncertainty: the algebra on a linear-Gaussian toy with a known answer, and the real
model: intervals shrink with more data, degenerate points are flagged, results round-trip."""
import os
import warnings

import numpy as np
import pytest
import torch

from nmmfit.fit import FitResult, fit
from nmmfit.fit.uncertainty import (UncertaintyWarning, _assemble, direction_label, fisher_information,
                                    hartlap_precision, laplace_uncertainty, normal_quantile, spectral_covariance)
from nmmfit.model import RWW

BACKEND = os.environ.get("NMMFIT_TEST_BACKEND", "auto")
N = 6
TRUTH = dict(g=100.0, g_EE=3.5, g_IE=0.42, g_EI=0.42, I_0=0.2, sigma=0.02, sigma_out=0.02)
FIT = ("g", "g_EE", "g_IE", "g_EI", "sigma_out")
SETTINGS = dict(replicates=16, jacobian_replicates=3, burn_in=20)


def _toy(seed=0, K=6, P=3):
    rng = np.random.default_rng(seed)
    J = rng.normal(size=(K, P))
    A = rng.normal(size=(K, K))
    return J, A @ A.T / K + np.eye(K), rng


def test_hartlap_precision_is_unbiased_and_the_jacobian_noise_is_subtracted():
    J, cov, rng = _toy()
    K, P = J.shape
    exact = J.T @ np.linalg.inv(cov) @ J
    L = np.linalg.cholesky(cov)
    prec, info, naive = [], [], []
    for _ in range(400):
        draws = torch.as_tensor(rng.normal(size=(20, K)) @ L.T)
        pr = hartlap_precision(draws)
        jac = torch.as_tensor(J[None] + 0.5 * rng.normal(size=(4, K, P)))           # noisy estimates of J
        prec.append(pr.numpy())
        info.append(fisher_information(jac, pr).numpy())
        m = jac.mean(0)
        naive.append((m.T @ pr @ m).numpy())
    np.testing.assert_allclose(np.mean(prec, 0), np.linalg.inv(cov), atol=0.06 * np.abs(np.linalg.inv(cov)).max())
    err = np.abs(np.mean(info, 0) - exact).max() / np.abs(exact).max()
    err_naive = np.abs(np.mean(naive, 0) - exact).max() / np.abs(exact).max()
    assert err < 0.05 < err_naive                           # the correction removes a real bias


def test_linear_gaussian_intervals_cover_at_their_nominal_rate():
    J, cov, rng = _toy(1)
    K, P = J.shape
    theta = np.array([1.0, -2.0, 0.5])
    prec = np.linalg.inv(cov)
    L = np.linalg.cholesky(cov)
    z = normal_quantile(0.9)
    hits = []
    for _ in range(2000):
        s = J @ theta + L @ rng.normal(size=K)
        info = J.T @ prec @ J
        est = np.linalg.solve(info, J.T @ prec @ s)
        c, _, _, _ = spectral_covariance(info)
        hits.append(np.abs(est - theta) <= z * np.sqrt(np.diag(c)))
    cover = np.mean(hits, 0)
    assert np.all((cover > 0.87) & (cover < 0.93)), cover


def test_scoring_step_reaches_the_linear_gaussian_maximum_along_determined_directions_only():
    from nmmfit.fit.uncertainty import scoring_step

    J, cov, rng = _toy(2)
    prec = np.linalg.inv(cov)
    info = J.T @ prec @ J
    theta0, s = np.array([1.0, 2.0, 0.5]), J @ np.array([1.1, 1.9, 0.45])
    score = J.T @ prec @ (s - J @ theta0)
    step = scoring_step(info, score, np.abs(theta0), max_half_width=1e9)
    np.testing.assert_allclose(theta0 + step, np.linalg.solve(info, J.T @ prec @ s))      # one step: the maximum
    weak = np.diag([1e6, 1e6, 1e-6])                       # the third parameter: determined to +-1600%
    assert scoring_step(weak, np.ones(3), np.ones(3))[2] == 0.0
    assert np.all(scoring_step(np.full((3, 3), np.nan), np.ones(3), np.ones(3)) == 0)


def test_singular_and_nan_information_give_unbounded_or_missing_variances():
    c, lam, _, null = spectral_covariance(np.diag([1.0, 4.0, 0.0]))
    np.testing.assert_allclose(np.diag(c)[:2], [1.0, 0.25])
    assert np.isinf(c[2, 2]) and null.sum() == 1
    rot = np.array([[1, 0, 0], [0, 1, 1], [0, 1, -1]]) / np.array([1, np.sqrt(2), np.sqrt(2)])[:, None]
    c, _, _, _ = spectral_covariance(rot.T @ np.diag([2.0, 3.0, 0.0]) @ rot)   # null along (0, 1, -1)
    assert np.isfinite(c[0, 0]) and np.isinf(c[1, 1]) and np.isinf(c[2, 2])
    np.testing.assert_allclose(c[0, 0], 0.5)
    c, _, _, null = spectral_covariance(np.array([[1.0, np.nan], [np.nan, 1.0]]))
    assert np.all(np.isnan(c)) and null.all()


def test_direction_label_names_dominant_parameters():
    assert direction_label(["g", "g_EE", "g_IE"], [0.02, 0.5, -0.45]) == "g_EE - 0.9 g_IE"
    assert direction_label(["g", "g_EE"], [0.2, -1.0]) == "-0.2 g + g_EE"      # the sign is arbitrary: largest +1


# ---------------------------------------------------------------------------- the real model
def _sc(seed=0):
    rng = np.random.default_rng(seed)
    sc = rng.uniform(0, 1, (N, N))
    sc[rng.uniform(size=(N, N)) < 0.2] = 0
    return sc


def _data(frames, seed=3, **truth):
    gen = RWW(_sc(), fit=(), init={**TRUTH, **truth}, fit_gains=False, seed=seed, backend=BACKEND)
    with torch.no_grad():
        return gen(frames + 20, gen.initial_state(seed=seed), 0).bold[:, 20:].double()         # [1, T, N]


def _estimate(**overrides):
    return RWW(_sc(), fit=FIT, init={**TRUTH, **overrides}, fit_gains=False, seed=1, backend=BACKEND)


def test_intervals_shrink_with_more_data_and_contain_the_estimate():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncertaintyWarning)
        short = laplace_uncertainty(_estimate(), _data(150), model_units=True, **SETTINGS)
        long = laplace_uncertainty(_estimate(), _data(1200), model_units=True, **SETTINGS)
    assert short.names == list(FIT) and short.se.shape == (1, 5) and short.correlation.shape == (1, 5, 5)
    for n in ("g", "sigma_out"):
        i = FIT.index(n)
        assert np.isfinite(long.se[0, i]) and long.se[0, i] < short.se[0, i] / 1.5, (n, short.se, long.se)
        # the one-step centre moves from the fitted value (here the truth) within the data's noise
        assert long.fitted[0, i] == pytest.approx(TRUTH[n]) and abs(long.estimate[0, i] - TRUTH[n]) < 3.5 * long.se[0, i]
    assert np.all(short.lower <= short.estimate) and np.all(short.estimate <= short.upper)
    assert long.directions[0][0]["half_width"] < long.directions[0][-1]["half_width"]


def test_a_parameter_at_its_floor_is_flagged_with_an_unbounded_interval():
    with pytest.warns(UncertaintyWarning, match="g_EI is at the floor"):
        u = laplace_uncertainty(_estimate(g_EI=0.001), _data(150), model_units=True, **SETTINGS)
    i = FIT.index("g_EI")
    assert u.lower[0, i] == pytest.approx(0.001) and np.isinf(u.upper[0, i])
    assert any("g_EI" in w for w in u.warnings[0])


def test_a_nan_information_matrix_gives_nan_intervals_and_a_warning():
    est = _estimate()
    value = torch.tensor([[TRUTH[n] for n in FIT]], dtype=torch.float64)
    info = np.full((1, 5, 5), np.nan)
    with pytest.warns(UncertaintyWarning, match="not finite"):
        out = _assemble(est, list(FIT), value, info, normal_quantile(0.9))
    assert np.all(np.isnan(out["lower"])) and np.all(np.isnan(out["upper"])) and np.all(np.isnan(out["se"]))


def test_bad_settings_are_refused_by_name():
    with pytest.raises(ValueError, match="replicates: expected more than"):
        laplace_uncertainty(_estimate(), _data(60), model_units=True, replicates=5)
    with pytest.raises(ValueError, match="names"):
        laplace_uncertainty(_estimate(), _data(60), names=("I_0",))
    with pytest.raises(TypeError, match="uncertainty: expected True"):
        fit(_estimate(), _data(40)[0].numpy(), epochs=1, window=10, test=False, uncertainty="yes")


def test_fit_carries_the_uncertainty_and_it_round_trips(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncertaintyWarning)
        res = fit(_estimate(), _data(80)[0].numpy(), epochs=1, window=20, test=False, scale="none",
                  out_dir=tmp_path, uncertainty=SETTINGS)
    u = res.uncertainty
    assert u.settings["sim_frames"] == 80 and u.lower.shape == (1, 5)
    assert (tmp_path / "uncertainty.csv").read_text().count("\n") == 1 + 5
    back = FitResult.load(tmp_path).uncertainty
    np.testing.assert_array_equal(back.upper, u.upper)
    assert back.directions[0][0]["label"] == u.directions[0][0]["label"]
    assert "90% [" in res.summary() and "misfit D/K" in res.summary()


# ---------------------------------------------------------------------------- profile intervals
def test_crossing_interval_finds_the_chi_square_crossings_and_leaves_open_sides_unbounded():
    from nmmfit.fit.profile import crossing_interval

    grid = np.linspace(-4, 6, 1001)
    lo, hi = crossing_interval(grid, 2.0 * (grid - 1) ** 2, 2.0)                 # D = 2 (x - 1)^2: x = 1 -+ 1
    assert lo == pytest.approx(0.0, abs=1e-4) and hi == pytest.approx(2.0, abs=1e-4)
    lo, hi = crossing_interval(grid, np.where(grid < 1, 2.0 * (grid - 1) ** 2, 0.0), 2.0)   # flat to the right
    assert lo == pytest.approx(0.0, abs=1e-4) and hi == float("inf")
    assert all(np.isnan(crossing_interval(grid, np.full_like(grid, np.nan), 2.0)))
    coarse = np.array([-3.0, -1.0, 1.0, 3.0, 5.0])           # D = 2 (x - 1)^2: points 2.8 standard errors apart
    lo, hi = crossing_interval(coarse, 2.0 * (coarse - 1) ** 2, 2.71)
    assert (lo, hi) == (pytest.approx(1 - np.sqrt(2.71 / 2)), pytest.approx(1 + np.sqrt(2.71 / 2)))


def test_profile_interval_of_the_real_model_is_stored_and_ordered(tmp_path):
    from nmmfit.fit.profile import profile_intervals

    est, data = _estimate(), _data(100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncertaintyWarning)
        u = laplace_uncertainty(est, data, model_units=True, sim_frames=200, **SETTINGS)
    out = profile_intervals(est, data, u, ["sigma_out"], points=5, epochs=3, discard_frames=10)
    p = out["sigma_out"]
    assert u.profile["sigma_out"]["models"] == [0] and u.profile["sigma_out"]["upper"] == [p["upper"]]
    assert len(p["grid"]) == len(p["profile"]) == 5
    assert min(p["profile"]) == 0.0 and all(v >= 0 for v in p["profile"])
    assert 0.001 <= p["lower"] < p["upper"]
    from nmmfit.plots import _profile_bounds, plot_uncertainty

    lo, hi = _profile_bounds(u, 0)                        # the figure draws the stored profile of model 0 only
    i = FIT.index("sigma_out")
    assert (lo[i], hi[i]) == (p["lower"], p["upper"]) and np.isnan(lo[0]) and np.isnan(_profile_bounds(u, 1)[0][i])
    assert plot_uncertainty(u, tmp_path / "u.png", truth=TRUTH).exists()
    with pytest.raises(ValueError, match="names"):
        profile_intervals(est, data, u, ["I_0"])


def test_batched_profiles_fit_each_model_to_its_own_data():
    from nmmfit.fit.profile import batched_profiles

    # model 1's data come from another output noise: its profile must find that one, not model 0's
    data = torch.cat([_data(150), _data(150, seed=5, sigma_out=0.03)])                       # [2, T, N]
    est = RWW(_sc(), batch=2, fit=FIT, init={**TRUTH, "sigma_out": torch.tensor([0.02, 0.03])}, fit_gains=False,
              seed=1, backend=BACKEND)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncertaintyWarning)
        u = laplace_uncertainty(est, data, model_units=True, sim_frames=300, **SETTINGS)
    out = batched_profiles(est, data, u, ["sigma_out"], points=5, epochs=3, discard_frames=10)["sigma_out"]
    assert out["models"] == [0, 1] and np.shape(out["grid"]) == np.shape(out["profile"]) == (2, 5)
    np.testing.assert_allclose(np.asarray(out["grid"])[:, 2], u.estimate[:, FIT.index("sigma_out")])
    assert np.nanmin(out["profile"], axis=1).tolist() == [0.0, 0.0]
    lo, hi = np.asarray(out["lower"]), np.asarray(out["upper"])
    assert np.all(lo < hi) and hi[0] < 0.025 < lo[1], (lo, hi)                # apart, each near its own data's
    np.testing.assert_allclose((lo + hi) / 2, [0.02, 0.03], rtol=0.1)


def test_data_of_the_wrong_shape_or_with_nan_is_refused_by_name():
    bad = _data(60).clone()
    bad[0, 3, 2] = float("nan")
    with pytest.raises(ValueError, match="data"):
        laplace_uncertainty(_estimate(), bad)
    with pytest.raises(ValueError, match=r"data: expected shape \[B=1, T, N=6\]"):
        laplace_uncertainty(_estimate(), _data(60)[:, :, :4])


def test_the_data_look_like_the_replicates_at_the_truth():
    """misfit D/K ~ chi2_K / K at the data-generating values: the replicates reproduce the data's
    statistics within their noise (a wrong covariance, statistic or simulation shows here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncertaintyWarning)
        misfit = [laplace_uncertainty(_estimate(), _data(300, seed=s), model_units=True,
                                      **dict(SETTINGS, jacobian_replicates=1)).misfit[0] for s in (4, 5, 6)]
    assert 0.2 < np.mean(misfit) < 2.5, misfit


def test_data_the_model_cannot_reproduce_keep_the_fitted_centre_and_say_so():
    est, data = _estimate(), _data(200)
    with pytest.warns(UncertaintyWarning, match="does not reproduce the data"):
        u = laplace_uncertainty(est, 3.0 * data + 1.0, model_units=True, **SETTINGS)    # far from the model
    assert u.misfit[0] > 3 and np.array_equal(u.estimate, u.fitted)


def test_intervals_for_some_models_are_theirs_in_the_batch_and_the_others_are_left_out(tmp_path):
    """``models=``: the rows computed are those of a computation for every model (to float64
    rounding: batched linear algebra), the others NaN, skipped by the table and named in the
    summary; ``best_of`` (a subject's restarts) picks each group's best by train FC r."""
    data = torch.cat([_data(100), _data(100, seed=5, sigma_out=0.03), _data(100, seed=6, g=90.0)])   # [3, T, N]
    est = RWW(_sc(), batch=3, fit=FIT, init={**TRUTH, "sigma_out": torch.tensor([0.02, 0.03, 0.02])},
              fit_gains=False, seed=1, backend=BACKEND)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncertaintyWarning)
        full = laplace_uncertainty(est, data, model_units=True, **SETTINGS)
        some = laplace_uncertainty(est, data, model_units=True, models=[2, 0], **SETTINGS)
    assert some.models == [2, 0] and some.computed(0) and not some.computed(1)
    for k in ("estimate", "se", "lower", "upper", "correlation", "misfit"):
        a, b = np.asarray(getattr(full, k)), np.asarray(getattr(some, k))
        np.testing.assert_allclose(b[[0, 2]], a[[0, 2]], rtol=1e-9, err_msg=k)
        assert np.all(np.isnan(b[1])), k
    assert some.directions[1] == [] and [d["label"] for d in some.directions[2]] == [d["label"] for d in full.directions[2]]
    assert {r["model"] for r in some.table()} == {0, 2}
    assert "no intervals for model 1" in some.summary(1) and "90% [" in some.summary(2)
    from nmmfit.fit.uncertainty import Uncertainty
    assert Uncertainty.from_dict(some.to_dict()).models == [2, 0]
    with pytest.raises(ValueError, match="models"):
        laplace_uncertainty(est, data, models=[0, 0], **SETTINGS)
    with pytest.raises(ValueError, match="models"):
        laplace_uncertainty(est, data, models=[3], **SETTINGS)

    bold = torch.cat([data, data[:1]])[:, :, :].float().numpy()                              # [4, T, N]: 2 x 2 restarts
    model = RWW(_sc(), batch=4, fit=FIT, init=TRUTH, fit_gains=False, seed=1, backend=BACKEND)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncertaintyWarning)
        res = fit(model, bold, epochs=1, window=20, test=False, scale="none", out_dir=tmp_path,
                  uncertainty=dict(SETTINGS, best_of=2))
    assert res.uncertainty.models == [res.best(slice(0, 2)), res.best(slice(2, 4))]
    with pytest.raises(ValueError, match="best_of=3"):
        fit(RWW(_sc(), batch=4, fit=FIT, init=TRUTH, fit_gains=False, seed=1, backend=BACKEND), bold, epochs=1,
            window=20, test=False, scale="none", uncertainty=dict(SETTINGS, best_of=3))
