"""Loss terms of physiological fits (docs/MODEL.md, "Functional connectivity dynamics" and
"Firing-rate target"): FCD distributions, the FC mean, the excitatory firing rate, priors on
regional values, the Deco 2014 objective, and cuBNM's default cost as a report.

- :class:`FCDLoss`: the 1-D Wasserstein distance between the simulated and empirical FCD values
  (exact and differentiable almost everywhere; the smooth surrogate of the KS statistic that
  :func:`cubnm_cost` reports). Windows in seconds, converted with the model's TR (cuBNM's
  convention, :func:`nmmfit.stats.fcd.window_frames`).
- :class:`FCMeanLoss`: ``|mean FC_sim - mean FC_emp|`` over the lower triangles (cuBNM's fc_diff).
- :class:`FiringRateLoss`: the mean excitatory rate per node against a target (3 Hz) from the
  recorded E and I (``needs_states``: for runs short enough to record every step).
- :class:`RegionalPrior`: keeps a regional parameter near its global value, or smooth over the
  connectome (a free-regional fit's optional prior).

Imports: stats (fc, fcd), reference and params.fic (late, inside the rate term: params imports
losses), base.
"""
from __future__ import annotations

from typing import Mapping

import torch

from .._validate import check_choice, check_float
from ..stats.fc import fc_matrix, lower_tri, pearson
from ..stats.fcd import fcd_values, ks_distance, wasserstein1, window_frames
from .base import LossTerm, Objective, with_weights
from .paper import FCCorrelationLoss

__all__ = ["FCDLoss", "FCMeanLoss", "FiringRateLoss", "RegionalPrior", "deco2014_objective", "cubnm_cost",
           "rate_E", "mean_rate_E", "cubnm_rate_penalty"]


def _frames(model, window_s: float, step_s: float) -> tuple[int, int]:
    tr_s = model.preset.tr * model.preset.time_unit
    return window_frames(tr_s, window_s, step_s)


class FCDLoss(LossTerm):
    """``W1(FCD values of sim, FCD values of emp)`` per model, ``[B]``; windows of ``window_s``
    seconds every ``step_s`` seconds (cuBNM: 30 s and 5 s). A run shorter than two windows is an
    error naming the window and the run's length."""

    def __init__(self, window_s: float = 30.0, step_s: float = 5.0):
        super().__init__()
        self.window_s = check_float("window_s", window_s, 0.0, open_min=True)
        self.step_s = check_float("step_s", step_s, 0.0, open_min=True)

    def forward(self, x):
        w, s = _frames(x.model, self.window_s, self.step_s)
        return wasserstein1(fcd_values(x.sim, w, s), fcd_values(x.emp, w, s).detach())


class FCMeanLoss(LossTerm):
    """``|mean_ij FC_sim - mean_ij FC_emp|`` over the lower triangles, ``[B]`` (cuBNM's fc_diff)."""

    def forward(self, x):
        return (lower_tri(fc_matrix(x.sim)).mean(-1) - lower_tri(fc_matrix(x.emp)).mean(-1)).abs()


def rate_E(model, E: torch.Tensor, I: torch.Tensor) -> torch.Tensor:
    """Excitatory rate per recorded sample and node (Hz), ``[B, R, N]``, from ``E, I # [B, R, N]``
    recorded by ``model`` (r_E = H_E(J_E) of docs/MODEL.md, at the model's current values, g_IE
    after FIC)."""
    from ..params.fic import excitatory_current
    from ..reference import CONSTANTS, rate_ref

    v = {k: (t if t.dim() == 2 else t[:, None].expand(-1, model.N)).to(E.dtype) for k, t in model.values().items()}
    J_E = excitatory_current(E, I, v["g"], v["g_EE"], v["g_IE"], v["I_0"], model.coupling().to(E.dtype),
                             model.preset.coupling)
    return rate_ref(J_E, CONSTANTS["a_E"], CONSTANTS["b_E"], CONSTANTS["d_E"], model.preset.rate)


def mean_rate_E(model, E: torch.Tensor, I: torch.Tensor) -> torch.Tensor:
    """Mean excitatory rate per node (Hz), ``[B, N]``: :func:`rate_E` averaged over the samples."""
    return rate_E(model, E, I).mean(-2)


def cubnm_rate_penalty(rate: torch.Tensor, target: float = 3.0, tolerance: float = 1.0) -> torch.Tensor:
    """cuBNM's FIC penalty ``(0.5 / N) sum_{i: |r_i - target| > tol} (1 - exp(-0.05 (|r_i - target| - tol)))``
    of ``rate # [B, N]`` -> ``[B]``."""
    excess = ((rate - target).abs() - tolerance).clamp_min(0.0)
    return 0.5 * (1.0 - torch.exp(-0.05 * excess)).mean(-1)


_RATE_FORMS = {
    "cubnm": cubnm_rate_penalty,
    "squared": lambda rate, target, tolerance: (((rate - target).abs() - tolerance).clamp_min(0.0) ** 2).mean(-1),
}


