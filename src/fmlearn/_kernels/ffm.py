"""Field-aware factorization machine (Juan et al. 2016): prediction and SGD-type epochs.

``y(x) = w0 + sum_i w_i x_i + sum_{a<b} <v_{i_a, f(i_b)}, v_{i_b, f(i_a)}> x_a x_b``: every
feature has one latent vector per field and uses, with each partner, the vector of the
partner's field. Cost O(k * nnz^2) per row, as the model demands.

Table layout (see :mod:`fmlearn._kernels.fm`): row ``i`` is
``[v_{i,0} (k) | v_{i,1} (k) | ... | v_{i,n_fields-1} (k) | w_i | solver state, same order]``
so that the ``n_fields * k + 1`` parameters of a feature are one contiguous burst (libffm's
layout, plus the linear term and the optimizer's state: AdaGrad's sums, FTRL's ``z`` and
``n``; see :mod:`fmlearn._kernels.updates`). ``fields`` int32 (n_features,) gives each
feature's field.

Speed. Nearly all the time goes into the pair loop, which touches two short vectors per pair.
These made it 4-5x faster than a plain numba loop over a runtime ``k``:

- The pair operations are LLVM intrinsics on explicit short vectors (``_vdot``, and
  :func:`fmlearn._kernels.updates._vpair` for the update rules):
  one load, one multiply, one store per vector. A runtime ``k`` of 4 left LLVM's loop
  vectorizer with a trip count below its vector width (scalar code), and with a literal ``k``
  it vectorized across *pairs* with gathers instead. Explicit vector types stop both.
- The kernels are built per number of factors (``epoch_kernel(k, code)``, per optimizer code
  too): a literal ``k`` in
  :data:`SPECIALIZED_FACTORS` gives one vector per latent vector, and both vectors of a pair
  (and their AdaGrad sums) are updated as one vector of ``2k``. Other ``k`` run the same code on
  chunks of :data:`CHUNK` plus a scalar tail.
- Nothing in the row loop touches reference counts. numba increments and decrements the
  (atomic) reference count of arrays handed to a helper unless it can prove the pair balanced;
  the old prefetch and bias helpers (inlined, with branches) cost about 20 locked instructions
  per row, a fifth of the epoch. The row loop therefore calls only intrinsics, scalar
  functions and ``_pair_sum`` (whose counts numba prunes: after changing it, check that
  ``NRT_incref`` stays out of the loops in ``inspect_llvm``). Elements are read and written
  through unchecked intrinsics (``_ld``/``_st``; ``_tld``/``_tst`` in the table): a signed
  index made numba add a negative-index fix-up to every access, which also blocked
  vectorization.

- float32 AdaGrad steps multiply by the processor's reciprocal square root estimate
  (:func:`fmlearn._kernels.intrinsics._vdiv_sqrt`, x86 with AVX; libffm's ``_mm_rsqrt_ps``)
  instead of dividing by an exact square root that LLVM refines with a Newton step: 15% of the
  epoch for a step size that SGD does not need to 24 bits.

Prefetching also asks for the last cache line of each coming row's index and value slices (a
row of 10 entries straddles two lines more often than not), not only the first.

Threads. Hogwild threads (the solver's ``n_jobs``) all update the same table. Every row updates
the vectors of a feature of each of its fields, so with small fields (Frappe's ``weekday``,
``weather``, ...) both threads write the same few table rows at every row, and their cache lines
travel between the cores all the time: two threads took twice as long as one. Given ``hot``
(:func:`fmlearn._kernels.hogwild.hot_features`: the features in at least 1/64 of the rows),
each thread trains private copies of those rows and of the bias, and every
:data:`~fmlearn._kernels.hogwild.MERGE_EVERY` rows adds its changes to the table under a lock,
taking in the other threads' at the same time (a bounded delay, as in asynchronous SGD; the
machinery is shared with the FM epoch in :mod:`fmlearn._kernels.hogwild`). On Frappe this made
two threads 1.5x faster than one, with the same test log loss; one thread (``hot=None``) is
unchanged. Table entries are addressed by *element address* (byte address / item size) so that
the private copies and the table take the same code path.
"""

