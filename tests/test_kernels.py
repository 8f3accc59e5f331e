"""Kernels against naive numpy formulas; serial against parallel twins."""

import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp
from _reference import fm_gradients, fm_predict_bruteforce

from fmlearn._kernels import fm as fm_kernels
from fmlearn._kernels import hogwild
from fmlearn._kernels import sgd as sgd_kernels
from fmlearn._kernels.losses import LOGISTIC, SQUARED, loss_gradient, loss_value
from fmlearn._kernels.updates import ADAGRAD, FTRL, N_STATES, SGD
from fmlearn.data.design import as_kernel_csr


def _random_model(n_features, k, rng, dtype):
    return (
        np.array([rng.normal()], dtype=dtype),
        rng.normal(size=n_features).astype(dtype),
        rng.normal(scale=0.5, size=(n_features, k)).astype(dtype),
    )


def _opt(adaptive):
    """The optimizer code of the old ``adaptive`` switch."""
    return ADAGRAD if adaptive else SGD


def _table(w, V, n_state=0, state_value=1.0):
    """The kernels' parameter table [V | w | state] (see fmlearn._kernels.fm)."""
    k = V.shape[1]
    table = np.full((w.shape[0], k + 1 + n_state), state_value, dtype=V.dtype)
    table[:, :k] = V
    table[:, k] = w
    return table


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [0, 1, 5])
def test_predict_matches_bruteforce(dtype, k):
    rng = np.random.default_rng(k)
    X = sp.random(30, 12, density=0.3, random_state=1, format="csr", dtype=dtype)
    w0, w, V = _random_model(12, k, rng, np.float64)
    Xk = as_kernel_csr(X)
    args = (Xk.indptr, Xk.indices, Xk.data, w0, _table(w, V, n_state=3), k)
    out = np.empty(30)
    fm_kernels.predict(*args, out)
    np.testing.assert_allclose(out, fm_predict_bruteforce(X, w0[0], w, V), rtol=1e-5, atol=1e-5)
    # a block of rows through an indptr slice, as the threaded path calls it
    block = np.empty(10)
    fm_kernels.predict(Xk.indptr[10:21], *args[1:], block)
    np.testing.assert_array_equal(block, out[10:20])
    py = np.empty(30)
    fm_kernels.predict.py_func(*args, py)
    np.testing.assert_allclose(out, py, rtol=1e-12)


def test_empty_rows_predict_bias():
    X = sp.csr_matrix((3, 4))
    Xk = as_kernel_csr(X)
    out = np.empty(3)
    table = _table(np.ones(4), np.ones((4, 2)))
    fm_kernels.predict(Xk.indptr, Xk.indices, Xk.data, np.array([1.5]), table, 2, out)
    np.testing.assert_array_equal(out, 1.5)


@pytest.mark.parametrize("loss", [SQUARED, LOGISTIC])
@pytest.mark.parametrize("p", [-40.0, -1.3, 0.0, 0.7, 40.0])
def test_loss_gradient_is_derivative(loss, p):
    y = 1.0 if loss == LOGISTIC else 0.4
    h = 1e-6
    num = (loss_value.py_func(loss, y, p + h) - loss_value.py_func(loss, y, p - h)) / (2 * h)
    scale = 0.5 if loss == SQUARED else 1.0  # squared: value (p-y)^2, gradient of (p-y)^2 / 2
    assert loss_gradient.py_func(loss, y, p) == pytest.approx(scale * num, rel=1e-5, abs=1e-8)
    assert np.isfinite(loss_value.py_func(loss, y, p))


