"""ALS and MCMC solvers, posterior samples and relation blocks."""

import numpy as np
import pytest
import scipy.sparse as sp
from _reference import fm_predict_bruteforce as fm_predict
from scipy import stats

from fmlearn import FFMRegressor, FMClassifier, FMRegressor, RelationBlock, load
from fmlearn._kernels import rng as krng
from fmlearn.data import make_fm_regression
from fmlearn.metrics import auc as roc_auc


def _relational(seed=0, n=300):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, 20, n)
    i = rng.integers(0, 15, n)
    U = sp.random(20, 7, density=0.4, random_state=seed + 1, format="csr")
    I = sp.random(15, 5, density=0.5, random_state=seed + 2, format="csr")
    Xm = sp.random(n, 4, density=0.5, random_state=seed + 3, format="csr")
    y = rng.normal(size=n) + (U[u] @ np.arange(7.0)) * 0.3 - (I[i] @ np.ones(5))
    blocks = [RelationBlock(u, U), RelationBlock(i, I)]
    full = sp.hstack([Xm, U[u], I[i]]).tocsr()
    return Xm, blocks, full, np.asarray(y).ravel(), rng.uniform(0.5, 2.0, n)


@pytest.mark.parametrize("solver", ["als", "mcmc"])
def test_blocked_fit_equals_expanded_fit(solver, monkeypatch):
    # The factor-major scan (taken by data too large to cache every row's sums) visits the
    # parameters in the same order whether a column is in a block or in X: the same chain.
    monkeypatch.setattr("fmlearn.optim.coordinate.SUMS_CACHE_BYTES", 0)
    Xm, blocks, full, y, sw = _relational()
    kw = dict(n_factors=3, solver=solver, max_iter=6, l2_reg_w=0.5, l2_reg_V=0.5,
              random_state=0, tol=None)
    a = FMRegressor(**kw).fit(Xm, y, sw, X_rel=blocks)
    b = FMRegressor(**kw).fit(full, y, sw)
    np.testing.assert_allclose(a.V_, b.V_, atol=1e-10)
    np.testing.assert_allclose(a.w_, b.w_, atol=1e-10)
    np.testing.assert_allclose(a.predict(Xm, X_rel=blocks), b.predict(full), atol=1e-8)
    np.testing.assert_allclose(a.history_["train_rmse"], b.history_["train_rmse"], rtol=1e-10)


@pytest.mark.parametrize("solver", ["als", "mcmc"])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_feature_major_sweep_keeps_residuals_exact(solver, n_jobs):
    # The feature-major scan (X's columns feature by feature, then the blocks factor by factor)
    # keeps every row's residual current: the training RMSE it reports after the last sweep is
    # the brute-force RMSE of the final parameters on the expanded rows.
    Xm, blocks, full, y, sw = _relational(4, n=600)
    kw = dict(n_factors=3, solver=solver, max_iter=5, l2_reg_w=0.5, l2_reg_V=0.5,
              random_state=0, tol=None, n_kept_samples=1, n_jobs=n_jobs)
    if solver == "als":
        kw.pop("n_kept_samples")
    m = FMRegressor(**kw).fit(Xm, y, sw, X_rel=blocks)
    p = m._params  # the chain's current sample (MCMC), in float64
    e = y - fm_predict(full.toarray(), p.w0[0], p.table[:, 3], p.table[:, :3])
    rmse = np.sqrt(sw @ (e * e) / sw.sum())
    np.testing.assert_allclose(m.history_["train_rmse"][-1], rmse, rtol=1e-9)


@pytest.mark.parametrize("solver", ["als", "mcmc"])
def test_blocked_classifier_equals_expanded(solver, monkeypatch):
    monkeypatch.setattr("fmlearn.optim.coordinate.SUMS_CACHE_BYTES", 0)  # the factor-major scan
    Xm, blocks, full, y, _ = _relational(1)
    yc = y > np.median(y)
    kw = dict(n_factors=2, solver=solver, max_iter=4, l2_reg_w=1.0, l2_reg_V=1.0,
              random_state=3, tol=None)
    a = FMClassifier(**kw).fit(Xm, yc, X_rel=blocks)
    b = FMClassifier(**kw).fit(full, yc)
    np.testing.assert_allclose(a.predict_proba(Xm, X_rel=blocks), b.predict_proba(full),
                               atol=1e-8)


