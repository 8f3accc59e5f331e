"""fmlearn.dask on a LocalCluster (in-process workers, one thread each)."""

import copy
import pickle

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("distributed")
import dask.array as da  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

from fmlearn import FFMClassifier, FMClassifier, FMRegressor, FwFMClassifier  # noqa: E402
from fmlearn.dask import (  # noqa: E402
    DaskFFMClassifier,
    DaskFMClassifier,
    DaskFMRegressor,
    DaskFwFMClassifier,
    DaskWorkerLostError,
    _apply_round,
    _exchange_plan,
    _set_replica,
    _Shard,
    _train_round,
    auto_rounds,
)
from fmlearn.data.design import as_kernel_csr  # noqa: E402
from fmlearn.data.synthetic import make_fm_regression as _make  # noqa: E402
from fmlearn.optim import AdaGradSolver  # noqa: E402


def make_fm_regression(*args, **kwargs):
    return _make(*args, **kwargs)[:2]


def _cluster(n_workers):
    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=False,
                        dashboard_address=None)


@pytest.fixture(scope="module")
def one():
    with _cluster(1) as cluster, Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def two():
    with _cluster(2) as cluster, Client(cluster) as client:
        yield client


def _onehot(n=3000, sizes=(40, 25, 15), seed=0):
    """One-hot fields (the shape of recommender data) and a linear + noise target."""
    rng = np.random.default_rng(seed)
    cols, off = [], 0
    for s in sizes:
        cols.append(rng.integers(0, s, n) + off)
        off += s
    idx = np.stack(cols, 1).ravel().astype(np.int32)
    X = sp.csr_matrix((np.ones(idx.size, np.float32), idx,
                       np.arange(0, idx.size + 1, len(sizes))), shape=(n, off))
    y = X @ rng.normal(size=off) + 0.3 * rng.normal(size=n)
    return X, y


def _dask(X, y, chunk):
    return (da.from_array(X, chunks=(chunk, X.shape[1]), asarray=False),
            da.from_array(np.asarray(y), chunks=chunk))


PARAMS = dict(n_factors=4, max_iter=4, random_state=0, n_jobs=1, early_stopping=False)


@pytest.mark.parametrize("solver", ["adagrad", "ftrl", "als"])
def test_one_worker_is_the_local_fit(one, solver):
    # ALS: one-hot fields, whose features share no row within a field (one round trip per
    # field and factor; random sparse rows would need one per feature).
    X, y = _onehot(2000) if solver == "als" else make_fm_regression(2000, 60, random_state=0)
    local = FMRegressor(solver=solver, **PARAMS).fit(X, y)
    # Three partitions on one worker: stacked in order, they are X.
    est = DaskFMRegressor(solver=solver, **PARAMS).fit(*_dask(X, y, 700))
    if solver == "als":
        assert est._local.n_iter_ == 4
    assert np.array_equal(est.V_, local.V_)
    assert np.array_equal(est.w_, local.w_)
    assert est.w0_ == local.w0_
    assert est.history_["train_rmse"] == local.history_["train_rmse"]
    model = est.to_local()
    assert type(model) is FMRegressor
    assert np.array_equal(model.predict(X), local.predict(X))


@pytest.mark.parametrize("order", ["feature-major", "factor-major"])
def test_als_one_worker_is_the_local_sweep_across_refreshes(one, monkeypatch, order):
    # 10 sweeps: the local feature-major sweep carries every row's sums and residual from
    # sweep to sweep and recomputes them at sweeps 0 and 8 (REFRESH_SWEEPS); the workers
    # must follow the same schedule to agree bit for bit. With too many rows to keep those
    # sums, both go factor by factor.
    import fmlearn.dask
    import fmlearn.optim.coordinate as coordinate

    assert coordinate.REFRESH_SWEEPS < 10
    if order == "factor-major":
        monkeypatch.setattr(coordinate, "SUMS_CACHE_BYTES", 1)
        monkeypatch.setattr(fmlearn.dask, "SUMS_CACHE_BYTES", 1)
    X, y = _onehot(2000)
    params = {**PARAMS, "solver": "als", "max_iter": 10}
    local = FMRegressor(**params).fit(X, y)
    est = DaskFMRegressor(**params).fit(*_dask(X, y, 700))
    assert est._local.n_iter_ == 10
    assert np.array_equal(est.V_, local.V_)
    assert np.array_equal(est.w_, local.w_)
    assert est.w0_ == local.w0_
    assert est.history_["train_rmse"] == local.history_["train_rmse"]


