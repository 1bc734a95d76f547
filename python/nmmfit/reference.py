r"""Pure-PyTorch reference of the connectome-based two-state Reduced Wong-Wang + Balloon-Windkessel
model (docs/MODEL.md): a Python loop over time of plain, differentiable torch ops.

It is the gradient oracle of the compiled kernels (autograd through it is the exact gradient of the
discrete forward pass) and the fallback backend when the extension is missing. It draws the same
Philox noise as the kernels (:mod:`nmmfit.philox`).

Sources: Griffiths et al. 2022, "Deep-learning based parameter estimation for neurophysiological
models of neuroimaging data", bioRxiv 10.1101/2022.05.19.492664; Deco et al. 2014, "How local
excitation-inhibition ratio impacts the whole brain dynamics", J. Neurosci. 34(23):7886; Friston
et al. 2003, "Dynamic causal modelling", NeuroImage 19:1273 (Balloon-Windkessel); Wong & Wang 2006,
J. Neurosci. 26(4):1314 (the reduced two-variable model).

Equations (node i of N, simulation b of B; every state of step t is read, then all are written)
------------------------------------------------------------------------------------------------
::

    c_i   = sum_j W_ij E_j                                  coupling "adjacency"
          | sum_j W_ij E_j - (sum_j W_ij) E_i               coupling "laplacian"
    J_E   = W_E I_0 + g_EE E + g c - g_IE I + u       (u: optional external input, row t // u_every)
    J_I   = W_I I_0 + g_EI E - I
    z     = phi(J),   phi = identity | tanh(relu(.))         current_squash
    r_E   = H(a_E, b_E, d_E, z_E),   r_I = H(a_I, b_I, d_I, z_I)
    H     : x = a z - b,  y = d x
            "standard":      x / (1 - exp(-y)) = x / (-expm1(-y)) for y > 0, x e^y / expm1(y) for y < 0
                             (no overflow), and for |y| < eps the series
                             (1/d) (1 + y/2 + y^2/12 - y^4/720)     (eps = 1e-2 in float64, 0.1 in float32)
            "griffiths2022": (1e-5 + |x|) / (1e-5 d + |1 - exp(-y)|)   (exactly, with exp)
    E~    = E + dt (-E/tau_E + gamma_E (1 - E) r_E) + sqrt(dt) sigma xi_E
    I~    = I + dt (-I/tau_I + gamma_I r_I)          + sqrt(dt) sigma xi_I     (noise=False: no xi terms)
    E, I <- bound(E~), bound(I~),  bound = clamp(., 0, 1) ("clamp01") | tanh(1e-5 + relu(.)) ("tanh_relu")

Balloon-Windkessel (Friston 2003, time-constant convention), on local steps t with
``(t + 1) % hemo_every == 0``, step ``dt_h = preset.hemo_dt``, driven by E at the *start* of the
step; all four read the start-of-step x, f, v, q::

    x' = x + dt_h (E - x/tau_s - (f - 1)/tau_f)
    f' = f + dt_h x
    v' = v + dt_h (f - v^(1/alpha)) / tau_0
    q' = q + dt_h (f (1 - (1 - rho)^(1/f)) / rho - q v^(1/alpha) / v) / tau_0
    hemo_bound: x' <- tanh(x'),  f', v', q' <- 1 + tanh(. - 1)
    BOLD = bold_scale (k1 (1 - q) + k2 (1 - q/v) + k3 (1 - v))

Constants (:data:`CONSTANTS`): a_E=310, b_E=125, d_E=0.16, a_I=615, b_I=177, d_I=0.087,
tau_E=100, tau_I=10, gamma_E=0.641/1000, gamma_I=1/1000, W_E=1, W_I=0.7; tau_s=0.65, tau_f=0.41,
tau_0=0.98, alpha=0.32, rho=0.34, k1=7 rho, k2=2, k3=2 rho - 0.2.

Sampling conventions: BOLD sample k (k = 0..S-1, S = n_steps // steps_per_sample) is taken from the
state after local step (k+1) steps_per_sample; recorded E, I sample k after local step
(k+1) record_every (R = n_steps // record_every, none when record_every == 0); ``state`` is the
state after the last step. The noise of local step t is that of global step ``step_offset + t``.

Subgradients at kinks are torch's: relu'(0) = 0, |.|'(0) = 0, clamp passes the gradient where
0 <= x <= 1 (inclusive). The small-|y| series branch of the "standard" H uses the double-where
trick, so neither branch produces NaN gradients.
"""
from __future__ import annotations

import math
from types import MappingProxyType

import torch

from ._inputs import SimOutput, prepare_inputs
from .philox import noise_ref

__all__ = ["simulate_ref", "CONSTANTS", "rate_ref"]

