"""Figures of a physiological fit (:mod:`nmmfit.experiments.physiological`), beside the standard set
of :func:`nmmfit.plots.plot_result`: FCD matrices empirical vs simulated and their value
distributions (``fcd.png``), the regional parameters against the maps they were built from
(``maps.png``) and the mean excitatory rate per region after FIC (``rates.png``).

Imports: plots (the shared helpers), stats.fcd.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .plots import _plt, _save, plot_result
from .stats.fcd import fcd, fcd_values, ks_distance, window_frames

__all__ = ["plot_fcd", "plot_maps", "plot_rates", "plot_physiological"]


def plot_fcd(runs: dict, tr: float, path, *, title=""):
    """FCD matrices of ``runs`` (label -> BOLD ``[T, N]``; the first is the reference) and the
    distributions of their values, with the KS distance of each to the first."""
    plt = _plt()
    w, s = window_frames(tr)
    mats = {k: fcd(torch.as_tensor(np.asarray(v), dtype=torch.float64), w, s).numpy() for k, v in runs.items()}
    vals = {k: fcd_values(torch.as_tensor(np.asarray(v), dtype=torch.float64), w, s) for k, v in runs.items()}
    ref = next(iter(vals.values()))
    fig, ax = plt.subplots(1, len(runs) + 1, figsize=(4.2 * (len(runs) + 1), 3.8))
    for a, (k, m) in zip(ax, mats.items()):
        im = a.imshow(m, cmap="viridis", vmin=-0.2, vmax=1)
        a.set_title(f"FCD, {k}", fontsize=9)
        a.set_xlabel("window")
        fig.colorbar(im, ax=a, fraction=0.046, pad=0.04)
    bins = np.linspace(-0.3, 1.0, 60)
    for k, v in vals.items():
        ks = "" if v is ref else f" (KS {float(ks_distance(v, ref)):.3f})"
        ax[-1].hist(v.numpy(), bins=bins, density=True, histtype="step", label=f"{k}{ks}")
    ax[-1].set_xlabel("FCD value (Pearson r between window FCs)")
    ax[-1].legend(fontsize=7)
    return _save(fig, path, title)


def plot_maps(fitted: dict, heterogeneity: dict, maps: dict, path, *, b: int = 0, title=""):
    """Each heterogeneous parameter of model ``b`` against each map it was built from (scatter); None
    when no parameter is map-based."""
    pairs = [(p, m) for p, h in heterogeneity.items() if h.get("kind") == "maps" for m in h["maps"] if m in maps]
    if not pairs:
        return None
    plt = _plt()
    fig, ax = plt.subplots(1, len(pairs), figsize=(3.6 * len(pairs), 3.4), squeeze=False)
    for a, (p, m) in zip(ax[0], pairs):
        a.scatter(maps[m], np.asarray(fitted[p])[b], s=8)
        a.set_xlabel(f"map {m}")
        a.set_ylabel(p)
    return _save(fig, path, title)


def plot_rates(rate, path, *, labels=None, title=""):
    """Mean excitatory rate per region ``rate # [N]`` (Hz) with the 3 Hz target, and sorted."""
    plt = _plt()
    rate = np.asarray(rate, dtype=float)
    fig, (a, s) = plt.subplots(1, 2, figsize=(14, 3), gridspec_kw=dict(width_ratios=(3, 1)))
    a.bar(np.arange(len(rate)), rate, width=0.8)
    a.axhline(3.0773, color="r", ls="--", lw=1, label="FIC target 3.08 Hz")
    a.set_ylabel("mean r_E (Hz)")
    a.legend(fontsize=7)
    if labels is not None and len(labels) == len(rate) and len(rate) <= 120:
        a.set_xticks(np.arange(len(rate)), labels, rotation=90, fontsize=5)
    s.plot(np.sort(rate), marker=".", lw=0.8)
    s.set_xlabel("rank")
    return _save(fig, path, title)


def plot_physiological(res, out_dir, tr: float, bold, held, b: int, maps: dict) -> list:
    """The standard figures and the three above for model ``b`` of ``res`` (``bold``, ``held``: the
    fitted and held-out BOLD ``[T, N]``; ``maps``: name -> ``[N]`` map used); returns their paths."""
    out = Path(out_dir)
    paths = plot_result(res, out, b=b, emp_bold=np.asarray(bold) / np.max(bold))
    runs = {"empirical (fitted)": bold}
    if held is not None:
        runs["empirical (held out)"] = held
    if res.test_bold is not None:
        runs["simulated (fresh run)"] = res.test_bold[b]
    paths.append(plot_fcd(runs, tr, out / "fcd.png", title=f"model {b}"))
    m = plot_maps(res.fitted, res.extra.get("heterogeneity", {}), maps, out / "maps.png", b=b)
    paths += [m] if m is not None else []
    paths.append(plot_rates(res.extra["rate_E"][b], out / "rates.png", labels=res.extra.get("labels")))
    return paths
