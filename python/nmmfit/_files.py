"""Writing outputs without losing any: atomic file writes, and run directories that are never
overwritten unless asked. Imports nothing of nmmfit."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

RUN_FILES = ("result.json", "result.npz", "checkpoint.pt", "report.json")
"""The files that mark a directory as holding a previous run's results."""


def atomic_write(path, write: Callable[[object], None]) -> Path:
    """Call ``write(f)`` on a temporary binary file next to ``path``, then rename it over ``path``:
    ``path`` holds either its old content or the complete new one, never a partial file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


def previous_run(out) -> list[str]:
    """The names of :data:`RUN_FILES` present in the directory ``out``."""
    return [name for name in RUN_FILES if (Path(out) / name).exists()]


def _check_directory(path: Path, argument: str) -> None:
    """``path`` is a directory or can be made one: neither it nor its nearest existing parent is a file."""
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        inside = "" if existing == path else f" to hold {path}"
        raise FileExistsError(f"{argument}: {existing} is a file, expected a directory{inside}")


def prepare_run_dir(out, *, overwrite: bool = False, resume: bool = False, resumable: bool = True,
                    checkpoint: str = "checkpoint.pt", argument: str = "out") -> Path:
    """Create the run directory ``out`` (parents too) unless it holds a previous run's results,
    which are kept: refused with :class:`FileExistsError` unless ``overwrite`` (they are deleted
    first, so nothing stale is left beside the new run) or ``resume`` with a checkpoint there to
    continue from (``resumable``: the run can be resumed at all). Messages name the options both
    as the API and the CLI spell them."""
    out = Path(out)
    _check_directory(out, argument)
    if overwrite and resume:
        raise ValueError(f"overwrite and resume exclude each other: resume continues the run in {out}, "
                         f"overwrite deletes it")
    found = previous_run(out) if out.is_dir() else []
    if found and overwrite:
        for name in found:
            (out / name).unlink()
    elif found and not (resume and (out / checkpoint).exists()):
        hint = "resume=True (--resume) to continue from its checkpoint, or " \
            if resumable and checkpoint in found else ""
        raise FileExistsError(f"{argument}: {out} already holds a previous run's results ({', '.join(found)}), "
                              f"which are kept; pass {hint}overwrite=True (--overwrite) to replace them, "
                              f"or choose another directory")
    out.mkdir(parents=True, exist_ok=True)
    return out


def prepare_output_file(path, *, overwrite: bool = False, argument: str = "out") -> Path:
    """``path``'s directory created; an existing ``path`` refused unless ``overwrite``."""
    path = Path(path)
    if path.is_dir():
        raise FileExistsError(f"{argument}: {path} is a directory, expected a file path")
    _check_directory(path.parent, argument)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{argument}: {path} already exists and is kept; pass overwrite=True (--overwrite) "
                              f"to replace it, or choose another path")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


__all__ = ["RUN_FILES", "atomic_write", "atomic_write_text", "previous_run", "prepare_run_dir", "prepare_output_file"]
