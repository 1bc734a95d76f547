"""The ``nmmfit`` command line (also ``python -m nmmfit``).

    nmmfit demo --out DIR         fit one HCP subject as the paper did; train/test FC r, wall time, figures
    nmmfit recover --out DIR      the paper's synthetic experiment: recover known parameters from several starts
    nmmfit fit --out DIR ...      fit a dataset subject (--dataset/--subject) or your files (--sc/--bold)
    nmmfit fit --scheme deco2014_fic --maps myelinmap,fcgradient01 --out DIR
                                  a physiological fit: FIC, heterogeneity, FC + FCD, held-out session
    nmmfit simulate --out F.npz   simulate BOLD/FC from a parameter set (--param g=100 ...)
    nmmfit fleet --out DIR ...    fit a cohort (--subjects all) locally or on Ray (--engine ray); resumable

A previous run's results in --out are kept: the command refuses unless --overwrite (or, for fit
and demo, --resume to continue from its checkpoint). Exit status: 0 done; 2 a user error (a bad
argument, file, checkpoint or setting: one line on stderr); 130 interrupted (Ctrl-C: the completed
epochs stay in --out/checkpoint.pt); 1 a diverged fit, or an internal error (with its traceback).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .params.schemes import SCHEMES

PARAMS = ("g", "g_EE", "g_IE", "g_EI", "I_0", "sigma", "sigma_out")


def _names(text):
    if text is None:
        return None
    if text.strip() in ("", "none"):
        return ()
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in PARAMS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown parameter(s) {bad}; expected names from {PARAMS}")
    return names


def _param(text):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    k = k.strip()
    if k not in PARAMS:
        raise argparse.ArgumentTypeError(f"unknown parameter {k!r}; expected one of {PARAMS}")
    try:
        return k, float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{k}: expected a number, got {v!r}") from None


def _scale(text):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=X, got {text!r}")
    k, v = text.split("=", 1)
    try:
        x = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{k}: expected a number, got {v!r}") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"{k}: expected a positive multiplier, got {x}")
    return k.strip(), x


def _stage_count(text):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected STAGE=N, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), _count(1)(v)


def _test_windows(text):
    if text == "data":
        return text
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int or 'data', got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("expected >= 1")
    return n


class _Parser(argparse.ArgumentParser):
    """An argument error is one line on stderr (``nmmfit <cmd>: error: ...``) and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _count(minimum: int):
    """An argparse type: an int >= ``minimum``."""
    def parse(text):
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int >= {minimum}, got {text!r}") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"expected an int >= {minimum}, got {n}")
        return n
    return parse


OVERWRITE_HELP = "replace a previous run's results in --out (by default they are kept and the command refuses)"


def _common(p, *, epochs, epochs_help=None, mode="windowed", mode_help=None, lr=0.01, lr_help=None,
            test_windows="data", test_help=None):
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--epochs", type=_count(1), default=epochs, help=epochs_help or f"passes over the data (default {epochs})")
    p.add_argument("--window", type=_count(1), default=20, help="frames per window (default 20, the paper)")
    p.add_argument("--mode", choices=("windowed", "full"), default=mode,
                   help=mode_help or "windowed truncated backprop (the paper; default) or full-session exact gradients")
    p.add_argument("--lr", type=float, default=lr, help=lr_help or f"Adam learning rate (default {lr})")
    p.add_argument("--test-windows", type=_test_windows, default=test_windows,
                   help=test_help or "test run length in windows, or 'data' (as many as the data has; default)")
    p.add_argument("--lr-scale", type=_scale, action="append", default=[], metavar="NAME=X",
                   help="multiply the learning rate of a parameter or loss term, e.g. g=100 prior_g=100 (not in the paper)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=("auto", "reference"), default="auto",
                   help="auto: compiled kernels when built; reference: pure PyTorch")
    p.add_argument("--float64", action="store_true", help="simulate in float64 (default float32)")
    p.add_argument("--sc-preprocess", choices=("log1p_fro", "max_log1p_fro", "max", "none"), default=None,
                   help="SC preprocessing (default: log1p_fro for griffiths2022, as docs/MODEL.md; max_log1p_fro "
                        "divides raw streamline counts by their maximum first)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-figures", action="store_true")


