"""Row kernels of the distributed parameter exchange (:mod:`fmlearn.dask`): a worker's
changes to the table rows it shares with other workers, and their application to a replica.

One pass over the rows each, no temporaries: the same work in numpy fancy indexing took
about ten passes and as many copies of the shared rows, as much CPU per round as half a
worker's training at 1 M rows (docs/distributed.md). ``table`` (n_features, n_cols) float32
or float64 C-contiguous; ``ids`` int32 (n,) distinct row indices; ``rows``/``changes``
(n, n_cols) of the table's dtype. Plain ``numba.njit`` (no fast-math): every worker must
compute the very same bits, so that the replicas stay identical.
"""

from __future__ import annotations

import numba

__all__ = ["add_rows", "gather_rows", "scatter_rows", "take_changes"]


@numba.njit(cache=True, nogil=True)
def gather_rows(table, ids, out):
    """``out[i] = table[ids[i]]``."""
    m = table.shape[1]
    for i in range(ids.shape[0]):
        r = ids[i]
        for c in range(m):
            out[i, c] = table[r, c]


@numba.njit(cache=True, nogil=True)
def scatter_rows(table, ids, rows):
    """``table[ids[i]] = rows[i]``."""
    m = table.shape[1]
    for i in range(ids.shape[0]):
        r = ids[i]
        for c in range(m):
            table[r, c] = rows[i, c]


@numba.njit(cache=True, nogil=True)
def take_changes(table, ids, old, weights, changes):
    """A worker's weighted changes, and its rows set back to the round's start:
    ``changes[i] = weights[i] * (table[ids[i]] - old[i])``, then ``table[ids[i]] = old[i]``.
    ``weights`` (n,) of the table's dtype."""
    m = table.shape[1]
    for i in range(ids.shape[0]):
        r = ids[i]
        w = weights[i]
        for c in range(m):
            changes[i, c] = w * (table[r, c] - old[i, c])
            table[r, c] = old[i, c]


@numba.njit(cache=True, nogil=True)
def add_rows(table, ids, changes):
    """``table[ids[i]] += changes[i]``."""
    m = table.shape[1]
    for i in range(ids.shape[0]):
        r = ids[i]
        for c in range(m):
            table[r, c] += changes[i, c]
