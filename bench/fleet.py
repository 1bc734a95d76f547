"""Fleet benchmark: every hcp_aal2 subject x 4 restarts through the Ray engine and through the
in-process batched engine on the same cores, and each subject's Ray result against
`nmmfit fit --subject k` (same seed).

    python bench/fleet.py --out out/bench_fleet [--epochs 20] [--cores 2]

1. local: `run_fleet(engine="local")`, all subjects batched in one model (B = 7 x 4), --cores threads.
2. ray: a Ray started here with --cores CPUs (its start-up is not timed; its workers' start-up
   and imports are), `run_fleet(engine="ray")`, one subject per job, one thread per worker.
3. `nmmfit fit --dataset hcp_aal2 --subject k` for every k, compared array by array (wall-time
   arrays excepted) with the Ray engine's stored result, and with the local engine's.

Prints a markdown table and writes OUT/fleet_bench.json. Only the public API and CLI are used.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from nmmfit import datasets
from nmmfit.cli import main as nmmfit_main
from nmmfit.fleet import run_fleet
from nmmfit.fleet.store import SUBJECTS_DIR


def arrays(path: Path) -> dict:
    with np.load(path / "result.npz") as z:
        return {k: z[k] for k in z.files if not k.endswith("_time")}


def compare(a: dict, b: dict) -> dict:
    """Whether two stored fits are identical, and their largest absolute difference."""
    if sorted(a) != sorted(b):
        return dict(identical=False, max_abs_diff=None, keys=sorted(set(a) ^ set(b)))
    diff = max(float(np.max(np.abs(a[k].astype(float) - b[k].astype(float)))) if a[k].size else 0.0 for k in a)
    return dict(identical=all(np.array_equal(a[k], b[k]) for k in a), max_abs_diff=diff)


def timed_fleet(out: Path, **kw) -> dict:
    t0 = time.perf_counter()
    rep = run_fleet(out, subjects="all", progress=False, figures=False, **kw)
    wall = time.perf_counter() - t0
    assert rep.done == rep.subjects and rep.failed == 0, rep.summary()
    return dict(wall_s=wall, subjects=rep.subjects, subjects_per_hour=3600 * rep.subjects / wall)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--restarts", type=int, default=4)
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    out = Path(args.out)
    fit = dict(epochs=args.epochs, restarts=args.restarts, force=True)
    uptime = lambda: subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()  # noqa: E731
    res = dict(command=f"python bench/fleet.py --out {args.out} --epochs {args.epochs} --cores {args.cores}",
               uptime_start=uptime(), cores=args.cores, epochs=args.epochs, restarts=args.restarts)

    res["local"] = timed_fleet(out / "local", engine="local", threads=args.cores, **fit)
    res["uptime_after_local"] = uptime()
    import ray

    ray.init(num_cpus=args.cores, include_dashboard=False, logging_level="WARNING")
    res["ray"] = timed_fleet(out / "ray", engine="ray", threads=1, **fit)
    ray.shutdown()
    res["uptime_after_ray"] = uptime()
    res["ray_vs_local_throughput"] = res["ray"]["subjects_per_hour"] / res["local"]["subjects_per_hour"]

    torch.set_num_threads(args.cores)
    res["equality"] = {}
    for k, sid in enumerate(str(s) for s in datasets.dataset_info("hcp_aal2").subjects):
        single = out / "single" / sid
        assert nmmfit_main(["fit", "--dataset", "hcp_aal2", "--subject", str(k), "--epochs", str(args.epochs),
                            "--restarts", str(args.restarts), "--out", str(single), "--overwrite",
                            "--no-progress", "--no-figures"]) == 0
        ref = arrays(single)
        res["equality"][sid] = dict(ray=compare(arrays(out / "ray" / SUBJECTS_DIR / sid), ref),
                                    local_batched=compare(arrays(out / "local" / SUBJECTS_DIR / sid), ref))
    res["uptime_end"] = uptime()
    (out / "fleet_bench.json").write_text(json.dumps(res, indent=2))
    print("| engine | wall (s) | subjects/hour |\n|---|---|---|")
    for name in ("local", "ray"):
        print(f"| {name} | {res[name]['wall_s']:.0f} | {res[name]['subjects_per_hour']:.1f} |")
    print(f"ray / local throughput: {res['ray_vs_local_throughput']:.3f}")
    for sid, e in res["equality"].items():
        print(f"subject {sid}: ray == fit --subject: {e['ray']['identical']} (max |diff| {e['ray']['max_abs_diff']}); "
              f"local batched: {e['local_batched']['identical']} (max |diff| {e['local_batched']['max_abs_diff']})")
    print(json.dumps({k: res[k] for k in res if k.startswith("uptime")}, indent=1))


if __name__ == "__main__":
    main()