HELDOUT_HELP = ("data the fit never sees, scored beside the baselines: 'session' (fit the first session, hold out "
                "the second; datasets with two), 'half' (fit the first half of the run, hold out the second), "
                "'none' (fit everything; in-sample scores only), 'auto' (session where there are two, else half; "
                "default)")


def _add_simulate(sub):
    p = sub.add_parser("simulate", help="simulate BOLD and FC from a parameter set (saved as .npz)")
    p.add_argument("--out", required=True, help="output .npz file or directory")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file (by default it is kept "
                                                            "and the command refuses)")
    p.add_argument("--dataset", default="hcp_aal2")
    p.add_argument("--subject", default="0")
    p.add_argument("--sc", default=None, help="SC file instead of a dataset")
    p.add_argument("--preset", choices=("griffiths2022", "deco2014"), default="griffiths2022")
    p.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                   help="parameter value (default: the paper's synthetic values for griffiths2022, preset defaults otherwise)")
    p.add_argument("--frames", type=_count(2), default=1200, help="BOLD frames simulated and saved (default 1200)")
    p.add_argument("--burn-in", type=_count(0), default=20, help="frames simulated and dropped first (default 20)")
    p.add_argument("--input", default=None, metavar="FILE",
                   help="external input to the excitatory current, [frames, N] (.npy/.npz/.csv/.txt/.mat), "
                        "one row per BOLD frame, e.g. a task design")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=("auto", "reference"), default="auto")
    p.add_argument("--no-figures", action="store_true")


