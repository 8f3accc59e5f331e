"""Factorization machines on Dask: the data stays on the workers, the result is a plain model.

``pip install "fmlearn[dask]"``. :class:`DaskFMRegressor`, :class:`DaskFMClassifier`, and the
same for FFM and FwFM, take the parameters of their local estimator (generated from its
signature) plus ``client`` and ``rounds_per_epoch``, and train on a Dask array of scipy sparse
blocks, a Dask DataFrame through a fitted :class:`fmlearn.FMEncoder`, or a list of libFM, FFM
or Parquet files read by the workers (see docs/distributed.md).

How a fit runs (LightGBM's ``lightgbm.dask`` is the model: data partitioned on the workers,
each trains on its parts, the result is an ordinary estimator):

1. Every partition is computed on a worker (partition ``i`` of ``P`` on worker
   ``i * W // P``, so the order of the rows is kept) and each worker stacks its partitions into
   one *shard*, validated and encoded there by the local estimator's own hooks; the shard stays
   on its worker for the whole fit.
2. The driver runs the local estimator's training loop (:func:`fmlearn.engine.train` through
   ``BaseFM._train``: epochs, ``history_``, callbacks, early stopping with the best epoch
   restored, progress). For the SGD-type solvers (``sgd``, ``adagrad``, ``ftrl``) the
   parameters are scattered once and every worker keeps a replica; one epoch is
   ``rounds_per_epoch`` synchronous rounds, in which each worker trains one local pass over
   its rows of the round with the numba solver (the same ``run_epoch``, Hogwild with
   ``n_jobs`` threads), then every worker combines all workers' changes into its replica
   (fetched worker to worker by Dask, never through the driver). The driver holds a
   stand-in (:class:`_Replica`) and fetches the parameters only when it needs them.
3. Combination: each feature's table row (parameters *and* solver state: AdaGrad's sums,
   FTRL's ``z`` and ``n``) is the mean of the workers' rows weighted by how many of the
   round's non-zeros each worker had in that feature (the number of updates it made to it):
   a feature only one worker touched takes that worker's row as is (it alone sends it); for a
   feature several touched, each sends its count-weighted change ``share * (row - start)``
   and the combined row is ``start + sum of the changes``, added in worker order on every
   worker, so the replicas stay bit-identical. Untouched features are not sent. The bias,
   its solver state and FwFM's field-pair weights are weighted by the workers' rows.
4. ``solver="als"`` is exact distributed coordinate descent (:func:`_als_sweep`): per-feature
   sufficient statistics summed over the workers, one round trip per block of features that
   share no row, so one worker reproduces the local ALS exactly.

A worker lost during a fit makes it fail with :class:`DaskWorkerLostError` (no retry: the
rows it held are gone with it), and the estimator keeps no partial model.
"""

from __future__ import annotations

import copy
import inspect
import math
import time

import numpy as np
import scipy.sparse as sp

try:
    import dask
    import dask.array as da
    import distributed
    from distributed import Client, default_client, wait
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "fmlearn.dask needs dask and distributed: pip install \"fmlearn[dask]\"."
    ) from e

from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted

from fmlearn._kernels import cd, exchange
from fmlearn.base import _rng_from, init_from_signature
from fmlearn.data.fielded import carried_fields
from fmlearn.data.sources import InMemorySource
from fmlearn.ffm import FFMClassifier, FFMRegressor
from fmlearn.fm import FMClassifier, FMRegressor
from fmlearn.fwfm import FwFMClassifier, FwFMRegressor
from fmlearn.optim.coordinate import REFRESH_SWEEPS, SUMS_CACHE_BYTES, ALSSolver

__all__ = [
    "DaskFFMClassifier",
    "DaskFFMRegressor",
    "DaskFMClassifier",
    "DaskFMRegressor",
    "DaskFwFMClassifier",
    "DaskFwFMRegressor",
    "DaskWorkerLostError",
]

# Local parameters a distributed fit does not have: it always starts afresh (no warm_start),
# and MCMC (whose only parameters these are) does not run on Dask.
_DROPPED = ("warm_start", "n_kept_samples", "prior_groups")
# Solvers that run on Dask: the SGD-type ones data-parallel, ALS as exact distributed
# coordinate descent. SGDA trains on validation rows and MCMC samples: not distributed.
_SOLVERS = ("sgd", "adagrad", "ftrl", "als")
# rounds_per_epoch="auto" (see auto_rounds), from the measurements in docs/distributed.md.
MAX_AUTO_ROUNDS = 8
AUTO_NNZ_PER_COLUMN = 8
AUTO_MIN_ROWS = 50_000
# How often a gather that waits checks that the workers holding shards are still alive.
_ALIVE_CHECK_S = 0.5


class DaskWorkerLostError(RuntimeError):
    """A worker holding training rows was lost during a distributed fit."""


# ======================================================================== worker side
class _Shard:
    """One worker's training rows (and validation rows), kept on it for the whole fit.

    Built by :func:`_build_shard` from the partitions the worker holds, in partition order.
    ``rounds`` are the row subsets of the rounds of an epoch (all rows for one round), each an
    :class:`~fmlearn.data.sources.InMemorySource` with the per-feature counts of its non-zeros
    (the combination weights) and the features it touches.
    """

    def __init__(self, X, y, sw, n_features):
        self.X, self.y, self.sw = X, y, sw
        self.n_features = n_features
        self.valid = None
        self.rounds = None
        self.als = None  # the ALS sweep's data and residuals (see _als_* below)
        # The SGD-type solvers' replica (see _set_replica).
        self.params = self.state = self.solver = self.rng = self.exchange = None

    @property
    def n_rows(self) -> int:
        return self.X.n_rows if self.X is not None else self._n_rows

    def split_rounds(self, n_rounds: int, seed: int) -> None:
        from fmlearn.base import _take

        if n_rounds == 1:
            parts = [(self.X, self.y, self.sw)]
        else:
            order = np.random.default_rng(seed).permutation(self.n_rows)
            parts = []
            for r in range(n_rounds):
                rows = np.sort(order[r * self.n_rows // n_rounds:(r + 1) * self.n_rows // n_rounds])
                parts.append((_take(self.X, rows), self.y[rows], self.sw[rows]))
        self.rounds = []
        for X, y, sw in parts:
            counts = np.bincount(X.indices, minlength=self.n_features).astype(np.float64)
            touched = np.flatnonzero(counts)
            self.rounds.append((InMemorySource(X, y, sw), counts[touched], touched))
        if n_rounds > 1:  # the rounds hold every row: no second copy of them
            self._n_rows = self.n_rows
            self.X = None


def _stack(parts, n_features):
    """One CSR matrix, targets and weights from a worker's partitions (in order)."""
    Xs = []
    for X, _, _ in parts:
        X = X if sp.issparse(X) else sp.csr_matrix(np.atleast_2d(X))
        if X.shape[1] < n_features:  # a file that never saw the last columns
            X = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], n_features))
        Xs.append(X)
    X = Xs[0] if len(Xs) == 1 else sp.vstack(Xs, format="csr")
    fields = carried_fields(Xs[0])
    if fields is not None and len(Xs) > 1:
        from fmlearn.data.fielded import fielded

        X = fielded(X, fields, Xs[0].field_names, Xs[0].encoder)
    y = np.concatenate([np.asarray(p[1]).ravel() for p in parts])
    sws = [p[2] for p in parts]
    sw = None if all(s is None for s in sws) else np.concatenate(
        [np.ones(p[0].shape[0]) if s is None else np.asarray(s, dtype=np.float64).ravel()
         for p, s in zip(parts, sws, strict=True)])
    return X, y, sw


