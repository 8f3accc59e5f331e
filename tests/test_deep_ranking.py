"""Deep rankers (fmlearn.deep.ranking): every model with BPR and WARP on FMRanker's inputs,
ranking quality on planted data, recommend() by forward passes, files and resumption."""

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

import fmlearn  # noqa: E402
import fmlearn.deep as deep  # noqa: E402
from fmlearn._kernels import ranking as rk  # noqa: E402
from fmlearn.deep.ranking import RANKERS, ForwardScores, PairRows  # noqa: E402
from fmlearn.metrics import precision_at_k  # noqa: E402
from fmlearn.ranking import FMRanker  # noqa: E402
from fmlearn.retrieval import recommend  # noqa: E402
from tests.test_deep import TINY  # noqa: E402


def _planted(n_users=200, n_items=150, per_user=12, seed=0):
    """Each user's positives are its top items under a rank-4 score; 80% train, 20% test."""
    rng = np.random.default_rng(seed)
    S = rng.normal(size=(n_users, 4)) @ rng.normal(size=(n_items, 4)).T
    cols = np.argsort(-S, axis=1)[:, :per_user].ravel()
    rows = np.repeat(np.arange(n_users), per_user)
    keep = rng.random(rows.size) < 0.8
    shape = (n_users, n_items)
    train = sp.csr_matrix((np.ones(keep.sum()), (rows[keep], cols[keep])), shape=shape)
    test = sp.csr_matrix((np.ones((~keep).sum()), (rows[~keep], cols[~keep])), shape=shape)
    return train, test


def _side(n_users=60, n_items=40, seed=1):
    """Queries [user one-hot | 3 multi-hot tags], candidates [item one-hot | a real value]."""
    rng = np.random.default_rng(seed)
    Q = sp.hstack([sp.identity(n_users), sp.csr_matrix(rng.random((n_users, 3)) < 0.4)],
                  format="csr")
    C = sp.hstack([sp.identity(n_items), sp.csr_matrix(rng.normal(size=(n_items, 1)))],
                  format="csr")
    fields = np.array([0] * n_users + [1] * 3 + [2] * n_items + [3])
    likes = sp.random(n_users, n_items, density=0.1, random_state=seed, format="csr")
    return Q, C, fields, likes


def tiny(cls, **kw):
    own = cls().get_params()
    return cls(**{k: v for k, v in TINY.items() if k in own},
               **{"n_factors": 4, "max_iter": 2, "batch_size": 64, "random_state": 0,
                  "early_stopping": False, "tol": None, **kw})


def test_every_ranker_has_the_deep_and_ranking_parameters_and_no_init_from():
    assert len(RANKERS) == 12 and all(hasattr(deep, n) for n in RANKERS)
    for name, cls in RANKERS.items():
        params = cls().get_params()
        assert {"loss", "negative_sampling", "max_sampled", "eval_metric", "fields",
                "batch_size", "optimizer"} <= set(params), name
        assert "init_from" not in params, name
        assert params["loss"] == ("bpr" if name == "CFMRanker" else "warp"), name
    with pytest.raises(ValueError, match="loss"):
        deep.DeepFMRanker(loss="hinge").fit(None, None, _planted()[0])


@pytest.mark.parametrize("name", sorted(RANKERS))
def test_every_model_ranks_with_bpr_and_warp(name):
    Q, C, fields, likes = _side()
    for loss in ("bpr", "warp"):
        est = tiny(RANKERS[name], loss=loss, fields=fields).fit(Q, C, likes)
        assert est.history_["epoch"] == [1, 2] and np.isfinite(est.history_[f"train_{loss}"]).all()
        top, scores = est.recommend(Q, C, k=5, exclude=likes)
        assert top.shape == (60, 5) and np.isfinite(scores).all()


