"""Analytic FIC of nmmfit against cuBNM's (``rww_fic.cpp``), on the same SCs and parameters.

    .venv/bin/python bench/fic_cubnm_check.py [--venv /tmp/cubnm-venv] [--json out.json] [--transcription]

cuBNM (``cubnm==0.1.0``, a prebuilt manylinux wheel for CPython 3.11; it pins numpy<2) is installed
into a scratch virtual environment, never the project's .venv; it runs there in a subprocess
(its CPU backend: ``force_cpu=True``, ``do_fic=True``, ``max_fic_trials=0``, i.e. analytic FIC only)
and hands back its ``wIE`` and ``fic_unstable``. If it cannot be installed or run, the comparison
falls back to ``cubnm_transcription`` below, a line-by-line transcription of ``rww_fic.cpp``
(labelled as such in the output).

Parameter mapping (cuBNM 0.1.0 ``rww.cpp``: I_E = w_E I_0 + w_p J_N S_E + G J_N sum_k C_kj S_E,k -
wIE S_I, SC rows are sources): g = G J_N (regional), g_EE = w_p J_N, g_EI = J_N, I_0 = 0.382, and
nmmfit's W (rows are targets) = SC transposed. Also printed: the mean r_E per node of the deco2014
simulation after FIC, with and without noise (MODEL.md asks for it).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import torch

import nmmfit
import nmmfit.datasets
from nmmfit.params.fic import CUBNM_TARGET, excitatory_current, fic_analytic
from nmmfit.reference import CONSTANTS as C
from nmmfit.reference import rate_ref

CUBNM = "cubnm==0.1.0"

# Runs inside the scratch venv: reads cases.npz, writes out.npz (wIE and fic_unstable per case).
_RUNNER = textwrap.dedent("""
    import sys, numpy as np
    from cubnm import sim
    cases, out = np.load(sys.argv[1]), {}
    for name in sorted({k.split('/')[0] for k in cases.files}):
        G, w_p, J_N = (cases[f'{name}/{k}'] for k in ('G', 'w_p', 'J_N'))
        sg = sim.rWWSimGroup(duration=1, TR=1, sc=cases[f'{name}/sc'], do_fc=False, do_fcd=False,
                             gof_terms=[], force_cpu=True, do_fic=True, max_fic_trials=0, bold_remove_s=0)
        sg.N = len(G)
        sg.param_lists.update(G=G, w_p=w_p, J_N=J_N)
        sg._set_default_params()
        sg.run()
        out[f'{name}/wIE'], out[f'{name}/unstable'] = sg.param_lists['wIE'], np.asarray(sg.fic_unstable)
    np.savez(sys.argv[2], **out)
""")


def scratch_env(**extra) -> dict:
    """The environment for the scratch venv's processes: without PYTHONPATH, which (when this
    script runs another build through ``PYTHONPATH=...:site-packages python -S``) would put the
    project's packages (numpy 2) in front of the scratch venv's own."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(extra)
    return env


