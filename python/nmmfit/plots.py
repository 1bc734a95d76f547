"""Figures of a fit (matplotlib, Agg backend: files only, no display needed).

``plot_result(result, out_dir)`` writes the standard set for a :class:`nmmfit.FitResult`:
``fc.png`` (empirical vs simulated FC and their scatter), ``loss.png`` (loss terms and train FC r
over updates/epochs), ``params.png`` (parameter trajectories), ``sc.png`` (original SC vs fitted
coupling, when gains were fitted) and ``bold.png`` (a few regions, empirical vs simulated).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _save(fig, path, title=""):
    """Title, layout, write the figure to ``path`` and free it; returns the path."""
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return Path(path)


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _offdiag(m):
    m = np.array(m, dtype=float, copy=True)
    np.fill_diagonal(m, np.nan)
    return m


def _tri(m):
    i, j = np.tril_indices(m.shape[-1], -1)
    return m[..., i, j]


def plot_fc(emp_fc, sim_fc, path, *, title="", sim_label="simulated"):
    """Empirical and simulated FC side by side, and a scatter of their lower triangles
    (``emp_fc=None``: the simulated FC alone)."""
    plt = _plt()
    if emp_fc is None:
        fig, a = plt.subplots(1, 1, figsize=(5, 4))
        im = a.imshow(_offdiag(sim_fc), cmap="RdBu_r", vmin=-1, vmax=1)
        a.set_title(f"{sim_label} FC" + (f" - {title}" if title else ""))
        fig.colorbar(im, ax=a, fraction=0.046, pad=0.04)
        return _save(fig, path)
    emp_fc, sim_fc = np.asarray(emp_fc), np.asarray(sim_fc)
    r = np.corrcoef(_tri(emp_fc), _tri(sim_fc))[0, 1]
    fig, ax = plt.subplots(1, 3, figsize=(13, 4))
    for a, m, t in ((ax[0], emp_fc, "empirical FC"), (ax[1], sim_fc, f"{sim_label} FC")):
        im = a.imshow(_offdiag(m), cmap="RdBu_r", vmin=-1, vmax=1)
        a.set_title(t)
        fig.colorbar(im, ax=a, fraction=0.046, pad=0.04)
    ax[2].scatter(_tri(emp_fc), _tri(sim_fc), s=3, alpha=0.4)
    ax[2].set_xlabel("empirical FC")
    ax[2].set_ylabel(f"{sim_label} FC")
    ax[2].set_title(f"r = {r:.3f}")
    return _save(fig, path, title)


def plot_losses(history, path, *, b=None, title=""):
    """Total loss and each term over updates (model ``b``, or all models), and the per-epoch
    train FC correlation."""
    plt = _plt()
    terms = sorted(k for k in history if k.startswith("loss."))
    n = 2 + len(terms)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    axes = axes.ravel()
    sel = slice(None) if b is None else slice(b, b + 1)
    for a, key in zip(axes, ["loss"] + terms):
        v = np.asarray(history[key])
        a.plot(v[:, sel], lw=0.8)
        a.set_title(key)
        a.set_xlabel("update")
    a = axes[1 + len(terms)]
    r = np.asarray(history.get("epoch_train_r", np.zeros((0, 1))))
    if len(r):
        a.plot(np.arange(1, len(r) + 1), r[:, sel], marker="o")
    a.set_title("train FC r per epoch")
    a.set_xlabel("epoch")
    for a in axes[n:]:
        a.axis("off")
    return _save(fig, path, title)


def plot_params(history, path, *, truth=None, b=None, title=""):
    """Trajectories of the fitted parameters (natural units; regional ones: their mean) and the
    loss hyper-parameters; ``truth`` (name -> value) draws dashed reference lines."""
    plt = _plt()
    keys = sorted(k for k in history if k.startswith("param.")) + sorted(k for k in history if k.startswith("hyper."))
    if not keys:
        keys = ["loss"]
    cols = min(len(keys), 4)
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    axes = axes.ravel()
    sel = slice(None) if b is None else slice(b, b + 1)
    for a, key in zip(axes, keys):
        v = np.asarray(history[key])
        if v.ndim == 3:
            v = v.mean(-1)
        a.plot(v[:, sel], lw=0.8)
        name = key.split(".", 1)[-1]
        if truth and name in truth:
            a.axhline(float(np.mean(truth[name])), color="k", ls="--", lw=1)
        a.set_title(key)
        a.set_xlabel("update")
    for a in axes[len(keys):]:
        a.axis("off")
    return _save(fig, path, title)


def plot_sc(sc, W, path, *, title=""):
    """Original (preprocessed) SC vs fitted coupling, and their scatter."""
    plt = _plt()
    sc, W = np.asarray(sc), np.asarray(W)
    vmax = float(max(sc.max(), W.max()))
    fig, ax = plt.subplots(1, 3, figsize=(13, 4))
    for a, m, t in ((ax[0], sc, "SC (preprocessed)"), (ax[1], W, "fitted coupling W")):
        im = a.imshow(m, cmap="viridis", vmin=0, vmax=vmax)
        a.set_title(t)
        fig.colorbar(im, ax=a, fraction=0.046, pad=0.04)
    ax[2].scatter(_tri(sc), _tri(W), s=3, alpha=0.4)
    ax[2].plot([0, vmax], [0, vmax], "k--", lw=0.8)
    ax[2].set_xlabel("SC")
    ax[2].set_ylabel("fitted W")
    return _save(fig, path, title)


def plot_bold(emp, sim, path, *, regions=(0, 1, 2, 3), title=""):
    """A few regions' BOLD (``[T, N]``), empirical (as fitted: scaled) vs simulated, z-scored."""
    plt = _plt()
    emp, sim = np.asarray(emp), np.asarray(sim)
    regions = [r for r in regions if r < emp.shape[1]]
    fig, axes = plt.subplots(len(regions), 1, figsize=(10, 1.6 * len(regions)), squeeze=False, sharex=True)

    def z(x):
        return (x - x.mean()) / (x.std() + 1e-12)

    for a, r in zip(axes[:, 0], regions):
        a.plot(z(emp[:, r]), lw=0.7, label="empirical")
        a.plot(z(sim[:, r]), lw=0.7, label="simulated")
        a.set_ylabel(f"region {r}")
    axes[0, 0].legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("frame")
    return _save(fig, path, title)


