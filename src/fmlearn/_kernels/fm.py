"""Second-order factorization machine prediction in O(k * nnz) per row.

Uses Rendle's identity ``sum_{i<j} <v_i, v_j> x_i x_j
= 1/2 sum_f [(sum_i v_if x_i)^2 - sum_i v_if^2 x_i^2]``.

Array conventions for every kernel in this package:
``indptr`` int64 (n_rows + 1,), ``indices`` int32 (nnz,), ``data`` float32/float64 (nnz,): a CSR
matrix with in-range column indices. ``w0`` float (1,), ``w`` (n_features,), ``V``
(n_features, n_factors), all of one float dtype.
"""

import numba
import numpy as np

from fmlearn._kernels._jit import jit


@jit(inline="always")
def fm_row(indptr, indices, data, row, w0, w, V, s):
    """FM prediction for one row; leaves the factor sums ``sum_i v_if x_i`` in ``s``.

    ``s`` is a float64 scratch array of shape (n_factors,), overwritten. Returns a float64.
    """
    k = V.shape[1]
    for f in range(k):
        s[f] = 0.0
    linear = 0.0
    squares = 0.0
    for p in range(indptr[row], indptr[row + 1]):
        i = indices[p]
        x = data[p]
        linear += w[i] * x
        for f in range(k):
            vx = V[i, f] * x
            s[f] += vx
            squares += vx * vx
    pair = 0.0
    for f in range(k):
        pair += s[f] * s[f]
    return w0[0] + linear + 0.5 * (pair - squares)


@jit(inline="always")
def _predict_rows(indptr, indices, data, w0, w, V, out, start, stop):
    s = np.empty(V.shape[1], dtype=np.float64)
    for row in range(start, stop):
        out[row] = fm_row(indptr, indices, data, row, w0, w, V, s)


@jit
def predict_serial(indptr, indices, data, w0, w, V, out):
    """Write the FM prediction of every row into ``out`` (float64, (n_rows,))."""
    _predict_rows(indptr, indices, data, w0, w, V, out, 0, out.shape[0])


@jit(parallel=True)
def predict_parallel(indptr, indices, data, w0, w, V, out, n_blocks):
    """Parallel twin of :func:`predict_serial` over ``n_blocks`` contiguous row blocks."""
    n = out.shape[0]
    for b in numba.prange(n_blocks):
        _predict_rows(
            indptr, indices, data, w0, w, V, out, b * n // n_blocks, (b + 1) * n // n_blocks
        )
