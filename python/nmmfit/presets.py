"""Model presets: named bundles of switches and constants over one set of equations (docs/MODEL.md).

A preset is data, not code: the reference and every kernel read the same fields, so adding a
preset never adds a code path.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

PARAM_NAMES = ("g", "g_EE", "g_IE", "g_EI", "I_0", "sigma")
"""Order of the parameter axis in the packed parameter tensor ``params # [B, 6, N]``."""

STATE_NAMES = ("E", "I", "x", "f", "v", "q")
"""Order of the state axis in ``state # [B, 6, N]``."""

COUPLINGS = ("adjacency", "laplacian")
CURRENT_SQUASHES = ("identity", "tanh_relu")
RATES = ("standard", "griffiths2022")
STATE_BOUNDS = ("clamp01", "tanh_relu")


@dataclass(frozen=True)
class Preset:
    """One model variant of docs/MODEL.md.

    Attributes:
        name: preset name.
        coupling: ``"adjacency"`` (c = W E) or ``"laplacian"`` (c = W E - rowsum(W) * E).
        current_squash: ``"identity"`` or ``"tanh_relu"`` (phi(J) = tanh(relu(J))).
        rate: transfer function H: ``"standard"`` or ``"griffiths2022"``.
        state_bound: ``"clamp01"`` or ``"tanh_relu"`` (E, I <- tanh(1e-5 + relu(.))).
        hemo_bound: apply x <- tanh(x); f, v, q <- 1 + tanh(. - 1) after each hemodynamic step.
        dt: neural Euler step (ms for deco2014; the paper's mixed units for griffiths2022).
        hemo_dt: Balloon-Windkessel Euler step.
        hemo_every: neural steps per hemodynamic step (the hemodynamic step is driven by E at
            the start of the neural step that completes the period).
        bold_scale: BOLD = bold_scale * (k1 (1 - q) + k2 (1 - q/v) + k3 (1 - v)).
        tr: sample period in units of ``dt``; ``steps_per_sample = round(tr / dt)``.
        defaults: parameter values used where the caller gives none.
        time_unit: seconds per unit of ``dt`` and ``tr`` (1 for griffiths2022, 1e-3 for deco2014).
    """

    name: str
    coupling: str
    current_squash: str
    rate: str
    state_bound: str
    hemo_bound: bool
    dt: float
    hemo_dt: float
    hemo_every: int
    bold_scale: float
    tr: float
    defaults: dict = field(default_factory=dict)
    time_unit: float = 1.0

    def __post_init__(self):
        for attr, allowed in (("coupling", COUPLINGS), ("current_squash", CURRENT_SQUASHES),
                              ("rate", RATES), ("state_bound", STATE_BOUNDS)):
            if getattr(self, attr) not in allowed:
                raise ValueError(f"Preset.{attr}: expected one of {allowed}, got {getattr(self, attr)!r}")
        for attr in ("dt", "hemo_dt", "tr"):
            v = getattr(self, attr)
            if not (isinstance(v, (int, float)) and v > 0):
                raise ValueError(f"Preset.{attr}: expected a positive number, got {v!r}")
        if not (isinstance(self.hemo_every, int) and self.hemo_every >= 1):
            raise ValueError(f"Preset.hemo_every: expected an int >= 1, got {self.hemo_every!r}")
        unknown = set(self.defaults) - set(PARAM_NAMES)
        if unknown:
            raise ValueError(f"Preset.defaults: unknown parameters {sorted(unknown)}; expected names from {PARAM_NAMES}")

    @property
    def steps_per_sample(self) -> int:
        """Neural steps per BOLD sample: round(tr / dt) (never the floor the paper's code used)."""
        return max(1, round(self.tr / self.dt))

    def for_tr(self, tr_seconds: float) -> "Preset":
        """This preset sampled every ``tr_seconds`` (the data's TR): the time step becomes the
        largest value <= ``dt`` that divides the TR into a whole number of hemodynamic periods (so a
        BOLD sample falls exactly on a step), the hemodynamic step scaled alike. A TR the preset's
        step already divides keeps ``dt``."""
        tr = float(tr_seconds) / self.time_unit
        if not (tr > 0 and tr < float("inf")):
            raise ValueError(f"tr: expected a positive number of seconds, got {tr_seconds!r}")
        if abs(tr - self.tr) <= 1e-9 * self.tr:
            return self
        period = self.dt * self.hemo_every
        periods = max(1, -(-round(tr / period * 1e9) // 10**9))   # ceil, robust to the rounding of tr / period
        dt = tr / (periods * self.hemo_every)
        if abs(dt - self.dt) <= 1e-9 * self.dt:
            return self.replace(tr=tr)
        return self.replace(tr=tr, dt=dt, hemo_dt=self.hemo_dt * dt / self.dt)

    def with_dt(self, dt: float) -> "Preset":
        """This preset with neural step ``dt`` (units of ``dt``); the hemodynamic period is kept where
        ``dt`` divides it (``hemo_every`` steps), else it becomes one step of ``dt``. A coarser dt
        is a fitting option whose error must be measured (docs/MODEL.md, "Time step")."""
        if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not (0 < dt < float("inf")):
            raise ValueError(f"dt: expected a positive number ({'ms' if self.time_unit == 1e-3 else 'units of dt'}), "
                             f"got {dt!r}")
        period = self.dt * self.hemo_every
        every = max(1, round(period / dt))
        return self.replace(dt=float(dt), hemo_every=every, hemo_dt=self.hemo_dt * dt * every / period)

    def replace(self, **changes) -> "Preset":
        """A copy with some fields changed, e.g. ``preset.replace(tr=0.72 / ...)``."""
        return dataclasses.replace(self, **changes)

    # Integer codes of the switches, in the order the compiled ops take them.
    def switches(self) -> list[int]:
        return [COUPLINGS.index(self.coupling), CURRENT_SQUASHES.index(self.current_squash),
                RATES.index(self.rate), STATE_BOUNDS.index(self.state_bound),
                int(self.hemo_bound), self.hemo_every]

    def scalars(self) -> list[float]:
        return [float(self.dt), float(self.hemo_dt), float(self.bold_scale)]


GRIFFITHS2022 = Preset(
    name="griffiths2022", coupling="laplacian", current_squash="tanh_relu", rate="griffiths2022",
    state_bound="tanh_relu", hemo_bound=True, dt=0.05, hemo_dt=0.05, hemo_every=1,
    bold_scale=100.0 * 0.02 / 0.34, tr=0.75,
    # The ground truth of the paper's synthetic experiments (its code): g=100, g_EE=3.5, g_IE=g_EI=0.42.
    defaults=dict(g=100.0, g_EE=3.5, g_IE=0.42, g_EI=0.42, I_0=0.2, sigma=0.02),
)

DECO2014 = Preset(
    name="deco2014", coupling="adjacency", current_squash="identity", rate="standard",
    state_bound="clamp01", hemo_bound=False, dt=0.1, hemo_dt=1e-3, hemo_every=10,
    bold_scale=100.0 * 0.02, tr=720.0,
    defaults=dict(g=0.15 * 1.0, g_EE=1.4 * 0.15, g_IE=1.0, g_EI=0.15, I_0=0.382, sigma=0.01), time_unit=1e-3,
)

PRESETS = {p.name: p for p in (GRIFFITHS2022, DECO2014)}


def get_preset(preset) -> Preset:
    """A :class:`Preset` from a name or a Preset; a clear error for anything else."""
    if isinstance(preset, Preset):
        return preset
    if isinstance(preset, str) and preset in PRESETS:
        return PRESETS[preset]
    raise ValueError(f"preset: expected one of {sorted(PRESETS)} or a nmmfit.Preset, got {preset!r}")