def test_one_worker_is_the_local_fit_with_early_stopping(one):
    # The held-out rows are the local estimator's (same seed, same split).
    X, y = make_fm_regression(2000, 60, random_state=1)
    params = {**PARAMS, "early_stopping": True, "max_iter": 6}
    local = FMRegressor(**params).fit(X, y)
    est = DaskFMRegressor(**params).fit(X, y)
    assert est.history_["valid_rmse"] == local.history_["valid_rmse"]
    assert np.array_equal(est.V_, local.V_)


def _shard(X, y):
    Xk = as_kernel_csr(sp.csr_matrix(X))
    shard = _Shard(Xk, np.asarray(y, dtype=np.float64), np.ones(X.shape[0]), X.shape[1])
    shard.split_rounds(1, 0)
    return shard


def _exchange(shards, params, state, solver, seed=5):
    """One round on in-memory shards as the workers run it: every shard trains on its own
    replica, then combines every shard's changes; returns the replicas and the results."""
    n = params.n_features
    plan = _exchange_plan([(c, t, s.n_rows) for s in shards for _, c, t in s.rounds], n,
                          params.dtype)
    for i, s in enumerate(shards):
        _set_replica(s, params, state, solver, None, [plan[i]])
    results = [_train_round(s, 0, seed, 1) for s in shards]
    for s in shards:
        _apply_round(s, 0, *results)
    return shards, results


def test_combination_of_disjoint_workers_is_one_sequential_pass():
    # Workers whose rows share no feature (and no bias is trained): combining by per-feature
    # counts gives exactly one process training A's rows, then B's. A plain mean would not
    # (each feature would keep half its change).
    X, y = make_fm_regression(600, 40, random_state=2)
    X = X.tolil()
    X[:300, 20:] = 0
    X[300:, :20] = 0
    X = X.tocsr()
    X.eliminate_zeros()
    est = FMRegressor(n_factors=4, fit_intercept=False, random_state=0)
    est.n_features_in_ = 40
    est._rng = np.random.default_rng(0)
    solver = AdaGradSolver(learning_rate=0.1, l2_reg_w=0.01, l2_reg_V=0.01, loss=0,
                           fit_intercept=False, fit_linear=True)
    est._start(40, AdaGradSolver, solver, 0.0)
    params, state = est._params, est._solver_state
    shards, _ = _exchange([_shard(X[:300], y[:300]), _shard(X[300:], y[300:])], params,
                          state, solver, seed=7)

    sequential = params.copy()
    seq_state = {k: v.copy() for k, v in state.items()}
    for i, s in enumerate(shards):
        solver.run_epoch(sequential, seq_state, s.rounds[0][0], np.random.default_rng([7, i]),
                         1)
    for s in shards:  # both replicas: exactly the sequential pass
        assert np.array_equal(s.params.table, sequential.table)
    assert not np.array_equal(shards[0].params.table, params.table)