def _grid(text):
    """``NAME=V1,V2,...`` -> (name, values): a start grid (the name checked as ``--init``'s)."""
    name, values = text.split("=", 1) if "=" in text else (text, "")
    k, _ = _param(f"{name}=0")
    try:
        return k, tuple(float(x) for x in values.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{k}: expected NAME=V1,V2,... with numbers, got {text!r}") from None


def _weights(text):
    """``NAME=W,...`` -> {name: W >= 0} (the names are checked by the objective)."""
    out = {}
    for item in (t for t in text.split(",") if t.strip()):
        k, _, v = item.partition("=")
        try:
            w = float(v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected NAME=WEIGHT, got {item!r}") from None
        if not w >= 0:
            raise argparse.ArgumentTypeError(f"{k.strip()}: expected a weight >= 0, got {w}")
        out[k.strip()] = w
    return out


def _add_physiological(p):
    """A physiological fit (experiments.physiological: full-session gradients, FC + FCD, scored on the
    held-out session): ``--scheme deco2014_fic`` (a scheme with a derived rule) or any of these options."""
    from .experiments.physiological import HET_PARAMS
    from .params.fic import FIC_RULES

    p.add_argument("--fic", choices=tuple(FIC_RULES), default=None,
                   help="a physiological fit with this FIC rule (default: the scheme's; --scheme deco2014_fic "
                        "has analytic FIC); --lr 0.05 suits its log-scale parameters")
    p.add_argument("--dt", type=float, default=1.0, help="neural time step in ms (default 1.0; bench/RESULTS.md "
                   "measures FC and FCD against 0.1 ms)")
    p.add_argument("--het", type=_names, default=HET_PARAMS,
                   help=f"parameters made heterogeneous by --maps or --groups (default {','.join(HET_PARAMS)})")
    p.add_argument("--maps", default=None, metavar="LIST",
                   help="comma-separated map names of the subject (myelinmap, fcgradient01, ...) or map files")
    p.add_argument("--groups", default=None, metavar="NAME", help="node groups of the subject (e.g. yeo7) or a labels file")
    p.add_argument("--objective", type=_weights, default=None, metavar="NAME=W,...",
                   help="term weights: fc, fcd (default 1 each), fc_mean (FC mean difference, 0), rate (firing "
                        "rate, 0), prior_<name> (regional prior, 0)")
    p.add_argument("--prior", choices=("global", "smooth"), default="global",
                   help="kind of the regional prior (--regional with --objective prior_<name>=W)")
    p.add_argument("--scan", type=_grid, action="append", default=[], metavar="NAME=V1,V2,...",
                   help="start grid of a fitted parameter (natural units), repeatable; the restarts start at the "
                        "grid's best points by cuBNM's cost (default grid: experiments.physiological.SCAN_GRID)")
    p.add_argument("--resample-noise", action="store_true",
                   help="fresh noise every update (stochastic gradients of the expected objective; the estimate "
                        "averages the last quarter of the updates) instead of the same noise every update")
    p.add_argument("--no-start-scan", action="store_true",
                   help="no start scan: G spread over [0.5, 3] across restarts, the rest at --init or the scheme's")


def _physiological(args) -> bool:
    """Whether ``fit`` runs a physiological fit: its scheme derives parameters (FIC) or a
    physiological option is given."""
    from .params.schemes import get_scheme

    derives = args.scheme is not None and get_scheme(args.scheme).derived is not None
    return derives or args.fic is not None or bool(args.maps or args.groups or args.scan) or args.objective is not None


def _run_physiological(ex, args, common):
    if args.subjects is not None:
        print("nmmfit fit: error: a physiological fit (FIC, --maps, --groups, --objective) fits one subject "
              "(no --subjects)", file=sys.stderr)
        return None
    maps = tuple(m.strip() for m in args.maps.split(",") if m.strip()) if args.maps else ()
    both = sorted(set(dict(args.scan)) & set(dict(args.init)))
    if both:
        print(f"nmmfit fit: error: --scan, --init: {both} given in both; scan a parameter or fix its start",
              file=sys.stderr)
        return None
    return ex.fit_physiological(
        args.out, dataset=None if args.sc else args.dataset or "hcp_schaefer100", subject=_subject(args.subject),
        sc_path=args.sc, bold_path=args.bold, tr=args.tr, scheme=args.scheme or "deco2014_fic", fic=args.fic,
        dt=args.dt,
        het_params=args.het or (), maps=maps, groups=args.groups, regional=args.regional or (), prior=args.prior,
        weights=args.objective, init=dict(args.init), restarts=args.restarts,
        scan=None if args.no_start_scan else dict(args.scan) or ex.SCAN_GRID,
        epochs=20 if args.epochs is None else args.epochs, lr=args.lr, resample_noise=args.resample_noise,
        frames=args.frames, heldout=args.heldout, seed=args.seed, dtype=common["dtype"], backend=args.backend,
        progress=common["progress"], figures=common["figures"], overwrite=args.overwrite, resume=args.resume)


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="nmmfit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="fit one HCP subject as the paper did (griffiths2022, hcp_aal2 subject 0)")
    _common(p, epochs=None, epochs_help="passes over the data (default: 20, the paper, with the compiled kernels; "
                                        "5 with the reference backend)")
    p.add_argument("--dataset", default="hcp_aal2")
    p.add_argument("--subject", default="0")
    p.add_argument("--frames", type=_count(1), default=None, help="use only the first FRAMES frames")
    p.add_argument("--heldout", choices=("auto", "session", "half", "none"), default="auto", help=HELDOUT_HELP)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--fit-sigma", action="store_true",
                   help="also fit the state-noise std from the paper's 0.07 (default: fixed at 0.02)")
    p.add_argument("--restarts", type=int, default=4,
                   help="random restarts fitted together as one batch; the best by train FC r is reported (default 4)")

    p = sub.add_parser("recover", help="the paper's synthetic experiment: recover known parameters",
                       description="Synthetic BOLD from known parameters (the paper's: g=100 g_EE=3.5 g_IE=g_EI=0.42, "
                                   "noise 0.02) on the Hagmann SC, fitted from random starts batched in one model. "
                                   "Default: the moments objective (FC, BOLD mean, log-sd, lag-1 autocorrelation, "
                                   "normalised by their sampling variance) minimised by L-BFGS with exact "
                                   "full-session gradients and common random numbers; 1-D/2-D objective scans.")
    _common(p, epochs=None, epochs_help="iterations/epochs (default: 60 L-BFGS iterations; 20 windowed epochs "
                                        "with --objective paper; 300 for full-session Adam)",
            mode=None, mode_help="default: full (moments objective) or windowed (--objective paper)",
            lr=None, lr_help="default: 1 (L-BFGS step) or 0.01 (Adam)", test_windows=120,
            test_help="test run length in windows (default 120, the paper's protocol)")
    p.add_argument("--dataset", default="hagmann66", help="connectome for the synthetic data (default hagmann66)")
    p.add_argument("--subject", default="0")
    p.add_argument("--starts", type=int, default=5, help="random starts, fitted together as a batch (default 5)")
    p.add_argument("--frames", type=_count(1), default=1200, help="synthetic BOLD length (default 1200)")
    p.add_argument("--objective", choices=("moments", "paper"), default="moments",
                   help="moments (default; data in the model's units) or the paper's objective and scheme")
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default=None,
                   help="default: lbfgs (moments objective), adam (paper)")
    p.add_argument("--start", choices=("uniform", "paper"), default="uniform",
                   help="random starts uniform within +-SPREAD of the truth (default) or the paper's initial values")
    p.add_argument("--spread", type=float, default=0.4, help="relative half-width of the uniform starts (default 0.4)")
    p.add_argument("--sim-factor", type=float, default=2.0,
                   help="full mode: simulated frames per evaluation / data frames (default 2)")
    p.add_argument("--no-scan", action="store_true", help="skip the 1-D/2-D objective scans around the truth")
    p.add_argument("--profile", action="store_true",
                   help="also profile the objective over g_IE, g_EI and g (others re-fitted; several minutes)")
    p.add_argument("--profile-intervals", type=_names, default=(), metavar="LIST",
                   help="profile-likelihood intervals of these parameters for every start (e.g. g,g_EE; one fit of "
                        "starts x 7 models per parameter), against the truth beside the Laplace ones")
    p.add_argument("--gains", action="store_true", help="also fit the SC gains")
    p.add_argument("--truth", type=_param, action="append", default=[], metavar="NAME=VALUE",
                   help="override a ground-truth value (default g=100 g_EE=3.5 g_IE=0.42 g_EI=0.42)")

    p = sub.add_parser("fit", help="fit a dataset subject or your own files")
    _fit_common(p)
    p.add_argument("--dataset", default=None, help="bundled dataset name (e.g. hcp_aal2, hcp_schaefer100)")
    p.add_argument("--subject", default="0")
    p.add_argument("--subjects", default=None, metavar="LIST",
                   help="several subjects of --dataset fitted batched in one model (one SC and BOLD each), "
                        "e.g. 0-6 or 0,2,5 or subject IDs")
    p.add_argument("--sc", default=None, help="SC file (.npy/.npz/.mat/.csv/.txt), N x N")
    p.add_argument("--bold", default=None, help="BOLD file, frames x regions (or regions x frames)")
    p.add_argument("--tr", type=float, default=None)
    _fit_model_args(p)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    _add_physiological(p)
    p.add_argument("--no-uncertainty", action="store_true",
                   help="skip the intervals of the fitted parameters and the SC gains' share (one subject)")

    _add_simulate(sub)
    _add_fleet(sub)
    return ap


