"""End-to-end experiments behind the CLI: the HCP demo, the synthetic recovery experiment, a fit
of a dataset subject or the user's files, and a plain simulation.

Each function writes its results and figures into ``out`` and returns a dict of the numbers it
reports (the CLI prints them).

Values from the paper (Griffiths et al. 2022) and its code (GriffithsLab/whobpyt,
``whobpyt/depr/griffiths2022``):

- synthetic experiment: BOLD from ``g=100, g_EE=3.5, g_IE=0.42, g_EI=0.42, I_0=0.2`` with state
  and output noise std 0.02 on the 66-region Hagmann SC, 20 TRs of burn-in dropped
  (:data:`SYNTHETIC_TRUTH`);
- HCP fits: g drawn around 80 (+-0.3), g_EE around 2.5 (+-0.3), raw g_IE = g_EI = 0.1, std_in 0.05
  (sigma 0.07), std_out 0.02, gains 0.05, 20 epochs of 20-TR windows (:func:`nmmfit.paper_init`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from .fit import fit as _fit, simulate_test
from .model import MODEL_PARAM_NAMES, RWW, _seed_int, fc_matrix, paper_init, pearson, lower_tri

SYNTHETIC_TRUTH = dict(g=100.0, g_EE=3.5, g_IE=0.42, g_EI=0.42, I_0=0.2, sigma=0.02, sigma_out=0.02)
"""Ground truth of the paper's synthetic experiment (its code: WWD_test with W1 = W2 = 0.02)."""

DEMO_FIT = ("g", "g_EE", "g_IE", "g_EI", "sigma_out")
"""Parameters the demo fits: the paper's, except the state-noise std, which stays at the
transform's floor 0.02 (see :func:`demo`)."""


def _load_subject(dataset: str | None, subject=0, *, sc_path=None, bold_path=None, tr=None,
                  bold_layout="auto"):
    from . import datasets

    if sc_path is not None:
        return datasets.load_files(sc_path, bold_path, tr=tr, bold_layout=bold_layout)
    if dataset is None:
        raise ValueError("give a dataset name or an SC file")
    return datasets.load(dataset, subject=subject)


def _write_json(path, obj):
    Path(path).write_text(json.dumps(obj, indent=2, default=lambda o: np.asarray(o).tolist()))


def _init_for(preset: str, B: int, *, seed: int, g_mean=80.0, sigma=None, overrides: Mapping | None = None):
    if preset == "griffiths2022":
        init = paper_init(B, g_mean=g_mean, seed=seed)
    else:
        init = {}
    if sigma is not None:
        init["sigma"] = float(sigma)
    init.update(dict(overrides or {}))
    return init


def fit_subject(out, *, dataset: str | None = "hcp_aal2", subject=0, sc_path=None, bold_path=None, tr=None,
                bold_layout="auto", preset="griffiths2022", restarts: int = 1, epochs: int = 20,
                window: int = 20, mode: str = "windowed", lr: float = 0.01, fit: Sequence[str] | None = None,
                regional: Sequence[str] = (), gains: bool | None = None, sigma: float | None = None,
                init: Mapping | None = None, g_mean: float = 80.0, frames: int | None = None,
                test_windows="data", average_last: int = 100, seed: int = 0, backend: str = "auto",
                lr_scale: Mapping | None = None, sc_preprocess: str | None = None, resume: bool = False, progress: bool = True, dtype=torch.float32, figures: bool = True) -> dict:
    """Fit one subject (a bundled dataset's or the user's files) with ``restarts`` models batched.

    Writes ``result.json``/``result.npz``, the per-epoch ``checkpoint.pt`` and figures into ``out``.
    """
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    subj = _load_subject(dataset, subject, sc_path=sc_path, bold_path=bold_path, tr=tr, bold_layout=bold_layout)
    if subj.bold is None:
        raise ValueError(f"{subj.name}: has no BOLD to fit (only an SC); pick a dataset with BOLD or give --bold")
    bold = subj.bold if frames is None else subj.bold[:frames]
    init = _init_for(preset, restarts, seed=seed, g_mean=g_mean, sigma=sigma, overrides=init)
    model = RWW(subj.sc, preset=preset, batch=restarts, fit=fit, regional=regional, init=init,
                fit_gains=gains, seed=seed, backend=backend, dtype=dtype, sc_preprocess=sc_preprocess)
    res = _fit(model, bold, mode=mode, epochs=epochs, window=window, lr=lr, lr_scale=lr_scale, seed=seed,
               test_windows=test_windows, average_last=average_last, out_dir=out, resume=resume,
               progress=progress, save_result=False)
    res.extra.update(dataset=subj.name, subject=subj.subject, tr=subj.tr, n_frames=int(len(bold)))
    res.save(out)
    figs = []
    if figures:
        from .plots import plot_result

        emp = np.asarray(bold) / np.max(bold)
        figs = [str(p) for p in plot_result(res, out, emp_bold=emp)]
    b = res.best()
    report = dict(dataset=subj.name, subject=subj.subject, N=int(subj.N), frames=int(len(bold)),
                  restarts=restarts, epochs=res.epochs_completed, mode=mode,
                  train_r=res.train_r.tolist() if res.train_r is not None else None,
                  test_r=res.test_r.tolist() if res.test_r is not None else None,
                  best=b, fitted={k: np.asarray(v)[b].tolist() for k, v in res.fitted.items()},
                  wall_time=time.perf_counter() - t0, fit_wall_time=res.wall_time, figures=figs, out=str(out))
    _write_json(out / "report.json", report)
    return report


