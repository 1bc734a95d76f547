"""Fleets (nmmfit.fleet): the result store (resume, skip, force, failures recorded) with the local
engine, and the Ray engine on a real local Ray cluster (a head and a second node on this machine):
a worker killed mid-job, the driver killed and restarted, and a subject's result equal between
the Ray and the local engine. Fits are tiny (1-2 epochs of 100 frames: 50 fitted, 50 held out; one restart)."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from nmmfit import datasets
from nmmfit.cli import main
from nmmfit.fit import FitResult
from nmmfit.fleet import STATUS, CohortStore, FitJob, SubjectRef, run_fleet, run_job
from nmmfit.fleet.store import SUBJECTS_DIR

TINY = dict(scheme="griffiths2022", restarts=1, epochs=1, frames=100, test_windows="data", progress=False,
            figures=False)
"""One stage (the paper's scheme), one epoch of 50 frames, a test run as long as the data."""
TINY_CLI = ["--scheme", "griffiths2022", "--restarts", "1", "--epochs", "1", "--frames", "100", "--test-windows", "data",
            "--no-progress", "--no-figures"]
IDS = [str(s) for s in datasets.dataset_info("hcp_aal2").subjects]


def _subject_dir(out, subject) -> Path:
    return Path(out) / SUBJECTS_DIR / subject


def _snapshot(out, subjects) -> dict:
    """Each subject's stored files: name -> (bytes, mtime_ns)."""
    return {s: {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in _subject_dir(out, s).iterdir()}
            for s in subjects}


def _arrays(out, subject) -> dict:
    """The subject's stored arrays, less wall times (``history/epoch_time``)."""
    with np.load(_subject_dir(out, subject) / "result.npz") as z:
        return {k: z[k] for k in z.files if not k.endswith("_time")}


def _assert_same_fit(out_a, out_b, subject):
    a, b = _arrays(out_a, subject), _arrays(out_b, subject)
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"subject {subject}: {k}")


@pytest.fixture(scope="module")
def local_cohort(tmp_path_factory):
    """Subjects 0-1 through the local engine, one job per subject (``fit_subject``)."""
    out = tmp_path_factory.mktemp("local") / "cohort"
    report = run_fleet(out, subjects="0-1", batch=1, **{**TINY, "figures": True})
    return out, report


# ---------------------------------------------------------------- local engine, store

def test_store_layout_and_cohort_table(local_cohort):
    out, report = local_cohort
    assert (report.done, report.failed, report.ran, report.skipped) == (2, 0, 2, 0)
    assert report.figures == [str(out / "cohort.png")] and (out / "cohort.png").stat().st_size > 0
    heldout = [FitResult.load(_subject_dir(out, s)).heldout_r[0] for s in IDS[:2]]
    assert report.scores["held-out FC r"]["min"] == pytest.approx(min(heldout))
    assert "held-out FC r over subjects" in report.summary()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["subjects"] == IDS[:2] and manifest["settings"]["options"]["epochs"] == 1
    rows = (out / "cohort.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert len(rows) == 1 + 2 and {"subject", "status", "restart", "train_r", "heldout_r", "g", "worker"} <= set(header)
    for s in IDS[:2]:
        res = FitResult.load(_subject_dir(out, s))
        status = json.loads((_subject_dir(out, s) / STATUS).read_text())
        assert status["status"] == "done" and status["rows"][0]["train_r"] == pytest.approx(float(res.train_r[0]))
        assert res.extra["subject"] == s and res.heldout_r.shape == (1,)


def test_local_result_is_fit_subject(local_cohort, tmp_path):
    """A fleet subject's stored fit is `nmmfit fit --subject k`'s, bit for bit."""
    out, _ = local_cohort
    assert main(["fit", "--dataset", "hcp_aal2", "--subject", "1", *TINY_CLI, "--out", str(tmp_path / "single")]) == 0
    with np.load(tmp_path / "single" / "result.npz") as z:
        single = {k: z[k] for k in z.files}
    stored = _arrays(out, IDS[1])
    for k in ("train_r", "test_r", "heldout_r", "W", "fitted/g", "fitted/g_EE", "history/loss"):
        np.testing.assert_array_equal(stored[k], single[k], err_msg=k)


def test_batched_job_splits_into_the_same_subject_fits(local_cohort, tmp_path):
    """Subjects packed in one batched model (the local engine's default) give each subject the fit
    it gets alone (subject-keyed randomness), split into one result per subject."""
    out, _ = local_cohort
    report = run_fleet(tmp_path / "batched", subjects="0-1", **TINY)
    assert report.done == 2
    for s in IDS[:2]:
        a, b = _arrays(out, s), _arrays(tmp_path / "batched", s)
        for k in ("train_r", "test_r", "heldout_r", "W", "fitted/g", "history/loss", "emp_fc"):
            np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6, err_msg=f"subject {s}: {k}")
        assert json.loads((_subject_dir(tmp_path / "batched", s) / "result.json").read_text())["config"]["B"] == 1


