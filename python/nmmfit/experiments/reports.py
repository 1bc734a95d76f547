"""Typed reports of the experiments: each a dataclass with ``summary()`` (what the CLI prints) and
``save()`` (``report.json``, the same fields). Nothing formats a report by key elsewhere."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._files import atomic_write_text


def _r(rs) -> str:
    return "n/a" if rs is None else ", ".join(f"{r:.3f}" for r in rs)


def _values(fitted: dict) -> str:
    return " ".join(f"{k}={float(np.mean(v)):.4g}" + ("(mean)" if np.ndim(v) else "") for k, v in fitted.items())


def _score_lines(scores: dict) -> list:
    return [f"  {label}: {v:.3f}" for label, v in scores.items()]


def stage_lines(stages: list, start: dict, b: int, indent: str = "") -> list:
    """For model ``b`` of a staged fit (:func:`nmmfit.fit.fit_stages`'s ``extra``): one line per stage
    (its target, shrinkage weight, train FC r, time) and each fitted value's path from its start
    through the stages, so that what moved and what stayed is visible."""
    if len(stages) < 2:
        return []
    lines = []
    for s in stages:
        a = "" if s["shrinkage"] is None else f", shrinkage toward the group a={s['shrinkage'][b]:.2f}"
        pen = f", gains kept near the previous stage's (weight {s['gain_penalty']:g})" if s["gain_penalty"] else ""
        r = "" if s["train_r"] is None else f"; train FC r {s['train_r'][b]:.3f}"
        lines.append(f"{indent}stage {s['name']}: {s['epochs']} epochs, target {s['target']}{a}{pen}{r} "
                     f"({s['wall_time']:.0f} s)")
    for name, v0 in start.items():
        path = " -> ".join([f"{v0[b]:.4g} (start)"] + [f"{s['fitted'][name][b]:.4g} ({s['name']})" for s in stages])
        lines.append(f"{indent}  {name}: {path}")
    return lines


class Report:
    """Shared persistence: ``to_dict()`` (JSON-ready) and ``save(path)``."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path) -> Path:
        """Write ``report.json`` atomically: the old file or the complete new one, never a partial one."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2, default=lambda o: np.asarray(o).tolist()))

    def summary(self) -> str:  # pragma: no cover - every report defines it
        raise NotImplementedError


@dataclass
class SubjectFitReport(Report):
    """One subject fitted with ``restarts`` models batched (``nmmfit fit``, ``nmmfit demo``)."""
    command: str
    dataset: str
    subject: str
    N: int
    frames: int
    restarts: int
    epochs: int
    mode: str
    scheme: str
    train_r: list | None
    test_r: list | None
    heldout_r: list | None
    best: int
    protocol: str
    scores: dict
    fitted: dict
    wall_time: float
    fit_wall_time: float
    warnings: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    out: str = ""
    stages: list = field(default_factory=list)
    start: dict = field(default_factory=dict)
    uncertainty: list = field(default_factory=list)

    def summary(self) -> str:
        b = self.best
        lines = [f"{self.command}: {self.dataset} subject {self.subject} ({self.N} regions, {self.frames} frames "
                 f"fitted), {self.scheme}, {self.epochs} epochs ({self.mode}), {self.restarts} restart(s) batched",
                 f"protocol: {self.protocol}",
                 f"train FC r (in-sample) per restart: {_r(self.train_r)}"
                 + (f"  (best by train FC r: restart {b})" if self.restarts > 1 else ""),
                 f"held-out FC r per restart: {_r(self.heldout_r)}",
                 f"restart {b}:", *_score_lines(self.scores), *stage_lines(self.stages, self.start, b, "  "),
                 f"fitted (restart {b}): {_values(self.fitted)}", *[f"warning: {w}" for w in self.warnings],
                 *([f"what the data determine (restart {b}):"] + self.uncertainty if self.uncertainty else []),
                  f"wall time: {self.wall_time:.1f} s (fit + test {self.fit_wall_time:.1f} s); results in {self.out}"]
        return "\n".join(lines)


@dataclass
class CohortFitReport(Report):
    """Several subjects of a dataset batched in one model (``nmmfit fit --subjects``)."""
    dataset: str
    subjects: list
    restarts: int
    B: int
    N: int
    frames: int
    epochs: int
    mode: str
    protocol: str
    per_subject: list
    train_r: list | None
    test_r: list | None
    wall_time: float
    fit_wall_time: float
    train_time: float
    wall_time_per_subject: float
    figures: list = field(default_factory=list)
    out: str = ""
    stages: list = field(default_factory=list)
    start: dict = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"fit: {self.dataset} subjects {', '.join(self.subjects)} batched (B={self.B}: {self.restarts} "
                 f"restart(s) each; {self.N} regions, {self.frames} frames), {self.epochs} epochs ({self.mode})",
                 f"protocol: {self.protocol}; per subject its best restart by train FC r"]
        for s, row in enumerate(self.per_subject):
            lines.append(f"  subject {row['subject']} (restart {row['best_restart']}): {_values(row['fitted'])}")
            lines += ["  " + x for x in _score_lines(row["scores"])] + [f"    warning: {w}" for w in row["warnings"]]
            lines += stage_lines(self.stages, self.start, s * self.restarts + row["best_restart"], "    ")
        lines.append(f"wall time: {self.wall_time:.1f} s ({self.wall_time_per_subject:.1f} s per subject); "
                     f"results in {self.out}")
        return "\n".join(lines)


@dataclass
class SimulationReport(Report):
    """A plain simulation (``nmmfit simulate``)."""
    out: str
    N: int
    frames: int
    preset: str
    params: dict
    seed: int
    wall_time: float
    fc_r_vs_empirical: float | None = None
    figures: list = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"simulated {self.frames} frames x {self.N} regions ({self.preset}) in {self.wall_time:.1f} s -> {self.out}",
                 "parameters: " + " ".join(f"{k}={v:.4g}" for k, v in self.params.items())]
        if self.fc_r_vs_empirical is not None:
            lines.append(f"FC r vs the dataset's empirical FC: {self.fc_r_vs_empirical:.3f}")
        return "\n".join(lines)


@dataclass
class RecoveryReport(Report):
    """The synthetic experiment (``nmmfit recover``): recovered vs true per start."""
    dataset: str
    N: int
    frames: int
    starts: int
    start_scheme: str
    spread: float | None
    objective: str
    optimizer: str
    mode: str
    epochs: int
    gains: bool
    fitted: list
    fixed_at_truth: list
    parameters: dict
    all_within_10pct: bool
    derived: dict
    coupling: dict | None
    train_r: list | None
    test_r: list | None
    median_test_r: float | None
    truth_test_r: float
    test_windows: int
    wall_time: float
    fit_wall_time: float
    scan: dict | None = None
    profile: dict | None = None
    figures: list = field(default_factory=list)
    out: str = ""
    identifiable_within_10pct: bool | None = None
    intervals: dict | None = None
    test_r_ratio: float | None = None
    test_r_bar: bool | None = None
    test_r_share: float | None = None

    def _header(self) -> str:
        spread = f" +-{100 * self.spread:.0f}%" if self.spread else ""
        return (f"recover: synthetic BOLD on {self.dataset} ({self.N} regions, {self.frames} frames), {self.starts} "
                f"starts ({self.start_scheme}{spread}) batched; {self.objective} objective, {self.optimizer} "
                f"({self.mode}), {self.epochs} iterations; gains {'on' if self.gains else 'off'}; fixed at the "
                f"truth: {', '.join(self.fixed_at_truth)}")

    def _parameter_lines(self) -> list:
        lines = [f"{'param':9s} {'true':>8s}  recovered (start) per start          median   rel.err  median|err|  <=10%"]
        for n, row in self.parameters.items():
            per = " ".join(f"{r:.4g}({s:.3g})" for r, s in zip(row["recovered"], row["start"]))
            lines.append(f"{n:9s} {row['true']:8.4g}  {per}  {row['median']:.4g} {100 * row['median_rel_error']:+6.1f}% "
                         f"{100 * row['median_abs_rel_error']:6.1f}%   {'yes' if row['within_10pct'] else 'NO'}")
        lines.append("relative errors per start (%): " + "; ".join(
            f"{n} " + " ".join(f"{100 * e:+.1f}" for e in row["rel_error"]) for n, row in self.parameters.items()))
        for n, row in self.derived.items():
            lines.append(f"{n:11s} {row['true']:8.4g}  recovered " + " ".join(f"{r:.4g}" for r in row["recovered"])
                         + f"  median {row['median']:.4g} ({100 * row['median_rel_error']:+.1f}%, median |err| "
                           f"{100 * row['median_abs_rel_error']:.1f}%)")
        return lines

    def _diagnostic_lines(self) -> list:
        lines = []
        if self.coupling:
            c = self.coupling
            lines.append("fitted vs true coupling W (SC gains): r " + ", ".join(f"{v:.3f}" for v in c["r"])
                         + "; relative error " + ", ".join(f"{100 * v:.1f}%" for v in c["rel_error"]))
            lines.append(f"gains experiment (fitted from the perturbed SC, R^2 {c['start_r2']:.3f} with the true one): "
                         f"recovered vs true SC R^2 {_r(c['r2'])} (paper {c['paper_r2']['sc']}); simulated vs "
                         f"synthetic FC R^2 {_r(c['fc_r2'])} (paper {c['paper_r2']['fc']})")
        lines += self._interval_lines()
        lines.append(f"in-sample FC r (fresh run vs the synthetic data): {_r(self.test_r)} (median {self.median_test_r:.3f}); the true parameters' "
                     f"test r on the same protocol: {self.truth_test_r:.3f}")
        if self.scan:
            lines.append("objective scans (others at the truth), argmin: " + ", ".join(
                f"{n} {100 * sc['argmin_rel']:+.0f}%" for n, sc in self.scan["scans"].items()))
        for n, pr in (self.profile or {}).get("profiles", {}).items():
            lines.append(f"profile {n} (others re-fitted), objective at -30%..+30%: "
                         + " ".join(f"{v:.3f}" for v in pr["profile"]))
        return lines

    def _interval_lines(self) -> list:
        if not self.intervals:
            return []
        iv, pct = self.intervals, f"{100 * self.intervals['level']:.0f}%"
        lines = [f"{pct} intervals per start (truth covered?):"]
        for n, row in iv["parameters"].items():
            lines.append(f"  {n:9s} true {row['true']:.4g}: " + " ".join(
                f"[{lo:.4g}, {hi:.4g}]{'' if c else '(MISSED)'}" for lo, hi, c in zip(row["lower"], row["upper"],
                                                                                      row["covers"]))
                + f"  covered by {100 * row['coverage']:.0f}% of starts")
            if "profile" in row:
                pr = row["profile"]
                lines.append(f"  {'':9s} profile-likelihood: " + " ".join(
                    f"[{lo:.4g}, {hi:.4g}]{'' if c else '(MISSED)'}" for lo, hi, c in zip(pr["lower"], pr["upper"],
                                                                                          pr["covers"]))
                    + f"  covered by {100 * pr['coverage']:.0f}% of starts")
        lines.append(f"what the data determine (start {iv['best_start']}, lowest loss; the truth's offset along "
                     f"each direction, relative): " + "; ".join(
            f"{d['label']} +-{100 * d['half_width']:.3g}% (truth {100 * d['error']:+.2g}%"
            f"{'' if d['covers'] else ', MISSED'})" for d in iv["directions"]))
        return lines

    def _test_line(self) -> str:
        if self.test_r is None:
            return "test FC r against the true parameters': not measured (no test run)"
        if self.test_r_ratio is None:
            return (f"test FC r against the true parameters': no verdict (their own test r {self.truth_test_r:.3f}: "
                    f"the FC has no pattern the model reproduces on this connectome)")
        return (f"median test FC r {self.test_r_ratio:.3f} x the true parameters' (bar >= {self.test_r_share:g}): "
                f"{'yes' if self.test_r_bar else 'NO'}")

    def summary(self) -> str:
        return "\n".join([self._header(), *self._parameter_lines(), *self._diagnostic_lines(),
                          f"identifiable g, g_EE, sigma_out within 10% (median estimate and median |error|): "
                          f"{'yes' if self.identifiable_within_10pct else 'NO'}",
                          self._test_line(),
                          f"all of g, g_EE, g_IE, g_EI within 10% (median estimate and median |error|): "
                          f"{'yes' if self.all_within_10pct else 'NO'}",
                          f"wall time: {self.wall_time:.1f} s (fit {self.fit_wall_time:.1f} s); results and figures "
                          f"in {self.out}"])


__all__ = ["Report", "SubjectFitReport", "CohortFitReport", "SimulationReport", "RecoveryReport"]
