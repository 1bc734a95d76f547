"""Held-out evaluation of nmmfit's RWW fits (Griffiths et al. 2022 scheme and regularised variants).

Protocol (implemented once, below: `load_task`, `baselines`, `score_fc`, `evaluate`):

* hcp_schaefer100 (2 subjects): fit REST1_LR (1200 frames), score the FC of a fresh simulation of
  the fitted model against REST2_LR's empirical FC. Group FC = hcp_schaefer100_group
  'group-train706' (706 HCP subjects, all REST sessions).
* hcp_aal2 (7 subjects, one session): fit frames [0, 600), score against frames [600, 1200).
  Group FC = mean FC (full runs) of the other 6 subjects (leave-one-out; never the scored subject).
* Hyper-parameters (penalty weights, shrinkage) are chosen on an *inner* split of the training
  data only (`inner_task`: fit the first half of the training frames, score the second half);
  the held-out session / half is never used for selection.
* Baselines per subject: r(SC, FC_heldout) (preprocessed SC as the model uses it), r(group FC,
  FC_heldout), test-retest r(FC_train, FC_heldout), and the data-only shrinkage estimate
  a*group + (1-a)*FC_train with a chosen on the inner split.
* Model scores: in-sample r (model FC vs FC_train), held-out r (model FC vs FC_heldout),
  r(model FC, group FC), and the subject-specific part corr(model FC - group FC, FC_heldout - group FC).
  Model FC = FC of a fresh simulation of the estimate (the paper's test run: fresh random state,
  2 windows burn-in, 120 windows of 20 frames), restart chosen by train r (never by held-out r).

Run `python bench/heldout.py --help`; every row of bench/heldout_results.md names its command.
Only the public API of nmmfit is used.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

import nmmfit
from nmmfit import datasets
from nmmfit.losses import GainPenalty, TargetFCLoss
from nmmfit.params.schemes import GRIFFITHS2022_SCHEME
from nmmfit.sc import EXP_GAINS, TANH_GAINS, gains_from_fc
from nmmfit.stats.baselines import shrinkage_fc, shrinkage_weight, tri_r
from nmmfit.stats.fc import fc_matrix, lower_tri, pearson

HERE = Path(__file__).resolve().parent
RESULTS_JSONL = HERE / "heldout_results.jsonl"


# ----------------------------------------------------------------------------- FC helpers (the package's)
def lt(m: np.ndarray) -> np.ndarray:
    return lower_tri(torch.as_tensor(np.asarray(m, dtype=np.float64))).numpy()


def corr(a, b) -> float:
    return float(pearson(torch.as_tensor(np.ravel(a), dtype=torch.float64),
                         torch.as_tensor(np.ravel(b), dtype=torch.float64)))


def fc_r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the lower triangles (k=-1) of two FC matrices."""
    return float(tri_r(a, b))


def fc_of(bold: np.ndarray) -> np.ndarray:
    """FC (Pearson) of a [T, N] run."""
    return fc_matrix(torch.as_tensor(np.asarray(bold, dtype=np.float64))).numpy()


# ----------------------------------------------------------------------------- tasks
@dataclass
class Task:
    dataset: str
    subject: str
    sc: np.ndarray           # [N, N] raw SC
    train: np.ndarray        # [T, N] BOLD the model is fitted to
    heldout: np.ndarray      # [T', N] BOLD it is scored on (never used for fitting or selection)
    group_fc: np.ndarray     # [N, N] FC of other people (never including this subject's data...)
    group_note: str
    split: str               # description of train/held-out
    others_fc: list = field(default_factory=list)   # other subjects' FC (hcp_aal2 only)

    @property
    def N(self):
        return self.sc.shape[0]

    @property
    def label(self):
        return f"{self.dataset}:{self.subject}"