def _one_step(adaptive, reg_w=0.1, reg_V=0.2, lr=0.05, k=3):
    rng = np.random.default_rng(3)
    X = sp.csr_matrix(np.array([[0.0, 1.5, 0.0, -0.5, 2.0]]))
    w0, w, V = _random_model(5, k, rng, np.float64)
    y = np.array([0.8])
    Xk = as_kernel_csr(X)
    new_w0, acc_w0 = w0.copy(), np.ones(1)
    table = _table(w, V, n_state=k + 1 if adaptive else 0)
    sgd_kernels.sgd_epoch(
        Xk.indptr, Xk.indices, Xk.data, y, np.ones(1), np.zeros(1, np.int64),
        new_w0, acc_w0, table, k, SQUARED, _opt(adaptive), (lr, 0.0, reg_w, reg_V), True, True,
    )
    new = (new_w0, table[:, k], table[:, :k])
    acc = (acc_w0, table[:, 2 * k + 1], table[:, k + 1 : 2 * k + 1]) if adaptive else None
    return X.toarray()[0], y[0], (w0, w, V), new, acc


@pytest.mark.parametrize("adaptive", [False, True])
# generic kernel (scalars; vectors of 16 and 4 lanes and scalars), specialized kernels
@pytest.mark.parametrize("k", [3, 23, 4, 16])
def test_sgd_step_matches_manual_gradient(adaptive, k):
    lr, reg_w, reg_V = 0.05, 0.1, 0.2
    x, y, (w0, w, V), (nw0, nw, nV), acc = _one_step(adaptive, reg_w, reg_V, lr, k)
    pred = fm_predict_bruteforce(x[None, :], w0[0], w, V)[0]
    g = pred - y
    _, gw, gV = fm_gradients(x, w0[0], w, V)
    nz = x != 0
    grad_w0 = g
    grad_w = np.where(nz, g * gw + reg_w * w, 0.0)
    grad_V = np.where(nz[:, None], g * gV + reg_V * V, 0.0)
    if adaptive:
        # AdaGrad: accumulators start at 1, step = lr * grad / sqrt(1 + grad^2).
        def step(p, gr):
            return p - lr * gr / np.sqrt(1.0 + gr * gr)
        np.testing.assert_allclose(acc[2], 1 + grad_V**2, rtol=1e-10)
        np.testing.assert_allclose(acc[1], 1 + grad_w**2, rtol=1e-10)
        np.testing.assert_allclose(acc[0], 1 + grad_w0**2, rtol=1e-10)
    else:
        def step(p, gr):
            return p - lr * gr
    np.testing.assert_allclose(nw0[0], step(w0[0], grad_w0), rtol=1e-10)
    np.testing.assert_allclose(nw, step(w, grad_w), rtol=1e-10)
    np.testing.assert_allclose(nV, step(V, grad_V), rtol=1e-10)


def test_threaded_paths_match_serial():
    from fmlearn.models.fm import FMParams

    rng = np.random.default_rng(0)
    X = sp.random(25_000, 300, density=0.02, random_state=2, format="csr", dtype=np.float32)
    params = FMParams.initialize(300, 4, 0.3, rng)
    params.table[:, 4] = rng.normal(size=300)
    Xk = as_kernel_csr(X)
    np.testing.assert_array_equal(
        params.decision_function(Xk, n_jobs=1), params.decision_function(Xk, n_jobs=2)
    )


def test_hogwild_epochs_learn():
    from fmlearn._parallel import run_blocks

    rng = np.random.default_rng(0)
    n, F, k = 2000, 50, 4
    X = sp.random(n, F, density=0.1, random_state=2, format="csr", dtype=np.float32)
    w0t, wt, Vt = _random_model(F, k, rng, np.float64)
    y = fm_predict_bruteforce(X, w0t[0], wt, Vt)
    Xk = as_kernel_csr(X)
    w0, acc_w0 = np.zeros(1, np.float32), np.ones(1, np.float32)
    table = _table(np.zeros(F, np.float32), np.full((F, k), 0.1, np.float32), n_state=k + 1)
    losses = []
    for _ in range(30):
        order = rng.permutation(n)

        def chunk(a, b, order=order):
            return sgd_kernels.sgd_epoch(
                Xk.indptr, Xk.indices, Xk.data, y, np.ones(n), order[a:b], w0, acc_w0, table, k,
                SQUARED, ADAGRAD, (0.1, 0.0, 0.0, 0.0), True, True,
            )

        losses.append(sum(run_blocks(chunk, n, 2)))
    assert losses[-1] < 0.2 * losses[0]


