"""Pure-PyTorch Philox4x32-10 and the state-noise stream of the simulations.

Philox4x32-10 is the counter-based generator of Salmon, Moraes, Dror & Shaw (2011), "Parallel
random numbers: as easy as 1, 2, 3" (SC11), with the Random123 constants:

    multipliers  M0 = 0xD2511F53, M1 = 0xCD9E8D57
    Weyl key increments  W0 = 0x9E3779B9, W1 = 0xBB67AE85
    one round (all arithmetic mod 2**32):
        hi0:lo0 = M0 * c0,  hi1:lo1 = M1 * c2            (32x32 -> 64-bit products)
        c = (hi1 ^ c1 ^ k0,  lo1,  hi0 ^ c3 ^ k1,  lo0)
    10 rounds; the key is bumped (k0 += W0, k1 += W1) between consecutive rounds.

Words are carried in int64 tensors holding values in [0, 2**32); the 64-bit product is formed
from 16-bit limbs so that no intermediate exceeds 2**49 (no signed overflow anywhere).

Noise layout (the C++ host and device kernels implement the identical function)
------------------------------------------------------------------------------
For simulation b with Philox stream index ``s_b`` (``stream[b]``, default ``b``), node i, and
*global* step ``tg = step_offset + t`` (t the local step of a call), with a 64-bit ``seed``::

    key     = (seed & 0xffffffff, seed >> 32)
    counter = (tg & 0xffffffff, tg >> 32, i, s_b)
    (x0, x1, x2, x3) = philox4x32_10(counter, key)          # x2, x3 unused
    u0 = (T(x0) + 0.5) * 2**-32,  u1 = (T(x1) + 0.5) * 2**-32
    r  = sqrt(-2 * log(u0)),  theta = T(2 pi) * u1
    xi_E = r * cos(theta),  xi_I = r * sin(theta)

T is the simulation dtype: the integer is converted to T first (round to nearest), then 0.5 is
added and the product with 2**-32 (exact) is taken, all in T. In float32, u may round to exactly
1.0 (then r = 0); u is never 0. ``T(2 pi)`` is 2 pi rounded to T. Because the counter holds the
global step, a run continued with ``step_offset = n`` draws exactly the noise a single longer
run would have drawn, and the adjoint regenerates noise instead of storing it.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

__all__ = ["philox4x32", "philox_words_ref", "noise_ref", "uniforms_to_normals",
           "PHILOX_M0", "PHILOX_M1", "PHILOX_W0", "PHILOX_W1"]

PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
_MASK32 = 0xFFFFFFFF
_MASK16 = 0xFFFF


def _mulhilo(m: int, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hi, lo) 32-bit halves of the 64-bit product ``m * a`` for a constant m < 2**32 and
    an int64 tensor ``a`` of values in [0, 2**32), computed without int64 overflow."""
    m_lo, m_hi = m & _MASK16, m >> 16
    p_lo = a * m_lo                      # < 2**48
    p_hi = a * m_hi                      # < 2**48; the product is p_hi * 2**16 + p_lo
    s = p_lo + ((p_hi & _MASK16) << 16)  # < 2**49
    return (p_hi >> 16) + (s >> 32), s & _MASK32


