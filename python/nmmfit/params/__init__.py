"""Parameters as data: transforms (unconstrained <-> natural units), fitting schemes (which
parameters exist, their initial values, gains, output noise, default objective), and feedback
inhibition control (analytic, differentiable through the implicit-function theorem; iterative).
Knows nothing of the fitting loop."""
from .fic import CUBNM_TARGET, FICResult, fic_analytic, fic_iterative
from .schemes import SCHEMES, FitScheme, StateInit, get_scheme, paper_init
from .transforms import Identity, LogPositive, OffsetRelu

__all__ = ["FitScheme", "StateInit", "SCHEMES", "get_scheme", "paper_init", "Identity", "OffsetRelu", "LogPositive",
           "fic_analytic", "fic_iterative", "FICResult", "CUBNM_TARGET"]