def load_task(dataset: str, subject: int) -> Task:
    if dataset == "hcp_schaefer100":
        s1 = datasets.load(dataset, subject=subject, session="REST1_LR")
        s2 = datasets.load(dataset, subject=subject, session="REST2_LR")
        grp = datasets.load("hcp_schaefer100_group", subject="group-train706")
        return Task(dataset, str(s1.subject), np.asarray(s1.sc, float), np.asarray(s1.bold, float),
                    np.asarray(s2.bold, float), np.asarray(grp.fc, float),
                    "hcp_schaefer100_group group-train706 FC (706 subjects)", "REST1_LR -> REST2_LR")
    if dataset == "hcp_aal2":
        n = datasets.dataset_info(dataset).n_subjects
        subs = [datasets.load(dataset, subject=k) for k in range(n)]
        s = subs[subject]
        bold = np.asarray(s.bold, float)
        h = len(bold) // 2
        others = [fc_of(np.asarray(o.bold, float)) for k, o in enumerate(subs) if k != subject]
        return Task(dataset, str(s.subject), np.asarray(s.sc, float), bold[:h], bold[h:],
                    np.mean(others, axis=0), f"mean FC of the other {n - 1} subjects (leave-one-out)",
                    f"frames [0,{h}) -> [{h},{len(bold)})", others)
    raise ValueError(f"unknown dataset {dataset!r}")


def inner_task(task: Task) -> Task:
    """The selection split: fit the first half of the training frames, score the second half."""
    h = len(task.train) // 2
    return replace(task, train=task.train[:h], heldout=task.train[h:], split=f"inner: train[:{h}] -> train[{h}:]")


SUBJECTS = {"hcp_schaefer100": [0, 1], "hcp_aal2": list(range(7))}


# ----------------------------------------------------------------------------- baselines and scores
def shrink_fc(task: Task, a: float) -> np.ndarray:
    return shrinkage_fc(fc_of(task.train)[None], task.group_fc, a)[0]


def choose_shrinkage(task: Task) -> float:
    """The data-only shrinkage weight a (FC_target = a*group + (1-a)*FC_train) maximising the
    inner-split r (selection never sees the held-out data): the package's shrinkage_weight."""
    return float(shrinkage_weight(task.train[None], task.group_fc)[0])


def baselines(task: Task, sc_preprocess: str = "log1p_fro") -> dict:
    fh = fc_of(task.heldout)
    ft = fc_of(task.train)
    scp = nmmfit.preprocess_sc(torch.as_tensor(task.sc), method=sc_preprocess).numpy()
    a = choose_shrinkage(task)
    scm = nmmfit.preprocess_sc(torch.as_tensor(task.sc), method="max_log1p_fro").numpy()
    return dict(r_sc=fc_r(scp, fh), r_sc_train=fc_r(scp, ft), r_sc_maxlog=fc_r(scm, fh), r_sc_raw=fc_r(task.sc, fh), r_group=fc_r(task.group_fc, fh),
                r_retest=fc_r(ft, fh), r_group_train=fc_r(task.group_fc, ft),
                shrink_a=a, r_shrink=fc_r(shrink_fc(task, a), fh),
                subj_part_retest=corr(lt(ft - task.group_fc), lt(fh - task.group_fc)))


def score_fc(model_fc: np.ndarray, task: Task) -> dict:
    fh, ft, g = fc_of(task.heldout), fc_of(task.train), task.group_fc
    return dict(insample_r=fc_r(model_fc, ft), heldout_r=fc_r(model_fc, fh), r_model_group=fc_r(model_fc, g),
                subj_part=corr(lt(model_fc - g), lt(fh - g)))


# ----------------------------------------------------------------------------- loss terms (the package's)
def paper_terms(model, fc_weight=1.0) -> dict:
    """The paper's objective terms (griffiths2022_objective) as a name -> (term, weight) dict."""
    obj = nmmfit.griffiths2022_objective(model)
    terms = {n: (t, obj.weights[n]) for n, t in obj.terms.items()}
    terms["fc"] = (terms["fc"][0], fc_weight)
    return terms


# ----------------------------------------------------------------------------- model variants
EXP_SCHEME = GRIFFITHS2022_SCHEME.replace(name="griffiths2022_exp_gains", gain_form=EXP_GAINS)
"""(d/e) Multiplicative log-gains on the SC support, ``exp(w) * SC`` (instead of the paper's
``(1 + tanh w) * SC``, which bounds every edge to [0, 2] SC), symmetrised and Frobenius-normalised as in
the paper (nmmfit.sc.ExpGains; the group_shrinkage scheme's form)."""


