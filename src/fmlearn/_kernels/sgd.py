"""Stochastic gradient epochs (plain SGD and AdaGrad) for the second-order FM.

The kernel visits rows in the given order, so one call is deterministic. Parallel training
(Hogwild, Recht et al. 2011) runs this same kernel from several threads on disjoint chunks of
the shuffled order, all updating the shared parameters without locks: sparse rows rarely touch
the same feature at once, so races are rare and benign.

Parameters live in one table (see :mod:`fmlearn._kernels.fm`): ``table[i, :k]`` = v_i,
``table[i, k]`` = w_i and, for AdaGrad, ``table[i, k+1 : 2k+1]`` the factors' squared-gradient
sums and ``table[i, 2k+1]`` the linear weight's, so one feature's update touches one
contiguous row.
"""

import math

import numpy as np

from fmlearn._kernels._jit import jit
from fmlearn._kernels.fm import fm_row
from fmlearn._kernels.losses import row_loss_gradient
from fmlearn._kernels.prefetch import prefetch

# Rows ahead whose parameter rows are prefetched; their indices are fetched twice as far ahead.
PREFETCH_DISTANCE = 4


@jit(inline="always")
def prefetch_row(indptr, indices, data, y, sample_weight, order, t, stop, table):
    """Start loading what row ``order[t + D]`` will touch.

    Rows come in shuffled order, so everything about a row is a random read: its ``indptr``
    entry (fetched 3D ahead), its index/value slice, target and weight (2D ahead), and the
    table rows of its features (D ahead, once its indices have arrived).
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
        stride = table.shape[1]
        line = 64 // table.itemsize
        for p in range(indptr[row], indptr[row + 1]):
            start = indices[p] * stride
            for off in range(0, stride, line):
                prefetch(table, start + off)
            prefetch(table, start + stride - 1)


@jit(inline="always")
def bias_step(w0, acc_w0, g, lr, adaptive):
    """Update the global bias ``w0[0]`` with gradient ``g`` (AdaGrad state in ``acc_w0[0]``)."""
    if adaptive:
        acc_w0[0] += g * g
        w0[0] -= lr * g / math.sqrt(acc_w0[0])
    else:
        w0[0] -= lr * g


@jit(inline="always")
def coord_step(table, i, c, state_offset, grad, lr, adaptive):
    """Update ``table[i, c]`` with gradient ``grad``; AdaGrad keeps its sum at ``c + offset``."""
    if adaptive:
        a = table[i, state_offset + c] + grad * grad
        table[i, state_offset + c] = a
        table[i, c] -= lr * grad / math.sqrt(a)
    else:
        table[i, c] -= lr * grad


@jit(inline="always")
def fm_step(indptr, indices, data, row, table, k, s, gT, lr_, reg_w_, reg_V_, adaptive,
            fit_linear):
    """Apply the prediction gradient ``gT`` of ``row`` to its features' ``w`` and ``V``.

    ``s`` holds the row's factor sums from :func:`fmlearn._kernels.fm.fm_row`; the rates are
    in the table's dtype. Shared by every FM task's epoch (regression, binary, ordinal).
    """
    T = table.dtype.type
    for p in range(indptr[row], indptr[row + 1]):
        i = indices[p]
        x = T(data[p])
        gx = gT * x
        if fit_linear:
            coord_step(table, i, k, k + 1, gx + reg_w_ * table[i, k], lr_, adaptive)
        # Two branch-free factor loops so that each vectorizes (a branch inside would not).
        if adaptive:
            for f in range(k):
                v = table[i, f]
                grad = gx * (s[f] - v * x) + reg_V_ * v
                a = table[i, k + 1 + f] + grad * grad
                table[i, k + 1 + f] = a
                table[i, f] = v - lr_ * grad / math.sqrt(a)
        else:
            for f in range(k):
                v = table[i, f]
                table[i, f] = v - lr_ * (gx * (s[f] - v * x) + reg_V_ * v)


@jit
def sgd_epoch(
    indptr, indices, data, y, sample_weight, order, w0, acc_w0, table, k,
    loss, lr, reg_w, reg_V, adaptive, fit_intercept, fit_linear,
):
    """One pass over ``order`` (int64 row ids); returns the sum of weighted losses.

    ``w0`` (1,) and ``table`` (n_features, stride) are updated in place; with ``adaptive``
    (AdaGrad) so are ``acc_w0`` (1,) and the accumulator columns of ``table`` (stride must be
    at least 2k + 2), else ``stride >= k + 1`` suffices and ``acc_w0`` is ignored. ``loss`` is a
    code from :mod:`fmlearn._kernels.losses`; ``reg_w``/``reg_V`` are L2 strengths applied to
    the coordinates a row touches. Each row's loss is taken before its update (progressive
    validation).
    """
    # The update loops run in the parameters' dtype: float32 halves memory traffic and doubles
    # SIMD width; only the per-row loss and gradient are float64.
    T = table.dtype.type
    lr_, reg_w_, reg_V_ = T(lr), T(reg_w), T(reg_V)
    s = np.empty(k, dtype=table.dtype)
    total = 0.0
    stop = order.shape[0]
    for t in range(stop):
        prefetch_row(indptr, indices, data, y, sample_weight, order, t, stop, table)
        row = order[t]
        pred = fm_row(indptr, indices, data, row, w0, table, k, s)
        row_loss, g = row_loss_gradient(loss, y, sample_weight, row, pred)
        total += row_loss
        if fit_intercept:
            bias_step(w0, acc_w0, g, lr, adaptive)
        fm_step(indptr, indices, data, row, table, k, s, T(g), lr_, reg_w_, reg_V_, adaptive,
                fit_linear)
    return total
