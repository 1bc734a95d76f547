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

import math

import numpy as np
import torch

from .._validate import check_float, check_int, check_names
from ..losses import Objective, SyntheticLikelihoodLoss
from ..stats.summary import BoldStatistic
from .uncertainty import STATISTIC_KEYS, Uncertainty, normal_quantile


def crossing_interval(grid: np.ndarray, profile: np.ndarray, threshold: float) -> tuple:
    """``(lower, upper)``: where the ``profile # [G]`` over the increasing ``grid # [G]`` crosses
    ``min + threshold`` on either side of its minimum (-inf / inf where it does not within the
    grid; NaN if the profile is not finite). Interpolated linearly in ``sqrt(profile - min)``,
    which is linear in the parameter for a quadratic profile: exact there on any grid, where
    interpolating the profile itself would put the crossing too close (a 90% interval from points
    2 standard errors apart would be 18% too narrow)."""
    if not np.all(np.isfinite(profile)):
        return float("nan"), float("nan")
    k = int(np.argmin(profile))
    root = np.sqrt(np.maximum(profile - profile[k], 0.0))
    level = math.sqrt(threshold)
    bounds = []
    for side in (range(k, 0, -1), range(k, len(grid) - 1)):
        bound = float("-inf") if side.step < 0 else float("inf")
        for i in side:
            j = i + side.step
            if root[j] >= level:
                t = (level - root[i]) / (root[j] - root[i])
                bound = float(grid[i] + t * (grid[j] - grid[i]))
                break
        bounds.append(bound)
    return bounds[0], bounds[1]


def _grids(unc: Uncertainty, models: list, i: int, points: int, span: float, max_rel: float) -> np.ndarray:
    """``[M, points]`` values of parameter i around each model's estimate: +-``span`` Laplace
    standard errors, at most +-``max_rel`` of the value (an unbounded or NaN se takes the latter)."""
    value, se = unc.estimate[models, i].astype(float), unc.se[models, i].astype(float)      # [M]
    half = max_rel * np.abs(value)
    half = np.where(np.isfinite(se), np.minimum(half, span * np.where(np.isfinite(se), se, 0.0)), half)
    return value[:, None] + half[:, None] * np.linspace(-1.0, 1.0, points)[None, :]


def profile_intervals(est, data: torch.Tensor, unc: Uncertainty, names=None, *, model: int = 0, **settings) -> dict:
    """Profile-likelihood intervals (module docstring) of model ``model`` of ``est`` for ``names``
    (default: all of ``unc.names``); ``settings`` as :func:`batched_profiles` (which stores them in
    ``unc.profile``). Returns name -> ``{"grid", "profile", "lower", "upper"}`` (natural units;
    profile: D minus its minimum)."""
    batch = batched_profiles(est, data, unc, names, models=[model], **settings)
    return {n: dict(grid=p["grid"][0], profile=p["profile"][0], lower=p["lower"][0], upper=p["upper"][0])
            for n, p in batch.items()}


