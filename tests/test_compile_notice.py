"""Tests for fmlearn._compile_notice: when the "compiling kernels" line is printed.

A real cold compile takes seconds, so the decision logic is tested with fake dispatchers that
mimic the parts of numba's dispatcher and on-disk cache the helper reads; one test checks those
parts on a real kernel.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from fmlearn import _compile_notice as notice
from fmlearn._compile_notice import compile_notice, will_compile

MACHINE = ("x86_64-unknown-linux-gnu", "znver3", "")
CODE = ("bytecode hash", "closure hash")


class FakeIndexFile:
    def __init__(self, index):
        self.index = index

    def _load_index(self):
        if isinstance(self.index, Exception):
            raise self.index
        return self.index


class FakeCache:
    def __init__(self, index, code=CODE):
        self._cache_file = FakeIndexFile(index)
        self.code = code

    def _index_key(self, sig, codegen):
        return (sig, codegen.magic_tuple(), self.code)


class FakeCodegen:
    def magic_tuple(self):
        return MACHINE


class FakeTarget:
    def codegen(self):
        return FakeCodegen()


class FakeDispatcher:
    """``overloads``: signatures compiled in this process; ``disk``: the cache index's keys."""

    def __init__(self, overloads=(), disk=(), cache=True, code=CODE):
        self.overloads = {sig: object() for sig in overloads}
        self.targetctx = FakeTarget()
        if cache:
            index = disk if isinstance(disk, Exception) else {k: "file.nbc" for k in disk}
            self._cache = FakeCache(index, code)
        else:
            self._cache = object()  # numba's NullCache has no index file

    def typeof_pyval(self, value):
        return type(value).__name__


def key(sig, code=CODE, machine=MACHINE):
    return (sig, machine, code)


@pytest.fixture(autouse=True)
def _fresh_process(monkeypatch):
    """Each test starts as a new process would: nothing printed yet, FMLEARN_QUIET unset."""
    monkeypatch.setattr(notice, "_shown", False)
    monkeypatch.delenv(notice.QUIET_ENV, raising=False)


def test_will_compile_without_args():
    assert will_compile(FakeDispatcher())  # nothing anywhere
    assert not will_compile(FakeDispatcher(overloads=[("int",)]))  # compiled in this process
    assert not will_compile(FakeDispatcher(disk=[key(("float",))]))  # in the on-disk cache
    # Entries of another version of the function (edited source, another closure value such
    # as libFM vs FFM, another machine) do not count.
    assert will_compile(FakeDispatcher(disk=[key(("int",), code=("old", ""))]))
    assert will_compile(FakeDispatcher(disk=[key(("int",), machine=("arm64", "m1", ""))]))
    assert will_compile(FakeDispatcher(cache=False))  # caching off: always compiles


def test_will_compile_with_args():
    d = FakeDispatcher(overloads=[("int",)], disk=[key(("float",))])
    assert not will_compile(d, (1,))  # compiled for these types
    assert not will_compile(d, (1.5,))  # cached for these types
    assert will_compile(d, ("text",))  # neither: a new specialization


def test_plain_function_never_compiles():
    assert not will_compile(len)  # e.g. NUMBA_DISABLE_JIT=1 makes kernels plain functions


def test_unreadable_cache_internals_stay_silent():
    assert not will_compile(FakeDispatcher(disk=RuntimeError("numba changed")))


def test_prints_one_line_once_per_process():
    cold, warm = FakeDispatcher(), FakeDispatcher(overloads=[("int",)])
    out = io.StringIO()
    assert not compile_notice(warm, stream=out)
    assert out.getvalue() == ""
    assert compile_notice(warm, cold, seconds=2, stream=out)
    assert out.getvalue() == "fmlearn: compiling kernels, first run only (about 2 s)...\n"
    assert not compile_notice(FakeDispatcher(), stream=out)  # once per process
    assert out.getvalue().count("\n") == 1


