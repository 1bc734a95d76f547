"""The fitting model: ``nmmfit.RWW``, an ``nn.Module`` over :func:`nmmfit.simulate`.

It holds the *unconstrained* parameters that the optimizer updates and applies the transforms of
MODEL.md to get the values the dynamics use:

==========  ===========================  =====================================
parameter   griffiths2022 (paper)         deco2014 (natural units)
==========  ===========================  =====================================
g           g (unconstrained)             g = G * J_NMDA (identity)
g_EE        0.001 + relu(p)               identity
g_IE        0.001 + relu(p)               identity
g_EI        0.001 + relu(p)               identity
I_0         identity (fixed at 0.2)       identity (fixed at 0.382)
sigma       0.02 + relu(std_in)           identity
sigma_out   0.001 + relu(std_out)         identity (0: no output noise)
==========  ===========================  =====================================

The coupling matrix comes from structural connectivity ``SC`` (preprocessed once) and learnable
gains ``w`` (init 0.05): ``Wg = (1 + tanh(w)) * SC``, ``Ws = (Wg + Wg^T) / 2``,
``W = Ws * ||SC||_F / ||Ws||_F``. For the paper's preprocessing ``||SC||_F = 1``, so this is
exactly ``W = Ws / ||Ws||_F`` of MODEL.md; for other preprocessings the overall scale of the
connectome is kept. Zeros of SC stay zero; the diagonal stays zero.

A module holds a batch of ``B`` independent models (subjects and/or random restarts). Every
parameter is either global (``[B]``) or regional (``[B, N]``); any subset can be fitted, the rest
are buffers. The SC may be shared (``[N, N]``) or per model (``[B, N, N]``); gains are always per
model (``[B, N, N]``) so that models stay independent.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from .presets import PARAM_NAMES, Preset, get_preset

MODEL_PARAM_NAMES = PARAM_NAMES + ("sigma_out",)
"""Parameters the model holds: the six of the dynamics plus the BOLD output-noise std."""

# Per preset: name -> (offset, relu?) so that value = offset + relu(raw) (or raw when relu is False).
_TRANSFORMS = {
    "griffiths2022": dict(g=(0.0, False), g_EE=(0.001, True), g_IE=(0.001, True),
                          g_EI=(0.001, True), I_0=(0.0, False), sigma=(0.02, True),
                          sigma_out=(0.001, True)),
}
_IDENTITY = {name: (0.0, False) for name in MODEL_PARAM_NAMES}

PAPER_INIT = dict(g=80.0, g_EE=2.5, g_IE=0.101, g_EI=0.101, I_0=0.2, sigma=0.07, sigma_out=0.021)
"""Initial values of the paper's HCP fits (griffiths2022), in natural units: g and g_EE drawn
around 80 and 2.5 (+-3 x 0.1), raw g_IE = g_EI = 0.1, std_in = 0.05, std_out = 0.02."""

PAPER_FIT = ("g", "g_EE", "g_IE", "g_EI", "sigma", "sigma_out")
"""The parameters the paper learns (I_0 is fixed)."""


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


def preprocess_sc(sc, *, method: str = "log1p_fro") -> torch.Tensor:
    """Structural connectivity as the model uses it.

    ``method``:
      - ``"log1p_fro"`` (MODEL.md, the paper): zero the diagonal, symmetrise, log1p, divide by the
        Frobenius norm (per matrix when batched).
      - ``"max_log1p_fro"``: the same after dividing by the maximum first. For raw streamline
        counts (e.g. hcp_aal2, max ~9e6) log1p alone flattens the SC to nearly uniform weights and
        the model loses its FC structure; weights already in [0, 1] (the paper's Hagmann SC, max
        0.51) are almost unchanged by it.
      - ``"max"``: zero the diagonal, symmetrise, divide by the maximum (deco2014-style).
      - ``"none"``: use as given (must be symmetric with a zero diagonal for the gains to be exact).
    Accepts ``[N, N]`` or ``[B, N, N]`` (numpy or torch); returns a float tensor of the same shape.
    """
    sc = torch.as_tensor(sc)
    if not sc.is_floating_point():
        sc = sc.to(torch.float64)
    if sc.dim() not in (2, 3) or sc.shape[-1] != sc.shape[-2]:
        raise ValueError(f"sc: expected shape [N, N] or [B, N, N], got {list(sc.shape)}")
    if not bool(torch.isfinite(sc).all()):
        raise ValueError("sc: expected finite values, got NaN or Inf")
    if bool((sc < 0).any()):
        raise ValueError("sc: expected non-negative weights (a connectome), got negative entries")
    if method == "none":
        return sc.clone()
    eye = torch.eye(sc.shape[-1], dtype=torch.bool, device=sc.device)
    sc = sc.masked_fill(eye, 0.0)
    sc = 0.5 * (sc + sc.transpose(-1, -2))
    if method in ("log1p_fro", "max_log1p_fro"):
        if method == "max_log1p_fro":
            sc = sc / sc.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-300)
        sc = torch.log1p(sc)
        norm = torch.linalg.matrix_norm(sc, ord="fro", keepdim=True)
    elif method == "max":
        norm = sc.amax(dim=(-2, -1), keepdim=True)
    else:
        raise ValueError(f"sc preprocessing: expected 'log1p_fro', 'max_log1p_fro', 'max' or 'none', got {method!r}")
    if bool((norm == 0).any()):
        raise ValueError("sc: the structural connectivity is all zeros (after removing the diagonal)")
    return sc / norm


def coupling_from_gains(sc: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """``W = Ws * ||SC||_F / ||Ws||_F`` with ``Ws = sym((1 + tanh(w)) * SC)`` (MODEL.md).

    ``sc # [N, N] | [B, N, N]``, ``w # [B, N, N] | None`` (None: no gains, W = SC).
    """
    if w is None:
        return sc
    wg = (1.0 + torch.tanh(w)) * sc
    ws = 0.5 * (wg + wg.transpose(-1, -2))
    ref = torch.linalg.matrix_norm(sc, ord="fro", keepdim=True)
    return ws * (ref / torch.linalg.matrix_norm(ws, ord="fro", keepdim=True))


def random_initial_state(B: int, N: int, *, generator: torch.Generator | None = None,
                         dtype=torch.float32, preset="griffiths2022") -> torch.Tensor:
    """Initial state ``[B, 6, N]``: griffiths2022 ``0.45 U(0,1) + (0, 0, 0, 1, 1, 1)`` (MODEL.md);
    deco2014 ``E = I = 0.001 + 0.01 U(0,1)``, ``x = 0``, ``f = v = q = 1``."""
    preset = get_preset(preset)
    u = torch.rand(B, 6, N, generator=generator, dtype=torch.float64)
    if preset.name == "deco2014":
        s = torch.zeros(B, 6, N, dtype=torch.float64)
        s[:, :2] = 0.001 + 0.01 * u[:, :2]
        s[:, 3:] = 1.0
    else:
        s = 0.45 * u + torch.tensor([0, 0, 0, 1.0, 1.0, 1.0], dtype=torch.float64)[None, :, None]
    return s.to(dtype)


def _seed_int(*parts) -> int:
    """A 63-bit integer derived from ``parts`` (stable across runs and platforms)."""
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & (2**63 - 1)


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
        preset: ``"griffiths2022"`` (default) or ``"deco2014"`` or a :class:`nmmfit.Preset`.
        batch: number of models B (taken from ``sc`` or ``init`` when they are batched).
        fit: names of the parameters to learn (others are fixed buffers). Default: the paper's
            ``("g", "g_EE", "g_IE", "g_EI", "sigma", "sigma_out")``.
        regional: names of the parameters that are per region (``[B, N]``); the rest are global.
        init: initial values in natural units: name -> float, ``[B]`` or ``[B, N]`` (numpy/torch).
            Missing names take :data:`PAPER_INIT` (griffiths2022) or the preset defaults.
        fit_gains: learn the SC gains ``w`` (griffiths2022 default True, deco2014 default False).
        gain_init: initial value of every gain (0.05, as in the paper).
        sc_preprocess: ``"log1p_fro"`` (griffiths2022 default, MODEL.md), ``"max_log1p_fro"`` (for raw
            streamline counts, see :func:`preprocess_sc`), ``"max"`` (deco2014 default), ``"none"``.
        output_noise: add ``sigma_out * N(0, 1)`` to every BOLD sample (default True for griffiths2022).
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
    """

    def __init__(self, sc, *, preset="griffiths2022", batch: int | None = None,
                 fit: Iterable[str] | None = None, regional: Iterable[str] = (),
                 init: Mapping | None = None, fit_gains: bool | None = None, gain_init: float = 0.05,
                 sc_preprocess: str | None = None, output_noise: bool | None = None,
                 rng_by_stream: bool = False, seed: int = 0,
                 stream=None, backend: str = "auto", dtype=torch.float32):
        super().__init__()
        self.preset: Preset = get_preset(preset)
        paper = self.preset.name == "griffiths2022"
        self._transforms = _TRANSFORMS.get(self.preset.name, _IDENTITY)
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
        self.dtype_ = dtype
        if backend not in ("auto", "reference"):
            raise ValueError(f"backend: expected 'auto' or 'reference', got {backend!r}")
        self.backend = backend
        fit = tuple(PAPER_FIT if fit is None else fit)
        regional = tuple(regional)
        for label, names in (("fit", fit), ("regional", regional)):
            bad = [n for n in names if n not in MODEL_PARAM_NAMES]
            if bad:
                raise ValueError(f"{label}: unknown parameter names {bad}; expected names from {MODEL_PARAM_NAMES}")
        if "sigma_out" in regional:
            raise ValueError("regional: sigma_out is global only")
        self.fitted = fit
        self.regional = regional

        if sc_preprocess is None:
            sc_preprocess = "log1p_fro" if paper else "max"
        sc = preprocess_sc(sc, method=sc_preprocess).to(dtype)
        N = sc.shape[-1]
        init = dict(init or {})
        unknown = set(init) - set(MODEL_PARAM_NAMES)
        if unknown:
            raise ValueError(f"init: unknown parameter names {sorted(unknown)}; expected names from {MODEL_PARAM_NAMES}")

        # Batch size: from sc, init tensors, stream or batch; all must agree.
        sizes = {}
        if sc.dim() == 3:
            sizes["sc"] = sc.shape[0]
        for name, v in init.items():
            if not isinstance(v, (int, float)):
                t = torch.as_tensor(v)
                if t.dim() >= 1:
                    sizes[f"init[{name!r}]"] = t.shape[0]
        if stream is not None:
            stream = torch.as_tensor(stream, dtype=torch.int64)
            sizes["stream"] = stream.shape[0]
        if batch is not None:
            sizes["batch"] = int(batch)
        if len(set(sizes.values())) > 1:
            raise ValueError(f"batch size: arguments disagree on B: {sizes}")
        B = next(iter(sizes.values()), 1)
        if B < 1:
            raise ValueError(f"batch: expected B >= 1, got {B}")
        self.B, self.N = B, N
        self.register_buffer("sc", sc)
        self.register_buffer("stream", torch.arange(B, dtype=torch.int64) if stream is None else stream)
        self.seed = int(seed)
        self.sc_preprocess = sc_preprocess

        if fit_gains is None:
            fit_gains = paper
        self.fit_gains = bool(fit_gains)
        if self.fit_gains:
            self.gains = nn.Parameter(torch.full((B, N, N), float(gain_init), dtype=dtype))
        else:
            self.gains = None
        self.output_noise = paper if output_noise is None else bool(output_noise)
        self.rng_by_stream = bool(rng_by_stream)

        defaults = dict(self.preset.defaults)
        defaults["sigma_out"] = 0.02 if paper else 0.0
        if paper:
            defaults.update(PAPER_INIT)
        for name in MODEL_PARAM_NAMES:
            value = init.get(name, defaults[name])
            shape = (B, N) if name in regional else (B,)
            t = torch.as_tensor(value, dtype=torch.float64)
            if t.dim() == 0:
                t = t.expand(shape)
            elif t.dim() == 1 and name in regional:
                t = t[:, None].expand(shape) if t.shape[0] == B else t[None, :].expand(shape)
            if tuple(t.shape) != shape:
                raise ValueError(f"init[{name!r}]: expected a float, [B={B}]" + (f" or [B, N={N}]" if name in regional else "")
                                 + f", got shape {list(t.shape)}")
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"init[{name!r}]: expected finite values")
            raw = self._inverse(name, t).to(dtype).contiguous().clone()
            if name in fit:
                setattr(self, "raw_" + name, nn.Parameter(raw))
            else:
                self.register_buffer("raw_" + name, raw)

    # ------------------------------------------------------------------ transforms
    def _inverse(self, name, value: torch.Tensor) -> torch.Tensor:
        offset, relu = self._transforms[name]
        if relu:
            if bool((value < offset * (1 - 1e-6)).any()):
                raise ValueError(f"init[{name!r}]: the {self.preset.name} transform {offset} + relu(p) "
                                 f"cannot give values below {offset}; got min {float(value.min()):g}")
            return (value - offset).clamp_min(0.0)
        return value - offset

    def transform(self, name: str, raw: torch.Tensor) -> torch.Tensor:
        """Natural-unit value of parameter ``name`` from its unconstrained value."""
        offset, relu = self._transforms[name]
        return (offset + torch.relu(raw)) if relu else (raw + offset if offset else raw)

    def raw(self, name: str) -> torch.Tensor:
        """The unconstrained tensor of ``name`` (``[B]`` or ``[B, N]``)."""
        if name not in MODEL_PARAM_NAMES:
            raise KeyError(f"unknown parameter {name!r}; expected one of {MODEL_PARAM_NAMES}")
        return getattr(self, "raw_" + name)

    def value(self, name: str) -> torch.Tensor:
        """Natural-unit value of ``name`` (differentiable), ``[B]`` or ``[B, N]``."""
        return self.transform(name, self.raw(name))

    def values(self) -> dict:
        """All natural-unit values, name -> ``[B]`` or ``[B, N]`` (differentiable)."""
        return {n: self.value(n) for n in MODEL_PARAM_NAMES}

    @torch.no_grad()
    def set_values(self, values: Mapping):
        """Set parameters from natural-unit values (float, ``[B]`` or ``[B, N]``)."""
        for name, v in values.items():
            r = self.raw(name)
            t = torch.as_tensor(v, dtype=torch.float64)
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
        return coupling_from_gains(self.sc, self.gains)

    def sim_params(self) -> dict:
        return {n: self.value(n) for n in PARAM_NAMES}

    def initial_state(self, generator: torch.Generator | None = None, seed: int | None = None) -> torch.Tensor:
        """A random initial state ``[B, 6, N]`` (MODEL.md); ``seed`` makes it reproducible (with
        ``rng_by_stream``, each model's from (seed, its stream))."""
        if generator is None and seed is not None and self.rng_by_stream:
            rows = [random_initial_state(1, self.N, generator=torch.Generator().manual_seed(
                _seed_int("state", int(seed), int(s)) % 2**63), dtype=self.dtype_, preset=self.preset)
                for s in self.stream.tolist()]
            return torch.cat(rows).to(self.sc.device)
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        return random_initial_state(self.B, self.N, generator=generator, dtype=self.dtype_,
                                    preset=self.preset).to(self.sc.device)

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
                    _seed_int("bold-noise", seed, int(step_offset), int(s)))) for s in self.stream.tolist()])
            else:
                gen = torch.Generator().manual_seed(_seed_int("bold-noise", seed, int(step_offset)))
                eps = torch.randn(bold.shape, generator=gen, dtype=torch.float64)
            eps = eps.to(bold.dtype).to(bold.device)
            bold = bold + self.value("sigma_out")[:, None, None] * eps
        return ModelOutput(bold, out.E, out.I, out.state)

    def extra_repr(self) -> str:
        return (f"preset={self.preset.name}, B={self.B}, N={self.N}, fitted={list(self.fitted)}, "
                f"regional={list(self.regional)}, gains={self.fit_gains}, output_noise={self.output_noise}")

    # ------------------------------------------------------------------ config (for save/load)
    def config(self) -> dict:
        """JSON-serialisable constructor arguments (tensors excluded)."""
        return dict(preset=self.preset.name, batch=self.B, fit=list(self.fitted),
                    regional=list(self.regional), fit_gains=self.fit_gains,
                    sc_preprocess=self.sc_preprocess, output_noise=self.output_noise,
                    **({"rng_by_stream": True} if self.rng_by_stream else {}),
                    seed=self.seed, backend=self.backend, dtype=str(self.dtype_).replace("torch.", ""))

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