def plot_recovery(truth: dict, estimates: dict, path, *, test_r=None, starts: dict | None = None,
                  truth_test_r=None, title=""):
    """Recovered vs true values: one panel per quantity (parameters, and derived quantities given
    the same way), one column per start (its start value open when given, the estimate filled),
    the truth dashed with a +-10% band; and the test FC r per start (with the true parameters'
    test r when given). Panels wrap at 5 per row."""
    plt = _plt()
    names = [n for n in truth if n in estimates]
    panels = len(names) + (test_r is not None)
    cols = min(panels, 5)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    axes = axes.ravel()
    for a in axes[panels:]:
        a.set_visible(False)
    for a, n in zip(axes, names):
        est = np.asarray(estimates[n], dtype=float)
        est = est.mean(-1) if est.ndim == 2 else est
        x = np.arange(len(est))
        t = float(truth[n])
        a.axhspan(0.9 * t, 1.1 * t, color="0.85", label="true +-10%")
        a.axhline(t, color="k", ls="--", lw=1, label="true")
        if starts is not None and n in starts:
            st = np.asarray(starts[n], dtype=float)
            a.scatter(x, st, facecolors="none", edgecolors="C1", label="start")
            for xi, s0, e in zip(x, st, est):
                a.annotate("", (xi, e), (xi, s0), arrowprops=dict(arrowstyle="->", color="C1", lw=0.7))
        a.scatter(x, est, color="C0", zorder=3, label="recovered")
        med = float(np.median(est))
        a.set_title(f"{n}: median {med:.3g} ({100 * (med / t - 1):+.1f}%)", fontsize=9)
        a.set_xlabel("start")
    axes[0].legend(fontsize=7)
    if test_r is not None:
        a = axes[len(names)]
        a.bar(np.arange(len(test_r)), np.asarray(test_r))
        if truth_test_r is not None:
            a.axhline(float(truth_test_r), color="k", ls="--", lw=1, label=f"true parameters {truth_test_r:.3f}")
            a.legend(fontsize=7, loc="lower right")
        lo = min(0.0, float(np.min(test_r)))
        a.set_ylim(lo if lo < 0 else max(0.0, float(np.min(test_r)) - 0.2), 1)
        a.set_title(f"test FC r (median {float(np.median(test_r)):.3f})", fontsize=9)
        a.set_xlabel("start")
    return _save(fig, path, title)


