"""The synthetic-likelihood discrepancy: a Gaussian log-likelihood of the data's summary statistic."""
from __future__ import annotations

import torch

from ..stats.summary import BoldStatistic
from .base import LossInput, LossTerm


class SyntheticLikelihoodLoss(LossTerm):
    """``D = (s(sim) - s(emp))^T A (s(sim) - s(emp))`` per model ``[B]``: -2 log of a Gaussian
    synthetic likelihood (up to a constant) of the statistic ``s`` (:class:`BoldStatistic`), with
    ``A # [B, K, K]`` the inverse covariance of the difference (that of the statistic over the
    data's length times ``1 + T / T_sim`` for a simulation of ``T_sim`` frames). Differences of D
    are chi-square distributed, so a profile of D gives likelihood intervals
    (:mod:`nmmfit.fit.profile`). For full-session fits (statistics are compared, not time points)."""

    def __init__(self, statistic: BoldStatistic, precision: torch.Tensor):
        super().__init__()
        self.statistic = statistic
        self.register_buffer("precision", torch.as_tensor(precision, dtype=torch.float64))

    def forward(self, x: LossInput) -> torch.Tensor:
        d = self.statistic(x.sim[:, None])[:, 0] - self.statistic(x.emp[:, None])[:, 0]        # [B, K]
        return (d[:, None] @ self.precision.to(d.device) @ d[:, :, None]).reshape(-1)


__all__ = ["SyntheticLikelihoodLoss"]
