"""nmmfit: fused CPU/CUDA kernels with exact adjoints for fitting connectome-based neural mass
models (two-state Reduced Wong-Wang + Balloon-Windkessel BOLD) to fMRI in PyTorch."""
from ._ext import HAS_EXTENSION, build_info
from ._inputs import SimOutput
from .presets import PARAM_NAMES, PRESETS, STATE_NAMES, Preset, get_preset
from .reference import simulate_ref
from .ops import noise, simulate

__version__ = "0.1.0"
