"""Field-weighted FM: kernels against brute force, equivalences, estimator behaviour."""

import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.utils._param_validation import InvalidParameterError

import fmlearn
from fmlearn import FMRegressor
from fmlearn._kernels.losses import SQUARED
from fmlearn.data.design import as_kernel_csr
from fmlearn.fwfm import FwFMClassifier, FwFMParams, FwFMRegressor
from fmlearn.models.fm import FMParams
from fmlearn.optim import AdaGradSolver, SGDSolver


def fwfm_predict_bruteforce(X, w0, w, V, r, fields):
    """w0 + sum_i w_i x_i + sum_{a<b} r[F(i), F(j)] <v_i, v_j> x_i x_j, pair by pair."""
    X = np.asarray(X.todense() if hasattr(X, "todense") else X, dtype=np.float64)
    w, V, r = (np.asarray(a, np.float64) for a in (w, V, r))
    out = np.empty(X.shape[0])
    for row in range(X.shape[0]):
        nz = np.flatnonzero(X[row])
        total = w0 + X[row, nz] @ w[nz]
        for a in range(len(nz)):
            for b in range(a + 1, len(nz)):
                i, j = nz[a], nz[b]
                total += r[fields[i], fields[j]] * (V[i] @ V[j]) * X[row, i] * X[row, j]
        out[row] = total
    return out


def _random_fwfm(n_features, n_fields, k, seed, dtype=np.float64, fields=None):
    rng = np.random.default_rng(seed)
    if fields is None:
        fields = rng.integers(0, n_fields, n_features).astype(np.int32)
        fields[:n_fields] = np.arange(n_fields)  # every field used
    fields = np.asarray(fields, dtype=np.int32)
    params = FwFMParams.initialize(n_features, k, 0.5, rng, fields, dtype=dtype, w0=0.3)
    params.w[:] = rng.normal(size=n_features)
    r = rng.normal(size=(params.n_fields,) * 2)
    params.r[:] = r + r.T
    return params