import numpy as np
from numba import types
from numba.extending import intrinsic

from fmlearn._kernels._jit import jit
from fmlearn._kernels.hogwild import (
    MERGE_EVERY,
    bias_buffer,
    bias_step_buffered,
    final_merge,
    hot_arguments,
    hot_copies,
    try_merge,
)
from fmlearn._kernels.intrinsics import (
    _addr_ptr,
    _align,
    _eaddr,
    _hsum,
    _ints,
    _is_c_array,
    _ld,
    _st,
    _tld,
    _width,
)
from fmlearn._kernels.losses import loss_gradient, loss_value
from fmlearn._kernels.prefetch import prefetch
from fmlearn._kernels.sgd import PREFETCH_DISTANCE, reg_scale_arg
from fmlearn._kernels.updates import _vpair, addr_step, typed_args

# Numbers of factors with their own compiled kernels (on first use; each costs a few seconds of
# compilation once, then comes from numba's cache). Others share the chunked generic kernels.
SPECIALIZED_FACTORS = (4, 8, 16)
# Vector width of the generic kernels: 4 floats (SSE), the libffm/xLearn alignment.
CHUNK = 4

# ------------------------------------------------------------------------------ intrinsics
@intrinsic
def _vdot(typingctx, table, p, q, width):
    """``sum_f T[p + f] * T[q + f]`` over ``f < width`` (a power of 2).

    ``p``, ``q``: element addresses of values of ``table``'s dtype ``T``.
    """
    w = _width(width)
    if not (_is_c_array(table) and isinstance(table.dtype, types.Float) and _ints(p, q)
            and w is not None and w > 0 and w & (w - 1) == 0):
        return None

    def codegen(context, builder, sig, args):
        aryty, pty, qty, _ = sig.args
        align = _align(context, aryty)
        a = builder.load(_addr_ptr(context, builder, aryty, args[1], pty, w), align=align)
        b = builder.load(_addr_ptr(context, builder, aryty, args[2], qty, w), align=align)
        return _hsum(builder, builder.fmul(a, b), w)

    return table.dtype(table, p, q, width), codegen


# ------------------------------------------------------------------------------ kernels
@jit(inline="always")
def _pair_sum(n, k, table, fo, base, xs, K, W):
    """``sum_{a<b} <v_a, v_b> x_a x_b`` of a row laid out by the caller, as a float64.

    ``fo[a]``, ``base[a]``, ``xs[a]``: the column offset of entry ``a``'s field, the element
    address of its table row, and its value. ``K``, ``W``: literal factors (0: generic) and
    vector width.
    """
    T = table.dtype.type
    kc = k - k % W
    total = 0.0
    for a in range(n):
        fa, ba = _ld(fo, a), _ld(base, a)
        # Two accumulators: one would chain the pairs on the adder's latency.
        acc0, acc1 = T(0.0), T(0.0)
        b = a + 1
        while b + 1 < n:
            p0, q0 = ba + _ld(fo, b), _ld(base, b) + fa
            p1, q1 = ba + _ld(fo, b + 1), _ld(base, b + 1) + fa
            if K:
                d0, d1 = _vdot(table, p0, q0, W), _vdot(table, p1, q1, W)
            else:
                d0, d1 = T(0.0), T(0.0)
                for c in range(0, kc, W):
                    d0 += _vdot(table, p0 + c, q0 + c, W)
                    d1 += _vdot(table, p1 + c, q1 + c, W)
                for f in range(kc, k):
                    d0 += _tld(table, p0 + f) * _tld(table, q0 + f)
                    d1 += _tld(table, p1 + f) * _tld(table, q1 + f)
            acc0 += d0 * _ld(xs, b)
            acc1 += d1 * _ld(xs, b + 1)
            b += 2
        if b < n:
            p0, q0 = ba + _ld(fo, b), _ld(base, b) + fa
            if K:
                d0 = _vdot(table, p0, q0, W)
            else:
                d0 = T(0.0)
                for c in range(0, kc, W):
                    d0 += _vdot(table, p0 + c, q0 + c, W)
                for f in range(kc, k):
                    d0 += _tld(table, p0 + f) * _tld(table, q0 + f)
            acc0 += d0 * _ld(xs, b)
        total += float((acc0 + acc1) * _ld(xs, a))
    return total


