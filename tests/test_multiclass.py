"""Multinomial FM: FMClassifier with more than two classes (fmlearn.models.multiclass)."""

import numpy as np
import pytest
import scipy.sparse as sp
from _reference import fm_predict_bruteforce
from scipy.special import softmax
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import fmlearn
from fmlearn import FFMClassifier, FMClassifier, FwFMClassifier, HOFMClassifier
from fmlearn._kernels import multiclass as mc_kernels
from fmlearn._kernels.updates import ADAGRAD, SGD
from fmlearn.data.design import as_kernel_csr
from fmlearn.models.fm import FMParams
from fmlearn.models.multiclass import MulticlassFMParams


def _random_params(n_features, n_classes, k, seed, dtype=np.float64, n_state=0):
    rng = np.random.default_rng(seed)
    params = MulticlassFMParams.initialize(
        n_features, k, n_classes, 0.5, rng, dtype=dtype, w0=rng.normal(size=n_classes),
        n_state=n_state,
    )
    params.w[:] = rng.normal(size=params.w.shape)
    return params


def _bruteforce_scores(X, params):
    """Per class, the FM over all pairs (tests/_reference.py): shape (n_rows, C)."""
    return np.column_stack([
        fm_predict_bruteforce(X, float(params.w0[c]), params.w[:, c], params.V[:, c])
        for c in range(params.n_classes)
    ])


