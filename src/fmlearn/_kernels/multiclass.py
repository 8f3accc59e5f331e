"""Multinomial (softmax) factorization machine: one FM score per class, in O(C * k * nnz).

Class ``c`` scores a row with its own bias, linear weights and factors,
``f_c(x) = w0_c + sum_i w_ic x_i + sum_{i<j} <v_ic, v_jc> x_i x_j`` (Rendle's identity per
class), and ``p_c = softmax(f)_c``. The loss of a row of class ``y`` is ``-log p_y``; its
gradient with respect to ``f_c`` is ``p_c - [y == c]``.

Parameters live in one table, row ``i`` = everything about feature ``i``::

    [v_i0 (k) | v_i1 (k) | ... | v_i,C-1 (k) | w_i0 ... w_i,C-1 | solver state]

so a training step touches one contiguous burst per feature, as in the binary kernels
(:mod:`fmlearn._kernels.fm`). The ``P = C * (k + 1)`` parameter columns come first; the solver
keeps its state values of column ``j`` at ``P + j`` (and ``2P + j``, see
:mod:`fmlearn._kernels.updates`). Targets ``y`` are float64 class indices in ``[0, C)``; ``w0``
has shape (C,). Array conventions otherwise as in :mod:`fmlearn._kernels.fm`.
"""

import math

import numpy as np

from fmlearn._kernels._jit import jit
from fmlearn._kernels.sgd import prefetch_row
from fmlearn._kernels.updates import bias_step, by_code, coord_step, typed_args


@jit(inline="always")
def class_scores(indptr, indices, data, row, w0, table, k, n_classes, s, scores):
    """Every class's FM score of row ``row`` into ``scores`` (C,).

    Leaves the per-class factor sums ``s[c * k + f] = sum_i v_icf x_i`` in ``s`` (C * k,),
    which the gradient needs; both are overwritten.
    """
    ck = n_classes * k
    for j in range(ck):
        s[j] = 0.0
    for c in range(n_classes):
        scores[c] = w0[c]
    for p in range(indptr[row], indptr[row + 1]):
        i = indices[p]
        x = data[p]
        for c in range(n_classes):
            squares = 0.0
            for f in range(c * k, c * k + k):
                vx = table[i, f] * x
                s[f] += vx
                squares += vx * vx
            scores[c] += table[i, ck + c] * x - 0.5 * squares
    for c in range(n_classes):
        pair = 0.0
        for f in range(c * k, c * k + k):
            pair += s[f] * s[f]
        scores[c] += 0.5 * pair


@jit(inline="always")
def softmax_loss_gradient(scores, target, weight, g):
    """Weighted ``-log softmax(scores)[target]``; ``g[c] = weight * (p_c - [c == target])``."""
    top = scores[0]
    for c in range(1, scores.shape[0]):
        top = max(top, scores[c])
    z = 0.0
    for c in range(scores.shape[0]):
        e = math.exp(scores[c] - top)
        g[c] = e
        z += e
    for c in range(scores.shape[0]):
        g[c] = weight * (g[c] / z - (1.0 if c == target else 0.0))
    return weight * (top + math.log(z) - scores[target])


@jit
def predict(indptr, indices, data, w0, table, k, out):
    """Write every row's class scores into ``out`` (float64, (n_rows, C)).

    As :func:`fmlearn._kernels.fm.predict`: callers pass a slice ``indptr[a : b + 1]`` and
    ``out[a:b]`` from each thread.
    """
    n_classes = out.shape[1]
    s = np.empty(n_classes * k, dtype=np.float64)
    for row in range(out.shape[0]):
        class_scores(indptr, indices, data, row, w0, table, k, n_classes, s, out[row])


def _make_epoch(OPT):
    """The SGD epoch kernel for optimizer code ``OPT`` (see :mod:`fmlearn._kernels.updates`),
    a closure over the int as numba's cache wants."""

    @jit
    def sgd_epoch(
        indptr, indices, data, y, sample_weight, order, w0, w0_state, table, k, hp,
        fit_intercept, fit_linear, reg_scale,
    ):
        """One pass over ``order``; see :func:`sgd_epoch` (the dispatcher)."""
        n_classes = w0.shape[0]
        ck = n_classes * k
        n_param = ck + n_classes  # the solver state of column j is at n_param (1 + s) + j
        T = table.dtype.type
        lr = hp[0]
        lr_, l1_w, l2_w, l2_V = typed_args(T, hp)
        zero = T(0.0)
        s = np.empty(ck, dtype=table.dtype)
        scores = np.empty(n_classes, dtype=np.float64)
        g = np.empty(n_classes, dtype=np.float64)
        g_col = np.empty(ck, dtype=table.dtype)  # class c's gradient, repeated over its k columns
        total = 0.0
        stop = order.shape[0]
        for t in range(stop):
            prefetch_row(indptr, indices, data, y, sample_weight, order, t, stop, table)
            row = order[t]
            class_scores(indptr, indices, data, row, w0, table, k, n_classes, s, scores)
            total += softmax_loss_gradient(scores, int(y[row]), sample_weight[row], g)
            for c in range(n_classes):
                if fit_intercept:
                    bias_step(w0, w0_state, c, OPT, g[c], lr)
                for f in range(c * k, c * k + k):
                    g_col[f] = T(g[c])
            for p in range(indptr[row], indptr[row + 1]):
                i = indices[p]
                x = T(data[p])
                sc = T(reg_scale[i])
                l2_Vi = l2_V * sc
                if fit_linear:
                    for c in range(n_classes):
                        coord_step(table, i, ck + c, n_param, OPT, T(g[c]) * x, lr_, l1_w,
                                   l2_w * sc)
                # All classes' factors in one flat loop over C * k contiguous columns; OPT is a
                # literal, so the loop is branch-free and vectorizes.
                for f in range(ck):
                    v = table[i, f]
                    coord_step(table, i, f, n_param, OPT, g_col[f] * x * (s[f] - v * x), lr_,
                               zero, l2_Vi)
        return total

    return sgd_epoch


_epoch = by_code(_make_epoch)


def sgd_epoch(
    indptr, indices, data, y, sample_weight, order, w0, w0_state, table, k,
    code, hp, fit_intercept, fit_linear, reg_scale=None,
):
    """One pass over ``order`` (int64 row ids) minimizing the multinomial log loss.

    Returns the sum of weighted losses, each taken before its row's update. As
    :func:`fmlearn._kernels.sgd.sgd_epoch` otherwise (optimizer ``code``, ``hp``): ``w0`` (C,)
    and ``table`` are updated in place, and so are the solver state of the biases,
    ``w0_state`` (``[state 0 of each class | state 1 of each]``, of ``w0``'s dtype), and the
    table's state columns (``n_param = C (k + 1)`` per state value); L2 penalties apply to the
    coordinates a row touches, feature ``j``'s times ``reg_scale[j]`` (None: 1).
    """
    if reg_scale is None:
        reg_scale = np.ones(table.shape[0], dtype=table.dtype)
    return _epoch(code)(
        indptr, indices, data, y, sample_weight, order, w0, w0_state, table, k, hp,
        fit_intercept, fit_linear, np.ascontiguousarray(reg_scale, table.dtype),
    )