def _solver(adaptive, lr, reg_w=0.0, reg_V=0.0):
    cls = AdaGradSolver if adaptive else SGDSolver
    return cls(learning_rate=lr, l2_reg_w=reg_w, l2_reg_V=reg_V, loss=SQUARED,
               fit_intercept=False, fit_linear=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_predict_matches_bruteforce(dtype):
    # Density 0.4 over 4 fields: rows with several entries per field (within-field pairs
    # weighed by the diagonal of r) as well as single-entry fields.
    params = _random_fwfm(15, 4, 3, seed=0, dtype=dtype)
    X = sp.random(40, 15, density=0.4, random_state=1, format="csr", dtype=dtype)
    got = params.decision_function(as_kernel_csr(X))
    want = fwfm_predict_bruteforce(X, params.w0[0], params.w, params.V, params.r, params.fields)
    np.testing.assert_allclose(got, want, rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-4)


def test_unit_field_weights_equal_fm():
    fwfm = _random_fwfm(12, 3, 4, seed=2)
    fwfm.r[:] = 1.0
    fm = FMParams.from_arrays({"w0": fwfm.w0, "w": fwfm.w.copy(), "V": fwfm.V.copy()})
    X = as_kernel_csr(sp.random(30, 12, density=0.4, random_state=3, format="csr"))
    np.testing.assert_allclose(fwfm.decision_function(X), fm.decision_function(X), rtol=1e-10)


@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize(("reg", "center"), [(0.0, 1.0), (0.05, 1.0), (0.05, 0.0)])
def test_sgd_step_matches_numerical_gradient(adaptive, reg, center):
    """One row, one step: every coordinate moves by lr * d(loss + L2)/dtheta, including r.

    Field 0 has two entries in the row (a within-field pair on the diagonal of r), fields 1
    and 3 one each, field 2 none. The L2 of r is ``reg / 2 (r - center)^2``: towards 1 (a
    plain FM) today, towards 0 in model files written before (``r_center`` 0).
    """
    lr, k = 0.01, 2
    params = _random_fwfm(6, 4, k, seed=4, fields=[0, 0, 1, 2, 3, 0])
    if adaptive:
        params = params.with_state(params.wcol + 1)
        params.state[:] = 1.0
    params.reg_r = reg
    params.r_center = center
    X = sp.csr_matrix(np.array([[1.5, 0.7, -0.5, 0.0, 2.0, 0.0]]))
    Xk = as_kernel_csr(X)
    y = np.array([0.8])
    before = params.copy()
    n, ncol, iu = 6, k + 1, np.triu_indices(4)

    def unpack(theta):
        table = theta[: n * ncol].reshape(n, ncol)
        r = np.zeros((4, 4))
        r[iu] = theta[n * ncol :]
        return table, r + np.triu(r, 1).T

    def loss(theta):
        table, r = unpack(theta)
        p = fwfm_predict_bruteforce(X, 0.3, table[:, k], table[:, :k], r, before.fields)[0]
        return 0.5 * (p - y[0]) ** 2

    theta = np.concatenate([before.table[:, :ncol].ravel(), before.r[iu]])
    grad = np.zeros_like(theta)
    for c in range(theta.size):
        e = np.zeros_like(theta)
        e[c] = 1e-6
        grad[c] = (loss(theta + e) - loss(theta - e)) / 2e-6
    # Lazy L2 on what the row touches: w and V of features 0, 1, 2, 4, and r of the field
    # pairs with a pair of entries in the row: (0, 0), (0, 1), (0, 3), (1, 3).
    touched_table = np.zeros((n, ncol), bool)
    touched_table[[0, 1, 2, 4]] = True
    touched_r = np.zeros((4, 4), bool)
    touched_r[[0, 0, 0, 1], [0, 1, 3, 3]] = True
    touched = np.concatenate([touched_table.ravel(), touched_r[iu]])
    # L2 gradients on what the row touches: reg (theta - centre), centre 0 for w and V and
    # ``center`` for r (r starts near +-1.4 here, so the two centres give other steps).
    centre = np.concatenate([np.zeros(n * ncol), np.full(iu[0].size, center)])
    grad[touched] += reg * (theta - centre)[touched]

    params.sgd_epoch(Xk, y, np.ones(1), np.zeros(1, np.int64), np.ones(1),
                     _solver(adaptive, lr, reg, reg))
    after = np.concatenate([params.table[:, :ncol].ravel(), params.r[iu]])
    step = theta - after
    np.testing.assert_array_equal(step[~touched], 0.0)
    if adaptive:
        # AdaGrad sums started at 1: step lr * g / sqrt(1 + g^2).
        want = lr * grad[touched] / np.sqrt(1 + grad[touched] ** 2)
    else:
        want = lr * grad[touched]
    np.testing.assert_allclose(step[touched], want, rtol=1e-5, atol=1e-10)
    np.testing.assert_array_equal(params.r, params.r.T)
    if adaptive:
        np.testing.assert_allclose(params.acc_r[iu][touched_r[iu]],
                                   1 + grad[n * ncol :][touched_r[iu]] ** 2, rtol=1e-6)
        np.testing.assert_array_equal(params.acc_r, params.acc_r.T)


def test_container_round_trip_copy_and_state():
    params = _random_fwfm(10, 3, 2, seed=5, dtype=np.float32).with_state(3)
    params.state[:] = 2.0
    params.acc_r[:] = 5.0
    arrays = params.arrays()
    # acc_r is solver state: model files keep it under state/ beside the table's columns.
    assert set(arrays) == {"w0", "w", "V", "r", "fields", "r_center"}
    assert params.r_center == 1.0 and arrays["r_center"].tolist() == [1.0]
    assert FwFMParams.extra_state == ("acc_r",)
    back = FwFMParams.from_arrays(arrays, state=params.state, acc_r=params.acc_r)
    for name in ("table", "r", "acc_r", "fields", "w0", "r_center"):
        np.testing.assert_array_equal(getattr(back, name), getattr(params, name))
    # Files written before the prior towards 1 have no r_center: their penalty was towards 0.
    old = {k: v for k, v in arrays.items() if k != "r_center"}
    assert FwFMParams.from_arrays(old).r_center == 0.0
    assert params.copy().r_center == params.with_state(0).r_center == 1.0
    with pytest.raises(ValueError, match="r_center must be"):
        FwFMParams.from_arrays({**arrays, "r_center": np.array([0.5], np.float32)})
    # Model files written while acc_r was a parameter array still load it.
    legacy = FwFMParams.from_arrays({**arrays, "acc_r": params.acc_r}, state=params.state)
    np.testing.assert_array_equal(legacy.acc_r, params.acc_r)
    assert (FwFMParams.from_arrays(arrays, state=params.state).acc_r == 1.0).all()
    with pytest.raises(ValueError, match="acc_r must be of the shape"):
        FwFMParams.from_arrays(arrays, acc_r=params.acc_r[:2])
    copy = params.copy()
    copy.r[0, 0] = copy.acc_r[0, 0] = -1.0
    assert params.r[0, 0] != -1.0 and params.acc_r[0, 0] == 5.0
    # Another solver: r carries over, its AdaGrad sums start afresh with the table's.
    switched = params.with_state(0)
    np.testing.assert_array_equal(switched.r, params.r)
    assert (switched.acc_r == 1.0).all()
    copy.r[1, 2] = np.nan
    assert params.all_finite() and not copy.all_finite()
    with pytest.raises(ValueError, match="symmetric"):
        FwFMParams.from_arrays({**arrays, "r": np.triu(arrays["r"])})
    with pytest.raises(ValueError, match=r"fields must lie in \[0, 3\)"):
        FwFMParams.from_arrays({**arrays, "fields": np.full(10, 3, np.int32)})


def _field_weighted_data(n=6000, seed=0):
    """An FwFM target: one-hot fields, a hidden r with zeros and strong pairs."""
    rng = np.random.default_rng(seed)
    nf, size = 6, 15
    cols = rng.integers(0, size, (n, nf)) + size * np.arange(nf)
    d = nf * size
    X = sp.csr_matrix((np.ones(nf * n), cols.ravel(), np.arange(0, nf * n + 1, nf)), (n, d))
    fields = np.repeat(np.arange(nf), size).astype(np.int32)
    r = np.triu(rng.choice([0.0, 0.0, 0.0, 0.5, 1.0, 2.0, 3.0], size=(nf, nf)))
    r = r + np.triu(r, 1).T
    truth = FwFMParams.from_arrays({"w0": np.zeros(1), "w": rng.normal(0, 0.3, d),
                                    "V": rng.normal(0, 0.5, (d, 3)), "r": r, "fields": fields})
    y = truth.decision_function(as_kernel_csr(X)) + rng.normal(0, 0.05, n)
    return X, y, fields, r


def test_fwfm_beats_fm_and_recovers_field_pairs():
    X, y, fields, r_true = _field_weighted_data()
    tr, te = slice(0, 5000), slice(5000, None)
    kw = dict(n_factors=3, max_iter=60, random_state=0, l2_reg_V=1e-5, l2_reg_w=1e-5)
    fwfm = FwFMRegressor(fields=fields, **kw).fit(X[tr], y[tr])
    fm = FMRegressor(**kw).fit(X[tr], y[tr])
    rmse_fwfm = np.sqrt(np.mean((fwfm.predict(X[te]) - y[te]) ** 2))
    rmse_fm = np.sqrt(np.mean((fm.predict(X[te]) - y[te]) ** 2))
    # Same rank: one vector per feature cannot switch pairs of fields off; FwFM's r can.
    assert rmse_fwfm < 0.2 * rmse_fm
    assert fwfm.V_.shape == (90, 3) and fwfm.r_.shape == (6, 6) and fwfm.n_fields_ == 6
    np.testing.assert_array_equal(fwfm.r_, fwfm.r_.T)
    # r is known up to a sign and scale per field; its magnitudes rank the pairs.
    iu = np.triu_indices(6, 1)
    learned, hidden = np.abs(fwfm.r_[iu]), r_true[iu]
    assert np.corrcoef(learned, hidden)[0, 1] > 0.9
    assert learned[hidden == 0].max() < 0.1 * learned[hidden > 0].min() + 0.05
    # One-hot fields never pair within a field: the diagonal keeps its initial 1.
    np.testing.assert_array_equal(np.diag(fwfm.r_), 1.0)
    # The scale-free report: |r_FG| times the RMS of <v_i, v_j> over the pairs' features.
    strength = fwfm.field_interactions(X=X[tr])
    assert np.corrcoef(strength[iu], hidden)[0, 1] > 0.9


def test_l2_reg_r_pulls_field_weights_to_one_and_follows_set_params():
    X, y, fields, _ = _field_weighted_data(1500, seed=2)
    kw = dict(fields=fields, n_factors=2, max_iter=10, tol=None, random_state=0)
    free = FwFMRegressor(**kw).fit(X, y)
    shrunk = FwFMRegressor(l2_reg_r=0.1, **kw).fit(X, y)
    iu = np.triu_indices(6, 1)
    assert np.abs(shrunk.r_[iu] - 1).mean() < 0.7 * np.abs(free.r_[iu] - 1).mean()
    free.set_params(warm_start=True, l2_reg_r=0.3, max_iter=1).fit(X, y)
    assert free._params.reg_r == 0.3
    with pytest.raises(InvalidParameterError):
        FwFMRegressor(l2_reg_r=-1.0, fields=fields).fit(X, y)


@pytest.mark.parametrize(("solver", "reg"), [("adagrad", 10.0), ("sgd", 1.0), ("ftrl", 1e5)])
def test_l2_reg_r_falls_back_to_the_fm_on_little_data(solver, reg):
    """120 rows: unpenalized, r wanders far from 1; with a strong prior it stays at 1 and the
    FwFM predicts as the FM trained alike (same initial draws). FTRL's L2 sits in its closed
    form (per coordinate, not per row), hence its larger value."""
    X, y, fields, _ = _field_weighted_data(120, seed=3)
    y = (y > np.median(y)).astype(int)
    kw = dict(n_factors=3, init_stdev=0.3, max_iter=30, random_state=0, solver=solver,
              learning_rate=0.1, l2_reg_w=1e-3, l2_reg_V=1e-3, l2_min_count=0)
    fm = fmlearn.FMClassifier(**kw).fit(X, y).decision_function(X)
    free = FwFMClassifier(fields=fields, **kw).fit(X, y)
    held = FwFMClassifier(fields=fields, l2_reg_r=reg, **kw).fit(X, y)
    iu = np.triu_indices(6, 1)
    scale = np.abs(fm).mean()
    assert np.abs(free.r_[iu] - 1).max() > 0.5
    assert np.abs(free.decision_function(X) - fm).max() > 0.5 * scale
    assert np.abs(held.r_[iu] - 1).max() < 0.02
    assert np.abs(held.decision_function(X) - fm).max() < 0.05 * scale


def test_model_file_without_r_center_keeps_its_penalty_towards_zero(tmp_path):
    """A file written before the prior towards 1 (no params/r_center) loads, predicts as
    saved and trains on with its penalty towards 0, as the fmlearn that wrote it did."""
    import json

    X, y, fields, _ = _field_weighted_data(300, seed=4)
    kw = dict(fields=fields, n_factors=2, max_iter=3, random_state=0, l2_reg_r=0.5)
    model = FwFMRegressor(**kw).fit(X, y)
    model._params.r_center = 0.0  # as trained by the fmlearn that wrote such files
    model.save(tmp_path / "new.fmz")
    with zipfile.ZipFile(tmp_path / "new.fmz") as src, \
            zipfile.ZipFile(tmp_path / "old.fmz", "w", zipfile.ZIP_STORED) as dst:
        for item in src.infolist():
            if item.filename == "params/r_center.npy":
                continue
            data = src.read(item.filename)
            if item.filename == "metadata.json":
                meta = json.loads(data)
                del meta["arrays"]["params/r_center"]
                data = json.dumps(meta).encode()
            dst.writestr(item, data)
    old = fmlearn.load(tmp_path / "old.fmz")
    assert old._params.r_center == 0.0
    np.testing.assert_array_equal(old.predict(X), model.predict(X))
    assert fmlearn.load(tmp_path / "new.fmz")._params.r_center == 0.0  # saved as it was
    # Trained on, it pulls r towards 0 exactly as the in-memory model does ...
    for m in (old, model):
        m.set_params(warm_start=True, max_iter=2).fit(X, y)
    np.testing.assert_allclose(old.r_, model.r_, rtol=1e-6)
    # ... while a model of today pulls towards 1.
    today = FwFMRegressor(**kw).fit(X, y).set_params(warm_start=True, max_iter=2).fit(X, y)
    assert np.abs(today.r_ - model.r_).max() > 1e-3


def test_classifier_labels_threads_and_model_file(tmp_path):
    X, y, fields, _ = _field_weighted_data(3000, seed=1)
    labels = np.where(y > np.median(y), "click", "no click")
    clf = FwFMClassifier(fields=fields, n_factors=3, max_iter=20, random_state=0).fit(X, labels)
    assert list(clf.classes_) == ["click", "no click"]
    assert (clf.predict(X) == labels).mean() > 0.85
    assert clf.predict_proba(X[:5]).shape == (5, 2)
    clf.save(tmp_path / "fwfm.fmz")
    with zipfile.ZipFile(tmp_path / "fwfm.fmz") as zf:
        assert "state/acc_r.npy" in zf.namelist() and "params/acc_r.npy" not in zf.namelist()
    loaded = fmlearn.load(tmp_path / "fwfm.fmz")
    assert type(loaded) is FwFMClassifier and loaded.get_params()["l2_reg_r"] == 0.0
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    for name in ("r", "acc_r", "table", "fields"):
        np.testing.assert_array_equal(getattr(loaded._params, name), getattr(clf._params, name))
    loaded.partial_fit(X, labels)  # resumes with the saved AdaGrad sums
    par = FwFMClassifier(fields=fields, n_factors=3, max_iter=20, random_state=0, n_jobs=2,
                         normalize=True).fit(X, labels)
    assert (par.predict(X) == labels).mean() > 0.85
    np.testing.assert_array_equal(par.r_, par.r_.T)  # exactly, after Hogwild races


def test_bad_fields():
    X = sp.random(10, 4, density=0.5, random_state=0, format="csr")
    y = np.arange(10.0)
    with pytest.raises(ValueError, match="each of the 4 features"):
        FwFMRegressor(fields=[0, 1]).fit(X, y)
    with pytest.raises(ValueError, match=">= 0"):
        FwFMRegressor(fields=[0, 1, -3, 0]).fit(X, y)
    with pytest.raises(ValueError, match="integer"):
        FwFMRegressor(fields=[0, 1, 0.5, 0]).fit(X, y)
    with pytest.warns(UserWarning, match="plain FM"):
        m = FwFMRegressor(max_iter=2).fit(X, y)
    assert m.r_.shape == (1, 1)
    m = FwFMRegressor(fields=[0, 1, 1, 0], warm_start=True, max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="fields changed"):
        m.set_params(fields=[0, 0, 0, 0]).fit(X, y)

