"""A low-dimensional summary statistic of BOLD for synthetic likelihoods: the FC read out on the
coupling's leading eigenvectors and its mean, and per-region statistics (lag-1 autocorrelation;
for BOLD in the model's units also the level and the log amplitude) projected on the uniform
vector and the coupling's leading eigenvectors. About ten numbers instead of thousands, so that their
covariance can be estimated from a few dozen simulated replicates; the FC modes carry the
coupling strength and pattern, the level g_EE's excitation, the autocorrelation the output noise.

Imports: stats.fc, torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._validate import check_int
from .fc import fc_matrix, lower_tri


def _acf1(x: torch.Tensor) -> torch.Tensor:
    x = x - x.mean(-2, keepdim=True)
    return (x[..., 1:, :] * x[..., :-1, :]).mean(-2) / ((x * x).mean(-2) + 1e-30)


REGION_STATISTICS = {
    "acf": _acf1,
    "mean": lambda x: x.mean(-2),
    "logsd": lambda x: torch.log(x.std(-2) + 1e-12),
}
"""Per-region statistics of BOLD ``[..., T, N] -> [..., N]``, by name."""

SCALE_FREE = ("acf",)
"""The per-region statistics that mean something for BOLD in arbitrary units (real data)."""


@dataclass(frozen=True)
class BoldStatistic:
    """The summary statistic ``s(BOLD)``: a fixed linear read-out of the FC and per-region statistics.

    fc_basis     # [B, N, k] the coupling's leading eigenvectors (one set per model)
    region_basis # [B, N, m] the uniform vector and the coupling's leading eigenvectors
    regional     # names in :data:`REGION_STATISTICS`
    """
    fc_basis: torch.Tensor
    region_basis: torch.Tensor
    regional: tuple

    @classmethod
    def for_coupling(cls, coupling: torch.Tensor, *, model_units: bool, fc_modes: int = 3, region_modes: int = 1):
        """The statistic read out on the leading eigenvectors of the models' coupling ``# [B, N, N]``
        (structure the model's FC follows, fixed before any BOLD is seen: a basis taken from the data's
        own FC would select its noise, and the data's statistics would look further from the model's
        than they are); ``model_units``: the BOLD is in the model's units (synthetic data,
        ``scale="none"``), so its level and amplitude are data too."""
        check_int("fc_modes", fc_modes, 1)
        check_int("region_modes", region_modes, 0)
        w = coupling.detach().double().cpu()
        _, vecs = torch.linalg.eigh(0.5 * (w + w.transpose(-1, -2)))
        lead = vecs.flip(-1)                                                 # descending eigenvalues
        B, N = w.shape[0], w.shape[-1]
        uniform = torch.full((B, N, 1), 1 / math.sqrt(N), dtype=torch.float64)
        regional = tuple(REGION_STATISTICS) if model_units else SCALE_FREE
        return cls(lead[..., :fc_modes], torch.cat([uniform, lead[..., :region_modes]], -1), regional)

    @property
    def names(self) -> list:
        k, m = self.fc_basis.shape[-1], self.region_basis.shape[-1]
        regions = ["u0"] + [f"v{i + 1}" for i in range(m - 1)]
        return ([f"fc.v{i + 1}" for i in range(k)] + ["fc.mean"]
                + [f"{n}.{r}" for n in self.regional for r in regions])

    def __call__(self, bold: torch.Tensor) -> torch.Tensor:
        """``bold # [B, R, T, N]`` (R replicates of model b) -> ``s # [B, R, K]`` (float64, differentiable)."""
        x = bold.double()
        fc = fc_matrix(x)                                                    # [B, R, N, N]
        V, U = self.fc_basis.to(x.device), self.region_basis.to(x.device)
        parts = [torch.einsum("brij,bik,bjk->brk", fc, V, V), lower_tri(fc).mean(-1, keepdim=True)]
        parts += [torch.einsum("brn,bnm->brm", REGION_STATISTICS[n](x), U) for n in self.regional]
        return torch.cat(parts, -1)


__all__ = ["BoldStatistic", "REGION_STATISTICS", "SCALE_FREE"]
