"""Head to head on cuBNM's own problem: its CMA-ES (tutorial settings, CPU) against nmmfit's gradient fit.

    .venv/bin/python bench/cubnm_head_to_head.py [--maps myelinmap,fcgradient01] [--duration 180]
        [--dt 1.0] [--n-iter 10] [--popsize 20] [--restarts 2] [--lr 0.05] [--venv /tmp/cubnm-venv]
        [--json out.json]

The problem (the same on both sides): hcp_schaefer100 subject 100206 (cuBNM's HCP Schaefer-100 data),
its SC divided by its maximum, REST1_LR as the target (FC and FCD of the whole session); rWW + analytic
FIC + Balloon-Windkessel at neural step ``--dt`` ms (cuBNM's ``dt`` and ``bw_dt``), noise 0.01,
``--duration`` s simulated per evaluation with the first 30 s dropped (cuBNM's ``bold_remove_s``);
cost ``-(fc_corr - fcd_ks)`` (cuBNM's default; its firing-rate penalty is switched off on both sides
so the costs are the same function). Free parameters G, w_p, J_N (cuBNM's ranges (0.001, 10),
(0, 2), (0.001, 0.5)) = nmmfit's g = G J_N, g_EE = w_p J_N, g_EI = J_N; with ``--maps``, cuBNM's
map-based w_p and J_N (coefficients in its 'auto' ranges) and nmmfit's map-based g, g_EE, g_EI
(three coefficient sets: the nearest family nmmfit writes; cuBNM's J_N map scales all three).

cuBNM runs in a scratch venv (``bench/fic_cubnm_check.ensure_cubnm``: it pins numpy<2, never the
project's .venv), ``force_cpu=True``, CMA-ES ``popsize`` 20 and ``n_iter`` 10 as in its tutorial,
seed 1; each generation's wall time is recorded. nmmfit then runs its start scan (the 30 points of
``SCAN_GRID`` in one batched run; ``--no-scan``: G spread over [0.5, 3]) and :func:`nmmfit.fit`
(full-session exact gradients, the same noise every update, Adam on log-scale parameters,
``--restarts`` models batched) for the same wall time, the scan included, scoring cuBNM's cost on every
update's own simulation. Both tools' best parameters (lowest cost on REST1) are then re-simulated by
nmmfit (3 noise seeds) and scored on REST1 and on held-out REST2. Reported: best cost against wall
time, and the time each needs to reach the other's best.
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

import nmmfit
from nmmfit import datasets
from nmmfit.fit import Callback
from nmmfit.experiments.physiological import SCAN_GRID, scan_starts
from nmmfit.losses import cubnm_cost, deco2014_objective
from nmmfit.params.heterogeneity import MapScaling
from nmmfit.params.schemes import DECO2014_FIC_SCHEME

sys.path.insert(0, str(Path(__file__).parent))
from fic_cubnm_check import ensure_cubnm  # noqa: E402  (the scratch venv, one source)

RANGES = {"G": (0.001, 10.0), "w_p": (0.0, 2.0), "J_N": (0.001, 0.5)}

# Runs inside the scratch venv: CMA-ES on the problem in problem.npz; writes the history as JSON.
_WORKER = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from cubnm import optimize
    z, cfg = np.load(sys.argv[1]), json.loads(open(sys.argv[2]).read())
    kw = dict(model='rWW', params={k: tuple(v) for k, v in cfg['ranges'].items()}, emp_bold=z['bold'],
              duration=cfg['duration'], TR=cfg['tr'], sc=z['sc'], dt=cfg['dt'], bw_dt=cfg['dt'],
              force_cpu=True, do_fic=True, max_fic_trials=0, fic_penalty_scale=0, sim_seed=0,
              bold_remove_s=30, window_size=30, window_step=5)
    if 'maps' in z.files:
        kw.update(het_params=['w_p', 'J_N'], maps=z['maps'])
    problem = optimize.BNMProblem(**kw)
    cmaes = optimize.CMAESOptimizer(popsize=cfg['popsize'], n_iter=cfg['n_iter'], seed=1, print_history=False)
    cmaes.setup_problem(problem)
    t0, times = time.perf_counter(), []
    evaluate = problem._evaluate
    def timed(X, out, *a, **k):
        evaluate(X, out, *a, **k)
        times.append(time.perf_counter() - t0)
    problem._evaluate = timed
    cmaes.optimize()
    h = cmaes.history
    cols = [c for c in h.columns if c in cfg['ranges'] or 'scale' in c]
    json.dump(dict(times=times, gen=h['gen'].tolist(), cost=h['cost'].tolist(), fc_corr=h['+fc_corr'].tolist(),
                   fcd_ks=(-h['-fcd_ks']).tolist(), params={c: h[c].tolist() for c in cols}),
              open(sys.argv[3], 'w'))
""")


