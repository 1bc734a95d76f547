"""Fitting subjects: one subject (a dataset's or the user's files) with restarts batched, several
subjects of a dataset batched in one model, and the demo (the paper's fit of one HCP subject).

One pipeline serves all three: initial values and noise keyed by subject (:mod:`.protocol`), one
batched :class:`nmmfit.RWW`, :func:`nmmfit.fit`, then a typed report (:mod:`.reports`)."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from .._files import prepare_run_dir
from .._validate import check_int
from ..fit import fit_stages
from ..model import RWW
from .protocol import (DEMO_FIT, default_demo_epochs, figures_enabled, group_fc_for, init_for, load_subject,
                       split_data, subject_defaults, subject_keys, subject_scheme)
from .reports import CohortFitReport, SubjectFitReport

log = logging.getLogger("nmmfit")

DEMO_RESTARTS = 4
"""Random restarts the demo fits together (one batch; the reported model is the best by train FC r)."""


TEST_WINDOWS = 120
"""Windows of the test run that gives a subject fit's FC (the paper's 120 x 20 frames): the model's
FC is a property of the model, so it is estimated from a run longer than the data (2400 frames
whatever the data's length); a run as short as a 600-frame half leaves the model's FC noisier than
the data it is scored against. The demo keeps the data's length (``test_windows="data"``)."""


TRAP_R = 0.1
"""A restart whose train FC r stays below this has fallen into the output-noise trap (see :func:`demo`)."""


def fit_warnings(res, index: int, restarts: slice) -> list:
    """Warnings for the model reported at ``index`` (of the restarts in ``restarts``): restarts in
    the output-noise trap, and a reported fit no better than the connectome alone (its train or
    held-out FC r below r(SC, FC))."""
    out = []
    if res.train_r is None:
        return out
    r = np.asarray(res.train_r)[restarts]
    trapped = int((r < TRAP_R).sum())
    if trapped:
        out.append(f"{trapped} of {len(r)} restart(s) ended at train FC r < {TRAP_R} (the output-noise trap); "
                   f"the best by train FC r is reported" + ("" if trapped < len(r) else ": all failed, refit with "
                                                           "more --restarts or another --seed"))
    sc_fc = res.baselines.get("sc_fc")
    for name, v in (("train", res.train_r), ("held-out", res.heldout_r)):
        if v is not None and sc_fc is not None and v[index] <= sc_fc[index]:
            out.append(f"the reported {name} FC r {v[index]:.3f} is no better than the connectome alone "
                       f"(r(SC, FC) = {sc_fc[index]:.3f}): this fit explains nothing beyond the SC")
    return out


def _batched_init(inits: list, R: int) -> dict:
    """Per-subject initial values (each ``[R]`` or a scalar) -> one ``[S * R]`` tensor per name."""
    def rows(v):
        v = torch.as_tensor(v, dtype=torch.float64).reshape(-1)
        return v.expand(R) if v.numel() == 1 else v

    return {k: torch.cat([rows(i[k]) for i in inits]) for k in inits[0]} if inits[0] else {}


def _of_the_best_restart(uncertainty, restarts: int):
    """The fit's ``uncertainty=`` settings for a subject fitted with ``restarts``: intervals for the
    reported restart only (the others are discarded fits: simulating their replicates would cost
    the time of theirs)."""
    if not uncertainty:
        return uncertainty
    return {**(uncertainty if isinstance(uncertainty, dict) else {}), "best_of": restarts}


def _fit_batch(out, sc, bold, keys, *, tr, heldout, group_fc, restarts: int, scheme, fit, regional, gains, sigma,
               init, g_mean, seed, backend, dtype, sc_preprocess, resume, overwrite, progress, **fit_settings):
    """Fit the models of ``keys`` (per subject: ``(init_seed, streams [R])``, or ``(seed, None)``
    for the user's files, whose noise is keyed by position) on ``sc # [N, N] | [B, N, N]`` and
    ``bold # [T, N] | [B, T, N]`` in the stages of ``scheme`` (:func:`nmmfit.fit.fit_stages`);
    returns the :class:`nmmfit.FitResult` (not yet saved)."""
    R = restarts
    fit, overrides = subject_defaults(fit, sigma, init)
    inits = [init_for(scheme, R, seed=k, g_mean=g_mean, overrides=overrides) for k, _ in keys]
    streams = [s for _, s in keys]
    rng = {} if streams[0] is None else dict(stream=torch.cat(streams), rng_by_stream=True)
    model = RWW(sc, scheme=scheme, batch=len(keys) * R, fit=fit, regional=regional, init=_batched_init(inits, R),
                fit_gains=gains, seed=seed, backend=backend, dtype=dtype, sc_preprocess=sc_preprocess, tr=tr, **rng)
    return fit_stages(model, bold, heldout=heldout, group_fc=group_fc, seed=seed, out_dir=out, resume=resume,
                      overwrite=overwrite, progress=progress, save_result=False, **fit_settings)


def fit_subject(out, *, dataset: str | None = "hcp_aal2", subject=0, sc_path=None, bold_path=None, tr=None,
                bold_layout="auto", scheme=None, preset=None, restarts: int = DEMO_RESTARTS, epochs: int | None = None,
                window: int = 20, mode: str = "windowed", lr: float = 0.01, fit: Sequence[str] | None = None,
                regional: Sequence[str] = (), gains: bool | None = None, sigma: float | None = None,
                init: Mapping | None = None, g_mean: float = 80.0, frames: int | None = None,
                test_windows=TEST_WINDOWS, average_last: int = 100, seed: int = 0, backend: str = "auto",
                lr_scale: Mapping | None = None, stage_epochs: Mapping | None = None, sc_preprocess: str | None = None, resume: bool = False,
                progress: bool = True, dtype=torch.float32, figures: bool = True, heldout: str = "auto",
                command: str = "fit", overwrite: bool = False, uncertainty=True) -> SubjectFitReport:
    """Fit one subject (a bundled dataset's or the user's files) with ``restarts`` models batched.

    Writes ``result.json``/``result.npz``, the per-epoch ``checkpoint.pt``, ``report.json`` and
    figures into ``out`` (a previous run's results there are refused unless ``overwrite``, or
    continued with ``resume``: :func:`nmmfit.fit`). A dataset subject's randomness is keyed as in :func:`fit_subjects`, so
    ``subject=k`` gives the fit of ``subjects=[k]``. ``heldout`` (:func:`.protocol.split_data`): the
    data the fit never sees, scored beside the baselines (group FC: :func:`.protocol.group_fc_for`).
    ``scheme``/``preset``: :func:`.protocol.subject_scheme` (default: fitted to generalise, in a group
    stage and a subject stage, where a group FC exists); ``epochs``: the last stage's (None: the
    scheme's).
    ``uncertainty``: intervals and identified directions of the fitted parameters, and what the SC
    gains carry (:func:`nmmfit.fit` ``uncertainty=``; False skips them)."""
    t0 = time.perf_counter()
    check_int("restarts", restarts, 1)
    out = prepare_run_dir(out, overwrite=overwrite, resume=resume)
    subj = load_subject(dataset, subject, sc_path=sc_path, bold_path=bold_path, tr=tr, bold_layout=bold_layout)
    if subj.bold is None:
        raise ValueError(f"{subj.name}: has no BOLD to fit (only an SC); pick a dataset with BOLD or give --bold")
    bold, held, protocol = split_data(subj, dataset, subject, heldout, frames)
    group = group_fc_for(dataset, subj.subject) if sc_path is None else None
    keys = [subject_keys(dataset, subj.subject, seed, restarts) if sc_path is None else (seed, None)]
    scheme = subject_scheme(scheme, preset, has_group=group is not None)
    res = _fit_batch(out, subj.sc, bold, keys, tr=subj.tr, heldout=held, group_fc=group, restarts=restarts,
                     scheme=scheme, fit=fit, regional=regional,
                     gains=gains, sigma=sigma, init=init, g_mean=g_mean, seed=seed, backend=backend, dtype=dtype,
                     sc_preprocess=sc_preprocess, resume=resume, overwrite=overwrite, progress=progress, mode=mode,
                     epochs=epochs,
                     window=window, lr=lr, lr_scale=lr_scale or {}, stage_epochs=stage_epochs, test_windows=test_windows,
                     average_last=average_last, uncertainty=_of_the_best_restart(uncertainty, restarts))
    res.extra.update(dataset=subj.name, subject=subj.subject, tr=subj.tr, n_frames=int(len(bold)), protocol=protocol,
                     labels=None if subj.labels is None else list(subj.labels))
    res.save(out)
    figs = []
    if figures_enabled(figures):
        from ..plots import plot_result

        figs = [str(p) for p in plot_result(res, out, emp_bold=np.asarray(bold) / np.max(bold))]
    b = res.best()
    warnings = fit_warnings(res, b, slice(None))
    for w in warnings:
        log.warning("%s subject %s: %s", subj.name, subj.subject, w)
    report = SubjectFitReport(
        command=command, dataset=subj.name, subject=str(subj.subject), N=int(subj.N), frames=int(len(bold)),
        restarts=restarts, epochs=res.epochs_completed, mode=mode, scheme=res.config["model"]["scheme"],
        train_r=None if res.train_r is None else res.train_r.tolist(),
        test_r=None if res.test_r is None else res.test_r.tolist(),
        heldout_r=None if res.heldout_r is None else res.heldout_r.tolist(), best=b, protocol=protocol,
        scores=res.scores(b),
        fitted={k: np.asarray(v)[b].tolist() for k, v in res.fitted.items()}, warnings=warnings,
        wall_time=time.perf_counter() - t0, fit_wall_time=res.wall_time, figures=figs, out=str(out),
        stages=res.extra.get("stages", []), start=res.extra.get("start", {}),
        uncertainty=res.uncertainty_lines(b))
    report.save(out / "report.json")
    return report


def _cohort_data(dataset: str, subjects: Sequence, frames: int | None, R: int, heldout: str):
    """The subjects' SC ``[S * R, N, N]``, fitted and held-out BOLD ``[S * R, T, N]`` (runs cut to
    the shortest; held-out None with ``heldout="none"``), group FC ``[S * R, N, N]`` and protocol."""
    from .. import datasets

    subs = [datasets.load(dataset, subject=s) for s in subjects]
    if any(sj.bold is None for sj in subs):
        raise ValueError(f"{dataset}: has no BOLD to fit")
    Ns, TRs = {sj.N for sj in subs}, {sj.tr for sj in subs}
    if len(Ns) != 1 or len(TRs) != 1:
        raise ValueError(f"{dataset}: the subjects differ in region count {sorted(Ns)} or TR {sorted(TRs)}; "
                         f"fit them in separate batches")
    T = min(len(sj.bold) for sj in subs)
    if frames is not None:
        T = min(T, int(frames))
    splits = [split_data(sj, dataset, s, heldout, T) for sj, s in zip(subs, subjects)]
    T_fit = min(len(b) for b, _, _ in splits)
    rep = lambda arrays: np.repeat(np.stack(arrays), R, axis=0)          # noqa: E731  (subject-major rows)
    sc = rep([sj.sc for sj in subs])
    bold = rep([b[:T_fit] for b, _, _ in splits])
    held = None
    if splits[0][1] is not None:
        T_held = min(len(h) for _, h, _ in splits)
        held = rep([h[:T_held] for _, h, _ in splits])
    groups = [group_fc_for(dataset, sj.subject) for sj in subs]
    group = rep(groups) if all(g is not None for g in groups) else None
    return subs, sc, bold, held, group, splits[0][2]


def _per_subject(res, ids: list, R: int) -> list:
    """Each subject's reported model: its best restart by train FC r (the test run only evaluates)."""
    rows = []
    for s, sid in enumerate(ids):
        b = res.best(slice(s * R, (s + 1) * R))
        rows.append(dict(subject=sid, best_restart=b - s * R, index=b,
                         train_r=float(res.train_r[b]) if res.train_r is not None else None,
                         test_r=float(res.test_r[b]) if res.test_r is not None else None,
                         scores=res.scores(b), warnings=fit_warnings(res, b, slice(s * R, (s + 1) * R)),
                         fitted={k: np.asarray(v)[b].tolist() for k, v in res.fitted.items()}))
    return rows


def _cohort_figures(res, out: Path, dataset: str, rows: list) -> list:
    from ..plots import plot_fc, plot_losses, plot_params

    figs = []
    sim_fc = res.test_fc if res.test_fc is not None else res.train_fc
    if sim_fc is not None:
        figs += [str(plot_fc(res.emp_fc[r["index"]], sim_fc[r["index"]], out / f"fc_subject{r['subject']}.png",
                             title=f"{dataset} subject {r['subject']}")) for r in rows]
    return figs + [str(plot_losses(res.history, out / "loss.png")), str(plot_params(res.history, out / "params.png"))]


def fit_subjects(out, *, dataset: str = "hcp_aal2", subjects: Sequence = (0,), scheme=None, preset=None,
                 epochs: int | None = None, window: int = 20, mode: str = "windowed", lr: float = 0.01,
                 fit: Sequence[str] | None = None, regional: Sequence[str] = (), gains: bool | None = None,
                 sigma: float | None = None, init: Mapping | None = None, g_mean: float = 80.0,
                 frames: int | None = None, test_windows=TEST_WINDOWS, average_last: int = 100, seed: int = 0,
                 backend: str = "auto", lr_scale: Mapping | None = None, stage_epochs: Mapping | None = None, sc_preprocess: str | None = None,
                 resume: bool = False, progress: bool = True, dtype=torch.float32, figures: bool = True,
                 restarts: int = DEMO_RESTARTS, heldout: str = "auto", overwrite: bool = False) -> CohortFitReport:
    """Fit several subjects of a dataset batched in one model: B = len(subjects) * restarts
    (subject-major), each model with its subject's SC and BOLD, its own initial values (drawn per
    subject from ``(seed, subject)``) and its own noise (keyed by the subject's index in the dataset
    and the restart: :func:`.protocol.subject_keys`). The models are independent (the summed loss
    gives each its own gradient), so a subject's fit is the same alone or in any batch, up to float
    rounding. Reports per subject its best restart by train FC r, and the wall time per subject."""
    t0 = time.perf_counter()
    R = check_int("restarts", restarts, 1)
    out = prepare_run_dir(out, overwrite=overwrite, resume=resume)
    subs, sc, bold, held, group, protocol = _cohort_data(dataset, subjects, frames, R, heldout)
    T = bold.shape[1]
    keys = [subject_keys(dataset, sj.subject, seed, R) for sj in subs]
    scheme = subject_scheme(scheme, preset, has_group=group is not None)
    res = _fit_batch(out, sc, bold, keys, tr=subs[0].tr, heldout=held, group_fc=group, restarts=R, scheme=scheme,
                     fit=fit, regional=regional, gains=gains,
                     sigma=sigma, init=init, g_mean=g_mean, seed=seed, backend=backend, dtype=dtype,
                     sc_preprocess=sc_preprocess, resume=resume, overwrite=overwrite, progress=progress, mode=mode,
                     epochs=epochs,
                     window=window, lr=lr, lr_scale=lr_scale or {}, stage_epochs=stage_epochs, test_windows=test_windows,
                     average_last=average_last)
    ids = [str(sj.subject) for sj in subs]
    res.extra.update(dataset=dataset, subjects=ids, restarts=R, tr=subs[0].tr, n_frames=int(T), protocol=protocol,
                     labels=None if subs[0].labels is None else list(subs[0].labels))
    res.save(out)
    rows = _per_subject(res, ids, R)
    figs = _cohort_figures(res, out, dataset, rows) if figures_enabled(figures) else []
    wall = time.perf_counter() - t0
    report = CohortFitReport(
        dataset=dataset, subjects=ids, restarts=R, B=len(subs) * R, N=int(subs[0].N), frames=int(T),
        epochs=res.epochs_completed, mode=mode, protocol=protocol, per_subject=[{k: v for k, v in r.items() if k != "index"} for r in rows],
        train_r=None if res.train_r is None else res.train_r.tolist(),
        test_r=None if res.test_r is None else res.test_r.tolist(), wall_time=wall, fit_wall_time=res.wall_time,
        train_time=res.train_time, wall_time_per_subject=wall / len(subs), figures=figs, out=str(out),
        stages=res.extra.get("stages", []), start=res.extra.get("start", {}))
    report.save(out / "report.json")
    return report


def demo(out, *, dataset="hcp_aal2", subject=0, epochs: int | None = None, frames: int | None = None,
         fit_sigma: bool = False, restarts: int = DEMO_RESTARTS, backend="auto", seed: int = 0,
         progress: bool = True, **kw) -> SubjectFitReport:
    """Fit one HCP subject as the paper did (griffiths2022, 20-TR windows, Adam 0.01/1e-7, the
    paper's objective and initial values, SC gains), then the paper's test run.

    ``restarts`` (4) models with their own initial values and noise are fitted as one batch and
    the best by train FC r is reported, because a single fit of the paper's scheme can fall
    into a trap: while the simulated FC does not yet correlate with the empirical one (r ~ 0 in
    every window at the paper's initial values), the FC term pushes the output-noise std up and
    the fit stays noise-dominated (hcp_aal2 subject 0 alone ends at train FC r -0.01).

    One deliberate difference by default: the state-noise std stays at 0.02 (the floor of the
    paper's transform 0.02 + relu(std_in)) instead of being fitted from 0.07: fitted, its
    trajectory is fragile (it falls to the floor, or grows to 0.2-0.6 where the model loses its FC
    structure, and which happens changed with float32 rounding alone). ``fit_sigma=True``
    reproduces the paper exactly. ``epochs=None``: :func:`.protocol.default_demo_epochs`."""
    fit = None if fit_sigma else DEMO_FIT
    sigma = None if fit_sigma else 0.02
    if epochs is None:
        epochs = default_demo_epochs(backend)
    kw.setdefault("test_windows", "data")
    return fit_subject(out, dataset=dataset, subject=subject, scheme="griffiths2022", epochs=epochs, frames=frames,
                       fit=fit, sigma=sigma, restarts=restarts, backend=backend, seed=seed, progress=progress, command="demo", **kw)


__all__ = ["fit_subject", "fit_subjects", "demo", "DEMO_RESTARTS"]