def test_combination_weights_shared_features_by_counts():
    X, y = make_fm_regression(400, 10, nnz_per_row=3, random_state=3)
    est = FMRegressor(n_factors=2, random_state=0)
    est.n_features_in_ = 10
    est._rng = np.random.default_rng(0)
    solver = AdaGradSolver(learning_rate=0.1, l2_reg_w=0.01, l2_reg_V=0.01, loss=0,
                           fit_intercept=True, fit_linear=True)
    est._start(10, AdaGradSolver, solver, 0.5)
    params, state = est._params, est._solver_state
    shards = [_shard(X[:100], y[:100]), _shard(X[100:], y[100:])]
    # What each worker alone makes of the round, from the same start.
    alone = []
    for i, s in enumerate(shards):
        p, st = params.copy(), {k: v.copy() for k, v in state.items()}
        solver.run_epoch(p, st, s.rounds[0][0], np.random.default_rng([5, i]), 1)
        alone.append((p, st))
    shards, _ = _exchange(shards, params, state, solver)
    counts = [np.bincount(sp.csr_matrix(X[a:b]).indices, minlength=10)
              for a, b in ((0, 100), (100, 400))]
    tables = [p.table.astype(np.float64) for p, _ in alone]
    expect = (counts[0][:, None] * tables[0] + counts[1][:, None] * tables[1]) / (
        counts[0] + counts[1])[:, None]
    for s in shards:
        np.testing.assert_allclose(s.params.table, expect, rtol=1e-5, atol=1e-7)
    # The replicas agree bit for bit (every worker adds the changes in worker order).
    assert np.array_equal(shards[0].params.table, shards[1].params.table)
    assert np.array_equal(shards[0].params.w0, shards[1].params.w0)
    # The bias and its accumulator: by rows (100 and 300).
    np.testing.assert_allclose(shards[0].params.w0,
                               0.25 * alone[0][0].w0 + 0.75 * alone[1][0].w0, rtol=1e-6)
    np.testing.assert_allclose(shards[1].state["acc_w0"], 0.25 * alone[0][1]["acc_w0"]
                               + 0.75 * alone[1][1]["acc_w0"], rtol=1e-6)


@pytest.mark.parametrize(("solver", "epochs"), [("sgd", 10), ("adagrad", 40)])
def test_two_workers_close_to_one_process(two, solver, epochs):
    # Averaging halves the progress per epoch of features both workers see: AdaGrad gets
    # there in more epochs (docs/distributed.md).
    X, y = make_fm_regression(8000, 80, random_state=4, noise=0.1)
    X, y, Xt, yt = X[:6000], y[:6000], X[6000:], y[6000:]
    params = {**PARAMS, "max_iter": epochs, "solver": solver}
    local = FMRegressor(**params).fit(X, y)
    est = DaskFMRegressor(**params).fit(*_dask(X, y, 1500))
    rmse_local = np.sqrt(np.mean((local.predict(Xt) - yt) ** 2))
    pred = est.predict(da.from_array(Xt, chunks=(500, 80), asarray=False))
    assert isinstance(pred, da.Array)
    rmse = np.sqrt(np.mean((pred.compute() - yt) ** 2))
    assert rmse < 1.1 * rmse_local
    assert rmse < 0.8 * np.std(yt)


