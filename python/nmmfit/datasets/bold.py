"""BOLD entering a fit: one validation layer (:func:`check_bold`) and the FC computed from it.

Every path that brings BOLD in (``load_arrays``, ``load_files``, the bundled loaders,
:func:`fc_from_bold`) goes through :func:`check_bold`, so a NaN, a dead region or a header row read
as a frame is refused the same way, with the frame / region where it was found.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .._validate import check_bool, check_choice, check_int
from .checks import as_float_array, is_numbering

LAYOUTS = ("auto", "TN", "NT")

CONSTANT_RTOL = 1e-12
"""A region whose standard deviation is at most this fraction of its largest |value| is constant
(float64 rounding of a constant signal stays far below it)."""

NEAR_CONSTANT_RTOL = 1e-6
"""A region whose standard deviation is at most this fraction of the median region's is near-constant:
a zero-filled or out-of-field-of-view region with rounding noise, whose correlations are noise."""


@dataclass(frozen=True)
class BoldCheck:
    """What :func:`check_bold` found and did.

    ``kept``: indices (into the regions as given) of the returned columns, ``[N_kept]``; use them to
    subset ``sc[np.ix_(kept, kept)]`` when regions were dropped. ``dropped`` / ``dropped_labels``:
    the constant regions removed by ``drop_constant=True``.
    """

    shape: tuple[int, int]   # the array as given
    transposed: bool         # True when it was given regions x frames
    n_frames: int
    kept: tuple[int, ...]
    dropped: tuple[int, ...] = ()
    dropped_labels: tuple[str, ...] = ()

    @property
    def n_regions(self) -> int:
        return len(self.kept)

    def summary(self) -> str:
        text = (f"bold {list(self.shape)}{' (regions x frames, transposed)' if self.transposed else ''}"
                f" -> [T={self.n_frames}, N={self.n_regions}]")
        if self.dropped:
            text += f"; dropped constant regions {list(self.dropped)} {list(self.dropped_labels)}"
        return text


def _region(k: int, labels: Sequence[str] | None) -> str:
    return f"{k} ({labels[k]!r})" if labels is not None else str(k)


_LAYOUT_FIX = ("set the layout ('TN' = frames x regions, 'NT' = regions x frames: layout= of check_bold, "
               "bold_layout= of load_arrays / load_files)")


def _guess_layout(name: str, shape: tuple[int, int], n: int | None) -> str:
    """The layout under ``"auto"``: the axis of length N holds the regions; without N, the longer
    axis holds the frames. Refuses what cannot be told apart."""
    rows, cols = shape
    if n is None:
        if rows > cols:
            return "TN"
        raise ValueError(f"{name}: shape {list(shape)} has no more rows than columns, so frames and "
                         f"regions cannot be told apart without N; pass n_regions or {_LAYOUT_FIX}")
    if rows == cols == n:
        raise ValueError(f"{name}: shape {list(shape)} is ambiguous (T == N == {n}); {_LAYOUT_FIX}")
    if cols == n or rows == n:
        return "TN" if cols == n else "NT"
    hint = " (one extra row or column: a header row or index column left in the data?)" \
        if n + 1 in shape else ""
    raise ValueError(f"{name}: expected shape [T, {n}] or [{n}, T] (N = {n} regions), got {list(shape)}{hint}")


def _orient(name: str, bold: np.ndarray, n: int | None, layout: str) -> tuple[np.ndarray, bool]:
    """``bold # [T, N]`` and whether it was given transposed."""
    if layout == "auto":
        layout = _guess_layout(name, bold.shape, n)
    regions_axis = 1 if layout == "TN" else 0
    if n is not None and bold.shape[regions_axis] != n:
        expected = f"[T, {n}]" if layout == "TN" else f"[{n}, T]"
        raise ValueError(f"{name}: layout {layout!r} expects shape {expected} (N = {n} regions), "
                         f"got {list(bold.shape)}")
    return (bold, False) if layout == "TN" else (np.ascontiguousarray(bold.T), True)


def _check_finite(name: str, bold: np.ndarray, labels) -> None:
    bad = ~np.isfinite(bold)
    if bad.any():
        t, k = (int(i) for i in np.argwhere(bad)[0])
        regions = np.flatnonzero(bad.any(axis=0))
        raise ValueError(f"{name}: {int(bad.sum())} NaN/Inf values in {regions.size} region(s) "
                         f"{regions[:10].tolist()}, the first at frame {t}, region {_region(k, labels)}; "
                         "interpolate or censor those frames, or drop those regions (and their sc "
                         "rows and columns), before fitting")


def _check_not_numbering(name: str, bold: np.ndarray) -> None:
    if is_numbering(bold[0]):
        raise ValueError(f"{name}: frame 0 is {bold[0, 0]:g}, {bold[0, 1]:g}, ..., {bold[0, -1]:g}: "
                         "region numbers (a header row read as data); drop it (bold[1:])")
    counting = [k for k in range(bold.shape[1]) if is_numbering(bold[:, k])]
    if counting:
        raise ValueError(f"{name}: region {counting[0]} is {bold[0, counting[0]]:g}, "
                         f"{bold[1, counting[0]]:g}, ...: frame numbers (an index column read as data); "
                         "drop that column")


