"""Where a fit's wall time goes: kernel forward, kernel backward, losses, optimizer, intervals, the rest.

Runs ``nmmfit demo`` (the paper's windowed fit of hcp_aal2 subject 0, 20 epochs) in this process
with timers around the fit loop's parts, and prints one table row per configuration:

    kernel fwd     nmmfit::simulate calls (the op, through ``nmmfit.ops.run_interruptible``) of the
                   training and the test run
    kernel bwd     nmmfit::simulate_backward calls
    losses         the objective's forward, plus the backward pass outside the kernel (the loss
                   terms' autograd graph and the parameter transforms / coupling-from-gains)
    optimizer      Adam's step and zero_grad
    intervals      the fit's uncertainty hook (``nmmfit.fit.fitted_uncertainty``: its replicate
                   simulations and its statistics), printed as "total (of which kernel)"
    rest           everything else between the demo's start and its end (Python per window,
                   the model's forward around the op, history, checkpoints, test run, scores,
                   saving); the process start and ``import nmmfit`` are timed separately

"wall / kernel" counts every kernel call, the intervals' included. The timers are installed by
wrapping module attributes, so the same script measures any version of the package
(``PYTHONPATH`` pointing at another checkout's ``python/`` with ``python -S``).

Usage:
    .venv/bin/python bench/fit_breakdown.py --restarts 1 4 --threads 2 [--dump numbers.json]

``--dump`` writes the demo's printed numbers and every epoch's loss per restart, to diff two
versions for identical results.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict

COLUMNS = ("kernel fwd", "kernel bwd", "losses", "optimizer", "intervals", "rest")


class Timers:
    """Accumulated seconds per part; ``wrap`` returns fn timed into ``part`` (the wrapped calls
    never nest: the objective, the backward and the optimizer's methods are called one at a time)."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.in_intervals = False  # kernel calls made by the uncertainty hook count as intervals

    def add(self, part: str, seconds: float):
        self.seconds[part] += seconds

    def wrap(self, part: str, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(part, time.perf_counter() - t0)
        return timed


def install(timers: Timers):
    """Wraps the op calls, the objective, the backward and the optimizers' steps."""
    import torch

    from nmmfit import ops
    from nmmfit.losses import Objective

    fit_pkg = sys.modules["nmmfit.fit"]  # the package (``nmmfit.fit`` the attribute is the function)

    run_op = ops.run_interruptible

    def run_interruptible(fn, *args):
        part = "kernel bwd" if fn is torch.ops.nmmfit.simulate_backward.default else "kernel fwd"
        t0 = time.perf_counter()
        try:
            return run_op(fn, *args)
        finally:
            timers.add("intervals kernel" if timers.in_intervals else part, time.perf_counter() - t0)

    ops.run_interruptible = run_interruptible
    Objective.forward = timers.wrap("losses", Objective.forward)
    backward = torch.Tensor.backward
    torch.Tensor.backward = timers.wrap("backward", backward)
    make = fit_pkg.make_optimizer

    def make_optimizer(*args, **kwargs):
        adam, lbfgs = make(*args, **kwargs)
        adam.step = timers.wrap("optimizer", adam.step)
        adam.zero_grad = timers.wrap("optimizer", adam.zero_grad)
        return adam, lbfgs

    fit_pkg.make_optimizer = make_optimizer
    if hasattr(fit_pkg, "fitted_uncertainty"):  # versions before the intervals have no hook
        hook = fit_pkg.fitted_uncertainty

        def fitted_uncertainty(*args, **kwargs):
            timers.in_intervals = True
            t0 = time.perf_counter()
            try:
                return hook(*args, **kwargs)
            finally:
                timers.in_intervals = False
                timers.add("intervals", time.perf_counter() - t0)

        fit_pkg.fitted_uncertainty = fitted_uncertainty


def run_demo(restarts: int, epochs: int) -> tuple[dict, dict]:
    """One demo run: ``(row of seconds by column plus wall/kernel/ratio, numbers to diff)``."""
    import numpy as np

    from nmmfit import experiments
    from nmmfit.fit import FitResult

    timers = Timers()
    install(timers)
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        rep = experiments.demo(out, restarts=restarts, epochs=epochs, figures=False, progress=False)
        wall = time.perf_counter() - t0
        res = FitResult.load(out)
    s = timers.seconds
    row = {"kernel fwd": s["kernel fwd"], "kernel bwd": s["kernel bwd"],
           "losses": s["losses"] + s["backward"] - s["kernel bwd"], "optimizer": s["optimizer"],
           "intervals": s["intervals"]}
    row["rest"] = wall - sum(row.values())
    row.update(wall=wall, intervals_kernel=s["intervals kernel"],
               kernel=s["kernel fwd"] + s["kernel bwd"] + s["intervals kernel"])
    numbers = dict(train_r=rep.train_r, test_r=rep.test_r, heldout_r=rep.heldout_r, fitted=rep.fitted,
                   epoch_loss=np.asarray(res.history["epoch_loss"]).tolist())
    return row, numbers


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--restarts", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dump", default=None, help="write the demo's numbers (JSON) to diff versions")
    ap.add_argument("--label", default="", help="a name for the version measured, printed in the row")
    args = ap.parse_args()
    t0 = time.perf_counter()
    import torch

    import nmmfit

    t_import = time.perf_counter() - t0
    torch.set_num_threads(args.threads)
    row, numbers = run_demo(args.restarts, args.epochs)
    cells = " | ".join(f"{row[c]:.2f}" + (f" ({row['intervals_kernel']:.2f})" if c == "intervals" else "")
                       for c in COLUMNS)
    print(f"| {args.label} | {args.restarts} | {args.threads} | {t_import:.2f} | {cells} | {row['wall']:.2f} | "
          f"{row['wall'] / row['kernel']:.2f} |")
    print(f"# nmmfit from {nmmfit.__file__}", file=sys.stderr)
    if args.dump:
        with open(args.dump, "w") as f:
            json.dump(dict(numbers, row=row, import_s=t_import), f, indent=1)


if __name__ == "__main__":
    main()