def test_als_two_workers_is_the_local_sweep(two):
    X, y = _onehot()
    # 10 sweeps: across the local sweep's refresh of the rows' sums at sweep 8.
    params = {**PARAMS, "solver": "als", "max_iter": 10}
    local = FMRegressor(**params).fit(X, y)
    est = DaskFMRegressor(**params).fit(X, y)
    # Exact up to the order of the sums over two workers.
    np.testing.assert_allclose(est.V_, local.V_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(est.w_, local.w_, rtol=0, atol=1e-12)


def test_classifiers_and_pickle_without_client(two, tmp_path):
    X, y = make_fm_regression(3000, 50, random_state=5)
    labels = np.where(y > np.median(y), "yes", "no")
    fields = np.arange(50) % 5
    for dask_cls, local_cls, extra in (
        (DaskFMClassifier, FMClassifier, {}),
        (DaskFFMClassifier, FFMClassifier, {"fields": fields}),
        (DaskFwFMClassifier, FwFMClassifier, {"fields": fields}),
    ):
        est = dask_cls(**PARAMS, **extra).fit(X, labels, eval_set=(X[:500], labels[:500]))
        assert list(est.classes_) == ["no", "yes"]
        assert "valid_logloss" in est.history_
        assert type(est.to_local()) is local_cls
        assert est.score(X, labels) > 0.6
        # Pickled with its client, loaded without one: predicts in memory.
        est.client = two
        clone = pickle.loads(pickle.dumps(est))
        assert clone.client is None
        proba = clone.predict_proba(X[:10])
        np.testing.assert_array_equal(proba, est.to_local().predict_proba(X[:10]))
    path = tmp_path / "m.fmlearn"
    est.save(path)
    loaded = DaskFwFMClassifier.load(path)
    np.testing.assert_array_equal(loaded.predict(X[:20]), est.predict(X[:20]))


def test_dataframe_and_files(two, tmp_path):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    from fmlearn import FMEncoder
    from fmlearn.data.textio import write_libfm

    rng = np.random.default_rng(6)
    table = pd.DataFrame({"user": rng.integers(0, 30, 2000).astype(str),
                          "item": rng.integers(0, 20, 2000).astype(str)})
    y = rng.normal(size=2000)
    ddf = dd.from_pandas(table, npartitions=4)
    encoder = FMEncoder().fit(table.head(500))
    est = DaskFMRegressor(**PARAMS).fit(ddf, dd.from_pandas(pd.Series(y), npartitions=4),
                                        encoder=encoder)
    assert est.n_features_in_ == encoder.transform(table.head(2)).shape[1]
    pred = est.predict(ddf, encoder=encoder).compute()
    np.testing.assert_allclose(pred, est.to_local().predict(encoder.transform(table)),
                               rtol=1e-6)

    pytest.importorskip("pyarrow")
    for i in range(2):
        table.iloc[i * 1000:(i + 1) * 1000].assign(target=y[i * 1000:(i + 1) * 1000]).to_parquet(
            tmp_path / f"t{i}.parquet")
    est = DaskFMRegressor(**PARAMS).fit([tmp_path / "t0.parquet", tmp_path / "t1.parquet"],
                                        file_format="parquet", encoder=encoder, label="target")
    # Read and encoded on the workers: the encoder's columns, the rows of both files.
    assert est.n_features_in_ == encoder.n_features_out_
    rmse = est.history_["train_rmse"]
    assert len(rmse) == 4 and rmse[-1] < rmse[0]

    X, yy = make_fm_regression(1000, 30, random_state=7)
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"part{i}.libfm")
        write_libfm(paths[-1], X[i * 333:(i + 1) * 333], yy[i * 333:(i + 1) * 333])
    est = DaskFMRegressor(**PARAMS).fit(paths, file_format="libfm")
    assert est.n_features_in_ <= 30 and len(est.history_["train_rmse"]) == 4
    with pytest.raises(ValueError, match="file_format"):
        DaskFMRegressor(**PARAMS).fit(paths)


def test_refusals(two):
    X, y = make_fm_regression(200, 10, random_state=8)
    with pytest.raises(ValueError, match="does not run on Dask"):
        DaskFMRegressor(solver="mcmc").fit(X, y)
    with pytest.raises(TypeError):
        DaskFMRegressor(warm_start=True)
    with pytest.raises(ValueError, match="rounds_per_epoch"):
        DaskFMRegressor(rounds_per_epoch=0).fit(X, y)


def test_rounds_per_epoch(two):
    X, y = make_fm_regression(4000, 60, random_state=9)
    est = DaskFMRegressor(**PARAMS, rounds_per_epoch=3).fit(X, y)
    one_round = DaskFMRegressor(**PARAMS).fit(X, y)
    assert len(est.history_["train_rmse"]) == 4
    assert est.history_["train_rmse"][-1] <= 1.05 * one_round.history_["train_rmse"][-1]
    # "auto": one round for small data; the timings of every epoch, both parts measured.
    assert est.rounds_per_epoch_ == 3 and one_round.rounds_per_epoch_ == 1
    t = one_round.timings_
    assert len(t["epoch"]) == len(t["compute"]) == len(t["exchange"]) == 4
    assert all(c > 0 for c in t["compute"]) and all(e > 0 for e in t["exchange"])


