"""Stochastic gradient epochs (plain SGD and AdaGrad) for the second-order FM.

The kernel visits rows in the given order, so one call is deterministic. Parallel training
(Hogwild, Recht et al. 2011) runs this same kernel from several threads on disjoint chunks of
the shuffled order, all updating the shared parameters without locks: sparse rows rarely touch
the same feature at once, so races are rare and benign.

Parameters live in one table (see :mod:`fmlearn._kernels.fm`): ``table[i, :k]`` = v_i,
``table[i, k]`` = w_i and, for AdaGrad, ``table[i, k+1 : 2k+1]`` the factors' squared-gradient
sums and ``table[i, 2k+1]`` the linear weight's, so one feature's update touches one
contiguous row.

Speed. A row costs two passes over its features (the factor sums, then the updates), each a
few vector operations per feature, plus the prefetching of the rows to come. These made the
kernel 3-5x faster than plain numba loops (900k rows of 20 features, k = 16, float32: 1.7M to
8.7M rows/s with SGD, 1.5M to 5.8M with AdaGrad, one thread):

- Kernels per number of factors (:func:`epoch_kernel`): for ``k`` in
  :data:`SPECIALIZED_FACTORS` every per-feature operation is one explicit LLVM vector of
  ``k`` lanes (:func:`fmlearn._kernels.fm.entry_sums`, :func:`factor_step`), 1.4-1.8x faster
  than the generic kernel that other ``k`` share (vectors of 16, 8 and 4 lanes, then
  scalars). LLVM's own vectorization of runtime-``k`` loops came with alias checks, a remainder
  loop too long for ``k = 16`` and register spills.
- Nothing in the row loop touches reference counts. numba increments and decrements the
  (atomic) reference count of an array handed to an inlined helper that uses it under a
  branch; under Hogwild both threads did so on the same array objects, whose cache lines then
  travelled between the cores (the old row loop held 37 such calls). The helpers here take
  the dtype as the number class ``table.dtype.type`` and element addresses instead of the
  table, or use their arrays unconditionally (:func:`prefetch_row`,
  :func:`fmlearn._kernels.fm.row_sums`, :func:`fm_step`), which lets numba prune the counts.
  After changing them, check that no ``NRT_incref``/``NRT_decref`` call is left inside the
  loop of ``epoch_kernel(k).inspect_llvm()`` (with ``NUMBA_CACHE_DIR`` set to a fresh
  directory: code loaded from the cache cannot be inspected).
- Elements are read and written through unchecked intrinsics (``_ld``, ``_tld``/``_tst``, see
  :mod:`fmlearn._kernels.intrinsics`): numba's indexing adds a negative-index fix-up to each
  signed index.
- Prefetching asks for the first and last (and, for rows longer than a cache line, the middle)
  lines of each coming table row. The old ``range(0, stride, line)`` per feature divided by
  the line length every time: 20% of an SGD epoch.
- float32 AdaGrad steps of the factors multiply by the processor's reciprocal square root
  estimate (x86 with AVX; :func:`fmlearn._kernels.intrinsics._vdiv_sqrt`) instead of dividing
  by an exact square root: 7% of the AdaGrad epoch, for a step size good to 12 bits. The bias
  and the linear weights, scalars, keep the exact step.

Tried and dropped: accumulating two features at a time into the factor sums (slower); masked
vector loads and stores for the generic kernel's tail (2x slower, presumably because a masked
store of the sums does not forward to the next feature's masked load); other prefetch
distances (within noise).

Two threads run 1.3-1.7x one. What is left is memory bandwidth (with uniform features every
row touches 40-60 uncached lines) and, on skewed data, the frequent features and the bias,
which both threads write at every row: with a private table per thread two threads ran 2x one
on Zipf-distributed features, 1.34x with the shared one (FFM's per-thread copies of hot rows,
:func:`fmlearn._kernels.ffm.hot_features`, address the same).
"""

import math

import numpy as np
from numba import types
from numba.extending import intrinsic

from fmlearn._kernels._jit import jit
from fmlearn._kernels.fm import row_sums
from fmlearn._kernels.intrinsics import (
    _addr_ptr,
    _align,
    _eaddr,
    _elt_type,
    _ints,
    _is_float_carrier,
    _ld,
    _splat,
    _tld,
    _tst,
    _vdiv_sqrt,
    _width,
)
from fmlearn._kernels.losses import loss_gradient, loss_value
from fmlearn._kernels.prefetch import prefetch

# Rows ahead whose parameter rows are prefetched; their indices are fetched twice as far ahead.
PREFETCH_DISTANCE = 4
# Numbers of factors with their own compiled epoch kernel (each costs about a second of
# compilation on first use, then comes from numba's cache); powers of 2. Others share the
# generic kernel.
SPECIALIZED_FACTORS = (4, 8, 16, 32)