def test_planted_structure_well_above_popularity_and_close_to_fmranker():
    train, test = _planted()
    pop = np.asarray(train.sum(axis=0)).ravel().astype(float)
    pop_scores = np.tile(pop, (train.shape[0], 1))
    pop_scores[train.nonzero()] = -np.inf
    p_pop = precision_at_k(test, top_k=np.argsort(-pop_scores, axis=1, kind="stable")[:, :5],
                           k=5)
    fm = FMRanker(n_factors=8, max_iter=30, random_state=0).fit(None, None, train)
    p_fm = precision_at_k(test, top_k=fm.recommend(k=5, exclude=train)[0], k=5)
    kw = dict(n_factors=8, max_iter=25, batch_size=128, learning_rate=0.01, random_state=0,
              early_stopping=False, tol=None)
    got = {}
    # DeepFM's dense layers start Xavier-normal: it needs more epochs than CFM here.
    for est in (deep.DeepFMRanker(hidden_layer_sizes=(32,), **{**kw, "max_iter": 40}),
                deep.CFMRanker(conv_channels=4, **kw)):
        est.fit(None, None, train)
        got[type(est).__name__] = precision_at_k(test, top_k=est.recommend(k=5, exclude=train)[0],
                                                 k=5)
    assert p_fm > 4 * p_pop
    assert got["DeepFMRanker"] > 3 * p_pop and got["DeepFMRanker"] > 0.75 * p_fm, got
    assert got["CFMRanker"] > 2.5 * p_pop, got  # BPR: a looser top of the list than WARP


def test_recommend_scores_are_the_joined_rows_scores_and_exclude_seen():
    Q, C, fields, likes = _side()
    est = tiny(deep.XDeepFMRanker, fields=fields).fit(Q, C, likes)
    top, scores = est.recommend(Q, C, k=7, exclude=likes)
    for q in range(Q.shape[0]):
        assert not set(top[q]) & set(likes[q].indices)
    # Every (query, candidate) score by the pair batches == the model on the joined rows
    # (multi-hot and real-valued fields: the bags path).
    joined = sp.vstack([sp.hstack([Q[q], C[c]]) for q in range(5) for c in range(C.shape[0])])
    direct = est.decision_function(joined).reshape(5, -1)
    np.testing.assert_allclose(ForwardScores(est.module_, PairRows(Q, C, est.fields_), "cpu")
                               .scores(0, 5, None), direct, rtol=1e-5, atol=1e-6)
    masked = direct.copy()
    masked[likes[:5].nonzero()] = -np.inf
    np.testing.assert_allclose(scores[:5], -np.sort(-masked, axis=1)[:, :7], rtol=1e-5,
                               atol=1e-6)
    # One API: fmlearn.retrieval.recommend serves a deep ranker as FMRanker.recommend does.
    for a, b in zip(recommend(est, Q, C, 7, exclude=likes), (top, scores), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="query_columns"):
        recommend(est, Q, C, 7, query_columns=np.arange(63))


def test_one_hot_pairs_take_the_gather_path_with_the_same_scores():
    train, _ = _planted(60, 40, 5)
    est = tiny(deep.DeepFMRanker).fit(None, None, train)
    Q, C = sp.identity(60, format="csr"), sp.identity(40, format="csr")
    pairs = PairRows(Q, C, est.fields_)
    assert pairs._one_value is not None  # one entry per (row, field): a gather
    q, c = np.repeat(np.arange(3), 40), np.tile(np.arange(40), 3)
    joined = sp.hstack([Q[q], C[c]], format="csr")
    np.testing.assert_allclose(ForwardScores(est.module_, pairs, "cpu").pair_scores(q, c),
                               est.decision_function(joined), rtol=1e-6)


def test_draw_negatives_marks_positives_and_follows_popularity():
    known = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [0, 0, 0, 0, 1]], dtype=float))
    out = np.empty((2, 400), dtype=np.int64)
    usable = np.empty((2, 400), dtype=np.bool_)
    args = (np.array([0, 1]), known.indptr.astype(np.int64), known.indices.astype(np.int32))
    rk.draw_negatives(*args, np.zeros(0, np.int64), 5, 400, rk.UNIFORM,
                      np.full(1, 7, np.uint64), out, usable)
    assert set(out.ravel()) == set(range(5))
    np.testing.assert_array_equal(usable[0], out[0] >= 2)
    np.testing.assert_array_equal(usable[1], out[1] != 4)
    popular = np.array([3, 3, 4], dtype=np.int64)
    rk.draw_negatives(*args, popular, 5, 400, rk.POPULARITY, np.full(1, 7, np.uint64), out,
                      usable)
    assert set(out.ravel()) == {3, 4} and 0.55 < (out == 3).mean() < 0.8


