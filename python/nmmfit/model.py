"""The fitting model: ``nmmfit.RWW``, an ``nn.Module`` over :func:`nmmfit.simulate`.

It holds the *unconstrained* parameters that the optimizer updates and applies the transforms of
its :class:`nmmfit.FitScheme` (``params/schemes.py``) to get the values the dynamics use: the
paper's scheme (griffiths2022) floors g_EE, g_IE, g_EI at 0.001, sigma at 0.02 and sigma_out at
0.001 with ``offset + relu(p)`` and leaves g and I_0 free; deco2014 uses natural units throughout.

The coupling matrix comes from structural connectivity ``SC`` (preprocessed once, :mod:`nmmfit.sc`)
and, when the scheme has them, learnable gains ``w`` in the scheme's form (the paper's, init 0.05:
``W = sym((1 + tanh(w)) * SC) * ||SC||_F / ||sym(...)||_F``; or log-gains ``exp(w)``, init 0;
:func:`nmmfit.sc.coupling_from_gains`).

A module holds a batch of ``B`` independent models (subjects and/or random restarts). Every
parameter is either global (``[B]``) or regional (``[B, N]``); any subset can be fitted, the rest
are buffers. The SC may be shared (``[N, N]``) or per model (``[B, N, N]``); gains are always per
model (``[B, N, N]``) so that models stay independent.

Heterogeneity (``heterogeneity={"g_EE": MapScaling(...)}``) makes a global parameter regional as
``p_i = p (1 + sum_k a_k map_k,i)`` with fitted coefficients (brain maps or node groups,
:mod:`nmmfit.params.heterogeneity`); a scheme's ``derived`` rule (analytic FIC) recomputes g_IE from
the other values and W at every forward, differentiably.

Imports: presets, params (schemes, transforms, heterogeneity), sc, rng, _validate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import torch
from torch import nn

from ._validate import check_bool, check_choice, check_float, check_int, check_names, check_seed, check_tensor
from .params.heterogeneity import Heterogeneous
from .params.schemes import (MODEL_PARAM_NAMES, PAPER_FIT, PAPER_INIT, FitScheme, get_scheme,  # noqa: F401
                             paper_init)
from .presets import PARAM_NAMES, Preset, get_preset
from .rng import derive_seed
from .sc import coupling_from_gains, preprocess_sc
from .stats.fc import fc_correlation, fc_matrix, lower_tri, pearson  # noqa: F401  (public re-exports)


def _resolve_scheme(scheme, preset) -> FitScheme:
    if scheme is None:
        return get_scheme(get_preset("griffiths2022" if preset is None else preset))
    scheme = get_scheme(scheme)
    return scheme if preset is None else scheme.replace(preset=get_preset(preset))


def _init_sizes(init: Mapping, regional: tuple, N: int) -> dict:
    """The batch size each init value gives, name -> B: ``[B]`` and ``[B, N]`` values their first
    axis; a regional name's ``[N]`` vector (one value per region, shared by the models) none."""
    sizes = {}
    for name, v in init.items():
        if isinstance(v, bool):
            raise TypeError(f"init[{name!r}]: expected a number or an array of numbers, got {v!r}")
        t = check_tensor(f"init[{name!r}]", v, dims=(0, 1, 2), dtype=torch.float64)
        if t.dim() == 2 or (t.dim() == 1 and not (name in regional and t.shape[0] == N)):
            sizes[name] = t.shape[0]
    return sizes


