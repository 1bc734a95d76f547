"""Checkpoint files that are safe to load and checked for integrity.

Layout: a magic line, the SHA-256 of the payload, then the payload (``torch.save`` of tensors and
plain containers). Loading verifies the magic and the hash before ``torch.load(weights_only=True)``,
so a truncated, corrupted or foreign file is refused with a message naming it and a planted pickle
is never executed."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from .._files import atomic_write

MAGIC = b"NMMFIT-CHECKPOINT 1\n"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: truncated, corrupted, foreign or unsafe."""


def save_checkpoint(path, state: dict) -> Path:
    """Write ``state`` atomically (a temporary file renamed over ``path``)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    header = MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n"
    return atomic_write(path, lambda f: f.write(header + payload))


def load_checkpoint(path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; :class:`CheckpointError` otherwise."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except (IsADirectoryError, PermissionError) as exc:
        raise CheckpointError(f"{path}: the checkpoint cannot be read ({exc.strerror})") from exc
    if not data.startswith(MAGIC):
        raise CheckpointError(f"{path}: not an nmmfit checkpoint (written by another program or an older "
                              f"nmmfit); use another out_dir, or overwrite=True (--overwrite) to replace that run")
    digest, sep, payload = data[len(MAGIC):].partition(b"\n")
    if not sep or hashlib.sha256(payload).hexdigest().encode() != digest:
        raise CheckpointError(f"{path}: the checkpoint is truncated or corrupted (its SHA-256 does not match); "
                              f"start the fit afresh with overwrite=True (--overwrite)")
    try:
        return torch.load(io.BytesIO(payload), weights_only=True)
    except Exception as exc:  # noqa: BLE001  (any unpickling failure means the same to the user)
        raise CheckpointError(f"{path}: the checkpoint holds more than tensors and plain containers, so it was "
                              f"not loaded (loading it could run code: {_reason(exc)}); use another out_dir, or "
                              f"overwrite=True (--overwrite) to replace that run") from exc


def _reason(exc: Exception) -> str:
    """One line of torch's unpickling error: the object refused (its message spans several lines
    and suggests ``weights_only=False``, which is exactly what must not be done here)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    refused = [ln for ln in lines if "Unsupported global" in ln]
    return (refused or lines or [type(exc).__name__])[0].split(". Please use")[0]


__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointError", "MAGIC"]
