"""Ranking metrics: tiny hand-computed cases, input forms, and agreement with scikit-learn."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import ndcg_score, roc_auc_score

from fmlearn.metrics import (
    auc_per_query,
    hit_rate_at_k,
    map_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_report,
    recall_at_k,
)

# Query 0: relevant {0, 2}, ranked [0, 1, 2, 3]; query 1: relevant {3}, ranked [1, 3, 0, 2].
RELEVANT = [{0, 2}, {3}]
TOP = np.array([[0, 1, 2, 3], [1, 3, 0, 2]])


def test_hand_computed_values():
    # precision@2: q0 1/2, q1 1/2; precision@3: q0 2/3, q1 1/3
    assert precision_at_k(RELEVANT, top_k=TOP, k=2) == pytest.approx(0.5)
    assert precision_at_k(RELEVANT, top_k=TOP, k=3) == pytest.approx(0.5)
    # recall@1: q0 1/2, q1 0
    assert recall_at_k(RELEVANT, top_k=TOP, k=1) == pytest.approx(0.25)
    assert recall_at_k(RELEVANT, top_k=TOP, k=3) == pytest.approx(1.0)
    assert hit_rate_at_k(RELEVANT, top_k=TOP, k=1) == pytest.approx(0.5)
    # NDCG@2: q0 1 / (1 + 1/log2 3); q1 (1/log2 3) / 1
    q0 = 1 / (1 + 1 / math.log2(3))
    q1 = 1 / math.log2(3)
    assert ndcg_at_k(RELEVANT, top_k=TOP, k=2) == pytest.approx((q0 + q1) / 2)
    # AP@3: q0 (1 + 2/3) / 2, q1 (1/2) / 1
    assert map_at_k(RELEVANT, top_k=TOP, k=3) == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 2)
    assert precision_at_k([[1, 3]], top_k=[[3, 0, 1]], k=2) == 0.5


def test_graded_ndcg_by_hand():
    # relevance 3 at candidate 2, 1 at candidate 0; ranking [0, 2, 1]
    y = np.array([[1.0, 0.0, 3.0]])
    dcg = 1 / math.log2(2) + 3 / math.log2(3)
    ideal = 3 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(y, top_k=[[0, 2, 1]], k=3) == pytest.approx(dcg / ideal)


def test_auc_per_query_by_hand_and_exclude():
    scores = np.array([[0.9, 0.1, 0.5, 0.3], [0.2, 0.4, 0.4, 0.1]])
    y = [{0, 3}, {1}]
    # q0: positives 0.9, 0.3 vs negatives 0.1, 0.5 -> 3 of 4 pairs; q1: 0.4 vs 0.2, 0.4, 0.1 ->
    # 2.5 of 3 (the tie counts one half)
    assert auc_per_query(y, scores) == pytest.approx((3 / 4 + 2.5 / 3) / 2)
    # excluding candidate 2 from q0 leaves 2 of 2 pairs right
    assert auc_per_query(y, scores, exclude=[{2}, set()]) == pytest.approx((1 + 2.5 / 3) / 2)


def test_input_forms_agree():
    rng = np.random.default_rng(0)
    dense = (rng.random((20, 15)) < 0.2).astype(float)
    dense[dense.sum(axis=1) == 0, 0] = 1
    sets = [set(np.flatnonzero(r)) for r in dense]
    scores = rng.random((20, 15))
    top = np.argsort(-scores, axis=1)[:, :5]
    for fn in (precision_at_k, recall_at_k, ndcg_at_k, map_at_k, hit_rate_at_k):
        expected = fn(dense, scores, k=5)
        assert fn(sp.csr_matrix(dense), scores, k=5) == pytest.approx(expected)
        assert fn(sets, scores, k=5) == pytest.approx(expected)
        assert fn(dense, top_k=top, k=5) == pytest.approx(expected)
        assert fn(sets, top_k=top, k=5) == pytest.approx(expected)
    report = ranking_report(dense, scores, k=5)
    assert report["ndcg@5"] == pytest.approx(ndcg_at_k(dense, scores, k=5))
    assert set(report) == {"precision@5", "recall@5", "ndcg@5", "map@5", "hit_rate@5"}


@pytest.mark.parametrize("k", [1, 3, 10, 40])
def test_ndcg_matches_sklearn(k):
    rng = np.random.default_rng(k)
    y = (rng.random((30, 40)) < 0.15) * rng.integers(1, 4, (30, 40))
    y[y.sum(axis=1) == 0, 3] = 2  # sklearn counts queries without relevant ones as 0
    scores = rng.random((30, 40))  # no ties: sklearn averages over tied ranks
    assert ndcg_at_k(y, scores, k=k) == pytest.approx(ndcg_score(y, scores, k=k), rel=1e-12)


def test_auc_matches_sklearn_per_row():
    rng = np.random.default_rng(1)
    y = rng.random((25, 30)) < 0.3
    y[:, 0], y[:, 1] = True, False
    scores = rng.normal(size=(25, 30))
    expected = np.mean([roc_auc_score(y[i], scores[i]) for i in range(25)])
    assert auc_per_query(y, scores) == pytest.approx(expected, rel=1e-12)


def test_queries_without_relevant_are_skipped():
    assert precision_at_k([set(), {1}], top_k=[[0], [1]], k=1) == 1.0
    assert math.isnan(ndcg_at_k([set(), set()], top_k=[[0], [1]], k=1))
    assert auc_per_query([{0, 1}, {0}], np.array([[1.0, 2.0], [3.0, 1.0]])) == 1.0


def test_ties_go_to_the_lower_index():
    assert precision_at_k([{0}], np.array([[1.0, 1.0]]), k=1) == 1.0
    assert precision_at_k([{1}], np.array([[1.0, 1.0]]), k=1) == 0.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(), "exactly one of y_score"),
        (dict(y_score=np.zeros((2, 4)), top_k=TOP), "exactly one of y_score"),
        (dict(top_k=TOP[:, :1], k=2), "fewer than k=2"),
        (dict(top_k=TOP[:1]), "1 rows but y_true has 2"),
        (dict(top_k=TOP + 10), "outside"),
        (dict(top_k=TOP.astype(float)), "integer"),
        (dict(y_score=np.zeros((2, 3))), "expected .n_queries, n_candidates."),
        (dict(y_score=np.full((2, 4), np.nan)), "NaN"),
        (dict(top_k=TOP, k=0), "positive integer"),
    ],
)
def test_bad_input_says_what_is_wrong(kwargs, match):
    with pytest.raises(ValueError, match=match):
        precision_at_k(np.eye(2, 4), **{"k": 1, **kwargs})


def test_bad_relevance():
    with pytest.raises(ValueError, match="non-negative"):
        ndcg_at_k(-np.eye(2), top_k=[[0], [1]], k=1)
    with pytest.raises(ValueError, match="2-D"):
        ndcg_at_k(np.ones(3), top_k=[[0], [1]], k=1)
