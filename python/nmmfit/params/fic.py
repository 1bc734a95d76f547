r"""Feedback inhibition control (FIC): the g_IE per node that holds each node at the excitatory
target (docs/MODEL.md, "FIC, analytic" and "FIC, iterative").

Analytic FIC (Demirtas et al. 2019; murraylab hbnm; cuBNM ``rww_fic.cpp``): with every node at the
target steady state (I_E*, S_E*), node j needs

    I_I   = W_I I_0 + g_EI S_E* - J_II tau_I gamma_I H_I(I_I)         (one scalar root per node)
    S_I   = tau_I gamma_I H_I(I_I)
    g_IE  = (W_E I_0 + g_EE S_E* + g S_E* k_j - I_E*) / S_I

with k_j = sum_k W_jk (adjacency coupling) or 0 (laplacian: at a uniform state it vanishes).
f(x) = A - x - c H_I(x) is strictly decreasing (f' = -1 - c H_I' < -1, H_I increasing) and
concave (H_I convex), so the root exists and is unique for every finite A; it is found in float64
by Newton steps inside the bracket [A - c H_I(A), A], bisecting where a step would leave it. The
root's gradient comes from the implicit-function theorem, dI_I/dA = 1 / (1 + c H_I'(I_I)); the rest
is plain torch, so g_IE is differentiable in g, g_EE, g_EI, I_0 and W. "Unstable" FIC (cuBNM's
term) is a root that did not converge or g_IE < 0; it is reported per model and node in
:class:`FICResult`, never clipped.

Iterative FIC (Deco et al. 2014, cuBNM's in-kernel rule) is :func:`fic_iterative`: simulate,
average I_E over a window, nudge g_IE of the nodes off target, repeat. No gradient flows through it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from .._validate import check_float, check_int, check_tensor
from ..presets import get_preset
from ..reference import CONSTANTS, rate_ref

__all__ = ["FICTarget", "FICResult", "FICIterativeResult", "CUBNM_TARGET", "fic_analytic",
           "fic_iterative", "excitatory_current", "AnalyticFIC", "IterativeFIC", "FIC_RULES"]

J_II = 1.0  # I->I self-coupling of the model (J_I_i = W_I I_0 + g_EI E - 1 * I)


class FICTarget(NamedTuple):
    """The excitatory steady state FIC aims at: current ``I_E`` (nA) and gating ``S_E``."""
    I_E: float
    S_E: float


CUBNM_TARGET = FICTarget(I_E=0.3773805650, S_E=0.1647572075)
"""cuBNM's and neuronumba's constants: r_E* = H_E(I_E*) = 3.0773 Hz, S_E* from r_E* (docs/MODEL.md)."""


class FICResult(NamedTuple):
    """Result of :func:`fic_analytic`; every field is ``[B, N]``.

    g_IE: the FIC weight (differentiable; its value is kept where ``ok`` is False, never clipped).
    ok: the root converged and g_IE >= 0 (cuBNM's "FIC stable").
    I_I: the steady-state inhibitory current (the root).  S_I: tau_I gamma_I H_I(I_I).
    """
    g_IE: torch.Tensor
    ok: torch.Tensor
    I_I: torch.Tensor
    S_I: torch.Tensor


class FICIterativeResult(NamedTuple):
    """Result of :func:`fic_iterative`.

    g_IE ``[B, N]``: the adjusted weights.  converged ``[B]``: every node ended within tolerance.
    trials ``[B]``: simulations run per model.  mean_I_E ``[B, N]``: <I_E> of the last trial.
    """
    g_IE: torch.Tensor
    converged: torch.Tensor
    trials: torch.Tensor
    mean_I_E: torch.Tensor


def _rate_I(x: torch.Tensor) -> torch.Tensor:
    return rate_ref(x, CONSTANTS["a_I"], CONSTANTS["b_I"], CONSTANTS["d_I"], "standard")


def _rate_I_slope(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """H_I(x) and H_I'(x), from the one stable formula of H (rate_ref) by autograd."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        h = _rate_I(x)
        (dh,) = torch.autograd.grad(h.sum(), x)
    return h.detach(), dh


def _solve_inhibitory(A: torch.Tensor, c: float, tol: float = 1e-13, max_iter: int = 100):
    """Root of f(x) = A - x - c H_I(x) per element of ``A`` (float64): (root, converged)."""
    hi = A.clone()                                   # f(A) = -c H_I(A) <= 0
    lo = A - c * _rate_I_slope(A)[0]                 # H_I(root) <= H_I(A), so f(lo) >= 0
    x = hi.clone()
    done = torch.zeros_like(A, dtype=torch.bool)
    for _ in range(max_iter):
        h, dh = _rate_I_slope(x)
        f = A - x - c * h
        done = f.abs() <= tol * (1.0 + A.abs())
        if bool(done.all()):
            break
        lo = torch.where(f > 0, x, lo)
        hi = torch.where(f < 0, x, hi)
        newton = x + f / (1.0 + c * dh)
        inside = (newton > lo) & (newton < hi)
        x = torch.where(done, x, torch.where(inside, newton, 0.5 * (lo + hi)))
    return x, done


class _InhibitoryRoot(torch.autograd.Function):
    """I_I(A) with A - I_I - c H_I(I_I) = 0; backward by the implicit-function theorem."""

    @staticmethod
    def forward(ctx, A, c):
        x, converged = _solve_inhibitory(A.detach().double(), c)
        x = x.to(A.dtype)
        ctx.c = c
        ctx.save_for_backward(x)
        ctx.mark_non_differentiable(converged)
        return x, converged

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_x, _grad_converged):
        (x,) = ctx.saved_tensors
        _, dh = _rate_I_slope(x)
        return grad_x / (1.0 + ctx.c * dh), None


