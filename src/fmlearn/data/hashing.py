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

__all__ = ["hash_strings", "hash_tokens", "expected_collision_rate"]


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
