"""FMRanker (BPR, WARP) and recommend: gradients against numpy, scores against brute force."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
from _reference import fm_predict_bruteforce
from sklearn.base import clone

import fmlearn
from fmlearn import FFMRegressor, FMClassifier, FMRegressor
from fmlearn._kernels import ranking as rk
from fmlearn._kernels.updates import ADAGRAD, SGD
from fmlearn.metrics import ndcg_at_k, precision_at_k
from fmlearn.ranking import FMRanker, recommend

K = 3


# ---------------------------------------------------------------------------- helpers
def _tiny_problem(n_candidates=4, seed=0):
    """Dense query (2 x 3) and candidate (n x 5) features; candidates 1 and last share
    features 1 and 3 (with different values), so their rows merge in a step."""
    rng = np.random.default_rng(seed)
    Q = np.array([[1.0, 0.0, 0.5], [0.0, 2.0, 1.0]])
    C = rng.normal(size=(n_candidates, 5)) * (rng.random((n_candidates, 5)) < 0.5)
    C[1] = [0.7, 1.0, 0.0, -0.4, 0.0]
    C[-1] = [0.0, 0.3, 1.2, 0.8, 0.0]
    return Q, C


def _table(n_features, adaptive, rng):
    """float64 table [V | w | AdaGrad sums started at 1]."""
    table = np.ones((n_features, 2 * K + 2 if adaptive else K + 1))
    table[:, :K] = rng.normal(scale=0.5, size=(n_features, K))
    table[:, K] = rng.normal(scale=0.5, size=n_features)
    return table


def _pair_score(table, Q, C, q, c):
    """f([Q_q | C_c]) by the explicit pair loop of the reference FM."""
    x = np.concatenate([Q[q], C[c]])[None, :]
    return fm_predict_bruteforce(x, 0.0, table[:, K], table[:, :K])[0]


def _numerical_gradient(fn, table, h=1e-6):
    """d fn(table) / d table[:, :K + 1] by central differences."""
    grad = np.zeros((table.shape[0], K + 1))
    for idx in np.ndindex(*grad.shape):
        up, down = table.copy(), table.copy()
        up[idx] += h
        down[idx] -= h
        grad[idx] = (fn(up) - fn(down)) / (2 * h)
    return grad


def _run_epoch(Q, C, positives, order, table, *, loss, lr, reg_w=0.0, reg_V=0.0,
               adaptive=False, weights=None, seed=0, max_sampled=1000):
    """One rank_epoch over ``order`` (indices into the ``positives`` pairs)."""
    Qs, Cs = sp.csr_matrix(Q), sp.csr_matrix(C)
    pos = np.asarray(positives, dtype=np.int64)
    known = sp.csr_matrix((np.ones(len(pos)), (pos[:, 0], pos[:, 1])), shape=(Q.shape[0],
                                                                             C.shape[0]))
    sw = np.ones(len(pos)) if weights is None else np.asarray(weights, dtype=np.float64)
    return rk.rank_epoch(
        Qs.indptr.astype(np.int64), Qs.indices.astype(np.int32), Qs.data,
        Cs.indptr.astype(np.int64), (Cs.indices + Q.shape[1]).astype(np.int32), Cs.data,
        pos[:, 0].copy(), pos[:, 1].copy(), sw, np.asarray(order, dtype=np.int64),
        known.indptr.astype(np.int64), known.indices.astype(np.int32), np.zeros(0, np.int64),
        table, K, np.uint64(seed), rk.UNIFORM, max_sampled, loss, ADAGRAD if adaptive else SGD,
        (lr, 0.0, reg_w, reg_V), False, True,
    )


# ---------------------------------------------------------------------------- gradients
def test_bpr_step_is_the_numerical_gradient():
    """Query 0's positives are candidates 0, 1, 2, so the sampled negative must be 3."""
    Q, C = _tiny_problem()
    rng = np.random.default_rng(1)
    before = _table(8, False, rng)
    table = before.copy()
    lr = 0.1

    def bpr(t):
        d = _pair_score(t, Q, C, 0, 1) - _pair_score(t, Q, C, 0, 3)
        return math.log1p(math.exp(-d))

    loss = _run_epoch(Q, C, [(0, 0), (0, 1), (0, 2)], [1], table, loss=rk.BPR, lr=lr)
    assert loss == pytest.approx(bpr(before), rel=1e-10)
    grad = _numerical_gradient(bpr, before)
    np.testing.assert_allclose(table - before, -lr * grad, atol=1e-8)
    # the query's own linear weights never move: their terms cancel in the difference
    np.testing.assert_array_equal(table[:3, K], before[:3, K])
    assert np.abs(grad[3:, :]).max() > 0.01  # candidate features did get a gradient