def _batch_size(named: dict, W: torch.Tensor) -> int:
    sizes = {name: t.shape[0] for name, t in named.items() if t.dim() >= 1}
    if W.dim() == 3:
        sizes["W"] = W.shape[0]
    if len(set(sizes.values())) > 1:
        raise ValueError(f"batch sizes disagree: {sizes}")
    return next(iter(sizes.values()), 1)


def _as_regional(named: dict, W) -> tuple[dict, torch.Tensor]:
    """Parameters (float, 0-d, [B] or [B, N]) as ``[B, N]`` tensors in W's dtype and device, and W checked."""
    W = check_tensor("W", W, dims=(2, 3))
    if W.shape[-1] != W.shape[-2]:
        raise ValueError(f"W: expected [N, N] or [B, N, N], got shape {list(W.shape)}")
    if not W.is_floating_point():
        W = W.double()
    N = W.shape[-1]
    named = {k: check_tensor(k, v, dims=(0, 1, 2)).to(dtype=W.dtype, device=W.device) for k, v in named.items()}
    for k, t in named.items():
        if t.dim() == 2 and t.shape[1] != N:
            raise ValueError(f"{k}: regional values must be [B, N] with N = {N} (from W), got {list(t.shape)}")
    B = _batch_size(named, W)
    out = {k: (t if t.dim() == 2 else t.reshape(-1, 1) if t.dim() == 1 else t.reshape(1, 1)).expand(B, N)
           for k, t in named.items()}
    return out, W


def _check_fic_preset(preset):
    p = get_preset(preset)
    if p.rate != "standard" or p.current_squash != "identity":
        raise ValueError(f"preset: FIC needs the 'standard' rate and 'identity' current squash "
                         f"(docs/MODEL.md deco2014); {p.name!r} has {p.rate!r} and {p.current_squash!r}")
    return p


def fic_analytic(g, g_EE, g_EI, I_0, W, *, preset="deco2014", target: FICTarget = CUBNM_TARGET,
                 strict: bool = False) -> FICResult:
    """Analytic FIC (module docstring): the g_IE that holds every node at ``target``.

    Args:
        g, g_EE, g_EI, I_0: each a float, 0-d, ``[B]`` (global) or ``[B, N]`` (regional).
        W: coupling ``[N, N]`` (shared) or ``[B, N, N]``; row j holds node j's inputs (docs/MODEL.md c_j).
        preset: a preset with the standard rate and no current squash (its coupling switch decides
            whether the network term g S_E* sum_k W_jk enters).
        target: the excitatory steady state (default cuBNM's constants).
        strict: raise a ValueError naming the models and nodes where FIC is unstable.

    Returns:
        :class:`FICResult` of ``[B, N]`` tensors in W's dtype (B = 1 when nothing is batched).
        Differentiable in every argument but ``target``.
    """
    p = _check_fic_preset(preset)
    x, W = _as_regional(dict(g=g, g_EE=g_EE, g_EI=g_EI, I_0=I_0), W)
    I_E, S_E = (check_float("target.I_E", target.I_E), check_float("target.S_E", target.S_E, 0.0, 1.0))
    c = J_II * CONSTANTS["tau_I"] * CONSTANTS["gamma_I"]          # 0.01: tau_I gamma_I in s, r in Hz
    A = CONSTANTS["W_I"] * x["I_0"] + x["g_EI"] * S_E
    I_I, converged = _InhibitoryRoot.apply(A, c)
    S_I = c * _rate_I(I_I)
    k = W.sum(-1) if p.coupling == "adjacency" else torch.zeros_like(W[..., 0])
    drive = CONSTANTS["W_E"] * x["I_0"] + x["g_EE"] * S_E + x["g"] * S_E * k - I_E
    g_IE = drive / S_I
    ok = converged & torch.isfinite(g_IE) & (g_IE >= 0)
    if strict and not bool(ok.all()):
        bad = [(b, n) for b, n in (~ok).nonzero().tolist()]
        raise ValueError(f"FIC unstable (no converged root or g_IE < 0) at (model, node) {bad[:20]}"
                         f"{' ...' if len(bad) > 20 else ''}: those nodes get too little excitation to reach the "
                         f"target even without inhibition (raise I_0, g_EE or g)")
    return FICResult(g_IE, ok, I_I, S_I)


