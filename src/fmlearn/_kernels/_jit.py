"""Shared numba decorator settings."""

import numba

# Every fast-math flag except ``nnan``/``ninf``: the solvers must still see a NaN or infinite
# loss to stop a diverging fit instead of returning a silently broken model.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


def jit(*args, **kwargs):
    """``numba.njit`` with on-disk caching and the project's fast-math flags."""
    kwargs.setdefault("cache", True)
    kwargs.setdefault("fastmath", FASTMATH)
    kwargs.setdefault("nogil", True)
    # IEEE semantics for x / 0: Python's error model adds a zero check to every division,
    # which also stops LLVM from vectorizing the AdaGrad update.
    kwargs.setdefault("error_model", "numpy")
    return numba.njit(*args, **kwargs)
