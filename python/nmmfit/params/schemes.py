"""Fitting schemes: everything a fit decides besides the equations, as values.

A :class:`FitScheme` says which parameters exist and how they are transformed, their initial
values and random starts, which are fitted by default, whether the SC carries learnable gains and
their form, whether BOLD gets output noise, how the SC is preprocessed, how the initial state is
drawn, the default objective, and the stages of a fit (:class:`Stage`: what each stage's FC term
targets, for how long, how the gains are kept near the previous stage's; run by
:func:`nmmfit.fit.fit_stages`). Adding a scheme adds an instance (``SCHEMES``), never a branch on a name.

Imports: presets (the equations), sc (gain forms), params.transforms, losses (default objectives).
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

from ..losses import FCCorrelationLoss, FCRMSELoss, Objective, deco2014_objective, griffiths2022_objective
from ..presets import DECO2014, GRIFFITHS2022, PARAM_NAMES, Preset
from ..sc import EXP_GAINS, TANH_GAINS
from .._validate import check_choice, check_float, check_int
from .fic import AnalyticFIC
from .transforms import Identity, LogPositive, OffsetRelu

MODEL_PARAM_NAMES = PARAM_NAMES + ("sigma_out",)
"""Parameters a model holds: the six of the dynamics plus the BOLD output-noise std."""

PAPER_INIT = dict(g=80.0, g_EE=2.5, g_IE=0.101, g_EI=0.101, I_0=0.2, sigma=0.07, sigma_out=0.021)
"""Initial values of the paper's HCP fits (griffiths2022), in natural units: g and g_EE drawn
around 80 and 2.5 (+-3 x 0.1), raw g_IE = g_EI = 0.1, std_in = 0.05, std_out = 0.02."""

PAPER_FIT = ("g", "g_EE", "g_IE", "g_EI", "sigma", "sigma_out")
"""The parameters the paper learns (I_0 is fixed)."""

SYNTHETIC_TRUTH = dict(g=100.0, g_EE=3.5, g_IE=0.42, g_EI=0.42, I_0=0.2, sigma=0.02, sigma_out=0.02)
"""Ground truth of the paper's synthetic experiment (its code: WWD_test with W1 = W2 = 0.02)."""


def paper_init(batch: int = 1, *, g_mean: float = 80.0, g_std: float = 0.1, g_EE_mean: float = 2.5,
               g_EE_std: float = 0.1, seed: int = 0) -> dict:
    """The paper's initial values for ``batch`` models: g ~ U(g_mean -+ 3 g_std) (floored at 0),
    g_EE ~ U(g_EE_mean -+ 3 g_EE_std), the rest as :data:`PAPER_INIT`. Natural units, ``[B]`` each."""
    gen = torch.Generator().manual_seed(int(seed))
    u = torch.rand(2, batch, generator=gen, dtype=torch.float64)
    lo_g, lo_e = max(0.0, g_mean - 3 * g_std), max(0.001, g_EE_mean - 3 * g_EE_std)
    hi_g, hi_e = g_mean + 3 * g_std, g_EE_mean + 3 * g_EE_std
    init = {k: torch.full((batch,), v, dtype=torch.float64) for k, v in PAPER_INIT.items()}
    init["g"] = lo_g + (hi_g - lo_g) * u[0]
    init["g_EE"] = lo_e + (hi_e - lo_e) * u[1]
    return init


@dataclass(frozen=True)
class StateInit:
    """A random initial state ``offset + width * U(0, 1)`` per state variable (E, I, x, f, v, q)."""
    offset: tuple
    width: tuple

    def draw(self, B: int, N: int, generator: torch.Generator | None, dtype) -> torch.Tensor:
        """``[B, 6, N]``, drawn in float64 then cast, so a seed gives the same state in any dtype."""
        u = torch.rand(B, 6, N, generator=generator, dtype=torch.float64)
        off = torch.tensor(self.offset, dtype=torch.float64)[None, :, None]
        wid = torch.tensor(self.width, dtype=torch.float64)[None, :, None]
        return (wid * u + off).to(dtype)


STAGE_TARGETS = ("window", "group", "shrink")