_RHO = 0.34
CONSTANTS = MappingProxyType(dict(
    # neural (Deco et al. 2014; Wong & Wang 2006)
    a_E=310.0, b_E=125.0, d_E=0.16, a_I=615.0, b_I=177.0, d_I=0.087,
    tau_E=100.0, tau_I=10.0, gamma_E=0.641 / 1000.0, gamma_I=1.0 / 1000.0, W_E=1.0, W_I=0.7,
    # Balloon-Windkessel (Friston et al. 2003), time constants
    tau_s=0.65, tau_f=0.41, tau_0=0.98, alpha=0.32, rho=_RHO,
    k1=7.0 * _RHO, k2=2.0, k3=2.0 * _RHO - 0.2,
))
"""Model constants of docs/MODEL.md (read-only mapping)."""

_NOISE_CHUNK = 2048  # steps of noise generated at a time (bounds memory on long runs)


def rate_ref(z: torch.Tensor, a: float, b: float, d: float, rate: str) -> torch.Tensor:
    """Transfer function H(a, b, d, z) (elementwise, any shape), "standard" or "griffiths2022"."""
    x = a * z - b
    if rate == "griffiths2022":
        return (1e-5 + torch.abs(x)) / (1e-5 * d + torch.abs(1.0 - torch.exp(-d * x)))
    if rate != "standard":
        raise ValueError(f"rate: expected 'standard' or 'griffiths2022', got {rate!r}")
    eps = 1e-2 if x.dtype == torch.float64 else 0.1
    small = torch.abs(d * x) < eps
    x_big = torch.where(small, torch.ones_like(x), x)      # safe value where the series is used
    # x / (1 - exp(-y)) for y > 0; for y < 0 the same ratio times e^y / e^y, x e^y / expm1(y), so
    # that no exp(-y) overflows (y < -88 in float32) and autograd never forms inf * 0
    pos = x_big > 0
    x_pos = torch.where(pos, x_big, torch.ones_like(x))
    x_neg = torch.where(pos, -torch.ones_like(x), x_big)
    h_big = torch.where(pos, x_pos / (-torch.expm1(-d * x_pos)), x_neg * torch.exp(d * x_neg) / torch.expm1(d * x_neg))
    y = d * torch.where(small, x, torch.zeros_like(x))     # safe value where the ratio is used
    h_small = (1.0 / d) * (1.0 + y / 2.0 + y * y / 12.0 - y ** 4 / 720.0)
    return torch.where(small, h_small, h_big)


