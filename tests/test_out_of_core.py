"""Out-of-core training: the block cache, fit(path), streaming partial_fit."""

import json
import os

import numpy as np
import pytest
import scipy.sparse as sp

import fmlearn
from fmlearn import FFMClassifier, FMClassifier, FMRegressor, FwFMClassifier
from fmlearn.data.cache import (
    CachedSource,
    CacheError,
    DiskCache,
    TextFiles,
    cache_chunks,
    open_cache,
)
from fmlearn.data.textio import read_ffm, read_libfm, write_ffm, write_libfm


def _data(n=1500, d=80, seed=0, binary=False, fields=None):
    rng = np.random.default_rng(seed)
    n_fields = 4
    if fields is None:
        fields = np.arange(d) % n_fields
    rows = np.repeat(np.arange(n), n_fields)
    cols = np.concatenate([rng.choice(np.flatnonzero(fields == f), n) for f in range(n_fields)])
    cols = cols.reshape(n_fields, n).T.reshape(-1)
    X = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n, d))
    w = rng.normal(size=d)
    y = X @ w + 0.1 * rng.normal(size=n)
    if binary:
        y = (y > np.median(y)).astype(np.float64)
    return X, y, fields


@pytest.fixture
def libfm_file(tmp_path):
    X, y, _ = _data()
    path = tmp_path / "train.libfm"
    write_libfm(path, X, y)
    return path


def _files(path, tmp_path, **kw):
    return TextFiles(path, cache_dir=tmp_path / "cache", **kw)


@pytest.mark.parametrize("solver", ["sgd", "adagrad", "ftrl"])
def test_one_block_cache_trains_the_same_model_as_memory(libfm_file, tmp_path, solver):
    X, y = read_libfm(libfm_file)
    kw = dict(n_factors=4, max_iter=3, solver=solver, random_state=0, n_jobs=1, tol=None,
              early_stopping=False)
    mem = FMRegressor(**kw).fit(X, y)
    disk = FMRegressor(**kw).fit(_files(libfm_file, tmp_path))
    np.testing.assert_array_equal(disk.V_, mem.V_)
    np.testing.assert_array_equal(disk.w_, mem.w_)
    assert disk.w0_ == mem.w0_
    assert disk.history_["train_rmse"] == mem.history_["train_rmse"]
    np.testing.assert_array_equal(disk.predict(X), mem.predict(X))


def test_ffm_and_fwfm_from_an_ffm_file_match_memory(tmp_path):
    X, y, fields = _data(binary=True)
    path = tmp_path / "train.ffm"
    write_ffm(path, X, y, fields)
    Xr, yr, fr = read_ffm(path)
    for cls in (FFMClassifier, FwFMClassifier):
        kw = dict(n_factors=4, max_iter=2, random_state=0, tol=None, early_stopping=False)
        mem = cls(fields=fr, **kw).fit(Xr, yr)
        disk = cls(**kw).fit(_files(path, tmp_path))
        np.testing.assert_array_equal(disk.fields_, mem.fields_)
        np.testing.assert_array_equal(disk.V_, mem.V_)
        np.testing.assert_array_equal(disk.predict_proba(Xr), mem.predict_proba(Xr))
        assert list(disk.classes_) == [0.0, 1.0]


def test_many_blocks_shuffle_blocks_each_epoch_and_learn_as_well(tmp_path):
    X, y, _ = _data(n=4000, seed=1)
    path = tmp_path / "train.libfm"
    write_libfm(path, X, y)
    files = _files(path, tmp_path, block_mb=0.01)
    cache = open_cache(files)
    assert cache.n_blocks >= 8
    src = CachedSource(cache)
    rng = np.random.default_rng(0)
    orders = [src.block_order(rng) for _ in range(3)]
    assert all(sorted(o) == list(range(cache.n_blocks)) for o in orders)
    assert not np.array_equal(orders[0], orders[1])
    seen = np.concatenate([b.y for b in src.batches(np.random.default_rng(5))])
    np.testing.assert_array_equal(np.sort(seen), np.sort(read_libfm(path)[1]))

    kw = dict(n_factors=4, max_iter=8, random_state=0, tol=None, early_stopping=False)
    Xr, yr = read_libfm(path)
    mem = FMRegressor(**kw).fit(Xr, yr)
    disk = FMRegressor(**kw).fit(files)
    rmse = lambda m: float(np.sqrt(np.mean((m.predict(Xr) - yr) ** 2)))  # noqa: E731
    assert rmse(disk) <= 1.1 * rmse(mem)
    # The initial bias from the label summary: the mean of y.
    assert abs(disk.history_["train_rmse"][0] - mem.history_["train_rmse"][0]) < 0.05


