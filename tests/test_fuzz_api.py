"""Fuzzing the public entry points ``nmmfit.simulate``, ``nmmfit.RWW`` and ``nmmfit.fit``.

Each example replaces one argument of a valid call by a drawn value (odd shapes and dtypes, NaN/Inf,
negative or huge ints, numpy scalars, bools, strings, None). The property: the call either returns
finite outputs (or warns that they are not), or raises a documented exception (ValueError,
TypeError, FileNotFoundError, FileExistsError, CheckpointError; FitDivergedError from a fit) whose
message names the argument. Tiny sizes keep the whole file to a few seconds."""
import os
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import nmmfit
from nmmfit.fit import CheckpointError, FitDivergedError

BACKEND = os.environ.get("NMMFIT_TEST_BACKEND", "auto")
N = 4
DOCUMENTED = (ValueError, TypeError, FileNotFoundError, FileExistsError, CheckpointError)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ODD = st.one_of(st.none(), st.booleans(), st.text(max_size=3), st.floats(), st.integers(-3, 40),
                st.sampled_from([-2**70, 2**63, 2**70]),
                st.sampled_from([np.int64(3), np.int32(-1), np.uint8(2), np.float32(2.5), np.bool_(True), [1, 2],
                                 torch.tensor(1.0), torch.tensor([1, 2])]))
"""Values of the wrong kind for almost any argument (ints small or beyond int64: a valid huge count
would only take long)."""


def _sc(seed=0):
    sc = np.random.default_rng(seed).uniform(0, 1, (N, N))
    return sc + sc.T


@st.composite
def arrays(draw, shapes):
    """An array of one of ``shapes``: torch (float32/64, int64, bool, complex), numpy or a nested list,
    uniform in [0, 1) with NaN, Inf, a negative or a huge entry now and then."""
    shape = draw(st.sampled_from(shapes))
    a = np.random.default_rng(draw(st.integers(0, 9))).uniform(0, 1, shape)
    if a.size:
        a.flat[0] = draw(st.sampled_from([a.flat[0], np.nan, np.inf, -1.0, 1e30]))
    kind = draw(st.sampled_from(["float32", "float64", "int64", "bool", "complex64", "numpy", "list"]))
    if kind == "numpy":
        return a
    if kind == "list":
        return a.tolist()
    return torch.as_tensor(a).to(getattr(torch, kind))


