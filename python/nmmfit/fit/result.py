"""The result of :func:`nmmfit.fit`: histories, fitted values, simulated BOLD and FC, scores.

Saved as two files in a directory: ``result.json`` (configuration, fitted values, scores, wall
time: human-readable) and ``result.npz`` (histories and arrays). ``FitResult.load(dir)`` reads
them back.
"""
from __future__ import annotations

import csv
import datetime
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RESULT_JSON = "result.json"
RESULT_NPZ = "result.npz"
FITTED_CSV = "fitted.csv"
SCORES_CSV = "scores.csv"
UNCERTAINTY_CSV = "uncertainty.csv"


def provenance() -> dict:
    """Where a result came from: package, torch and build, platform, command line, UTC time."""
    import torch

    from .. import __version__
    from .._ext import build_info

    return dict(nmmfit=__version__, torch=torch.__version__, build=build_info(), python=platform.python_version(),
                platform=platform.platform(), command=" ".join(sys.argv),
                date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))


def _write_csv(path: Path, rows: list) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["model"])
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def _numeric_rows(v) -> int | None:
    """The length of ``v`` when it is a numeric list or array of at least one axis, else None."""
    if not isinstance(v, (list, tuple, np.ndarray)):
        return None
    try:
        a = np.asarray(v)
    except ValueError:                      # ragged nesting: not one array
        return None
    return len(a) if a.ndim >= 1 and a.dtype.kind in "biuf" else None


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


