"""nmmfit: fused CPU/CUDA kernels with exact adjoints for fitting connectome-based neural mass
models (two-state Reduced Wong-Wang + Balloon-Windkessel BOLD) to fMRI in PyTorch."""
from ._ext import HAS_EXTENSION, build_info
from ._inputs import SimOutput
from .presets import PARAM_NAMES, PRESETS, STATE_NAMES, Preset, get_preset
from .reference import simulate_ref
from .ops import noise, simulate

__version__ = "0.1.0"
from .model import RWW, preprocess_sc, coupling_from_gains, fc_matrix, fc_correlation, paper_init
from .losses import (LossInput, LossTerm, FCCorrelationLoss, FCRMSELoss, BoldMSELoss, EntropyLoss,
                     BifurcationLoss, GaussianPrior, Objective, griffiths2022_objective, default_objective)
from .results import FitResult
from .fit import fit, FitDivergedError, simulate_test