def _batch_size(sc: torch.Tensor, init: Mapping, stream, batch, regional: tuple = ()) -> int:
    """B from the batched arguments (``sc # [B, N, N]``, ``[B]`` or ``[B, N]`` init values, ``stream
    # [B]``, ``batch``); all that give one must agree. A global parameter's 1-d init of length N is
    refused unless ``sc``, ``stream`` or ``batch`` give B = N: it is almost always meant per region."""
    N = sc.shape[-1]
    given = {}
    if sc.dim() == 3:
        given["sc"] = sc.shape[0]
    if stream is not None:
        given["stream"] = stream.shape[0]
    if batch is not None:
        given["batch"] = check_int("batch", batch, 1, 2**31 - 1)
    from_init = _init_sizes(init, regional, N)
    per_region = [n for n, b in from_init.items() if b == N and n not in regional and N not in given.values()]
    if per_region:
        name = per_region[0]
        batch_text = f"the batch is {given}" if given else "no batch is given"
        raise ValueError(f"init[{name!r}]: has {N} values, one per region (N={N}), but {name!r} is a global "
                         f"parameter (one value per model) and {batch_text}; did you mean regional={per_region!r}? "
                         f"(for {N} models with one value each, pass batch={N})")
    sizes = {**given, **{f"init[{n!r}]": b for n, b in from_init.items()}}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"batch size: arguments disagree on B: {sizes}")
    return next(iter(sizes.values()), 1)


def _heterogeneity(spec, model) -> nn.ModuleDict:
    """The model's heterogeneous parameters, name -> :class:`Heterogeneous` (coefficients fitted with the
    parameter), from ``spec`` (name -> :class:`nmmfit.params.MapScaling`) checked against the model."""
    if spec is None:
        return nn.ModuleDict()
    if not isinstance(spec, Mapping):
        raise TypeError(f"heterogeneity: expected a dict of parameter name -> MapScaling, got {type(spec).__name__}")
    for name in check_names("heterogeneity", list(spec), PARAM_NAMES, "parameter names"):
        if name in model.regional or name in model.derived_names:
            why = "is in regional= (free per region)" if name in model.regional else "is derived (FIC)"
            raise ValueError(f"heterogeneity: {name!r} {why}; it cannot also be map- or group-based")
        n = getattr(spec[name], "N", None)
        if n is not None and n != model.N:
            raise ValueError(f"heterogeneity[{name!r}]: has {n} values per map, expected one per region (N={model.N})")
    return nn.ModuleDict({n: Heterogeneous(m, model.B, fit=n in model.fitted, dtype=model.dtype_)
                          for n, m in spec.items()})


def random_initial_state(B: int, N: int, *, generator: torch.Generator | None = None,
                         dtype=torch.float32, preset="griffiths2022") -> torch.Tensor:
    """Initial state ``[B, 6, N]`` drawn as the fitting scheme of ``preset`` (a name, Preset or
    FitScheme) says: griffiths2022 ``0.45 U(0,1) + (0, 0, 0, 1, 1, 1)`` (docs/MODEL.md); deco2014
    ``E = I = 0.001 + 0.01 U(0,1)``, ``x = 0``, ``f = v = q = 1``."""
    return get_scheme(preset).state_init.draw(B, N, generator, dtype)


@dataclass
class ModelOutput:
    """What :meth:`RWW.forward` returns.

    bold  # [B, S, N] BOLD including the output noise (when enabled)
    E, I  # [B, R, N] recorded every ``record_every`` steps (R = 0 when not recorded)
    state # [B, 6, N] state after the last step
    """
    bold: torch.Tensor
    E: torch.Tensor
    I: torch.Tensor
    state: torch.Tensor


