"""What the experiments share: loading a subject, its subject-keyed randomness, random starts from
the scheme, parsing subject lists, and writing JSON."""
from __future__ import annotations

import functools
import json
import logging
from typing import Mapping

import numpy as np
import torch

from .._files import atomic_write_text
from .._validate import check_choice, check_int
from ..params.schemes import get_scheme
from ..presets import get_preset
from ..rng import derive_seed

DEMO_FIT = ("g", "g_EE", "g_IE", "g_EI", "sigma_out")
"""Parameters the demo fits: the paper's, except the state-noise std, which stays at the
transform's floor 0.02 (see :func:`nmmfit.experiments.demo`)."""

SUBJECT_FIT = ("g", "g_EE", "g_IE", "g_EI")
"""What ``nmmfit fit`` learns when ``fit`` is not given: the neural-mass parameters (and the SC
gains), with the noise fixed at :data:`SUBJECT_FIXED`. Fitted from the paper's start, the
output-noise std falls into a trap: while the simulated FC is still uncorrelated with the data the
FC term pushes it up, and the fit stays noise-dominated. Measured on the 7 hcp_aal2 subjects x 4
restarts (first half fitted): with sigma_out fitted, 18 of 28 restarts ended at train FC r < 0.1
and subject 102816 lost all four (best 0.028); with the noise fixed, none did (train FC r
0.63-0.76 per subject, held-out 0.56-0.79)."""

SUBJECT_FIXED = dict(sigma=0.02, sigma_out=0.001)
"""The noise of :data:`SUBJECT_FIT`: the state-noise std at the paper's floor, a small output noise."""


def subject_defaults(fit, sigma, init) -> tuple:
    """``(fit, init overrides)`` of a subject fit: with ``fit=None``, :data:`SUBJECT_FIT` and its
    fixed noise (under the caller's ``sigma`` and ``init``); else the caller's alone."""
    given = {**({} if sigma is None else {"sigma": float(sigma)}), **dict(init or {})}
    if fit is not None:
        return fit, given
    return SUBJECT_FIT, {**SUBJECT_FIXED, **given}


DEFAULT_SCHEME = "group_shrinkage"
"""What ``nmmfit fit`` fits when no scheme or preset is named and a group FC exists: the paper's
model fitted to generalise (:data:`nmmfit.params.schemes.GROUP_SHRINKAGE_SCHEME`). Without a group
FC (the user's files) the paper's scheme is fitted instead."""


def subject_scheme(scheme=None, preset=None, *, has_group: bool = True):
    """The :class:`nmmfit.FitScheme` of a subject fit: ``scheme`` (its equations replaced by
    ``preset`` when both are given); else ``preset``'s registered scheme; else :data:`DEFAULT_SCHEME`
    when a group FC exists (``has_group``), the paper's scheme when not (logged)."""
    if scheme is not None:
        chosen = get_scheme(scheme)
        return chosen if preset is None else chosen.replace(preset=get_preset(preset))
    if preset is not None:
        return get_scheme(get_preset(preset))
    if not has_group:
        logging.getLogger("nmmfit").info("no group-average FC for these data: fitting the paper's scheme "
                                         "(griffiths2022), whose FC term targets the data's windows")
        return get_scheme("griffiths2022")
    return get_scheme(DEFAULT_SCHEME)


def load_subject(dataset: str | None, subject=0, *, sc_path=None, bold_path=None, tr=None,
                  bold_layout="auto"):
    from .. import datasets

    if sc_path is not None:
        return datasets.load_files(sc_path, bold_path, tr=tr, bold_layout=bold_layout)
    if dataset is None:
        raise ValueError("give a dataset name or an SC file")
    return datasets.load(dataset, subject=subject)


def write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, default=lambda o: np.asarray(o).tolist()))


def init_for(scheme, B: int, *, seed: int, g_mean=80.0, overrides: Mapping | None = None) -> dict:
    """Initial values for B restarts: the scheme's random starts (the paper's draws for
    griffiths2022, none for deco2014), then ``overrides``."""
    return {**get_scheme(scheme).starts(B, g_mean=g_mean, seed=seed), **dict(overrides or {})}


def subject_keys(dataset: str, subject, seed: int, restarts: int = 1) -> tuple[int, torch.Tensor]:
    """The randomness of a dataset subject's fit, keyed by the subject and not by the batch it is
    in: the seed of its initial values and its noise streams ``[restarts]`` (state noise, output
    noise, initial states), restart r of the subject with dataset index i on stream
    ``i + r * n_subjects``. ``subject``: the subject's ID (:attr:`nmmfit.datasets.Subject.subject`)."""
    from .. import datasets

    sub = str(subject)
    ids_all = [str(x) for x in datasets.dataset_info(dataset).subjects]
    index = ids_all.index(sub)                      # datasets.load has resolved the ID already
    stream = index + len(ids_all) * torch.arange(restarts, dtype=torch.int64)
    return derive_seed("subject-init", seed, sub) % 2**62, stream


