"""Parameters as data: transforms (unconstrained <-> natural units), fitting schemes (which
parameters exist, their initial values, gains, output noise, default objective), and feedback
inhibition control (analytic, differentiable through the implicit-function theorem; iterative), and
regional heterogeneity (brain maps or node groups scaling a global value).
Knows nothing of the fitting loop."""
from .fic import FIC_RULES, CUBNM_TARGET, AnalyticFIC, FICResult, IterativeFIC, fic_analytic, fic_iterative
from .heterogeneity import Heterogeneous, MapScaling
from .schemes import SCHEMES, FitScheme, StateInit, get_scheme, paper_init
from .transforms import Identity, LogPositive, OffsetRelu

__all__ = ["FitScheme", "StateInit", "SCHEMES", "get_scheme", "paper_init", "Identity", "OffsetRelu", "LogPositive",
           "fic_analytic", "fic_iterative", "FICResult", "CUBNM_TARGET", "AnalyticFIC", "IterativeFIC", "FIC_RULES",
           "MapScaling", "Heterogeneous"]
