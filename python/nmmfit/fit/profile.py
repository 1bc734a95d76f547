"""Profile-likelihood intervals: where the quadratic (Laplace) approximation is not to be trusted.

For a parameter ``theta_j`` held at grid values around the estimate, the other fitted parameters
are re-fitted (L-BFGS, the full session against a simulation with common random numbers) to the
synthetic-likelihood discrepancy ``D`` (:class:`nmmfit.losses.SyntheticLikelihoodLoss`, with the
statistic and inverse covariance of :func:`nmmfit.fit.uncertainty.laplace_uncertainty`). The
interval is where the profile stays within ``z**2`` (the chi-square(1) quantile: 2.71 at 90%) of
its minimum; a side where the profile never rises that far within the grid is unbounded (inf, or
the floor of the parameter's transform), never cut at the grid's end.

Imports: fit (the fitting core), losses, model, stats.summary, fit.uncertainty.
"""
from __future__ import annotations

import numpy as np
import torch

from .._validate import check_float, check_int, check_names
from ..losses import Objective, SyntheticLikelihoodLoss
from ..stats.summary import BoldStatistic
from .uncertainty import STATISTIC_KEYS, Uncertainty, normal_quantile


def crossing_interval(grid: np.ndarray, profile: np.ndarray, threshold: float) -> tuple:
    """``(lower, upper)``: where the piecewise-linear ``profile # [G]`` over the increasing ``grid
    # [G]`` crosses ``min + threshold`` on either side of its minimum (-inf / inf where it does not
    within the grid; NaN if the profile is not finite)."""
    if not np.all(np.isfinite(profile)):
        return float("nan"), float("nan")
    k = int(np.argmin(profile))
    level = profile[k] + threshold
    bounds = []
    for side in (range(k, 0, -1), range(k, len(grid) - 1)):
        bound = float("-inf") if side.step < 0 else float("inf")
        for i in side:
            j = i + side.step
            if profile[j] >= level:
                t = (level - profile[i]) / (profile[j] - profile[i])
                bound = float(grid[i] + t * (grid[j] - grid[i]))
                break
        bounds.append(bound)
    return bounds[0], bounds[1]


def _grid(unc: Uncertainty, b: int, i: int, points: int, span: float, max_rel: float) -> np.ndarray:
    """``points`` values of parameter i around the estimate: +-``span`` Laplace standard errors,
    at most +-``max_rel`` of the value (an unbounded or NaN se takes the latter)."""
    value, se = float(unc.estimate[b, i]), float(unc.se[b, i])
    half = max_rel * abs(value)
    if np.isfinite(se):
        half = min(half, span * se)
    return value + np.linspace(-half, half, points)


def profile_intervals(est, data: torch.Tensor, unc: Uncertainty, names=None, *, model: int = 0, points: int = 7,
                      span: float = 4.0, max_rel: float = 0.6, sim_factor: float = 2.0, discard_frames: int = 100,
                      epochs: int = 30, seed: int = 0) -> dict:
    """Profile-likelihood intervals (module docstring) of model ``model`` of ``est`` for ``names``
    (default: all of ``unc.names``), from the data ``data # [B, T, N]`` as the fit saw it and the
    statistic's inverse covariance in ``unc``; the profile is simulated for ``sim_factor * T``
    frames (after ``discard_frames``). Returns name -> ``{"grid", "profile", "lower", "upper"}``
    (natural units; profile: D minus its minimum) and stores it in ``unc.profile``."""
    from . import fit as run_fit

    names = list(unc.names if names is None else check_names("names", names, unc.names, "parameters with intervals"))
    if len(unc.names) < 2:
        raise ValueError("profile_intervals: needs at least two fitted parameters (one profiled, the others re-fitted)")
    b = check_int("model", model, 0, unc.estimate.shape[0] - 1)
    points, epochs = check_int("points", points, 3), check_int("epochs", epochs, 1)
    span, max_rel = check_float("span", span, 0, open_min=True), check_float("max_rel", max_rel, 0, 1, open_min=True)
    T = data.shape[1]
    T_sim = int(round(check_float("sim_factor", sim_factor, 0, open_min=True) * T))
    emp = data[b].detach().double().cpu()                                            # [T, N]
    with torch.no_grad():
        coupling = est.coupling().expand(est.B, est.N, est.N)[b].cpu()
    stat = BoldStatistic.for_coupling(coupling.expand(points, -1, -1), **{k: unc.settings[k] for k in STATISTIC_KEYS})
    prec = torch.as_tensor(unc.precision[b]).expand(points, -1, -1) / (1 + T / T_sim)
    z2 = normal_quantile(unc.level) ** 2
    out = {}
    for name in names:
        i = unc.names.index(name)
        grid = _grid(unc, b, i, points, span, max_rel)
        m = _profile_model(est, b, unc, name, grid, seed)
        res = run_fit(m, emp, objective=Objective({"sl": (SyntheticLikelihoodLoss(stat, prec), 1.0)}), scale="none",
                      mode="full", optimizer="lbfgs", lr=1.0, epochs=epochs, resample_noise=False, test=False,
                      sim_frames=T_sim + discard_frames, discard_frames=discard_frames, seed=seed,
                      lr_scale={k: max(abs(float(unc.estimate[b, unc.names.index(k)])), 1e-6) for k in m.fitted})
        prof = np.nanmin(res.history["loss"], axis=0) if res.history["loss"].size else np.full(points, np.nan)
        lo, hi = crossing_interval(grid, prof, z2)
        floor = float(est.transform(name, torch.tensor(float("-inf"), dtype=torch.float64)))
        out[name] = dict(grid=grid.tolist(), profile=(prof - np.nanmin(prof)).tolist(), lower=max(lo, floor), upper=hi)
    unc.profile.update(out)
    return out


def _profile_model(est, b: int, unc: Uncertainty, name: str, grid: np.ndarray, seed: int):
    """``len(grid)`` copies of model b of ``est`` with ``name`` fixed at the grid values, the other
    parameters of ``unc`` fitted from the estimate, all with the same noise (one stream)."""
    from ..model import RWW

    G = len(grid)
    with torch.no_grad():
        W = est.coupling().expand(est.B, est.N, est.N)[b]
        init = {n: v.detach().double()[b].expand(G, *v.shape[1:]) for n, v in est.values().items()}
    floor = float(est.transform(name, torch.tensor(float("-inf"), dtype=torch.float64)))
    init[name] = torch.as_tensor(np.maximum(grid, floor))
    return RWW(W, scheme=est.scheme, fit=[n for n in unc.names if n != name], regional=est.regional, init=init,
               fit_gains=False, sc_preprocess="none", output_noise=est.output_noise, rng_by_stream=True, seed=seed,
               stream=torch.zeros(G, dtype=torch.int64), backend=est.backend, dtype=est.dtype_)


__all__ = ["profile_intervals", "crossing_interval"]
