"""The settings of a fit: one frozen, validated value (``FitConfig``), saved with every result."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping

from .._validate import check_bool, check_choice, check_float, check_int, check_seed


@dataclass(frozen=True)
class FitConfig:
    """How to fit (see :func:`nmmfit.fit`; the schemes are in the package docstring).

    Attributes:
        mode: ``"windowed"`` (the paper) or ``"full"`` (whole run per update, exact gradient).
        epochs: passes over the data (full mode: updates).
        window: frames per window (20 in the paper); also the unit of burn-in and test length.
        lr, eps, betas: Adam settings (paper: 0.01, 1e-7, torch's default betas (0.9, 0.999)).
        lr_scale: per-name multipliers of ``lr``: a model parameter (``"g"``, ..., ``"gains"``) or
            a loss term (``"prior_g"``, ...), e.g. ``{"g": 100, "prior_g": 100}`` (not in the paper).
        lr_final: the learning rates decay (cosine, per update) to ``lr_final`` times their start
            value by the last update (1: constant, the paper).
        sim_frames: full mode: frames simulated per update (default: as many as the data has).
        discard_frames: full mode: frames at the start of every update's run left out of the loss.
        resample_noise: full mode: fresh noise every update, the state carried over (True), or the
            same noise and initial state every update (False; common random numbers).
        optimizer: ``"adam"`` (the paper) or ``"lbfgs"`` (quasi-Newton on the parameters divided by
            ``lr_scale``; needs ``mode="full"`` and ``resample_noise=False``).
        average_last: the estimate is the mean of the last this-many updates (default 100 with
            Adam, the paper; 1 with L-BFGS).
        scale: empirical BOLD scaling, ``"max"`` (paper), ``"zscore"`` or ``"none"``.
        layout: ``"auto"``, ``"TN"`` or ``"NT"`` (see :func:`nmmfit.fit.prepare_bold`).
        seed: seeds the initial state, the state noise and the output noise (default: the model's).
        burn_in_windows: windows discarded at the start of the test run (and, in full mode,
            simulated before the first update).
        test: run the test evaluation; test_windows: its length in windows, or ``"data"``.
        train_fc_skip: frames dropped at the start of the last epoch's simulated BOLD before its
            FC is compared with the empirical FC (the paper: 10).
    """
    mode: str = "windowed"
    epochs: int = 20
    window: int = 20
    lr: float = 0.01
    eps: float = 1e-7
    betas: tuple = (0.9, 0.999)
    lr_scale: Mapping = field(default_factory=dict)
    lr_final: float = 1.0
    sim_frames: int | None = None
    discard_frames: int = 0
    resample_noise: bool = True
    optimizer: str = "adam"
    average_last: int | None = None
    scale: str = "max"
    layout: str = "auto"
    seed: int | None = None
    burn_in_windows: int = 2
    test: bool = True
    test_windows: int | str = 120
    train_fc_skip: int = 10

    def __post_init__(self):
        check_choice("mode", self.mode, ("windowed", "full"))
        check_choice("optimizer", self.optimizer, ("adam", "lbfgs"))
        check_choice("scale", self.scale, ("max", "zscore", "none"))
        check_choice("layout", self.layout, ("auto", "TN", "NT"))
        if self.optimizer == "lbfgs" and (self.mode != "full" or self.resample_noise):
            raise ValueError("optimizer='lbfgs' needs a deterministic objective: mode='full' and resample_noise=False")
        if self.optimizer == "lbfgs" and self.lr_final != 1.0:
            raise ValueError("lr_final applies to optimizer='adam' only")
        if self.average_last is None:
            object.__setattr__(self, "average_last", 1 if self.optimizer == "lbfgs" else 100)
        for name, lo in (("epochs", 1), ("window", 1), ("average_last", 1), ("burn_in_windows", 0),
                         ("train_fc_skip", 0), ("discard_frames", 0)):
            object.__setattr__(self, name, check_int(name, getattr(self, name), lo))
        for name, lo, hi in (("lr", 0, None), ("eps", 0, None), ("lr_final", 0, 1)):
            object.__setattr__(self, name, check_float(name, getattr(self, name), lo, hi, open_min=True))
        for name in ("resample_noise", "test"):
            object.__setattr__(self, name, check_bool(name, getattr(self, name)))
        if self.sim_frames is not None:
            object.__setattr__(self, "sim_frames", check_int("sim_frames", self.sim_frames, 1))
        object.__setattr__(self, "betas", _check_betas(self.betas))
        object.__setattr__(self, "lr_scale", _check_lr_scale(self.lr_scale))
        if self.mode == "windowed" and (self.sim_frames is not None or self.discard_frames or not self.resample_noise):
            raise ValueError("sim_frames, discard_frames and resample_noise=False apply to mode='full' only")
        if self.seed is not None:
            object.__setattr__(self, "seed", check_seed("seed", self.seed))
        if self.test_windows != "data":
            object.__setattr__(self, "test_windows", check_int("test_windows (an int or 'data')", self.test_windows, 1))

    def for_data(self, n_frames: int, model_seed: int) -> "FitConfig":
        """The settings resolved against the data: ``test_windows="data"``, ``sim_frames`` and
        ``seed`` get their values; a run too short for one window is an error."""
        n_win = n_frames // self.window
        if n_win < 1:
            raise ValueError(f"bold: has {n_frames} frames, too few for one window of {self.window} frames "
                             f"(need at least {self.window}; lower window=)")
        sim_frames = n_frames if self.sim_frames is None else self.sim_frames
        if sim_frames - self.discard_frames < 3:
            raise ValueError(f"sim_frames: expected an int with at least 3 frames after discard_frames="
                             f"{self.discard_frames}, got {sim_frames!r}")
        return dataclasses.replace(self, test_windows=n_win if self.test_windows == "data" else self.test_windows,
                                   sim_frames=sim_frames if self.mode == "full" else None,
                                   seed=model_seed if self.seed is None else self.seed)

    def updates_per_epoch(self, n_frames: int) -> int:
        return n_frames // self.window if self.mode == "windowed" else 1

    def to_dict(self) -> dict:
        """The settings as saved with a result (defaults of rarely changed options left out)."""
        d = dataclasses.asdict(self)
        d["lr_scale"] = dict(self.lr_scale)
        d["sim_frames"] = self.sim_frames if self.mode == "full" else None
        d["betas"] = list(self.betas)
        return d


def _check_betas(value) -> tuple:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"betas: expected two numbers in [0, 1), got {value!r}")
    return tuple(check_float(f"betas[{i}]", b, 0, 1, open_max=True) for i, b in enumerate(value))


def _check_lr_scale(value) -> dict:
    """``{name: positive multiplier}``, sorted by name (names are checked against the model's by the optimizer)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"lr_scale: expected a mapping of names to positive multipliers, e.g. {{'g': 100}}, "
                        f"got {value!r} ({type(value).__name__})")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise TypeError(f"lr_scale: expected parameter or loss-term names as keys, got {bad!r}")
    return {k: check_float(f"lr_scale[{k!r}]", v, 0, open_min=True) for k, v in sorted(value.items())}


__all__ = ["FitConfig"]
