"""Numba kernel that formats CSR rows as libFM / libsvm / FFM text.

Arrays in, arrays out: the caller writes the bytes to the file. Numbers are written by
:mod:`fmlearn._kernels.numbers` as the shortest decimal that reads back exactly; plain
``numba.njit`` for the same reason as there.
"""

from __future__ import annotations

import numba
import numpy as np

from fmlearn._kernels.numbers import write_float, write_uint

__all__ = ["MAX_ROW_BYTES", "MAX_TOKEN_BYTES", "format_rows"]

# Bytes one token / one row can take at most: ' ' + field (10) + ':' + index (10) + ':' +
# value (24, e.g. '-1.2345678901234567e-308'); a row adds a label (24) and '\n'.
MAX_TOKEN_BYTES = 48
MAX_ROW_BYTES = 26

_NL = 10
_COLON = 58


@numba.njit(cache=True, nogil=True)
def format_rows(indptr, indices, data, tok_fields, data_start, y, ffm, single, r0, r1, out):
    """Format rows ``r0:r1`` as libFM (``ffm=False``) or FFM text into ``out``.

    Parameters
    ----------
    indptr : ndarray of int64, shape (n_rows + 1,)
    indices : ndarray of int32, shape (nnz,)
    data : ndarray of float64, shape (indptr[r1] - data_start,)
        Finite values of (at least) rows ``r0:r1``; entry ``j`` of ``X`` is
        ``data[j - data_start]``. The caller casts float32 chunks up, so one kernel serves
        both dtypes.
    tok_fields : ndarray of int32, shape like ``data`` (FFM) or (0,)
        FFM only: the (non-negative) field of each entry, aligned with ``data``. Gathered by
        the caller with numpy, whose independent loads hide the cache misses that a lookup
        in this sequential loop would pay one by one.
    data_start : int
        Offset of ``data`` / ``tok_fields`` in ``X``'s entries.
    y : ndarray of float64, shape (n_rows,)
        Finite labels; integral ones are written without a decimal point.
    ffm : bool
    single : bool
        Values are float32: write the shortest text that round-trips in float32.
    out : ndarray of uint8
        At least ``MAX_ROW_BYTES * (r1 - r0) + MAX_TOKEN_BYTES * nnz_in_rows`` bytes.

    Returns
    -------
    n : int
        Bytes written to ``out``.
    """
    # No literal arguments (0, False) to the helpers: numba would compile a copy for each.
    pos = np.int64(0)
    double = np.bool_(False)
    for r in range(r0, r1):
        pos = write_float(out, pos, y[r], double)
        for j in range(indptr[r], indptr[r + 1]):
            out[pos] = 32
            pos += 1
            c = indices[j]
            if ffm:
                pos = write_uint(out, pos, np.uint64(tok_fields[j - data_start]))
                out[pos] = _COLON
                pos += 1
            pos = write_uint(out, pos, np.uint64(c))
            out[pos] = _COLON
            pos += 1
            pos = write_float(out, pos, data[j - data_start], single)
        out[pos] = _NL
        pos += 1
    return pos
