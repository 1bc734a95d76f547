"""Fitting a batch of RWW models to fMRI: the paper's windowed scheme and full-session gradients.

``nmmfit.fit(model, bold, **settings)`` trains ``model`` (an :class:`nmmfit.RWW` holding B models)
on empirical BOLD (frames x regions, shared by the B models or one per model) and returns a
:class:`FitResult`. The settings are a :class:`FitConfig`.

``mode="windowed"`` (the paper, Griffiths et al. 2022): the run is cut into windows of
``window`` frames (20 TRs); each window is simulated from the state the previous one ended in
(carried over, detached: truncated backprop), the loss is computed within the window and Adam
(lr 0.01, eps 1e-7; one optimizer over the model and the loss hyper-parameters) takes one step.
An epoch is one pass over the run; the state carries over between epochs too.

``mode="full"``: one update per epoch with the exact gradient of the loss over the whole run
(every frame), the state carried over from the previous update (after ``burn_in_windows``
windows simulated without gradient at the start). ``sim_frames`` simulates a run longer than the
data per update (for losses that compare statistics, not time points); ``resample_noise=False``
uses the same noise and initial state in every update (common random numbers: a deterministic
objective; ``discard_frames`` then leaves the start of every run out of the loss).

The estimate is the mean of the last ``average_last`` updates (100 in the paper). Empirical BOLD
is scaled by its maximum (per model). The test run (as in the paper) starts from a fresh random
state, discards ``burn_in_windows`` windows and simulates ``test_windows`` windows with the
estimated values; its FC over the whole run is compared with the empirical FC of the *same* data
that was fitted: an in-sample score (``test_r``), not a held-out one.

With ``out_dir`` a checkpoint is written after every epoch; ``resume=True`` continues from it
(same settings; ``epochs`` may be larger) and gives the same result as an uninterrupted fit. A
directory holding a previous run's results is never overwritten unless ``overwrite=True``.

:func:`fit_stages` runs a scheme's stages in order (e.g. a group stage, then the subject's).

Modules: config (FitConfig), data (prepare_bold), adam (torch's Adam without torch.optim's compiler
import), optim, history, checkpoint, guards, loop (Run, update, train, Callback), callbacks, evaluate
(simulate_test), result (FitResult), stages (fit_stages). Imports: model,
losses, stats, rng; nothing here imports experiments or the CLI.
"""
from __future__ import annotations

import copy
import hashlib
import time
from pathlib import Path
from typing import Callable

import torch

from .._files import prepare_run_dir
from .._validate import check_bool, check_tensor
from ..losses import Objective, default_objective
from ..rng import derive_seed
from ..stats.fc import fc_matrix, fc_r
from .callbacks import Checkpointer, ProgressBar, UserCallback
from .checkpoint import CheckpointError, load_checkpoint
from .config import FitConfig
from .data import prepare_bold
from .evaluate import score_heldout, simulate_test, test_r_without_gains
from .guards import CHECKPOINT, FitDivergedError
from .history import History
from .loop import Callback, Problem, Run, train
from .optim import CosineLR, make_optimizer
from .result import FitResult
from .stages import fit_stages
from .uncertainty import Uncertainty, UncertaintyWarning, check_settings, fitted_uncertainty


def _fingerprint(cfg: FitConfig, model, data: torch.Tensor, n_params: int) -> str:
    """What must match for a checkpoint to continue this fit (kernels and reference are equal)."""
    settings = {k: v for k, v in cfg.to_dict().items() if k not in ("epochs", "test", "test_windows")}
    m = {k: v for k, v in model.config().items() if k != "backend"}
    key = dict(settings=settings, model=m, data=float(data.double().sum()), n_params=n_params)
    return hashlib.sha1(repr(sorted(key.items())).encode()).hexdigest()[:16]


def _start(p: Problem, cfg: FitConfig) -> Run:
    """A new run: the seeded initial state, and in full mode ``burn_in_windows`` windows simulated."""
    model = p.model
    X = model.initial_state(seed=derive_seed("init-state", cfg.seed))
    step = 0
    if cfg.mode == "full" and cfg.burn_in_windows > 0:
        with torch.no_grad():
            X = model(cfg.burn_in_windows * cfg.window, X, step_offset=0, seed=cfg.seed).state
        step = cfg.burn_in_windows * cfg.window * model.steps_per_sample
    return Run(state=X, step=step, state0=X, step0=step, history=History(cfg.average_last))