def problem_data(maps: list) -> dict:
    s1 = datasets.load("hcp_schaefer100", subject=0)
    s2 = datasets.load("hcp_schaefer100", subject=0, session="REST2_LR")
    sc = np.asarray(s1.sc, dtype=np.float64)
    if not np.allclose(sc, sc.T):
        raise ValueError("the head to head assumes a symmetric SC (cuBNM's rows are sources, nmmfit's targets)")
    m = np.stack([s1.maps[k] for k in maps]) if maps else None
    return dict(sc=sc / sc.max(), rest1=np.asarray(s1.bold), rest2=np.asarray(s2.bold), tr=s1.tr, maps=m,
                map_names=maps)


def run_cubnm(py: str, d: dict, a) -> dict:
    cfg = dict(ranges=RANGES, duration=a.duration, tr=d["tr"], dt=str(a.dt), popsize=a.popsize, n_iter=a.n_iter)
    with tempfile.TemporaryDirectory() as tmp:
        arrays = dict(sc=d["sc"], bold=d["rest1"].T, **({"maps": d["maps"]} if d["maps"] is not None else {}))
        np.savez(f"{tmp}/problem.npz", **arrays)
        Path(f"{tmp}/cfg.json").write_text(json.dumps(cfg))
        Path(f"{tmp}/run.py").write_text(_WORKER)
        t0 = time.perf_counter()
        done = subprocess.run([py, f"{tmp}/run.py", f"{tmp}/problem.npz", f"{tmp}/cfg.json", f"{tmp}/out.json"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"cuBNM worker failed:\n{done.stderr[-3000:]}")
        out = json.loads(Path(f"{tmp}/out.json").read_text())
    out["wall"] = time.perf_counter() - t0
    return out


def natural(G, w_p, J_N) -> dict:
    """nmmfit's natural values of cuBNM's (G, w_p, J_N) (homogeneous)."""
    return dict(g=G * J_N, g_EE=w_p * J_N, g_EI=J_N)


def make_model(d: dict, a, batch: int, init: dict, regional=()):
    scheme = DECO2014_FIC_SCHEME.replace(preset=DECO2014_FIC_SCHEME.preset.with_dt(a.dt))
    het = {}
    if d["maps"] is not None:
        ms = MapScaling.from_maps(dict(zip(d["map_names"], d["maps"])), d["sc"].shape[0])
        het = {p: ms for p in ("g", "g_EE", "g_EI")}
    return nmmfit.RWW(d["sc"], scheme=scheme, sc_preprocess="none", tr=d["tr"], batch=batch, init=init,
                      heterogeneity=het, seed=0, regional=regional)


class _Budget(Callback):
    """Scores cuBNM's cost on every update's own run; stops the fit once ``budget`` seconds have passed."""

    class Spent(Exception):
        pass

    def __init__(self, emp, tr, budget, t0, log):
        self.emp, self.tr, self.budget, self.t0, self.log = emp, tr, budget, t0, log

    def on_epoch(self, run, info):
        c = cubnm_cost(run.last_train_bold, self.emp, self.tr)
        values = {k: v.detach().cpu().numpy().tolist() for k, v in info["model"].values().items()}
        self.log.append(dict(time=time.perf_counter() - self.t0, **{k: v.tolist() for k, v in c.items()},
                             values=values))
        if self.log[-1]["time"] > self.budget:
            raise self.Spent()


def run_nmmfit(d: dict, a, budget: float) -> list:
    """nmmfit's fit for ``budget`` seconds, its start scan (``--scan``, the grid of ``SCAN_GRID``, one batched run)
    counted in the time; one log entry per update (and one for the scan: every grid point)."""
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    frames, drop = round(a.duration / d["tr"]), round(30 / d["tr"])
    emp = torch.as_tensor(d["rest1"], dtype=torch.float64)
    log = []
    if a.scan:
        init, table = scan_starts(lambda B, start: make_model(d, a, B, start), d["rest1"], d["tr"], SCAN_GRID,
                                  a.restarts, init={}, seed=0, burn_frames=drop, frames=frames - drop)
        log.append(dict(time=time.perf_counter() - t0, **{k: table[k] for k in ("fc_corr", "fc_diff", "fcd_ks", "cost")},
                        values={k: table[k] for k in SCAN_GRID}))
    else:
        u = torch.linspace(0, 1, a.restarts, dtype=torch.float64) if a.restarts > 1 else torch.tensor([0.3])
        init = dict(g=0.15 * 0.5 * 6.0 ** u)
    model = make_model(d, a, a.restarts, init)
    cb = _Budget(emp, d["tr"], budget, t0, log)
    try:
        nmmfit.fit(model, d["rest1"], objective=deco2014_objective(model, {"fc_mean": 0.0}), mode="full",
                   resample_noise=False, sim_frames=frames, discard_frames=drop, burn_in_windows=0,
                   epochs=10_000, lr=a.lr, average_last=1, test=False, callbacks=[cb])
    except _Budget.Spent:
        pass
    return cb.log


def best_so_far(times, costs) -> list:
    out, best = [], np.inf
    for t, c in zip(times, costs):
        best = min(best, c)
        out.append((t, best))
    return out


def time_to_reach(curve, target) -> float | None:
    return next((t for t, c in curve if c <= target), None)


@torch.no_grad()
def heldout_scores(d: dict, a, values: dict, seeds=(11, 12, 13)) -> dict:
    """cuBNM's cost of ``values`` (natural, [N] or scalar each) re-simulated by nmmfit on REST1 and REST2."""
    N = d["sc"].shape[0]
    init = {k: torch.as_tensor(v, dtype=torch.float64).reshape(1, -1).expand(1, N) for k, v in values.items()}
    model = make_model(dict(d, maps=None), a, 1, init, regional=tuple(init))
    frames, drop = round(a.duration / d["tr"]), round(30 / d["tr"])
    out = {}
    for name in ("rest1", "rest2"):
        emp = torch.as_tensor(d[name], dtype=torch.float64)
        rows = [cubnm_cost(model(frames + drop, seed=s).bold[:, drop:], emp, d["tr"]) for s in seeds]
        out[name] = {k: float(np.mean([r[k][0] for r in rows])) for k in ("fc_corr", "fcd_ks", "cost")}
    return out


def regional_from_cubnm(d, row: dict) -> dict:
    """cuBNM's particle (G, w_p, J_N and map coefficients ``<param>scale<k>``) as nmmfit natural values
    ``[N]``: p_i = p (1 + sum_k a_k map_k,i) for w_p and J_N, then g = G J_N, g_EE = w_p J_N, g_EI = J_N."""
    scale = {p: np.ones(d["sc"].shape[0]) for p in ("w_p", "J_N")}
    for k, m in enumerate(d["maps"] if d["maps"] is not None else []):
        for p in scale:
            scale[p] = scale[p] + row.get(f"{p}scale{k}", 0.0) * m
    w_p, J_N = row["w_p"] * scale["w_p"], row["J_N"] * scale["J_N"]
    return dict(g=row["G"] * J_N, g_EE=w_p * J_N, g_EI=J_N)


def cubnm_curve(res: dict) -> tuple[list, dict]:
    """Best-so-far cost at the end of each generation, and the best particle (a dict of its columns)."""
    gen, cost = np.asarray(res["gen"]), np.asarray(res["cost"])
    curve = best_so_far(res["times"], [cost[gen == g].min() for g in sorted(set(gen.tolist()))])
    i = int(np.argmin(cost))
    best = {k: v[i] for k, v in res["params"].items()}
    best.update(cost=cost[i], fc_corr=res["fc_corr"][i], fcd_ks=res["fcd_ks"][i], gen=int(gen[i]))
    return curve, best


def nmmfit_curve(log: list) -> tuple[list, dict]:
    curve = best_so_far([e["time"] for e in log], [min(e["cost"]) for e in log])
    u, b = min(((u, int(np.argmin(e["cost"]))) for u, e in enumerate(log)), key=lambda ub: log[ub[0]]["cost"][ub[1]])
    e = log[u]
    best = dict(update=u, model=b, cost=e["cost"][b], fc_corr=e["fc_corr"][b], fcd_ks=e["fcd_ks"][b],
                values={k: np.asarray(v)[b].tolist() for k, v in e["values"].items() if k in ("g", "g_EE", "g_EI")})
    return curve, best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--maps", default="")
    ap.add_argument("--duration", type=float, default=180.0)
    ap.add_argument("--dt", type=float, default=1.0)
    ap.add_argument("--n-iter", type=int, default=10)
    ap.add_argument("--popsize", type=int, default=20)
    ap.add_argument("--restarts", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--no-scan", dest="scan", action="store_false",
                    help="start nmmfit's restarts at G spread over [0.5, 3] instead of its start scan")
    ap.add_argument("--venv", type=Path, default=Path("/tmp/cubnm-venv"))
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    d = problem_data([m for m in a.maps.split(",") if m])
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.2f}, "
          f"maps {d['map_names'] or 'none'}, duration {a.duration} s, dt {a.dt} ms", flush=True)
    py = ensure_cubnm(a.venv)
    if py is None:
        raise SystemExit("cuBNM could not be set up; no head to head")
    cub = run_cubnm(py, d, a)
    c_curve, c_best = cubnm_curve(cub)
    print(f"cuBNM: {len(cub['times'])} generations x {a.popsize}, {cub['wall']:.0f} s, best cost {c_best['cost']:.3f} "
          f"(FC r {c_best['fc_corr']:.3f}, FCD KS {c_best['fcd_ks']:.3f})", flush=True)
    log = run_nmmfit(d, a, c_curve[-1][0])
    n_curve, n_best = nmmfit_curve(log)
    print(f"nmmfit: {sum(len(e['cost']) for e in log)} simulations, {n_curve[-1][0]:.0f} s, best cost {n_best['cost']:.3f} "
          f"(FC r {n_best['fc_corr']:.3f}, FCD KS {n_best['fcd_ks']:.3f})", flush=True)
    held = dict(cubnm=heldout_scores(d, a, regional_from_cubnm(d, c_best)), nmmfit=heldout_scores(d, a, n_best["values"]))
    reach = dict(nmmfit_to_cubnm_best=time_to_reach(n_curve, c_best["cost"]),
                 cubnm_to_nmmfit_best=time_to_reach(c_curve, n_best["cost"]))
    print("| tool | wall s | evaluations | best cost (REST1, in the fit) | re-simulated REST1 FC r / FCD KS | "
          "held-out REST2 FC r / FCD KS | time to reach the other's best |")
    print("|---|---|---|---|---|---|---|")
    for tool, curve, n, best, other in (("cuBNM CMA-ES", c_curve, len(cub["cost"]), c_best, "cubnm_to_nmmfit_best"),
                                        ("nmmfit gradient", n_curve, sum(len(e["cost"]) for e in log), n_best,
                                         "nmmfit_to_cubnm_best")):
        h = held["cubnm" if tool.startswith("cuBNM") else "nmmfit"]
        t = reach[other]
        print(f"| {tool} | {curve[-1][0]:.0f} | {n} | {best['cost']:.3f} | {h['rest1']['fc_corr']:.3f} / "
              f"{h['rest1']['fcd_ks']:.3f} | {h['rest2']['fc_corr']:.3f} / {h['rest2']['fcd_ks']:.3f} | "
              f"{'not reached' if t is None else f'{t:.0f} s'} |")
    if a.json:
        Path(a.json).write_text(json.dumps(dict(args=vars(a) | {"venv": str(a.venv)}, cubnm=cub, cubnm_curve=c_curve,
                                                cubnm_best=c_best, nmmfit_log=log, nmmfit_curve=n_curve,
                                                nmmfit_best=n_best, heldout=held, reach=reach), default=float))


if __name__ == "__main__":
    main()
