"""Per-thread copies of the hot parameter rows for concurrent (Hogwild) SGD epochs.

Hogwild threads (the solver's ``n_jobs``) all update one parameter table without locks, which
is cheap while they touch different rows. The frequent features and the bias are touched by
every thread at nearly every row, though, so their cache lines travel between the cores all the
time. Given the hot features (:func:`hot_features`), each thread of an epoch kernel (FM, FFM)
instead trains private copies of their table rows and of the bias, and every
:data:`MERGE_EVERY` rows adds its changes to the table under a lock, taking in the other
threads' at the same time (:func:`_merge_hot`; a bounded delay, as in asynchronous SGD).

Kernels address table entries by element address (see :mod:`fmlearn._kernels.intrinsics`), so
a hot feature's row is the same code path at another address. FFM looks each entry's feature
up in ``slot`` (:func:`hot_features`). The FM epoch, a few vector operations per entry, could
not afford a lookup: on a million features the slot array's cache misses (or their prefetches)
cost 40% of its speed, and even a load from a small table that stays in L1, before every
parameter row's address, cost 25%. It reads a copy of the design's indices instead in which
the hot features' entries are negative (:func:`hot_indices`; 4 bytes per entry of the design,
made once and kept while the design's index array lives, see ``TableParams._hot_rows``), so
that one load gives both, and :func:`entry_row` picks the private row by the sign with a
conditional move. (A select between two loaded addresses, which LLVM compiled as a branch,
mispredicted on every other entry of Zipf data.)
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from fmlearn._kernels._jit import jit
from fmlearn._kernels.intrinsics import (
    _I32,
    _elt_ptr,
    _is_c_array,
)
from fmlearn._kernels.updates import addr_step

# Hot features under several threads: those in at least this share of the rows, at most
# HOT_MAX of them, merged back into the table every MERGE_EVERY rows.
HOT_MIN_SHARE = 1 / 64
HOT_MAX = 256
MERGE_EVERY = 256

# ``hot`` of :func:`entry_row` for kernels without private rows: every row is in the table.
NO_HOT = (0, 0)
# The kernels' (lookup, rows, lock) arguments without hot rows (one thread).
NO_SLOTS = np.empty(0, dtype=np.int32)
NO_ROWS = np.empty(0, dtype=np.int64)
NO_LOCK = np.zeros(1, dtype=np.int32)


def hot_features(indices, n_features, n_rows):
    """Hot features for concurrent epochs: ``(slot, rows)``, to pass to the epoch kernels.

    ``rows`` (int64) are the features occurring in at least ``n_rows * HOT_MIN_SHARE`` rows,
    most frequent first, at most :data:`HOT_MAX`; ``slot`` (int32, (n_features,)) maps each
    of them to its position there and the others to -1.
    """
    counts = np.bincount(indices, minlength=n_features)
    rows = np.flatnonzero(counts >= max(n_rows * HOT_MIN_SHARE, 2))
    rows = rows[np.argsort(-counts[rows], kind="stable")][:HOT_MAX].astype(np.int64)
    slot = np.full(n_features, -1, dtype=np.int32)
    slot[rows] = np.arange(rows.shape[0], dtype=np.int32)
    return slot, rows


def hot_arguments(hot):
    """The kernels' ``(lookup, rows, lock)`` for a dispatcher's ``hot`` argument (None: none);
    ``lookup`` is ``slot`` for FFM, :func:`hot_indices` for FM."""
    return hot if hot is not None else (NO_SLOTS, NO_ROWS, NO_LOCK)


@intrinsic
def _try_lock(typingctx, lock):
    """Atomically set int32 ``lock[0]`` from 0 to 1; True if this call did it."""
    if not (_is_c_array(lock) and lock.dtype == types.int32):
        return None

    def codegen(context, builder, sig, args):
        ptr = _elt_ptr(context, builder, sig.args[0], args[0], ir.Constant(ir.IntType(64), 0),
                       types.int64)
        res = builder.cmpxchg(ptr, _I32(0), _I32(1), "acquire", "monotonic")
        return builder.extract_value(res, 1)

    return types.boolean(lock), codegen


@intrinsic
def _unlock(typingctx, lock):
    """Atomically reset int32 ``lock[0]`` to 0 (release ordering)."""
    if not (_is_c_array(lock) and lock.dtype == types.int32):
        return None

    def codegen(context, builder, sig, args):
        ptr = _elt_ptr(context, builder, sig.args[0], args[0], ir.Constant(ir.IntType(64), 0),
                       types.int64)
        builder.store_atomic(_I32(0), ptr, "release", 4)
        return context.get_dummy_value()

    return types.void(lock), codegen


@jit
def hot_copies(table, hot_rows):
    """``(private, synced)``: a thread's copies of the hot rows, and their values at the last
    merge (both (n_hot, stride), equal at the start)."""
    private = np.empty((hot_rows.shape[0], table.shape[1]), dtype=table.dtype)
    for h in range(hot_rows.shape[0]):
        private[h] = table[hot_rows[h]]
    return private, private.copy()


def hot_indices(indices, slot, n_hot):
    """A copy of a design's CSR ``indices`` (int32) in which the entries of hot features
    (``slot`` from :func:`hot_features`, ``n_hot`` of them) read ``slot - n_hot``: negative,
    which is all :func:`entry_row` needs to send them to a thread's private copies. As large
    as ``indices``: made once per design (``TableParams._hot_rows`` keeps it while the design's
    index array lives)."""
    out = np.empty(indices.shape[0], dtype=np.int32)
    _remap_hot(indices, slot, n_hot, out)
    return out


@jit
def _remap_hot(indices, slot, n_hot, out):
    for p in range(indices.shape[0]):
        s = slot[indices[p]]
        out[p] = s - n_hot if s >= 0 else indices[p]


@jit(inline="always")
def entry_row(i, tab0, stride, hot):
    """Element address of the parameter row of an entry of (remapped) index ``i``: the
    table's (at ``tab0``, rows of ``stride``) or, for a hot feature (``i < 0``, see
    :func:`hot_indices`), this thread's private copy.

    ``hot = (n_hot, end)``: the number of hot features and the element address where this
    thread's private rows (:func:`hot_copies`) end; :data:`NO_HOT` without hot rows (the code
    then folds away).
    """
    n_hot, end = hot
    r = tab0 + i * stride
    if n_hot:
        r = end + i * stride if i < 0 else r  # cmovns: no branch on the unpredictable sign
    return r


@jit
def bias_buffer(w0, w0_state):
    """A thread's float64 copy of the bias and its solver state (at most two values, see
    :mod:`fmlearn._kernels.updates`), then their values at the last merge:
    ``[w0, s1, s2, w0, s1, s2]``."""
    bias = np.zeros(6, dtype=np.float64)
    bias[0] = bias[3] = w0[0]
    for j in range(min(w0_state.shape[0], 2)):
        bias[1 + j] = bias[4 + j] = w0_state[j]
    return bias


@jit(inline="always")
def bias_step_buffered(hot, T, S, code, w0a, st0, b0, g, lr):
    """The bias step of an epoch with hot rows (FM, FFM): on this thread's float64 copy
    (:func:`bias_buffer` at element address ``b0``) if ``hot``, else on ``w0`` and its state
    (element addresses ``w0a``, ``st0``; number classes ``T``, ``S``), computed in float64
    either way. Takes no array: the row loops call it without reference counting."""
    if hot:  # rounded to the parameters' dtype at each merge
        addr_step(np.float64, np.float64, np.float64, code, b0, b0 + 1, 1, g, lr, 0.0, 0.0)
    else:
        addr_step(T, S, np.float64, code, w0a, st0, 1, g, lr, 0.0, 0.0)


@jit
def _merge_hot(table, hot_rows, private, synced, w0, w0_state, bias, final):
    """Add this thread's changes to its hot rows (``private - synced``) to the shared table.

    The bias and its solver state, the hottest parameters of all, are buffered the same way:
    ``bias`` (:func:`bias_buffer`) holds this thread's values and then their values at the
    last merge. Unless ``final``, then refresh the private copies (and ``synced``) from the
    table, which brings in the other threads' merged changes. Called under the merge lock.
    """
    # Rows as 1-D views and a loop per case: LLVM then vectorizes them (checking that the
    # rows do not overlap). Indexed by element, merges every 256 rows took 9% of an FM
    # epoch's time (k = 16, 140 hot rows), now 3%.
    stride = table.shape[1]
    for h in range(hot_rows.shape[0]):
        shared, mine, last = table[hot_rows[h]], private[h], synced[h]
        if final:
            for c in range(stride):
                shared[c] += mine[c] - last[c]
        else:
            for c in range(stride):
                value = shared[c] + (mine[c] - last[c])
                shared[c] = value
                mine[c] = value
                last[c] = value
    w0[0] += bias[0] - bias[3]
    bias[0] = bias[3] = w0[0]
    for j in range(min(w0_state.shape[0], 2)):
        w0_state[j] += bias[1 + j] - bias[4 + j]
        bias[1 + j] = bias[4 + j] = w0_state[j]


@jit
def try_merge(table, hot_rows, private, synced, w0, w0_state, bias, lock):
    """:func:`_merge_hot` unless another thread holds the merge lock; True if it merged.

    Kernels call it every :data:`MERGE_EVERY` rows and, if another thread is merging, try again
    at the next row.
    """
    if not _try_lock(lock):
        return False
    _merge_hot(table, hot_rows, private, synced, w0, w0_state, bias, False)
    _unlock(lock)
    return True


@jit
def final_merge(table, hot_rows, private, synced, w0, w0_state, bias, lock):
    """The end of an epoch with hot rows: wait for the lock and merge this thread's changes."""
    while not _try_lock(lock):
        pass
    _merge_hot(table, hot_rows, private, synced, w0, w0_state, bias, True)
    _unlock(lock)
