"""Field-aware FM: kernels against brute force, equivalences, estimator behaviour."""

import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp
from _reference import ffm_predict_bruteforce, numerical_table_gradient

import fmlearn
from fmlearn import FFMClassifier, FFMRegressor, FMRegressor
from fmlearn._kernels import ffm as ffm_kernels
from fmlearn._kernels import hogwild
from fmlearn._kernels.losses import LOGISTIC, SQUARED
from fmlearn._kernels.updates import ADAGRAD, FTRL, SGD
from fmlearn.data.design import as_kernel_csr
from fmlearn.models import FFMParams, FMParams


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
@pytest.mark.parametrize("k", [4, 6])  # a specialized kernel; the generic one (chunk + tail)
def test_predict_matches_bruteforce(dtype, k):
    params = _random_ffm(15, 3, k, seed=0, dtype=dtype)
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
@pytest.mark.parametrize("k", [2, 4])  # generic (scalar tail only) and specialized kernels
def test_sgd_step_matches_numerical_gradient(adaptive, k):
    """One row, one step: the update equals lr * dLoss/dtheta per coordinate."""
    lr = 0.01
    # The four active columns (1, 2, 4, 5) get distinct fields: each latent vector then
    # serves exactly one pair of the row.
    params = _random_ffm(6, 4, k, seed=4, fields=[0, 0, 1, 3, 2, 3]).with_state(0)
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
        params.w0, np.ones(1), params.table, k, params.fields, params.wcol,
        SQUARED, ADAGRAD if adaptive else SGD, (lr, 0.0, 0.0, 0.0), False, True,
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


@pytest.mark.parametrize("k", [4, 6, 8, 16])  # 2k = 8, 12 (chunk + tail), 16, 32 lanes
def test_float32_adagrad_step_is_within_the_rsqrt_estimate(k):
    """float32 AdaGrad latent steps may use the hardware 1/sqrt estimate (12 bits), no worse."""
    # The active columns (1, 2, 4, 5, 7, 8) get distinct fields: each latent vector then takes
    # one step, of at most the estimate's relative error (1.5 * 2**-12).
    params = _random_ffm(10, 6, k, seed=k, dtype=np.float32,
                         fields=[0, 0, 1, 5, 2, 3, 0, 4, 5, 1]).with_state(0)
    params = params.with_state(params.wcol + 1)
    params.state[:] = np.random.default_rng(k).uniform(1.0, 3.0, params.state.shape)
    X = sp.csr_matrix(np.array([[0.0, 1.5, 0.7, 0.0, -0.5, 2.0, 0.0, 1.0, 0.3, 0.0]]))
    Xk32 = as_kernel_csr(X.astype(np.float32))
    steps = {}
    for dtype in (np.float32, np.float64):
        p = FFMParams(params.w0.astype(dtype), params.table.astype(dtype), k, params.fields)
        Xk = as_kernel_csr(X.astype(dtype)) if dtype == np.float64 else Xk32
        ffm_kernels.sgd_epoch(
            Xk.indptr, Xk.indices, Xk.data, np.array([2.0]), np.ones(1), np.zeros(1, np.int64),
            p.w0, np.ones(1, dtype), p.table, k, p.fields, p.wcol,
            SQUARED, ADAGRAD, (0.1, 0.0, 0.0, 0.0), False, False,
        )
        steps[dtype] = params.table[:, : p.wcol].astype(np.float64) - p.table[:, : p.wcol]
    exact, approx = steps[np.float64], steps[np.float32]
    moved = np.abs(exact) > 1e-4
    assert moved.sum() > 10
    np.testing.assert_allclose(approx[moved], exact[moved], rtol=5e-4)
    np.testing.assert_array_equal(approx[~moved] == 0, exact[~moved] == 0)


