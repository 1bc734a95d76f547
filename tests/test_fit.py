"""nmmfit.fit: loss goes down, histories and estimates, reproducibility, save/load, resume, errors."""
import os

import numpy as np
import pytest
import torch

import nmmfit
from nmmfit.fit import CHECKPOINT, FitDivergedError, FitResult, fit, prepare_bold
from nmmfit.fit.checkpoint import load_checkpoint
from nmmfit.model import RWW
from nmmfit.presets import DECO2014

BACKEND = os.environ.get("NMMFIT_TEST_BACKEND", "auto")
N = 5
TRUTH = dict(g=100.0, g_EE=3.5, g_IE=0.42, g_EI=0.42, sigma=0.02, sigma_out=0.02)

def _sc(seed=0):
    rng = np.random.default_rng(seed)
    sc = rng.uniform(0, 1, (N, N))
    sc[rng.uniform(size=(N, N)) < 0.2] = 0
    return sc

@pytest.fixture(scope="module")
def synthetic():
    """BOLD [T, N] from the model at the paper's synthetic values (40 frames)."""
    gen = RWW(_sc(), fit=(), init=TRUTH, fit_gains=False, seed=123, backend=BACKEND)
    with torch.no_grad():
        out = gen(45, gen.initial_state(seed=9), 0)
    return out.bold[0, 5:].double().numpy()

def _model(B=1, **kw):
    init = dict(g=torch.linspace(90, 110, B).double(), g_EE=2.5, g_IE=0.101, g_EI=0.101, sigma=0.02)
    kw.setdefault("fit", ("g", "g_EE", "g_IE", "g_EI", "sigma_out"))
    kw.setdefault("seed", 0)
    return RWW(_sc(), batch=B, init=init, backend=BACKEND, **kw)

def _fit(model, bold, **kw):
    kw.setdefault("epochs", 2)
    kw.setdefault("window", 10)
    kw.setdefault("test_windows", 1)
    kw.setdefault("burn_in_windows", 1)
    kw.setdefault("progress", False)
    return fit(model, bold, **kw)

def test_tiny_fit_reduces_loss_and_records_history(synthetic):
    m = _model(B=2)
    res = _fit(m, synthetic, epochs=3, average_last=5)
    U = 3 * 4
    assert res.history["loss"].shape == (U, 2)
    assert res.history["param.g"].shape == (U, 2)
    assert res.history["epoch_loss"].shape == (3, 2)
    assert np.all(res.history["epoch_loss"][-1] < res.history["epoch_loss"][0])
    # the estimate is the mean of the last `average_last` updates
    np.testing.assert_allclose(res.fitted["g_EE"], res.history["param.g_EE"][-5:].mean(0))
    np.testing.assert_allclose(res.fitted_hyper["bifurcation.cb"], res.history["hyper.bifurcation.cb"][-5:].mean(0))
    np.testing.assert_allclose(res.fitted["I_0"], 0.2, rtol=1e-6)          # fixed parameter
    assert res.train_r.shape == (2,) and res.test_r.shape == (2,)
    assert np.all(np.abs(res.test_r) <= 1)
    assert res.test_bold.shape == (2, 10, N) and res.train_bold.shape == (2, 40, N)
    assert res.W.shape == (2, N, N) and res.gains.shape == (2, N, N)
    assert res.wall_time >= res.train_time > 0 and res.epochs_completed == 3

def test_full_session_mode_and_per_subject_data(synthetic):
    other = synthetic + np.random.default_rng(1).normal(0, synthetic.std(), synthetic.shape)
    bold = np.stack([synthetic, other])                          # [B, T, N], one run per model
    m = _model(B=2)
    res = _fit(m, bold, mode="full", epochs=3, lr=0.05)
    assert res.history["loss"].shape == (3, 2)                    # one update per epoch
    assert res.train_bold.shape == (2, 40, N)                     # the whole run
    assert not np.allclose(res.emp_fc[0], res.emp_fc[1])          # each model saw its own run
    assert res.history["loss"][-1].mean() < res.history["loss"][0].mean()

def test_regional_parameters_and_fixed_gains(synthetic):
    m = _model(B=1, regional=("g_EE",), fit_gains=False)
    res = _fit(m, synthetic.T.copy(), epochs=1)                   # regions x frames is recognised
    assert res.history["param.g_EE"].shape == (4, 1, N)
    assert res.fitted["g_EE"].shape == (1, N) and res.gains is None

