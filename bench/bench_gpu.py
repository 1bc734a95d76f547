"""GPU benchmarks of the fused CUDA kernels, with the CPU op on the same workloads in the same run.

    python bench/bench_gpu.py [--quick] [--json PATH]      # on a machine with a CUDA device
    python bench/bench_gpu.py --smoke                      # tiny sizes on the CPU: checks the script only

Sections (each prints a table; every record goes to the JSON file with the device, torch, CUDA and
thread count):
  forward    node-steps/s (B * N * T / s) of the CUDA op, deco2014, float32, N in {68, 100, 200, 400},
             B in {1, 64, 1024, 8192}; the CPU op on the same N with B <= 16 (its throughput saturates
             long before; both numbers are per second of wall time, so the ratio is the speed-up of
             one machine's GPU over its CPU cores). T is chosen per configuration so that one run takes
             ~0.3 s (forward only: one checkpoint, no outputs but the final state).
  tuning     the launch-plan overrides (NMMFIT_CUDA_SIMS_PER_BLOCK, NMMFIT_CUDA_W_SMEM) on a few
             forward workloads, to check the planner's heuristics (W in shared memory up to 64 KiB,
             blocks of <= 256 threads) against the alternatives.
  gradient   forward and forward+backward wall time of the CUDA op and its peak GPU memory
             (torch.cuda.max_memory_allocated, inputs excluded), with the CPU op's times on a smaller B.
Times are the best of 3 after a warm-up; GPU timings are bracketed by torch.cuda.synchronize().
"""
from __future__ import annotations

import argparse
import json
import os

import torch

import nmmfit
from bench_common import best_time, machine, problem, sync

HERE = os.path.dirname(os.path.abspath(__file__))


def forward_fn(preset, N, B, T, device):
    W, params = problem(preset, N, B, device)
    sps = nmmfit.get_preset(preset).steps_per_sample

    def go():
        with torch.no_grad():
            return nmmfit.simulate(W, params, None, T, preset=preset, steps_per_sample=max(sps, T), checkpoint_every=T,
                                   batch=B)
    return go


def gradient_fn(preset, N, B, T, device, sps):
    W, params = problem(preset, N, B, device, requires_grad=True)

    def go():
        out = nmmfit.simulate(W, params, None, T, preset=preset, steps_per_sample=sps, batch=B)
        out.bold.square().mean().backward()
    return go


def forward_only_fn(preset, N, B, T, device, sps):
    W, params = problem(preset, N, B, device)

    def go():
        with torch.no_grad():
            nmmfit.simulate(W, params, None, T, preset=preset, steps_per_sample=sps, batch=B)
    return go


def calibrated_T(make, device, target_s, T0=100, T_max=200_000):
    """Steps for one run of ~target_s seconds: grow T until a run takes >= target_s / 4, extrapolate."""
    make(min(T0, 20))()  # warm-up
    T = T0
    while True:
        t = best_time(make(T), device, repeats=1)
        if t >= target_s / 4 or T >= T_max:
            break
        T = min(T_max, T * 4)
    return int(max(T0, min(T_max, T * target_s / max(t, 1e-9))))


def table(rows, cols):
    widths = [max(len(c), *(len(f"{r.get(c, '')}") for r in rows)) for c in cols]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(f"{r.get(c, '')}".rjust(w) for c, w in zip(cols, widths)))


def fmt(x):
    return float(f"{x:.3g}")


def forward_section(args, device):
    rows = []
    Ns = args.N or [68, 100, 200, 400]
    Bs = args.B or ([1, 64, 1024, 8192] if not args.quick else [1, 1024])
    cpu_Bs = [1, 16] if not args.smoke else [1, 2]
    target = args.target_s
    for N in Ns:
        for B in Bs:
            T = calibrated_T(lambda T: forward_fn("deco2014", N, B, T, device), device, target)
            t = best_time(forward_fn("deco2014", N, B, T, device), device)
            rows.append(dict(section="forward", device=device, preset="deco2014", dtype="float32", N=N, B=B, T=T,
                             seconds=fmt(t), node_steps_per_s=fmt(B * N * T / t)))
            print(rows[-1], flush=True)
        for B in cpu_Bs:
            T = calibrated_T(lambda T: forward_fn("deco2014", N, B, T, "cpu"), "cpu", target)
            t = best_time(forward_fn("deco2014", N, B, T, "cpu"), "cpu")
            rows.append(dict(section="forward", device="cpu", preset="deco2014", dtype="float32", N=N, B=B, T=T,
                             seconds=fmt(t), node_steps_per_s=fmt(B * N * T / t)))
            print(rows[-1], flush=True)
    print(f"\nforward throughput, deco2014, float32 (node-steps/s; {device} vs the CPU op on "
          f"{torch.get_num_threads()} threads)")
    table(rows, ["device", "N", "B", "T", "seconds", "node_steps_per_s"])
    return rows