class FiringRateLoss(LossTerm):
    """Penalty on the mean excitatory rate per node away from ``target`` Hz by more than
    ``tolerance``: ``form="cubnm"`` (:func:`cubnm_rate_penalty`) or ``"squared"`` (mean squared
    excess, Hz^2). Needs E and I recorded every step."""
    needs_states = True

    def __init__(self, target: float = 3.0, tolerance: float = 1.0, form: str = "squared"):
        super().__init__()
        self.target = check_float("target", target, 0.0)
        self.tolerance = check_float("tolerance", tolerance, 0.0)
        self.form = check_choice("form", form, tuple(_RATE_FORMS))

    def forward(self, x):
        if x.E is None or x.E.shape[1] == 0:
            raise ValueError("FiringRateLoss: needs E and I recorded every step (record_every=1)")
        return _RATE_FORMS[self.form](mean_rate_E(x.model, x.E, x.I), self.target, self.tolerance)


class RegionalPrior(LossTerm):
    """A prior on a regional parameter ``name`` (``[B, N]`` values), relative to its mean:
    ``kind="global"``: ``mean_i ((p_i - pbar) / pbar)^2`` (near the global value);
    ``kind="smooth"``: ``sum_ij W_ij ((p_i - p_j) / pbar)^2 / sum_ij W_ij`` (smooth over the connectome W)."""

    def __init__(self, name: str, kind: str = "global"):
        super().__init__()
        self.name, self.kind = name, check_choice("kind", kind, ("global", "smooth"))

    def forward(self, x):
        p = x.model.value(self.name)
        if p.dim() != 2:
            raise ValueError(f"RegionalPrior: parameter {self.name!r} is global; a regional prior needs it in "
                             f"regional= (free per region) or with heterogeneity")
        pbar = p.mean(-1, keepdim=True)
        rel = (p - pbar) / pbar
        if self.kind == "global":
            return (rel * rel).mean(-1)
        W = x.model.coupling().expand(p.shape[0], -1, -1)
        d = rel[:, :, None] - rel[:, None, :]
        return (W * d * d).sum((-1, -2)) / W.sum((-1, -2))


def deco2014_objective(model, weights: Mapping | None = None, *, window_s: float = 30.0,
                       step_s: float = 5.0, prior: str = "global") -> Objective:
    """FC correlation (``-log(0.5 + 0.5 r)``, weight 1) + FCD (W1, weight 1): cuBNM's default cost
    with its KS replaced by a smooth surrogate (the settings of bench/RESULTS.md's held-out fits).
    Off by default (weight 0), on by ``weights``: ``fc_mean`` (``|mean difference|``, cuBNM's
    fc_diff), ``rate`` (:class:`FiringRateLoss`, records every step: short runs) and ``prior_<name>``
    (:class:`RegionalPrior` of kind ``prior``) for each of ``model.regional``. ``weights`` overrides
    by name; unknown names are an error."""
    terms = {"fc": (FCCorrelationLoss(), 1.0), "fcd": (FCDLoss(window_s, step_s), 1.0),
             "fc_mean": (FCMeanLoss(), 0.0), "rate": (FiringRateLoss(), 0.0),
             **{f"prior_{n}": (RegionalPrior(n, prior), 0.0) for n in getattr(model, "regional", ())}}
    return Objective(with_weights(terms, weights))


@torch.no_grad()
def cubnm_cost(sim: torch.Tensor, emp: torch.Tensor, tr_s: float, *, rate: torch.Tensor | None = None,
               window_s: float = 30.0, step_s: float = 5.0) -> dict:
    """cuBNM's default cost ``-(fc_corr - fcd_ks) + fic_penalty`` (for reports, not gradients).

    ``sim # [B, S, N]``, ``emp # [B, T, N]`` (or ``[T, N]``), ``tr_s`` the sample period (s),
    ``rate # [B, N]`` the mean excitatory rate (fic_penalty 0 when None). Returns name -> float64 ``[B]``:
    ``fc_corr``, ``fc_diff``, ``fcd_ks``, ``fic_penalty``, ``cost``."""
    w, s = window_frames(tr_s, window_s, step_s)
    sim, emp = sim.double(), emp.double().expand(sim.shape[0], -1, -1)
    fs, fe = lower_tri(fc_matrix(sim)), lower_tri(fc_matrix(emp))
    out = dict(fc_corr=pearson(fs, fe), fc_diff=(fs.mean(-1) - fe.mean(-1)).abs(),
               fcd_ks=ks_distance(fcd_values(sim, w, s), fcd_values(emp, w, s)))
    out["fic_penalty"] = torch.zeros_like(out["fc_corr"]) if rate is None else cubnm_rate_penalty(rate.double())
    out["cost"] = -(out["fc_corr"] - out["fcd_ks"]) + out["fic_penalty"]
    return {k: v.cpu() for k, v in out.items()}