def default_demo_epochs(backend: str = "auto") -> int:
    """20 epochs (the paper) with the compiled kernels; 5 with the pure-PyTorch reference, so the
    demo stays within a few minutes on 2 CPU cores either way."""
    from ._ext import HAS_EXTENSION

    return 20 if (HAS_EXTENSION and backend == "auto") else 5


def demo(out, *, dataset="hcp_aal2", subject=0, epochs: int | None = None, frames: int | None = None,
         fit_sigma: bool = False, backend="auto", seed: int = 0, progress: bool = True, **kw) -> dict:
    """Fit one HCP subject as the paper did (griffiths2022, 20-TR windows, Adam 0.01/1e-7, the
    paper's objective and initial values, SC gains), then the paper's test run.

    One deliberate difference by default: the state-noise std stays at 0.02 (the floor of the
    paper's transform 0.02 + relu(std_in)) instead of being fitted from 0.07. Fitted from 0.07 its
    trajectory is fragile: on hcp_aal2 subject 0 it either falls to the floor (and stays: relu has
    no gradient there; FC r ~0.77 after 20 epochs) or grows to 0.2-0.6, where the noise-driven
    model loses its FC structure (FC r ~0), and which of the two happens changed with float32
    rounding alone (compiled kernels vs reference). ``fit_sigma=True`` reproduces the paper exactly.
    ``epochs=None``: :func:`default_demo_epochs`.
    """
    fit = None if fit_sigma else DEMO_FIT
    sigma = None if fit_sigma else 0.02
    if epochs is None:
        epochs = default_demo_epochs(backend)
    return fit_subject(out, dataset=dataset, subject=subject, epochs=epochs, frames=frames, fit=fit, sigma=sigma,
                       backend=backend, seed=seed, progress=progress, **kw)


