"""Field-aware FM: kernels against brute force, equivalences, estimator behaviour."""

import numpy as np
import pytest
import scipy.sparse as sp
from _reference import ffm_predict_bruteforce, numerical_table_gradient

import fmlearn
from fmlearn import FFMClassifier, FFMRegressor, FMRegressor
from fmlearn._kernels import ffm as ffm_kernels
from fmlearn._kernels.losses import SQUARED
from fmlearn._model import FFMParams, FMParams
from fmlearn.data.design import as_kernel_csr


def _random_ffm(n_features, n_fields, k, seed, dtype=np.float64, fields=None):
    rng = np.random.default_rng(seed)
    if fields is None:
        fields = rng.integers(0, n_fields, n_features).astype(np.int32)
        fields[:n_fields] = np.arange(n_fields)  # every field used
    fields = np.asarray(fields, dtype=np.int32)
    params = FFMParams.initialize(n_features, k, 0.5, rng, fields, dtype=dtype, w0=0.3)
    params.w[:] = rng.normal(size=n_features)
    return params


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_predict_matches_bruteforce(dtype):
    params = _random_ffm(15, 3, 4, seed=0, dtype=dtype)
    X = sp.random(40, 15, density=0.3, random_state=1, format="csr", dtype=dtype)
    got = params.decision_function(as_kernel_csr(X))
    want = ffm_predict_bruteforce(X, params.w0[0], params.w, params.V.astype(np.float64),
                                  params.fields)
    np.testing.assert_allclose(got, want, rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-4)


def test_single_field_ffm_equals_fm():
    ffm = _random_ffm(12, 1, 3, seed=2)
    fm = FMParams.from_arrays({"w0": ffm.w0, "w": ffm.w.copy(), "V": ffm.V[:, 0, :].copy()})
    X = as_kernel_csr(sp.random(30, 12, density=0.4, random_state=3, format="csr"))
    np.testing.assert_allclose(ffm.decision_function(X), fm.decision_function(X), rtol=1e-10)


@pytest.mark.parametrize("adaptive", [False, True])
def test_sgd_step_matches_numerical_gradient(adaptive):
    """One row, one step: the update equals lr * dLoss/dtheta per coordinate."""
    lr = 0.01
    # The four active columns (1, 2, 4, 5) get distinct fields: each latent vector then
    # serves exactly one pair of the row.
    params = _random_ffm(6, 4, 2, seed=4, fields=[0, 0, 1, 3, 2, 3]).with_state(0)
    if adaptive:
        params = params.with_state(params.wcol + 1)
        params.state[:] = 1.0
    X = sp.csr_matrix(np.array([[0.0, 1.5, 0.7, 0.0, -0.5, 2.0]]))
    Xk = as_kernel_csr(X)
    y = np.array([0.8])
    before = params.copy()
    grad = numerical_table_gradient(before, Xk, y)
    ffm_kernels.sgd_epoch(
        Xk.indptr, Xk.indices, Xk.data, y, np.ones(1), np.zeros(1, np.int64),
        params.w0, np.ones(1), params.table, 2, params.fields, params.wcol,
        SQUARED, lr, 0.0, 0.0, adaptive, False, True,
    )
    step = (before.table[:, : before.wcol + 1] - params.table[:, : params.wcol + 1]).ravel()
    if not adaptive:
        # Pairs update their two vectors with the row's gradient: exactly the gradient step.
        np.testing.assert_allclose(step, lr * grad, rtol=1e-5, atol=1e-9)
    else:
        touched = grad != 0
        np.testing.assert_allclose(
            step[touched], lr * grad[touched] / np.sqrt(1 + grad[touched] ** 2), rtol=1e-5
        )