def _fit_common(p):
    """The common options with a subject fit's defaults (``fit`` and ``fleet``: the same fit)."""
    _common(p, epochs=None, epochs_help="epochs of the last stage (default: the scheme's; 20 for griffiths2022)",
            test_windows=120, test_help="test run length in windows, or 'data' (default 120: the model's FC from "
                                        "2400 frames, whatever the data's length)")


def _fit_model_args(p):
    """The model and data options of a subject fit (``fit`` and ``fleet``)."""
    p.add_argument("--frames", type=_count(1), default=None, help="use only the first FRAMES frames")
    p.add_argument("--scheme", choices=sorted(SCHEMES), default=None,
                   help="fitting scheme (default: group_shrinkage where a group FC exists: a group stage fitted to "
                        "other people's FC, then the subject's FC shrunk toward it, gains kept near the group's; "
                        "griffiths2022 otherwise: the paper's, each window's FC as the target)")
    p.add_argument("--preset", choices=("griffiths2022", "deco2014"), default=None,
                   help="the equations (with no --scheme: the preset's own scheme)")
    p.add_argument("--stage-epochs", type=_stage_count, action="append", default=[], metavar="STAGE=N",
                   help="epochs of a stage of the scheme, e.g. group=4 (default: the scheme's; --epochs sets the "
                        "last stage's)")
    p.add_argument("--restarts", type=int, default=4,
                   help="random restarts fitted together as a batch; each subject reports its best by train FC r "
                        "(default 4: one fit of the paper's scheme falls into the output-noise trap about 40%% of the time)")
    p.add_argument("--fit", type=_names, default=None,
                   help="comma-separated parameters to fit (default g,g_EE,g_IE,g_EI with sigma=0.02 and "
                        "sigma_out=0.001 fixed: fitting sigma_out from the paper's start falls into the output-noise "
                        "trap; the paper's set is g,g_EE,g_IE,g_EI,sigma,sigma_out)")
    p.add_argument("--regional", type=_names, default=(), help="comma-separated parameters fitted per region")
    p.add_argument("--no-gains", action="store_true", help="do not fit the SC gains")
    p.add_argument("--sigma", type=float, default=None, help="initial (or fixed) state-noise std")
    p.add_argument("--init", type=_param, action="append", default=[], metavar="NAME=VALUE",
                   help="initial value of a parameter (natural units)")
    p.add_argument("--heldout", choices=("auto", "session", "half", "none"), default="auto", help=HELDOUT_HELP)