def test_adagrad_step_with_l2_on_touched_coordinates():
    Q, C = _tiny_problem()
    rng = np.random.default_rng(2)
    before = _table(8, True, rng)
    table = before.copy()
    lr, reg_w, reg_V = 0.1, 0.05, 0.2

    def bpr(t):
        d = _pair_score(t, Q, C, 0, 1) - _pair_score(t, Q, C, 0, 3)
        return math.log1p(math.exp(-d))

    _run_epoch(Q, C, [(0, 0), (0, 1), (0, 2)], [1], table, loss=rk.BPR, lr=lr, reg_w=reg_w,
               reg_V=reg_V, adaptive=True)
    grad = _numerical_gradient(bpr, before)
    # touched: the query's features (factors only) and the features of candidates 1 and 3
    q_feats = np.flatnonzero(Q[0])
    c_feats = 3 + np.flatnonzero((C[1] != 0) | (C[3] != 0))
    grad[q_feats, :K] += reg_V * before[q_feats, :K]
    grad[c_feats, :K] += reg_V * before[c_feats, :K]
    grad[c_feats, K] += reg_w * before[c_feats, K]
    acc = before[:, K + 1 :] + grad**2
    expected = before[:, : K + 1] - lr * grad / np.sqrt(acc)
    touched = np.zeros((8, K + 1), dtype=bool)
    touched[q_feats, :K] = True
    touched[c_feats, :] = True
    expected[~touched] = before[:, : K + 1][~touched]
    np.testing.assert_allclose(table[:, : K + 1], expected, atol=1e-8)
    np.testing.assert_allclose(table[:, K + 1 :][touched], acc[touched], atol=1e-8)


def test_sample_weight_scales_the_step():
    Q, C = _tiny_problem()
    before = _table(8, False, np.random.default_rng(3))
    steps = []
    for w in (1.0, 2.5):
        table = before.copy()
        _run_epoch(Q, C, [(0, 0), (0, 1), (0, 2)], [1], table, loss=rk.BPR, lr=0.01,
                   weights=[1.0, w, 1.0])
        steps.append(table - before)
    np.testing.assert_allclose(steps[1], 2.5 * steps[0], atol=1e-12)


def test_warp_step_is_rank_weighted_hinge_gradient():
    """Ten candidates, all but 9 positive for query 0: the WARP negative is 9 after N draws,
    and the step is lr * log(floor(9 / N)) * d(f(q, 1) - f(q, 9)) / d theta."""
    Q, C = _tiny_problem(n_candidates=10, seed=4)
    rng = np.random.default_rng(5)
    before = _table(8, False, rng)
    C[9, 4] = 1.0
    before[3 + 4, K] = 6.0  # a feature of candidate 9 only: its score is far above the margin
    positives = [(0, c) for c in range(9)]
    lr = 0.01

    def diff(t):
        return _pair_score(t, Q, C, 0, 1) - _pair_score(t, Q, C, 0, 9)

    assert diff(before) < 1.0
    step_dir = lr * _numerical_gradient(diff, before)
    allowed = {math.log(max(1, math.floor(9 / n))) for n in range(1, 11)}
    moved = 0
    for seed in range(12):
        table = before.copy()
        loss = _run_epoch(Q, C, positives, [1], table, loss=rk.WARP, lr=lr, seed=seed,
                          max_sampled=10)
        delta = table[:, : K + 1] - before[:, : K + 1]
        alpha = float((delta * step_dir).sum() / (step_dir**2).sum())
        np.testing.assert_allclose(delta, alpha * step_dir, atol=1e-9)
        assert min(abs(alpha - a) for a in allowed | {0.0}) < 1e-6
        assert loss == pytest.approx(alpha * (1 - diff(before)), rel=1e-9, abs=1e-12)
        moved += alpha > 0
    assert moved >= 3


