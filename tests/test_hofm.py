"""Higher-order FM: kernels against brute force, gradients, equivalence with FM, estimators."""

from itertools import combinations

import numpy as np
import pytest
import scipy.sparse as sp
from _reference import numerical_table_gradient

import fmlearn
from fmlearn import FMRegressor
from fmlearn._kernels import hofm as hofm_kernels
from fmlearn._kernels.losses import SQUARED
from fmlearn._kernels.updates import ADAGRAD, SGD
from fmlearn.data.design import as_kernel_csr
from fmlearn.hofm import HOFMClassifier, HOFMParams, HOFMRegressor
from fmlearn.models.fm import FMParams


# ------------------------------------------------------------------ naive references
def anova_bruteforce(p, x, m):
    """A^m(p, x) = sum over all m-subsets j1<...<jm of prod_t p_jt x_jt (dense p, x)."""
    nz = np.flatnonzero(x)
    return sum(np.prod([p[j] * x[j] for j in c]) for c in combinations(nz, m))


def hofm_predict_bruteforce(X, w0, w, P):
    """w0 + <w, x> + sum_{m=2..degree} sum_s A^m(P[m-2][:, s], x), by explicit m-subsets."""
    X = np.asarray(X.todense() if hasattr(X, "todense") else X, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    out = np.empty(X.shape[0])
    for r in range(X.shape[0]):
        x = X[r]
        total = w0 + x @ np.asarray(w, np.float64)
        for mi in range(P.shape[0]):
            for s in range(P.shape[2]):
                total += anova_bruteforce(P[mi, :, s], x, mi + 2)
        out[r] = total
    return out


def test_bruteforce_reference_itself():
    """The pair and triple sums written out by hand agree with the m-subset reference."""
    rng = np.random.default_rng(0)
    p, x = rng.normal(size=6), rng.normal(size=6)
    x[2] = 0.0
    pairs = sum(p[i] * p[j] * x[i] * x[j] for i in range(6) for j in range(i + 1, 6))
    triples = sum(
        p[i] * p[j] * p[l] * x[i] * x[j] * x[l]
        for i in range(6) for j in range(i + 1, 6) for l in range(j + 1, 6)
    )
    assert np.isclose(anova_bruteforce(p, x, 2), pairs)
    assert np.isclose(anova_bruteforce(p, x, 3), triples)


def _random_hofm(n_features, k, degree, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = HOFMParams.initialize(n_features, k, 0.5, rng, degree, dtype=dtype, w0=0.3)
    params.w[:] = rng.normal(size=n_features)
    return params


def _random_X(n_rows, n_features, seed, dtype=np.float64, density=0.35):
    X = sp.random(n_rows, n_features, density=density, random_state=seed, format="lil",
                  dtype=dtype)
    X[0, :] = 0  # an empty row
    X[1, :] = 0
    X[1, 3] = 1.5  # a single non-zero: no interaction of any order
    return X.tocsr()


# ------------------------------------------------------------------ kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("degree", [2, 3, 4, 5])
def test_predict_matches_bruteforce(dtype, degree):
    params = _random_hofm(10, 3, degree, seed=degree, dtype=dtype)
    X = _random_X(25, 10, seed=1, dtype=dtype)
    got = params.decision_function(as_kernel_csr(X))
    want = hofm_predict_bruteforce(X, params.w0[0], params.w, params.P)
    np.testing.assert_allclose(got, want, rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-4)


def test_degree2_equals_fm():
    hofm = _random_hofm(12, 3, 2, seed=2)
    fm = FMParams.from_arrays({"w0": hofm.w0, "w": hofm.w.copy(), "V": hofm.V.copy()})
    X = as_kernel_csr(_random_X(30, 12, seed=3))
    np.testing.assert_allclose(hofm.decision_function(X), fm.decision_function(X), rtol=1e-10)
    # Same seed, same initialization as an FM.
    a = HOFMParams.initialize(20, 4, 0.1, np.random.default_rng(5), 2)
    b = FMParams.initialize(20, 4, 0.1, np.random.default_rng(5))
    np.testing.assert_array_equal(a.table, b.table)


def test_degree2_estimator_trains_like_fm():
    """Same data and seed: the degree-2 HOFM follows the FM's trajectory (up to rounding)."""
    rng = np.random.default_rng(0)
    X = _random_X(400, 15, seed=4)
    y = rng.normal(size=400)
    # init_stdev: HOFM keeps 0.1 as its default, FM's is 0.01.
    kw = dict(n_factors=3, max_iter=3, random_state=0, tol=None, init_stdev=0.1)
    hofm = HOFMRegressor(degree=2, **kw).fit(X, y)
    fm = FMRegressor(**kw).fit(X, y)
    np.testing.assert_allclose(hofm.predict(X), fm.predict(X), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(hofm.V_, fm.V_, rtol=1e-3, atol=1e-5)


def test_orders_are_separate():
    """Zeroing P^(4) through the P view removes exactly the order-4 ANOVA terms."""
    params = _random_hofm(8, 2, 4, seed=6)
    X = _random_X(20, 8, seed=7, density=0.6)
    Xk = as_kernel_csr(X)
    full = params.decision_function(Xk)
    dense = X.toarray()
    order4 = np.array(
        [sum(anova_bruteforce(params.P[2][:, s], x, 4) for s in range(2)) for x in dense]
    )
    params.P[2] = 0.0  # the view writes through to the table
    np.testing.assert_allclose(params.decision_function(Xk), full - order4, rtol=1e-10,
                               atol=1e-12)
    assert np.abs(order4).max() > 1e-3


@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("degree", [3, 4])
def test_sgd_step_matches_numerical_gradient(adaptive, degree):
    """One row, one step: the update equals lr * dLoss/dtheta per coordinate."""
    lr = 0.01
    params = _random_hofm(7, 2, degree, seed=8).with_state(0)
    if adaptive:
        params = params.with_state(params.wcol + 1)
        params.state[:] = 1.0
    X = sp.csr_matrix(np.array([[0.0, 1.5, 0.7, 0.0, -0.5, 2.0, 0.9]]))
    Xk = as_kernel_csr(X)
    y = np.array([0.8])
    before = params.copy()
    grad = numerical_table_gradient(before, Xk, y)
    hofm_kernels.sgd_epoch(
        Xk.indptr, Xk.indices, Xk.data, y, np.ones(1), np.zeros(1, np.int64),
        params.w0, np.ones(1), params.table, 2, degree, params.wcol,
        SQUARED, ADAGRAD if adaptive else SGD, (lr, 0.0, 0.0, 0.0), False, True,
    )
    step = (before.table[:, : before.wcol + 1] - params.table[:, : params.wcol + 1]).ravel()
    assert np.count_nonzero(grad) > 0
    if not adaptive:
        # Every coordinate moves along the gradient at the pre-update parameters.
        np.testing.assert_allclose(step, lr * grad, rtol=1e-5, atol=1e-9)
    else:
        np.testing.assert_allclose(step, lr * grad / np.sqrt(1 + grad**2), rtol=1e-5, atol=1e-9)


def test_gradient_with_one_dominant_term_float32():
    """x_j = 1e3 next to values near 1: the subtraction-free backward sweep stays accurate.

    Dividing the dominant term back out of A^m (``sum_t (-p_j x_j)^t A^{m-1-t}``) would cancel
    terms of size (p_j x_j)^3 ~ 1e9 down to ~1e2 for order 4: no float32 digit would be left.
    """
    params = _random_hofm(6, 1, 4, seed=9, dtype=np.float32).with_state(0)
    x = np.array([0.3, 1.0, 1e3, 0.5, -0.7, 0.2], dtype=np.float32)
    Xk = as_kernel_csr(sp.csr_matrix(x[None, :]))
    x64, P64 = x.astype(np.float64), params.P.astype(np.float64)
    # dy/dP^(m)_j = x_j * A^{m-1}(without j), brute force in float64.
    want = np.array([
        [x64[j] * anova_bruteforce(np.where(np.arange(6) == j, 0.0, P64[mi][:, 0]), x64, mi + 1)
         for j in range(6)]
        for mi in range(3)
    ])
    pred = HOFMParams(params.w0.astype(np.float64), params.table.astype(np.float64), 1, 4)
    y = pred.decision_function(Xk) - 1.0  # loss gradient g = pred - y, about 1
    lr = 1e-2 / np.abs(want).max()  # steps of at most 1e-2: well resolved in float32
    before = params.P.astype(np.float64)
    loss = hofm_kernels.sgd_epoch(
        Xk.indptr, Xk.indices, Xk.data, y, np.ones(1), np.zeros(1, np.int64),
        params.w0, np.ones(1), params.table, 1, 4, params.wcol,
        SQUARED, SGD, (lr, 0.0, 0.0, 0.0), False, False,
    )
    g = np.sqrt(loss)  # the kernel's own g (its float32 prediction is slightly off)
    got = (before - params.P)[:, :, 0] / (lr * g)
    scale = np.abs(want).max(axis=1, keepdims=True)
    np.testing.assert_allclose(got / scale, want / scale, atol=1e-4)


def test_from_arrays_round_trip():
    X = _random_X(200, 10, seed=10)
    y = np.random.default_rng(0).normal(size=200)
    model = HOFMRegressor(n_factors=3, degree=4, max_iter=2, random_state=0).fit(X, y)
    p = model._params
    arrays = p.arrays()
    assert set(arrays) == {"w0", "w", "P"} and arrays["P"].shape == (3, 10, 3)
    assert arrays["P"].flags.c_contiguous
    q = HOFMParams.from_arrays(arrays, p.state.copy())
    assert q.kind == "hofm" and q.degree == 4 and q.n_factors == 3
    np.testing.assert_array_equal(q.table, p.table)
    Xk = as_kernel_csr(X)
    np.testing.assert_array_equal(q.decision_function(Xk), p.decision_function(Xk))
    bare = HOFMParams.from_arrays(arrays)
    assert bare.state.shape == (10, 0)
    with pytest.raises(ValueError, match="3-D"):
        HOFMParams.from_arrays({**arrays, "P": arrays["P"][0]})
    with pytest.raises(ValueError, match="orders"):
        HOFMParams.from_arrays({**arrays, "P": np.zeros((5, 10, 3), np.float32)})
    with pytest.raises(ValueError, match="shapes"):
        HOFMParams.from_arrays({**arrays, "w": arrays["w"][:5]})


def test_initialization():
    p = HOFMParams.initialize(4000, 2, 0.1, np.random.default_rng(0), 4, n_state=9)
    assert p.table.shape == (4000, 3 * 2 + 1 + 9) and p.table.dtype == np.float32
    np.testing.assert_allclose(p.P.reshape(3, -1).std(axis=1), 0.1, rtol=0.05)
    assert not p.w.any() and not p.state.any()


# ------------------------------------------------------------------ estimators
def _third_order_data(n=5000, seed=0):
    """One-hot rows over 6 fields of 8 values; targets from a hidden rank-2 degree-3 HOFM
    (third-order part dominant) plus noise of 5% of the signal's spread."""
    rng = np.random.default_rng(seed)
    sizes = [8] * 6
    offsets = np.cumsum([0] + sizes)
    cols = np.column_stack(
        [rng.integers(0, s, n) + o for s, o in zip(sizes, offsets[:-1], strict=True)]
    )
    nf, d = len(sizes), offsets[-1]
    X = sp.csr_matrix((np.ones(nf * n), cols.ravel(), np.arange(0, nf * n + 1, nf)), (n, d))
    P = np.stack([rng.normal(0, 0.3, (d, 2)), rng.normal(0, 0.6, (d, 2))])
    truth = HOFMParams.from_arrays({"w0": np.zeros(1), "w": rng.normal(0, 0.3, d), "P": P})
    f = truth.decision_function(as_kernel_csr(X))
    return X, f + rng.normal(0, 0.05 * f.std(), n)


def test_hofm_beats_fm_on_third_order_data():
    X, y = _third_order_data()
    tr, te = slice(0, 4000), slice(4000, None)
    # Same n_factors for both (above the true rank 2: SGD on a rank-2 fit often stalls).
    kw = dict(n_factors=8, max_iter=40, random_state=0, l2_reg_V=1e-5, l2_reg_w=1e-5, tol=None)
    hofm = HOFMRegressor(degree=3, **kw).fit(X[tr], y[tr])
    fm = FMRegressor(**kw).fit(X[tr], y[tr])
    rmse_hofm = np.sqrt(np.mean((hofm.predict(X[te]) - y[te]) ** 2))
    rmse_fm = np.sqrt(np.mean((fm.predict(X[te]) - y[te]) ** 2))
    assert rmse_hofm < 0.7 * rmse_fm
    assert rmse_hofm < 0.2 * y.std()  # near the noise (0.05 y.std()); FM stays near 0.9
    assert hofm.P_.shape == (2, 48, 8)
    np.testing.assert_array_equal(hofm.V_, hofm.P_[0])


def test_classifier_string_labels_threads_early_stopping():
    X, y = _third_order_data(3000, seed=1)
    labels = np.where(y > np.median(y), "pos", "neg")
    clf = HOFMClassifier(n_factors=2, max_iter=20, random_state=0).fit(X, labels)
    assert list(clf.classes_) == ["neg", "pos"]
    assert (clf.predict(X) == labels).mean() > 0.8
    assert clf.predict_proba(X).shape == (3000, 2)
    par = HOFMClassifier(n_factors=2, max_iter=20, random_state=0, n_jobs=2).fit(X, labels)
    # Hogwild: how the two threads' updates interleave depends on timing (on a loaded machine
    # 0.789 against the one thread's 0.803), so a margin below the one-thread fit.
    assert (par.predict(X) == labels).mean() > (clf.predict(X) == labels).mean() - 0.04
    es = HOFMClassifier(n_factors=2, max_iter=30, random_state=0, solver="sgd",
                        learning_rate=0.05, early_stopping=True).fit(X, labels)
    assert 1 <= es.best_iteration_ <= es.n_iter_
    assert (es.predict(X) == labels).mean() > 0.7


def test_sample_weight_zero_rows_are_ignored():
    X, y = _third_order_data(600, seed=2)
    y_bad = y.copy()
    y_bad[300:] = 1e3  # garbage on rows that get weight zero
    sw = np.r_[np.ones(300), np.zeros(300)]
    kw = dict(n_factors=2, max_iter=5, random_state=0, tol=None)
    a = HOFMRegressor(**kw).fit(X, y_bad, sample_weight=sw)
    assert np.sqrt(np.mean((a.predict(X[:300]) - y[:300]) ** 2)) < 2 * y.std()


@pytest.mark.parametrize("degree", [1, 6, 2.5, "3"])
def test_bad_degree(degree):
    X = sp.random(10, 4, density=0.5, random_state=0, format="csr")
    with pytest.raises(ValueError, match="degree"):
        HOFMRegressor(degree=degree).fit(X, np.arange(10.0))


def test_warm_start_degree_change():
    X = _random_X(50, 6, seed=11)
    y = np.arange(50.0) / 50
    m = HOFMRegressor(n_factors=2, degree=3, warm_start=True, max_iter=2).fit(X, y)
    m.fit(X, y)  # same degree: continues
    assert m.history_["epoch"][-1] == 4
    with pytest.raises(ValueError, match="degree changed from 3 to 4"):
        m.set_params(degree=4).fit(X, y)
    with pytest.raises(ValueError, match="degree changed"):
        m.partial_fit(X, y)


def test_save_load_through_io(tmp_path):
    X, y = _third_order_data(500, seed=3)
    labels = np.where(y > 0, 1, -1)
    clf = HOFMClassifier(n_factors=2, degree=4, max_iter=2, random_state=0).fit(X, labels)
    clf.save(tmp_path / "hofm.fmz")
    loaded = fmlearn.load(tmp_path / "hofm.fmz")
    assert type(loaded) is HOFMClassifier and loaded.degree == 4
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.P_, clf.P_)
    np.testing.assert_array_equal(loaded._params.state, clf._params.state)  # AdaGrad sums
    loaded.partial_fit(X, labels)
    clf.partial_fit(X, labels)
    # Same parameters and AdaGrad state; only the shuffle RNG is re-seeded on load.
    assert np.corrcoef(loaded.P_.ravel(), clf.P_.ravel())[0, 1] > 0.99

