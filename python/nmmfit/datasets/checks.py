"""Checks of the arrays and small arguments that enter a :class:`Subject` (SC, lengths, FC, labels,
TR). Each error starts with the argument's name and says what was expected and what was found.
BOLD has its own module (:mod:`.bold`)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._validate import check_float


def as_float_array(name: str, value) -> np.ndarray:
    """A C-contiguous float64 copy of ``value`` (numpy array, torch tensor or nested lists)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
        # text would be parsed and complex numbers cut to their real part by a float cast: refuse both
        if arr.dtype.kind not in "biufO":
            raise TypeError(f"dtype {arr.dtype}")
        arr = np.array(arr, dtype=np.float64, copy=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"{name}: expected a numeric array, got {type(value).__name__} ({exc})") from None
    return np.ascontiguousarray(arr)


def is_numbering(v: np.ndarray) -> bool:
    """``v`` is 0, 1, 2, ... or 1, 2, 3, ... (at least 3 values): region or frame numbers, such as a
    header row read as data, not a measurement."""
    return v.size >= 3 and v[0] in (0.0, 1.0) and bool(np.all(np.diff(v) == 1.0))


def check_finite(name: str, arr: np.ndarray) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}: expected finite values, got {int(bad.sum())} NaN/Inf entries "
                         f"(first at index {where})")


def check_square(name: str, arr: np.ndarray, n: int | None = None) -> None:
    want = f"[{n}, {n}]" if n is not None else "[N, N]"
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 1:
        raise ValueError(f"{name}: expected a square {want} matrix, got shape {list(arr.shape)}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name}: expected shape {want} (N = {n} regions, from sc), got {list(arr.shape)}")


def check_nonnegative(name: str, arr: np.ndarray) -> None:
    if (arr < 0).any():
        where = tuple(int(i) for i in np.argwhere(arr < 0)[0])
        raise ValueError(f"{name}: expected non-negative values, got {int((arr < 0).sum())} negative "
                         f"entries (first at index {where}: {arr[where]:g})")


def check_matrix(name: str, value, n: int | None = None, *, nonnegative: bool = True) -> np.ndarray:
    """``value`` as a finite square ``[N, N]`` float64 matrix (``N = n`` when given)."""
    arr = as_float_array(name, value)
    check_square(name, arr, n)
    check_finite(name, arr)
    if nonnegative:
        check_nonnegative(name, arr)
    return arr


def check_fc(value, n: int) -> np.ndarray:
    """A given FC ``[N, N]``: finite correlations in [-1, 1]."""
    fc = check_matrix("fc", value, n, nonnegative=False)
    if (np.abs(fc) > 1.0 + 1e-6).any():
        raise ValueError(f"fc: expected correlations in [-1, 1], got values in [{fc.min():g}, {fc.max():g}]")
    return fc


def check_labels(labels, n: int) -> list[str]:
    """``n`` region names (a list, or a text file with one per line); ``region_k`` when ``None``."""
    if labels is None:
        return [f"region_{k}" for k in range(n)]
    if isinstance(labels, (str, os.PathLike)):
        path = Path(labels)
        if not path.is_file():
            raise FileNotFoundError(f"labels: no such file {str(path)!r} (expected a list of {n} names "
                                    "or a text file with one name per line)")
        labels = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    labels = [str(x) for x in labels]
    if len(labels) != n:
        raise ValueError(f"labels: expected {n} names (N = {n} regions, from sc), got {len(labels)}")
    return labels


def check_tr(tr) -> float | None:
    """The repetition time in seconds (> 0), or ``None``."""
    if tr is None:
        return None
    try:
        return check_float("tr", tr, 0.0, open_min=True)
    except TypeError as exc:  # load_arrays documents a ValueError for any bad tr, text included
        raise ValueError(str(exc)) from None