def test_bpr_skips_a_query_whose_candidates_are_all_positive():
    Q, C = _tiny_problem()
    before = _table(8, False, np.random.default_rng(6))
    table = before.copy()
    loss = _run_epoch(Q, C, [(0, c) for c in range(4)], [1], table, loss=rk.BPR, lr=0.1,
                      max_sampled=50)
    assert loss == 0.0
    np.testing.assert_array_equal(table, before)


# ---------------------------------------------------------------------------- estimator
def _synthetic(n_users=120, n_items=60, n_groups=3, per_user=8, seed=0):
    """Users in groups (their side feature) who like the items of their group's genre."""
    rng = np.random.default_rng(seed)
    group = rng.integers(n_groups, size=n_users)
    genre = rng.integers(n_groups, size=n_items)
    appeal = rng.random(n_items)
    rows, cols = [], []
    for u in range(n_users):
        liked = np.flatnonzero(genre == group[u])
        p = appeal[liked] / appeal[liked].sum()
        chosen = rng.choice(liked, size=min(per_user, liked.size), replace=False, p=p)
        rows += [u] * chosen.size
        cols += list(chosen)
    R = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))
    users = sp.hstack([sp.identity(n_users), sp.csr_matrix(np.eye(n_groups)[group])], "csr")
    items = sp.hstack([sp.identity(n_items), sp.csr_matrix(np.eye(n_groups)[genre])], "csr")
    return R, users, items, group


def _split(R, rng, fraction=0.25):
    coo = R.tocoo()
    test = rng.random(coo.nnz) < fraction
    part = [sp.csr_matrix((coo.data[m], (coo.row[m], coo.col[m])), shape=R.shape)
            for m in (~test, test)]
    return part[0], part[1]


@pytest.mark.parametrize("loss", ["warp", "bpr"])
def test_fit_learns_to_rank_held_out_positives(loss):
    R, users, items, _ = _synthetic()
    train, test = _split(R, np.random.default_rng(0))
    model = FMRanker(n_factors=4, loss=loss, max_iter=30, learning_rate=0.1, random_state=0)
    model.fit(users, items, train)
    top, scores = model.recommend(users, items, k=5, exclude=train)
    assert np.all(np.diff(scores, axis=1) <= 0)
    p = precision_at_k(test, top_k=top, k=5)
    # random ranking scores about n_test / n_items per slot: 2 / 60
    assert p > 0.15
    assert model.w0_ == 0.0 and np.all(model.w_[: users.shape[1]] == 0.0)
    assert set(model.history_) == {"epoch", f"train_{loss}", "time"}
    assert model.history_[f"train_{loss}"][-1] < model.history_[f"train_{loss}"][0]


def test_positive_pairs_and_matrix_agree():
    R, users, items, _ = _synthetic(seed=1)
    coo = R.tocsr().tocoo()
    pairs = np.column_stack([coo.row, coo.col])
    a = FMRanker(n_factors=2, max_iter=3, random_state=0).fit(users, items, R)
    b = FMRanker(n_factors=2, max_iter=3, random_state=0).fit(users, items, pairs)
    np.testing.assert_array_equal(a.V_, b.V_)
    # entries <= 0 of a matrix are not positives
    R_neg = R.tolil()
    R_neg[0, np.flatnonzero(R[0].toarray().ravel() == 0)[:2]] = -1.0
    c = FMRanker(n_factors=2, max_iter=3, random_state=0).fit(users, items, R_neg.tocsr())
    np.testing.assert_array_equal(a.V_, c.V_)


def test_same_seed_same_model_and_global_rng_untouched():
    R, users, items, _ = _synthetic(seed=2)
    np.random.seed(7)  # noqa: NPY002 - the global state is what this test guards
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    models = [FMRanker(n_factors=3, max_iter=4, random_state=3, negative_sampling=s)
              .fit(users, items, R) for s in ("popularity", "popularity", "uniform")]
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002
    np.testing.assert_array_equal(models[0].V_, models[1].V_)
    assert not np.array_equal(models[0].V_, models[2].V_)


def test_hogwild_threads_train_too():
    R, users, items, _ = _synthetic(seed=3)
    train, test = _split(R, np.random.default_rng(1))
    model = FMRanker(n_factors=4, max_iter=30, learning_rate=0.1, random_state=0, n_jobs=2)
    top, _ = model.fit(users, items, train).recommend(users, items, k=5, exclude=train)
    assert precision_at_k(test, top_k=top, k=5) > 0.15


