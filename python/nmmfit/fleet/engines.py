"""Engines run a list of :class:`.jobs.FitJob` and hand each :class:`.jobs.JobResult` to the driver
as it arrives (``on_result``), after announcing each job it starts (``on_start``).

- :class:`LocalEngine`: this process, one job after another (each job's subjects batched in one model).
- :class:`RayEngine`: Ray tasks over a cluster's workers (Ray is an optional extra, imported only
  here, when the engine runs). Each task runs :func:`.jobs.run_job` with a thread budget and returns
  the subjects' files to the driver, which stores them: a worker killed mid-job writes nothing, and
  Ray retries its task (``max_retries``) on a live worker.

Imports: _validate, .jobs; ray inside :class:`RayEngine` only."""
from __future__ import annotations

import logging
from typing import Callable, Sequence

from .._validate import check_choice, check_int
from .jobs import FitJob, JobResult, SubjectOutcome, run_job, worker_name

RAY_INSTALL = 'pip install "nmmfit[ray]"'


class RayNotInstalledError(ImportError):
    """The Ray engine was asked for and Ray is not installed; the message says how to install it."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayNotInstalledError(f"engine 'ray': Ray is not installed; install it with {RAY_INSTALL} "
                                   f"(the 'local' engine needs nothing more)") from None
    return ray


def _failed_job(job: FitJob, error: str) -> JobResult:
    """Every subject of ``job`` failed with ``error`` (the job itself could not be run)."""
    outcomes = [SubjectOutcome(subject=s.subject, status="failed", error=error, worker=worker_name())
                for s in job.subjects]
    return JobResult(job=job, outcomes=outcomes, wall_time=0.0, worker=worker_name())


class LocalEngine:
    """Jobs one after another in this process, each with ``threads`` torch threads (None: as set)."""
    name = "local"
    default_batch = None
    """Subjects per job when not given: all of them in one batched model (``nmmfit fit --subjects``)."""

    def __init__(self, threads: int | None = None, *, address: str | None = None, workers: int | None = None):
        if address is not None or workers not in (None, 1):
            raise ValueError("engine 'local': runs jobs one at a time in this process; workers and address "
                             "(--workers, --address) need the 'ray' engine")
        self.threads = None if threads is None else check_int("threads", threads, 1)

    def slots(self) -> int:
        return 1

    def run(self, jobs: Sequence[FitJob], on_start: Callable, on_result: Callable) -> None:
        for job in jobs:
            on_start(job)
            on_result(run_job(job, self.threads))


class RayEngine:
    """Jobs as Ray tasks, at most ``workers`` at a time (None: as many as the cluster's CPUs allow
    at ``threads`` CPUs each). ``address``: None starts a private Ray on this machine (stopped at
    the end); ``"auto"`` joins the running cluster (``ray start``, or ``RAY_ADDRESS``); else a
    cluster address (``host:port``, ``ray://host:10001``). A Ray already initialised in this
    process is used as it is. A task whose worker dies is retried ``max_retries`` times; a fit's
    own error is never retried (:func:`.jobs.run_job` records it)."""
    name = "ray"
    default_batch = 1
    """Subjects per job when not given: one, so each subject's result is exactly ``nmmfit fit --subject k``'s."""

    def __init__(self, threads: int | None = 1, *, address: str | None = None, workers: int | None = None,
                 max_retries: int = 3):
        self.address = address
        self.workers = None if workers is None else check_int("workers", workers, 1)
        self.threads = 1 if threads is None else check_int("threads", threads, 1)
        self.max_retries = check_int("max_retries", max_retries, 0)
        self._ray = import_ray()

    def _connect(self) -> bool:
        """Connect to or start Ray; True when this engine started it (and so stops it)."""
        ray = self._ray
        if ray.is_initialized():
            return False
        if self.address is None:
            cpus = None if self.workers is None else self.workers * self.threads
            ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING)
        else:
            try:
                ray.init(address=self.address, logging_level=logging.WARNING)
            except ConnectionError as exc:
                raise ValueError(f"address: no Ray cluster at {self.address!r} ({exc}); start one with "
                                 f"`ray start --head`, or leave --address out to run Ray on this machine") from None
        return True

    def slots(self) -> int:
        cpus = int(self._ray.cluster_resources().get("CPU", 1))
        fit = max(1, cpus // self.threads)
        return fit if self.workers is None else min(fit, self.workers)

    def run(self, jobs: Sequence[FitJob], on_start: Callable, on_result: Callable) -> None:
        ray = self._ray
        started = self._connect()
        try:
            task = ray.remote(num_cpus=self.threads, max_retries=self.max_retries, retry_exceptions=False)(run_job)
            waiting, in_flight, slots = list(jobs), {}, self.slots()
            while waiting or in_flight:
                while waiting and len(in_flight) < slots:
                    job = waiting.pop(0)
                    in_flight[task.options(name=f"nmmfit fit {job.key}").remote(job, self.threads)] = job
                    on_start(job)
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                job = in_flight.pop(ready[0])
                try:
                    result = ray.get(ready[0])
                except ray.exceptions.RayError as exc:
                    result = _failed_job(job, " ".join(f"the Ray task failed (a dead worker's task is retried "
                                                       f"{self.max_retries} times): {type(exc).__name__}: "
                                                       f"{exc}".split())[:2000])
                on_result(result)
        finally:
            if started:
                ray.shutdown()


ENGINES = {"local": LocalEngine, "ray": RayEngine}


def make_engine(name: str, *, threads: int | None = None, address: str | None = None, workers: int | None = None):
    """The engine called ``name`` (:data:`ENGINES`) with the settings it takes."""
    return ENGINES[check_choice("engine", name, tuple(ENGINES))](threads, address=address, workers=workers)


__all__ = ["LocalEngine", "RayEngine", "RayNotInstalledError", "ENGINES", "make_engine", "import_ray", "RAY_INSTALL"]
