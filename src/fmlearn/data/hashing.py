"""Feature hashing: ``column=value`` strings into a fixed number of columns per field.

Unbounded categorical vocabularies (ad ids, user ids of a stream) have no list of categories
to learn: each value is hashed into one of ``2**hash_bits`` columns of its field. Each field
keeps its own range of columns (field ``f``'s hashed columns come before field ``f + 1``'s), so
that FFM and FwFM still know every column's field; collisions happen only within a field.

The hash is MurmurHash3 x86 32-bit (:mod:`fmlearn._kernels.murmur`) of the UTF-8 bytes of
``"<column>=<value>"`` with seed 0: stable across runs, processes and platforms. With
``signed=True`` the value is multiplied by +1 or -1 chosen by the hash with seed 1 (Weinberger
et al. 2009), so that colliding features cancel on average instead of adding up.
"""

from __future__ import annotations

import numpy as np

__all__ = ["expected_collision_rate", "hash_columns", "hash_ints", "hash_strings",
           "hash_tokens"]


def _utf8(strings) -> tuple[np.ndarray, np.ndarray]:
    encoded = [s.encode("utf-8") for s in strings]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    buf = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return buf, offsets


def hash_strings(strings, seed: int = 0) -> np.ndarray:
    """MurmurHash3 x86 32-bit of each string's UTF-8 bytes, uint32 of shape (n,)."""
    from fmlearn._kernels.murmur import murmur3_32

    buf, offsets = _utf8(strings)
    out = np.empty(len(offsets) - 1, dtype=np.uint32)
    if buf.size == 0:
        buf = np.zeros(1, dtype=np.uint8)
    murmur3_32(buf, offsets, np.uint32(seed), out)
    return out


def token_text(value) -> str:
    """The text a value is hashed by: ``str`` of Python scalars, numpy scalars as their Python
    equivalents and integral floats as integers, so that ``7``, ``np.int64(7)`` and ``7.0`` (an
    id column that pandas made float because a chunk had a missing value) hash alike."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def hash_tokens(column, values, bits: int, *, signed: bool = False):
    """Columns (in ``[0, 2**bits)``) and signs (+1/-1, or None) of ``column=value`` for each
    of ``values`` (distinct tokens of a field)."""
    strings = [f"{column}={token_text(v)}" for v in values]
    h = hash_strings(strings, 0)
    cols = (h & np.uint32((1 << bits) - 1)).astype(np.int64)
    if not signed:
        return cols, None
    sign = np.where(hash_strings(strings, 1) & np.uint32(1), -1.0, 1.0)
    return cols, sign


def expected_collision_rate(n_values: int, bits: int) -> float:
    """Expected share of ``n_values`` distinct values (hashed uniformly into ``2**bits``
    columns) that share their column with another value: ``1 - (1 - 1/m)**(n - 1)``."""
    m = float(1 << bits)
    return float(1.0 - (1.0 - 1.0 / m) ** max(n_values - 1, 0))


def hash_ints(values, seed: int = 0) -> np.ndarray:
    """MurmurHash3 x86 32-bit of each value's 4 little-endian bytes (as int32), uint32 of
    shape (n,): the hash of a feature index (scikit-learn's ``murmurhash3_32`` of an int)."""
    from fmlearn._kernels.murmur import murmur3_32

    values = np.ascontiguousarray(values, dtype="<i4")
    n = values.shape[0]
    out = np.empty(n, dtype=np.uint32)
    buf = values.view(np.uint8) if n else np.zeros(1, dtype=np.uint8)
    murmur3_32(buf, np.arange(0, 4 * n + 1, 4, dtype=np.int64), np.uint32(seed), out)
    return out


def hash_columns(X, bits: int, fields=None):
    """``X`` (CSR) with each column ``j`` moved to ``hash(j) mod 2**bits``, plus, with
    ``fields`` (the field of each column, FFM input), ``f * 2**bits`` for its field ``f`` so
    that fields stay apart. Values of columns that collide within a row are summed.

    Returns
    -------
    X : scipy.sparse.csr_matrix, shape (n_rows, 2**bits or n_fields * 2**bits)
    fields : ndarray of int32 of the new columns, or None
    """
    import scipy.sparse as sp

    m = 1 << bits
    uniq, inverse = np.unique(X.indices, return_inverse=True)
    cols = (hash_ints(uniq) & np.uint32(m - 1)).astype(np.int64)
    new_fields = None
    width = m
    if fields is not None:
        fields = np.asarray(fields)
        f = np.maximum(fields[uniq], 0).astype(np.int64)
        cols += f * m
        n_fields = int(fields.max()) + 1 if fields.size else 1
        width = n_fields * m
        new_fields = np.repeat(np.arange(n_fields, dtype=np.int32), m)
    out = sp.csr_matrix((X.data, cols[inverse].astype(np.int32), X.indptr),
                        shape=(X.shape[0], width))
    out.sum_duplicates()  # also sorts each row's columns
    out.indptr = out.indptr.astype(np.int64, copy=False)
    out.indices = out.indices.astype(np.int32, copy=False)
    return out, new_fields
