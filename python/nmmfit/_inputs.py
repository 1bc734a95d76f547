"""Validation and canonical layout of simulation inputs, shared by ``simulate`` and ``simulate_ref``.

Everything a user may pass (floats, ``[B]`` or ``[B, N]`` parameters, shared or per-simulation
coupling) is checked here once and brought to one layout, so the kernels and the reference see
identical inputs and every bad argument gets the same clear error.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Mapping

import torch

from ._validate import all_finite
from .presets import PARAM_NAMES, Preset, get_preset

REST_STATE = (0.001, 0.001, 0.0, 1.0, 1.0, 1.0)
"""Default initial (E, I, x, f, v, q): near-silent synapses, hemodynamics at rest."""


@dataclass
class SimInputs:
    W: torch.Tensor        # [N, N] shared or [B, N, N] per simulation
    params: torch.Tensor   # [B, 6, N] in PARAM_NAMES order (may be an expanded view)
    state0: torch.Tensor   # [B, 6, N] in STATE_NAMES order
    stream: torch.Tensor   # [B] int64, the Philox stream index of each simulation
    seed: int
    step_offset: int
    n_steps: int
    steps_per_sample: int
    record_every: int
    checkpoint_every: int
    noise: bool
    preset: Preset
    u: torch.Tensor | None = None   # [B, n_u, N] external input (may be an expanded view), or None
    u_every: int = 1                # steps per row of u

    def op_args(self) -> dict:
        """The arguments of ``nmmfit::simulate`` by schema name (order them with ``_schema.call_by_name``)."""
        return dict(W=self.W, params=self.params, state0=self.state0, stream=self.stream, seed=self.seed,
                    step_offset=self.step_offset, n_steps=self.n_steps, steps_per_sample=self.steps_per_sample,
                    record_every=self.record_every, checkpoint_every=self.checkpoint_every, noise=self.noise,
                    switches=self.preset.switches(), scalars=self.preset.scalars(), u=self.u, u_every=self.u_every)

    @property
    def B(self) -> int:
        return self.params.shape[0]

    @property
    def N(self) -> int:
        return self.params.shape[2]


def _is_tracing() -> bool:
    """Values are not concrete: torch.compile traces, or torch.func transforms (vmap) wrap the tensors."""
    return torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active()


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not minimum <= value < 2**63:
        raise ValueError(f"{name}: expected an int in [{minimum}, 2**63), got {value!r}")
    return int(value)


def _check_finite(named: dict) -> None:
    """Every tensor of ``named`` (argument name -> tensor, all on one device) finite: one host sync
    when they are (this runs on every simulate call, once per window of a fit), the first bad
    argument named when not."""
    if _is_tracing() or all_finite(*named.values()):
        return
    for name, t in named.items():
        if not all_finite(t):
            raise ValueError(f"{name}: expected finite values, got NaN or Inf")


def _batch_of(name, t, ndim_unbatched):
    return t.shape[0] if t.dim() == ndim_unbatched + 1 else None


def _check_W(W) -> None:
    """``W # [N, N] | [B, N, N]``: a non-negative float tensor with data (finite: checked with the
    other tensors by ``prepare_inputs``)."""
    if not isinstance(W, torch.Tensor):
        raise TypeError(f"W: expected a torch.Tensor of shape [N, N] or [B, N, N], got {type(W).__name__}")
    if W.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"W: expected dtype float32 or float64, got {W.dtype}")
    if W.dim() not in (2, 3) or W.shape[-1] != W.shape[-2] or W.shape[-1] < 1:
        raise ValueError(f"W: expected shape [N, N] or [B, N, N] with N >= 1, got {list(W.shape)}")
    if W.device.type == "meta":
        raise ValueError("W: a meta tensor holds no data; give a tensor on the CPU or a GPU")
    if not _is_tracing() and bool((W < 0).any()):
        raise ValueError("W: expected non-negative coupling weights (a connectome), got negative entries")


def _check_counts(preset, n_steps, steps_per_sample, record_every, step_offset, seed, checkpoint_every) -> tuple:
    """The integer arguments, checked: ``(n_steps, steps_per_sample, record_every, step_offset, seed,
    checkpoint_every)`` (defaults resolved)."""
    n_steps = _check_int("n_steps", n_steps, 1)
    sps = preset.steps_per_sample if steps_per_sample is None else steps_per_sample
    sps = _check_int("steps_per_sample", sps, 1)
    record_every = _check_int("record_every", record_every, 0)
    step_offset = _check_int("step_offset", step_offset, 0)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not (0 <= seed < 2**63):
        raise ValueError(f"seed: expected an int in [0, 2**63), got {seed!r}")
    seed = int(seed)
    if step_offset + n_steps >= 2**63:
        raise ValueError("step_offset: step_offset + n_steps must stay below 2**63")
    if checkpoint_every is None:
        checkpoint_every = max(1, math.isqrt(n_steps))
    checkpoint_every = _check_int("checkpoint_every", checkpoint_every, 1)
    return n_steps, sps, record_every, step_offset, seed, checkpoint_every


def _check_params(params, preset, dtype, device, N: int, sizes: dict, finite: dict) -> dict:
    """Each parameter a float or a ``[]``, ``[B]`` or ``[B, N]`` tensor (missing: the preset's
    default); batched ones add their B to ``sizes``, tensors go to ``finite`` to be checked."""
    params = dict(params or {})
    unknown = set(params) - set(PARAM_NAMES)
    if unknown:
        raise ValueError(f"params: unknown names {sorted(unknown)}; expected names from {PARAM_NAMES}")
    tensors = {}
    for name in PARAM_NAMES:
        value = params.get(name, preset.defaults.get(name))
        if value is None:
            raise ValueError(f"params: {name!r} has no value and preset {preset.name!r} has no default")
        if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
            raise TypeError(f"params[{name!r}]: expected a float or a tensor of shape [], [B] or [B, N], got {type(value).__name__}")
        if isinstance(value, torch.Tensor):
            if value.dtype != dtype:
                raise TypeError(f"params[{name!r}]: expected dtype {dtype} (the dtype of W), got {value.dtype}")
            if value.device != device:
                raise ValueError(f"params[{name!r}]: expected device {device} (the device of W), got {value.device}")
            if value.dim() > 2 or (value.dim() == 2 and value.shape[1] != N):
                raise ValueError(f"params[{name!r}]: expected shape [], [B] or [B, {N}], got {list(value.shape)}")
            if value.dim() >= 1:
                sizes[f"params[{name!r}]"] = value.shape[0]
            finite[f"params[{name!r}]"] = value
        elif not math.isfinite(value):
            raise ValueError(f"params[{name!r}]: expected a finite value, got {value!r}")
        tensors[name] = value
    return tensors


def _check_state0(state0, dtype, device, N: int, sizes: dict, finite: dict) -> None:
    """``state0 # [B, 6, N] | [6, N] | None`` in W's dtype and device."""
    if state0 is None:
        return
    if not isinstance(state0, torch.Tensor):
        raise TypeError(f"state0: expected a tensor of shape [B, 6, {N}] or [6, {N}], got {type(state0).__name__}")
    if state0.dtype != dtype or state0.device != device:
        raise TypeError(f"state0: expected dtype {dtype} on {device} (as W), got {state0.dtype} on {state0.device}")
    if state0.dim() not in (2, 3) or tuple(state0.shape[-2:]) != (6, N):
        raise ValueError(f"state0: expected shape [B, 6, {N}] or [6, {N}], got {list(state0.shape)}")
    if state0.dim() == 3:
        sizes["state0"] = state0.shape[0]
    finite["state0"] = state0


