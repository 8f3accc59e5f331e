"""Higher-order factorization machine (Blondel et al. 2016): prediction and SGD-type epochs.

``y(x) = w0 + <w, x> + sum_{m=2..degree} sum_{f<k} A^m(P^(m)[:, f], x)`` with the ANOVA kernel
``A^m(p, x) = sum_{j1<...<jm} prod_t p_{jt} x_{jt}`` and separate factors ``P^(m)`` per order.

Table layout (see :mod:`fmlearn._kernels.fm`): row ``i`` is
``[P^(2)_i (k) | P^(3)_i (k) | ... | P^(degree)_i (k) | w_i | solver state, same order]``;
order ``m``'s factors start at column ``(m - 2) * k``, ``w`` sits at ``wcol = (degree-1) * k``.

ANOVA kernels by the table DP, not by power sums
-----------------------------------------------
Blondel et al. give two O(m * nnz) ways to evaluate ``A^m``: Newton's identities over power
sums, ``A^t = 1/t sum_{s=1..t} (-1)^{s+1} A^{t-s} D_s`` with ``D_s = sum_j (p_j x_j)^s``, and
the table DP over the row's non-zeros, ``a_t <- a_t + p_j x_j a_{t-1}`` for
``t = m..1`` after ``a = (1, 0, ..., 0)``. We use the DP: it only ever sums the kernel's own
partial terms, so its rounding error is relative to the terms of ``A^m`` itself, whereas the
power-sum recursion subtracts products of power sums (``D_1^3`` against ``3 D_1 D_2`` and
``2 D_3`` for m = 3) that can be far larger than ``A^m`` -- in float32, with one dominant
``p_j x_j``, the result can lose every significant digit. (It also needs no division by ``t``.)
For m = 2 the DP sums ``p_i x_i p_j x_j`` over ``i < j`` directly, which is more accurate than
Rendle's ``((sum)^2 - sum of squares) / 2`` too.

The gradient ``dA^m/dp_j = x_j A^{m-1}(p, x without j)`` is likewise taken without
subtraction: the forward DP keeps its prefix tables (the kernels of the non-zeros before ``j``),
a backward sweep keeps the suffix kernels (those after ``j``), and
``A^{m-1}(without j) = sum_{t<m} prefix_t suffix_{m-1-t}`` (reverse-mode differentiation of the
DP, as Blondel et al. propose). The shorter "divide j back out" recursion
``sum_t (-p_j x_j)^t A^{m-1-t}`` alternates in sign again: tests/test_hofm.py checks the
gradient on a row where that recursion leaves no correct digit in float32.

Cost per row: ``m * k * nnz`` multiply-adds for order ``m`` forward, as many backward;
``sum_{m=2..degree} m = (degree - 1)(degree + 2) / 2`` per factor and non-zero in all (2 for
degree 2, 5 for degree 3, 14 for degree 5), against about 2 for the plain FM kernel.
"""

import numpy as np

from fmlearn._kernels._jit import jit
from fmlearn._kernels.losses import row_loss_gradient
from fmlearn._kernels.sgd import prefetch_row
from fmlearn._kernels.updates import bias_step, by_code, coord_step, typed_args


@jit(inline="always")
def hofm_row(indptr, indices, data, row, w0, table, k, degree, wcol, a, px):
    """HOFM prediction for one row, in float64.

    ``a`` (degree + 1, k) and ``px`` (k,) are float64 scratch arrays, overwritten.
    """
    start, stop = indptr[row], indptr[row + 1]
    linear = 0.0
    for p in range(start, stop):
        linear += table[indices[p], wcol] * data[p]
    total = w0[0] + linear
    for m in range(2, degree + 1):
        col = (m - 2) * k
        for f in range(k):
            a[0, f] = 1.0
        for t in range(1, m + 1):
            for f in range(k):
                a[t, f] = 0.0
        for p in range(start, stop):
            i = indices[p]
            x = data[p]
            for f in range(k):
                px[f] = table[i, col + f] * x
            # Descending t: a[t - 1] still holds the kernel without this non-zero.
            for t in range(m, 0, -1):
                for f in range(k):
                    a[t, f] += px[f] * a[t - 1, f]
        for f in range(k):
            total += a[m, f]
    return total


@jit
def predict(indptr, indices, data, w0, table, k, degree, wcol, out):
    """Write the HOFM prediction of every row into ``out`` (float64, (n_rows,)).

    Parallelize by row blocks (an ``indptr`` slice and ``out[a:b]``), as for FM.
    """
    a = np.empty((degree + 1, k), dtype=np.float64)
    px = np.empty(k, dtype=np.float64)
    for row in range(out.shape[0]):
        out[row] = hofm_row(indptr, indices, data, row, w0, table, k, degree, wcol, a, px)


