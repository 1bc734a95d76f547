"""Loading of the compiled extension ``nmmfit._C`` (the TORCH_LIBRARY ops and ``build_info``)."""
from __future__ import annotations

import signal
import threading
import warnings

import torch  # (must load before _C: the module has no RPATH to libtorch)

try:
    from . import _C  # noqa: F401  (importing registers the nmmfit:: ops)
    HAS_EXTENSION = True
    _IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    HAS_EXTENSION = False
    _IMPORT_ERROR = exc


def check_torch_version(built: str, running: str) -> None:
    """The extension is compiled against one torch: refuse another (its C++ ABI may differ, and a
    mismatch crashes or corrupts instead of failing cleanly)."""
    if built.split("+")[0] != running.split("+")[0]:
        raise ImportError(f"nmmfit was built against torch {built} but torch {running} is installed; rebuild it "
                          f"against this torch: pip install --no-build-isolation --no-deps --force-reinstall nmmfit "
                          f"(from its source), or install torch {built.split('+')[0]}")


if HAS_EXTENSION:
    check_torch_version(_C.build_info()["torch_version"], torch.__version__)


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


def _traps_sigint() -> bool:
    """Whether Ctrl-C should stop a kernel call: on the main thread, where SIGINT means KeyboardInterrupt
    (Python's default handler), outside torch.compile (a compiled graph calls the ops directly)."""
    return (HAS_EXTENSION and not torch.compiler.is_compiling()
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler)


def run_interruptible(fn, *args):
    """``fn(*args)`` (one nmmfit op call) such that Ctrl-C raises KeyboardInterrupt within a checkpoint
    segment of the CPU kernels. The ops run with the GIL released, so Python's own SIGINT handler would
    only run once the call returned; for the call's duration a C handler sets a flag that the kernels
    check between segments (csrc/interrupt.h), and the interrupted op's error becomes KeyboardInterrupt."""
    if not _traps_sigint():
        return fn(*args)
    _C.begin_interruptible()
    try:
        result = fn(*args)
    except BaseException:
        if _C.end_interruptible():
            raise KeyboardInterrupt from None
        raise
    if _C.end_interruptible():
        raise KeyboardInterrupt
    return result