def test_eval_set_file_early_stopping_and_classes(tmp_path):
    X, y, _ = _data(n=3000, binary=True)
    y = np.where(y > 0, 1.0, -1.0)
    write_libfm(tmp_path / "tr.libfm", X[:2500], y[:2500])
    write_libfm(tmp_path / "va.libfm", X[2500:], y[2500:])
    clf = FMClassifier(n_factors=4, max_iter=30, early_stopping=True, random_state=0)
    clf.fit(_files(tmp_path / "tr.libfm", tmp_path, block_mb=0.02),
            eval_set=str(tmp_path / "va.libfm"))
    assert list(clf.classes_) == [-1.0, 1.0]
    assert len(clf.history_["valid_logloss"]) == clf.n_iter_
    Xv, yv = read_libfm(tmp_path / "va.libfm", n_features=X.shape[1])
    assert (clf.predict(Xv) == yv).mean() > 0.75
    with pytest.raises(ValueError, match="eval_set=path"):
        FMClassifier(early_stopping=True).fit(_files(tmp_path / "tr.libfm", tmp_path))


def test_coordinate_solvers_refuse_streams_clearly(libfm_file, tmp_path):
    with pytest.raises(ValueError, match="use solver='sgd', 'adagrad' or 'ftrl'"):
        FMRegressor(solver="als", max_iter=1).fit(_files(libfm_file, tmp_path))
    assert not (tmp_path / "cache").exists()  # refused before the first pass


def test_a_changed_source_rebuilds_the_cache(libfm_file, tmp_path):
    files = _files(libfm_file, tmp_path)
    why = []
    first = open_cache(files, rebuilt=why)
    assert why == ["no cache entry yet"]
    why.clear()
    open_cache(files, rebuilt=why)
    assert why == []  # reused
    X, y, _ = _data(n=1200, seed=3)
    write_libfm(libfm_file, X, y)
    why.clear()
    second = open_cache(files, rebuilt=why)
    assert why == ["its source files changed"]
    assert first.folder == second.folder and second.n_rows == 1200


def test_same_size_and_mtime_but_other_content_is_detected(libfm_file, tmp_path):
    files = _files(libfm_file, tmp_path)
    open_cache(files)
    st = os.stat(libfm_file)
    raw = bytearray(libfm_file.read_bytes())
    raw[0:1] = b"9" if raw[0:1] != b"9" else b"8"  # first label's first digit
    libfm_file.write_bytes(bytes(raw))
    os.utime(libfm_file, ns=(st.st_atime_ns, st.st_mtime_ns))
    why = []
    open_cache(files, rebuilt=why)
    assert why == ["its source files changed"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "manifest", "remove"])
def test_a_damaged_cache_is_a_clear_error_and_is_rebuilt(libfm_file, tmp_path, damage):
    files = _files(libfm_file, tmp_path, block_mb=0.02)
    cache = open_cache(files)
    target = cache.folder / "b00001.indices.npy"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:-100])
    elif damage == "flip":
        raw = bytearray(target.read_bytes())
        raw[-7] ^= 0x01
        target.write_bytes(bytes(raw))
    elif damage == "manifest":
        (cache.folder / "manifest.json").write_text('{"format": "fmlearn-cache", "vers')
    else:
        target.unlink()
    with pytest.raises(CacheError, match=str(cache.folder)) as err:
        src = CachedSource(DiskCache(cache.folder), verify=True)
        for _ in src.batches(np.random.default_rng(0)):
            pass
    if damage == "flip":  # sizes intact: the CRC tells
        assert "CRC mismatch" in str(err.value)
    why = []
    open_cache(files, rebuilt=why)
    assert len(why) == 1 and "cache" in why[0]
    assert open_cache(files).n_rows == 1500
    FMRegressor(max_iter=1).fit(files)  # rebuilt: trains


