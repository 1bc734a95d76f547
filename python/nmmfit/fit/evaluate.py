"""Evaluation of fitted models: the paper's test run (a fresh simulation of the estimate), scored
in-sample and on held-out data, beside the baselines."""
from __future__ import annotations

import torch

from .._validate import all_finite
from ..rng import derive_seed
from ..stats.baselines import fc_baselines, subject_specific_r, tri_r
from ..stats.fc import fc_matrix, fc_r
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
        if not all_finite(out.bold):
            raise FitDivergedError(f"test run: the simulation gave non-finite BOLD in window {k + 1}; "
                                   f"the fitted parameters leave the model unstable")
        if k >= burn_in_windows:
            chunks.append(out.bold)
    return torch.cat(chunks, dim=1).cpu()




def score_heldout(result, model, heldout: torch.Tensor | None, group_fc=None) -> None:
    """Fill ``result``'s held-out score and baselines (:mod:`nmmfit.stats.baselines`) from the test
    run's FC against ``result.emp_fc`` (the fitted data's) and ``heldout # [B, T', N]`` or None; ``group_fc
    # [N, N] | [B, N, N]`` or None. Baselines are scored against the held-out FC when there is one
    (else against the fitted data's), the ceiling is r(fitted data's FC, held-out FC)."""
    fitted_fc = result.emp_fc                             # FC of data, computed with the result
    target = fitted_fc
    if heldout is not None:
        result.heldout_fc = fc_matrix(heldout.double()).cpu().numpy()
        target = result.heldout_fc
        if result.test_fc is not None:
            result.heldout_r = tri_r(result.test_fc, target)
    sc = model.sc.detach().cpu().numpy()
    result.baselines = fc_baselines(target, sc=sc, group_fc=group_fc,
                                    other_fc=fitted_fc if heldout is not None else None)
    if group_fc is not None and result.test_fc is not None:
        result.subject_specific_r = subject_specific_r(result.test_fc, target, group_fc)


def test_r_without_gains(est, data: torch.Tensor, *, n_windows: int, window: int, burn_in_windows: int,
                         seed: int):
    """How much of the fit the SC gains carry: the test run's FC r against ``data # [B, T, N]`` with
    the fitted gains reset to a factor of 1 (coupling = the preprocessed SC), every other value as fitted and
    the same noise as the test run. ``[B]`` numpy, or None for a model without gains."""
    import copy

    if est.gains is None:
        return None
    reset = copy.deepcopy(est)
    reset.set_gains(reset.scheme.gain_form.from_factor(torch.ones((), dtype=torch.float64)))    # factor 1: W = SC
    bold = simulate_test(reset, n_windows=n_windows, window=window, burn_in_windows=burn_in_windows, seed=seed)
    return fc_r(bold, data.cpu())


__all__ = ["simulate_test", "score_heldout", "test_r_without_gains"]