def parse_subjects(text) -> list:
    """``"0-6"`` -> [0, ..., 6]; ``"0,2,5"`` -> [0, 2, 5]; ``"101309,102311"`` -> IDs; mixes allowed."""
    items = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part and all(x.strip().isdigit() for x in part.split("-", 1)):
            a, b = (int(x) for x in part.split("-", 1))
            if b < a:
                raise ValueError(f"subjects: range {part!r} is empty")
            items += list(range(a, b + 1))
        else:
            items.append(int(part) if part.isdigit() else part)
    if not items:
        raise ValueError(f"subjects: no subject in {text!r}")
    if len(set(map(str, items))) != len(items):
        raise ValueError(f"subjects: {text!r} lists a subject twice")
    return items


def default_demo_epochs(backend: str = "auto") -> int:
    """20 epochs (the paper) with the compiled kernels; 5 with the pure-PyTorch reference, so the
    demo stays within a few minutes on 2 CPU cores either way."""
    from .._ext import HAS_EXTENSION

    return 20 if (HAS_EXTENSION and backend == "auto") else 5


SESSIONS = {"hcp_schaefer100": ("REST1_LR", "REST2_LR")}
"""Datasets with two sessions per subject: fitted on the first, held out on the second."""

GROUP_FC = {"hcp_schaefer100": ("hcp_schaefer100_group", "group-train706")}
"""Datasets whose group-average FC comes from a group dataset (other people); the others use the
mean FC of their other subjects (leave-one-out)."""

HELDOUT = ("auto", "session", "half", "none")


def split_data(subj, dataset, subject, heldout: str, frames: int | None, **load):
    """``(fit_bold [T, N], heldout_bold [T', N] | None, protocol)`` for one subject: ``"session"``
    fits the first of the dataset's :data:`SESSIONS` and holds out the second; ``"half"`` fits
    the first half of the run and holds out the second; ``"none"`` fits all of it; ``"auto"``
    picks ``"session"`` where the dataset has two, else ``"half"``."""
    from .. import datasets

    check_choice("heldout", heldout, HELDOUT)
    if frames is not None:
        frames = check_int("frames", frames, 1)
    if heldout == "auto":
        heldout = "session" if dataset in SESSIONS else "half"
    bold = np.asarray(subj.bold) if frames is None else np.asarray(subj.bold)[:frames]
    if heldout == "session":
        if dataset not in SESSIONS:
            raise ValueError(f"heldout='session': {dataset or subj.name} has one session per subject; use 'half'")
        other = datasets.load(dataset, subject=subject, session=SESSIONS[dataset][1], **load).bold
        return bold, np.asarray(other) if frames is None else np.asarray(other)[:frames], \
            f"fitted on {SESSIONS[dataset][0]}, held out {SESSIONS[dataset][1]}"
    if heldout == "half":
        h = len(bold) // 2
        return bold[:h], bold[h:], f"fitted on frames 0-{h - 1}, held out frames {h}-{len(bold) - 1}"
    return bold, None, "no held-out data (all frames fitted)"


def group_fc_for(dataset: str | None, subject_id: str) -> np.ndarray | None:
    """Other people's average FC ``[N, N]`` for ``subject_id``: the group dataset's (:data:`GROUP_FC`)
    or the mean FC of the dataset's other subjects; None for the user's files or a single subject."""
    from .. import datasets

    if dataset is None:
        return None
    if dataset in GROUP_FC:
        name, sub = GROUP_FC[dataset]
        return np.asarray(datasets.load(name, subject=sub).fc, dtype=np.float64)
    fcs = [fc for s, fc in _subject_fcs(dataset).items() if s != str(subject_id)]
    return np.mean(fcs, axis=0) if fcs else None


@functools.lru_cache(maxsize=4)
def _subject_fcs(dataset: str) -> dict:
    """Every subject's FC of ``dataset`` (those with one), loaded once per process: a batch of S
    subjects needs each one's leave-one-out mean."""
    from .. import datasets

    out = {str(s): datasets.load(dataset, subject=s).fc for s in datasets.dataset_info(dataset).subjects}
    return {s: fc for s, fc in out.items() if fc is not None}


def figures_enabled(figures: bool) -> bool:
    """``figures`` unless matplotlib is missing: then the results are still written, the figures
    skipped with one warning (``pip install matplotlib`` adds them)."""
    if not figures:
        return False
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        logging.getLogger("nmmfit").warning("matplotlib is not installed: results written without figures "
                                            "(pip install matplotlib)")
        return False
    return True
