"""Baselines for an FC fit: what a trivial model gets, and the ceiling the data allow.

A fitted model's FC correlation means little alone. Beside it stand the structural connectome's
own correlation with the FC (the floor: no dynamics at all), the group-average FC of other people
(no subject-specific fit at all), the same subject's session-to-session (or half-to-half) FC
correlation (the ceiling that noise allows), and the subject-specific part of a model's FC: the
correlation of (model FC - group FC) with (session FC - group FC). Pure functions of matrices."""
from __future__ import annotations

import numpy as np
import torch

from .fc import fc_matrix, lower_tri, pearson


def tri_r(a, b) -> np.ndarray:
    """Pearson correlation of the lower triangles (k=-1) of ``a`` and ``b`` ``[..., N, N]`` -> ``[...]``
    (float64; :func:`nmmfit.stats.fc.pearson` of :func:`~nmmfit.stats.fc.lower_tri`)."""
    a, b = (torch.as_tensor(np.asarray(m, dtype=np.float64)) for m in (a, b))
    a, b = torch.broadcast_tensors(a, b)
    return pearson(lower_tri(a), lower_tri(b)).numpy()


def fc_baselines(target_fc, *, sc=None, group_fc=None, other_fc=None) -> dict:
    """Baselines against ``target_fc # [B, N, N]`` (the FC being predicted): ``sc_fc`` r(SC, FC)
    with ``sc # [N, N] | [B, N, N]``; ``group_fc`` r(group FC, FC); ``ceiling`` r(other session's
    FC, FC) with ``other_fc`` the subject's other session (or half). Each ``[B]``; missing inputs
    give no entry."""
    out = {}
    for name, m in (("sc_fc", sc), ("group_fc", group_fc), ("ceiling", other_fc)):
        if m is not None:
            out[name] = np.atleast_1d(tri_r(m, target_fc))
    return out


def subject_specific_r(model_fc, target_fc, group_fc) -> np.ndarray:
    """r(model FC - group FC, target FC - group FC) ``[B]``: how much of what makes this subject's
    FC differ from the group's the model reproduces (0: nothing beyond the group pattern)."""
    g = np.asarray(group_fc, dtype=np.float64)
    return np.atleast_1d(tri_r(np.asarray(model_fc) - g, np.asarray(target_fc) - g))


def shrinkage_fc(fc, group_fc, a) -> np.ndarray:
    """``a * group_fc + (1 - a) * fc``: a subject's FC shrunk toward the group's. ``fc # [B, N, N]``,
    ``group_fc # [N, N] | [B, N, N]``, ``a`` a float or ``[B]``."""
    a = np.asarray(a, dtype=np.float64)[..., None, None]
    return a * np.asarray(group_fc, dtype=np.float64) + (1 - a) * np.asarray(fc, dtype=np.float64)


def shrinkage_weight(bold, group_fc, grid: int = 21) -> np.ndarray:
    """The shrinkage weight ``a`` (of :func:`shrinkage_fc`) that best predicts new data of the
    subject, chosen on ``bold # [B, T, N]`` alone: the FC of its first half shrunk by each ``a`` on
    a grid of ``grid`` points in [0, 1] is scored against the FC of its second half; ``[B]``. Held-out
    data never enters: the choice uses the fitted data only."""
    bold = torch.as_tensor(np.asarray(bold, dtype=np.float64))
    h = bold.shape[-2] // 2
    if h < 3:
        raise ValueError(f"bold: expected at least 6 frames to choose a shrinkage weight, got {bold.shape[-2]}")
    first, second = (fc_matrix(b).numpy() for b in (bold[..., :h, :], bold[..., h:, :]))
    a = np.linspace(0.0, 1.0, grid)
    r = np.stack([tri_r(shrinkage_fc(first, group_fc, x), second) for x in a])     # [grid, B]
    return a[np.argmax(r, axis=0)]


__all__ = ["tri_r", "fc_baselines", "subject_specific_r", "shrinkage_fc", "shrinkage_weight"]
