"""Loading of the compiled extension ``nmmfit._C`` (the TORCH_LIBRARY ops and ``build_info``)."""
from __future__ import annotations

import warnings

import torch  # noqa: F401  (must load before _C: the module has no RPATH to libtorch)

try:
    from . import _C  # noqa: F401  (importing registers the nmmfit:: ops)
    HAS_EXTENSION = True
    _IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    HAS_EXTENSION = False
    _IMPORT_ERROR = exc


def build_info() -> dict:
    """What the compiled extension was built with: torch version, CUDA on/off and archs, OpenMP threads."""
    if not HAS_EXTENSION:
        return {"extension": False, "error": str(_IMPORT_ERROR)}
    return dict(_C.build_info(), extension=True)


_warned = False


def warn_fallback():
    """One warning per process when the pure-PyTorch reference stands in for the kernels."""
    global _warned
    if not _warned:
        warnings.warn(f"nmmfit: compiled extension not available ({_IMPORT_ERROR}); using the pure-PyTorch reference", stacklevel=3)
        _warned = True