def _field_aware_data(n=6000, seed=0):
    """Targets where a feature interacts differently with each field: FFM's home ground."""
    rng = np.random.default_rng(seed)
    sizes = [15] * 5
    offsets = np.cumsum([0] + sizes)
    cols = np.column_stack([rng.integers(0, s, n) + o for s, o in zip(sizes, offsets[:-1],
                                                                         strict=True)])
    nf, d = len(sizes), offsets[-1]
    X = sp.csr_matrix((np.ones(nf * n), cols.ravel(), np.arange(0, nf * n + 1, nf)), (n, d))
    fields = np.repeat(np.arange(nf), sizes)
    V = rng.normal(0, 0.5, (d, nf, 3))
    truth = FFMParams.from_arrays({"w0": np.zeros(1), "w": rng.normal(0, 0.3, d), "V": V,
                                   "fields": fields.astype(np.int32)})
    y = truth.decision_function(as_kernel_csr(X)) + rng.normal(0, 0.05, n)
    return X, y, fields


def test_ffm_beats_fm_on_field_aware_data():
    X, y, fields = _field_aware_data()
    tr, te = slice(0, 5000), slice(5000, None)
    kw = dict(max_iter=60, random_state=0, learning_rate=0.1, l2_reg_V=1e-5, l2_reg_w=1e-5)
    # Same rank: FM's single vector per feature cannot serve five fields at once.
    ffm = FFMRegressor(n_factors=3, fields=fields, **kw).fit(X[tr], y[tr])
    fm = FMRegressor(n_factors=3, **kw).fit(X[tr], y[tr])
    rmse_ffm = np.sqrt(np.mean((ffm.predict(X[te]) - y[te]) ** 2))
    rmse_fm = np.sqrt(np.mean((fm.predict(X[te]) - y[te]) ** 2))
    assert rmse_ffm < 0.7 * rmse_fm
    assert ffm.V_.shape == (75, 5, 3) and ffm.n_fields_ == 5


def test_classifier_save_load_and_threads(tmp_path):
    X, y, fields = _field_aware_data(3000, seed=1)
    labels = np.where(y > np.median(y), "pos", "neg")
    clf = FFMClassifier(fields=fields, max_iter=20, random_state=0, normalize=True).fit(X, labels)
    assert (clf.predict(X) == labels).mean() > 0.8
    clf.save(tmp_path / "ffm.fmz")
    loaded = fmlearn.load(tmp_path / "ffm.fmz")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.fields_, clf.fields_)
    par = FFMClassifier(fields=fields, max_iter=20, random_state=0, n_jobs=2).fit(X, labels)
    assert (par.predict(X) == labels).mean() > 0.8


def test_bad_fields():
    X = sp.random(10, 4, density=0.5, random_state=0, format="csr")
    y = np.arange(10.0)
    with pytest.raises(ValueError, match="each of the 4 features"):
        FFMRegressor(fields=[0, 1]).fit(X, y)
    with pytest.raises(ValueError, match=">= 0"):
        FFMRegressor(fields=[0, 1, -3, 0]).fit(X, y)
    with pytest.raises(ValueError, match="integer"):
        FFMRegressor(fields=[0, 1, 0.5, 0]).fit(X, y)
    with pytest.warns(UserWarning, match="plain FM"):
        FFMRegressor(max_iter=2).fit(X, y)
    m = FFMRegressor(fields=[0, 1, 1, 0], warm_start=True, max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="fields changed"):
        m.set_params(fields=[0, 0, 0, 0]).fit(X, y)


def test_fields_from_the_dataframe_encoder():
    pd = pytest.importorskip("pandas")
    from fmlearn import FMEncoder

    rng = np.random.default_rng(0)
    n = 3000
    df = pd.DataFrame({"user": rng.integers(0, 30, n).astype(str),
                       "item": rng.integers(0, 20, n).astype(str),
                       "hour": rng.integers(0, 4, n).astype(str)})
    taste = rng.normal(size=(30, 4))
    score = np.einsum("ij,ij->i", taste[df.user.astype(int)],
                      np.eye(4)[df.hour.astype(int)]) + 0.1 * df.item.astype(int)
    enc = FMEncoder(categorical=["user", "item", "hour"])
    X = enc.fit_transform(df)
    assert list(enc.field_names_) == ["user", "item", "hour"]
    model = FFMRegressor(fields=enc.fields_, n_factors=4, max_iter=40, random_state=0)
    model.fit(X, score)
    assert model.n_fields_ == 3
    assert model.score(X, score) > 0.9
    M = model.field_interactions(X=X)
    assert M[0, 2] > M[1, 2]  # user x hour carries the signal, item x hour none