def batched_profiles(est, data: torch.Tensor, unc: Uncertainty, names=None, *, models=None, points: int = 7,
                     span: float = 4.0, max_rel: float = 0.6, sim_factor: float = 2.0, discard_frames: int = 100,
                     epochs: int = 30, seed: int = 0) -> dict:
    """Profile-likelihood intervals of the models ``models`` of ``est`` (default: all) for ``names``
    (default: all of ``unc.names``), from the data ``data # [B, T, N]`` as the fit saw it and the
    statistic's inverse covariance in ``unc``. Per parameter, the M models' ``points`` grid values
    are one batch of ``M * points`` models in one fit (each re-fitting the other parameters to its
    own model's data; one noise stream per model, shared by its grid points); the profile is
    simulated for ``sim_factor * T`` frames (after ``discard_frames``). Returns name ->
    ``{"models" [M], "grid" [M, G], "profile" [M, G] (D minus its minimum), "lower" [M], "upper"
    [M]}`` (natural units, lists), also stored in ``unc.profile``."""
    from . import fit as run_fit

    names = list(unc.names if names is None else check_names("names", names, unc.names, "parameters with intervals"))
    if len(unc.names) < 2:
        raise ValueError("profile_intervals: needs at least two fitted parameters (one profiled, the others re-fitted)")
    B = unc.estimate.shape[0]
    models = list(range(B)) if models is None else [check_int("models", b, 0, B - 1) for b in models]
    if not models:
        raise ValueError("models: expected at least one model index")
    points, epochs = check_int("points", points, 3), check_int("epochs", epochs, 1)
    span, max_rel = check_float("span", span, 0, open_min=True), check_float("max_rel", max_rel, 0, 1, open_min=True)
    M, T = len(models), data.shape[1]
    T_sim = int(round(check_float("sim_factor", sim_factor, 0, open_min=True) * T))
    emp = data[models].detach().double().cpu().repeat_interleave(points, 0)             # [M*G, T, N]
    with torch.no_grad():
        coupling = est.coupling().expand(est.B, est.N, est.N)[models].cpu()             # [M, N, N]
    stat = BoldStatistic.for_coupling(coupling.repeat_interleave(points, 0),
                                      **{k: unc.settings[k] for k in STATISTIC_KEYS})
    prec = torch.as_tensor(unc.precision[models]).repeat_interleave(points, 0) / (1 + T / T_sim)   # [M*G, K, K]
    objective = Objective({"sl": (SyntheticLikelihoodLoss(stat, prec), 1.0)})
    z2 = normal_quantile(unc.level) ** 2
    out = {}
    for name in names:
        i = unc.names.index(name)
        grid = _grids(unc, models, i, points, span, max_rel)                             # [M, G]
        m = _profile_model(est, models, unc, name, grid, seed)
        scale = {k: max(float(np.median(np.abs(unc.estimate[models, unc.names.index(k)]))), 1e-6) for k in m.fitted}
        res = run_fit(m, emp, objective=objective, scale="none", mode="full", optimizer="lbfgs", lr=1.0, epochs=epochs,
                      resample_noise=False, test=False, sim_frames=T_sim + discard_frames,
                      discard_frames=discard_frames, seed=seed, lr_scale=scale)
        loss = np.asarray(res.history["loss"], dtype=float).reshape(-1, M * points)
        prof = (np.nanmin(loss, axis=0) if loss.size else np.full(M * points, np.nan)).reshape(M, points)
        floor = float(est.transform(name, torch.tensor(float("-inf"), dtype=torch.float64)))
        bounds = np.array([crossing_interval(grid[k], prof[k], z2) for k in range(M)])    # [M, 2]
        out[name] = dict(models=models, grid=grid.tolist(), profile=(prof - np.nanmin(prof, 1, keepdims=True)).tolist(),
                         lower=np.maximum(bounds[:, 0], floor).tolist(), upper=bounds[:, 1].tolist())
    unc.profile.update(out)
    return out


def _profile_model(est, models: list, unc: Uncertainty, name: str, grid: np.ndarray, seed: int):
    """``M * G`` models for ``grid # [M, G]``: G copies of each model b of ``est`` in ``models`` with
    ``name`` fixed at its grid values and the other parameters of ``unc`` fitted from the estimate;
    the copies of model b share one noise stream (common random numbers along its profile), and
    different models draw different ones."""
    from ..model import RWW

    M, G = grid.shape
    with torch.no_grad():
        W = est.coupling().expand(est.B, est.N, est.N)[models].repeat_interleave(G, 0)
        init = {n: v.detach().double().expand(est.B, *v.shape[1:])[models].repeat_interleave(G, 0)
                for n, v in est.values().items()}
    floor = float(est.transform(name, torch.tensor(float("-inf"), dtype=torch.float64)))
    init[name] = torch.as_tensor(np.maximum(grid, floor)).reshape(M * G)
    return RWW(W, scheme=est.scheme, fit=[n for n in unc.names if n != name], regional=est.regional, init=init,
               fit_gains=False, sc_preprocess="none", output_noise=est.output_noise, rng_by_stream=True, seed=seed,
               stream=torch.as_tensor(models, dtype=torch.int64).repeat_interleave(G), backend=est.backend,
               dtype=est.dtype_)


__all__ = ["profile_intervals", "batched_profiles", "crossing_interval"]
