"""The unit of work of a fleet: a picklable :class:`FitJob` (the subjects' data references, the fit
options, the seed) and what running it yields, a :class:`JobResult` (per subject: done with its
result files as bytes and its cohort rows, or failed with the error).

A job runs the package's own subject fits, :func:`nmmfit.experiments.fit_subject` (one subject) or
:func:`nmmfit.experiments.fit_subjects` (several of a dataset batched in one model), in a private
temporary directory, and returns the files instead of writing them anywhere shared: the driver
stores them (:mod:`.store`), so a worker killed mid-job leaves nothing behind. A dataset subject's
randomness is keyed by (seed, subject), so its fit does not depend on the job or worker it lands in.

Imports: experiments, fit (FitResult), _validate; nothing of the rest of fleet."""
from __future__ import annotations

import dataclasses
import inspect
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from .._validate import check_choice, check_int

RESULT_FILES = ("result.json", "result.npz", "fitted.csv", "scores.csv")
"""The files of a subject's fit the store keeps (the checkpoint is the job's scratch; the fleet draws
one cohort figure instead of per-subject ones)."""

FLEET_CONTROLLED = frozenset({"out", "dataset", "subject", "subjects", "sc_path", "bold_path", "tr", "seed",
                              "resume", "overwrite", "progress", "command", "bold_layout", "figures"})
"""Keywords of the subject fits that the fleet sets itself (per job or per subject)."""


def fit_option_names() -> frozenset:
    """The fit options a fleet passes through: the keywords that ``fit_subject`` and ``fit_subjects``
    both take, less :data:`FLEET_CONTROLLED`. Read from their signatures, so one source says it."""
    from ..experiments import fit_subject, fit_subjects

    def names(f):
        return {p.name for p in inspect.signature(f).parameters.values() if p.kind is p.KEYWORD_ONLY}

    return frozenset((names(fit_subject) & names(fit_subjects)) - FLEET_CONTROLLED)


def check_options(options: Mapping) -> dict:
    """``options`` as a plain dict, every name one :func:`fit_option_names` lists, the fit settings
    checked by :class:`nmmfit.FitConfig` and the data ones here: a bad value is refused before any
    job runs, not recorded as every subject's failure."""
    from ..experiments.protocol import HELDOUT
    from ..fit import FitConfig

    if not isinstance(options, Mapping):
        raise TypeError(f"options: expected a mapping of fit options, got {type(options).__name__}")
    allowed = fit_option_names()
    bad = sorted(set(options) - allowed)
    if bad:
        raise TypeError(f"options: unknown fit option(s) {bad}; expected names from {sorted(allowed)}")
    settings = {f.name for f in dataclasses.fields(FitConfig)} & {k for k, v in options.items() if v is not None}
    FitConfig(**{k: options[k] if k != "lr_scale" else dict(options[k] or {}) for k in settings})
    check_int("restarts", options.get("restarts", 1), 1)
    if options.get("frames") is not None:
        check_int("frames", options["frames"], 1)
    check_choice("heldout", options.get("heldout", "auto"), HELDOUT)
    return dict(options)


@dataclass(frozen=True)
class SubjectRef:
    """Where one subject's data is: a bundled dataset's subject ID (``dataset`` and ``subject``), or
    the user's files (``sc_path``, ``bold_path``, ``tr``; ``dataset`` None). ``subject`` names the
    subject's directory in the store."""
    subject: str
    dataset: str | None = None
    sc_path: str | None = None
    bold_path: str | None = None
    tr: float | None = None

    def fit_kwargs(self) -> dict:
        """The data keywords of :func:`nmmfit.experiments.fit_subject`."""
        if self.dataset is not None:
            return dict(dataset=self.dataset, subject=self.subject)
        return dict(dataset=None, sc_path=self.sc_path, bold_path=self.bold_path, tr=self.tr)


@dataclass(frozen=True)
class FitJob:
    """Subjects fitted together in one process: several of one dataset share a batched model
    (``fit_subjects``), one subject is fitted alone (``fit_subject``: the same fit as
    ``nmmfit fit --subject k``). ``options``: fit keywords (:func:`fit_option_names`)."""
    subjects: tuple
    options: Mapping
    seed: int = 0

    @property
    def key(self) -> str:
        return "+".join(s.subject for s in self.subjects)


@dataclass
class SubjectOutcome:
    """One subject of a job: ``status`` "done" (``files``: name -> bytes, ``rows``: cohort rows, one
    per restart) or "failed" (``error``: the exception, one line)."""
    subject: str
    status: str
    files: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)
    error: str | None = None
    wall_time: float = 0.0
    worker: str = ""


