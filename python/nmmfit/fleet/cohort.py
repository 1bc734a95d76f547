"""Fit a cohort: plan the jobs of the subjects not yet done, run them on an engine, store each
subject's outcome as it arrives, then write the cohort table and figure and return a
:class:`FleetReport`.

Imports: .jobs, .store, .engines, .progress, .figure; datasets (subject IDs), experiments (subject
lists, the report base class, whether figures can be drawn)."""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .._validate import check_bool, check_int, check_seed
from ..experiments.reports import Report
from .engines import make_engine
from .jobs import FitJob, JobResult, SubjectRef, check_options
from .progress import FleetProgress
from .store import COHORT_CSV, CohortStore, check_subject_name

DEFAULT_RESTARTS = 4


def dataset_refs(dataset: str, subjects) -> list:
    """``subjects`` ("all", a list of IDs or indices, or a list string such as "0-6") of ``dataset``
    as :class:`.jobs.SubjectRef` under their dataset IDs."""
    from .. import datasets
    from ..experiments import parse_subjects

    ids = [str(s) for s in datasets.dataset_info(dataset).subjects]
    if isinstance(subjects, str):
        subjects = ids if subjects.strip() == "all" else parse_subjects(subjects)
    refs = []
    for s in subjects:
        sid = ids[s] if isinstance(s, int) and 0 <= s < len(ids) else str(s)
        if sid not in ids:
            raise ValueError(f"subjects: {s!r} is not a subject of {dataset} (its {len(ids)} subjects: indices "
                             f"0-{len(ids) - 1} or IDs {', '.join(ids[:8])}{', ...' if len(ids) > 8 else ''})")
        refs.append(SubjectRef(subject=sid, dataset=dataset))
    if len({r.subject for r in refs}) != len(refs):
        raise ValueError(f"subjects: {subjects!r} names a subject twice")
    return refs


def file_refs(path) -> list:
    """The subjects of a cohort file: a CSV with a header ``subject,sc,bold`` and optionally ``tr``,
    one row per subject; relative paths are relative to the CSV's directory."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"subjects_file: {path} does not exist")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"subject", "sc", "bold"}
    if not rows or not need <= set(rows[0]):
        raise ValueError(f"subjects_file: {path} needs a header with the columns subject, sc, bold (tr optional) "
                         f"and one row per subject")
    refs = []
    for i, row in enumerate(rows, start=2):
        tr = (row.get("tr") or "").strip()
        try:
            tr = float(tr) if tr else None
        except ValueError:
            raise ValueError(f"subjects_file: {path} line {i}: tr {tr!r} is not a number") from None
        refs.append(SubjectRef(subject=check_subject_name(row["subject"].strip()), tr=tr,
                               sc_path=str((path.parent / row["sc"].strip()).resolve()),
                               bold_path=str((path.parent / row["bold"].strip()).resolve())))
    if len({r.subject for r in refs}) != len(refs):
        raise ValueError(f"subjects_file: {path} lists a subject twice")
    return refs


def plan_jobs(refs: Sequence[SubjectRef], options: dict, seed: int, batch: int | None) -> list:
    """Jobs of at most ``batch`` subjects (None: all) each: a dataset's subjects packed in order
    (one batched model per job), the user's files one per job (their sizes may differ)."""
    packable = [r for r in refs if r.dataset is not None]
    size = max(1, len(packable)) if batch is None else batch
    jobs = [FitJob(tuple(packable[i:i + size]), options, seed) for i in range(0, len(packable), size)]
    return jobs + [FitJob((r,), options, seed) for r in refs if r.dataset is None]


@dataclass
class FleetReport(Report):
    """A cohort run (``nmmfit fleet``)."""
    out: str
    engine: str
    subjects: int
    done: int
    failed: int
    skipped: int
    ran: int
    wall_time: float
    subjects_per_hour: float | None
    failures: dict = field(default_factory=dict)
    scores: dict = field(default_factory=dict)
    table: str = ""
    figures: list = field(default_factory=list)

    def summary(self) -> str:
        rate = "" if self.subjects_per_hour is None else f", {self.subjects_per_hour:.1f} subjects/hour"
        lines = [f"fleet ({self.engine}): {self.subjects} subjects in {self.out}: {self.done} done "
                 f"({self.skipped} already, {self.ran} fitted now), {self.failed} failed; "
                 f"{self.wall_time:.1f} s{rate}"]
        lines += [f"  {label} over subjects (best restart each): median {v['median']:.3f}, range "
                  f"{v['min']:.3f}-{v['max']:.3f}" for label, v in self.scores.items()]
        lines += [f"  failed {s}: {e}" for s, e in self.failures.items()]
        lines.append(f"cohort table: {self.table}" + (f"; figure: {', '.join(self.figures)}" if self.figures else ""))
        return "\n".join(lines)


