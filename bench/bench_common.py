"""What the CPU and GPU benchmarks share: the machine record, the benchmark problem, timing."""
from __future__ import annotations

import os
import platform
import time

import torch

import nmmfit


def machine(device: str = "cpu") -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = dict(cpu=cpu, cores=os.cpu_count(), threads=torch.get_num_threads(), torch=torch.__version__,
                torch_cuda=torch.version.cuda, nmmfit=nmmfit.__version__, build=nmmfit.build_info())
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, gpu_memory_gb=round(p.total_memory / 2**30, 1), gpu_sms=p.multi_processor_count,
                    gpu_capability=f"{p.major}.{p.minor}")
    return info


def problem(preset: str, N: int, B: int, device: str = "cpu", dtype=torch.float32, requires_grad=False):
    g = torch.Generator().manual_seed(0)
    W = torch.rand(N, N, generator=g, dtype=dtype)
    W = (W + W.T) / 2
    W.fill_diagonal_(0)
    W = (W / W.sum(1).mean()).to(device)  # unit mean row sum: a connectome-like normalisation
    params = {k: torch.full((B,), v, dtype=dtype, device=device) for k, v in nmmfit.get_preset(preset).defaults.items()}
    if requires_grad:
        W.requires_grad_()
        for v in params.values():
            v.requires_grad_()
    return W, params


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def best_time(fn, device="cpu", repeats=3):
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best