def _kernel_inputs(n_rows, n_features, n_fields, k, seed):
    """A float32 FFM with AdaGrad state and libffm-like rows: one feature per field."""
    rng = np.random.default_rng(seed)
    fields = np.arange(n_features, dtype=np.int32) % n_fields
    params = _random_ffm(n_features, n_fields, k, seed, np.float32, fields)
    params = params.with_state(params.wcol + 1)
    params.state[:] = rng.uniform(1.0, 2.0, params.state.shape)
    # Rows of 1 to n_fields features (odd and even counts), one per field at most.
    counts = rng.integers(1, n_fields + 1, n_rows)
    cols = [rng.integers(0, n_features // n_fields, c) * n_fields + rng.permutation(n_fields)[:c]
            for c in counts]
    indptr = np.concatenate([[0], np.cumsum(counts)])
    X = sp.csr_matrix((rng.normal(size=counts.sum()), np.concatenate(cols), indptr),
                      shape=(n_rows, n_features), dtype=np.float32)
    y = np.where(rng.random(n_rows) < 0.5, -1.0, 1.0)
    return params, as_kernel_csr(X), y, rng.uniform(0.5, 2.0, n_rows)


@pytest.mark.parametrize("k", ffm_kernels.SPECIALIZED_FACTORS)
def test_specialized_kernels_match_generic(k):
    """Each specialized number of factors computes what the generic (chunked) kernels do."""
    params, Xk, y, sw = _kernel_inputs(300, 40, 7, k, seed=k)
    special = ffm_kernels.predict_kernel(k)
    generic = ffm_kernels._make_predict(0)
    no_hot = (np.empty(0, np.int32), np.empty(0, np.int64), np.zeros(1, np.int32), 64)
    assert special is not ffm_kernels.predict_kernel(k + 1)
    preds = []
    for predict in (special, generic):
        out = np.empty(Xk.n_rows)
        predict(Xk.indptr, Xk.indices, Xk.data, params.w0, params.table, k, params.fields,
                params.wcol, out)
        preds.append(out)
    np.testing.assert_allclose(preds[0], preds[1], rtol=1e-5, atol=1e-6)
    order = np.random.default_rng(0).permutation(Xk.n_rows)
    for code in (SGD, ADAGRAD, FTRL):
        results = []
        for epoch in (ffm_kernels.epoch_kernel(k, code), ffm_kernels._make_epoch(0, code, 0)):
            p, acc_w0 = params.copy(), np.ones(2, np.float32)
            if code == FTRL:
                p = p.with_state(2 * (p.wcol + 1))
                p.state[:] = np.random.default_rng(k).uniform(0.5, 2.0, p.state.shape)
            loss = epoch(Xk.indptr, Xk.indices, Xk.data, y, sw, order, p.w0, acc_w0, p.table,
                         k, p.fields, p.wcol, LOGISTIC, (0.05, 1e-3, 1e-3, 1e-3), True, True,
                         *no_hot, np.ones(1, np.float32))
            results.append((loss, p.table, p.w0, acc_w0))
        (l0, t0, b0, a0), (l1, t1, b1, a1) = results
        np.testing.assert_allclose(l0, l1, rtol=1e-5)
        np.testing.assert_allclose(t0, t1, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(b0, b1, rtol=1e-5)
        np.testing.assert_allclose(a0, a1, rtol=1e-5)
        assert not np.array_equal(t0, params.table)


def _epoch(params, Xk, y, sw, order, hot=None, merge_every=64):
    acc_w0 = np.ones(1, np.float32)
    loss = ffm_kernels.sgd_epoch(
        Xk.indptr, Xk.indices, Xk.data, y, sw, order, params.w0, acc_w0, params.table,
        params.n_factors, params.fields, params.wcol, LOGISTIC, ADAGRAD, (0.05, 0.0, 1e-3, 1e-3),
        True, True, hot=hot, merge_every=merge_every,
    )
    return loss, acc_w0


def test_hot_features():
    indices = np.array([0, 1, 0, 2, 0, 1, 3, 0], dtype=np.int32)  # 0: 4 times, 1: twice
    slot, rows = hogwild.hot_features(indices, 5, n_rows=64 * 2)  # at least 2 rows
    assert rows.tolist() == [0, 1] and slot.tolist() == [0, 1, -1, -1, -1]
    assert rows.dtype == np.int64 and slot.dtype == np.int32
    slot, rows = hogwild.hot_features(indices, 5, n_rows=64 * 4)
    assert rows.tolist() == [0] and slot.tolist() == [0, -1, -1, -1, -1]


@pytest.mark.parametrize("k", [4, 3])
def test_hot_buffers_alone_change_nothing(k):
    """One thread with hot-row buffers merges into an unchanged table: a plain epoch."""
    params, Xk, y, sw = _kernel_inputs(300, 40, 7, k, seed=1)
    order = np.random.default_rng(1).permutation(Xk.n_rows)
    plain = params.copy()
    want = _epoch(plain, Xk, y, sw, order)
    slot, rows = hogwild.hot_features(Xk.indices, params.n_features, Xk.n_rows // 8)
    assert 0 < rows.size < params.n_features
    lock = np.zeros(1, np.int32)
    got = _epoch(params, Xk, y, sw, order, hot=(slot, rows, lock), merge_every=3)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5)
    np.testing.assert_allclose(params.table, plain.table, rtol=1e-4, atol=1e-6)
    assert lock[0] == 0


def test_hot_buffers_with_threads():
    """Two threads with hot-row buffers learn as much as one thread does."""
    params, Xk, _, sw = _kernel_inputs(4000, 40, 7, 4, seed=2)
    truth = np.asarray(params.decision_function(Xk))
    y = np.where(truth > np.median(truth), 1.0, -1.0)
    start = FFMParams.initialize(params.n_features, 4, 0.1, np.random.default_rng(0),
                                 params.fields, n_state=params.wcol + 1)
    start.state[:] = 1.0
    hot = (*hogwild.hot_features(Xk.indices, start.n_features, Xk.n_rows),
           np.zeros(1, np.int32))
    assert hot[1].size
    losses = {}
    for n_jobs in (1, 2):
        p = start.copy()
        for epoch in range(5):
            order = np.random.default_rng(epoch).permutation(Xk.n_rows)
            chunks = np.array_split(order, n_jobs)
            shared = hot if n_jobs > 1 else None
            with ThreadPoolExecutor(n_jobs) as pool:
                loss = sum(pool.map(
                    lambda c, p=p, h=shared: _epoch(p, Xk, y, sw, c, h)[0], chunks))
        losses[n_jobs] = loss / sw.sum()
        assert p.all_finite() and hot[2][0] == 0
    assert losses[2] < 1.1 * losses[1] and losses[1] < 0.5  # log(2) = 0.69 at the start


def test_kernel_selection():
    assert ffm_kernels.predict_kernel(4) is ffm_kernels.predict_kernel(np.int64(4))
    assert ffm_kernels.predict_kernel(3) is ffm_kernels.predict_kernel(5)  # both generic
    assert ffm_kernels.epoch_kernel(4, ADAGRAD) is ffm_kernels.epoch_kernel(4, np.int64(1))
    assert ffm_kernels.epoch_kernel(3, SGD) is ffm_kernels.epoch_kernel(5, SGD)
    assert ffm_kernels.epoch_kernel(4, SGD) is not ffm_kernels.epoch_kernel(4, FTRL)


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


def test_classifier_save_load_and_threads(tmp_path, monkeypatch):
    # Threads even on these few rows (the solver otherwise keeps small data on one thread).
    monkeypatch.setattr("fmlearn.optim.sgd.MIN_ROWS_PER_THREAD", 1)
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
    # The threads buffered the hot rows (here every feature: 15 per field); the merge lock is
    # free again, and neither it nor the cache travels in pickles.
    assert par._params._hot[1][1].size == 75 and par._params._merge_lock[0] == 0
    again = pickle.loads(pickle.dumps(par))
    assert again._params._hot is None
    np.testing.assert_array_equal(again.predict_proba(X), par.predict_proba(X))


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