def _interaction_data(n, seed, noise=0.1):
    """Two one-hot fields of 9 levels; the class is (a + b) mod 3: pure interaction."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 9, n), rng.integers(0, 9, n)
    X = sp.csr_matrix(
        (np.ones(2 * n), np.column_stack([a, 9 + b]).ravel(), np.arange(0, 2 * n + 1, 2)),
        shape=(n, 18),
    )
    y = (a + b) % 3
    flip = rng.random(n) < noise
    y[flip] = rng.integers(0, 3, flip.sum())
    return X, np.array(["red", "green", "blue"])[y]


@pytest.fixture(scope="module")
def interaction():
    return _interaction_data(3000, seed=0), _interaction_data(2000, seed=1)


# ---------------------------------------------------------------- model and kernels
def test_layout_views_and_shapes():
    p = _random_params(7, 4, 3, seed=0, n_state=MulticlassFMParams.n_param_columns(3, 4))
    assert p.table.shape == (7, 2 * 4 * (3 + 1))
    assert p.w0.shape == (4,) and p.w.shape == (7, 4) and p.V.shape == (7, 4, 3)
    assert p.state.shape == (7, 16)
    # Row i is [V[i, 0] | ... | V[i, C-1] | w[i, :] | state], and the views share its memory.
    np.testing.assert_array_equal(p.table[2, :12], p.V[2].ravel())
    np.testing.assert_array_equal(p.table[2, 12:16], p.w[2])
    p.V[3, 2, 1] = 42.0
    assert p.table[3, 2 * 3 + 1] == 42.0
    assert np.shares_memory(p.w, p.table)
    q = p.with_state(0)
    assert q.table.shape == (7, 16)
    np.testing.assert_array_equal(q.table, p.table[:, :16])
    assert p.copy().table is not p.table and p.all_finite()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_predict_matches_bruteforce_softmax(dtype):
    p = _random_params(15, 4, 3, seed=1, dtype=dtype)
    X = sp.random(40, 15, density=0.3, random_state=2, format="csr", dtype=dtype)
    Xk = as_kernel_csr(X)
    want = _bruteforce_scores(X, p)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(p.decision_function(Xk), want, **tol)
    proba = p.mean_output(Xk)
    np.testing.assert_allclose(proba, softmax(want, axis=1), **tol)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # threads give the same answer (blocks of rows)
    X_big = sp.random(12000, 15, density=0.2, random_state=3, format="csr", dtype=dtype)
    Xb = as_kernel_csr(X_big)
    np.testing.assert_array_equal(p.decision_function(Xb, 2), p.decision_function(Xb, 1))


def test_zero_factors_is_multinomial_logistic_regression():
    p = _random_params(6, 3, 0, seed=4)
    X = sp.random(10, 6, density=0.5, random_state=5, format="csr")
    np.testing.assert_allclose(
        p.decision_function(as_kernel_csr(X)), X @ p.w + p.w0, rtol=1e-12
    )


def _numerical_gradient(params, Xk, label, weight, h=1e-6):
    """d/dtheta of weight * -log softmax(f(x))[label], theta = (w0, parameter columns)."""

    def loss(theta):
        p = params.copy()
        p.w0[:] = theta[: p.n_classes]
        p.table[:, : p.n_param] = theta[p.n_classes :].reshape(p.n_features, -1)
        f = p.decision_function(Xk)[0]
        return weight * (np.log(np.exp(f - f.max()).sum()) + f.max() - f[label])

    theta = np.concatenate([params.w0, params.table[:, : params.n_param].ravel()])
    grad = np.zeros_like(theta)
    for c in range(theta.size):
        e = np.zeros_like(theta)
        e[c] = h
        grad[c] = (loss(theta + e) - loss(theta - e)) / (2 * h)
    return grad, loss(theta)


@pytest.mark.parametrize("adaptive", [False, True])
def test_sgd_step_is_the_softmax_gradient(adaptive):
    n_param = MulticlassFMParams.n_param_columns(3, 4)
    params = _random_params(8, 4, 3, seed=6, n_state=n_param if adaptive else 0)
    params.state[:] = 1.0
    X = sp.csr_matrix(np.array([[0.0, 1.5, 0.0, -0.7, 0.0, 0.0, 2.0, 0.3]]))
    Xk = as_kernel_csr(X)
    label, weight, lr = 2, 1.7, 0.05
    before = params.copy()
    grad, want_loss = _numerical_gradient(before, Xk, label, weight)
    got_loss = mc_kernels.sgd_epoch(
        Xk.indptr, Xk.indices, Xk.data, np.array([float(label)]), np.array([weight]),
        np.zeros(1, np.int64), params.w0, np.ones(4), params.table, 3,
        ADAGRAD if adaptive else SGD, (lr, 0.0, 0.0, 0.0), True, True,
    )
    np.testing.assert_allclose(got_loss, want_loss, rtol=1e-9)
    step = np.concatenate([
        before.w0 - params.w0,
        (before.table[:, :n_param] - params.table[:, :n_param]).ravel(),
    ])
    if not adaptive:
        np.testing.assert_allclose(step, lr * grad, rtol=1e-6, atol=1e-10)
    else:
        # Accumulators start at 1: the first step is lr * g / sqrt(1 + g^2).
        np.testing.assert_allclose(step, lr * grad / np.sqrt(1 + grad**2), rtol=1e-6, atol=1e-10)
        np.testing.assert_allclose(
            params.state.ravel(), 1 + grad[4:] ** 2, rtol=1e-6, atol=1e-10
        )
    # Untouched features did not move.
    untouched = np.flatnonzero(X.toarray()[0] == 0)
    np.testing.assert_array_equal(params.table[untouched], before.table[untouched])


def test_arrays_round_trip_and_bad_shapes():
    p = _random_params(5, 3, 2, seed=7, dtype=np.float32, n_state=9)
    arrays = p.arrays()
    assert arrays["w0"].shape == (3,) and arrays["w"].shape == (5, 3)
    assert arrays["V"].shape == (5, 3, 2)
    q = MulticlassFMParams.from_arrays(arrays, state=p.state)
    np.testing.assert_array_equal(q.table, p.table)
    np.testing.assert_array_equal(q.w0, p.w0)
    with pytest.raises(ValueError, match="inconsistent"):
        MulticlassFMParams.from_arrays({**arrays, "w": arrays["w"][:, :2]})
    with pytest.raises(ValueError, match="inconsistent"):
        MulticlassFMParams.from_arrays({**arrays, "w0": arrays["w0"][:2]})
    with pytest.raises(ValueError, match="dtype"):
        MulticlassFMParams.from_arrays({**arrays, "V": arrays["V"].astype(np.float64)})


# ---------------------------------------------------------------- estimator
def test_learns_a_three_class_interaction(interaction):
    (X, y), (Xte, yte) = interaction
    clf = FMClassifier(n_factors=4, max_iter=40, random_state=0).fit(X, y)
    assert list(clf.classes_) == ["blue", "green", "red"]
    assert isinstance(clf._params, MulticlassFMParams)
    assert clf.w0_.shape == (3,) and clf.w_.shape == (18, 3) and clf.V_.shape == (18, 3, 4)
    scores = clf.decision_function(Xte)
    proba = clf.predict_proba(Xte)
    assert scores.shape == proba.shape == (2000, 3)
    np.testing.assert_allclose(proba, softmax(scores, axis=1), rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(Xte), clf.classes_[scores.argmax(axis=1)])
    accuracy = (clf.predict(Xte) == yte).mean()
    linear = LogisticRegression(max_iter=1000).fit(X, y)
    # 10 % of the labels are random: the best possible accuracy is about 0.93.
    assert accuracy > 0.88
    assert accuracy > linear.score(Xte, yte) + 0.4
    assert clf.history_["train_logloss"][-1] < clf.history_["train_logloss"][0]


def test_plain_sgd_hogwild_and_linear(interaction):
    (X, y), (Xte, yte) = interaction
    sgd = FMClassifier(n_factors=4, solver="sgd", learning_rate=0.05, max_iter=40,
                       random_state=0, n_jobs=2).fit(X, y)
    assert (sgd.predict(Xte) == yte).mean() > 0.85
    linear = FMClassifier(n_factors=0, max_iter=10, random_state=0).fit(X, y)
    assert linear.V_.shape == (18, 3, 0)
    assert (linear.predict(Xte) == yte).mean() < 0.5  # no interactions, no luck


def test_initial_bias_is_log_priors_and_metric_is_multinomial_logloss():
    X = np.zeros((10, 2))  # no signal: the bias alone fits the priors
    y = np.array([0] * 5 + [1] * 3 + [2] * 2)
    clf = FMClassifier(max_iter=1, learning_rate=1e-9, random_state=0).fit(X, y)
    priors = np.array([0.5, 0.3, 0.2])
    np.testing.assert_allclose(clf.predict_proba(X[:1])[0], priors, rtol=1e-5)
    want = -np.mean(np.log(priors[y]))
    np.testing.assert_allclose(clf.history_["train_logloss"][0], want, rtol=1e-5)
    no_bias = FMClassifier(max_iter=1, fit_intercept=False, random_state=0).fit(X, y)
    np.testing.assert_array_equal(no_bias.w0_, 0.0)


def test_sample_weight_scales_the_gradient(interaction):
    (X, y), _ = interaction
    X, y = X[:600], y[:600]
    common = dict(n_factors=3, solver="sgd", max_iter=3, l2_reg_w=0, l2_reg_V=0,
                  random_state=0, tol=None)
    a = FMClassifier(learning_rate=0.02, **common).fit(X, y)
    b = FMClassifier(learning_rate=0.01, **common).fit(X, y, sample_weight=np.full(600, 2.0))
    np.testing.assert_allclose(b._params.table, a._params.table, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b.history_["train_logloss"], a.history_["train_logloss"])
    # Weighted classes shift the priors: zero weight on "red" leaves it improbable.
    w = np.where(y == "red", 0.0, 1.0)
    c = FMClassifier(n_factors=3, max_iter=5, random_state=0).fit(X, y, sample_weight=w)
    assert c.predict_proba(X)[:, list(c.classes_).index("red")].mean() < 0.05


def test_digits_close_to_logistic_regression():
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(Xtr)
    Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
    lr = LogisticRegression(max_iter=2000).fit(Xtr, ytr).score(Xte, yte)
    fm = FMClassifier(n_factors=4, random_state=0).fit(Xtr, ytr)
    acc = fm.score(Xte, yte)
    assert fm.predict_proba(Xte).shape == (Xte.shape[0], 10)
    assert acc > 0.95 and acc > lr - 0.02, (acc, lr)


def test_early_stopping_on_multinomial_validation_loss(interaction):
    (X, y), (Xte, yte) = interaction
    clf = FMClassifier(n_factors=4, max_iter=60, early_stopping=True, n_iter_no_change=3,
                       random_state=0).fit(X, y, eval_set=(Xte, yte))
    valid = clf.history_["valid_logloss"]
    assert clf.best_iteration_ == int(np.argmin(valid)) + 1
    proba = clf.predict_proba(Xte)
    ref = -np.mean(np.log(proba[np.arange(len(yte)), np.searchsorted(clf.classes_, yte)]))
    np.testing.assert_allclose(ref, min(valid), rtol=1e-6)


def test_save_load_round_trip_resumes_exactly(tmp_path, interaction):
    (X, y), _ = interaction
    clf = FMClassifier(n_factors=3, max_iter=3, random_state=0).fit(X, y)
    clf.save(tmp_path / "m.fmz")
    loaded = fmlearn.load(tmp_path / "m.fmz")
    assert type(loaded) is FMClassifier and isinstance(loaded._params, MulticlassFMParams)
    assert list(loaded.classes_) == list(clf.classes_)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.w0_, clf.w0_)
    np.testing.assert_array_equal(loaded.V_, clf.V_)
    assert loaded._solver_state["acc_w0"].shape == (3,)
    # Same AdaGrad state (per-feature and per-class bias accumulators): with the same shuffle,
    # one more epoch gives the same parameters.
    clf._rng, loaded._rng = np.random.default_rng(5), np.random.default_rng(5)
    clf.partial_fit(X, y)
    loaded.partial_fit(X, y)
    np.testing.assert_array_equal(loaded._params.table, clf._params.table)
    np.testing.assert_array_equal(loaded.w0_, clf.w0_)


def test_partial_fit_with_classes_and_warm_start(interaction):
    (X, y), (Xte, yte) = interaction
    labels = ["blue", "green", "red"]
    clf = FMClassifier(n_factors=4, random_state=0)
    first = y != "red"
    clf.partial_fit(X[first], y[first], classes=labels)  # "red" not seen yet
    assert list(clf.classes_) == labels and clf.w0_.shape == (3,)
    for _ in range(20):
        clf.partial_fit(X, y)
    assert (clf.predict(Xte) == yte).mean() > 0.85
    with pytest.raises(ValueError, match="not one of the classes"):
        clf.partial_fit(X[:2], ["red", "purple"])
    warm = FMClassifier(n_factors=4, max_iter=2, warm_start=True, random_state=0).fit(X, y)
    warm.fit(X, y)
    assert len(warm.history_["epoch"]) == 4
    warm.set_params(solver="sgd", learning_rate=0.01).fit(X, y)  # AdaGrad state dropped
    assert warm._params.state.shape == (18, 0) and warm._solver_state is None
    warm.set_params(solver="adagrad").fit(X, y)  # and made afresh
    assert warm._params.state.shape == (18, 15) and warm._solver_state["acc_w0"].shape == (3,)
    # A refit decides anew: two classes give the binary model back.
    binary = y != "red"
    warm.set_params(warm_start=False).fit(X[binary], y[binary])
    assert isinstance(warm._params, FMParams) and isinstance(warm.w0_, float)
    assert warm.decision_function(Xte).shape == (2000,)


def test_binary_path_unchanged():
    X = sp.random(200, 6, density=0.5, random_state=0, format="csr")
    y = np.asarray(X.sum(axis=1)).ravel() > 1.0
    clf = FMClassifier(n_factors=2, max_iter=5, random_state=0).fit(X, y)
    assert type(clf._params) is FMParams and clf._params.kind == "fm"
    assert isinstance(clf.w0_, float) and clf.w_.shape == (6,) and clf.V_.shape == (6, 2)
    assert clf.predict_proba(X).shape == (200, 2)
    assert clf.decision_function(X).shape == (200,)


def test_errors():
    X = np.eye(6)
    y3 = [0, 1, 2, 0, 1, 2]
    with pytest.raises(ValueError, match="only one class"):
        FMClassifier().fit(X, [1] * 6)
    for solver in ("als", "mcmc"):
        with pytest.raises(ValueError, match="not supported for more than two classes"):
            FMClassifier(solver=solver).fit(X, y3)
    # warm start switching to an unsupported solver
    clf = FMClassifier(max_iter=2, warm_start=True).fit(X, y3)
    with pytest.raises(ValueError, match="not supported for more than two classes"):
        clf.set_params(solver="als").fit(X, y3)
    with pytest.raises(ValueError, match="Only binary classification is supported by"):
        FFMClassifier().fit(X, y3)
    for cls in (FwFMClassifier, HOFMClassifier):
        with pytest.raises(ValueError, match="available in FMClassifier"):
            cls().fit(X, y3)
    clf = FMClassifier(max_iter=2).fit(X, y3)
    with pytest.raises(ValueError, match="not available for a multi-class model"):
        clf.field_interactions(fields=np.zeros(6, int))