def _check_stream(stream, sizes: dict):
    """``stream # [B] | None``: int64 indices in [0, 2**32)."""
    if stream is None:
        return None
    if not isinstance(stream, torch.Tensor):
        stream = torch.as_tensor(stream, dtype=torch.int64)
    if stream.dtype != torch.int64 or stream.dim() != 1:
        raise ValueError(f"stream: expected an int64 tensor of shape [B], got {stream.dtype} of shape {list(stream.shape)}")
    if not _is_tracing() and stream.numel() and bool(((stream < 0) | (stream >= 2**32)).any()):
        raise ValueError("stream: expected values in [0, 2**32)")
    sizes["stream"] = stream.shape[0]
    return stream


def _check_u(u, n_steps: int, u_every: int, dtype, device, N: int, sizes: dict, finite: dict) -> None:
    """``u # [B, n_u, N] | [n_u, N] | None`` with ``n_u = ceil(n_steps / u_every)``."""
    if u is None:
        return
    n_u = -(-n_steps // u_every)
    if not isinstance(u, torch.Tensor):
        raise TypeError(f"u: expected a tensor of shape [B, {n_u}, {N}] or [{n_u}, {N}], got {type(u).__name__}")
    if u.dtype != dtype or u.device != device:
        raise TypeError(f"u: expected dtype {dtype} on {device} (as W), got {u.dtype} on {u.device}")
    if u.dim() not in (2, 3) or tuple(u.shape[-2:]) != (n_u, N):
        raise ValueError(f"u: expected shape [B, {n_u}, {N}] or [{n_u}, {N}] (one row per u_every={u_every} "
                         f"steps of n_steps={n_steps}), got {list(u.shape)}")
    if u.dim() == 3:
        sizes["u"] = u.shape[0]
    finite["u"] = u


def prepare_inputs(W, params: Mapping | None, state0, n_steps, *, preset="griffiths2022",
                   steps_per_sample=None, record_every=0, seed=0, stream=None, step_offset=0,
                   noise=True, checkpoint_every=None, batch=None, u=None, u_every=None) -> SimInputs:
    """Check every argument and return the canonical :class:`SimInputs`.

    Shapes accepted: ``W # [N, N] | [B, N, N]``; each parameter a float, a 0-d tensor, ``[B]``
    (global per simulation) or ``[B, N]`` (regional); ``state0 # [B, 6, N] | [6, N] | None``;
    ``stream # [B] | None`` (default ``arange(B)``); ``u # [B, n_u, N] | [n_u, N] | None`` with
    ``n_u = ceil(n_steps / u_every)``, ``u_every`` defaulting to ``steps_per_sample``. ``B`` is taken
    from whichever argument has a batch dimension (all must agree), else ``batch``, else 1.
    """
    preset = get_preset(preset)
    _check_W(W)
    dtype, device, N = W.dtype, W.device, W.shape[-1]
    n_steps, sps, record_every, step_offset, seed, checkpoint_every = _check_counts(
        preset, n_steps, steps_per_sample, record_every, step_offset, seed, checkpoint_every)
    if not isinstance(noise, bool):
        raise TypeError(f"noise: expected a bool, got {type(noise).__name__}")
    # The batch size: every batched argument must agree.
    sizes = {"W": W.shape[0]} if W.dim() == 3 else {}
    finite = {"W": W}
    tensors = _check_params(params, preset, dtype, device, N, sizes, finite)
    _check_state0(state0, dtype, device, N, sizes, finite)
    stream = _check_stream(stream, sizes)
    u_every = _check_int("u_every", sps if u_every is None else u_every, 1)
    _check_u(u, n_steps, u_every, dtype, device, N, sizes, finite)
    _check_finite(finite)
    if batch is not None:
        sizes["batch"] = _check_int("batch", batch, 1)
    if len(set(sizes.values())) > 1:
        raise ValueError(f"batch size: arguments disagree on B: {sizes}")
    B = next(iter(sizes.values()), 1)
    if B * 6 * N >= 2**63:
        raise ValueError(f"batch: B={B} simulations of N={N} regions are too many to hold in memory")

    cols = []
    for name in PARAM_NAMES:
        v = tensors[name]
        if not isinstance(v, torch.Tensor):
            v = torch.tensor(float(v), dtype=dtype, device=device)
        if v.dim() == 1:
            v = v[:, None]
        cols.append(v.expand(B, N))
    packed = torch.stack(cols, dim=1)  # [B, 6, N]

    if state0 is None:
        state0 = torch.tensor(REST_STATE, dtype=dtype, device=device)[None, :, None].expand(B, 6, N)
    elif state0.dim() == 2:
        state0 = state0.expand(B, 6, N)
    if stream is None:
        stream = torch.arange(B, dtype=torch.int64)
    stream = stream.to(device)
    if u is not None and u.dim() == 2:
        u = u.expand(B, *u.shape)
    return SimInputs(W=W, params=packed, state0=state0, stream=stream, seed=seed,
                     step_offset=step_offset, n_steps=n_steps, steps_per_sample=sps,
                     record_every=record_every, checkpoint_every=checkpoint_every, noise=noise,
                     preset=preset, u=u, u_every=u_every)


class SimOutput(tuple):
    """``(bold, E, I, state)`` returned by ``simulate`` and ``simulate_ref``.

    bold  # [B, S, N]  S = n_steps // steps_per_sample; sample k is taken after step (k+1)*steps_per_sample
    E     # [B, R, N]  R = n_steps // record_every (0 when record_every == 0); after step (k+1)*record_every
    I     # [B, R, N]
    state # [B, 6, N]  (E, I, x, f, v, q) after the last step: pass it as state0 to continue the run
    """

    __slots__ = ()
    _fields = ("bold", "E", "I", "state")

    def __new__(cls, bold, E, I, state):
        return super().__new__(cls, (bold, E, I, state))

    bold = property(lambda self: self[0])
    E = property(lambda self: self[1])
    I = property(lambda self: self[2])
    state = property(lambda self: self[3])
