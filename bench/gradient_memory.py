"""Peak memory of a kernel gradient against the number of steps T: O(sqrt T) by design
(checkpoints every K = isqrt(T) steps, one recomputed segment per thread).

    .venv/bin/python bench/gradient_memory.py [--steps 40000 640000]

Each T runs in a fresh interpreter (ru_maxrss only grows): deco2014, N=100, B=8, float32, one
thread, the gradient of W and every parameter through BOLD sampled 4 times (so the outputs stay
O(1) and the growth is the kernel's). Prints the peak RSS growth over a warm-up gradient beside
the checkpoints' size by construction; 16x the steps should give about 4x the growth.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
from pathlib import Path

B, N = 8, 100


def measure(T: int) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import torch
    from bench_common import problem

    import nmmfit
    torch.set_num_threads(1)
    W, params = problem("deco2014", N, B, requires_grad=True)
    warm = nmmfit.simulate(W, params, None, 2000, preset="deco2014", batch=B, steps_per_sample=1000)
    warm.bold.sum().backward()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = nmmfit.simulate(W, params, None, T, preset="deco2014", batch=B, steps_per_sample=T // 4)
    out.bold.sum().backward()
    growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    K = max(1, int(T ** 0.5))
    checkpoints = B * -(-T // K) * 6 * N * 4 / 2**20
    print(f"| {T} | {growth:.1f} MB | {checkpoints:.1f} MB |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, nargs="+", default=[40000, 640000])
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child's T
    args = ap.parse_args()
    if args.one:
        measure(args.one)
        return
    print("| T | peak RSS growth | checkpoints |")
    print("|---|---|---|")
    for T in args.steps:
        subprocess.run([sys.executable, *(["-S"] if sys.flags.no_site else []), __file__, "--one", str(T)], check=True)


if __name__ == "__main__":
    main()
