"""Reading one numeric array from a file: ``.npy``, ``.npz``, ``.mat``, ``.csv``, ``.tsv``, ``.txt``.

Every error is a ``ValueError`` (``TypeError`` for a non-path, ``FileNotFoundError`` for a missing
file) that starts with the caller's argument name and names the file; text files also get the line
and column of a value that is missing or not a number.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from .checks import is_numbering

TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
SUFFIXES = (".npy", ".npz", ".mat") + TEXT_SUFFIXES
MISSING = frozenset({"", "na", "nan", "n/a", "null", "none", "-nan", "+nan"})
"""Tokens that mean a missing value (case-insensitive): refused, never read as a number or a header."""

_NUMERIC_KINDS = "biuf"


def _pick(argument: str, key_arg: str, key, names: Sequence[str], path: Path, kind: str):
    if key is not None:
        if key not in names:
            raise ValueError(f"{key_arg}: {key!r} is not in {path.name} (it has {kind} {sorted(names)})")
        return key
    if len(names) == 1:
        return names[0]
    if not names:
        raise ValueError(f"{argument}: {path.name} holds no numeric array")
    raise ValueError(f"{argument}: {path.name} holds several {kind} {sorted(names)}; choose one with {key_arg}=")


# ---- text ------------------------------------------------------------------------------------

def _number(token: str) -> float | None:
    """The token's value, or ``None`` for a missing value or a token that is not a number."""
    if token.lower() in MISSING:
        return None
    try:
        return float(token)
    except ValueError:
        return None


def _is_header(tokens: list[str]) -> bool:
    """A row of names: no number in it, and not just missing values (a row of NA is data)."""
    return all(_number(t) is None for t in tokens) and any(t.lower() not in MISSING for t in tokens)


def _tokens(text: str, delimiter) -> list[str]:
    return [t.strip() for t in text.split(delimiter)] if delimiter else text.split()


def _parse_row(tokens: list[str], lineno: int, width: tuple[int, str], where: str) -> np.ndarray:
    if len(tokens) != width[0]:
        raise ValueError(f"{where} line {lineno} has {len(tokens)} columns, {width[1]} has {width[0]}")
    values = [_number(t) for t in tokens]
    for j, (token, value) in enumerate(zip(tokens, values)):
        if value is None or not math.isfinite(value):
            what = "a missing value" if token.lower() in MISSING else \
                "not a number" if value is None else "not finite"
            raise ValueError(f"{where} line {lineno}, column {j + 1}: {token!r} is {what}; fill or "
                             "remove it (missing values are not accepted, nor dropped silently)")
    return np.array(values, dtype=np.float64)


