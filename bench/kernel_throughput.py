"""Forward throughput (node-steps/s) of nmmfit's CPU kernel beside cuBNM's CPU path, in one run.

    .venv/bin/python bench/kernel_throughput.py [--steps 20000] [--threads 1 2] [--json out.json]

The problem is the issue's: deco2014 (dt 0.1 ms), N=100, a random symmetric SC with unit mean row
sum, B=1 and B=8 simulations, 1 and 2 threads. nmmfit: ``nmmfit.simulate`` in float32 and float64,
best of 3, and the gradient / forward time ratio (float32; the full gradient of a random loss on
BOLD, over a quarter of the steps). "one stream": float64 with every simulation on noise stream 0,
as cuBNM runs all its simulations on one precomputed noise (the kernel then draws it once per group
of simulations stepping together). cuBNM 0.1.0 (its CPU backend, ``force_cpu=True``, float64, rWW with FIC and FC off) runs
in a scratch virtual environment (``bench/fic_cubnm_check.py``'s ``/tmp/cubnm-venv``, created on
first use, never the project's .venv) in a subprocess with ``OMP_NUM_THREADS``; best of 2 runs of
``sim.run()`` (the first includes its set-up), so its precomputed noise is not counted against it.
The machine is shared: compare the figures of one run (the rows are interleaved by thread count).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_common import best_time, machine, problem  # noqa: E402
from fic_cubnm_check import ensure_cubnm, scratch_env  # noqa: E402

import nmmfit  # noqa: E402

N = 100

# Runs inside the scratch venv: argv = sc.npy, B, duration (s); prints the best run's seconds.
_CUBNM_RUNNER = textwrap.dedent("""
    import contextlib, io, sys, time, numpy as np
    from cubnm import sim
    sc, B, duration = np.load(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    best = float("inf")
    for _ in range(2):
        sg = sim.rWWSimGroup(duration=duration, TR=1, sc=sc, do_fc=False, do_fcd=False, gof_terms=[],
                             force_cpu=True, do_fic=False, bold_remove_s=0, sim_verbose=False)
        sg.N = B
        sg.param_lists["G"] = np.full(B, 0.5)
        sg._set_default_params()
        with contextlib.redirect_stdout(io.StringIO()):
            t = time.perf_counter()
            sg.run()
            best = min(best, time.perf_counter() - t)
    print(best)
""")


def nmmfit_forward(B: int, steps: int, dtype, one_stream: bool = False) -> float:
    W, params = problem("deco2014", N, B, dtype=dtype)
    stream = torch.zeros(B, dtype=torch.int64) if one_stream else None
    f = lambda: nmmfit.simulate(W, params, None, steps, preset="deco2014", batch=B, stream=stream)  # noqa: E731
    f()
    return B * N * steps / best_time(f)


def nmmfit_gradient_ratio(B: int, steps: int) -> float:
    """(forward + backward) / forward time, float32, gradient of W and every parameter."""
    W, params = problem("deco2014", N, B, requires_grad=True)
    weights = torch.randn(B, steps // nmmfit.get_preset("deco2014").steps_per_sample, N,
                          generator=torch.Generator().manual_seed(1))
    fwd = lambda: nmmfit.simulate(W, params, None, steps, preset="deco2014", batch=B)  # noqa: E731
    both = lambda: (fwd().bold * weights).sum().backward()  # noqa: E731
    both()
    return best_time(both) / best_time(fwd)


def cubnm_forward(py: str, B: int, steps: int, threads: int, sc_path: str) -> float:
    duration = steps * 1e-4  # cuBNM's rWW dt is 0.1 ms
    env = scratch_env(OMP_NUM_THREADS=str(threads))
    done = subprocess.run([py, "-c", _CUBNM_RUNNER, sc_path, str(B), str(duration)], capture_output=True,
                          text=True, env=env, check=True)
    return B * N * steps / float(done.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--venv", type=Path, default=Path("/tmp/cubnm-venv"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    py = ensure_cubnm(args.venv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sc_path = os.path.join(tmp, "sc.npy")
        W, _ = problem("deco2014", N, 1, dtype=torch.float64)
        np.save(sc_path, W.numpy())  # symmetric: cuBNM's source-major rows are the same matrix
        for threads in args.threads:
            torch.set_num_threads(threads)
            for B in args.batches:
                row = dict(threads=threads, B=B, fp32=nmmfit_forward(B, args.steps, torch.float32),
                           fp64=nmmfit_forward(B, args.steps, torch.float64),
                           fp64_one_stream=nmmfit_forward(B, args.steps, torch.float64, one_stream=True),
                           grad_ratio=nmmfit_gradient_ratio(B, args.steps // 4),
                           cubnm_fp64=cubnm_forward(py, B, args.steps, threads, sc_path) if py else None)
                rows.append(row)
                cub = row["cubnm_fp64"]
                print(f"| {threads} | {B} | {row['fp32']:.3g} | {row['fp64']:.3g} | {row['fp64_one_stream']:.3g} | "
                      + (f"{cub:.3g} | {row['fp64'] / cub:.1f}x | {row['fp64_one_stream'] / cub:.1f}x" if cub
                         else "- | - | -")
                      + f" | {row['grad_ratio']:.2f} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(machine=machine(), steps=args.steps, N=N, load=os.getloadavg(), date=time.ctime(),
                           rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
