"""Evaluation metrics for regression, binary classification and ranking.

Thin, documented wrappers so that the CLI, the demo and benchmarks report the same numbers.
Ranking metrics (per-query AUC, precision, recall, NDCG, MAP and hit rate at k) come last.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def rmse(y_true, y_pred, sample_weight=None) -> float:
    """Root mean squared error."""
    d = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    return float(np.sqrt(np.average(d * d, weights=sample_weight)))


def mae(y_true, y_pred, sample_weight=None) -> float:
    """Mean absolute error."""
    d = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    return float(np.average(np.abs(d), weights=sample_weight))


def logloss(y_true, proba, sample_weight=None, eps=1e-15) -> float:
    """Binary log loss; ``y_true`` in {0, 1} (or booleans), ``proba`` of the positive class."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.clip(np.asarray(proba, dtype=np.float64), eps, 1 - eps)
    return float(np.average(-(y * np.log(p) + (1 - y) * np.log1p(-p)), weights=sample_weight))


def auc(y_true, score, sample_weight=None) -> float:
    """Area under the ROC curve; NaN when ``y_true`` holds a single class."""
    y = np.asarray(y_true)
    if np.unique(y).shape[0] < 2:
        return float("nan")
    return float(roc_auc_score(y, score, sample_weight=sample_weight))


def accuracy(y_true, y_pred, sample_weight=None) -> float:
    """Share of correct labels."""
    return float(np.average(np.asarray(y_true) == np.asarray(y_pred), weights=sample_weight))


def regression_report(y_true, y_pred) -> dict[str, float]:
    """RMSE and MAE."""
    return {"rmse": rmse(y_true, y_pred), "mae": mae(y_true, y_pred)}


def classification_report(y_true01, proba) -> dict[str, float]:
    """Log loss, AUC and accuracy (threshold 0.5) for 0/1 targets and positive-class scores."""
    y = np.asarray(y_true01)
    p = np.asarray(proba)
    return {"logloss": logloss(y, p), "auc": auc(y, p), "accuracy": accuracy(y, p > 0.5)}


# ------------------------------------------------------------------------------ ranking
# Every top-k metric takes the relevant candidates of each query (``y_true``) and the ranking,
# either as scores over all candidates (``y_score``) or as the indices of the top candidates
# in rank order (``top_k``, e.g. the first output of :func:`fmlearn.retrieval.recommend`). They
# return the mean over the queries that have at least one relevant candidate (queries with
# none have no defined recall or NDCG; sklearn's ``ndcg_score`` counts them as 0 instead).


def _relevance_matrix(y_true, n_candidates=None, name="y_true"):
    """``y_true`` as a canonical CSR matrix of float64 relevance, shape (n_queries, n_cand).

    Accepts an array or sparse matrix of shape (n_queries, n_candidates) (entries > 0 are
    relevant, their value is the graded relevance used by NDCG), or a list/tuple with one
    collection of relevant candidate indices per query (binary relevance). ``name`` is the
    argument named in error messages.
    """
    import scipy.sparse as sp

    if isinstance(y_true, (list, tuple)):
        sets = [np.unique(np.asarray(list(s) if isinstance(s, (set, frozenset)) else s,
                                     dtype=np.int64).ravel()) for s in y_true]
        lengths = np.array([s.size for s in sets], dtype=np.int64)
        cols = np.concatenate(sets) if sets else np.zeros(0, np.int64)
        if cols.size and cols.min() < 0:
            raise ValueError(f"{name} holds a negative candidate index; indices start at 0.")
        n_c = max(int(cols.max()) + 1 if cols.size else 0, n_candidates or 0)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        return sp.csr_matrix((np.ones(cols.size), cols, indptr), shape=(len(sets), n_c))
    from fmlearn.data.validation import check_structure

    R = sp.csr_matrix(check_structure(y_true, name), dtype=np.float64) if sp.issparse(
        y_true) else None
    if R is None:
        dense = np.asarray(y_true, dtype=np.float64)
        if dense.ndim != 2:
            raise ValueError(
                f"{name} must be a 2-D (n_queries, n_candidates) array or sparse matrix, or a "
                f"list of candidate index collections per query; got shape {dense.shape}."
            )
        R = sp.csr_matrix(dense)
    R = R.copy()
    R.sum_duplicates()
    if R.data.size and (not np.isfinite(R.data).all() or R.data.min() < 0):
        raise ValueError(f"{name} values must be finite and non-negative.")
    R.eliminate_zeros()
    return R


