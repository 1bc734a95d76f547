"""nmmfit fit --scheme deco2014_fic (experiments.physiological) on tiny user files: the fit runs end to
end with map- and group-based heterogeneity, reports cuBNM's cost on train/test/held-out, and bad
input (maps, groups, FCD window, FIC) is a one-line error with exit status 2."""
import json

import numpy as np
import pytest
import torch

import nmmfit
from nmmfit.cli import main
from nmmfit.params.schemes import DECO2014_FIC_SCHEME

N = 6
FRAMES = 120            # two halves of 60 frames: two 30 s FCD windows at TR 0.72 s


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("phys")
    rng = np.random.default_rng(3)
    sc = rng.uniform(0, 1, (N, N))
    sc = (sc + sc.T) * (1 - np.eye(N))
    m = nmmfit.RWW(sc, scheme=DECO2014_FIC_SCHEME.replace(preset=DECO2014_FIC_SCHEME.preset.with_dt(2.0)),
                   tr=0.72, init=dict(g=0.2))
    with torch.no_grad():
        bold = m(FRAMES + 10).bold[0, 10:].double().numpy()
    np.savetxt(d / "sc.csv", sc, delimiter=",")
    np.save(d / "bold.npy", bold)
    z = rng.standard_normal((2, N))
    np.save(d / "maps.npy", (z - z.mean(1, keepdims=True)) / z.std(1, keepdims=True))
    np.save(d / "short_map.npy", z[0, :N - 1])
    np.savetxt(d / "groups.txt", [0, 0, 1, 1, 2, 2])
    np.savetxt(d / "bad_groups.txt", [0, 0, 1, 1, 2, 9])
    return d


def _args(files, out, *extra):
    return ["fit", "--scheme", "deco2014_fic", "--sc", str(files / "sc.csv"), "--bold", str(files / "bold.npy"),
            "--tr", "0.72", "--dt", "2", "--heldout", "half", "--restarts", "1", "--epochs", "2", "--lr", "0.05",
            "--window", "20", "--out", str(out), "--no-progress", *extra]