def _settings(refs, options: dict, seed: int) -> dict:
    """What makes two fits of a subject the same: its data source, the fit options and the seed."""
    source = refs[0].dataset if refs and refs[0].dataset is not None else "files"
    return dict(data=source, seed=seed, options={k: str(v) if isinstance(v, torch.dtype) else v
                                                 for k, v in sorted(options.items())})


def run_fleet(out, *, dataset: str | None = "hcp_aal2", subjects="all", subjects_file=None,
              restarts: int = DEFAULT_RESTARTS, seed: int = 0, engine: str = "local", address: str | None = None,
              workers: int | None = None, threads: int | None = None, batch: int | None = None,
              force: bool = False, progress: bool = True, figures: bool = True, **options) -> FleetReport:
    """Fit every subject of ``subjects`` (of ``dataset``; or the user's files listed in
    ``subjects_file``, :func:`file_refs`) with ``restarts`` restarts on ``engine`` ("local" or
    "ray", :mod:`.engines`), storing each in ``out`` (:class:`.store.CohortStore`) as it finishes.
    Subjects already done in ``out`` under the same settings are skipped (``force``: refitted); a
    subject whose fit fails is recorded with its error and the others go on. ``batch``: subjects per
    job (default: the engine's). ``options``: further fit keywords (``epochs``, ``frames``, ...:
    :func:`.jobs.fit_option_names`)."""
    restarts, seed = check_int("restarts", restarts, 1), check_seed("seed", seed)
    force, progress, figures = check_bool("force", force), check_bool("progress", progress), check_bool("figures", figures)
    batch = None if batch is None else check_int("batch", batch, 1)
    options = check_options({**options, "restarts": restarts})
    refs = file_refs(subjects_file) if subjects_file is not None else dataset_refs(dataset, subjects)
    runner = make_engine(engine, threads=threads, address=address, workers=workers)
    store = CohortStore(out, _settings(refs, options, seed), force=force)
    store.add_subjects([r.subject for r in refs])
    todo = [r for r in refs if force or not store.is_done(r.subject)]
    jobs = plan_jobs(todo, options, seed, runner.default_batch if batch is None else batch)
    bar = FleetProgress(len(todo), len(refs) - len(todo), enabled=progress)

    def on_result(result: JobResult):
        for outcome in result.outcomes:
            store.record(outcome)
        store.write_table()
        bar.finished(o.status for o in result.outcomes)

    try:
        runner.run(jobs, lambda job: bar.started(len(job.subjects)), on_result)
    finally:
        wall = bar.close()
        store.write_table()
    return _report(store, runner.name, refs, bar, wall, figures)


SUMMARY_SCORES = (("train_r", "train FC r (in-sample)"), ("heldout_r", "held-out FC r"))
"""The scores the summary gives over the cohort's subjects."""


def _cohort_scores(rows: list) -> dict:
    """Median and range over subjects (their best restart) of each of :data:`SUMMARY_SCORES`."""
    out = {}
    for key, label in SUMMARY_SCORES:
        v = np.array([r[key] for r in rows if r.get("best") is True and r.get(key) is not None], dtype=float)
        if v.size:
            out[label] = dict(median=float(np.median(v)), min=float(v.min()), max=float(v.max()))
    return out


def _report(store: CohortStore, engine: str, refs, bar: FleetProgress, wall: float, figures: bool) -> FleetReport:
    figs = []
    if figures:
        from ..experiments.protocol import figures_enabled

        if figures_enabled(True):
            from .figure import plot_cohort

            figs = [str(p) for p in plot_cohort(store.table(), store.root / "cohort.png")]
    states = {r.subject: store.state(r.subject) for r in refs}
    failures = {s: store.statuses[s]["error"] for s, st in states.items() if st == "failed"}
    ran = bar.done
    report = FleetReport(out=str(store.root), engine=engine, subjects=len(refs),
                         done=sum(st == "done" for st in states.values()), failed=len(failures), skipped=bar.skipped,
                         ran=ran, wall_time=wall, subjects_per_hour=3600 * ran / wall if ran and wall > 0 else None,
                         failures=failures, scores=_cohort_scores(store.table()), table=str(store.root / COHORT_CSV),
                         figures=figs)
    report.save(store.root / "report.json")
    return report


__all__ = ["run_fleet", "FleetReport", "plan_jobs", "dataset_refs", "file_refs", "DEFAULT_RESTARTS"]