def _bound(s: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "clamp01":
        return torch.clamp(s, 0.0, 1.0)
    return torch.tanh(1e-5 + torch.relu(s))


def _neural_step(inp, E, I, rowsum, u_t, xi_t):
    """One Euler-Maruyama step of (E, I) ``[B, N]``: coupling, currents, rates, noise ``xi_t #
    [B, 2, N]`` (None: none), external input ``u_t # [B, N]`` (None: none), state bounds."""
    p, C, W = inp.preset, CONSTANTS, inp.W
    g, g_EE, g_IE, g_EI, I_0, sigma = inp.params.unbind(1)          # each [B, N]
    c = E @ W.T if W.dim() == 2 else torch.bmm(W, E.unsqueeze(-1)).squeeze(-1)
    if rowsum is not None:
        c = c - rowsum * E
    J_E = C["W_E"] * I_0 + g_EE * E + g * c - g_IE * I
    if u_t is not None:
        J_E = J_E + u_t
    J_I = C["W_I"] * I_0 + g_EI * E - I
    if p.current_squash == "tanh_relu":
        J_E, J_I = torch.tanh(torch.relu(J_E)), torch.tanh(torch.relu(J_I))
    r_E = rate_ref(J_E, C["a_E"], C["b_E"], C["d_E"], p.rate)
    r_I = rate_ref(J_I, C["a_I"], C["b_I"], C["d_I"], p.rate)
    E_new = E + p.dt * (-E / C["tau_E"] + C["gamma_E"] * (1.0 - E) * r_E)
    I_new = I + p.dt * (-I / C["tau_I"] + C["gamma_I"] * r_I)
    if xi_t is not None:
        sq_dt = math.sqrt(p.dt)
        E_new = E_new + sq_dt * sigma * xi_t[:, 0]
        I_new = I_new + sq_dt * sigma * xi_t[:, 1]
    return _bound(E_new, p.state_bound), _bound(I_new, p.state_bound)


def _hemo_step(p, E, x, f, v, q):
    """One Balloon-Windkessel step of (x, f, v, q) ``[B, N]`` driven by ``E``."""
    C, dt_h, rho = CONSTANTS, p.hemo_dt, CONSTANTS["rho"]
    v_pow = v ** (1.0 / C["alpha"])
    x_new = x + dt_h * (E - x / C["tau_s"] - (f - 1.0) / C["tau_f"])
    f_new = f + dt_h * x
    v_new = v + dt_h * (f - v_pow) / C["tau_0"]
    q_new = q + dt_h * (f * (1.0 - (1.0 - rho) ** (1.0 / f)) / rho - q * v_pow / v) / C["tau_0"]
    if p.hemo_bound:
        return torch.tanh(x_new), 1.0 + torch.tanh(f_new - 1.0), 1.0 + torch.tanh(v_new - 1.0), \
            1.0 + torch.tanh(q_new - 1.0)
    return x_new, f_new, v_new, q_new


def simulate_ref(W, params=None, state0=None, n_steps=1, *, preset="griffiths2022",
                 steps_per_sample=None, record_every=0, seed=0, stream=None, step_offset=0,
                 noise=True, checkpoint_every=None, batch=None, u=None, u_every=None) -> SimOutput:
    """Simulate B connectome-based neural mass models with plain torch ops (see module docstring).

    Args:
        W: coupling matrix, ``[N, N]`` shared by all simulations or ``[B, N, N]``; float32/float64,
            non-negative; its dtype and device are those of the whole simulation.
        params: mapping from names in ``PARAM_NAMES`` (g, g_EE, g_IE, g_EI, I_0, sigma) to a float,
            a 0-d tensor, ``[B]`` (global per simulation) or ``[B, N]`` (regional); missing names
            take the preset's defaults.
        state0: initial (E, I, x, f, v, q), ``[B, 6, N]`` or ``[6, N]``; default E = I = 0.001,
            x = 0, f = v = q = 1.
        n_steps: number of neural Euler steps (>= 1).
        preset: a preset name ("griffiths2022", "deco2014") or a :class:`nmmfit.Preset`.
        steps_per_sample: neural steps per BOLD sample (default ``preset.steps_per_sample``).
        record_every: record E and I every this many steps (0: none).
        seed: 64-bit Philox key.  stream: ``[B]`` int64 stream index per simulation (default arange(B)).
        step_offset: global step index of local step 0 (continue a run with the noise it would have drawn).
        noise: False drops the stochastic terms.
        checkpoint_every: accepted for signature compatibility with the kernels; ignored.
        batch: B when no argument carries a batch dimension.
        u: external input added to the excitatory current J_E (docs/MODEL.md's u_i), ``[B, n_u, N]`` or
            ``[n_u, N]`` shared; row ``t // u_every`` drives local step t, so n_u = ceil(n_steps /
            u_every). Differentiable. None: no input.
        u_every: steps per row of ``u`` (default ``steps_per_sample``: one value per BOLD sample, held).

    Returns:
        :class:`SimOutput` ``(bold [B, S, N], E [B, R, N], I [B, R, N], state [B, 6, N])``.
    """
    inp = prepare_inputs(W, params, state0, n_steps, preset=preset, steps_per_sample=steps_per_sample,
                         record_every=record_every, seed=seed, stream=stream, step_offset=step_offset,
                         noise=noise, checkpoint_every=checkpoint_every, batch=batch, u=u, u_every=u_every)
    p = inp.preset
    B, N, T = inp.B, inp.N, inp.n_steps
    dtype, device = inp.W.dtype, inp.W.device
    E, I, x, f, v, q = inp.state0.unbind(1)                         # each [B, N]
    rowsum = inp.W.sum(-1) if p.coupling == "laplacian" else None   # [N] or [B, N]
    sps, rec = inp.steps_per_sample, inp.record_every
    bolds, Es, Is = [], [], []
    xi = None
    for t in range(T):
        if inp.noise and t % _NOISE_CHUNK == 0:
            xi = noise_ref(inp.seed, inp.stream, N, min(_NOISE_CHUNK, T - t), inp.step_offset + t,
                           dtype=dtype, device=device)              # [B, chunk, 2, N]
        u_t = None if inp.u is None else inp.u[:, t // inp.u_every]
        E_new, I_new = _neural_step(inp, E, I, rowsum, u_t, None if not inp.noise else xi[:, t % _NOISE_CHUNK])
        # hemodynamic step, driven by the start-of-step E, reading the start-of-step x, f, v, q
        if (t + 1) % p.hemo_every == 0:
            x, f, v, q = _hemo_step(p, E, x, f, v, q)
        E, I = E_new, I_new
        if (t + 1) % sps == 0:
            bolds.append(p.bold_scale * (CONSTANTS["k1"] * (1.0 - q) + CONSTANTS["k2"] * (1.0 - q / v)
                                         + CONSTANTS["k3"] * (1.0 - v)))
        if rec and (t + 1) % rec == 0:
            Es.append(E)
            Is.append(I)

    def stack(xs):
        return torch.stack(xs, dim=1) if xs else torch.zeros(B, 0, N, dtype=dtype, device=device)

    state = torch.stack([E, I, x, f, v, q], dim=1)
    return SimOutput(stack(bolds), stack(Es), stack(Is), state)
