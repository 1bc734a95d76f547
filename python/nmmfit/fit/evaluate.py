"""Evaluation runs of fitted models: the paper's test run (a fresh simulation of the estimate)."""
from __future__ import annotations

import torch

from ..rng import derive_seed
from .guards import FitDivergedError


@torch.no_grad()
def simulate_test(model, *, n_windows: int = 120, window: int = 20, burn_in_windows: int = 2,
                  seed: int = 0, state=None) -> torch.Tensor:
    """The paper's test run: a fresh random state (from ``seed``), ``burn_in_windows`` windows
    discarded, then ``n_windows`` windows of ``window`` frames; returns BOLD ``[B, S, N]``.

    The run is simulated window by window (state carried), as in the paper."""
    if state is None:
        state = model.initial_state(seed=derive_seed("test-state", seed))
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


__all__ = ["simulate_test"]
