"""Callbacks of a fit: a progress bar (tqdm), per-epoch checkpoints, and the user's function."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .checkpoint import CheckpointWriter
from .guards import CHECKPOINT
from .loop import Callback, Problem, Run


class ProgressBar(Callback):
    """A tqdm bar over the updates on stderr, one line per epoch with its train FC r."""

    def __init__(self, total_updates: int, done: int = 0):
        from tqdm.auto import tqdm

        self.tqdm = tqdm
        self.bar = tqdm(total=total_updates, initial=done, file=sys.stderr, unit="update", leave=False,
                        dynamic_ncols=True)

    def on_update(self, run, info):
        self.bar.set_description(f"epoch {info['epoch'] + 1}/{info['epochs']}", refresh=False)
        self.bar.set_postfix(loss=f"{float(info['loss'].mean()):.4f}", refresh=False)
        self.bar.update(1)

    def on_epoch(self, run, info):
        h = run.history.epochs
        r = h["epoch_train_r"][-1]
        self.tqdm.write(f"epoch {info['epoch'] + 1}/{info['epochs']}: loss {float(np.mean(h['epoch_loss'][-1])):.4f}"
                        f"  train FC r (in-sample) " + " ".join(f"{x:.3f}" for x in r[:8])
                        + f"  ({h['epoch_time'][-1]:.1f} s)", file=sys.stderr)

    def on_end(self, run):
        self.bar.close()


class Checkpointer(Callback):
    """After every epoch, everything needed to continue exactly: model, objective, optimizers,
    the run's state and history (:mod:`.checkpoint`: safe to load, hash-checked), written while the
    next epoch runs and on disk when the fit's epochs end, however they end."""

    def __init__(self, problem: Problem, out_dir, fingerprint: str, config: dict, t_train: float):
        self.p, self.path = problem, Path(out_dir) / CHECKPOINT
        self.fingerprint, self.config, self.t_train = fingerprint, config, t_train
        self.writer = CheckpointWriter()

    def on_epoch(self, run: Run, info):
        p = self.p
        self.writer.save(self.path, dict(
            fingerprint=self.fingerprint, epoch=run.epoch, model=p.model.state_dict(),
            objective=p.objective.state_dict(), optimizer=p.adam.state_dict(),
            lbfgs=None if p.lbfgs is None else p.lbfgs.opt.state_dict(), state=run.state, global_step=run.step,
            history=run.history.state_dict(), last_train_bold=run.last_train_bold,
            elapsed=run.elapsed + time.perf_counter() - self.t_train, config=self.config, x0=run.state0,
            step0=run.step0))

    def on_end(self, run: Run):
        self.writer.wait()


class UserCallback(Callback):
    """The ``callback=`` function of :func:`nmmfit.fit`, called with the info dict."""

    def __init__(self, fn: Callable[[dict], None]):
        self.fn = fn

    def on_update(self, run, info):
        self.fn(info)

    def on_epoch(self, run, info):
        self.fn(info)


__all__ = ["ProgressBar", "Checkpointer", "UserCallback"]