@dataclass
class JobResult:
    job: FitJob
    outcomes: list
    wall_time: float
    worker: str


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def cohort_rows(result) -> list:
    """One row per restart of a subject's :class:`nmmfit.FitResult`: restart, best (by train FC r),
    the FC r scores (in-sample and held-out), the baselines, and each fitted parameter (global:
    its value; regional: its mean over regions, as ``NAME_mean``)."""
    best, rows = result.best(), []
    scores = dict(train_r=result.train_r, test_r=result.test_r, heldout_r=result.heldout_r, **result.baselines)
    for r in range(int(result.config["B"])):
        row = dict(restart=r, best=r == best)
        row.update({k: float(np.asarray(v)[r]) for k, v in scores.items() if v is not None})
        for name, v in result.fitted.items():
            v = np.asarray(v)[r]
            row[name if v.ndim == 0 else f"{name}_mean"] = float(np.mean(v))
        rows.append(row)
    return rows


def _read_files(out: Path) -> dict:
    return {name: (out / name).read_bytes() for name in RESULT_FILES if (out / name).is_file()}


def _done(subject: str, out: Path, result, wall: float) -> SubjectOutcome:
    return SubjectOutcome(subject=subject, status="done", files=_read_files(out), rows=cohort_rows(result),
                          wall_time=wall, worker=worker_name())


def _failed(subject: str, exc: BaseException, wall: float) -> SubjectOutcome:
    message = " ".join(f"{type(exc).__name__}: {exc}".split())
    return SubjectOutcome(subject=subject, status="failed", error=message, wall_time=wall, worker=worker_name())


def _fit_one(ref: SubjectRef, options: dict, seed: int, scratch: Path) -> SubjectOutcome:
    """One subject through ``fit_subject``; any exception is the subject's failure, not the job's."""
    from ..experiments import fit_subject
    from ..fit import FitResult

    t0, out = time.perf_counter(), scratch / "subject"
    try:
        fit_subject(out, **ref.fit_kwargs(), seed=seed, progress=False, figures=False, **options)
        return _done(ref.subject, out, FitResult.load(out), time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001  (recorded as the subject's failure; the cohort goes on)
        return _failed(ref.subject, exc, time.perf_counter() - t0)


def _fit_batch(job: FitJob, options: dict, scratch: Path) -> list | None:
    """The job's dataset subjects batched through ``fit_subjects``, split into one result per
    subject (:meth:`nmmfit.FitResult.select`); None when the batch fails (the caller then fits
    each subject alone, so one bad subject fails alone)."""
    from ..experiments import fit_subjects
    from ..fit import FitResult

    t0, out = time.perf_counter(), scratch / "batch"
    try:
        fit_subjects(out, dataset=job.subjects[0].dataset, subjects=[s.subject for s in job.subjects],
                     seed=job.seed, progress=False, figures=False, **options)
        whole = FitResult.load(out)
    except Exception:  # noqa: BLE001  (isolated below, subject by subject)
        return None
    R, wall = int(whole.config["B"]) // len(job.subjects), time.perf_counter() - t0
    outcomes = []
    for s, ref in enumerate(job.subjects):
        one = whole.select(slice(s * R, (s + 1) * R))
        one.extra.update(subject=ref.subject, subjects=None, batch=[x.subject for x in job.subjects])
        sub_out = one.save(scratch / f"subject-{s}")
        outcomes.append(_done(ref.subject, sub_out, one, wall / len(job.subjects)))
    return outcomes


def run_job(job: FitJob, threads: int | None = None) -> JobResult:
    """Run ``job`` in this process with ``threads`` torch/OpenMP threads (None: leave as is) in a
    private temporary directory; every subject ends done or failed, never raising for a fit's error."""
    import torch

    if threads is not None:
        torch.set_num_threads(check_int("threads", threads, 1))
    options, t0 = check_options(job.options), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nmmfit-job-") as tmp:
        scratch = Path(tmp)
        batched = len(job.subjects) > 1 and all(s.dataset is not None for s in job.subjects)
        outcomes = _fit_batch(job, options, scratch) if batched else None
        if outcomes is None:
            outcomes = [_fit_one(ref, options, job.seed, scratch / str(i)) for i, ref in enumerate(job.subjects)]
    return JobResult(job=job, outcomes=outcomes, wall_time=time.perf_counter() - t0, worker=worker_name())


__all__ = ["RESULT_FILES", "SubjectRef", "FitJob", "SubjectOutcome", "JobResult", "fit_option_names",
           "check_options", "cohort_rows", "run_job"]
