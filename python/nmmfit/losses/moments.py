"""Simulated-moments terms: BOLD summary statistics normalised by their sampling variance."""
from __future__ import annotations

from typing import Mapping

import torch

from ..stats.fc import fc_matrix, lower_tri
from .base import LossTerm, Objective, with_weights


def _block_variance(stat, emp: torch.Tensor, blocks: int) -> torch.Tensor:
    """Sampling variance of ``stat(emp)`` (``[B, M]``) over the whole run, estimated from the
    run itself: the variance of the statistic over ``blocks`` equal consecutive blocks, divided by
    ``blocks`` (variance ~ 1/length), pooled (averaged) over the M elements. ``[B]``, no gradient."""
    with torch.no_grad():
        B, T, N = emp.shape
        L = T // blocks
        if L < 3:
            raise ValueError(f"normalize='blocks': {T} frames are too few for {blocks} blocks")
        parts = emp[:, :blocks * L].reshape(B, blocks, L, N)
        s = stat(parts)                                     # [B, blocks, M]
        v = s.var(dim=1).mean(-1) / blocks
        return v.clamp_min(1e-30)


class _MomentLoss(LossTerm):
    """Squared difference of a per-region (or per-pair) statistic of the simulated and the
    empirical BOLD, averaged over its elements; ``normalize="blocks"`` divides it by the
    empirical statistic's sampling variance, estimated from the data alone by
    :func:`_block_variance` (so that terms of different units weigh alike: ~1 + T/T_sim at the
    data-generating parameters). For full-session fits; the simulated run may be longer than the
    empirical one (statistics are compared, not time points)."""
    compares_data = True

    def __init__(self, normalize: str | None = None, blocks: int = 4):
        super().__init__()
        if normalize not in (None, "blocks"):
            raise ValueError(f"normalize: expected None or 'blocks', got {normalize!r}")
        self.normalize, self.blocks = normalize, int(blocks)

    def _stat(self, bold, emp_sd):  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x):
        emp_sd = x.emp.std(-2)
        d = self._stat(x.sim, emp_sd) - self._stat(x.emp, emp_sd)
        out = (d * d).mean(-1)
        if self.normalize == "blocks":
            out = out / _block_variance(lambda b: self._stat(b, emp_sd[:, None]), x.emp, self.blocks)
        return out


class BoldMeanLoss(_MomentLoss):
    """``mean_i ((mean_t sim_i - mean_t emp_i) / sd_t emp_i)^2``: the per-region BOLD level
    difference in units of the empirical region's temporal standard deviation (optionally
    normalised, see :class:`_MomentLoss`).

    Carries the level of the BOLD signal, which the FC does not see; meaningful only when the
    empirical BOLD is in the model's units (synthetic data fitted with ``scale="none"``), not for
    real BOLD, whose baseline is arbitrary."""

    def _stat(self, bold, emp_sd):
        return bold.mean(-2) / (emp_sd + 1e-12)


class BoldLogSDLoss(_MomentLoss):
    """``mean_i (log sd_t sim_i - log sd_t emp_i)^2``: the per-region BOLD amplitude (temporal
    standard deviation) on a log scale. Unlike FC it depends on the overall coupling strength;
    needs BOLD in the model's units (``scale="none"``) or at least a scale shared by both."""

    def _stat(self, bold, emp_sd):
        return torch.log(bold.std(-2) + 1e-12)


class BoldACFLoss(_MomentLoss):
    """``mean_i (acf_sim_i(lag) - acf_emp_i(lag))^2``: the per-region autocorrelation of the BOLD
    at ``lag`` samples (default 1). White output noise lowers it while the hemodynamic signal is
    smooth, so it separates the output-noise std from the signal amplitude (which the BOLD
    variance alone confounds with the coupling)."""

    def __init__(self, normalize: str | None = None, blocks: int = 4, lag: int = 1):
        super().__init__(normalize, blocks)
        if lag < 1:
            raise ValueError(f"lag: expected >= 1, got {lag}")
        self.lag = int(lag)

    def _stat(self, bold, emp_sd):
        x = bold - bold.mean(-2, keepdim=True)
        k = self.lag
        return (x[..., k:, :] * x[..., :-k, :]).mean(-2) / ((x * x).mean(-2) + 1e-30)


class FCMSELoss(_MomentLoss):
    """``mean_(i>j) (FC_sim_ij - FC_emp_ij)^2`` over the lower triangles: unlike the correlation
    of the FC patterns it sees the FC's magnitude (optionally normalised, see :class:`_MomentLoss`)."""

    def _stat(self, bold, emp_sd):
        return lower_tri(fc_matrix(bold))


def moments_objective(*, blocks: int = 10, weights: Mapping | None = None) -> Objective:
    """Summary statistics of the BOLD, each normalised by its sampling variance estimated from
    the data (``blocks`` blocks; see :class:`BoldMeanLoss`): the FC matrix (``fc``,
    :class:`FCMSELoss`), the per-region mean (``mean``), log standard deviation (``logsd``) and
    lag-1 autocorrelation (``acf``). A simulated-moments objective for full-session fits of data
    in the model's units (``scale="none"``), e.g. the synthetic recovery experiment: unlike the
    FC correlation it sees the coupling strength (amplitude, FC magnitude), the local excitation
    (BOLD level) and the output noise (autocorrelation). ``weights`` overrides term weights
    (1 each; 0 removes a term)."""
    terms = {"fc": (FCMSELoss("blocks", blocks), 1.0), "mean": (BoldMeanLoss("blocks", blocks), 1.0),
             "logsd": (BoldLogSDLoss("blocks", blocks), 1.0), "acf": (BoldACFLoss("blocks", blocks), 1.0)}
    terms = with_weights(terms, weights)
    terms = {k: v for k, v in terms.items() if v[1] != 0}
    return Objective(terms)