# ----------------------------------------------------------------------------- fitting and evaluation
def make_model(task: Task, R: int, seed: int, *, scheme=GRIFFITHS2022_SCHEME, init=None, gains=None,
               sc_preprocess=None, **kw):
    init0 = nmmfit.paper_init(R, seed=seed)
    if init:
        init0.update({k: torch.as_tensor(v, dtype=torch.float64).expand(R).clone() for k, v in init.items()})
    m = nmmfit.RWW(task.sc, scheme=scheme, batch=R, init=init0, seed=seed, sc_preprocess=sc_preprocess,
            stream=torch.arange(R), rng_by_stream=True, **kw)
    if gains is not None:
        m.set_gains(torch.as_tensor(np.asarray(gains), dtype=torch.float32))
    return m


def estimate_from(model, res) -> nmmfit.RWW:
    """The fit's estimate (mean of the last updates, as nmmfit.fit's test run uses) as a model."""
    est = copy.deepcopy(model)
    est.set_values({n: torch.as_tensor(res.fitted[n]) for n in model.fitted})
    if res.gains is not None and getattr(est, "gains", None) is not None and est.gains.requires_grad:
        est.set_gains(torch.as_tensor(res.gains))
    return est


def simulate_fc(est, seed: int, n_windows: int = 120) -> np.ndarray:
    """FC [B, N, N] of a fresh simulation of every model in est (the paper's test run)."""
    bold = nmmfit.simulate_test(est, n_windows=n_windows, window=20, burn_in_windows=2, seed=seed)
    return nmmfit.fc_matrix(bold.double()).numpy()


def fit_models(task: Task, model, objective, *, bold=None, mode="windowed", epochs=20, lr=0.01,
               lr_scale=None, seed=0, **fit_kw):
    """nmmfit.fit on task.train (or bold); returns (estimate model, FitResult, seconds)."""
    t0 = time.perf_counter()
    res = nmmfit.fit(model, task.train if bold is None else bold, objective=objective, mode=mode, epochs=epochs,
                     lr=lr, lr_scale=lr_scale, seed=seed, test=False, progress=False, **fit_kw)
    return estimate_from(model, res), res, time.perf_counter() - t0


def pick(res, target_fc: np.ndarray) -> int:
    """The restart whose last-epoch training simulation's FC is closest (r) to the fitting target
    (= the training FC for the paper's scheme): selection on the training fit only."""
    return int(np.nanargmax([fc_r(f, target_fc) for f in res.train_fc]))


def with_gains(est, gains) -> nmmfit.RWW:
    e = copy.deepcopy(est)
    e.set_gains(torch.zeros(()) if gains is None else torch.as_tensor(np.asarray(gains), dtype=torch.float32))
    return e


def evaluate(task: Task, est, b: int, *, seed: int, group_gains=None) -> dict:
    """Held-out scores of restart b of est, plus the ablations: gains reset to 0 (W = SC) and,
    when given, to the group gains (neural-mass parameters kept)."""
    fc = simulate_fc(est, seed)[b]
    out = score_fc(fc, task)
    out["fc_sim"] = fc
    f0 = simulate_fc(with_gains(est, None), seed)[b]
    s0 = score_fc(f0, task)
    out.update(heldout_r_gains0=s0["heldout_r"], insample_r_gains0=s0["insample_r"])
    if group_gains is not None:
        fg = simulate_fc(with_gains(est, group_gains), seed)[b]
        sg = score_fc(fg, task)
        out.update(heldout_r_groupgains=sg["heldout_r"], insample_r_groupgains=sg["insample_r"])
    vals = {n: float(np.mean(est.value(n).detach().numpy()[b])) for n in est.fitted}
    out["params"] = vals
    return out


# ----------------------------------------------------------------------------- schemes
PRE = "max_log1p_fro"    # raw streamline counts: log1p alone flattens the SC (r(SC, FC) 0.06 vs 0.17)
REGIME = {"g_EE": 3.5, "sigma": 0.02, "sigma_out": 0.001}   # fixed noise: the FC-term's noise trap is closed
FIT_NM = ("g", "g_EE", "g_IE", "g_EI")
LR_SCALE = {"g": 100.0, "prior_g": 100.0, "gains": 3.0}


GAINS = "exp"            # "exp": EXP_SCHEME (log-gains); "tanh": the paper's gains (bench/heldout.py --gains tanh)


def fc_gain_init(task: Task, fc: np.ndarray, pre: str = PRE) -> np.ndarray:
    """Analytic warm start of the gains from a target FC (nmmfit.sc.gains_from_fc)."""
    scp = nmmfit.preprocess_sc(torch.as_tensor(task.sc), method=pre)
    form = EXP_GAINS if GAINS == "exp" else TANH_GAINS
    return gains_from_fc(scp, torch.as_tensor(fc), form).numpy()


