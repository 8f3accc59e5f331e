"""Hostile and damaged files (issue #12, classes 2-4): saving writes only over regular files,
small hostile inputs cannot blow up memory, and a damaged model file fails as ModelFileError
at load, never with another exception.

No test here writes to a device: /dev/null is only given to the checks that refuse it.
"""

import io
import json
import os
import socket
import stat
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fmlearn
from fmlearn import _atomic, _memory
from fmlearn import io as fio
from fmlearn._atomic import UnsafeTargetError, atomic_write, resolve_target
from fmlearn.data.textio import read_ffm, read_ffm_rows, read_libfm, write_ffm, write_libfm
from fmlearn.exceptions import DataFormatError, ModelFileError

HYPO = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

# ---------------------------------------------------------------------------------------------
# Fixtures: small fitted models, saved once


def _data(n=40, d=8, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=0.4, format="csr", random_state=seed, dtype=np.float64)
    return X, rng


class _Saved(dict):
    def __repr__(self):  # hypothesis prints its arguments on failure: not the files' bytes
        return f"<saved models {sorted(self)}>"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """name -> (bytes of a valid model file, X to predict on)."""
    X, rng = _data()
    y = rng.normal(size=X.shape[0])
    yc = np.arange(X.shape[0]) % 3
    fields = np.arange(X.shape[1]) % 3
    models = {
        "fm": (fmlearn.FMRegressor(n_factors=2, max_iter=1), y),
        "multi": (fmlearn.FMClassifier(n_factors=2, max_iter=1), yc),
        "binary": (fmlearn.FMClassifier(n_factors=2, max_iter=1), yc % 2),
        "ffm": (fmlearn.FFMRegressor(n_factors=2, max_iter=1, fields=fields), y),
    }
    out = _Saved()
    d = tmp_path_factory.mktemp("models")
    for name, (model, target) in models.items():
        model.fit(X, target)
        model.save(d / name)
        out[name] = ((d / name).read_bytes(), X)
    return out


def _members(blob):
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _zip(members, compression=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _with_meta(blob, edit):
    members = _members(blob)
    meta = json.loads(members["metadata.json"])
    edit(meta)
    members["metadata.json"] = json.dumps(meta, allow_nan=True).encode()
    return _zip(members)


def _load_bytes(tmp_path, blob, name="m.fmz"):
    p = tmp_path / name
    p.write_bytes(blob)
    return fmlearn.load(p)


def _loads_cleanly(tmp_path, blob, X):
    """Load must succeed (and then predict finite numbers) or raise ModelFileError."""
    try:
        model = _load_bytes(tmp_path, blob)
    except ModelFileError as e:
        assert str(tmp_path) in str(e)
        return False
    pred = model.predict(X)
    assert np.isfinite(np.asarray(pred, dtype=np.float64)).all()
    return True


# ---------------------------------------------------------------------------------------------
# Class 2: writing only over regular files


@pytest.fixture
def fifo(tmp_path):
    p = tmp_path / "fifo"
    os.mkfifo(p)
    return p


def _assert_fifo(p):
    assert stat.S_ISFIFO(os.lstat(p).st_mode)


def test_refuses_devices_without_writing():
    for dev in ("/dev/null", "/dev/zero", "/dev/full"):
        if os.path.exists(dev):
            with pytest.raises(UnsafeTargetError, match="character device"):
                resolve_target(dev)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_refuses_fifo_directory_socket(tmp_path, fifo, saved):
    sock_path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(os.fspath(sock_path))
        X, _ = _data()
        model = _load_bytes(tmp_path, saved["fm"][0])
        for target, kind in ((fifo, "FIFO"), (tmp_path, "directory"), (sock_path, "socket")):
            with pytest.raises(UnsafeTargetError, match=kind):
                model.save(target)
            with pytest.raises(UnsafeTargetError, match=kind):
                write_libfm(target, X, np.zeros(X.shape[0]))
            with pytest.raises(UnsafeTargetError, match=kind):
                write_ffm(target, X, np.zeros(X.shape[0]), np.zeros(X.shape[1], np.int32))
        assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    _assert_fifo(fifo)
    assert not [p for p in os.listdir(tmp_path) if _atomic.TMP_MARK in p]


def test_symlinks_are_followed_to_regular_files(tmp_path, fifo):
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    with atomic_write(link, "w") as f:
        f.write("new")
    assert link.is_symlink() and real.read_text() == "new"
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "new.txt")
    with atomic_write(dangling, "w") as f:
        f.write("x")
    assert dangling.is_symlink() and (tmp_path / "new.txt").read_text() == "x"
    to_fifo = tmp_path / "to_fifo"
    to_fifo.symlink_to(fifo)
    with pytest.raises(UnsafeTargetError, match="FIFO"):
        resolve_target(to_fifo)
    _assert_fifo(fifo)


