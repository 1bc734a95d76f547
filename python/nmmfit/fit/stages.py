"""Fits in stages: a scheme's :class:`nmmfit.params.schemes.Stage` s run in order, each with
:func:`nmmfit.fit` and each from the previous stage's estimate.

A stage with a static target (the group FC, or the subject's FC shrunk toward it) leaves out the
objective's terms that compare with the data window (``LossTerm.compares_data``) and adds a
:class:`nmmfit.losses.TargetFCLoss`; ``gain_penalty`` adds a :class:`nmmfit.losses.GainPenalty`
toward the previous stage's gains. Learned hyper-parameters of terms that two stages share (the
bifurcation coefficients, the priors' means) carry over. Only the last stage runs the test and is
scored on held-out data; the earlier ones are saved under ``out_dir/stages/`` and resume like it.

Imports: fit (fit, result), losses, sc, stats; nothing here imports experiments or the CLI.
"""
from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch

from .._validate import check_int
from ..losses import GainPenalty, Objective, TargetFCLoss
from ..sc import gains_from_fc
from ..stats.baselines import shrinkage_fc, shrinkage_weight
from ..stats.fc import fc_matrix
from .result import FitResult
from .uncertainty import check_settings


def _bold_batch(bold, B: int) -> np.ndarray:
    """``bold`` as ``[B, T, N]`` float64 (a shared ``[T, N]`` repeated), for the statistics only."""
    b = np.asarray(bold, dtype=np.float64)
    return np.broadcast_to(b, (B, *b.shape)).copy() if b.ndim == 2 else b


