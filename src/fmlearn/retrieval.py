"""Top-k retrieval with any second-order FM: :func:`recommend` and :class:`RecommendMixin`.

The score of (query, candidate) is the FM of the concatenated row ``[query features |
candidate features]``. It splits into a query part, a candidate part and one inner product
of their factor sums, so all candidates of a batch of queries are scored by one matrix
product and ``argpartition`` picks the top k: no per-pair feature rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_array, check_is_fitted

from fmlearn._kernels import ranking as rank_kernels
from fmlearn._parallel import effective_n_jobs, run_blocks
from fmlearn.data.design import KernelCSR, as_kernel_csr
from fmlearn.data.validation import check_matrix
from fmlearn.metrics import _relevance_matrix
from fmlearn.models.fm import FMParams
from fmlearn.models.posterior import PosteriorFM

# Score-matrix cells per batch of queries (32 MB of float64).
_BATCH_CELLS = 4_000_000


def _feature_csr(M, name: str, n_rows: int | None) -> sp.csr_matrix:
    """Canonical CSR of a query or candidate feature matrix; None means one-hot ids."""
    if M is None:
        if n_rows is None:
            raise ValueError(
                f"{name}=None means one-hot ids, which needs the number of rows: pass "
                f"positives as a sparse (n_queries, n_candidates) matrix, or pass {name} "
                f"(e.g. scipy.sparse.identity(n_{name}, format='csr'))."
            )
        return sp.identity(n_rows, dtype=np.float32, format="csr")
    M = check_array(M, accept_sparse=True, dtype=[np.float64, np.float32], input_name=name)
    return check_matrix(M, name)


def _as_exclude(exclude, shape) -> sp.csr_matrix | None:
    """``exclude`` (matrix, or index collections per query) as a CSR of ``shape``."""
    if exclude is None:
        return None
    M = _relevance_matrix(exclude, shape[1], "exclude")
    if M.shape != shape:
        raise ValueError(
            f"exclude has shape {M.shape}; it must be (n_queries, n_candidates) = {shape} (e.g. "
            "the training interaction matrix, or one collection of candidate indices per query "
            f"below {shape[1]})."
        )
    return M


def _model_space(X: sp.csr_matrix, columns: np.ndarray | None, offset: int = 0) -> KernelCSR:
    """Kernel CSR of ``X`` with its column ``j`` renamed to model column ``columns[j]``
    (or ``offset + j``)."""
    Xk = as_kernel_csr(X, check=False)  # checked by _feature_csr
    if columns is not None:
        indices = columns[Xk.indices].astype(np.int32)
    elif offset:
        indices = Xk.indices + np.int32(offset)
    else:
        return Xk
    return KernelCSR(Xk.indptr, indices, Xk.data, Xk.n_features)


# ------------------------------------------------------------------------ scoring
def _row_parts(X: KernelCSR, w0, params: FMParams, n_jobs):
    """(const (n,), factor sums (n, k)) of each row: its FM alone (+ ``w0``) and ``S``."""
    k = params.n_factors
    const = np.empty(X.n_rows, dtype=np.float64)
    sums = np.empty((X.n_rows, k), dtype=np.float64)

    def block(a, b):
        rank_kernels.row_parts(
            X.indptr[a : b + 1], X.indices, X.data, w0, params.table, k, const[a:b], sums[a:b]
        )

    run_blocks(block, X.n_rows, min(effective_n_jobs(n_jobs), max(1, X.n_rows // 5000)))
    return const, sums


@dataclass
class _Parts:
    """The split score ``const_q + const_c + <S_q, S_c>`` of every (query, candidate) pair.

    Stored as the two factors of one matrix product, ``left = [S_q | const_q | 1]`` and
    ``right = [S_c | 1 | const_c]``: the constants ride along in the product instead of
    costing two more passes over the score matrix.
    """

    left: np.ndarray  # (n_queries, k' + 2)
    right_T: np.ndarray  # (k' + 2, n_candidates), contiguous for the matrix product

    @classmethod
    def of(cls, params: FMParams, Qk: KernelCSR, Ck: KernelCSR, n_jobs) -> _Parts:
        """Parts of queries ``Qk`` and candidates ``Ck``, both indexed in model columns.

        A posterior (``solver="mcmc"``) scores by the mean over its kept samples, which
        splits the same way: mean constants, and the samples' factor sums side by side
        (scaled by 1 / n_samples on the query side), so one product still gives the mean.
        """
        points = _points(params)
        q_parts = [_row_parts(Qk, p.w0, p, n_jobs) for p in points]
        c_parts = [_row_parts(Ck, np.zeros(1, dtype=p.dtype), p, n_jobs) for p in points]
        n = len(points)
        left = np.column_stack(
            [q[1] / n for q in q_parts]
            + [np.mean([q[0] for q in q_parts], axis=0), np.ones(Qk.n_rows)]
        )
        right = np.column_stack(
            [c[1] for c in c_parts]
            + [np.ones(Ck.n_rows), np.mean([c[0] for c in c_parts], axis=0)]
        )
        return cls(left, np.ascontiguousarray(right.T))

    @property
    def shape(self) -> tuple[int, int]:
        return self.left.shape[0], self.right_T.shape[1]

    def scores(self, a: int, b: int, exclude: sp.csr_matrix | None) -> np.ndarray:
        """Scores of queries ``a:b`` against every candidate, excluded pairs at -inf."""
        return mask_excluded(self.left[a:b] @ self.right_T, a, b, exclude)

    def top_k(self, k: int, exclude, n_jobs) -> tuple[np.ndarray, np.ndarray]:
        """Indices and scores of the ``k`` best candidates per query, best first."""
        return top_k(self, k, exclude, n_jobs)


def mask_excluded(out: np.ndarray, a: int, b: int, exclude: sp.csr_matrix | None) -> np.ndarray:
    """``out`` (the scores of queries ``a:b``, all candidates) with the excluded pairs at -inf."""
    if exclude is not None:
        ex = exclude[a:b]
        out[np.repeat(np.arange(b - a), np.diff(ex.indptr)), ex.indices] = -np.inf
    return out


def top_k(scorer, k: int, exclude, n_jobs) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the ``k`` best candidates per query, best first.

    ``scorer`` has ``shape`` (n_queries, n_candidates) and ``scores(a, b, exclude)``, the
    (b - a, n_candidates) scores of queries ``a:b`` with excluded pairs at -inf (:class:`_Parts`
    by one matrix product; a deep ranker by batched forward passes, with ``n_jobs=1`` here as
    torch runs its own threads).
    """
    n_q, n_c = scorer.shape
    k = min(k, n_c)
    idx = np.empty((n_q, k), dtype=np.int64)
    val = np.empty((n_q, k), dtype=np.float64)
    batch = max(1, _BATCH_CELLS // max(n_c, 1))

    def block(a0, b0):
        # numpy's matrix product and partition release the GIL: threads run in parallel.
        for a in range(a0, b0, batch):
            b = min(a + batch, b0)
            s = scorer.scores(a, b, exclude)
            if k < n_c:
                part = np.sort(np.argpartition(s, n_c - k, axis=1)[:, n_c - k :], axis=1)
            else:
                part = np.broadcast_to(np.arange(n_c), s.shape)
            best = np.take_along_axis(s, part, axis=1)
            # Stable on sorted indices: ties go to the lower candidate index.
            order = np.argsort(-best, axis=1, kind="stable")
            idx[a:b] = np.take_along_axis(part, order, axis=1)
            val[a:b] = np.take_along_axis(best, order, axis=1)

    n_threads = min(effective_n_jobs(n_jobs), max(1, n_q // 256))
    run_blocks(block, n_q, n_threads)
    return idx, val


def _points(params: FMParams) -> list[FMParams]:
    """The point estimates whose mean score is the model's: the kept posterior samples of an
    MCMC model, else the parameters themselves."""
    if isinstance(params, PosteriorFM) and params.n_samples > 0:
        return [FMParams(params.w0_samples[s : s + 1], params.samples[s], params.n_factors)
                for s in range(params.n_samples)]
    return [params]


def _fm_params(model) -> FMParams:
    """The second-order FM parameters of a fitted estimator (or the parameters themselves)."""
    if isinstance(model, FMParams):
        return model
    if hasattr(model, "__sklearn_is_fitted__"):
        check_is_fitted(model)
    params = getattr(model, "_params", None)
    if not isinstance(params, FMParams):
        kind = getattr(params, "kind", type(params).__name__)
        raise TypeError(
            f"recommend needs a second-order FM with one score per row (FMRanker, FMRegressor, "
            f"binary FMClassifier, or FMParams); this {type(model).__name__} has {kind!r} "
            "parameters, whose scores do not split into a query part and a candidate part. "
            "Score assembled [query | candidate] rows with its predict/decision_function."
        )
    return params


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    return int(k)


def recommend(
    model, queries, candidates, k=10, *, exclude=None, query_columns=None, n_jobs=None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` candidates for each query under a second-order FM, best first.

    The score of (query ``q``, candidate ``c``) is the FM of the concatenated row
    ``[q | c]``, computed in parts: ``const_q + const_c + <S_q, S_c>``, where ``const_q`` is
    ``w0`` plus the FM of the query row alone, ``const_c`` the FM of the candidate row alone
    and ``S_q``, ``S_c`` the sums of their features' factors ``v_i x_i``. All candidates are
    scored by one matrix product per batch of queries, then ``argpartition`` picks the top
    ``k``: O(n_queries * n_candidates * n_factors), no per-pair feature rows.

    Column split: by default ``queries`` covers the model's first ``queries.shape[1]``
    columns and ``candidates`` the remaining ones, so a model trained on
    ``[user one-hot | item one-hot]`` rows ranks items for users with
    ``queries = identity(n_users)`` (or any rows of user features) and ``candidates =
    identity(n_items)``. If the model's columns are interleaved (say ``[user | item | user
    age]``), give ``query_columns``: the model column of each column of ``queries``;
    ``candidates`` then covers the other columns in increasing order.

    Parameters
    ----------
    model : fitted FMRanker, FMRegressor or FMClassifier, or FMParams
        Any second-order FM. Regressors rank by predicted rating, binary classifiers by the
        decision function (log-odds), which is the probability's order. MCMC models rank by
        the posterior mean of the FM output (an MCMC regressor's ``predict``). A deep ranker
        (``fmlearn.deep``, e.g. ``DeepFMRanker``) scores every pair by batched forward
        passes (its :meth:`recommend`; queries and candidates as in its fit).
    queries : {array-like, sparse matrix} of shape (n_queries, n_query_features)
        One row of query features per query to recommend for.
    candidates : {array-like, sparse matrix} of shape (n_candidates, n_candidate_features)
        One row of candidate features per candidate.
    k : int, default=10
        Number of candidates per query; at most ``n_candidates`` are returned.
    exclude : sparse matrix or array-like of shape (n_queries, n_candidates), or list, optional
        Pairs never to recommend (e.g. the training positives): entries > 0, or one
        collection of candidate indices per query. They score ``-inf``; a query with fewer
        than ``k`` other candidates gets them last, at ``-inf``.
    query_columns : array-like of int of shape (n_query_features,), optional
        Model column of each query column (distinct). Default: ``0 .. n_query_features - 1``.
    n_jobs : int or None, default=None
        Threads (None: 1, -1: all cores).

    Returns
    -------
    indices : ndarray of int64, shape (n_queries, min(k, n_candidates))
        Candidate row indices, best first. Tied candidates among those returned come in index
        order; which of several candidates tied at the k-th place is returned is unspecified.
    scores : ndarray of float64, shape (n_queries, min(k, n_candidates))
        Their scores: the model output for the concatenated row.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from fmlearn import FMRegressor
    >>> from fmlearn.data import make_recommendation
    >>> data = make_recommendation(n_users=50, n_items=40, n_ratings=1500, random_state=0)
    >>> X, _ = data.one_hot(with_context=False)  # columns [user | item]
    >>> model = FMRegressor(n_factors=4, max_iter=5, random_state=0).fit(X, data.rating)
    >>> top, scores = recommend(model, sp.identity(50), sp.identity(40), k=5)
    >>> top.shape
    (50, 5)
    """
    if getattr(model, "_scores_by_forward", False):
        # No factorized score (the deep rankers): the model scores pairs by forward passes.
        if query_columns is not None:
            raise ValueError(f"{type(model).__name__} takes queries and candidates as it was "
                             "fitted on; query_columns applies to FMs fitted on joined rows.")
        return model.recommend(queries, candidates, k, exclude=exclude)
    params = _fm_params(model)
    k = _check_k(k)
    n = params.n_features
    Q = _feature_csr(queries, "queries", None)
    C = _feature_csr(candidates, "candidates", None)
    if query_columns is None:
        q_cols = None
        if Q.shape[1] + C.shape[1] != n:
            raise ValueError(
                f"queries has {Q.shape[1]} columns and candidates {C.shape[1]}, together "
                f"{Q.shape[1] + C.shape[1]}; the model has {n} features. By default queries "
                "are the model's first columns and candidates the rest; for another layout "
                "pass query_columns (the model column of each query column)."
            )
        c_cols, offset = None, Q.shape[1]
    else:
        q_cols = np.asarray(query_columns)
        if q_cols.ndim != 1 or q_cols.dtype.kind not in "iu":
            raise ValueError("query_columns must be a 1-D array of integer model columns.")
        q_cols = q_cols.astype(np.int64)
        if q_cols.size and (q_cols.min() < 0 or q_cols.max() >= n):
            raise ValueError(f"query_columns must lie in [0, {n}), the model's columns.")
        if np.unique(q_cols).size != q_cols.size:
            raise ValueError("query_columns holds a column twice; each must be distinct.")
        c_cols = np.setdiff1d(np.arange(n), q_cols)
        if Q.shape[1] != q_cols.size or C.shape[1] != c_cols.size:
            raise ValueError(
                f"with {q_cols.size} query_columns, queries must have {q_cols.size} columns "
                f"and candidates the other {c_cols.size}; got {Q.shape[1]} and {C.shape[1]}."
            )
        offset = 0
    parts = _Parts.of(params, _model_space(Q, q_cols), _model_space(C, c_cols, offset), n_jobs)
    return parts.top_k(k, _as_exclude(exclude, parts.shape), n_jobs)


class RecommendMixin:
    """Adds :meth:`recommend` to second-order FM estimators (FMRegressor, FMClassifier)."""

    def recommend(self, queries, candidates, k=10, *, exclude=None, query_columns=None):
        """Top-``k`` candidates per query, best first; see :func:`fmlearn.retrieval.recommend`.

        Returns
        -------
        indices : ndarray of int64, shape (n_queries, min(k, n_candidates))
        scores : ndarray of float64, shape (n_queries, min(k, n_candidates))
        """
        return recommend(
            self, queries, candidates, k, exclude=exclude, query_columns=query_columns,
            n_jobs=self.n_jobs,
        )