def test_auto_rounds():
    assert auto_rounds(1, 10**7, 10**8, 100) == 1  # one worker: the local fit
    assert auto_rounds(2, 3000, 30_000, 80) == 1  # too few rows for two rounds
    assert auto_rounds(2, 500_000, 5_000_000, 200_000) == 3  # by non-zeros per column
    assert auto_rounds(2, 5_000_000, 50_000_000, 200_000) == 8  # at most 8


def test_killed_worker_fails_clearly_and_keeps_no_model():
    X, y = make_fm_regression(3000, 40, random_state=10)
    with _cluster(2) as cluster, Client(cluster) as client:
        def kill(env):
            if env.epoch == 1:
                name = sorted(cluster.workers)[1]
                client.sync(cluster.workers[name].close)

        est = DaskFMRegressor(**{**PARAMS, "max_iter": 5})
        with pytest.raises(DaskWorkerLostError, match="left during epoch 2"):
            est.fit(X, y, callbacks=[kill])
        assert not hasattr(est, "_local") and not hasattr(est, "history_")
        with pytest.raises(Exception, match="not fitted"):
            est.predict(X)


def test_cli_trains_on_dask_workers(two, tmp_path, capsys):
    from fmlearn.cli import main
    from fmlearn.data.textio import read_libfm, write_libfm
    from fmlearn.io import load

    X, y = make_fm_regression(2000, 30, random_state=11)
    path, model = tmp_path / "t.libfm", tmp_path / "m.fmlearn"
    write_libfm(path, X, y)
    assert main(["train", "--train", str(path), "--dask-workers", "2", "--max-iter", "3",
                 "--solver", "adagrad", "--quiet", "--model-out", str(model)]) == 0
    assert "trained on 2 Dask worker(s)" in capsys.readouterr().err
    loaded = load(model)
    assert type(loaded) is FMRegressor and loaded.n_iter_ == 3
    # The command's model is the Python API's on two workers, bit for bit.
    Xf, yf = read_libfm(path)
    est = DaskFMRegressor(n_factors=8, max_iter=3, solver="adagrad", random_state=0,
                          verbose=0).fit(Xf, yf)
    np.testing.assert_array_equal(loaded.V_, est.V_)

    for extra, message in ((["--model", "hofm"], "does not train on Dask"),
                           (["--on-disk"], "do not combine"),
                           (["--dask-scheduler", "tcp://127.0.0.1:1"], "not both"),
                           (["--solver", "mcmc"], "does not run on Dask"),
                           (["--n-kept-samples", "3"], "not apply to Dask")):
        assert main(["train", "--train", str(path), "--dask-workers", "2", "--quiet",
                     *extra]) == 2
        assert message in capsys.readouterr().err


def test_callbacks_read_the_workers_parameters(two):
    # During a fit the workers hold the parameters; a callback reading the model gets the
    # current ones (fetched), and the fitted model is the last epoch's.
    X, y = make_fm_regression(3000, 40, random_state=12)
    seen = []
    est = DaskFMRegressor(**PARAMS, rounds_per_epoch=2).fit(
        X, y, callbacks=[lambda env: seen.append(env.estimator.V_.copy())])
    assert len(seen) == 4 and not np.array_equal(seen[0], seen[-1])
    np.testing.assert_array_equal(seen[-1], est.V_)
    # A copy of the model taken during the fit holds plain parameters.
    copies = []
    DaskFMRegressor(**PARAMS).fit(X, y, callbacks=[
        lambda env: copies.append(copy.deepcopy(env.estimator))])
    assert type(copies[0]._params).__name__ == "FMParams"
