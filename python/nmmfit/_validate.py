"""Argument contracts, one per kind of argument, shared by every public entry point.

Each check names the argument and says what was expected and what was given. Integers accept
Python ints and numpy/torch integer scalars (never bools); the returned value is a plain int or
float, so callers can pass it on without re-checking. Imports nothing of nmmfit.
"""
from __future__ import annotations

import numbers
from typing import Iterable, Sequence

import numpy as np
import torch

SEED_LIMIT = 2**63
"""Seeds are ints in [0, 2**63): the Philox key is 64-bit, but derived streams reserve the top bit."""


def all_finite(*tensors) -> bool:
    """Whether every element of ``tensors`` (``None`` and integer tensors allowed, all on one device)
    is finite, with one reduction per tensor and one host sync for all: a NaN or Inf makes its
    tensor's float64 sum non-finite, and the exact elementwise check runs only when some sum is
    (a float64 tensor's sum can also overflow). The guards of the fit loop and of every op call use
    it, so its cost is paid per window."""
    floats = [t.detach() for t in tensors if t is not None and t.is_floating_point() and t.numel()]
    if not floats:
        return True
    sums = torch.stack([t.sum(dtype=torch.float64) for t in floats])
    if bool(torch.isfinite(sums).all()):
        return True
    return all(bool(torch.isfinite(t).all()) for t in floats)


def _is_int(value) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, torch.Tensor):
        return value.dim() == 0 and not value.is_floating_point() and value.dtype != torch.bool \
            and not value.is_complex()
    return isinstance(value, numbers.Integral)


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as a plain int within ``[minimum, maximum]`` (either bound optional)."""
    if not _is_int(value):
        raise TypeError(f"{name}: expected an int{_bounds(minimum, maximum)}, got {value!r} "
                        f"({type(value).__name__})")
    v = int(value)
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise ValueError(f"{name}: expected an int{_bounds(minimum, maximum)}, got {v}")
    return v


def check_float(name: str, value, minimum: float | None = None, maximum: float | None = None, *,
                open_min: bool = False, open_max: bool = False) -> float:
    """``value`` as a finite float within the bounds (closed unless ``open_min``/``open_max``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype != torch.bool:
        ok, value = True, value.item()
    lo = "" if minimum is None else ("> " if open_min else ">= ") + f"{minimum:g}"
    hi = "" if maximum is None else ("< " if open_max else "<= ") + f"{maximum:g}"
    what = "a finite number" + (f" {lo}" if lo else "") + (" and" if lo and hi else "") + (f" {hi}" if hi else "")
    if minimum == 0 and open_min and maximum is None:
        what = "a positive number"
    if not ok:
        raise TypeError(f"{name}: expected {what}, got {value!r} ({type(value).__name__})")
    v = float(value)
    bad = not np.isfinite(v)
    bad |= minimum is not None and (v <= minimum if open_min else v < minimum)
    bad |= maximum is not None and (v >= maximum if open_max else v > maximum)
    if bad:
        raise ValueError(f"{name}: expected {what}, got {v!r}")
    return v


def check_seed(name: str, value) -> int:
    """A seed: an int in ``[0, 2**63)``."""
    return check_int(name, value, 0, SEED_LIMIT - 1)


def check_bool(name: str, value) -> bool:
    """``value`` must be a bool (numpy bools too); ints and strings are refused, since ``"no"`` is truthy."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_choice(name: str, value, choices: Iterable):
    """``value`` must be one of ``choices`` (compared with ==)."""
    choices = tuple(choices)
    if isinstance(value, (list, dict, set)) or value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def check_names(name: str, value, allowed: Sequence[str], kind: str = "names") -> tuple[str, ...]:
    """A collection of names from ``allowed`` (``kind``: what they are called in messages). A bare
    string is refused (``fit="g"`` is almost always meant as ``fit=("g",)``, and iterating it would
    give its letters)."""
    if isinstance(value, str):
        raise TypeError(f"{name}: expected a list of {kind} from {tuple(allowed)}, got the string {value!r} "
                        f"(write [{value!r}])")
    try:
        names = tuple(value)
    except TypeError:
        raise TypeError(f"{name}: expected a list of {kind} from {tuple(allowed)}, got {value!r}") from None
    bad = [n for n in names if not isinstance(n, str) or n not in allowed]
    if bad:
        raise ValueError(f"{name}: unknown {kind} {bad}; expected {kind} from {tuple(allowed)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{name}: lists a name twice: {list(names)}")
    return names


def check_tensor(name: str, value, *, dims: Sequence[int] | None = None, finite: bool = True,
                 dtype=None) -> torch.Tensor:
    """``value`` as a tensor (numpy arrays and nested lists converted) with one of the ``dims``
    numbers of dimensions, finite unless ``finite=False``; on the meta device it is refused, since
    nothing can be computed from it."""
    if isinstance(value, torch.Tensor):
        t = value
    else:
        try:
            t = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name}: expected a tensor or array, got {type(value).__name__}") from exc
    if t.device.type == "meta":
        raise ValueError(f"{name}: a meta tensor holds no data; give a tensor on the CPU or a GPU")
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name}: expected real numbers, got dtype {t.dtype}")
    if dims is not None and t.dim() not in dims:
        raise ValueError(f"{name}: expected {' or '.join(f'{d}-d' for d in dims)} values, got shape {list(t.shape)}")
    if dtype is not None:
        t = t.to(dtype)
    if finite and not all_finite(t):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name}: expected finite values, got {bad} NaN/Inf entries")
    return t


def _bounds(minimum, maximum) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


__all__ = ["SEED_LIMIT", "all_finite", "check_int", "check_float", "check_seed", "check_bool", "check_choice", "check_names", "check_tensor"]
