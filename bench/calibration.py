"""Calibration of the fit's intervals: do nominal-90% intervals cover the truth 90% of the time?

R synthetic data sets at the paper's ground truth (hagmann66, state and output noise 0.02), each
with its own noise seed, are fitted as one batch of R models (model r to data set r; the synthetic
recovery's settings: moments objective, L-BFGS on the full session against a 2x longer simulation
with common random numbers, every fitted parameter started uniformly within +-40% of the truth),
and each fit's Laplace intervals (:func:`nmmfit.fit.uncertainty.laplace_uncertainty`) are checked
against the truth. Writes ``<out>/calibration.json`` and prints the coverage table (markdown).

``--profile`` checks the profile-likelihood intervals (:func:`nmmfit.fit.profile.batched_profiles`)
instead, on a previous run's fits and Laplace intervals (``--estimates-from``): per parameter, all
replicates' profile points are one batch of ``replicates x points`` models in one fit. Writes
``<out>/profile_calibration.json`` and prints profile coverage beside Laplace's.

    .venv/bin/python bench/calibration.py --replicates 20 --frames 600 --out bench/calibration_out
    .venv/bin/python bench/calibration.py --replicates 20 --frames 200 --profile \
        --estimates-from bench/uncertainty_calibration.json --out bench/calibration_out
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from nmmfit import datasets
from nmmfit.fit import fit
from nmmfit.fit.profile import batched_profiles
from nmmfit.fit.uncertainty import Uncertainty, laplace_uncertainty
from nmmfit.experiments.recover import recover_starts
from nmmfit.losses import moments_objective
from nmmfit.model import RWW
from nmmfit.params.schemes import SYNTHETIC_TRUTH
from nmmfit.rng import derive_seed

FIT = ("g", "g_EE", "g_IE", "g_EI", "sigma_out")


def synthetic_sets(sc, truth, R: int, frames: int, seed: int, burn: int = 20) -> torch.Tensor:
    """``[R, frames, N]``: R independent synthetic BOLD runs of the truth (noise streams 0..R-1)."""
    gen = RWW(sc, fit=(), init=truth, batch=R, fit_gains=False, rng_by_stream=True,
              seed=derive_seed("calibration-data", seed) % 2**62)
    with torch.no_grad():
        return gen(frames + burn, gen.initial_state(seed=derive_seed("calibration-state", seed)), 0).bold[:, burn:]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=20)
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--unc-replicates", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--estimates-from", default=None, metavar="JSON",
                    help="a previous run's calibration.json (same replicates, frames, seed): reuse its fitted "
                         "values and recompute only the intervals")
    ap.add_argument("--profile", action="store_true",
                    help="profile-likelihood intervals of --estimates-from's fits beside its Laplace intervals")
    ap.add_argument("--profile-points", type=int, default=7)
    ap.add_argument("--profile-epochs", type=int, default=20)
    ap.add_argument("--profile-sim-factor", type=float, default=None,
                    help="profile simulation length / data length (default: that of the fits)")
    ap.add_argument("--profile-names", default=",".join(FIT), help="parameters to profile, in this order")
    a = ap.parse_args(argv)
    if a.profile and not a.estimates_from:
        ap.error("--profile needs --estimates-from (the fits and Laplace intervals to profile around)")
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    subj = datasets.load("hagmann66", subject=0)
    truth, R, T = dict(SYNTHETIC_TRUTH), a.replicates, a.frames
    bold = synthetic_sets(subj.sc, truth, R, T, a.seed)
    if a.profile:
        return profile_coverage(a.estimates_from, subj.sc, truth, bold, a, out / "profile_calibration.json")
    starts = recover_starts(truth, R, spread=0.4, seed=a.seed, names=FIT)
    model = RWW(subj.sc, batch=R, fit=FIT, init={**truth, **starts}, fit_gains=False, seed=a.seed + 1)
    t0 = time.perf_counter()
    if a.estimates_from:
        u, fit_time, epochs = reuse_fit(a.estimates_from, subj.sc, truth, bold, a)
    else:
        res = fit(model, bold, objective=moments_objective(), scale="none", mode="full", optimizer="lbfgs", lr=1.0,
                  epochs=a.epochs, sim_frames=2 * T + 100, discard_frames=100, resample_noise=False, test=False,
                  lr_scale={k: float(np.mean(np.abs(np.asarray(starts[k])))) for k in FIT},
                  uncertainty=dict(replicates=a.unc_replicates))
        u, fit_time, epochs = res.uncertainty, res.train_time, res.epochs_completed
    covered = u.covers(truth)                                                       # [R, P]
    width = u.upper - u.lower
    est = u.estimate
    rep = dict(replicates=R, frames=T, epochs=epochs, dataset=subj.name, truth=truth, estimates_from=a.estimates_from,
               fit_time=fit_time, uncertainty_time=u.wall_time, settings=u.settings,
               parameters={n: dict(coverage=float(covered[:, i].mean()), median_width=float(np.median(width[:, i])),
                                   median_rel_width=float(np.median(width[:, i]) / truth[n]),
                                   median_abs_rel_error=float(np.median(np.abs(est[:, i] / truth[n] - 1))),
                                   fit_median_abs_rel_error=float(np.median(np.abs(u.fitted[:, i] / truth[n] - 1))),
                                   infinite=int(np.isinf(width[:, i]).sum()))
                           for i, n in enumerate(u.names)},
               misfit_median=float(np.median(u.misfit)), uncertainty=u.to_dict(),
               uptime=subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), wall_time=time.perf_counter() - t0)
    (out / "calibration.json").write_text(json.dumps(rep, indent=1, default=lambda o: np.asarray(o).tolist()))
    print(table(rep))
    return rep


def reuse_fit(path, sc, truth, bold, a):
    """The intervals of a previous run's fitted values (its ``uncertainty.estimate``), recomputed
    as :func:`nmmfit.fit` computes them for that run (fit seed + 1, simulation of 2T frames)."""
    prev = _previous(path, a)
    est = np.asarray(prev["uncertainty"]["estimate"])                                 # [R, P]
    model = RWW(sc, batch=a.replicates, fit=FIT, init={**truth, **{n: est[:, i] for i, n in enumerate(FIT)}},
                fit_gains=False, seed=a.seed + 1)
    u = laplace_uncertainty(model, bold.double(), model_units=True, sim_frames=2 * a.frames,
                            replicates=a.unc_replicates, seed=a.seed + 1)
    return u, prev["fit_time"], prev["epochs"]


def _previous(path, a) -> dict:
    prev = json.loads(Path(path).read_text())
    if (prev["replicates"], prev["frames"]) != (a.replicates, a.frames):
        raise ValueError(f"--estimates-from: {path} has {prev['replicates']} replicates x {prev['frames']} frames")
    return prev


def profile_coverage(path, sc, truth, bold, a, out: Path) -> dict:
    """Profile-likelihood intervals of a previous run's fits (the models at its intervals' centres,
    its statistic and precision), every replicate, against the truth and beside that run's Laplace
    intervals; one parameter at a time (``--profile-names`` order), ``out`` rewritten after each."""
    prev = _previous(path, a)
    u = Uncertainty.from_dict(prev["uncertainty"])
    model = RWW(sc, batch=a.replicates, fit=FIT, init={**truth, **{n: u.estimate[:, i] for i, n in enumerate(u.names)}},
                fit_gains=False, seed=a.seed + 1)
    sim_factor = a.profile_sim_factor or u.settings["sim_frames"] / a.frames
    rep = dict(replicates=a.replicates, frames=a.frames, estimates_from=str(path), truth=truth,
               points=a.profile_points, epochs=a.profile_epochs, sim_factor=sim_factor, parameters={}, wall_time=0.0, fit_time=prev["fit_time"])
    for n in a.profile_names.split(","):
        t0 = time.perf_counter()
        p = batched_profiles(model, bold.double(), u, [n], points=a.profile_points, epochs=a.profile_epochs,
                             sim_factor=sim_factor, seed=a.seed + 1)[n]
        lo, hi = np.asarray(p["lower"]), np.asarray(p["upper"])
        width = hi - lo
        rep["parameters"][n] = dict(coverage=float(np.mean((lo <= truth[n]) & (truth[n] <= hi))),
                                    median_width=float(np.median(width)), unbounded=int(np.isinf(width).sum()),
                                    undefined=int(np.isnan(width).sum()), laplace=prev["parameters"][n],
                                    lower=lo.tolist(), upper=hi.tolist(), grid=p["grid"], profile=p["profile"],
                                    wall_time=time.perf_counter() - t0)
        rep.update(wall_time=rep["wall_time"] + rep["parameters"][n]["wall_time"],
                   uptime=subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
                   date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        out.write_text(json.dumps(rep, indent=1))
        print(profile_table(rep), flush=True)
    return rep


def profile_table(rep: dict) -> str:
    lines = ["| parameter | truth | Laplace coverage | Laplace median width | profile coverage | profile median width | "
             "profile unbounded |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {n} | {rep['truth'][n]:g} | {p['laplace']['coverage']:.2f} | {p['laplace']['median_width']:.4g} | "
              f"{p['coverage']:.2f} | {p['median_width']:.4g} | {p['unbounded']} |" for n, p in rep["parameters"].items()]
    lines.append(f"\n{rep['replicates']} replicates x {rep['frames']} frames (fits and Laplace intervals of "
                 f"{rep['estimates_from']}); profiles: {rep['points']} points, {rep['epochs']} L-BFGS iterations, "
                 f"simulation {rep['sim_factor']:g}x the data, "
                 f"{rep['wall_time']:.0f} s for these (the fits took {rep['fit_time']:.0f} s); {rep['date']}; {rep['uptime']}")
    return "\n".join(lines)


def table(rep: dict) -> str:
    lines = ["| parameter | truth | coverage (nominal 90%) | median width | median width / truth | "
             "median abs rel error: fit, one-step centre | unbounded |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {n} | {rep['truth'][n]:g} | {p['coverage']:.2f} | {p['median_width']:.4g} | "
              f"{p['median_rel_width']:.3g} | {p['fit_median_abs_rel_error']:.3f}, {p['median_abs_rel_error']:.3f} | "
              f"{p['infinite']} |"
              for n, p in rep["parameters"].items()]
    reused = f" (fitted values of {rep['estimates_from']})" if rep.get("estimates_from") else ""
    lines.append(f"\n{rep['replicates']} replicates x {rep['frames']} frames{reused}; fit {rep['fit_time']:.0f} s "
                 f"({rep['epochs']} L-BFGS iterations), uncertainty {rep['uncertainty_time']:.0f} s; "
                 f"median misfit D/K {rep['misfit_median']:.2f}; {rep['date']}; {rep['uptime']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
