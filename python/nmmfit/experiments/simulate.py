"""A plain simulation from a parameter set on a connectome (``nmmfit simulate``)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from .._files import atomic_write, prepare_output_file
from .._validate import check_bool, check_int
from ..model import RWW
from ..params.schemes import MODEL_PARAM_NAMES, get_scheme
from ..rng import derive_seed
from ..stats.fc import fc_matrix, lower_tri, pearson
from .protocol import figures_enabled, load_subject
from .reports import SimulationReport


def _external_input(input_path, frames: int, burn_in: int, N: int, dtype):
    """The input file ``[frames, N]`` and the per-frame input ``[burn_in + frames, N]`` (zero
    during the burn-in)."""
    from ..datasets import read_matrix

    inp = read_matrix(input_path, argument="input")
    if inp.shape != (frames, N):
        raise ValueError(f"input: expected shape [frames, N] = [{frames}, {N}] (one row per BOLD frame), "
                         f"got {list(inp.shape)}")
    if not np.isfinite(inp).all():
        raise ValueError("input: expected finite values, got NaN or Inf")
    u = torch.zeros(frames + burn_in, N, dtype=dtype)
    u[burn_in:] = torch.as_tensor(inp, dtype=dtype)
    return inp, u


def simulate_run(out, *, dataset="hcp_aal2", subject=0, sc_path=None, preset="griffiths2022",
                 params: Mapping | None = None, frames: int = 1200, burn_in: int = 20, seed: int = 0,
                 output_noise: bool | None = None, backend="auto", figures: bool = True,
                 input_path=None, overwrite: bool = False) -> SimulationReport:
    """Simulate BOLD from a parameter set on a connectome and save ``bold [T, N]``, ``fc``, the
    parameters and the SC (preprocessed as the model uses it) to ``out`` (a ``.npz`` file path or a
    directory, which gets ``simulation.npz``). Parameters not given take the scheme's reference
    values (griffiths2022: the paper's synthetic ground truth). ``input_path``: a file with an
    external input ``[frames, N]`` to the excitatory current, one row per BOLD frame (held over
    the frame's steps; none during the burn-in), saved as ``input``. An existing output file is
    refused (:class:`FileExistsError`) unless ``overwrite``; it is written atomically."""
    t0 = time.perf_counter()
    frames, burn_in = check_int("frames", frames, 2), check_int("burn_in", burn_in, 0)
    out = Path(out)
    path = prepare_output_file(out if out.suffix == ".npz" else out / "simulation.npz",
                               overwrite=check_bool("overwrite", overwrite))
    subj = load_subject(dataset, subject, sc_path=sc_path)
    params = dict(params or {})
    bad = set(params) - set(MODEL_PARAM_NAMES)
    if bad:
        raise ValueError(f"params: unknown names {sorted(bad)}; expected names from {MODEL_PARAM_NAMES}")
    init = {**get_scheme(preset).reference_values, **params}
    model = RWW(subj.sc, preset=preset, fit=(), init=init, fit_gains=False, seed=seed, output_noise=output_noise,
                backend=backend)
    extra, u = {}, None
    if input_path is not None:
        extra["input"], u = _external_input(input_path, frames, burn_in, subj.N, model.dtype_)
    with torch.no_grad():
        sim = model(frames + burn_in, model.initial_state(seed=derive_seed("simulate-state", seed)), 0, u=u)
    bold = sim.bold[0, burn_in:].double()
    fc = fc_matrix(bold).numpy()
    values = {k: float(v.mean()) for k, v in model.values().items()}
    atomic_write(path, lambda f: np.savez_compressed(f, bold=bold.numpy(), fc=fc, sc=model.sc.cpu().numpy(),
                                                     preset=model.preset.name, **extra,
                                                     **{f"param_{k}": v for k, v in values.items()}))
    report = SimulationReport(out=str(path), N=int(subj.N), frames=frames, preset=model.preset.name, params=values,
                              seed=seed, wall_time=time.perf_counter() - t0)
    if subj.fc is not None and subj.bold is not None:
        report.fc_r_vs_empirical = float(pearson(lower_tri(torch.as_tensor(fc)), lower_tri(torch.as_tensor(subj.fc))))
    if figures_enabled(figures):
        from ..plots import plot_fc

        report.figures = [str(plot_fc(subj.fc, fc, path.with_suffix(".fc.png"), sim_label="simulated"))]
    return report


__all__ = ["simulate_run"]
