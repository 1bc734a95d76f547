"""The user's own data: arrays (:func:`load_arrays`) and files (:func:`load_files`), validated into a
:class:`Subject`. The bundled loaders end in :func:`load_arrays` too, so every dataset passes the
same checks."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from .._validate import check_bool, check_choice, check_int
from .bold import LAYOUTS, check_bold, pearson_fc
from .checks import check_fc, check_labels, check_matrix, check_tr
from .maps import check_maps, check_node_groups
from .readers import read_matrix
from .subject import Subject


def _drop(keep: np.ndarray, sc, lengths, labels, maps, node_groups, fc):
    """The regions ``keep`` of everything indexed by region (node-group labels renumbered 0..K-1)."""
    square = np.ix_(keep, keep)
    return (sc[square], None if lengths is None else lengths[square], [labels[k] for k in keep],
            {k: v[keep] for k, v in maps.items()},
            {k: np.unique(v[keep], return_inverse=True)[1].astype(np.int64) for k, v in node_groups.items()},
            None if fc is None else fc[square])


def load_arrays(sc, bold=None, lengths=None, tr=None, *, fc=None, labels=None,
                bold_layout: str = "auto", name: str = "user", subject: str = "0",
                n_subjects: int = 1, meta: Mapping | None = None,
                extras: Mapping | None = None, maps: Mapping | None = None,
                node_groups: Mapping | None = None, drop_constant: bool = False) -> Subject:
    """Validate the user's own arrays and return a :class:`Subject`.

    Args:
        sc:      ``[N, N]`` structural connectivity, row = target, column = source; square,
                 finite, non-negative. A non-zero diagonal is kept and counted in
                 ``meta["sc_nonzero_diagonal"]``; an asymmetric one is kept and flagged in
                 ``meta["sc_symmetric"]``.
        bold:    ``[T, N]`` frames x regions (or ``[N, T]``, transposed automatically when only one
                 axis has length N; ``bold_layout`` settles ``T == N``). Checked by
                 :func:`check_bold`: finite, T >= 2, no constant region, no header row. Optional.
        lengths: ``[N, N]`` fibre lengths in mm, finite, non-negative. Optional.
        tr:      repetition time in seconds (> 0). Optional.
        fc:      ``[N, N]`` FC to use as is (e.g. a group FC); values in [-1, 1]. By default it is
                 the Pearson FC of ``bold`` (see :func:`fc_from_bold`).
        labels:  ``N`` region names, or a path to a text file with one per line.
        bold_layout: ``"auto"``, ``"TN"`` (frames x regions) or ``"NT"`` (regions x frames).
        maps:    name -> ``[N]`` regional map (see :func:`check_maps`). Optional.
        node_groups: name -> ``[N]`` integer labels ``0..K-1`` (see :func:`check_node_groups`).
        drop_constant: drop BOLD's constant regions from every array (sc, lengths, fc, labels,
                 maps, node groups; not ``extras``, carried as given), listed in
                 ``meta["dropped_regions"]`` (index -> label), instead of refusing.
        name, subject, n_subjects, meta, extras: carried into the :class:`Subject`.

    Arrays may be numpy arrays, torch tensors or nested lists; they are copied to C-contiguous
    float64. Each error names the argument and what was expected.
    """
    bold_layout = check_choice("bold_layout", bold_layout, LAYOUTS)
    drop_constant = check_bool("drop_constant", drop_constant)
    sc = check_matrix("sc", sc)
    n = sc.shape[0]
    lengths = None if lengths is None else check_matrix("lengths", lengths, n)
    labels = check_labels(labels, n)
    fc = None if fc is None else check_fc(fc, n)
    maps, node_groups = check_maps(maps, n), check_node_groups(node_groups, n)
    info = dict(meta or {})
    if bold is not None:
        bold, report = check_bold(bold, n, labels=labels, layout=bold_layout, drop_constant=drop_constant)
        if report.dropped:
            sc, lengths, labels, maps, node_groups, fc = _drop(
                np.array(report.kept), sc, lengths, labels, maps, node_groups, fc)
            info["dropped_regions"] = dict(zip(report.dropped, report.dropped_labels))
        fc = pearson_fc(bold) if fc is None else fc
    info["sc_symmetric"] = bool(np.allclose(sc, sc.T, rtol=1e-10, atol=0.0))
    info["sc_nonzero_diagonal"] = int(np.count_nonzero(np.diag(sc)))
    return Subject(name=str(name), subject=str(subject), sc=sc, lengths=lengths, bold=bold, fc=fc,
                   labels=labels, tr=check_tr(tr), n_subjects=check_int("n_subjects", n_subjects, 1),
                   meta=info, extras=dict(extras or {}), maps=maps, node_groups=node_groups)


def load_files(sc_path, bold_path=None, lengths_path=None, *, fc_path=None, tr=None,
               sc_key: str | None = None, bold_key: str | None = None,
               lengths_key: str | None = None, fc_key: str | None = None, labels=None,
               bold_layout: str = "auto", delimiter: str | None = None, name: str | None = None,
               subject: str = "0", drop_constant: bool = False) -> Subject:
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
        drop_constant: see :func:`load_arrays`.
    """
    given = {"sc": (sc_path, sc_key), "bold": (bold_path, bold_key),
             "lengths": (lengths_path, lengths_key), "fc": (fc_path, fc_key)}
    arrays = {arg: read_matrix(path, key, argument=f"{arg}_path", key_argument=f"{arg}_key",
                               delimiter=delimiter) if path is not None or arg == "sc" else None
              for arg, (path, key) in given.items()}
    files = {arg: str(path) for arg, (path, _) in given.items() if path is not None}
    return load_arrays(arrays["sc"], bold=arrays["bold"], lengths=arrays["lengths"], tr=tr,
                       fc=arrays["fc"], labels=labels, bold_layout=bold_layout,
                       name=name or Path(sc_path).stem, subject=subject,
                       meta={"source": "user files", "files": files}, drop_constant=drop_constant)
