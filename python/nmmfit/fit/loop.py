"""The update loop: one update (simulate, loss, backward, step) and the epochs around it.

Everything a fit carries between updates is in :class:`Run` (what a checkpoint holds); what
happens around the updates (progress, checkpoints, the user's hook) is a :class:`Callback`."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..losses import LossInput
from ..model import ModelOutput
from ..stats.fc import fc_r
from .adam import Adam
from .guards import check_finite, grads_finite, params_finite
from .history import History


@dataclass
class Run:
    """The state of a fit between updates.

    state  # [B, 6, N] the model state the next update starts from (carried, detached)
    step: the global step of the noise stream at ``state``
    state0, step0: where every update starts with ``resample_noise=False``
    epoch: the next epoch to run; elapsed: training seconds before this call (resume)
    last_train_bold  # [B, T, N] the last completed epoch's simulated BOLD (None before one)
    """
    state: torch.Tensor
    step: int
    state0: torch.Tensor
    step0: int
    history: History
    epoch: int = 0
    elapsed: float = 0.0
    last_train_bold: torch.Tensor | None = None
    converged: bool = False


class Callback:
    """Hooks around the updates; ``info`` has epoch, epochs, window, windows, update, loss (numpy
    ``[B]``), model, objective. Raising from a hook stops the fit (saved epochs stay). ``on_end`` is
    called however the epochs end: done, an error or Ctrl-C (the progress bar closes its line)."""

    def on_update(self, run: Run, info: dict):
        pass

    def on_epoch(self, run: Run, info: dict):
        pass

    def on_end(self, run: Run):
        pass


@dataclass
class Problem:
    """What the updates work on: the model, the objective, the data ``[B, T, N]``, the settings
    (resolved for the data), the optimizers and where completed epochs are saved."""
    model: object
    objective: object
    data: torch.Tensor
    cfg: object
    adam: Adam
    lbfgs: object
    out_dir: object = None

    @property
    def record_every(self) -> int:
        return 1 if self.objective.needs_states else 0


def _where(cfg, epoch: int, k: int, windows: int) -> str:
    if cfg.mode == "windowed":
        return f"epoch {epoch + 1}/{cfg.epochs}, window {k + 1}/{windows}"
    return f"epoch {epoch + 1}/{cfg.epochs} (full session)"


def _evaluate(p: Problem, run: Run, emp: torch.Tensor, n_samples: int, where: str):
    """Simulate ``n_samples`` frames from the run's state, score them against ``emp`` and
    backpropagate: ``(total [B], parts, output)``."""
    model, cfg, rec = p.model, p.cfg, p.record_every
    p.adam.zero_grad(set_to_none=True)
    o = model(n_samples, run.state, step_offset=run.step, record_every=rec, seed=cfg.seed)
    if cfg.discard_frames:
        cut = cfg.discard_frames * model.steps_per_sample // max(rec, 1)
        o = ModelOutput(o.bold[:, cfg.discard_frames:], o.E[:, cut:] if rec else o.E, o.I[:, cut:] if rec else o.I,
                        o.state)
    total, parts = p.objective(LossInput(o.bold, emp, o.E, o.I, model))
    check_finite(model, total, o.state, where, p.out_dir, run.epoch)
    total.sum().backward()
    grads_finite(p.adam, where, p.out_dir, run.epoch)
    return total, parts, o


def _lbfgs_step(p: Problem, run: Run, emp, n_samples: int, where: str):
    """One L-BFGS iteration (its line search may evaluate several times); the first evaluation is
    the update's record. Marks the run converged when the parameters no longer change."""
    lbfgs, first = p.lbfgs, []

    def closure():
        lbfgs.to_model()
        res = _evaluate(p, run, emp, n_samples, where)
        if not first:
            first.append(res)
        lbfgs.grads_from_model()
        return res[0].detach().sum()

    before = [u.detach().clone() for u in lbfgs.proxies]
    lbfgs.opt.step(closure)
    lbfgs.to_model()
    if all(bool(torch.equal(a, u)) for a, u in zip(before, lbfgs.proxies)):
        run.converged = True
    return first[0]


def update(p: Problem, run: Run, epoch: int, k: int, windows: int, lr):
    """Update ``k`` of ``epoch``: the windowed scheme scores window k of the data; the full scheme
    the whole run (from ``state0`` every time with ``resample_noise=False``)."""
    cfg, model = p.cfg, p.model
    where = _where(cfg, epoch, k, windows)
    params_finite(model, where, p.out_dir, run.epoch)
    lr.set(run.history.n_updates)
    if cfg.mode == "windowed":
        emp, n_samples = p.data[:, k * cfg.window:(k + 1) * cfg.window], cfg.window
    else:
        emp, n_samples = p.data, cfg.sim_frames
        if not cfg.resample_noise:
            run.state, run.step = run.state0, run.step0
    if p.lbfgs is None:
        total, parts, out = _evaluate(p, run, emp, n_samples, where)
        p.adam.step()
    else:
        total, parts, out = _lbfgs_step(p, run, emp, n_samples, where)
    if model.project_() and p.lbfgs is not None:
        p.lbfgs.from_model()
    run.state = out.state.detach()
    run.step += n_samples * model.steps_per_sample
    loss = total.detach().cpu().numpy().copy()
    run.history.record_update(epoch, k, loss, parts, model, p.objective)
    return loss, out.bold.detach()


def train(p: Problem, run: Run, lr, callbacks) -> None:
    """Epochs ``run.epoch .. cfg.epochs - 1`` (stopping early once L-BFGS has converged); the
    callbacks' ``on_end`` runs however they end."""
    try:
        for epoch in range(run.epoch, p.cfg.epochs):
            if run.converged:
                break
            _epoch(p, run, epoch, lr, callbacks)
    finally:
        for cb in callbacks:
            cb.on_end(run)


def _epoch(p: Problem, run: Run, epoch: int, lr, callbacks) -> None:
    """One pass over the data (windowed: every window; full: one update), then its record."""
    cfg = p.cfg
    windows = cfg.updates_per_epoch(p.data.shape[1])
    t_epoch = time.perf_counter()
    losses, chunks = [], []
    for k in range(windows):
        loss, bold = update(p, run, epoch, k, windows, lr)
        losses.append(loss)
        chunks.append(bold)
        info = dict(event="update", epoch=epoch, epochs=cfg.epochs, window=k, windows=windows,
                    update=run.history.n_updates, loss=loss, model=p.model, objective=p.objective)
        for cb in callbacks:
            cb.on_update(run, info)
    run.last_train_bold = torch.cat(chunks, dim=1).cpu()
    r = fc_r(run.last_train_bold[:, min(cfg.train_fc_skip, run.last_train_bold.shape[1] - 2):], p.data.cpu())
    run.history.record_epoch(np.mean(losses, axis=0), r, time.perf_counter() - t_epoch)
    run.epoch = epoch + 1
    info = dict(event="epoch", epoch=epoch, epochs=cfg.epochs, window=windows - 1, windows=windows,
                update=run.history.n_updates, loss=run.history.epochs["epoch_loss"][-1], model=p.model,
                objective=p.objective)
    for cb in callbacks:
        cb.on_epoch(run, info)


__all__ = ["Run", "Callback", "Problem", "update", "train"]
