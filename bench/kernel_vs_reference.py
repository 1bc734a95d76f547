"""How far the CPU kernel's outputs sit from the float64 reference (``nmmfit.simulate_ref``, a
PyTorch loop), to show a build's change of the last digits (another libm, vectorised or not) stays
at rounding level.

    .venv/bin/python bench/kernel_vs_reference.py [--steps 600] [--N 100] [--B 3]

For each preset: the relative error (max |a - b| / max |b| over BOLD, the recorded E and I and the
final state) of the kernel in float64 and in float32 against the float64 reference, beside the
float32 reference's own error (what float32 rounding alone gives). Run it with two builds
(``PYTHONPATH=other/python:site-packages python -S``) to compare them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from sim_helpers import make_problem, rel_err, run_kw  # noqa: E402

import nmmfit  # noqa: E402


def worst(outputs, reference) -> float:
    return max(rel_err(a, b) for a, b in zip(outputs, reference) if b.numel())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--N", type=int, default=100)
    ap.add_argument("--B", type=int, default=3)
    args = ap.parse_args()
    print("| preset | kernel fp64 vs ref fp64 | kernel fp32 vs ref fp64 | ref fp32 vs ref fp64 |")
    print("|---|---|---|---|")
    for preset in ("deco2014", "griffiths2022"):
        W, params, state0 = make_problem(preset, args.B, args.N, torch.float64)
        kw = run_kw(preset)
        exact = nmmfit.simulate_ref(W, params, state0, args.steps, **kw)
        f32 = {k: v.float() for k, v in params.items()}
        ref32 = nmmfit.simulate_ref(W.float(), f32, state0.float(), args.steps, **kw)
        out64 = nmmfit.simulate(W, params, state0, args.steps, **kw)
        out32 = nmmfit.simulate(W.float(), f32, state0.float(), args.steps, **kw)
        print(f"| {preset} | {worst(out64, exact):.2e} | {worst(out32, exact):.2e} | {worst(ref32, exact):.2e} |")


if __name__ == "__main__":
    main()
