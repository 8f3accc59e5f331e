"""Stochastic gradient epochs (SGD, AdaGrad, FTRL) for the second-order FM.

The kernel visits rows in the given order, so one call is deterministic. Parallel training
(Hogwild, Recht et al. 2011) runs this same kernel from several threads on disjoint chunks of
the shuffled order, all updating the shared parameters without locks: sparse rows rarely touch
the same feature at once, so races are rare and benign.

Parameters live in one table (see :mod:`fmlearn._kernels.fm`): ``table[i, :k]`` = v_i,
``table[i, k]`` = w_i and then the optimizer's state, each state value laid out as the
parameters (AdaGrad: ``table[i, k+1 : 2k+2]`` the squared-gradient sums; FTRL: then ``z`` and
``n``), so one feature's update touches one contiguous row. The update rules are those of
:mod:`fmlearn._kernels.updates`; the kernels are built per optimizer code as per ``k``.

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
  and the linear weights, scalars, keep the exact step (and FTRL exact square roots
  everywhere: its step is a difference of two).

Tried and dropped: accumulating two features at a time into the factor sums (slower); masked
vector loads and stores for the generic kernel's tail (2x slower, presumably because a masked
store of the sums does not forward to the next feature's masked load); other prefetch
distances (within noise).

Two threads. On skewed data both threads write the frequent features and the bias at every
row, whose cache lines then bounce between the cores: on Zipf-distributed features two threads
ran 1.3x one (2x with a private table per thread). So when the solver's threads share the table
(``hot``, from :meth:`fmlearn.models.fm.FMParams.sgd_epoch`), each keeps private copies of the hot
features' rows (those in at least 1/64 of the rows, at most 256) and of the bias and merges its
changes every 256 rows, as FFM does (:mod:`fmlearn._kernels.hogwild`). 900k rows of 20 one-hot
fields over 50,000 categories each, Zipf(1.1), k = 16, float32, through ``FMParams.sgd_epoch``:
two threads 11.4 to 13.3M rows/s with SGD, 8.5 to 10.1M with AdaGrad (1.55-1.7x one thread
instead of 1.3-1.4x), with the same holdout RMSE after 10 epochs (within 0.1%, the spread of
seeds); uniform categories have no hot features and run as before (1.5-1.7x). One thread runs
the kernel built without the hot-row code (``epoch_kernel(k, hot=False)``: numba prunes the
``if HOT`` blocks, and its machine code is the plain kernel's).

The hot kernel costs 15% per thread (one thread with hot rows: 7.1M rows/s with SGD against
8.4M), most of it in finding the private rows; :mod:`fmlearn._kernels.hogwild` tells which ways
cost more. What is left for two threads is memory bandwidth (with uniform features every row
touches 40-60 uncached lines).
"""

import numpy as np

from fmlearn._kernels._jit import jit
from fmlearn._kernels.fm import row_sums
from fmlearn._kernels.hogwild import (
    MERGE_EVERY,
    NO_HOT,
    bias_buffer,
    bias_step_buffered,
    entry_row,
    final_merge,
    hot_arguments,
    hot_copies,
    try_merge,
)
from fmlearn._kernels.intrinsics import _eaddr, _ld, _tld
from fmlearn._kernels.losses import loss_gradient, loss_value
from fmlearn._kernels.prefetch import prefetch
from fmlearn._kernels.updates import _vstep, addr_step, typed_args

# Rows ahead whose parameter rows are prefetched; their indices are fetched twice as far ahead.
PREFETCH_DISTANCE = 4
# Numbers of factors with their own compiled epoch kernel (each costs about a second of
# compilation on first use, then comes from numba's cache); powers of 2. Others share the
# generic kernel.
SPECIALIZED_FACTORS = (4, 8, 16, 32)


@jit(inline="always")
def prefetch_row(indptr, indices, data, y, sample_weight, order, t, stop, table):
    """:func:`prefetch_row_hot` for epochs without private rows (FwFM, HOFM, multinomial,
    ordinal): every parameter row is in ``table``."""
    prefetch_row_hot(indptr, indices, data, y, sample_weight, order, t, stop, table, NO_HOT)