def _top_k_from(y_score, top_k, k: int, n_queries: int, n_candidates: int) -> np.ndarray:
    """Top-``k`` candidate indices per query (n_queries, k) from scores or a given top-k."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    if (y_score is None) == (top_k is None):
        raise ValueError("pass exactly one of y_score (scores) and top_k (ranked indices).")
    if top_k is not None:
        top = np.asarray(top_k)
        if top.ndim != 2 or top.dtype.kind not in "iu":
            raise ValueError(
                f"top_k must be a 2-D integer array (n_queries, >= k) of candidate indices in "
                f"rank order; got shape {top.shape} and dtype {top.dtype}."
            )
        if top.shape[0] != n_queries:
            raise ValueError(f"top_k has {top.shape[0]} rows but y_true has {n_queries} queries.")
        if top.shape[1] < k:
            raise ValueError(
                f"top_k has {top.shape[1]} columns, fewer than k={k}: rank at least k "
                "candidates per query (e.g. recommend(..., k=k))."
            )
        top = top[:, :k].astype(np.int64)
        if top.size and (top.min() < 0 or top.max() >= n_candidates):
            raise ValueError(
                f"top_k holds candidate indices outside [0, {n_candidates}), the columns of "
                "y_true."
            )
        return top
    S = np.asarray(y_score, dtype=np.float64)
    if S.shape != (n_queries, n_candidates):
        raise ValueError(
            f"y_score has shape {S.shape}; expected (n_queries, n_candidates) = "
            f"({n_queries}, {n_candidates}), the shape of y_true."
        )
    if np.isnan(S).any():
        raise ValueError("y_score contains NaN; scores must be numbers (-inf to exclude).")
    k = min(k, n_candidates)
    # Stable sort of the negated scores: ties go to the lower candidate index.
    return np.argsort(-S, axis=1, kind="stable")[:, :k]


def _ranking_gains(y_true, y_score, top_k, k):
    """(gains (n, k) of the ranked candidates, relevance CSR) over queries with a relevant one."""
    n_c = None
    if isinstance(y_true, (list, tuple)):  # index lists do not say how many candidates exist
        if y_score is not None and np.ndim(y_score) == 2:
            n_c = np.shape(y_score)[1]
        elif top_k is not None and np.size(top_k):
            n_c = int(np.max(top_k)) + 1
    R = _relevance_matrix(y_true, n_c)
    n_q, n_c = R.shape
    top = _top_k_from(y_score, top_k, k, n_q, n_c)
    keep = np.diff(R.indptr) > 0
    R, top = R[keep], top[keep]
    # Look every ranked (query, candidate) up among the sorted keys of the relevant pairs.
    rows = np.repeat(np.arange(R.shape[0], dtype=np.int64), np.diff(R.indptr))
    keys = rows * n_c + R.indices
    wanted = np.arange(R.shape[0], dtype=np.int64)[:, None] * n_c + top
    pos = np.minimum(np.searchsorted(keys, wanted), max(keys.size - 1, 0))
    found = keys[pos] == wanted if keys.size else np.zeros(wanted.shape, dtype=bool)
    gains = np.where(found, R.data[pos] if keys.size else 0.0, 0.0)
    if top.shape[1] < k:  # fewer candidates than k: the missing ranks count as misses
        gains = np.pad(gains, ((0, 0), (0, k - top.shape[1])))
    return gains, R


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def precision_at_k(y_true, y_score=None, *, top_k=None, k=10) -> float:
    """Precision@k: the share of the top ``k`` candidates that are relevant, mean over queries.

    Parameters
    ----------
    y_true : array-like or sparse matrix of shape (n_queries, n_candidates), or list
        Relevance: entries > 0 are relevant (an interaction matrix, e.g. held-out positives);
        or a list with one collection of relevant candidate indices per query.
    y_score : array-like of shape (n_queries, n_candidates), optional
        Scores of every candidate; higher ranks first, ties go to the lower index. Give
        ``-inf`` to candidates that must not be ranked (e.g. training positives).
    top_k : int array of shape (n_queries, >= k), optional
        Instead of ``y_score``: candidate indices in rank order (e.g. from ``recommend``).
    k : int, default=10
        Cut-off. The denominator is always ``k``.

    Returns
    -------
    float
        Mean over the queries with at least one relevant candidate (NaN if none has).

    Examples
    --------
    >>> precision_at_k([[1, 3]], top_k=[[3, 0, 1]], k=2)
    0.5
    """
    gains, _ = _ranking_gains(y_true, y_score, top_k, k)
    return _mean((gains > 0).sum(axis=1) / k)


def recall_at_k(y_true, y_score=None, *, top_k=None, k=10) -> float:
    """Recall@k: the share of a query's relevant candidates found in its top ``k``.

    Parameters as :func:`precision_at_k`; the denominator is the number of relevant
    candidates of the query (so recall@k < 1 whenever a query has more than k).
    """
    gains, R = _ranking_gains(y_true, y_score, top_k, k)
    return _mean((gains > 0).sum(axis=1) / np.diff(R.indptr))


def hit_rate_at_k(y_true, y_score=None, *, top_k=None, k=10) -> float:
    """Hit rate@k: the share of queries with at least one relevant candidate in the top ``k``.

    Parameters as :func:`precision_at_k`.
    """
    gains, _ = _ranking_gains(y_true, y_score, top_k, k)
    return _mean((gains > 0).any(axis=1).astype(np.float64))


def ndcg_at_k(y_true, y_score=None, *, top_k=None, k=10) -> float:
    """Normalized discounted cumulative gain at k, mean over queries.

    ``DCG@k = sum_{r=1..k} rel_r / log2(r + 1)`` with ``rel_r`` the relevance of the candidate
    at rank ``r`` (linear gains, as ``sklearn.metrics.ndcg_score``), divided by the DCG@k of
    the ideal ordering of the query's relevant candidates. Binary relevance unless ``y_true``
    holds graded values. Parameters as :func:`precision_at_k`.

    With ``y_score`` and no ties this equals ``sklearn.metrics.ndcg_score(y_true, y_score,
    k=k)`` over the queries that have a relevant candidate (sklearn averages ties, and
    counts queries without relevant candidates as 0).
    """
    gains, R = _ranking_gains(y_true, y_score, top_k, k)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = gains @ discount
    # Ideal DCG: each query's relevance values sorted in decreasing order, cut at k.
    rows = np.repeat(np.arange(R.shape[0]), np.diff(R.indptr))
    order = np.lexsort((-R.data, rows))
    rank = np.arange(order.size) - R.indptr[rows[order]]
    top = rank < k
    idcg = np.bincount(
        rows[order][top], weights=R.data[order][top] * discount[rank[top]], minlength=R.shape[0]
    )
    return _mean(dcg / idcg)


def map_at_k(y_true, y_score=None, *, top_k=None, k=10) -> float:
    """Mean average precision at k.

    ``AP@k = sum_{r=1..k} precision@r * rel_r / min(n_relevant, k)`` (``rel_r`` is 1 when the
    candidate at rank ``r`` is relevant), averaged over queries. Parameters as
    :func:`precision_at_k`.
    """
    gains, R = _ranking_gains(y_true, y_score, top_k, k)
    hits = (gains > 0).astype(np.float64)
    precision_at_r = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    return _mean((precision_at_r * hits).sum(axis=1) / np.minimum(np.diff(R.indptr), k))


def auc_per_query(y_true, y_score, *, exclude=None) -> float:
    """Area under the ROC curve of each query's candidate ranking, mean over queries.

    For one query: the probability that a relevant candidate scores above an irrelevant one
    (ties count one half). Queries without a relevant or without an irrelevant candidate are
    left out of the mean.

    Parameters
    ----------
    y_true : array-like, sparse matrix of shape (n_queries, n_candidates), or list
        Relevance as in :func:`precision_at_k` (entries > 0 are relevant).
    y_score : array-like of shape (n_queries, n_candidates)
        Scores of every candidate.
    exclude : sparse matrix or array-like of shape (n_queries, n_candidates), or list, optional
        Candidates left out of a query's ranking (e.g. its training positives), in any of the
        forms of ``y_true``.

    Returns
    -------
    float
    """
    from scipy.stats import rankdata

    S = np.asarray(y_score, dtype=np.float64)
    if S.ndim != 2:
        raise ValueError(f"y_score must be (n_queries, n_candidates), got shape {S.shape}.")
    R = _relevance_matrix(y_true, S.shape[1])
    if R.shape != S.shape:
        raise ValueError(f"y_true has shape {R.shape} but y_score has shape {S.shape}.")
    if np.isnan(S).any():
        raise ValueError("y_score contains NaN; scores must be numbers.")
    X = None
    if exclude is not None:
        X = _relevance_matrix(exclude, S.shape[1], "exclude")
        if X.shape != S.shape:
            raise ValueError(f"exclude has shape {X.shape} but y_score has shape {S.shape}.")
    out = []
    for q in range(S.shape[0]):
        keep = np.ones(S.shape[1], dtype=bool)
        if X is not None:
            keep[X.indices[X.indptr[q] : X.indptr[q + 1]]] = False
        pos = np.zeros(S.shape[1], dtype=bool)
        pos[R.indices[R.indptr[q] : R.indptr[q + 1]]] = True
        pos &= keep
        n_pos, n_neg = int(pos.sum()), int((keep & ~pos).sum())
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = rankdata(S[q, keep])
        out.append((ranks[pos[keep]].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return _mean(out)


RANKING_METRICS = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "map": map_at_k,
    "hit_rate": hit_rate_at_k,
}


def ranking_report(y_true, y_score=None, *, top_k=None, k=10) -> dict[str, float]:
    """Precision, recall, NDCG, MAP and hit rate at ``k`` (keys like ``"ndcg@10"``).

    Parameters as :func:`precision_at_k`; the top ``k`` is computed once from ``y_score``.
    """
    if y_score is not None and top_k is None:
        S = np.asarray(y_score, dtype=np.float64)
        if S.ndim != 2:
            raise ValueError(f"y_score must be (n_queries, n_candidates), got shape {S.shape}.")
        R = _relevance_matrix(y_true, S.shape[1])
        top_k, y_true, y_score = _top_k_from(S, None, k, R.shape[0], R.shape[1]), R, None
        k = top_k.shape[1]
    return {f"{name}@{k}": fn(y_true, top_k=top_k, k=k) for name, fn in RANKING_METRICS.items()}