def _resume(p: Problem, cfg: FitConfig, ckpt: Path, fingerprint: str) -> Run:
    ck = load_checkpoint(ckpt)
    if ck.get("fingerprint") != fingerprint:
        raise ValueError(f"resume: the checkpoint in {ckpt.parent} was written by a fit with different "
                         f"settings, data or model; use a new out_dir, or overwrite=True (--overwrite) to replace "
                         f"that run")
    p.model.load_state_dict(ck["model"])
    p.objective.load_state_dict(ck["objective"])
    p.adam.load_state_dict(ck["optimizer"])
    if p.lbfgs is not None:
        p.lbfgs.from_model()
        p.lbfgs.opt.load_state_dict(ck["lbfgs"])
    history = History(cfg.average_last)
    history.load_state_dict(ck["history"])
    return Run(state=ck["state"], step=ck["global_step"], state0=ck["x0"], step0=ck["step0"], history=history,
               epoch=ck["epoch"], elapsed=ck["elapsed"], last_train_bold=ck["last_train_bold"])


def _result(p: Problem, run: Run, config: dict, train_time: float) -> tuple[FitResult, object]:
    """The estimates (means over the last updates) as a :class:`FitResult`, and the estimated model."""
    model, cfg, data = p.model, p.cfg, p.data
    arrays = run.history.arrays(data.shape[0])
    fitted, hyper, gains = run.history.estimates(model, arrays)
    est = copy.deepcopy(model)
    est.set_values({n: torch.as_tensor(fitted[n]) for n in model.fitted})
    if gains is not None:
        est.set_gains(gains)
    with torch.no_grad():
        W = est.coupling().cpu().numpy()
    result = FitResult(config=config, fitted=fitted, fitted_hyper=hyper, history=arrays,
                       sc=model.sc.cpu().numpy(), W=W, emp_fc=fc_matrix(data.double()).cpu().numpy(),
                       gains=None if gains is None else gains.cpu().numpy(), train_time=train_time,
                       epochs_completed=len(run.history.epochs["epoch_loss"]))
    if run.last_train_bold is not None:
        tb = run.last_train_bold[:, min(cfg.train_fc_skip, run.last_train_bold.shape[1] - 2):]
        result.train_bold = run.last_train_bold.numpy()
        result.train_fc = fc_matrix(tb.double()).numpy()
        result.train_r = fc_r(tb, data.cpu())
    return result, est


def _group_fc(group_fc, N: int):
    g = check_tensor("group_fc", group_fc, dims=(2, 3), dtype=torch.float64)
    if g.shape[-2:] != (N, N):
        raise ValueError(f"group_fc: expected shape [N, N] or [B, N, N] with N={N}, got {list(g.shape)}")
    return g.numpy()