@pytest.mark.parametrize("shared_sc", [True, False])
def test_fit_result_select_takes_each_model_axis(shared_sc, tmp_path):
    B, N, U, rng = 3, 4, 5, np.random.default_rng(0)
    sc = rng.random((N, N)) if shared_sc else rng.random((B, N, N))
    res = FitResult(config=dict(B=B, N=N, model=dict(batch=B)), fitted=dict(g=rng.random(B), I_0=rng.random((B, N))),
                    fitted_hyper=dict(prior=rng.random(B)), history={"loss": rng.random((U, B)), "epoch": np.arange(U),
                                                                    "param.I_0": rng.random((U, B, N))},
                    sc=sc, W=rng.random((B, N, N)), emp_fc=rng.random((B, N, N)), train_r=rng.random(B),
                    baselines=dict(sc_fc=rng.random(B)),
                    extra=dict(stages=[dict(target="group", epochs=2, train_r=[0.1, 0.2, 0.3])], labels=list("abcd")))
    one = res.select(slice(1, 3))
    assert one.extra == dict(stages=[dict(target="group", epochs=2, train_r=[0.2, 0.3])], labels=list("abcd"))
    assert one.config["B"] == 2 and one.config["model"]["batch"] == 2 and res.config["B"] == B
    np.testing.assert_array_equal(one.fitted["I_0"], res.fitted["I_0"][1:])
    np.testing.assert_array_equal(one.history["param.I_0"], res.history["param.I_0"][:, 1:])
    np.testing.assert_array_equal(one.history["epoch"], res.history["epoch"])
    np.testing.assert_array_equal(one.sc, sc if shared_sc else sc[1:])
    np.testing.assert_array_equal(one.W, res.W[1:])
    assert one.test_r is None and one.baselines["sc_fc"].tolist() == res.baselines["sc_fc"][1:].tolist()
    back = FitResult.load(one.save(tmp_path))
    np.testing.assert_array_equal(back.train_r, res.train_r[1:])


def test_rerun_skips_done_adds_new_and_force_refits(local_cohort, tmp_path):
    out = tmp_path / "cohort"
    run_fleet(out, subjects="0", **TINY)
    before = _snapshot(out, IDS[:1])
    report = run_fleet(out, subjects="0-1", **TINY)
    assert (report.skipped, report.ran, report.done) == (1, 1, 2)
    assert _snapshot(out, IDS[:1]) == before, "a subject already done was rewritten"
    _assert_same_fit(out, local_cohort[0], IDS[1])
    forced = run_fleet(out, subjects="0", force=True, **TINY)
    assert (forced.skipped, forced.ran) == (0, 1)
    assert _snapshot(out, IDS[:1])[IDS[0]]["result.npz"][1] != before[IDS[0]]["result.npz"][1], "no refit"
    _assert_same_fit(out, local_cohort[0], IDS[0])


