"""Empirical BOLD as a fit uses it: checked, oriented, scaled, batched."""
from __future__ import annotations

import numpy as np
import torch


def prepare_bold(bold, model, *, scale: str = "max", layout: str = "auto") -> torch.Tensor:
    """Check empirical BOLD and return it as ``[B, T, N]`` in the model's dtype.

    ``bold``: ``[T, N]`` frames x regions (the convention of :mod:`nmmfit.datasets` and of
    ``simulate``'s output), shared by the B models, or ``[B, T, N]`` one run per model.
    ``layout="auto"`` also accepts regions x frames (``[N, T]`` / ``[B, N, T]``) when only one
    axis has the model's N; ``"TN"`` / ``"NT"`` settle it when ``T == N``.
    Scaling per model: by its maximum (``scale="max"``, the paper), z-scored per region
    (``"zscore"``) or unchanged (``"none"``)."""
    if not isinstance(bold, torch.Tensor):
        try:
            bold = torch.as_tensor(np.asarray(bold, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"bold: expected an array of shape [T, N] or [B, T, N], got {type(bold).__name__}") from exc
    bold = bold.detach().cpu().to(torch.float64)
    if bold.dim() not in (2, 3):
        raise ValueError(f"bold: expected shape [T, N] (frames x regions) or [B, T, N], got {list(bold.shape)}")
    if layout not in ("auto", "TN", "NT"):
        raise ValueError(f"layout: expected 'auto', 'TN' or 'NT', got {layout!r}")
    N = model.N
    a, b = bold.shape[-2], bold.shape[-1]
    if layout == "auto":
        if b == N:
            layout = "TN"
        elif a == N:
            layout = "NT"
        else:
            raise ValueError(f"bold: has shape {list(bold.shape)} but the SC has {N} regions; one axis of the "
                             f"BOLD (frames x regions) must have length {N} (SC and BOLD regions must match)")
    elif (layout == "TN" and b != N) or (layout == "NT" and a != N):
        raise ValueError(f"bold: with layout={layout!r} shape {list(bold.shape)} has "
                         f"{b if layout == 'TN' else a} regions but the SC has {N}")
    if layout == "NT":
        bold = bold.transpose(-1, -2)
    if not bool(torch.isfinite(bold).all()):
        bad = int((~torch.isfinite(bold)).sum())
        raise ValueError(f"bold: contains NaN or Inf ({bad} entries); clean or interpolate the data first")
    if bold.dim() == 3 and bold.shape[0] != model.B:
        raise ValueError(f"bold: has {bold.shape[0]} runs but the model holds B={model.B} models; "
                         f"give [T, N] to share one run, or one run per model")
    if bold.dim() == 2:
        bold = bold[None].expand(model.B, -1, -1)
    if scale == "max":
        m = bold.amax(dim=(1, 2), keepdim=True)
        if bool((m <= 0).any()):
            raise ValueError("bold: its maximum is <= 0, cannot scale by the maximum (use scale='zscore' or 'none')")
        bold = bold / m
    elif scale == "zscore":
        sd = bold.std(dim=1, keepdim=True)
        if bool((sd == 0).any()):
            raise ValueError("bold: a region has a constant time series; cannot z-score")
        bold = (bold - bold.mean(dim=1, keepdim=True)) / sd
    elif scale != "none":
        raise ValueError(f"scale: expected 'max', 'zscore' or 'none', got {scale!r}")
    return bold.to(model.dtype_).to(model.sc.device).contiguous()


__all__ = ["prepare_bold"]
