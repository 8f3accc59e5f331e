"""Out-of-core training of the deep (torch) models: fit(path), eval_set files, caches of
chunks and tables, streaming partial_fit with exact resume, the CLI's --on-disk."""

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

import fmlearn  # noqa: E402
from fmlearn.data.cache import (  # noqa: E402
    CachedSource,
    TextFiles,
    cache_chunks,
    open_cache,
)
from fmlearn.data.textio import read_ffm, read_libfm, write_ffm, write_libfm  # noqa: E402
from fmlearn.deep import (  # noqa: E402
    DeepFMClassifier,
    DeepFMRegressor,
    TorchFFMClassifier,
    TorchFMRegressor,
)

TINY = dict(n_factors=4, random_state=0, early_stopping=False, tol=None)
MLP = dict(TINY, hidden_layer_sizes=(8,))


def _rows(n=1500, per=20, n_fields=4, seed=0, binary=True):
    """One-hot rows over ``n_fields`` fields of ``per`` columns each, a planted signal."""
    rng = np.random.default_rng(seed)
    cols = rng.integers(0, per, (n, n_fields)) + np.arange(n_fields) * per
    X = sp.csr_matrix((np.ones(n * n_fields, np.float32), cols.ravel(),
                       np.arange(0, n * n_fields + 1, n_fields)), shape=(n, n_fields * per))
    y = X @ rng.normal(size=n_fields * per) + 0.3 * rng.normal(size=n)
    if binary:
        y = (y > np.median(y)).astype(np.float64)
    return X, y, np.arange(n_fields * per, dtype=np.int32) // per


def _files(path, tmp_path, **kw):
    return TextFiles(path, cache_dir=tmp_path / "cache", **kw)


def test_one_block_file_trains_the_same_model_as_memory(tmp_path):
    X, y, fields = _rows()
    write_ffm(tmp_path / "a.ffm", X, y, fields)
    write_libfm(tmp_path / "a.libfm", X, y)
    Xr, yr, fr = read_ffm(tmp_path / "a.ffm")
    # Fields from the FFM file (cache manifest), as FFM takes them.
    for cls in (DeepFMClassifier, TorchFFMClassifier):
        kw = MLP if cls is DeepFMClassifier else TINY
        mem = cls(max_iter=2, fields=fr, **kw).fit(Xr, yr)
        disk = cls(max_iter=2, **kw).fit(_files(tmp_path / "a.ffm", tmp_path))
        np.testing.assert_array_equal(disk.fields_, mem.fields_)
        assert disk.history_["train_logloss"] == mem.history_["train_logloss"]
        np.testing.assert_array_equal(disk.predict_proba(Xr), mem.predict_proba(Xr))
        assert list(disk.classes_) == [0.0, 1.0] and disk.n_features_in_ == X.shape[1]
    # A libFM file (a path, no fields in it): fields= as in memory.
    Xl, yl = read_libfm(tmp_path / "a.libfm")
    mem = TorchFMRegressor(max_iter=2, fields=fields, **TINY).fit(Xl, yl)
    disk = TorchFMRegressor(max_iter=2, fields=fields, **TINY).fit(
        _files(tmp_path / "a.libfm", tmp_path))
    np.testing.assert_array_equal(disk.predict(Xl), mem.predict(Xl))
    Xw, yw, _ = _rows(n=50, per=80)  # 320 columns and no fields: too wide to guess
    write_libfm(tmp_path / "wide.libfm", Xw, yw)
    with pytest.raises(ValueError, match="pass fields="):
        TorchFMRegressor(**TINY).fit(_files(tmp_path / "wide.libfm", tmp_path))


def test_many_blocks_eval_file_and_early_stopping(tmp_path):
    X, y, fields = _rows(n=4000, seed=1)
    write_ffm(tmp_path / "tr.ffm", X[:3200], y[:3200], fields)
    write_ffm(tmp_path / "va.ffm", X[3200:], y[3200:], fields)
    files = _files(tmp_path / "tr.ffm", tmp_path, block_mb=0.01)
    assert open_cache(files).n_blocks >= 4
    kw = dict(MLP, max_iter=15, learning_rate=0.01)
    disk = DeepFMClassifier(**{**kw, "early_stopping": True, "n_iter_no_change": 2}).fit(
        files, eval_set=str(tmp_path / "va.ffm"))
    assert len(disk.history_["valid_logloss"]) == disk.n_iter_
    best = int(np.argmin(disk.history_["valid_logloss"]))
    assert disk.best_iteration_ == best + 1
    Xv, yv, _ = read_ffm(tmp_path / "va.ffm", n_features=X.shape[1])
    from fmlearn.metrics import logloss

    # The restored epoch's parameters score what history_ recorded for it.
    assert logloss(yv, disk.predict_proba(Xv)[:, 1]) == pytest.approx(
        disk.history_["valid_logloss"][best], rel=1e-5)
    Xt, yt, ft = read_ffm(tmp_path / "tr.ffm")
    mem = DeepFMClassifier(fields=ft, **{**kw, "max_iter": disk.n_iter_}).fit(Xt, yt)
    # Blocks reshuffled per epoch: not the same numbers, the same quality.
    assert disk.score(Xv, yv) >= mem.score(Xv, yv) - 0.05
    with pytest.raises(ValueError, match="eval_set=path"):
        DeepFMClassifier(early_stopping=True, **{k: v for k, v in MLP.items()
                                                 if k != "early_stopping"}).fit(files)
    with pytest.raises(ValueError, match="labels from the file"):
        DeepFMClassifier(**MLP).fit(files, yt)


