"""Where the CPU kernel's time goes: a `perf record` of one workload, its samples in the kernel
(the extension and the libmvec and libm functions it calls; libc is left out, as most of its
samples are Python's) split into the parts of a step.

    .venv/bin/python bench/kernel_profile.py [--presets deco2014 griffiths2022] [--threads 1]

For each preset (N=100, B=1, float32), two workloads: the forward (20 runs of T steps) and the
gradient (forward + backward of a random loss on BOLD, 6 runs). T is 20000 (deco2014) or 18000
(griffiths2022). Needs `perf` (/usr/bin/perf); samples on CPU time, so a loaded machine changes the
wall time, not the split. Shares are of the kernel's samples (import and Python excluded). Another
build: ``PYTHONPATH=other/python:.venv/lib/python3.11/site-packages .venv/bin/python -S ...``.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

# Buckets by symbol, first match wins. The node loops inline the model's arithmetic, so "node
# update" and "adjoint node loop" are the executor's own samples; the transcendental functions they
# call are counted apart (libmvec's vector variants, or scalar libm where a loop stays scalar).
BUCKETS = [
    ("coupling product (matvec, forward, recompute and adjoint)", r"matvec_"),
    ("noise: Philox", r"noise_all|philox"),
    ("noise: Box-Muller log, sin, cos", r"_ZGV.*(logf?|sinf?|cosf?)_|^(__)?(log|sin|cos)f?$"),
    ("model transcendentals (exp/expm1, tanh, pow)", r"_ZGV.*(expm1f?|expf?|tanhf?|powf?)_|(expm1|exp|tanh|pow)f?(_fma)?$"),
    ("node update (forward, recompute)", r"step_all|step_nodes|forward_group|forward_one"),
    ("adjoint node loop (VJP, parameter cotangents)", r"simulate_backward_cpu|adjoint_all|backward_one"),
    ("dL/dW outer products", r"accumulate_outer"),
]

WORKLOAD = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {bench!r})
    from bench_common import problem
    import nmmfit
    preset, mode, steps, reps = {preset!r}, {mode!r}, {steps}, {reps}
    torch.set_num_threads({threads})
    W, params = problem(preset, 100, 1, requires_grad=(mode == "gradient"))
    n_samples = steps // nmmfit.get_preset(preset).steps_per_sample
    weights = torch.randn(1, n_samples, 100, generator=torch.Generator().manual_seed(1))
    for _ in range(reps):
        out = nmmfit.simulate(W, params, None, steps, preset=preset, batch=1)
        if mode == "gradient":
            (out.bold * weights).sum().backward()
""")


def profile(preset: str, mode: str, threads: int, perf: str) -> dict[str, float]:
    steps = 20000 if preset == "deco2014" else 18000
    reps = 20 if mode == "forward" else 6
    code = WORKLOAD.format(bench=str(Path(__file__).parent), preset=preset, mode=mode, steps=steps, reps=reps,
                           threads=threads)
    import nmmfit._C
    dsos = ",".join([Path(nmmfit._C.__file__).name, "libmvec.so.1", "libm.so.6"])
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        python = [sys.executable] + (["-S"] if sys.flags.no_site else [])  # -S: another build via PYTHONPATH
        subprocess.run([perf, "record", "-q", "-F", "4000", "-o", data, *python, "-c", code], check=True,
                       stdout=subprocess.DEVNULL)
        report = subprocess.run([perf, "report", "-i", data, "--no-children", "--dsos", dsos, "--sort", "symbol",
                                 "--percentage", "relative", "--stdio"], check=True, capture_output=True,
                                text=True).stdout
    shares = {name: 0.0 for name, _ in BUCKETS}
    shares["other"] = 0.0
    for line in report.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+\[\.\]\s+(.*?)\s*$", line)
        if not m:
            continue
        share, symbol = float(m.group(1)), re.split(r"\s{2,}", m.group(2))[0]  # without perf's trailing columns
        name = next((n for n, pattern in BUCKETS if re.search(pattern, symbol)), "other")
        shares[name] += share
        if name == "other" and share >= 1:
            print(f"{preset} {mode}: other: {share:.1f}% {symbol}", file=sys.stderr)
    return shares


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["deco2014", "griffiths2022"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--perf", default="/usr/bin/perf")
    args = ap.parse_args()
    columns = [(p, m) for p in args.presets for m in ("forward", "gradient")]
    results = {c: profile(*c, args.threads, args.perf) for c in columns}
    print("| part | " + " | ".join(f"{p} {m}" for p, m in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name in [n for n, _ in BUCKETS] + ["other"]:
        print(f"| {name} | " + " | ".join(f"{results[c][name]:.0f}%" for c in columns) + " |")


if __name__ == "__main__":
    main()