def test_sgd_with_blocks_trains_on_expanded_rows():
    Xm, blocks, full, y, _ = _relational(2)
    kw = dict(n_factors=2, solver="adagrad", max_iter=5, random_state=0, tol=None)
    a = FMRegressor(**kw).fit(Xm, y, X_rel=blocks)
    b = FMRegressor(**kw).fit(full, y)
    np.testing.assert_allclose(a.predict(Xm, X_rel=blocks), b.predict(full), atol=1e-5)


def test_blocked_prediction_matches_brute_force():
    Xm, blocks, full, y, _ = _relational(3)
    m = FMRegressor(n_factors=3, solver="als", max_iter=3, l2_reg_w=1, l2_reg_V=1,
                    random_state=0).fit(Xm, y, X_rel=blocks)
    ref = fm_predict(full.toarray(), m.w0_, m.w_, m.V_)
    np.testing.assert_allclose(m.predict(Xm, X_rel=blocks), ref, atol=1e-8)


def _objective(m, X, y, sw, lw, lv):
    # ALS penalizes the mean weighted squared error (the penalties scale with the data).
    e = y - fm_predict(X, m.w0_, m.w_, m.V_)
    return float(sw @ (e * e) / sw.sum() + lw * (m.w_ @ m.w_) + lv * (m.V_ ** 2).sum())


def test_als_sweeps_never_increase_the_objective_and_reach_a_stationary_point():
    X, y, _ = make_fm_regression(n_samples=200, n_features=12, n_factors=2, random_state=0)
    X = X.toarray() if sp.issparse(X) else X
    sw = np.random.default_rng(0).uniform(0.5, 2, len(y))
    lw, lv = 0.003, 0.007
    objectives = []
    m = FMRegressor(n_factors=2, solver="als", max_iter=1, l2_reg_w=lw, l2_reg_V=lv,
                    random_state=0, warm_start=True, tol=None)
    for _ in range(60):
        m.fit(X, y, sw)
        objectives.append(_objective(m, X, y, sw, lw, lv))
    assert np.all(np.diff(objectives) <= 1e-9 * objectives[0])
    # The coordinate a sweep updates last sits exactly at its minimizer given the others.
    eps = 1e-5
    V = m.V_
    base = V[-1, -1]
    vals = []
    for d in (-eps, eps):
        V[-1, -1] = base + d
        vals.append(_objective(m, X, y, sw, lw, lv))
    V[-1, -1] = base
    assert abs(vals[1] - vals[0]) / (2 * eps) < 1e-6


def test_mcmc_is_reproducible_and_seeded():
    X, y, _ = make_fm_regression(n_samples=300, n_features=20, random_state=1)
    kw = dict(n_factors=3, solver="mcmc", max_iter=10)
    a = FMRegressor(**kw, random_state=5).fit(X, y)
    b = FMRegressor(**kw, random_state=5).fit(X, y)
    c = FMRegressor(**kw, random_state=6).fit(X, y)
    np.testing.assert_array_equal(a.V_samples_, b.V_samples_)
    assert not np.allclose(a.V_samples_, c.V_samples_)
    assert a.V_samples_.shape == (9, 20, 3)  # 10 sweeps, 10 % burn-in
    assert a.w_samples_.shape == (9, 20) and a.w0_samples_.shape == (9,)
    np.testing.assert_allclose(a.V_, a.V_samples_[-1], atol=1e-6)  # last sample