def test_chunks_and_a_hashing_table_train_deep_models(tmp_path):
    import pandas as pd

    from fmlearn.data.cache import TableFiles
    from fmlearn.data.encoder import FMEncoder

    # An iterator of (X, y) chunks, cached then trained.
    X, y, fields = _rows(n=1200, binary=False)
    cache = cache_chunks(((X[i:i + 300], y[i:i + 300]) for i in range(0, 1200, 300)),
                         tmp_path / "chunks")
    model = TorchFMRegressor(max_iter=5, fields=fields, learning_rate=0.05, batch_size=64,
                             **TINY).fit(cache)
    assert model.n_iter_ == 5 and model.score(X, y) > 0.5
    # A CachedSource trains through its cache, as the DiskCache itself.
    again = TorchFMRegressor(max_iter=5, fields=fields, learning_rate=0.05, batch_size=64,
                             **TINY).fit(CachedSource(cache))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    # CSV through a hashing encoder: fields from the encoder's chunks.
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"user": rng.integers(0, 50, 2000), "ad": rng.choice(list("abcdef"), 2000)})
    df["click"] = ((df.user % 3 == 0) ^ (df.ad < "c")).astype(int)
    df.to_csv(tmp_path / "t.csv", index=False)
    enc = FMEncoder(categorical=["user", "ad"], hash_bits=8)
    clf = DeepFMClassifier(max_iter=6, learning_rate=0.02, batch_size=64, **MLP).fit(
        TableFiles(tmp_path / "t.csv", target="click", encoder=enc, chunk_rows=500,
                   cache_dir=tmp_path / "c"))
    assert clf.n_fields_ == 2
    assert clf.score(enc.fit_transform(df[["user", "ad"]]), df.click) > 0.6


@pytest.mark.parametrize("optimizer", ["adam", "adagrad"])
def test_partial_fit_chunks_make_one_epoch_and_resume_exactly(tmp_path, optimizer):
    X, y, fields = _rows(n=1500, binary=False)
    kw = dict(MLP, fields=fields, optimizer=optimizer)
    m = DeepFMRegressor(**kw)
    m.partial_fit(X[:500], y[:500], end_epoch=False)
    assert m.history_ == {} and m._open_epoch[1] == 500.0
    m.save(tmp_path / "m.fmz")
    loaded = fmlearn.load(tmp_path / "m.fmz")
    fresh_state = fmlearn.load(tmp_path / "m.fmz")
    fresh_state._solver_state = None  # as files before the optimizer state was kept
    for est in (m, loaded, fresh_state):
        est.partial_fit(X[500:1000], y[500:1000], end_epoch=False)
        est.partial_fit(X[1000:], y[1000:])
    np.testing.assert_array_equal(m.predict(X), loaded.predict(X))
    assert m.history_["epoch"] == [1] and loaded.history_["train_rmse"] == m.history_["train_rmse"]
    assert m._open_epoch is None
    # Without the optimizer's state the continuation differs: the file's state is what counts.
    assert not np.array_equal(fresh_state.predict(X), m.predict(X))
    # The epoch's metric covers all three chunks.
    one = DeepFMRegressor(**kw)
    for a, b in ((0, 500), (500, 1000)):
        one.partial_fit(X[a:b], y[a:b], end_epoch=False)
    assert one._open_epoch[1] == 1000.0
    # Chunks may be files too.
    write_libfm(tmp_path / "c.libfm", X[1000:], y[1000:])
    one.partial_fit(_files(tmp_path / "c.libfm", tmp_path), None)
    assert one.history_["epoch"] == [1]


def test_cli_train_deepfm_on_disk(tmp_path, capsys):
    from fmlearn.cli import main

    # A libFM file wider than 256 columns: fields inferred by position, block by block.
    X, y, _ = _rows(n=1200, per=80)
    write_libfm(tmp_path / "tr.libfm", X[:1000], y[:1000])
    write_libfm(tmp_path / "va.libfm", X[1000:], y[1000:])
    model = tmp_path / "m.fmz"
    rc = main(["train", "--train", str(tmp_path / "tr.libfm"), "--valid",
               str(tmp_path / "va.libfm"), "--model", "deepfm", "--task", "classification",
               "--on-disk", "--cache-dir", str(tmp_path / "C"), "--block-mb", "0.01",
               "--max-iter", "2", "--hidden-layer-sizes", "8", "--model-out", str(model)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "4 fields inferred" in out.err and "caching tr.libfm: 1,000 rows" in out.err
    assert "cached and trained 1,000 rows" in out.out and "valid: logloss=" in out.out
    loaded = fmlearn.load(model)
    assert type(loaded).__name__ == "DeepFMClassifier" and loaded.n_fields_ == 4


def test_streaming_pattern_of_the_docs_trains_a_deep_model_online():
    """docs/out-of-core.md's streaming loop (tests.test_out_of_core.run_streaming_pattern)
    with a deep model."""
    from tests.test_out_of_core import run_streaming_pattern

    rolling = run_streaming_pattern(DeepFMClassifier(learning_rate=0.02, batch_size=64, **MLP))
    assert rolling[-1] < 0.5 * rolling[0]  # it learns the interaction online