def _terms(model, *, fc_weight, target=None, lam=0.0, ref=None, prev=None) -> nmmfit.Objective:
    terms = paper_terms(model, fc_weight)
    if prev is not None:         # keep the learned hyper-parameters (bifurcation coefficients, prior means)
        for n in ("bifurcation", "prior_g", "prior_g_EE"):
            terms[n] = (copy.deepcopy(prev.terms[n]), terms[n][1])
    if target is not None:
        terms["target_fc"] = (TargetFCLoss(target), 1.0)
    if lam:
        terms["gain_prior"] = (GainPenalty(ref), float(lam))
    return nmmfit.Objective(terms)


@dataclass
class Stage:
    """One fit: what the FC term compares against and how the gains are regularised."""
    target: str = "window"      # "window" (paper: the empirical window's FC), "group", "session", "shrink"
    lam: float = 0.0            # weight of mean over SC edges of (gains - ref)^2
    ref: str = "zero"           # "zero" (W -> SC) or "group" (the group stage's gains)
    epochs: int = 20
    lr_scale: dict | None = None
    regime: bool = True         # False: the paper's set-up exactly (log1p SC, paper init, all 6 fitted)


def run_stage(task: Task, st: Stage, *, R: int, seed: int, start=None, group_gains=None, shrink_a=None):
    """Fit one stage; ``start`` = (estimate model, objective) of a previous stage to continue from."""
    if start is not None:
        model = copy.deepcopy(start[0])
        prev = start[1]
    elif st.regime:
        model = make_model(task, R, seed, scheme=EXP_SCHEME if GAINS == "exp" else GRIFFITHS2022_SCHEME, fit=FIT_NM,
                           init=REGIME, sc_preprocess=PRE,
                           gains=np.broadcast_to(fc_gain_init(task, task.group_fc), (R, task.N, task.N)).copy())
        prev = None
    else:
        model = make_model(task, R, seed)
        prev = None
    fc_train = fc_of(task.train)
    target = {"window": None, "group": task.group_fc, "session": fc_train,
              "shrink": None if shrink_a is None else shrink_fc(task, shrink_a)}[st.target]
    ref = None if st.ref == "zero" else group_gains
    obj = _terms(model, fc_weight=1.0 if st.target == "window" else 0.0, target=target, lam=st.lam, ref=ref,
                 prev=prev)
    lr_scale = LR_SCALE if st.lr_scale is None and st.regime else st.lr_scale
    est, res, sec = fit_models(task, model, obj, epochs=st.epochs, lr_scale=lr_scale, seed=seed)
    sel = fc_train if target is None else target
    return est, obj, res, sec, pick(res, sel)


def _dummy_bold(task: Task) -> np.ndarray:
    """BOLD handed to nmmfit.fit when the loss only sees a static target FC (it sets the number
    of windows per epoch; its FC is not used): the training frames (tiled to >= 1200 frames)."""
    reps = int(np.ceil(1200 / len(task.train)))
    return np.concatenate([task.train] * reps)[:max(1200, len(task.train))]


_GROUP_CACHE: dict = {}
CACHE_DIR = HERE.parent / "out" / "heldout_cache"
G_GRID: tuple = ()       # --g-grid: after the group stage, g set by a grid search on the group FC


def choose_g(est, b: int, task: Task, grid, *, seed: int, n_windows: int = 120):
    """(c) g by a 1-D grid search on the *group* target (no subject data): windowed Adam hardly
    moves g (its gradient is noise-dominated). Every grid value is simulated with restart b's
    other parameters and gains; the best r(model FC, group FC) is kept (for all restarts)."""
    n = len(grid)
    names = tuple(nmmfit.PARAM_NAMES) + ("sigma_out",)
    vals = {k: est.value(k).detach()[b].double().expand(n).clone() for k in names}
    vals["g"] = torch.as_tensor(grid, dtype=torch.float64)
    probe = nmmfit.RWW(task.sc, scheme=est.scheme, batch=n, init=vals, seed=est.seed, sc_preprocess=PRE,
                      stream=torch.arange(n), rng_by_stream=True)
    probe.set_gains(est.gains.detach()[b].expand(n, -1, -1))
    rs = [fc_r(f, task.group_fc) for f in simulate_fc(probe, seed + 99, n_windows)]
    g = float(grid[int(np.argmax(rs))])
    print("  g grid on the group FC: " + ", ".join(f"{x:g}:{r:.3f}" for x, r in zip(grid, rs)) + f" -> g={g:g}",
          flush=True)
    m = copy.deepcopy(est)
    m.set_values({"g": torch.full((est.B,), g, dtype=torch.float64)})
    return m, b


