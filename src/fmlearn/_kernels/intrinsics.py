"""Unchecked element access and short-vector building blocks for the SGD kernels (FM, FFM)
and the coordinate sweep's row copies (:func:`_transpose4`).

numba's own indexing costs the row loops of the SGD kernels in two ways: a signed index makes
it add a negative-index fix-up to every access (which also kept LLVM from vectorizing), and a
helper that takes an array makes it increment and decrement the array's atomic reference count
around each call unless it can prove the pair balanced. The intrinsics here compile to plain
loads and stores; none of them checks anything, so indices and addresses must be valid.

Two ways of addressing:

- ``_ld``/``_st``: a flat index into a C-contiguous array.
- ``_tld``/``_tst`` and the vector operations built on :func:`_addr_ptr`: an *element address*,
  the byte address divided by the item size (:func:`_eaddr`). One integer then reaches any
  allocation of the dtype (the parameter table, a thread's private copies of some of its rows,
  a scratch row) through the same code. The first argument only gives the dtype: an array, or
  the number class ``table.dtype.type``, with which an inlined helper carries the dtype without
  taking an array (and its reference count) along.

The vector helpers (``_splat``, ``_hsum``, ``_vdiv_sqrt``, ...) build explicit LLVM vectors
inside an intrinsic's code generator: a short runtime-length loop left LLVM's vectorizer with a
trip count below its vector width (scalar code), a literal length made it vectorize across the
wrong loop; an explicit ``<k x float>`` is one load, one multiply, one store.
"""

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_I32 = ir.IntType(32)


# ------------------------------------------------------------------------------ typing helpers
def _is_c_array(arr):
    return isinstance(arr, types.Array) and arr.layout == "C"


def _ints(*tys):
    return all(isinstance(t, types.Integer) for t in tys)


def _elt_type(ty):
    """The element type that ``ty`` addresses: a C-contiguous array's dtype, the type of a
    number class (``table.dtype.type``), or None."""
    if _is_c_array(ty):
        return ty.dtype
    if isinstance(ty, types.NumberClass):
        return ty.instance_type
    return None


def _is_float_carrier(ty):
    """Whether ``ty`` (array or number class) addresses floats, for the vector operations."""
    return isinstance(_elt_type(ty), types.Float)


def _width(ty):
    """The literal vector width of a ``width`` argument, or None."""
    return ty.literal_value if isinstance(ty, types.IntegerLiteral) else None


# ------------------------------------------------------------------------------ code generation
def _elt_ptr(context, builder, aryty, ary, index, indexty):
    """Pointer to flat element ``index`` of a C-contiguous array, without wraparound."""
    data = context.make_array(aryty)(context, builder, ary).data
    idx = context.cast(builder, index, indexty, types.intp)
    return builder.gep(data, [idx], inbounds=True)


def _addr_ptr(context, builder, carrier, addr, addrty, width=0):
    """Pointer to the element (``width`` 0) or vector at element address ``addr``.

    ``carrier``: the numba type (array or number class) whose element type is addressed.
    """
    elt = context.get_data_type(_elt_type(carrier))
    size = context.get_abi_sizeof(elt)
    byte = builder.mul(context.cast(builder, addr, addrty, types.intp),
                       ir.Constant(context.get_value_type(types.intp), size))
    ty = ir.VectorType(elt, width) if width else elt
    return builder.inttoptr(byte, ty.as_pointer())


def _align(context, carrier):
    # Element alignment only: the vectors of a row start anywhere.
    return context.get_abi_sizeof(context.get_data_type(_elt_type(carrier)))


def _splat(builder, value, width):
    vt = ir.VectorType(value.type, width)
    v = builder.insert_element(ir.Constant(vt, ir.Undefined), value, _I32(0))
    return builder.shuffle_vector(v, ir.Constant(vt, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, width), [0] * width))


def _concat(builder, a, b, width):
    return builder.shuffle_vector(
        a, b, ir.Constant(ir.VectorType(_I32, 2 * width), list(range(2 * width))))


def _half(builder, v, width, upper):
    first = width if upper else 0
    return builder.shuffle_vector(
        v, ir.Constant(v.type, ir.Undefined),
        ir.Constant(ir.VectorType(_I32, width), list(range(first, first + width))))


def _hsum(builder, v, width):
    """Sum of the lanes of ``v``, by halving (a serial chain of adds was slow at width 16).

    ``width`` must be a power of 2.
    """
    while width > 1:
        width //= 2
        v = builder.fadd(_half(builder, v, width, False), _half(builder, v, width, True))
    return builder.extract_element(v, _I32(0))


def _vsqrt(builder, v):
    suffix = "f32" if v.type.element == ir.FloatType() else "f64"
    fn = builder.module.declare_intrinsic(
        f"llvm.sqrt.v{v.type.count}{suffix}", fnty=ir.FunctionType(v.type, [v.type]))
    return builder.call(fn, [v])


def _has_avx(context) -> bool:
    """Whether the code being generated targets x86 with AVX (numba's target features)."""
    features = getattr(context.codegen(), "_tm_features", "") or ""
    return "+avx," in features + ","