def _add_fleet(sub):
    p = sub.add_parser("fleet", help="fit a cohort of subjects, in this process or on a Ray cluster; resumable",
                       description="Fit every subject of --subjects (or of --subjects-file) with --restarts restarts "
                                   "each, one directory per subject under --out, a manifest and cohort.csv (one row "
                                   "per subject and restart). Re-running skips the subjects done; a failed subject "
                                   "is recorded with its error and the others go on.")
    _fit_common(p)
    p.add_argument("--force", action="store_true", dest="overwrite",
                   help="refit the subjects already done in --out (also when the settings changed); same as --overwrite")
    p.add_argument("--dataset", default="hcp_aal2", help="bundled dataset name (default hcp_aal2)")
    p.add_argument("--subjects", default="all", metavar="LIST", help="'all' (default), or e.g. 0-6, 0,2,5, subject IDs")
    p.add_argument("--subjects-file", default=None, metavar="CSV",
                   help="your own subjects instead of a dataset: a CSV with columns subject,sc,bold[,tr]")
    _fit_model_args(p)
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process, subjects batched in one model (default); ray: Ray tasks over workers")
    p.add_argument("--address", default=None,
                   help="ray: 'auto' joins the running cluster (ray start / RAY_ADDRESS), or host:port; "
                        "default: start Ray on this machine")
    p.add_argument("--workers", type=_count(1), default=None,
                   help="ray: jobs at a time (default: the cluster's CPUs / --threads)")
    p.add_argument("--threads", type=_count(1), default=None, help="torch threads per job (ray default 1)")
    p.add_argument("--batch", type=_count(1), default=None,
                   help="subjects per job, batched in one model (default: all for local, 1 for ray)")


def _subject(text):
    return int(text) if text.lstrip("-").isdigit() else text


def _run(ex, args):
    """The experiment a command names, with its report (None: the arguments do not fit together)."""
    if args.command == "simulate":
        return ex.simulate_run(args.out, dataset=None if args.sc else args.dataset, subject=_subject(args.subject),
                               sc_path=args.sc, preset=args.preset, params=dict(args.param), frames=args.frames,
                               burn_in=args.burn_in, seed=args.seed, backend=args.backend,
                               figures=not args.no_figures, input_path=args.input, overwrite=args.overwrite)
    common = dict(epochs=args.epochs, window=args.window, mode=args.mode, lr=args.lr,
                  lr_scale=dict(args.lr_scale) or None, sc_preprocess=args.sc_preprocess,
                  test_windows=args.test_windows, seed=args.seed, backend=args.backend,
                  progress=not args.no_progress, figures=not args.no_figures, overwrite=args.overwrite,
                  dtype=torch.float64 if args.float64 else torch.float32)
    if args.command == "demo":
        return ex.demo(args.out, dataset=args.dataset, subject=_subject(args.subject), frames=args.frames,
                       fit_sigma=args.fit_sigma, restarts=args.restarts, heldout=args.heldout, resume=args.resume,
                       **common)
    if args.command == "fleet":
        return _run_fleet(args, common)
    if args.command == "recover":
        return ex.recover(args.out, dataset=args.dataset, subject=_subject(args.subject), truth=dict(args.truth),
                          starts=args.starts, frames=args.frames, gains=args.gains, objective=args.objective,
                          optimizer=args.optimizer, start=args.start, spread=args.spread,
                          sim_factor=args.sim_factor, scan=not args.no_scan, profile=args.profile,
                          profile_intervals=args.profile_intervals, **common)
    return _run_fit(ex, args, common)