@jit(inline="always")
def prefetch_row_hot(indptr, indices, data, y, sample_weight, order, t, stop, table, hot):
    """Start loading what row ``order[t + D]`` will touch.

    Rows come in shuffled order, so everything about a row is a random read: its ``indptr``
    entry (fetched 3D ahead), the first and last line of its index/value slice, its target
    and weight (2D ahead), and the parameter rows of its features (D ahead, once its indices
    have arrived): the table's, or for hot features this thread's private copies (``hot`` and
    ``indices`` remapped, see :func:`fmlearn._kernels.hogwild.entry_row`: the shared rows are
    contended, the private ones at hand). Near the end of ``order`` the last row is fetched
    again: the arrays are then used unconditionally, so numba keeps their reference counts out
    of the caller's loop.
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
    tab0 = _eaddr(table)
    line = 64 // table.itemsize
    for p in range(_ld(indptr, row), _ld(indptr, row + 1)):
        # As an offset from the table's start even for a private row, outside the table: a
        # prefetch never faults. (Prefetching by element address instead, for all rows, made
        # the AdaGrad epoch 8% slower on one thread, 20% on two.)
        start = entry_row(_ld(indices, p), tab0, stride, hot) - tab0
        prefetch(table, start)
        prefetch(table, start + stride - 1)
        # Middle lines of long rows; a while loop, as a range would divide by ``line``.
        off = line
        while off < stride - 1:
            prefetch(table, start + off)
            off += line


@jit(inline="always")
def prefetch_scale(indptr, cols, order, t, stop, reg_scale):
    """Start loading the per-feature L2 scales of row ``order[t + D]``'s features (``cols``:
    the design's own indices): a random read per entry, as the table rows are, so it is
    fetched ahead with them (cost of the scaled kernel: benchmarks/l2_floor_cost.py)."""
    row = _ld(order, min(t + PREFETCH_DISTANCE, stop - 1))
    for p in range(_ld(indptr, row), _ld(indptr, row + 1)):
        prefetch(reg_scale, _ld(cols, p))


@jit(inline="always")
def factor_step(T, K, k, r, s, x, gx, l2, lr, state_offset, code):
    """:func:`~fmlearn._kernels.updates._vstep` over the ``k`` factors: one vector for a literal
    ``K``, else (``K`` 0) vectors of 16, 8, 4 and scalars. ``code`` must be a literal."""
    if K:
        _vstep(T, code, r, s, x, gx, l2, lr, state_offset, K)
        return
    c = 0
    while c + 16 <= k:
        _vstep(T, code, r + c, s + c, x, gx, l2, lr, state_offset, 16)
        c += 16
    if c + 8 <= k:
        _vstep(T, code, r + c, s + c, x, gx, l2, lr, state_offset, 8)
        c += 8
    if c + 4 <= k:
        _vstep(T, code, r + c, s + c, x, gx, l2, lr, state_offset, 4)
        c += 4
    while c < k:
        a = r + c
        addr_step(T, T, T, code, a, a + state_offset, state_offset,
                  gx * (_tld(T, s + c) - _tld(T, a) * x), lr, T(0.0), l2)
        c += 1


@jit(inline="always")
def fm_step(indices, data, start, stop, T, K, k, tab0, stride, hot, sums, gT, code, hpT,
            fit_linear, cols, reg_scale, R):
    """Apply the prediction gradient ``gT`` to the ``w`` and ``V`` of entries ``start:stop``.

    ``sums`` holds the row's factor sums from :func:`fmlearn._kernels.fm.row_sums` (same
    ``T``, ``K``, ``k``, ``tab0``, ``stride``, ``hot``); ``hpT`` the kernel's hyper-parameters
    in the table's dtype (see :mod:`fmlearn._kernels.updates`), ``code`` a literal optimizer
    code. Shared by every FM task's epoch (regression, binary, ordinal).

    ``R`` (a literal 0 or 1): with 1 the L2 strengths of feature ``j`` are multiplied by
    ``reg_scale[j]`` (``cols``: the design's own column indices, not the hot-row remap); with
    0 ``reg_scale[0]`` (1) is read instead and the column lookup folds away.
    """
    lr, l1_w, l2_w, l2_V = hpT
    s = _eaddr(sums)
    off = k + 1  # solver state: every k + 1 columns after the parameters
    for p in range(start, stop):
        r = entry_row(_ld(indices, p), tab0, stride, hot)
        x = T(_ld(data, p))
        gx = gT * x
        sc = T(_ld(reg_scale, _ld(cols, p) * R))
        if fit_linear:
            addr_step(T, T, T, code, r + k, r + k + off, off, gx, lr, l1_w, l2_w * sc)
        factor_step(T, K, k, r, s, x, gx, l2_V * sc, lr, off, code)


def _make_epoch(K, HOT, OPT, REG):
    """The epoch kernel for a literal number of factors ``K``, or the generic one (``K = 0``);
    with private copies of the hot rows if ``HOT`` (1), else (0) every update goes to the
    table and the hot-row code is pruned away; for optimizer code ``OPT``
    (:mod:`fmlearn._kernels.updates`), whose rules then fold to straight-line code; with a
    per-feature L2 scale if ``REG`` (1; see :func:`fm_step`).

    It closes over ints only, which numba's cache keys on (a closure over a jitted function
    would give every process a new cache key).
    """

    @jit
    def sgd_epoch(
        indptr, indices, data, y, sample_weight, order, w0, w0_state, table, k,
        loss, hp, fit_intercept, fit_linear, hot_indices, hot_rows, lock, merge_every,
        reg_scale,
    ):
        """One pass over ``order``; see :func:`fmlearn._kernels.sgd.sgd_epoch`."""
        # The update loops run in the parameters' dtype: float32 halves memory traffic and
        # doubles SIMD width; only the per-row loss and gradient are float64.
        T = table.dtype.type
        S0 = w0_state.dtype.type
        kk = K if K else k
        hpT = typed_args(T, hp)
        lr = hp[0]
        stride = table.shape[1]
        tab0 = _eaddr(table)
        w0a, st0 = _eaddr(w0), _eaddr(w0_state)
        sums = np.empty(2 * kk, dtype=table.dtype)
        total = 0.0
        stop = order.shape[0]
        # The hot-row code is under `if HOT`, which numba prunes before typing: without hot
        # rows the kernel is the plain one. (As a runtime condition the same code, although
        # folded away by LLVM, left the one-thread epoch 5% slower.)
        if HOT:
            # This thread's copies of the hot rows and their values at the last merge, its
            # bias and bias state and then their values at the last merge
            # (hogwild.bias_buffer), and the design's indices with the hot ones remapped to
            # the copies (see fmlearn._kernels.hogwild).
            n_hot = hot_rows.shape[0]
            private, synced = hot_copies(table, hot_rows)
            bias = bias_buffer(w0, w0_state)
            b0 = _eaddr(bias)
            hot = (n_hot, _eaddr(private) + n_hot * stride)
            idx = hot_indices
            since_merge = 0
        else:
            b0 = 0
            hot = NO_HOT
            idx = indices
        for t in range(stop):
            if HOT:
                since_merge += 1
                # Another thread merging: go on and try again at the next row.
                if since_merge >= merge_every and try_merge(table, hot_rows, private, synced,
                                                            w0, w0_state, bias, lock):
                    since_merge = 0
            prefetch_row_hot(indptr, idx, data, y, sample_weight, order, t, stop, table, hot)
            if REG:
                prefetch_scale(indptr, indices, order, t, stop, reg_scale)
            row = _ld(order, t)
            start, end = _ld(indptr, row), _ld(indptr, row + 1)
            if HOT:
                bias0 = bias[0]
            else:
                bias0 = float(w0[0])
            pred = bias0 + row_sums(idx, data, start, end, T, K, kk, tab0, stride, hot, sums)
            sw, target = _ld(sample_weight, row), _ld(y, row)
            total += sw * loss_value(loss, target, pred)
            g = sw * loss_gradient(loss, target, pred)
            if fit_intercept:
                bias_step_buffered(HOT, T, S0, OPT, w0a, st0, b0, g, lr)
            fm_step(idx, data, start, end, T, K, kk, tab0, stride, hot, sums, T(g), OPT, hpT,
                    fit_linear, indices, reg_scale, REG)
        if HOT:
            final_merge(table, hot_rows, private, synced, w0, w0_state, bias, lock)
        return total

    return sgd_epoch


_EPOCHS: dict = {}


def epoch_kernel(k: int, code: int, hot: bool = False, scaled: bool = False):
    """The jitted epoch for ``k`` factors and optimizer ``code``: its own for ``k`` in
    :data:`SPECIALIZED_FACTORS`, else the generic one; with ``hot``, the one that buffers hot
    rows (threads); with ``scaled``, the one with a per-feature L2 scale. Built on first use
    (compiled on its first call, or loaded from numba's on-disk cache)."""
    key = (int(k) if int(k) in SPECIALIZED_FACTORS else 0, int(bool(hot)), int(code),
           int(bool(scaled)))
    kernel = _EPOCHS.get(key)
    if kernel is None:
        # Threads starting their first epoch at once all get the same dispatcher.
        kernel = _EPOCHS.setdefault(key, _make_epoch(*key))
    return kernel


def sgd_epoch(
    indptr, indices, data, y, sample_weight, order, w0, w0_state, table, k,
    loss, code, hp, fit_intercept, fit_linear, hot=None, merge_every=MERGE_EVERY,
    reg_scale=None,
):
    """One pass over ``order`` (int64 row ids); returns the sum of weighted losses.

    ``w0`` (1,) and ``table`` (n_features, stride) are updated in place, and so is the solver
    state of optimizer ``code`` (:mod:`fmlearn._kernels.updates`): the bias's in ``w0_state``
    (of ``w0``'s dtype; ``[a]`` for AdaGrad, ``[z, n]`` for FTRL, ignored by plain SGD), the
    others in the table's state columns (stride ``(k + 1) * (1 + states per parameter)``).
    ``hp`` is the solver's ``kernel_args``: ``(learning_rate, l1_w, l2_w, l2_V)``; L2 applies
    to the coordinates a row touches, L1 (FTRL) to the linear weights. ``loss`` is a code
    from :mod:`fmlearn._kernels.losses`. Each row's loss is taken before its update
    (progressive validation). Releases the GIL (Hogwild threads).

    ``hot``, for threads training the same table at once: ``(hot_indices, rows, lock)``,
    ``rows`` from :func:`fmlearn._kernels.hogwild.hot_features`, ``hot_indices`` from
    :func:`fmlearn._kernels.hogwild.hot_indices` (``indices`` with those features remapped)
    and ``lock`` an int32 array of one zero shared by the threads. Each thread then trains its
    own copies of those rows (and of the bias) and adds its changes to the table every
    ``merge_every`` rows and at the end, under the lock, taking in the others'. None (one
    thread): every update goes straight to the table, through a kernel without that code.

    ``reg_scale``: None, or the table's dtype of shape (n_features,): feature ``j``'s L2
    strengths (``l2_w``, ``l2_V``) multiplied by ``reg_scale[j]`` at each of its updates (see
    :func:`reg_scale_arg`).
    """
    remapped, rows, lock = hot_arguments(hot)
    scale, scaled = reg_scale_arg(reg_scale, table.dtype)
    return epoch_kernel(k, code, rows.shape[0] > 0, scaled)(
        indptr, indices, data, y, sample_weight, order, w0, w0_state, table, k,
        loss, hp, fit_intercept, fit_linear, remapped, rows, lock, merge_every, scale,
    )


def reg_scale_arg(reg_scale, dtype) -> tuple[np.ndarray, bool]:
    """``(array, scaled)`` for a kernel's per-feature L2 scale: ``reg_scale`` in ``dtype``
    and True, or for None a one-element array of 1 and False (the kernels built without the
    scale read that element)."""
    if reg_scale is None:
        return np.ones(1, dtype=dtype), False
    return np.ascontiguousarray(reg_scale, dtype=dtype), True