def test_text_errors_name_the_line_of_the_whole_file(tmp_path):
    X, y, _ = _data(n=2000)
    path = tmp_path / "bad.libfm"
    write_libfm(path, X, y)
    lines = path.read_bytes().split(b"\n")
    lines[1500] = b"1 3:abc"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(fmlearn.exceptions.DataFormatError, match=r"bad.libfm:1501:"):
        FMRegressor().fit(_files(path, tmp_path, block_mb=0.01))


def test_gzip_and_lists_of_files(tmp_path):
    import gzip

    X, y, _ = _data(n=1000)
    write_libfm(tmp_path / "a.libfm", X[:600], y[:600])
    write_libfm(tmp_path / "b.libfm", X[600:], y[600:])
    with open(tmp_path / "b.libfm", "rb") as f, gzip.open(tmp_path / "b.libfm.gz", "wb") as g:
        g.write(f.read())
    files = _files([tmp_path / "a.libfm", tmp_path / "b.libfm.gz"], tmp_path, block_mb=0.02)
    cache = open_cache(files)
    assert cache.n_rows == 1000 and cache.n_features <= 80
    counts = cache.column_counts()
    np.testing.assert_array_equal(counts, np.bincount(X.indices, minlength=cache.n_features))


def test_cache_size_bound(libfm_file, tmp_path):
    with pytest.raises(ValueError, match="max_cache_mb"):
        open_cache(_files(libfm_file, tmp_path, max_cache_mb=0.01))
    # Older entries are evicted to make room for a new one.
    other = tmp_path / "other.libfm"
    X, y, _ = _data(n=1500, seed=2)
    write_libfm(other, X, y)
    a = open_cache(_files(libfm_file, tmp_path))
    bound = 1.5 * a.nbytes / 2**20
    b = open_cache(_files(other, tmp_path, max_cache_mb=bound))
    assert not a.folder.exists() and b.folder.exists()


def test_chunks_of_arrays_cache_and_train(tmp_path):
    X, y, _ = _data(n=2000)
    chunks = [(X[i:i + 500], y[i:i + 500]) for i in range(0, 2000, 500)]
    cache = cache_chunks(chunks, tmp_path / "chunks")
    assert cache.n_blocks == 4 and cache.n_rows == 2000
    src = CachedSource(cache)
    total = sum(b.X.n_rows for b in src.batches(np.random.default_rng(0)))
    assert total == 2000 and src.weight_sum == 2000


def test_partial_fit_chunks_make_one_epoch_and_resume_exactly(tmp_path):
    X, y, _ = _data(n=2000)
    kw = dict(n_factors=4, random_state=0)
    m = FMRegressor(**kw)
    m.partial_fit(X[:1000], y[:1000], end_epoch=False)
    assert m.history_ == {} or m.history_.get("epoch", []) == []
    m.save(tmp_path / "m.fmz")
    loaded = fmlearn.load(tmp_path / "m.fmz")
    for est in (m, loaded):
        est.partial_fit(X[1000:1500], y[1000:1500], end_epoch=False)
        est.partial_fit(X[1500:], y[1500:])
    np.testing.assert_array_equal(m.V_, loaded.V_)
    assert m.history_["epoch"] == [1] and loaded.history_["epoch"] == [1]
    assert m.history_["train_rmse"] == loaded.history_["train_rmse"]
    # The epoch's metric covers all three chunks: the weighted RMSE of the chunk losses.
    one = FMRegressor(**kw)
    one.partial_fit(X[:1000], y[:1000], end_epoch=False)
    loss_a = one._open_epoch[0]
    one.partial_fit(X[1000:1500], y[1000:1500], end_epoch=False)
    assert one._open_epoch[1] == 1500.0 and one._open_epoch[0] > loss_a
    one.partial_fit(X[1500:], y[1500:])
    assert one._open_epoch is None
    # Default partial_fit is still one epoch per call.
    two = FMRegressor(**kw)
    two.partial_fit(X, y)
    two.partial_fit(X, y)
    assert two.history_["epoch"] == [1, 2]


