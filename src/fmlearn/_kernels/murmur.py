"""MurmurHash3 (x86, 32-bit; Austin Appleby's public-domain reference) over byte strings.

The feature hash of :mod:`fmlearn.data.hashing`: fixed by its definition, so a hashed column is
the same on every run, process, platform and Python version (Python's ``hash()`` of a string is
salted per process). Little-endian block reads as in the reference; arrays in, arrays out.
"""

import numpy as np

from fmlearn._kernels._jit import jit

_C1 = np.uint32(0xCC9E2D51)
_C2 = np.uint32(0x1B873593)


@jit(inline="always")
def _rotl(x, r):
    return np.uint32((x << np.uint32(r)) | (x >> np.uint32(32 - r)))


@jit
def murmur3_32(buf, offsets, seed, out):
    """Hash ``buf[offsets[i]:offsets[i + 1]]`` into ``out[i]``.

    Parameters
    ----------
    buf : ndarray of uint8, shape (n_bytes,)
    offsets : ndarray of int64, shape (n + 1,)
    seed : int, in [0, 2**32)
    out : ndarray of uint32, shape (n,)
    """
    c1, c2 = _C1, _C2
    for i in range(out.shape[0]):
        start, end = offsets[i], offsets[i + 1]
        n = end - start
        h = np.uint32(seed)
        nblocks = n // 4
        for b in range(nblocks):
            p = start + 4 * b
            k = (np.uint32(buf[p]) | (np.uint32(buf[p + 1]) << np.uint32(8))
                 | (np.uint32(buf[p + 2]) << np.uint32(16))
                 | (np.uint32(buf[p + 3]) << np.uint32(24)))
            k = np.uint32(k * c1)
            k = _rotl(k, 15)
            k = np.uint32(k * c2)
            h = np.uint32(h ^ k)
            h = _rotl(h, 13)
            h = np.uint32(np.uint32(h * np.uint32(5)) + np.uint32(0xE6546B64))
        tail = start + 4 * nblocks
        rem = n & 3
        k = np.uint32(0)
        if rem >= 3:
            k = np.uint32(k ^ (np.uint32(buf[tail + 2]) << np.uint32(16)))
        if rem >= 2:
            k = np.uint32(k ^ (np.uint32(buf[tail + 1]) << np.uint32(8)))
        if rem >= 1:
            k = np.uint32(k ^ np.uint32(buf[tail]))
            k = np.uint32(k * c1)
            k = _rotl(k, 15)
            k = np.uint32(k * c2)
            h = np.uint32(h ^ k)
        h = np.uint32(h ^ np.uint32(n))
        h = np.uint32(h ^ (h >> np.uint32(16)))
        h = np.uint32(h * np.uint32(0x85EBCA6B))
        h = np.uint32(h ^ (h >> np.uint32(13)))
        h = np.uint32(h * np.uint32(0xC2B2AE35))
        h = np.uint32(h ^ (h >> np.uint32(16)))
        out[i] = h
