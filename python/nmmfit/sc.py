"""Structural connectivity as the model uses it: preprocessing, and the coupling from learnable gains.

Imports: torch only."""
from __future__ import annotations

import torch


def preprocess_sc(sc, *, method: str = "log1p_fro") -> torch.Tensor:
    """Structural connectivity as the model uses it.

    ``method``:
      - ``"log1p_fro"`` (docs/MODEL.md, the paper): zero the diagonal, symmetrise, log1p, divide by the
        Frobenius norm (per matrix when batched).
      - ``"max_log1p_fro"``: the same after dividing by the maximum first. For raw streamline
        counts (e.g. hcp_aal2, max ~9e6) log1p alone flattens the SC to nearly uniform weights and
        the model loses its FC structure; weights already in [0, 1] (the paper's Hagmann SC, max
        0.51) are almost unchanged by it.
      - ``"max"``: zero the diagonal, symmetrise, divide by the maximum (deco2014-style).
      - ``"none"``: use as given (must be symmetric with a zero diagonal for the gains to be exact).
    Accepts ``[N, N]`` or ``[B, N, N]`` (numpy or torch); returns a float tensor of the same shape.
    """
    sc = torch.as_tensor(sc)
    if not sc.is_floating_point():
        sc = sc.to(torch.float64)
    if sc.dim() not in (2, 3) or sc.shape[-1] != sc.shape[-2]:
        raise ValueError(f"sc: expected shape [N, N] or [B, N, N], got {list(sc.shape)}")
    if not bool(torch.isfinite(sc).all()):
        raise ValueError("sc: expected finite values, got NaN or Inf")
    if bool((sc < 0).any()):
        raise ValueError("sc: expected non-negative weights (a connectome), got negative entries")
    if method == "none":
        return sc.clone()
    eye = torch.eye(sc.shape[-1], dtype=torch.bool, device=sc.device)
    sc = sc.masked_fill(eye, 0.0)
    sc = 0.5 * (sc + sc.transpose(-1, -2))
    if method in ("log1p_fro", "max_log1p_fro"):
        if method == "max_log1p_fro":
            sc = sc / sc.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-300)
        sc = torch.log1p(sc)
        norm = torch.linalg.matrix_norm(sc, ord="fro", keepdim=True)
    elif method == "max":
        norm = sc.amax(dim=(-2, -1), keepdim=True)
    else:
        raise ValueError(f"sc preprocessing: expected 'log1p_fro', 'max_log1p_fro', 'max' or 'none', got {method!r}")
    if bool((norm == 0).any()):
        raise ValueError("sc: the structural connectivity is all zeros (after removing the diagonal)")
    return sc / norm


def coupling_from_gains(sc: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """``W = Ws * ||SC||_F / ||Ws||_F`` with ``Ws = sym((1 + tanh(w)) * SC)`` (docs/MODEL.md).

    ``sc # [N, N] | [B, N, N]``, ``w # [B, N, N] | None`` (None: no gains, W = SC).
    """
    if w is None:
        return sc
    wg = (1.0 + torch.tanh(w)) * sc
    ws = 0.5 * (wg + wg.transpose(-1, -2))
    ref = torch.linalg.matrix_norm(sc, ord="fro", keepdim=True)
    return ws * (ref / torch.linalg.matrix_norm(ws, ord="fro", keepdim=True))


__all__ = ["preprocess_sc", "coupling_from_gains"]
