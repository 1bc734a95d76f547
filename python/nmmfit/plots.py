"""Figures of a fit (matplotlib, Agg backend: files only, no display needed).

``plot_result(result, out_dir)`` writes the standard set for a :class:`nmmfit.FitResult`:
``fc.png`` (empirical vs simulated FC and their scatter), ``loss.png`` (loss terms and train FC r
over updates/epochs), ``params.png`` (parameter trajectories), ``sc.png`` (original SC vs fitted
coupling, when gains were fitted) and ``bold.png`` (a few regions, empirical vs simulated) and ``uncertainty.png`` (intervals and the
parameters' correlations, when the fit computed them).
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


def _fc_panel(fig, a, m, title):
    cmap = __import__("matplotlib").colormaps["RdBu_r"].copy()
    cmap.set_bad("0.85")                               # the diagonal (undefined) is drawn grey, not as 0
    im = a.imshow(np.ma.masked_invalid(_offdiag(m)), cmap=cmap, vmin=-1, vmax=1)
    a.set_title(title)
    a.set_xlabel("region")
    a.set_ylabel("region")
    fig.colorbar(im, ax=a, fraction=0.046, pad=0.04, label="Pearson r")


def plot_fc(emp_fc, sim_fc, path, *, title="", sim_label="simulated", heldout_fc=None, emp_label="empirical"):
    """Empirical (and held-out) FC beside the simulated FC, and scatters of their lower triangles
    with r in-sample and held-out (``emp_fc=None``: the simulated FC alone)."""
    plt = _plt()
    if emp_fc is None:
        fig, a = plt.subplots(1, 1, figsize=(5, 4))
        _fc_panel(fig, a, sim_fc, f"{sim_label} FC" + (f" - {title}" if title else ""))
        return _save(fig, path)
    mats = [(emp_fc, f"{emp_label} FC (fitted)")] + ([(heldout_fc, f"{emp_label} FC (held out)")]
                                                     if heldout_fc is not None else []) + [(sim_fc, f"{sim_label} FC")]
    fig, ax = plt.subplots(1, len(mats) + 1, figsize=(4.4 * (len(mats) + 1), 4))
    for a, (m, t) in zip(ax, mats):
        _fc_panel(fig, a, np.asarray(m), t)
    sim = _tri(np.asarray(sim_fc))
    for m, label, marker in ((emp_fc, "fitted data (in-sample)", "o"), (heldout_fc, "held-out data", "x")):
        if m is not None:
            r = np.corrcoef(_tri(np.asarray(m)), sim)[0, 1]
            ax[-1].scatter(_tri(np.asarray(m)), sim, s=3, alpha=0.35, marker=marker, label=f"{label}: r = {r:.3f}")
    ax[-1].set_xlabel(f"{emp_label} FC (Pearson r)")
    ax[-1].set_ylabel(f"{sim_label} FC (Pearson r)")
    ax[-1].legend(fontsize=7, loc="upper left")
    return _save(fig, path, title)


def plot_regional(fitted: dict, path, *, b: int = 0, labels=None, title=""):
    """Every regional parameter of model ``b`` per region (bars, in region order) with its mean,
    and sorted (to show the spread); ``labels`` names the regions."""
    plt = _plt()
    names = [k for k, v in fitted.items() if np.ndim(v) == 2]
    if not names:
        return None
    fig, axes = plt.subplots(len(names), 2, figsize=(14, 2.8 * len(names)), squeeze=False,
                             gridspec_kw=dict(width_ratios=(3, 1)))
    for (a, s), name in zip(axes, names):
        v = np.asarray(fitted[name], dtype=float)[b]
        a.bar(np.arange(len(v)), v, width=0.8)
        a.axhline(v.mean(), color="k", ls="--", lw=1, label=f"mean {v.mean():.4g}")
        a.set_ylabel(name)
        a.legend(fontsize=7, loc="upper right")
        if labels is not None and len(labels) == len(v) and len(v) <= 120:
            a.set_xticks(np.arange(len(v)), labels, rotation=90, fontsize=5)
        else:
            a.set_xlabel("region")
        s.plot(np.sort(v), marker=".", lw=0.8)
        s.set_xlabel("rank")
        s.set_title(f"{name}, sorted")
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
        lines = a.plot(v[:, sel], lw=0.8)
        a.set_title(key)
        a.set_xlabel("update")
        a.set_ylabel("loss (weighted term)" if key != "loss" else "total loss")
    if v.shape[1] > 1 and b is None:
        axes[0].legend(lines, [f"model {i}" for i in range(v.shape[1])], fontsize=6, loc="upper right")
    a = axes[1 + len(terms)]
    r = np.asarray(history.get("epoch_train_r", np.zeros((0, 1))))
    if len(r):
        a.plot(np.arange(1, len(r) + 1), r[:, sel], marker="o")
    a.set_title("train FC r per epoch (in-sample)")
    a.set_xlabel("epoch")
    a.set_ylabel("FC r")
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
        regional = v.ndim == 3
        if regional:
            v = v.mean(-1)
        a.plot(v[:, sel], lw=0.8)
        name = key.split(".", 1)[-1]
        if truth and name in truth:
            a.axhline(float(np.mean(truth[name])), color="k", ls="--", lw=1, label="truth")
            a.legend(fontsize=6)
        kind = "fitted parameter" if key.startswith("param.") else "loss hyper-parameter (unconstrained)"
        a.set_title(f"{name}" + (" (mean over regions)" if regional else ""), fontsize=9)
        a.set_ylabel(kind, fontsize=7)
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
        a.set_ylabel(f"region {r}\n(z-scored)")
    axes[0, 0].legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("frame (one per TR)")
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


def _profile_bounds(unc, b: int) -> tuple:
    """Model b's profile-likelihood interval per parameter (NaN where it was not profiled)."""
    lo, hi = [], []
    for n in unc.names:
        p = unc.profile.get(n, {})
        k = p["models"].index(b) if b in p.get("models", []) else None
        lo.append(np.nan if k is None else p["lower"][k])
        hi.append(np.nan if k is None else p["upper"][k])
    return lo, hi


