"""Field-weighted factorization machine (Pan et al. 2018): prediction and SGD-type epochs.

``y(x) = w0 + sum_i w_i x_i + sum_{a<b} r_{F_a F_b} <v_{i_a}, v_{i_b}> x_a x_b``: one latent
vector per feature, as in an FM, and one learned weight per pair of fields, ``r`` symmetric
of shape (n_fields, n_fields), where ``F_a = fields[i_a]``.

Per-field sums instead of a pair loop. For each field ``F`` present in a row let
``s_F = sum_{a in F} v_{i_a} x_a`` and ``c_F`` its number of entries. Then

    sum_{a<b} r_{F_a F_b} <v_a, v_b> x_a x_b
        = sum_{F<G} r_FG <s_F, s_G> + sum_F r_FF d_FF,
    d_FF = (|s_F|^2 - sum_{a in F} |v_a x_a|^2) / 2     (exactly 0 when c_F = 1),

and the gradients follow from the same sums, before any update:

    d y / d r_FG = <s_F, s_G> (F < G),  d_FF (F = G),
    d y / d v_a  = x_a (t_{F_a} - r_{F_a F_a} v_a x_a),   t_F = sum_G r_FG s_G,

with ``G = F`` left out of ``t_F`` (and nothing subtracted) when ``c_F = 1``. With ``m``
distinct fields in a row a step costs O(k * (nnz + m^2)) instead of the pair loop's
O(k * nnz^2). On one-hot data (one entry per field, ``m = nnz``) both are of the same order,
but fields with many entries (a bag of words, a multi-valued category) cost only linearly, and
the dot products ``<s_F, s_G>`` computed for the prediction are exactly the gradients of
``r``, so nothing is computed twice. Fields with one entry in the row skip the within-field
term instead of cancelling it in floating point, so the diagonal of ``r`` gets no spurious
gradient on one-hot data.

Table layout: FM's (see :mod:`fmlearn._kernels.fm`), row ``i`` is ``[v_i (k) | w_i | solver
state, same order]``. ``r`` and its solver state ``r_state`` (one (n_fields, n_fields) slice per
state value, see :mod:`fmlearn._kernels.updates`) are small separate arrays of the table's
dtype; kernels read only their upper triangle (``r[min(F, G), max(F, G)]``) and write both
triangles of ``r`` (of its state at the end of an epoch), so ``r`` stays symmetric. ``fields``
int32 (n_features,) gives each feature's field, in ``[0, n_fields)``.
"""

import numpy as np

from fmlearn._kernels._jit import jit
from fmlearn._kernels.intrinsics import _eaddr
from fmlearn._kernels.losses import row_loss_gradient
from fmlearn._kernels.sgd import prefetch_row
from fmlearn._kernels.updates import (
    addr_step_toward,
    bias_step,
    by_code,
    coord_step,
    typed_args,
)


@jit(inline="always")
def pair_weight(r, F, G):
    """``r_FG`` read from the upper triangle."""
    if F <= G:
        return r[F, G]
    return r[G, F]


