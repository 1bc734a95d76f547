"""tvb-data 3.0.0's connectomes (no BOLD): ``hagmann66``, ``tvb68``, ``tvb76``, ``tvb96``, ``tvb192``.
Optional: GPL-3.0 data, read at run time, never redistributed here."""
from __future__ import annotations

import bz2
import io
import zipfile
from pathlib import Path

import numpy as np

from ..io import load_arrays
from ..registry import DatasetInfo, register
from ..subject import Subject


def _members(info: DatasetInfo, root: Path) -> dict[str, str]:
    """The text files of ``connectivity_<N>.zip``, by base name (``.bz2`` members decompressed)."""
    path = info.require(root / "connectivity" / f"connectivity_{info.n_regions}.zip")
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
    files = _members(info, root)
    for needed in ("weights.txt", "tract_lengths.txt", "centres.txt"):
        if needed not in files:
            raise FileNotFoundError(f"{info.name}: connectivity_{n}.zip has no {needed}; reinstall "
                                    f"with: {info.pip_command}")
    W = np.loadtxt(io.StringIO(files["weights.txt"]))
    L = np.loadtxt(io.StringIO(files["tract_lengths.txt"]))
    rows = [ln.split() for ln in files["centres.txt"].splitlines() if ln.strip()]
    extras = {"centres": np.array([[float(x) for x in r[1:4]] for r in rows], dtype=np.float64)}
    for name in ("cortical", "areas"):
        if f"{name}.txt" in files:
            vals = np.loadtxt(io.StringIO(files[f"{name}.txt"]), ndmin=1)
            if vals.shape == (n,):
                extras[name] = vals.astype(np.float64)
    meta.update(sc_kind="group", zip=f"connectivity_{n}.zip")
    return load_arrays(W, lengths=L, labels=[r[0] for r in rows], name=info.name, subject=subject,
                       n_subjects=1, meta=meta, extras=extras)


_EXTRAS = {"centres": "[N, 3] region centres (mm, the zip's coordinate frame)",
           "cortical": "[N] 1 = cortical region, 0 = not (when the zip has cortical.txt)",
           "areas": "[N] region areas in mm^2 (when the zip has areas.txt)"}


def _tvb(name, n, title, parcellation, symmetric, description):
    register(DatasetInfo(
        name=name, title=title, package="tvb-data", import_name="tvb_data", version="3.0.0",
        license="GPL-3.0 (TheVirtualBrain tvb-data)", parcellation=parcellation, n_regions=n,
        n_frames=None, tr=None, subjects=(f"connectivity_{n}",), sc_symmetric=symmetric,
        has_lengths=True, description=description, extras=_EXTRAS, loader=_load_tvb))


# One row per connectome: name, N, title, parcellation, SC symmetric, description.
_CONNECTOMES = (
    ("hagmann66", 66, "Hagmann et al. 2008 connectome, 66 regions (tvb-data connectivity_66)",
     "Hagmann 2008 / Desikan-based, 66 regions (33 per hemisphere, right first)", False,
     "The group DSI connectome of Hagmann et al. (2008) with 66 regions, the SC of Griffiths et "
     "al. (2022)'s synthetic experiments. Weights are nearly symmetric (|w - w.T| <= 2e-4 max) "
     "with a non-zero diagonal for 61 regions, kept as shipped; tract_lengths in mm."),
    ("tvb68", 68, "Desikan-Killiany connectome, 68 cortical regions (tvb-data connectivity_68)",
     "Desikan-Killiany, 68 cortical regions (34 per hemisphere, right first)", True,
     "Symmetric weights (non-zero diagonal, kept as shipped) and tract lengths in mm."),
    ("tvb76", 76, "TVB's default 76-region connectivity (tvb-data connectivity_76)",
     "TVB default 76 regions (38 per hemisphere, right first)", False,
     "Directed weights in [0, 3] (not symmetric, diagonal as shipped) in TVB's convention "
     "row = target, column = source; tract_lengths (mm) are given for most pairs, including "
     "unconnected ones. extras['cortical'] marks all 76 regions cortical."),
    ("tvb96", 96, "Kötter-Wanke regional map, 96 regions (tvb-data connectivity_96)",
     "Regional map (RM) of Kötter & Wanke 2005, 96 regions (48 per hemisphere, right first)",
     False,
     "Directed CoCoMac-derived weights (integer ranks 0-3, not symmetric, diagonal as shipped), "
     "row = target, column = source as TVB uses them; tract_lengths in mm; extras['cortical'] "
     "marks 80 cortical regions."),
    ("tvb192", 192, "TVB 192-region connectivity (tvb-data connectivity_192)",
     "TVB 192 regions (96 per hemisphere, left first)", False,
     "Directed weights in [0, 3] (sparse, not symmetric, diagonal as shipped), row = target, "
     "column = source as TVB uses them; tract_lengths in mm; extras['cortical'] marks 76 "
     "cortical regions."),
)

for _row in _CONNECTOMES:
    _tvb(*_row)
