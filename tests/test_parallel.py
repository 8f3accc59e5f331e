"""fmlearn._parallel: kept helper threads, results in order, errors after every task ended."""

import threading
import time

import pytest

from fmlearn._parallel import run_blocks, run_tasks


def test_run_blocks_covers_the_items_in_order():
    assert run_blocks(lambda a, b: (a, b), 10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert run_blocks(lambda a, b: (a, b), 2, 8) == [(0, 1), (1, 2)]
    assert run_blocks(lambda a, b: (a, b), 5, 1) == [(0, 5)]


def test_run_tasks_uses_other_threads_and_keeps_them():
    def who():
        time.sleep(0.01)
        return threading.get_ident()

    first = run_tasks([who, who, who])
    assert first[0] == threading.get_ident()  # the caller runs the first task
    assert len(set(first)) == 3
    again = run_tasks([who, who, who])
    assert set(again[1:]) == set(first[1:])  # the same helpers, not new threads


def test_an_error_is_raised_after_every_task_ended():
    done = []

    def slow():
        time.sleep(0.05)
        done.append(1)

    def boom():
        raise RuntimeError("task failed")

    with pytest.raises(RuntimeError, match="task failed"):
        run_tasks([boom, slow, slow])
    assert done == [1, 1]
    assert run_tasks([lambda: 1, lambda: 2]) == [1, 2]  # the helpers still work


def test_nested_and_concurrent_calls_do_not_deadlock():
    def inner():
        return sum(run_tasks([lambda: 1, lambda: 2]))

    assert run_tasks([inner, inner]) == [3, 3]
    out = []
    threads = [threading.Thread(target=lambda: out.append(run_tasks([inner, inner])))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert out == [[3, 3]] * 3
