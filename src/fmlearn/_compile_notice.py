"""One line on stderr before numba compiles kernels that are in neither memory nor its cache.

With an empty numba cache, a first call can spend seconds compiling with no output at all.
Call :func:`compile_notice` just before calling the kernels::

    compile_notice(kernel_a, (kernel_b, args_b), seconds=2)
    kernel_a(...)

It prints ``fmlearn: compiling kernels, first run only (about 2 s)...`` once per process, if
a kernel will compile: not yet compiled in this process, and no entry for it in numba's
on-disk cache. It is silent with ``verbose=False`` or the environment variable
``FMLEARN_QUIET`` set (to anything but ``0`` or an empty string). When the cache is warm it
costs a dictionary look-up per kernel after the first call, and reading numba's small index
file before it.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

__all__ = ["compile_notice", "notice_on_compile", "will_compile"]

QUIET_ENV = "FMLEARN_QUIET"
MESSAGE = "fmlearn: compiling kernels, first run only{about}..."

_shown = False  # the line is printed at most once per process


def will_compile(dispatcher, args=None):
    """Whether calling a numba dispatcher would compile it.

    Parameters
    ----------
    dispatcher : numba dispatcher
        A ``numba.njit`` function. Anything else (e.g. with ``NUMBA_DISABLE_JIT``, a plain
        function) never compiles.
    args : tuple, optional
        The call's arguments: then only a compiled or cached version for exactly their types
        counts. Default: any version counts (enough for kernels that are only ever called
        with one set of types).

    Returns
    -------
    bool
        False when a matching version is compiled in this process or stored in numba's
        on-disk cache (numba will load it), else True.
    """
    overloads = getattr(dispatcher, "overloads", None)
    if overloads is None:
        return False
    sig = None
    if args is None:
        if overloads:
            return False
    else:
        sig = tuple(dispatcher.typeof_pyval(a) for a in args)
        if sig in overloads:
            return False
    return not _cached_on_disk(dispatcher, sig)


def _cached_on_disk(dispatcher, sig):
    """Whether numba's cache index holds ``dispatcher`` for ``sig`` (for any, if None).

    Reads the index the way numba's ``Cache.load_overload`` does (a stale index is empty);
    its keys are ``(signature, machine, (bytecode hash, closure hash))``.
    """
    cache = getattr(dispatcher, "_cache", None)
    index_file = getattr(cache, "_cache_file", None)
    if index_file is None:  # caching off (numba's NullCache)
        return False
    try:
        index = index_file._load_index()
        key = cache._index_key(sig, dispatcher.targetctx.codegen())
    except Exception:  # numba's internals changed: assume cached, stay silent
        return True
    if sig is not None:
        return key in index
    return any(k[1:] == key[1:] for k in index)


def compile_notice(*dispatchers, seconds=None, verbose=None, stream=None):
    """Print one short line if calling any of ``dispatchers`` will compile.

    Parameters
    ----------
    *dispatchers : numba dispatcher or (dispatcher, args)
        The kernels about to be called; with ``args``, see :func:`will_compile`.
    seconds : float, optional
        Rough compile time to announce ("about N s").
    verbose : bool, optional
        False: never print. True: print even if ``FMLEARN_QUIET`` is set. Default: print
        unless ``FMLEARN_QUIET`` is set.
    stream : file, optional
        Default ``sys.stderr``.

    Returns
    -------
    bool
        Whether the line was printed (it is printed at most once per process).
    """
    if _silent(verbose):
        return False
    calls = (d if isinstance(d, tuple) else (d, None) for d in dispatchers)
    if not any(will_compile(d, args) for d, args in calls):
        return False
    return _show(seconds, stream)


def _silent(verbose) -> bool:
    if _shown or verbose is False:
        return True
    return verbose is None and os.environ.get(QUIET_ENV, "0") not in ("", "0")


def _show(seconds, stream=None) -> bool:
    global _shown
    if _shown:  # another thread's compile got here first
        return False
    _shown = True
    about = f" (about {seconds:.0f} s)" if seconds else ""
    print(MESSAGE.format(about=about), file=stream or sys.stderr, flush=True)
    return True


@contextmanager
def notice_on_compile(seconds=None, verbose=None, stream=None):
    """Within the block, print the line as soon as numba starts compiling an fmlearn kernel.

    For code paths whose kernels are picked deep inside (a fit builds its epoch kernel per
    family, number of factors, optimizer and thread count): numba announces a compile only
    after missing its on-disk cache, so a warm cache prints nothing and costs nothing. Same
    parameters as :func:`compile_notice`.
    """
    if _silent(verbose):
        yield
        return
    try:
        from numba.core import event
    except ImportError:  # numba's internals changed: stay silent
        yield
        return

    class _Listener(event.Listener):
        def on_start(self, ev):
            dispatcher = (ev.data or {}).get("dispatcher")
            module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
            if module.startswith("fmlearn."):
                _show(seconds, stream)

        def on_end(self, ev):
            pass

    with event.install_listener("numba:compile", _Listener()):
        yield
