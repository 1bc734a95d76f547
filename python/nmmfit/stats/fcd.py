"""Functional connectivity dynamics (FCD) and distances between value distributions, as pure
differentiable torch functions (docs/MODEL.md, "Functional connectivity dynamics").

Convention of cuBNM (``cubnm/utils.py: calculate_fcd`` and ``get_dfc_windows`` in its C++): an
even ``window`` w of frames, each window centred on a frame and spanning w + 1 frames, centres
w/2, w/2 + step, ... up to T - 1 - w/2 (windows that would cross either end are dropped); Pearson
FC per window, its lower triangle (k = -1) as a vector; FCD[a, b] = Pearson(fc_a, fc_b); the
statistic is the distribution of FCD's lower-triangle values, every pair of windows included
(cuBNM excludes none, overlapping or not).
"""
from __future__ import annotations

import torch

from .._validate import check_float, check_int
from .fc import fc_matrix, lower_tri

__all__ = ["window_frames", "window_fc", "fcd", "fcd_values", "ks_distance", "wasserstein1"]


def window_frames(tr: float, window_s: float = 30.0, step_s: float = 5.0) -> tuple[int, int]:
    """cuBNM's window and step in frames for a sample period ``tr`` (s):
    ``(2 round(window_s / (2 tr)), round(step_s / tr))``."""
    tr = check_float("tr", tr, 0.0, open_min=True)
    window = 2 * round(check_float("window_s", window_s, 0.0, open_min=True) / (2 * tr))
    step = round(check_float("step_s", step_s, 0.0, open_min=True) / tr)
    if window < 2 or step < 1:
        raise ValueError(f"window_s, step_s: {window_s} s and {step_s} s give a window of {window} and a "
                         f"step of {step} frames at tr = {tr} s; need a window >= 2 and a step >= 1")
    return window, step


def window_fc(bold: torch.Tensor, window: int, step: int) -> torch.Tensor:
    """Lower triangles of sliding-window FC: ``bold # [..., T, N]`` -> ``[..., n_windows, N(N-1)/2]``.

    ``window`` (even, >= 2) frames around each centre, w + 1 frames per window; ``step`` >= 1 frames
    between centres; n_windows = (T - 1 - window) // step + 1.
    """
    if not isinstance(bold, torch.Tensor) or bold.dim() < 2:
        raise ValueError(f"bold: expected a tensor [..., T, N], got {getattr(bold, 'shape', type(bold).__name__)}")
    window, step = check_int("window", window, 2), check_int("step", step, 1)
    if window % 2:
        raise ValueError(f"window: expected an even number of frames (w + 1 frames centred on one), got {window}")
    T = bold.shape[-2]
    if T < window + 1:
        raise ValueError(f"window: {window} + 1 frames is longer than the run of {T} frames (bold [..., T, N])")
    frames = bold.unfold(-2, window + 1, step)                      # [..., n_windows, N, window + 1]
    return lower_tri(fc_matrix(frames.transpose(-1, -2)))


def fcd(bold: torch.Tensor, window: int, step: int) -> torch.Tensor:
    """FCD matrix: Pearson correlation between window FC vectors, ``[..., T, N]`` -> ``[..., W, W]``."""
    return fc_matrix(window_fc(bold, window, step).transpose(-1, -2))


def fcd_values(bold: torch.Tensor, window: int, step: int) -> torch.Tensor:
    """FCD lower-triangle values (k = -1, numpy order), ``[..., T, N]`` -> ``[..., W (W - 1) / 2]``.
    At least two windows are needed."""
    m = fcd(bold, window, step)
    if m.shape[-1] < 2:
        raise ValueError(f"bold: {bold.shape[-2]} frames give one window of {window} + 1 frames; FCD needs two")
    return lower_tri(m)


def _check_samples(name: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[-1] < 1:
        raise ValueError(f"{name}: expected a tensor of samples [..., n] with n >= 1, "
                         f"got {getattr(x, 'shape', type(x).__name__)}")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: expected finite samples, got NaN/Inf")
    return x


def _broadcast(a, b):
    batch = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    dtype = torch.promote_types(a.dtype, b.dtype)
    dtype = dtype if dtype.is_floating_point else torch.float64    # integer samples: weights are fractions
    return a.to(dtype).expand(*batch, a.shape[-1]), b.to(dtype).expand(*batch, b.shape[-1])


def ks_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Two-sample Kolmogorov-Smirnov statistic sup |F_a - F_b| (scipy ``ks_2samp``'s), for reports.

    ``a # [..., n]``, ``b # [..., m]`` (leading dims broadcast) -> float64 ``[...]``; not differentiable.
    """
    a, b = _broadcast(_check_samples("a", a).detach(), _check_samples("b", b).detach())
    a, b = a.sort(-1).values.contiguous(), b.sort(-1).values.contiguous()
    both = torch.cat([a, b], -1).contiguous()
    # both ECDFs evaluated (right-continuous) at every sample: the sup is attained at one of them
    Fa = torch.searchsorted(a, both, right=True).double() / a.shape[-1]
    Fb = torch.searchsorted(b, both, right=True).double() / b.shape[-1]
    return (Fa - Fb).abs().amax(-1)


def wasserstein1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1-D Wasserstein distance, the integral over u in (0, 1) of |Q_a(u) - Q_b(u)|, exactly
    (scipy ``wasserstein_distance``'s) and differentiable almost everywhere (through the sort).

    ``a # [..., n]``, ``b # [..., m]`` (leading dims broadcast) -> ``[...]``. The quantile functions
    are steps at multiples of 1/n and 1/m; on each piece between the merged breakpoints both are
    constant, so the integral is a weighted sum of sorted samples (weights depend on n, m only).
    """
    a, b = _broadcast(_check_samples("a", a), _check_samples("b", b))
    n, m = a.shape[-1], b.shape[-1]
    u = torch.cat([torch.arange(n + 1, dtype=torch.float64) / n, torch.arange(m + 1, dtype=torch.float64) / m])
    u = torch.unique(u)                                             # sorted breakpoints, 0 ... 1
    mid, width = 0.5 * (u[1:] + u[:-1]), (u[1:] - u[:-1]).to(a.dtype).to(a.device)
    ia = (mid * n).floor().long().clamp(max=n - 1).to(a.device)
    ib = (mid * m).floor().long().clamp(max=m - 1).to(a.device)
    qa, qb = a.sort(-1).values[..., ia], b.sort(-1).values[..., ib]
    return ((qa - qb).abs() * width).sum(-1)