def plot_uncertainty(unc, path, *, b: int = 0, truth: dict | None = None, title=""):
    """Model ``b``'s intervals (an :class:`nmmfit.fit.uncertainty.Uncertainty`) relative to each
    estimate, on a log axis (profile intervals beside the Laplace ones, the truth when known;
    an unbounded side drawn as an arrow to the edge), and the parameters' correlation matrix."""
    plt = _plt()
    fig, (a, c) = plt.subplots(1, 2, figsize=(11, 4.2))
    est = unc.estimate[b]
    y = np.arange(len(unc.names))
    edge = 20.0
    for k, (lo, hi, color, dy, label) in enumerate(
            [(unc.lower[b], unc.upper[b], "C0", 0.0, f"Laplace {100 * unc.level:.0f}%")]
            + [(*_profile_bounds(unc, b), "C1", 0.2, "profile")]):
        rl = np.clip(np.asarray(lo, dtype=float) / est, 1 / edge, edge)
        rh = np.clip(np.asarray(hi, dtype=float) / est, 1 / edge, edge)
        ok = np.isfinite(rl) & np.isfinite(rh)
        a.hlines(y[ok] + dy, rl[ok], rh[ok], color=color, lw=3, label=label)
    a.plot(np.ones_like(y), y, "ko", label="estimate")
    if truth is not None:
        a.plot([truth[n] / e for n, e in zip(unc.names, est)], y, "rx", ms=9, label="truth")
    a.set_xscale("log")
    a.set_xlim(1 / edge, edge)
    a.set_yticks(y, unc.names)
    a.set_xlabel("value / estimate (clipped at 1/20 and 20: unbounded)")
    a.legend(fontsize=8)
    im = c.imshow(unc.correlation[b], vmin=-1, vmax=1, cmap="RdBu_r")
    c.set_xticks(y, unc.names, rotation=45)
    c.set_yticks(y, unc.names)
    c.set_title("correlation (blank: unbounded)", fontsize=9)
    fig.colorbar(im, ax=c)
    return _save(fig, path, title)


def plot_result(result, out_dir, *, b=None, truth=None, emp_bold=None, prefix="") -> list:
    """The standard figures of a fit into ``out_dir``; returns their paths. ``b`` selects the
    model shown in the matrix plots (default: the best test r)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    b = result.best() if b is None else b
    paths = []
    sim_fc, label = (result.test_fc, "fresh run") if result.test_fc is not None else (result.train_fc, "last epoch")
    emp_label = "synthetic" if truth is not None else "empirical"
    if sim_fc is not None:
        held = None if result.heldout_fc is None else result.heldout_fc[b]
        paths.append(plot_fc(result.emp_fc[b], sim_fc[b], out / f"{prefix}fc.png", sim_label=f"simulated ({label})",
                             title=f"model {b}", heldout_fc=held, emp_label=emp_label))
    regional = plot_regional(result.fitted, out / f"{prefix}regional.png", b=b, labels=result.extra.get("labels"),
                             title=f"model {b}: regional parameters")
    paths += [regional] if regional is not None else []
    paths.append(plot_losses(result.history, out / f"{prefix}loss.png"))
    paths.append(plot_params(result.history, out / f"{prefix}params.png", truth=truth))
    if result.gains is not None:
        sc = result.sc if result.sc.ndim == 2 else result.sc[b]
        paths.append(plot_sc(sc, result.W[b], out / f"{prefix}sc.png", title=f"model {b}"))
    sim_bold = result.test_bold if result.test_bold is not None else result.train_bold
    if emp_bold is not None and sim_bold is not None:
        T = min(len(emp_bold), sim_bold.shape[1])
        paths.append(plot_bold(np.asarray(emp_bold)[:T], sim_bold[b][:T], out / f"{prefix}bold.png"))
    if result.uncertainty is not None:
        paths.append(plot_uncertainty(result.uncertainty, out / f"{prefix}uncertainty.png", b=b, truth=truth,
                                      title=f"model {b}: what the data determine"))
    return paths


__all__ = ["plot_fc", "plot_losses", "plot_params", "plot_sc", "plot_bold", "plot_recovery", "plot_landscape",
           "plot_profiles", "plot_result", "plot_regional", "plot_uncertainty"]
