"""Optimizer update rules: one rule per optimizer code, in each form the epoch kernels need.

Every SGD-type epoch kernel (FM, FFM, FwFM, HOFM, multinomial, ordinal, ranking) computes the
loss gradient ``g`` of a parameter ``w`` and hands it, with ``w``'s solver state, to the rule of
its optimizer ``code``; no kernel writes out an update itself. A new optimizer is a new code
here (its rule in :func:`step` and :func:`_vrule`, its state count in :data:`N_STATES`) and one
solver module, and every family has it.

Codes and rules (``lr`` the learning rate, ``l2`` the L2 strength of ``w``'s group):

- :data:`SGD`: ``w -= lr (g + l2 w)``; no state.
- :data:`ADAGRAD` (Duchi et al. 2011): ``G = g + l2 w``, ``a += G^2``, ``w -= lr G / sqrt(a)``;
  one state, the sum ``a`` (started at :data:`ADAGRAD_INITIAL_ACCUMULATOR`).
- :data:`FTRL` (FTRL-Proximal, McMahan et al. 2013, per-coordinate rates): states ``z`` and
  ``n``; ``sigma = (sqrt(n + g^2) - sqrt(n)) / lr``, ``z += g - sigma w``, ``n += g^2``, then
  ``w = 0`` if ``|z| <= l1``, else ``w = -(z - sign(z) l1) / ((beta + sqrt(n)) / lr + l2)``,
  with ``beta`` = :data:`FTRL_BETA`. L1 and L2 live in this closed form, not in the gradient:
  L1 makes weights exactly zero. Kernels pass ``l1`` for the linear weights only.

State layout. A parameter's state values sit at a constant stride from each other: in the
parameter table (see :mod:`fmlearn._kernels.fm`) a row is ``[P parameter columns | state 0 of
each | state 1 of each]``, so the states of column ``c`` are at ``c + P`` and ``c + 2P`` and one
feature's update stays in one contiguous row. The same holds for the biases (``w0`` of ``C``
entries, their state array ``[state 0 of each | state 1 of each]``), FwFM's field-pair weights
and the ordinal cutpoints.

Forms, all inlined:

- :func:`step`: the rule on values (a parameter, its two state values, the gradient) in a
  given number class; everything else is built on it.
- :func:`addr_step`: the parameter at an element address (see
  :mod:`fmlearn._kernels.intrinsics`) and its states at another address and stride. Takes no
  array, so the FM and FFM row loops call it without reference counting.
  :func:`addr_step_toward` runs the rule on ``w - center`` (L2 towards ``center``; FwFM's
  field-pair weights, towards 1); :func:`addr_step` is it with ``center = 0``.
- :func:`coord_step` (``table[i, c]``) and :func:`bias_step` (``w0[c]``, computed in float64)
  for kernels that index arrays.
- :func:`_vstep` (FM) and :func:`_vpair` (FFM): the rule on explicit LLVM vectors of ``k`` (or
  ``2k``) lanes, whose loss gradients they compute first; both emit :func:`_vrule`.

The code reaches the rules as a literal where it matters: the epoch kernels are built per code
(closures over the int, as over the number of factors), so every rule folds to its own
straight-line code. A branch inside a factor loop kept LLVM from vectorizing it, and the
vector forms refuse a code that is not a literal.
"""

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from fmlearn._kernels._jit import jit
from fmlearn._kernels.intrinsics import (
    _addr_ptr,
    _align,
    _concat,
    _eaddr,
    _elt_type,
    _half,
    _ints,
    _is_c_array,
    _is_float_carrier,
    _splat,
    _tld,
    _tst,
    _vdiv_sqrt,
    _vsqrt,
    _width,
)

SGD = 0
ADAGRAD = 1
FTRL = 2
# State values per parameter, by code.
N_STATES = (0, 1, 2)

# AdaGrad accumulators start here rather than at 0 so that the first steps are not of size
# ``learning_rate`` in every coordinate whatever the gradient (libffm and xLearn start at 1).
ADAGRAD_INITIAL_ACCUMULATOR = 1.0
# FTRL-Proximal's beta: the per-coordinate rate is lr / (beta + sqrt(n)). McMahan et al. find
# beta = 1 usually good enough; it only matters for the first few steps of a coordinate.
FTRL_BETA = 1.0