def _outcome(call, name: str):
    """``call()``'s result and whether it warned, or None when it raised a documented exception
    naming ``name`` (anything else fails the test)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = call()
        except FitDivergedError:
            return None
        except DOCUMENTED as exc:
            assert name in str(exc), f"the error does not name {name!r}: {type(exc).__name__}: {exc}"
            return None
    return out, any("NaN" in str(w.message) for w in caught)


def _finite_or_warned(tensors, warned: bool):
    finite = all(bool(torch.isfinite(torch.as_tensor(t)).all()) for t in tensors)
    assert finite or warned, "non-finite outputs without a warning"


# ----------------------------------------------------------------------------- simulate
SIM_ARGS = {
    "W": arrays([(N, N), (2, N, N), (N,), (N, N + 1), (0, 0), (1, 1)]),
    "n_steps": st.one_of(st.integers(-3, 40), st.sampled_from([2**63, 2**70, np.int64(7), np.int16(-2), 3.0, "5"]),
                         ODD.filter(lambda v: not isinstance(v, int) or isinstance(v, bool))),
    "seed": st.one_of(st.integers(-5, 2**64), ODD),
    "params": st.dictionaries(st.sampled_from(["g", "g_EE", "sigma", "nope"]),
                              st.one_of(ODD, arrays([(), (1,), (2,), (1, N), (N, 1)])), max_size=2),
    "state0": st.one_of(st.none(), arrays([(6, N), (1, 6, N), (6, N + 1), (5, N)])),
    "record_every": st.one_of(st.integers(-2, 20), ODD),
    "batch": st.one_of(st.none(), st.integers(-1, 3), ODD),
}


@FUZZ
@given(data=st.data(), which=st.sampled_from(sorted(SIM_ARGS)))
def test_simulate_fuzz(data, which):
    kw = dict(W=torch.tensor(_sc(), dtype=torch.float32), n_steps=30, seed=0)
    kw[which] = data.draw(SIM_ARGS[which], label=which)
    W, n_steps = kw.pop("W"), kw.pop("n_steps")
    got = _outcome(lambda: nmmfit.simulate(W, kw.pop("params", None), kw.pop("state0", None), n_steps, **kw),
                   which)
    if got is not None:
        out, warned = got
        _finite_or_warned([out.bold, out.E, out.I, out.state], warned)


# ----------------------------------------------------------------------------- RWW
RWW_ARGS = {
    "sc": arrays([(N, N), (2, N, N), (N,), (N, N + 1), (1, 1)]),
    "init": st.dictionaries(st.sampled_from(["g", "g_EE", "sigma", "sigma_out", "nope"]),
                            st.one_of(ODD, st.floats(-1e3, 1e3), arrays([(), (1,), (2,), (N,), (2, N), (N, N), (1, 2, 3)])),
                            max_size=2) | ODD,
    "fit": st.one_of(st.lists(st.sampled_from(["g", "g_EE", "sigma_out", "nope", 3]), max_size=3), ODD),
    "regional": st.one_of(st.lists(st.sampled_from(["g", "g_EE", "sigma_out", "nope"]), max_size=2), ODD),
    "batch": st.one_of(st.none(), st.integers(-1, 3), ODD),
    "seed": st.one_of(st.integers(-5, 2**64), ODD),
}


@FUZZ
@given(data=st.data(), which=st.sampled_from(sorted(RWW_ARGS)))
def test_rww_fuzz(data, which):
    kw = dict(sc=_sc(), fit=("g",), fit_gains=False, backend=BACKEND)
    kw[which] = data.draw(RWW_ARGS[which], label=which)

    def build_and_run():
        m = nmmfit.RWW(kw.pop("sc"), **kw)
        with torch.no_grad():
            return m, m(2)

    got = _outcome(build_and_run, which)
    if got is not None:
        (m, out), warned = got
        _finite_or_warned([out.bold, out.state, *m.values().values()], warned)


# ----------------------------------------------------------------------------- fit
def _bold(shape=(10, N), seed=1):
    return np.random.default_rng(seed).normal(size=shape)


def _bad_bold():
    nan, constant = _bold(), _bold()
    nan[3, 1] = np.nan
    constant[:, 2] = 0.0
    return st.sampled_from([_bold(), _bold((N, 10)), _bold((2, 10, N)), _bold((10, N + 1)), _bold((3, N)),
                            _bold((10,)), _bold((10, N, 1)), nan, constant, _bold().tolist(), "bold",
                            torch.tensor(_bold(), dtype=torch.float32), _bold().astype(np.int64), None])


FIT_ARGS = {
    "bold": _bad_bold(),
    "epochs": st.sampled_from([0, -1, 1, 2, np.int64(1), 1.5, "2", True, None]),
    "window": st.sampled_from([0, 1, 5, 11, np.int32(5), 2.0, "5", False]),
    "mode": st.sampled_from(["windowed", "full", "online", 3, None, ["full"]]),
    "lr": st.sampled_from([0, -0.1, 1e-3, np.nan, np.inf, "0.1", True, np.float32(0.01), 1e6]),
    "eps": st.sampled_from([1e-7, 0, -1.0, np.nan, "x"]),
    "lr_final": st.sampled_from([0, 0.5, 1, 1.5, np.nan, "x"]),
    "betas": st.sampled_from([(0.9, 0.99), (1, 0), 0.9, "ab", (0.9,), (np.float32(0.5), 0.5), None]),
    "lr_scale": st.sampled_from([{}, {"g": 2}, {"g": -1}, {"g": np.nan}, {"nope": 2}, "g", {1: 2}, None, {"g": "x"}]),
    "sim_frames": st.sampled_from([None, 5, 0, -1, np.int64(8), 2.5]),
    "discard_frames": st.sampled_from([0, 2, -1]),
    "resample_noise": st.sampled_from([True, False, "no", 0]),
    "optimizer": st.sampled_from(["adam", "lbfgs", "sgd", None]),
    "average_last": st.sampled_from([None, 0, 1, 5, -2, "3"]),
    "scale": st.sampled_from(["max", "zscore", "none", "minmax", None]),
    "layout": st.sampled_from(["auto", "TN", "NT", "xy", 1]),
    "seed": st.sampled_from([None, 0, -1, 2**63, np.uint64(5), 1.0, "1", True]),
    "burn_in_windows": st.sampled_from([0, 1, -1, 2.0]),
    "test": st.sampled_from([True, False, "no", 1]),
    "test_windows": st.sampled_from([1, "data", 0, -1, "all", 2.0, np.int8(1)]),
    "train_fc_skip": st.sampled_from([0, 10, -1]),
}


@FUZZ
@given(data=st.data(), which=st.sampled_from(sorted(FIT_ARGS)))
def test_fit_fuzz(data, which):
    kw = dict(bold=_bold(), epochs=1, window=5, test_windows=1, burn_in_windows=0)
    kw[which] = data.draw(FIT_ARGS[which], label=which)
    model = nmmfit.RWW(_sc(), fit=("g",), fit_gains=False, backend=BACKEND)
    got = _outcome(lambda: nmmfit.fit(model, kw.pop("bold"), progress=False, **kw), which)
    if got is not None:
        res, warned = got
        scores = [res.test_r] if res.test_r is not None else []
        _finite_or_warned([*map(torch.as_tensor, res.fitted.values()), torch.as_tensor(res.history["loss"]),
                           *map(torch.as_tensor, scores)], warned)


def test_the_property_catches_an_unnamed_error():
    """The checker itself: an error that does not name the argument fails it."""
    def bad():
        raise ValueError("something went wrong")

    with pytest.raises(AssertionError, match="does not name 'lr'"):
        _outcome(bad, "lr")
