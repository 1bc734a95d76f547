"""Nothing lost, nothing silently wrong: previous runs are kept unless asked, bad checkpoints are
refused naming the file (a planted pickle never runs), the CLI answers a user error with one line
and exit status 2 (Ctrl-C: 130, saying what was saved), and inputs that used to give a different
result than asked are refused naming the argument."""
import hashlib
import io
import os
import shutil

import numpy as np
import pytest
import torch

import nmmfit
from nmmfit.cli import main
from nmmfit.fit import CHECKPOINT, CheckpointError, FitConfig, FitDivergedError, fit, loop
from nmmfit.fit.checkpoint import MAGIC
from nmmfit.model import RWW
from nmmfit.presets import DECO2014

BACKEND = os.environ.get("NMMFIT_TEST_BACKEND", "auto")
N = 5
TINY = dict(epochs=1, window=10, test_windows=1, burn_in_windows=1, progress=False)


def _sc():
    rng = np.random.default_rng(0)
    sc = rng.uniform(0, 1, (N, N))
    return sc + sc.T


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """sc.csv and bold.npy (40 frames x N regions) in a directory, and a finished CLI fit in run/."""
    d = tmp_path_factory.mktemp("safety")
    m = RWW(_sc(), fit=(), init=dict(g=100.0, g_EE=3.5, g_IE=0.42, g_EI=0.42, sigma=0.02), fit_gains=False)
    with torch.no_grad():
        bold = m(40, m.initial_state(seed=1), 0).bold[0].double().numpy()
    np.savetxt(d / "sc.csv", _sc(), delimiter=",")
    np.save(d / "bold.npy", bold)
    assert main(_fit_argv(d, d / "run")) == 0
    return d


def _fit_argv(d, out, *extra):
    return ["fit", "--sc", str(d / "sc.csv"), "--bold", str(d / "bold.npy"), "--out", str(out), "--epochs", "1",
            "--window", "10", "--test-windows", "1", "--no-progress", "--no-figures", "--backend", BACKEND, *extra]


def _model(**kw):
    return RWW(_sc(), fit=("g", "g_EE"), fit_gains=False, backend=BACKEND, **kw)


def _one_error_line(capsys, *words):
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    for w in words:
        assert w in err, (w, err)
    return err


# ----------------------------------------------------------------------------- output directories
def test_fit_keeps_a_previous_run_unless_asked(data, tmp_path):
    bold = np.load(data / "bold.npy")
    out = tmp_path / "run"
    fit(_model(), bold, out_dir=out, **TINY)
    before = (out / "result.json").read_bytes()
    with pytest.raises(FileExistsError, match=r"run.*overwrite=True.*") as exc:
        fit(_model(), bold, out_dir=out, **TINY)
    assert "resume=True" in str(exc.value)
    assert (out / "result.json").read_bytes() == before
    more = fit(_model(), bold, out_dir=out, resume=True, **dict(TINY, epochs=2))
    assert more.epochs_completed == 2
    again = fit(_model(), bold, out_dir=out, overwrite=True, **TINY)
    assert again.epochs_completed == 1
    with pytest.raises(ValueError, match="exclude each other"):
        fit(_model(), bold, out_dir=out, overwrite=True, resume=True, **TINY)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        fit(_model(), bold, out_dir=tmp_path / "file", **TINY)


@pytest.mark.parametrize("command", ["fit", "demo", "recover"])
def test_cli_commands_keep_a_previous_run(data, tmp_path, capsys, command):
    out = tmp_path / "run"
    out.mkdir()
    (out / "report.json").write_text("{}")
    argv = _fit_argv(data, out) if command == "fit" else [command, "--out", str(out), "--no-progress"]
    assert main(argv) == 2
    _one_error_line(capsys, f"nmmfit {command}: error:", str(out), "--overwrite")
    assert (out / "report.json").read_text() == "{}"