def test_reproducible_from_seed(synthetic):
    a = _fit(_model(), synthetic, seed=7)
    b = _fit(_model(), synthetic, seed=7)
    c = _fit(_model(), synthetic, seed=8)
    np.testing.assert_array_equal(a.history["loss"], b.history["loss"])
    np.testing.assert_array_equal(a.test_bold, b.test_bold)
    assert not np.array_equal(a.history["loss"], c.history["loss"])

def test_save_load_round_trip(synthetic, tmp_path):
    res = _fit(_model(B=2, regional=("g_IE",)), synthetic)
    res.save(tmp_path / "r")
    back = FitResult.load(tmp_path / "r")
    assert back.config == res.config
    assert back.epochs_completed == res.epochs_completed and back.wall_time == res.wall_time
    for k in res.history:
        np.testing.assert_array_equal(back.history[k], res.history[k])
    for k in res.fitted:
        np.testing.assert_array_equal(back.fitted[k], res.fitted[k])
    for k in ("sc", "W", "emp_fc", "train_bold", "test_bold", "test_r", "train_r", "gains"):
        np.testing.assert_array_equal(getattr(back, k), getattr(res, k))
    with pytest.raises(FileNotFoundError, match="result.json"):
        FitResult.load(tmp_path / "nothing")

def test_resume_after_interruption_equals_continuing(synthetic, tmp_path):
    full = _fit(_model(B=2), synthetic, epochs=3, out_dir=tmp_path / "a")

    class Stop(Exception):
        pass

    def interrupt(ev):
        if ev["event"] == "update" and ev["epoch"] == 1 and ev["window"] == 2:
            raise Stop

    with pytest.raises(Stop):
        _fit(_model(B=2), synthetic, epochs=3, out_dir=tmp_path / "b", callback=interrupt)
    ck = load_checkpoint(tmp_path / "b" / CHECKPOINT)
    assert ck["epoch"] == 1                                        # the completed epoch is saved
    resumed = _fit(_model(B=2), synthetic, epochs=3, out_dir=tmp_path / "b", resume=True)
    for k in full.history:
        if k != "epoch_time":
            np.testing.assert_array_equal(resumed.history[k], full.history[k], err_msg=k)
    for k in full.fitted:
        np.testing.assert_array_equal(resumed.fitted[k], full.fitted[k])
    np.testing.assert_array_equal(resumed.test_bold, full.test_bold)
    assert (tmp_path / "b" / "result.json").exists()
    # more epochs on top of a finished fit; other settings are refused
    more = _fit(_model(B=2), synthetic, epochs=4, out_dir=tmp_path / "a", resume=True)
    assert more.epochs_completed == 4
    np.testing.assert_array_equal(more.history["loss"][:12], full.history["loss"])
    with pytest.raises(ValueError, match="different settings"):
        _fit(_model(B=2), synthetic, epochs=4, out_dir=tmp_path / "a", resume=True, lr=0.02)

def test_bad_inputs(synthetic):
    m = _model()
    bad = synthetic.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _fit(m, bad)
    with pytest.raises(ValueError, match="regions"):
        _fit(m, np.random.default_rng(0).normal(size=(40, N + 1)))
    with pytest.raises(ValueError, match="too few for one window"):
        _fit(m, synthetic[:7])
    with pytest.raises(ValueError, match="B=1"):
        _fit(m, np.stack([synthetic] * 3))
    with pytest.raises(ValueError, match="mode"):
        _fit(m, synthetic, mode="online")
    with pytest.raises(ValueError, match="out_dir"):
        _fit(m, synthetic, resume=True)
    with pytest.raises(ValueError, match="scale"):
        prepare_bold(synthetic, m, scale="minmax")

