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
from torch._functorch.utils import enable_single_level_autograd_function
from torch._subclasses.fake_tensor import is_fake

from ._ext import HAS_EXTENSION, build_info, run_interruptible, warn_fallback
from ._inputs import SimOutput, prepare_inputs
from ._validate import all_finite
from .philox import noise_ref
from .reference import simulate_ref

def warn_if_nonfinite(what: str, hint: str, *tensors) -> None:
    """Warn (never silently pass on) NaN/Inf produced by a simulation or its adjoint."""
    tensors = [t for t in tensors if t is not None and t.numel()]
    # Under torch.compile (also while AOT autograd traces the backward) and torch.func transforms
    # values are not known.
    if (torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active()
            or any(is_fake(t) for t in tensors)):
        return
    if not all_finite(*tensors):
        warnings.warn(f"nmmfit: {what} contains NaN or Inf; {hint}", RuntimeWarning, stacklevel=3)


if HAS_EXTENSION:
    from . import _schema
    from ._schema import NO_DOUBLE_BACKWARD, NO_FORWARD_AD, args_by_name, ordered

    @torch.library.register_fake("nmmfit::simulate")
    def _simulate_fake(*args):
        a = args_by_name(_schema.SIMULATE, args)
        B, _, N = a["params"].shape
        n_steps, like = a["n_steps"], a["params"]
        R = n_steps // a["record_every"] if a["record_every"] > 0 else 0
        n_seg = math.ceil(n_steps / min(a["checkpoint_every"], n_steps))
        return (like.new_empty(B, n_steps // a["steps_per_sample"], N), like.new_empty(B, R, N),
                like.new_empty(B, R, N), like.new_empty(B, 6, N), like.new_empty(B, n_seg, 6, N))

    @torch.library.register_fake("nmmfit::simulate_backward")
    def _simulate_backward_fake(*args):
        a = args_by_name(_schema.SIMULATE_BACKWARD, args)
        W, params, u = a["W"], a["params"], a["u"]
        grad_u = torch.empty_like(u) if u is not None else params.new_empty(params.shape[0], 0, params.shape[2])
        return torch.empty_like(W), torch.empty_like(params), torch.empty_like(params), grad_u

    @torch.library.register_fake("nmmfit::noise")
    def _noise_fake(*args):
        a = args_by_name(_schema.NOISE, args)
        return a["stream"].new_empty(a["stream"].shape[0], a["n_steps"], 2, a["N"], dtype=a["dtype"])

    def _apply_in_autograd_kernel(fn, args):
        """fn applied as a builtin op's autograd formula is. Function.apply would hand it to functorch's
        custom_function_call, which cannot be entered from inside an Autograd kernel; the underlying
        C++ apply records the node on the inputs at the current functorch level, as a builtin op's
        Autograd kernel does (so torch.func.grad and jacrev work, and forward-mode AD reaches fn.jvp)."""
        with enable_single_level_autograd_function():
            return super(torch.autograd.Function, fn).apply(*args)

    class _Simulate(torch.autograd.Function):
        """The autograd formula of nmmfit::simulate: the adjoint op; forward-mode AD raises (the kernels
        have no tangent pass)."""

        @staticmethod
        def forward(*args):
            with torch._C._AutoDispatchBelowAutograd():
                return torch.ops.nmmfit.simulate.default(*args)

        @staticmethod
        def setup_context(ctx, inputs, output):
            a = args_by_name(_schema.SIMULATE, inputs)
            checkpoints = output[_schema.SIMULATE_OUT["checkpoints"]]
            ctx.mark_non_differentiable(checkpoints)
            ctx.save_for_backward(a["W"], a["params"], a["stream"], checkpoints, a["u"])
            ctx.config = {k: a[k] for k in _schema.CONFIG}

        @staticmethod
        def backward(ctx, grad_bold, grad_E_rec, grad_I_rec, grad_state, _grad_checkpoints):
            W, params, stream, checkpoints, u = ctx.saved_tensors
            need = dict(zip(_schema.SIMULATE_ARGS, ctx.needs_input_grad))
            values = dict(ctx.config, grad_bold=grad_bold, grad_E_rec=grad_E_rec, grad_I_rec=grad_I_rec,
                          grad_state=grad_state, W=W, params=params, stream=stream, checkpoints=checkpoints, u=u,
                          need_grad_W=need["W"])
            grad_W, grad_params, grad_state0, grad_u = run_interruptible(
                torch.ops.nmmfit.simulate_backward.default, *ordered(_schema.SIMULATE_BACKWARD_ARGS, values))
            warn_if_nonfinite("the gradient of simulate", "the adjoint overflowed: the dynamics are unstable or "
                              "chaotic at these parameters over this horizon (float32 overflows first): use float64, "
                              "shorter windows or weaker coupling", grad_W, grad_params, grad_state0, grad_u)
            grads = dict(W=grad_W, params=grad_params, state0=grad_state0, u=grad_u if u is not None else None)
            return tuple(grads.get(name) if need[name] else None for name in _schema.SIMULATE_ARGS)

        @staticmethod
        def jvp(ctx, *tangents):
            raise NotImplementedError(NO_FORWARD_AD)

    class _SimulateBackward(torch.autograd.Function):
        """The autograd formula of nmmfit::simulate_backward: none; a second derivative raises."""

        @staticmethod
        def forward(*args):
            with torch._C._AutoDispatchBelowAutograd():
                return torch.ops.nmmfit.simulate_backward.default(*args)

        @staticmethod
        def setup_context(ctx, inputs, output):
            pass

        @staticmethod
        def backward(ctx, *grads):
            raise RuntimeError(NO_DOUBLE_BACKWARD)

        @staticmethod
        def jvp(ctx, *tangents):
            raise NotImplementedError(NO_DOUBLE_BACKWARD)

    # Autograd kernels registered by hand rather than with torch.library.register_autograd, whose
    # generated Function has no setup_context (torch.func fails on it) and is skipped when no input
    # requires grad (forward-mode AD then silently yields zero tangents). The dispatcher drops trailing
    # arguments equal to their defaults; they are restored for the Functions.
    _AUTOGRAD_LIB = torch.library.Library("nmmfit", "IMPL")
    _AUTOGRAD_LIB.impl("simulate", lambda *args: _apply_in_autograd_kernel(
        _Simulate, _schema.fill_defaults(_schema.SIMULATE, args)), "Autograd")
    _AUTOGRAD_LIB.impl("simulate_backward", lambda *args: _apply_in_autograd_kernel(
        _SimulateBackward, _schema.fill_defaults(_schema.SIMULATE_BACKWARD, args)), "Autograd")

    def _batch_size(t, dim):
        """B of a [B, ...] argument that is vmapped at physical dimension dim (or not: None)."""
        return t.shape[0] if dim is None else t.movedim(dim, 0).shape[1]

    def _fold(t, dim, V, B):
        """t [B, ...] (vmapped at dim, or the same for every vmapped entry) as [V * B, ...]."""
        t = t.movedim(dim, 0) if dim is not None else t.expand(V, *t.shape)
        return t.reshape(V * B, *t.shape[2:])

    def _fold_W(W, dim, V, B):
        """W [N, N] not vmapped stays shared; otherwise [V * B, N, N], one coupling per folded simulation."""
        if dim is None and W.dim() == 2:
            return W
        W = W.movedim(dim, 0) if dim is not None else W.expand(V, *W.shape)   # [V, N, N] | [V, B, N, N]
        if W.dim() == 3:
            W = W.unsqueeze(1)
        return W.expand(V, B, *W.shape[-2:]).reshape(V * B, *W.shape[-2:])

    @torch.library.register_vmap("nmmfit::simulate")
    def _vmap_simulate(info, in_dims, *args):
        """vmap of simulate as one call: the vmapped dimension folded into the simulation batch B."""
        V = info.batch_size
        a, d = args_by_name(_schema.SIMULATE, args), args_by_name(_schema.SIMULATE, in_dims)
        B = _batch_size(a["params"], d["params"])
        a = dict(a, W=_fold_W(a["W"], d["W"], V, B), params=_fold(a["params"], d["params"], V, B),
                 state0=_fold(a["state0"], d["state0"], V, B), stream=_fold(a["stream"], d["stream"], V, B),
                 u=None if a["u"] is None else _fold(a["u"], d["u"], V, B))
        out = torch.ops.nmmfit.simulate.default(*ordered(_schema.SIMULATE_ARGS, a))
        return tuple(o.reshape(V, B, *o.shape[1:]) for o in out), (0,) * len(out)

    @torch.library.register_vmap("nmmfit::simulate_backward")
    def _vmap_simulate_backward(info, in_dims, *args):
        """vmap of simulate_backward (torch.func.jacrev) as one call, W always per folded simulation so
        that each vmapped entry gets its own dL/dW (summed over B again when W is shared)."""
        V = info.batch_size
        a, d = args_by_name(_schema.SIMULATE_BACKWARD, args), args_by_name(_schema.SIMULATE_BACKWARD, in_dims)
        B = _batch_size(a["params"], d["params"])
        shared_W = a["W"].dim() == (2 if d["W"] is None else 3)
        per_simulation = ("grad_bold", "grad_E_rec", "grad_I_rec", "grad_state", "params", "stream", "checkpoints", "u")
        folded = {k: None if a[k] is None else _fold(a[k], d[k], V, B) for k in per_simulation}
        W = a["W"] if d["W"] is not None or a["W"].dim() == 3 else a["W"].expand(B, *a["W"].shape)
        a = dict(a, **folded, W=_fold_W(W, d["W"], V, B))
        grad_W, grad_params, grad_state0, grad_u = torch.ops.nmmfit.simulate_backward.default(
            *ordered(_schema.SIMULATE_BACKWARD_ARGS, a))
        grad_W = grad_W.reshape(V, B, *grad_W.shape[1:])
        unfolded = (g.reshape(V, B, *g.shape[1:]) for g in (grad_params, grad_state0, grad_u))
        return (grad_W.sum(1) if shared_W else grad_W, *unfolded), (0,) * 4


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
    bold, E, I, state, _ = run_interruptible(torch.ops.nmmfit.simulate.default,
                                             *ordered(_schema.SIMULATE_ARGS, inp.op_args()))
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