@jit(inline="always")
def _forward(indptr, indices, data, row, w0, table, k, degree, wcol, pre, pxs):
    """Prediction of one row (float64), keeping what the backward sweep needs.

    ``pxs[q, c] = table[i_q, c] * x_q`` for every latent column ``c`` and the ``q``-th non-zero
    (the parameters *before* the update); ``pre[m - 2, q, t, f]`` = ``A^t`` of factor ``f`` of
    order ``m`` over the first ``q`` non-zeros, ``t = 0..m``.
    """
    start, stop = indptr[row], indptr[row + 1]
    n = stop - start
    linear = 0.0
    for q in range(n):
        i = indices[start + q]
        x = table.dtype.type(data[start + q])
        linear += table[i, wcol] * x
        for c in range(wcol):
            pxs[q, c] = table[i, c] * x
    total = w0[0] + linear
    for m in range(2, degree + 1):
        mi = m - 2
        col = mi * k
        for f in range(k):
            pre[mi, 0, 0, f] = 1.0
        for t in range(1, m + 1):
            for f in range(k):
                pre[mi, 0, t, f] = 0.0
        for q in range(n):
            for f in range(k):
                pre[mi, q + 1, 0, f] = 1.0
            for t in range(1, m + 1):
                for f in range(k):
                    pre[mi, q + 1, t, f] = pre[mi, q, t, f] + pxs[q, col + f] * pre[mi, q, t - 1, f]
        for f in range(k):
            total += pre[mi, n, m, f]
    return total


def _make_epoch(OPT):
    """The SGD epoch kernel for optimizer code ``OPT`` (see :mod:`fmlearn._kernels.updates`),
    a closure over the int as numba's cache wants."""

    @jit
    def sgd_epoch(
        indptr, indices, data, y, sample_weight, order, w0, w0_state, table, k, degree, wcol,
        loss, hp, fit_intercept, fit_linear, reg_scale,
    ):
        """One pass over ``order``; see :func:`sgd_epoch` (the dispatcher)."""
        T = table.dtype.type
        lr = hp[0]
        lr_, l1_w, l2_w, l2_V = typed_args(T, hp)
        zero = T(0.0)
        offset = wcol + 1
        stop = order.shape[0]
        max_nnz = 0
        for t in range(stop):
            row = order[t]
            max_nnz = max(max_nnz, indptr[row + 1] - indptr[row])
        n_orders = max(degree - 1, 1)
        pre = np.empty((n_orders, max_nnz + 1, degree + 1, k), dtype=table.dtype)
        pxs = np.empty((max_nnz, max(wcol, 1)), dtype=table.dtype)
        suf = np.empty((degree, k), dtype=table.dtype)
        acc = np.empty(k, dtype=table.dtype)
        total = 0.0
        for t in range(stop):
            prefetch_row(indptr, indices, data, y, sample_weight, order, t, stop, table)
            row = order[t]
            pred = _forward(indptr, indices, data, row, w0, table, k, degree, wcol, pre, pxs)
            row_loss, g = row_loss_gradient(loss, y, sample_weight, row, pred)
            total += row_loss
            if fit_intercept:
                bias_step(w0, w0_state, 0, OPT, g, lr)
            gT = T(g)
            start = indptr[row]
            n = indptr[row + 1] - start
            if fit_linear:
                for q in range(n):
                    i = indices[start + q]
                    coord_step(table, i, wcol, offset, OPT, gT * T(data[start + q]), lr_, l1_w,
                               l2_w * T(reg_scale[i]))
            for m in range(2, degree + 1):
                mi = m - 2
                col = mi * k
                # suf[t] = A^t over the non-zeros after q (orders up to m - 1 are needed).
                for f in range(k):
                    suf[0, f] = 1.0
                for s in range(1, m):
                    for f in range(k):
                        suf[s, f] = 0.0
                for q in range(n - 1, -1, -1):
                    i = indices[start + q]
                    gx = gT * T(data[start + q])
                    l2_Vi = l2_V * T(reg_scale[i])
                    # acc = A^{m-1} of the row without non-zero q = sum_t prefix_t * suffix_{m-1-t}
                    for f in range(k):
                        acc[f] = 0.0
                    for s in range(m):
                        for f in range(k):
                            acc[f] += pre[mi, q, s, f] * suf[m - 1 - s, f]
                    # Extend the suffix by non-zero q (its pre-update p x).
                    for s in range(m - 1, 0, -1):
                        for f in range(k):
                            suf[s, f] += pxs[q, col + f] * suf[s - 1, f]
                    # OPT is a literal: the loop is branch-free and vectorizes.
                    for f in range(k):
                        coord_step(table, i, col + f, offset, OPT, gx * acc[f], lr_, zero, l2_Vi)
        return total

    return sgd_epoch


_epoch = by_code(_make_epoch)


def sgd_epoch(
    indptr, indices, data, y, sample_weight, order, w0, w0_state, table, k, degree, wcol,
    loss, code, hp, fit_intercept, fit_linear, reg_scale=None,
):
    """One pass over ``order``; returns the sum of weighted losses (before each update).

    Same contract as :func:`fmlearn._kernels.sgd.sgd_epoch` (optimizer ``code``, ``hp``, the
    bias state ``w0_state``, the per-feature L2 scale ``reg_scale``); ``l2_V`` applies to the
    factors of every order. Every coordinate of a row moves along the exact gradient at the
    row's pre-update parameters (the backward
    sweep reads the forward pass's saved ``p_j x_j``, not the freshly updated table). The
    solver state of column ``c`` is at ``c + (j + 1) (wcol + 1)``.
    """
    if reg_scale is None:
        reg_scale = np.ones(table.shape[0], dtype=table.dtype)
    return _epoch(code)(
        indptr, indices, data, y, sample_weight, order, w0, w0_state, table, k, degree, wcol,
        loss, hp, fit_intercept, fit_linear, np.ascontiguousarray(reg_scale, table.dtype),
    )