def test_early_stopping_restores_the_best_epoch():
    R, users, items, _ = _synthetic(seed=4)
    train, valid = _split(R, np.random.default_rng(2))
    model = FMRanker(n_factors=4, max_iter=25, learning_rate=0.3, early_stopping=True,
                     n_iter_no_change=3, eval_metric="ndcg@5", random_state=0)
    model.fit(users, items, train, eval_set=valid)
    h = model.history_["valid_ndcg@5"]
    assert len(h) == model.n_iter_
    assert model.best_iteration_ == int(np.argmax(h)) + 1
    top, _ = model.recommend(users, items, k=5, exclude=train)
    assert ndcg_at_k(valid, top_k=top, k=5) == pytest.approx(max(h))
    # without eval_set: a held-out share of the positives, any metric
    auc = FMRanker(n_factors=2, max_iter=3, early_stopping=True, eval_metric="auc",
                   random_state=0).fit(users, items, train)
    assert len(auc.history_["valid_auc"]) == auc.n_iter_


def test_callbacks_and_progress_bar(capsys):
    R, users, items, _ = _synthetic(n_users=30, n_items=20, seed=10)
    seen = []

    def stop_at_two(env):
        seen.append((env.epoch, env.metric, env.train, env.valid))
        return env.epoch == 2

    model = FMRanker(n_factors=2, max_iter=10, verbose=1, eval_metric="precision@3",
                     random_state=0)
    train, valid = _split(R, np.random.default_rng(3))
    model.fit(users, items, train, eval_set=valid, callbacks=[stop_at_two])
    assert model.n_iter_ == 2 and [s[0] for s in seen] == [1, 2]
    assert seen[0][1] == "precision@3" and seen[0][2] > 0 and 0 <= seen[0][3] <= 1
    assert "valid_precision@3" in capsys.readouterr().err


def test_warm_start_continues():
    R, users, items, _ = _synthetic(seed=5)
    model = FMRanker(n_factors=2, max_iter=2, warm_start=True, random_state=0)
    model.fit(users, items, R)
    model.fit(users, items, R)
    assert model.history_["epoch"] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="same columns"):
        model.fit(users[:, :-1], items, R)


def test_clone_and_params():
    model = FMRanker(n_factors=5, loss="bpr", negative_sampling="popularity", max_sampled=3)
    params = clone(model).get_params()
    assert params == model.get_params()
    assert params["loss"] == "bpr" and "fit_intercept" not in params
    assert clone(model.set_params(eval_metric="map@5")).eval_metric == "map@5"


def test_cold_start_beats_popularity_and_random():
    """New users known only by their group rank their group's items from the side feature."""
    R, users, items, group = _synthetic(n_users=200, seed=6)
    rng = np.random.default_rng(0)
    new = rng.random(R.shape[0]) < 0.25
    train = sp.diags((~new).astype(float)) @ R
    train.eliminate_zeros()
    model = FMRanker(n_factors=4, max_iter=30, learning_rate=0.1, random_state=0)
    model.fit(users, items, train)
    cold = users[new].tolil()
    cold[:, : R.shape[0]] = 0  # no id: the group feature only
    top, _ = model.recommend(cold.tocsr(), items, k=5)
    relevant = R[new]
    popular = np.argsort(-np.asarray(train.sum(axis=0)).ravel(), kind="stable")[:5]
    p_model = precision_at_k(relevant, top_k=top, k=5)
    p_pop = precision_at_k(relevant, top_k=np.tile(popular, (new.sum(), 1)), k=5)
    p_rand = precision_at_k(relevant, top_k=rng.permuted(
        np.tile(np.arange(R.shape[1]), (new.sum(), 1)), axis=1)[:, :5], k=5)
    assert p_model > 1.5 * p_pop and p_model > 3 * p_rand


# ---------------------------------------------------------------------------- recommend
def _bruteforce_scores(model, Q, C, query_columns=None):
    """Every (query, candidate) score via the reference FM over the assembled model row."""
    Q, C = np.asarray(Q.todense()), np.asarray(C.todense())
    n = model.n_features_in_
    qc = np.arange(Q.shape[1]) if query_columns is None else np.asarray(query_columns)
    cc = np.setdiff1d(np.arange(n), qc)
    S = np.empty((Q.shape[0], C.shape[0]))
    for q in range(Q.shape[0]):
        X = np.zeros((C.shape[0], n))
        X[:, qc] = Q[q]
        X[:, cc] = C
        S[q] = fm_predict_bruteforce(X, model.w0_, model.w_, model.V_)
    return S


