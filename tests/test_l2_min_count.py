"""Per-feature L2 floor (``l2_min_count``): the lazy L2 of the SGD-type solvers scaled per
feature so that a rare feature is penalized as if seen ``l2_min_count`` times per epoch."""

import numpy as np
import pytest
import scipy.sparse as sp

import fmlearn
from fmlearn._kernels.losses import LOGISTIC
from fmlearn.data.design import as_kernel_csr
from fmlearn.data.sources import InMemorySource
from fmlearn.models import FMParams
from fmlearn.models.ffm import FFMParams
from fmlearn.models.fwfm import FwFMParams
from fmlearn.optim import SGDSolver
from fmlearn.optim.sgd import column_counts, l2_scale

LR, L2_W, L2_V = 1e-3, 0.5, 0.2


def _one_hot(n_rows=30, n_fields=3, per_field=4, seed=0):
    """One feature per field per row; feature 0 in every row, the last ones rare."""
    rng = np.random.default_rng(seed)
    cols = []
    for f in range(n_fields):
        p = np.array([0.6, 0.3, 0.07, 0.03])[:per_field]
        c = rng.choice(per_field, size=n_rows, p=p / p.sum())
        c[f] = per_field - 1  # every field's last feature occurs at least once
        cols.append(f * per_field + c)
    cols = np.stack(cols, axis=1)
    X = sp.csr_matrix((np.ones(cols.size), cols.ravel(), np.arange(0, cols.size + 1, n_fields)),
                      shape=(n_rows, n_fields * per_field))
    fields = np.repeat(np.arange(n_fields), per_field).astype(np.int32)
    return X, fields


def _epoch_without_data(params, X, min_count):
    """One plain-SGD epoch whose loss gradients are all 0 (sample weights 0): only the L2
    steps move the parameters. Returns the solver."""
    solver = SGDSolver(learning_rate=LR, l2_reg_w=L2_W, l2_reg_V=L2_V, loss=LOGISTIC,
                       fit_intercept=True, fit_linear=True, l2_min_count=min_count)
    n = X.shape[0]
    source = InMemorySource(as_kernel_csr(X), np.ones(n), np.zeros(n))
    data = solver.prepare(source)
    solver.run_epoch(params, solver.init_state(params), data, np.random.default_rng(0))
    return solver


def _families(X, fields):
    rng = np.random.default_rng(1)
    d = X.shape[1]
    out = {
        "fm": FMParams.initialize(d, 4, 0.5, rng, dtype=np.float64),
        "fm-generic": FMParams.initialize(d, 3, 0.5, rng, dtype=np.float64),  # k not specialized
        "ffm": FFMParams.initialize(d, 2, 0.5, rng, fields, dtype=np.float64),
        "fwfm": FwFMParams.initialize(d, 4, 0.5, rng, fields, dtype=np.float64),
    }
    for params in out.values():
        params.w[...] = rng.normal(0, 1, d)  # (they start at 0)
    return out


def test_l2_scale_is_max_of_one_and_min_count_over_count():
    counts = np.array([0, 1, 4, 10, 50])
    np.testing.assert_allclose(l2_scale(counts, 10), [10, 10, 2.5, 1, 1])
    np.testing.assert_allclose(l2_scale(counts, 0), 1)


@pytest.mark.parametrize("family", ["fm", "fm-generic", "ffm", "fwfm"])
@pytest.mark.parametrize("min_count", [5.0, 1e9])
def test_each_feature_is_shrunk_max_count_min_count_times_per_epoch(family, min_count):
    X, fields = _one_hot()
    params = _families(X, fields)[family]
    w, latent = params.w.copy(), params.table[:, : params.wcol].copy()
    solver = _epoch_without_data(params, X, min_count)
    counts = np.bincount(X.indices, minlength=X.shape[1])
    np.testing.assert_array_equal(column_counts(InMemorySource(as_kernel_csr(X), None, None)),
                                  counts)
    scale = np.maximum(1.0, min_count / np.maximum(counts, 1))
    np.testing.assert_allclose(solver.reg_scale, scale)
    # Each occurrence multiplies by (1 - lr l2 scale_j): count_j of them per epoch.
    np.testing.assert_allclose(params.w, w * (1 - LR * L2_W * scale) ** counts, rtol=1e-12)
    # Every latent entry of a feature is stepped once per occurrence for FM and FwFM; FFM's
    # block for field f once per pair with a feature of f: one per row for the other fields
    # here (one feature per field), never for its own field.
    shrink = np.repeat(((1 - LR * L2_V * scale) ** counts)[:, None], params.wcol, axis=1)
    if family == "ffm":
        k = params.n_factors
        for j, f in enumerate(fields):
            shrink[j, f * k : (f + 1) * k] = 1.0
    np.testing.assert_allclose(params.table[:, : params.wcol], latent * shrink, rtol=1e-12)