def test_missing_folder_and_trailing_slash(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_target(tmp_path / "missing" / "m.fmz")
    with pytest.raises(UnsafeTargetError):
        resolve_target(os.fspath(tmp_path) + "/")


@pytest.mark.parametrize("where", ["body", "fsync"])
def test_temporary_file_removed_on_failure(tmp_path, monkeypatch, where):
    target = tmp_path / "out.txt"
    target.write_text("old")
    if where == "fsync":
        def full(fd):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(_atomic.os, "fsync", full)
    with pytest.raises(OSError if where == "fsync" else RuntimeError):
        with atomic_write(target, "w") as f:
            f.write("partial")
            if where == "body":
                raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_stale_temporaries_cleaned(tmp_path):
    target = tmp_path / "m.fmz"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".m.fmz{_atomic.TMP_MARK}{dead.pid}-0a1b"
    live = tmp_path / f".m.fmz{_atomic.TMP_MARK}{os.getpid()}-0a1b"
    legacy_old = tmp_path / ".m.fmz.abcd1234.tmp"
    legacy_new = tmp_path / ".m.fmz.zzzz9999.tmp"
    other = tmp_path / f".other{_atomic.TMP_MARK}{dead.pid}-0a1b"
    for p in (stale, live, legacy_old, legacy_new, other):
        p.write_bytes(b"x" * 10)
    os.utime(legacy_old, (0, 0))
    with atomic_write(target) as f:
        f.write(b"data")
    left = set(os.listdir(tmp_path))
    assert left == {"m.fmz", live.name, legacy_new.name, other.name}


# ---------------------------------------------------------------------------------------------
# Class 3: bounded memory


def test_load_refuses_non_regular_files(tmp_path, fifo):
    for p in ("/dev/zero", tmp_path, fifo):
        with pytest.raises(ModelFileError, match="not an fmlearn model file"):
            fmlearn.load(p)
    with pytest.raises(FileNotFoundError):
        fmlearn.load(tmp_path / "missing.fmz")


def _npy_header(shape, descr="<f4"):
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


def test_npy_header_claiming_terabytes(tmp_path, saved):
    blob, _ = saved["fm"]
    members = _members(blob)
    members["params/V.npy"] = _npy_header((1 << 40,))
    with pytest.raises(ModelFileError, match="params/V"):
        _load_bytes(tmp_path, _zip(members))
    # The metadata agreeing with the header: the member's real size still refuses it.
    def edit(meta):
        meta["arrays"]["params/V"]["shape"] = [1 << 40]

    members = _members(_with_meta(blob, edit))
    members["params/V.npy"] = _npy_header((1 << 40,))
    with pytest.raises(ModelFileError, match="declares"):
        _load_bytes(tmp_path, _zip(members))


def test_metadata_size_limit_and_compressed_members(tmp_path, saved, monkeypatch):
    blob, _ = saved["fm"]
    with pytest.raises(ModelFileError, match="compressed"):
        _load_bytes(tmp_path, _zip(_members(blob), zipfile.ZIP_DEFLATED))
    monkeypatch.setattr(fio, "MAX_METADATA_BYTES", 100)
    with pytest.raises(ModelFileError, match="metadata.json declares"):
        _load_bytes(tmp_path, blob)


def test_declared_size_beyond_file(tmp_path, saved):
    blob = bytearray(saved["fm"][0])
    # Inflate the sizes in the central directory's record of the first member.
    cd = blob.rfind(b"PK\x01\x02")
    first = blob.find(b"PK\x01\x02")
    assert 0 <= first <= cd
    blob[first + 20 : first + 28] = (0x7FFFFFF0).to_bytes(4, "little") * 2
    with pytest.raises(ModelFileError):
        _load_bytes(tmp_path, bytes(blob))


def test_deeply_nested_json(tmp_path, saved):
    members = _members(saved["fm"][0])
    members["metadata.json"] = b"[" * 200_000 + b"]" * 200_000
    with pytest.raises(ModelFileError, match="nested too deeply"):
        _load_bytes(tmp_path, _zip(members))


def test_gzip_bomb_of_zeros_fails_fast(tmp_path):
    import gzip

    p = tmp_path / "bomb.libfm.gz"
    with gzip.open(p, "wb", compresslevel=9) as f:
        chunk = b"\0" * (1 << 20)
        for _ in range(64):
            f.write(chunk)
    assert p.stat().st_size < 1 << 20
    with pytest.raises(DataFormatError, match="NUL byte"):
        read_libfm(p)


def test_gzip_growth_checked_against_guard(tmp_path, monkeypatch):
    import gzip

    p = tmp_path / "big.libfm.gz"
    with gzip.open(p, "wb") as f:
        f.write(b"1 1:1\n" * 2_000_000)
    monkeypatch.setattr(_memory, "available_memory", lambda: 4 << 20)
    with pytest.raises(MemoryError, match="inflated gzip"):
        read_libfm(p)


def test_text_readers_refuse_non_regular_files(tmp_path, fifo):
    for p in ("/dev/zero", tmp_path, fifo):
        with pytest.raises(DataFormatError, match="not a regular file"):
            read_libfm(p)


def test_huge_feature_index_checked_not_allocated(tmp_path, monkeypatch):
    p = tmp_path / "big.ffm"
    p.write_text("1 0:2147483646:1\n")
    X, y = read_ffm_rows(p)  # no field table: nothing per column
    assert X.shape == (1, 2147483647) and X.nnz == 1
    # Without the memory guard's help: an 8 GiB field table for 17 bytes of text is refused
    # as out of proportion, before anything is allocated.
    monkeypatch.setattr(_memory, "available_memory", lambda: 1 << 50)
    with pytest.raises(ValueError, match=r"field table of 2147483647 features .*n_features="):
        read_ffm(p)
    # Asked for explicitly, only the guard decides.
    monkeypatch.setattr(_memory, "available_memory", lambda: 1 << 30)
    with pytest.raises(MemoryError, match="2147483647 features"):
        read_ffm(p, n_features=2147483647)


@pytest.mark.parametrize("family,field", [("ffm", 20_000_000), ("fwfm", 50_000)])
def test_guard_counts_field_tables(monkeypatch, family, field):
    from fmlearn import base

    monkeypatch.setattr(base, "_available_memory", lambda: 1 << 30)
    X = sp.csr_matrix(np.ones((4, 2)))
    cls = fmlearn.FFMRegressor if family == "ffm" else fmlearn.FwFMRegressor
    model = cls(n_factors=4, max_iter=1, fields=np.array([0, field]))
    with pytest.raises(ValueError, match="memory available"):
        model.fit(X, np.ones(4))


def test_available_memory_respects_rlimit_as():
    code = (
        "import resource; from fmlearn import _memory as m\n"
        "used = m._proc_status_bytes('VmSize')\n"
        "resource.setrlimit(resource.RLIMIT_AS, (used + (300 << 20), resource.RLIM_INFINITY))\n"
        "print(m.available_memory())\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    assert int(out.stdout) <= 300 << 20


def test_available_memory_respects_cgroup(tmp_path, monkeypatch):
    (tmp_path / "memory.max").write_text("1073741824\n")
    (tmp_path / "memory.current").write_text("536870912\n")
    monkeypatch.setattr(_memory, "_cgroup_dirs", lambda controller: [os.fspath(tmp_path)])
    assert _memory.available_memory() <= 512 << 20
    (tmp_path / "memory.max").write_text("max\n")
    assert _memory._cgroup_left() is None


# ---------------------------------------------------------------------------------------------
# Class 4: damaged model files fail as ModelFileError, at load


@pytest.mark.parametrize(
    "name,edit,match",
    [
        ("fm", lambda m: m.__setitem__("params", []), "'params'"),
        ("fm", lambda m: m.__setitem__("arrays", [1, 2]), "'arrays'"),
        ("fm", lambda m: m["attributes"].__setitem__("n_features_in_", "8"), "n_features_in_"),
        ("fm", lambda m: m["attributes"].__setitem__("_link", "cubic"), "_link"),
        ("fm", lambda m: m["params"].__setitem__("n_jobs", "two"), "n_jobs"),
        ("fm", lambda m: m["params"].__setitem__("n_factors", "2"), "n_factors"),
        ("fm", lambda m: m["params"].__setitem__("learning_rate", -1.0), "learning_rate"),
        ("fm", lambda m: m["arrays"]["params/w"].__setitem__("shape", "8"), "shape"),
        ("fm", lambda m: m["history"].__setitem__("epoch", 3), "history"),
        ("multi", lambda m: m["arrays"].pop("attrs/classes_"), "classes_"),
    ],
)
def test_wrong_types_and_values(tmp_path, saved, name, edit, match):
    with pytest.raises(ModelFileError, match=match):
        _load_bytes(tmp_path, _with_meta(saved[name][0], edit))


def _replace_array(blob, key, arr):
    members = _members(blob)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr)
    members[key + ".npy"] = buf.getvalue()

    def edit(meta):
        meta["arrays"][key] = {"shape": list(arr.shape), "dtype": arr.dtype.str}

    members["metadata.json"] = _members(_with_meta(blob, edit))["metadata.json"]
    return _zip(members)


def test_classes_against_parameters(tmp_path, saved):
    multi, binary = saved["multi"][0], saved["binary"][0]
    with pytest.raises(ModelFileError, match="3 classes"):
        _load_bytes(tmp_path, _replace_array(multi, "attrs/classes_", np.array([0, 1])))
    with pytest.raises(ModelFileError, match="at least 2 distinct"):
        _load_bytes(tmp_path, _replace_array(binary, "attrs/classes_", np.array([1])))
    with pytest.raises(ModelFileError, match="at least 2 distinct"):
        _load_bytes(tmp_path, _replace_array(binary, "attrs/classes_", np.array([1, 1])))
    with pytest.raises(ModelFileError, match="binary"):
        _load_bytes(tmp_path, _replace_array(binary, "attrs/classes_", np.array([0, 1, 2])))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_parameters(tmp_path, saved, value):
    model = _load_bytes(tmp_path, saved["fm"][0])
    V = model._params.arrays()["V"].copy()
    V[1, 0] = value
    with pytest.raises(ModelFileError, match="params/V.*NaN or infinite"):
        _load_bytes(tmp_path, _replace_array(saved["fm"][0], "params/V", V))


@HYPO
@given(data=st.data())
def test_truncated_files(tmp_path, saved, data):
    name = data.draw(st.sampled_from(sorted(saved)))
    blob, _ = saved[name]
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(ModelFileError):
        _load_bytes(tmp_path, blob[:cut])


@HYPO
@given(data=st.data())
def test_flipped_bytes(tmp_path, saved, data):
    name = data.draw(st.sampled_from(sorted(saved)))
    blob, X = saved[name]
    blob = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] ^= data.draw(st.integers(1, 255))
    _loads_cleanly(tmp_path, bytes(blob), X)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8)
    | st.floats(allow_nan=True, allow_infinity=True),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=6,
)


