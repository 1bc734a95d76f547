"""Regional maps (one number per region, for heterogeneity: ``param_i = p * (1 + sum_k c_k map_k[i])``
in cuBNM's convention) and node groups (a label per region, for per-group parameters).

Maps are returned as given (float64, finite); the bundled cuBNM maps are z-scored across regions as
shipped. Node-group labels are int64 ``0..K-1`` with every group used, so they index a ``[K]``
parameter vector directly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .._validate import check_choice, check_int
from .checks import as_float_array
from .readers import read_matrix, read_table, check_path, TEXT_SUFFIXES

MAP_LAYOUTS = ("auto", "rows", "columns")


def _checked_mapping(argument: str, value) -> Mapping:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{argument}: expected a dict of name -> [N] array, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str) or not key:
            raise TypeError(f"{argument}: names must be non-empty strings, got {key!r}")
    return value


def check_map(argument: str, value, n: int) -> np.ndarray:
    """One map: ``[N]`` finite float64 (a ``[1, N]`` / ``[N, 1]`` array is flattened)."""
    arr = as_float_array(argument, value)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1 or arr.size != n:
        raise ValueError(f"{argument}: expected {n} values (one per region, N = {n}), got shape {list(arr.shape)}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{argument}: {bad.size} NaN/Inf values, the first at region {bad[0]}")
    return arr


def check_maps(maps, n: int, *, argument: str = "maps") -> dict[str, np.ndarray]:
    """``maps``: name -> ``[N]`` map; each checked by :func:`check_map` (errors name the map)."""
    return {name: check_map(f"{argument}[{name!r}]", v, n)
            for name, v in _checked_mapping(argument, maps).items()}


def check_node_group(argument: str, value, n: int) -> np.ndarray:
    """One partition: ``[N]`` integer labels ``0..K-1`` (K <= N), every group used; as int64."""
    arr = check_map(argument, value, n)
    bad = np.flatnonzero((arr != np.round(arr)) | (arr < 0) | (arr >= n))
    if bad.size:
        k = bad[0]
        raise ValueError(f"{argument}: expected integer labels 0..K-1 (K <= N = {n} groups), "
                         f"got {arr[k]:g} at region {k}")
    labels = arr.astype(np.int64)
    used = np.unique(labels)
    if used[-1] != used.size - 1:
        missing = sorted(set(range(used[-1])) - set(used.tolist()))
        hint = "; they look 1-based: subtract 1" if used[0] == 1 and used[-1] == used.size else ""
        raise ValueError(f"{argument}: labels 0..{used[-1]} skip group(s) {missing}; every group "
                         f"0..K-1 must be used{hint}")
    return labels


def check_node_groups(groups, n: int, *, argument: str = "node_groups") -> dict[str, np.ndarray]:
    """``groups``: name -> ``[N]`` labels; each checked by :func:`check_node_group`."""
    return {name: check_node_group(f"{argument}[{name!r}]", v, n)
            for name, v in _checked_mapping(argument, groups).items()}


def _as_rows(arr: np.ndarray, n: int, layout: str, argument: str, path: Path) -> tuple[np.ndarray, bool]:
    """The maps of a file's array as rows ``[M, N]``, and whether they were its columns (a single
    column ``[N]`` counts as one)."""
    if arr.ndim == 1:
        return arr[None, :], True
    if arr.ndim != 2:
        raise ValueError(f"{argument}: {path.name} holds a {arr.ndim}-D array; expected [M, {n}] or [{n}, M]")
    if layout == "auto":
        if arr.shape == (n, n):
            raise ValueError(f"{argument}: {path.name} is [{n}, {n}]: say whether maps are rows or "
                             "columns with layout='rows' or 'columns'")
        layout = "rows" if arr.shape[1] == n else "columns" if arr.shape[0] == n else None
    if layout is None or arr.shape[1 if layout == "rows" else 0] != n:
        raise ValueError(f"{argument}: {path.name} has shape {list(arr.shape)}; expected maps of "
                         f"{n} values (one per region) as rows or columns")
    return (arr, False) if layout == "rows" else (arr.T, True)


def load_maps(path, n_regions: int, *, names: Sequence[str] | None = None, layout: str = "auto",
              key: str | None = None, delimiter: str | None = None) -> dict[str, np.ndarray]:
    """Read the user's regional maps from a file: name -> ``[N]`` float64, as stored (not rescaled).

    Args:
        path:      ``.npy`` / ``.npz`` / ``.mat`` / ``.csv`` / ``.tsv`` / ``.txt`` (see
                   :func:`read_matrix`) holding one map ``[N]`` or several, one per row ``[M, N]``
                   or one per column ``[N, M]``.
        n_regions: N, the number of regions each map must have.
        names:     the maps' names. Default: a text file's header row (maps as columns), else the
                   file's stem (one map) or ``"<stem>_<k>"``.
        layout:    ``"auto"`` (the axis of length N holds the regions), ``"rows"`` or ``"columns"``.
        key:       the array / variable inside a ``.npz`` / ``.mat`` holding several.

    Errors name the file and, per map, its name and N.
    """
    n = check_int("n_regions", n_regions, 1)
    layout = check_choice("layout", layout, MAP_LAYOUTS)
    path = check_path(path, "path")
    header = None
    if path.suffix.lower() in TEXT_SUFFIXES and key is None:
        arr, header = read_table(path, "path", delimiter)
    else:
        arr = read_matrix(path, key, delimiter=delimiter)
    rows, by_column = _as_rows(as_float_array("path", arr), n, layout, "path", path)
    if names is None and header is not None and by_column:  # a header row names the columns
        names = header
    elif names is None:
        names = [path.stem] if len(rows) == 1 else [f"{path.stem}_{k}" for k in range(len(rows))]
    if isinstance(names, str):
        raise TypeError(f"names: expected a list of names, got the string {names!r} (write [{names!r}])")
    names = [str(x) for x in names]
    if len(names) != len(rows) or len(set(names)) != len(names):
        raise ValueError(f"names: expected {len(rows)} distinct names (maps in {path.name}), got {names}")
    return check_maps(dict(zip(names, rows)), n, argument=f"maps of {path.name}")
