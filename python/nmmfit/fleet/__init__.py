"""Fleets: fit a whole cohort, in this process or on a Ray cluster, surviving failures and resuming.

Modules (arrows: may import): jobs (FitJob, JobResult, run_job) -> experiments, fit; store
(CohortStore: one directory per subject, manifest, cohort.csv) -> _files, jobs; engines
(LocalEngine, RayEngine; Ray imported only when the Ray engine is made) -> jobs; progress -> tqdm;
figure -> plots; cohort (run_fleet, FleetReport) -> all of them. Nothing in nmmfit imports fleet
except the CLI, and only for ``nmmfit fleet``."""
from .cohort import DEFAULT_RESTARTS, FleetReport, dataset_refs, file_refs, plan_jobs, run_fleet
from .engines import ENGINES, RAY_INSTALL, LocalEngine, RayEngine, RayNotInstalledError, make_engine
from .jobs import FitJob, JobResult, SubjectOutcome, SubjectRef, cohort_rows, fit_option_names, run_job
from .store import COHORT_CSV, MANIFEST, STATUS, CohortStore

__all__ = ["run_fleet", "FleetReport", "plan_jobs", "dataset_refs", "file_refs", "DEFAULT_RESTARTS", "ENGINES",
           "RAY_INSTALL", "LocalEngine", "RayEngine", "RayNotInstalledError", "make_engine", "FitJob", "JobResult",
           "SubjectOutcome", "SubjectRef", "cohort_rows", "fit_option_names", "run_job", "CohortStore",
           "COHORT_CSV", "MANIFEST", "STATUS"]