def excitatory_current(E, I, g, g_EE, g_IE, I_0, W, coupling: str = "adjacency") -> torch.Tensor:
    """J_E of docs/MODEL.md from recorded ``E, I # [B, R, N]``; parameters ``[B, N]``, W ``[N, N] | [B, N, N]``."""
    c = E @ W.transpose(-1, -2)                     # c_j = sum_k W_jk E_k, W shared or batched
    if coupling == "laplacian":
        c = c - W.sum(-1).unsqueeze(-2) * E
    p = {k: v.unsqueeze(-2) for k, v in dict(g=g, g_EE=g_EE, g_IE=g_IE, I_0=I_0).items()}
    return CONSTANTS["W_E"] * p["I_0"] + p["g_EE"] * E + p["g"] * c - p["g_IE"] * I


def fic_iterative(g, g_EE, g_EI, I_0, W, *, g_IE0=1.0, sigma=None, preset="deco2014",
                  window_ms=(1000.0, 10000.0), tol=0.005, offset=0.026, delta0=0.02,
                  max_trials=150, seed=0, noise=True) -> FICIterativeResult:
    """Iterative FIC of Deco et al. 2014 as cuBNM runs it in-kernel (no gradient; a reference).

    Each trial simulates from the default initial state with the same noise, averages I_E over
    ``window_ms`` (sampled every 1 ms, as cuBNM's ``I_SAMPLING_START/END``), takes d = <I_E> - b_E/a_E
    and, where ``|d + offset| > tol``, moves g_IE by that node's delta: down (and delta shrinks by
    0.001 to a floor of 0.001, as in cuBNM) where d < -offset, up otherwise. Models whose nodes are
    all within tolerance stop changing; the loop ends when all have, or after ``max_trials``.

    Args:
        g, g_EE, g_EI, I_0, W: as :func:`fic_analytic`.  g_IE0: starting g_IE (float, [B] or [B, N]).
        sigma: state-noise std (default the preset's).  window_ms: (start, end) of the average, ms.
        tol, offset, delta0: cuBNM's 0.005, 0.026, 0.02.  max_trials: simulations at most.
        seed, noise: as :func:`nmmfit.simulate`.

    Returns:
        :class:`FICIterativeResult` (float64 g_IE and mean_I_E ``[B, N]``, converged and trials ``[B]``).
    """
    from ..ops import simulate  # here, not at the top: ops loads the compiled extension

    p = _check_fic_preset(preset)
    sigma = p.defaults["sigma"] if sigma is None else sigma
    x, W = _as_regional(dict(g=g, g_EE=g_EE, g_EI=g_EI, I_0=I_0, g_IE0=g_IE0, sigma=sigma), W)
    x = {k: v.detach().double() for k, v in x.items()}
    W = W.detach().double()
    start, end = (check_float("window_ms[0]", window_ms[0], 0.0), check_float("window_ms[1]", window_ms[1], 0.0))
    if end <= start:
        raise ValueError(f"window_ms: expected start < end, got {window_ms!r}")
    max_trials = check_int("max_trials", max_trials, 1)
    every = max(1, round(1.0 / p.dt))                              # one sample per ms of model time
    times = torch.arange(1, round(end / p.dt) // every + 1, dtype=torch.float64) * every * p.dt
    sel = (times >= start) & (times <= end)
    B, N = x["g"].shape
    g_IE, delta = x.pop("g_IE0").clone(), torch.full((B, N), float(delta0), dtype=torch.float64)
    converged, trials = torch.zeros(B, dtype=torch.bool), torch.zeros(B, dtype=torch.int64)
    for trial in range(max_trials):
        out = simulate(W, dict(x, g_IE=g_IE), None, round(end / p.dt), preset=p, record_every=every,
                       seed=seed, noise=noise)
        J_E = excitatory_current(out.E, out.I, x["g"], x["g_EE"], g_IE, x["I_0"], W, p.coupling)
        mean_I_E = J_E[:, sel].mean(1)
        d = mean_I_E - CONSTANTS["b_E"] / CONSTANTS["a_E"]
        off = (d + offset).abs() > tol
        trials += ~converged
        converged = ~off.any(1)
        if bool(converged.all()) or trial == max_trials - 1:
            break
        down, up = off & (d < -offset), off & (d >= -offset)
        g_IE = g_IE - delta * down + delta * up
        delta = torch.where(down, (delta - 0.001).clamp(min=0.001), delta)
    return FICIterativeResult(g_IE, converged, trials, mean_I_E)


@dataclass(frozen=True)
class AnalyticFIC:
    """A scheme's ``derived`` rule: g_IE re-derived by :func:`fic_analytic` from the current
    (g, g_EE, g_EI, I_0, W) at every forward, the gradient flowing through it (implicit function).

    ``__call__(values, W, preset) -> (values with g_IE # [B, N], report)``; the report's ``fic_ok
    # [B, N]`` marks the nodes where FIC is stable (a root and g_IE >= 0), never clipped."""
    target: FICTarget = CUBNM_TARGET
    names = ("g_IE",)
    label = "analytic"
    unstable_meaning = "no root with g_IE >= 0: too little excitation to reach the target even without inhibition"
    refuse_unstable_start = True     # the inputs cannot reach the target: a fit from them is an input error

    def __call__(self, values: dict, W: torch.Tensor, preset) -> tuple[dict, dict]:
        r = fic_analytic(values["g"], values["g_EE"], values["g_EI"], values["I_0"], W, preset=preset,
                         target=self.target)
        return dict(values, g_IE=r.g_IE), dict(fic_ok=r.ok.detach())


@dataclass(frozen=True)
class IterativeFIC:
    """A scheme's ``derived`` rule: g_IE from :func:`fic_iterative` (Deco 2014; no gradient flows
    through it, g_IE is a constant of each update), started from the analytic g_IE where that is
    stable (as cuBNM does), else from 1. Re-run only when the parameters it depends on change (the
    last result is kept). ``fic_ok # [B, N]``: the model's nodes all converged."""
    window_ms: tuple = (1000.0, 10000.0)
    max_trials: int = 150
    seed: int = 0
    names = ("g_IE",)
    label = "iterative"
    unstable_meaning = "not within tolerance after max_trials simulations"
    refuse_unstable_start = False    # noise can keep the rule from converging: reported, not refused
    _last: dict = field(default_factory=dict, compare=False, repr=False)

    def __call__(self, values: dict, W: torch.Tensor, preset) -> tuple[dict, dict]:
        args = [values[k].detach() for k in ("g", "g_EE", "g_EI", "I_0", "sigma")] + [W.detach()]
        key = tuple(a.cpu().double().numpy().tobytes() for a in args) + (repr(preset),)
        if self._last.get("key") != key:
            start = fic_analytic(*args[:4], W.detach(), preset=preset)
            g_IE0 = torch.where(start.ok, start.g_IE, torch.ones_like(start.g_IE))
            r = fic_iterative(*args[:4], W.detach(), g_IE0=g_IE0, sigma=args[4], preset=preset,
                              window_ms=self.window_ms, max_trials=self.max_trials, seed=self.seed)
            self._last.update(key=key, g_IE=r.g_IE, ok=r.converged[:, None].expand_as(r.g_IE))
        g_IE = self._last["g_IE"].to(dtype=W.dtype, device=W.device)
        return dict(values, g_IE=g_IE), dict(fic_ok=self._last["ok"])


FIC_RULES = {"analytic": AnalyticFIC, "iterative": IterativeFIC, "none": None}
"""The FIC rules' constructors by their CLI name (``--fic``); ``none`` keeps g_IE a parameter."""
