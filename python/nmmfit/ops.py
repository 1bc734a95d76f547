"""The compiled ops behind :func:`simulate` and :func:`noise`: fake kernels, autograd, dispatch.

``torch.ops.nmmfit.simulate`` runs the fused forward time loop and returns, besides BOLD, the
recorded E/I and the final state, the state checkpoints every ``checkpoint_every`` steps
(``[B, n_seg, 6, N]``). Its backward is ``torch.ops.nmmfit.simulate_backward``: a reverse walk over
the checkpoint segments that recomputes each segment (the Philox noise is a pure function of
(seed, stream, step, node), so it is re-drawn, never stored) and runs the exact discrete adjoint.
Memory of a gradient is O(n_steps / K + K) states per simulation.
"""
from __future__ import annotations

import math
import warnings

import torch
from torch._subclasses.fake_tensor import is_fake

from ._ext import HAS_EXTENSION, build_info, warn_fallback
from ._inputs import SimOutput, prepare_inputs
from .philox import noise_ref
from .reference import simulate_ref

def warn_if_nonfinite(what: str, hint: str, *tensors) -> None:
    """Warn (never silently pass on) NaN/Inf produced by a simulation or its adjoint."""
    tensors = [t for t in tensors if t is not None and t.numel()]
    # Under torch.compile (also while AOT autograd traces the backward) values are not known.
    if torch.compiler.is_compiling() or any(is_fake(t) for t in tensors):
        return
    if not all(bool(torch.isfinite(t).all()) for t in tensors):
        warnings.warn(f"nmmfit: {what} contains NaN or Inf; {hint}", RuntimeWarning, stacklevel=3)


