"""Divergence guards: a non-finite loss, state, gradient or parameter stops the fit with an error
that names the update, the models and where the completed epochs are."""
from __future__ import annotations

from pathlib import Path

import torch

from .._validate import all_finite

CHECKPOINT = "checkpoint.pt"


class FitDivergedError(RuntimeError):
    """The simulation produced non-finite values (an unstable parameter set)."""


def _saved(out_dir, epochs_done: int, always: bool = False) -> str:
    """Where the completed epochs are: the checkpoint once an epoch has completed (its write may
    still be in flight while the error is raised; the fit's end waits for it)."""
    if out_dir is not None and epochs_done > 0:
        return f" Completed epochs are saved in {Path(out_dir) / CHECKPOINT}."
    if out_dir is not None:
        return " No epoch was completed, so nothing was saved." if always else ""
    return " Pass out_dir= to keep completed epochs." if always else ""


def check_finite(model, total, out_state, where: str, out_dir, epochs_done: int):
    """``total # [B]`` and ``out_state # [B, 6, N]`` must be finite for every model."""
    if all_finite(total, out_state):
        return
    bad = ~torch.isfinite(total.detach())
    if out_state is not None:
        bad = bad | ~torch.isfinite(out_state.detach()).flatten(1).all(1)
    if bool(bad.any()):
        idx = torch.nonzero(bad).flatten().tolist()
        vals = model.describe().splitlines()
        raise FitDivergedError(
            f"fit diverged at {where}: the simulation of model(s) {idx} gave non-finite values (NaN/Inf); "
            f"the parameters leave the model unstable: " + "; ".join(vals[i] for i in idx[:4]) + "."
            + _saved(out_dir, epochs_done, always=True) + " Lower the learning rate, bound the parameters, or change the initial values.")


def grads_finite(optimizer, where: str, out_dir, epochs_done: int):
    if all_finite(*(p.grad for group in optimizer.param_groups for p in group["params"])):
        return
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                raise FitDivergedError(
                    f"fit diverged at {where}: the gradient of {group.get('name', 'a parameter')} is NaN/Inf "
                    f"(the loss was finite). The update was not applied." + _saved(out_dir, epochs_done))


def params_finite(model, where: str, out_dir, epochs_done: int):
    if all_finite(*model.parameters()):
        return
    for n, p in model.named_parameters():
        if not bool(torch.isfinite(p).all()):
            raise FitDivergedError(f"fit diverged at {where}: parameter {n} became NaN/Inf after the update."
                                   + _saved(out_dir, epochs_done))


__all__ = ["FitDivergedError", "CHECKPOINT", "check_finite", "grads_finite", "params_finite"]
