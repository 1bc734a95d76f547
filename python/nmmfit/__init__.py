"""nmmfit: fused CPU/CUDA kernels with exact adjoints for fitting connectome-based neural mass
models (two-state Reduced Wong-Wang + Balloon-Windkessel BOLD) to fMRI in PyTorch."""
from ._ext import HAS_EXTENSION, build_info
from ._inputs import SimOutput
from .presets import PARAM_NAMES, PRESETS, STATE_NAMES, Preset, get_preset
from .reference import simulate_ref
from .ops import noise, simulate

__version__ = "0.1.0"
from .stats import fc_correlation, fc_matrix
from .sc import coupling_from_gains, preprocess_sc
from .params.schemes import SCHEMES, FitScheme, Stage, get_scheme, paper_init
from .model import RWW
from .losses import (LossInput, LossTerm, FCCorrelationLoss, FCRMSELoss, BoldMSELoss, EntropyLoss,
                     BifurcationLoss, GaussianPrior, TargetFCLoss, GainPenalty, Objective, griffiths2022_objective, default_objective)
from .fit import fit, fit_stages, FitConfig, FitDivergedError, FitResult, simulate_test
from . import datasets  # noqa: E402  (the bundled data, reachable as nmmfit.datasets)