def _vdiv_sqrt(context, builder, x, v):
    """``x / sqrt(v)``, for AdaGrad steps.

    On x86 with AVX and float32, ``x * rsqrt(v)`` with the hardware estimate (relative error
    below 1.5 * 2**-12) and no Newton step, as libffm does (``_mm_rsqrt_ps``): the Newton step
    LLVM adds to an exact division cost a sixth of the FFM AdaGrad epoch, and a step size good
    to 12 bits changes nothing in SGD. Elsewhere (and in float64) the exact quotient.
    """
    n = v.type.count
    if not (v.type.element == ir.FloatType() and n % 4 == 0 and _has_avx(context)):
        return builder.fdiv(x, _vsqrt(builder, v))
    width = 8 if n % 8 == 0 else 4
    vt = ir.VectorType(ir.FloatType(), width)
    name = "llvm.x86.avx.rsqrt.ps.256" if width == 8 else "llvm.x86.sse.rsqrt.ps"
    fn = builder.module.declare_intrinsic(name, fnty=ir.FunctionType(vt, [vt]))
    parts = []
    for first in range(0, n, width):
        lanes = ir.Constant(ir.VectorType(_I32, width), list(range(first, first + width)))
        part = v if n == width else builder.shuffle_vector(v, ir.Constant(v.type, ir.Undefined),
                                                           lanes)
        parts.append(builder.call(fn, [part]))
    while len(parts) > 1:  # concatenate back, pairwise
        parts = [_concat(builder, parts[i], parts[i + 1], parts[i].type.count)
                 for i in range(0, len(parts), 2)]
    return builder.fmul(x, parts[0])


# ------------------------------------------------------------------------------ intrinsics
@intrinsic
def _ld(typingctx, arr, index):
    """``arr.flat[index]`` for a C-contiguous array; ``index`` must be in range."""
    if not (_is_c_array(arr) and _ints(index)):
        return None

    def codegen(context, builder, sig, args):
        return builder.load(_elt_ptr(context, builder, sig.args[0], args[0], args[1],
                                     sig.args[1]))

    return arr.dtype(arr, index), codegen


@intrinsic
def _st(typingctx, arr, index, value):
    """``arr.flat[index] = value`` for a C-contiguous array; ``index`` must be in range."""
    if not (_is_c_array(arr) and _ints(index) and isinstance(value, types.Number)):
        return None

    def codegen(context, builder, sig, args):
        aryty, indexty, valty = sig.args
        val = context.cast(builder, args[2], valty, aryty.dtype)
        builder.store(val, _elt_ptr(context, builder, aryty, args[0], args[1], indexty))
        return context.get_dummy_value()

    return types.void(arr, index, value), codegen


@intrinsic
def _eaddr(typingctx, arr):
    """The element address of ``arr``'s first element (its byte address / item size)."""
    if not _is_c_array(arr):
        return None

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        intp = context.get_value_type(types.intp)
        size = context.get_abi_sizeof(context.get_data_type(sig.args[0].dtype))
        return builder.udiv(builder.ptrtoint(data, intp), ir.Constant(intp, size))

    return types.intp(arr), codegen


@intrinsic
def _tld(typingctx, table, addr):
    """The element at element address ``addr``, of the dtype of ``table`` (array or number
    class)."""
    dtype = _elt_type(table)
    if not (dtype is not None and _ints(addr)):
        return None

    def codegen(context, builder, sig, args):
        return builder.load(_addr_ptr(context, builder, sig.args[0], args[1], sig.args[1]))

    return dtype(table, addr), codegen


@intrinsic
def _tst(typingctx, table, addr, value):
    """Store ``value`` at element address ``addr`` as the dtype of ``table`` (array or number
    class)."""
    dtype = _elt_type(table)
    if not (dtype is not None and _ints(addr) and isinstance(value, types.Number)):
        return None

    def codegen(context, builder, sig, args):
        _, addrty, valty = sig.args
        val = context.cast(builder, args[2], valty, dtype)
        builder.store(val, _addr_ptr(context, builder, sig.args[0], args[1], addrty))
        return context.get_dummy_value()

    return types.void(table, addr, value), codegen


@intrinsic
def _transpose4(typingctx, carrier, a0, a1, a2, a3, d0, d1, d2, d3):
    """A 4 x 4 transpose between element addresses: the vectors of 4 elements at ``a0 .. a3``
    are the rows of a block whose columns are stored as the vectors at ``d0 .. d3``. Eight
    shuffles instead of sixteen scalar loads and stores (the feature-major sweep's copies of
    a column's rows into and out of its scratch, cd._gather / cd._scatter)."""
    if not (_is_float_carrier(carrier) and _ints(a0, a1, a2, a3, d0, d1, d2, d3)):
        return None

    def codegen(context, builder, sig, args):
        cty = sig.args[0]
        align = _align(context, cty)
        r = [builder.load(_addr_ptr(context, builder, cty, args[1 + i], sig.args[1 + i], 4),
                          align=align) for i in range(4)]

        def lanes(order):
            return ir.Constant(ir.VectorType(_I32, 4), order)

        # t0 = (r0[0], r1[0], r0[2], r1[2]), t1 = (r0[1], r1[1], r0[3], r1[3]); t2, t3 alike
        t0 = builder.shuffle_vector(r[0], r[1], lanes([0, 4, 2, 6]))
        t1 = builder.shuffle_vector(r[0], r[1], lanes([1, 5, 3, 7]))
        t2 = builder.shuffle_vector(r[2], r[3], lanes([0, 4, 2, 6]))
        t3 = builder.shuffle_vector(r[2], r[3], lanes([1, 5, 3, 7]))
        cols = (builder.shuffle_vector(t0, t2, lanes([0, 1, 4, 5])),
                builder.shuffle_vector(t1, t3, lanes([0, 1, 4, 5])),
                builder.shuffle_vector(t0, t2, lanes([2, 3, 6, 7])),
                builder.shuffle_vector(t1, t3, lanes([2, 3, 6, 7])))
        for i, c in enumerate(cols):
            builder.store(c, _addr_ptr(context, builder, cty, args[5 + i], sig.args[5 + i], 4),
                          align=align)
        return context.get_dummy_value()

    return types.void(carrier, a0, a1, a2, a3, d0, d1, d2, d3), codegen