def _make_predict(K):
    """The prediction kernel for a literal number of factors ``K``, or generic for ``K = 0``.

    The kernels close over ints only, which numba's cache keys on: closing over a jitted
    function (e.g. a helper defined here) would give every process a new cache key.
    """
    # Generic kernels: chunks of CHUNK, then a scalar tail of k % CHUNK factors.
    W = K if K else CHUNK

    @jit
    def predict(indptr, indices, data, w0, table, k, fields, wcol, out):
        """Write the FFM prediction of every row into ``out`` (float64, (n_rows,)).

        Parallelize by row blocks (an ``indptr`` slice and ``out[a:b]``), as for FM.
        """
        T = table.dtype.type
        kk = K if K else k
        stride = table.shape[1]
        tab0 = _eaddr(table)
        longest = 0
        for row in range(out.shape[0]):
            longest = max(longest, indptr[row + 1] - indptr[row])
        # Per entry of the current row: its field's column offset, its table row's element
        # address and its value, so that a pair costs two additions.
        fo = np.empty(longest, dtype=np.int64)
        base = np.empty(longest, dtype=np.int64)
        xs = np.empty(longest, dtype=table.dtype)
        for row in range(out.shape[0]):
            start = indptr[row]
            n = indptr[row + 1] - start
            linear = 0.0
            for a in range(n):
                i = _ld(indices, start + a)
                x = T(_ld(data, start + a))
                r = tab0 + i * stride
                _st(fo, a, _ld(fields, i) * kk)
                _st(base, a, r)
                _st(xs, a, x)
                linear += float(_tld(table, r + wcol) * x)
            out[row] = w0[0] + linear + _pair_sum(n, kk, table, fo, base, xs, K, W)

    return predict


