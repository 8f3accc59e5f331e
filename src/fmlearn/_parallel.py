"""Thread count handling for numba kernels."""

from __future__ import annotations

import contextlib
import os

import numba


def effective_n_jobs(n_jobs) -> int:
    """Threads for ``n_jobs``: None -> 1, negative -> cores + 1 + n_jobs (joblib's rule)."""
    max_threads = numba.config.NUMBA_NUM_THREADS
    if n_jobs is None or n_jobs == 0:
        return 1
    if n_jobs < 0:
        n_jobs = max((os.cpu_count() or 1) + 1 + n_jobs, 1)
    return max(1, min(int(n_jobs), max_threads))


@contextlib.contextmanager
def numba_threads(n_jobs):
    """Set numba's thread count for the block and restore it after; yields the count used."""
    n = effective_n_jobs(n_jobs)
    if n == 1:
        yield 1
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(previous)


def n_blocks_for(n_rows: int, n_threads: int) -> int:
    """A few blocks per thread so that uneven rows still balance."""
    return max(1, min(n_rows, 4 * n_threads))