def test_with_min_count_of_all_rows_an_epoch_of_l2_steps_is_the_full_batch_gradient():
    # Floor >= n_rows: every feature (whatever its count) gets the same penalty per epoch,
    # n_rows l2 theta_j: to first order in the step, one full-batch gradient step of
    # n_rows (mean loss + l2 / 2 ||theta||^2), the objective logistic regression and ALS use.
    X, fields = _one_hot()
    n = X.shape[0]
    params = _families(X, fields)["fm"]
    w = params.w.copy()
    _epoch_without_data(params, X, float(n))
    seen = np.bincount(X.indices, minlength=X.shape[1]) > 0
    full_batch_step = -LR * n * L2_W * w  # -lr * d/dw [n * l2_w / 2 ||w||^2]
    change = params.w - w
    # second-order terms: relative size lr * l2_w * n / 2
    np.testing.assert_allclose(change[seen], full_batch_step[seen], rtol=LR * L2_W * n)
    # ...whereas the per-occurrence rule (floor 0) penalizes in proportion to the counts
    params0 = _families(X, fields)["fm"]
    _epoch_without_data(params0, X, 0.0)
    counts = np.bincount(X.indices, minlength=X.shape[1])
    rare = seen & (counts < n // 2)
    assert np.all(np.abs(params0.w - w)[rare] < 0.6 * np.abs(full_batch_step)[rare])


def test_floor_at_or_below_one_is_bit_identical_to_no_floor():
    X, fields = _one_hot()
    y = (np.arange(X.shape[0]) % 3 == 0).astype(float)
    fits = []
    for m in (0.0, 1.0):
        est = fmlearn.FMClassifier(n_factors=4, max_iter=3, l2_min_count=m, random_state=0,
                                   n_jobs=1).fit(X, y)
        fits.append((est.w_, est.V_))
    np.testing.assert_array_equal(fits[0][0], fits[1][0])
    np.testing.assert_array_equal(fits[0][1], fits[1][1])


@pytest.mark.parametrize("make", [
    lambda m: fmlearn.FMClassifier(n_factors=4, l2_min_count=m),
    lambda m: fmlearn.FMClassifier(n_factors=4, l2_min_count=m, solver="ftrl", l2_reg_w=0.05),
    lambda m: fmlearn.FFMClassifier(n_factors=2, l2_min_count=m),
    lambda m: fmlearn.FwFMClassifier(n_factors=4, l2_min_count=m),
    lambda m: fmlearn.HOFMClassifier(n_factors=4, l2_min_count=m),
    # plain SGD: the step lr * l2 * scale stays below 1 (beyond it the L2 step overshoots)
    lambda m: fmlearn.FMRegressor(n_factors=4, l2_min_count=m, solver="sgd", learning_rate=1e-3,
                                  l2_reg_w=0.1, l2_reg_V=0.01),
])
def test_every_stochastic_family_applies_the_floor(make):
    X, fields = _one_hot(n_rows=60, seed=3)
    y = (X[:, 0].toarray().ravel() + (np.arange(60) % 2) > 0.5).astype(float)
    rare = np.bincount(X.indices, minlength=X.shape[1]) <= 6
    ws = []
    for m in (0.0, 1e4):
        est = make(m).set_params(max_iter=5, random_state=0, n_jobs=1)
        if "fields" in est.get_params():
            est.set_params(fields=fields)
        est.fit(X, y)
        ws.append(np.abs(est.w_)[rare].sum())
    # a large floor shrinks the rare features' linear weights
    assert ws[1] < 0.5 * ws[0]


def test_multinomial_and_ordinal_apply_the_floor():
    X, _ = _one_hot(n_rows=60, seed=4)
    y = np.arange(60) % 3
    rare = np.bincount(X.indices, minlength=X.shape[1]) <= 6
    for cls in (fmlearn.FMClassifier, fmlearn.FMOrdinalRegressor):
        ws = [np.abs(cls(n_factors=2, max_iter=5, l2_min_count=m, random_state=0, n_jobs=1)
                     .fit(X, y).w_).reshape(X.shape[1], -1)[rare].sum() for m in (0.0, 1e4)]
        assert ws[1] < 0.5 * ws[0]


def test_ranker_has_no_floor_and_als_refuses_it():
    assert "l2_min_count" not in fmlearn.FMRanker().get_params()
    X, _ = _one_hot()
    with pytest.raises(ValueError, match="l2_min_count"):
        fmlearn.FMRegressor(solver="als", l2_min_count=10).fit(X, np.ones(X.shape[0]))


def _fitted(X, y, **kw):
    est = fmlearn.FMClassifier(n_factors=4, max_iter=4, random_state=0, n_jobs=1, **kw)
    return est.fit(X, y)


def test_auto_floor_is_on_without_early_stopping_and_off_with_it_or_in_partial_fit():
    X, _ = _one_hot(n_rows=80, seed=5)
    y = (np.arange(80) % 3 == 0).astype(int)
    same = np.testing.assert_array_equal
    # default (None = "auto"): a fit of several epochs without early stopping has the floor
    same(_fitted(X, y).w_, _fitted(X, y, l2_min_count=100).w_)
    assert not np.array_equal(_fitted(X, y).w_, _fitted(X, y, l2_min_count=0).w_)
    # early stopping guards instead: no floor
    kw = dict(early_stopping=True, validation_fraction=0.25)
    same(_fitted(X, y, **kw).w_, _fitted(X, y, l2_min_count=0, **kw).w_)
    # partial_fit: a chunk's counts say nothing of the stream's
    a = fmlearn.FMClassifier(n_factors=4, random_state=0).partial_fit(X, y, classes=[0, 1])
    b = fmlearn.FMClassifier(n_factors=4, random_state=0, l2_min_count=0).partial_fit(
        X, y, classes=[0, 1])
    same(a.w_, b.w_)
