"""Property-based fuzz of nmmfit.datasets' loaders and check_bold: whatever comes in, the answer is
either valid data (finite, float64, documented shapes) or one of the documented exceptions with a
message that starts with the argument's name. Never another exception, never a silent NaN."""
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from nmmfit import datasets as D
from test_datasets import _write

FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DOCUMENTED = (ValueError, TypeError, FileNotFoundError, D.DatasetNotInstalledError)

# Values that real files hold, and the ones that break naive loaders.
ELEMENTS = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([0.0, 1.0, np.nan, np.inf, -np.inf, 1e300, -1e300, 5e-324, 1e-300]),
)


def _refused(exc: BaseException, *names: str) -> None:
    """A documented exception whose message starts with one of ``names`` (the argument)."""
    assert isinstance(exc, DOCUMENTED), f"undocumented {type(exc).__name__}: {exc}"
    assert re.match(rf"^({'|'.join(map(re.escape, names))})(\[[^\]]*\])?:", str(exc)), str(exc)


def _valid_bold(out: np.ndarray, info, n_regions) -> None:
    assert out.dtype == np.float64 and out.ndim == 2 and np.isfinite(out).all()
    assert out.shape == (info.n_frames, info.n_regions)
    if n_regions is not None:
        assert info.n_regions + len(info.dropped) == n_regions
    assert D.constant_regions(out).size == 0
    fc = D.fc_from_bold(out)
    assert np.isfinite(fc).all() and np.allclose(fc, fc.T) and (np.abs(fc) <= 1).all()


@st.composite
def bold_arrays(draw):
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64, np.bool_]))
    shape = draw(st.tuples(st.integers(1, 25), st.integers(1, 7)))
    if dtype == np.float64:
        arr = draw(hnp.arrays(dtype, shape, elements=ELEMENTS))
    else:
        arr = draw(hnp.arrays(dtype, shape))
    arr = arr.astype(np.float64) if dtype == np.float32 else arr
    for k in draw(st.lists(st.integers(0, shape[1] - 1), max_size=2)):  # constant columns
        arr[:, k] = draw(st.sampled_from([0, 1, 7]))
    return arr


@FAST
@given(bold=bold_arrays(), n=st.one_of(st.none(), st.integers(1, 8)),
       layout=st.sampled_from(["auto", "TN", "NT"]), drop=st.booleans(),
       min_frames=st.integers(2, 5))
def test_check_bold_fuzz(bold, n, layout, drop, min_frames):
    try:
        out, info = D.check_bold(bold, n, layout=layout, drop_constant=drop, min_frames=min_frames)
    except Exception as exc:  # noqa: BLE001 -- the property is about which exceptions escape
        _refused(exc, "bold", "labels")
        return
    _valid_bold(out, info, n)
    assert out.shape[0] >= min_frames


@FAST
@given(bold=bold_arrays(), drop=st.booleans())
def test_load_arrays_fuzz(bold, drop):
    n = bold.shape[1]
    try:
        s = D.load_arrays(np.ones((n, n)), bold, bold_layout="TN", drop_constant=drop)
    except Exception as exc:  # noqa: BLE001
        _refused(exc, "bold")
        return
    assert np.isfinite(s.bold).all() and np.isfinite(s.fc).all() and s.sc.shape == (s.N, s.N)
    assert s.bold.shape[1] == s.N == len(s.labels)


TOKENS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-5, 5).map(str),
    st.sampled_from(["NA", "nan", "NaN", "", "inf", "-Infinity", "1e400", "x", "region_1", "1,5",
                     "0x10", "--", "#", "\x00", "é"]),
)


@st.composite
def text_tables(draw):
    delim = draw(st.sampled_from([",", "\t", ";", " "]))
    rows = draw(st.lists(st.lists(TOKENS, min_size=1, max_size=5), min_size=1, max_size=6))
    lines = [delim.join(r) for r in rows]
    if draw(st.booleans()):
        lines.insert(0, delim.join(str(k) for k in range(draw(st.integers(0, 1)), 6)))
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n\n# end\n"]))


def _tmpdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="nmmfit-fuzz-"))


@FAST
@given(text=st.one_of(text_tables(), st.text(max_size=200)), suffix=st.sampled_from([".csv", ".tsv", ".txt"]))
def test_text_reader_fuzz(text, suffix):
    path = _tmpdir() / f"table{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        arr = D.read_matrix(path, argument="sc_path")
    except Exception as exc:  # noqa: BLE001
        _refused(exc, "sc_path")
        assert "table" in str(exc)  # the file is named
        return
    assert arr.dtype == np.float64 and arr.ndim in (1, 2) and arr.size and np.isfinite(arr).all()


def _valid_files(directory: Path) -> list[Path]:
    arr = np.arange(12.0).reshape(3, 4) + 0.5
    np.save(directory / "a.npy", arr)
    np.savez_compressed(directory / "a.npz", arr)
    scipy.io.savemat(directory / "a.mat", {"m": arr}, do_compression=True)
    scipy.io.savemat(directory / "b.mat", {"m": arr})
    return [directory / n for n in ("a.npy", "a.npz", "a.mat", "b.mat")]


@FAST
@given(which=st.integers(0, 3), data=st.data())
def test_corrupt_binary_files_fuzz(which, data):
    path = _valid_files(_tmpdir())[which]
    raw = bytearray(path.read_bytes())
    cut = data.draw(st.integers(0, len(raw)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=8))
    for at, value in flips:
        raw[at] = value
    path.write_bytes(bytes(raw[:cut] if data.draw(st.booleans()) else raw))
    try:
        arr = D.read_matrix(path, argument="bold_path", key_argument="bold_key")
        s = D.load_arrays(np.ones((4, 4)), arr, bold_layout="TN")
    except Exception as exc:  # noqa: BLE001
        _refused(exc, "bold_path", "bold_key", "bold")
        return
    assert np.isfinite(s.bold).all() and np.isfinite(s.fc).all()


@FAST
@given(arr=bold_arrays(), fmt=st.sampled_from(["npy", "npz", "mat", "csv", "txt"]),
       n=st.integers(1, 8), layout=st.sampled_from(["auto", "rows", "columns"]))
def test_load_maps_fuzz(arr, fmt, n, layout):
    path = _tmpdir() / f"maps.{fmt}"
    _write(path, arr, fmt)
    try:
        maps = D.load_maps(path, n, layout=layout)
    except Exception as exc:  # noqa: BLE001
        _refused(exc, "path", "names", "maps of maps." + fmt)
        return
    assert maps and all(v.shape == (n,) and np.isfinite(v).all() for v in maps.values())


@FAST
@given(labels=hnp.arrays(np.float64, st.integers(1, 8), elements=ELEMENTS))
def test_node_groups_fuzz(labels):
    n = labels.size
    try:
        s = D.load_arrays(np.ones((n, n)), node_groups={"g": labels})
    except Exception as exc:  # noqa: BLE001
        _refused(exc, "node_groups['g']")
        return
    g = s.node_groups["g"]
    assert g.dtype == np.int64 and set(g.tolist()) == set(range(g.max() + 1))


def test_not_a_zip_named_npz(tmp_path):
    """A zip that is not numpy's: the loader names the file, not zipfile's internals."""
    with zipfile.ZipFile(tmp_path / "x.npz", "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match=r"^sc_path: x\.npz member .readme\.txt. is not a numpy array"):
        D.read_matrix(tmp_path / "x.npz", argument="sc_path")
