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
    fm_kernels.predict_serial(*args, out)
    np.testing.assert_allclose(out, fm_predict_bruteforce(X, w0[0], w, V), rtol=1e-5, atol=1e-5)
    par = np.empty(30)
    fm_kernels.predict_parallel(*args, par, 4)
    np.testing.assert_array_equal(out, par)
    py = np.empty(30)
    fm_kernels.predict_serial.py_func(*args, py)
    np.testing.assert_allclose(out, py, rtol=1e-12)


def test_empty_rows_predict_bias():
    X = sp.csr_matrix((3, 4))
    Xk = as_kernel_csr(X)
    out = np.empty(3)
    table = _table(np.ones(4), np.ones((4, 2)))
    fm_kernels.predict_serial(Xk.indptr, Xk.indices, Xk.data, np.array([1.5]), table, 2, out)
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
    sgd_kernels.sgd_epoch_serial(
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


def test_serial_and_parallel_epochs_both_learn():
    rng = np.random.default_rng(0)
    n, F, k = 4000, 50, 4
    X = sp.random(n, F, density=0.1, random_state=2, format="csr", dtype=np.float32)
    w0t, wt, Vt = _random_model(F, k, rng, np.float64)
    y = fm_predict_bruteforce(X[:200], w0t[0], wt, Vt)  # small exact targets
    Xk = as_kernel_csr(X[:200])
    losses = {}
    for name, kernel, extra in (
        ("serial", sgd_kernels.sgd_epoch_serial, ()),
        ("parallel", sgd_kernels.sgd_epoch_parallel, (2,)),
    ):
        w0, acc_w0 = np.zeros(1, np.float32), np.ones(1, np.float32)
        table = _table(np.zeros(F, np.float32), np.full((F, k), 0.1, np.float32), n_state=k + 1)
        first = last = None
        for _ in range(30):
            order = rng.permutation(200)
            loss = kernel(Xk.indptr, Xk.indices, Xk.data, y, np.ones(200), order, w0, acc_w0,
                          table, k, SQUARED, 0.1, 0.0, 0.0, True, True, True, *extra)
            first = loss if first is None else first
            last = loss
        losses[name] = (first, last)
    for first, last in losses.values():
        assert last < 0.2 * first
