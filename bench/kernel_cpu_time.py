"""Kernel throughput per CPU-second (``time.process_time``, all threads), which a core shared with
other jobs does not change as it changes wall time; wall time is printed beside it.

    .venv/bin/python bench/kernel_cpu_time.py PRESET {forward,gradient} B STEPS {float32,float64} [--reps 5] [--threads 1]

N=100, ``bench_common.problem``; the gradient is forward + backward of a random loss on BOLD.
Best of ``--reps`` after one warm-up. Pin it (``taskset -c 1``) for one-thread figures.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_common import problem  # noqa: E402

import nmmfit  # noqa: E402

N = 100


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("preset")
    ap.add_argument("mode", choices=["forward", "gradient"])
    ap.add_argument("B", type=int)
    ap.add_argument("steps", type=int)
    ap.add_argument("dtype", choices=["float32", "float64"])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    W, params = problem(args.preset, N, args.B, dtype=dtype, requires_grad=args.mode == "gradient")
    n_samples = args.steps // nmmfit.get_preset(args.preset).steps_per_sample
    weights = torch.randn(args.B, n_samples, N, generator=torch.Generator().manual_seed(1), dtype=dtype)

    def run():
        out = nmmfit.simulate(W, params, None, args.steps, preset=args.preset, batch=args.B)
        if args.mode == "gradient":
            (out.bold * weights).sum().backward()

    run()
    wall = cpu = float("inf")
    for _ in range(args.reps):
        t, c = time.perf_counter(), time.process_time()
        run()
        wall, cpu = min(wall, time.perf_counter() - t), min(cpu, time.process_time() - c)
    work = args.B * N * args.steps
    print(f"{args.preset} {args.mode} B={args.B} {args.dtype}: {work / cpu:.3g} node-steps per CPU-second "
          f"({cpu:.4f} s), wall {work / wall:.3g} node-steps/s ({wall:.4f} s)")


if __name__ == "__main__":
    main()
