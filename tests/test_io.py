"""Model files: round trips, atomic writes, and clean failures on bad files."""

import os

import numpy as np
import pytest
from _modelfile import rewrite
from sklearn.exceptions import NotFittedError

import fmlearn
from fmlearn import FMClassifier, FMRegressor
from fmlearn.data import make_fm_regression
from fmlearn.exceptions import ModelFileError


@pytest.fixture(scope="module")
def data():
    X, y, _ = make_fm_regression(600, 25, random_state=0)
    return X, y


@pytest.fixture
def saved(tmp_path, data):
    X, y = data
    m = FMRegressor(n_factors=3, max_iter=4, random_state=0).fit(X, y, eval_set=(X, y))
    path = tmp_path / "model.fmz"
    m.save(path)
    return m, path


def test_regressor_round_trip(saved, data):
    m, path = saved
    X, y = data
    loaded = fmlearn.load(path)
    assert type(loaded) is FMRegressor
    assert loaded.get_params() == m.get_params()
    np.testing.assert_array_equal(loaded.predict(X), m.predict(X))
    assert loaded.history_ == m.history_
    assert loaded.n_iter_ == m.n_iter_ and loaded.n_features_in_ == 25
    # the npz view works with numpy alone, without pickle
    with np.load(path, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["params/V"], m.V_)


def test_solver_state_saved_so_training_resumes_exactly(saved, data):
    m, path = saved
    X, y = data
    loaded = fmlearn.load(path)
    m.partial_fit(X, y)
    loaded.partial_fit(X, y)
    # Same parameters and AdaGrad state; only the shuffle RNG is re-seeded on load.
    assert np.corrcoef(m.V_.ravel(), loaded.V_.ravel())[0, 1] > 0.99


def test_classifier_round_trip_with_string_labels_and_names(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.integers(0, 2, (200, 4)).astype(float), columns=list("abcd"))
    labels = np.where(df["a"] + df["b"] > 1, "yes", "no")
    clf = FMClassifier(max_iter=5, random_state=0).fit(df, labels)
    clf.save(tmp_path / "c.fmz")
    loaded = fmlearn.load(tmp_path / "c.fmz")
    assert list(loaded.classes_) == ["no", "yes"]
    assert list(loaded.feature_names_in_) == list("abcd")
    np.testing.assert_array_equal(loaded.predict_proba(df), clf.predict_proba(df))


def test_unfitted_model_cannot_be_saved(tmp_path):
    with pytest.raises(NotFittedError):
        FMRegressor().save(tmp_path / "x.fmz")


def test_failed_save_leaves_old_file_and_no_temp(saved, monkeypatch):
    m, path = saved
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", boom)
    with pytest.raises(OSError, match="disk full"):
        m.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_truncated_file(saved):
    _, path = saved
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFileError):
            fmlearn.load(path)


def test_corrupted_array_bytes(saved):
    _, path = saved
    data = bytearray(path.read_bytes())
    start = data.find(b"params/V.npy")
    data[start + 200] ^= 0xFF  # inside the stored array: the zip CRC must catch it
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="damaged|unreadable"):
        fmlearn.load(path)


def test_foreign_files(tmp_path):
    junk = tmp_path / "junk.fmz"
    junk.write_bytes(os.urandom(500))
    with pytest.raises(ModelFileError, match="not an fmlearn model"):
        fmlearn.load(junk)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.arange(3))
    with pytest.raises(ModelFileError, match="no metadata.json"):
        fmlearn.load(other)
    with pytest.raises(FileNotFoundError):
        fmlearn.load(tmp_path / "missing.fmz")


def test_newer_format_version(saved):
    _, path = saved
    rewrite(path, lambda m: m.update(format_version=99, fmlearn_version="9.0"))
    with pytest.raises(ModelFileError, match="Upgrade fmlearn"):
        fmlearn.load(path)


def test_unknown_class_is_never_imported(saved):
    _, path = saved
    rewrite(path, lambda m: m.update({"class": "os.system"}))
    with pytest.raises(ModelFileError, match="unknown model class"):
        fmlearn.load(path)


def test_missing_array_and_shape_mismatch(saved, tmp_path):
    _, path = saved
    copy = tmp_path / "copy.fmz"
    copy.write_bytes(path.read_bytes())
    rewrite(copy, drop=["params/w.npy"])
    with pytest.raises(ModelFileError, match="missing"):
        fmlearn.load(copy)
    rewrite(path, lambda m: m["arrays"]["params/V"].update(shape=[99, 3]))
    with pytest.raises(ModelFileError, match="shape"):
        fmlearn.load(path)


def test_pickled_array_is_refused(saved):
    _, path = saved
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    rewrite(
        path,
        lambda m: m["arrays"].update({"params/w": {"shape": [1], "dtype": "|O"}}),
        extra={"params/w.npy": buf.getvalue()},
    )
    with pytest.raises(ModelFileError, match="unreadable"):
        fmlearn.load(path)


def test_saved_file_follows_umask(saved):
    _, path = saved
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