def _make_epoch(K, OPT, REG):
    """The SGD epoch kernel for a literal number of factors ``K`` (0: generic) and optimizer
    code ``OPT`` (:mod:`fmlearn._kernels.updates`), with a per-feature L2 scale if ``REG``
    (1: see :func:`fmlearn._kernels.sgd.fm_step`); closes over ints only, as
    :func:`_make_predict`."""
    W = K if K else CHUNK

    @jit
    def sgd_epoch(
        indptr, indices, data, y, sample_weight, order, w0, w0_state, table, k, fields, wcol,
        loss, hp, fit_intercept, fit_linear, hot_slot, hot_rows, lock, merge_every, reg_scale,
    ):
        """One pass over ``order``; returns the sum of weighted losses (before each update).

        See :func:`sgd_epoch` (the dispatcher) for the arguments.
        """
        T = table.dtype.type
        S0 = w0_state.dtype.type
        lr = hp[0]
        lr_, l1_w, l2_w, l2_V = typed_args(T, hp)
        zero = T(0.0)
        w0a, st0 = _eaddr(w0), _eaddr(w0_state)
        kk = K if K else k
        kc = kk - kk % W
        off = wcol + 1
        stride = table.shape[1]
        tab0 = _eaddr(table)
        line = 64 // table.itemsize
        d = PREFETCH_DISTANCE
        total = 0.0
        stop = order.shape[0]
        longest = 0
        for t in range(stop):
            row = order[t]
            longest = max(longest, indptr[row + 1] - indptr[row])
        fo = np.empty(longest, dtype=np.int64)
        base = np.empty(longest, dtype=np.int64)
        xs = np.empty(longest, dtype=table.dtype)
        scs = np.empty(longest, dtype=table.dtype)  # the entries' L2 scales
        # This thread's copies of the hot rows, and their values at the last merge.
        n_hot = hot_rows.shape[0]
        private, synced = hot_copies(table, hot_rows)
        private0 = _eaddr(private)
        # With hot rows, this thread's bias and its solver state, then their values at the last
        # merge (hogwild.bias_buffer); else the arrays themselves are updated.
        bias = bias_buffer(w0, w0_state)
        b0 = _eaddr(bias)
        since_merge = 0
        for t in range(stop):
            if n_hot:
                since_merge += 1
                # Another thread merging: go on and try again at the next row.
                if since_merge >= merge_every and try_merge(table, hot_rows, private, synced,
                                                            w0, w0_state, bias, lock):
                    since_merge = 0
            # Prefetch what the coming rows touch (as sgd.prefetch_row, written out here: see
            # the module docstring), the first and last line of their index and value slices.
            if t + 3 * d < stop:
                prefetch(indptr, _ld(order, t + 3 * d))
            if t + 2 * d < stop:
                ahead = _ld(order, t + 2 * d)
                first, last = _ld(indptr, ahead), _ld(indptr, ahead + 1) - 1
                prefetch(indices, first)
                prefetch(data, first)
                if last > first:
                    prefetch(indices, last)
                    prefetch(data, last)
                prefetch(y, ahead)
                prefetch(sample_weight, ahead)
            if t + d < stop:
                ahead = _ld(order, t + d)
                for p in range(_ld(indptr, ahead), _ld(indptr, ahead + 1)):
                    i = _ld(indices, p)
                    if n_hot and _ld(hot_slot, i) >= 0:
                        continue  # its private copy is at hand; the shared row is contended
                    s = i * stride
                    for o in range(0, stride, line):
                        prefetch(table, s + o)
                    prefetch(table, s + stride - 1)

            row = _ld(order, t)
            start = _ld(indptr, row)
            n = _ld(indptr, row + 1) - start
            linear = 0.0
            for a in range(n):
                i = _ld(indices, start + a)
                x = T(_ld(data, start + a))
                r = tab0 + i * stride
                if n_hot:
                    slot = _ld(hot_slot, i)
                    if slot >= 0:
                        r = private0 + slot * stride
                _st(fo, a, _ld(fields, i) * kk)
                _st(base, a, r)
                _st(xs, a, x)
                _st(scs, a, T(_ld(reg_scale, i * REG)))
                linear += float(_tld(table, r + wcol) * x)
            bias0 = bias[0] if n_hot else float(w0[0])
            pred = bias0 + linear + _pair_sum(n, kk, table, fo, base, xs, K, W)
            sw, target = _ld(sample_weight, row), _ld(y, row)
            total += sw * loss_value(loss, target, pred)
            g = sw * loss_gradient(loss, target, pred)
            if fit_intercept:
                bias_step_buffered(n_hot, T, S0, OPT, w0a, st0, b0, g, lr)
            gT = T(g)
            for a in range(n):
                fa, ba = _ld(fo, a), _ld(base, a)
                gx = gT * _ld(xs, a)
                sa = _ld(scs, a)
                if fit_linear:
                    c = ba + wcol
                    addr_step(T, T, T, OPT, c, c + off, off, gx, lr_, l1_w, l2_w * sa)
                l2a = l2_V * sa
                # OPT is a literal: each pair loop is one straight vector sequence.
                for b in range(a + 1, n):
                    p, q = ba + _ld(fo, b), _ld(base, b) + fa
                    coef = gx * _ld(xs, b)
                    l2b = l2_V * _ld(scs, b)
                    if K:
                        _vpair(table, OPT, p, q, off, coef, l2a, l2b, lr_, W)
                    else:
                        for c in range(0, kc, W):
                            _vpair(table, OPT, p + c, q + c, off, coef, l2a, l2b, lr_, W)
                        for f in range(kc, kk):
                            va, vb = _tld(table, p + f), _tld(table, q + f)
                            addr_step(T, T, T, OPT, p + f, p + f + off, off, coef * vb, lr_,
                                      zero, l2a)
                            addr_step(T, T, T, OPT, q + f, q + f + off, off, coef * va, lr_,
                                      zero, l2b)
        if n_hot:
            final_merge(table, hot_rows, private, synced, w0, w0_state, bias, lock)
        return total

    return sgd_epoch