@pytest.mark.parametrize("k", [4, 16, 6, 29])  # specialized; generic (vectors of 16/8/4, tail)
def test_float32_adagrad_step_is_within_the_rsqrt_estimate(k):
    """float32 AdaGrad factor steps may use the hardware 1/sqrt estimate (12 bits), no worse."""
    rng = np.random.default_rng(k)
    n_features = 6
    X = sp.csr_matrix(np.array([[0.0, 1.5, 0.7, 0.0, -0.5, 2.0]]))
    w0, w, V = _random_model(n_features, k, rng, np.float64)
    table = _table(w, V, n_state=k + 1)
    table[:, k + 1 :] = rng.uniform(1.0, 3.0, (n_features, k + 1))
    steps = {}
    for dtype in (np.float32, np.float64):
        t = table.astype(np.float32).astype(dtype)  # the same starting point for both
        Xk = as_kernel_csr(X.astype(dtype))
        sgd_kernels.sgd_epoch(
            Xk.indptr, Xk.indices, Xk.data, np.array([2.0]), np.ones(1), np.zeros(1, np.int64),
            w0.astype(dtype), np.ones(1, dtype), t, k, SQUARED, ADAGRAD, (0.1, 0.0, 0.0, 0.0),
            False, False,
        )
        steps[dtype] = table.astype(np.float32).astype(np.float64)[:, :k] - t[:, :k]
    exact, approx = steps[np.float64], steps[np.float32]
    moved = np.abs(exact) > 1e-4
    assert moved.sum() > 2 * k
    np.testing.assert_allclose(approx[moved], exact[moved], rtol=5e-4)
    np.testing.assert_array_equal(approx[~moved] == 0, exact[~moved] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("code", [SGD, ADAGRAD, FTRL])
@pytest.mark.parametrize("loss", [SQUARED, LOGISTIC])
def test_specialized_epoch_matches_generic(dtype, code, loss):
    """The kernel built for k = 16 (one vector per operation) against the runtime-k one."""
    k = 16
    assert k in sgd_kernels.SPECIALIZED_FACTORS
    rng = np.random.default_rng(5)
    n, n_features = 300, 40
    X = sp.random(n, n_features, density=0.2, random_state=5, format="csr", dtype=dtype)
    Xk = as_kernel_csr(X)
    y = rng.normal(size=n) if loss == SQUARED else np.sign(rng.normal(size=n))
    sw = rng.uniform(0.5, 2.0, n)
    w0, w, V = _random_model(n_features, k, rng, dtype)
    table = _table(w, V * 0.3, n_state=N_STATES[code] * (k + 1))
    order = rng.permutation(n)
    out = []
    for kernel in (sgd_kernels.epoch_kernel(k, code), sgd_kernels.epoch_kernel(0, code)):
        t, b, a = table.copy(), w0.copy(), np.ones(2, dtype)
        loss_sum = kernel(Xk.indptr, Xk.indices, Xk.data, y, sw, order, b, a, t, k, loss,
                          (0.05, 0.01, 0.01, 0.02), True, True, *hogwild.hot_arguments(None),
                          hogwild.MERGE_EVERY, np.ones(1, dtype))
        out.append((loss_sum, b, a, t))
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    for got, want in zip(out[0], out[1], strict=True):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


def test_epoch_with_empty_rows_and_no_factors():
    """k = 0 (a linear model) and rows without entries go through the same kernel."""
    X = sp.csr_matrix(np.array([[0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, -1.0]]))
    Xk = as_kernel_csr(X)
    y = np.array([1.0, 0.5, -1.0])
    w0, table = np.zeros(1), np.zeros((3, 1))
    loss = sgd_kernels.sgd_epoch(
        Xk.indptr, Xk.indices, Xk.data, y, np.ones(3), np.arange(3, dtype=np.int64), w0,
        np.ones(1), table, 0, SQUARED, SGD, (0.1, 0.0, 0.0, 0.0), True, True,
    )
    # Row by row (lr 0.1): predictions 0, 0.1 (the bias alone), 0.14.
    assert loss == pytest.approx(1.0**2 + 0.4**2 + 1.14**2, rel=1e-12)
    np.testing.assert_allclose(table[:, 0], [-0.114, 0.2, 0.114], rtol=1e-12)
    assert w0[0] == pytest.approx(0.1 + 0.04 - 0.114, rel=1e-12)


def _skewed_data(n, n_features, n_fields, seed):
    """One-hot rows of ``n_fields`` fields with Zipf-distributed categories: a few features
    occur in most rows (the hot rows of concurrent epochs)."""
    rng = np.random.default_rng(seed)
    size = n_features // n_fields
    cats = np.minimum(rng.zipf(1.3, (n, n_fields)) - 1, size - 1)
    cols = (cats + np.arange(n_fields) * size).astype(np.int32)
    indptr = np.arange(0, n * n_fields + 1, n_fields)
    X = sp.csr_matrix((np.ones(n * n_fields), cols.ravel(), indptr), shape=(n, n_features),
                      dtype=np.float32)
    return X, as_kernel_csr(X), rng


def _fm_hot(Xk, n_rows):
    """``hot`` for the FM epoch: the features in at least 1/64 of ``n_rows`` rows."""
    slot, rows = hogwild.hot_features(Xk.indices, Xk.n_features, n_rows)
    return hogwild.hot_indices(Xk.indices, slot, rows.shape[0]), rows, np.zeros(1, np.int32)


def _fm_epoch(table, w0, w0_state, Xk, y, sw, order, k, code, hot=None, merge_every=64):
    return sgd_kernels.sgd_epoch(
        Xk.indptr, Xk.indices, Xk.data, y, sw, order, w0, w0_state, table, k, SQUARED, code,
        (0.05, 1e-3, 1e-3, 2e-3), True, True, hot=hot, merge_every=merge_every,
    )


@pytest.mark.parametrize("code", [SGD, ADAGRAD, FTRL])
@pytest.mark.parametrize("k", [16, 3])  # specialized; generic
def test_fm_hot_buffers_alone_change_nothing(k, code):
    """One thread with hot-row buffers merges into an unchanged table: a plain epoch."""
    _, Xk, rng = _skewed_data(400, 60, 5, seed=k)
    y, sw = rng.normal(size=Xk.n_rows), rng.uniform(0.5, 2.0, Xk.n_rows)
    w0, w, V = _random_model(60, k, rng, np.float32)
    table = _table(w * 0.1, V * 0.3, n_state=N_STATES[code] * (k + 1))
    order = rng.permutation(Xk.n_rows)
    buffered = _fm_hot(Xk, Xk.n_rows // 8)
    assert 0 < buffered[1].size < table.shape[0]
    runs = []
    for hot in (None, buffered):
        t, b, a = table.copy(), w0.copy(), np.ones(max(N_STATES[code], 1), np.float32)
        loss = _fm_epoch(t, b, a, Xk, y, sw, order, k, code, hot=hot, merge_every=3)
        runs.append((loss, t, b, a))
        assert hot is None or hot[2][0] == 0  # the lock is free again
    (l0, t0, b0, a0), (l1, t1, b1, a1) = runs
    # The bias runs in float64 between merges: equal up to float32 rounding.
    np.testing.assert_allclose(l1, l0, rtol=1e-5)
    np.testing.assert_allclose(b1, b0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a1, a0, rtol=1e-5)
    np.testing.assert_allclose(t1, t0, rtol=1e-4, atol=1e-5)
    assert not np.array_equal(t1, table)


@pytest.mark.parametrize("code", [SGD, ADAGRAD, FTRL])
def test_fm_hot_buffers_with_threads(code):
    """Two threads with hot-row buffers learn as much as one thread does."""
    k, n_features = 4, 100
    X, Xk, rng = _skewed_data(6000, n_features, 5, seed=7)
    w0t, wt, Vt = _random_model(n_features, k, rng, np.float64)
    y = fm_predict_bruteforce(X, w0t[0], wt * 0.3, Vt * 0.5)
    sw = np.ones(Xk.n_rows)
    hot = _fm_hot(Xk, Xk.n_rows)
    assert hot[1].size
    start = _table(np.zeros(n_features, np.float32), np.full((n_features, k), 0.1, np.float32),
                   n_state=N_STATES[code] * (k + 1))
    if code == FTRL:  # z reproducing the factors' 0.1 (with n = 0)
        start[:, k + 1 :] = 0.0
        start[:, k + 1 : 2 * k + 1] = -0.1 * (1.0 / 0.05 + 2e-3)
    losses = {}
    for n_jobs in (1, 2):
        table, w0 = start.copy(), np.zeros(1, np.float32)
        acc_w0 = np.full(max(N_STATES[code], 1), float(code == ADAGRAD), np.float32)
        for epoch in range(8):
            order = np.random.default_rng(epoch).permutation(Xk.n_rows)
            shared = hot if n_jobs > 1 else None
            params = (table, w0, acc_w0)
            with ThreadPoolExecutor(n_jobs) as pool:
                loss = sum(pool.map(
                    lambda c, p=params, h=shared: _fm_epoch(*p, Xk, y, sw, c, k, code, hot=h),
                    np.array_split(order, n_jobs)))
        losses[n_jobs] = loss / Xk.n_rows
        assert np.isfinite(table).all() and np.isfinite(w0).all() and hot[2][0] == 0
    # Unsynchronized (Hogwild) updates make the two-thread loss vary from run to run; a lost
    # or doubled buffer merge shows up as a far larger loss than this margin.
    assert losses[1] < 0.2 * np.var(y) and losses[2] < 0.2 * np.var(y)
    assert losses[2] < 1.5 * losses[1] + 1e-3


def test_fm_params_buffer_hot_rows_only_with_threads():
    """FMParams.sgd_epoch hands the kernel hot rows on a part of the rows (threads) only."""
    from fmlearn import FMRegressor

    X, _, rng = _skewed_data(3000, 60, 5, seed=3)
    y = rng.normal(size=X.shape[0]) + X @ rng.normal(size=60)
    one = FMRegressor(n_factors=4, max_iter=3, random_state=0, n_jobs=1).fit(X, y)
    assert one._params._hot is None
    two = FMRegressor(n_factors=4, max_iter=3, random_state=0, n_jobs=2).fit(X, y)
    assert two._params._hot[1][1].size and two._params._merge_lock[0] == 0
    again = pickle.loads(pickle.dumps(two))
    assert again._params._hot is None and again._params._merge_lock[0] == 0
    np.testing.assert_array_equal(again.predict(X), two.predict(X))


def test_fm_hot_rows_cached_per_design():
    """The remapped indices are made once per design and dropped with its index array."""
    import gc

    from fmlearn.models.fm import FMParams
    from fmlearn.optim.sgd import AdaGradSolver

    X, Xk, rng = _skewed_data(2000, 60, 5, seed=4)
    Xk = Xk._replace(indices=Xk.indices.copy())  # an index array only this test holds
    y, sw = rng.normal(size=Xk.n_rows), np.ones(Xk.n_rows)
    solver = AdaGradSolver(learning_rate=0.05, l2_reg_w=0.0, l2_reg_V=0.0, loss=SQUARED,
                           fit_intercept=True, fit_linear=True)
    params = FMParams.initialize(60, 4, 0.1, rng, n_state=solver.state_columns(5))
    acc_w0 = solver.init_state(params)["acc_w0"]
    order = rng.permutation(Xk.n_rows)
    params.sgd_epoch(Xk, y, sw, order, acc_w0, solver)
    assert params._hot is None  # all the rows: one thread, no hot rows
    params.sgd_epoch(Xk, y, sw, order[:1000], acc_w0, solver)
    remapped, rows, lock = params._hot[1]
    assert rows.size and (remapped < 0).sum() == np.isin(Xk.indices, rows).sum()
    np.testing.assert_array_equal(remapped[remapped >= 0], Xk.indices[remapped >= 0])
    params.sgd_epoch(Xk, y, sw, order[1000:], acc_w0, solver)
    assert params._hot[1][0] is remapped and lock[0] == 0
    del Xk, remapped
    gc.collect()
    assert params._hot is None and params.all_finite()
