"""A spinning barrier for the threads of one parallel region (arrays in, no validation).

A parallel region of :func:`fmlearn._parallel.run_tasks` costs 65-120 us on the 2-core
machine (a helper thread's wake-up through Python's queues and the GIL), a tenth of the work
of a region of the MCMC sweep on MovieLens 100K. Threads that are already in one compiled call
can instead meet at a barrier that spins on a shared counter: about a microsecond. Used by the
fused sweep (:func:`fmlearn._kernels.cd.sweep_team`).

``ctrl`` is an int64 array of at least ``CTRL_SIZE`` (zeros before the region): the arrival
count, the barrier's generation and an abort flag, each on its own cache line. A thread that
waits spins with the CPU's pause hint, then gives its core away (``sched_yield``) between
checks, so a loaded machine does not lose time slices to spinning. A wait has no time limit (one
thread may legitimately sweep a long run alone while the others wait); a thread whose task
fails must call :func:`abort`, which makes every wait of the region return False instead of
hanging.
"""

import platform
import sys

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from fmlearn._kernels._jit import jit

COUNT, GENERATION, ABORT, POST, STOP, MODE = 0, 8, 16, 24, 32, 40  # 64 bytes apart
CTRL_SIZE = 48
# Checks with the pause hint before a waiting thread starts yielding its core (tens of us).
SPIN_BEFORE_YIELD = 4096
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
_YIELD = "SwitchToThread" if sys.platform == "win32" else "sched_yield"


def _slot_op(arr, index, values, returns, op):
    """The typing and code of an intrinsic ``f(arr, index, *values)`` on one int64 slot of
    ``arr``: ``op(builder, ptr, *values)`` builds it from the slot's address and the values
    cast to int64."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64):
        return None
    sig = returns(arr, index, *([types.int64] * len(values)))

    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
        vals = [context.cast(builder, v, t, types.int64)
                for v, t in zip(args[2:], sig.args[2:], strict=True)]
        out = op(builder, ptr, *vals)
        return context.get_dummy_value() if out is None else out

    return sig, codegen


def _load(builder, ptr):
    return builder.load_atomic(ptr, "acquire", 8)


def _store(builder, ptr, val):
    builder.store_atomic(val, ptr, "release", 8)


def _add(builder, ptr, val):
    return builder.atomic_rmw("add", ptr, val, "seq_cst")


def _cas(builder, ptr, expected, val):
    return builder.extract_value(builder.cmpxchg(ptr, expected, val, "seq_cst", "seq_cst"), 0)


@intrinsic
def atomic_load(typingctx, arr, index):
    """``arr[index]`` read with acquire ordering (never hoisted out of a loop)."""
    return _slot_op(arr, index, (), types.int64, _load)


@intrinsic
def atomic_store(typingctx, arr, index, value):
    """``arr[index] = value`` with release ordering."""
    return _slot_op(arr, index, (value,), types.void, _store)


@intrinsic
def atomic_add(typingctx, arr, index, value):
    """``arr[index] += value`` atomically; returns the value before."""
    return _slot_op(arr, index, (value,), types.int64, _add)


@intrinsic
def atomic_cas(typingctx, arr, index, expected, value):
    """``arr[index] = value`` if it holds ``expected``, atomically; returns the value before
    (``expected`` where it succeeded)."""
    return _slot_op(arr, index, (expected, value), types.int64, _cas)


@intrinsic
def cpu_relax(typingctx):
    """The spin-wait hint (x86 ``pause``; nothing elsewhere)."""
    sig = types.void()

    def codegen(context, builder, sig, args):
        if _X86:
            fn = builder.module.declare_intrinsic("llvm.x86.sse2.pause",
                                                  fnty=ir.FunctionType(ir.VoidType(), []))
            builder.call(fn, [])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def yield_core(typingctx):
    """``sched_yield()`` (Windows: ``SwitchToThread()``): let another runnable thread have
    this core."""
    sig = types.void()

    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(ir.IntType(32), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _YIELD)
        builder.call(fn, [])
        return context.get_dummy_value()

    return sig, codegen


@jit
def barrier(ctrl, n_threads):
    """Wait until all ``n_threads`` threads have called this (generation counting: reusable
    at once). Returns False if the region was aborted (:func:`abort`)."""
    gen = atomic_load(ctrl, GENERATION)
    if atomic_add(ctrl, COUNT, 1) == n_threads - 1:
        atomic_store(ctrl, COUNT, 0)
        atomic_add(ctrl, GENERATION, 1)
        return True
    spins = 0
    while atomic_load(ctrl, GENERATION) == gen:
        if atomic_load(ctrl, ABORT) != 0:
            return False
        if spins < SPIN_BEFORE_YIELD:
            spins += 1
            cpu_relax()
        else:
            yield_core()
    return True


@jit
def abort(ctrl):
    """Release every thread waiting at the barrier of ``ctrl``: their calls return False."""
    atomic_store(ctrl, ABORT, 1)


# -- A helper thread that stays in compiled code between parallel regions. ``ctrl[POST]`` holds
# ``(regions posted << 1) | gone``: the caller posts a region by adding 2 unless the helper has
# set ``gone``; a helper that waited ``linger`` checks in vain leaves by setting ``gone``, with
# a compare-and-swap that fails if a region was posted meanwhile, so a posted region is never
# left without its helper.
@jit
def post(ctrl):
    """Post the next region to the lingering helper. Returns False if it has left (start a new
    one: :func:`rejoin`, then post again)."""
    while True:
        w = atomic_load(ctrl, POST)
        if w & 1:
            return False
        if atomic_cas(ctrl, POST, w, w + 2) == w:
            return True


@jit
def rejoin(ctrl):
    """Clear ``gone`` before a new helper starts; returns the number of regions posted so far
    (the new helper's first ``seen``)."""
    w = atomic_load(ctrl, POST)
    atomic_store(ctrl, POST, w & ~1)
    return w >> 1


@jit
def wait_post(ctrl, seen, linger):
    """In the helper: wait for region ``seen + 1``. True when it is posted; False when the
    helper should leave: asked to (``ctrl[STOP]``), the region aborted, or nothing posted
    within ``linger`` checks (then ``gone`` is set)."""
    spins = 0
    while True:
        w = atomic_load(ctrl, POST)
        if (w >> 1) > seen:
            return True
        if atomic_load(ctrl, STOP) != 0 or atomic_load(ctrl, ABORT) != 0:
            atomic_cas(ctrl, POST, w, w | 1)
            return False
        spins += 1
        if spins > linger:
            if atomic_cas(ctrl, POST, w, w | 1) == w:
                return False
        elif spins < SPIN_BEFORE_YIELD:
            cpu_relax()
        else:
            yield_core()


@jit
def stop(ctrl):
    """Ask a lingering helper to leave now."""
    atomic_store(ctrl, STOP, 1)