def test_manifest_is_plain_json(libfm_file, tmp_path):
    cache = open_cache(_files(libfm_file, tmp_path))
    m = json.loads((cache.folder / "manifest.json").read_text())
    assert m["n_rows"] == 1500 and m["sources"][0]["size"] == os.path.getsize(libfm_file)
    assert m["labels"] is None or len(m["labels"]["values"]) <= 1024


def test_cli_train_on_disk(tmp_path, capsys):
    from fmlearn.cli import main

    X, y, fields = _data(n=2000, binary=True)
    write_ffm(tmp_path / "tr.ffm", X[:1600], y[:1600], fields)
    write_ffm(tmp_path / "va.ffm", X[1600:], y[1600:], fields)
    model = tmp_path / "m.fmz"
    rc = main(["train", "--train", str(tmp_path / "tr.ffm"), "--valid", str(tmp_path / "va.ffm"),
               "--format", "ffm", "--model", "ffm", "--task", "classification", "--on-disk",
               "--cache-dir", str(tmp_path / "C"), "--block-mb", "0.02", "--max-iter", "2",
               "--model-out", str(model)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "caching tr.ffm: 1,600 rows" in out.err and "MB (done)" in out.err
    assert "caching va.ffm: 400 rows" in out.err
    assert "cached and trained 1,600 rows" in out.out and "valid: logloss=" in out.out
    assert fmlearn.load(model).n_fields_ == 4
    rc = main(["train", "--train", str(tmp_path / "tr.ffm"), "--format", "ffm", "--on-disk",
               "--solver", "als", "--cache-dir", str(tmp_path / "C2"), "--quiet"])
    assert rc == 2 and "use solver='sgd', 'adagrad' or 'ftrl'" in capsys.readouterr().err
    assert not (tmp_path / "C2").exists()


def test_hash_bits_on_disk_matches_hashing_in_memory(tmp_path):
    from sklearn.utils import murmurhash3_32

    from fmlearn.data.hashing import hash_columns

    X, y, _ = _data(n=800)
    write_libfm(tmp_path / "a.libfm", X, y)
    cache = open_cache(_files(tmp_path / "a.libfm", tmp_path, hash_bits=6))
    H, _ = hash_columns(X, 6)
    assert cache.n_features <= 64
    batch = next(CachedSource(cache).batches(None))
    np.testing.assert_array_equal(batch.X.indices, H.indices)
    # Column j goes to murmur3(int32 j) mod 64, as scikit-learn's murmurhash3_32 of an int.
    j = int(X.indices[0])
    want = murmurhash3_32(j, 0, positive=True) % 64
    assert want in H[0].indices.tolist()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_csv_and_parquet_through_a_hashing_encoder(tmp_path, suffix):
    import pandas as pd

    from fmlearn.data.cache import TableFiles
    from fmlearn.data.encoder import FMEncoder

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"user": rng.integers(0, 300, 3000), "ad": rng.choice(list("abcdefg"), 3000),
                       "price": rng.random(3000)})
    df["click"] = ((df.user % 3 == 0) ^ (df.ad < "d")).astype(int)
    path = tmp_path / f"t{suffix}"
    df.to_csv(path, index=False) if suffix == ".csv" else df.to_parquet(path)
    enc = FMEncoder(categorical=["user", "ad"], numeric=["price"], hash_bits=8)
    kw = dict(n_factors=4, max_iter=3, random_state=0, tol=None, early_stopping=False)
    whole = TableFiles(path, target="click", encoder=enc, chunk_rows=5000,
                       cache_dir=tmp_path / "c")
    disk = FFMClassifier(**kw).fit(whole)
    X = enc.fit_transform(df.drop(columns=["click"]))
    mem = FFMClassifier(**kw).fit(X, df.click)
    np.testing.assert_array_equal(disk.V_, mem.V_)
    assert disk.n_fields_ == 3
    chunked = TableFiles(path, target="click", encoder=enc, chunk_rows=700,
                         cache_dir=tmp_path / "c")
    cache = open_cache(chunked)
    assert cache.n_blocks == 5 and cache.n_rows == 3000
    assert FFMClassifier(**kw).fit(chunked).score(X, df.click) > 0.6
    with pytest.raises(ValueError, match="hash_bits"):
        TableFiles(path, target="click", encoder=FMEncoder())