def test_save_load_same_recommendations_and_resume_exactly(tmp_path):
    Q, C, fields, likes = _side()
    kw = dict(fields=fields, loss="warp", dropout=0.1)
    straight = tiny(deep.DeepFMRanker, max_iter=3, **kw).fit(Q, C, likes)
    first = tiny(deep.DeepFMRanker, max_iter=2, **kw).fit(Q, C, likes)
    first.save(tmp_path / "r.fm")
    loaded = fmlearn.load(tmp_path / "r.fm")
    assert type(loaded) is deep.DeepFMRanker and loaded.n_query_features_ == 63
    for a, b in zip(loaded.recommend(Q, C, k=5, exclude=likes),
                    first.recommend(Q, C, k=5, exclude=likes), strict=True):
        np.testing.assert_array_equal(a, b)
    loaded.partial_fit(Q, C, likes)  # optimizer state, generator and epochs from the file
    assert loaded.history_["epoch"] == [1, 2, 3]
    for k, v in straight.module_.state_dict().items():
        assert torch.equal(loaded.module_.state_dict()[k], v), k


def test_validation_metric_early_stopping_and_errors():
    train, test = _planted(80, 60, 8)
    est = tiny(deep.NFMRanker, max_iter=4, early_stopping=True, eval_metric="precision@5",
               n_iter_no_change=1).fit(None, None, train, eval_set=test)
    assert "valid_precision@5" in est.history_ and est.best_iteration_ >= 1
    valid = est.history_["valid_precision@5"]
    assert max(valid) == valid[est.best_iteration_ - 1]
    with pytest.raises(ValueError, match="query column's field must come before"):
        tiny(deep.DeepFMRanker, fields=np.array([1] * 80 + [0] * 60)).fit(None, None, train)
    with pytest.raises(ValueError, match="eval_metric"):
        tiny(deep.DeepFMRanker, eval_metric="rmse").fit(None, None, train)
    with pytest.raises(ValueError, match="columns"):
        est.recommend(sp.identity(79, format="csr"), None)


@pytest.mark.parametrize("name", ["DeepFMRanker", "CFMRanker"])
def test_scikit_learn_api_checks_that_never_fit(name):
    from sklearn.utils import estimator_checks

    from tests.test_common import RANKER_API_CHECKS

    for check in RANKER_API_CHECKS:
        getattr(estimator_checks, check)(name, RANKERS[name](n_factors=2, max_iter=2))


def test_onnx_export_scores_joined_rows(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from fmlearn.export import padded_inputs

    Q, C, fields, likes = _side()
    est = tiny(deep.AutoIntRanker, fields=fields).fit(Q, C, likes)
    est.to_onnx(tmp_path / "r.onnx")
    joined = sp.hstack([Q[np.repeat(np.arange(4), 40)], C[np.tile(np.arange(40), 4)]],
                       format="csr")
    session = ort.InferenceSession(str(tmp_path / "r.onnx"))
    assert [o.name for o in session.get_outputs()] == ["prediction"]
    np.testing.assert_allclose(session.run(None, padded_inputs(joined))[0],
                               est.decision_function(joined), rtol=1e-5, atol=1e-5)


def test_pairs_file_trains_the_same_ranker_as_the_arrays(tmp_path):
    train, _ = _planted(n_users=40, n_items=30, per_user=5)
    q, c = train.nonzero()
    np.savetxt(tmp_path / "pairs.txt", np.column_stack([q, c]), fmt="%d")
    ids = sp.eye(40, format="csr"), sp.eye(30, format="csr")
    mem = tiny(deep.DeepFMRanker, max_iter=2).fit(*ids, np.column_stack([q, c]))
    disk = tiny(deep.DeepFMRanker, max_iter=2).fit(None, None, str(tmp_path / "pairs.txt"))
    for k, v in mem.module_.state_dict().items():
        assert torch.equal(disk.module_.state_dict()[k], v), k
    with pytest.raises(ValueError, match="needs positives"):
        tiny(deep.DeepFMRanker).fit(None, None, None)
