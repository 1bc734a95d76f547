r"""Regional heterogeneity of a global parameter as data: ``p_i = p (1 + sum_k a_k map_k,i)``.

A :class:`MapScaling` holds the K maps (``[K, N]``) and their names; the model fits the
coefficients ``a`` (``[B, K]``, one set per model) beside the global value p. Two kinds of
heterogeneity share this one formula (docs/MODEL.md; cuBNM's ``maps`` and ``node_grouping``):

- **brain maps** (:meth:`MapScaling.from_maps`): myelin, FC gradient, gene PC1, ... as loaded by
  :mod:`nmmfit.datasets` (z-scored across regions) or from the user's files;
- **node groups** (:meth:`MapScaling.from_groups`): labels ``0..G-1`` (e.g. Yeo-7) become the
  indicator maps of groups 1..G-1, so group 0 holds ``p`` and group g holds ``p (1 + a_g)``: the
  same family as one free value per group (cuBNM), with no redundant degree of freedom.

Free regional values (one per region) need no scaling: ``RWW(regional=...)``; their optional prior
toward the global value or smoothness over the connectome is a loss term
(:class:`nmmfit.losses.RegionalPrior`). A scale ``1 + a . map_i`` that reaches zero or below would
flip the parameter's sign: given as coefficients, it is an error naming the parameter, the model and
the region, never a clip. A fit keeps its coefficients feasible instead of dying mid-way: after
every update, a model whose scale fell below :data:`SCALE_FLOOR` has its coefficients shrunk toward
0 along their own direction just enough to reach the floor (a projected gradient step; the regional
values stay exactly ``p (1 + a . map)``), and the projections are counted in the report.

Imports: datasets.maps (the map and label checks), torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch
from torch import nn

from ..datasets.maps import check_map, check_node_group

__all__ = ["MapScaling", "Heterogeneous", "SCALE_FLOOR"]

SCALE_FLOOR = 0.05
"""The smallest scale ``1 + a . map_i`` a fit's update may leave (a region at 5% of the global value)."""


@dataclass(frozen=True, eq=False)
class MapScaling:
    """The maps of ``p_i = p (1 + sum_k a_k map_k,i)``: ``maps # [K, N]`` float64, ``names`` K strings,
    ``kind`` ``"maps"`` or ``"groups"`` (for reports)."""
    maps: np.ndarray = field(repr=False)
    names: tuple
    kind: str = "maps"

    @classmethod
    def from_maps(cls, maps: Mapping, n_regions: int) -> "MapScaling":
        """Maps by name (name -> ``[N]``); each checked (length N, finite) and required to vary."""
        if not isinstance(maps, Mapping) or not maps:
            raise ValueError(f"maps: expected a non-empty dict of name -> [N={n_regions}] map, got {maps!r}")
        rows = [check_map(f"maps[{name!r}]", v, n_regions) for name, v in maps.items()]
        for name, row in zip(maps, rows):
            if float(np.ptp(row)) == 0.0:
                raise ValueError(f"maps[{name!r}]: is constant across regions; a constant map only rescales "
                                 f"the global value (drop it)")
        return cls(np.stack(rows), tuple(str(n) for n in maps))

    @classmethod
    def from_groups(cls, labels, n_regions: int, name: str = "groups") -> "MapScaling":
        """Node groups: ``labels # [N]`` integers ``0..G-1`` (G >= 2), every group used."""
        lab = check_node_group(name, labels, n_regions)
        G = int(lab.max()) + 1
        if G < 2:
            raise ValueError(f"{name}: every region is in group 0; node groups need at least two groups")
        onehot = (lab[None, :] == np.arange(1, G)[:, None]).astype(np.float64)
        return cls(onehot, tuple(f"{name}{g}" for g in range(1, G)), kind="groups")

    @property
    def K(self) -> int:
        return self.maps.shape[0]

    @property
    def N(self) -> int:
        return self.maps.shape[1]

    def describe(self) -> str:
        return f"{self.kind}({', '.join(self.names)})"

    def coefficients_for(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(p # [B], a # [B, K])`` whose scaling gives ``values # [B, N]`` (least squares; exact for
        values of this form and for averages of them, as ``p`` and ``p a`` enter linearly)."""
        X = torch.cat([torch.ones(1, self.N, dtype=torch.float64), torch.as_tensor(self.maps)]).T   # [N, 1 + K]
        sol = torch.linalg.lstsq(X, values.double().T).solution.T                                    # [B, 1 + K]
        p = sol[:, 0]
        if bool((p == 0).any()):
            raise ValueError("values: a model's regional values have a zero global part; they cannot be "
                             "written as p (1 + a . maps)")
        return p, sol[:, 1:] / p[:, None]


class Heterogeneous(nn.Module):
    """One parameter's coefficients ``a # [B, K]`` (an ``nn.Parameter`` when ``fit``, else a buffer)
    and its :class:`MapScaling`; ``forward(name, p # [B]) -> [B, N]``."""

    def __init__(self, scaling: MapScaling, B: int, *, fit: bool, dtype=torch.float32):
        super().__init__()
        if not isinstance(scaling, MapScaling):
            raise TypeError(f"heterogeneity: expected nmmfit.params.MapScaling values, got {type(scaling).__name__}")
        self.scaling = scaling
        self.register_buffer("maps", torch.as_tensor(scaling.maps, dtype=dtype))
        coef = torch.zeros(B, scaling.K, dtype=dtype)
        # fit updates put back to the floor: a buffer, so that a checkpoint carries the count on
        self.register_buffer("projections", torch.zeros(B, dtype=torch.int64))
        if fit:
            self.coef = nn.Parameter(coef)
        else:
            self.register_buffer("coef", coef)

    def scale(self) -> torch.Tensor:
        """``1 + a @ maps``, ``[B, N]``."""
        return 1.0 + self.coef @ self.maps

    def forward(self, name: str, p: torch.Tensor) -> torch.Tensor:
        s = self.scale()
        if not bool((s.detach() > 0).all()):
            s = s.detach()
            b, i = (s <= 0).nonzero()[0].tolist()
            raise ValueError(f"{name}: the {self.scaling.describe()} scaling 1 + a . map is {float(s[b, i]):.3g} "
                             f"<= 0 at model {b}, region {i} (coefficients {self.coef[b].detach().tolist()}); the "
                             f"regional values would change sign: lower the learning rate of "
                             f"'hetero.{name}.coef' or the coefficients")
        return p.unsqueeze(-1) * s

    @torch.no_grad()
    def project_(self) -> torch.Tensor:
        """Shrink each model's coefficients by the factor ``t`` that puts its smallest scale at
        :data:`SCALE_FLOOR` where it is below (``1 + t (s_min - 1) = floor``); returns ``[B]`` bool, the
        models shrunk (their count accumulates in ``projections``)."""
        low = self.scale().amin(-1)
        shrunk = low < SCALE_FLOOR
        t = torch.where(shrunk, (1.0 - SCALE_FLOOR) / (1.0 - low), torch.ones_like(low))
        self.coef.mul_(t.unsqueeze(-1))
        self.projections += shrunk.to(self.projections)
        return shrunk

    @torch.no_grad()
    def set_coefficients(self, a: torch.Tensor):
        self.coef.copy_(torch.as_tensor(a, dtype=self.coef.dtype).expand_as(self.coef))