@dataclass(frozen=True)
class Stage:
    """One stage of a fit (a scheme's ``stages`` run in order, each from the previous one's estimate).

    ``target``: what the FC term compares each simulated window's FC with: ``"window"`` the same
    window of the data (the paper), ``"group"`` the group-average FC of other people (no data of the
    subject), ``"shrink"`` ``a FC_group + (1 - a) FC_data`` with ``a`` chosen on the fitted data alone
    (:func:`nmmfit.stats.baselines.shrinkage_weight`). ``epochs``: None takes the fit's; ``frames``:
    frames per epoch (the data tiled to this length; a static target needs no more data, only
    updates); ``gain_penalty``: weight of ``mean over SC edges of (w - w_prev)^2`` with ``w_prev`` the
    previous stage's gains (0 in a first stage); ``gains_from_target``: start the gains at
    :func:`nmmfit.sc.gains_from_fc` of the target; ``lr_scale``: per-name learning-rate multipliers."""
    name: str = "fit"
    target: str = "window"
    epochs: int | None = None
    frames: int | None = None
    gain_penalty: float = 0.0
    gains_from_target: bool = False
    lr_scale: Mapping = field(default_factory=dict)

    def __post_init__(self):
        check_choice("target", self.target, STAGE_TARGETS)
        if self.epochs is not None:
            check_int("epochs", self.epochs, 1)
        if self.frames is not None:
            check_int("frames", self.frames, 1)
        check_float("gain_penalty", self.gain_penalty, 0)

    @property
    def needs_group(self) -> bool:
        return self.target != "window"


def _fc_objective(model) -> Objective:
    return Objective({"fc": (FCCorrelationLoss(), 1.0), "fc_rmse": (FCRMSELoss(), 1.0)})


def _no_starts(batch: int, *, seed: int = 0, g_mean: float | None = None) -> dict:
    return {}


@dataclass(frozen=True)
class FitScheme:
    """A fitting scheme (see the module docstring). ``transforms`` maps a parameter to its
    transform (missing: :class:`Identity`); ``init`` gives every parameter of
    :data:`MODEL_PARAM_NAMES` its default initial value in natural units; ``starts(B, seed=,
    g_mean=)`` draws random initial values for B restarts (a dict of ``[B]`` tensors, may be
    empty); ``objective(model)`` builds the default objective. ``derived`` (None, or a rule such
    as :class:`nmmfit.params.fic.AnalyticFIC`) recomputes the parameters it ``names`` from the others
    and the coupling at every forward: ``derived(values, W, preset) -> (values, report)``; those
    parameters cannot be fitted."""
    name: str
    preset: Preset
    init: Mapping[str, float]
    transforms: Mapping = field(default_factory=dict)
    fit: tuple = PAPER_FIT
    gains: bool = False
    gain_form: object = TANH_GAINS
    output_noise: bool = False
    sc_preprocess: str = "max"
    state_init: StateInit = StateInit((0.001, 0.001, 0.0, 1.0, 1.0, 1.0), (0.01, 0.01, 0.0, 0.0, 0.0, 0.0))
    objective: Callable = _fc_objective
    starts: Callable = _no_starts
    reference: Mapping | None = None
    stages: tuple = (Stage(),)
    derived: object = None

    @property
    def reference_values(self) -> dict:
        """Values a plain simulation uses where the caller gives none (default: ``init``)."""
        return dict(self.init if self.reference is None else self.reference)

    def __post_init__(self):
        missing = set(MODEL_PARAM_NAMES) - set(self.init)
        unknown = (set(self.init) | set(self.transforms)) - set(MODEL_PARAM_NAMES)
        if missing or unknown:
            raise ValueError(f"FitScheme {self.name!r}: init must give every parameter of {MODEL_PARAM_NAMES} "
                             f"(missing {sorted(missing)}); unknown names {sorted(unknown)}")
        clash = set(self.derived.names if self.derived is not None else ()) & set(self.fit)
        if clash:
            raise ValueError(f"FitScheme {self.name!r}: {sorted(clash)} are derived by {self.derived!r} and "
                             f"cannot also be fitted; drop them from fit")

    def transform(self, name: str):
        return self.transforms.get(name, Identity())

    def replace(self, **changes) -> "FitScheme":
        return dataclasses.replace(self, **changes)


GRIFFITHS2022_SCHEME = FitScheme(
    name="griffiths2022", preset=GRIFFITHS2022, init=PAPER_INIT,
    transforms=dict(g_EE=OffsetRelu(0.001), g_IE=OffsetRelu(0.001), g_EI=OffsetRelu(0.001),
                    sigma=OffsetRelu(0.02), sigma_out=OffsetRelu(0.001)),
    gains=True, output_noise=True, sc_preprocess="log1p_fro",
    state_init=StateInit((0.0, 0.0, 0.0, 1.0, 1.0, 1.0), (0.45,) * 6),
    objective=griffiths2022_objective, starts=paper_init, reference=SYNTHETIC_TRUTH)