_PREDICT: dict = {}
_EPOCHS: dict = {}


def _factors_key(k) -> int:
    return int(k) if int(k) in SPECIALIZED_FACTORS else 0


def predict_kernel(k: int):
    """The prediction kernel for ``k`` factors: specialized or generic. Built on first use
    (compiled on the first call, or loaded from numba's on-disk cache)."""
    key = _factors_key(k)
    kernel = _PREDICT.get(key)
    if kernel is None:
        kernel = _PREDICT.setdefault(key, _make_predict(key))
    return kernel


def epoch_kernel(k: int, code: int, scaled: bool = False):
    """The SGD epoch kernel for ``k`` factors (specialized or generic) and optimizer
    ``code``, with a per-feature L2 scale if ``scaled``; built on first use, as
    :func:`predict_kernel`."""
    key = (_factors_key(k), int(code), int(bool(scaled)))
    kernel = _EPOCHS.get(key)
    if kernel is None:
        # Threads starting their first epoch at once all get the same dispatcher.
        kernel = _EPOCHS.setdefault(key, _make_epoch(*key))
    return kernel


def predict(indptr, indices, data, w0, table, k, fields, wcol, out):
    """Write the FFM prediction of every row into ``out`` (float64, (n_rows,)).

    ``k`` factors per vector, ``wcol = n_fields * k`` the column of ``w``. Parallelize by row
    blocks (an ``indptr`` slice and ``out[a:b]``), as for FM. Releases the GIL.
    """
    predict_kernel(k)(indptr, indices, data, w0, table, k, fields, wcol, out)


def sgd_epoch(
    indptr, indices, data, y, sample_weight, order, w0, w0_state, table, k, fields, wcol,
    loss, code, hp, fit_intercept, fit_linear, hot=None, merge_every=MERGE_EVERY,
    reg_scale=None,
):
    """One pass over ``order``; returns the sum of weighted losses (before each update).

    Same contract as :func:`fmlearn._kernels.sgd.sgd_epoch` (optimizer ``code``, ``hp``, the
    bias state ``w0_state``, the per-feature L2 scale ``reg_scale``), with ``fields`` and
    ``wcol`` as in :func:`predict`; the solver
    state of column ``c`` is at ``c + (j + 1) (wcol + 1)``. As in libffm, each pair updates
    both of its latent vectors at once, and the L2 penalty applies per pair occurrence.
    Releases the GIL (Hogwild threads).

    ``hot``, for threads training the same table at once: ``(slot, rows, lock)``, ``slot`` and
    ``rows`` from :func:`fmlearn._kernels.hogwild.hot_features` and ``lock`` an int32 array of
    one zero shared by the threads. Each thread then trains its own copies of those rows and
    adds its changes to the table every ``merge_every`` rows and at the end, under the lock,
    taking in the others'. None (one thread): every update goes straight to the table.
    """
    scale, scaled = reg_scale_arg(reg_scale, table.dtype)
    return epoch_kernel(k, code, scaled)(
        indptr, indices, data, y, sample_weight, order, w0, w0_state, table, k, fields, wcol,
        loss, hp, fit_intercept, fit_linear, *hot_arguments(hot), merge_every, scale,
    )
