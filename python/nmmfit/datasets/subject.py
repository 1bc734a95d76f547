"""The loaded data: one subject's (or group's) arrays in the package's conventions."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(repr=False)
class Subject:
    """One subject's (or one group's) data, validated and in the package's conventions.

    Attributes:
        name:       dataset name (``"hcp_aal2"``, ... or the user's name, ``"user"`` by default).
        subject:    subject (or group) ID, e.g. ``"101309"``.
        sc:         ``[N, N]`` float64 structural connectivity, row = target, column = source.
        lengths:    ``[N, N]`` float64 fibre lengths in mm, or ``None``.
        bold:       ``[T, N]`` float64 BOLD, frames x regions, or ``None``.
        fc:         ``[N, N]`` float64 functional connectivity (Pearson of ``bold``'s columns when
                    there is BOLD, else the shipped or given FC), or ``None``.
        labels:     ``N`` region names (``"region_0"``, ... when the source has none).
        tr:         repetition time in seconds, or ``None`` when unknown / no BOLD.
        n_subjects: how many subjects (or groups) the dataset has.
        meta:       provenance and facts: ``source``, ``license``, ``parcellation``, ``session``,
                    ``sc_kind``, ``sc_symmetric``, ``sc_nonzero_diagonal`` (count), ...
        extras:     further arrays the source ships, each documented in ``dataset_info(name)``
                    (e.g. ``centres # [N, 3]``).
        maps:       regional maps for heterogeneity, name -> ``[N]`` float64, finite (e.g. cuBNM's
                    ``"myelinmap"``, z-scored across regions as shipped). Empty when there are none.
        node_groups: region partitions, name -> ``[N]`` int64 labels ``0..K-1``, every group used
                    (e.g. ``"yeo7"``: 7 networks). Empty when there are none.
    """

    name: str
    subject: str
    sc: np.ndarray
    lengths: np.ndarray | None = None
    bold: np.ndarray | None = None
    fc: np.ndarray | None = None
    labels: list[str] = field(default_factory=list)
    tr: float | None = None
    n_subjects: int = 1
    meta: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    node_groups: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def N(self) -> int:
        """Number of regions."""
        return int(self.sc.shape[0])

    @property
    def T(self) -> int | None:
        """Number of BOLD frames, ``None`` without BOLD."""
        return None if self.bold is None else int(self.bold.shape[0])

    @property
    def duration(self) -> float | None:
        """Scan length in seconds (``T * tr``), ``None`` without BOLD or TR."""
        return None if self.bold is None or self.tr is None else self.T * self.tr

    def to_torch(self, dtype=None, device=None) -> dict:
        """Copies of the arrays as torch tensors: ``{"sc", "lengths", "bold", "fc"}`` (``None`` kept).

        ``dtype`` defaults to ``torch.float64``. Shapes are unchanged (``bold # [T, N]``), so
        ``bold[None]`` lines up with ``simulate``'s ``bold # [B, S, N]``.
        """
        import torch

        dtype = torch.float64 if dtype is None else dtype
        out = {}
        for key in ("sc", "lengths", "bold", "fc"):
            arr = getattr(self, key)
            out[key] = None if arr is None else torch.tensor(arr, dtype=dtype, device=device)
        return out

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}", f"subject={self.subject!r}", f"N={self.N}"]
        parts.append(f"T={self.T}" if self.bold is not None else "bold=None")
        parts.append(f"tr={self.tr}")
        parts.append("lengths" if self.lengths is not None else "lengths=None")
        parts.append("fc" if self.fc is not None else "fc=None")
        parts.append(f"n_subjects={self.n_subjects}")
        if self.maps:
            parts.append(f"maps={sorted(self.maps)}")
        if self.node_groups:
            parts.append(f"node_groups={sorted(self.node_groups)}")
        return f"Subject({', '.join(parts)})"