"""The paper (Griffiths et al. 2022): relu-floored transforms, SC gains, output noise, its objective."""

DECO2014_SCHEME = FitScheme(name="deco2014", preset=DECO2014, init=dict(DECO2014.defaults, sigma_out=0.0),
                            transforms=dict(sigma=LogPositive()))
"""Deco 2014 in natural units: identity transforms (sigma exp(p): a std stays positive), no gains,
no output noise, FC objective."""

HELDOUT_LR_SCALE = {"g": 100.0, "prior_g": 100.0, "gains": 3.0}
"""Learning-rate multipliers of the group-shrinkage stages: g (~80) moves at lr 0.01 by 0.01 per
update, i.e. not at all; x100 lets it move when the data ask (bench/heldout_results.md)."""

GROUP_SHRINKAGE_SCHEME = GRIFFITHS2022_SCHEME.replace(
    name="group_shrinkage", init=dict(PAPER_INIT, g_EE=3.5, sigma=0.02, sigma_out=0.001),
    fit=("g", "g_EE", "g_IE", "g_EI"), gain_form=EXP_GAINS, sc_preprocess="max_log1p_fro",
    starts=functools.partial(paper_init, g_EE_mean=3.5, g_EE_std=0.0),
    stages=(Stage("group", target="group", epochs=12, frames=1200, gains_from_target=True,
                  lr_scale=HELDOUT_LR_SCALE),
            Stage("subject", target="shrink", epochs=6, gain_penalty=0.1, lr_scale=HELDOUT_LR_SCALE)))
"""The paper's equations and objective, fitted to generalise (bench/heldout_results.md): log-gains
``exp(w) * SC`` on SC preprocessed ``max_log1p_fro``, the noise fixed (sigma 0.02, sigma_out 0.001),
g_EE from 3.5; a group stage (the gains start at the group FC on the SC's support and are fitted with
g, g_EE, g_IE, g_EI to the group FC: no data of the subject) then a subject stage toward the
subject's FC shrunk to the group's, the gains kept near the group stage's (weight 0.1, chosen on
inner splits of the training data)."""

DECO2014_FIC_SCHEME = FitScheme(
    name="deco2014_fic", preset=DECO2014, init=dict(DECO2014.defaults, sigma_out=0.0),
    transforms=dict(g=LogPositive(), g_EE=LogPositive(), g_EI=LogPositive(), I_0=LogPositive(), sigma=LogPositive()),
    fit=("g", "g_EE", "g_EI"), derived=AnalyticFIC(), objective=deco2014_objective)
"""Deco 2014 with analytic FIC (g_IE derived every forward, differentiably): g, g_EE, g_EI fitted
on the log scale (positive, scale-free steps), FC + FCD + FC-mean objective (cuBNM's problem)."""

SCHEMES = {s.name: s for s in (GRIFFITHS2022_SCHEME, GROUP_SHRINKAGE_SCHEME, DECO2014_SCHEME, DECO2014_FIC_SCHEME)}


def get_scheme(spec=None) -> FitScheme:
    """A scheme from a :class:`FitScheme`, a scheme name, or a :class:`nmmfit.Preset`. A preset gets
    the registered scheme for its equations (the same switches), with the preset itself in it; a
    preset with equations no scheme knows gets a plain scheme (identity transforms, the preset's
    defaults, no gains, no output noise)."""
    if isinstance(spec, FitScheme):
        return spec
    if isinstance(spec, str) and spec in SCHEMES:
        return SCHEMES[spec]
    if isinstance(spec, Preset):
        for s in SCHEMES.values():
            if s.preset.switches() == spec.switches():
                return s.replace(preset=spec)
        return FitScheme(name=spec.name, preset=spec, init=dict(spec.defaults, sigma_out=0.0))
    raise ValueError(f"scheme: expected one of {sorted(SCHEMES)}, a nmmfit.FitScheme or a Preset, got {spec!r}")


__all__ = ["FitScheme", "StateInit", "Stage", "SCHEMES", "GRIFFITHS2022_SCHEME", "GROUP_SHRINKAGE_SCHEME",
           "DECO2014_SCHEME", "DECO2014_FIC_SCHEME", "get_scheme", "HELDOUT_LR_SCALE",
           "MODEL_PARAM_NAMES", "PAPER_INIT", "PAPER_FIT", "SYNTHETIC_TRUTH", "paper_init"]