@pytest.mark.parametrize("cls_name", ["FMClassifier", "FMOrdinalRegressor"])
def test_multiclass_and_ordinal_from_a_file_match_memory(tmp_path, cls_name):
    X, _, _ = _data(n=1200)
    y = np.random.default_rng(0).integers(0, 3, 1200).astype(float)
    write_libfm(tmp_path / "mc.libfm", X, y)
    cls = getattr(fmlearn, cls_name)
    kw = dict(n_factors=4, max_iter=2, random_state=0, tol=None, early_stopping=False)
    disk = cls(**kw).fit(_files(tmp_path / "mc.libfm", tmp_path))
    mem = cls(**kw).fit(*read_libfm(tmp_path / "mc.libfm"))
    np.testing.assert_array_equal(disk.V_, mem.V_)
    np.testing.assert_array_equal(disk.classes_, [0.0, 1.0, 2.0])
    # Streaming chunks of one epoch (end_epoch=False) for both classes too.
    est = cls(**kw)
    est.partial_fit(X[:600], y[:600], classes=[0.0, 1.0, 2.0], end_epoch=False)
    est.partial_fit(X[600:], y[600:])
    assert est.history_["epoch"] == [1] and est._open_epoch is None


@pytest.mark.parametrize("solver", ["sgd", "adagrad", "ftrl"])
def test_hofm_from_a_file_matches_memory(libfm_file, tmp_path, solver):
    from fmlearn import HOFMRegressor

    X, y = read_libfm(libfm_file)
    kw = dict(n_factors=3, degree=3, max_iter=2, solver=solver, random_state=0, n_jobs=1,
              tol=None, early_stopping=False)
    mem = HOFMRegressor(**kw).fit(X, y)
    disk = HOFMRegressor(**kw).fit(_files(libfm_file, tmp_path))
    np.testing.assert_array_equal(disk.P_, mem.P_)
    assert disk.history_["train_rmse"] == mem.history_["train_rmse"]