def test_map_based_fit_end_to_end(files, tmp_path, capsys):
    out = tmp_path / "maps"
    assert main(_args(files, out, "--maps", str(files / "maps.npy"), "--het", "g_EE")) == 0
    text = capsys.readouterr().out
    assert "held-out: FC r" in text and "FCD KS" in text and "mean r_E after FIC" in text
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["cost"]) == {"train (in-sample)", "test (in-sample)", "held-out"}
    for c in rep["cost"].values():
        assert np.isfinite(c["cost"]).all()
        assert np.allclose(c["cost"], -(np.array(c["fc_corr"]) - c["fcd_ks"]) + np.array(c["fic_penalty"]))
    assert rep["heterogeneity"] == {"g_EE": "maps(maps_0, maps_1)"}
    assert len(rep["fitted"]["g_EE"]) == N and np.ptp(rep["fitted"]["g_EE"]) > 0     # the coefficients moved
    res = nmmfit.FitResult.load(out)
    assert np.asarray(res.extra["rate_E"]).shape == (1, N)
    discard = round(30 / 0.72)                                # each update's transient is not fitted
    assert res.config["discard_frames"] == discard and res.config["sim_frames"] == FRAMES // 2 + discard
    from nmmfit.losses import cubnm_cost
    emp = torch.as_tensor(np.load(files / "bold.npy")[:FRAMES // 2])
    train = cubnm_cost(torch.as_tensor(res.train_bold)[:, res.config["train_fc_skip"]:], emp, 0.72)
    assert np.allclose(rep["cost"]["train (in-sample)"]["fc_corr"], train["fc_corr"].numpy())
    assert all((out / f).exists() for f in ("fcd.png", "maps.png", "rates.png", "fc.png"))


def test_group_based_fit(files, tmp_path):
    out = tmp_path / "groups"
    assert main(_args(files, out, "--groups", str(files / "groups.txt"), "--no-figures")) == 0
    rep = json.loads((out / "report.json").read_text())
    gee = np.array(rep["fitted"]["g_EE"])
    assert np.allclose(gee[[0, 2, 4]], gee[[1, 3, 5]])             # one value per group
    assert rep["heterogeneity"]["g_EI"] == "groups(groups1, groups2)"


@pytest.mark.parametrize("extra, message", [
    (("--maps", "{d}/short_map.npy"), "expected 6 values"),
    (("--groups", "{d}/bad_groups.txt"), "integer labels 0..K-1"),
    (("--maps", "nosuchmap"), "neither one of the subject's maps"),
    (("--frames", "40"), "longer than the run"),
    (("--init", "g=0.0001", "--init", "g_EE=0.001", "--init", "I_0=0.2"), "FIC has no stable g_IE"),
    (("--objective", "fc=1,fdc=1"), "unknown term 'fdc'"),
    (("--maps", "{d}/maps.npy", "--groups", "{d}/groups.txt"), "not both"),
    (("--scan", "sigma=0.01,0.02"), "not fitted by scheme"),
    (("--scan", "g=0.1,0.2", "--init", "g=0.1"), "given in both"),
    (("--restarts", "3", "--scan", "g=0.1,0.2", "--scan", "g_EE=0.2", "--scan", "g_EI=0.15"), "at least as many"),
])
def test_bad_input_is_one_line_and_exit_2(files, tmp_path, capsys, extra, message):
    extra = [e.format(d=files) for e in extra]
    assert main(_args(files, tmp_path / "bad", "--no-figures", *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_physiological_scheme_is_built_from_values():
    from nmmfit.experiments.physiological import physiological_scheme
    from nmmfit.params.fic import AnalyticFIC

    s = physiological_scheme("deco2014", "analytic", 1.0)          # the plain scheme with FIC: g_IE leaves fit
    assert isinstance(s.derived, AnalyticFIC) and "g_IE" not in s.fit and s.preset.dt == 1.0
    assert physiological_scheme("deco2014_fic", "none").derived is None
    with pytest.raises(ValueError, match="fic: expected one of"):
        physiological_scheme("deco2014_fic", "numerical")


def test_scan_starts_are_the_grid_points_of_lowest_cost(files):
    from nmmfit.datasets import load_files
    from nmmfit.experiments.physiological import physiological_scheme, scan_starts

    subj = load_files(files / "sc.csv", files / "bold.npy", tr=0.72)
    sch = physiological_scheme("deco2014_fic", None, 2.0)
    grid = {"g": (0.05, 0.2, 0.6), "g_EI": (0.15, 0.4)}
    init, table = scan_starts(lambda B, start: nmmfit.RWW(subj.sc, scheme=sch, tr=0.72, batch=B, init=start),
                              subj.bold[:60], 0.72, grid, 2, init={"g_EE": 0.25}, seed=0)
    cost = np.array(table["cost"])
    assert cost.shape == (6,) and np.isfinite(cost).all()
    assert table["chosen"] == np.argsort(cost)[:2].tolist()
    assert init["g_EE"] == 0.25
    for n in grid:
        assert init[n].tolist() == [table[n][i] for i in table["chosen"]]


def test_fit_reports_its_scan_start(files, tmp_path, capsys):
    out = tmp_path / "scan"
    assert main(_args(files, out, "--no-figures", "--scan", "g=0.05,0.2", "--scan", "g_EI=0.15,0.4")) == 0
    assert "start: scan point" in capsys.readouterr().out
    rep = json.loads((out / "report.json").read_text())
    assert len(rep["scan"]["cost"]) == 4 and len(rep["scan"]["chosen"]) == 1


def test_resampled_noise_fit_averages_its_last_quarter(files, tmp_path):
    out = tmp_path / "resample"
    assert main(_args(files, out, "--no-figures", "--resample-noise", "--epochs", "4")) == 0
    cfg = nmmfit.FitResult.load(out).config
    assert cfg["resample_noise"] is True and cfg["average_last"] == 1
    fixed = tmp_path / "fixed"
    assert main(_args(files, fixed, "--no-figures", "--epochs", "4")) == 0
    a = json.loads((out / "report.json").read_text())["cost"]["train (in-sample)"]["cost"]
    b = json.loads((fixed / "report.json").read_text())["cost"]["train (in-sample)"]["cost"]
    assert a != b                                           # another noise stream after the first update


@pytest.mark.parametrize("dt", [0.5, 2.0])
def test_rate_run_in_chunks_is_the_one_run(monkeypatch, dt):
    """The report's mean r_E per region: simulated in chunks of whole records (dt 0.5 ms: a record
    every 2 steps, 15 steps a frame, so a chunk must be an even number of frames) it is the mean
    over the same run as one call records."""
    from nmmfit.experiments import physiological
    from nmmfit.losses import mean_rate_E

    rng = np.random.default_rng(0)
    sc = rng.uniform(0, 1, (N, N))
    preset = DECO2014_FIC_SCHEME.preset.with_dt(dt)
    m = nmmfit.RWW(sc + sc.T, scheme=DECO2014_FIC_SCHEME.replace(preset=preset), tr=0.0075, batch=2,
                   init=dict(g=torch.tensor([0.2, 0.4])))
    every = max(1, round(1.0 / dt))
    with torch.no_grad():
        out = m(61, record_every=every, seed=5)
        want = mean_rate_E(m, out.E.double(), out.I.double())
    monkeypatch.setattr(physiological, "RATE_RUN_VALUES", 7 * 2 * N)     # chunks of 1-2 frames (at dt 0.5: even), one short
    got = physiological._rates(m, 61, 5)
    assert torch.allclose(got, want, rtol=1e-12, atol=0)
    other = physiological._rates(m, 61, 6)                              # another noise seed: another run
    assert not torch.allclose(other, want, rtol=1e-6, atol=0)


def test_interrupted_fit_resumes_to_the_uninterrupted_result(files, tmp_path, monkeypatch):
    """A physiological fit stopped after its first epoch and continued with --resume ends where the
    whole fit ends: the same losses, fitted values and count of map-scale projections (a floor
    near 1 makes every update project, so the count must come back from the checkpoint)."""
    from nmmfit.params import heterogeneity

    monkeypatch.setattr(heterogeneity, "SCALE_FLOOR", 0.999)
    het = ("--maps", str(files / "maps.npy"), "--het", "g_EE", "--no-figures")
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main(_args(files, whole, *het, "--epochs", "3")) == 0
    assert main(_args(files, parts, *het, "--epochs", "1")) == 0
    assert main(_args(files, parts, *het, "--epochs", "3", "--resume")) == 0
    a, b = (nmmfit.FitResult.load(d) for d in (whole, parts))
    assert b.epochs_completed == 3
    assert np.array_equal(a.history["loss"], b.history["loss"])
    assert all(np.array_equal(a.fitted[k], b.fitted[k]) for k in a.fitted)
    count = [json.loads((d / "report.json").read_text())["projections"]["g_EE"]["projections"] for d in (whole, parts)]
    assert count[0] == count[1] and count[0][0] == 3