def recover(out, *, dataset="hagmann66", subject=0, truth: Mapping | None = None, starts: int = 4,
            frames: int = 1200, epochs: int = 10, window: int = 20, mode: str = "windowed", lr: float = 0.01,
            gains: bool = False, fit: Sequence[str] = DEMO_FIT, test_windows="data", seed: int = 0,
            backend="auto", progress=True, dtype=torch.float32, figures: bool = True,
            start_ranges: Mapping | None = None, lr_scale: Mapping | None = None,
            sc_preprocess: str | None = None) -> dict:
    """The paper's synthetic experiment: BOLD simulated from known parameters on a real
    connectome (``dataset``'s SC; the paper used the 66-region Hagmann SC), then fitted from
    ``starts`` random initial values batched as one model of B = starts.

    Reports recovered vs true g, g_EE, g_IE, g_EI per start, the test FC r (fitted model's test
    run vs the synthetic FC) and the time.
    """
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from . import datasets

    subj = datasets.load(dataset, subject=subject)
    truth = dict(SYNTHETIC_TRUTH, **dict(truth or {}))
    # 1) synthetic data: one model at the truth, no gains, 20 frames of burn-in dropped
    gen = RWW(subj.sc, fit=(), init=truth, fit_gains=False, seed=_seed_int("synthetic", seed) % 2**62,
              backend=backend, dtype=dtype, sc_preprocess=sc_preprocess)
    burn = 20
    with torch.no_grad():
        sim = gen(frames + burn, gen.initial_state(seed=_seed_int("synthetic-state", seed)), 0)
    bold = sim.bold[0, burn:].cpu().numpy().astype(np.float64)         # [T, N]
    np.savez_compressed(out / "synthetic.npz", bold=bold, sc=subj.sc, **{f"truth_{k}": v for k, v in truth.items()})

    # 2) random starts
    ranges = dict(g=(50.0, 150.0), g_EE=(1.5, 4.5), g_IE=(0.1, 0.8), g_EI=(0.1, 0.8))
    ranges.update(dict(start_ranges or {}))
    g = torch.Generator().manual_seed(_seed_int("starts", seed) % 2**62)
    init = {k: lo + (hi - lo) * torch.rand(starts, generator=g, dtype=torch.float64) for k, (lo, hi) in ranges.items()}
    for k in ("I_0", "sigma"):
        init[k] = truth[k]
    init["sigma_out"] = 0.021
    model = RWW(subj.sc, batch=starts, fit=fit, init=init, fit_gains=gains, seed=seed, backend=backend, dtype=dtype,
                sc_preprocess=sc_preprocess)
    starts_np = {k: v.numpy() for k, v in init.items() if k in ranges}
    res = _fit(model, bold, mode=mode, epochs=epochs, window=window, lr=lr, lr_scale=lr_scale, seed=seed,
               test_windows=test_windows, out_dir=out, progress=progress, save_result=False)
    res.extra.update(truth=truth, starts=starts_np, dataset=subj.name)
    res.save(out)
    names = ("g", "g_EE", "g_IE", "g_EI")
    recovered = {n: np.asarray(res.fitted[n]) for n in names}
    table = {n: dict(true=float(truth[n]), start=starts_np[n].tolist(), recovered=recovered[n].tolist(),
                     mean=float(np.mean(recovered[n])), sd=float(np.std(recovered[n])),
                     rel_error=float(np.mean(np.abs(recovered[n] - truth[n])) / abs(truth[n])))
             for n in names}
    figs = []
    if figures:
        from .plots import plot_recovery, plot_result

        figs.append(str(plot_recovery(truth, recovered, out / "recovery.png", test_r=res.test_r,
                                      title=f"{subj.name}: {starts} starts, {res.epochs_completed} epochs")))
        figs += [str(p) for p in plot_result(res, out, truth=truth, emp_bold=bold / bold.max())]
    report = dict(dataset=subj.name, N=int(subj.N), frames=frames, starts=starts, epochs=res.epochs_completed,
                  gains=gains, parameters=table,
                  train_r=res.train_r.tolist() if res.train_r is not None else None,
                  test_r=res.test_r.tolist() if res.test_r is not None else None,
                  wall_time=time.perf_counter() - t0, fit_wall_time=res.wall_time, figures=figs, out=str(out))
    _write_json(out / "report.json", report)
    return report


def simulate_run(out, *, dataset="hcp_aal2", subject=0, sc_path=None, preset="griffiths2022",
                 params: Mapping | None = None, frames: int = 1200, burn_in: int = 20, seed: int = 0,
                 output_noise: bool | None = None, backend="auto", figures: bool = True) -> dict:
    """Simulate BOLD from a parameter set on a connectome and save ``bold [T, N]``, ``fc``, the
    parameters and the SC (preprocessed as the model uses it) to ``out`` (a ``.npz`` file path or a
    directory, which gets ``simulation.npz``)."""
    t0 = time.perf_counter()
    out = Path(out)
    path = out if out.suffix == ".npz" else out / "simulation.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    subj = _load_subject(dataset, subject, sc_path=sc_path)
    params = dict(params or {})
    bad = set(params) - set(MODEL_PARAM_NAMES)
    if bad:
        raise ValueError(f"params: unknown names {sorted(bad)}; expected names from {MODEL_PARAM_NAMES}")
    if preset == "griffiths2022":
        init = {**{k: SYNTHETIC_TRUTH[k] for k in SYNTHETIC_TRUTH}, **params}
    else:
        init = params
    model = RWW(subj.sc, preset=preset, fit=(), init=init, fit_gains=False, seed=seed, output_noise=output_noise,
                backend=backend)
    with torch.no_grad():
        sim = model(frames + burn_in, model.initial_state(seed=_seed_int("simulate-state", seed)), 0)
    bold = sim.bold[0, burn_in:].double()
    fc = fc_matrix(bold).numpy()
    values = {k: float(v.mean()) for k, v in model.values().items()}
    np.savez_compressed(path, bold=bold.numpy(), fc=fc, sc=model.sc.cpu().numpy(), preset=preset,
                        **{f"param_{k}": v for k, v in values.items()})
    report = dict(out=str(path), N=int(subj.N), frames=frames, preset=preset, params=values,
                  seed=seed, wall_time=time.perf_counter() - t0)
    if subj.fc is not None and subj.bold is not None:
        report["fc_r_vs_empirical"] = float(pearson(lower_tri(torch.as_tensor(fc)), lower_tri(torch.as_tensor(subj.fc))))
    if figures:
        from .plots import plot_fc

        report["figures"] = [str(plot_fc(subj.fc, fc, path.with_suffix(".fc.png"), sim_label="simulated"))]
    return report


__all__ = ["SYNTHETIC_TRUTH", "DEMO_FIT", "fit_subject", "demo", "recover", "simulate_run", "simulate_test"]
