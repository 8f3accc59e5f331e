"""Numba kernels that tokenize libFM / libsvm / FFM text into CSR arrays.

Arrays in, arrays out. A file is read in two passes: :func:`count_rows_tokens` bounds the
number of rows and tokens, then the kernel from :func:`row_parser` fills preallocated arrays.
Kernels never raise for bad input. The parser stops at the first problem: a check on parsed
numbers (an index ``>= n_features``, a field conflict, a float32 overflow) is returned as an
error code (``ERR_*``) with its byte position; a token that is not well formed stops it with
status ``BAD_TOKEN``, and :mod:`fmlearn.data.textio` says in Python what is wrong with it:
errors are rare, and explaining them in the kernel cost every first read compile time.
Numbers are converted by :mod:`fmlearn._kernels.numbers`.

Kernels use plain ``numba.njit(cache=True, nogil=True)``, not the project's ``_jit.jit``: its
fast-math flags would break the exact number conversions.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from fmlearn._kernels.numbers import NUM_BAD, NUM_SLOW, parse_float_prefix

__all__ = ["count_rows_tokens", "first_field_conflict", "locate", "row_parser"]

# ---------------------------------------------------------------------------------------------
# Error codes in ``info[INFO_CODE]``: the parser's (kernel) and the caller's (token checks).
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

# Slots of the ``info`` array (int64, N_INFO) that the parser updates.
INFO_CODE = 0  # OK or ERR_*
INFO_POS = 1  # byte offset of the offending text
INFO_TOK_START = 2  # byte span of the token holding it (also set for BAD_TOKEN)
INFO_TOK_END = 3
INFO_EXTRA = 4  # ERR_FIELD_CONFLICT: the field first seen for the feature
INFO_ROWS = 5  # set by the caller
INFO_NNZ = 6  # set by the caller
INFO_MAX_INDEX = 7  # start at -1
INFO_MAX_FIELD = 8  # start at -1
INFO_UNSORTED = 9  # 1 once a row's indices are not strictly increasing
N_INFO = 10

# Slots of the ``state`` array (int64, N_STATE) that carries the parser's position across
# calls; all 0 at the start except ST_I (the first byte after a UTF-8 BOM).
ST_I = 0  # next byte to read; the offending token's start after BAD_TOKEN
ST_ROW = 1  # rows finished
ST_K = 2  # tokens stored
ST_HAS_LABEL = 3  # 1 inside a row (its label read)
ST_NFB = 4  # fallback records stored
ST_NEED = 5  # GROW_FIELDMAP: the field map must cover index ST_NEED - 1
ST_PREV = 6  # index of the row's previous token, -1 at a row's start
N_STATE = 7

# Status returned by the parser. It returns (instead of reallocating) when an output array is
# full: reassigning an array inside the hot loop makes numba emit reference counting on every
# iteration, which made it 3x slower. The caller acts and calls it again with the same state.
DONE = 0  # end of file, or an error in info[INFO_CODE]
GROW_FALLBACK = 1  # the fallback array is full
GROW_FIELDMAP = 2  # the field map is too short
BAD_TOKEN = 3  # the token at state[ST_I] is malformed (a label if not state[ST_HAS_LABEL])

# Kinds of the flat (kind, dest, start, end) fallback records: numbers to convert with
# Python's float(), and where to store them.
FB_LABEL = 0  # store into y[dest]
FB_VALUE = 1  # store into data[dest]

# Largest feature index / field id: index + 1 (the number of features) must fit in int32.
MAX_INDEX = 2**31 - 2

# Bytes. Tokens end at a delimiter: space, \t, \n, \v, \f, \r (so CRLF files read like LF
# files) or '#' (a comment). Written out as `c == 32 or c == _HASH or 9 <= c <= 13` where
# needed: a helper function would cost compile time.
_NL = 10
_HASH = 35
_COLON = 58


@numba.njit(cache=True, nogil=True)
def count_rows_tokens(buf, start):
    """First pass: upper bounds on the number of rows and of tokens (labels included).

    Sizes the arrays the parser fills: at most ``n_lines`` rows and ``n_tokens`` features.
    A token starts at a non-delimiter byte after a delimiter (space, tab, CR, LF, VT, FF,
    ``#``); words inside ``#`` comments count too. Branch-free with no loop-carried state
    beyond one flag, so LLVM vectorizes it: ~10x faster than tokenizing properly.

    Parameters
    ----------
    buf : ndarray of uint8, shape (n_bytes,)
    start : int
        First byte to read (3 after a UTF-8 byte order mark, else 0).

    Returns
    -------
    n_lines, n_tokens : int
        Newlines + 1, and token starts.
    """
    newlines = 0
    tokens = 0
    prev_delim = 1
    for i in range(start, buf.shape[0]):
        c = np.int64(buf[i])
        # bit c of the mask is set for the delimiters 9-13, 32 and 35 ('#')
        delim = np.int64(c <= 35) & ((np.int64(0x900003E00) >> (c & 63)) & 1)
        tokens += (delim ^ 1) & prev_delim
        newlines += np.int64(c == _NL)
        prev_delim = delim
    return newlines + 1, tokens


@numba.njit(cache=True, nogil=True)
def _fast_uint(buf, i, n):
    """Digits at ``buf[i:]`` up to a ':': ``(value, position of the ':')``.

    Returns position -1 when there are no digits, they are not followed by ':', or their
    value exceeds MAX_INDEX; the token is then malformed (or ``qid:``).
    """
    v = 0
    j = i
    while j < n:
        d = np.int64(buf[j]) - 48
        if d < 0 or d > 9:
            break
        v = v * 10 + d
        if v > MAX_INDEX:  # also keeps v from overflowing; leading zeros are fine
            return 0, -1
        j += 1
    if j == i or j >= n or buf[j] != _COLON:
        return 0, -1
    return v, j


@numba.njit(cache=True, nogil=True)
def _token_end(buf, s, n):
    """End of the token at ``s`` and its number of colons."""
    ncolon = 0
    i = s
    while i < n:
        c = buf[i]
        if c == 32 or c == _HASH or 9 <= c <= 13:  # a delimiter
            break
        if c == _COLON:
            ncolon += 1
        i += 1
    return i, ncolon


def _make_parse_rows(FFM):
    """The parser of ``index:value`` tokens (``FFM`` 0) or ``field:index:value`` ones (1).

    A closure over an int, which numba's cache keys on: the FFM code is pruned before
    typing, so reading a libFM file compiles only what it uses.
    """

    @numba.njit(cache=True, nogil=True)
    def parse_rows(
        buf, single, n_features, n_fields, indptr, indices, data, y, fmap, tokfield, fb, state,
        info,
    ):
        """Second pass: parse rows into preallocated CSR arrays, from and into ``state``.

        Every byte is read once. Only well-formed ``[field:]index:value`` and label tokens
        are accepted (and ``qid:N``, skipped); any other token stops the parser with
        BAD_TOKEN. Call with ``indptr[0] = 0`` and ``state``/``info`` initialized as their
        slots say; on GROW_FALLBACK / GROW_FIELDMAP grow ``fb`` / ``fmap`` and call again.

        Parameters
        ----------
        buf : ndarray of uint8, shape (n_bytes,)
            The whole file.
        single : bool
            The values will be cast to float32: a value that overflows float32 is an error.
        n_features, n_fields : int
            Exclusive upper bounds for indices / fields, or -1 for "no bound".
        indptr : ndarray of int64, shape (n_rows + 1,)
        indices : ndarray of int32, shape (capacity,)
        data : ndarray of float64, shape (capacity,)
        y : ndarray of float64, shape (n_rows,)
            Output arrays sized from :func:`count_rows_tokens` (capacity = n_tokens -
            n_rows). Values stay float64 (one compiled kernel for both output dtypes); the
            caller casts.
        fmap : ndarray of int32, shape (m,)
            FFM with an empty ``tokfield`` only: field of each feature seen so far (-1 =
            unseen), checked token by token. Pass ``n_features`` -1s when ``n_features`` is
            known, else an empty array (GROW_FIELDMAP asks for more).
        tokfield : ndarray of int32, shape (capacity,) or (0,)
            FFM only. Non-empty: store each token's field here and leave the
            one-field-per-feature check to :func:`first_field_conflict` (much faster:
            checking inline stalls on a cache miss per token). Empty: check inline with
            ``fmap``, which stops at the first conflict in file order -- use it to locate an
            error.
        fb : ndarray of int64, shape (4 * capacity,)
            Flat ``(kind, dest, start, end)`` records of numbers to convert with Python's
            ``float()``; they are left as 0 in ``y`` / ``data``. ``state[ST_NFB]`` are used.
        state : ndarray of int64, shape (N_STATE,)
        info : ndarray of int64, shape (N_INFO,)

        Returns
        -------
        status : int
            DONE, GROW_FALLBACK, GROW_FIELDMAP or BAD_TOKEN.
        """
        n = buf.shape[0]
        i = state[ST_I]
        row = state[ST_ROW]
        k = state[ST_K]
        has_label = state[ST_HAS_LABEL] != 0
        nfb = state[ST_NFB]
        prev = state[ST_PREV]
        need = 0
        max_index = info[INFO_MAX_INDEX]
        max_field = info[INFO_MAX_FIELD]
        unsorted = info[INFO_UNSORTED]
        status = DONE
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
            if c == 32 or 9 <= c <= 13:  # space, \t, \v, \f, \r (\n is handled above)
                i += 1
                continue
            if c == _HASH:
                while i < n and buf[i] != _NL:
                    i += 1
                continue
            s = i

            # A label, or [field ':'] index ':' value; then a delimiter. One call site of
            # parse_float_prefix for both, so that it can be inlined once.
            field = 0
            idx = 0
            idx_s = s
            val_s = s
            ok = True
            if has_label:
                a, p = _fast_uint(buf, s, n)
                if FFM:
                    if p >= 0:
                        field = a
                        idx_s = p + 1
                        a, p = _fast_uint(buf, idx_s, n)
                idx = a
                val_s = p + 1
                ok = p >= 0
            st = NUM_BAD
            v = 0.0
            if ok:
                st, v, e = parse_float_prefix(buf, val_s, n)
                if st != NUM_BAD and e < n:
                    c = buf[e]
                    ok = c == 32 or c == _HASH or 9 <= c <= 13  # a delimiter follows
                else:
                    ok = st != NUM_BAD
            if not ok:
                e, ncolon = _token_end(buf, s, n)
                if (
                    has_label
                    and ncolon == 1
                    and e > s + 3
                    and buf[s] == 113
                    and buf[s + 1] == 105
                    and buf[s + 2] == 100
                    and buf[s + 3] == _COLON
                ):
                    i = e  # svmlight ranking files: 'qid:N' carries no feature
                    continue
                status = BAD_TOKEN
                break

            if not has_label:
                if row >= y.shape[0]:
                    err = ERR_CAPACITY
                    epos = s
                    break
                if st == NUM_SLOW:
                    if 4 * nfb == fb.shape[0]:
                        status = GROW_FALLBACK  # re-read this label once fb has grown
                        break
                    fb[4 * nfb] = FB_LABEL
                    fb[4 * nfb + 1] = row
                    fb[4 * nfb + 2] = s
                    fb[4 * nfb + 3] = e
                    nfb += 1
                y[row] = v
                has_label = True
                prev = -1
                i = e
                continue
            i = e

            # Checks on the parsed numbers.
            if FFM:
                if n_fields >= 0 and field >= n_fields:
                    err = ERR_FIELD_GE_N_FIELDS
                    epos = s
                    break
            if n_features >= 0 and idx >= n_features:
                err = ERR_INDEX_GE_N_FEATURES
                epos = idx_s
                break
            if st == NUM_SLOW:
                if 4 * nfb == fb.shape[0]:
                    i = s
                    status = GROW_FALLBACK
                    break
            elif single and math.isinf(np.float32(v)):
                err = ERR_VALUE_OVERFLOW  # finite in float64 but not in float32
                epos = val_s
                break
            if FFM:
                if tokfield.shape[0] > 0:
                    tokfield[k] = field
                else:
                    if idx >= fmap.shape[0]:
                        i = s  # re-read this token once the caller has grown fmap
                        need = idx + 1
                        status = GROW_FIELDMAP
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
                fb[4 * nfb] = FB_VALUE
                fb[4 * nfb + 1] = k
                fb[4 * nfb + 2] = val_s
                fb[4 * nfb + 3] = e
                nfb += 1
            indices[k] = idx
            data[k] = v
            # One compare per token spares sorting files whose rows are already in order.
            if idx <= prev:
                unsorted = 1
            prev = idx
            if idx > max_index:
                max_index = idx
            k += 1

        state[ST_I] = i  # at the token to re-read or explain (i == s) if one stopped it
        state[ST_ROW] = row
        state[ST_K] = k
        state[ST_HAS_LABEL] = 1 if has_label else 0
        state[ST_NFB] = nfb
        state[ST_NEED] = need
        state[ST_PREV] = prev
        info[INFO_MAX_INDEX] = max_index
        info[INFO_MAX_FIELD] = max_field
        info[INFO_UNSORTED] = unsorted
        if status == BAD_TOKEN:
            info[INFO_TOK_START] = s
            info[INFO_TOK_END] = e
        elif err != OK:
            info[INFO_CODE] = err
            info[INFO_POS] = epos
            info[INFO_TOK_START] = s
            info[INFO_TOK_END] = e
            info[INFO_EXTRA] = need
        elif status == DONE and has_label:
            row += 1
            indptr[row] = k
            state[ST_ROW] = row
        return status

    return parse_rows


_PARSERS: dict = {}


def row_parser(ffm):
    """The jitted parser for FFM (``ffm`` true) or libFM / libsvm text (see ``parse_rows``
    in :func:`_make_parse_rows`). Built on first use: compiled on its first call, or loaded
    from numba's on-disk cache."""
    key = int(bool(ffm))
    kernel = _PARSERS.get(key)
    if kernel is None:
        kernel = _PARSERS.setdefault(key, _make_parse_rows(key))
    return kernel


@numba.njit(cache=True, nogil=True)
def first_field_conflict(indices, tokfield, nnz, fmap, stop):
    """Fill ``fmap`` from the tokens' fields; return the first conflicting token and a count.

    Parameters
    ----------
    indices, tokfield : ndarray of int32, shape (>= nnz,)
        Feature index and field of each token, in file order (before canonicalization).
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
def locate(buf, pos):
    """1-based ``(line, column)`` of byte offset ``pos``; the column counts bytes."""
    line = 1
    last_nl = -1
    for j in range(min(pos, buf.shape[0])):
        if buf[j] == _NL:
            line += 1
            last_nl = j
    return line, pos - last_nl