def test_other_settings_are_refused_unless_force(tmp_path):
    out = tmp_path / "cohort"
    run_fleet(out, subjects="0", **TINY)
    with pytest.raises(FileExistsError, match=r"other settings \(options.*epochs.*force=True \(--force\)"):
        run_fleet(out, subjects="0", **{**TINY, "epochs": 2})
    report = run_fleet(out, subjects="0", force=True, **{**TINY, "epochs": 2})
    assert report.ran == 1
    assert json.loads((_subject_dir(out, IDS[0]) / "result.json").read_text())["epochs_completed"] == 2


def _cohort_file(tmp_path) -> Path:
    """Two subjects' files and a third whose BOLD has a NaN."""
    rows = ["subject,sc,bold,tr"]
    for i, name in enumerate(("a", "b", "bad")):
        s = datasets.load("hcp_aal2", subject=i)
        bold = np.array(s.bold[:100])
        if name == "bad":
            bold[17, 3] = np.nan
        np.save(tmp_path / f"{name}_sc.npy", s.sc)
        np.save(tmp_path / f"{name}_bold.npy", bold)
        rows.append(f"{name},{name}_sc.npy,{name}_bold.npy,0.72")
    (tmp_path / "cohort.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "cohort.csv"


def test_failed_subject_recorded_the_rest_go_on(tmp_path):
    table = _cohort_file(tmp_path)
    out = tmp_path / "cohort"
    report = run_fleet(out, subjects_file=table, **TINY)
    assert (report.done, report.failed) == (2, 1)
    assert "NaN" in report.failures["bad"] and "bad" in report.summary()
    status = json.loads((_subject_dir(out, "bad") / STATUS).read_text())
    assert status["status"] == "failed" and "NaN" in status["error"]
    assert not (_subject_dir(out, "bad") / "result.npz").exists()
    lines = (out / "cohort.csv").read_text().splitlines()
    assert any(line.startswith("bad,failed,") and "NaN" in line for line in lines)
    again = run_fleet(out, subjects_file=table, **TINY)          # failures are retried, the done ones skipped
    assert (again.skipped, again.ran, again.failed) == (2, 0, 1)


def test_job_of_a_failing_batch_isolates_the_subject(tmp_path):
    """A job whose batch cannot run is fitted subject by subject: only the bad one fails."""
    good = SubjectRef(subject=IDS[0], dataset="hcp_aal2")
    bad = SubjectRef(subject="nobody", dataset="hcp_aal2")
    options = {k: v for k, v in TINY.items() if k not in ("progress", "figures")}
    result = run_job(FitJob((good, bad), options, 0), threads=1)
    status = {o.subject: o.status for o in result.outcomes}
    assert status == {IDS[0]: "done", "nobody": "failed"}
    assert "nobody" in result.outcomes[1].error and "result.npz" in result.outcomes[0].files


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(subjects="0", bogus=1), TypeError, "unknown fit option.*bogus"),
    (dict(subjects="99"), ValueError, "not a subject of hcp_aal2"),
    (dict(subjects="0", engine="spark"), ValueError, "engine: expected one of 'local', 'ray'"),
    (dict(subjects="0", workers=4), ValueError, "workers and address.*'ray' engine"),
    (dict(subjects="0", restarts=0), ValueError, "restarts"),
    (dict(subjects="0", batch=0), ValueError, "batch"),
    (dict(subjects="0", epochs=0), ValueError, "epochs"),
    (dict(subjects="0", heldout="later"), ValueError, "heldout"),
    (dict(subjects="0", frames=-5), ValueError, "frames"),
])
def test_bad_arguments_are_named(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        run_fleet(tmp_path / "c", **{**TINY, **kwargs})
    assert not (tmp_path / "c" / "manifest.json").exists()


def test_store_refuses_a_file_as_out(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        CohortStore(tmp_path / "f", {})


def test_ray_not_imported_by_nmmfit_and_its_absence_explained(tmp_path):
    """``import nmmfit`` (and the CLI, and fleet) never imports Ray; with Ray absent (``import ray``
    fails, as ``sys.modules["ray"] = None`` makes it), ``nmmfit fleet --engine ray`` exits 2 saying
    how to install it."""
    code = ("import sys, nmmfit, nmmfit.cli, nmmfit.fleet\n"
            "assert 'ray' not in sys.modules, 'ray imported'\n"
            "sys.modules['ray'] = None\n"
            f"sys.exit(nmmfit.cli.main(['fleet', '--engine', 'ray', '--subjects', '0', '--out', {str(tmp_path)!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert 'pip install "nmmfit[ray]"' in r.stderr and not (tmp_path / "manifest.json").exists()


# ---------------------------------------------------------------- a real Ray cluster on this machine

def _processes():
    """``(pid, argv[0])`` of this machine's processes."""
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                argv0 = Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            yield int(d), argv0


def _wait_for(predicate, timeout: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def ray_cluster():
    """A head node and a second worker node on localhost, one CPU each; Ray initialised here."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, logging_level="WARNING")
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def ray_cohort_with_a_kill(ray_cluster, tmp_path_factory):
    """Subjects 0-1 through the Ray engine; the first worker seen running a fit is killed (SIGKILL)."""
    out = tmp_path_factory.mktemp("ray") / "cohort"
    result = {}
    driver = threading.Thread(target=lambda: result.update(report=run_fleet(out, subjects="0-1", engine="ray",
                                                                            **TINY)))
    driver.start()
    pid, argv0 = _wait_for(lambda: next(((p, a) for p, a in _processes() if a.startswith("ray::nmmfit fit ")), None),
                           120, "a Ray worker running a fit")
    os.kill(pid, signal.SIGKILL)
    driver.join(300)
    assert not driver.is_alive()
    return out, result["report"], pid, argv0.split()[-1]


def test_ray_worker_killed_mid_job_cohort_completes(ray_cohort_with_a_kill):
    out, report, killed_pid, killed_subject = ray_cohort_with_a_kill
    assert (report.done, report.failed, report.ran) == (2, 0, 2), report.summary()
    statuses = {s: json.loads((_subject_dir(out, s) / STATUS).read_text()) for s in IDS[:2]}
    assert statuses[killed_subject]["status"] == "done"
    assert all(not st["worker"].endswith(f":{killed_pid}") for st in statuses.values())
    for s in IDS[:2]:
        FitResult.load(_subject_dir(out, s))                        # every file complete and readable
        assert not list(_subject_dir(out, s).glob("*.tmp*"))


def test_ray_and_local_engines_give_the_same_subject_fit(ray_cohort_with_a_kill, local_cohort):
    out, *_ = ray_cohort_with_a_kill
    for s in IDS[:2]:                                                # the retried subject too
        _assert_same_fit(out, local_cohort[0], s)


def test_ray_driver_killed_and_rerun_fits_only_the_unfinished(ray_cluster, tmp_path):
    out = tmp_path / "cohort"
    cmd = [sys.executable, "-m", "nmmfit", "fleet", "--engine", "ray", "--address", ray_cluster.address,
           "--subjects", "0-2", *TINY_CLI, "--out", str(out)]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: list((out / SUBJECTS_DIR).glob(f"*/{STATUS}")), 150, "the first subject stored")
    finally:
        first.kill()
        first.communicate()
    done = sorted(p.parent.name for p in (out / SUBJECTS_DIR).glob(f"*/{STATUS}"))
    assert 1 <= len(done) < 3
    before = _snapshot(out, done)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"3 done ({len(done)} already, {3 - len(done)} fitted now)" in second.stdout
    assert _snapshot(out, done) == before, "a subject finished before the kill was fitted again"