@jit(inline="always")
def fwfm_row(indptr, indices, data, row, w0, table, k, fields, r, slot, present, count, s, dots):
    """FwFM prediction for one row (float64) and the number ``m`` of fields in it.

    Scratch, overwritten: ``s`` (n_fields, k) gets the per-field sums ``s_F`` in slots
    ``0..m-1`` (``present[q]`` is the field of slot ``q``, ``count[q]`` its entries), ``dots``
    (n_fields, n_fields) float64 gets ``<s_F, s_G>`` for slots ``q <= p`` (the within-field
    term ``d_FF`` on the diagonal). ``slot`` (n_fields,) must be -1 everywhere on entry; the
    fields of the row are left marked, and the caller resets them (``slot[present[:m]] = -1``).
    """
    m = 0
    linear = 0.0
    for p in range(indptr[row], indptr[row + 1]):
        i = indices[p]
        x = data[p]
        linear += table[i, k] * x
        F = fields[i]
        q = slot[F]
        if q < 0:
            q = m
            slot[F] = q
            present[q] = F
            count[q] = 0
            dots[q, q] = 0.0  # collects sum |v_a x_a|^2 of the field until the pair pass
            for f in range(k):
                s[q, f] = 0.0
            m += 1
        count[q] += 1
        sq = 0.0
        for f in range(k):
            vx = table[i, f] * x
            s[q, f] += vx
            sq += vx * vx
        dots[q, q] += sq
    pair = 0.0
    for q in range(m):
        Fq = present[q]
        own = 0.0
        if count[q] > 1:
            for f in range(k):
                own += s[q, f] * s[q, f]
            own = 0.5 * (own - dots[q, q])
        dots[q, q] = own
        pair += pair_weight(r, Fq, Fq) * own
        for p in range(q + 1, m):
            d = 0.0
            for f in range(k):
                d += s[q, f] * s[p, f]
            dots[q, p] = d
            pair += pair_weight(r, Fq, present[p]) * d
    return w0[0] + linear + pair, m


@jit
def predict(indptr, indices, data, w0, table, k, fields, r, out):
    """Write the FwFM prediction of every row into ``out`` (float64, (n_rows,)).

    Parallelize by row blocks (an ``indptr`` slice and ``out[a:b]``), as for FM.
    """
    nf = r.shape[0]
    slot = np.full(nf, -1, dtype=np.int64)
    present = np.empty(nf, dtype=np.int64)
    count = np.empty(nf, dtype=np.int64)
    s = np.empty((nf, k), dtype=np.float64)
    dots = np.empty((nf, nf), dtype=np.float64)
    for row in range(out.shape[0]):
        pred, m = fwfm_row(
            indptr, indices, data, row, w0, table, k, fields, r, slot, present, count, s, dots
        )
        out[row] = pred
        for q in range(m):
            slot[present[q]] = -1


@jit
def mirror_upper(a):
    """Copy the upper triangle of the square array ``a`` onto its lower triangle."""
    n = a.shape[0]
    for F in range(n):
        for G in range(F + 1, n):
            a[G, F] = a[F, G]