def test_mcmc_predictive_intervals_are_calibrated():
    X, y, _ = make_fm_regression(n_samples=6000, n_features=40, n_factors=2, noise=0.5,
                                 random_state=2)
    Xtr, ytr, Xte, yte = X[:4000], y[:4000], X[4000:], y[4000:]
    m = FMRegressor(n_factors=2, solver="mcmc", max_iter=60, random_state=0).fit(Xtr, ytr)
    mean, std = m.predict(Xte, return_std=True)
    assert np.all(std > 0)
    inside = np.abs(yte - mean) <= stats.norm.ppf(0.95) * std
    assert 0.86 <= inside.mean() <= 0.94
    # And the mean is a good predictor: close to the noise level.
    assert np.sqrt(np.mean((mean - yte) ** 2)) < 0.65


def test_mcmc_classifier_probit_probabilities_averaged_over_samples():
    X, y, _ = make_fm_regression(n_samples=2000, n_features=30, random_state=4)
    yc = (y > np.median(y)).astype(int)
    m = FMClassifier(n_factors=3, solver="mcmc", max_iter=30, random_state=0).fit(
        X[:1500], yc[:1500], eval_set=(X[1500:], yc[1500:])
    )
    p = m.predict_proba(X[1500:])[:, 1]
    assert np.all((p >= 0) & (p <= 1))
    assert roc_auc(yc[1500:], p) > 0.85
    per_sample = np.mean(
        [stats.norm.cdf(fm_predict(X[1500:].toarray() if sp.issparse(X) else X[1500:], w0,
                                   w.astype(float), V.astype(float)))
         for w0, w, V in zip(m.w0_samples_, m.w_samples_, m.V_samples_, strict=True)],
        axis=0,
    )
    np.testing.assert_allclose(p, per_sample, atol=1e-4)
    assert len(m.history_["valid_logloss"]) == 30
    np.testing.assert_array_equal(m.predict(X[1500:]), (p > 0.5).astype(int))


def test_als_classifier_learns():
    X, y, _ = make_fm_regression(n_samples=2000, n_features=30, random_state=4)
    yc = np.where(y > np.median(y), "yes", "no")
    m = FMClassifier(n_factors=3, solver="als", max_iter=20, l2_reg_w=1e-3, l2_reg_V=1e-3,
                     random_state=0).fit(X[:1500], yc[:1500])
    assert roc_auc(yc[1500:] == "yes", m.predict_proba(X[1500:])[:, 1]) > 0.85
    assert np.all(np.diff(m.history_["train_logloss"])[3:] < 1e-6)