@jit(inline="always")
def prefetch_row(indptr, indices, data, y, sample_weight, order, t, stop, table):
    """Start loading what row ``order[t + D]`` will touch.

    Rows come in shuffled order, so everything about a row is a random read: its ``indptr``
    entry (fetched 3D ahead), the first and last line of its index/value slice, its target
    and weight (2D ahead), and the table rows of its features (D ahead, once its indices have
    arrived). Near the end of ``order`` the last row is fetched again: the arrays are then used
    unconditionally, so numba keeps their reference counts out of the caller's loop.
    """
    d = PREFETCH_DISTANCE
    end = stop - 1
    prefetch(indptr, _ld(order, min(t + 3 * d, end)))
    row = _ld(order, min(t + 2 * d, end))
    first = _ld(indptr, row)
    last = max(_ld(indptr, row + 1) - 1, first)
    prefetch(indices, first)
    prefetch(data, first)
    prefetch(indices, last)
    prefetch(data, last)
    prefetch(y, row)
    prefetch(sample_weight, row)
    row = _ld(order, min(t + d, end))
    stride = table.shape[1]
    line = 64 // table.itemsize
    for p in range(_ld(indptr, row), _ld(indptr, row + 1)):
        start = _ld(indices, p) * stride
        prefetch(table, start)
        prefetch(table, start + stride - 1)
        # Middle lines of long rows; a while loop, as a range would divide by ``line``.
        off = line
        while off < stride - 1:
            prefetch(table, start + off)
            off += line


# bias_step and coord_step serve the FwFM, HOFM and multinomial epochs, which index the table.
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
def addr_step(T, c, state_offset, grad, lr, adaptive):
    """:func:`coord_step` of the element at element address ``c`` (``T``: its number class)."""
    if adaptive:
        a = _tld(T, c + state_offset) + grad * grad
        _tst(T, c + state_offset, a)
        _tst(T, c, _tld(T, c) - lr * grad / math.sqrt(a))
    else:
        _tst(T, c, _tld(T, c) - lr * grad)


@intrinsic
def _vstep(typingctx, T, r, s, x, gx, reg, lr, state_offset, adaptive, width):
    """One SGD or AdaGrad step of the factors ``v = S[r : r + w]`` of an entry of value ``x``.

    ``grad = gx (S[s : s + w] - v x) + reg v`` (``S[s:]`` the row's factor sums, ``gx`` the
    prediction gradient times ``x``); plain SGD (``adaptive`` a literal False) does
    ``v -= lr grad``; AdaGrad adds ``grad^2`` to the sums ``state_offset`` elements after
    ``v`` and divides the step by their square root (:func:`_vdiv_sqrt`). Element addresses
    of ``T``'s dtype; ``w`` the literal ``width``.
    """
    w = _width(width)
    if not (_is_float_carrier(T) and _ints(r, s, state_offset) and w
            and isinstance(adaptive, types.BooleanLiteral)):
        return None
    use_state = adaptive.literal_value

    def codegen(context, builder, sig, args):
        cty, rty, sty, xty, gty, regty, lrty, offty, _, _ = sig.args
        dtype = _elt_type(cty)
        align = _align(context, cty)

        def scalar(i, ty):
            return _splat(builder, context.cast(builder, args[i], ty, dtype), w)

        v_ptr = _addr_ptr(context, builder, cty, args[1], rty, w)
        v = builder.load(v_ptr, align=align)
        sums = builder.load(_addr_ptr(context, builder, cty, args[2], sty, w), align=align)
        x, gx, reg, lr = scalar(3, xty), scalar(4, gty), scalar(5, regty), scalar(6, lrty)
        grad = builder.fadd(builder.fmul(gx, builder.fsub(sums, builder.fmul(v, x))),
                            builder.fmul(reg, v))
        step = builder.fmul(lr, grad)
        if use_state:
            r = context.cast(builder, args[1], rty, types.intp)
            off = context.cast(builder, args[7], offty, types.intp)
            a_ptr = _addr_ptr(context, builder, cty, builder.add(r, off), types.intp, w)
            acc = builder.fadd(builder.load(a_ptr, align=align), builder.fmul(grad, grad))
            builder.store(acc, a_ptr, align=align)
            step = _vdiv_sqrt(context, builder, step, acc)
        builder.store(builder.fsub(v, step), v_ptr, align=align)
        return context.get_dummy_value()

    sig = types.void(T, r, s, x, gx, reg, lr, state_offset, adaptive, width)
    return sig, codegen