class RWW(nn.Module):
    """A batch of ``B`` connectome-based RWW + Balloon-Windkessel models with learnable parameters.

    Args:
        sc: structural connectivity ``[N, N]`` (shared) or ``[B, N, N]`` (per model), raw weights.
        preset: ``"griffiths2022"`` (default) or ``"deco2014"`` or a :class:`nmmfit.Preset`: the
            equations; the fitting scheme is the registered one for them (:func:`get_scheme`).
        scheme: a :class:`nmmfit.FitScheme` (or its name) instead: transforms, initial values,
            default fitted names, gains, output noise, SC preprocessing, initial state and default
            objective as values. With ``preset`` too, the scheme's equations are replaced by it.
        batch: number of models B (taken from ``sc`` or ``init`` when they are batched).
        fit: names of the parameters to learn (others are fixed buffers). Default: the paper's
            ``("g", "g_EE", "g_IE", "g_EI", "sigma", "sigma_out")``.
        regional: names of the parameters that are per region (``[B, N]``); the rest are global.
        init: initial values in natural units: name -> float, ``[B]`` or ``[B, N]`` (numpy/torch).
            Missing names take the scheme's ``init``.
        fit_gains: learn the SC gains ``w`` (default: the scheme's, griffiths2022 True).
        gain_init: initial value of every gain (default: the scheme's gain form's, 0.05 as in the paper).
        sc_preprocess: default the scheme's: ``"log1p_fro"`` (griffiths2022, docs/MODEL.md), ``"max_log1p_fro"`` (for raw
            streamline counts, see :func:`preprocess_sc`), ``"max"`` (deco2014 default), ``"none"``.
        output_noise: add ``sigma_out * N(0, 1)`` to every BOLD sample (default: the scheme's).
        rng_by_stream: draw each model's output noise and its seeded random initial state from its
            noise stream index, as the state noise already is: a model's run then depends on
            (seed, stream) only, not on the batch it is in (the same subject fitted alone or in a
            batch gives the same fit), and models with the same stream get the same noise
            throughout (common random numbers). Default False: one draw for the whole batch.
        seed: base seed of the state noise (Philox key) and output noise.
        stream: per-model noise stream indices ``[B]`` (default ``arange(B)``).
        backend: ``"auto"`` (:func:`nmmfit.simulate`: the compiled kernels when built) or
            ``"reference"`` (:func:`nmmfit.simulate_ref`, pure PyTorch autograd).
        dtype: float32 (default, as the paper) or float64.
        tr: the data's sampling period in seconds: BOLD is sampled every ``tr`` (the preset's
            time step shrinks to divide it, :meth:`nmmfit.Preset.for_tr`); default the preset's.
        heterogeneity: name -> :class:`nmmfit.params.MapScaling`: that (global) parameter becomes
            ``p (1 + a . maps)`` per region, its coefficients ``a # [B, K]`` fitted when it is.
    """

    def __init__(self, sc, *, preset=None, scheme=None, batch: int | None = None,
                 fit: Iterable[str] | None = None, regional: Iterable[str] = (),
                 init: Mapping | None = None, fit_gains: bool | None = None, gain_init: float | None = None,
                 sc_preprocess: str | None = None, output_noise: bool | None = None,
                 rng_by_stream: bool = False, seed: int = 0,
                 stream=None, backend: str = "auto", dtype=torch.float32, tr: float | None = None,
                 heterogeneity: Mapping | None = None):
        super().__init__()
        self.scheme: FitScheme = _resolve_scheme(scheme, preset)
        if tr is not None:
            self.scheme = self.scheme.replace(preset=self.scheme.preset.for_tr(tr))
        self.preset: Preset = self.scheme.preset
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
        self.dtype_ = dtype
        self.backend = check_choice("backend", backend, ("auto", "reference"))
        self.fitted = check_names("fit", self.scheme.fit if fit is None else fit, MODEL_PARAM_NAMES,
                                  "parameter names")
        self.regional = check_names("regional", regional, MODEL_PARAM_NAMES, "parameter names")
        if "sigma_out" in self.regional:
            raise ValueError("regional: sigma_out is global only")
        self.sc_preprocess = self.scheme.sc_preprocess if sc_preprocess is None else sc_preprocess
        sc = preprocess_sc(check_tensor("sc", sc, dims=(2, 3), finite=False), method=self.sc_preprocess).to(dtype)
        if init is not None and not isinstance(init, Mapping):
            raise TypeError(f"init: expected a dict of parameter name -> value, got {type(init).__name__}")
        init = dict(init or {})
        unknown = [k for k in init if k not in MODEL_PARAM_NAMES]
        if unknown:
            raise ValueError(f"init: unknown parameter names {unknown}; expected names from {MODEL_PARAM_NAMES}")
        if stream is not None:
            stream = torch.as_tensor(stream, dtype=torch.int64)
        B = _batch_size(sc, init, stream, batch, self.regional)
        self.B, self.N = B, sc.shape[-1]
        self.register_buffer("sc", sc)
        self.register_buffer("stream", torch.arange(B, dtype=torch.int64) if stream is None else stream)
        self.seed = check_seed("seed", seed)
        self.fit_gains = check_bool("fit_gains", self.scheme.gains if fit_gains is None else fit_gains)
        gain_init = self.scheme.gain_form.init if gain_init is None else check_float("gain_init", gain_init)
        self.gains = nn.Parameter(torch.full((B, self.N, self.N), gain_init, dtype=dtype)) if self.fit_gains else None
        self.output_noise = check_bool("output_noise", self.scheme.output_noise if output_noise is None
                                       else output_noise)
        self.rng_by_stream = check_bool("rng_by_stream", rng_by_stream)
        if set(self.derived_names) & set(self.fitted):
            raise ValueError(f"fit: {sorted(set(self.derived_names) & set(self.fitted))} are derived by the scheme's "
                             f"{type(self.scheme.derived).__name__} at every forward; they cannot be fitted")
        for name in MODEL_PARAM_NAMES:
            self._register_parameter(name, init.get(name, self.scheme.init[name]))
        self.hetero = _heterogeneity(heterogeneity, self)

    def _register_parameter(self, name: str, value):
        """Store ``name``'s unconstrained value: an ``nn.Parameter`` when fitted, else a buffer."""
        B, N = self.B, self.N
        regional = name in self.regional
        shape = (B, N) if regional else (B,)
        t = torch.as_tensor(value, dtype=torch.float64)
        if t.dim() == 0:
            t = t.expand(shape)
        elif t.dim() == 1 and regional:
            t = t[:, None].expand(shape) if t.shape[0] == B else t[None, :].expand(shape)
        if tuple(t.shape) != shape:
            raise ValueError(f"init[{name!r}]: expected a float, [B={B}]" + (f" or [B, N={N}]" if regional else "")
                             + f", got shape {list(t.shape)}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"init[{name!r}]: expected finite values")
        raw = self._inverse(name, t).to(self.dtype_).contiguous().clone()
        if name in self.fitted:
            setattr(self, "raw_" + name, nn.Parameter(raw))
        else:
            self.register_buffer("raw_" + name, raw)

    def _apply(self, fn, recurse=True):
        # .double() / .to(dtype) convert every tensor; the dtype the simulations use follows them
        super()._apply(fn, recurse)
        self.dtype_ = self.sc.dtype
        return self

    # ------------------------------------------------------------------ transforms
    def transform(self, name: str, raw: torch.Tensor) -> torch.Tensor:
        """Natural-unit value of parameter ``name`` from its unconstrained value."""
        return self.scheme.transform(name).forward(raw)

    def _inverse(self, name: str, value: torch.Tensor) -> torch.Tensor:
        return self.scheme.transform(name).inverse(name, value)

    def raw(self, name: str) -> torch.Tensor:
        """The unconstrained tensor of ``name`` (``[B]`` or ``[B, N]``)."""
        if name not in MODEL_PARAM_NAMES:
            raise KeyError(f"unknown parameter {name!r}; expected one of {MODEL_PARAM_NAMES}")
        return getattr(self, "raw_" + name)

    @property
    def derived_names(self) -> tuple:
        """The parameters the scheme's derived rule recomputes at every forward (FIC: g_IE)."""
        return () if self.scheme.derived is None else tuple(self.scheme.derived.names)

    def _own_value(self, name: str) -> torch.Tensor:
        v = self.transform(name, self.raw(name))
        return self.hetero[name](name, v) if name in self.hetero else v

    def value(self, name: str) -> torch.Tensor:
        """Natural-unit value of ``name`` (differentiable), ``[B]`` or ``[B, N]`` (derived: as the dynamics see it)."""
        return self.values()[name] if name in self.derived_names else self._own_value(name)

    def values(self) -> dict:
        """All natural-unit values, name -> ``[B]`` or ``[B, N]`` (differentiable), derived ones recomputed."""
        vals = {n: self._own_value(n) for n in MODEL_PARAM_NAMES}
        if self.scheme.derived is not None:
            vals = self.scheme.derived(vals, self.coupling(), self.preset)[0]
        return vals

    @torch.no_grad()
    def derived_report(self) -> dict:
        """The scheme's derived rule's report at the current values (FIC: ``fic_ok # [B, N]``); {} without one."""
        if self.scheme.derived is None:
            return {}
        return self.scheme.derived({n: self._own_value(n) for n in MODEL_PARAM_NAMES}, self.coupling(), self.preset)[1]

    @torch.no_grad()
    def heterogeneity_report(self) -> dict:
        """name -> {kind, maps (names), coef ``[B, K]`` list, projections ``[B]`` (updates that put the
        scale back to its floor)} for the heterogeneous parameters."""
        return {n: dict(kind=m.scaling.kind, maps=list(m.scaling.names), coef=m.coef.detach().cpu().tolist(),
                        projections=m.projections.tolist())
                for n, m in self.hetero.items()}

    def project_(self) -> bool:
        """Put every heterogeneous parameter's coefficients back into their feasible set (after an
        update); whether any moved."""
        return any([bool(m.project_().any()) for m in self.hetero.values()])

    @torch.no_grad()
    def set_values(self, values: Mapping):
        """Set parameters from natural-unit values (float, ``[B]`` or ``[B, N]``; a heterogeneous
        parameter's ``[B, N]`` values are written as ``p (1 + a . maps)`` by least squares)."""
        for name, v in values.items():
            if name in self.derived_names:
                raise ValueError(f"set_values: {name!r} is derived by the scheme at every forward; set the "
                                 f"parameters it is derived from")
            r = self.raw(name)
            t = torch.as_tensor(v, dtype=torch.float64)
            if name in self.hetero and t.dim() == 2:
                t, coef = self.hetero[name].scaling.coefficients_for(t)
                self.hetero[name].set_coefficients(coef)
            if t.dim() == 1 and r.dim() == 2:
                t = t[:, None]
            r.copy_(self._inverse(name, t.expand_as(r)).to(r.dtype))

    @torch.no_grad()
    def set_gains(self, gains):
        if self.gains is None:
            raise ValueError("set_gains: this model has no gains (fit_gains=False)")
        self.gains.copy_(torch.as_tensor(gains, dtype=self.gains.dtype).expand_as(self.gains))

    def coupling(self) -> torch.Tensor:
        """The coupling matrix W the dynamics use: ``[B, N, N]`` with gains, else SC as stored."""
        return coupling_from_gains(self.sc, self.gains, self.scheme.gain_form)

    def sim_params(self) -> dict:
        vals = self.values()
        return {n: vals[n] for n in PARAM_NAMES}

    def initial_state(self, generator: torch.Generator | None = None, seed: int | None = None) -> torch.Tensor:
        """A random initial state ``[B, 6, N]`` (docs/MODEL.md); ``seed`` makes it reproducible (with
        ``rng_by_stream``, each model's from (seed, its stream))."""
        if generator is None and seed is not None and self.rng_by_stream:
            rows = [self.scheme.state_init.draw(1, self.N, torch.Generator().manual_seed(
                derive_seed("state", int(seed), int(s)) % 2**63), self.dtype_) for s in self.stream.tolist()]
            return torch.cat(rows).to(self.sc.device)
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        return self.scheme.state_init.draw(self.B, self.N, generator, self.dtype_).to(self.sc.device)

    @property
    def steps_per_sample(self) -> int:
        return self.preset.steps_per_sample

    # ------------------------------------------------------------------ forward
    def forward(self, n_samples: int | None = None, state: torch.Tensor | None = None,
                step_offset: int = 0, *, n_steps: int | None = None, record_every: int = 0,
                noise: bool = True, seed: int | None = None, output_noise: bool | None = None,
                u: torch.Tensor | None = None, u_every: int | None = None) -> ModelOutput:
        """Simulate ``n_samples`` BOLD samples (or ``n_steps`` steps) from ``state``.

        ``u # [B, n_u, N] | [n_u, N]``: an external input to the excitatory current, one row per
        ``u_every`` steps (default: per BOLD sample), e.g. a task design (see :func:`nmmfit.simulate`).

        ``step_offset`` is the global step of the noise stream: pass the total number of steps
        simulated so far so that consecutive windows draw fresh noise. ``record_every=1`` records
        E and I every step (needed by the entropy loss). The output noise of sample k is keyed
        by (seed, step_offset, k), so the whole run is reproducible from the seed.
        """
        from . import simulate, simulate_ref  # late: the public entry points

        sim = simulate_ref if self.backend == "reference" else simulate

        sps = self.steps_per_sample
        if n_steps is None:
            if n_samples is None:
                raise ValueError("forward: give n_samples or n_steps")
            n_steps = int(n_samples) * sps
        if state is None:
            state = self.initial_state(seed=self.seed)
        seed = self.seed if seed is None else int(seed)
        out = sim(self.coupling(), self.sim_params(), state, int(n_steps), preset=self.preset,
                       steps_per_sample=sps, record_every=record_every, seed=seed,
                       stream=self.stream, step_offset=int(step_offset), noise=noise, u=u, u_every=u_every)
        bold = out.bold
        use_out_noise = self.output_noise if output_noise is None else output_noise
        if use_out_noise and noise and bold.shape[1] > 0:
            if self.rng_by_stream:
                eps = torch.stack([torch.randn(bold.shape[1:], dtype=torch.float64, generator=torch.Generator().manual_seed(
                    derive_seed("bold-noise", seed, int(step_offset), int(s)))) for s in self.stream.tolist()])
            else:
                gen = torch.Generator().manual_seed(derive_seed("bold-noise", seed, int(step_offset)))
                eps = torch.randn(bold.shape, generator=gen, dtype=torch.float64)
            eps = eps.to(bold.dtype).to(bold.device)
            bold = bold + self.value("sigma_out")[:, None, None] * eps
        return ModelOutput(bold, out.E, out.I, out.state)

    def extra_repr(self) -> str:
        return (f"scheme={self.scheme.name}, preset={self.preset.name}, B={self.B}, N={self.N}, fitted={list(self.fitted)}, "
                f"regional={list(self.regional)}, gains={self.fit_gains}, output_noise={self.output_noise}")

    # ------------------------------------------------------------------ config (for save/load)
    def config(self) -> dict:
        """JSON-serialisable constructor arguments (tensors excluded)."""
        return dict(preset=self.preset.name, scheme=self.scheme.name, tr=self.preset.tr * self.preset.time_unit,
                    dt=self.preset.dt, batch=self.B, fit=list(self.fitted),
                    regional=list(self.regional), fit_gains=self.fit_gains,
                    sc_preprocess=self.sc_preprocess, output_noise=self.output_noise,
                    **({"rng_by_stream": True} if self.rng_by_stream else {}),
                    seed=self.seed, backend=self.backend, dtype=str(self.dtype_).replace("torch.", ""),
                    **({"heterogeneity": {n: m.scaling.describe() for n, m in self.hetero.items()}} if self.hetero else {}),
                    **({"derived": repr(self.scheme.derived)} if self.scheme.derived is not None else {}))

    def describe(self, values: Mapping | None = None) -> str:
        """One line per model: the natural-unit values (global) or their regional mean."""
        values = {n: v.detach() for n, v in (values or self.values()).items()}
        lines = []
        for b in range(self.B):
            parts = []
            for n in MODEL_PARAM_NAMES:
                v = torch.as_tensor(values[n])[b]
                parts.append(f"{n}={float(v.mean()):.4g}" + ("(mean)" if v.dim() else ""))
            lines.append(f"[{b}] " + " ".join(parts))
        return "\n".join(lines)


__all__ = ["RWW", "ModelOutput", "MODEL_PARAM_NAMES", "PAPER_INIT", "PAPER_FIT", "paper_init", "preprocess_sc",
           "coupling_from_gains", "random_initial_state", "fc_matrix", "lower_tri", "pearson",
           "fc_correlation"]