def test_mcmc_model_round_trips_with_its_samples(tmp_path):
    Xm, blocks, full, y, _ = _relational(4)
    m = FMRegressor(n_factors=2, solver="mcmc", max_iter=8, random_state=0).fit(
        Xm, y, X_rel=blocks
    )
    m.save(tmp_path / "m.fmz")
    r = load(tmp_path / "m.fmz")
    np.testing.assert_array_equal(r.V_samples_, m.V_samples_)
    for a, b in zip(m.predict(Xm, X_rel=blocks, return_std=True),
                    r.predict(Xm, X_rel=blocks, return_std=True), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    with pytest.raises(ValueError, match="X_rel has blocks of"):
        r.predict(Xm, X_rel=blocks[:1])
    # The chain continues from the saved state.
    r.set_params(warm_start=True, max_iter=3).fit(Xm, y, X_rel=blocks)
    assert r.V_samples_.shape[0] == 3 - 0


def test_mcmc_classifier_round_trip_keeps_probit_link(tmp_path):
    X, y, _ = make_fm_regression(n_samples=300, n_features=10, random_state=0)
    yc = y > 0
    m = FMClassifier(n_factors=2, solver="als", max_iter=5, random_state=0).fit(X, yc)
    m.save(tmp_path / "c.fmz")
    np.testing.assert_allclose(load(tmp_path / "c.fmz").predict_proba(X), m.predict_proba(X))


def test_prior_groups():
    X, y, _ = make_fm_regression(n_samples=400, n_features=10, random_state=0)
    groups = np.repeat([7, 3], 5)
    m = FMRegressor(n_factors=2, solver="mcmc", max_iter=5, prior_groups=groups,
                    random_state=0).fit(X, y)
    assert m._solver_state["lam_V"].shape == (2, 2)
    with pytest.raises(ValueError, match="prior_groups must give an integer group"):
        FMRegressor(solver="mcmc", max_iter=2, prior_groups=[0, 1]).fit(X, y)


def test_warm_start_from_sgd_into_mcmc():
    X, y, _ = make_fm_regression(n_samples=500, n_features=10, random_state=0)
    m = FMRegressor(n_factors=2, max_iter=5, random_state=0, warm_start=True).fit(X, y)
    m.set_params(solver="mcmc", max_iter=5).fit(X, y)
    assert m.V_samples_.shape[0] == 5 - 0
    m.set_params(solver="sgd", learning_rate=0.001, max_iter=2).fit(X, y)
    with pytest.raises(AttributeError, match="solver='mcmc' only"):
        m.V_samples_  # noqa: B018


def test_clear_errors():
    X, y, _ = make_fm_regression(n_samples=100, n_features=6, random_state=0)
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as err:
        FMRegressor(solver="mcmc").partial_fit(X, y)
    assert "partial_fit is not available for solver='mcmc'" in str(err.value.__cause__)
    with pytest.raises(ValueError, match="early_stopping does not apply"):
        FMRegressor(solver="mcmc", early_stopping=True).fit(X, y)
    with pytest.raises(ValueError, match="has no solver='als'"):
        FFMRegressor(solver="als").fit(X, y)
    m = FMRegressor(max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="return_std=True needs a posterior"):
        m.predict(X, return_std=True)
    with pytest.raises(ValueError, match="indexes 3 rows but X has 100"):
        FMRegressor(solver="als").fit(X, y, X_rel=[RelationBlock([0, 1, 0], np.eye(2))])
    with pytest.raises(TypeError, match="X_rel must be a RelationBlock"):
        FMRegressor(solver="als").fit(X, y, X_rel=[np.eye(2)])


def test_relation_block_validation():
    with pytest.raises(ValueError, match=r"indices\[1\] = 5 is out of range"):
        RelationBlock([0, 5], np.eye(3))
    with pytest.raises(ValueError, match="1-D integer array"):
        RelationBlock([0.5, 1], np.eye(3))
    with pytest.raises(ValueError, match="row 1, column 0"):
        RelationBlock([0, 1], np.array([[1.0, 0], [np.nan, 1]]))
    b = RelationBlock(np.array([2, 0]), sp.identity(3))
    assert b.expand().toarray().tolist() == [[0, 0, 1], [1, 0, 0]]


def test_truncated_normal_sampler_moments():
    state = np.array([12345], dtype=np.uint64)
    out = np.empty(20000)
    for a in (-2.0, 0.0, 1.5, 6.0):
        krng_sample = np.array([krng.normal_above.py_func(state, a) for _ in range(4000)])
        assert krng_sample.min() > a
        assert abs(krng_sample.mean() - krng.mean_above.py_func(a)) < 0.05
        assert abs(krng.mean_above.py_func(a) - stats.truncnorm.mean(a, np.inf)) < 1e-6
    u = np.array([krng.uniform.py_func(state) for _ in range(out.size)])
    assert u.min() > 0 and u.max() <= 1 and abs(u.mean() - 0.5) < 0.01


@pytest.mark.parametrize("shape, scale", [(0.3, 2.0), (1.0, 1.0), (5.5, 0.5), (1313.5, 0.01)])
def test_gamma_sampler_matches_scipys_gamma(shape, scale):
    # The hyper-priors' precisions and the noise precision are drawn by krng.gamma: its
    # draws must be Gamma(shape, scale) (Kolmogorov-Smirnov; fixed seed, so no flakes).
    state = np.array([2024], dtype=np.uint64)
    x = np.array([krng.gamma(state, shape, scale) for _ in range(20000)])
    assert stats.kstest(x, stats.gamma(shape, scale=scale).cdf).pvalue > 0.01
    assert abs(x.mean() / (shape * scale) - 1) < 0.03
