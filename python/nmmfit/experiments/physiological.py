"""Physiological fits (``nmmfit fit --scheme deco2014_fic ...``): Deco 2014 with FIC, regional
heterogeneity (brain maps, node groups or free per region) and the FC + FCD objective, fitted on one
session with full-session exact gradients and scored on the other.

Every choice is a value: the scheme (by name), its FIC rule (:data:`nmmfit.params.fic.FIC_RULES`),
the time step (:meth:`nmmfit.Preset.with_dt`), the heterogeneity (:class:`MapScaling` built from
the subject's maps and node groups by name, or the user's files), the objective's weights
(:func:`nmmfit.losses.deco2014_objective`). The report gives FC r and FCD KS (cuBNM's cost,
:func:`nmmfit.losses.cubnm_cost`) on the fitted and the held-out session, beside the ceiling and the
SC-FC floor, the mean excitatory rate per region after FIC, and the nodes where FIC is unstable.

Imports: params, losses, model, fit, datasets, .protocol, .reports (base class).
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from .._files import prepare_run_dir
from .._validate import check_choice, check_int
from ..fit import fit as run_fit
from ..losses import cubnm_cost, deco2014_objective
from ..losses.dynamics import rate_E
from ..model import RWW
from ..params.fic import FIC_RULES
from ..params.heterogeneity import MapScaling
from ..params.schemes import get_scheme
from .protocol import figures_enabled, group_fc_for, load_subject, split_data
from .reports import Report, _score_lines

__all__ = ["HET_PARAMS", "DISCARD_S", "SCAN_GRID", "physiological_scheme", "heterogeneity_for", "scan_starts",
           "fit_physiological", "PhysiologicalFitReport"]

HET_PARAMS = ("g", "g_EE", "g_EI")
"""The parameters ``--maps`` / ``--groups`` make heterogeneous by default: the coupling g too. With g
global, the held-out fits of bench/RESULTS.md stayed at the SC-FC floor; with g map-based they
passed it (issue 11)."""

DISCARD_S = 30.0
"""Seconds at the start of every update's run left out of the objective (cuBNM's ``bold_remove_s``):
each update starts from the state simulated at the first parameters, and a fit could otherwise fit
the transient (its FC r on the first frames reached 0.6 against 0.3 after them)."""

SCAN_GRID = {"g": (0.075, 0.15, 0.3, 0.45, 0.6), "g_EE": (0.21, 0.3, 0.4), "g_EI": (0.15, 0.4)}
"""The default start grid (natural units; 30 points, one batched run): G = g / 0.15 from 0.5 to 4, w_+ =
g_EE / 0.15 from 1.4 (the preset) to 2.7 and J_NMDA = g_EI from 0.15 to 0.4 (cuBNM's tutorial ranges).
A gradient fit from the preset's values stalls where FC and FCD are flat (bench/RESULTS.md, issue 11):
the scan puts the restarts where the simulated FC mean and FCD already resemble the data's."""


def physiological_scheme(scheme="deco2014_fic", fic: str | None = None, dt: float | None = None):
    """The scheme ``scheme`` with its FIC rule replaced by ``fic`` (a :data:`FIC_RULES` name; None keeps
    the scheme's; the derived parameters leave the fitted ones) and its neural step by ``dt`` (ms;
    None keeps the preset's)."""
    s = get_scheme(scheme)
    if fic is not None:
        rule = FIC_RULES[check_choice("fic", fic, tuple(FIC_RULES))]
        rule = None if rule is None else rule()
        s = s.replace(derived=rule, fit=tuple(n for n in s.fit if rule is None or n not in rule.names))
    return s if dt is None else s.replace(preset=s.preset.with_dt(dt))


def _named_or_file(kind: str, names: Sequence[str], available: Mapping, N: int) -> dict:
    """``name -> [N]`` arrays: a subject's ``available`` entry by name, or every map in a file."""
    from ..datasets import load_maps

    out = {}
    for name in names:
        if name in available:
            out[name] = available[name]
        elif Path(name).suffix:
            out.update(load_maps(name, N))
        else:
            raise ValueError(f"{kind}: {name!r} is neither one of the subject's {kind} {sorted(available)} nor a file")
    return out


def heterogeneity_for(subj, params: Sequence[str], *, maps: Sequence[str] = (), groups: str | None = None) -> dict:
    """name -> :class:`MapScaling` for each of ``params``: the subject's ``maps`` by name (or map files),
    or its node ``groups`` by name (or a labels file); {} when neither is given."""
    if maps and groups:
        raise ValueError("maps, groups: give brain maps or node groups, not both")
    if not (maps or groups):
        return {}
    if not params:
        raise ValueError("heterogeneity: maps or node groups are given but no parameter to apply them to (--het)")
    N = subj.sc.shape[-1]
    if maps:
        scaling = MapScaling.from_maps(_named_or_file("maps", maps, subj.maps, N), N)
    else:
        labels = _named_or_file("node_groups", [groups], subj.node_groups, N)
        if len(labels) != 1:
            raise ValueError(f"groups: {groups!r} holds {len(labels)} partitions; expected one label per region")
        (name, lab), = labels.items()
        scaling = MapScaling.from_groups(lab, N, name)
    return {p: scaling for p in params}


@dataclass
class PhysiologicalFitReport(Report):
    """A physiological fit of one subject (``nmmfit fit --scheme ...``): scores per restart and split."""
    dataset: str
    subject: str
    scheme: str
    fic: str
    dt: float
    heterogeneity: dict
    frames: int
    restarts: int
    epochs: int
    protocol: str
    best: int
    cost: dict
    scores: dict
    rate: dict
    fic_unstable_nodes: list
    fitted: dict
    wall_time: float
    projections: dict = field(default_factory=dict)
    scan: dict | None = None
    figures: list = field(default_factory=list)
    out: str = ""

    def summary(self) -> str:
        b = self.best
        lines = [f"fit: {self.dataset} subject {self.subject}, {self.scheme} (FIC {self.fic}, dt {self.dt:g} ms), "
                 f"heterogeneity {self.heterogeneity or 'none'}, {self.frames} frames, {self.epochs} updates, "
                 f"{self.restarts} restart(s)", f"protocol: {self.protocol}", f"restart {b} (best by train cost):"]
        if self.scan is not None:
            lines.insert(2, _scan_line(self.scan, b))
        for split, c in self.cost.items():
            lines.append(f"  {split}: FC r {c['fc_corr'][b]:.3f}, FCD KS {c['fcd_ks'][b]:.3f}, "
                         f"FC mean diff {c['fc_diff'][b]:.3f}, cuBNM cost {c['cost'][b]:.3f}")
        lines += _score_lines(self.scores)
        lines.append(f"  mean r_E after FIC: median {self.rate['median'][b]:.2f} Hz, range "
                     f"{self.rate['min'][b]:.2f}-{self.rate['max'][b]:.2f} Hz; FIC unstable at "
                     f"{self.fic_unstable_nodes[b]} node(s)")
        shrunk = {n: h["projections"][b] for n, h in self.projections.items() if h["projections"][b]}
        if shrunk:
            lines.append(f"  map coefficients put back to the scale floor (updates): {shrunk}")
        lines.append(f"wall time {self.wall_time:.1f} s; results in {self.out}")
        return "\n".join(lines)


def _starts(restarts: int, seed: int, init: Mapping) -> dict:
    """Restart k's initial values: ``init`` (natural units), with g spread log-uniformly over
    G = g / 0.15 in [0.5, 3] across restarts unless ``init`` fixes g (seeded)."""
    if restarts == 1 or "g" in init:
        return dict(init)
    u = torch.rand(restarts, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return dict(init, g=0.15 * torch.exp(np.log(0.5) + u * np.log(6.0)))


@torch.no_grad()
def scan_starts(make_model, bold, tr: float, grid: Mapping, restarts: int, *, init: Mapping, seed: int,
                burn_frames: int = 40, frames: int | None = None) -> tuple[dict, dict]:
    """Restarts' initial values from a grid scan. Every point of ``grid`` (name -> values, natural units;
    the other parameters at ``init`` or the scheme's values) is simulated in one batch,
    ``make_model(batch, init) -> RWW``, for ``burn_frames`` + ``frames`` (default ``len(bold)``) frames
    and scored by cuBNM's cost against ``bold # [T, N]`` (sample period ``tr`` s); the ``restarts`` best
    points where FIC is stable are the starts. Returns ``(init, table)``: ``init`` name ->
    ``[restarts]`` float64; ``table`` the grid and its cost parts (lists), ``chosen`` the starts' indices."""
    names = list(grid)
    points = list(itertools.product(*(grid[n] for n in names)))
    if restarts > len(points):
        raise ValueError(f"restarts: {restarts} restarts need at least as many scan points; the grid has {len(points)}")
    values = {n: torch.tensor([p[i] for p in points], dtype=torch.float64) for i, n in enumerate(names)}
    model = make_model(len(points), dict(init, **values))
    unknown = sorted(set(grid) - set(model.scheme.fit))
    if unknown:
        raise ValueError(f"scan: {unknown} not fitted by scheme {model.scheme.name!r}; expected names from "
                         f"{list(model.scheme.fit)}")
    sim = model(burn_frames + (frames or len(bold)), seed=seed).bold[:, burn_frames:]
    cost = cubnm_cost(sim, torch.as_tensor(np.asarray(bold), dtype=torch.float64), tr)
    ok = model.derived_report().get("fic_ok")
    score = cost["cost"].masked_fill(~torch.isfinite(cost["cost"]), float("inf"))
    if ok is not None:
        score = score.masked_fill(~ok.all(-1).cpu(), float("inf"))
    chosen = torch.argsort(score)[:restarts]
    if not torch.isfinite(score[chosen]).all():
        raise ValueError(f"scan: FIC has no stable g_IE (or the cost is not finite) at enough grid points for "
                         f"{restarts} restart(s); widen the grid (--scan) or change --init")
    table = dict({n: v.tolist() for n, v in values.items()}, **{k: v.tolist() for k, v in cost.items()},
                 chosen=chosen.tolist())
    return dict(init, **{n: v[chosen] for n, v in values.items()}), table


_SCAN_COLUMNS = ("fc_corr", "fc_diff", "fcd_ks", "fic_penalty", "cost", "chosen")


def _scan_line(scan: dict, best: int) -> str:
    i = scan["chosen"][best]
    point = ", ".join(f"{n} {scan[n][i]:.4g}" for n in scan if n not in _SCAN_COLUMNS)
    return (f"start: scan point {i} of {len(scan['cost'])} ({point}): FC r {scan['fc_corr'][i]:.3f}, "
            f"FCD KS {scan['fcd_ks'][i]:.3f}, cuBNM cost {scan['cost'][i]:.3f} on the fitted session")


def _check_fic_at_start(model) -> None:
    """A fit cannot start where analytic FIC has no stable g_IE (a rule that says so; during a fit,
    and for the iterative rule, instability is reported, not raised)."""
    rule = model.scheme.derived
    ok = model.derived_report().get("fic_ok")
    if ok is not None and rule.refuse_unstable_start and not bool(ok.all()):
        bad = (~ok).nonzero().tolist()
        raise ValueError(f"init: FIC has no stable g_IE at (model, node) {bad[:10]}{' ...' if len(bad) > 10 else ''} "
                         f"for the initial values ({rule.unstable_meaning}); raise g, g_EE or I_0 with --init")


RATE_RUN_VALUES = 1 << 22
"""Recorded E (and I) values per chunk of the rate run: bounds its memory at any length and batch
(the whole run at once held B x 864,000 x N of each at dt 1 ms over a 1200-frame session)."""


@torch.no_grad()
def _rates(model, n_frames: int, seed: int) -> torch.Tensor:
    """Mean r_E per region ``[B, N]`` of a fresh run of ``n_frames`` (E, I every ~1 ms), simulated
    in chunks with the state carried (the same run as one call: noise is keyed by step) so that
    memory stays within :data:`RATE_RUN_VALUES` records."""
    every = max(1, round(1.0 / model.preset.dt))
    sps = model.steps_per_sample
    unit = every // math.gcd(every, sps)                 # frames per chunk: whole records per chunk
    chunk = max(unit, RATE_RUN_VALUES * every // (model.B * model.N * sps) // unit * unit)
    state, total, rows = model.initial_state(seed=model.seed), 0.0, 0
    for f0 in range(0, n_frames, chunk):
        out = model(min(chunk, n_frames - f0), state, f0 * sps, record_every=every, seed=seed)
        total = total + rate_E(model, out.E.double(), out.I.double()).sum(-2)
        state, rows = out.state, rows + out.E.shape[1]
    return total / rows


def _costs(res, bold, held, tr: float, rate: torch.Tensor) -> dict:
    """cuBNM's cost parts per split: train (last epoch), test (fresh run vs fitted data), heldout; its
    FIC penalty from ``rate # [B, N]``, the mean r_E of a fresh run at the fitted values."""
    emp = torch.as_tensor(np.asarray(bold), dtype=torch.float64)
    skip = int(res.config.get("train_fc_skip", 0))      # the run's first frames, as the fit's own train FC r
    train = None if res.train_bold is None else res.train_bold[:, skip:]
    splits = {"train (in-sample)": (train, emp), "test (in-sample)": (res.test_bold, emp)}
    if held is not None:
        splits["held-out"] = (res.test_bold, torch.as_tensor(np.asarray(held), dtype=torch.float64))
    return {k: {n: v.tolist() for n, v in cubnm_cost(torch.as_tensor(sim), e, tr, rate=rate).items()}
            for k, (sim, e) in splits.items() if sim is not None}


def fit_physiological(out, *, dataset: str | None = "hcp_schaefer100", subject=0, sc_path=None, bold_path=None,
                      tr=None, scheme="deco2014_fic", fic: str | None = None, dt: float | None = 1.0,
                      het_params: Sequence[str] = HET_PARAMS, maps: Sequence[str] = (),
                      groups: str | None = None, regional: Sequence[str] = (), prior: str = "global",
                      weights: Mapping | None = None, init: Mapping | None = None, restarts: int = 1,
                      scan: Mapping | None = SCAN_GRID,
                      epochs: int = 20, lr: float = 0.05, resample_noise: bool = False,
                      frames: int | None = None, heldout: str = "auto",
                      seed: int = 0, dtype=torch.float32, backend: str = "auto", progress: bool = True,
                      figures: bool = True, overwrite: bool = False, resume: bool = False) -> PhysiologicalFitReport:
    """Fit one subject (module docstring) with ``restarts`` models batched, full-session exact
    gradients, Adam at ``lr`` on the scheme's log-scale parameters, scored on the held-out session.
    The same noise every update (a deterministic objective), or with ``resample_noise`` fresh noise
    every update (stochastic gradients of the expected objective; the estimate is then the mean of the
    last quarter of the updates). The restarts start at the best points of
    ``scan`` (:func:`scan_starts`; None: G spread over [0.5, 3] from ``init``). Writes result.json/npz,
    report.json and figures into ``out``; ``resume`` continues from the checkpoint there (the scan,
    deterministic, is run again to give the same start)."""
    t0 = time.perf_counter()
    restarts = check_int("restarts", restarts, 1)
    out = prepare_run_dir(out, overwrite=overwrite, resume=resume)
    subj = load_subject(dataset, subject, sc_path=sc_path, bold_path=bold_path, tr=tr)
    if subj.bold is None:
        raise ValueError(f"{subj.name}: has no BOLD to fit (only an SC)")
    bold, held, protocol = split_data(subj, dataset, subject, heldout, frames)
    sch = physiological_scheme(scheme, fic, dt)
    het = heterogeneity_for(subj, het_params, maps=maps, groups=groups)
    scan_table = None
    scan = {n: v for n, v in (scan or {}).items() if n not in (init or {})}      # a fixed start leaves the scan

    def make_model(batch, start, **kw):
        return RWW(subj.sc, scheme=sch, tr=subj.tr, batch=batch, init=start, seed=seed, dtype=dtype,
                   backend=backend, **kw)

    if scan:
        start, scan_table = scan_starts(make_model, bold, subj.tr, scan, restarts, init=init or {}, seed=seed)
    else:
        start = _starts(restarts, seed, init or {})
    model = make_model(restarts, start, regional=regional, heterogeneity=het)
    _check_fic_at_start(model)
    objective = deco2014_objective(model, weights, prior=prior)
    discard = round(DISCARD_S / subj.tr)
    res = run_fit(model, bold, objective=objective, heldout=held, group_fc=group_fc_for(dataset, subj.subject)
                  if sc_path is None else None, mode="full", resample_noise=resample_noise, epochs=epochs,
                  lr=lr, average_last=max(1, epochs // 4) if resample_noise else 1, test_windows="data",
                  discard_frames=discard, sim_frames=len(bold) + discard,
                  seed=seed, out_dir=out, overwrite=overwrite, resume=resume, progress=progress, save_result=False)
    rate = _rates(model, len(bold), seed)
    ok = model.derived_report().get("fic_ok")
    cost = _costs(res, bold, held, subj.tr, rate)          # FC and FCD are scale-free: the data as given
    best = int(np.argmin(cost["train (in-sample)"]["cost"]))
    res.extra.update(dataset=subj.name, subject=subj.subject, tr=subj.tr, protocol=protocol, cubnm_cost=cost,
                     rate_E=rate.numpy(), heterogeneity=model.heterogeneity_report(),
                     labels=None if subj.labels is None else list(subj.labels),
                     fic_ok=None if ok is None else ok.numpy(), scan=scan_table)
    res.save(out)
    figs = []
    if figures_enabled(figures):
        from ..plots_physiological import plot_physiological
        used = {n: row for m in het.values() if m.kind == "maps" for n, row in zip(m.names, m.maps)}
        figs = [str(p) for p in plot_physiological(res, out, subj.tr, bold, held, best, used)]
    report = PhysiologicalFitReport(
        dataset=subj.name, subject=str(subj.subject), scheme=sch.name,
        fic="none" if sch.derived is None else sch.derived.label, dt=float(model.preset.dt),
        heterogeneity={n: m.scaling.describe() for n, m in model.hetero.items()} or
        ({n: "regional" for n in regional}), frames=int(len(bold)), restarts=restarts,
        epochs=res.epochs_completed, protocol=protocol, best=best, cost=cost, scores=res.scores(best),
        rate=dict(median=rate.median(-1).values.tolist(), min=rate.amin(-1).tolist(), max=rate.amax(-1).tolist()),
        fic_unstable_nodes=[0] * restarts if ok is None else (~ok).sum(-1).tolist(),
        fitted={k: np.asarray(v)[best].tolist() for k, v in res.fitted.items()},
        wall_time=time.perf_counter() - t0, projections=model.heterogeneity_report(), scan=scan_table, figures=figs,
        out=str(out))
    report.save(out / "report.json")
    return report
