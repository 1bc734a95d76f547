"""End-to-end experiments behind the CLI. Each writes its results and figures into ``out`` and
returns a typed report (:mod:`.reports`) whose ``summary()`` the CLI prints.

Modules: protocol (what they share), subjects (fit_subject, fit_subjects, demo), recover (the
synthetic experiment), physiological (Deco 2014 with FIC, heterogeneity, FCD), landscape (scans and profiles of its objective), simulate (simulate_run),
reports. Imports: everything below the CLI; nothing here imports the CLI."""
from .landscape import landscape, profile
from .physiological import SCAN_GRID, PhysiologicalFitReport, fit_physiological
from .protocol import DEMO_FIT, default_demo_epochs, parse_subjects
from .recover import DERIVED_NAMES, RECOVER_NAMES, SYNTHETIC_TRUTH, local_inputs, recover, recover_starts
from .reports import CohortFitReport, RecoveryReport, Report, SimulationReport, SubjectFitReport
from .simulate import simulate_run
from .subjects import DEMO_RESTARTS, demo, fit_subject, fit_subjects

__all__ = ["SYNTHETIC_TRUTH", "DEMO_FIT", "DEMO_RESTARTS", "DERIVED_NAMES", "RECOVER_NAMES", "local_inputs",
           "fit_subject", "fit_subjects", "parse_subjects", "demo", "recover", "recover_starts", "landscape",
           "profile", "simulate_run", "default_demo_epochs", "Report", "SubjectFitReport", "CohortFitReport",
           "RecoveryReport", "SimulationReport", "fit_physiological", "PhysiologicalFitReport", "SCAN_GRID"]