if HAS_EXTENSION:

    @torch.library.register_fake("nmmfit::simulate")
    def _simulate_fake(W, params, state0, stream, seed, step_offset, n_steps, steps_per_sample, record_every,
                       checkpoint_every, noise, switches, scalars, u=None, u_every=1):
        B, _, N = params.shape
        R = n_steps // record_every if record_every > 0 else 0
        n_seg = math.ceil(n_steps / min(checkpoint_every, n_steps))
        return (params.new_empty(B, n_steps // steps_per_sample, N), params.new_empty(B, R, N),
                params.new_empty(B, R, N), params.new_empty(B, 6, N), params.new_empty(B, n_seg, 6, N))

    @torch.library.register_fake("nmmfit::simulate_backward")
    def _simulate_backward_fake(grad_bold, grad_E_rec, grad_I_rec, grad_state, W, params, stream, checkpoints, seed,
                                step_offset, n_steps, steps_per_sample, record_every, checkpoint_every, noise, switches,
                                scalars, need_grad_W, u=None, u_every=1):
        B, _, N = params.shape
        grad_u = torch.empty_like(u) if u is not None else params.new_empty(B, 0, N)
        return torch.empty_like(W), torch.empty_like(params), torch.empty_like(params), grad_u

    @torch.library.register_fake("nmmfit::noise")
    def _noise_fake(seed, stream, N, n_steps, step_offset, dtype):
        return stream.new_empty(stream.shape[0], n_steps, 2, N, dtype=dtype)

    _N_CONFIG = 9   # seed ... scalars: the schema's arguments between stream and the optional input u

    def _setup_context(ctx, inputs, output):
        W, params, state0, stream = inputs[:4]
        rest = inputs[4 + _N_CONFIG:]              # (u, u_every) when passed, else the schema defaults
        u = rest[0] if rest else None
        ctx.save_for_backward(W, params, stream, output[4], u)
        ctx.config = inputs[4:4 + _N_CONFIG]
        ctx.u_every = rest[1] if len(rest) > 1 else 1
        ctx.n_inputs = len(inputs)

    def _simulate_backward(ctx, grad_bold, grad_E_rec, grad_I_rec, grad_state, grad_checkpoints):
        W, params, stream, checkpoints, u = ctx.saved_tensors
        grad_W, grad_params, grad_state0, grad_u = torch.ops.nmmfit.simulate_backward(
            grad_bold, grad_E_rec, grad_I_rec, grad_state, W, params, stream, checkpoints, *ctx.config,
            ctx.needs_input_grad[0], u, ctx.u_every)
        warn_if_nonfinite("the gradient of simulate", "the adjoint overflowed: the dynamics are unstable or "
                          "chaotic at these parameters over this horizon (float32 overflows first): use float64, "
                          "shorter windows or weaker coupling", grad_W, grad_params, grad_state0, grad_u)
        grads = [grad_W if ctx.needs_input_grad[0] else None, grad_params, grad_state0]
        grads += [None] * (ctx.n_inputs - 3)
        if u is not None and ctx.needs_input_grad[4 + _N_CONFIG]:
            grads[4 + _N_CONFIG] = grad_u
        return tuple(grads)

    torch.library.register_autograd("nmmfit::simulate", _simulate_backward, setup_context=_setup_context)


def _require_kernel(device: torch.device) -> bool:
    """True when the compiled op can run on ``device``; warns once and returns False without the extension."""
    if not HAS_EXTENSION:
        warn_fallback()
        return False
    if device.type == "cuda" and not build_info()["cuda"]:
        raise RuntimeError("nmmfit: the extension was not compiled with CUDA (torch is a CPU build or no CUDA "
                           "toolkit was found at build time); pass CPU tensors or use nmmfit.simulate_ref")
    if device.type not in ("cpu", "cuda"):
        raise RuntimeError(f"nmmfit: no kernel for device {device}; use nmmfit.simulate_ref")
    return True


def simulate(W, params=None, state0=None, n_steps=1, *, preset="griffiths2022", steps_per_sample=None,
             record_every=0, seed=0, stream=None, step_offset=0, noise=True, checkpoint_every=None,
             batch=None, u=None, u_every=None) -> SimOutput:
    """Simulate B connectome-based neural mass models with the fused kernels (differentiable).

    Same arguments, conventions and result as :func:`nmmfit.simulate_ref` (see its docstring for the
    equations): ``W # [N, N] | [B, N, N]``; each of ``params`` (g, g_EE, g_IE, g_EI, I_0, sigma) a
    float, ``[B]`` or ``[B, N]``; ``state0 # [B, 6, N] | [6, N] | None``; ``stream # [B]``;
    ``u # [B, n_u, N] | [n_u, N] | None`` the external input to J_E, row ``t // u_every``.
    Returns ``SimOutput(bold # [B, S, N], E # [B, R, N], I # [B, R, N], state # [B, 6, N])``.

    ``checkpoint_every`` (K, default ~sqrt(n_steps)) sets the memory/compute trade-off of the
    backward pass: K + n_steps / K states per simulation are held, and each segment is recomputed
    once. Falls back to the reference (with a warning) when the extension is not built.
    """
    inp = prepare_inputs(W, params, state0, n_steps, preset=preset, steps_per_sample=steps_per_sample,
                         record_every=record_every, seed=seed, stream=stream, step_offset=step_offset,
                         noise=noise, checkpoint_every=checkpoint_every, batch=batch, u=u, u_every=u_every)
    if not _require_kernel(inp.W.device):
        return simulate_ref(W, params, state0, n_steps, preset=preset, steps_per_sample=steps_per_sample,
                            record_every=record_every, seed=seed, stream=stream, step_offset=step_offset,
                            noise=noise, batch=batch, u=u, u_every=u_every)
    bold, E, I, state, _ = torch.ops.nmmfit.simulate(
        inp.W, inp.params, inp.state0, inp.stream, inp.seed, inp.step_offset, inp.n_steps, inp.steps_per_sample,
        inp.record_every, inp.checkpoint_every, inp.noise, inp.preset.switches(), inp.preset.scalars(),
        inp.u, inp.u_every)
    warn_if_nonfinite("the simulated BOLD or state", "the parameters leave the model unstable (check the "
                      "hemodynamic states; a smaller dt or weaker coupling may help)", bold, state)
    return SimOutput(bold, E, I, state)


def noise(seed: int, stream, n_nodes: int, n_steps: int, step_offset: int = 0, dtype=torch.float32) -> torch.Tensor:
    """The exact normals every simulation draws: ``[B, n_steps, 2, N]`` (axis 2: xi_E, xi_I).

    ``stream # [B]`` int64 stream indices (an int B means ``arange(B)``), on the device to use.
    """
    if isinstance(stream, int):
        stream = torch.arange(stream, dtype=torch.int64)
    if not isinstance(seed, int) or isinstance(seed, bool) or not (0 <= seed < 2**63):
        raise ValueError(f"seed: expected an int in [0, 2**63), got {seed!r}")
    for name, v, lo in (("n_nodes", n_nodes, 1), ("n_steps", n_steps, 0), ("step_offset", step_offset, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name}: expected an int >= {lo}, got {v!r}")
    if not isinstance(stream, torch.Tensor) or stream.dtype != torch.int64 or stream.dim() != 1:
        raise ValueError("stream: expected an int B or an int64 tensor of shape [B]")
    if not _require_kernel(stream.device):
        return noise_ref(seed, stream, n_nodes, n_steps, step_offset=step_offset, dtype=dtype, device=stream.device)
    return torch.ops.nmmfit.noise(seed, stream, n_nodes, n_steps, step_offset, dtype)
