"""Numba kernels that bring CSR arrays into canonical form (sorted rows, no duplicates), and
the O(nnz) scans behind the validation of every design matrix (:mod:`fmlearn.data.validation`).

Arrays in, arrays out, in place; the scans return counts and leave the errors to Python.
Plain ``numba.njit``: fast-math reassociation could change how duplicates add up.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["canonicalize_rows", "index_range", "value_counts"]


@numba.njit(cache=True, nogil=True)
def _sift_down(keys, vals, s, root, end):
    while True:
        child = 2 * root + 1
        if child >= end:
            return
        if child + 1 < end and keys[s + child + 1] > keys[s + child]:
            child += 1
        if keys[s + root] >= keys[s + child]:
            return
        a = s + root
        b = s + child
        keys[a], keys[b] = keys[b], keys[a]
        vals[a], vals[b] = vals[b], vals[a]
        root = child


@numba.njit(cache=True, nogil=True)
def _heapsort_pairs(keys, vals, s, e):
    """Sort ``keys[s:e]`` in place, permuting ``vals`` alike (O(n log n), no allocation)."""
    n = e - s
    for root in range(n // 2 - 1, -1, -1):
        _sift_down(keys, vals, s, root, n)
    for end in range(n - 1, 0, -1):
        keys[s], keys[s + end] = keys[s + end], keys[s]
        vals[s], vals[s + end] = vals[s + end], vals[s]
        _sift_down(keys, vals, s, np.int64(0), end)  # not a literal 0: a second compile


@numba.njit(cache=True, nogil=True)
def canonicalize_rows(indptr, indices, data):
    """Sort each row's indices and sum duplicates, compacting the arrays in place.

    Rows that are already strictly increasing (the usual case) are only moved. Duplicates
    are summed in float64.

    Parameters
    ----------
    indptr : ndarray of int64, shape (n_rows + 1,)
    indices : ndarray of int32, shape (>= indptr[-1],)
    data : ndarray of float64, shape (>= indptr[-1],)

    Returns
    -------
    nnz : int
        The new ``indptr[-1]``; entries past it are garbage.
    """
    n_rows = indptr.shape[0] - 1
    w = 0
    s = indptr[0]
    for r in range(n_rows):
        e = indptr[r + 1]
        ordered = True
        for j in range(s + 1, e):
            if indices[j] <= indices[j - 1]:
                ordered = False
                break
        if ordered:
            if w != s:
                for j in range(s, e):
                    indices[w] = indices[j]
                    data[w] = data[j]
                    w += 1
            else:
                w = e
        else:
            if e - s <= 32:
                # Short rows: insertion sort in place.
                for j in range(s + 1, e):
                    ki = indices[j]
                    kd = data[j]
                    t = j - 1
                    while t >= s and indices[t] > ki:
                        indices[t + 1] = indices[t]
                        data[t + 1] = data[t]
                        t -= 1
                    indices[t + 1] = ki
                    data[t + 1] = kd
            else:
                _heapsort_pairs(indices, data, s, e)
            j = s
            while j < e:
                ki = indices[j]
                acc = data[j]
                j += 1
                while j < e and indices[j] == ki:
                    acc += data[j]
                    j += 1
                indices[w] = ki
                data[w] = acc
                w += 1
        indptr[r + 1] = w
        s = e
    return w


@numba.njit(cache=True, nogil=True)
def index_range(indices):
    """``(min, max)`` of a non-empty integer array in one branch-free pass (LLVM vectorizes
    it: about 2 ms for 18M int32 on one core, against 6 ms for numpy's min and max)."""
    lo = indices[0]
    hi = indices[0]
    for p in range(indices.shape[0]):
        v = indices[p]
        lo = min(lo, v)
        hi = max(hi, v)
    return lo, hi


@numba.njit(cache=True, nogil=True)
def value_counts(data, limit):
    """``(zeros, out of range)``: how many values are 0, and how many are not within
    ``[-limit, limit]`` (NaN and infinities included), in one vectorized pass."""
    zeros = 0
    bad = 0
    for p in range(data.shape[0]):
        x = data[p]
        zeros += x == 0
        bad += not (abs(x) <= limit)
    return zeros, bad
