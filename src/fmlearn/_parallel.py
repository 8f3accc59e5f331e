"""Threads for numba kernels.

Every kernel is compiled with ``nogil=True``, so plain Python threads run them truly in
parallel. Parallel training and prediction therefore call the *same* compiled serial kernel
on slices of the work (a chunk of the shuffled row order, a block of rows) from a few threads,
instead of compiling ``parallel=True`` twins: one compiled function per kernel, no numba
threading layer, and a cold first fit that stays fast (the parfor twin of the SGD epoch took
3.5x longer to compile than the kernel itself).

The helper threads are started once and kept (:func:`run_tasks`): a thread pool created and
shut down per call cost 2.2-2.7 ms per parallel region on the 2-core machine (a kept pool
about 70 us), as much as a whole MCMC sweep of MovieLens 100K saves on the second thread.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor, wait

_lock = threading.Lock()  # held by the one caller using the kept helpers
_helpers: ThreadPoolExecutor | None = None
_n_helpers = 0
# While tracing (trace_tasks), the CPU seconds of every task of every parallel region.
_trace: list | None = None
# Crews whose helpers may still linger (Crew.close lets them go).
_crews: weakref.WeakSet = weakref.WeakSet()


def _reset_after_fork() -> None:
    # A forked child has none of the parent's threads: it starts its own helpers on demand.
    global _lock, _helpers, _n_helpers
    _lock, _helpers, _n_helpers = threading.Lock(), None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def effective_n_jobs(n_jobs) -> int:
    """Threads for ``n_jobs``: None -> 1, negative -> cores + 1 + n_jobs (joblib's rule)."""
    if n_jobs is None or n_jobs == 0:
        return 1
    if n_jobs < 0:
        return max((os.cpu_count() or 1) + 1 + n_jobs, 1)
    return int(n_jobs)


def _kept_helpers(n: int) -> ThreadPoolExecutor:
    global _helpers, _n_helpers
    if _helpers is None or _n_helpers < n:
        if _helpers is not None:
            _helpers.shutdown(wait=True)
        _helpers = ThreadPoolExecutor(max_workers=n, thread_name_prefix="fmlearn")
        _n_helpers = n
    return _helpers


class trace_tasks:
    """Record, for every parallel region of :func:`run_tasks` run meanwhile, the CPU seconds
    of each of its tasks (``time.thread_time`` in the thread that ran it): ``regions``, a
    list of lists. With the caller's own CPU time this gives a run's critical path (its serial
    part plus the slowest task of each region) on a loaded machine, where wall times do not
    show how the threads would scale (benchmarks/bayes.py)."""

    def __enter__(self):
        global _trace
        self.regions = _trace = []
        return self

    def __exit__(self, *exc):
        global _trace
        _trace = None
        return False


def _timed(task, cpu, i):
    t0 = time.thread_time()
    try:
        return task()
    finally:
        cpu[i] = time.thread_time() - t0


def run_tasks(tasks) -> list:
    """``[task() for task in tasks]``, at once: the first in the calling thread, the others on
    kept helper threads. Results come in order; every task has ended when this returns or
    raises (the first exception is raised).

    The tasks must release the GIL (``nogil`` kernels) for this to be parallel. A caller that
    finds the kept helpers busy (another thread's call, or a call from inside a task) gets a
    pool of its own for this call, as before the helpers were kept.
    """
    tasks = list(tasks)
    if len(tasks) <= 1:
        return [t() for t in tasks]
    me = threading.get_ident()
    for crew in list(_crews):  # their lingering helpers would spin on the cores wanted here
        if crew.owner == me:  # another thread's crew may be posting a region right now
            crew.close()
    if _trace is not None:
        cpu = [0.0] * len(tasks)
        _trace.append(cpu)
        tasks = [lambda t=t, i=i: _timed(t, cpu, i) for i, t in enumerate(tasks)]
    if not _lock.acquire(blocking=False):
        with ThreadPoolExecutor(max_workers=len(tasks), thread_name_prefix="fmlearn") as pool:
            return list(pool.map(lambda t: t(), tasks))
    try:
        futures = [_kept_helpers(len(tasks) - 1).submit(t) for t in tasks[1:]]
        try:
            first = tasks[0]()
        finally:
            # The helpers write into the caller's arrays: never return (or raise) before
            # they are done.
            wait(futures)
        return [first, *(f.result() for f in futures)]
    finally:
        _lock.release()


def run_in_parts(tasks, n_threads: int) -> list:
    """``tasks`` (each writing only its own outputs) at once with :func:`run_tasks` when
    ``n_threads`` > 1, else one after the other: the same results either way."""
    if n_threads > 1:
        return run_tasks(tasks)
    return [task() for task in tasks]


def split(n_items: int, n_parts: int) -> list:
    """``n_parts`` contiguous ``(start, stop)`` blocks covering ``0 .. n_items``."""
    return [(b * n_items // n_parts, (b + 1) * n_items // n_parts) for b in range(n_parts)]


def run_blocks(fn, n_items: int, n_threads: int) -> list:
    """``[fn(start, stop) for each block]`` over ``n_threads`` contiguous blocks of ``n_items``.

    Runs in ``n_threads`` threads when there are several blocks (:func:`run_tasks`); ``fn``
    must release the GIL (a ``nogil`` kernel) for this to be parallel. Results come in block
    order.
    """
    n_threads = max(1, min(n_threads, n_items))
    return run_tasks([lambda a=a, b=b: fn(a, b) for a, b in split(n_items, n_threads)])


class Crew:
    """Helper threads that stay inside one compiled loop between parallel regions.

    A region of :func:`run_tasks` wakes a helper through Python's queues and the GIL: 65-120
    us on the 2-core machine, a tenth of a region of the MCMC sweep on MovieLens 100K. A crew's
    helpers instead run ``loop(t, seen)`` (a ``nogil`` kernel such as
    :func:`fmlearn._kernels.cd.team_loop`), which does helper ``t``'s part of every region
    the caller posts and waits for the next by spinning on ``ctrl``
    (:mod:`fmlearn._kernels.sync`); the caller does part 0 itself (:meth:`run`). Between
    regions the caller only changes the contents of the arrays the loop was given. Helpers
    that wait in vain for ``linger`` checks leave; the next :meth:`run` starts new ones.

    ``ctrl``: the int64 control array (``sync.CTRL_SIZE``) shared with the kernels.
    """

    def __init__(self, n_threads: int, loop, ctrl):
        self.n_threads = n_threads
        self.loop = loop
        self.ctrl = ctrl
        self.threads: list = []
        self.errors: list = []
        self.pid = os.getpid()
        self.owner = threading.get_ident()  # the thread that runs it (and may close it)
        self.broken = False
        ctrl[:] = 0
        ctrl[_sync().POST] = 1  # no helper yet: the first run starts them

    def _helper(self, t, seen):
        try:
            if self.loop(t, seen) < 0:
                self.errors.append(RuntimeError(f"thread {t} of a parallel region aborted"))
        except BaseException as exc:  # noqa: BLE001 - re-raised by run() in the caller
            self.errors.append(exc)
            _sync().abort(self.ctrl)

    def _join(self):
        for th in self.threads:
            th.join()
        self.threads = []

    def _start(self):
        sync = _sync()
        if os.getpid() != self.pid:  # a forked child has none of its parent's threads
            self.pid, self.threads = os.getpid(), []
        else:
            sync.stop(self.ctrl)
            self._join()
        self.ctrl[sync.STOP] = 0
        seen = sync.rejoin(self.ctrl)
        # Posted before the helpers start, so that they cannot leave before they see it.
        if not sync.post(self.ctrl):
            raise RuntimeError("could not post a region to new helper threads")
        self.threads = [threading.Thread(target=self._helper, args=(t, seen), daemon=True,
                                         name=f"fmlearn-crew-{t}")
                        for t in range(1, self.n_threads)]
        for th in self.threads:
            th.start()
        _crews.add(self)

    def run(self, part0):
        """Post a region and run ``part0()`` (part 0, a kernel returning True when every
        thread got through the region) in the calling thread."""
        sync = _sync()
        if self.broken:
            raise RuntimeError("this crew's threads failed; make a new one")
        if os.getpid() != self.pid or not sync.post(self.ctrl):
            self._start()  # new helpers, the region posted to them
        try:
            ok = part0()
        except BaseException:
            sync.abort(self.ctrl)
            self.broken = True
            self._join()
            raise
        if not ok:
            self.broken = True
            self._join()
            if self.errors:
                raise self.errors[0]
            raise RuntimeError("a thread of a parallel region failed")

    def close(self):
        """Let the helpers go now (they also leave by themselves after ``linger``): before
        other threads of this process need the cores they spin on (:func:`run_tasks` does
        this for the calling thread's live crews). Only from the thread that runs the crew."""
        if self.threads and os.getpid() == self.pid:
            sync = _sync()
            sync.stop(self.ctrl)
            self._join()
            self.ctrl[sync.POST] |= 1  # gone: the next run starts new helpers
        _crews.discard(self)


def _sync():
    from fmlearn._kernels import sync

    return sync