def _check_top_k(S, top, scores, k):
    order = np.argsort(-S, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(top, order)
    np.testing.assert_allclose(scores, np.take_along_axis(S, order, axis=1), rtol=1e-5,
                               atol=1e-6)


@pytest.fixture(scope="module")
def rated():
    """A regressor on [user one-hot | 2 user features | item one-hot | 3 item features]."""
    rng = np.random.default_rng(0)
    n_u, n_i = 15, 12
    Q = sp.hstack([sp.identity(n_u), sp.csr_matrix(rng.random((n_u, 2)))], "csr")
    C = sp.hstack([sp.identity(n_i), sp.random(n_i, 3, density=0.5, random_state=1)], "csr")
    u, i = rng.integers(n_u, size=300), rng.integers(n_i, size=300)
    X = sp.hstack([Q[u], C[i]], "csr")
    y = rng.normal(size=300)
    return Q, C, X, y


@pytest.mark.parametrize("cls", [FMRegressor, FMClassifier])
def test_recommend_equals_bruteforce_scoring(rated, cls):
    Q, C, X, y = rated
    model = cls(n_factors=3, max_iter=5, random_state=0).fit(X, y if cls is FMRegressor
                                                               else y > 0)
    top, scores = recommend(model, Q, C, k=4)
    _check_top_k(_bruteforce_scores(model, Q, C), top, scores, 4)
    # the model's own output on the assembled rows
    rows = sp.hstack([Q[np.repeat(np.arange(Q.shape[0]), 4)], C[top.ravel()]], "csr")
    np.testing.assert_allclose(model.decision_function(rows) if cls is FMClassifier
                               else model.predict(rows), scores.ravel(), rtol=1e-5, atol=1e-6)


def test_recommend_averages_mcmc_samples(rated):
    Q, C, X, y = rated
    model = FMRegressor(n_factors=3, solver="mcmc", max_iter=12, random_state=0).fit(X, y)
    top, scores = recommend(model, Q, C, k=4)
    rows = sp.hstack([Q[np.repeat(np.arange(Q.shape[0]), 4)], C[top.ravel()]], "csr")
    # predict is the posterior mean over the kept samples
    np.testing.assert_allclose(model.predict(rows), scores.ravel(), rtol=1e-9, atol=1e-9)


def test_recommend_with_interleaved_columns(rated):
    Q, C, X, y = rated
    n_u = 15
    # model columns: [user ids | items (ids, features) | user features]
    Xp = sp.hstack([X[:, :n_u], X[:, n_u + 2 :], X[:, n_u : n_u + 2]], "csr")
    model = FMRegressor(n_factors=3, max_iter=5, random_state=0).fit(Xp, y)
    q_cols = np.r_[np.arange(n_u), Xp.shape[1] - 2, Xp.shape[1] - 1]
    top, scores = recommend(model, Q, C, k=5, query_columns=q_cols)
    _check_top_k(_bruteforce_scores(model, Q, C, q_cols), top, scores, 5)


def test_recommend_exclude_and_k_beyond_candidates(rated):
    Q, C, X, y = rated
    model = FMRegressor(n_factors=3, max_iter=3, random_state=0).fit(X, y)
    S = _bruteforce_scores(model, Q, C)
    exclude = sp.random(Q.shape[0], C.shape[0], density=0.4, random_state=2, format="csr")
    top, scores = recommend(model, Q, C, k=3, exclude=exclude)
    masked = np.where(exclude.toarray() != 0, -np.inf, S)
    _check_top_k(masked, top, scores, 3)
    for q in range(Q.shape[0]):
        assert not set(top[q]) & set(exclude[q].indices)
    # a list of index collections works the same
    as_list = [set(exclude[q].indices) for q in range(Q.shape[0])]
    np.testing.assert_array_equal(recommend(model, Q, C, k=3, exclude=as_list)[0], top)
    # k > n_candidates: all of them, excluded ones last at -inf
    top_all, scores_all = recommend(model, Q, C, k=50, exclude=exclude, n_jobs=2)
    assert top_all.shape == (Q.shape[0], C.shape[0])
    n_excluded = np.diff(exclude.indptr)
    for q in range(Q.shape[0]):
        assert np.isneginf(scores_all[q]).sum() == n_excluded[q]
        assert sorted(top_all[q]) == list(range(C.shape[0]))


def test_ranker_recommend_and_decision_function_agree():
    R, users, items, _ = _synthetic(n_users=30, n_items=20, seed=7)
    model = FMRanker(n_factors=3, max_iter=3, random_state=0).fit(users, items, R)
    top, scores = model.recommend(users, items, k=4)
    _check_top_k(_bruteforce_scores(model, users, items), top, scores, 4)
    rows = sp.hstack([users[np.repeat(np.arange(30), 4)], items[top.ravel()]], "csr")
    np.testing.assert_allclose(model.decision_function(rows), scores.ravel(), rtol=1e-5,
                               atol=1e-6)
    # None means one-hot ids
    ids = FMRanker(n_factors=2, max_iter=2, random_state=0).fit(None, None, R)
    np.testing.assert_array_equal(ids.recommend(k=3)[0],
                                  ids.recommend(sp.identity(30), sp.identity(20), k=3)[0])


# ---------------------------------------------------------------------------- errors
def test_fit_errors_say_what_and_where():
    R, users, items, _ = _synthetic(n_users=20, n_items=10, seed=8)
    m = FMRanker(max_iter=1)
    with pytest.raises(ValueError, match=r"positives\[1\] = \(3, 10\): candidate index 10"):
        m.fit(users, items, np.array([[0, 1], [3, 10]]))
    with pytest.raises(ValueError, match="shape \\(n, 2\\)"):
        m.fit(users, items, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="20 x 9 matrix, but there are 20 queries and 10"):
        m.fit(users, items, R[:, :9])
    with pytest.raises(ValueError, match="with positives given as index pairs, pass the query"):
        m.fit(None, items, np.array([[0, 1]]))
    with pytest.raises(ValueError, match="positives is empty"):
        m.fit(users, items, sp.csr_matrix(R.shape))
    with pytest.raises(ValueError, match="eval_metric='ndcg' is not a ranking metric"):
        FMRanker(eval_metric="ndcg").fit(users, items, R)
    with pytest.raises(ValueError, match="solver"):
        FMRanker(solver="als").fit(users, items, R)
    with pytest.raises(ValueError, match="sample_weight"):
        m.fit(users, items, R, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        bad = users.toarray()
        bad[0, 0] = np.nan
        m.fit(bad, items, R)


def test_recommend_errors(rated):
    Q, C, X, y = rated
    model = FMRegressor(n_factors=2, max_iter=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="together 31; the model has 32 features"):
        recommend(model, Q[:, :-1], C)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        recommend(model, Q, C, k=0)
    with pytest.raises(ValueError, match="exclude has shape"):
        recommend(model, Q, C, exclude=sp.csr_matrix((2, 2)))
    with pytest.raises(ValueError, match="query_columns holds a column twice"):
        recommend(model, Q, C, query_columns=np.zeros(17, dtype=int))
    ffm = FFMRegressor(n_factors=2, max_iter=1, fields=np.zeros(32, dtype=np.int32)).fit(X, y)
    with pytest.raises(TypeError, match="second-order FM with one score per row.*'ffm'"):
        recommend(ffm, Q, C)
    multi = FMClassifier(n_factors=2, max_iter=1).fit(X, np.arange(300) % 3)
    with pytest.raises(TypeError, match="this FMClassifier has"):
        recommend(multi, Q, C)
    ranker = FMRanker(n_factors=2, max_iter=1, random_state=0).fit(
        Q, C, np.array([[0, 0], [1, 2]]))
    with pytest.raises(ValueError, match="queries must have 17 columns"):
        ranker.recommend(Q[:, 1:], C)


# ---------------------------------------------------------------------------- model files
def test_save_load_round_trip(tmp_path):
    R, users, items, _ = _synthetic(n_users=30, n_items=20, seed=9)
    model = FMRanker(n_factors=3, max_iter=3, early_stopping=True, random_state=0)
    model.fit(users, items, R)
    model.save(tmp_path / "ranker.fmz")
    loaded = fmlearn.load(tmp_path / "ranker.fmz")
    assert type(loaded) is FMRanker and loaded.get_params() == model.get_params()
    assert loaded.n_query_features_ == model.n_query_features_
    assert loaded.history_ == model.history_
    for a, b in zip(loaded.recommend(users, items, k=5), model.recommend(users, items, k=5),
                    strict=True):
        np.testing.assert_array_equal(a, b)
