"""SGD with adaptive regularization (SGDA; Rendle, WSDM 2012) for the second-order FM.

Each training row takes a plain SGD step on the parameters, ``theta -= lr (g + lam theta)``,
with the L2 strength ``lam`` of the parameter's group (lazy: only the coordinates the row
touches). Then one validation row takes a gradient step on the strengths themselves: the
validation loss is taken at the look-ahead parameters

    theta'(lam) = theta - lr (g_theta + lam theta),     d theta' / d lam = -lr theta,

where ``g_theta`` is the loss gradient of the parameter's latest training step (kept in the
table's state columns, since the validation row's features were mostly not in the training
row), and ``lam -= reg_lr * dl(y', y_hat(x' | theta'(lam))) / d lam``, kept >= 0. By the chain
rule, with ``G = dl / d y_hat'`` and ``S'_f = sum_i v'_if x_i`` over the validation row:

    dl / d lam_w[g]    = G * sum_{i in g} x_i (-lr w_i)
    dl / d lam_V[g, f] = G * sum_{i in g} -lr v_if x_i (S'_f - v'_if x_i)

Strengths are per group (``groups[i]`` of each feature): ``reg_w[g]`` for the linear weights,
``reg_V[g, f]`` per group and factor. The bias is not regularized (as in every fmlearn
solver).

Table row ``i``: ``[v_i (k) | w_i | last loss gradient of v_i (k) | of w_i]``. Plain loops
(no explicit vectors): one thread, arrays in, arrays out, no validation.
"""

import numpy as np

from fmlearn._kernels._jit import jit
from fmlearn._kernels.losses import loss_gradient, loss_value
from fmlearn._kernels.updates import SGD, step


@jit(inline="always")
def _sgd(C, w, g, lr, lam):
    """Plain SGD's rule (:func:`fmlearn._kernels.updates.step`) in number class ``C``."""
    return step(C, SGD, C(w), C(0.0), C(0.0), C(g), C(lr), C(0.0), C(lam))[0]


@jit(inline="always")
def _predict(indices, data, start, end, w0, table, k, off, groups, reg_w, reg_V, lr, ahead, s,
             q):
    """FM prediction of one row (float64), leaving ``s[f] = sum_i v_if x_i``. With ``ahead``,
    at the look-ahead parameters ``theta - lr (g_theta + lam theta)`` (the gradients in the
    table's state columns), which the strength step differentiates."""
    pred = float(w0[0])
    for f in range(k):
        s[f] = 0.0
        q[f] = 0.0
    for p in range(start, end):
        i = indices[p]
        x = float(data[p])
        grp = groups[i]
        w = float(table[i, k])
        if ahead:
            w = _sgd(np.float64, w, table[i, off + k], lr, reg_w[grp])
        pred += w * x
        for f in range(k):
            v = float(table[i, f])
            if ahead:
                v = _sgd(np.float64, v, table[i, off + f], lr, reg_V[grp, f])
            d = v * x
            s[f] += d
            q[f] += d * d
    for f in range(k):
        pred += 0.5 * (s[f] * s[f] - q[f])
    return pred


@jit
def sgda_epoch(
    indptr, indices, data, y, sample_weight, order,
    v_indptr, v_indices, v_data, v_y, v_sample_weight, v_order, cursor,
    w0, table, k, groups, reg_w, reg_V, loss, lr, reg_lr, fit_intercept, fit_linear, adapt,
):
    """One pass over the training rows ``order``; after each, with ``adapt``, a step on the
    strengths from validation row ``v_order[cursor[0]]`` (``cursor`` advances, cycling).

    ``w0`` (1,), ``table`` (n_features, 2 (k + 1)), ``reg_w`` (n_groups,) and ``reg_V``
    (n_groups, k) are updated in place. Returns the sum of weighted training losses, each
    taken before its row's step.
    """
    T = table.dtype.type
    off = k + 1
    n_groups = reg_w.shape[0]
    s = np.zeros(k)
    q = np.zeros(k)
    acc_w = np.zeros(n_groups)
    acc_V = np.zeros((n_groups, k))
    pending = np.zeros(n_groups, dtype=np.uint8)
    n_valid = v_order.shape[0]
    total = 0.0
    for t in range(order.shape[0]):
        # ---- parameter step on a training row
        row = order[t]
        start, end = indptr[row], indptr[row + 1]
        pred = _predict(indices, data, start, end, w0, table, k, off, groups, reg_w, reg_V,
                        lr, False, s, q)
        sw = sample_weight[row]
        total += sw * loss_value(loss, y[row], pred)
        g = sw * loss_gradient(loss, y[row], pred)
        if fit_intercept:
            w0[0] -= w0.dtype.type(lr * g)
        for p in range(start, end):
            i = indices[p]
            x = float(data[p])
            grp = groups[i]
            if fit_linear:
                gw = T(g * x)
                w = table[i, k]
                table[i, off + k] = gw
                table[i, k] = _sgd(T, w, gw, lr, reg_w[grp])
            for f in range(k):
                v = table[i, f]
                gv = T(g * x * (s[f] - float(v) * x))
                table[i, off + f] = gv
                table[i, f] = _sgd(T, v, gv, lr, reg_V[grp, f])
        if not adapt or n_valid == 0:
            continue
        # ---- regularization step on a validation row, at the look-ahead parameters
        vrow = v_order[cursor[0]]
        cursor[0] = (cursor[0] + 1) % n_valid
        start, end = v_indptr[vrow], v_indptr[vrow + 1]
        pred = _predict(v_indices, v_data, start, end, w0, table, k, off, groups, reg_w, reg_V,
                        lr, True, s, q)
        G = v_sample_weight[vrow] * loss_gradient(loss, v_y[vrow], pred)
        for p in range(start, end):
            i = v_indices[p]
            x = float(v_data[p])
            grp = groups[i]
            pending[grp] = 1
            if fit_linear:
                acc_w[grp] += x * float(table[i, k])
            for f in range(k):
                v = float(table[i, f])
                v1 = _sgd(np.float64, v, table[i, off + f], lr, reg_V[grp, f])
                acc_V[grp, f] += v * x * (s[f] - v1 * x)
        # lam -= reg_lr * G * (-lr * acc)
        reg_step = reg_lr * lr * G
        for p in range(start, end):
            grp = groups[v_indices[p]]
            if pending[grp]:
                pending[grp] = 0
                reg_w[grp] = max(reg_w[grp] + reg_step * acc_w[grp], 0.0)
                acc_w[grp] = 0.0
                for f in range(k):
                    reg_V[grp, f] = max(reg_V[grp, f] + reg_step * acc_V[grp, f], 0.0)
                    acc_V[grp, f] = 0.0
    return total