def tuning_section(args, device):
    rows = []
    # (N, B, overrides): the heuristic's choice first, then alternatives
    configs = [(68, 8192, {}), (68, 8192, {"NMMFIT_CUDA_SIMS_PER_BLOCK": "1"}),
               (68, 8192, {"NMMFIT_CUDA_SIMS_PER_BLOCK": "7"}), (68, 8192, {"NMMFIT_CUDA_W_SMEM": "0"}),
               (200, 8192, {}), (200, 8192, {"NMMFIT_CUDA_W_SMEM": "1", "NMMFIT_CUDA_SIMS_PER_BLOCK": "1"}),
               (200, 8192, {"NMMFIT_CUDA_W_SMEM": "1", "NMMFIT_CUDA_SIMS_PER_BLOCK": "4"}),
               (400, 8192, {}), (400, 8192, {"NMMFIT_CUDA_SIMS_PER_BLOCK": "2"})]
    if args.smoke:
        configs = [(6, 8, {}), (6, 8, {"NMMFIT_CUDA_SIMS_PER_BLOCK": "3", "NMMFIT_CUDA_W_SMEM": "0"})]
    for N, B, env in configs:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            T = calibrated_T(lambda T: forward_fn("deco2014", N, B, T, device), device, args.target_s)
            t = best_time(forward_fn("deco2014", N, B, T, device), device)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        rows.append(dict(section="tuning", device=device, preset="deco2014", dtype="float32", N=N, B=B, T=T,
                         overrides=" ".join(f"{k[12:]}={v}" for k, v in env.items()) or "(heuristic)",
                         seconds=fmt(t), node_steps_per_s=fmt(B * N * T / t)))
        print(rows[-1], flush=True)
    print("\nlaunch-plan overrides, forward deco2014 float32 (node-steps/s)")
    table(rows, ["N", "B", "overrides", "T", "node_steps_per_s"])
    return rows


def gradient_section(args, device):
    rows = []
    # (preset, N, B on the device, B on the CPU, T, steps per sample)
    configs = [("deco2014", 68, 1024, 8, 20000, 1000), ("deco2014", 200, 1024, 8, 20000, 1000),
               ("deco2014", 400, 256, 4, 10000, 1000), ("griffiths2022", 80, 1, 1, 18000, 15),
               ("griffiths2022", 80, 64, 8, 18000, 15)]
    if args.quick:
        configs = [configs[0], configs[3]]
    if args.smoke:
        configs = [("deco2014", 8, 4, 2, 300, 50), ("griffiths2022", 6, 2, 1, 150, 15)]
    for preset, N, B, B_cpu, T, sps in configs:
        rec = dict(section="gradient", preset=preset, dtype="float32", N=N, T=T, steps_per_sample=sps,
                   checkpoint_every=max(1, int(T ** 0.5)))
        for dev, b in ((device, B), ("cpu", B_cpu)):
            if dev == "cpu" and device == "cpu" and b == B:
                continue
            fwd, grad = forward_only_fn(preset, N, b, T, dev, sps), gradient_fn(preset, N, b, T, dev, sps)
            grad()  # warm-up (and the allocator's pools)
            if dev == "cuda":
                torch.cuda.empty_cache()
                base = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
            t_f = best_time(fwd, dev)
            t_g = best_time(grad, dev)
            r = dict(rec, device=dev, B=b, forward_s=fmt(t_f), forward_backward_s=fmt(t_g), ratio=fmt(t_g / t_f),
                     node_steps_per_s_forward_backward=fmt(b * N * T / t_g))
            if dev == "cuda":
                r["peak_memory_mb"] = fmt((torch.cuda.max_memory_allocated() - base) / 2**20)
            rows.append(r)
            print(rows[-1], flush=True)
    print("\nforward vs forward+backward (float32; peak memory on the GPU, above the inputs)")
    table(rows, ["preset", "device", "N", "B", "T", "forward_s", "forward_backward_s", "ratio", "peak_memory_mb"])
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer configurations")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (checks the script; no GPU needed)")
    ap.add_argument("--N", type=int, nargs="*", help="override the node counts of the forward section")
    ap.add_argument("--B", type=int, nargs="*", help="override the batch sizes of the forward section")
    ap.add_argument("--target-s", type=float, default=0.3, help="seconds per timed forward run")
    ap.add_argument("--sections", nargs="*", default=["forward", "tuning", "gradient"])
    ap.add_argument("--json", default=os.path.join(os.environ.get("OUT", HERE), "results_gpu.json"))
    args = ap.parse_args()
    if args.smoke:
        device = "cpu"
        args.N = args.N or [5, 9]
        args.B = args.B or [1, 4]
        args.target_s = min(args.target_s, 0.02)
    elif torch.cuda.is_available() and nmmfit.build_info().get("cuda"):
        device = "cuda"
    else:
        raise SystemExit("bench_gpu: needs a CUDA device and nmmfit built with CUDA (or --smoke)")
    info = machine(device)
    print(json.dumps(info, indent=1), flush=True)
    rows = []
    if "forward" in args.sections:
        rows += forward_section(args, device)
    if "tuning" in args.sections and not args.quick:
        rows += tuning_section(args, device)
    if "gradient" in args.sections:
        rows += gradient_section(args, device)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(dict(machine=info, records=[dict(r, **{"machine_threads": info["threads"]}) for r in rows]), f, indent=1)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