@dataclass(repr=False)
class FitResult:
    """Everything a fit produced. Arrays are numpy; B = number of models (subjects/restarts).

    Attributes:
        config: the fit settings and the model configuration (JSON-serialisable).
        fitted: name -> estimate ``[B]`` or ``[B, N]`` in natural units: the mean of the last
            ``average_last`` updates (fitted parameters) or the fixed value.
        fitted_hyper: hyper-parameter name -> ``[B]`` (same averaging).
        history: name -> array over updates: ``loss`` ``[U, B]``, ``loss.<term>`` ``[U, B]``,
            ``param.<name>`` ``[U, B]`` or ``[U, B, N]``, ``hyper.<name>`` ``[U, B]``,
            ``epoch`` ``[U]``, ``window`` ``[U]``; per epoch: ``epoch_loss`` ``[E, B]``,
            ``epoch_train_r`` ``[E, B]``, ``epoch_time`` ``[E]``.
        sc: the preprocessed SC ``[N, N]`` or ``[B, N, N]``; gains: mean raw gains ``[B, N, N]``
            (None without gains); W: the fitted coupling ``[B, N, N]`` (or the SC).
        emp_fc: empirical FC ``[B, N, N]`` over the whole run.
        train_bold, train_fc, train_r: the last epoch's simulated BOLD ``[B, T, N]``, its FC and
            the FC correlation with the empirical FC ``[B]``.
        test_bold, test_fc, test_r: the test run (fresh state, burn-in discarded) with the
            fitted values; None when the test was skipped.
        heldout_fc, heldout_r: the empirical FC of held-out data ``[B, N, N]`` (another session, or
            the other half of the run) and the FC correlation of the test run with it ``[B]``: the
            score that says whether the fit generalises. None without held-out data.
        baselines: name -> ``[B]``, scored against the held-out FC when there is one, else against
            the fitted data's: ``sc_fc`` r(SC, FC), ``group_fc`` r(group FC, FC), ``ceiling`` r(FC of
            the fitted data, held-out FC); ``subject_specific_r``: r(model FC - group FC, FC - group FC).
        wall_time: seconds for the whole call (training + test); train_time: training only.
        epochs_completed: epochs trained (including those before a resume).
        uncertainty: intervals, correlations and identified directions of the fitted global
            parameters (:class:`nmmfit.fit.uncertainty.Uncertainty`), when the fit computed them.
    """
    config: dict
    fitted: dict
    fitted_hyper: dict
    history: dict
    sc: np.ndarray
    W: np.ndarray
    emp_fc: np.ndarray
    train_bold: np.ndarray | None = None
    train_fc: np.ndarray | None = None
    train_r: np.ndarray | None = None
    test_bold: np.ndarray | None = None
    test_fc: np.ndarray | None = None
    test_r: np.ndarray | None = None
    gains: np.ndarray | None = None
    heldout_fc: np.ndarray | None = None
    heldout_r: np.ndarray | None = None
    subject_specific_r: np.ndarray | None = None
    baselines: dict = field(default_factory=dict)
    wall_time: float = 0.0
    train_time: float = 0.0
    epochs_completed: int = 0
    extra: dict = field(default_factory=dict)
    uncertainty: object = None

    # ---------------------------------------------------------------- presentation
    SCORE_LABELS = {
        "train_r": "train FC r (in-sample: last epoch vs fitted data)",
        "test_r": "in-sample FC r (fresh run vs fitted data)",
        "heldout_r": "held-out FC r (fresh run vs held-out data)",
        "sc_fc": "baseline r(SC, FC)",
        "group_fc": "baseline r(group FC, FC)",
        "ceiling": "ceiling r(fitted FC, held-out FC)",
        "subject_specific_r": "subject-specific r (model - group vs FC - group)",
    }
    """How every goodness-of-fit number is named wherever it is shown: in-sample or held-out."""

    def scores(self, b: int) -> dict:
        """Model ``b``'s goodness-of-fit numbers, label -> float, in :data:`SCORE_LABELS` order."""
        values = dict(train_r=self.train_r, test_r=self.test_r, heldout_r=self.heldout_r, **self.baselines,
                      subject_specific_r=self.subject_specific_r)
        return {label: float(np.asarray(values[k])[b]) for k, label in self.SCORE_LABELS.items()
                if values.get(k) is not None}

    def summary(self) -> str:
        lines = [f"nmmfit fit: preset {self.config.get('preset')}, mode {self.config.get('mode')}, "
                 f"B={self.config.get('B')}, N={self.config.get('N')}, {self.epochs_completed} epochs, "
                 f"wall time {self.wall_time:.1f} s"]
        for b in range(int(self.config.get("B", 1))):
            parts = [f"{name}={float(np.mean(np.asarray(v)[b])):.4g}" + ("(mean)" if np.ndim(np.asarray(v)[b]) else "")
                     for name, v in self.fitted.items()]
            lines.append(f"  [{b}] " + " ".join(parts))
            lines += [f"      {label}: {v:.3f}" for label, v in self.scores(b).items()]
            lines += ["    " + s for s in self.uncertainty_lines(b)]
        return "\n".join(lines)

    def uncertainty_lines(self, b: int) -> list:
        """Model ``b``'s intervals, identified directions and what the SC gains carry, one per line
        (empty when the fit computed no uncertainty)."""
        lines = []
        if "test_r_gains_reset" in self.extra and self.test_r is not None:
            lines.append(f"  SC gains: in-sample FC r {float(self.test_r[b]):.3f} fitted, "
                         f"{float(np.asarray(self.extra['test_r_gains_reset'])[b]):.3f} with the gains reset")
        return lines + ([] if self.uncertainty is None else self.uncertainty.summary(b).splitlines())

    def best(self, among=slice(None)) -> int:
        """Index of the model (of ``among``, a slice or index list over the B models: e.g. one
        subject's restarts) with the highest train FC r, else the lowest final loss. Chosen on the
        training fit only: the test run is an evaluation, selecting on it would bias it up."""
        idx = np.arange(int(self.config["B"]))[among].reshape(-1)
        if self.train_r is not None:
            return int(idx[np.nanargmax(np.asarray(self.train_r)[idx])])
        return int(idx[np.nanargmin(np.asarray(self.history["loss"][-1])[idx])])

    def select(self, models) -> "FitResult":
        """The models ``models`` (a slice or index list over the B models) as a result of their own:
        per-model arrays taken on their model axis (axis 0; axis 1 of the histories over updates or
        epochs, whose 1-D entries such as ``epoch`` are shared), a shared SC ``[N, N]`` kept, and in
        ``extra`` every numeric list or array of length B (per-model values, e.g. a stage's train FC r
        ``[B]``, nested in dicts and lists) taken too. How a batch of several subjects is split into
        one result per subject."""
        B = int(self.config["B"])
        idx = np.arange(B)[models].reshape(-1)

        def take(v, axis=0):
            return None if v is None else np.take(np.asarray(v), idx, axis=axis)

        def per_model(v):
            if isinstance(v, dict):
                return {k: per_model(x) for k, x in v.items()}
            if _numeric_rows(v) == B:
                return take(v).tolist() if isinstance(v, (list, tuple)) else take(v)
            return [per_model(x) for x in v] if isinstance(v, (list, tuple)) else v

        config = json.loads(json.dumps(_jsonable(self.config)))
        config["B"] = len(idx)
        if isinstance(config.get("model"), dict) and "batch" in config["model"]:
            config["model"]["batch"] = len(idx)
        arrays = {k: take(getattr(self, k)) for k in self._ARRAYS if k != "sc"}
        return FitResult(config=config, fitted={k: take(v) for k, v in self.fitted.items()},
                         fitted_hyper={k: take(v) for k, v in self.fitted_hyper.items()},
                         history={k: take(v, 1) if np.ndim(v) >= 2 else np.asarray(v) for k, v in self.history.items()},
                         sc=take(self.sc) if np.ndim(self.sc) == 3 else self.sc,
                         baselines={k: take(v) for k, v in self.baselines.items()}, wall_time=self.wall_time,
                         train_time=self.train_time, epochs_completed=self.epochs_completed,
                         extra=per_model(self.extra), **arrays)

    # ---------------------------------------------------------------- persistence
    _ARRAYS = ("sc", "W", "emp_fc", "train_bold", "train_fc", "train_r", "test_bold", "test_fc",
               "test_r", "gains", "heldout_fc", "heldout_r", "subject_specific_r")

    def __repr__(self) -> str:
        B = self.config.get("B")
        scores = " ".join(f"{k}={np.round(np.asarray(v), 3).tolist()}" for k, v in
                          (("train_r", self.train_r), ("test_r", self.test_r), ("heldout_r", self.heldout_r))
                          if v is not None)
        return f"FitResult(B={B}, epochs={self.epochs_completed}, {scores}, wall_time={self.wall_time:.1f}s)"

    def save(self, out_dir) -> Path:
        """Write ``result.json`` and ``result.npz`` into ``out_dir`` (created if needed)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        meta = dict(config=self.config, fitted=self.fitted, fitted_hyper=self.fitted_hyper,
                    train_r=self.train_r, test_r=self.test_r, heldout_r=self.heldout_r, baselines=self.baselines,
                    wall_time=self.wall_time,
                    train_time=self.train_time, epochs_completed=self.epochs_completed,
                    extra=self.extra, uncertainty=None if self.uncertainty is None else self.uncertainty.to_dict(),
                    provenance=self.extra.get("provenance") or provenance(), format=1)
        arrays = {f"history/{k}": np.asarray(v) for k, v in self.history.items()}
        arrays.update({f"fitted/{k}": np.asarray(v) for k, v in self.fitted.items()})
        arrays.update({f"fitted_hyper/{k}": np.asarray(v) for k, v in self.fitted_hyper.items()})
        arrays.update({f"baselines/{k}": np.asarray(v) for k, v in self.baselines.items()})
        for k in self._ARRAYS:
            v = getattr(self, k)
            if v is not None:
                arrays[k] = np.asarray(v)
        tmp_npz = out / (RESULT_NPZ + ".tmp.npz")
        np.savez_compressed(tmp_npz, **arrays)
        os.replace(tmp_npz, out / RESULT_NPZ)
        tmp_json = out / (RESULT_JSON + ".tmp")
        tmp_json.write_text(json.dumps(_jsonable(meta), indent=2))
        os.replace(tmp_json, out / RESULT_JSON)
        _write_csv(out / FITTED_CSV, self.fitted_table())
        _write_csv(out / SCORES_CSV, self.scores_table())
        if self.uncertainty is not None:
            _write_csv(out / UNCERTAINTY_CSV, self.uncertainty.table())
        return out

    def _labels(self) -> list:
        N = int(self.config.get("N", np.shape(self.emp_fc)[-1]))
        labels = self.extra.get("labels")
        return list(labels) if labels is not None and len(labels) == N else [f"region{i}" for i in range(N)]

    def fitted_table(self) -> list:
        """Tidy rows (one per model, parameter and region; ``region`` empty for a global value):
        ``model, parameter, region, label, value``, ready for ``pandas.DataFrame(rows)`` or CSV
        (``fitted.csv`` beside the result)."""
        labels, rows = self._labels(), []
        for name, v in self.fitted.items():
            v = np.asarray(v, dtype=float)
            for b in range(v.shape[0]):
                if v.ndim == 1:
                    rows.append(dict(model=b, parameter=name, region="", label="", value=float(v[b])))
                else:
                    rows += [dict(model=b, parameter=name, region=i, label=labels[i], value=float(x))
                             for i, x in enumerate(v[b])]
        return rows

    def scores_table(self) -> list:
        """Tidy rows ``model, score, kind, value`` (kind: in-sample, held-out, baseline)
        (``scores.csv`` beside the result)."""
        kind = {"train_r": "in-sample", "test_r": "in-sample", "heldout_r": "held-out"}
        keys = {label: k for k, label in self.SCORE_LABELS.items()}
        return [dict(model=b, score=keys[label], kind=kind.get(keys[label], "baseline"), label=label, value=v)
                for b in range(int(self.config.get("B", 1))) for label, v in self.scores(b).items()]

    @classmethod
    def load(cls, out_dir) -> "FitResult":
        """Read a result written by :meth:`save`."""
        out = Path(out_dir)
        if not (out / RESULT_JSON).exists() or not (out / RESULT_NPZ).exists():
            raise FileNotFoundError(f"FitResult.load: expected {RESULT_JSON} and {RESULT_NPZ} in {out}")
        meta = json.loads((out / RESULT_JSON).read_text())
        with np.load(out / RESULT_NPZ) as z:
            arrays = {k: z[k] for k in z.files}
        hist = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("history/")}
        fitted = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("fitted/")}
        hyper = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("fitted_hyper/")}
        baselines = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("baselines/")}
        kw = {k: arrays.get(k) for k in cls._ARRAYS}
        if meta.get("uncertainty") is not None:
            from .uncertainty import Uncertainty

            kw["uncertainty"] = Uncertainty.from_dict(meta["uncertainty"])
        return cls(config=meta["config"], fitted=fitted, fitted_hyper=hyper, history=hist,
                   wall_time=meta["wall_time"], train_time=meta["train_time"],
                   epochs_completed=meta["epochs_completed"], extra=meta.get("extra", {}), baselines=baselines, **kw)


__all__ = ["FitResult"]
