"""Structural connectivity as the model uses it: preprocessing, and the coupling from learnable gains
(their form, ``1 + tanh(w)`` as in the paper or ``exp(w)``, is a value a fitting scheme holds).

Imports: torch only."""
from __future__ import annotations

import math
from dataclasses import dataclass

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


@dataclass(frozen=True)
class TanhGains:
    """The paper's gains: edge factor ``1 + tanh(w)`` (each edge between 0 and 2x its SC weight),
    every gain starting at 0.05 as in the paper's code."""
    init: float = 0.05
    name: str = "tanh"

    def factor(self, w: torch.Tensor) -> torch.Tensor:
        return 1.0 + torch.tanh(w)

    def from_factor(self, f: torch.Tensor) -> torch.Tensor:
        return torch.atanh(f.clamp(0.005, 1.995) - 1.0)


@dataclass(frozen=True)
class ExpGains:
    """Log-gains: edge factor ``exp(w)`` (unbounded; w = 0 is W = SC), clipped to ``exp(+-limit)``
    so that no edge can overflow. A penalty on ``w`` is then a log-normal prior on the edge weights
    relative to the SC (or to a reference coupling)."""
    init: float = 0.0
    limit: float = 8.0
    name: str = "exp"

    def factor(self, w: torch.Tensor) -> torch.Tensor:
        return torch.exp(w.clamp(-self.limit, self.limit))

    def from_factor(self, f: torch.Tensor) -> torch.Tensor:
        return torch.log(f.clamp(math.exp(-self.limit), math.exp(self.limit)))


TANH_GAINS, EXP_GAINS = TanhGains(), ExpGains()
GAIN_FORMS = {f.name: f for f in (TANH_GAINS, EXP_GAINS)}


def coupling_from_gains(sc: torch.Tensor, w: torch.Tensor | None, form=TANH_GAINS) -> torch.Tensor:
    """``W = Ws * ||SC||_F / ||Ws||_F`` with ``Ws = sym(form.factor(w) * SC)`` (docs/MODEL.md; the
    paper's form ``1 + tanh(w)`` by default).

    ``sc # [N, N] | [B, N, N]``, ``w # [B, N, N] | None`` (None: no gains, W = SC).
    """
    if w is None:
        return sc
    wg = form.factor(w) * sc
    ws = 0.5 * (wg + wg.transpose(-1, -2))
    ref = torch.linalg.matrix_norm(sc, ord="fro", keepdim=True)
    return ws * (ref / torch.linalg.matrix_norm(ws, ord="fro", keepdim=True))


def gains_from_fc(sc: torch.Tensor, fc: torch.Tensor, form=TANH_GAINS, floor: float = 0.01) -> torch.Tensor:
    """Gains that make the coupling follow a target FC on the SC's support: the edge factor
    proportional to ``max(FC_ij, floor) / SC_ij``, scaled to median 1 over the edges and clipped to
    the form's range (0 off the support). In the near-linear regime the model's FC follows W, so
    this starts a fit at ``W ~ SC-masked FC``.

    ``sc # [N, N] | [B, N, N]`` (as the model stores it), ``fc # [N, N] | [B, N, N]``; returns the
    broadcast shape."""
    sc, fc = torch.broadcast_tensors(torch.as_tensor(sc, dtype=torch.float64),
                                     torch.as_tensor(fc, dtype=torch.float64))
    edge = sc > 0
    ratio = torch.where(edge, fc.clamp_min(floor) / sc.clamp_min(1e-300), torch.ones_like(sc))
    med = torch.stack([r[e].median() for r, e in zip(ratio.reshape(-1, *sc.shape[-2:]),
                                                    edge.reshape(-1, *sc.shape[-2:]))])
    ratio = ratio / med.reshape(*sc.shape[:-2], 1, 1)
    return torch.where(edge, form.from_factor(ratio), torch.zeros_like(sc))


__all__ = ["preprocess_sc", "coupling_from_gains", "gains_from_fc", "TanhGains", "ExpGains", "TANH_GAINS",
           "EXP_GAINS", "GAIN_FORMS"]