def philox4x32(counter: torch.Tensor, key: torch.Tensor, rounds: int = 10) -> torch.Tensor:
    """Philox4x32 (10 rounds by default) on int64 words.

    Args:
        counter: int64 tensor ``[..., 4]`` of values in [0, 2**32).
        key: int64 tensor ``[..., 2]`` of values in [0, 2**32), broadcastable against counter[..., :2].

    Returns:
        int64 tensor ``[..., 4]`` (the broadcast shape) of values in [0, 2**32).
    """
    if counter.dtype != torch.int64 or key.dtype != torch.int64:
        raise TypeError(f"philox4x32: expected int64 counter and key, got {counter.dtype} and {key.dtype}")
    if counter.shape[-1] != 4 or key.shape[-1] != 2:
        raise ValueError(f"philox4x32: expected counter [..., 4] and key [..., 2], got {list(counter.shape)} and {list(key.shape)}")
    c0, c1, c2, c3 = counter.unbind(-1)
    k0, k1 = key.unbind(-1)
    for r in range(rounds):
        if r:
            k0 = (k0 + PHILOX_W0) & _MASK32
            k1 = (k1 + PHILOX_W1) & _MASK32
        hi0, lo0 = _mulhilo(PHILOX_M0, c0)
        hi1, lo1 = _mulhilo(PHILOX_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return torch.stack(torch.broadcast_tensors(c0, c1, c2, c3), dim=-1)


def _stream_tensor(stream, device) -> torch.Tensor:
    s = torch.as_tensor(stream, dtype=torch.int64, device=device)
    if s.dim() != 1:
        raise ValueError(f"stream: expected a 1-d sequence of ints [B], got shape {list(s.shape)}")
    if s.numel() and bool(((s < 0) | (s > _MASK32)).any()):
        raise ValueError("stream: expected values in [0, 2**32)")
    return s


def _check_args(seed, n_nodes, n_steps, step_offset):
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise ValueError(f"seed: expected an int in [0, 2**64), got {seed!r}")
    for name, v, lo in (("n_nodes", n_nodes, 1), ("n_steps", n_steps, 0), ("step_offset", step_offset, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name}: expected an int >= {lo}, got {v!r}")
    if step_offset + n_steps > 2**63:
        raise ValueError("step_offset: step_offset + n_steps must stay below 2**63")


def philox_words_ref(seed: int, stream: Sequence[int] | torch.Tensor, n_nodes: int, n_steps: int,
                     step_offset: int = 0, device="cpu") -> torch.Tensor:
    """Raw Philox output words of the noise stream (module docstring layout).

    Args:
        seed: 64-bit key, int in [0, 2**64).
        stream: ``[B]`` stream index of each simulation, values in [0, 2**32).
        n_nodes: N.  n_steps: T (local steps).  step_offset: global index of local step 0.

    Returns:
        int64 tensor ``[B, T, N, 4]``: words (x0, x1, x2, x3) for counter
        ``(tg & 0xffffffff, tg >> 32, i, stream[b])``, ``tg = step_offset + t``.
    """
    _check_args(seed, n_nodes, n_steps, step_offset)
    s = _stream_tensor(stream, device)
    B = s.shape[0]
    tg = torch.arange(step_offset, step_offset + n_steps, dtype=torch.int64, device=device)
    i = torch.arange(n_nodes, dtype=torch.int64, device=device)
    shape = (B, n_steps, n_nodes)
    counter = torch.stack([
        (tg & _MASK32)[None, :, None].expand(shape),
        (tg >> 32)[None, :, None].expand(shape),
        i[None, None, :].expand(shape),
        s[:, None, None].expand(shape),
    ], dim=-1)
    key = torch.tensor([seed & _MASK32, seed >> 32], dtype=torch.int64, device=device)
    return philox4x32(counter, key)


def uniforms_to_normals(x0: torch.Tensor, x1: torch.Tensor, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Box-Muller on two uint32 words (int64 tensors of equal shape) -> ``(xi_E, xi_I)`` in ``dtype``."""
    scale = 2.0 ** -32
    u0 = (x0.to(dtype) + 0.5) * scale
    u1 = (x1.to(dtype) + 0.5) * scale
    r = torch.sqrt(-2.0 * torch.log(u0))
    theta = u1 * torch.tensor(2.0 * math.pi, dtype=dtype, device=u1.device)
    return r * torch.cos(theta), r * torch.sin(theta)


def noise_ref(seed: int, stream: Sequence[int] | torch.Tensor, n_nodes: int, n_steps: int,
              step_offset: int = 0, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """Standard-normal state noise of the simulations (module docstring layout).

    Args:
        seed: 64-bit key.  stream: ``[B]`` stream indices.  n_nodes: N.  n_steps: T.
        step_offset: global step of local step 0.  dtype: float32 or float64.  device: any.

    Returns:
        Tensor ``[B, T, 2, N]`` of ``dtype``: ``[:, t, 0, i]`` = xi_E, ``[:, t, 1, i]`` = xi_I of
        node i at global step ``step_offset + t``.
    """
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
    w = philox_words_ref(seed, stream, n_nodes, n_steps, step_offset, device=device)
    xi_e, xi_i = uniforms_to_normals(w[..., 0], w[..., 1], dtype)
    return torch.stack([xi_e, xi_i], dim=2)