def fit(model, bold, *, objective: Objective | None = None, config: FitConfig | None = None, heldout=None,
        group_fc=None, out_dir=None, resume: bool = False, overwrite: bool = False,
        callback: Callable[[dict], None] | None = None, callbacks=(), progress: bool = False,
        save_result: bool = True, uncertainty=False, **settings) -> FitResult:
    """Fit ``model`` (an :class:`nmmfit.RWW`, trained in place) to ``bold`` and evaluate it.

    Args:
        bold: empirical BOLD, frames x regions: ``[T, N]`` (shared by the B models) or ``[B, T, N]``.
        heldout: BOLD the fit never sees, ``[T', N]`` or ``[B, T', N]`` (another session of the same
            subject, or the other half of the run): the test run's FC is scored against it too
            (``result.heldout_r``), beside the baselines (``result.baselines``).
        group_fc: a group-average FC ``[N, N]`` or ``[B, N, N]`` (other people's): the group baseline
            and the subject-specific score.
        objective: an :class:`nmmfit.Objective` (default: the model's scheme's).
        config: a :class:`FitConfig`; or give its fields as keyword arguments (``epochs=``, ``mode=``,
            ``lr=``, ...), not both.
        out_dir: directory for the per-epoch checkpoint and the final result (result.json/npz).
        resume: continue from ``out_dir``'s checkpoint when there is one.
        overwrite: replace a previous run's results in ``out_dir`` (deleted first); without it (or
            ``resume``) a directory holding result.json/npz, checkpoint.pt or report.json is refused
            with :class:`FileExistsError`.
        callback: called with a dict after every update and epoch (see :class:`.loop.Callback`).
        callbacks: more :class:`.loop.Callback` objects.
        progress: a progress bar on stderr (off by default in the API; the CLI turns it on).
        uncertainty: ``True`` or a dict of :func:`nmmfit.fit.uncertainty.laplace_uncertainty`
            settings (and ``best_of``: :func:`nmmfit.fit.uncertainty.fitted_uncertainty`): intervals for the fitted global parameters at the estimate
            (``result.uncertainty``, saved with the result) and, for a model with SC gains, the
            test FC r with the gains reset (``result.extra["test_r_gains_reset"]``): what they carry.
    """
    from ..model import RWW

    t_start = time.perf_counter()
    if not isinstance(model, RWW):
        raise TypeError(f"model: expected a nmmfit.RWW, got {type(model).__name__}")
    if config is not None and settings:
        raise TypeError(f"fit: give config= or settings as keywords, not both (got {sorted(settings)})")
    cfg = config if config is not None else FitConfig(**settings)
    resume, overwrite = check_bool("resume", resume), check_bool("overwrite", overwrite)
    check_settings(uncertainty, model.B)
    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir (where the checkpoint is)")
    data = prepare_bold(bold, model, scale=cfg.scale, layout=cfg.layout)          # [B, T, N]
    cfg = cfg.for_data(data.shape[1], model.seed)
    held = None if heldout is None else prepare_bold(heldout, model, scale=cfg.scale, layout=cfg.layout,
                                                     name="heldout")
    group = None if group_fc is None else _group_fc(group_fc, model.N)
    objective = (default_objective(model) if objective is None else objective).to(model.sc.device)
    n_params = len(list(model.parameters()) + list(objective.parameters()))
    if not n_params:
        raise ValueError("fit: nothing to fit (the model and the objective have no learnable parameters)")
    adam, lbfgs = make_optimizer(model, objective, cfg)
    p = Problem(model, objective, data, cfg, adam, lbfgs, out_dir)
    config_dict = dict(cfg.to_dict(), preset=model.preset.name, B=data.shape[0], N=data.shape[2], T=data.shape[1],
                       steps_per_sample=model.steps_per_sample, dt=model.preset.dt,
                       objective={k: objective.weights[k] for k in objective.terms}, model=model.config())
    fingerprint = _fingerprint(cfg, model, data, n_params)
    ckpt = None
    if out_dir is not None:
        ckpt = prepare_run_dir(out_dir, overwrite=overwrite, resume=resume, checkpoint=CHECKPOINT,
                               argument="out_dir") / CHECKPOINT
    run = _resume(p, cfg, ckpt, fingerprint) if resume and ckpt.exists() else _start(p, cfg)

    t_train = time.perf_counter()
    windows = cfg.updates_per_epoch(data.shape[1])
    cbs = [ProgressBar(cfg.epochs * windows, run.history.n_updates)] if progress else []
    if ckpt is not None:
        cbs.append(Checkpointer(p, out_dir, fingerprint, config_dict, t_train))
    cbs += ([UserCallback(callback)] if callback is not None else []) + list(callbacks)
    train(p, run, CosineLR(adam, cfg.lr_final, cfg.epochs * windows), cbs)
    result, est = _result(p, run, config_dict, run.elapsed + time.perf_counter() - t_train)

    if cfg.test:
        test_kw = dict(n_windows=cfg.test_windows, window=cfg.window, burn_in_windows=cfg.burn_in_windows,
                       seed=derive_seed("test", cfg.seed) % (2**62))
        test_bold = simulate_test(est, **test_kw)
        result.test_bold = test_bold.numpy()
        result.test_fc = fc_matrix(test_bold.double()).numpy()
        result.test_r = fc_r(test_bold, data.cpu())
        if uncertainty and est.gains is not None:
            result.extra["test_r_gains_reset"] = test_r_without_gains(est, data, **test_kw)
    score_heldout(result, model, held, group)
    result.uncertainty = fitted_uncertainty(est, data, cfg, uncertainty, result)
    result.wall_time = run.elapsed + time.perf_counter() - t_start
    if out_dir is not None and save_result:
        result.save(out_dir)
    return result


__all__ = ["fit", "fit_stages", "FitConfig", "FitResult", "Uncertainty", "UncertaintyWarning", "FitDivergedError",
           "CheckpointError", "Callback", "prepare_bold",
           "simulate_test", "CHECKPOINT"]