def fc_matrix(bold: torch.Tensor) -> torch.Tensor:
    """Pearson FC of ``bold # [..., T, N]`` -> ``[..., N, N]`` (differentiable)."""
    x = bold - bold.mean(dim=-2, keepdim=True)
    cov = x.transpose(-1, -2) @ x
    # + 1e-20: a constant series gives FC 0 with finite gradients instead of 0/0
    d = torch.sqrt(torch.diagonal(cov, dim1=-2, dim2=-1) + 1e-20)
    return cov / (d[..., :, None] * d[..., None, :])


def lower_tri(m: torch.Tensor) -> torch.Tensor:
    """Lower triangle (k = -1) of ``[..., N, N]`` -> ``[..., N(N-1)/2]`` (numpy ``tril_indices`` order)."""
    N = m.shape[-1]
    i, j = np.tril_indices(N, -1)
    return m[..., torch.as_tensor(i), torch.as_tensor(j)]


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation along the last dim (differentiable)."""
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    return (a * b).sum(-1) / torch.sqrt((a * a).sum(-1) * (b * b).sum(-1) + 1e-30)


def fc_correlation(bold_a: torch.Tensor, bold_b: torch.Tensor) -> torch.Tensor:
    """Correlation of the FC lower triangles of two BOLD sets ``[..., T, N]`` -> ``[...]``."""
    return pearson(lower_tri(fc_matrix(bold_a)), lower_tri(fc_matrix(bold_b)))


__all__ = ["RWW", "ModelOutput", "MODEL_PARAM_NAMES", "PAPER_INIT", "PAPER_FIT", "paper_init", "preprocess_sc",
           "coupling_from_gains", "random_initial_state", "fc_matrix", "lower_tri", "pearson",
           "fc_correlation"]

