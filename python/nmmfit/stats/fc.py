"""Functional connectivity: Pearson FC matrices, their lower triangles and correlations."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch


def fc_matrix(bold: torch.Tensor) -> torch.Tensor:
    """Pearson FC of ``bold # [..., T, N]`` -> ``[..., N, N]`` (differentiable)."""
    x = bold - bold.mean(dim=-2, keepdim=True)
    cov = x.transpose(-1, -2) @ x
    # + 1e-20: a constant series gives FC 0 with finite gradients instead of 0/0
    d = torch.sqrt(torch.diagonal(cov, dim1=-2, dim2=-1) + 1e-20)
    return cov / (d[..., :, None] * d[..., None, :])


def lower_tri(m: torch.Tensor) -> torch.Tensor:
    """Lower triangle (k = -1) of ``[..., N, N]`` -> ``[..., N(N-1)/2]`` (numpy ``tril_indices`` order)."""
    return m.flatten(-2).index_select(-1, _lower_tri_flat(m.shape[-1], m.device))


@lru_cache(maxsize=None)
def _lower_tri_flat(N: int, device: torch.device) -> torch.Tensor:
    """The flat indices ``i N + j`` of the lower triangle, made once per size and device (a fit takes
    one lower triangle per window; a gather of them is exact, so values and gradients are those of
    two-index indexing)."""
    i, j = np.tril_indices(N, -1)
    return torch.as_tensor(i * N + j, device=device)


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation along the last dim (differentiable)."""
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    return (a * b).sum(-1) / torch.sqrt((a * a).sum(-1) * (b * b).sum(-1) + 1e-30)


def fc_correlation(bold_a: torch.Tensor, bold_b: torch.Tensor) -> torch.Tensor:
    """Correlation of the FC lower triangles of two BOLD sets ``[..., T, N]`` -> ``[...]``."""
    return pearson(lower_tri(fc_matrix(bold_a)), lower_tri(fc_matrix(bold_b)))


def fc_r(sim: torch.Tensor, emp: torch.Tensor) -> np.ndarray:
    """FC correlation per model in float64 as numpy ``[B]``: ``sim # [B, S, N]`` against
    ``emp # [B, T, N]`` (each FC over its own frames)."""
    a = lower_tri(fc_matrix(sim.double()))
    b = lower_tri(fc_matrix(emp.double()))
    return pearson(a, b).detach().cpu().numpy()


__all__ = ["fc_matrix", "lower_tri", "pearson", "fc_correlation", "fc_r"]