def stage_target(stage, bold, group_fc, B: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(target FC [B, N, N] | None, shrinkage weight a [B] | None)`` of ``stage`` for ``bold # [T, N]
    | [B, T, N]`` and ``group_fc # [N, N] | [B, N, N]``."""
    if stage.target == "window":
        return None, None
    if group_fc is None:
        raise ValueError(f"stage {stage.name!r} (target {stage.target!r}) needs group_fc, a group-average FC "
                         f"[N, N] of other people; give one, or fit with a scheme whose stages target the data "
                         f"window (e.g. scheme='griffiths2022')")
    group = np.broadcast_to(np.asarray(group_fc, dtype=np.float64), (B, *np.shape(group_fc)[-2:])).copy()
    if stage.target == "group":
        return group, None
    data = _bold_batch(bold, B)
    a = shrinkage_weight(data, group)
    return shrinkage_fc(fc_matrix(torch.as_tensor(data)).numpy(), group, a), a


def stage_objective(model, stage, target, previous: Objective | None, previous_gains) -> Objective:
    """The scheme's objective for ``stage``: terms comparing with the data window dropped for a
    static ``target # [B, N, N]`` (a :class:`TargetFCLoss` added), a :class:`GainPenalty` toward
    ``previous_gains # [B, N, N] | None`` with ``stage.gain_penalty``; shared terms keep the
    ``previous`` stage's learned hyper-parameters."""
    base = model.scheme.objective(model)
    terms = {}
    for name, term in base.terms.items():
        weight = 0.0 if target is not None and term.compares_data else base.weights[name]
        kept = previous is not None and name in previous.terms
        terms[name] = (copy.deepcopy(previous.terms[name]) if kept else term, weight)
    if target is not None:
        terms["target_fc"] = (TargetFCLoss(target), 1.0)
    if stage.gain_penalty:
        terms["gain_penalty"] = (GainPenalty(previous_gains), stage.gain_penalty)
    return Objective({n: t for n, t in terms.items() if t[1] != 0.0})


def _tile(bold, frames: int | None):
    """``bold # [T, N] | [B, T, N]`` repeated along time to ``frames`` frames (None: as given)."""
    if frames is None:
        return bold
    b = np.asarray(bold)
    reps = -(-frames // b.shape[-2])
    return np.concatenate([b] * reps, axis=-2)[..., :max(frames, b.shape[-2]), :]


def estimate_model(model, result: FitResult):
    """A copy of ``model`` holding ``result``'s estimate (fitted values and gains)."""
    est = copy.deepcopy(model)
    est.set_values({n: torch.as_tensor(result.fitted[n]) for n in model.fitted})
    if result.gains is not None and est.gains is not None:
        est.set_gains(torch.as_tensor(result.gains))
    return est


def _stage_dir(out_dir, index: int, stage, last: bool):
    if out_dir is None:
        return None
    return Path(out_dir) if last else Path(out_dir) / "stages" / f"{index + 1}-{stage.name}"


def _summary(stage, result: FitResult, a) -> dict:
    """What a stage did, per model: its target, shrinkage weight ``[B]``, train FC r ``[B]``, the
    fitted values it ended at (name -> ``[B]``, regional ones averaged over regions) and its time."""
    return dict(name=stage.name, target=stage.target, epochs=result.epochs_completed,
                gain_penalty=stage.gain_penalty, shrinkage=None if a is None else np.asarray(a).tolist(),
                train_r=None if result.train_r is None else np.asarray(result.train_r).tolist(),
                fitted={n: _per_model(v) for n, v in result.fitted.items()}, wall_time=result.wall_time)


def _per_model(v) -> list:
    v = np.asarray(v, dtype=np.float64)
    return (v.mean(-1) if v.ndim == 2 else v).tolist()


def _stage_epochs(stages: tuple, epochs, stage_epochs) -> list:
    """Each stage's epochs: ``stage_epochs`` (name -> int) first, then ``epochs`` for the last stage,
    then the stage's own (None: the fit's default)."""
    given = dict(stage_epochs or {})
    unknown = set(given) - {s.name for s in stages}
    if unknown:
        raise ValueError(f"stage_epochs: unknown stage(s) {sorted(unknown)}; this fit's stages are "
                         f"{[s.name for s in stages]}")
    out = [given.get(s.name, s.epochs) for s in stages]
    if epochs is not None and stages[-1].name not in given:
        out[-1] = epochs
    return [None if e is None else check_int(f"epochs of stage {s.name!r}", e, 1) for s, e in zip(stages, out)]


def fit_stages(model, bold, *, stages=None, group_fc=None, heldout=None, out_dir=None, resume: bool = False,
               overwrite: bool = False, epochs: int | None = None, stage_epochs=None, lr_scale=None,
               save_result: bool = True, **fit_kw) -> FitResult:
    """Fit ``model`` to ``bold # [T, N] | [B, T, N]`` in the stages of its scheme (or ``stages``).

    ``group_fc # [N, N] | [B, N, N]``: other people's FC, the target of group stages and the group
    baseline; ``heldout``: scored by the last stage (:func:`nmmfit.fit`). ``epochs``: the last
    stage's; ``stage_epochs``: name -> epochs of any stage (the others keep their own; a stage
    without its own takes the fit's default); ``lr_scale`` adds to each stage's. Other keywords go to every stage's :func:`nmmfit.fit`. Returns
    the last stage's :class:`FitResult` with ``extra["stages"]`` (per stage its target, shrinkage
    weight, epochs, train FC r, fitted values and wall time), ``extra["start"]`` (the initial
    values, name -> ``[B]``) and ``wall_time`` summed over the stages."""
    from . import fit

    stages = tuple(model.scheme.stages if stages is None else stages)
    test = fit_kw.pop("test", True)
    uncertainty = check_settings(fit_kw.pop("uncertainty", False), model.B)            # of the final fit only
    if uncertainty and stages and stages[-1].frames is not None:
        # data repeated along time would count as independent frames: intervals too narrow
        warnings.warn(f"uncertainty: skipped, the final stage {stages[-1].name!r} repeats the data to "
                      f"{stages[-1].frames} frames", UserWarning, stacklevel=2)
        uncertainty = False
    start = {n: _per_model(model.value(n).detach().cpu()) for n in model.fitted}
    n_epochs = _stage_epochs(stages, epochs, stage_epochs)
    previous, summaries, B = None, [], model.B
    for i, stage in enumerate(stages):
        last = i == len(stages) - 1
        target, a = stage_target(stage, bold, group_fc, B)
        prev_gains = None if previous is None or model.gains is None else model.gains.detach().clone()
        if stage.gains_from_target and target is not None and model.gains is not None:
            model.set_gains(gains_from_fc(model.sc, target, model.scheme.gain_form))
        objective = stage_objective(model, stage, target, previous, prev_gains)
        settings = dict(fit_kw, lr_scale={**stage.lr_scale, **dict(lr_scale or {})}, test=test and last,
                        uncertainty=uncertainty if last else False,
                        **({} if n_epochs[i] is None else {"epochs": n_epochs[i]}))
        result = fit(model, _tile(bold, stage.frames), objective=objective, heldout=heldout if last else None,
                     group_fc=group_fc if last else None, out_dir=_stage_dir(out_dir, i, stage, last),
                     resume=resume, overwrite=overwrite, save_result=not last, **settings)
        summaries.append(_summary(stage, result, a))
        if not last:
            model, previous = estimate_model(model, result), objective
    result.extra.update(stages=summaries, start=start)
    result.wall_time = sum(s["wall_time"] for s in summaries)
    if out_dir is not None and save_result:
        result.save(out_dir)
    return result


__all__ = ["fit_stages", "stage_objective", "stage_target", "estimate_model"]
