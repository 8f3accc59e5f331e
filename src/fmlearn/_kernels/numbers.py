"""Numba kernels for exact decimal <-> binary conversion of single numbers.

Parsing: Clinger's fast path when the decimal mantissa and power of ten are exact doubles,
otherwise the Eisel-Lemire algorithm with a 128-bit power-of-ten table. The rare inputs
neither can decide (more than 19 significant digits, near-halfway cases, subnormals,
overflow) are reported as ``NUM_SLOW`` for the caller to convert with Python's ``float()``,
so every value equals ``float(text)`` bit for bit.

Formatting: the shortest decimal that reads back to the same float32 / float64, found by
exact digit generation (the same 128-bit table) and checked by parsing it back.

The row tokenizer (:mod:`fmlearn._kernels.textscan`) and row formatter
(:mod:`fmlearn._kernels.textformat`) build on these. Kernels use plain
``numba.njit(cache=True, nogil=True)``, not the project's ``_jit.jit``: its fast-math flags
(``arcp`` turns ``m / 10**k`` into ``m * (1 / 10**k)``, ``nsz`` loses ``-0``, ``contract``
fuses roundings) would break the exact conversions.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["NUM_BAD", "NUM_OK", "NUM_SLOW", "parse_float_prefix", "write_float", "write_uint"]

# Status of parse_float_prefix.
NUM_OK = 0
NUM_BAD = 1  # no number starts here
NUM_SLOW = 2  # valid, but the caller must convert it with Python's float()


def _power_tables():
    """128-bit truncated mantissas of 10**q for q in [-348, 347] and their binary exponents.

    ``10**q ~= (hi * 2**64 + lo) * 2**e2`` with the top bit of ``hi`` set, rounded down, as
    the Eisel-Lemire algorithm expects. Built with Python integers, so it is exact.
    """
    qs = range(-348, 348)
    lo = np.empty(len(qs), np.uint64)
    hi = np.empty(len(qs), np.uint64)
    e2 = np.empty(len(qs), np.int64)
    for j, q in enumerate(qs):
        if q >= 0:
            v = 10**q
            shift = v.bit_length() - 128
            t = v >> shift if shift > 0 else v << -shift
            exp = shift
        else:
            d = 10**-q
            k = 127 + d.bit_length()  # makes 2**k // d exactly 128 bits long
            t = (1 << k) // d
            exp = -k
        lo[j] = t & (2**64 - 1)
        hi[j] = t >> 64
        e2[j] = exp
    return lo, hi, e2


_POW10_LO, _POW10_HI, _POW10_E2 = _power_tables()
_POW10_MIN_Q = -348
_POW10_MAX_Q = 347
# Exact float64 powers of ten (Clinger's fast path) and uint64 powers (digit counting).
_POW10_F = np.array([float(10**i) for i in range(23)], dtype=np.float64)
_POW10_U = np.array([10**i for i in range(20)], dtype=np.uint64)
_POW5_U = np.array([5**i for i in range(28)], dtype=np.uint64)

_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U10 = np.uint64(10)
_U32 = np.uint64(32)
_U63 = np.uint64(63)
_MASK32 = np.uint64(0xFFFFFFFF)
_TWO53 = np.uint64(2**53)


# ---------------------------------------------------------------------------------------------
# Parsing.


@intrinsic
def _mul64(typingctx, a, b):
    """Full 128-bit product of two uint64, as (hi, lo): one multiply instruction."""
    if a != types.uint64 or b != types.uint64:
        return None
    sig = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        wide = ir.IntType(128)
        p = builder.mul(builder.zext(args[0], wide), builder.zext(args[1], wide))
        hi = builder.trunc(builder.lshr(p, ir.Constant(wide, 64)), ir.IntType(64))
        lo = builder.trunc(p, ir.IntType(64))
        return context.make_tuple(builder, signature.return_type, (hi, lo))

    return sig, codegen


@intrinsic
def _clz64(typingctx, x):
    """Leading zero bits of a non-zero uint64."""
    if x != types.uint64:
        return None
    sig = types.int64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctlz(args[0], ir.Constant(ir.IntType(1), 1))

    return sig, codegen


@numba.njit(cache=True, nogil=True)
def _eisel_lemire(man, exp10):
    """``man * 10**exp10`` correctly rounded to float64, or (False, 0) when undecidable.

    Port of Go's ``strconv.eiselLemire64`` (Lemire, "Number parsing at a gigabyte per
    second", 2021). ``man`` is a non-zero uint64. Fails (caller falls back) on halfway
    ambiguity, subnormal or overflowing results and out-of-table exponents.
    """
    if exp10 < _POW10_MIN_Q or exp10 > _POW10_MAX_Q:
        return False, 0.0
    clz = _clz64(man)
    man = man << np.uint64(clz)
    ret_exp2 = ((217706 * exp10) >> 16) + 64 + 1023 - clz
    j = exp10 - _POW10_MIN_Q
    x_hi, x_lo = _mul64(man, _POW10_HI[j])
    if (x_hi & np.uint64(0x1FF)) == np.uint64(0x1FF) and x_lo + man < man:
        # The truncated table entry leaves the low bits uncertain: use its other 64 bits.
        y_hi, y_lo = _mul64(man, _POW10_LO[j])
        merged_hi = x_hi
        merged_lo = x_lo + y_hi
        if merged_lo < x_lo:
            merged_hi += _U1
        if (
            (merged_hi & np.uint64(0x1FF)) == np.uint64(0x1FF)
            and merged_lo + _U1 == _U0
            and y_lo + man < man
        ):
            return False, 0.0
        x_hi = merged_hi
        x_lo = merged_lo
    msb = x_hi >> _U63
    ret_man = x_hi >> (msb + np.uint64(9))
    ret_exp2 -= 1 ^ np.int64(msb)
    if x_lo == _U0 and (x_hi & np.uint64(0x1FF)) == _U0 and (ret_man & np.uint64(3)) == _U1:
        return False, 0.0  # exactly halfway between two doubles as far as we can tell
    ret_man += ret_man & _U1
    ret_man >>= _U1
    if (ret_man >> np.uint64(53)) > _U0:
        ret_man >>= _U1
        ret_exp2 += 1
    if ret_exp2 <= 0 or ret_exp2 >= 0x7FF:
        return False, 0.0
    return True, math.ldexp(np.float64(ret_man), ret_exp2 - 1075)


@numba.njit(cache=True, nogil=True)
def _decimal_to_float(man, exp10):
    """``man * 10**exp10`` (uint64 ``man`` != 0) as a correctly rounded float64, if decidable."""
    if man <= _TWO53 and -22 <= exp10 <= 22:
        # Clinger: both operands are exact doubles, so one IEEE operation rounds correctly.
        if exp10 >= 0:
            return True, np.float64(man) * _POW10_F[exp10]
        return True, np.float64(man) / _POW10_F[-exp10]
    ok, v = _eisel_lemire(man, exp10)
    if not ok and -27 <= exp10 < 0:
        # Eisel-Lemire cannot settle exact binary fractions such as 978614399509438.5 (its
        # 10**-k is truncated). man / 10**k = (man / 5**k) * 2**-k is one rounding of an
        # integer when 5**k divides man (5**27 < 2**64).
        p5 = _POW5_U[-exp10]
        if man % p5 == _U0:
            return True, math.ldexp(np.float64(man // p5), exp10)
    return ok, v


# Inlined into the tokenizer by numba: as a call per token (LLVM does not inline it), the
# parse took 5-10% longer; inlining costs about 0.1 s of compile time.
@numba.njit(cache=True, nogil=True, inline="always")
def parse_float_prefix(buf, s, e):
    """Parse the longest decimal-float prefix of ``buf[s:e]``.

    Returns ``(status, value, end)``: NUM_OK / NUM_SLOW with the bytes ``buf[s:end]`` that
    form a number, or NUM_BAD when no number starts at ``s`` (then ``end`` is meaningless).
    The value is the float64 when NUM_OK, else 0. Accepts what Python's ``float()``
    accepts for plain decimals: optional sign, digits with an optional ``.``, optional
    exponent (``1``, ``-1``, ``+1``, ``3.5``, ``.5``, ``5.``, ``1e-3``); not ``nan``/``inf``.
    The tokenizer calls it with ``e`` = end of file and checks that a delimiter follows.
    """
    i = s
    neg = False
    if i < e and (buf[i] == 45 or buf[i] == 43):  # '-' / '+'
        neg = buf[i] == 45
        i += 1
    man = _U0
    ndig = 0  # significant digits kept in man (at most 19 fit a uint64)
    exp10 = 0
    seen = False  # a digit
    point = False  # the '.'
    lossy = False  # non-zero digits beyond the 19th were dropped
    # One loop for the digits on both sides of the point.
    while i < e:
        d = np.int64(buf[i]) - 48
        if 0 <= d <= 9:
            seen = True
            if ndig < 19:
                if ndig > 0 or d != 0:
                    man = man * _U10 + np.uint64(d)
                    ndig += 1
                if point:
                    exp10 -= 1
            else:
                if not point:
                    exp10 += 1
                if d != 0:
                    lossy = True
        elif d == -2 and not point:  # '.'
            point = True
        else:
            break
        i += 1
    if not seen:
        return NUM_BAD, 0.0, i
    if i < e and (buf[i] | 32) == 101:  # 'e' / 'E'
        i += 1
        eneg = False
        if i < e and (buf[i] == 45 or buf[i] == 43):
            eneg = buf[i] == 45
            i += 1
        ev = 0
        eseen = False
        while i < e and 48 <= buf[i] <= 57:
            eseen = True
            if ev < 100000:  # saturate: beyond this the value is 0 or inf anyway
                ev = ev * 10 + (buf[i] - 48)
            i += 1
        if not eseen:
            return NUM_BAD, 0.0, i
        exp10 += -ev if eneg else ev
    if man == _U0:
        return NUM_OK, -0.0 if neg else 0.0, i
    if lossy:
        return NUM_SLOW, 0.0, i
    if man <= _TWO53 and -22 <= exp10 <= 22:
        # Clinger, as in _decimal_to_float: most numbers, without a call.
        if exp10 >= 0:
            v = np.float64(man) * _POW10_F[exp10]
        else:
            v = np.float64(man) / _POW10_F[-exp10]
        return NUM_OK, -v if neg else v, i
    ok, v = _decimal_to_float(man, exp10)
    if not ok:
        return NUM_SLOW, 0.0, i
    return NUM_OK, -v if neg else v, i


# ---------------------------------------------------------------------------------------------
# Formatting.


@numba.njit(cache=True, nogil=True)
def _n_digits(x):
    """Decimal digits of a uint64 (1 for 0)."""
    nd = 1
    while nd < 20 and x >= _POW10_U[nd]:
        nd += 1
    return nd


@numba.njit(cache=True, nogil=True)
def write_uint(out, pos, x):
    """Write uint64 ``x`` in decimal at ``out[pos:]``; return the new position."""
    nd = _n_digits(x)
    j = pos + nd - 1
    while j >= pos:
        out[j] = 48 + np.uint8(x % _U10)
        x //= _U10
        j -= 1
    return pos + nd


@numba.njit(cache=True, nogil=True)
def _scaled_round(m, e2, k):
    """``round(m * 2**e2 * 10**k)`` for a 53-bit ``m``, using the 128-bit table.

    Exact unless the product lies within about 2**-60 of a rounding boundary (the table
    entry is truncated); callers verify the result by parsing it back.
    """
    j = k - _POW10_MIN_Q
    a_hi, a_lo = _mul64(m, _POW10_LO[j])
    b_hi, b_lo = _mul64(m, _POW10_HI[j])
    p1 = a_hi + b_lo
    p2 = b_hi + (_U1 if p1 < a_hi else _U0)
    s = -(e2 + _POW10_E2[j])  # bits below the binary point; 119 <= s <= 185 here
    if s >= 128:
        sh = s - 128
        d = p2 >> np.uint64(sh)
        if sh == 0:
            rbit = p1 >> _U63
        else:
            rbit = (p2 >> np.uint64(sh - 1)) & _U1
    else:
        d = (p2 << np.uint64(128 - s)) | (p1 >> np.uint64(s - 64))
        rbit = (p1 >> np.uint64(s - 65)) & _U1
    return d + rbit


@numba.njit(cache=True, nogil=True)
def _round_trips(d, exp10, v, single):
    """Whether ``d * 10**exp10`` reads back as ``v`` (float32 ``v`` if ``single``)."""
    if d == _U0:
        return False
    ok, w = _decimal_to_float(d, exp10)
    if not ok:
        return False
    if single:
        return np.float32(w) == np.float32(v)
    return w == v


@numba.njit(cache=True, nogil=True)
def _shortest(v, single):
    """Shortest ``(digits, exp10)`` with ``digits * 10**exp10`` reading back as ``v``.

    ``v`` is positive and finite; with ``single`` it is a float32 value and "reading back"
    means ``float32(float64(text))`` (what the reader does), else float64.
    """
    maxp = 9 if single else 17
    f, ex = math.frexp(v)
    m = np.uint64(f * 9007199254740992.0)  # exact: 53-bit significand
    e2 = ex - 53
    e = int(math.floor(math.log10(v)))  # decimal exponent; may be off by one, fixed below
    d = _scaled_round(m, e2, maxp - 1 - e)
    if d >= _POW10_U[maxp]:
        e += 1
        d = _scaled_round(m, e2, maxp - 1 - e)
    elif d < _POW10_U[maxp - 1]:
        e -= 1
        d = _scaled_round(m, e2, maxp - 1 - e)
    # d ~= v * 10**(maxp - 1 - e), i.e. v ~= d * 10**(e + 1 - maxp)
    best_d = d
    best_x = e + 1 - maxp
    if not _round_trips(d, best_x, v, single):
        # Off by one next to a rounding boundary (or a subnormal the parser can't check).
        if _round_trips(d + _U1, best_x, v, single):
            best_d = d + _U1
        elif _round_trips(d - _U1, best_x, v, single):
            best_d = d - _U1
    # Correctly rounded shorter decimals lose the round trip monotonically: bisect.
    lo = 1
    hi = maxp
    while lo < hi:
        p = (lo + hi) // 2
        dp = _scaled_round(m, e2, p - 1 - e)
        if _round_trips(dp, e + 1 - p, v, single):
            hi = p
            best_d = dp
            best_x = e + 1 - p
        else:
            lo = p + 1
    return best_d, best_x


@numba.njit(cache=True, nogil=True)
def write_float(out, pos, v, single):
    """Write finite ``v`` as its shortest round-tripping decimal (``repr``-like layout)."""
    if v == 0.0:
        if math.copysign(1.0, v) < 0:
            out[pos] = 45
            pos += 1
        out[pos] = 48
        return pos + 1
    if v < 0:
        out[pos] = 45
        pos += 1
        v = -v
    if v == math.floor(v) and v < (16777216.0 if single else 9007199254740992.0):
        # Integral values (one-hot 1s, integer labels) need no digit search: '1' not '1.0'.
        # Below 2**24 (float32) / 2**53 the integer's own digits are the shortest text.
        return write_uint(out, pos, np.uint64(v))
    d, k = _shortest(v, single)
    while d != _U0 and d % _U10 == _U0:
        d //= _U10
        k += 1
    nd = _n_digits(d)
    x = nd - 1 + k  # exponent of the leading digit
    if -4 <= x < 16:
        if k >= 0:
            pos = write_uint(out, pos, d)
            for _ in range(k):
                out[pos] = 48
                pos += 1
        elif x >= 0:
            # ddd.ddd: write the digits, then open a gap for the point.
            end = write_uint(out, pos, d)
            point = pos + x + 1
            for j in range(end, point, -1):
                out[j] = out[j - 1]
            out[point] = 46
            pos = end + 1
        else:
            out[pos] = 48
            out[pos + 1] = 46
            pos += 2
            for _ in range(-x - 1):
                out[pos] = 48
                pos += 1
            pos = write_uint(out, pos, d)
    else:
        # d.ddde[-]x
        end = write_uint(out, pos, d)
        if nd > 1:
            for j in range(end, pos + 1, -1):
                out[j] = out[j - 1]
            out[pos + 1] = 46
            end += 1
        pos = end
        out[pos] = 101
        pos += 1
        if x < 0:
            out[pos] = 45
            pos += 1
            x = -x
        pos = write_uint(out, pos, np.uint64(x))
    return pos