def ensure_cubnm(venv: Path) -> str | None:
    """The scratch venv's python with cuBNM importable, or None (the reason is printed)."""
    py = venv / "bin" / "python"
    if py.exists() and subprocess.run([py, "-c", "import cubnm"], capture_output=True, env=scratch_env()).returncode == 0:
        return str(py)
    for cmd in ([sys.executable, "-m", "venv", str(venv)], [str(py), "-m", "pip", "install", "-q", CUBNM]):
        done = subprocess.run(cmd, capture_output=True, text=True, env=scratch_env())
        if done.returncode != 0:
            print(f"cannot set up cuBNM ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
            return None
    return str(py)


def make_cases() -> dict:
    """name -> (sc [N, N] rows = sources, G [B], w_p [B, N], J_N [B, N])."""
    rng = np.random.default_rng(0)
    scs = {"random20_asym": rng.random((20, 20)) * (1 - np.eye(20))}
    scs["random20_asym"] /= scs["random20_asym"].sum(0).mean()
    try:
        scs["hagmann66"] = nmmfit.datasets.load("hagmann66").sc.T   # tvb rows are targets
    except Exception as exc:  # the dataset is optional data; say so and go on
        print(f"hagmann66 not available ({exc}); random SC only")
    cases = {}
    for name, sc in scs.items():
        N, G = sc.shape[0], np.array([0.0, 0.5, 1.0, 2.0, 3.0])
        cases[f"{name}_homogeneous"] = (sc, G, np.full((5, N), 1.4), np.full((5, N), 0.15))
        cases[f"{name}_regional"] = (sc, G, rng.uniform(1.0, 1.8, (5, N)), rng.uniform(0.1, 0.2, (5, N)))
    return cases


def run_cubnm(py: str, cases: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        flat = {f"{n}/{k}": v for n, c in cases.items() for k, v in zip(("sc", "G", "w_p", "J_N"), c)}
        np.savez(f"{tmp}/cases.npz", **flat)
        (Path(tmp) / "run.py").write_text(_RUNNER)
        subprocess.run([py, f"{tmp}/run.py", f"{tmp}/cases.npz", f"{tmp}/out.npz"], check=True,
                       capture_output=True, text=True, env=scratch_env())
        out = np.load(f"{tmp}/out.npz")
        return {n: (out[f"{n}/wIE"], out[f"{n}/unstable"]) for n in cases}


def cubnm_transcription(sc, G, w_p, J_N):
    """TRANSCRIPTION of cuBNM 0.1.0 ``analytical_fic_het`` (rww_fic.cpp), for when cuBNM cannot run:
    per node a root of I_0_I + w_EI S_E* - w_II gamma_I_s tau_I_s phi_I(x) - x on [0, 2] (GSL Brent;
    it stops once the bracket is within relative 1e-3, but its last iterate is far closer: cuBNM itself
    agrees with nmmfit to ~1e-9, see RESULTS.md; scipy's brentq at default tolerance stands in), then
    wIE = -(I_E* - I_ext - I0_E - K_EE[j] . S_E*) / S_I; K_EE = G SC^T scaled by row by J_N, plus
    diag(w_p J_N). A failed root or wIE < 0 marks the whole simulation unstable (wIE set to 1)."""
    from scipy.optimize import brentq
    phi_I = lambda x: (C["a_I"] * x - C["b_I"]) / (1 - np.exp(-C["d_I"] * (C["a_I"] * x - C["b_I"])))
    wIE, unstable = np.ones_like(w_p), np.zeros(len(G), dtype=bool)
    for b in range(len(G)):
        K = G[b] * sc.T * J_N[b][:, None] + np.diag(w_p[b] * J_N[b])
        for j in range(sc.shape[0]):
            f = lambda x: 0.7 * 0.382 + J_N[b, j] * CUBNM_TARGET.S_E - 0.01 * phi_I(x) - x
            S_I = 0.01 * phi_I(brentq(f, 0.0, 2.0))
            w = -(CUBNM_TARGET.I_E - 0.382 - K[j].sum() * CUBNM_TARGET.S_E) / S_I
            unstable[b] |= w < 0
            wIE[b, j] = w
        wIE[b] = 1.0 if unstable[b] else wIE[b]
    return wIE, unstable


def nmmfit_fic(sc, G, w_p, J_N):
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)
    return fic_analytic(t(G[:, None] * J_N), t(w_p * J_N), t(J_N), 0.382, t(sc.T))


def compare(name, ours, theirs) -> dict:
    wIE, unstable = theirs
    stable = ~unstable & ours.ok.all(1).numpy()
    diff = np.abs(ours.g_IE.numpy() - wIE)[stable]
    rel = diff / np.abs(wIE[stable])
    return dict(case=name, models=len(unstable), stable_both=int(stable.sum()),
                flags_agree=bool(np.array_equal(unstable, ~ours.ok.all(1).numpy())),
                max_abs=float(diff.max()) if diff.size else None, max_rel=float(rel.max()) if rel.size else None)


def mean_rates(sc, G, sigma, n_steps=100_000, seed=1) -> np.ndarray:
    """Mean r_E = H_E(I_E) per node (1 ms samples, first second dropped) of deco2014 after FIC."""
    N = sc.shape[0]
    p = {k: torch.full((1, N), v, dtype=torch.float64) for k, v in
         dict(g=0.15 * G, g_EE=0.21, g_EI=0.15, I_0=0.382, sigma=sigma).items()}
    W = torch.as_tensor(sc.T, dtype=torch.float64)
    g_IE = fic_analytic(p["g"], p["g_EE"], p["g_EI"], p["I_0"], W, strict=True).g_IE
    out = nmmfit.simulate(W.float(), {k: v.float() for k, v in dict(p, g_IE=g_IE).items()}, None, n_steps,
                          preset="deco2014", record_every=10, seed=seed, noise=sigma > 0)
    J = excitatory_current(out.E.double(), out.I.double(), p["g"], p["g_EE"], g_IE, p["I_0"], W)
    return rate_ref(J, C["a_E"], C["b_E"], C["d_E"], "standard")[0, 1000:].mean(0).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", type=Path, default=Path("/tmp/cubnm-venv"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--transcription", action="store_true", help="compare with the transcription, not cuBNM")
    args = ap.parse_args()
    cases = make_cases()
    py = None if args.transcription else ensure_cubnm(args.venv)
    source = f"cuBNM {CUBNM} (CPU, in {args.venv})" if py else "TRANSCRIPTION of cuBNM rww_fic.cpp"
    theirs = run_cubnm(py, cases) if py else {n: cubnm_transcription(*c) for n, c in cases.items()}
    rows = [compare(n, nmmfit_fic(*c), theirs[n]) for n, c in cases.items()]
    print(f"analytic FIC: nmmfit vs {source}")
    for r in rows:
        print(f"  {r['case']:<28} models {r['models']}  stable in both {r['stable_both']}  "
              f"unstable flags agree {r['flags_agree']}  max |dg_IE| {r['max_abs']:.2e}  max rel {r['max_rel']:.2e}")
    sc, G, w_p, J_N = cases["random20_asym_regional"]
    wrong = compare("", nmmfit_fic(sc.T, G, w_p, J_N), theirs["random20_asym_regional"])["max_rel"]
    print(f"  (sensitivity: the same case with SC not transposed differs by max rel {wrong:.2e})")
    sc = cases.get("hagmann66_homogeneous", cases["random20_asym_homogeneous"])[0]
    rates = {f"G={G} sigma={s}": mean_rates(sc, G, s) for G in (0.5, 1.0) for s in (0.0, 0.001, 0.01)}
    print(f"mean r_E per node after analytic FIC (target {3.0773:.4f} Hz), deco2014, 10 s, N = {sc.shape[0]}:")
    for k, r in rates.items():
        print(f"  {k:<18} median {np.median(r):.3f}  min {r.min():.3f}  max {r.max():.3f} Hz")
    if args.json:
        args.json.write_text(json.dumps(dict(source=source, fic=rows, rates={k: [float(np.median(r)), float(r.min()),
                                             float(r.max())] for k, r in rates.items()}), indent=1))


if __name__ == "__main__":
    main()