def state_count(code: int) -> int:
    """State values per parameter of optimizer ``code``."""
    return N_STATES[code]


def by_code(make):
    """``kernel(code)``: ``make(code)``, built on first use per optimizer code and kept.

    For epoch kernels built per code (a closure over the int, which numba's cache keys on).
    """
    built: dict = {}

    def kernel(code):
        code = int(code)
        found = built.get(code)
        if found is None:
            # Threads starting their first epoch at once all get the same dispatcher.
            found = built.setdefault(code, make(code))
        return found

    return kernel


@jit(inline="always")
def typed_args(T, hp):
    """A kernel's hyper-parameters ``hp`` (the solver's ``kernel_args``: learning rate, L1 on
    the linear weights, L2 on the linear weights, L2 on the factors) as numbers of class ``T``
    (the table's dtype)."""
    return T(hp[0]), T(hp[1]), T(hp[2]), T(hp[3])


# ------------------------------------------------------------------------------ scalar forms
@jit(inline="always")
def step(C, code, w, s1, s2, g, lr, l1, l2):
    """``(w, s1, s2)`` after one step of rule ``code`` with loss gradient ``g``.

    ``s1``, ``s2``: ``w``'s state values (unused ones are passed through); every value is of
    the number class ``C`` (the caller converts). ``l1`` is used by FTRL only.
    """
    if code == FTRL:
        n = s2 + g * g
        root = math.sqrt(n)
        z = s1 + g - (root - math.sqrt(s2)) / lr * w
        if abs(z) <= l1:
            return C(0.0), z, n
        shrunk = z - l1 if z > 0 else z + l1
        return C(-lr * shrunk / (C(FTRL_BETA) + lr * l2 + root)), z, n
    if code == ADAGRAD:
        grad = g + l2 * w
        acc = s1 + grad * grad
        return C(w - lr * grad / math.sqrt(acc)), acc, s2
    return C(w - lr * (g + l2 * w)), s1, s2


@jit(inline="always")
def addr_step(T, S, C, code, c, s, soff, g, lr, l1, l2):
    """:func:`step` of the parameter at element address ``c`` (number class ``T``).

    Its states are at element addresses ``s`` and ``s + soff`` (class ``S``); the step is
    computed in class ``C``. Only the states the code has are read and written.
    """
    # A literal 0 centre folds away (fast-math ``nsz``): the same code as a plain step.
    addr_step_toward(T, S, C, code, c, s, soff, g, lr, l1, l2, 0.0)


@jit(inline="always")
def addr_step_toward(T, S, C, code, c, s, soff, g, lr, l1, l2, center):
    """:func:`addr_step` with the penalties measured from ``center`` instead of 0.

    The rule runs on ``w - center``: L2 pulls ``w`` towards ``center`` (penalty
    ``l2 / 2 (w - center)^2``), FTRL's closed form and L1 give ``center`` where they would give
    0, and FTRL's ``z`` is that of ``w - center`` (start it from ``w - center``). FwFM's
    field-pair weights use it with ``center = 1``: a prior towards a plain FM.
    """
    s1 = C(0.0)
    s2 = C(0.0)
    if code != SGD:
        s1 = C(_tld(S, s))
    if code == FTRL:
        s2 = C(_tld(S, s + soff))
    cen = C(center)
    w, s1, s2 = step(C, code, C(_tld(T, c)) - cen, s1, s2, C(g), C(lr), C(l1), C(l2))
    _tst(T, c, w + cen)
    if code != SGD:
        _tst(S, s, s1)
    if code == FTRL:
        _tst(S, s + soff, s2)


@jit(inline="always")
def coord_step(table, i, c, off, code, g, lr, l1, l2):
    """:func:`step` of ``table[i, c]`` (C-contiguous), its states at columns ``c + off`` and
    ``c + 2 off`` (``off`` = the table's parameter columns); in the table's dtype."""
    T = table.dtype.type
    a = _eaddr(table) + i * table.shape[1] + c
    addr_step(T, T, T, code, a, a + off, off, g, lr, l1, l2)


