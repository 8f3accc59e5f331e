"""Numba kernels that parse and format libFM / libsvm / FFM text.

Arrays in, arrays out. The kernels never raise for bad input: they stop at the first problem
and return an error code (``ERR_*``) with the byte position of the offending text, which
:mod:`fmlearn.data.textio` turns into a :class:`~fmlearn.exceptions.DataFormatError`.

Number conversion is exact in both directions:

* Parsing: Clinger's fast path when the decimal mantissa and power of ten are exact doubles,
  otherwise the Eisel-Lemire algorithm with a 128-bit power-of-ten table. The rare inputs
  neither can decide (more than 19 significant digits, near-halfway cases, subnormals,
  overflow) are returned as "fallback" tokens that the caller converts with Python's
  ``float()``, so every value equals ``float(text)`` bit for bit.
* Formatting: the shortest decimal that reads back to the same float32 / float64, found by
  exact digit generation (the same 128-bit table) and checked by parsing it back.

Kernels use plain ``numba.njit(cache=True, nogil=True)``, not the project's ``_jit.jit``: its
fast-math flags (``arcp`` turns ``m / 10**k`` into ``m * (1 / 10**k)``, ``nsz`` loses ``-0``,
``contract`` fuses roundings) would break the exact conversions.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "canonicalize_rows",
    "count_rows_tokens",
    "format_rows",
    "locate",
    "parse_float",
    "parse_rows",
]

# ---------------------------------------------------------------------------------------------
# Error codes returned in ``info[INFO_CODE]`` by :func:`parse_rows`.
OK = 0
ERR_BAD_LABEL = 1
ERR_MISSING_LABEL = 2
ERR_NONFINITE_LABEL = 3
ERR_NO_COLON = 4
ERR_TOO_MANY_COLONS = 5
ERR_LOOKS_LIKE_FFM = 6
ERR_LOOKS_LIKE_LIBFM = 7
ERR_NEGATIVE_INDEX = 8
ERR_BAD_INDEX = 9
ERR_INDEX_TOO_LARGE = 10
ERR_INDEX_GE_N_FEATURES = 11
ERR_NEGATIVE_FIELD = 12
ERR_BAD_FIELD = 13
ERR_FIELD_TOO_LARGE = 14
ERR_FIELD_GE_N_FIELDS = 15
ERR_FIELD_CONFLICT = 16
ERR_BAD_VALUE = 17
ERR_NONFINITE_VALUE = 18
ERR_VALUE_OVERFLOW = 19
ERR_CAPACITY = 20  # the first pass undercounted (a bug): refuse to write out of bounds

# Slots of the ``info`` array returned by :func:`parse_rows`.
INFO_CODE = 0  # OK or ERR_*
INFO_POS = 1  # byte offset of the offending text
INFO_TOK_START = 2  # byte span of the token holding it
INFO_TOK_END = 3
INFO_EXTRA = 4  # ERR_FIELD_CONFLICT: the field first seen for the feature
INFO_ROWS = 5
INFO_NNZ = 6
INFO_MAX_INDEX = 7
INFO_MAX_FIELD = 8
N_INFO = 9

# Kinds of the flat (kind, dest, start, end) fallback records returned by parse_rows: numbers
# to convert with Python's float(), and where to store them.
FB_LABEL = 0  # store into y[dest]
FB_VALUE = 1  # store into data[dest]

# Largest feature index / field id: index + 1 (the number of features) must fit in int32.
MAX_INDEX = 2**31 - 2

# Status of parse_float / parse_uint.
NUM_OK = 0
NUM_BAD = 1  # not a number
NUM_NONFINITE = 2  # 'nan' / 'inf' / 'infinity' (parse_float)
NUM_SLOW = 3  # valid but needs Python's float() (parse_float)
NUM_NEGATIVE = 4  # '-' followed by digits (parse_uint)
NUM_TOO_LARGE = 5  # > limit (parse_uint)

# Bytes.
_NL = 10
_HASH = 35
_COLON = 58


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
# Exact decimal <-> binary conversion.


@numba.njit(cache=True, nogil=True)
def _mul64(a, b):
    """Full 128-bit product of two uint64, as (hi, lo)."""
    a0 = a & _MASK32
    a1 = a >> _U32
    b0 = b & _MASK32
    b1 = b >> _U32
    p00 = a0 * b0
    p01 = a0 * b1
    p10 = a1 * b0
    p11 = a1 * b1
    mid = (p00 >> _U32) + (p01 & _MASK32) + (p10 & _MASK32)
    lo = (p00 & _MASK32) | (mid << _U32)
    hi = p11 + (p01 >> _U32) + (p10 >> _U32) + (mid >> _U32)
    return hi, lo


@numba.njit(cache=True, nogil=True)
def _clz64(x):
    """Leading zero bits of a non-zero uint64."""
    n = 0
    if (x >> np.uint64(32)) == _U0:
        n += 32
        x <<= np.uint64(32)
    if (x >> np.uint64(48)) == _U0:
        n += 16
        x <<= np.uint64(16)
    if (x >> np.uint64(56)) == _U0:
        n += 8
        x <<= np.uint64(8)
    if (x >> np.uint64(60)) == _U0:
        n += 4
        x <<= np.uint64(4)
    if (x >> np.uint64(62)) == _U0:
        n += 2
        x <<= np.uint64(2)
    if (x >> _U63) == _U0:
        n += 1
    return n


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


@numba.njit(cache=True, nogil=True)
def _is_digit(c):
    return 48 <= c <= 57


@numba.njit(cache=True, nogil=True)
def _lower_eq(buf, i, e, word):
    """Whether ``buf[i:e]`` equals the ASCII lowercase ``word`` (a uint8 array) ignoring case."""
    if e - i != word.shape[0]:
        return False
    for j in range(word.shape[0]):
        if (buf[i + j] | 32) != word[j]:
            return False
    return True


_INF = np.frombuffer(b"inf", dtype=np.uint8).copy()
_INFINITY = np.frombuffer(b"infinity", dtype=np.uint8).copy()
_NAN = np.frombuffer(b"nan", dtype=np.uint8).copy()


@numba.njit(cache=True, nogil=True, inline="always")
def _parse_float_prefix(buf, s, e):
    """Parse the longest decimal-float prefix of ``buf[s:e]``.

    Returns ``(status, value, end)``: NUM_OK / NUM_SLOW with the bytes ``buf[s:end]`` that
    form a number, or NUM_BAD when no number starts at ``s`` (then ``end`` is meaningless).
    The reader's fast path calls it with ``e`` = end of file and checks that a delimiter
    follows; :func:`parse_float` requires ``end == e``.
    """
    i = s
    neg = False
    if i < e and (buf[i] == 45 or buf[i] == 43):  # '-' / '+'
        neg = buf[i] == 45
        i += 1
    man = _U0
    ndig = 0  # significant digits kept in man (at most 19 fit a uint64)
    exp10 = 0
    seen = False
    lossy = False  # non-zero digits beyond the 19th were dropped
    while i < e and _is_digit(buf[i]):
        d = buf[i] - 48
        seen = True
        if ndig < 19:
            if ndig > 0 or d != 0:
                man = man * _U10 + np.uint64(d)
                ndig += 1
        else:
            exp10 += 1
            if d != 0:
                lossy = True
        i += 1
    if i < e and buf[i] == 46:  # '.'
        i += 1
        while i < e and _is_digit(buf[i]):
            d = buf[i] - 48
            seen = True
            if ndig < 19:
                if ndig > 0 or d != 0:
                    man = man * _U10 + np.uint64(d)
                    ndig += 1
                exp10 -= 1
            elif d != 0:
                lossy = True
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
        while i < e and _is_digit(buf[i]):
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
    ok, v = _decimal_to_float(man, exp10)
    if not ok:
        return NUM_SLOW, 0.0, i
    return NUM_OK, -v if neg else v, i


@numba.njit(cache=True, nogil=True)
def parse_float(buf, s, e):
    """Parse ``buf[s:e]`` as a decimal float.

    Accepts what Python's ``float()`` accepts for plain decimals: optional sign, digits with
    an optional ``.``, optional exponent (``1``, ``-1``, ``+1``, ``3.5``, ``.5``, ``1e-3``).

    Returns
    -------
    status : int
        NUM_OK, NUM_BAD, NUM_NONFINITE (``nan``/``inf`` spelled out) or NUM_SLOW (valid,
        but the caller must convert it with Python's ``float()``).
    value : float
        The float64 value when status is NUM_OK, else 0.
    """
    st, v, end = _parse_float_prefix(buf, s, e)
    if st != NUM_BAD and end == e:
        return st, v
    j = s + 1 if s < e and (buf[s] == 45 or buf[s] == 43) else s
    if _lower_eq(buf, j, e, _INF) or _lower_eq(buf, j, e, _INFINITY) or _lower_eq(buf, j, e, _NAN):
        return NUM_NONFINITE, 0.0
    return NUM_BAD, 0.0


@numba.njit(cache=True, nogil=True)
def parse_uint(buf, s, e, limit):
    """Parse ``buf[s:e]`` as a non-negative decimal integer <= ``limit``.

    Returns ``(status, value)`` with status NUM_OK, NUM_BAD (empty or not all digits),
    NUM_NEGATIVE (``-`` then digits) or NUM_TOO_LARGE.
    """
    if s >= e:
        return NUM_BAD, 0
    if buf[s] == 45:  # '-'
        if e - s > 1:
            for j in range(s + 1, e):
                if not _is_digit(buf[j]):
                    return NUM_BAD, 0
            return NUM_NEGATIVE, 0
        return NUM_BAD, 0
    v = 0
    big = False
    for j in range(s, e):
        c = buf[j]
        if not _is_digit(c):
            return NUM_BAD, 0
        if not big:
            v = v * 10 + (c - 48)
            big = v > limit  # stop accumulating before int64 could overflow
    if big:
        return NUM_TOO_LARGE, 0
    return NUM_OK, v


# ---------------------------------------------------------------------------------------------
# Reading.


@numba.njit(cache=True, nogil=True)
def _is_space(c):
    # space, \t, \v, \f, \r: \r makes CRLF files parse like LF files.
    return c == 32 or (9 <= c <= 13 and c != 10)


@numba.njit(cache=True, nogil=True)
def _skip_bom(buf):
    n = buf.shape[0]
    if n >= 3 and buf[0] == 0xEF and buf[1] == 0xBB and buf[2] == 0xBF:
        return 3
    return 0


@numba.njit(cache=True, nogil=True)
def count_rows_tokens(buf):
    """First pass: upper bounds on the number of rows and of tokens (labels included).

    Sizes the arrays :func:`parse_rows` fills: at most ``n_lines`` rows and ``n_tokens``
    features. A token starts at a non-delimiter byte after a delimiter (space, tab, CR, LF,
    VT, FF, ``#``); words inside ``#`` comments count too. Branch-free with no loop-carried
    state beyond one flag, so LLVM vectorizes it: ~10x faster than tokenizing properly.

    Parameters
    ----------
    buf : ndarray of uint8, shape (n_bytes,)

    Returns
    -------
    n_lines, n_tokens : int
        Newlines + 1, and token starts.
    """
    newlines = 0
    tokens = 0
    prev_delim = 1
    for i in range(_skip_bom(buf), buf.shape[0]):
        c = np.int64(buf[i])
        # bit c of the mask is set for the delimiters 9-13, 32 and 35 ('#')
        delim = np.int64(c <= 35) & ((np.int64(0x900003E00) >> (c & 63)) & 1)
        tokens += (delim ^ 1) & prev_delim
        newlines += np.int64(c == _NL)
        prev_delim = delim
    return newlines + 1, tokens


@numba.njit(cache=True, nogil=True)
def _grow_fieldmap(fmap, need):
    cap = max(2 * fmap.shape[0], need, 1024)
    cap = min(cap, MAX_INDEX + 1)
    out = np.empty(cap, dtype=np.int32)
    m = fmap.shape[0]
    for j in range(m):
        out[j] = fmap[j]
    for j in range(m, cap):
        out[j] = -1
    return out


@numba.njit(cache=True, nogil=True)
def _is_delim(c):
    return c == _NL or c == _HASH or _is_space(c)


@numba.njit(cache=True, nogil=True, inline="always")
def _fast_uint(buf, i, n):
    """Digits at ``buf[i:]`` up to a ':' (fast path): ``(value, position of ':')``.

    Returns position -1 when the digits are not followed by ':' or there are none or more
    than 10 of them; the caller then takes the slow path, which explains the problem.
    """
    v = 0
    j = i
    while j < n:
        d = np.int64(buf[j]) - 48
        if d < 0 or d > 9:
            break
        v = v * 10 + d
        j += 1
    if j == i or j - i > 10 or j >= n or buf[j] != _COLON:
        return 0, -1
    return v, j


@numba.njit(cache=True, nogil=True)
def _classify_token(buf, s, n):
    """Slow path: the end of the token at ``s`` and its first two colons and colon count."""
    c1 = -1
    c2 = -1
    ncolon = 0
    i = s
    while i < n:
        c = buf[i]
        if _is_delim(c):
            break
        if c == _COLON:
            ncolon += 1
            if ncolon == 1:
                c1 = i
            elif ncolon == 2:
                c2 = i
        i += 1
    return i, ncolon, c1, c2


# parse_rows' inner loop suspends (instead of reallocating) when an output array is full:
# reassigning an array inside the hot loop makes numba emit reference counting on every
# iteration, which made it 3x slower.
_DONE = 1  # finished, or stopped at an error (see info)
_GROW_FALLBACK = 2
_GROW_FIELDMAP = 3

# Slots of the state array that carries the parser's position across suspensions.
_ST_I, _ST_ROW, _ST_K, _ST_HAS_LABEL, _ST_NFB, _ST_NEED = range(6)


@numba.njit(cache=True, nogil=True)
def _put_fallback(fb, n, kind, dest, start, end):
    fb[4 * n] = kind
    fb[4 * n + 1] = dest
    fb[4 * n + 2] = start
    fb[4 * n + 3] = end


@numba.njit(cache=True, nogil=True)
def _parse_until_full(
    buf,
    ffm,
    single,
    n_features,
    n_fields,
    indptr,
    indices,
    data,
    y,
    fmap,
    tokfield,
    fb,
    state,
    info,
):
    """parse_rows' loop: runs until the end, an error, or fb / fmap is too small."""
    deferred = tokfield.shape[0] > 0
    n = buf.shape[0]
    i = state[_ST_I]
    row = state[_ST_ROW]
    k = state[_ST_K]
    has_label = state[_ST_HAS_LABEL] != 0
    nfb = state[_ST_NFB]
    need = 0
    max_index = info[INFO_MAX_INDEX]
    max_field = info[INFO_MAX_FIELD]
    status = _DONE
    err = OK
    epos = 0
    s = 0
    e = 0
    while i < n:
        c = buf[i]
        if c == _NL:
            if has_label:
                row += 1
                indptr[row] = k
                has_label = False
            i += 1
            continue
        if _is_space(c):
            i += 1
            continue
        if c == _HASH:
            while i < n and buf[i] != _NL:
                i += 1
            continue
        s = i

        if not has_label:
            st, v, e = _parse_float_prefix(buf, s, n)
            if st == NUM_BAD or (e < n and not _is_delim(buf[e])):
                e, ncolon, c1, c2 = _classify_token(buf, s, n)
                epos = s
                if ncolon > 0:
                    err = ERR_MISSING_LABEL
                elif parse_float(buf, s, e)[0] == NUM_NONFINITE:
                    err = ERR_NONFINITE_LABEL
                else:
                    err = ERR_BAD_LABEL
                break
            if row >= y.shape[0]:
                err = ERR_CAPACITY
                epos = s
                break
            if st == NUM_SLOW:
                if 4 * nfb == fb.shape[0]:
                    i = s  # re-read this label once the caller has grown fb
                    status = _GROW_FALLBACK
                    break
                _put_fallback(fb, nfb, FB_LABEL, row, s, e)
                nfb += 1
            y[row] = v
            has_label = True
            i = e
            continue

        # Fast path: [field ':'] index ':' value, then a delimiter.
        field = 0
        idx = -1
        val_s = -1
        st = NUM_OK
        v = 0.0
        a, p = _fast_uint(buf, s, n)
        if p >= 0:
            if ffm:
                field = a
                idx, p = _fast_uint(buf, p + 1, n)
            else:
                idx = a
            if p >= 0 and idx <= MAX_INDEX and field <= MAX_INDEX:
                val_s = p + 1
                st, v, e = _parse_float_prefix(buf, val_s, n)
                if st == NUM_BAD or (e < n and not _is_delim(buf[e])):
                    val_s = -1
        if val_s < 0:
            # Slow path: find the token's end and say what is wrong with it.
            e, ncolon, c1, c2 = _classify_token(buf, s, n)
            if (
                ncolon == 1
                and c1 == s + 3
                and buf[s] == 113
                and buf[s + 1] == 105
                and (buf[s + 2] == 100)
            ):
                i = e  # svmlight ranking files: 'qid:N' carries no feature
                continue
            epos = s
            if ncolon == 0:
                err = ERR_NO_COLON
                break
            if ncolon > 2:
                err = ERR_TOO_MANY_COLONS
                break
            if ffm and ncolon == 1:
                err = ERR_LOOKS_LIKE_LIBFM
                break
            if not ffm and ncolon == 2:
                err = ERR_LOOKS_LIKE_FFM
                break
            idx_s = s
            if ffm:
                st, field = parse_uint(buf, s, c1, MAX_INDEX)
                if st != NUM_OK:
                    if st == NUM_NEGATIVE:
                        err = ERR_NEGATIVE_FIELD
                    elif st == NUM_TOO_LARGE:
                        err = ERR_FIELD_TOO_LARGE
                    else:
                        err = ERR_BAD_FIELD
                    break
                idx_s = c1 + 1
                c1 = c2
            st, idx = parse_uint(buf, idx_s, c1, MAX_INDEX)
            if st != NUM_OK:
                epos = idx_s
                if st == NUM_NEGATIVE:
                    err = ERR_NEGATIVE_INDEX
                elif st == NUM_TOO_LARGE:
                    err = ERR_INDEX_TOO_LARGE
                else:
                    err = ERR_BAD_INDEX
                break
            val_s = c1 + 1
            st, v = parse_float(buf, val_s, e)
            if st == NUM_BAD or st == NUM_NONFINITE:
                epos = val_s
                err = ERR_BAD_VALUE if st == NUM_BAD else ERR_NONFINITE_VALUE
                break
        i = e

        # Checks that need the parsed numbers (both paths).
        if ffm and n_fields >= 0 and field >= n_fields:
            err = ERR_FIELD_GE_N_FIELDS
            epos = s
            break
        if n_features >= 0 and idx >= n_features:
            err = ERR_INDEX_GE_N_FEATURES
            epos = s if not ffm else _fast_uint_colon(buf, s, e) + 1
            break
        if st == NUM_SLOW:
            if 4 * nfb == fb.shape[0]:
                i = s
                status = _GROW_FALLBACK
                break
        elif single and np.isinf(np.float32(v)):
            err = ERR_VALUE_OVERFLOW  # finite in float64 but not in float32
            epos = val_s
            break
        if ffm and deferred:
            tokfield[k] = field
            if field > max_field:
                max_field = field
        elif ffm:
            if idx >= fmap.shape[0]:
                i = s  # re-read this token once the caller has grown fmap
                need = idx + 1
                status = _GROW_FIELDMAP
                break
            seen_field = fmap[idx]
            if seen_field < 0:
                fmap[idx] = field
            elif seen_field != field:
                err = ERR_FIELD_CONFLICT
                epos = s
                need = seen_field
                break
            if field > max_field:
                max_field = field
        if k >= indices.shape[0]:
            err = ERR_CAPACITY
            epos = s
            break
        if st == NUM_SLOW:
            _put_fallback(fb, nfb, FB_VALUE, k, val_s, e)
            nfb += 1
        indices[k] = idx
        data[k] = v
        if idx > max_index:
            max_index = idx
        k += 1

    state[_ST_I] = i
    state[_ST_ROW] = row
    state[_ST_K] = k
    state[_ST_HAS_LABEL] = 1 if has_label else 0
    state[_ST_NFB] = nfb
    state[_ST_NEED] = need
    info[INFO_MAX_INDEX] = max_index
    info[INFO_MAX_FIELD] = max_field
    if err != OK:
        info[INFO_CODE] = err
        info[INFO_POS] = epos
        info[INFO_TOK_START] = s
        info[INFO_TOK_END] = e
        info[INFO_EXTRA] = need
        return _DONE
    if status == _DONE and has_label:
        row += 1
        indptr[row] = k
        state[_ST_ROW] = row
    return status


@numba.njit(cache=True, nogil=True)
def parse_rows(buf, ffm, single, n_features, n_fields, indptr, indices, data, y, fmap, tokfield):
    """Second pass: parse every row into preallocated CSR arrays.

    Each token is first tried on a fast path that reads every byte once and accepts only
    well-formed ``[field:]index:value`` / label tokens; anything else (``qid:``, errors,
    odd spellings) is re-read by a slow path that classifies the problem.

    Parameters
    ----------
    buf : ndarray of uint8, shape (n_bytes,)
        The whole file.
    ffm : bool
        Parse ``field:index:value`` tokens (FFM) instead of ``index:value`` (libFM/libsvm).
    single : bool
        The values will be cast to float32: a value that overflows float32 is an error.
    n_features, n_fields : int
        Exclusive upper bounds for indices / fields, or -1 for "no bound".
    indptr : ndarray of int64, shape (n_rows + 1,)
    indices : ndarray of int32, shape (capacity,)
    data : ndarray of float64, shape (capacity,)
    y : ndarray of float64, shape (n_rows,)
        Output arrays sized from :func:`count_rows_tokens` (capacity = n_tokens - n_rows).
        Values stay float64 (one compiled kernel for both output dtypes); the caller casts.
    fmap : ndarray of int32, shape (m,)
        FFM with an empty ``tokfield`` only: field of each feature seen so far (-1 = unseen),
        checked token by token and grown as needed. Pass ``n_features`` -1s when
        ``n_features`` is known, else an empty array.
    tokfield : ndarray of int32, shape (capacity,) or (0,)
        FFM only. Non-empty: store each token's field here and leave the one-field-per-feature
        check to :func:`first_field_conflict` (much faster: checking inline stalls on a cache
        miss per token). Empty: check inline with ``fmap``, which stops at the first conflict
        in file order -- use it to locate an error.

    Returns
    -------
    info : ndarray of int64, shape (N_INFO,)
        Error code, error position and counts (see the ``INFO_*`` slots).
    fmap : ndarray of int32
        The (possibly reallocated) field map; valid up to ``info[INFO_MAX_INDEX]``.
    fallback : ndarray of int64, shape (4 * n_fallback,)
        Flat ``(kind, dest, start, end)`` records of numbers to convert with Python's
        ``float()``; they were left as 0 in ``y`` / ``data``.
    """
    info = np.zeros(N_INFO, dtype=np.int64)
    info[INFO_MAX_INDEX] = -1
    info[INFO_MAX_FIELD] = -1
    state = np.zeros(6, dtype=np.int64)
    state[_ST_I] = _skip_bom(buf)
    indptr[0] = 0
    fb = np.empty(4 * 64, dtype=np.int64)
    while True:
        status = _parse_until_full(
            buf,
            ffm,
            single,
            n_features,
            n_fields,
            indptr,
            indices,
            data,
            y,
            fmap,
            tokfield,
            fb,
            state,
            info,
        )
        if status == _GROW_FALLBACK:
            grown = np.empty(2 * fb.shape[0], dtype=np.int64)
            grown[: fb.shape[0]] = fb
            fb = grown
        elif status == _GROW_FIELDMAP:
            fmap = _grow_fieldmap(fmap, state[_ST_NEED])
        else:
            break
    info[INFO_ROWS] = state[_ST_ROW]
    info[INFO_NNZ] = state[_ST_K]
    return info, fmap, fb[: 4 * state[_ST_NFB]]


@numba.njit(cache=True, nogil=True)
def first_field_conflict(indices, tokfield, nnz, fmap, stop=True):
    """Fill ``fmap`` from the tokens' fields; return the first conflicting token and a count.

    Parameters
    ----------
    indices, tokfield : ndarray of int32, shape (>= nnz,)
        Feature index and field of each token, in file order (before canonicalize_rows).
    nnz : int
    fmap : ndarray of int32, shape (n_features,)
        All -1 on entry; on exit the field of each feature seen (its first field; up to the
        first conflict when ``stop``).
    stop : bool
        Stop at the first conflict; else go on, each feature keeping its first field.

    Returns
    -------
    first : int
        Ordinal of the first token whose feature was seen earlier under another field, or -1.
    count : int
        Number of such tokens (at most 1 when ``stop``).
    """
    first = -1
    count = 0
    for k in range(nnz):
        i = indices[k]
        f = tokfield[k]
        seen = fmap[i]
        if seen < 0:
            fmap[i] = f
        elif seen != f:
            if first < 0:
                first = k
            count += 1
            if stop:
                break
    return first, count


@numba.njit(cache=True, nogil=True)
def _fast_uint_colon(buf, s, e):
    """Position of the first ':' in ``buf[s:e]`` (``e`` if none)."""
    for j in range(s, e):
        if buf[j] == _COLON:
            return j
    return e


@numba.njit(cache=True, nogil=True)
def locate(buf, pos):
    """1-based ``(line, column)`` of byte offset ``pos``; the column counts bytes."""
    line = 1
    last_nl = -1
    for j in range(min(pos, buf.shape[0])):
        if buf[j] == _NL:
            line += 1
            last_nl = j
    return line, pos - last_nl


@numba.njit(cache=True, nogil=True)
def _sift_down(keys, vals, s, root, end):
    while True:
        child = 2 * root + 1
        if child >= end:
            return
        if child + 1 < end and keys[s + child + 1] > keys[s + child]:
            child += 1
        if keys[s + root] >= keys[s + child]:
            return
        a = s + root
        b = s + child
        keys[a], keys[b] = keys[b], keys[a]
        vals[a], vals[b] = vals[b], vals[a]
        root = child


@numba.njit(cache=True, nogil=True)
def _heapsort_pairs(keys, vals, s, e):
    """Sort ``keys[s:e]`` in place, permuting ``vals`` alike (O(n log n), no allocation)."""
    n = e - s
    for root in range(n // 2 - 1, -1, -1):
        _sift_down(keys, vals, s, root, n)
    for end in range(n - 1, 0, -1):
        keys[s], keys[s + end] = keys[s + end], keys[s]
        vals[s], vals[s + end] = vals[s + end], vals[s]
        _sift_down(keys, vals, s, 0, end)


@numba.njit(cache=True, nogil=True)
def canonicalize_rows(indptr, indices, data):
    """Sort each row's indices and sum duplicates, compacting the arrays in place.

    Rows that are already strictly increasing (the usual case) are only moved. Duplicates
    are summed in float64.

    Parameters
    ----------
    indptr : ndarray of int64, shape (n_rows + 1,)
    indices : ndarray of int32, shape (>= indptr[-1],)
    data : ndarray of float64, shape (>= indptr[-1],)

    Returns
    -------
    nnz : int
        The new ``indptr[-1]``; entries past it are garbage.
    """
    n_rows = indptr.shape[0] - 1
    w = 0
    s = indptr[0]
    for r in range(n_rows):
        e = indptr[r + 1]
        ordered = True
        for j in range(s + 1, e):
            if indices[j] <= indices[j - 1]:
                ordered = False
                break
        if ordered:
            if w != s:
                for j in range(s, e):
                    indices[w] = indices[j]
                    data[w] = data[j]
                    w += 1
            else:
                w = e
        else:
            if e - s <= 32:
                # Short rows: insertion sort in place.
                for j in range(s + 1, e):
                    ki = indices[j]
                    kd = data[j]
                    t = j - 1
                    while t >= s and indices[t] > ki:
                        indices[t + 1] = indices[t]
                        data[t + 1] = data[t]
                        t -= 1
                    indices[t + 1] = ki
                    data[t + 1] = kd
            else:
                _heapsort_pairs(indices, data, s, e)
            j = s
            while j < e:
                ki = indices[j]
                acc = data[j]
                j += 1
                while j < e and indices[j] == ki:
                    acc += data[j]
                    j += 1
                indices[w] = ki
                data[w] = acc
                w += 1
        indptr[r + 1] = w
        s = e
    return w


# ---------------------------------------------------------------------------------------------
# Writing.

# Bytes one token / one row can take at most: ' ' + field (10) + ':' + index (10) + ':' +
# value (24, e.g. '-1.2345678901234567e-308'); a row adds a label (24) and '\n'.
MAX_TOKEN_BYTES = 48
MAX_ROW_BYTES = 26


@numba.njit(cache=True, nogil=True)
def _n_digits(x):
    """Decimal digits of a uint64 (1 for 0)."""
    nd = 1
    while nd < 20 and x >= _POW10_U[nd]:
        nd += 1
    return nd


@numba.njit(cache=True, nogil=True)
def _write_uint(out, pos, x):
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
def _write_float(out, pos, v, single):
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
        return _write_uint(out, pos, np.uint64(v))
    d, k = _shortest(v, single)
    while d != _U0 and d % _U10 == _U0:
        d //= _U10
        k += 1
    nd = _n_digits(d)
    x = nd - 1 + k  # exponent of the leading digit
    if -4 <= x < 16:
        if k >= 0:
            pos = _write_uint(out, pos, d)
            for _ in range(k):
                out[pos] = 48
                pos += 1
        elif x >= 0:
            # ddd.ddd: write the digits, then open a gap for the point.
            end = _write_uint(out, pos, d)
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
            pos = _write_uint(out, pos, d)
    else:
        # d.ddde[-]x
        end = _write_uint(out, pos, d)
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
        pos = _write_uint(out, pos, np.uint64(x))
    return pos


@numba.njit(cache=True, nogil=True)
def format_rows(indptr, indices, data, tok_fields, data_start, y, ffm, single, r0, r1, out):
    """Format rows ``r0:r1`` as libFM (``ffm=False``) or FFM text into ``out``.

    Parameters
    ----------
    indptr : ndarray of int64, shape (n_rows + 1,)
    indices : ndarray of int32, shape (nnz,)
    data : ndarray of float64, shape (indptr[r1] - data_start,)
        Finite values of (at least) rows ``r0:r1``; entry ``j`` of ``X`` is
        ``data[j - data_start]``. The caller casts float32 chunks up, so one kernel serves
        both dtypes.
    tok_fields : ndarray of int32, shape like ``data`` (FFM) or (0,)
        FFM only: the (non-negative) field of each entry, aligned with ``data``. Gathered by
        the caller with numpy, whose independent loads hide the cache misses that a lookup
        in this sequential loop would pay one by one.
    data_start : int
        Offset of ``data`` / ``tok_fields`` in ``X``'s entries.
    y : ndarray of float64, shape (n_rows,)
        Finite labels; integral ones are written without a decimal point.
    ffm : bool
    single : bool
        Values are float32: write the shortest text that round-trips in float32.
    out : ndarray of uint8
        At least ``MAX_ROW_BYTES * (r1 - r0) + MAX_TOKEN_BYTES * nnz_in_rows`` bytes.

    Returns
    -------
    n : int
        Bytes written to ``out``.
    """
    pos = 0
    for r in range(r0, r1):
        pos = _write_float(out, pos, y[r], False)
        for j in range(indptr[r], indptr[r + 1]):
            out[pos] = 32
            pos += 1
            c = indices[j]
            if ffm:
                pos = _write_uint(out, pos, np.uint64(tok_fields[j - data_start]))
                out[pos] = _COLON
                pos += 1
            pos = _write_uint(out, pos, np.uint64(c))
            out[pos] = _COLON
            pos += 1
            pos = _write_float(out, pos, data[j - data_start], single)
        out[pos] = _NL
        pos += 1
    return pos
