"""Field-aware factorization machine (Juan et al. 2016): prediction and SGD/AdaGrad epochs.

``y(x) = w0 + sum_i w_i x_i + sum_{a<b} <v_{i_a, f(i_b)}, v_{i_b, f(i_a)}> x_a x_b``: every
feature has one latent vector per field and uses, with each partner, the vector of the
partner's field. Cost O(k * nnz^2) per row, as the model demands.

Table layout (see :mod:`fmlearn._kernels.fm`): row ``i`` is
``[v_{i,0} (k) | v_{i,1} (k) | ... | v_{i,n_fields-1} (k) | w_i | AdaGrad sums, same order]``
so that the ``n_fields * k + 1`` parameters of a feature are one contiguous burst (libffm's
layout, plus the linear term and the accumulators). ``fields`` int32 (n_features,) gives each
feature's field.
"""


from fmlearn._kernels._jit import jit
from fmlearn._kernels.losses import row_loss_gradient
from fmlearn._kernels.sgd import bias_step, coord_step, prefetch_row


@jit(inline="always")
def ffm_row(indptr, indices, data, row, w0, table, k, fields, wcol):
    """FFM prediction for one row (float64); ``wcol = n_fields * k`` is the column of w."""
    start, stop = indptr[row], indptr[row + 1]
    linear = 0.0
    pair = 0.0
    for a in range(start, stop):
        i = indices[a]
        xa = data[a]
        fa = fields[i] * k
        linear += table[i, wcol] * xa
        for b in range(a + 1, stop):
            j = indices[b]
            fb = fields[j] * k
            dot = 0.0
            for f in range(k):
                dot += table[i, fb + f] * table[j, fa + f]
            pair += dot * xa * data[b]
    return w0[0] + linear + pair


@jit
def predict(indptr, indices, data, w0, table, k, fields, wcol, out):
    """Write the FFM prediction of every row into ``out`` (float64, (n_rows,)).

    Parallelize by row blocks (an ``indptr`` slice and ``out[a:b]``), as for FM.
    """
    for row in range(out.shape[0]):
        out[row] = ffm_row(indptr, indices, data, row, w0, table, k, fields, wcol)


@jit
def sgd_epoch(
    indptr, indices, data, y, sample_weight, order, w0, acc_w0, table, k, fields, wcol,
    loss, lr, reg_w, reg_V, adaptive, fit_intercept, fit_linear,
):
    """One pass over ``order``; returns the sum of weighted losses (before each update).

    Same contract as :func:`fmlearn._kernels.sgd.sgd_epoch`. As in libffm, each pair updates
    both of its latent vectors at once, and the L2 penalty applies per pair occurrence.
    AdaGrad sums live ``wcol + 1`` columns after their parameter.
    """
    T = table.dtype.type
    lr_, reg_w_, reg_V_ = T(lr), T(reg_w), T(reg_V)
    offset = wcol + 1
    total = 0.0
    stop = order.shape[0]
    for t in range(stop):
        prefetch_row(indptr, indices, data, y, sample_weight, order, t, stop, table)
        row = order[t]
        pred = ffm_row(indptr, indices, data, row, w0, table, k, fields, wcol)
        row_loss, g = row_loss_gradient(loss, y, sample_weight, row, pred)
        total += row_loss
        if fit_intercept:
            bias_step(w0, acc_w0, g, lr, adaptive)
        gT = T(g)
        start, end = indptr[row], indptr[row + 1]
        for a in range(start, end):
            i = indices[a]
            xa = T(data[a])
            fa = fields[i] * k
            if fit_linear:
                coord_step(table, i, wcol, offset, gT * xa + reg_w_ * table[i, wcol], lr_, adaptive)
            for b in range(a + 1, end):
                j = indices[b]
                fb = fields[j] * k
                coef = gT * xa * T(data[b])
                for f in range(k):
                    va = table[i, fb + f]
                    vb = table[j, fa + f]
                    coord_step(table, i, fb + f, offset, coef * vb + reg_V_ * va, lr_, adaptive)
                    coord_step(table, j, fa + f, offset, coef * va + reg_V_ * vb, lr_, adaptive)
    return total