def _build_shard(local, n_features, *parts):
    """Validate and encode a worker's partitions with the local estimator's hooks."""
    X, y, sw = _stack(parts, n_features)
    X, y = local._validate_Xy(X, y, reset=False)
    y = local._encode_y(y, reset=False)
    sw = local._check_sample_weight(sw, X) if sw is not None else np.ones(X.shape[0])
    return _Shard(local._design(X), y, sw, local._n_columns())


def _shard_summary(shard, local, classify):
    """What the driver needs once: rows, weight, the targets' summary for the initial bias."""
    y, sw = shard.y, shard.sw
    if classify:
        labels, inverse = np.unique(y, return_inverse=True)
        summary = (labels, np.bincount(inverse.ravel(), weights=sw))
    else:
        summary = (np.array([np.average(y, weights=sw)]), np.array([sw.sum()]))
    return (shard.n_rows, float(sw.sum()), summary, local._task.initial_bias(y, sw),
            int(shard.X.indptr[-1]))


def auto_rounds(n_workers, rows, nnz, n_features):
    """``rounds_per_epoch="auto"``: the rounds of an epoch for the largest worker's ``rows``
    and non-zeros ``nnz`` over ``n_features`` columns.

    One with one worker (a local fit exactly). Else as many as keep a round's training
    well above its exchange, at most :data:`MAX_AUTO_ROUNDS`: each worker's round trains
    at least ``AUTO_NNZ_PER_COLUMN`` non-zeros per column (an exchange moves at most one
    table row per column) and ``AUTO_MIN_ROWS`` rows. More rounds bring the model closer to
    a single process's (docs/distributed.md, "Rounds per epoch").
    """
    if n_workers == 1:
        return 1
    by_nnz = nnz // (AUTO_NNZ_PER_COLUMN * max(n_features, 1))
    return int(max(1, min(MAX_AUTO_ROUNDS, by_nnz, rows // AUTO_MIN_ROWS)))


def _n_rows(shard):
    return shard.n_rows


def _labels(parts):
    """Distinct labels of some partitions (to find a classifier's classes)."""
    return np.unique(np.concatenate([np.asarray(p[1]).ravel() for p in parts]))


def _hold_out(shard, fraction, seed, stratify):
    """Move ``fraction`` of the shard's rows to its validation rows (as the local
    estimator's ``train_test_split``, with the same seed); returns the rows kept."""
    from fmlearn.base import _take

    idx = np.arange(shard.n_rows)
    tr, va = train_test_split(idx, test_size=fraction, random_state=seed,
                              stratify=shard.y if stratify else None)
    X = shard.X
    shard.valid = (_take(X, va), shard.y[va], shard.sw[va])
    shard.X, shard.y, shard.sw = _take(X, tr), shard.y[tr], shard.sw[tr]
    return shard.n_rows


def _set_valid(shard, other):
    """Use the rows of shard ``other`` (an eval_set shard) as this worker's validation rows."""
    shard.valid = (other.X, other.y, other.sw)
    return other.n_rows


def _split_rounds(shard, n_rounds, seed):
    shard.split_rounds(n_rounds, seed)
    return [(counts, touched, source.n_rows) for source, counts, touched in shard.rounds]


def _set_replica(shard, params, state, solver, rng, exchange):
    """Keep a replica of the starting parameters (and solver state) on the worker for the
    whole fit: rounds then only exchange the rows that changed (see :func:`_train_round`).
    ``rng``: the one worker's generator (None with several, which draw per round);
    ``exchange``: per round, this worker's part of the combination (:func:`_exchange_plan`),
    or None with one worker."""
    shard.params = params.copy()
    shard.state = None if state is None else {k: v.copy() for k, v in state.items()}
    shard.solver = copy.copy(solver)
    shard.solver.progress = None  # the driver's progress bar stays on the driver
    shard.rng = copy.deepcopy(rng)
    shard.exchange = exchange


def _get_replica(shard):
    """A copy of the worker's parameters and solver state (equal on every worker)."""
    state = None if shard.state is None else {k: v.copy() for k, v in shard.state.items()}
    return shard.params.copy(), state


def _extra_arrays(params):
    """Arrays of a container beside the bias and the table, combined like the bias (FwFM's
    field-pair weights and their state)."""
    return [name for name in ("r", "acc_r") if hasattr(params, name)]


def _small_arrays(params, state):
    """The arrays combined by rows trained rather than per feature: the bias, FwFM's
    field-pair weights and their state, the solver's state of the bias (live arrays)."""
    out = {"w0": params.w0}
    for name in _extra_arrays(params):
        out[name] = getattr(params, name)
    for k, v in (state or {}).items():
        out["state:" + k] = v
    return out


def _train_round(shard, round_index, seed, n_jobs, *after):
    """One local pass of the solver over the round's rows, on the worker's replica.

    ``seed``: the round's seed (several workers: this worker's generator is
    ``default_rng([seed, index])``), or None (one worker: its own generator, as the local
    fit's). ``after``: the futures this round waits for (the last round's combination).
    Returns ``(loss, changes, seconds)``: ``changes`` None with one worker (nothing to
    exchange), else
    ``(excl, values, shared, contrib, small)``: the new rows of the features only this worker
    touched, its count-weighted change of the features others touched too, and its
    row-weighted change of the small arrays; the replica itself is set back to the round's
    start on those (see :func:`_apply_round`); ``seconds``: the thread's CPU seconds in the
    solver and in preparing the changes (``n_jobs`` > 1: the solver's other threads not
    counted).
    """
    params, state, solver = shard.params, shard.state, shard.solver
    source = shard.rounds[round_index][0]
    if shard.exchange is None:
        t0 = time.thread_time()
        loss = solver.run_epoch(params, state, source, shard.rng, n_jobs)
        return loss, None, (time.thread_time() - t0, 0.0)
    t0 = time.thread_time()
    ex = shard.exchange[round_index]
    rng = np.random.default_rng([seed, ex["index"]])
    table, shared = params.table, ex["shared"]
    old = np.empty((shared.shape[0], table.shape[1]), dtype=table.dtype)
    exchange.gather_rows(table, shared, old)  # the shared rows only
    old_small = {k: np.array(v, dtype=np.float64) for k, v in
                 _small_arrays(params, state).items()}
    t1 = time.thread_time()
    loss = solver.run_epoch(params, state, source, rng, n_jobs)
    t2 = time.thread_time()
    contrib = np.empty_like(old)
    exchange.take_changes(table, shared, old, ex["weights"], contrib)
    values = np.empty((ex["excl"].shape[0], table.shape[1]), dtype=table.dtype)
    exchange.gather_rows(table, ex["excl"], values)
    small = {}
    for k, v in _small_arrays(params, state).items():
        small[k] = ex["row_share"] * (np.asarray(v, dtype=np.float64) - old_small[k])
        v[...] = old_small[k]
    seconds = (t2 - t1, (t1 - t0) + (time.thread_time() - t2))
    return loss, (ex["excl"], values, shared, contrib, small), seconds


def _apply_round(shard, round_index, *results):
    """Combine a round into the worker's replica from every worker's ``results`` (in worker
    order, the same on every worker, so the replicas stay bit-identical): a feature only
    worker ``j`` touched takes ``j``'s row; a shared feature ``old + sum_j share_j (row_j -
    old)``, ``share_j`` = ``j``'s count of the feature's non-zeros / all workers' counts;
    the small arrays likewise with the workers' shares of the rows. Returns the round's
    loss sum over the workers, every worker's ``seconds`` and this one's CPU seconds here."""
    t0 = time.thread_time()
    table = shard.params.table
    mine = shard.exchange[round_index]["index"]
    for j, (_, (excl, values, shared, contrib, _), _) in enumerate(results):
        if j != mine:  # this worker's own exclusive rows are in place already
            exchange.scatter_rows(table, excl, values)
        exchange.add_rows(table, shared, contrib)
    for k, v in _small_arrays(shard.params, shard.state).items():
        new = np.array(v, dtype=np.float64)
        for _, (*_, small), _ in results:
            new += small[k]
        v[...] = new
    return (float(sum(res[0] for res in results)), [res[2] for res in results],
            time.thread_time() - t0)


def _validation_output(shard, local_params, link, n_jobs):
    """The validation rows' targets, outputs and weights under the broadcast parameters
    (None: under the worker's replica)."""
    if shard.valid is None:
        return None
    if local_params is None:
        local_params = shard.params
    Xv, yv, swv = shard.valid
    output = local_params.mean_output(Xv, link, n_jobs)
    return yv, output, swv


def _predict_block(X, model, method):
    return getattr(model, method)(X)


# ======================================================================== ALS on workers
# Exact distributed coordinate descent. Each update of the local ALS (ALSSolver.run_epoch)
# needs sum_n s_n h_n^2 and sum_n s_n h_n e_n over the rows of its feature, and changes the
# residuals e_n (and factor sums q_n) of those rows. Features that share no row do not see
# each other's updates, so a contiguous block of such features is updated at once: the
# workers send the block's sums, the driver adds them up, computes the new values (ALS's own
# rule, cd.block_values) and sends them back with the request for the next sums. The order is
# the local sweep's: feature-major (w_i, v_i1 .. v_ik of each feature; per block: the w of all
# its features, then factor 1 of all, ..., which is the same since their rows are disjoint),
# with every row's sums and residual carried from sweep to sweep and recomputed every
# REFRESH_SWEEPS sweeps, or factor-major for rows too many to keep their sums. One worker then
# repeats the local sweep bit for bit (the same kernels' arithmetic: cd.columns_sums,
# cd.columns_apply). Round trips per sweep: one per block and parameter of a feature (k + 1),
# plus two (see docs/distributed.md).

def _als_prepare(shard, solver):
    """The worker's column copies (the solver's own ``prepare``) and, for each feature, the
    smallest later feature sharing one of the worker's rows (n_features where none)."""
    data = solver.prepare(InMemorySource(shard.X, shard.y, shard.sw))
    shard.als = {"data": data, "R": None}
    X = data.main
    n = shard.n_features
    m = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.n_rows, n))
    m.sort_indices()
    nxt = np.full(n, n, dtype=np.int64)
    if m.nnz > 1:
        same_row = np.ones(m.nnz - 1, dtype=bool)
        ends = m.indptr[1:-1] - 1  # last entry of each row but the last
        same_row[ends[(ends >= 0) & (ends < m.nnz - 1)]] = False
        np.minimum.at(nxt, m.indices[:-1][same_row], m.indices[1:][same_row].astype(np.int64))
    return nxt


def _als_start(shard, params, solver, feature_major, refresh):
    """A sweep's predictions, (latent) targets and residuals, as ALSSolver.run_epoch: with
    ``feature_major``, from the rows' sums and residuals carried from the last sweep unless
    ``refresh``; returns the bias's sum ``sum s e``."""
    from fmlearn.models.fm import FMParams

    st = shard.als
    data = st["data"]
    params = params.copy()
    k = params.n_factors
    R = None
    if not feature_major:
        pred = FMParams.decision_function(params, data.X, 1)
    else:
        R = st["R"]
        if R is None or R.shape != (data.main.n_rows, k + 2):
            R = st["R"] = np.empty((data.main.n_rows, k + 2))
            R[:, k + 1] = data.sw
            refresh = True
        if refresh:
            pred = solver._predict_with_sums(params, data, 1, R)
        else:
            pred = st["target"] - R[:, k]
        width = int(np.diff(data.main_csc.indptr).max(initial=0))
        if st.get("S") is None or st["S"].shape != (k + 3, max(width, 1)):
            st["S"] = np.empty((k + 3, max(width, 1)))
    rng = np.zeros(1, dtype=np.uint64)  # ALS draws nothing
    target = solver.task.latent_targets(params, data.task_data, data.y, data.sw, pred,
                                        {"rng": rng}, rng, sample=False, sweep=solver.sweep)
    e = target - pred
    if R is not None:
        R[:, k] = e
        e = R[:, k]
    st.update(params=params, target=target, e=e, q=None, f=None, solver=solver,
              feature_major=feature_major)
    # The local sweep's own sum (cd.residual_sums), so that one worker agrees bit for bit.
    return float(cd.residual_sums(target, pred, data.sw, 0, data.main.n_rows)[0])


def _als_step(shard, apply, request):
    """Apply the driver's new values ``apply`` = (kind, f, start, stop, values) or None,
    then answer ``request``: ("sums", kind, f, start, stop) -> (stop - start, 2) sums,
    ("loss",) -> the sweep's loss sum, or None. ``kind``: "w0", "w" or "v"."""
    st = shard.als
    data, params, e, R = st["data"], st["params"], st["e"], st["R"]
    table, c, k = params.table, data.main_csc, params.n_factors
    feature_major = st["feature_major"]
    if apply is not None:
        kind, f, a, b, values = apply
        if kind == "w0":
            params.w0[0] = values[0]
            e -= values[1]  # new - old, computed once by the driver
        elif feature_major:
            cd.columns_apply(c.indptr, c.rows, c.vals, a, b, R, table, k if kind == "w" else f,
                             values, st["S"])
        elif kind == "w":
            cd.apply_linear_block(c.indptr, c.rows, c.vals, a, b, e, table, k, values)
        else:
            cd.apply_factor_block(c.indptr, c.rows, c.vals, a, b, f, e, st["q"], table, values)
    if request is None:
        return None
    if request[0] == "loss":
        return st["solver"].task.latent_loss(params, data.y, data.sw, st["target"], e)
    _, kind, f, a, b = request
    out = np.empty((b - a, 2))
    if feature_major:
        cd.columns_sums(c.indptr, c.rows, c.vals, a, b, R, table, k if kind == "w" else f,
                        st["S"], out)
    elif kind == "w":
        cd.linear_block_sums(c.indptr, c.rows, c.vals, a, b, e, data.sw, out)
    else:
        if st["f"] != f:  # a new factor: its row sums q_nf, as the local sweep takes them
            q = np.zeros(data.main.n_rows)
            st["solver"]._factor_sums(data, table, f, q, 1)
            st["q"], st["f"] = q, f
        cd.factor_block_sums(c.indptr, c.rows, c.vals, a, b, f, e, st["q"], data.sw, table,
                             out)
    return out


def _conflict_free_blocks(nxt, n_features):
    """Cut points of the fewest contiguous blocks of features in which no two share a row.

    ``nxt[a]``: the smallest feature ``b > a`` sharing a row with ``a``; features ``a`` and
    ``b`` then need a cut in ``(a, b]``. Stabbing these intervals greedily by their right end
    gives the fewest cuts. Returns the block bounds ``[0, ..., n_features]``.
    """
    a = np.flatnonzero(nxt < n_features)
    b = nxt[a]
    order = np.argsort(b, kind="stable")
    cuts = []
    last = -1
    for left, right in zip(a[order].tolist(), b[order].tolist(), strict=True):
        if last > left:
            continue  # already cut inside (left, right]
        cuts.append(right)
        last = right
    return [0, *sorted(set(cuts)), n_features]


# ======================================================================== inputs
def _part(X, y, sw):
    return X, y, sw


def _read_file(path, file_format, label, encoder):
    """Rows of one file, read on the worker it was sent to."""
    from fmlearn.data.textio import read_ffm, read_libfm

    if file_format in ("libfm", "libsvm"):
        X, y = read_libfm(path)
        return X, y, None
    if file_format == "ffm":
        X, y, fields = read_ffm(path)
        from fmlearn.data.fielded import fielded

        return fielded(X, fields, [str(f) for f in range(int(fields.max()) + 1)], None), y, None
    import pandas as pd

    table = pd.read_parquet(path)
    if label not in table.columns:
        raise ValueError(f"{path}: no label column {label!r} (columns: {list(table.columns)}); "
                         "pass label= the name of the target column.")
    y = table.pop(label).to_numpy()
    return encoder.transform(table), y, None


def _encode_part(encoder, table, y, sw):
    return encoder.transform(table), np.asarray(y), None if sw is None else np.asarray(sw)


def _width(part):
    return part[0].shape[1], carried_fields(part[0])


def _is_dask(obj) -> bool:
    return dask.is_dask_collection(obj)


def _spread(n_parts: int, workers: list) -> list:
    """Worker of each partition: contiguous runs, so each worker's rows stay in order."""
    return [workers[i * len(workers) // n_parts] for i in range(n_parts)]


def _partitions(client, X, y, sample_weight, *, encoder, file_format, label):
    """Futures of (X block, y block, weights or None), each computed on one worker."""
    workers = sorted(client.scheduler_info()["workers"])
    if not workers:
        raise ValueError("the Dask client has no workers; start some (e.g. LocalCluster).")
    if isinstance(X, (list, tuple)) and X and all(isinstance(p, (str, bytes)) or
                                                    hasattr(p, "__fspath__") for p in X):
        if file_format not in ("libfm", "libsvm", "ffm", "parquet"):
            raise ValueError(
                f"file_format={file_format!r}: a list of files needs file_format='libfm', "
                "'libsvm', 'ffm' or 'parquet'.")
        if file_format == "parquet" and (encoder is None or label is None):
            raise ValueError("Parquet files need encoder= (a fitted FMEncoder) and label= "
                             "(the target column).")
        return [client.submit(_read_file, str(path), file_format, label, encoder,
                              workers=[w], pure=False)
                for path, w in zip(X, _spread(len(X), workers), strict=True)]
    if y is None:
        raise ValueError("y is required (a Dask array or Series of targets) unless X is a "
                         "list of files with their labels.")
    if type(X).__name__ == "DataFrame" and _is_dask(X):
        if encoder is None:
            raise ValueError(
                "a Dask DataFrame needs encoder=: an FMEncoder fitted on a sample, e.g. "
                "FMEncoder().fit(ddf.head(100_000)), or one with feature hashing.")
        check_is_fitted(encoder)
        tables = X.to_delayed()
        ys = y.to_delayed() if hasattr(y, "to_delayed") else None
        if ys is None or len(ys) != len(tables):
            raise ValueError("y must be a Dask Series or array partitioned as X "
                             f"({len(tables)} partitions).")
        sws = (sample_weight.to_delayed() if sample_weight is not None
               else [None] * len(tables))
        parts = [dask.delayed(_encode_part)(encoder, t, yy, s)
                 for t, yy, s in zip(tables, ys, sws, strict=True)]
    elif isinstance(X, da.Array):
        if X.ndim != 2:
            raise ValueError(f"X must be a 2-D Dask array, got {X.ndim} dimensions.")
        if X.numblocks[1] != 1:
            X = X.rechunk({1: -1})  # one block of columns: every row whole in one partition

        def rows_like(a, name):
            if not isinstance(a, da.Array):
                raise TypeError(f"{name} must be a Dask array when X is, got {type(a).__name__}")
            if a.shape[0] != X.shape[0]:
                raise ValueError(f"{name} has {a.shape[0]} rows, X has {X.shape[0]}.")
            return list(a.rechunk((X.chunks[0],)).to_delayed().ravel())

        blocks = list(X.to_delayed().ravel())
        ys = rows_like(y, "y")
        sws = rows_like(sample_weight, "sample_weight") if sample_weight is not None else \
            [None] * len(blocks)
        parts = [dask.delayed(_part)(b, yy, s) for b, yy, s in zip(blocks, ys, sws, strict=True)]
    elif sp.issparse(X) or isinstance(X, np.ndarray):
        # In memory: one contiguous slice of rows per worker.
        n = X.shape[0]
        y = np.asarray(y)
        sw = None if sample_weight is None else np.asarray(sample_weight)
        W = len(workers)
        bounds = [(i * n // W, (i + 1) * n // W) for i in range(W)]
        futures = []
        for (a, b), w in zip(bounds, workers, strict=True):
            if b > a:
                piece = (X[a:b], y[a:b], None if sw is None else sw[a:b])
                futures.append(client.scatter([piece], workers=[w], hash=False)[0])
        return futures
    else:
        raise TypeError(
            "X must be a Dask array of scipy sparse (or numpy) blocks, a Dask DataFrame (with "
            "encoder=), a list of libFM/FFM/Parquet files, or a numpy/scipy matrix; got "
            f"{type(X).__name__}.")
    return [client.compute(p, workers=[w])
            for p, w in zip(parts, _spread(len(parts), workers), strict=True)]


# ======================================================================== driver
def _generated_init(local_class, extra):
    """An ``__init__`` with the local estimator's parameters (less :data:`_DROPPED`) and
    ``extra``, exposed through ``__signature__`` for scikit-learn's ``get_params``."""
    base = inspect.signature(local_class.__init__)
    params = [p for p in base.parameters.values() if p.name not in _DROPPED]
    kw_only = inspect.Parameter.KEYWORD_ONLY
    params += [inspect.Parameter(k, kw_only, default=v) for k, v in extra.items()]
    signature = base.replace(parameters=params)
    return init_from_signature(signature)


class _DaskFM(BaseEstimator):
    """Shared driver of the Dask estimators; see the module docstring."""

    _local_class: type

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "_local_class" not in cls.__dict__:
            return
        cls.__init__ = _generated_init(cls._local_class, {"rounds_per_epoch": "auto",
                                                          "client": None})
        cls.__doc__ = (cls.__doc__ or "") + _PARAMS_DOC.format(local=cls._local_class.__name__)

    # ---------------------------------------------------------------- helpers
    def _get_client(self) -> Client:
        if self.client is not None:
            return self.client
        try:
            return default_client()
        except ValueError:
            raise ValueError(
                f"{type(self).__name__} needs a Dask client: pass client= or create one "
                "first (distributed.Client(...)).") from None

    def _new_local(self):
        names = inspect.signature(self._local_class.__init__).parameters
        params = {k: v for k, v in self.get_params(deep=False).items() if k in names}
        return self._local_class(**params)

    def __getstate__(self):
        # A client holds sockets and threads: a pickled estimator works without one.
        state = dict(self.__dict__)
        state["client"] = None
        state.pop("_run", None)
        return state

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "_local")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # ---------------------------------------------------------------- fit
    def fit(self, X, y=None, sample_weight=None, *, eval_set=None, encoder=None,
            file_format=None, label=None, callbacks=None):
        """Train on data partitioned over the client's workers.

        Parameters
        ----------
        X : dask.array.Array, dask.dataframe.DataFrame, list of paths, or in-memory matrix
            A Dask array of scipy sparse (or numpy) blocks of shape (n_samples, n_features),
            chunked by rows; a Dask DataFrame encoded on the workers by ``encoder``; a list of
            files read by the workers (``file_format``); or a numpy/scipy matrix, split into one
            slice of rows per worker.
        y : dask.array.Array or dask Series of shape (n_samples,), optional
            Targets, partitioned as ``X``; not given with files (their labels are read).
        sample_weight : dask.array.Array or dask Series of shape (n_samples,), optional
        eval_set : tuple (X_valid, y_valid[, sample_weight_valid]), optional
            Validation data of the same kinds as ``X``, scored on the workers after every
            epoch (what early stopping watches). Without it, ``early_stopping`` holds out
            ``validation_fraction`` of each worker's rows.
        encoder : FMEncoder, optional
            A fitted encoder for Dask DataFrames and Parquet files (fit it on a sample).
        file_format : {"libfm", "libsvm", "ffm", "parquet"}, optional
            Format of the files when ``X`` is a list of paths.
        label : str, optional
            The target column of Parquet files.
        callbacks : list of callable, optional
            Called after every epoch with an :class:`fmlearn.callbacks.EpochEnv`, as for the
            local estimators; returning True stops training.

        Returns
        -------
        self

        Raises
        ------
        DaskWorkerLostError
            A worker holding training rows left during the fit (no model is kept).
        """
        for name in ("_local", "n_features_in_", "classes_", "history_", "n_iter_",
                     "timings_", "rounds_per_epoch_"):
            self.__dict__.pop(name, None)
        local = self._new_local()
        local._validate_params()
        if local.solver not in _SOLVERS:
            raise ValueError(
                f"solver={local.solver!r} does not run on Dask; use one of {list(_SOLVERS)} "
                "(MCMC and SGDA train with the local estimators only).")
        if not (self.rounds_per_epoch == "auto" or (
                isinstance(self.rounds_per_epoch, (int, np.integer))
                and self.rounds_per_epoch >= 1)):
            raise ValueError(f"rounds_per_epoch must be 'auto' or an int >= 1, got "
                             f"{self.rounds_per_epoch!r}")
        client = self._get_client()
        run = _Run(client, self, local)
        self._run = run
        try:
            run.fit(X, y, sample_weight, eval_set, encoder, file_format, label, callbacks)
        finally:
            run.release()
            self.__dict__.pop("_run", None)
        self._local = local
        if run.timings["epoch"]:
            self.timings_ = run.timings
            self.rounds_per_epoch_ = run.rounds
        self.n_features_in_ = local.n_features_in_
        if hasattr(local, "classes_"):
            self.classes_ = local.classes_
        for name in ("history_", "n_iter_", "best_iteration_"):
            if hasattr(local, name):
                setattr(self, name, getattr(local, name))
        return self

    # ---------------------------------------------------------------- fitted model
    def to_local(self):
        """The fitted model as the plain fmlearn estimator (a copy; no Dask needed)."""
        check_is_fitted(self)
        return copy.deepcopy(self._local)

    @property
    def w0_(self):
        check_is_fitted(self)
        return self._local.w0_

    @property
    def w_(self):
        check_is_fitted(self)
        return self._local.w_

    @property
    def V_(self):
        check_is_fitted(self)
        return self._local.V_

    def save(self, path) -> None:
        """Write the fitted model as a plain model file (:func:`fmlearn.save`); load it with
        :meth:`load` or, without Dask, :func:`fmlearn.io.load` (the local estimator)."""
        check_is_fitted(self)
        self._local.save(path)

    @classmethod
    def load(cls, path, client=None):
        """A fitted Dask estimator from a model file of its local class."""
        from fmlearn.io import load

        local = load(path)
        if not isinstance(local, cls._local_class):
            raise TypeError(f"{path} holds a {type(local).__name__}, not a "
                            f"{cls._local_class.__name__}; load it with fmlearn.io.load.")
        names = inspect.signature(cls.__init__).parameters
        est = cls(**{k: v for k, v in local.get_params(deep=False).items() if k in names},
                  client=client)
        est._local = local
        est.n_features_in_ = local.n_features_in_
        for name in ("classes_", "history_", "n_iter_", "best_iteration_"):
            if hasattr(local, name):
                setattr(est, name, getattr(local, name))
        return est

    def _apply(self, X, method, meta_shape):
        """``method`` of the local model on every block/partition of ``X``."""
        check_is_fitted(self)
        model = self._local
        if isinstance(X, da.Array):
            if X.numblocks[1] != 1:
                X = X.rechunk({1: -1})
            if meta_shape:
                return X.map_blocks(_predict_block, model, method=method, dtype=np.float64,
                                    chunks=(X.chunks[0], (meta_shape,)))
            return X.map_blocks(_predict_block, model, method=method, dtype=np.float64,
                                drop_axis=1)
        if type(X).__name__ == "DataFrame" and _is_dask(X):
            raise TypeError("a Dask DataFrame needs encoder= (the FMEncoder the model was "
                            "trained with) to be encoded partition by partition.")
        return getattr(model, method)(X)

    def predict(self, X, encoder=None):
        """Predictions: a Dask array for Dask input (computed lazily, block by block, on the
        workers; the model travels in the graph), else a numpy array.

        Parameters
        ----------
        X : dask.array.Array, dask.dataframe.DataFrame (with ``encoder``), or matrix
        encoder : FMEncoder, optional
            Encodes each partition of a Dask DataFrame first.

        Returns
        -------
        dask.array.Array or ndarray of shape (n_samples,)
        """
        return self._apply(_encoded(X, encoder), "predict", 0)


def _encode_table(table, encoder):
    return encoder.transform(table)


def _encoded(X, encoder):
    """A Dask DataFrame as a Dask array of encoded sparse blocks."""
    if encoder is None or not (type(X).__name__ == "DataFrame" and _is_dask(X)):
        return X
    parts = X.to_delayed()
    lengths = X.map_partitions(len).compute()
    n = encoder.n_features_out_
    blocks = [da.from_delayed(dask.delayed(_encode_table)(p, encoder), shape=(int(m), n),
                              dtype=np.float64, meta=sp.csr_matrix((0, n)))
              for p, m in zip(parts, lengths, strict=True)]
    return da.concatenate(blocks, axis=0)


_PARAMS_DOC = """
    Takes every parameter of :class:`fmlearn.{local}` except ``warm_start`` (a distributed fit
    starts afresh) and the MCMC-only ones; ``solver`` is one of "sgd", "adagrad", "ftrl" or
    "als". ``n_jobs`` is the threads of each worker's epoch (Hogwild within a worker).

    Distributed parameters
    ----------------------
    rounds_per_epoch : int or "auto", default="auto"
        Synchronous rounds per epoch: each worker trains on 1/rounds_per_epoch of its rows
        (a fixed random split), then the workers combine their changes. More rounds cost one
        exchange of the changed rows each and bring the model closer to a single process's.
        "auto": 1 with one worker (the local fit exactly), else up to 8, as many as keep each
        round's training well above its exchange (:func:`auto_rounds`). SGD-type solvers
        only.
    client : distributed.Client, optional
        The client to train with; default: the current one (``distributed.default_client()``).
        Not kept when the estimator is pickled.

    Attributes
    ----------
    history_, n_iter_, best_iteration_, classes_, n_features_in_
        As the local estimator's.
    timings_ : dict of lists
        SGD-type solvers: per epoch, ``"epoch"``: its seconds on the driver (wall clock);
        ``"compute"``: the slowest worker's CPU seconds in the solver, summed over the
        rounds; ``"exchange"``: the slowest worker's CPU seconds preparing and combining the
        rounds' changes. CPU seconds do not grow with other jobs' load, so
        ``compute / (compute + exchange)`` is the parallel fraction of the work, and
        ``epoch - compute - exchange`` is waiting: for the scheduler, the network, a core.
    rounds_per_epoch_ : int
        SGD-type solvers: the rounds per epoch the fit ran (``rounds_per_epoch`` resolved).
    """


class _Run:
    """One distributed fit: the futures it holds and the epochs it runs."""

    def __init__(self, client, est, local):
        self.client, self.est, self.local = client, est, local
        self.futures = []
        self.epochs = 0  # epochs run (for messages)
        self.version = 0  # bumped when the workers' parameters change (see _Replica)
        self.replica = None
        self.timings = {"epoch": [], "compute": [], "exchange": []}  # see timings_

    def release(self):
        for f in self.futures:
            f.release()
        self.futures = []

    # -------------------------------------------------------- futures
    def _hold(self, futures):
        self.futures.extend(futures)
        return futures

    def _gather(self, futures, what):
        """Results of ``futures``, or :class:`DaskWorkerLostError` when a worker holding a
        shard leaves (a task pinned to it would otherwise wait for ever)."""
        try:
            while True:
                try:
                    wait(futures, timeout=_ALIVE_CHECK_S)
                except (TimeoutError, distributed.TimeoutError):
                    self._check_alive(what)
                    continue
                return self.client.gather(futures)
        except DaskWorkerLostError:
            raise
        except Exception as e:  # a worker died while computing, or a task failed
            lost = self._lost_workers()
            if lost:
                raise self._lost_error(lost, what) from e
            raise

    def _lost_workers(self):
        """Shard workers the scheduler no longer has, by two looks ``_ALIVE_CHECK_S`` apart
        (one look at a busy scheduler once came back without its workers)."""
        lost = None
        for attempt in range(2):
            if attempt:
                time.sleep(_ALIVE_CHECK_S)
            alive = set(self.client.scheduler_info(n_workers=-1)["workers"])
            gone = {w for w in self.shard_workers if w not in alive}
            lost = gone if lost is None else lost & gone
            if not lost:
                return []
        return sorted(lost)

    def _check_alive(self, what):
        lost = self._lost_workers()
        if lost:
            raise self._lost_error(lost, what)

    def _lost_error(self, lost, what):
        return DaskWorkerLostError(
            f"Dask worker(s) {', '.join(lost)} left during {what}. fmlearn.dask does not retry: "
            "the training rows they held left with them, and a model trained without them "
            "would be silently partial. No model was kept; fit again (the data is read again "
            "from its source onto the workers still running).")

    def _on(self, fn, shards, *args, **kwargs):
        """``fn(shard, *args)`` on each shard's worker."""
        return [self.client.submit(fn, s, *args, workers=[w], allow_other_workers=False,
                                   pure=False, **kwargs)
                for s, w in zip(shards, self.shard_workers, strict=True)]

    # -------------------------------------------------------- data
    def _shards(self, X, y, sw, encoder, file_format, label, n_features=None):
        client, local = self.client, self.local
        parts = self._hold(_partitions(client, X, y, sw, encoder=encoder,
                                       file_format=file_format, label=label))
        wait(parts)
        widths = client.gather([client.submit(_width, p, pure=False) for p in parts])
        if n_features is None:
            n_features = max(w for w, _ in widths)
            fields = [f for _, f in widths if f is not None]
            local.n_features_in_ = n_features
            if fields:
                merged = np.full(n_features, -1, dtype=np.int32)
                for f in fields:
                    merged[: f.shape[0]] = np.maximum(merged[: f.shape[0]], f)
                local._input_fields = np.maximum(merged, 0)
            if isinstance(local, ClassifierMixin):
                labels = client.gather([client.submit(_labels, [p], pure=False) for p in parts])
                local._encode_y(np.unique(np.concatenate(labels)), reset=True)
        who = client.who_has(parts)
        by_worker: dict = {}
        for p in parts:  # partition order kept within each worker
            by_worker.setdefault(sorted(who[p.key])[0], []).append(p)
        workers = sorted(by_worker)
        shards = [client.submit(_build_shard, local, n_features, *by_worker[w], workers=[w],
                                allow_other_workers=False, pure=False) for w in workers]
        self._hold(shards)
        self._gather([client.submit(_n_rows, s, workers=[w], pure=False)
                      for s, w in zip(shards, workers, strict=True)], "loading")
        # The shards hold the rows now: the partitions need not stay in the workers' memory.
        for p in parts:
            self.futures.remove(p)
            p.release()
        return shards, workers

    # -------------------------------------------------------- the fit
    def fit(self, X, y, sw, eval_set, encoder, file_format, label, callbacks):
        est, local = self.est, self.local
        solver_cls = local._solver_class()
        self.shard_workers = []
        shards, workers = self._shards(X, y, sw, encoder, file_format, label)
        self.shard_workers = workers
        self.shards = shards
        task = local._task
        summaries = self._gather(self._on(_shard_summary, shards, local,
                                          isinstance(local, ClassifierMixin)), "loading")
        n_rows = sum(s[0] for s in summaries)
        solver = solver_cls.from_estimator(local, task.loss)
        local._rng = _rng_from(local.random_state)
        local._resolve_early_stopping(n_rows, local.max_iter, solver_cls)
        valid_rows = self._validation(eval_set, encoder, file_format, label, solver_cls)
        summaries = self._gather(self._on(_shard_summary, shards, local,
                                          isinstance(local, ClassifierMixin)), "loading")
        if local.fit_intercept or task.task_intercepts:
            if len(summaries) == 1:
                w0 = summaries[0][3]
            else:
                ys = np.concatenate([s[2][0] for s in summaries])
                ws = np.concatenate([s[2][1] for s in summaries])
                w0 = task.initial_bias(ys, ws)
        else:
            w0 = 0.0
        local._start(local._n_columns(), solver_cls, solver, w0)
        local._link = solver_cls.classification_link
        self.weight_sum = sum(s[1] for s in summaries)
        self.solver = solver
        if issubclass(solver_cls, ALSSolver):
            nxt = self._gather(self._on(_als_prepare, shards, solver), "loading")
            n = local._n_columns()
            self.blocks = _conflict_free_blocks(np.minimum.reduce(nxt), n)
            # The local sweep's order for the rows each worker holds (ALSSolver.run_epoch).
            k = local._params.n_factors
            self.feature_major = max(s[0] for s in summaries) * (k + 2) * 8 <= SUMS_CACHE_BYTES
            epoch = self._als_sweep
        else:
            seed = int(np.random.default_rng(local.random_state if isinstance(
                local.random_state, (int, np.integer)) else None).integers(2**31))
            n = local._n_columns()
            self.rounds = est.rounds_per_epoch
            if self.rounds == "auto":
                big = max(summaries, key=lambda s: s[4])
                self.rounds = auto_rounds(len(shards), big[0], big[4], n)
            rounds = self._gather(self._on(_split_rounds, shards, self.rounds, seed),
                                  "loading")
            if hasattr(solver, "resolved_min_count"):
                solver.auto_floor = not local._stopping_early and local.max_iter > 1
            if hasattr(solver, "resolved_min_count") and solver.resolved_min_count():
                # The per-feature L2 floor from the column counts of all the training rows,
                # as a local fit's prepare() takes them (fmlearn.optim.sgd.l2_scale); set
                # before the solver is sent to the workers.
                from fmlearn.optim.sgd import l2_scale

                total = np.zeros(local._params.n_features)
                for per_shard in rounds:
                    for counts, touched, _ in per_shard:
                        total[touched] += counts
                solver.reg_scale = l2_scale(total, solver.resolved_min_count())
            W = len(shards)
            plans = [_exchange_plan([rw[r] for rw in rounds], n, local._params.dtype)
                     for r in range(len(rounds[0]))] if W > 1 else None
            # Scattered once: from here on the workers hold the parameters, rounds exchange
            # only changed rows between them, and the driver fetches the parameters only
            # when it needs them (a best epoch's snapshot, the end of the fit).
            self._gather([self.client.submit(
                _set_replica, s, local._params, local._solver_state, solver,
                local._rng if W == 1 else None, None if plans is None else [p[i] for p in plans],
                workers=[w], allow_other_workers=False, pure=False)
                for i, (s, w) in enumerate(zip(shards, workers, strict=True))], "loading")
            local._params = self.replica = _Replica(self)
            epoch = self._sgd_epoch
        validate = self._validate if valid_rows else None
        local._train(epoch, validate, local.max_iter, callbacks,
                     stoppable=solver_cls.stoppable)
        if self.replica is not None:
            # The last epoch's solver state, and its parameters unless a best epoch's were
            # restored, as a local fit keeps them.
            params, local._solver_state = self.replica.fetch()
            if isinstance(local._params, _Replica):
                local._params = params

    def _validation(self, eval_set, encoder, file_format, label, solver_cls):
        """Validation rows on every worker: ``eval_set``'s shards, or a held-out part of each
        shard; returns their number (0: no validation)."""
        local = self.local
        if eval_set is not None:
            Xv, yv, *rest = eval_set
            vshards, vworkers = self._shards(Xv, yv, rest[0] if rest else None, encoder,
                                             file_format, label,
                                             n_features=local.n_features_in_)
            total = 0
            for w, vs in zip(vworkers, vshards, strict=True):
                if w not in self.shard_workers:
                    raise ValueError(
                        f"eval_set has rows on worker {w}, which holds no training rows; "
                        "partition eval_set like X (or pass it as one in-memory matrix).")
                s = self.shards[self.shard_workers.index(w)]
                total += self._gather([self.client.submit(_set_valid, s, vs, workers=[w],
                                                          pure=False)], "loading")[0]
            return total
        if not (local._stopping_early or solver_cls.needs_validation):
            return 0
        seed = int(local._rng.integers(np.iinfo(np.int32).max))
        kept = self._gather(self._on(_hold_out, self.shards, local.validation_fraction, seed,
                                     local._task.stratify), "loading")
        return 1 if sum(kept) else 0

    def _sgd_epoch(self):
        """One epoch of ``rounds_per_epoch`` rounds on the workers' replicas: each trains its
        rows of the round, then every worker combines all workers' changes (fetched from its
        peers by Dask, not through the driver). All rounds are submitted at once; a worker's
        next round waits for its combination of the last."""
        local, client = self.local, self.client
        t_start = time.perf_counter()
        W = len(self.shards)
        pending = [()] * W
        out = []
        for r in range(self.rounds):
            seed = None if W == 1 else int(local._rng.integers(2**62))
            trains = [client.submit(_train_round, s, r, seed, local.n_jobs, *after,
                                    workers=[w], allow_other_workers=False, pure=False)
                      for s, w, after in zip(self.shards, self.shard_workers, pending,
                                             strict=True)]
            if W == 1:
                pending = [(trains[0],)]
                out.append(trains[0])
                continue
            applies = [client.submit(_apply_round, s, r, *trains, workers=[w],
                                     allow_other_workers=False, pure=False)
                       for s, w in zip(self.shards, self.shard_workers, strict=True)]
            pending = [(f,) for f in applies]
            out += applies
        results = self._gather(out, f"epoch {self.epochs + 1}")
        compute = exchange = 0.0
        if W == 1:
            loss = sum(res[0] for res in results)
            compute = sum(res[2][0] for res in results)
        else:  # every worker returns the round's total: take worker 0's
            loss = sum(res[0] for res in results[::W])
            for r in range(0, len(results), W):
                seconds = results[r][1]
                compute += max(c for c, _ in seconds)
                exchange += max(e + res[2] for (_, e), res in
                                zip(seconds, results[r:r + W], strict=True))
        self.timings["epoch"].append(time.perf_counter() - t_start)
        self.timings["compute"].append(compute)
        self.timings["exchange"].append(exchange)
        self.epochs += 1
        self.version += 1
        return local._task.metric_from_loss_sum(loss, self.weight_sum)

    def _als_sweep(self):
        """One exact ALS sweep over the workers (see :func:`_als_step`)."""
        local, client, solver = self.local, self.client, self.solver
        params = local._params
        table, k = params.table, params.n_factors
        # The local sweep recomputes the rows' sums every REFRESH_SWEEPS sweeps from its
        # first on, and carries them between.
        refresh = self.epochs % REFRESH_SWEEPS == 0
        self.epochs += 1
        what = f"sweep {self.epochs}"
        broadcast = client.scatter([params], broadcast=True, hash=False)[0]
        e_sums = self._gather(self._on(_als_start, self.shards, broadcast, solver,
                                       self.feature_major, refresh), what)
        broadcast.release()
        # ALS's penalties are on the mean loss: on the total they scale with the weight.
        n = self.weight_sum
        lam_w, lam_V = solver.l2_reg_w * n, solver.l2_reg_V * n
        rng = np.zeros(1, dtype=np.uint64)
        pending = None
        if solver.fit_intercept:
            old = float(params.w0[0])
            new = old + math.fsum(e_sums) / n if len(e_sums) > 1 else old + e_sums[0] / n
            params.w0[0] = new
            pending = ("w0", 0, 0, 1, np.array([new, new - old]))
        blocks = list(zip(self.blocks[:-1], self.blocks[1:], strict=True))
        linear = [("w", 0)] if solver.fit_linear else []
        factors = [("v", f) for f in range(k)]
        if self.feature_major:
            # Per block, w of its features, then factor by factor: the local feature-major
            # order, as the block's features share no row.
            steps = [(kind, f, a, b) for a, b in blocks for kind, f in linear + factors]
        else:
            steps = [(kind, f, a, b) for kind, f in linear + factors for a, b in blocks]
        for kind, f, a, b in steps:
            sums = self._gather(self._on(_als_step, self.shards, pending,
                                         ("sums", kind, f, a, b)), what)
            total = sums[0] if len(sums) == 1 else np.sum(sums, axis=0)
            col = k if kind == "w" else f
            values = np.empty(b - a)
            cd.block_values(np.ascontiguousarray(table[a:b, col]), total, 1.0, 0.0,
                            lam_w if kind == "w" else lam_V, False, rng, values)
            table[a:b, col] = values
            pending = (kind, f, a, b, values)
        losses = self._gather(self._on(_als_step, self.shards, pending, ("loss",)), what)
        return local._task.metric_from_loss_sum(sum(losses), self.weight_sum)

    def _validate(self):
        local = self.local
        if isinstance(local._params, _Replica):  # scored with each worker's replica
            params = None
        else:
            params = self.client.scatter([local._params], broadcast=True, hash=False)[0]
        parts = self._gather(self._on(_validation_output, self.shards, params,
                                      local._output_link, local.n_jobs), "validation")
        parts = [p for p in parts if p is not None]
        yv = np.concatenate([p[0] for p in parts])
        out = np.concatenate([p[1] for p in parts])
        swv = np.concatenate([p[2] for p in parts])
        return local._task.score(yv, out, swv), out


def _exchange_plan(weights, n_features, dtype):
    """Each worker's part of a round's combination, computed once per fit.

    ``weights``: per worker, ``(counts, touched, n_rows)``: the non-zeros it trains in each
    feature it touches, and its rows. Returns per worker a dict: ``index``; ``excl``, the
    features only it touches (int32; their combined row is its row); ``shared``, those others
    touch too, with ``weights``, its share ``count / all workers' count`` of each (``dtype``);
    ``row_share``, its share of the rows (the small arrays' weight).
    """
    total = np.zeros(n_features)
    touchers = np.zeros(n_features, dtype=np.int32)
    for c, t, _ in weights:
        total[t] += c
        touchers[t] += 1
    n_rows = np.array([float(w[2]) for w in weights])
    plans = []
    for i, (c, t, _) in enumerate(weights):
        multi = touchers[t] > 1
        plans.append({"index": i, "excl": t[~multi].astype(np.int32),
                      "shared": t[multi].astype(np.int32),
                      "weights": (c[multi] / total[t[multi]]).astype(dtype),
                      "row_share": n_rows[i] / n_rows.sum()})
    return plans


def _same(obj):
    return obj


class _Replica:
    """The driver's stand-in for the parameters the workers hold (``local._params`` during a
    distributed SGD-type fit): any use (the engine's snapshot of a best epoch, a callback
    reading the model) fetches them from the first worker, once per epoch."""

    def __init__(self, run):
        self._run = run
        self._cached = None

    def fetch(self):
        """(params, solver state) after the last epoch, fetched from a worker."""
        run = self._run
        if self._cached is None or self._cached[0] != run.version:
            got = run._gather([run.client.submit(_get_replica, run.shards[0],
                                                 workers=[run.shard_workers[0]],
                                                 allow_other_workers=False, pure=False)],
                              "fetching the parameters")[0]
            self._cached = (run.version, got)
        return self._cached[1]

    def __reduce__(self):  # a copy or pickle of the estimator holds the parameters
        return _same, (self.fetch()[0],)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.fetch()[0], name)


# ======================================================================== estimators
class _DaskRegressor(RegressorMixin, _DaskFM):
    pass


class _DaskClassifier(ClassifierMixin, _DaskFM):
    def predict(self, X, encoder=None):
        """Predicted class labels: a Dask array for Dask input, else a numpy array."""
        return self._apply(_encoded(X, encoder), "predict", 0)

    def predict_proba(self, X, encoder=None):
        """Class probabilities, shape (n_samples, n_classes): a Dask array for Dask input."""
        check_is_fitted(self)
        return self._apply(_encoded(X, encoder), "predict_proba", len(self.classes_))


class DaskFMRegressor(_DaskRegressor):
    """:class:`fmlearn.FMRegressor` trained on a Dask cluster (see :mod:`fmlearn.dask`).
    """

    _local_class = FMRegressor


class DaskFMClassifier(_DaskClassifier):
    """:class:`fmlearn.FMClassifier` trained on a Dask cluster (see :mod:`fmlearn.dask`).
    """

    _local_class = FMClassifier


class DaskFFMRegressor(_DaskRegressor):
    """:class:`fmlearn.FFMRegressor` trained on a Dask cluster (see :mod:`fmlearn.dask`).
    """

    _local_class = FFMRegressor


class DaskFFMClassifier(_DaskClassifier):
    """:class:`fmlearn.FFMClassifier` trained on a Dask cluster (see :mod:`fmlearn.dask`).
    """

    _local_class = FFMClassifier


class DaskFwFMRegressor(_DaskRegressor):
    """:class:`fmlearn.FwFMRegressor` trained on a Dask cluster (see :mod:`fmlearn.dask`).
    """

    _local_class = FwFMRegressor


class DaskFwFMClassifier(_DaskClassifier):
    """:class:`fmlearn.FwFMClassifier` trained on a Dask cluster (see :mod:`fmlearn.dask`).
    """

    _local_class = FwFMClassifier
