"""Empirical BOLD as a fit uses it: checked, oriented, scaled, batched."""
from __future__ import annotations

import numpy as np
import torch

from .._validate import check_choice, check_tensor


def _check_run(bold: np.ndarray, N: int, name: str, layout: str) -> np.ndarray:
    """One run ``[T, N]`` (or ``[N, T]``) through :func:`nmmfit.datasets.check_bold`: oriented, finite, no
    header row or index column, and no constant region (a fit cannot drop regions: the model's SC has them)."""
    from ..datasets import check_bold

    run, info = check_bold(bold, N, name=name, layout=layout, drop_constant=True)
    if info.dropped:
        raise ValueError(f"{name}: region(s) {list(info.dropped)} are constant or near-constant over time "
                         f"(zero-filled or outside the field of view?), so their FC is undefined; drop them "
                         f"from the SC and the BOLD before fitting: `bold, info = nmmfit.datasets.check_bold("
                         f"bold, N, drop_constant=True)` keeps the regions info.kept (SC: sc[np.ix_(info.kept, "
                         f"info.kept)]), or load the files with load_files(..., drop_constant=True)")
    return run


def prepare_bold(bold, model, *, scale: str = "max", layout: str = "auto", name: str = "bold") -> torch.Tensor:
    """Check empirical BOLD and return it as ``[B, T, N]`` in the model's dtype.

    ``bold``: ``[T, N]`` frames x regions (the convention of :mod:`nmmfit.datasets` and of
    ``simulate``'s output), shared by the B models, or ``[B, T, N]`` one run per model.
    ``layout="auto"`` also accepts regions x frames (``[N, T]`` / ``[B, N, T]``) when only one
    axis has the model's N; ``"TN"`` / ``"NT"`` settle it when ``T == N``. Every run passes
    :func:`nmmfit.datasets.check_bold` (NaN/Inf, header rows, constant regions are refused, naming
    ``name`` and the frames / regions). Scaling per model: by its maximum (``scale="max"``, the
    paper), z-scored per region (``"zscore"``) or unchanged (``"none"``)."""
    check_choice("scale", scale, ("max", "zscore", "none"))
    check_choice("layout", layout, ("auto", "TN", "NT"))
    arr = check_tensor(name, bold, dims=(2, 3), finite=False, dtype=torch.float64).detach().cpu().numpy()
    if arr.ndim == 3 and arr.shape[0] != model.B:
        raise ValueError(f"{name}: has {arr.shape[0]} runs but the model holds B={model.B} models; "
                         f"give [T, N] to share one run, or one run per model")
    runs = [_check_run(run, model.N, name, layout) for run in (arr if arr.ndim == 3 else arr[None])]
    bold = torch.as_tensor(np.stack(runs)).expand(model.B, -1, -1)
    if scale == "max":
        m = bold.amax(dim=(1, 2), keepdim=True)
        if bool((m <= 0).any()):
            raise ValueError(f"{name}: its maximum is <= 0, cannot scale by the maximum (use scale='zscore' or 'none')")
        bold = bold / m
    elif scale == "zscore":
        bold = (bold - bold.mean(dim=1, keepdim=True)) / bold.std(dim=1, keepdim=True)
    return bold.to(model.dtype_).to(model.sc.device).contiguous()


__all__ = ["prepare_bold"]
