"""Second-order factorization machine prediction in O(k * nnz) per row.

Uses Rendle's identity ``sum_{i<j} <v_i, v_j> x_i x_j
= 1/2 sum_f [(sum_i v_if x_i)^2 - sum_i v_if^2 x_i^2]``.

Array conventions for every FM kernel:

- ``indptr`` int64 (n_rows + 1,), ``indices`` int32 (nnz,), ``data`` float32/float64 (nnz,):
  a CSR matrix with in-range column indices.
- ``w0`` (1,) and ``table`` (n_features, stride) of one float dtype. Row ``i`` of the table holds
  everything about feature ``i``: ``table[i, :k]`` its factors ``v_i``, ``table[i, k]`` its
  linear weight ``w_i``, then solver state (e.g. AdaGrad accumulators). One row per feature
  means one burst of adjacent cache lines per feature a row touches, instead of one miss per
  array: on large feature spaces that is worth 1.5-4x in SGD throughput.

The SGD kernels (:mod:`fmlearn._kernels.sgd`) predict with :func:`row_sums` instead of
:func:`fm_row`: the same identity on explicit short vectors at element addresses (see
:mod:`fmlearn._kernels.intrinsics`), with no array-taking helper and no index check in the row
loop. Their sums stay in the table's dtype; the pairwise total is taken in float64.
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from fmlearn._kernels._jit import jit
from fmlearn._kernels.hogwild import entry_row
from fmlearn._kernels.intrinsics import (
    _addr_ptr,
    _align,
    _eaddr,
    _elt_type,
    _hsum,
    _ints,
    _is_float_carrier,
    _ld,
    _splat,
    _tld,
    _tst,
    _width,
)


@jit(inline="always")
def fm_row(indptr, indices, data, row, w0, table, k, s):
    """FM prediction for one row; leaves the factor sums ``sum_i v_if x_i`` in ``s``.

    ``s`` is a scratch array of shape (k,), overwritten. Returns a float64.
    """
    for f in range(k):
        s[f] = 0.0
    linear = 0.0
    squares = 0.0
    for p in range(indptr[row], indptr[row + 1]):
        i = indices[p]
        x = data[p]
        linear += table[i, k] * x
        for f in range(k):
            vx = table[i, f] * x
            s[f] += vx
            squares += vx * vx
    pair = 0.0
    for f in range(k):
        pair += s[f] * s[f]
    return w0[0] + linear + 0.5 * (pair - squares)


@jit
def predict(indptr, indices, data, w0, table, k, out):
    """Write the FM prediction of every row into ``out`` (float64, (n_rows,)).

    Rows are independent: callers parallelize by passing a slice ``indptr[a : b + 1]`` (the
    offsets stay valid into the full ``indices``/``data``) and ``out[a:b]`` from each thread.
    """
    s = np.empty(k, dtype=np.float64)
    for row in range(out.shape[0]):
        out[row] = fm_row(indptr, indices, data, row, w0, table, k, s)


@jit
def block_sums(indptr, indices, data, col0, table, k, lin, Q, sq):
    """Per row ``r`` of a relation block: ``lin[r] = sum_j w_j x_rj``, ``Q[r, f] = sum_j v_jf
    x_rj`` and ``sq[r] = sum_j sum_f (v_jf x_rj)^2``, the block's share of the FM identity.

    The block's columns are model features ``col0 ..``; ``Q`` has shape (n_block_rows, k).
    """
    for r in range(indptr.shape[0] - 1):
        acc_lin = 0.0
        acc_sq = 0.0
        for f in range(k):
            Q[r, f] = 0.0
        for p in range(indptr[r], indptr[r + 1]):
            i = col0 + indices[p]
            x = data[p]
            acc_lin += table[i, k] * x
            for f in range(k):
                vx = table[i, f] * x
                Q[r, f] += vx
                acc_sq += vx * vx
        lin[r] = acc_lin
        sq[r] = acc_sq


@jit
def predict_blocked(indptr, indices, data, w0, table, k, idx, row_offset, lin, Q, sq, start,
                    stop, out, sums, keep_sums):
    """FM prediction of rows ``start <= n < stop`` made of a main part and relation blocks.

    ``idx`` int32 (n_blocks, n_rows) gives each row's block row (shape (0, n_rows) without
    blocks); block ``b``'s rows of ``lin``, ``Q`` and ``sq`` (from :func:`block_sums`, stacked)
    start at ``row_offset[b]``. The main part's columns are the first model features.

    With ``keep_sums``, ``sums`` (k, n_rows) receives every row's factor sums
    ``sum_j v_jf x_nj`` (the coordinate solvers sweep with them); otherwise ``sums`` is a
    (k, 1) scratch column.
    """
    n_blocks = idx.shape[0]
    for n in range(start, stop):
        col = n if keep_sums else 0
        for f in range(k):
            sums[f, col] = 0.0
        linear = 0.0
        squares = 0.0
        for p in range(indptr[n], indptr[n + 1]):
            i = indices[p]
            x = data[p]
            linear += table[i, k] * x
            for f in range(k):
                vx = table[i, f] * x
                sums[f, col] += vx
                squares += vx * vx
        for b in range(n_blocks):
            r = row_offset[b] + idx[b, n]
            linear += lin[r]
            squares += sq[r]
            for f in range(k):
                sums[f, col] += Q[r, f]
        pair = 0.0
        for f in range(k):
            pair += sums[f, col] * sums[f, col]
        out[n] = w0[0] + linear + 0.5 * (pair - squares)


# ------------------------------------------------------------------------------ SGD row sums
@intrinsic
def _vsums(typingctx, T, r, x, s, q, width):
    """``S[s : s + w] += v x`` and ``S[q : q + w] += (v x)^2`` for ``v = S[r : r + w]``.

    ``r``, ``s``, ``q``: element addresses of values of ``T``'s dtype (``T`` a float array or
    number class); ``x`` a scalar; ``w`` the literal ``width``.
    """
    w = _width(width)
    if not (_is_float_carrier(T) and _ints(r, s, q) and isinstance(x, types.Float) and w):
        return None

    def codegen(context, builder, sig, args):
        cty, rty, xty, sty, qty, _ = sig.args
        align = _align(context, cty)
        s_ptr = _addr_ptr(context, builder, cty, args[3], sty, w)
        q_ptr = _addr_ptr(context, builder, cty, args[4], qty, w)
        v = builder.load(_addr_ptr(context, builder, cty, args[1], rty, w), align=align)
        vx = builder.fmul(v, _splat(builder, context.cast(builder, args[2], xty, _elt_type(cty)),
                                    w))
        builder.store(builder.fadd(builder.load(s_ptr, align=align), vx), s_ptr, align=align)
        builder.store(builder.fadd(builder.load(q_ptr, align=align), builder.fmul(vx, vx)),
                      q_ptr, align=align)
        return context.get_dummy_value()

    return types.void(T, r, x, s, q, width), codegen


@intrinsic
def _vinteraction(typingctx, T, s, q, width):
    """``sum_f S[s + f]^2 - S[q + f]`` over ``f < width`` (a literal power of 2), in float64.

    The lanes are widened to float64 first: the difference cancels most of each square.
    """
    w = _width(width)
    if not (_is_float_carrier(T) and _ints(s, q) and w and w & (w - 1) == 0):
        return None

    def codegen(context, builder, sig, args):
        cty, sty, qty, _ = sig.args
        align = _align(context, cty)
        sv = builder.load(_addr_ptr(context, builder, cty, args[1], sty, w), align=align)
        qv = builder.load(_addr_ptr(context, builder, cty, args[2], qty, w), align=align)
        if _elt_type(cty) != types.float64:
            dv = ir.VectorType(ir.DoubleType(), w)
            sv, qv = builder.fpext(sv, dv), builder.fpext(qv, dv)
        return _hsum(builder, builder.fsub(builder.fmul(sv, sv), qv), w)

    return types.float64(T, s, q, width), codegen


@jit(inline="always")
def entry_sums(T, K, k, r, x, s, q):
    """Add ``v_f x`` and ``(v_f x)^2`` of one entry (its table row at element address ``r``)
    to the row's sums at element addresses ``s`` and ``q`` (``k`` each).

    ``T`` is ``table.dtype.type``, ``x`` of that type. ``K``: the literal number of factors
    (one vector operation), or 0 for a runtime ``k`` (vectors of 16, 8, 4, then scalars).
    """
    if K:
        _vsums(T, r, x, s, q, K)
        return
    c = 0
    while c + 16 <= k:
        _vsums(T, r + c, x, s + c, q + c, 16)
        c += 16
    if c + 8 <= k:
        _vsums(T, r + c, x, s + c, q + c, 8)
        c += 8
    if c + 4 <= k:
        _vsums(T, r + c, x, s + c, q + c, 4)
        c += 4
    while c < k:
        vx = _tld(T, r + c) * x
        _tst(T, s + c, _tld(T, s + c) + vx)
        _tst(T, q + c, _tld(T, q + c) + vx * vx)
        c += 1


@jit(inline="always")
def interaction(T, K, k, s, q):
    """The pairwise part of the prediction, ``0.5 sum_f (s_f^2 - q_f)``, from the row's sums.

    ``K`` and ``k`` as in :func:`entry_sums`; ``K`` must be a power of 2.
    """
    if K:
        return 0.5 * _vinteraction(T, s, q, K)
    total = 0.0
    c = 0
    while c + 16 <= k:
        total += _vinteraction(T, s + c, q + c, 16)
        c += 16
    if c + 8 <= k:
        total += _vinteraction(T, s + c, q + c, 8)
        c += 8
    if c + 4 <= k:
        total += _vinteraction(T, s + c, q + c, 4)
        c += 4
    while c < k:
        sf = float(_tld(T, s + c))
        total += sf * sf - float(_tld(T, q + c))
        c += 1
    return 0.5 * total


@jit(inline="always")
def row_sums(indices, data, start, stop, T, K, k, tab0, stride, hot, sums):
    """``sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j`` of entries ``start:stop`` (float64).

    Leaves ``sum_i v_if x_i`` in ``sums[:k]`` (and ``sum_i (v_if x_i)^2`` in ``sums[k:]``),
    as :func:`fm_row` does in ``s``. ``tab0``: the table's element address (:func:`_eaddr`),
    ``stride`` its row length; ``hot``: where this thread keeps private copies of hot rows
    (:func:`fmlearn._kernels.hogwild.entry_row`; ``NO_HOT``: nowhere); ``sums``: a scratch
    array (2k,) of the table's dtype; ``T``, ``K``, ``k`` as in :func:`entry_sums`.

    Numba keeps the reference counts of ``indices``, ``data`` and ``sums`` out of the caller's
    loop only because they are used unconditionally here: an array used in a branch of an
    inlined helper brings back an atomic increment and decrement per call.
    """
    for f in range(2 * k):
        sums[f] = 0
    s = _eaddr(sums)
    q = s + k
    linear = 0.0
    for p in range(start, stop):
        r = entry_row(_ld(indices, p), tab0, stride, hot)
        x = T(_ld(data, p))
        linear += float(_tld(T, r + k) * x)
        entry_sums(T, K, k, r, x, s, q)
    return linear + interaction(T, K, k, s, q)