@jit(inline="always")
def factor_step(T, K, k, r, s, x, gx, reg, lr, state_offset, adaptive):
    """:func:`_vstep` over the ``k`` factors: one vector for a literal ``K``, else (``K`` 0)
    vectors of 16, 8, 4 and scalars. ``adaptive`` must be a literal."""
    if K:
        _vstep(T, r, s, x, gx, reg, lr, state_offset, adaptive, K)
        return
    c = 0
    while c + 16 <= k:
        _vstep(T, r + c, s + c, x, gx, reg, lr, state_offset, adaptive, 16)
        c += 16
    if c + 8 <= k:
        _vstep(T, r + c, s + c, x, gx, reg, lr, state_offset, adaptive, 8)
        c += 8
    if c + 4 <= k:
        _vstep(T, r + c, s + c, x, gx, reg, lr, state_offset, adaptive, 4)
        c += 4
    while c < k:
        v = _tld(T, r + c)
        addr_step(T, r + c, state_offset, gx * (_tld(T, s + c) - v * x) + reg * v, lr,
                  adaptive)
        c += 1


@jit(inline="always")
def fm_step(indices, data, start, stop, T, K, k, tab0, stride, sums, gT, lr_, reg_w_, reg_V_,
            adaptive, fit_linear):
    """Apply the prediction gradient ``gT`` to the ``w`` and ``V`` of entries ``start:stop``.

    ``sums`` holds the row's factor sums from :func:`fmlearn._kernels.fm.row_sums` (same
    ``T``, ``K``, ``k``, ``tab0``, ``stride``); the rates are in the table's dtype. Shared by
    every FM task's epoch (regression, binary, ordinal).
    """
    s = _eaddr(sums)
    off = k + 1  # AdaGrad sums: k + 1 columns after their parameters
    for p in range(start, stop):
        r = tab0 + _ld(indices, p) * stride
        x = T(_ld(data, p))
        gx = gT * x
        if fit_linear:
            addr_step(T, r + k, off, gx + reg_w_ * _tld(T, r + k), lr_, adaptive)
        # A literal ``adaptive`` per branch: each step is one straight vector sequence.
        if adaptive:
            factor_step(T, K, k, r, s, x, gx, reg_V_, lr_, off, True)
        else:
            factor_step(T, K, k, r, s, x, gx, reg_V_, lr_, off, False)


def _make_epoch(K):
    """The epoch kernel for a literal number of factors ``K``, or the generic one (``K = 0``).

    It closes over an int only, which numba's cache keys on (a closure over a jitted function
    would give every process a new cache key).
    """

    @jit
    def sgd_epoch(
        indptr, indices, data, y, sample_weight, order, w0, acc_w0, table, k,
        loss, lr, reg_w, reg_V, adaptive, fit_intercept, fit_linear,
    ):
        """One pass over ``order``; see :func:`fmlearn._kernels.sgd.sgd_epoch`."""
        # The update loops run in the parameters' dtype: float32 halves memory traffic and
        # doubles SIMD width; only the per-row loss and gradient are float64.
        T = table.dtype.type
        kk = K if K else k
        lr_, reg_w_, reg_V_ = T(lr), T(reg_w), T(reg_V)
        stride = table.shape[1]
        tab0 = _eaddr(table)
        sums = np.empty(2 * kk, dtype=table.dtype)
        total = 0.0
        stop = order.shape[0]
        for t in range(stop):
            prefetch_row(indptr, indices, data, y, sample_weight, order, t, stop, table)
            row = _ld(order, t)
            start, end = _ld(indptr, row), _ld(indptr, row + 1)
            pred = float(w0[0]) + row_sums(indices, data, start, end, T, K, kk, tab0, stride,
                                           sums)
            sw, target = _ld(sample_weight, row), _ld(y, row)
            total += sw * loss_value(loss, target, pred)
            g = sw * loss_gradient(loss, target, pred)
            if fit_intercept:  # written out: bias_step's branches would bring refcounts back
                if adaptive:
                    acc_w0[0] += g * g
                    w0[0] -= lr * g / math.sqrt(acc_w0[0])
                else:
                    w0[0] -= lr * g
            fm_step(indices, data, start, end, T, K, kk, tab0, stride, sums, T(g), lr_, reg_w_,
                    reg_V_, adaptive, fit_linear)
        return total

    return sgd_epoch


_EPOCHS: dict = {}


def epoch_kernel(k: int):
    """The jitted epoch for ``k`` factors: its own for ``k`` in :data:`SPECIALIZED_FACTORS`,
    else the generic one. Built on first use (compiled on its first call, or loaded from
    numba's on-disk cache)."""
    key = int(k) if int(k) in SPECIALIZED_FACTORS else 0
    kernel = _EPOCHS.get(key)
    if kernel is None:
        # Threads starting their first epoch at once all get the same dispatcher.
        kernel = _EPOCHS.setdefault(key, _make_epoch(key))
    return kernel


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
    validation). Releases the GIL (Hogwild threads).
    """
    return epoch_kernel(k)(
        indptr, indices, data, y, sample_weight, order, w0, acc_w0, table, k,
        loss, lr, reg_w, reg_V, adaptive, fit_intercept, fit_linear,
    )
