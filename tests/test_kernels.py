"""Kernels against naive numpy formulas; serial against parallel twins."""

import numpy as np
import pytest
import scipy.sparse as sp
from _reference import fm_gradients, fm_predict_bruteforce

from fmlearn._kernels import fm as fm_kernels
from fmlearn._kernels import sgd as sgd_kernels
from fmlearn._kernels.losses import LOGISTIC, SQUARED, loss_gradient, loss_value
from fmlearn.data.design import as_kernel_csr


def _random_model(n_features, k, rng, dtype):
    return (
        np.array([rng.normal()], dtype=dtype),
        rng.normal(size=n_features).astype(dtype),
        rng.normal(scale=0.5, size=(n_features, k)).astype(dtype),
    )


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


def _one_step(adaptive, reg_w=0.1, reg_V=0.2, lr=0.05):
    rng = np.random.default_rng(3)
    X = sp.csr_matrix(np.array([[0.0, 1.5, 0.0, -0.5, 2.0]]))
    w0, w, V = _random_model(5, 3, rng, np.float64)
    y = np.array([0.8])
    Xk = as_kernel_csr(X)
    new_w0, acc_w0 = w0.copy(), np.ones(1)
    table = _table(w, V, n_state=4 if adaptive else 0)
    sgd_kernels.sgd_epoch(
        Xk.indptr, Xk.indices, Xk.data, y, np.ones(1), np.zeros(1, np.int64),
        new_w0, acc_w0, table, 3, SQUARED, lr, reg_w, reg_V, adaptive, True, True,
    )
    new = (new_w0, table[:, 3], table[:, :3])
    acc = (acc_w0, table[:, 7], table[:, 4:7]) if adaptive else None
    return X.toarray()[0], y[0], (w0, w, V), new, acc


@pytest.mark.parametrize("adaptive", [False, True])
def test_sgd_step_matches_manual_gradient(adaptive):
    lr, reg_w, reg_V = 0.05, 0.1, 0.2
    x, y, (w0, w, V), (nw0, nw, nV), acc = _one_step(adaptive, reg_w, reg_V, lr)
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
    from fmlearn._model import FMParams

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
                SQUARED, 0.1, 0.0, 0.0, True, True, True,
            )

        losses.append(sum(run_blocks(chunk, n, 2)))
    assert losses[-1] < 0.2 * losses[0]
