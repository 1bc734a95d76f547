"""The nmmfit op signatures as registered (csrc/schema.h spells them once): argument names and
positions are read from the registered schemas, never counted by hand."""
from __future__ import annotations

import torch

from . import _ext  # noqa: F401  (registers the ops)

SIMULATE = torch.ops.nmmfit.simulate.default._schema
SIMULATE_BACKWARD = torch.ops.nmmfit.simulate_backward.default._schema
NOISE = torch.ops.nmmfit.noise.default._schema

SIMULATE_ARGS = tuple(a.name for a in SIMULATE.arguments)
SIMULATE_BACKWARD_ARGS = tuple(a.name for a in SIMULATE_BACKWARD.arguments)
SIMULATE_OUT = {r.name: i for i, r in enumerate(SIMULATE.returns)}

_TENSOR = torch._C.OptionalType.ofTensor()
CONFIG = tuple(a.name for a in SIMULATE.arguments
               if a.name in SIMULATE_BACKWARD_ARGS and not a.type.isSubtypeOf(_TENSOR))
"""The run's settings (seed ... scalars, u_every): simulate's non-tensor arguments that simulate_backward repeats."""

NO_FORWARD_AD = (
    "nmmfit.simulate: forward-mode AD (torch.func.jvp, jacfwd, hessian; torch.autograd.forward_ad) is not "
    "supported by the fused kernels, which have an adjoint but no tangent pass; use reverse mode (backward, "
    "torch.func.grad, vjp, jacrev) or nmmfit.simulate_ref")
NO_DOUBLE_BACKWARD = (
    "nmmfit.simulate: double backward (a derivative of the gradient: Hessians, gradient penalties, "
    "create_graph=True) is not supported by the fused kernels; use nmmfit.simulate_ref for it")


def fill_defaults(schema, args) -> tuple:
    """args with the trailing arguments the dispatcher dropped (those equal to their defaults) restored."""
    return (*args, *(a.default_value for a in schema.arguments[len(args):]))


def args_by_name(schema, args) -> dict:
    """{argument name: value} of a positional call of the op with this schema."""
    return dict(zip((a.name for a in schema.arguments), fill_defaults(schema, args)))


def ordered(names, values: dict) -> tuple:
    """values {argument name: value} as positional arguments in schema order ``names`` (e.g. SIMULATE_ARGS)."""
    return tuple(values[name] for name in names)
