"""Which summary statistic: the Laplace standard errors at the paper's truth for statistics of
different sizes (FC modes, regional projections), with and without the level and amplitude.

One synthetic run of ``--frames`` frames on hagmann66 at the truth; the estimate is the truth
itself (so the numbers compare the statistics, not fits). Prints a markdown table of relative
standard errors (se / truth) per parameter and the misfit D/K.

    .venv/bin/python bench/uncertainty_statistic.py --frames 1200
"""
from __future__ import annotations

import argparse
import subprocess
import time
import warnings

import torch

from nmmfit import datasets
from nmmfit.fit.uncertainty import UncertaintyWarning, laplace_uncertainty
from nmmfit.model import RWW
from nmmfit.params.schemes import SYNTHETIC_TRUTH

FIT = ("g", "g_EE", "g_IE", "g_EI", "sigma_out")
VARIANTS = (dict(fc_modes=1, region_modes=0), dict(fc_modes=3, region_modes=1), dict(fc_modes=6, region_modes=2),
            dict(fc_modes=3, region_modes=1, model_units=False))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    subj = datasets.load("hagmann66", subject=0)
    truth = dict(SYNTHETIC_TRUTH)
    gen = RWW(subj.sc, fit=(), init=truth, fit_gains=False, seed=a.seed + 7)
    with torch.no_grad():
        bold = gen(a.frames + 20, gen.initial_state(seed=a.seed + 7), 0).bold[:, 20:].double()
    est = RWW(subj.sc, fit=FIT, init=truth, fit_gains=False, seed=a.seed)
    print("| statistic | K | " + " | ".join(f"se/truth {n}" for n in FIT) + " | D/K | time |")
    print("|---|---|" + "---|" * (len(FIT) + 2))
    for v in VARIANTS:
        kw = dict(dict(model_units=True), **v)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UncertaintyWarning)
            u = laplace_uncertainty(est, bold, sim_frames=2 * a.frames, **kw)
        rel = [f"{u.se[0, i] / truth[n]:.3g}" for i, n in enumerate(FIT)]
        print(f"| {kw} | {len(u.statistic)} | " + " | ".join(rel) + f" | {u.misfit[0]:.2f} | "
              f"{time.perf_counter() - t0:.0f} s |")
    print(f"\n{a.frames} frames; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          + subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