def test_unstable_parameters_raise_naming_epoch_and_window_and_keep_checkpoint(tmp_path):
    preset = DECO2014.replace(tr=2.0)                  # 20 neural steps per sample: a fast test
    rng = np.random.default_rng(0)
    bold = rng.normal(size=(20, N))
    m = RWW(_sc(), preset=preset, fit=("g",), backend=BACKEND)

    def blow_up(ev):                                   # a parameter that leaves the model unstable
        if ev["event"] == "epoch" and ev["epoch"] == 0:
            m.set_values(dict(g=1e36))

    with pytest.raises(FitDivergedError, match=r"epoch 2/3, window 1/4.*non-finite.*Completed epochs are saved"):
        _fit(m, bold, epochs=3, window=5, out_dir=tmp_path, callback=blow_up, test=False)
    ck = load_checkpoint(tmp_path / CHECKPOINT)
    assert ck["epoch"] == 1

def test_full_mode_lbfgs_common_random_numbers(synthetic):
    from nmmfit.losses import moments_objective
    kw = dict(objective=moments_objective(blocks=4), scale="none", mode="full", optimizer="lbfgs", lr=1.0,
              resample_noise=False, sim_frames=50, discard_frames=10, epochs=4, burn_in_windows=1,
              lr_scale=dict(g=100.0, g_EE=3.0, g_IE=0.4, g_EI=0.4, sigma_out=0.02))
    a = _fit(_model(B=2, fit_gains=False), synthetic, **kw)
    b = _fit(_model(B=2, fit_gains=False), synthetic, **kw)
    np.testing.assert_array_equal(a.history["loss"], b.history["loss"])      # deterministic
    assert a.train_bold.shape == (2, 40, N)                                    # 50 simulated - 10 discarded
    assert np.all(a.history["loss"][-1] < a.history["loss"][0])
    np.testing.assert_allclose(a.fitted["g"], a.history["param.g"][-1])         # L-BFGS: the last iterate
    with pytest.raises(ValueError, match="deterministic"):
        _fit(_model(), synthetic, mode="full", optimizer="lbfgs")
    with pytest.raises(ValueError, match="mode='full' only"):
        _fit(_model(), synthetic, sim_frames=50)
    with pytest.raises(ValueError, match="optimizer"):
        _fit(_model(), synthetic, optimizer="sgd")

def test_adam_betas_and_lr_decay(synthetic):
    res = _fit(_model(fit_gains=False), synthetic, mode="full", epochs=3, lr_final=0.1, betas=(0.9, 0.99),
               sim_frames=60)
    assert res.config["betas"] == [0.9, 0.99] and res.config["lr_final"] == 0.1
    assert res.history["loss"].shape == (3, 1)
    with pytest.raises(ValueError, match="lr_final"):
        _fit(_model(), synthetic, lr_final=0.0)

def test_local_inputs_common_random_numbers_and_direction():
    from nmmfit.experiments import local_inputs

    vals = dict(g_EE=[3.5, 3.5, 3.7], g_IE=[0.42, 0.42, 0.42])
    d = local_inputs(_sc(), vals, frames=50, burn=10, backend=BACKEND)
    for k in ("E_mean", "I_mean", "local_input"):
        assert d[k].shape == (3,) and np.all(np.isfinite(d[k]))
        assert d[k][0] == d[k][1]                      # same parameters, same noise: the same numbers
    assert d["E_mean"][2] > d["E_mean"][0]             # more local excitation, more excitatory gating
    g_EE, g_IE = np.asarray(vals["g_EE"]), np.asarray(vals["g_IE"])
    np.testing.assert_allclose(d["local_input"], g_EE * d["E_mean"] - g_IE * d["I_mean"], rtol=1e-9)

def test_result_exports_tidy_tables_with_labels_and_provenance(synthetic, tmp_path):
    import csv
    import json

    m = _model(B=2)
    res = _fit(m, synthetic, epochs=1, heldout=synthetic[::-1].copy())
    res.extra["labels"] = [f"R{i}" for i in range(N)]
    res.save(tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "fitted.csv")))
    g = [r for r in rows if r["parameter"] == "g"]
    assert [float(r["value"]) for r in g] == pytest.approx(list(res.fitted["g"]))
    scores = list(csv.DictReader(open(tmp_path / "scores.csv")))
    held = [r for r in scores if r["score"] == "heldout_r"]
    assert [r["kind"] for r in held] == ["held-out", "held-out"]
    assert [float(r["value"]) for r in held] == pytest.approx(list(res.heldout_r))
    prov = json.loads((tmp_path / "result.json").read_text())["provenance"]
    assert prov["torch"] == torch.__version__ and "date" in prov and "build" in prov
    assert len(repr(res)) < 300