def test_args_pairs_and_no_estimate():
    out = io.StringIO()
    d = FakeDispatcher(overloads=[("int",)])
    assert not compile_notice((d, (1,)), stream=out)
    assert compile_notice((d, ("text",)), stream=out)
    assert out.getvalue() == "fmlearn: compiling kernels, first run only...\n"


def test_quiet(monkeypatch, capsys):
    assert not compile_notice(FakeDispatcher(), verbose=False)
    monkeypatch.setenv(notice.QUIET_ENV, "1")
    assert not compile_notice(FakeDispatcher())
    assert capsys.readouterr().err == ""
    assert compile_notice(FakeDispatcher(), verbose=True)  # explicit verbose wins
    assert capsys.readouterr().err.startswith("fmlearn: compiling kernels")


@pytest.mark.parametrize("value", ["", "0"])
def test_quiet_env_off_values(monkeypatch, capsys, value):
    monkeypatch.setenv(notice.QUIET_ENV, value)
    assert compile_notice(FakeDispatcher())
    assert capsys.readouterr().err != ""


def test_real_kernel_is_seen_once_compiled_and_in_the_disk_cache():
    """The numba internals the helper reads exist and mean what it assumes."""
    from fmlearn._kernels.textscan import locate

    buf = np.frombuffer(b"1 0:1\n2 1:1\n", dtype=np.uint8).copy()
    assert tuple(locate(buf, 8)) == (2, 3)
    assert not will_compile(locate)
    assert not will_compile(locate, (buf, 8))
    assert will_compile(locate, (buf, 8.5))  # a float position would be a new compile
    # cache=True kernels are saved to disk when compiled, or were loaded from there.
    assert notice._cached_on_disk(locate, None)
    assert notice._cached_on_disk(locate, tuple(locate.typeof_pyval(a) for a in (buf, 8)))


def test_notice_on_compile_reacts_to_numba_compiling_an_fmlearn_kernel(monkeypatch):
    """The listener prints on numba's "numba:compile" event for fmlearn's kernels only."""
    from numba.core import event

    class Dispatcher:
        def __init__(self, module):
            self.py_func = type("F", (), {"__module__": module})

    out = io.StringIO()
    with notice.notice_on_compile(seconds=3, stream=out):
        with event.trigger_event("numba:compile", data={"dispatcher": Dispatcher("numpy.x")}):
            pass
        assert out.getvalue() == ""  # someone else's kernel
        for _ in range(2):
            with event.trigger_event("numba:compile",
                                     data={"dispatcher": Dispatcher("fmlearn._kernels.sgd")}):
                pass
    assert out.getvalue() == "fmlearn: compiling kernels, first run only (about 3 s)...\n"
    # Outside the block, and with FMLEARN_QUIET, nothing is listening.
    monkeypatch.setattr(notice, "_shown", False)
    with event.trigger_event("numba:compile",
                             data={"dispatcher": Dispatcher("fmlearn._kernels.sgd")}):
        pass
    monkeypatch.setenv(notice.QUIET_ENV, "1")
    with notice.notice_on_compile(stream=out):
        with event.trigger_event("numba:compile",
                                 data={"dispatcher": Dispatcher("fmlearn._kernels.sgd")}):
            pass
    assert out.getvalue().count("\n") == 1


def test_a_first_fit_with_an_empty_cache_says_it_compiles(tmp_path):
    """End to end: a fresh process and an empty numba cache print the line once; a second
    process finds the cache filled and prints nothing."""
    import os
    import subprocess
    import sys

    code = ("import numpy as np; from fmlearn import FMRegressor\n"
            "X = np.eye(20); FMRegressor(n_factors=3, max_iter=2, tol=None).fit(X, X[:, 0])")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    env.pop(notice.QUIET_ENV, None)
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, check=True).stderr for _ in range(2)]
    assert runs[0].count("fmlearn: compiling kernels, first run only") == 1, runs[0]
    assert "compiling" not in runs[1], runs[1]
