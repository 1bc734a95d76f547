"""Baselines for an FC fit: what a trivial model gets, and the ceiling the data allow.

A fitted model's FC correlation means little alone. Beside it stand the structural connectome's
own correlation with the FC (the floor: no dynamics at all), the group-average FC of other people
(no subject-specific fit at all), the same subject's session-to-session (or half-to-half) FC
correlation (the ceiling that noise allows), and the subject-specific part of a model's FC: the
correlation of (model FC - group FC) with (session FC - group FC). Pure functions of matrices."""
from __future__ import annotations

import numpy as np
import torch

from .fc import lower_tri, pearson


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


__all__ = ["tri_r", "fc_baselines", "subject_specific_r"]
