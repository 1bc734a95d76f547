"""Diagnostics of the synthetic experiment's objective: scans around the truth and profiles."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from .._files import atomic_write
from ..fit import fit as run_fit
from ..losses import FCCorrelationLoss, LossInput, moments_objective
from ..model import RWW
from ..params.schemes import MODEL_PARAM_NAMES
from ..rng import derive_seed
from .protocol import DEMO_FIT, write_json


def landscape(out, subj, bold, truth: Mapping, *, fit: Sequence[str] = DEMO_FIT, frames: int = 1200,
              sim_factor: float = 2.0, discard_frames: int = 100, objective: str = "moments",
              rel: Sequence[float] = tuple(np.round(np.linspace(-0.3, 0.3, 13), 3)), realisations: int = 4,
              grid2d: int = 9, seed: int = 0, backend="auto", dtype=torch.float32, sc_preprocess=None,
              figures: bool = True) -> dict:
    """Scans of the objective around the truth on the synthetic data ``bold`` ``[T, N]``.

    1-D: each parameter of ``fit`` at ``truth * (1 + rel)``, the others at the truth; 2-D: the
    (g_EE, g_IE) and (g_IE, g_EI) planes (``grid2d`` points a side; +-30% except g_EE: +-3%, its
    valley being narrow). Each point is simulated
    ``realisations`` times (the same noise realisations at every point: common random numbers),
    ``sim_factor * frames`` frames after ``discard_frames``, from the same initial state, exactly as
    the fit's objective; the objective is ``"moments"`` (its terms are reported separately) or
    ``"paper"`` (the FC-correlation term ``-log(0.5 + 0.5 r)`` of the paper's objective, the only
    one that depends on the data). Writes ``landscape.npz`` and ``landscape.png``; returns, per
    parameter, the scanned values, the mean objective and its spread over realisations, and the
    argmin."""

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    R = int(realisations)
    n_sim = int(round(sim_factor * frames)) + discard_frames
    obj = moments_objective() if objective == "moments" else None
    emp = torch.as_tensor(bold, dtype=torch.float64)
    if objective != "moments":
        emp = emp / emp.max()

    def evaluate(points: list[dict]) -> dict:
        """points: list of natural-unit overrides -> {term: [P, R]} (total under 'total')."""
        P = len(points)
        vals = {k: torch.tensor([float(p.get(k, truth[k])) for p in points for _ in range(R)], dtype=torch.float64)
                for k in MODEL_PARAM_NAMES}
        m = RWW(subj.sc, fit=(), init=vals, fit_gains=False, seed=derive_seed("scan", seed) % 2**62, backend=backend,
                dtype=dtype, sc_preprocess=sc_preprocess, stream=torch.arange(R).repeat(P))
        gen = torch.Generator().manual_seed(derive_seed("scan-state", seed))
        x0 = m.initial_state(generator=gen)[:R].repeat(P, 1, 1)
        burn = 40                                    # as the fit's 2 burn-in windows
        with torch.no_grad():
            o = m(burn + n_sim, x0, 0, output_noise=False)
            eps = torch.randn((R, n_sim, m.N), generator=torch.Generator().manual_seed(derive_seed("scan-bold", seed)),
                              dtype=torch.float64).repeat(P, 1, 1)
            sim = o.bold[:, burn:].double() + vals["sigma_out"][:, None, None] * eps
            sim = sim[:, discard_frames:]
            e = emp[None].expand(P * R, -1, -1)
            if obj is not None:
                total, parts = obj.double()(LossInput(sim, e))
            else:
                total = FCCorrelationLoss()(LossInput(sim, e))
                parts = {}
        res = {k: v.reshape(P, R).numpy() for k, v in parts.items()}
        res["total"] = total.reshape(P, R).numpy()
        return res

    rel = np.asarray(rel, dtype=float)
    scans = {}
    for n in fit:
        if n not in truth:
            continue
        values = truth[n] * (1 + rel)
        r = evaluate([{n: v} for v in values])
        mean = r["total"].mean(1)
        scans[n] = dict(values=values.tolist(), rel=rel.tolist(), total=mean.tolist(), total_sd=r["total"].std(1).tolist(),
                        terms={k: v.mean(1).tolist() for k, v in r.items() if k != "total"},
                        argmin_rel=float(rel[int(np.argmin(mean))]))
    planes = {}
    span = dict(g_EE=0.03)
    for a, b in (("g_EE", "g_IE"), ("g_IE", "g_EI")):
        if a in truth and b in truth:
            ga = np.linspace(-1, 1, grid2d) * span.get(a, 0.3)
            gb = np.linspace(-1, 1, grid2d) * span.get(b, 0.3)
            pts = [{a: truth[a] * (1 + x), b: truth[b] * (1 + y)} for x in ga for y in gb]
            r = evaluate(pts)
            planes[f"{a}|{b}"] = dict(x=a, y=b, rel_x=ga.tolist(), rel_y=gb.tolist(),
                                      total=r["total"].mean(1).reshape(grid2d, grid2d).tolist())
    atomic_write(out / "landscape.npz", lambda f: np.savez_compressed(f, scans=json.dumps(scans), planes=json.dumps(planes)))
    rep = dict(objective=objective, realisations=R, sim_frames=n_sim, scans=scans, planes=planes)
    if figures:
        from ..plots import plot_landscape

        rep["figures"] = [str(plot_landscape(scans, planes, out / "landscape.png",
                                             title=f"{subj.name}: {objective} objective around the truth "
                                                   f"({R} noise realisations, {n_sim - discard_frames} frames)"))]
    return rep


def profile(out, subj, bold, truth: Mapping, *, params: Sequence[str] = ("g_IE", "g_EI"),
            fit: Sequence[str] = DEMO_FIT, rel: Sequence[float] = (-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3),
            realisations: int = 2, frames: int = 1200, sim_factor: float = 2.0, discard_frames: int = 100,
            epochs: int = 60, seed: int = 0, backend="auto", dtype=torch.float32, sc_preprocess=None,
            figures: bool = True, progress: bool = False) -> dict:
    """Profiles of the moments objective: each parameter of ``params`` held at ``truth * (1 + rel)``
    while the other fitted parameters are minimised (L-BFGS, as :func:`recover` fits, started at
    the truth: a diagnostic of the objective, not a recovery). All points share ``realisations``
    noise realisations (common random numbers, output noise included). A flat profile means
    that the data cannot tell the values apart (non-identifiable); a profile that rises as fast
    as the 1-D scan means that the other parameters cannot compensate. Writes ``profile.png``."""

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    R, rel = int(realisations), np.asarray(rel, dtype=float)
    P = len(rel)
    prof = {}
    for n in params:
        others = tuple(k for k in fit if k != n)
        init = {k: torch.full((P * R,), float(truth[k]), dtype=torch.float64) for k in MODEL_PARAM_NAMES}
        init[n] = torch.as_tensor(np.repeat(truth[n] * (1 + rel), R))
        m = RWW(subj.sc, fit=others, init=init, fit_gains=False, seed=derive_seed("profile", seed) % 2**62,
                backend=backend, dtype=dtype, sc_preprocess=sc_preprocess, stream=torch.arange(R).repeat(P),
                rng_by_stream=True)
        res = run_fit(m, bold, objective=moments_objective(), scale="none", mode="full", optimizer="lbfgs", lr=1.0,
                   epochs=epochs, lr_scale={k: abs(float(truth[k])) for k in others},
                   sim_frames=int(round(sim_factor * frames)) + discard_frames, discard_frames=discard_frames,
                   resample_noise=False, test=False, progress=progress, seed=seed)
        final = res.history["loss"][-1].reshape(P, R)
        prof[n] = dict(rel=rel.tolist(), values=(truth[n] * (1 + rel)).tolist(), profile=final.mean(1).tolist(),
                       profile_sd=final.std(1).tolist(), iterations=res.epochs_completed,
                       others={k: np.asarray(res.fitted[k]).reshape(P, R).mean(1).tolist() for k in others})
    rep = dict(params=list(params), realisations=R, profiles=prof)
    write_json(out / "profile.json", rep)
    if figures:
        from ..plots import plot_profiles

        rep["figures"] = [str(plot_profiles(prof, truth, out / "profile.png",
                                            title=f"{subj.name}: profiles of the moments objective "
                                                  f"({R} noise realisations)"))]
    return rep


__all__ = ["landscape", "profile"]