def group_stage(task: Task, *, R: int, seed: int, epochs: int):
    """Stage 1 of (b): gains + neural-mass parameters fitted to the group FC (the subject's SC,
    the analytic FC warm start, windowed Adam on -log(0.5+0.5 r(window sim FC, group FC))). Uses
    no data of the subject's training or held-out BOLD. Cached per (subject, settings)."""
    key = (task.dataset, task.subject, R, seed, epochs, GAINS, G_GRID)
    path = CACHE_DIR / ("group_" + "_".join(map(str, key)) + ".pt")
    if key not in _GROUP_CACHE and path.exists():
        _GROUP_CACHE[key] = torch.load(path, weights_only=False)
    if key not in _GROUP_CACHE:
        st = Stage(target="group", epochs=epochs)
        t2 = replace(task, train=_dummy_bold(task))
        est, obj, res, sec, b = run_stage(t2, st, R=R, seed=seed)
        if G_GRID:
            est, b = choose_g(est, b, task, G_GRID, seed=seed)
        _GROUP_CACHE[key] = (est, obj, res, sec, b)
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        torch.save(_GROUP_CACHE[key], path)
    return _GROUP_CACHE[key]


def run_method(task: Task, method: str, *, R: int, seed: int, epochs1: int, epochs2: int, lam: float = 0.0,
               shrink_a: float | None = None, eval_seed: int = 12345) -> dict:
    """Fit ``task.train`` with ``method`` and score on ``task.heldout``. Returns a row."""
    t0 = time.perf_counter()
    gg = None
    info = {}
    if method == "paper":                       # the paper's scheme as nmmfit implements it
        est, obj, res, sec, b = run_stage(task, Stage("window", epochs=epochs2, regime=False), R=R, seed=seed)
    elif method == "paper_lr":                  # (c) + the paper's set-up: g and its prior mean move
        est, obj, res, sec, b = run_stage(task, Stage("window", epochs=epochs2, regime=False,
                                                      lr_scale={"g": 100.0, "prior_g": 100.0}), R=R, seed=seed)
    elif method == "paper_l2":                  # (a) the paper + lam * mean(gains^2)
        est, obj, res, sec, b = run_stage(task, Stage("window", lam=lam, ref="zero", epochs=epochs2, regime=False),
                                          R=R, seed=seed)
        info["lam"] = lam
    elif method == "regime":                    # the regime alone (no group stage): window FC term
        est, obj, res, sec, b = run_stage(task, Stage("window", epochs=epochs2), R=R, seed=seed)
    else:
        gest, gobj, gres, gsec, gb = group_stage(task, R=R, seed=seed, epochs=epochs1)
        gg = gest.gains.detach().clone()
        info["group_stage_s"] = gsec
        if method == "group":                   # (b) stage 1 only: the group coupling, no subject data
            est, obj, res, sec, b = gest, gobj, gres, 0.0, gb
        elif method == "group_subj":            # (b) stage 2: the paper's window FC term + lam |w - w_group|^2
            est, obj, res, sec, b = run_stage(task, Stage("window", lam=lam, ref="group", epochs=epochs2), R=R,
                                              seed=seed, start=(gest, gobj), group_gains=gg)
            info["lam"] = lam
        elif method == "group_shrink":          # (e) stage 2: static target a*group + (1-a)*FC_train
            a = choose_shrinkage(task) if shrink_a is None else shrink_a
            est, obj, res, sec, b = run_stage(task, Stage("shrink", lam=lam, ref="group", epochs=epochs2), R=R,
                                              seed=seed, start=(gest, gobj), group_gains=gg, shrink_a=a)
            info.update(lam=lam, shrink_a=a)
        elif method == "group_session":         # (e) stage 2: static target FC_train (whole session)
            est, obj, res, sec, b = run_stage(task, Stage("session", lam=lam, ref="group", epochs=epochs2), R=R,
                                              seed=seed, start=(gest, gobj), group_gains=gg)
            info["lam"] = lam
        else:
            raise ValueError(f"unknown method {method!r}")
    ev = evaluate(task, est, b, seed=eval_seed, group_gains=None if gg is None else gg[b])
    ev.pop("fc_sim")
    return dict(method=method, gains=GAINS if method not in ("paper", "paper_lr", "paper_l2") else "tanh",
                dataset=task.dataset, subject=task.subject, split=task.split, R=R, seed=seed,
                epochs1=epochs1, epochs2=epochs2, best=b, wall_s=time.perf_counter() - t0, **info, **ev)


