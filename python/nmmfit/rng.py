"""Seed derivation: every random draw of a fit is keyed by named parts, never by call order.

``derive_seed("test", seed)`` gives the same 63-bit integer on every platform and run, so a
model's noise depends on (seed, what it is for, which subject/restart), not on the batch it lands
in or the order of calls. The state noise itself is Philox-keyed by (seed, stream) in the kernels.
"""
from __future__ import annotations

import hashlib

from ._validate import SEED_LIMIT


def derive_seed(*parts) -> int:
    """A seed in ``[0, 2**63)`` from ``parts`` (stable across runs and platforms)."""
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & (SEED_LIMIT - 1)


def derive_seed62(*parts) -> int:
    """:func:`derive_seed` reduced to ``[0, 2**62)``: the range the fits' derived seeds have always
    used (kept so that saved results reproduce)."""
    return derive_seed(*parts) % 2**62


__all__ = ["derive_seed", "derive_seed62"]