def test_cli_rerun_of_a_finished_fit_is_refused_and_overwrite_replaces_it(data, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(data / "run", out)
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(_fit_argv(data, out)) == 2
    _one_error_line(capsys, "--resume", "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files
    assert main(_fit_argv(data, out, "--overwrite")) == 0
    (tmp_path / "afile").write_text("x")
    assert main(_fit_argv(data, tmp_path / "afile")) == 2
    _one_error_line(capsys, "is a file")


def test_cli_simulate_keeps_its_output_and_refuses_bad_lengths(data, tmp_path, capsys):
    out = tmp_path / "sim.npz"
    argv = ["simulate", "--sc", str(data / "sc.csv"), "--out", str(out), "--frames", "12", "--burn-in", "2",
            "--no-figures", "--backend", BACKEND]
    assert main(argv) == 0
    before = out.read_bytes()
    assert main(argv + ["--seed", "1"]) == 2
    _one_error_line(capsys, "already exists", "--overwrite")
    assert out.read_bytes() == before
    assert main(argv + ["--seed", "1", "--overwrite"]) == 0 and out.read_bytes() != before
    assert not list(tmp_path.glob("*.tmp"))
    for bad in (["--frames", "0"], ["--burn-in", "-1"]):
        with pytest.raises(SystemExit) as exc:
            main(argv + ["--overwrite"] + bad)
        assert exc.value.code == 2
        _one_error_line(capsys, "nmmfit simulate: error:", bad[0])
    with pytest.raises(ValueError, match="frames"):
        nmmfit.experiments.simulate_run(tmp_path / "x.npz", sc_path=data / "sc.csv", dataset=None, frames=0)


# ----------------------------------------------------------------------------- checkpoints
class _Planted:
    """Unpickling this would create ``path``: the test that a checkpoint is never executed."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def _corrupt(kind: str, good: bytes, marker) -> bytes:
    if kind == "flipped byte":
        i = len(good) - 100
        return good[:i] + bytes([good[i] ^ 0xFF]) + good[i + 1:]
    if kind == "truncated":
        return good[:len(good) // 2]
    if kind == "random":
        return np.random.default_rng(0).bytes(4096)
    buf = io.BytesIO()
    torch.save({"epoch": _Planted(marker)}, buf)
    payload = buf.getvalue()
    if kind == "planted pickle":                        # a valid header and hash: only weights_only stops it
        return MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
    return payload                                      # "foreign": a plain torch.save file


KINDS = ["flipped byte", "truncated", "random", "planted pickle", "foreign"]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_checkpoint_is_refused_naming_the_file(data, tmp_path, capsys, kind):
    out, marker = tmp_path / "run", tmp_path / "executed"
    shutil.copytree(data / "run", out)
    (out / CHECKPOINT).write_bytes(_corrupt(kind, (data / "run" / CHECKPOINT).read_bytes(), marker))
    with pytest.raises(CheckpointError, match=str(out / CHECKPOINT)):
        fit(_model(), np.load(data / "bold.npy"), out_dir=out, resume=True, **TINY)
    assert main(_fit_argv(data, out, "--resume")) == 2
    _one_error_line(capsys, "nmmfit fit: error:", str(out / CHECKPOINT))
    assert not marker.exists()


# ----------------------------------------------------------------------------- the CLI
def test_cli_user_errors_are_one_line_and_internal_errors_keep_their_traceback(data, tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit) as exc:
        main(_fit_argv(data, tmp_path / "e", "--epochs", "0"))
    assert exc.value.code == 2
    _one_error_line(capsys, "nmmfit fit: error:", "--epochs", ">= 1")
    with pytest.raises(SystemExit) as exc:
        main(_fit_argv(data, tmp_path / "f", "--frames", "-3"))
    assert exc.value.code == 2
    _one_error_line(capsys, "--frames")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not a zip archive")
    assert main(["fit", "--sc", str(bad), "--bold", str(bad), "--out", str(tmp_path / "g")]) == 2
    _one_error_line(capsys, "sc_path", "bad.npz")

    def boom(*a, **k):
        raise RuntimeError("an internal error")

    monkeypatch.setattr(nmmfit.experiments, "fit_subject", boom)
    with pytest.raises(RuntimeError, match="an internal error"):
        main(_fit_argv(data, tmp_path / "h"))


@pytest.mark.parametrize("at_epoch", [0, 1])
def test_ctrl_c_says_what_was_saved(data, tmp_path, capsys, monkeypatch, at_epoch):
    update = loop.update

    def interrupted(p, run, epoch, k, windows, lr):
        if epoch == at_epoch and k == 1:
            raise KeyboardInterrupt
        return update(p, run, epoch, k, windows, lr)

    monkeypatch.setattr(loop, "update", interrupted)
    out = tmp_path / "run"
    argv = _fit_argv(data, out)
    argv[argv.index("--epochs") + 1] = "2"
    assert main(argv) == 130
    err = _one_error_line(capsys, "nmmfit fit: interrupted")
    if at_epoch == 0:
        assert "nothing was saved" in err and not (out / CHECKPOINT).exists()
    else:
        assert str(out / CHECKPOINT) in err and "--resume" in err
        monkeypatch.setattr(loop, "update", update)
        assert main(argv + ["--resume"]) == 0


# ----------------------------------------------------------------------------- silent wrong results
def test_epochs_and_fit_settings_are_checked(data):
    with pytest.raises(ValueError, match="epochs: expected an int >= 1"):
        fit(_model(), np.load(data / "bold.npy"), **dict(TINY, epochs=0))
    with pytest.raises(TypeError, match="lr_scale: expected a mapping"):
        fit(_model(), np.load(data / "bold.npy"), lr_scale="g_EE", **TINY)
    assert FitConfig(epochs=np.int64(3), window=np.int32(5)).to_dict()["epochs"] == 3
    with pytest.raises(TypeError, match="lr_scale"):
        FitConfig(lr_scale="g")
    with pytest.raises(ValueError, match=r"lr_scale\['g'\]"):
        FitConfig(lr_scale={"g": -1.0})
    with pytest.raises(TypeError, match="test"):
        FitConfig(test="no")
    with pytest.raises(TypeError, match="betas"):
        FitConfig(betas=0.9)


def test_global_parameter_given_per_region_is_refused():
    with pytest.raises(ValueError, match=r"init\['g'\].*did you mean regional=\['g'\]"):
        RWW(_sc(), init={"g": torch.rand(N)})
    with pytest.raises(ValueError, match=r"did you mean regional=\['g'\]"):
        RWW(_sc(), batch=2, init={"g": torch.rand(N)})
    assert RWW(_sc(), regional=("g",), init={"g": torch.rand(N)}).B == 1
    assert RWW(_sc(), batch=N, init={"g": torch.rand(N)}).B == N         # N models, one g each: asked for
    assert RWW(_sc(), init={"g": torch.rand(3)}).B == 3
    with pytest.raises(TypeError, match="fit.*the string 'g_EE'"):
        RWW(_sc(), fit="g_EE")
    with pytest.raises(TypeError, match="regional.*the string"):
        RWW(_sc(), regional="g")


def test_numpy_ints_and_meta_tensors_in_simulate():
    W = torch.tensor(_sc(), dtype=torch.float32)
    a = nmmfit.simulate(W, None, None, 20, seed=3)
    b = nmmfit.simulate(W, None, None, np.int64(20), seed=np.uint32(3))
    torch.testing.assert_close(a.bold, b.bold, rtol=0, atol=0)
    with pytest.raises(ValueError, match="W: a meta tensor"):
        nmmfit.simulate(W.to("meta"), None, None, 20)
    with pytest.raises(ValueError, match="sc: a meta tensor"):
        RWW(W.to("meta"))
    with pytest.raises(ValueError, match=r"init\['g'\]: a meta tensor"):
        RWW(W, init={"g": torch.ones(1, device="meta")})


def test_constant_region_is_refused_naming_it(data):
    bold = np.load(data / "bold.npy")
    bold[:, 2] = 0.0                                   # a zero-filled region
    with pytest.raises(ValueError, match=r"bold: region\(s\) \[2\] are constant.*drop them"):
        fit(_model(), bold, **TINY)
    with pytest.raises(ValueError, match=r"heldout: region\(s\) \[2\]"):
        fit(_model(), np.load(data / "bold.npy"), heldout=bold, **TINY)


def test_divergence_message_names_only_a_checkpoint_that_exists(tmp_path):
    m = RWW(_sc(), preset=DECO2014.replace(tr=2.0), fit=("g",), backend=BACKEND)
    bold = np.random.default_rng(0).normal(size=(20, N))

    def blow_up(ev):
        if ev["event"] == "update" and ev["update"] == 1:
            m.set_values(dict(g=1e36))

    with pytest.raises(FitDivergedError, match="nothing was saved") as exc:
        fit(m, bold, epochs=2, window=5, out_dir=tmp_path, callback=blow_up, test=False, progress=False)
    assert CHECKPOINT not in str(exc.value) and not (tmp_path / CHECKPOINT).exists()