def select_lam(tasks, method, lams, **kw) -> tuple[float, dict]:
    """lam maximising the mean inner-split held-out r over the dataset's subjects (training data only)."""
    scores = {}
    for lam in lams:
        rs = [run_method(inner_task(t), method, lam=lam, **kw)["heldout_r"] for t in tasks]
        scores[lam] = float(np.mean(rs))
        print(f"  inner {method} lam={lam}: {scores[lam]:.3f} ({', '.join(f'{r:.3f}' for r in rs)})", flush=True)
    return max(scores, key=scores.get), scores


def _jsonable(v):
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def record(row: dict, path: Path = RESULTS_JSONL):
    with open(path, "a") as f:
        f.write(json.dumps(_jsonable(row)) + "\n")


def _wall(r) -> float:
    """Total seconds of a row: the group stage is cached across methods, so add it to stage-2 rows."""
    return r["wall_s"] + (r.get("group_stage_s", 0.0) if r["method"] in ("group_subj", "group_shrink", "group_session") else 0.0)


def _label(r) -> str:
    paper = r["method"].startswith("paper")
    return r["method"] + ("" if paper else f" ({r.get('gains', 'tanh')} gains)") + \
        (" g-grid" if "g-grid" in r.get("cmd", "") else "") + \
        (f" {r['epochs1']} group epochs" if not paper and r["method"] != "regime" and r.get("epochs1", 12) != 12 else "")


def pivot(rows) -> list:
    """held-out r per method (rows) x subject (columns), per dataset, with the baselines first."""
    out = []
    for ds in SUBJECTS:
        base = {r["subject"]: r for r in rows if r["method"] == "baselines" and r["dataset"] == ds}
        if not base:
            continue
        subs = list(base)
        out += ["", f"#### {ds}: held-out FC r per subject (last column: mean)", "",
                "| | " + " | ".join(subs) + " | mean |", "|---" * (len(subs) + 2) + "|"]
        for name, key in (("r(SC, FC_ho), log1p SC", "r_sc"), ("group FC (other people)", "r_group"),
                          ("test-retest FC_train", "r_retest"), ("shrinkage FC (data only)", "r_shrink")):
            v = [base[k][key] for k in subs]
            out.append(f"| baseline: {name} | " + " | ".join(f"{x:.3f}" for x in v) + f" | {np.mean(v):.3f} |")
        labels = []
        for r in rows:
            if r["method"] != "baselines" and r["dataset"] == ds and _label(r) not in labels:
                labels.append(_label(r))
        for lab in labels:
            last = {r["subject"]: r for r in rows if r["dataset"] == ds and r["method"] != "baselines" and _label(r) == lab}
            v = [last[k]["heldout_r"] if k in last else float("nan") for k in subs]
            out.append(f"| {lab} | " + " | ".join("-" if np.isnan(x) else f"{x:.3f}" for x in v) +
                       f" | {np.nanmean(v):.3f} |")
    return out


