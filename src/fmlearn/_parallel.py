"""Threads for numba kernels.

Every kernel is compiled with ``nogil=True``, so plain Python threads run them truly in
parallel. Parallel training and prediction therefore call the *same* compiled serial kernel
on slices of the work (a chunk of the shuffled row order, a block of rows) from a few threads,
instead of compiling ``parallel=True`` twins: one compiled function per kernel, no numba
threading layer, and a cold first fit that stays fast (the parfor twin of the SGD epoch took
3.5x longer to compile than the kernel itself).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor


def effective_n_jobs(n_jobs) -> int:
    """Threads for ``n_jobs``: None -> 1, negative -> cores + 1 + n_jobs (joblib's rule)."""
    if n_jobs is None or n_jobs == 0:
        return 1
    if n_jobs < 0:
        return max((os.cpu_count() or 1) + 1 + n_jobs, 1)
    return int(n_jobs)


def run_blocks(fn, n_items: int, n_threads: int) -> list:
    """``[fn(start, stop) for each block]`` over ``n_threads`` contiguous blocks of ``n_items``.

    Runs in ``n_threads`` threads when there are several blocks; ``fn`` must release the GIL
    (a ``nogil`` kernel) for this to be parallel. Results come in block order.
    """
    n_threads = max(1, min(n_threads, n_items))
    bounds = [(b * n_items // n_threads, (b + 1) * n_items // n_threads) for b in range(n_threads)]
    if n_threads == 1:
        return [fn(*bounds[0])]
    with ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="fmlearn") as pool:
        return list(pool.map(lambda ab: fn(*ab), bounds))
