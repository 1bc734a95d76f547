"""Fitting a batch of RWW models to fMRI: the paper's windowed scheme and full-session gradients.

``nmmfit.fit(model, bold, ...)`` trains ``model`` (an :class:`nmmfit.RWW` holding B models) on
empirical BOLD (frames x regions, shared by the B models or one per model) and returns a
:class:`nmmfit.FitResult`.

``mode="windowed"`` (the paper, Griffiths et al. 2022): the run is cut into windows of
``window`` frames (20 TRs); each window is simulated from the state the previous one ended in
(carried over, detached: truncated backprop), the loss is computed within the window and Adam
(lr 0.01, eps 1e-7; one optimizer over the model and the loss hyper-parameters) takes one step.
An epoch is one pass over the run; the state carries over between epochs too.

``mode="full"``: one update per epoch with the exact gradient of the loss over the whole run
(every frame), the state carried over from the previous update (after ``burn_in_windows``
windows simulated without gradient at the start). Options of this mode: ``sim_frames`` simulates a
run longer than the data per update (for losses that compare statistics, not time points: a
longer simulated run has less sampling noise, so the gradient is less noisy and the statistics'
finite-length variance biases the loss less); ``resample_noise=False`` uses the same noise and the
same initial state in every update (common random numbers: a deterministic objective that Adam
minimises without gradient noise; ``discard_frames`` then leaves the start of every run, where
the state adjusts to the current parameters, out of the loss).

The estimate is the mean of the last ``average_last`` updates (100 in the paper). Empirical BOLD
is scaled by its maximum (per model). The test run (as in the paper) starts from a fresh random
state, discards ``burn_in_windows`` windows and simulates ``test_windows`` windows with the
estimated values; its FC over the whole run is compared with the empirical FC (test r).

With ``out_dir`` a checkpoint is written after every epoch; ``resume=True`` continues from it
(same settings; ``epochs`` may be larger) and gives the same result as an uninterrupted fit.
"""
from __future__ import annotations

import copy
import hashlib
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .losses import LossInput, Objective, default_objective
from .model import MODEL_PARAM_NAMES, RWW, ModelOutput
from .rng import derive_seed as _seed_int
from .stats.fc import fc_matrix, lower_tri, pearson
from .results import FitResult

CHECKPOINT = "checkpoint.pt"


class FitDivergedError(RuntimeError):
    """The simulation produced non-finite values (an unstable parameter set)."""


