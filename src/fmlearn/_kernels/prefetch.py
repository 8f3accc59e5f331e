"""Software prefetch for numba kernels.

SGD over sparse rows reads parameter rows at random addresses; on large feature spaces each is a
cache miss that stalls the update. Asking the CPU to fetch the parameter rows of a row a few
steps ahead hides most of that latency. ``prefetch`` compiles to LLVM's ``llvm.prefetch`` (a
hint: never faults, no effect on results).
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def prefetch(typingctx, arr, index):
    """Hint the CPU to load the cache line holding element ``index`` of ``arr``.

    ``arr`` is a C-contiguous array of any dimension, ``index`` a flat (row-major) offset.
    """
    ok = isinstance(arr, types.Array) and arr.layout == "C" and isinstance(index, types.Integer)
    if not ok:
        return None
    sig = types.void(arr, index)

    def codegen(context, builder, signature, args):
        aryty, idxty = signature.args
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = context.cast(builder, args[1], idxty, types.intp)
        ptr = builder.gep(ary.data, [idx])
        i8p = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # rw=1 (we will write), locality=3 (keep in all cache levels), cache type=1 (data).
        builder.call(fn, [i8p, i32(1), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen
