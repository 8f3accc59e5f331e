"""FMRegressor / FMClassifier behaviour from the public API."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler

from fmlearn import FMClassifier, FMRegressor
from fmlearn.data import make_fm_regression
from fmlearn.exceptions import TrainingDivergedError

FAST = dict(max_iter=40, random_state=0, learning_rate=0.1, tol=None)


@pytest.fixture(scope="module")
def fm_data():
    X, y, true = make_fm_regression(
        n_samples=6000, n_features=40, n_factors=3, nnz_per_row=6, noise=0.05, random_state=0
    )
    return X[:5000], y[:5000], X[5000:], y[5000:], true


def test_regressor_learns_interactions(fm_data):
    Xtr, ytr, Xte, yte, true = fm_data
    fm = FMRegressor(n_factors=6, l2_reg_V=1e-5, **FAST).fit(Xtr, ytr)
    linear = FMRegressor(n_factors=0, **FAST).fit(Xtr, ytr)
    rmse = np.sqrt(np.mean((fm.predict(Xte) - yte) ** 2))
    rmse_linear = np.sqrt(np.mean((linear.predict(Xte) - yte) ** 2))
    assert rmse < 0.5 * rmse_linear
    assert rmse < 0.3 * np.std(yte)
    assert fm.V_.shape == (40, 6) and fm.w_.shape == (40,) and isinstance(fm.w0_, float)
    assert linear.V_.shape == (40, 0)


def test_same_seed_same_model(fm_data):
    Xtr, ytr, *_ = fm_data
    a = FMRegressor(**FAST).fit(Xtr, ytr)
    b = FMRegressor(**FAST).fit(Xtr, ytr)
    c = FMRegressor(**{**FAST, "random_state": 1}).fit(Xtr, ytr)
    np.testing.assert_array_equal(a.V_, b.V_)
    np.testing.assert_array_equal(a.predict(Xtr), b.predict(Xtr))
    assert not np.array_equal(a.V_, c.V_)


def test_global_rng_untouched(fm_data):
    Xtr, ytr, *_ = fm_data
    np.random.seed(123)  # noqa: NPY002 - the global state is what this test guards
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    FMRegressor(max_iter=2, random_state=None).fit(Xtr, ytr)
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002


def test_parallel_training_learns(fm_data):
    Xtr, ytr, Xte, yte, _ = fm_data
    m = FMRegressor(n_jobs=2, **FAST).fit(Xtr, ytr)
    assert np.sqrt(np.mean((m.predict(Xte) - yte) ** 2)) < 0.3 * np.std(yte)
    np.testing.assert_allclose(m.predict(Xte), FMRegressor.predict(m, Xte))


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "dense", "array"])
def test_input_formats_same_model(fm_data, fmt):
    Xtr, ytr, *_ = fm_data
    X = Xtr[:500]
    ref = FMRegressor(max_iter=3, random_state=0).fit(X, ytr[:500])
    conv = {"csr": X, "csc": X.tocsc(), "coo": X.tocoo(), "dense": X.toarray(),
            "array": sp.csr_array(X)}[fmt]
    m = FMRegressor(max_iter=3, random_state=0).fit(conv, ytr[:500])
    np.testing.assert_allclose(m.V_, ref.V_, rtol=1e-6)


def test_float32_and_float64_inputs(fm_data):
    Xtr, ytr, *_ = fm_data
    X32 = Xtr[:500].astype(np.float32)
    X64 = Xtr[:500].astype(np.float64)
    a = FMRegressor(max_iter=3, random_state=0).fit(X32, ytr[:500])
    b = FMRegressor(max_iter=3, random_state=0).fit(X64, ytr[:500])
    np.testing.assert_allclose(a.predict(X64), b.predict(X32), rtol=1e-4, atol=1e-4)
    assert X32.dtype == np.float32  # caller's matrix untouched


def test_caller_matrix_not_modified():
    X = sp.csr_matrix((np.array([1.0, 2.0, 3.0]), np.array([1, 1, 0]), np.array([0, 2, 3])),
                      shape=(2, 3))
    assert not X.has_canonical_format
    data = X.data.copy()
    FMRegressor(max_iter=2, random_state=0).fit(X, [1.0, 2.0])
    np.testing.assert_array_equal(X.data, data)


def test_partial_fit_equals_fit(fm_data):
    Xtr, ytr, *_ = fm_data
    full = FMRegressor(max_iter=3, tol=None, random_state=0).fit(Xtr, ytr)
    inc = FMRegressor(max_iter=3, tol=None, random_state=0)
    for _ in range(3):
        inc.partial_fit(Xtr, ytr)
    np.testing.assert_array_equal(full.V_, inc.V_)
    assert inc.history_["epoch"] == [1, 2, 3]


def test_warm_start_continues(fm_data):
    Xtr, ytr, *_ = fm_data
    full = FMRegressor(max_iter=5, tol=None, random_state=0).fit(Xtr, ytr)
    warm = FMRegressor(max_iter=2, tol=None, random_state=0, warm_start=True).fit(Xtr, ytr)
    warm.set_params(max_iter=3).fit(Xtr, ytr)
    np.testing.assert_array_equal(full.V_, warm.V_)
    cold = FMRegressor(max_iter=2, tol=None, random_state=0).fit(Xtr, ytr)
    V = cold.V_.copy()
    cold.fit(Xtr, ytr)
    np.testing.assert_array_equal(cold.V_, V)  # without warm_start, fit restarts


def test_early_stopping_restores_best(fm_data):
    Xtr, ytr, Xte, yte, _ = fm_data
    m = FMRegressor(
        n_factors=16, max_iter=200, l2_reg_V=0.0, l2_reg_w=0.0, learning_rate=0.5,
        early_stopping=True, n_iter_no_change=3, random_state=0,
    ).fit(Xtr[:1000], ytr[:1000], eval_set=(Xte, yte))
    valid = m.history_["valid_rmse"]
    assert m.n_iter_ < 200
    assert m.best_iteration_ == int(np.argmin(valid)) + 1
    rmse = np.sqrt(np.mean((m.predict(Xte) - yte) ** 2))
    assert rmse == pytest.approx(min(valid), rel=1e-5)


def test_early_stopping_with_validation_fraction(fm_data):
    Xtr, ytr, *_ = fm_data
    m = FMRegressor(max_iter=100, early_stopping=True, validation_fraction=0.2,
                    random_state=0).fit(Xtr, ytr)
    assert len(m.history_["valid_rmse"]) == m.n_iter_


@pytest.fixture(scope="module")
def auto_rows():
    """Rows just above and at the early_stopping="auto" threshold."""
    from fmlearn.base import EARLY_STOPPING_AUTO_ROWS

    X, y, _ = make_fm_regression(n_samples=EARLY_STOPPING_AUTO_ROWS + 500, n_features=20,
                                 n_factors=2, random_state=0)
    return sp.csr_matrix(X), y, EARLY_STOPPING_AUTO_ROWS


def test_early_stopping_auto_switches_on_above_the_row_threshold(auto_rows):
    X, y, n = auto_rows
    kw = dict(n_factors=2, max_iter=4, tol=None, random_state=0)
    assert FMRegressor().early_stopping == "auto"
    big = FMRegressor(**kw).fit(X, y)  # n + 500 rows: on, 10% held out, best epoch kept
    assert len(big.history_["valid_rmse"]) == big.n_iter_ == 4
    assert big.best_iteration_ == int(np.argmin(big.history_["valid_rmse"])) + 1
    small = FMRegressor(**kw).fit(X[:n], y[:n])  # n rows: off
    assert "valid_rmse" not in small.history_ and small.n_iter_ == 4
    assert not hasattr(small, "best_iteration_")
    # True and False still force it either way.
    assert "valid_rmse" in FMRegressor(early_stopping=True, **kw).fit(X[:500], y[:500]).history_
    assert "valid_rmse" not in FMRegressor(early_stopping=False, **kw).fit(X, y).history_
    # A classifier: the same rule (a stratified hold-out).
    yc = (y > np.median(y)).astype(int)
    assert "valid_logloss" in FMClassifier(**kw).fit(X, yc).history_
    assert "valid_logloss" not in FMClassifier(**kw).fit(X[:n], yc[:n]).history_


def test_early_stopping_auto_is_off_for_als_mcmc_and_partial_fit(auto_rows):
    X, y, _ = auto_rows
    for solver in ("als", "mcmc"):  # no error, no hold-out: every row trains
        m = FMRegressor(n_factors=2, solver=solver, max_iter=3, random_state=0).fit(X, y)
        assert "valid_rmse" not in m.history_ and m.n_iter_ == 3
    with pytest.raises(ValueError, match="early_stopping does not apply"):
        FMRegressor(solver="mcmc", early_stopping=True, max_iter=3).fit(X, y)
    m = FMRegressor(n_factors=2, random_state=0)
    m.partial_fit(X, y)
    m.partial_fit(X, y)
    assert "valid_rmse" not in m.history_ and m.history_["epoch"] == [1, 2]


def test_early_stopping_auto_counts_the_rankers_positives():
    from fmlearn.base import EARLY_STOPPING_AUTO_ROWS
    from fmlearn.ranking import FMRanker

    kw = dict(n_factors=4, max_iter=2, tol=None, random_state=0)
    many = sp.random(400, 300, density=0.1, random_state=0, format="csr")  # 12,000 positives
    assert many.nnz > EARLY_STOPPING_AUTO_ROWS
    assert "valid_ndcg@10" in FMRanker(**kw).fit(None, None, many).history_
    few = sp.random(400, 300, density=0.05, random_state=0, format="csr")
    assert "valid_ndcg@10" not in FMRanker(**kw).fit(None, None, few).history_


def test_tol_stops_on_training_metric(fm_data):
    Xtr, ytr, *_ = fm_data
    m = FMRegressor(max_iter=500, tol=1e-2, n_iter_no_change=2, random_state=0).fit(Xtr, ytr)
    assert m.n_iter_ < 500


def test_history_and_callbacks(fm_data):
    Xtr, ytr, Xte, yte, _ = fm_data
    seen = []

    def stop_at_three(env):
        seen.append((env.epoch, env.metric, env.valid is not None))
        return env.epoch == 3

    m = FMRegressor(max_iter=10, random_state=0).fit(
        Xtr, ytr, eval_set=[(Xte, yte)], callbacks=[stop_at_three]
    )
    assert m.n_iter_ == 3
    assert seen == [(1, "rmse", True), (2, "rmse", True), (3, "rmse", True)]
    assert set(m.history_) == {"epoch", "train_rmse", "valid_rmse", "time"}
    assert np.all(np.diff(m.history_["time"]) >= 0)


def test_verbose_progress_bar(fm_data, capsys):
    Xtr, ytr, *_ = fm_data
    FMRegressor(max_iter=2, verbose=1, random_state=0).fit(Xtr[:200], ytr[:200])
    err = capsys.readouterr().err
    assert "FMRegressor" in err and "train_rmse" in err


def test_sample_weight_steers_the_fit():
    rng = np.random.default_rng(0)
    X = sp.csr_matrix(np.ones((400, 1)))
    y = np.where(np.arange(400) < 200, 0.0, 10.0)
    w = np.where(np.arange(400) < 200, 1.0, 0.0)
    m = FMRegressor(n_factors=0, max_iter=50, random_state=0, learning_rate=0.5).fit(X, y, w)
    assert abs(m.predict(X[:1])[0]) < 0.5
    del rng


def test_diverging_training_raises_and_leaves_unfitted():
    X, y, _ = make_fm_regression(500, 20, random_state=0)
    m = FMRegressor(solver="sgd", learning_rate=50.0, init_stdev=1.0, max_iter=20,
                    random_state=0)
    with pytest.raises(TrainingDivergedError, match="smaller learning_rate.*solver='adagrad'"):
        m.fit(X, y * 1e3)
    with pytest.raises(NotFittedError):
        m.predict(X)
    # No advice to switch to the solver already in use.
    m.set_params(solver="adagrad", learning_rate=1e12)
    with pytest.raises(TrainingDivergedError, match="smaller learning_rate") as e:
        m.fit(X, y * 1e3)
    assert "solver='adagrad' (" not in str(e.value)


def test_classifier_any_labels_and_proba():
    X, y, _ = make_fm_regression(8000, 30, random_state=1, noise=0.0, factor_scale=1.0)
    labels = np.where(y > np.median(y), "click", "no-click")
    Xtr, ltr, Xte, lte = X[:6000], labels[:6000], X[6000:], labels[6000:]
    # v0.1's initialization and L2 (noise-free synthetic data): this is about labels.
    old = dict(init_stdev=0.1, l2_reg_w=1e-4, l2_reg_V=1e-4)
    clf = FMClassifier(n_factors=4, max_iter=40, random_state=0, **old).fit(Xtr, ltr)
    linear = FMClassifier(n_factors=0, max_iter=40, random_state=0, **old).fit(Xtr, ltr)
    assert list(clf.classes_) == ["click", "no-click"]
    proba = clf.predict_proba(Xte)
    assert proba.shape == (2000, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    accuracy = (clf.predict(Xte) == lte).mean()
    assert accuracy > 0.74
    assert accuracy > (linear.predict(Xte) == lte).mean() + 0.02
    np.testing.assert_array_equal(
        clf.predict(X), clf.classes_[(clf.decision_function(X) > 0).astype(int)]
    )


def test_classifier_partial_fit_needs_both_classes_once():
    X = sp.random(100, 5, density=0.5, random_state=0, format="csr")
    clf = FMClassifier(random_state=0)
    clf.partial_fit(X[:50], np.zeros(50), classes=[0, 1])
    clf.partial_fit(X[50:], np.ones(50))
    assert list(clf.classes_) == [0, 1]
    with pytest.raises(ValueError, match="not one of the classes"):
        clf.partial_fit(X[:2], [0, 2])


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf_in_X_or_y(bad):
    X = np.ones((5, 3))
    y = np.ones(5)
    Xb = X.copy()
    Xb[2, 1] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        FMRegressor().fit(Xb, y)
    with pytest.raises(ValueError, match="NaN|infinity"):
        FMRegressor().fit(sp.csr_matrix(Xb), y)
    yb = y.copy()
    yb[0] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        FMRegressor().fit(X, yb)


def test_wrong_number_of_features_at_predict():
    m = FMRegressor(max_iter=2).fit(np.ones((5, 3)), np.ones(5))
    with pytest.raises(ValueError, match="3 features"):
        m.predict(np.ones((2, 4)))


def test_classifier_one_or_three_classes():
    X = np.ones((6, 2))
    with pytest.raises(ValueError, match="only one class"):
        FMClassifier().fit(X, [1] * 6)
    # Three classes: a multinomial FM (tests/test_multiclass.py has its tests and errors).
    assert FMClassifier(max_iter=2).fit(X, [0, 1, 2, 0, 1, 2]).predict_proba(X).shape == (6, 3)


def test_zero_rows():
    with pytest.raises(ValueError, match="0 sample"):
        FMRegressor().fit(sp.csr_matrix((0, 5)), np.array([]))


def test_bad_hyperparameters():
    X, y = np.ones((5, 2)), np.ones(5)
    with pytest.raises(ValueError, match="n_factors"):
        FMRegressor(n_factors=-1).fit(X, y)
    with pytest.raises(ValueError, match="solver"):
        FMRegressor(solver="newton").fit(X, y)
    with pytest.raises(ValueError, match="learning_rate"):
        FMRegressor(learning_rate=0).fit(X, y)


def test_bad_sample_weight():
    X, y = np.ones((5, 2)), np.ones(5)
    with pytest.raises(ValueError, match="(?i)negative"):
        FMRegressor().fit(X, y, sample_weight=[1, 1, -1, 1, 1])
    with pytest.raises(ValueError, match="non-zero|sums to zero"):
        FMRegressor().fit(X, y, sample_weight=np.zeros(5))


def test_huge_feature_space_fails_clearly():
    # Three rows whose only feature is column 2**31 - 10: parameters for every column would
    # need ~150 GiB, so fitting must refuse before allocating.
    X = sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 1, 2], [2**31 - 10] * 3)), shape=(3, 2**31 - 9))
    with pytest.raises(ValueError, match="re-index"):
        FMRegressor().fit(X, [1.0, 2.0, 3.0])
    X = sp.csr_matrix(([1.0], ([0], [2**40])), shape=(1, 2**40 + 1))
    with pytest.raises(ValueError, match="at most"):
        FMRegressor().fit(X, [1.0])


# ---------------------------------------------------------------- scikit-learn integration
def test_pipeline_gridsearch_clone_pickle(fm_data):
    Xtr, ytr, Xte, yte, _ = fm_data
    pipe = make_pipeline(MaxAbsScaler(), FMRegressor(max_iter=10, random_state=0))
    grid = GridSearchCV(pipe, {"fmregressor__n_factors": [0, 4]}, cv=2).fit(Xtr[:1000], ytr[:1000])
    assert grid.best_params_["fmregressor__n_factors"] == 4
    m = clone(grid.best_estimator_[-1])
    assert m.get_params()["n_factors"] == 4 and not hasattr(m, "_params")
    fitted = grid.best_estimator_
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict(Xte), fitted.predict(Xte))


def test_dataframe_feature_names():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1.0, 0.0, 1.0, 0.0], "b": [0.0, 1.0, 1.0, 0.0]})
    m = FMRegressor(max_iter=2).fit(df, [1.0, 2.0, 3.0, 0.0])
    assert list(m.feature_names_in_) == ["a", "b"]
    with pytest.warns(UserWarning, match="feature names"):
        m.predict(df.values)


def test_warm_start_can_switch_solver(fm_data):
    Xtr, ytr, Xte, yte, _ = fm_data
    m = FMRegressor(solver="sgd", learning_rate=0.01, max_iter=5, warm_start=True,
                    random_state=0).fit(Xtr, ytr)
    V = m.V_.copy()
    m.set_params(solver="adagrad", learning_rate=0.1, max_iter=20).fit(Xtr, ytr)
    assert m._params.state.shape[1] == m.n_factors + 1  # AdaGrad columns added
    assert not np.array_equal(V, m.V_)
    assert np.sqrt(np.mean((m.predict(Xte) - yte) ** 2)) < 0.5 * np.std(yte)


@pytest.mark.real_thread_threshold
def test_small_data_trains_on_one_thread_whatever_n_jobs():
    # Starting threads costs more than a few thousand rows take: such fits stay serial, so
    # they are also exactly reproducible with n_jobs > 1.
    X, y, _ = make_fm_regression(n_samples=500, n_features=30, random_state=0)
    a = FMRegressor(n_factors=3, max_iter=5, random_state=0, n_jobs=1).fit(X, y)
    b = FMRegressor(n_factors=3, max_iter=5, random_state=0, n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(a.V_, b.V_)


def test_patience_defaults_to_the_solvers():
    """n_iter_no_change=None: plain SGD waits 20 epochs (its loss can stall early), the others
    5; an explicit value wins."""
    from fmlearn.optim import get_solver, hyper

    for solver, patience in (("sgd", 20), ("adagrad", 5), ("ftrl", 5), ("als", 5)):
        assert hyper(FMRegressor(solver=solver), "n_iter_no_change", get_solver(solver)) == patience
    assert hyper(FMRegressor(solver="sgd", n_iter_no_change=3), "n_iter_no_change",
                 get_solver("sgd")) == 3
    # A training metric that stops improving at once: the fit ends after the patience.
    X, y, _ = make_fm_regression(300, 10, random_state=0)
    for solver, patience in (("sgd", 20), ("adagrad", 5)):
        m = FMRegressor(solver=solver, learning_rate=1e-12, tol=10.0, max_iter=100,
                        early_stopping=False, random_state=0).fit(X, y)
        assert m.n_iter_ == patience + 1, (solver, m.n_iter_)
