"""The cohort figure: the distribution over subjects of each fitted parameter and of the FC r
scores (in-sample, held-out, baselines), from the cohort table (:meth:`.store.CohortStore.table`).

Imports: plots (matplotlib helpers), numpy."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plots import _plt, _save

SCORE_PANEL = (("train_r", "train (in-sample)"), ("test_r", "fresh run (in-sample)"),
               ("heldout_r", "held-out"), ("sc_fc", "r(SC, FC) baseline"), ("group_fc", "group FC baseline"))
"""The FC r columns shown, with what each is scored against."""

NOT_PARAMETERS = frozenset({"subject", "status", "restart", "best", "wall_time_s", "worker", "finished", "error",
                            "ceiling", "subject_specific_r", *(k for k, _ in SCORE_PANEL)})


def _column(rows: list, key: str) -> np.ndarray:
    return np.array([float(r[key]) for r in rows if r.get(key) not in (None, "")], dtype=float)


def _strip(ax, values: list, labels: list, rng) -> None:
    """A box per column of ``values`` with every subject's value as a jittered dot."""
    ax.boxplot(values, showfliers=False)
    for i, v in enumerate(values, start=1):
        ax.plot(i + rng.uniform(-0.15, 0.15, len(v)), v, "o", ms=3, alpha=0.6)
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=20, fontsize=7)


def plot_cohort(rows: list, path) -> list:
    """Write the cohort figure to ``path`` from the table ``rows`` (each subject's best restart);
    returns ``[path]``, or ``[]`` when no subject is done yet."""
    best = [r for r in rows if r.get("status") == "done" and r.get("best") in (True, "True")]
    if not best:
        return []
    params = [k for k in dict.fromkeys(c for r in best for c in r) if k not in NOT_PARAMETERS]
    params = [k for k in params if np.ptp(_column(best, k)) > 0]          # fixed values carry nothing
    scores = [(k, label) for k, label in SCORE_PANEL if len(_column(best, k))]
    plt, rng = _plt(), np.random.default_rng(0)
    fig, axes = plt.subplots(1, len(params) + 1, figsize=(2.4 * len(params) + 4.5, 3.4), squeeze=False)
    for ax, k in zip(axes[0], params):
        _strip(ax, [_column(best, k)], [k], rng)
        ax.set_title(f"fitted {k}", fontsize=9)
    ax = axes[0][-1]
    _strip(ax, [_column(best, k) for k, _ in scores], [label for _, label in scores], rng)
    ax.set_title("FC r per subject", fontsize=9)
    return [_save(fig, Path(path), title=f"cohort: {len(best)} subjects (best restart each by train FC r)")]


__all__ = ["plot_cohort"]