@jit(inline="always")
def bias_step(w0, state, c, code, g, lr):
    """:func:`step` of the bias ``w0[c]`` (no regularization), computed in float64.

    ``state``: the biases' states, ``[state 0 of each bias | state 1 of each]`` (anything for
    plain SGD). Both arrays C-contiguous.
    """
    addr_step(w0.dtype.type, state.dtype.type, np.float64, code, _eaddr(w0) + c,
              _eaddr(state) + c, w0.shape[0], g, lr, 0.0, 0.0)


# ------------------------------------------------------------------------------ vector forms
def _vrule(context, builder, code, v, grad, l2v, lr, load, store):
    """IR of rule ``code`` on the vector ``v`` with loss gradient ``grad``; returns the new ``v``.

    ``l2v``: the L2 strength of each lane (a vector like ``v``: the lanes of an FFM pair belong
    to two features, whose strengths may differ); ``lr`` a scalar of the vector's element type;
    ``load(j)`` gives state ``j``
    of the lanes and ``store(j, x)`` writes it. Float32 AdaGrad divides by the processor's
    reciprocal square root estimate (:func:`_vdiv_sqrt`); FTRL takes exact square roots, as
    its step is a difference of two of them.
    """
    width = v.type.count
    lrv = _splat(builder, lr, width)
    if code == FTRL:
        z, n_old = load(0), load(1)
        n = builder.fadd(n_old, builder.fmul(grad, grad))
        root = _vsqrt(builder, n)
        # / lr as * (1 / lr): a scalar division, hoisted out of the caller's loops
        inv_lr = _splat(builder, builder.fdiv(ir.Constant(lr.type, 1.0), lr), width)
        sigma = builder.fmul(builder.fsub(root, _vsqrt(builder, n_old)), inv_lr)
        z = builder.fadd(z, builder.fsub(grad, builder.fmul(sigma, v)))
        store(0, z)
        store(1, n)
        # w = -lr z / (beta + lr l2 + sqrt(n)): the closed form without L1 (factors have none)
        shift = builder.fadd(_splat(builder, ir.Constant(v.type.element, FTRL_BETA), width),
                             builder.fmul(lrv, l2v))
        denom = builder.fadd(root, shift)
        return builder.fdiv(builder.fmul(builder.fneg(lrv), z), denom)
    grad = builder.fadd(grad, builder.fmul(l2v, v))
    step_ = builder.fmul(lrv, grad)
    if code == ADAGRAD:
        acc = builder.fadd(load(0), builder.fmul(grad, grad))
        store(0, acc)
        step_ = _vdiv_sqrt(context, builder, step_, acc)
    return builder.fsub(v, step_)


def _literal_code(code):
    """The int of a literal optimizer code type, or None."""
    if isinstance(code, types.IntegerLiteral) and 0 <= code.literal_value < len(N_STATES):
        return code.literal_value
    return None


@intrinsic
def _vstep(typingctx, T, code, r, s, x, gx, l2, lr, state_offset, width):
    """One step of rule ``code`` on the factors ``v = S[r : r + w]`` of an FM entry of value ``x``.

    The loss gradient is ``gx (S[s : s + w] - v x)`` (``S[s:]`` the row's factor sums, ``gx``
    the prediction gradient times ``x``); the state ``j`` of ``v`` sits ``(j + 1) state_offset``
    elements after it. Element addresses of ``T``'s dtype (array or number class); ``code`` and
    ``width`` literals.
    """
    w = _width(width)
    opt = _literal_code(code)
    if not (_is_float_carrier(T) and _ints(r, s, state_offset) and w and opt is not None):
        return None

    def codegen(context, builder, sig, args):
        cty, _, rty, sty, xty, gty, l2ty, lrty, offty, _ = sig.args
        dtype = _elt_type(cty)
        align = _align(context, cty)
        v_ptr = _addr_ptr(context, builder, cty, args[2], rty, w)
        v = builder.load(v_ptr, align=align)
        sums = builder.load(_addr_ptr(context, builder, cty, args[3], sty, w), align=align)
        x = _splat(builder, context.cast(builder, args[4], xty, dtype), w)
        gx = _splat(builder, context.cast(builder, args[5], gty, dtype), w)
        grad = builder.fmul(gx, builder.fsub(sums, builder.fmul(v, x)))
        r0 = context.cast(builder, args[2], rty, types.intp)
        off = context.cast(builder, args[8], offty, types.intp)

        def ptr(j):
            addr = builder.add(r0, builder.mul(off, ir.Constant(off.type, j + 1)))
            return _addr_ptr(context, builder, cty, addr, types.intp, w)

        def load(j):
            return builder.load(ptr(j), align=align)

        def store(j, value):
            builder.store(value, ptr(j), align=align)

        l2v = _splat(builder, context.cast(builder, args[6], l2ty, dtype), w)
        new = _vrule(context, builder, opt, v, grad, l2v,
                     context.cast(builder, args[7], lrty, dtype), load, store)
        builder.store(new, v_ptr, align=align)
        return context.get_dummy_value()

    sig = types.void(T, code, r, s, x, gx, l2, lr, state_offset, width)
    return sig, codegen