def read_table(path: Path, argument: str, delimiter: str | None = None) -> tuple[np.ndarray, list[str] | None]:
    """A text table ``[R, C]`` (``[R]`` for one column) and its header row's names, or ``None``.

    ``#`` lines and blank lines are skipped. The first row is a header when it holds names (no
    number, not only missing values) or the numbers 0..C-1 / 1..C of the columns (with a second
    row that is not such numbering too). Any other token that is not a finite number is an error
    naming the line and column.
    """
    where = f"{argument}: {path.name}"
    text = path.read_bytes().decode("utf-8", errors="replace")  # undecodable bytes fail as "not a number"
    lines = [(no, ln) for no, ln in enumerate(text.splitlines(), 1)
             if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ValueError(f"{where} is empty")
    if delimiter is None:
        delimiter = next((d for d in (",", "\t", ";") if d in lines[0][1]), None)
    rows = [(no, _tokens(ln, delimiter)) for no, ln in lines]
    header = rows.pop(0)[1] if _is_header(rows[0][1]) else None
    if not rows:
        raise ValueError(f"{where} holds a header row and no data")
    width = (len(header), "the header") if header is not None else (len(rows[0][1]), "the first row")
    values = np.stack([_parse_row(tokens, no, width, where) for no, tokens in rows])
    if header is None and len(values) > 1 and is_numbering(values[0]) and not is_numbering(values[1]):
        header, values = rows[0][1], values[1:]
    return (values[:, 0] if values.shape[1] == 1 else values), header


# ---- binary formats --------------------------------------------------------------------------

def _unreadable(argument: str, path: Path, kind: str, exc: BaseException) -> ValueError:
    return ValueError(f"{argument}: could not read {path.name} as a {kind} file "
                      f"({type(exc).__name__}: {exc})")


def _read_npy(path: Path, argument: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # a corrupt file can fail in numpy's header, zip or pickle layers alike
        raise _unreadable(argument, path, ".npy", exc) from None


def _read_npz(path: Path, argument: str, key, key_argument: str) -> np.ndarray:
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:  # BadZipFile, OSError, EOFError, ValueError, ... on a corrupt file
        raise _unreadable(argument, path, ".npz", exc) from None
    if not hasattr(z, "files"):  # np.load read a plain .npy saved under a .npz name
        return z
    with z:
        name = _pick(argument, key_argument, key, list(z.files), path, "arrays")
        try:
            arr = z[name]
        except Exception as exc:  # a corrupt member (zlib.error, BadZipFile, ValueError, ...)
            raise _unreadable(argument, path, ".npz", exc) from None
    if not isinstance(arr, np.ndarray):  # numpy hands back the raw bytes of a member that is not .npy
        raise ValueError(f"{argument}: {path.name} member {name!r} is not a numpy array")
    return arr


_MAT_CHILD = """
import sys, numpy as np, scipy.io
try:
    mat = scipy.io.loadmat(sys.argv[1])
except NotImplementedError:
    sys.exit(3)
except Exception as exc:
    sys.stderr.write(f"{type(exc).__name__}: {exc}")
    sys.exit(4)
names = [k for k in mat if not k.startswith("__")]
numeric = {k: mat[k] for k in names if isinstance(mat[k], np.ndarray) and mat[k].dtype.kind in sys.argv[3]}
np.savez(sys.argv[2], __names__=np.array(names, dtype=str), **numeric)
"""


def _loadmat_isolated(path: Path) -> tuple[dict, list]:
    """``({name: array} of the numeric variables, all variable names)`` of a MAT file, parsed in a
    child process: scipy's MAT parser can crash the interpreter on a corrupt file (a segfault in
    its C code, found by fuzzing), which must not take a fit or a session with it."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "vars.npz"
        r = subprocess.run([sys.executable, "-c", _MAT_CHILD, str(path), str(out), _NUMERIC_KINDS],
                           capture_output=True, text=True, timeout=600)
        if r.returncode == 3:
            raise NotImplementedError
        if r.returncode != 0:
            raise ValueError(r.stderr.strip().splitlines()[-1] if r.returncode == 4 and r.stderr.strip()
                             else f"the MAT reader crashed on it (exit status {r.returncode})")
        with np.load(out) as z:
            return {k: z[k] for k in z.files if k != "__names__"}, [str(x) for x in z["__names__"]]


def _read_mat(path: Path, argument: str, key, key_argument: str) -> np.ndarray:
    try:
        numeric, names = _loadmat_isolated(path)
    except NotImplementedError:
        raise ValueError(f"{argument}: {path.name} is a MATLAB v7.3 (HDF5) file, which scipy cannot "
                         "read; re-save it with save(..., '-v7') or convert it to .npy") from None
    except Exception as exc:  # scipy's parser raises many types (MatReadError, zlib.error, ...) or crashes
        raise _unreadable(argument, path, ".mat", exc) from None
    if key is not None and key not in numeric:
        raise ValueError(f"{key_argument}: {key!r} is not a numeric variable of {path.name} "
                         f"(it has {sorted(names)})")
    return numeric[_pick(argument, key_argument, key, list(numeric), path, "variables")]


def check_path(path, argument: str) -> Path:
    """``path`` as an existing file with a supported suffix."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{argument}: expected a file path, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{argument}: no such file {str(path)!r}")
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{argument}: unsupported file type {path.suffix.lower()!r} ({path.name}); "
                         f"expected one of {', '.join(SUFFIXES)}")
    return path


def read_matrix(path, key: str | None = None, *, argument: str = "path", key_argument: str = "key",
                delimiter: str | None = None) -> np.ndarray:
    """Read one numeric array from a file, by extension.

    * ``.npy``: the array.
    * ``.npz``: the array named ``key``, or the only array.
    * ``.mat`` (MATLAB v4-v7.2, via ``scipy.io.loadmat``): the variable named ``key``, or the only
      numeric variable (``__header__``-style entries are ignored).
    * ``.csv`` / ``.tsv`` / ``.txt``: the delimiter is taken from the first row (``,``, tab, ``;``,
      else whitespace) unless given; ``#`` lines and one header row (names, or the column numbers
      0..C-1 / 1..C) are skipped; a missing value (``NA``, ``nan``, an empty field) or any other
      token that is not a finite number is an error naming the line and column.

    ``argument`` / ``key_argument`` name the caller's parameters in error messages. The result has
    a numeric dtype (bool, int or float) as stored.
    """
    path = check_path(path, argument)
    if delimiter is not None and (not isinstance(delimiter, str) or not delimiter):
        raise TypeError(f"delimiter: expected a non-empty string or None, got {delimiter!r}")
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES or suffix == ".npy":
        if key is not None:
            raise ValueError(f"{key_argument}: a {suffix} file holds one array; got {key_argument}={key!r}")
        arr = _read_npy(path, argument) if suffix == ".npy" else read_table(path, argument, delimiter)[0]
    elif suffix == ".npz":
        arr = _read_npz(path, argument, key, key_argument)
    else:
        arr = _read_mat(path, argument, key, key_argument)
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise ValueError(f"{argument}: {path.name} holds a {arr.dtype} array, expected real numbers")
    return arr