def table(path: Path = RESULTS_JSONL) -> str:
    """Markdown tables of every recorded row (python bench/heldout.py --table)."""
    rows = [json.loads(l) for l in open(path) if l.strip()]
    out = pivot(rows) + ["", "### Baselines (data only; no model)", "",
           "| dataset | subject | split | r(SC,FC_ho) log1p / maxlog / raw | r(group FC, FC_ho) | test-retest r(FC_tr, FC_ho) "
           "| shrinkage a*group+(1-a)*FC_tr (a from inner split) | subject-specific part of FC_tr |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["method"] == "baselines":
            out.append(f"| {r['dataset']} | {r['subject']} | {r['split']} | {r['r_sc']:.3f} / {r['r_sc_maxlog']:.3f} / "
                       f"{r['r_sc_raw']:.3f} | {r['r_group']:.3f} | {r['r_retest']:.3f} | {r['r_shrink']:.3f} (a={r['shrink_a']:.2f}) "
                       f"| {r['subj_part_retest']:.3f} |")
    out += ["", "### Fits (held-out = FC of a fresh 120-window simulation of the estimate vs the held-out FC; restart "
            "picked on the training fit)", "",
            "| method | dataset | subject | lam | in-sample r | **held-out r** | r(model, group FC) | subject-specific part | "
            "held-out r, gains -> group | held-out r, gains -> 0 (W=SC) | g, g_EE | wall s | load | command |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["method"] == "baselines":
            continue
        gg = r.get("heldout_r_groupgains")
        p = r.get("params", {})
        out.append(f"| {_label(r)} | {r['dataset']} | {r['subject']} | {r.get('lam', 0):g} | {r['insample_r']:.3f} | "
                   f"**{r['heldout_r']:.3f}** | {r['r_model_group']:.3f} | {r['subj_part']:.3f} | "
                   f"{'-' if gg is None else f'{gg:.3f}'} | {r['heldout_r_gains0']:.3f} | "
                   f"{p.get('g', float('nan')):.1f}, {p.get('g_EE', float('nan')):.2f} | {_wall(r):.0f} | "
                   f"{r.get('load', [0])[0]:.1f} | `{r.get('cmd', '')}` |")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="hcp_schaefer100", choices=sorted(SUBJECTS))
    p.add_argument("--subjects", default=None, help="comma-separated indices (default: all)")
    p.add_argument("--method", default=["baselines"], nargs="+",
                   choices=["baselines", "paper", "paper_lr", "paper_l2", "regime", "group", "group_subj",
                            "group_shrink", "group_session"])
    p.add_argument("--restarts", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs1", type=int, default=12, help="group stage epochs (of the dummy 1200-frame run)")
    p.add_argument("--epochs2", type=int, default=6, help="subject stage / single-stage epochs")
    p.add_argument("--lam", type=float, nargs="*", default=[0.0],
                   help="gain penalty weight(s); several: chosen on the inner split of the training data")
    p.add_argument("--shrink-a", type=float, default=None, help="group_shrink: fixed a (default: chosen on the inner split)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--g-grid", type=float, nargs="*", default=[],
                   help="after the group stage, set g by a grid search on r(model FC, group FC)")
    p.add_argument("--gains", default="exp", choices=["exp", "tanh"],
                   help="regime schemes: log-gains exp(w)*SC (default) or the paper's (1+tanh w)*SC")
    p.add_argument("--table", action="store_true", help="print the markdown tables of the recorded rows")
    args = p.parse_args(argv)
    if args.table:
        print(table())
        return
    torch.set_num_threads(args.threads)
    global GAINS, G_GRID
    GAINS = args.gains
    G_GRID = tuple(args.g_grid)
    subs = SUBJECTS[args.dataset] if args.subjects is None else [int(s) for s in args.subjects.split(",")]
    tasks = [load_task(args.dataset, k) for k in subs]
    cmd = "python bench/heldout.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.method == ["baselines"]:
        for t in tasks:
            b = baselines(t)
            print(t.label, {k: round(v, 3) for k, v in b.items()})
            record(dict(method="baselines", dataset=t.dataset, subject=t.subject, split=t.split, cmd=cmd,
                        group_note=t.group_note, **b))
        return
    kw = dict(R=args.restarts, seed=args.seed, epochs1=args.epochs1, epochs2=args.epochs2)
    for method in args.method:
        lam, scores = args.lam[0], None
        if len(args.lam) > 1 and method not in ("paper", "paper_lr", "group", "regime"):
            lam, scores = select_lam(tasks, method, args.lam, shrink_a=args.shrink_a, **kw)
            print(f"selected lam={lam}", flush=True)
        for t in tasks:
            row = run_method(t, method, lam=lam, shrink_a=args.shrink_a, **kw)
            row.update(cmd=cmd, lam_scores=scores, baselines=baselines(t), load=os.getloadavg())
            record(row)
            print(t.label, method, {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()
                                    if k not in ("baselines", "cmd", "lam_scores")}, flush=True)


if __name__ == "__main__":
    main()