def constant_regions(bold: np.ndarray) -> np.ndarray:
    """Indices of the constant or near-constant regions of finite ``bold # [T, N]`` (see
    :data:`CONSTANT_RTOL`, :data:`NEAR_CONSTANT_RTOL`), ``[K]`` int64."""
    scale = np.abs(bold).max(axis=0)
    # scaled columns: no overflow from huge values, and a relative deviation for the constant test
    rel_std = (bold / np.where(scale > 0, scale, 1.0)).std(axis=0)
    std = rel_std * scale
    flat = (rel_std <= CONSTANT_RTOL) | (std <= NEAR_CONSTANT_RTOL * np.median(std))
    return np.flatnonzero(flat)


def _constant_error(name: str, idx: np.ndarray, labels) -> ValueError:
    named = f" {[labels[k] for k in idx[:10]]}" if labels is not None else ""
    return ValueError(f"{name}: region(s) {idx[:10].tolist()}{named}{' ...' if idx.size > 10 else ''} "
                      "are constant or near-constant over time (zero-filled or outside the field of "
                      "view?), so their FC is undefined; drop them from sc and bold, or pass "
                      "drop_constant=True")


def check_bold(bold, n_regions: int | None = None, *, name: str = "bold", labels=None,
               min_frames: int = 2, drop_constant: bool = False,
               layout: str = "auto") -> tuple[np.ndarray, BoldCheck]:
    """Validate BOLD for a fit; return it as ``[T, N]`` float64 (frames x regions) and a report.

    Args:
        bold:       ``[T, N]`` or ``[N, T]`` numbers (numpy, torch or nested lists).
        n_regions:  N, when known (from the SC); it settles the orientation under ``layout="auto"``.
                    Without it, ``"auto"`` reads ``[T, N]`` and refuses T <= N.
        name:       the argument's name in error messages.
        labels:     ``N`` region names, used in messages and in the report.
        min_frames: the fewest frames accepted (>= 2: a correlation needs two).
        drop_constant: drop constant / near-constant regions and report them instead of refusing.
        layout:     ``"auto"``, ``"TN"`` (frames x regions) or ``"NT"`` (regions x frames).

    Refuses, with ``ValueError`` naming ``name`` and what was found where: a shape that is not
    ``[T, N]`` / ``[N, T]`` or whose orientation is ambiguous; NaN/Inf (count, first frame and
    region); a first frame of region numbers (a header row) or a region of frame numbers (an index
    column); fewer than ``min_frames`` frames; constant or near-constant regions (listed).
    ``TypeError`` for non-numeric input.
    """
    layout = check_choice("layout", layout, LAYOUTS)
    min_frames = check_int("min_frames", min_frames, 2)
    drop_constant = check_bool("drop_constant", drop_constant)
    if n_regions is not None:
        n_regions = check_int("n_regions", n_regions, 1)
    arr = as_float_array(name, bold)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D [T, N] array (frames x regions), got shape {list(arr.shape)}")
    arr, transposed = _orient(name, arr, n_regions, layout)
    if labels is not None and len(labels) != arr.shape[1]:
        raise ValueError(f"labels: expected {arr.shape[1]} names (one per region of {name}), got {len(labels)}")
    _check_finite(name, arr, labels)
    if arr.shape[0] < min_frames:
        raise ValueError(f"{name}: {arr.shape[0]} frames, expected at least {min_frames} "
                         f"(shape as given {list(np.shape(bold))})")
    _check_not_numbering(name, arr)
    kept = _drop_constant(name, arr, labels, drop_constant)
    dropped = np.setdiff1d(np.arange(arr.shape[1]), kept)
    report = BoldCheck(shape=tuple(np.shape(bold)), transposed=transposed, n_frames=arr.shape[0],
                       kept=tuple(kept.tolist()), dropped=tuple(dropped.tolist()),
                       dropped_labels=tuple(labels[k] for k in dropped) if labels is not None else ())
    return (np.ascontiguousarray(arr[:, kept]) if dropped.size else arr), report


def _drop_constant(name: str, bold: np.ndarray, labels, drop: bool) -> np.ndarray:
    """The regions kept: all, or (``drop``) those left when no constant region remains. Near-constant
    is relative to the median region, so dropping can expose another: repeat until none is left,
    and what is returned passes this check again."""
    kept = np.arange(bold.shape[1])
    while (flat := constant_regions(bold[:, kept])).size:
        if not drop:
            raise _constant_error(name, kept[flat], labels)
        if flat.size == kept.size:
            raise ValueError(f"{name}: every region left {kept[:10].tolist()} is constant or "
                             "near-constant over time: there is no signal to fit")
        kept = np.delete(kept, flat)
    return kept


def pearson_fc(bold: np.ndarray) -> np.ndarray:
    """FC ``[N, N]`` of ``bold # [T, N]`` already passed by :func:`check_bold` (no constant region)."""
    scaled = bold / np.abs(bold).max(axis=0)  # correlation is scale-free; this keeps huge values finite
    centred = scaled - scaled.mean(axis=0)
    z = centred / np.sqrt((centred * centred).sum(axis=0))
    fc = z.T @ z
    np.clip(fc, -1.0, 1.0, out=fc)
    fc = 0.5 * (fc + fc.T)
    np.fill_diagonal(fc, 1.0)
    return fc


def fc_from_bold(bold) -> np.ndarray:
    """Pearson functional connectivity ``# [N, N]`` of ``bold # [T, N]`` (frames x regions).

    The diagonal is exactly 1. ``bold`` is checked by :func:`check_bold` (``layout="TN"``): a
    ``ValueError`` naming ``bold`` for NaN/Inf, fewer than 2 frames or a constant region (its
    correlation is undefined).
    """
    bold, _ = check_bold(bold, layout="TN")
    return pearson_fc(bold)