def plot_landscape(scans: dict, planes: dict, path, *, title=""):
    """1-D scans of an objective (mean over noise realisations, +-1 sd band; its terms dashed)
    along each parameter around the truth, and 2-D scans as heat maps (log10 of the objective
    minus its minimum + 1; red +: the truth, white x: the minimum)."""
    plt = _plt()
    n1, n2 = len(scans), len(planes)
    fig, axes = plt.subplots(1, n1 + n2, figsize=(3.3 * (n1 + n2), 3.3), squeeze=False)
    axes = axes.ravel()
    for a, (n, sc) in zip(axes, scans.items()):
        rel = 100 * np.asarray(sc["rel"])
        tot, sd = np.asarray(sc["total"]), np.asarray(sc["total_sd"])
        a.fill_between(rel, tot - sd, tot + sd, color="C0", alpha=0.25)
        a.plot(rel, tot, color="C0", lw=1.5, label="total")
        for i, (k, v) in enumerate(sc.get("terms", {}).items()):
            a.plot(rel, v, ls="--", lw=0.8, color=f"C{i + 1}", label=k)
        a.axvline(0, color="k", lw=0.6)
        a.axvspan(-10, 10, color="0.9", zorder=0)
        a.set_yscale("log")
        a.set_title(f"{n} (argmin {100 * sc['argmin_rel']:+.0f}%)", fontsize=9)
        a.set_xlabel(f"{n}: % from truth")
    if n1:
        axes[0].legend(fontsize=6)
    for a, (key, pl) in zip(axes[n1:], planes.items()):
        rx, ry = 100 * np.asarray(pl["rel_x"]), 100 * np.asarray(pl["rel_y"])
        z = np.asarray(pl["total"])
        im = a.imshow(np.log10(z - z.min() + 1).T, origin="lower", extent=[rx[0], rx[-1], ry[0], ry[-1]],
                      aspect="auto", cmap="viridis")
        i, j = np.unravel_index(np.argmin(z), z.shape)
        a.plot(rx[i], ry[j], "wx", ms=8)
        a.plot(0, 0, "r+", ms=10)
        a.set_xlabel(f"{pl['x']}: % from truth")
        a.set_ylabel(f"{pl['y']}: % from truth")
        a.set_title("log10(L - min L + 1)", fontsize=9)
        fig.colorbar(im, ax=a, fraction=0.046, pad=0.04)
    return _save(fig, path, title)


def plot_profiles(profiles: dict, truth: dict, path, *, title=""):
    """Profile of the objective along each profiled parameter (the others re-fitted), and the
    re-fitted values of the others relative to their truth."""
    plt = _plt()
    n = len(profiles)
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 6), squeeze=False)
    for j, (name, pr) in enumerate(profiles.items()):
        rel = 100 * np.asarray(pr["rel"])
        y, sd = np.asarray(pr["profile"]), np.asarray(pr["profile_sd"])
        a = axes[0, j]
        a.errorbar(rel, y, yerr=sd, marker="o", capsize=3)
        a.axvspan(-10, 10, color="0.9", zorder=0)
        a.axvline(0, color="k", lw=0.6)
        a.set_title(f"profile over {name} (others re-fitted)", fontsize=9)
        a.set_xlabel(f"{name}: % from truth")
        a.set_ylabel("objective at the optimum of the others")
        a = axes[1, j]
        for k, v in pr["others"].items():
            a.plot(rel, 100 * (np.asarray(v) / float(truth[k]) - 1), marker=".", label=k)
        a.axhline(0, color="k", lw=0.6)
        a.set_xlabel(f"{name}: % from truth")
        a.set_ylabel("re-fitted: % from truth")
        a.legend(fontsize=7)
    return _save(fig, path, title)


def plot_result(result, out_dir, *, b=None, truth=None, emp_bold=None, prefix="") -> list:
    """The standard figures of a fit into ``out_dir``; returns their paths. ``b`` selects the
    model shown in the matrix plots (default: the best test r)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    b = result.best() if b is None else b
    paths = []
    sim_fc, label = (result.test_fc, "test") if result.test_fc is not None else (result.train_fc, "train")
    if sim_fc is not None:
        paths.append(plot_fc(result.emp_fc[b], sim_fc[b], out / f"{prefix}fc.png", sim_label=f"simulated ({label})",
                             title=f"model {b}"))
    paths.append(plot_losses(result.history, out / f"{prefix}loss.png"))
    paths.append(plot_params(result.history, out / f"{prefix}params.png", truth=truth))
    if result.gains is not None:
        sc = result.sc if result.sc.ndim == 2 else result.sc[b]
        paths.append(plot_sc(sc, result.W[b], out / f"{prefix}sc.png", title=f"model {b}"))
    sim_bold = result.test_bold if result.test_bold is not None else result.train_bold
    if emp_bold is not None and sim_bold is not None:
        T = min(len(emp_bold), sim_bold.shape[1])
        paths.append(plot_bold(np.asarray(emp_bold)[:T], sim_bold[b][:T], out / f"{prefix}bold.png"))
    return paths


__all__ = ["plot_fc", "plot_losses", "plot_params", "plot_sc", "plot_bold", "plot_recovery", "plot_landscape",
           "plot_profiles", "plot_result"]