class _Progress:
    """A one-line progress bar on stderr (no dependency); silent when disabled."""

    def __init__(self, enabled: bool, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self._last = 0.0

    def update(self, text: str, force=False):
        if not self.enabled:
            return
        now = time.monotonic()
        if force or now - self._last > 0.25:
            self._last = now
            self.stream.write("\r" + text[:150].ljust(80))
            self.stream.flush()

    def line(self, text: str):
        if self.enabled:
            self.stream.write("\r" + text.ljust(80) + "\n")
            self.stream.flush()


def _bar(done, total, width=24):
    n = int(width * done / max(total, 1))
    return "#" * n + "." * (width - n)


def prepare_bold(bold, model: RWW, *, scale: str = "max", layout: str = "auto") -> torch.Tensor:
    """Check empirical BOLD and return it as ``[B, T, N]`` in the model's dtype.

    ``bold``: ``[T, N]`` frames x regions (the convention of :mod:`nmmfit.datasets` and of
    ``simulate``'s output), shared by the B models, or ``[B, T, N]`` one run per model.
    ``layout="auto"`` also accepts regions x frames (``[N, T]`` / ``[B, N, T]``) when only one
    axis has the model's N; ``"TN"`` / ``"NT"`` settle it when ``T == N``.
    Scaling per model: by its maximum (``scale="max"``, the paper), z-scored per region
    (``"zscore"``) or unchanged (``"none"``)."""
    if not isinstance(bold, torch.Tensor):
        try:
            bold = torch.as_tensor(np.asarray(bold, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"bold: expected an array of shape [T, N] or [B, T, N], got {type(bold).__name__}") from exc
    bold = bold.detach().cpu().to(torch.float64)
    if bold.dim() not in (2, 3):
        raise ValueError(f"bold: expected shape [T, N] (frames x regions) or [B, T, N], got {list(bold.shape)}")
    if layout not in ("auto", "TN", "NT"):
        raise ValueError(f"layout: expected 'auto', 'TN' or 'NT', got {layout!r}")
    N = model.N
    a, b = bold.shape[-2], bold.shape[-1]
    if layout == "auto":
        if b == N:
            layout = "TN"
        elif a == N:
            layout = "NT"
        else:
            raise ValueError(f"bold: has shape {list(bold.shape)} but the SC has {N} regions; one axis of the "
                             f"BOLD (frames x regions) must have length {N} (SC and BOLD regions must match)")
    elif (layout == "TN" and b != N) or (layout == "NT" and a != N):
        raise ValueError(f"bold: with layout={layout!r} shape {list(bold.shape)} has "
                         f"{b if layout == 'TN' else a} regions but the SC has {N}")
    if layout == "NT":
        bold = bold.transpose(-1, -2)
    if not bool(torch.isfinite(bold).all()):
        bad = int((~torch.isfinite(bold)).sum())
        raise ValueError(f"bold: contains NaN or Inf ({bad} entries); clean or interpolate the data first")
    if bold.dim() == 3 and bold.shape[0] != model.B:
        raise ValueError(f"bold: has {bold.shape[0]} runs but the model holds B={model.B} models; "
                         f"give [T, N] to share one run, or one run per model")
    if bold.dim() == 2:
        bold = bold[None].expand(model.B, -1, -1)
    if scale == "max":
        m = bold.amax(dim=(1, 2), keepdim=True)
        if bool((m <= 0).any()):
            raise ValueError("bold: its maximum is <= 0, cannot scale by the maximum (use scale='zscore' or 'none')")
        bold = bold / m
    elif scale == "zscore":
        sd = bold.std(dim=1, keepdim=True)
        if bool((sd == 0).any()):
            raise ValueError("bold: a region has a constant time series; cannot z-score")
        bold = (bold - bold.mean(dim=1, keepdim=True)) / sd
    elif scale != "none":
        raise ValueError(f"scale: expected 'max', 'zscore' or 'none', got {scale!r}")
    return bold.to(model.dtype_).to(model.sc.device).contiguous()


def _param_snapshot(model: RWW) -> dict:
    return {n: model.value(n).detach().cpu().numpy().copy() for n in model.fitted}


def _hyper_snapshot(objective: Objective) -> dict:
    return {k: v.cpu().numpy().copy() for k, v in objective.hyperparameters().items()}


def _fingerprint(**kw) -> str:
    return hashlib.sha1(repr(sorted(kw.items())).encode()).hexdigest()[:16]


def _check_finite(model: RWW, total, out_state, where: str, out_dir):
    bad = ~torch.isfinite(total.detach())
    if out_state is not None:
        bad = bad | ~torch.isfinite(out_state.detach()).flatten(1).all(1)
    if bool(bad.any()):
        idx = torch.nonzero(bad).flatten().tolist()
        vals = model.describe().splitlines()
        saved = (f" Completed epochs are saved in {Path(out_dir) / CHECKPOINT}." if out_dir is not None
                 else " Pass out_dir= to keep completed epochs.")
        raise FitDivergedError(
            f"fit diverged at {where}: the simulation of model(s) {idx} gave non-finite values (NaN/Inf); "
            f"the parameters leave the model unstable: " + "; ".join(vals[i] for i in idx[:4]) + "." + saved
            + " Lower the learning rate, bound the parameters, or change the initial values.")


def _grads_finite(optimizer, where: str, out_dir):
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                raise FitDivergedError(
                    f"fit diverged at {where}: the gradient of {group.get('name', 'a parameter')} is NaN/Inf "
                    f"(the loss was finite). The update was not applied."
                    + (f" Completed epochs are saved in {Path(out_dir) / CHECKPOINT}." if out_dir else ""))


def _params_finite(model: RWW, where: str, out_dir):
    for n, p in model.named_parameters():
        if not bool(torch.isfinite(p).all()):
            raise FitDivergedError(f"fit diverged at {where}: parameter {n} became NaN/Inf after the update."
                                   + (f" Completed epochs are saved in {Path(out_dir) / CHECKPOINT}." if out_dir else ""))


def _param_groups(model: RWW, objective: Objective, lr: float, lr_scale: dict) -> list:
    """Adam parameter groups: one per model parameter (``g``, ..., ``gains``) and per loss term,
    each with ``lr * lr_scale.get(name, 1)``."""
    groups, known = [], set()
    for name, p in model.named_parameters():
        key = name[len("raw_"):] if name.startswith("raw_") else name
        known.add(key)
        groups.append(dict(params=[p], lr=lr * float(lr_scale.get(key, 1.0)), name=key))
    for tname, term in objective.terms.items():
        ps = list(term.parameters())
        known.add(tname)
        if ps:
            groups.append(dict(params=ps, lr=lr * float(lr_scale.get(tname, 1.0)), name=tname))
    unknown = set(lr_scale) - known
    if unknown:
        raise ValueError(f"lr_scale: unknown names {sorted(unknown)}; expected fitted parameters or loss terms "
                         f"{sorted(known)}")
    return groups


class _ScaledLBFGS:
    """L-BFGS (strong-Wolfe line search) over the model's and objective's parameters divided by
    per-parameter scales (a diagonal preconditioner: g ~ 100 and g_IE ~ 0.4 become O(1) numbers).
    One :meth:`torch.optim.LBFGS.step` per update does one quasi-Newton iteration (its line search
    may take up to ``max_eval`` evaluations; torch's default for max_iter=1 would allow none)."""

    def __init__(self, groups: list, lr: float, history_size: int = 20, max_eval: int = 25):
        self.pairs = [(p, float(g["scale"])) for g in groups for p in g["params"]]
        self.proxies = [(p.detach() / s).clone().requires_grad_(True) for p, s in self.pairs]
        self.opt = torch.optim.LBFGS(self.proxies, lr=lr, max_iter=1, max_eval=max_eval, history_size=history_size,
                                     line_search_fn="strong_wolfe", tolerance_grad=1e-10, tolerance_change=1e-12)

    @torch.no_grad()
    def to_model(self):
        for (p, s), u in zip(self.pairs, self.proxies):
            p.copy_(u * s)

    def grads_from_model(self):
        for (p, s), u in zip(self.pairs, self.proxies):
            u.grad = torch.zeros_like(u) if p.grad is None else p.grad.detach() * s

    @torch.no_grad()
    def from_model(self):
        for (p, s), u in zip(self.pairs, self.proxies):
            u.copy_(p / s)


def fit(model: RWW, bold, *, objective: Objective | None = None, mode: str = "windowed",
        epochs: int = 20, window: int = 20, lr: float = 0.01, eps: float = 1e-7, betas=(0.9, 0.999),
        lr_scale: dict | None = None, lr_final: float = 1.0, sim_frames: int | None = None,
        discard_frames: int = 0, resample_noise: bool = True, optimizer: str = "adam",
        average_last: int | None = None, scale: str = "max", layout: str = "auto", seed: int | None = None,
        burn_in_windows: int = 2, test: bool = True, test_windows: int | str = 120,
        train_fc_skip: int = 10, out_dir=None, resume: bool = False,
        callback: Callable[[dict], None] | None = None, progress: bool = True,
        save_result: bool = True) -> FitResult:
    """Fit ``model`` to ``bold`` and evaluate it. See the module docstring for the schemes.

    Args:
        model: an :class:`nmmfit.RWW` (B models); trained in place (it ends at the last update;
            the estimates are in the result).
        bold: empirical BOLD, frames x regions: ``[T, N]`` (shared by the B models) or ``[B, T, N]``
            (regions x frames is recognised when only one axis has length N; see ``layout``).
        objective: an :class:`nmmfit.Objective` (default: the paper's for griffiths2022).
        layout: ``"auto"``, ``"TN"`` or ``"NT"`` (see :func:`prepare_bold`).
        mode: ``"windowed"`` (the paper) or ``"full"`` (whole run per update, exact gradient).
        epochs: passes over the data (full mode: updates).
        window: frames per window (20 in the paper); also the unit of burn-in and test length.
        lr, eps, betas: Adam settings (paper: 0.01, 1e-7, torch's default betas (0.9, 0.999)). A
            smaller second beta (e.g. 0.99) lets the step size recover sooner after the large
            gradients of the first updates.
        lr_scale: per-name multipliers of ``lr``: a model parameter (``"g"``, ``"g_EE"``, ...,
            ``"gains"``) or a loss term (``"prior_g"``, ``"bifurcation"``, ...). Not in the paper:
            e.g. ``{"g": 100, "prior_g": 100}`` lets g (O(100)) move as fast as the O(1) parameters.
        lr_final: the learning rates decay (cosine, per update) to ``lr_final`` times their start
            value by the last update (1: constant, the paper).
        sim_frames: full mode: frames simulated per update (default: as many as the data has).
        discard_frames: full mode: frames at the start of every update's run left out of the loss
            (simulated and differentiated through, not compared).
        resample_noise: full mode: fresh noise every update, the state carried over (True, default),
            or the same noise and initial state every update (False; common random numbers).
        average_last: the estimate is the mean of the last this-many updates (default: 100, the
            paper, with Adam; 1, the last iterate, with L-BFGS).
        optimizer: ``"adam"`` (the paper) or ``"lbfgs"``: quasi-Newton with a strong-Wolfe line
            search, one iteration per update, on the parameters divided by ``lr_scale`` (their
            typical magnitudes); ``lr`` is its step (1 is the usual choice). Needs a deterministic
            objective: ``mode="full"`` with ``resample_noise=False``. Stops early once an
            iteration no longer changes the parameters.
        scale: empirical BOLD scaling, ``"max"`` (paper), ``"zscore"`` or ``"none"``.
        seed: seeds the initial state, the state noise (Philox key) and the output noise
            (default: ``model.seed``). The same seed gives the same fit.
        burn_in_windows: windows discarded at the start of the test run (and, in full mode,
            simulated before the first update).
        test: run the test evaluation; test_windows: its length in windows (int), or ``"data"``
            for as many windows as the data has.
        train_fc_skip: frames dropped at the start of the last epoch's simulated BOLD before its
            FC is compared with the empirical FC (the paper: 10).
        out_dir: directory for the per-epoch checkpoint and the final result (result.json/npz).
        resume: continue from ``out_dir``'s checkpoint when there is one.
        callback: called with a dict after every update (``event="update"``) and epoch
            (``event="epoch"``); keys: epoch, epochs, window, windows, update, loss (numpy
            ``[B]``), model, objective. Raising from it stops the fit (the checkpoint of the
            completed epochs stays).
        progress: draw a progress bar on stderr.
    """
    t_start = time.perf_counter()
    if not isinstance(model, RWW):
        raise TypeError(f"model: expected a nmmfit.RWW, got {type(model).__name__}")
    if mode not in ("windowed", "full"):
        raise ValueError(f"mode: expected 'windowed' or 'full', got {mode!r}")
    if optimizer not in ("adam", "lbfgs"):
        raise ValueError(f"optimizer: expected 'adam' or 'lbfgs', got {optimizer!r}")
    if optimizer == "lbfgs" and (mode != "full" or resample_noise):
        raise ValueError("optimizer='lbfgs' needs a deterministic objective: mode='full' and resample_noise=False")
    if optimizer == "lbfgs" and lr_final != 1.0:
        raise ValueError("lr_final applies to optimizer='adam' only")
    if average_last is None:
        average_last = 1 if optimizer == "lbfgs" else 100
    for name, v, lo in (("epochs", epochs, 0), ("window", window, 1), ("average_last", average_last, 1),
                        ("burn_in_windows", burn_in_windows, 0), ("train_fc_skip", train_fc_skip, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name}: expected an int >= {lo}, got {v!r}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr: expected a positive number, got {lr!r}")
    if not (isinstance(lr_final, (int, float)) and 0 < lr_final <= 1):
        raise ValueError(f"lr_final: expected a number in (0, 1], got {lr_final!r}")
    if isinstance(discard_frames, bool) or not isinstance(discard_frames, int) or discard_frames < 0:
        raise ValueError(f"discard_frames: expected an int >= 0, got {discard_frames!r}")
    if mode == "windowed" and (sim_frames is not None or discard_frames or not resample_noise):
        raise ValueError("sim_frames, discard_frames and resample_noise=False apply to mode='full' only")
    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir (where the checkpoint is)")
    data = prepare_bold(bold, model, scale=scale, layout=layout)          # [B, T, N]
    B, T, N = data.shape
    n_win = T // window
    if n_win < 1:
        raise ValueError(f"bold: has {T} frames, too few for one window of {window} frames "
                         f"(need at least {window}; lower window=)")
    if test_windows == "data":
        test_windows = n_win
    if isinstance(test_windows, bool) or not isinstance(test_windows, int) or test_windows < 1:
        raise ValueError(f"test_windows: expected an int >= 1 or 'data', got {test_windows!r}")
    seed = model.seed if seed is None else int(seed)
    if objective is None:
        objective = default_objective(model)
    objective = objective.to(model.sc.device)
    record_every = 1 if objective.needs_states else 0
    sps = model.steps_per_sample
    if sim_frames is None:
        sim_frames = T
    if isinstance(sim_frames, bool) or not isinstance(sim_frames, int) or sim_frames - discard_frames < 3:
        raise ValueError(f"sim_frames: expected an int with at least 3 frames after discard_frames="
                         f"{discard_frames}, got {sim_frames!r}")
    updates_per_epoch = n_win if mode == "windowed" else 1

    params = list(model.parameters()) + list(objective.parameters())
    if not params:
        raise ValueError("fit: nothing to fit (the model and the objective have no learnable parameters)")
    optimizer_name = optimizer
    betas = tuple(float(b) for b in betas)
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ValueError(f"betas: expected two numbers in [0, 1), got {betas!r}")
    optimizer = torch.optim.Adam(_param_groups(model, objective, lr, dict(lr_scale or {})), lr=lr, eps=eps,
                                 betas=betas)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    lbfgs = None
    if optimizer_name == "lbfgs":
        lbfgs = _ScaledLBFGS([dict(params=g["params"], scale=g["lr"] / lr) for g in optimizer.param_groups], lr=lr)

    config = dict(preset=model.preset.name, mode=mode, B=B, N=N, T=T, window=window, lr=lr, eps=eps,
                  **({} if betas == (0.9, 0.999) else dict(betas=list(betas))),
                  lr_scale=dict(sorted((lr_scale or {}).items())), lr_final=lr_final,
                  sim_frames=sim_frames if mode == "full" else None, discard_frames=discard_frames,
                  resample_noise=resample_noise, **({} if optimizer_name == "adam" else dict(optimizer=optimizer_name)),
                  average_last=average_last, scale=scale, seed=seed, burn_in_windows=burn_in_windows,
                  test_windows=test_windows, train_fc_skip=train_fc_skip,
                  steps_per_sample=sps, dt=model.preset.dt, objective={k: objective.weights[k] for k in objective.terms},
                  model=model.config())
    fp_model = {k: v for k, v in config["model"].items() if k != "backend"}  # kernels == reference
    fp = _fingerprint(**{k: v for k, v in config.items() if k not in ("test_windows", "model")}, model=fp_model,
                      data=float(data.double().sum()), n_params=len(params))

    # ----------------------------------------------------------------- state of the run
    hist: dict[str, list] = {"loss": [], "epoch": [], "window": []}
    epoch_hist: dict[str, list] = {"epoch_loss": [], "epoch_train_r": [], "epoch_time": []}
    gain_buf: deque = deque(maxlen=average_last)
    start_epoch, global_step, elapsed_before = 0, 0, 0.0
    X = model.initial_state(seed=_seed_int("init-state", seed))
    last_train_bold = None
    ckpt_path = Path(out_dir) / CHECKPOINT if out_dir is not None else None
    if ckpt_path is not None:
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    if resume and ckpt_path is not None and ckpt_path.exists():
        ck = torch.load(ckpt_path, weights_only=False)
        if ck["fingerprint"] != fp:
            raise ValueError(f"resume: the checkpoint in {ckpt_path.parent} was written by a fit with different "
                             f"settings, data or model; use a new out_dir or resume=False")
        model.load_state_dict(ck["model"])
        objective.load_state_dict(ck["objective"])
        optimizer.load_state_dict(ck["optimizer"])
        if lbfgs is not None:
            lbfgs.from_model()
            lbfgs.opt.load_state_dict(ck["lbfgs"])
        X = ck["state"]
        global_step = ck["global_step"]
        start_epoch = ck["epoch"]
        hist, epoch_hist = ck["hist"], ck["epoch_hist"]
        gain_buf = deque(ck["gain_buf"], maxlen=average_last)
        last_train_bold = ck["last_train_bold"]
        elapsed_before = ck["elapsed"]
    elif mode == "full" and burn_in_windows > 0:
        with torch.no_grad():
            out = model(burn_in_windows * window, X, step_offset=global_step, seed=seed)
        X = out.state
        global_step += burn_in_windows * window * sps

    X0, step0 = X, global_step            # resample_noise=False: every update starts here
    if resume and ckpt_path is not None and ckpt_path.exists() and "x0" in ck:
        X0, step0 = ck["x0"], ck["step0"]
    total_updates = epochs * updates_per_epoch

    def set_lr(u):                         # cosine decay from lr to lr * lr_final over the updates
        if lr_final == 1.0:
            return
        f = lr_final + (1 - lr_final) * 0.5 * (1 + np.cos(np.pi * min(u, total_updates - 1) / max(total_updates - 1, 1)))
        for g, b0 in zip(optimizer.param_groups, base_lrs):
            g["lr"] = b0 * f

    bar = _Progress(progress)
    t_train = time.perf_counter()
    update = len(hist["loss"])
    converged = False
    for epoch in range(start_epoch, epochs):
        if converged:
            break
        t_epoch = time.perf_counter()
        epoch_losses, train_chunks = [], []
        for k in range(updates_per_epoch):
            where = (f"epoch {epoch + 1}/{epochs}, window {k + 1}/{updates_per_epoch}" if mode == "windowed"
                     else f"epoch {epoch + 1}/{epochs} (full session)")
            _params_finite(model, where, out_dir)
            set_lr(update)
            if mode == "windowed":
                emp = data[:, k * window:(k + 1) * window]
                n_samp = window
            else:
                emp, n_samp = data, sim_frames
                if not resample_noise:
                    X, global_step = X0, step0

            def evaluate():
                optimizer.zero_grad(set_to_none=True)
                o = model(n_samp, X, step_offset=global_step, record_every=record_every, seed=seed)
                if discard_frames:
                    cut = discard_frames * sps // max(record_every, 1)
                    o = ModelOutput(o.bold[:, discard_frames:], o.E[:, cut:] if record_every else o.E,
                                    o.I[:, cut:] if record_every else o.I, o.state)
                tot, prt = objective(LossInput(o.bold, emp, o.E, o.I, model))
                _check_finite(model, tot, o.state, where, out_dir)
                tot.sum().backward()
                _grads_finite(optimizer, where, out_dir)
                return tot, prt, o

            if lbfgs is None:
                total, parts, out = evaluate()
                optimizer.step()
            else:
                first = []

                def closure():
                    lbfgs.to_model()
                    res = evaluate()
                    if not first:
                        first.append(res)
                    lbfgs.grads_from_model()
                    return res[0].detach().sum()

                before = [u.detach().clone() for u in lbfgs.proxies]
                lbfgs.opt.step(closure)
                lbfgs.to_model()
                total, parts, out = first[0]
                if all(bool(torch.equal(a, u)) for a, u in zip(before, lbfgs.proxies)):
                    converged = True
            X = out.state.detach()
            global_step += n_samp * sps
            update += 1
            loss_np = total.detach().cpu().numpy().copy()
            hist["loss"].append(loss_np)
            hist["epoch"].append(epoch)
            hist["window"].append(k)
            for name, v in parts.items():
                hist.setdefault("loss." + name, []).append(v.detach().cpu().numpy().copy())
            for name, v in _param_snapshot(model).items():
                hist.setdefault("param." + name, []).append(v)
            for name, v in _hyper_snapshot(objective).items():
                hist.setdefault("hyper." + name, []).append(v)
            if model.gains is not None:
                gain_buf.append(model.gains.detach().clone())
            epoch_losses.append(loss_np)
            train_chunks.append(out.bold.detach())
            spent = time.perf_counter() - t_epoch
            eta = spent / (k + 1) * (updates_per_epoch - k - 1)
            bar.update(f"epoch {epoch + 1}/{epochs} [{_bar(k + 1, updates_per_epoch)}] {k + 1}/{updates_per_epoch} "
                       f"loss {float(loss_np.mean()):.4f} {spent:.0f}s eta {eta:.0f}s")
            if callback is not None:
                callback(dict(event="update", epoch=epoch, epochs=epochs, window=k, windows=updates_per_epoch,
                              update=update, loss=loss_np, model=model, objective=objective))
        last_train_bold = torch.cat(train_chunks, dim=1).cpu()
        r = _fc_r(last_train_bold[:, min(train_fc_skip, last_train_bold.shape[1] - 2):], data.cpu())
        epoch_hist["epoch_loss"].append(np.mean(epoch_losses, axis=0))
        epoch_hist["epoch_train_r"].append(r)
        epoch_hist["epoch_time"].append(time.perf_counter() - t_epoch)
        bar.line(f"epoch {epoch + 1}/{epochs}: loss {float(np.mean(epoch_losses)):.4f}  train FC r "
                 + " ".join(f"{x:.3f}" for x in r[:8]) + f"  ({epoch_hist['epoch_time'][-1]:.1f} s)")
        if ckpt_path is not None:
            ck = dict(fingerprint=fp, epoch=epoch + 1, model=model.state_dict(), objective=objective.state_dict(),
                      optimizer=optimizer.state_dict(), lbfgs=None if lbfgs is None else lbfgs.opt.state_dict(), state=X, global_step=global_step, hist=hist,
                      epoch_hist=epoch_hist, gain_buf=list(gain_buf), last_train_bold=last_train_bold,
                      elapsed=elapsed_before + time.perf_counter() - t_train, config=config, x0=X0, step0=step0)
            tmp = ckpt_path.with_suffix(".tmp")
            torch.save(ck, tmp)
            os.replace(tmp, ckpt_path)
        if callback is not None:
            callback(dict(event="epoch", epoch=epoch, epochs=epochs, window=updates_per_epoch - 1,
                          windows=updates_per_epoch, update=update, loss=epoch_hist["epoch_loss"][-1],
                          model=model, objective=objective))
    train_time = elapsed_before + time.perf_counter() - t_train

    # ----------------------------------------------------------------- estimates
    history = {k: np.stack(v) if v else np.zeros((0, B)) for k, v in hist.items()}
    history.update({k: np.stack(v) if v else np.zeros((0, B)) for k, v in epoch_hist.items()})
    n_hist = len(hist["loss"])
    fitted, fitted_hyper = {}, {}
    for name in MODEL_PARAM_NAMES:
        key = "param." + name
        if key in history and n_hist:
            fitted[name] = history[key][-average_last:].mean(axis=0)
        else:
            fitted[name] = model.value(name).detach().cpu().numpy().copy()
    for key, v in history.items():
        if key.startswith("hyper.") and n_hist:
            fitted_hyper[key[len("hyper."):]] = v[-average_last:].mean(axis=0)
    gains = torch.stack(list(gain_buf)).mean(0) if gain_buf else None
    est = copy.deepcopy(model)
    est.set_values({n: torch.as_tensor(fitted[n]) for n in model.fitted})
    if gains is not None:
        est.set_gains(gains)
    with torch.no_grad():
        W = est.coupling().cpu().numpy()
    emp_fc = fc_matrix(data.double()).cpu().numpy()

    result = FitResult(config=config, fitted=fitted, fitted_hyper=fitted_hyper, history=history,
                       sc=model.sc.cpu().numpy(), W=W, emp_fc=emp_fc,
                       gains=None if gains is None else gains.cpu().numpy(),
                       train_time=train_time, epochs_completed=len(epoch_hist["epoch_loss"]))
    if last_train_bold is not None:
        tb = last_train_bold[:, min(train_fc_skip, last_train_bold.shape[1] - 2):]
        result.train_bold = last_train_bold.numpy()
        result.train_fc = fc_matrix(tb.double()).numpy()
        result.train_r = _fc_r(tb, data.cpu())

    if test:
        bar.update("test run ...", force=True)
        test_bold = simulate_test(est, n_windows=test_windows, window=window,
                                  burn_in_windows=burn_in_windows, seed=_seed_int("test", seed) % (2**62))
        result.test_bold = test_bold.numpy()
        result.test_fc = fc_matrix(test_bold.double()).numpy()
        result.test_r = _fc_r(test_bold, data.cpu())
        bar.line("test FC r " + " ".join(f"{x:.3f}" for x in result.test_r[:8]))
    result.wall_time = elapsed_before + time.perf_counter() - t_start
    if out_dir is not None and save_result:
        result.save(out_dir)
    return result


def _fc_r(sim: torch.Tensor, emp: torch.Tensor) -> np.ndarray:
    """FC correlation per model (lower triangles), float64, ``[B]``."""
    a = lower_tri(fc_matrix(sim.double()))
    b = lower_tri(fc_matrix(emp.double()))
    return pearson(a, b).numpy()


@torch.no_grad()
def simulate_test(model: RWW, *, n_windows: int = 120, window: int = 20, burn_in_windows: int = 2,
                  seed: int = 0, state=None) -> torch.Tensor:
    """The paper's test run: a fresh random state (from ``seed``), ``burn_in_windows`` windows
    discarded, then ``n_windows`` windows of ``window`` frames; returns BOLD ``[B, S, N]``.

    The run is simulated window by window (state carried), as in the paper."""
    if state is None:
        state = model.initial_state(seed=_seed_int("test-state", seed))
    sps = model.steps_per_sample
    chunks, step = [], 0
    for k in range(burn_in_windows + n_windows):
        out = model(window, state, step_offset=step, seed=seed)
        state, step = out.state, step + window * sps
        if not bool(torch.isfinite(out.bold).all()):
            raise FitDivergedError(f"test run: the simulation gave non-finite BOLD in window {k + 1}; "
                                   f"the fitted parameters leave the model unstable")
        if k >= burn_in_windows:
            chunks.append(out.bold)
    return torch.cat(chunks, dim=1).cpu()


__all__ = ["fit", "FitDivergedError", "prepare_bold", "simulate_test", "CHECKPOINT"]

