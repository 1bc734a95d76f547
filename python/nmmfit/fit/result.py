"""The result of :func:`nmmfit.fit`: histories, fitted values, simulated BOLD and FC, scores.

Saved as two files in a directory: ``result.json`` (configuration, fitted values, scores, wall
time: human-readable) and ``result.npz`` (histories and arrays). ``FitResult.load(dir)`` reads
them back.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RESULT_JSON = "result.json"
RESULT_NPZ = "result.npz"


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


@dataclass
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
        wall_time: seconds for the whole call (training + test); train_time: training only.
        epochs_completed: epochs trained (including those before a resume).
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
    wall_time: float = 0.0
    train_time: float = 0.0
    epochs_completed: int = 0
    extra: dict = field(default_factory=dict)

    # ---------------------------------------------------------------- presentation
    def summary(self) -> str:
        lines = [f"nmmfit fit: preset {self.config.get('preset')}, mode {self.config.get('mode')}, "
                 f"B={self.config.get('B')}, N={self.config.get('N')}, {self.epochs_completed} epochs, "
                 f"wall time {self.wall_time:.1f} s"]
        B = int(self.config.get("B", 1))
        for b in range(B):
            parts = []
            for name, v in self.fitted.items():
                v = np.asarray(v)[b]
                parts.append(f"{name}={float(np.mean(v)):.4g}" + ("(mean)" if np.ndim(v) else ""))
            scores = []
            if self.train_r is not None:
                scores.append(f"train FC r={float(self.train_r[b]):.3f}")
            if self.test_r is not None:
                scores.append(f"test FC r={float(self.test_r[b]):.3f}")
            lines.append(f"  [{b}] " + ", ".join(scores) + " | " + " ".join(parts))
        return "\n".join(lines)

    def best(self) -> int:
        """Index of the model with the highest train FC r (else the lowest final loss). Chosen on
        the training fit only: the test run is an evaluation, selecting on it would bias it up."""
        if self.train_r is not None:
            return int(np.nanargmax(self.train_r))
        return int(np.nanargmin(self.history["loss"][-1]))

    # ---------------------------------------------------------------- persistence
    _ARRAYS = ("sc", "W", "emp_fc", "train_bold", "train_fc", "train_r", "test_bold", "test_fc",
               "test_r", "gains")

    def save(self, out_dir) -> Path:
        """Write ``result.json`` and ``result.npz`` into ``out_dir`` (created if needed)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        meta = dict(config=self.config, fitted=self.fitted, fitted_hyper=self.fitted_hyper,
                    train_r=self.train_r, test_r=self.test_r, wall_time=self.wall_time,
                    train_time=self.train_time, epochs_completed=self.epochs_completed,
                    extra=self.extra, format=1)
        arrays = {f"history/{k}": np.asarray(v) for k, v in self.history.items()}
        arrays.update({f"fitted/{k}": np.asarray(v) for k, v in self.fitted.items()})
        arrays.update({f"fitted_hyper/{k}": np.asarray(v) for k, v in self.fitted_hyper.items()})
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
        return out

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
        kw = {k: arrays.get(k) for k in cls._ARRAYS}
        return cls(config=meta["config"], fitted=fitted, fitted_hyper=hyper, history=hist,
                   wall_time=meta["wall_time"], train_time=meta["train_time"],
                   epochs_completed=meta["epochs_completed"], extra=meta.get("extra", {}), **kw)


__all__ = ["FitResult"]