def test_hofm_classifier_many_blocks_and_cli(tmp_path, capsys):
    from fmlearn import HOFMClassifier
    from fmlearn.cli import main

    X, y, _ = _data(n=3000, binary=True)
    write_libfm(tmp_path / "tr.libfm", X[:2500], y[:2500])
    write_libfm(tmp_path / "va.libfm", X[2500:], y[2500:])
    kw = dict(n_factors=3, degree=3, max_iter=6, random_state=0, tol=None, early_stopping=False)
    disk = HOFMClassifier(**kw).fit(_files(tmp_path / "tr.libfm", tmp_path, block_mb=0.02),
                                    eval_set=str(tmp_path / "va.libfm"))
    assert open_cache(_files(tmp_path / "tr.libfm", tmp_path, block_mb=0.02)).n_blocks > 2
    assert len(disk.history_["valid_logloss"]) == 6
    Xv, yv = read_libfm(tmp_path / "va.libfm", n_features=X.shape[1])
    mem = HOFMClassifier(**kw).fit(X[:2500], y[:2500])
    assert disk.score(Xv, yv) >= mem.score(Xv, yv) - 0.05
    rc = main(["train", "--train", str(tmp_path / "tr.libfm"), "--model", "hofm", "--task",
               "classification", "--on-disk", "--cache-dir", str(tmp_path / "C"),
               "--max-iter", "2", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert "cached and trained 2,500 rows" in capsys.readouterr().out


def test_ranker_reads_pairs_files_and_refuses_rows_clearly(tmp_path):
    from fmlearn import FMRanker
    from fmlearn.ranking import read_pairs

    rng = np.random.default_rng(0)
    q = rng.integers(0, 40, 1500)
    c = (q * 7 + rng.integers(0, 4, 1500)) % 50
    w = rng.random(1500)
    np.savetxt(tmp_path / "p.txt", np.column_stack([q, c]), fmt="%d")
    np.savetxt(tmp_path / "v.txt", np.column_stack([q, (q * 7 + 4) % 50]), fmt="%d")
    with open(tmp_path / "pw.csv", "w") as f:
        f.write("# user,item,weight\n")
        f.writelines(f"{a},{b},{float(x)!r}\n" for a, b, x in zip(q, c, w, strict=True))
    pairs, weights = read_pairs(tmp_path / "pw.csv")
    np.testing.assert_array_equal(pairs, np.column_stack([q, c]))
    np.testing.assert_array_equal(weights, w)
    kw = dict(n_factors=4, max_iter=2, random_state=0, early_stopping=False, tol=None)
    ids = sp.eye(40, format="csr"), sp.eye(50, format="csr")
    for path, sw in (("p.txt", None), ("pw.csv", w)):
        mem = FMRanker(**kw).fit(*ids, np.column_stack([q, c]), sample_weight=sw)
        disk = FMRanker(**kw).fit(None, None, str(tmp_path / path),
                                  eval_set=str(tmp_path / "v.txt"))
        np.testing.assert_array_equal(disk.V_, mem.V_)
        assert len(disk.history_["valid_ndcg@10"]) == 2
    # Query and candidate features as libFM files.
    write_libfm(tmp_path / "q.libfm", ids[0], np.zeros(40))
    disk = FMRanker(**kw).fit(str(tmp_path / "q.libfm"), None, str(tmp_path / "p.txt"))
    assert disk.n_query_features_ == 40
    (tmp_path / "bad.txt").write_text("0 1\n1 -2\n")
    with pytest.raises(ValueError, match="data line 2"):
        FMRanker(**kw).fit(None, None, str(tmp_path / "bad.txt"))
    with pytest.raises(ValueError, match=r"no fit\(path\).*FMClassifier"):
        FMRanker(**kw).fit(str(tmp_path / "q.libfm"))


def run_streaming_pattern(model):
    """docs/out-of-core.md's loop as written there: a hashing encoder, progressive validation
    over an iterator of DataFrames, partial_fit chunks closing an epoch every 5. Returns the
    rolling log loss before each chunk's training (chunks 1..23)."""
    import collections

    import pandas as pd

    from fmlearn.data.encoder import FMEncoder
    from fmlearn.metrics import logloss

    def stream_of_dataframes(n_chunks=24, rows=400):
        rng = np.random.default_rng(0)
        for _ in range(n_chunks):
            df = pd.DataFrame({"user": rng.integers(0, 30, rows),
                               "ad": rng.choice(list("abcdef"), rows)})
            df["click"] = ((df.user % 3 == 0) ^ (df.ad < "c")).astype(int)
            yield df

    enc = FMEncoder(categorical=["user", "ad"], hash_bits=8)
    window, rolling = collections.deque(maxlen=4), []
    for i, chunk in enumerate(stream_of_dataframes()):
        X, y = enc.fit_transform(chunk.drop(columns="click")), chunk["click"].to_numpy()
        if i:  # score before training
            window.append(logloss(y, model.predict_proba(X)[:, 1]))
            rolling.append(np.mean(window))
        model.partial_fit(X, y, classes=[0, 1], end_epoch=(i + 1) % 5 == 0)
    assert model.history_["epoch"] == [1, 2, 3, 4] and model._open_epoch is not None
    return rolling


def test_streaming_pattern_of_the_docs_with_ftrl():
    """The docs' streaming loop with FTRL."""
    rolling = run_streaming_pattern(FMClassifier(solver="ftrl", random_state=0))
    assert rolling[-1] < 0.8 * rolling[0]
