"""What the experiments share: loading a subject, its subject-keyed randomness, random starts from
the scheme, parsing subject lists, and writing JSON."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from ..params.schemes import get_scheme
from ..rng import derive_seed

DEMO_FIT = ("g", "g_EE", "g_IE", "g_EI", "sigma_out")
"""Parameters the demo fits: the paper's, except the state-noise std, which stays at the
transform's floor 0.02 (see :func:`nmmfit.experiments.demo`)."""


def load_subject(dataset: str | None, subject=0, *, sc_path=None, bold_path=None, tr=None,
                  bold_layout="auto"):
    from .. import datasets

    if sc_path is not None:
        return datasets.load_files(sc_path, bold_path, tr=tr, bold_layout=bold_layout)
    if dataset is None:
        raise ValueError("give a dataset name or an SC file")
    return datasets.load(dataset, subject=subject)


def write_json(path, obj):
    Path(path).write_text(json.dumps(obj, indent=2, default=lambda o: np.asarray(o).tolist()))


def init_for(scheme, B: int, *, seed: int, g_mean=80.0, sigma=None, overrides: Mapping | None = None) -> dict:
    """Initial values for B restarts: the scheme's random starts (the paper's draws for
    griffiths2022, none for deco2014), then ``sigma`` and ``overrides``."""
    init = dict(get_scheme(scheme).starts(B, g_mean=g_mean, seed=seed))
    if sigma is not None:
        init["sigma"] = float(sigma)
    init.update(dict(overrides or {}))
    return init


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
