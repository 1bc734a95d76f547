"""Loss terms against fixed targets: a static target FC, and a prior on the SC gains.

The paper's FC term compares each simulated window's FC with the *same window* of the data: a
noisy target (a 20-frame window's FC) whose noise the N x N gains learn. These terms serve fits
that target a statistic of more than one window (the group-average FC; a shrinkage of the
subject's whole-session FC toward it) and keep the gains near a reference coupling.

Imports: stats, losses.base."""
from __future__ import annotations

import torch

from .._validate import check_tensor
from ..stats.fc import fc_matrix, lower_tri, pearson
from .base import LossTerm


class TargetFCLoss(LossTerm):
    """``-log(0.5 + 0.5 r)``, r = Pearson correlation of the lower triangles of the simulated
    window's FC and a fixed ``target # [N, N] | [B, N, N]`` (the paper's FC term, the empirical
    window replaced by a static FC)."""

    def __init__(self, target):
        super().__init__()
        t = check_tensor("target", target, dims=(2, 3), dtype=torch.float64)
        if t.shape[-1] != t.shape[-2]:
            raise ValueError(f"target: expected a square FC [N, N] or [B, N, N], got shape {list(t.shape)}")
        self.register_buffer("target", lower_tri(t).float())          # [M] | [B, M]

    def forward(self, x):
        s = lower_tri(fc_matrix(x.sim))                               # [B, M]
        if s.shape[-1] != self.target.shape[-1]:
            raise ValueError(f"TargetFCLoss: the target has {self.target.shape[-1]} FC entries, the simulation "
                             f"{s.shape[-1]} (a target for another number of regions)")
        r = pearson(s, self.target.to(s.dtype).expand_as(s))
        return -torch.log(0.5 + 0.5 * r)


class GainPenalty(LossTerm):
    """``mean over SC edges of (w - ref)^2`` per model (``[B]``): a Gaussian prior on the SC gains
    ``w # [B, N, N]``, centred on ``ref # [N, N] | [B, N, N]`` (e.g. a group-fitted coupling's
    gains) or on 0 (W = SC under log-gains). The edges are where the model's SC is non-zero."""

    def __init__(self, ref=None):
        super().__init__()
        r = torch.zeros(()) if ref is None else check_tensor("ref", ref, dims=(2, 3), dtype=torch.float64)
        self.register_buffer("ref", r.float())

    def forward(self, x):
        w = x.model.gains
        if w is None:
            raise ValueError("GainPenalty: the model has no SC gains (fit_gains=False)")
        edge = (x.model.sc > 0).to(w.dtype).expand_as(w)
        d = (w - self.ref.to(w.dtype)) * edge
        return (d * d).sum(dim=(-2, -1)) / edge.sum(dim=(-2, -1)).clamp_min(1.0)


__all__ = ["TargetFCLoss", "GainPenalty"]
