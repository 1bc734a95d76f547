"""What the data determine at a fitted point: a synthetic-likelihood Fisher (Gauss-Newton) approximation.

The BOLD is summarised by a low-dimensional statistic ``s`` (:class:`BoldStatistic`: the FC on the
coupling's leading eigenvectors and its mean, and the per-region lag-1 autocorrelation, level and
amplitude projected on the uniform vector and the coupling's leading eigenvector). Near the fitted point
``s_obs ~ N(mu(theta), Sigma)`` (a synthetic likelihood, Wood 2010), so the information about the
parameters (natural units) is ``J^T Sigma^-1 J`` with

- ``Sigma``: the covariance of ``s`` over ``replicates`` simulations of the data's length with
  independent seeds at the estimate, its inverse debiased by the Hartlap factor
  ``(R - K - 2) / (R - 1)`` (a sample covariance of R replicates overstates the information);
- ``J = d mu / d theta``: central differences with common random numbers (the same seeds on both
  sides, so the difference is the pathwise derivative, not noise) averaged over
  ``jacobian_replicates`` seeds; the noise of that average is subtracted from ``J^T A J``
  (otherwise a parameter the data do not see would gain information from noise alone).

Every simulation of a call is one batched kernel call. The covariance is inflated by
``1 + T / T_sim`` when the estimate was fitted against a simulation of ``T_sim`` frames (its noise
adds to the data's). Intervals are symmetric in the unconstrained parameter (its standard error
from the natural one through the transform's slope) and mapped through the scheme's transforms to
natural units. Directions the data do not determine (a singular or
non-finite information matrix, a parameter at the floor of its transform) give a warning and
infinite (or NaN) intervals, never a finite interval the data do not support.

Imports: model (RWW, lazily), stats.summary, rng, _validate. Imported by fit (the ``uncertainty=`` hook),
fit.profile, experiments, cli, plots.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import torch

from .._validate import all_finite, check_float, check_int, check_names, check_tensor
from ..rng import derive_seed
from ..stats.summary import BoldStatistic


def normal_quantile(level: float) -> float:
    """``z`` with ``P(|Z| <= z) = level``: a two-sided ``level`` interval is the estimate +- z sd
    (and ``z**2`` is the chi-square(1) threshold of a profile-likelihood interval)."""
    return NormalDist().inv_cdf(0.5 + 0.5 * check_float("level", level, 0, 1, open_min=True, open_max=True))


MISFIT_LIMIT = 3.0
"""Above this misfit D/K (about the chi-square 99.9% point for K ~ 10) the data's statistics are
out of the model's reach: the linearisation a one-step estimate needs does not hold, the intervals
stay on the fitted values and the result says so."""

STATISTIC_KEYS = ("model_units", "fc_modes", "region_modes")
"""The settings of :func:`laplace_uncertainty` that define its statistic (kept in ``Uncertainty.settings``)."""


class UncertaintyWarning(UserWarning):
    """The data do not determine some parameter or direction at the fitted point."""


@dataclass
class Uncertainty:
    """Uncertainty of B fitted models' parameters (natural units unless said otherwise).

    names: the P parameters; fitted ``[B, P]``: the fit's values; estimate, se, lower, upper ``[B, P]``
    (the intervals' centre: the fitted values after one Fisher-scoring step of the synthetic
    likelihood, :func:`scoring_step`; 90% intervals; inf where the data
    do not bound a parameter, NaN where the computation failed); correlation ``[B, P, P]``;
    information ``[B, P, P]`` about the parameters (natural units); directions: per model, the
    information's eigen-directions in relative units, each ``{"label", "coefficients" [P],
    "half_width"}`` (relative 90% half-width, inf when undetermined); warnings: per model, what the
    data leave undetermined; statistic: the K statistic names; misfit ``[B]``: the synthetic
    discrepancy of the data from the estimate per statistic, ``D / K`` (~1 when the model
    reproduces the data's statistics within their noise); precision ``[B, K, K]``: the inverse
    covariance of the statistic over the data's length (not inflated); level: nominal coverage;
    settings, wall_time; profile: name -> profile-likelihood interval (:mod:`nmmfit.fit.profile`);
    models: the models the intervals were computed for (None: all B; the other rows are NaN, e.g.
    restarts that were not the best of their group).
    """
    names: list
    estimate: np.ndarray
    se: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    correlation: np.ndarray
    information: np.ndarray
    directions: list
    warnings: list
    statistic: list
    misfit: np.ndarray
    precision: np.ndarray | None = None
    fitted: np.ndarray | None = None
    level: float = 0.9
    settings: dict = field(default_factory=dict)
    wall_time: float = 0.0
    profile: dict = field(default_factory=dict)
    models: list | None = None

    def computed(self, b: int) -> bool:
        return self.models is None or b in self.models

    def expanded(self, models: list, B: int) -> "Uncertainty":
        """This result for the models ``models`` (its rows, in order) as rows of B models, NaN
        (and no directions or warnings) in the others."""
        def rows(a):
            if a is None:
                return None
            full = np.full((B, *np.shape(a)[1:]), np.nan)
            full[models] = a
            return full

        def entries(v):
            full = [[] for _ in range(B)]
            for b, x in zip(models, v):
                full[b] = x
            return full

        arrays = ("estimate", "se", "lower", "upper", "correlation", "information", "misfit", "precision", "fitted")
        return Uncertainty(**{**self.__dict__, **{k: rows(getattr(self, k)) for k in arrays},
                              "directions": entries(self.directions), "warnings": entries(self.warnings),
                              "models": list(models)})

    def covers(self, truth: dict) -> np.ndarray:
        """``[B, P]`` bool: each interval contains ``truth[name]`` (False where an interval is NaN)."""
        t = np.array([float(truth[n]) for n in self.names])
        return (self.lower <= t) & (t <= self.upper)

    def table(self) -> list:
        """Tidy rows ``model, parameter, estimate, se, lower, upper`` (``uncertainty.csv``)."""
        return [dict(model=b, parameter=n, estimate=float(self.estimate[b, i]), se=float(self.se[b, i]),
                     lower=float(self.lower[b, i]), upper=float(self.upper[b, i]))
                for b in range(self.estimate.shape[0]) if self.computed(b) for i, n in enumerate(self.names)]

    def summary(self, b: int = 0) -> str:
        """Model ``b``'s intervals, identified directions and warnings, one per line."""
        if not self.computed(b):
            return f"  no intervals for model {b}: computed for models {self.models} (the best of each group of restarts)"
        pct = int(round(100 * self.level))
        fitted = self.estimate if self.fitted is None else self.fitted
        lines = [f"  {n}: {self.estimate[b, i]:.4g} (fit {fitted[b, i]:.4g})  {pct}% [{self.lower[b, i]:.4g}, "
                 f"{self.upper[b, i]:.4g}]  se {self.se[b, i]:.3g}" for i, n in enumerate(self.names)]
        lines += [f"  {d['label']}: " + (f"determined to +-{100 * d['half_width']:.3g}%" if np.isfinite(d["half_width"])
                                         else "not determined") for d in self.directions[b]]
        lines += [f"  statistic misfit D/K = {self.misfit[b]:.3g}"]
        return "\n".join(lines + [f"  warning: {w}" for w in self.warnings[b]])

    def to_dict(self) -> dict:
        return dict(names=self.names, estimate=self.estimate, se=self.se, lower=self.lower, upper=self.upper,
                    correlation=self.correlation, information=self.information, directions=self.directions,
                    warnings=self.warnings, statistic=self.statistic, misfit=self.misfit, precision=self.precision,
                    fitted=self.fitted,
                    level=self.level,
                    settings=self.settings, wall_time=self.wall_time, profile=self.profile,
                    **({} if self.models is None else {"models": self.models}))

    @classmethod
    def from_dict(cls, d: dict) -> "Uncertainty":
        arrays = ("estimate", "se", "lower", "upper", "correlation", "information", "misfit", "precision", "fitted")
        return cls(**{k: (np.asarray(v, dtype=float) if k in arrays else v) for k, v in d.items()})


# ---------------------------------------------------------------------------- the algebra (pure)
def hartlap_precision(samples: torch.Tensor) -> torch.Tensor:
    """An unbiased estimate of the inverse covariance from ``samples # [..., R, K]`` independent
    draws: the inverse sample covariance times ``(R - K - 2) / (R - 1)`` (Hartlap et al. 2007).
    ``[..., K, K]``; needs ``R > K + 2``."""
    R, K = samples.shape[-2:]
    if R <= K + 2:
        raise ValueError(f"replicates: expected more than K + 2 = {K + 2} (K statistics), got {R}")
    d = samples - samples.mean(-2, keepdim=True)
    cov = d.transpose(-1, -2) @ d / (R - 1)
    return torch.linalg.pinv(cov, hermitian=True) * ((R - K - 2) / (R - 1))


def fisher_information(jac: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """``J^T A J`` from ``jac # [..., R, K, P]`` (R independent estimates of ``J``) and ``precision
    # [..., K, K]``, with the noise of the mean Jacobian subtracted: ``E[Jbar^T A Jbar] = J^T A J +
    E[(J_r - J)^T A (J_r - J)] / R``. ``[..., P, P]``, symmetric (may have negative eigenvalues
    where the data carry no information: treat as zero)."""
    R = jac.shape[-3]
    mean = jac.mean(-3)
    info = mean.transpose(-1, -2) @ precision @ mean
    if R > 1:
        d = jac - mean.unsqueeze(-3)
        noise = (d.transpose(-1, -2) @ precision.unsqueeze(-3) @ d).sum(-3) / (R - 1)
        info = info - noise / R
    return 0.5 * (info + info.transpose(-1, -2))


def spectral_covariance(info: np.ndarray, rtol: float = 1e-9) -> tuple:
    """The covariance ``info^-1`` ``[P, P]`` (``info # [P, P]``, well scaled) and which eigen-directions
    are undetermined: eigenvalues not above ``rtol`` times the largest, or any non-finite entry.
    Variances of parameters that load on an undetermined direction (a coefficient above 0.05 of
    the unit direction) are inf (their covariances NaN); the rest come from the pseudo-inverse. Returns ``(cov, eigvals [P], eigvecs [P, P], null [P] bool)``."""
    P = info.shape[0]
    if not np.all(np.isfinite(info)):
        nan = np.full((P, P), np.nan)
        return nan, np.full(P, np.nan), nan.copy(), np.ones(P, dtype=bool)
    lam, vec = np.linalg.eigh(info)
    null = ~(lam > rtol * max(lam.max(), 0.0)) | (lam <= 0)
    keep = ~null
    cov = (vec[:, keep] / lam[keep]) @ vec[:, keep].T
    # loadings below 0.05 on an undetermined direction are the noise of its estimate, not a link
    loads = (vec[:, null] ** 2).sum(1) > 0.05 ** 2                  # [P]
    cov[loads, :] = np.nan
    cov[:, loads] = np.nan
    cov[loads, loads] = np.inf
    return cov, lam, vec, null


def direction_label(names, coefficients, *, min_share: float = 0.1) -> str:
    """``"g_EE - 0.9 g_IE"``: a direction ``coefficients # [P]`` named by its dominant parameters
    (those within ``min_share`` of the largest), scaled so that the largest is 1."""
    c = np.asarray(coefficients, dtype=float)
    c = c / c[np.argmax(np.abs(c))]
    terms = [(n, x) for n, x in zip(names, c) if abs(x) >= min_share]
    text = ""
    for n, x in terms:
        sign = "-" if x < 0 else "+"
        mag = "" if abs(abs(x) - 1) < 5e-3 else f"{abs(x):.2g} "
        text += (f" {sign} " if text else ("-" if x < 0 else "")) + f"{mag}{n}"
    return text


def identifiability(names, info_rel: np.ndarray, z: float) -> list:
    """The eigen-directions of the information in relative units ``info_rel # [P, P]`` (about
    ``d theta / theta``), best determined first: ``{"label", "coefficients", "half_width"}``, the
    half-width of the ``z``-interval as a fraction (inf when undetermined)."""
    _, lam, vec, null = spectral_covariance(info_rel)
    if not np.all(np.isfinite(lam)):
        return [dict(label="all parameters", coefficients=[1.0] * len(names), half_width=float("nan"))]
    order = np.argsort(-lam)
    return [dict(label=direction_label(names, vec[:, k]), coefficients=vec[:, k].tolist(),
                 half_width=float("inf") if null[k] else float(z / math.sqrt(lam[k]))) for k in order]


# ---------------------------------------------------------------------------- simulation
class _ModelRows:
    """Models ``idx`` of a batched model, as the code below reads a model: its coupling, values and
    batch size are those rows; everything else (scheme, transforms, settings) is the model's. A
    simulation's numbers do not depend on the batch it runs in, so each row's intervals are those a
    computation for all B models gives."""

    def __init__(self, model, idx: list):
        self._model, self._idx, self.B = model, torch.as_tensor(idx), len(idx)

    def __getattr__(self, name):
        return getattr(self._model, name)

    def coupling(self) -> torch.Tensor:
        W = self._model.coupling()
        return W[self._idx] if W.dim() == 3 else W

    def value(self, name: str) -> torch.Tensor:
        return self._model.value(name)[self._idx]

    def values(self) -> dict:
        return {n: v[self._idx] for n, v in self._model.values().items()}


def _replicates(est, points: dict, streams: torch.Tensor, frames: int, burn_in: int, seed: int) -> torch.Tensor:
    """BOLD ``[B, M, frames, N]``: model b of ``est`` (its coupling and values) re-simulated M times,
    with ``points`` (name -> natural values ``[B, M]``) replacing its values and replicate m drawing
    its state noise, output noise and initial state from ``streams[m]`` (common random numbers
    across models and points with the same stream). Identity transforms: any value is allowed,
    a difference step may cross a transform's floor."""
    from ..model import RWW

    B, M = est.B, streams.shape[0]
    with torch.no_grad():
        W = est.coupling().expand(B, est.N, est.N)
        values = {n: v.detach() for n, v in est.values().items()}
    init = {n: v.double().repeat_interleave(M, 0) for n, v in values.items()}
    init.update({n: v.double().reshape(B * M) for n, v in points.items()})
    rep = RWW(W.repeat_interleave(M, 0), scheme=est.scheme.replace(transforms={}), fit=(), regional=est.regional,
              init=init, fit_gains=False, sc_preprocess="none", output_noise=est.output_noise, rng_by_stream=True,
              seed=seed, stream=streams.repeat(B), backend=est.backend, dtype=est.dtype_)
    with torch.no_grad():
        bold = rep(burn_in + frames, rep.initial_state(seed=seed), 0).bold[:, burn_in:]
    if not all_finite(bold):
        warnings.warn("uncertainty: some replicate simulations gave non-finite BOLD; the affected intervals are NaN",
                      UncertaintyWarning, stacklevel=3)
    return bold.reshape(B, M, frames, est.N)


def _transform_slopes(est, names, value: torch.Tensor) -> tuple:
    """The unconstrained values of ``value # [B, P]`` (natural units) and ``d value / d raw`` ``[B, P]``
    (0 at a transform's floor)."""
    raw = torch.stack([est.scheme.transform(n).inverse(n, value[:, i]) for i, n in enumerate(names)], -1)
    raw = raw.double().requires_grad_(True)
    nat = torch.stack([est.transform(n, raw[:, i]) for i, n in enumerate(names)], -1)
    slope, = torch.autograd.grad(nat.sum(), raw)
    return raw.detach(), slope.masked_fill(_at_floor(est, names, value), 0.0)


def _at_floor(est, names, value: torch.Tensor) -> torch.Tensor:
    """``[B, P]`` bool: the value sits at its transform's floor (within float32 rounding)."""
    floor = torch.tensor([float(est.transform(n, torch.tensor(float("-inf"), dtype=torch.float64))) for n in names])
    return value <= floor + 1e-6 * floor.abs()


def _natural_interval(est, names, raw: torch.Tensor, half: torch.Tensor) -> tuple:
    """``T(raw -+ half)`` per parameter, ``[B, P]`` each (inf half-widths map to the transform's limits)."""
    lo = torch.stack([est.transform(n, raw[:, i] - half[:, i]) for i, n in enumerate(names)], -1)
    hi = torch.stack([est.transform(n, raw[:, i] + half[:, i]) for i, n in enumerate(names)], -1)
    nan = torch.isnan(half)
    return lo.masked_fill(nan, float("nan")).numpy(), hi.masked_fill(nan, float("nan")).numpy()


def _jacobian(est, names, value: torch.Tensor, stat, *, replicates: int, rel_step: float, frames: int,
              burn_in: int, seed: int, first_stream: int) -> torch.Tensor:
    """Central differences of the statistic in natural units with common random numbers:
    ``[B, R, K, P]``, one estimate per seed. ``value # [B, P]`` the estimate."""
    B, P = value.shape
    h = rel_step * value.abs().clamp_min(1e-12)                              # [B, P]
    points = {n: value[:, i, None].repeat(1, 2 * P * replicates) for i, n in enumerate(names)}
    for i, n in enumerate(names):
        for side, sign in enumerate((1.0, -1.0)):
            cols = slice((2 * i + side) * replicates, (2 * i + side + 1) * replicates)
            points[n][:, cols] += sign * h[:, i, None]
    streams = torch.arange(first_stream, first_stream + replicates).repeat(2 * P)
    s = stat(_replicates(est, points, streams, frames, burn_in, seed))           # [B, 2PR, K]
    s = s.reshape(B, P, 2, replicates, -1)
    return ((s[:, :, 0] - s[:, :, 1]) / (2 * h[:, :, None, None])).permute(0, 2, 3, 1)   # [B, R, K, P]


def _settings(names, replicates, jacobian_replicates, rel_step, frames, sim_frames, burn_in, level, seed) -> dict:
    return dict(names=list(names), replicates=check_int("replicates", replicates, 3),
                jacobian_replicates=check_int("jacobian_replicates", jacobian_replicates, 1),
                rel_step=check_float("rel_step", rel_step, 0, 0.5, open_min=True), frames=frames,
                sim_frames=None if sim_frames is None else check_int("sim_frames", sim_frames, 1),
                burn_in=check_int("burn_in", burn_in, 0), level=check_float("level", level, 0, 1, open_min=True,
                                                                             open_max=True), seed=int(seed))


def laplace_uncertainty(est, data: torch.Tensor, *, names=None, model_units: bool = False, replicates: int = 40,
                        jacobian_replicates: int = 4, rel_step: float = 0.02, sim_frames: int | None = None,
                        burn_in: int = 40, level: float = 0.9, seed: int = 0, fc_modes: int = 3,
                        region_modes: int = 1, models=None) -> Uncertainty:
    """Intervals for ``est``'s global parameters ``names`` (default: its fitted global ones) from the
    data ``data # [B, T, N]`` it was fitted to (as the fit saw it: scaled), by the synthetic-likelihood
    Fisher information (module docstring).

    ``replicates`` seeds estimate the statistic's covariance, ``jacobian_replicates`` seeds its
    derivatives (steps of ``rel_step`` times each value); ``sim_frames``: the length of the
    simulation the estimate was fitted against (None: a fit to the data's own statistics, no
    inflation); ``model_units``: the data are in the model's units (level and amplitude count);
    ``burn_in`` frames are simulated and dropped before each replicate; ``fc_modes``,
    ``region_modes``: the statistic's size (:meth:`BoldStatistic.for_coupling`); ``models``: indices
    of the B models to compute for (None: all), e.g. the best of each group of restarts; the others'
    rows are NaN."""
    t0 = time.perf_counter()
    names = [n for n in (est.fitted if names is None else check_names("names", names, est.fitted, "fitted names"))
             if n not in est.regional]
    if not names:
        raise ValueError("uncertainty: the model has no fitted global parameters")
    data = check_tensor("data", data, dims=(3,)).detach().double().cpu()                # [B, T, N]
    B, T, N = data.shape
    if B != est.B or N != est.N:
        raise ValueError(f"data: expected shape [B={est.B}, T, N={est.N}] (the model's), got {list(data.shape)}")
    B_all, labels = B, list(range(B))
    if models is not None:
        labels = [check_int("models", b, 0, B - 1) for b in models]
        if not labels or len(set(labels)) != len(labels):
            raise ValueError(f"models: expected distinct indices of the B={B} models, got {models!r}")
        est, data, B = _ModelRows(est, labels), data[labels], len(labels)
    cfg = dict(_settings(names, replicates, jacobian_replicates, rel_step, T, sim_frames, burn_in, level, seed),
               model_units=bool(model_units), fc_modes=fc_modes, region_modes=region_modes)
    with torch.no_grad():
        coupling = est.coupling().expand(B, N, N)
    stat = BoldStatistic.for_coupling(coupling, model_units=model_units, fc_modes=fc_modes, region_modes=region_modes)
    with torch.no_grad():
        value = torch.stack([est.value(n).detach().double().cpu() for n in names], -1)       # [B, P]
    seed_ = derive_seed("uncertainty", seed) % 2**62
    draws = stat(_replicates(est, {}, torch.arange(cfg["replicates"]), T, cfg["burn_in"], seed_).cpu())  # [B, R, K]
    precision = hartlap_precision(draws)                                                   # [B, K, K]
    inflated = precision / (1 + T / sim_frames) if sim_frames is not None else precision
    jac = _jacobian(est, names, value, stat, replicates=cfg["jacobian_replicates"], rel_step=cfg["rel_step"],
                    frames=T, burn_in=cfg["burn_in"], seed=seed_, first_stream=cfg["replicates"]).cpu()
    info = fisher_information(jac, inflated).numpy()                                         # [B, P, P]
    gap = stat(data[:, None])[:, 0] - draws.mean(1)                                       # [B, K]
    misfit = (gap[:, None] @ precision @ gap[:, :, None]).reshape(B) / (1 + 1 / cfg["replicates"]) / gap.shape[-1]
    score = (jac.mean(1).transpose(-1, -2) @ inflated @ gap[:, :, None])[..., 0].numpy()   # [B, P]
    local = (misfit.numpy() <= MISFIT_LIMIT)[:, None]                                      # [B, 1]
    center = torch.where(torch.as_tensor(local), _one_step(est, names, value, info, score), value)
    out = _assemble(est, names, center, info, normal_quantile(level), labels)
    for b in np.flatnonzero(~local[:, 0]):
        note = (f"the model does not reproduce the data's statistics (misfit D/K {float(misfit[b]):.3g} > "
                f"{MISFIT_LIMIT:g}): intervals are centred on the fitted values and hold only if the model is right")
        out["warnings"][b].append(note)
        warnings.warn(f"uncertainty (model {labels[b]}): {note}", UncertaintyWarning, stacklevel=2)
    unc = Uncertainty(names=names, statistic=stat.names, misfit=misfit.numpy(), precision=precision.numpy(),
                      fitted=value.numpy(), level=cfg["level"], settings=cfg, wall_time=time.perf_counter() - t0, **out)
    return unc if models is None else unc.expanded(labels, B_all)


def scoring_step(info: np.ndarray, score: np.ndarray, scale: np.ndarray, *, max_half_width: float = 0.5,
                 z: float = 1.6448536269514722) -> np.ndarray:
    """One Fisher-scoring step ``info^-1 score`` ``[P]`` (``info # [P, P]``, ``score # [P]``) taken
    only along the information's eigen-directions in relative units (``scale # [P]``, the values)
    that the data determine to within ``max_half_width`` (a ``z`` half-width as a fraction): along
    the others the data say too little for a step to mean anything. NaN information: no step."""
    rel = info * scale[:, None] * scale[None, :]
    if not (np.all(np.isfinite(rel)) and np.all(np.isfinite(score))):
        return np.zeros_like(score)
    lam, vec = np.linalg.eigh(rel)
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = (lam > 0) & (z / np.sqrt(np.where(lam > 0, lam, 1.0)) <= max_half_width)
    step_rel = (vec[:, keep] / lam[keep]) @ (vec[:, keep].T @ (score * scale))
    return step_rel * scale


def _one_step(est, names, value: torch.Tensor, info: np.ndarray, score: np.ndarray) -> torch.Tensor:
    """The centre of the intervals ``[B, P]``: the fitted values moved by one Fisher-scoring step on
    the synthetic likelihood (Le Cam's one-step estimator: as efficient as its maximum from a
    consistent start; the fit's own objective may weigh the data less efficiently, and intervals
    of the synthetic likelihood's information around its estimate would then under-cover). A
    parameter fitted at its floor stays there (the fit could not move it: flagged, unbounded), and
    a step that would cross a parameter's floor is not taken for that parameter."""
    scale = value.abs().clamp_min(1e-12).numpy()
    step = torch.as_tensor(np.stack([scoring_step(info[b], score[b], scale[b]) for b in range(value.shape[0])]))
    moved = value + step
    return torch.where(_at_floor(est, names, moved) | _at_floor(est, names, value), value, moved)


def _assemble(est, names, value: torch.Tensor, info: np.ndarray, z: float, labels: list | None = None) -> dict:
    """Standard errors, intervals, correlations, directions and warnings from the natural-unit
    information ``info # [B, P, P]`` at ``value # [B, P]`` (row b is model ``labels[b]``, default b)."""
    B, P = value.shape
    labels = list(range(B)) if labels is None else labels
    raw, slope = _transform_slopes(est, names, value)
    scale = value.abs().clamp_min(1e-12).numpy()                                      # relative units
    se, corr, dirs, notes = np.empty((B, P)), np.empty((B, P, P)), [], []
    for b in range(B):
        rel = info[b] * scale[b][:, None] * scale[b][None, :]
        cov_rel, _, _, _ = spectral_covariance(rel)
        sd = np.sqrt(np.diag(cov_rel))
        se[b] = sd * scale[b]
        with np.errstate(invalid="ignore", divide="ignore"):
            corr[b] = cov_rel / np.outer(sd, sd)
        dirs.append(identifiability(names, rel, z))
        notes.append(_notes(names, se[b], slope[b].numpy(), dirs[-1]))
    at_floor = slope.numpy() == 0
    se_raw = torch.as_tensor(np.where(at_floor, np.inf, se / np.where(at_floor, 1.0, slope.numpy())))
    lower, upper = _natural_interval(est, names, raw, z * se_raw)
    for b, w in enumerate(notes):
        for text in w:
            warnings.warn(f"uncertainty (model {labels[b]}): {text}", UncertaintyWarning, stacklevel=3)
    return dict(estimate=value.numpy(), se=se, lower=lower, upper=upper, correlation=corr, information=info,
                directions=dirs, warnings=notes)


def _notes(names, se: np.ndarray, slope: np.ndarray, directions: list) -> list:
    """What one model's data leave undetermined, in words."""
    notes = [f"{n} is at the floor of its transform: the fit cannot move it, its interval is unbounded"
             for n, s in zip(names, slope) if s == 0]
    if not np.all(np.isfinite(se) | np.isinf(se)):
        notes.append("the information matrix is not finite (a NaN statistic or derivative): intervals are NaN")
    notes += [f"the data do not determine {d['label']}: its interval is unbounded" for d in directions
              if d["half_width"] == float("inf")]
    notes += [f"{d['label']} is determined only to +-{100 * d['half_width']:.0f}%" for d in directions
              if 1 < d["half_width"] < float("inf")]
    return notes


def check_settings(settings, B: int):
    """The ``uncertainty=`` argument of :func:`nmmfit.fit`, checked before the fit starts (a
    mistake found after training would cost the fit): False/None, True or a dict of
    :func:`laplace_uncertainty` keywords and ``best_of`` (dividing the B models)."""
    if settings is None or settings is False or settings is True:
        return settings
    if not isinstance(settings, dict):
        raise TypeError(f"uncertainty: expected True, False or a dict of laplace_uncertainty settings, got {settings!r}")
    best_of = check_int("uncertainty best_of", settings.get("best_of", 1), 1)
    if B % best_of:
        raise ValueError(f"uncertainty: best_of={best_of} must divide the B={B} models (groups of restarts)")
    return settings


def fitted_uncertainty(est, data: torch.Tensor, cfg, settings, result=None) -> Uncertainty | None:
    """The ``uncertainty=`` hook of :func:`nmmfit.fit`: ``settings`` (:func:`check_settings`)
    False/None (none), True (defaults) or a dict of :func:`laplace_uncertainty` keywords, and
    ``best_of``: R > 1 for B models that are groups of R restarts (consecutive), to compute for the
    best of each group only (``result.best``'s choice, on the training fit), not for the fits that
    are discarded. The fit's configuration ``cfg``
    says whether the data are in model units and how long the simulation it was fitted against was
    (full mode: ``sim_frames - discard_frames``; windowed: the data's length). SC gains and
    regional parameters are held at their fitted values: the intervals are conditional on them."""
    settings = check_settings(settings, est.B)
    if settings is None or settings is False:
        return None
    if all(n in est.regional for n in est.fitted):
        warnings.warn("uncertainty: every fitted parameter is regional; intervals cover global parameters only",
                      UncertaintyWarning, stacklevel=3)
        return None
    kw = dict(model_units=cfg.scale == "none", seed=cfg.seed,
              sim_frames=(cfg.sim_frames or data.shape[1]) - cfg.discard_frames if cfg.mode == "full" else data.shape[1])
    kw.update(settings if isinstance(settings, dict) else {})
    best_of = kw.pop("best_of", 1)
    if best_of > 1:
        if result is None:
            raise ValueError(f"uncertainty: best_of={best_of} chooses restarts by the fit's result; pass result=")
        kw["models"] = [result.best(slice(g, g + best_of)) for g in range(0, est.B, best_of)]
    return laplace_uncertainty(est, data, **kw)


__all__ = ["fitted_uncertainty", "scoring_step", "Uncertainty", "UncertaintyWarning", "BoldStatistic", "laplace_uncertainty", "hartlap_precision",
           "fisher_information", "spectral_covariance", "identifiability", "direction_label", "normal_quantile"]
