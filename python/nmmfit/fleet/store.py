"""A cohort's results on disk, written so that nothing finished is lost or truncated:

    OUT/manifest.json          the cohort: its settings (data, fit options, seed), their fingerprint, subjects
    OUT/cohort.csv             one row per subject and restart (:func:`.jobs.cohort_rows`, status, wall time,
                               worker, error)
    OUT/subjects/ID/           the subject's fit (:data:`.jobs.RESULT_FILES`) and status.json

Every file is written atomically (:func:`nmmfit._files.atomic_write`), and a subject's status.json
last: a subject is done when its status.json says so under the cohort's current settings, so a
driver killed between two files leaves the subject unfinished, never half-done. Re-opening the
store with other settings is refused unless ``force`` (which refits every subject asked for).

Imports: _files, .jobs."""
from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
import re
from pathlib import Path

from .._files import atomic_write, atomic_write_text
from .jobs import RESULT_FILES, SubjectOutcome

MANIFEST = "manifest.json"
COHORT_CSV = "cohort.csv"
STATUS = "status.json"
SUBJECTS_DIR = "subjects"
FIRST_COLUMNS = ("subject", "status", "restart", "best", "train_r", "test_r", "heldout_r")
LAST_COLUMNS = ("wall_time_s", "worker", "finished", "error")
_SUBJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_subject_name(name: str) -> str:
    """A subject ID usable as a directory name (letters, digits, ``._-``; not starting with a dot)."""
    if not isinstance(name, str) or not _SUBJECT_NAME.fullmatch(name):
        raise ValueError(f"subjects: {name!r} cannot name a subject's directory; expected letters, digits, "
                         f"'.', '_' or '-', starting with a letter or digit")
    return name


def _json(obj, sort_keys: bool = False) -> str:
    return json.dumps(obj, indent=2, sort_keys=sort_keys, default=str)


def fingerprint(settings: dict) -> str:
    return hashlib.sha1(_json(settings, sort_keys=True).encode()).hexdigest()[:16]


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _differences(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    return "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


class CohortStore:
    """The result store of one cohort in ``root``. ``settings``: what makes two fits of a subject the
    same (JSON-ready: data source, fit options, seed)."""

    def __init__(self, root, settings: dict, *, force: bool = False):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise FileExistsError(f"out: {self.root} is a file, expected a directory")
        self.settings = json.loads(_json(settings))
        self.fingerprint = fingerprint(self.settings)
        old = self._read_manifest()
        if old is not None and old["fingerprint"] != self.fingerprint and not force:
            raise FileExistsError(f"out: {self.root} holds a cohort fitted with other settings "
                                  f"({_differences(old['settings'], self.settings)}); its results are kept: pass "
                                  f"force=True (--force) to refit the subjects with these settings, or choose "
                                  f"another directory")
        self.subjects = list(old["subjects"]) if old is not None else []
        self.created = old["created"] if old is not None else _now()
        self.statuses = self._read_statuses()

    def _read_manifest(self) -> dict | None:
        path = self.root / MANIFEST
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"out: {path} is not a readable cohort manifest ({exc}); move it away or choose "
                             f"another directory") from None

    def _read_statuses(self) -> dict:
        out = {}
        for path in sorted((self.root / SUBJECTS_DIR).glob(f"*/{STATUS}")):
            try:
                out[path.parent.name] = json.loads(path.read_text())
            except (OSError, ValueError):       # written atomically: only a foreign file can be unreadable
                continue
        return out

    def subject_dir(self, subject: str) -> Path:
        return self.root / SUBJECTS_DIR / check_subject_name(subject)

    def is_done(self, subject: str) -> bool:
        """Fitted to completion under the current settings (a failed or other-settings fit is not)."""
        st = self.statuses.get(subject)
        return st is not None and st.get("status") == "done" and st.get("fingerprint") == self.fingerprint

    def add_subjects(self, subjects) -> None:
        """Add ``subjects`` to the cohort and write the manifest (the cohort directory is made here)."""
        self.subjects += [s for s in map(check_subject_name, subjects) if s not in self.subjects]
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.root / MANIFEST, _json(dict(format=1, settings=self.settings,
                                                           fingerprint=self.fingerprint, subjects=self.subjects,
                                                           created=self.created, updated=_now())))

    def record(self, outcome: SubjectOutcome) -> None:
        """Store a subject's outcome: its files first, its status last. A failure keeps the files of
        an earlier fit (if any) and says so in its status."""
        d = self.subject_dir(outcome.subject)
        d.mkdir(parents=True, exist_ok=True)
        (d / STATUS).unlink(missing_ok=True)
        if outcome.status == "done":
            for name in set(RESULT_FILES) - set(outcome.files):
                (d / name).unlink(missing_ok=True)
            for name, data in outcome.files.items():
                atomic_write(d / name, lambda f, data=data: f.write(data))
        kept = outcome.status != "done" and (d / RESULT_FILES[0]).exists()
        status = dict(subject=outcome.subject, status=outcome.status, error=outcome.error,
                      wall_time=outcome.wall_time, worker=outcome.worker, fingerprint=self.fingerprint,
                      finished=_now(), rows=outcome.rows, earlier_result_kept=kept)
        atomic_write_text(d / STATUS, _json(status))
        self.statuses[outcome.subject] = status

    def state(self, subject: str) -> str:
        """done, failed, stale (fitted under other settings) or pending."""
        st = self.statuses.get(subject)
        if st is None:
            return "pending"
        return st["status"] if st.get("fingerprint") == self.fingerprint else "stale"

    def table(self) -> list:
        """The cohort table: per subject of the manifest, one row per restart (done) or one row
        saying why there is none (failed, stale, pending)."""
        rows = []
        for s in self.subjects:
            st, state = self.statuses.get(s, {}), self.state(s)
            tail = dict(wall_time_s=st.get("wall_time"), worker=st.get("worker"), finished=st.get("finished"),
                        error=st.get("error"))
            if state == "done":
                rows += [dict(subject=s, status=state, **r, **tail) for r in st["rows"]]
            else:
                rows.append(dict(subject=s, status=state, **(tail if state == "failed" else {})))
        return rows

    def write_table(self) -> Path:
        """``cohort.csv`` (atomically) from :meth:`table`."""
        rows = self.table()
        seen = [c for r in rows for c in r]
        middle = [c for c in dict.fromkeys(seen) if c not in FIRST_COLUMNS + LAST_COLUMNS]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=[*FIRST_COLUMNS, *middle, *LAST_COLUMNS], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return atomic_write_text(self.root / COHORT_CSV, buf.getvalue())


__all__ = ["CohortStore", "MANIFEST", "COHORT_CSV", "STATUS", "SUBJECTS_DIR", "check_subject_name", "fingerprint"]
