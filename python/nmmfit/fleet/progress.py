"""Progress over a cohort's subjects: done, running, failed, pending, and the ETA from this run's
pace, on a tqdm bar (stderr) and as a line for the summary.

Imports: tqdm; nothing of nmmfit."""
from __future__ import annotations

import time


class FleetProgress:
    """Counts for ``total`` subjects to run now (``skipped`` were already done in the store)."""

    def __init__(self, total: int, skipped: int = 0, *, enabled: bool = True):
        from tqdm.auto import tqdm

        self.total, self.skipped = total, skipped
        self.done = self.failed = self.running = 0
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=total, unit="subject", desc="fleet", disable=not enabled, leave=True)

    @property
    def pending(self) -> int:
        return self.total - self.done - self.failed - self.running

    def eta(self) -> float | None:
        """Seconds left at this run's pace (None before the first subject finishes)."""
        finished = self.done + self.failed
        if not finished:
            return None
        return (time.perf_counter() - self.t0) / finished * (self.total - finished)

    def line(self) -> str:
        eta = self.eta()
        return (f"done {self.done}, running {self.running}, failed {self.failed}, pending {self.pending}"
                + (f", already done {self.skipped}" if self.skipped else "")
                + ("" if eta is None else f", ETA {eta:.0f} s"))

    def _show(self):
        self.bar.set_postfix_str(self.line(), refresh=True)

    def started(self, n_subjects: int) -> None:
        self.running += n_subjects
        self._show()

    def finished(self, statuses) -> None:
        """Subjects of a finished job, by their status ("done" or "failed")."""
        statuses = list(statuses)
        self.running -= len(statuses)
        self.done += statuses.count("done")
        self.failed += statuses.count("failed")
        self.bar.update(len(statuses))
        self._show()

    def close(self) -> float:
        """Close the bar; the run's wall time in seconds."""
        self.bar.close()
        return time.perf_counter() - self.t0


__all__ = ["FleetProgress"]
