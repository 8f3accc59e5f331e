"""The spinning barrier and the lingering helper threads (fmlearn._kernels.sync,
fmlearn._parallel.Crew) that fuse the MCMC/ALS sweep's parallel regions."""

import threading

import numpy as np
import pytest

from fmlearn._kernels import sync
from fmlearn._kernels._jit import jit
from fmlearn._parallel import Crew


@jit(cache=False)
def _rounds(ctrl, n_threads, t, reps, log):
    # Each round, every thread writes its slot, meets the others, then checks that all of
    # this round's slots are written: a barrier that let a thread through early fails it.
    for r in range(reps):
        log[r, t] = r + 1
        if not sync.barrier(ctrl, n_threads):
            return -1
        for u in range(n_threads):
            if log[r, u] != r + 1:
                return r
        if not sync.barrier(ctrl, n_threads):
            return -1
    return reps


@pytest.mark.parametrize("n_threads", [2, 3])
def test_barrier_holds_every_thread_until_all_arrive(n_threads):
    reps = 2000
    ctrl = np.zeros(sync.CTRL_SIZE, dtype=np.int64)
    log = np.zeros((reps, n_threads), dtype=np.int64)
    out = [None] * n_threads

    def run(t):
        out[t] = _rounds(ctrl, n_threads, t, reps, log)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert out == [reps] * n_threads


def test_abort_releases_a_waiting_thread():
    ctrl = np.zeros(sync.CTRL_SIZE, dtype=np.int64)
    log = np.zeros((1, 2), dtype=np.int64)
    out = []
    th = threading.Thread(target=lambda: out.append(_rounds(ctrl, 2, 0, 1, log)))
    th.start()  # waits for a second thread that never comes
    sync.abort(ctrl)
    th.join(timeout=30)
    assert not th.is_alive() and out == [-1]


@jit(cache=False)
def _add_loop(t, seen, linger, ctrl, n_threads, values, total):
    # A crew helper: its share of every posted region, until none comes for `linger` checks.
    done = 0
    while sync.wait_post(ctrl, seen, linger):
        seen += 1
        total[t] += values[0]
        if not sync.barrier(ctrl, n_threads):
            return -1
        done += 1
    return done


@jit(cache=False)
def _add_part0(ctrl, n_threads, values, total):
    total[0] += values[0]
    return sync.barrier(ctrl, n_threads)


def test_crew_runs_every_region_and_restarts_after_its_helpers_leave():
    n = 3
    ctrl = np.zeros(sync.CTRL_SIZE, dtype=np.int64)
    values, total = np.zeros(1, dtype=np.int64), np.zeros(n, dtype=np.int64)
    crew = Crew(n, lambda t, seen: _add_loop(t, seen, 2_000, ctrl, n, values, total), ctrl)
    expected = 0
    for region in range(1, 40):
        values[0] = region  # between regions the caller changes the arrays' contents
        crew.run(lambda: _add_part0(ctrl, n, values, total))
        expected += region
        if region % 10 == 0:  # let the helpers leave (linger ran out), then run again
            for th in crew.threads:
                th.join(timeout=30)
            assert not any(th.is_alive() for th in crew.threads)
    crew.close()
    assert total.tolist() == [expected] * n


def test_crew_reports_a_failing_helper_instead_of_hanging():
    ctrl = np.zeros(sync.CTRL_SIZE, dtype=np.int64)

    def broken(t, seen):
        raise ValueError("helper broke")

    crew = Crew(2, broken, ctrl)
    with pytest.raises(ValueError, match="helper broke"):
        crew.run(lambda: sync.barrier(ctrl, 2))
    assert crew.broken
