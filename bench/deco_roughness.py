"""How rough is the physiological objective along one parameter, with the noise held fixed?

    .venv/bin/python bench/deco_roughness.py [--param g_EE] [--point g=0.45,g_EE=0.21,g_EI=0.4]
        [--steps -0.1,-0.03,-0.01,-0.003,0,0.003,0.01,0.03,0.1] [--seeds 1] [--frames 600] [--subject 0]

hcp_schaefer100, deco2014 + analytic FIC at dt 1 ms, noise 0.01: the models ``point`` with ``param``
multiplied by ``exp(step)`` are simulated in one batch (``frames`` + 40 frames, the first 40 dropped)
with the same noise for every step (every model on Philox stream 0: common random numbers; seed k for
the k-th of ``--seeds``), and cuBNM's cost parts against the subject's REST1 are printed per step (mean
over the seeds). ``--independent`` gives each step its own stream instead (the default of a batch),
which measures the statistic's seed-to-seed spread rather than the cost's smoothness. A gradient step is useful
only where the cost changes smoothly on the scale of the step (the fits use Adam's ~0.02-0.05 in log
units); at a metastable point the same-noise cost jumps between neighbouring steps.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from nmmfit.experiments.physiological import physiological_scheme
from nmmfit.experiments.protocol import load_subject, split_data
from nmmfit.losses import cubnm_cost
from nmmfit.model import RWW

BURN = 40


def _floats(text):
    return [float(x) for x in text.split(",")]


def _point(text):
    return {k: float(v) for k, v in (kv.split("=") for kv in text.split(","))}


@torch.no_grad()
def line(subject, param: str, point: dict, steps: list, seeds: int, frames: int, common: bool = True) -> dict:
    """cuBNM cost parts ``name -> [len(steps)]`` (mean over ``seeds`` common-noise runs)."""
    subj = load_subject("hcp_schaefer100", subject)
    bold, _, _ = split_data(subj, "hcp_schaefer100", subject, "session", frames)
    scheme = physiological_scheme("deco2014_fic", None, 1.0)
    init = {k: torch.full((len(steps),), v, dtype=torch.float64) for k, v in point.items()}
    init[param] = init[param] * torch.exp(torch.tensor(steps, dtype=torch.float64))
    stream = torch.zeros(len(steps), dtype=torch.int64) if common else None
    model = RWW(subj.sc, scheme=scheme, tr=subj.tr, batch=len(steps), init=init, seed=0, stream=stream)
    emp = torch.as_tensor(bold, dtype=torch.float64)
    runs = [cubnm_cost(model(BURN + len(bold), seed=s).bold[:, BURN:], emp, subj.tr) for s in range(seeds)]
    return {k: np.mean([r[k].numpy() for r in runs], axis=0) for k in ("fc_corr", "fcd_ks", "fc_diff", "cost")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--param", default="g_EE")
    ap.add_argument("--point", type=_point, default=dict(g=0.45, g_EE=0.21, g_EI=0.4))
    ap.add_argument("--steps", type=_floats, default=[-0.1, -0.03, -0.01, -0.003, 0, 0.003, 0.01, 0.03, 0.1])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--subject", type=int, default=0)
    ap.add_argument("--independent", action="store_true", help="each step on its own noise stream")
    a = ap.parse_args()
    if a.param not in a.point:
        raise SystemExit(f"--param: {a.param!r} is not one of the point's parameters {sorted(a.point)}")
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    c = line(a.subject, a.param, a.point, a.steps, a.seeds, a.frames, common=not a.independent)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.2f}, point {a.point}, "
          f"{a.seeds} seed(s), {'independent' if a.independent else 'common'} noise, {a.frames} frames, {time.perf_counter() - t0:.0f} s")
    print(f"| log step of {a.param} | FC r | FCD KS | FC mean diff | cuBNM cost |")
    print("|---|---|---|---|---|")
    for i, s in enumerate(a.steps):
        print(f"| {s:+.3f} | {c['fc_corr'][i]:.3f} | {c['fcd_ks'][i]:.3f} | {c['fc_diff'][i]:.3f} | {c['cost'][i]:.3f} |")


if __name__ == "__main__":
    main()
