"""Ordinal regression: cumulative-link FM by SGD (logit) and MCMC (ordered probit)."""

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit

from fmlearn import FMOrdinalRegressor, load
from fmlearn._kernels import ordinal as ok
from fmlearn._kernels.updates import SGD
from fmlearn.data import make_fm_regression


def _stars(seed=0, n=3000):
    X, y, _ = make_fm_regression(n_samples=n, n_features=40, n_factors=2, random_state=seed)
    cuts = np.quantile(y, [0.1, 0.3, 0.6, 0.85])
    return X, np.digitize(y, cuts) + 1, y


@pytest.mark.parametrize("solver", ["adagrad", "mcmc"])
def test_ordinal_learns_ordered_classes(solver):
    X, stars, latent = _stars()
    m = FMOrdinalRegressor(n_factors=2, solver=solver, max_iter=40, random_state=0)
    m.fit(X[:2400], stars[:2400])
    proba = m.predict_proba(X[2400:])
    assert proba.shape == (600, 5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert np.all(proba >= 0)
    expected = m.predict(X[2400:])
    np.testing.assert_allclose(expected, proba @ np.arange(1, 6))
    assert np.corrcoef(expected, latent[2400:])[0, 1] > 0.85
    rmse = np.sqrt(np.mean((expected - stars[2400:]) ** 2))
    assert rmse < 0.8 * np.std(stars[2400:])
    assert np.all(np.diff(m.cutpoints_) > 0)
    assert set(m.predict_class(X[:50])) <= set(m.classes_)


def test_sgd_gradient_matches_numerical_derivative():
    # One row, plain SGD: the kernel's step on the cutpoints is -lr * d(-log p)/d theta.
    rng = np.random.default_rng(0)
    k, n_features = 3, 5
    table = rng.normal(scale=0.3, size=(n_features, k + 1))
    indptr = np.array([0, 3], dtype=np.int64)
    indices = np.array([0, 2, 4], dtype=np.int32)
    data = np.array([1.0, 0.5, -1.0])
    cut = np.array([-1.0, 0.2, 1.5])
    for c in range(4):
        y = np.array([float(c)])

        def loss(cut_, table_=table, c=c):
            x = np.zeros(n_features)
            x[indices] = data
            V, w = table_[:, :k], table_[:, k]
            f = x @ w + 0.5 * (((x @ V) ** 2).sum() - ((x[:, None] * V) ** 2).sum())
            cdf = np.r_[0.0, expit(cut_ - f), 1.0]
            return -np.log(cdf[c + 1] - cdf[c])

        cut_after = cut.copy()
        tab = table.copy()
        lr = 1e-4
        total = ok.sgd_epoch(indptr, indices, data, y, np.ones(1), np.zeros(1, np.int64), tab, k,
                             cut_after, np.ones(3), SGD, (lr, 0.0, 0.0, 0.0), True)
        assert abs(total - loss(cut)) < 1e-9
        eps = 1e-6
        num = np.array([(loss(cut + eps * e) - loss(cut - eps * e)) / (2 * eps)
                        for e in np.eye(3)])
        np.testing.assert_allclose((cut - cut_after) / lr, num, rtol=1e-5, atol=1e-8)
        # And the factor step follows d loss / d V.
        gV = np.zeros_like(table)
        for i in indices:
            for f in range(k + 1):
                t1, t2 = table.copy(), table.copy()
                t1[i, f] += eps
                t2[i, f] -= eps
                gV[i, f] = (loss(cut, t1) - loss(cut, t2)) / (2 * eps)
        np.testing.assert_allclose((table - tab) / lr, gV, rtol=1e-4, atol=1e-7)


def test_latent_targets_fall_between_their_cutpoints():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 5000).astype(np.float64)
    pred = rng.normal(scale=3, size=5000)
    cut = np.array([-1.0, 0.0, 2.0])
    z = np.empty(5000)
    ok.latent_targets(y, pred, cut, np.array([3], dtype=np.uint64), z)
    lo = np.r_[-np.inf, cut][y.astype(int)]
    hi = np.r_[cut, np.inf][y.astype(int)]
    assert np.all((z >= lo) & (z <= hi))
    # Class 1 rows with a score of ~0: z is N(0, 1) truncated to (-1, 0).
    sel = (y == 1) & (np.abs(pred) < 0.2)
    assert abs(z[sel].mean() - stats.truncnorm.mean(-1, 0)) < 0.1


def test_mcmc_cutpoints_and_round_trip(tmp_path):
    X, stars, _ = _stars(1, 1500)
    m = FMOrdinalRegressor(n_factors=2, solver="mcmc", max_iter=20, random_state=0).fit(X, stars)
    assert m.cutpoint_samples_.shape == (18, 4)
    assert np.all(np.diff(m.cutpoint_samples_, axis=1) > 0)
    m.save(tmp_path / "o.fmz")
    r = load(tmp_path / "o.fmz")
    np.testing.assert_allclose(r.predict_proba(X[:100]), m.predict_proba(X[:100]))
    s = FMOrdinalRegressor(n_factors=2, max_iter=3, random_state=0).fit(X, stars)
    s.save(tmp_path / "s.fmz")
    np.testing.assert_allclose(load(tmp_path / "s.fmz").predict(X[:50]), s.predict(X[:50]))


def test_ordinal_errors():
    X, stars, _ = _stars(2, 300)
    with pytest.raises(ValueError, match="no solver='als'"):
        FMOrdinalRegressor(solver="als").fit(X, stars)
    with pytest.raises(ValueError, match="numeric ordered labels"):
        FMOrdinalRegressor().fit(X, np.array(["a", "b", "c"])[stars % 3])
    m = FMOrdinalRegressor(max_iter=2).fit(X, stars)
    with pytest.raises(ValueError, match="not one of the classes"):
        m.partial_fit(X[:3], [1, 2, 9])
