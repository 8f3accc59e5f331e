"""SGDA: SGD with the L2 regularization learned on validation rows (solver="sgda")."""

import numpy as np
import pytest
import scipy.sparse as sp

import fmlearn
from fmlearn import FFMRegressor, FMClassifier, FMOrdinalRegressor, FMRegressor
from fmlearn.data.synthetic import make_fm_regression
from fmlearn.optim import SOLVERS, SGDASolver, solvers_for, supports


def rmse(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2)))


def noisy_problem(seed=0):
    """Few rows per feature and noise as large as the signal: unregularized SGD overfits."""
    X, y, _ = make_fm_regression(600, 60, n_factors=2, nnz_per_row=3, noise=1.0,
                              factor_scale=0.5, random_state=seed)
    return X[:400], y[:400], X[400:], y[400:]


def clean_problem(seed=0):
    """Many rows per feature and no noise: nothing to regularize."""
    X, y, _ = make_fm_regression(3000, 30, n_factors=2, nnz_per_row=3, noise=0.0,
                              factor_scale=0.5, random_state=seed)
    return X, y


SGDA = dict(n_factors=4, solver="sgda", learning_rate=0.02, max_iter=40, init_stdev=0.1,
            l2_reg_w=0.01, l2_reg_V=0.01, tol=None, random_state=0, n_jobs=1)


def test_registered_with_its_scope():
    assert SOLVERS["sgda"] is SGDASolver
    assert supports(SGDASolver, "fm", "regression") and supports(SGDASolver, "fm", "binary")
    for family, task in (("ffm", "regression"), ("fm", "multinomial"), ("fm", "ordinal"),
                         ("fm", "pairwise"), ("fwfm", "binary")):
        assert not supports(SGDASolver, family, task)
    assert "sgda" in solvers_for("fm", "regression") and "sgda" not in solvers_for("ffm", "binary")


def test_regularization_grows_on_noise_and_stays_small_on_clean_data():
    X, y, _, _ = noisy_problem()
    noisy = FMRegressor(**SGDA).fit(X, y)
    Xc, yc = clean_problem()
    clean = FMRegressor(**SGDA).fit(Xc, yc)
    assert noisy.reg_w_.shape == (1,) and noisy.reg_V_.shape == (1, 4)
    assert (noisy.reg_V_ >= 0).all() and (clean.reg_V_ >= 0).all()
    # Noise: the look-ahead step overfits, so the strengths grow well past their start.
    assert noisy.reg_V_.mean() > 0.1
    # Clean data: they stay near their start, far below the noisy problem's.
    assert clean.reg_V_.mean() < 0.01 and clean.reg_w_[0] < 0.01
    assert noisy.history_["valid_rmse"]  # the held-out rows are scored too


def test_beats_unregularized_sgd_on_held_out_rows():
    X, y, Xt, yt = noisy_problem(1)
    sgda = FMRegressor(**SGDA).fit(X, y)
    plain = FMRegressor(**{**SGDA, "solver": "sgd", "l2_reg_w": 0.0, "l2_reg_V": 0.0}).fit(X, y)
    assert rmse(sgda.predict(Xt), yt) < 0.97 * rmse(plain.predict(Xt), yt)


def test_groups_from_prior_groups_and_eval_set():
    X, y, Xt, yt = noisy_problem(2)
    groups = np.repeat([0, 1, 2], 20)
    m = FMRegressor(**SGDA, prior_groups=groups).fit(X, y, eval_set=(Xt, yt))
    assert m.reg_w_.shape == (3,) and m.reg_V_.shape == (3, 4)
    assert len(m.history_["valid_rmse"]) == SGDA["max_iter"]
    with pytest.raises(ValueError, match="prior_groups"):
        FMRegressor(**SGDA, prior_groups=np.zeros(5, dtype=int)).fit(X, y)


def test_binary_classification():
    X, y, Xt, yt = noisy_problem(3)
    labels = (y > np.median(y)).astype(int)
    clf = FMClassifier(**SGDA).fit(X, labels)
    assert clf.predict_proba(Xt).shape == (Xt.shape[0], 2)
    assert clf.reg_V_.shape == (1, 4) and np.isfinite(clf.reg_V_).all()


def test_save_load_keeps_the_learned_regularization(tmp_path):
    X, y, Xt, _ = noisy_problem(4)
    m = FMRegressor(**{**SGDA, "max_iter": 5}).fit(X, y)
    m.save(tmp_path / "m.fmz")
    back = fmlearn.load(tmp_path / "m.fmz")
    np.testing.assert_array_equal(back.reg_w_, m.reg_w_)
    np.testing.assert_array_equal(back.reg_V_, m.reg_V_)
    np.testing.assert_array_equal(back.predict(Xt), m.predict(Xt))
    # Training continues from the learned strengths.
    back.partial_fit(X, y)
    assert back.reg_V_.shape == m.reg_V_.shape


def test_refused_where_not_declared():
    X, y, _, _ = noisy_problem(5)
    with pytest.raises(ValueError, match="has no solver='sgda'.*models: fm"):
        FFMRegressor(fields=np.zeros(60, dtype=int), solver="sgda", max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="Only binary classification is supported with solver='sg"):
        FMClassifier(solver="sgda", max_iter=1).fit(X, np.arange(X.shape[0]) % 3)
    with pytest.raises(ValueError, match="has no solver='sgda'"):
        FMOrdinalRegressor(solver="sgda", max_iter=1).fit(X, np.arange(X.shape[0]) % 3)


def test_other_solvers_have_no_learned_regularization():
    X, y, _, _ = noisy_problem(6)
    m = FMRegressor(n_factors=2, solver="mcmc", max_iter=3, random_state=0).fit(X, y)
    with pytest.raises(AttributeError, match="solver='sgda'"):
        _ = m.reg_V_
    # A chain continued by SGDA starts its strengths from l2_reg_*.
    m.set_params(solver="sgda", warm_start=True, max_iter=2, l2_reg_V=0.03)
    m.fit(X, y)
    assert m.reg_V_.shape == (1, 2)


def test_dense_and_sparse_agree():
    X, y, _, _ = noisy_problem(7)
    a = FMRegressor(**{**SGDA, "max_iter": 3}).fit(X, y)
    b = FMRegressor(**{**SGDA, "max_iter": 3}).fit(sp.csr_matrix(X).toarray(), y)
    np.testing.assert_allclose(a.reg_V_, b.reg_V_, rtol=1e-5)


def test_defaults_start_from_no_regularization():
    """Left at None, the strengths start at 0 (SGDA's own default) and are learned from there."""
    from fmlearn.optim import get_solver

    X, y, _ = make_fm_regression(2000, 30, random_state=0)
    m = FMRegressor(solver="sgda", max_iter=5, random_state=0).fit(X, y)
    assert get_solver("sgda").defaults["l2_reg_V"] == 0.0
    assert np.isfinite(m.reg_V_).all() and (m.reg_V_ >= 0).all() and m.reg_V_.shape[1] == 8