def _model_options(args) -> dict:
    """The keywords of :func:`_fit_model_args`' options."""
    return dict(scheme=args.scheme, preset=args.preset, stage_epochs=dict(args.stage_epochs) or None, fit=args.fit,
                regional=args.regional or (), gains=False if args.no_gains else None, sigma=args.sigma,
                init=dict(args.init), frames=args.frames, restarts=args.restarts, heldout=args.heldout)


def _run_fleet(args, common):
    from .fleet import run_fleet

    common = dict(common, force=common.pop("overwrite"))
    return run_fleet(args.out, dataset=args.dataset, subjects=args.subjects, subjects_file=args.subjects_file,
                     engine=args.engine, address=args.address, workers=args.workers, threads=args.threads,
                     batch=args.batch, **_model_options(args), **common)


def _run_fit(ex, args, common):
    if _physiological(args):
        return _run_physiological(ex, args, common)
    if args.dataset is None and args.sc is None:
        print("nmmfit fit: error: give --dataset NAME or --sc FILE --bold FILE", file=sys.stderr)
        return None
    if args.sc is not None and args.bold is None:
        print("nmmfit fit: error: --sc needs --bold", file=sys.stderr)
        return None
    model = dict(_model_options(args), resume=args.resume)
    if args.subjects is not None:
        if args.dataset is None or args.sc is not None:
            print("nmmfit fit: error: --subjects needs --dataset (and no --sc)", file=sys.stderr)
            return None
        return ex.fit_subjects(args.out, dataset=args.dataset, subjects=ex.parse_subjects(args.subjects),
                               **model, **common)
    return ex.fit_subject(args.out, dataset=args.dataset, subject=_subject(args.subject), sc_path=args.sc,
                          bold_path=args.bold, tr=args.tr, uncertainty=not args.no_uncertainty, **model, **common)


def _user_errors() -> tuple:
    """The exceptions that mean a wrong argument, file or setting: one line, exit status 2."""
    from .datasets import DatasetNotInstalledError
    from .fit import CheckpointError
    from .fleet.engines import RayNotInstalledError

    return (ValueError, TypeError, FileNotFoundError, FileExistsError, CheckpointError, DatasetNotInstalledError,
            RayNotInstalledError)


def _interrupted(args) -> str:
    """What a Ctrl-C leaves: the checkpoint of the completed epochs in --out, or nothing."""
    from .fit import CHECKPOINT

    if args.command == "fleet":
        return f"interrupted; the subjects finished so far are stored in {args.out} (run the same command to fit the rest)"
    ckpt = Path(args.out) / CHECKPOINT
    if args.command != "simulate" and ckpt.is_file():
        resume = " (continue with --resume)" if args.command in ("fit", "demo") else ""
        return f"interrupted; the completed epochs are saved in {ckpt}{resume}"
    return "interrupted; nothing was saved"


def main(argv=None) -> int:
    """Run a command: 0 on success, 2 for a user error (one line on stderr), 130 on Ctrl-C; an
    internal error keeps its traceback."""
    args = build_parser().parse_args(argv)
    from . import experiments as ex
    from .fit import FitDivergedError

    try:
        rep = _run(ex, args)
    except KeyboardInterrupt:
        print(f"nmmfit {args.command}: {_interrupted(args)}", file=sys.stderr)
        return 130
    except _user_errors() as exc:
        print(f"nmmfit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except FitDivergedError as exc:
        print(f"nmmfit {args.command}: {exc}", file=sys.stderr)
        return 1
    if rep is None:
        return 2
    print(rep.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