def _make_epoch(OPT):
    """The SGD epoch kernel for optimizer code ``OPT`` (see :mod:`fmlearn._kernels.updates`),
    a closure over the int as numba's cache wants."""

    @jit
    def sgd_epoch(
        indptr, indices, data, y, sample_weight, order, w0, w0_state, table, k, fields, r,
        r_state, loss, hp, reg_r, r_center, fit_intercept, fit_linear, reg_scale,
    ):
        """One pass over ``order``; see :func:`sgd_epoch` (the dispatcher)."""
        T = table.dtype.type
        lr = hp[0]
        lr_, l1_w, l2_w, l2_V = typed_args(T, hp)
        reg_r_, center_r, zero = T(reg_r), T(r_center), T(0.0)
        off = k + 1
        nf = r.shape[0]
        r0, rs0 = _eaddr(r), _eaddr(r_state)
        slot = np.full(nf, -1, dtype=np.int64)
        present = np.empty(nf, dtype=np.int64)
        count = np.empty(nf, dtype=np.int64)
        s = np.empty((nf, k), dtype=table.dtype)
        t = np.empty((nf, k), dtype=table.dtype)
        dots = np.empty((nf, nf), dtype=np.float64)
        total = 0.0
        stop = order.shape[0]
        for step in range(stop):
            prefetch_row(indptr, indices, data, y, sample_weight, order, step, stop, table)
            row = order[step]
            pred, m = fwfm_row(
                indptr, indices, data, row, w0, table, k, fields, r, slot, present, count, s,
                dots,
            )
            row_loss, g = row_loss_gradient(loss, y, sample_weight, row, pred)
            total += row_loss
            if fit_intercept:
                bias_step(w0, w0_state, 0, OPT, g, lr)
            gT = T(g)
            # t_F = sum_G r_FG s_G over the row's fields (own field only if it has a pair).
            for q in range(m):
                Fq = present[q]
                for f in range(k):
                    t[q, f] = 0.0
                for p in range(m):
                    if p == q and count[q] < 2:
                        continue
                    rqp = T(pair_weight(r, Fq, present[p]))
                    for f in range(k):
                        t[q, f] += rqp * s[p, f]
            for p in range(indptr[row], indptr[row + 1]):
                i = indices[p]
                x = T(data[p])
                gx = gT * x
                sc = T(reg_scale[i])
                if fit_linear:
                    coord_step(table, i, k, off, OPT, gx, lr_, l1_w, l2_w * sc)
                l2_Vi = l2_V * sc
                F = fields[i]
                q = slot[F]
                own = T(pair_weight(r, F, F)) * x if count[q] > 1 else T(0.0)
                # OPT is a literal: the factor loop is branch-free and vectorizes.
                for f in range(k):
                    v = table[i, f]
                    coord_step(table, i, f, off, OPT, gx * (t[q, f] - own * v), lr_, zero,
                               l2_Vi)
            # Field-pair weights last: their gradients are the dots of the sums taken above.
            # Only the upper triangle is read; the lower one is mirrored (state: at the end).
            for q in range(m):
                for p in range(q, m):
                    if p == q and count[q] < 2:
                        continue
                    F, G = present[q], present[p]
                    if F > G:
                        F, G = G, F
                    e = F * nf + G
                    addr_step_toward(T, T, T, OPT, r0 + e, rs0 + e, nf * nf,
                                     gT * T(dots[q, p]), lr_, zero, reg_r_, center_r)
                    r[G, F] = r[F, G]
            for q in range(m):
                slot[present[q]] = -1
        mirror_upper(r)
        for j in range(r_state.shape[0]):
            mirror_upper(r_state[j])
        return total

    return sgd_epoch


_epoch = by_code(_make_epoch)


def sgd_epoch(
    indptr, indices, data, y, sample_weight, order, w0, w0_state, table, k, fields, r, r_state,
    loss, code, hp, reg_r, fit_intercept, fit_linear, reg_scale=None, r_center=1.0,
):
    """One pass over ``order``; returns the sum of weighted losses (before each update).

    Same contract as :func:`fmlearn._kernels.sgd.sgd_epoch` (optimizer ``code``, ``hp``, the
    bias state ``w0_state``, the per-feature L2 scale ``reg_scale`` of ``w`` and ``V``), plus
    the field-pair weights ``r`` (n_fields, n_fields) and their solver state ``r_state``
    (n_states, n_fields, n_fields) of ``r``'s dtype, at least one
    (ignored by plain SGD), updated in place. Every step is an exact gradient step: all
    gradients of a row are taken from the parameters before its update. L2 penalties are
    lazy, as for FM: ``l2_V`` on the factors of the row's features, ``reg_r`` on the weights of
    the field pairs that have a pair of entries in the row, towards ``r_center`` (penalty
    ``reg_r / 2 (r_FG - r_center)^2``; FTRL's state of ``r`` is that of ``r - r_center``, see
    :func:`fmlearn._kernels.updates.addr_step_toward`). ``r_center = 1`` pulls towards a plain
    FM; 0 is the penalty of model files written before it.

    Hogwild: every row updates ``r``, so threads race on it (as on ``w0``); a lost update on
    a few dozen heavily updated coordinates is harmless. Each call ends by mirroring the upper
    triangles of ``r`` and its state, so when the last thread returns ``r`` is exactly
    symmetric.
    """
    if reg_scale is None:
        reg_scale = np.ones(table.shape[0], dtype=table.dtype)
    return _epoch(code)(
        indptr, indices, data, y, sample_weight, order, w0, w0_state, table, k, fields, r,
        r_state, loss, hp, reg_r, r_center, fit_intercept, fit_linear,
        np.ascontiguousarray(reg_scale, dtype=table.dtype),
    )
