"""Stochastic gradient epochs (plain SGD and AdaGrad) for the second-order FM.

One row-range body serves a serial kernel (deterministic: rows in the given order) and a
parallel kernel that splits the order into ``n_blocks`` chunks updated lock-free (Hogwild,
Recht et al. 2011): sparse rows rarely touch the same feature at once, so races are rare and
benign.
"""

import math

import numba
import numpy as np

from fmlearn._kernels._jit import jit
from fmlearn._kernels.fm import fm_row
from fmlearn._kernels.losses import loss_gradient, loss_value
from fmlearn._kernels.prefetch import prefetch

# Rows ahead whose parameters are prefetched; their indices are fetched twice as far ahead.
PREFETCH_DISTANCE = 4


@jit(inline="always")
def _step(param, grad, acc, j, lr, adaptive):
    """New value of one coordinate; AdaGrad (``adaptive``) also grows ``acc.flat[j]``.

    Plain SGD never reads ``acc``, so it may be a 1-element placeholder.
    """
    if adaptive:
        a = acc[j] + grad * grad
        acc[j] = a
        return param - lr * grad / math.sqrt(a)
    return param - lr * grad


@jit(inline="always")
def _prefetch_row(
    indptr, indices, data, y, sample_weight, order, t, stop, w, V, acc_w, acc_V, adaptive
):
    """Start loading what row ``order[t + D]`` will touch.

    Rows come in shuffled order, so everything about a row is a random read: its ``indptr``
    entry (fetched 3D ahead), its index/value slice, target and weight (2D ahead), and the
    parameter rows of its features (D ahead, once its indices have arrived).
    """
    d = PREFETCH_DISTANCE
    if t + 3 * d < stop:
        prefetch(indptr, order[t + 3 * d])
    if t + 2 * d < stop:
        row = order[t + 2 * d]
        far = indptr[row]
        prefetch(indices, far)
        prefetch(data, far)
        prefetch(y, row)
        prefetch(sample_weight, row)
    if t + d < stop:
        row = order[t + d]
        k = V.shape[1]
        line = 64 // V.itemsize
        for p in range(indptr[row], indptr[row + 1]):
            i = indices[p]
            prefetch(w, i)
            for off in range(0, k, line):
                prefetch(V, i * k + off)
            if adaptive:
                prefetch(acc_w, i)
                for off in range(0, k, line):
                    prefetch(acc_V, i * k + off)


@jit(inline="always")
def _sgd_rows(
    indptr, indices, data, y, sample_weight, order, start, stop,
    w0, w, V, acc_w0, acc_w, acc_V,
    loss, lr, reg_w, reg_V, adaptive, fit_intercept, fit_linear,
):
    k = V.shape[1]
    # The update loops run in the parameters' dtype: float32 halves memory traffic and doubles
    # SIMD width; only the per-row loss and gradient are float64.
    T = V.dtype.type
    lr_, reg_w_, reg_V_ = T(lr), T(reg_w), T(reg_V)
    s = np.empty(k, dtype=V.dtype)
    total = 0.0
    for t in range(start, stop):
        _prefetch_row(
            indptr, indices, data, y, sample_weight, order, t, stop, w, V, acc_w, acc_V, adaptive
        )
        row = order[t]
        pred = fm_row(indptr, indices, data, row, w0, w, V, s)
        target = y[row]
        sw = sample_weight[row]
        total += sw * loss_value(loss, target, pred)
        g = sw * loss_gradient(loss, target, pred)
        if fit_intercept:
            w0[0] = _step(w0[0], T(g), acc_w0, 0, lr_, adaptive)
        for p in range(indptr[row], indptr[row + 1]):
            i = indices[p]
            x = T(data[p])
            gx = T(g) * x
            if fit_linear:
                w[i] = _step(w[i], gx + reg_w_ * w[i], acc_w, i, lr_, adaptive)
            # Two branch-free loops so that each vectorizes (a branch inside would not).
            base = i * k
            if adaptive:
                for f in range(k):
                    v = V[i, f]
                    grad = gx * (s[f] - v * x) + reg_V_ * v
                    a = acc_V[base + f] + grad * grad
                    acc_V[base + f] = a
                    V[i, f] = v - lr_ * grad / math.sqrt(a)
            else:
                for f in range(k):
                    v = V[i, f]
                    V[i, f] = v - lr_ * (gx * (s[f] - v * x) + reg_V_ * v)
    return total


@jit
def sgd_epoch_serial(
    indptr, indices, data, y, sample_weight, order,
    w0, w, V, acc_w0, acc_w, acc_V,
    loss, lr, reg_w, reg_V, adaptive, fit_intercept, fit_linear,
):
    """One pass over ``order`` (int64 row ids); returns the sum of weighted losses.

    Parameters ``w0`` (1,), ``w`` (n_features,), ``V`` (n_features, k) are updated in place,
    and so are the AdaGrad accumulators ``acc_w0`` (1,), ``acc_w`` (n_features,) and ``acc_V``
    (n_features * k,), flat so one index expression serves all three; plain SGD ignores them
    (pass 1-element placeholders). ``loss`` is a code from
    :mod:`fmlearn._kernels.losses`; ``reg_w``/``reg_V`` are L2 strengths applied to the
    coordinates a row touches. The loss of each row is taken before its update (progressive
    validation).
    """
    return _sgd_rows(
        indptr, indices, data, y, sample_weight, order, 0, order.shape[0],
        w0, w, V, acc_w0, acc_w, acc_V,
        loss, lr, reg_w, reg_V, adaptive, fit_intercept, fit_linear,
    )


@jit(parallel=True)
def sgd_epoch_parallel(
    indptr, indices, data, y, sample_weight, order,
    w0, w, V, acc_w0, acc_w, acc_V,
    loss, lr, reg_w, reg_V, adaptive, fit_intercept, fit_linear, n_blocks,
):
    """Hogwild twin of :func:`sgd_epoch_serial`: ``n_blocks`` chunks of ``order`` at once."""
    n = order.shape[0]
    totals = np.zeros(n_blocks, dtype=np.float64)
    for b in numba.prange(n_blocks):
        totals[b] = _sgd_rows(
            indptr, indices, data, y, sample_weight, order,
            b * n // n_blocks, (b + 1) * n // n_blocks,
            w0, w, V, acc_w0, acc_w, acc_V,
            loss, lr, reg_w, reg_V, adaptive, fit_intercept, fit_linear,
        )
    return totals.sum()