def _paths(node, prefix=()):
    """Every key path in a JSON document."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:3]):
            yield from _paths(v, (*prefix, i))


@HYPO
@given(data=st.data())
def test_json_values_replaced(tmp_path, saved, data):
    name = data.draw(st.sampled_from(sorted(saved)))
    blob, X = saved[name]
    meta = json.loads(_members(blob)["metadata.json"])
    paths = [p for p in _paths(meta) if p]
    path = data.draw(st.sampled_from(paths))
    value = data.draw(_JSON_VALUES)

    def edit(m):
        node = m
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value

    _loads_cleanly(tmp_path, _with_meta(blob, edit), X)


@HYPO
@given(data=st.data())
def test_array_members_replaced(tmp_path, saved, data):
    """Arrays of other shapes, dtypes or values, with metadata that agrees or not."""
    name = data.draw(st.sampled_from(sorted(saved)))
    blob, X = saved[name]
    meta = json.loads(_members(blob)["metadata.json"])
    key = data.draw(st.sampled_from(sorted(meta["arrays"])))
    shape = tuple(data.draw(st.lists(st.integers(0, 4), max_size=3)))
    dtype = data.draw(st.sampled_from(["<f4", "<f8", "<i4", "<i8", "<U3", "|b1"]))
    arr = np.asarray(
        data.draw(st.lists(st.floats(-5, 5) | st.just(np.nan), min_size=int(np.prod(shape)),
                           max_size=int(np.prod(shape)))), dtype=np.float64,
    ).reshape(shape)
    arr = np.nan_to_num(arr).astype(dtype) if dtype[1] in "iUb" else arr.astype(dtype)
    new = _replace_array(blob, key, arr)
    if data.draw(st.booleans()):  # metadata keeps the old spec
        members = _members(new)
        members["metadata.json"] = _members(blob)["metadata.json"]
        new = _zip(members)
    _loads_cleanly(tmp_path, new, X)