@intrinsic
def _vpair(typingctx, table, code, p, q, state_offset, coef, l2a, l2b, lr, width):
    """One step of rule ``code`` on both latent vectors of an FFM pair, as one vector of 2w.

    With ``a = T[p : p + w]`` and ``b = T[q : q + w]`` (element addresses, ``T`` of ``table``'s
    dtype) the loss gradients are ``coef * b`` for ``a`` and ``coef * a`` for ``b`` (from the
    old values), their L2 strengths ``l2a`` and ``l2b`` (two features: with a per-feature
    scale they differ); the states of each sit ``(j + 1) state_offset`` elements after it.
    ``code`` and ``width`` literals.
    """
    w = _width(width)
    opt = _literal_code(code)
    if not (_is_c_array(table) and isinstance(table.dtype, types.Float)
            and _ints(p, q, state_offset) and w and opt is not None):
        return None
    sig = types.void(table, code, p, q, state_offset, coef, l2a, l2b, lr, width)

    def codegen(context, builder, sig, args):
        aryty, _, pty, qty, offty, cty, l2aty, l2bty, lrty, _ = sig.args
        dtype = aryty.dtype
        align = _align(context, aryty)
        a_ptr = _addr_ptr(context, builder, aryty, args[2], pty, w)
        b_ptr = _addr_ptr(context, builder, aryty, args[3], qty, w)
        a = builder.load(a_ptr, align=align)
        b = builder.load(b_ptr, align=align)
        ab, ba = _concat(builder, a, b, w), _concat(builder, b, a, w)
        coefv = _splat(builder, context.cast(builder, args[5], cty, dtype), 2 * w)
        grad = builder.fmul(coefv, ba)
        off = context.cast(builder, args[4], offty, types.intp)
        p0 = context.cast(builder, args[2], pty, types.intp)
        q0 = context.cast(builder, args[3], qty, types.intp)

        def ptrs(j):
            shift = builder.mul(off, ir.Constant(off.type, j + 1))
            return (_addr_ptr(context, builder, aryty, builder.add(p0, shift), types.intp, w),
                    _addr_ptr(context, builder, aryty, builder.add(q0, shift), types.intp, w))

        def load(j):
            pa, pb = ptrs(j)
            return _concat(builder, builder.load(pa, align=align), builder.load(pb, align=align),
                           w)

        def store(j, value):
            pa, pb = ptrs(j)
            builder.store(_half(builder, value, w, False), pa, align=align)
            builder.store(_half(builder, value, w, True), pb, align=align)

        l2v = _concat(builder, _splat(builder, context.cast(builder, args[6], l2aty, dtype), w),
                      _splat(builder, context.cast(builder, args[7], l2bty, dtype), w), w)
        new = _vrule(context, builder, opt, ab, grad, l2v,
                     context.cast(builder, args[8], lrty, dtype), load, store)
        builder.store(_half(builder, new, w, False), a_ptr, align=align)
        builder.store(_half(builder, new, w, True), b_ptr, align=align)
        return context.get_dummy_value()

    return sig, codegen
