"""Held-out physiological fits: both hcp_schaefer100 subjects, fitted on REST1_LR, scored on REST2_LR,
homogeneous, map-based (two maps) and Yeo-7 groups (experiments.fit_physiological).

    .venv/bin/python bench/deco_heldout.py [--frames 600] [--epochs 10] [--dt 1.0] [--lr 0.05]
                                           [--out /tmp/deco/heldout] [--jsonl bench/deco_heldout.jsonl]

Each fit: deco2014_fic (analytic FIC, g, g_EE, g_EI on the log scale), objective FC + FCD (W1) +
FC mean, full-session exact gradients with the same noise every update, Adam, one restart from the
scheme's defaults (G = 1), the first ``frames`` frames of each session (fit and held-out alike).
Heterogeneity on g_EE and g_EI. One JSON line per fit: FC r and FCD KS per split, the ceiling and
r(SC, FC), the rates after FIC, the wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from nmmfit.experiments import fit_physiological

VARIANTS = {"homogeneous": {}, "maps": dict(maps=("myelinmap", "fcgradient01")), "yeo7": dict(groups="yeo7")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--dt", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--subjects", default="0,1")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", default="/tmp/deco/heldout")
    ap.add_argument("--jsonl", default="bench/deco_heldout.jsonl")
    a = ap.parse_args()
    torch.set_num_threads(1)
    for subject in (int(s) for s in a.subjects.split(",")):
        for variant in a.variants.split(","):
            t0, load = time.perf_counter(), os.getloadavg()[0]
            rep = fit_physiological(Path(a.out) / f"s{subject}_{variant}", dataset="hcp_schaefer100",
                                    subject=subject, dt=a.dt, epochs=a.epochs, lr=a.lr, frames=a.frames,
                                    heldout="session", progress=False, figures=True, overwrite=True,
                                    **VARIANTS[variant])
            row = dict(subject=rep.subject, variant=variant, frames=a.frames, epochs=a.epochs, dt=a.dt, lr=a.lr,
                       cost={k: {n: v[rep.best] for n, v in c.items()} for k, c in rep.cost.items()},
                       scores=rep.scores, rate=rep.rate, fic_unstable=rep.fic_unstable_nodes,
                       fitted={k: v for k, v in rep.fitted.items() if k in ("g", "g_EE", "g_EI")},
                       wall=time.perf_counter() - t0, load=load,
                       date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
            with open(a.jsonl, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(rep.summary(), flush=True)


if __name__ == "__main__":
    main()
