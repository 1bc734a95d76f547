"""Checkpoint files that are safe to load and checked for integrity.

Layout: a magic line, the SHA-256 of the payload, then the payload (``torch.save`` of tensors and
plain containers). Loading verifies the magic and the hash before ``torch.load(weights_only=True)``,
so a truncated, corrupted or foreign file is refused with a message naming it and a planted pickle
is never executed."""
from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path

import torch

from .._files import atomic_write

MAGIC = b"NMMFIT-CHECKPOINT 1\n"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: truncated, corrupted, foreign or unsafe."""


def _serialise(state: dict) -> memoryview:
    """The payload of a checkpoint holding ``state``."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getbuffer()


def _write(path, payload: memoryview) -> Path:
    """The header (magic, the payload's SHA-256) and the payload, written atomically."""
    header = MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n"
    return atomic_write(path, lambda f: (f.write(header), f.write(payload)))


def save_checkpoint(path, state: dict) -> Path:
    """Write ``state`` atomically (a temporary file renamed over ``path``)."""
    return _write(path, _serialise(state))


class CheckpointWriter:
    """Checkpoints written in order, each while the next epoch runs: ``save`` serialises ``state``
    at once (the fit goes on changing its tensors) and leaves the hash (which releases the GIL),
    the write, fsync and rename, mostly disk time, to a thread. ``wait`` returns when every
    checkpoint given is on disk and raises the error of a write that failed; ``save`` waits for the
    previous write first, so at most one is in flight and a failure stops the fit one epoch later
    at most."""

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(self, path, state: dict) -> None:
        payload = _serialise(state)
        self.wait()
        self._thread = threading.Thread(target=self._run, args=(path, payload), name="nmmfit-checkpoint", daemon=True)
        self._thread.start()

    def _run(self, path, payload) -> None:
        try:
            _write(path, payload)
        except BaseException as exc:  # noqa: BLE001  (re-raised in the fit's thread by wait())
            self._error = exc

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


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


__all__ = ["save_checkpoint", "CheckpointWriter", "load_checkpoint", "CheckpointError", "MAGIC"]
