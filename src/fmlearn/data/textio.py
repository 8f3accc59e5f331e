"""Read and write libFM / libsvm / svmlight and FFM text files.

The readers load the whole file as bytes and parse it in two numba passes (count, then
fill preallocated arrays); numbers convert exactly as Python's ``float()`` does. Every
problem in a file is a :class:`~fmlearn.exceptions.DataFormatError` naming the file, the
1-based line and column, and how to fix it. See ``docs/data-formats.md``.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import re
import warnings
import zlib

import numpy as np
import scipy.sparse as sp

from fmlearn._atomic import atomic_write, open_regular
from fmlearn._compile_notice import compile_notice
from fmlearn._kernels import textscan as scan
from fmlearn._kernels.csr import canonicalize_rows
from fmlearn._kernels.textformat import MAX_ROW_BYTES, MAX_TOKEN_BYTES, format_rows
from fmlearn._memory import check_allocation, fmt_bytes
from fmlearn.exceptions import DataFormatError

__all__ = ["read_ffm", "read_libfm", "write_ffm", "write_libfm"]

_GZIP_MAGIC = b"\x1f\x8b"
_UTF8_BOM = b"\xef\xbb\xbf"
# Tokens per formatting chunk: bounds the output buffer to ~12 MiB.
_CHUNK_NNZ = 1 << 18
_CHUNK_ROWS = 1 << 16
# Compile times of the kernels with an empty numba cache (2-core machine), for the notice.
_READ_COMPILE_S = 2
_SORT_COMPILE_S = 1
_WRITE_COMPILE_S = 2


# ---------------------------------------------------------------------------------------------
# Reading


def read_libfm(path, *, n_features=None, dtype=np.float32):
    """Read a libFM / libsvm / svmlight text file.

    Each line is ``label index:value index:value ...`` separated by spaces or tabs.
    ``qid:N`` tokens, ``#`` comments, blank lines, CRLF line ends and a missing final newline
    are accepted. Indices are used as written (libFM files are 0-based; a 1-based libsvm
    file simply leaves column 0 empty). Gzipped files are decompressed transparently.

    Parameters
    ----------
    path : str or os.PathLike
        The file (plain or gzip-compressed).
    n_features : int, optional
        Number of columns of ``X``. Default: largest index + 1. An index ``>= n_features``
        is an error.
    dtype : {np.float32, np.float64}, default np.float32
        dtype of ``X.data``. Values are parsed to float64, then cast.

    Returns
    -------
    X : scipy.sparse.csr_matrix, shape (n_rows, n_features)
        ``X.indptr`` is int64, ``X.indices`` int32; each row's indices are sorted and
        duplicate indices within a row are summed.
    y : ndarray of float64, shape (n_rows,)
        The labels.

    Raises
    ------
    DataFormatError
        For any malformed line (with path, line, column and a hint), or a file with no rows.
    FileNotFoundError
        If ``path`` does not exist.
    """
    X, y, _ = _read(
        path, ffm=False, n_features=n_features, n_fields=None, dtype=dtype, strict_fields=True
    )
    return X, y


def read_ffm(path, *, n_features=None, n_fields=None, dtype=np.float32, on_field_conflict="error"):
    """Read an FFM (libffm / xLearn) text file: ``label field:index:value ...``.

    Same lexical rules as :func:`read_libfm`. Each feature should belong to one field; files
    whose features were hashed into one shared index space (such as xLearn's Criteo demo)
    break that rule, see ``on_field_conflict``.

    Parameters
    ----------
    path : str or os.PathLike
        The file (plain or gzip-compressed).
    n_features : int, optional
        Number of columns of ``X``. Default: largest index + 1.
    n_fields : int, optional
        Upper bound (exclusive) on field ids; a larger field is an error. Default: no bound.
    dtype : {np.float32, np.float64}, default np.float32
        dtype of ``X.data``.
    on_field_conflict : {"error", "first"}, default "error"
        A feature seen under two different fields is an error ("error"), or keeps the field
        it was first seen with, with a warning giving the count and the first place
        ("first"; fine for models that ignore fields, such as FM).

    Returns
    -------
    X : scipy.sparse.csr_matrix, shape (n_rows, n_features)
        As in :func:`read_libfm`.
    y : ndarray of float64, shape (n_rows,)
        The labels.
    fields : ndarray of int32, shape (n_features,)
        Field id of each feature; -1 for a feature that never occurs.

    Raises
    ------
    DataFormatError
        For any malformed line, a feature seen under two different fields, or no rows.
    FileNotFoundError
        If ``path`` does not exist.
    """
    if on_field_conflict not in ("error", "first"):
        raise ValueError(f"on_field_conflict must be 'error' or 'first', got {on_field_conflict!r}")
    return _read(
        path,
        ffm=True,
        n_features=n_features,
        n_fields=n_fields,
        dtype=dtype,
        strict_fields=on_field_conflict == "error",
    )


def _check_bound(name, value):
    if value is None:
        return -1
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int or None, got {value!r}")
    if not 0 <= value <= scan.MAX_INDEX + 1:
        raise ValueError(f"{name} must be in [0, {scan.MAX_INDEX + 1}], got {value}")
    return int(value)


def _check_dtype(dtype):
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be np.float32 or np.float64, got {dt}")
    return dt


def _open_regular(path):
    """Open ``path`` for reading if it is a regular file: (file, size). Pipes, devices and
    folders are refused (the readers need the file's size, and ``/dev/zero`` never ends)."""
    return open_regular(path, lambda kind: DataFormatError(
        path, None, None,
        f"is {kind}, not a regular file; the readers need a file (save a pipe's output to a "
        "file first)",
    ))


def _load_bytes(path):
    """The file's bytes as a writable uint8 array, gunzipped if it is gzip data."""
    f, size = _open_regular(path)
    with f:
        raw = np.fromfile(f, dtype=np.uint8, count=size)
    if raw[:2].tobytes() != _GZIP_MAGIC:
        return raw
    try:
        return _gunzip(path, raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFormatError(
            path, None, None, f"corrupt or truncated gzip file ({exc}); re-create it"
        ) from None


# Deflate cannot expand data more than about 1032 times.
_MAX_DEFLATE_RATIO = 1032
_GUNZIP_CHUNK = 1 << 22


def _gunzip(path, raw):
    """Inflate gzip bytes into one growing array, checked against the memory guard as it grows.

    A NUL byte, which no text file holds, stops it at once: a small file inflating to
    gigabytes of zeros fails in its first chunk instead of after filling memory.
    """
    # The trailer's ISIZE (the size mod 2**32 of the last member) is a good first capacity.
    hint = int.from_bytes(raw[-4:].tobytes(), "little") if raw.size >= 18 else 0
    capacity = max(min(hint, _MAX_DEFLATE_RATIO * raw.size), _GUNZIP_CHUNK)
    check_allocation(capacity, f"{path}: the inflated gzip file")
    out = np.empty(capacity, dtype=np.uint8)
    n = 0
    with gzip.GzipFile(fileobj=io.BytesIO(raw.data), mode="rb") as gz:
        while True:
            if n + _GUNZIP_CHUNK > out.shape[0]:
                capacity = 2 * out.shape[0]
                check_allocation(capacity, f"{path}: the inflated gzip file")
                out.resize(capacity, refcheck=False)
            got = gz.readinto(memoryview(out)[n : n + _GUNZIP_CHUNK])
            if not got:
                break
            chunk = out[n : n + got]
            if not chunk.all():  # a NUL byte
                pos = n + int(np.argmin(chunk))
                _raise_at(
                    path, out[: pos + 1], pos,
                    "NUL byte in the decompressed data: binary data, not a libFM/FFM text file",
                )
            n += got
    out.resize(n, refcheck=False)
    return out


def read_ffm_rows(path, *, n_features=None, dtype=np.float32):
    """``(X, y)`` of an FFM file without the per-feature field table (fields not checked).

    For callers that apply a model and ignore fields: the table has one entry per column, so a
    single feature index near 2**31 would cost 8 GiB.
    """
    X, y, _ = _read(path, ffm=True, n_features=n_features, n_fields=None, dtype=dtype,
                    strict_fields=False, want_fields=False)
    return X, y


def _read(path, *, ffm, n_features, n_fields, dtype, strict_fields, want_fields=True):
    dtype = _check_dtype(dtype)
    n_features = _check_bound("n_features", n_features)
    n_fields = _check_bound("n_fields", n_fields)
    path = os.fspath(path)
    return parse_buffer(path, _load_bytes(path), ffm=ffm, n_features=n_features,
                        n_fields=n_fields, dtype=dtype, strict_fields=strict_fields,
                        want_fields=want_fields)


def parse_buffer(path, buf, *, ffm, n_features, n_fields, dtype, strict_fields,
                 want_fields=True, empty_ok=False):
    """Parse ``buf`` (writable uint8 text of whole lines) as :func:`read_libfm` or
    :func:`read_ffm` parse a file: ``(X, y, fields)``, line numbers of errors relative to
    ``buf``. ``n_features``/``n_fields`` are -1 for no bound. With ``empty_ok`` a buffer without
    rows gives None instead of an error (a chunk of comments, for the chunked readers of
    :mod:`fmlearn.data.cache`)."""
    start = 3 if buf[:3].tobytes() == _UTF8_BOM else 0
    kernels = (scan.count_rows_tokens, scan.row_parser(ffm))
    compile_notice(*kernels, *([scan.first_field_conflict] if ffm else []), seconds=_READ_COMPILE_S)
    n_rows, capacity = scan.count_rows_tokens(buf, start)  # upper bounds
    if capacity == 0:
        if empty_ok:
            return None
        _raise_no_rows(path, buf)
    # Sized from upper bounds (every line a row, every token a feature): checked first.
    check_allocation(
        16 * (n_rows + 1) + (12 + 4 * ffm) * capacity,
        f"{path}: the arrays for {n_rows} lines and {capacity} tokens",
    )
    indptr = np.empty(n_rows + 1, dtype=np.int64)
    indices = np.empty(capacity, dtype=np.int32)
    data = np.empty(capacity, dtype=np.float64)
    y = np.empty(n_rows, dtype=np.float64)
    # FFM: each token's field, checked against the other tokens after parsing.
    tokfield = np.empty(capacity if ffm else 0, dtype=np.int32)
    no_fmap = np.empty(0, dtype=np.int32)

    single = bool(dtype == np.float32)
    args = (buf, start, ffm, single, n_features, n_fields, indptr, indices, data, y)
    info, fallback = _parse_rows(*args, no_fmap, tokfield)
    fields = None
    conflict = -1
    if ffm and want_fields and info[scan.INFO_CODE] == scan.OK:
        n_cols = n_features if n_features >= 0 else int(info[scan.INFO_MAX_INDEX]) + 1
        _check_field_table(path, n_cols, None if n_features >= 0 else len(buf) - start)
        fields = np.full(n_cols, -1, dtype=np.int32)
        conflict, n_conflicts = scan.first_field_conflict(
            indices, tokfield, info[scan.INFO_NNZ], fields, strict_fields
        )
        if conflict >= 0 and not strict_fields:
            feature = int(indices[conflict])
            warnings.warn(
                f"{path}: {n_conflicts} occurrences of features under another field than "
                f"the one they were first seen with (first: feature {feature}, token "
                f"{conflict + 1} of the file); each keeps its first field.",
                stacklevel=3,
            )
            conflict = -1
    if ffm and (info[scan.INFO_CODE] != scan.OK or conflict >= 0):
        # Parse again checking fields token by token: reports whichever problem comes first
        # in the file, with its position.
        _check_field_table(path, max(n_features, 0))
        fmap = np.full(max(n_features, 0), -1, dtype=np.int32)
        info, fallback = _parse_rows(*args, fmap, no_fmap)
        if info[scan.INFO_CODE] == scan.OK:  # pragma: no cover - the two checks disagree
            raise RuntimeError(f"{path}: field conflict at token {conflict} not located")
    del tokfield, args
    # Numbers the kernel could not convert exactly all precede any error it stopped at.
    _resolve_fallbacks(path, buf, fallback, y, data, single)
    if info[scan.INFO_CODE] != scan.OK:
        _raise_parse_error(path, buf, info, ffm, n_features, n_fields)
    n_rows = int(info[scan.INFO_ROWS])
    if n_rows == 0:
        if empty_ok:
            return None
        _raise_no_rows(path, buf)
    # The arrays were sized from upper bounds (labels and blank lines count there): shrink
    # them in place (realloc, no copy; nothing else references them).
    y.resize(n_rows, refcheck=False)
    indptr.resize(n_rows + 1, refcheck=False)
    nnz = int(info[scan.INFO_NNZ])
    if info[scan.INFO_UNSORTED]:
        # Most files list each row's features in increasing order, which the parser checks:
        # only other files pay for (and compile) the sort.
        compile_notice(canonicalize_rows, seconds=_SORT_COMPILE_S)
        nnz = canonicalize_rows(indptr, indices, data)
        # Each value was checked when parsed; a sum of duplicates can still overflow.
        _check_duplicate_sums(path, buf, start, ffm, single, indptr, indices, data[:nnz])
    del buf
    indices.resize(nnz, refcheck=False)
    if dtype == np.float64:
        data.resize(nnz, refcheck=False)
    else:
        data = data[:nnz].astype(dtype)
    max_index = int(info[scan.INFO_MAX_INDEX])
    n_cols = n_features if n_features >= 0 else max_index + 1

    X = sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols), copy=False)
    # scipy downcasts indptr to int32 when it can; callers rely on int64 indptr (nnz may
    # exceed 2**31) and int32 indices (half the memory of the largest array).
    X.indptr = indptr
    X.indices = indices
    X.has_sorted_indices = True
    X.has_canonical_format = True
    return X, y, fields


def _check_duplicate_sums(path, buf, start, ffm, single, indptr, indices, data):
    """Raise DataFormatError where a row's duplicate entries summed beyond the dtype's range."""
    limit = float(np.finfo(np.float32 if single else np.float64).max)
    over = ~(np.abs(data) <= limit)
    if not over.any():
        return
    p = int(np.flatnonzero(over)[0])
    row = int(np.searchsorted(indptr, p, side="right") - 1)
    feature = int(indices[p])
    line, column = _locate_feature(buf, start, row, feature, ffm)
    kind = "float32 (max ~3.4e38)" if single else "float64"
    raise DataFormatError(
        path, line, column,
        f"feature {feature} is repeated in this row and its values sum to {float(data[p]):g}, "
        f"which overflows {kind}; duplicates are summed, so merge or rescale them"
        + (" (or read with dtype=np.float64)" if single else ""),
    )


def _locate_feature(buf, start, row, feature, ffm):
    """(1-based line, column) of the last token of ``feature`` in data row ``row`` (0-based):
    rows are the lines with a label, blank and comment-only lines skipped. Error path only."""
    text = buf[start:].tobytes()
    n = -1
    for line_no, raw in enumerate(text.split(b"\n"), start=1):
        content = raw.split(b"#", 1)[0]
        if content.strip():
            n += 1
            if n == row:
                column = None
                pos = 0
                for tok in content.split():
                    pos = content.index(tok, pos)
                    parts = tok.split(b":")
                    idx = parts[1] if ffm and len(parts) == 3 else parts[0]
                    if len(parts) >= 2 and idx.isdigit() and int(idx) == feature:
                        column = pos + 1
                    pos += len(tok)
                return line_no, column
    return None, None


# A field table inferred from the largest index may be this many times the text's size (or
# FIELD_TABLE_FREE_BYTES) before the reader asks for n_features= to confirm it.
FIELD_TABLE_PER_TEXT_BYTE = 64
FIELD_TABLE_FREE_BYTES = 256 << 20


def _check_field_table(path, n_cols, text_bytes=None):
    """The field table has one int32 per column, up to the largest feature index. Inferred
    from the file (``text_bytes`` given), it must also be in proportion to the file: one line
    with feature index 2**31 - 2 would otherwise cost 8 GiB."""
    nbytes = 4 * n_cols
    if text_bytes is not None and nbytes > max(FIELD_TABLE_FREE_BYTES,
                                               FIELD_TABLE_PER_TEXT_BYTE * text_bytes):
        raise ValueError(
            f"{path}: the largest feature index, {n_cols - 1}, implies a field table of "
            f"{n_cols} features ({fmt_bytes(nbytes)}) for {text_bytes} bytes of text. Renumber "
            "the features 0, 1, 2, ... (or hash them into a smaller space), or pass "
            f"n_features={n_cols} if the model really has that many."
        )
    check_allocation(
        4 * n_cols,
        f"{path}: the field of each of {n_cols} features (largest index + 1)",
        "renumber the features 0, 1, 2, ... (or hash them into a smaller space)",
    )


def _parse_rows(
    buf, start, ffm, single, n_features, n_fields, indptr, indices, data, y, fmap, tokfield
):
    """Run the row parser to the end of ``buf`` (see :func:`fmlearn._kernels.textscan.row_parser`).

    Grows its fallback records and field map when it asks, and says what is wrong with a
    token it stopped at.

    Returns
    -------
    info : ndarray of int64, shape (textscan.N_INFO,)
        Error code, error position and counts (see the ``INFO_*`` slots).
    fallback : ndarray of int64, shape (4 * n_fallback,)
        Flat ``(kind, dest, start, end)`` records of numbers to convert with Python's
        ``float()``; they were left as 0 in ``y`` / ``data``.
    """
    kernel = scan.row_parser(ffm)
    info = np.zeros(scan.N_INFO, dtype=np.int64)
    info[scan.INFO_MAX_INDEX] = -1
    info[scan.INFO_MAX_FIELD] = -1
    state = np.zeros(scan.N_STATE, dtype=np.int64)
    state[scan.ST_I] = start
    indptr[0] = 0
    fb = np.empty(4 * 64, dtype=np.int64)
    args = (buf, single, n_features, n_fields, indptr, indices, data, y)
    while True:
        status = kernel(*args, fmap, tokfield, fb, state, info)
        if status == scan.GROW_FALLBACK:
            fb = np.concatenate([fb, np.empty_like(fb)])
        elif status == scan.GROW_FIELDMAP:
            need = int(state[scan.ST_NEED])
            size = min(max(2 * fmap.shape[0], need, 1024), scan.MAX_INDEX + 1)
            _check_field_table("the file", size)
            grown = np.full(size, -1, dtype=np.int32)
            grown[: fmap.shape[0]] = fmap
            fmap = grown
        elif status == scan.BAD_TOKEN:
            s, e = int(info[scan.INFO_TOK_START]), int(info[scan.INFO_TOK_END])
            is_label = state[scan.ST_HAS_LABEL] == 0
            info[scan.INFO_CODE], info[scan.INFO_POS] = _token_error(buf, s, e, is_label, ffm)
            break
        else:
            break
    info[scan.INFO_ROWS] = state[scan.ST_ROW]
    info[scan.INFO_NNZ] = state[scan.ST_K]
    return info, fb[: 4 * state[scan.ST_NFB]]


# A decimal as Python's float() reads it (nan/inf aside); ASCII digits only (bytes pattern).
_DECIMAL = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NONFINITE_WORDS = (b"inf", b"infinity", b"nan")


def _is_nonfinite_word(text):
    """Whether ``text`` spells out nan / inf / infinity, with an optional sign, any case."""
    if text[:1] in (b"-", b"+"):
        text = text[1:]
    return text.lower() in _NONFINITE_WORDS


def _uint_error(text, negative, too_large, bad):
    """Which of the three errors the non-negative int ``text`` has, or None if it is fine."""
    if text.isdigit():
        return too_large if int(text) > scan.MAX_INDEX else None
    return negative if len(text) > 1 and text[:1] == b"-" and text[1:].isdigit() else bad


def _token_error(buf, s, e, is_label, ffm):
    """``(error code, byte offset)`` of the token ``buf[s:e]`` that the parser rejected."""
    tok = buf[s:e].tobytes()
    if is_label:
        if b":" in tok:
            return scan.ERR_MISSING_LABEL, s
        return (scan.ERR_NONFINITE_LABEL if _is_nonfinite_word(tok) else scan.ERR_BAD_LABEL), s
    parts = tok.split(b":")
    n_colons = len(parts) - 1
    if n_colons == 0:
        return scan.ERR_NO_COLON, s
    if n_colons > 2:
        return scan.ERR_TOO_MANY_COLONS, s
    if ffm and n_colons == 1:
        return scan.ERR_LOOKS_LIKE_LIBFM, s
    if not ffm and n_colons == 2:
        return scan.ERR_LOOKS_LIKE_FFM, s
    pos = s
    if ffm:
        err = _uint_error(
            parts[0], scan.ERR_NEGATIVE_FIELD, scan.ERR_FIELD_TOO_LARGE, scan.ERR_BAD_FIELD
        )
        if err is not None:
            return err, s
        pos += len(parts[0]) + 1
    err = _uint_error(
        parts[-2], scan.ERR_NEGATIVE_INDEX, scan.ERR_INDEX_TOO_LARGE, scan.ERR_BAD_INDEX
    )
    if err is not None:
        return err, pos
    pos += len(parts[-2]) + 1
    if _is_nonfinite_word(parts[-1]):
        return scan.ERR_NONFINITE_VALUE, pos
    if _DECIMAL.fullmatch(parts[-1]) is None:
        return scan.ERR_BAD_VALUE, pos
    raise RuntimeError(  # pragma: no cover - the parser accepts every well-formed token
        f"token {tok!r} at byte {s} was rejected but is well formed"
    )


def _raise_no_rows(path, buf):
    what = "is empty" if buf.size == 0 else "has only blank or comment lines"
    raise DataFormatError(
        path, 1, 1, f"no rows: the file {what}; expected lines like '1 3:0.5 7:1'"
    )


def _token_text(buf, start, end, limit=40):
    text = buf[start:end].tobytes().decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _resolve_fallbacks(path, buf, fallback, y, data, single):
    """Convert the numbers the kernel deferred with Python's float(), validating them."""
    for kind, dest, start, end in fallback.reshape(-1, 4).tolist():
        text = buf[start:end].tobytes()
        value = float(text)  # the kernel already checked the syntax
        if kind == scan.FB_LABEL:
            if not math.isfinite(value):
                _raise_at(
                    path,
                    buf,
                    start,
                    f"label '{text.decode()}' is {_nonfinite_what(value)}"
                    "; labels must be finite numbers",
                )
            y[dest] = value
        else:
            if not math.isfinite(value):
                _raise_at(
                    path,
                    buf,
                    start,
                    f"value '{text.decode()}' is {_nonfinite_what(value)}; {_NONFINITE_HINT}",
                )
            with np.errstate(over="ignore"):
                overflows = single and not math.isfinite(np.float32(value))
            if overflows:
                _raise_at(path, buf, start, _overflow_msg(text.decode()))
            data[dest] = value


_NONFINITE_HINT = "NaN and infinity are not allowed: drop or impute them before writing the file"


def _nonfinite_what(value):
    return "NaN" if math.isnan(value) else "infinite (overflows float64)"


def _overflow_msg(text):
    return (
        f"value '{text}' overflows float32 (max ~3.4e38); "
        "read with dtype=np.float64 or rescale the feature"
    )


def _raise_at(path, buf, pos, message):
    line, col = scan.locate(buf, pos)
    raise DataFormatError(path, int(line), int(col), message)


def _raise_parse_error(path, buf, info, ffm, n_features, n_fields):
    code = int(info[scan.INFO_CODE])
    pos = int(info[scan.INFO_POS])
    start, end = int(info[scan.INFO_TOK_START]), int(info[scan.INFO_TOK_END])
    tok = _token_text(buf, start, end)
    # The n_features / n_fields hints need whole numbers, which the shortened token may cut.
    whole = buf[start:end].tobytes().split(b":")
    expected = "field:index:value" if ffm else "index:value"
    parts = tok.split(":")
    if ffm:
        field_txt = parts[0]
        index_txt = parts[1] if len(parts) > 1 else ""
    else:
        field_txt = ""
        index_txt = parts[0]
    value_txt = parts[-1] if len(parts) > 1 else ""

    if code == scan.ERR_BAD_LABEL:
        msg = (
            f"bad label '{tok}': every line must start with a numeric label such as "
            "1, -1, 0 or 3.5, separated from the features by spaces or tabs"
        )
    elif code == scan.ERR_MISSING_LABEL:
        msg = (
            f"line starts with '{tok}' instead of a label: every line must start with a "
            "numeric label (write 0 if the data has none)"
        )
    elif code == scan.ERR_NONFINITE_LABEL:
        msg = f"label '{tok}' is not finite; labels must be finite numbers"
    elif code == scan.ERR_NO_COLON:
        msg = f"token '{tok}' has no ':'; features must be written as {expected}" + (
            "" if ffm else " (is this a dense or CSV file?)"
        )
    elif code == scan.ERR_TOO_MANY_COLONS:
        msg = f"token '{tok}' has {tok.count(':')} ':'; features must be written as {expected}"
    elif code == scan.ERR_LOOKS_LIKE_FFM:
        msg = (
            f"token '{tok}' looks like FFM (field:index:value) but read_libfm expects "
            "index:value; use read_ffm for FFM files"
        )
    elif code == scan.ERR_LOOKS_LIKE_LIBFM:
        msg = (
            f"token '{tok}' looks like libFM/libsvm (index:value) but read_ffm expects "
            "field:index:value; use read_libfm for libFM/libsvm files"
        )
    elif code == scan.ERR_NEGATIVE_INDEX:
        msg = (
            f"negative feature index '{index_txt}' in token '{tok}'; indices must be "
            "non-negative integers (libFM files are 0-based, libsvm files 1-based)"
        )
    elif code == scan.ERR_BAD_INDEX:
        msg = (
            f"feature index '{index_txt}' in token '{tok}' is not a non-negative "
            f"integer; features must be written as {expected} with an integer index"
        )
    elif code == scan.ERR_INDEX_TOO_LARGE:
        msg = (
            f"feature index {index_txt} in token '{tok}' exceeds {scan.MAX_INDEX} (int32); "
            "re-hash the features into a smaller range, e.g. hash(feature) % 2**24"
        )
    elif code == scan.ERR_INDEX_GE_N_FEATURES:
        msg = (
            f"feature index {index_txt} in token '{tok}' is >= n_features={n_features}; "
            f"pass n_features={int(whole[1 if ffm else 0]) + 1} or more (or None to infer it "
            "from the file)"
        )
    elif code == scan.ERR_NEGATIVE_FIELD:
        msg = f"negative field '{field_txt}' in token '{tok}'; fields must be integers >= 0"
    elif code == scan.ERR_BAD_FIELD:
        msg = (
            f"field '{field_txt}' in token '{tok}' is not a non-negative integer; "
            "features must be written as field:index:value"
        )
    elif code == scan.ERR_FIELD_TOO_LARGE:
        msg = (
            f"field {field_txt} in token '{tok}' exceeds {scan.MAX_INDEX}; "
            "number the fields 0, 1, 2, ..."
        )
    elif code == scan.ERR_FIELD_GE_N_FIELDS:
        msg = (
            f"field {field_txt} in token '{tok}' is >= n_fields={n_fields}; pass "
            f"n_fields={int(whole[0]) + 1} or more (or None for no bound)"
        )
    elif code == scan.ERR_FIELD_CONFLICT:
        first = int(info[scan.INFO_EXTRA])
        msg = (
            f"feature {index_txt} appears under field {field_txt} in token '{tok}' but "
            f"under field {first} earlier in the file; each feature must belong to "
            "exactly one field. If indices are hashed per field, make them unique "
            "across fields (e.g. index = field * K + index with K > max index)"
        )
    elif code == scan.ERR_BAD_VALUE:
        msg = (
            f"bad value '{value_txt}' in token '{tok}'; values must be decimal numbers "
            "such as 1, 0.5 or -2e-3"
        )
    elif code == scan.ERR_NONFINITE_VALUE:
        msg = f"value '{value_txt}' in token '{tok}' is not finite; {_NONFINITE_HINT}"
    elif code == scan.ERR_VALUE_OVERFLOW:
        msg = _overflow_msg(value_txt)
    elif code == scan.ERR_CAPACITY:  # pragma: no cover - would be a bug in count_rows_tokens
        msg = "internal error: row/token count mismatch; please report this file"
    else:  # pragma: no cover - kernel and messages out of sync
        msg = f"parse error {code} in token '{tok}'"
    _raise_at(path, buf, pos, msg)


# ---------------------------------------------------------------------------------------------
# Writing


def write_libfm(path, X, y):
    """Write ``X, y`` as a libFM / libsvm text file: ``label index:value ...`` per row.

    Values are written as the shortest decimal that reads back to the identical float32
    (or float64, for float64 data); integral labels and values are written without a
    decimal point. The file is written to a temporary file next to ``path`` and renamed
    into place, so readers never see a partial file. A ``.gz`` path is gzip-compressed.

    Parameters
    ----------
    path : str or os.PathLike
        Destination.
    X : sparse matrix or ndarray, shape (n_rows, n_features)
        Stored entries are written in stored order (explicit zeros included); dense input is
        converted to CSR, dropping zeros.
    y : array-like, shape (n_rows,)
        Finite labels.

    Raises
    ------
    ValueError
        On mismatched shapes, NaN/inf in ``X`` or ``y``, or no rows.
    """
    _write(path, X, y, None)


def write_ffm(path, X, y, fields):
    """Write ``X, y`` as an FFM text file: ``label field:index:value ...`` per row.

    Same number formatting and atomic replacement as :func:`write_libfm`.

    Parameters
    ----------
    path : str or os.PathLike
        Destination.
    X : sparse matrix or ndarray, shape (n_rows, n_features)
    y : array-like, shape (n_rows,)
    fields : array-like of int, shape (n_features,)
        Field id of each feature; must be >= 0 for every feature that occurs in ``X``
        (-1 is fine for the others).

    Raises
    ------
    ValueError
        As :func:`write_libfm`, or when a stored feature has no field.
    """
    _write(path, X, y, fields)


def _as_csr(X):
    if sp.issparse(X):
        X = X.tocsr()
    else:
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D, got shape {X.shape}")
        X = sp.csr_matrix(X)
    if X.shape[1] > scan.MAX_INDEX + 1:
        raise ValueError(
            f"X has {X.shape[1]} columns; the text formats support at most {scan.MAX_INDEX + 1}"
        )
    data = X.data
    if data.dtype not in (np.float32, np.float64):
        if data.dtype.kind == "f" and data.dtype.itemsize < 4:
            data = data.astype(np.float32)  # float16: float32 text round-trips it
        elif data.dtype.kind in "biuf":
            data = data.astype(np.float64)
        else:
            raise ValueError(f"X must hold real numbers, got dtype {data.dtype}")
    indptr = np.ascontiguousarray(X.indptr, dtype=np.int64)
    indices = np.ascontiguousarray(X.indices, dtype=np.int32)
    return X.shape, indptr, indices, np.ascontiguousarray(data)


def _write(path, X, y, fields):
    ffm = fields is not None
    shape, indptr, indices, data = _as_csr(X)
    n_rows, n_cols = shape
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (n_rows,):
        raise ValueError(f"y must have shape ({n_rows},) to match X, got {y.shape}")
    if n_rows == 0:
        raise ValueError("X has no rows; an empty file could not be read back")
    nnz = int(indptr[-1])
    indices = indices[:nnz]
    data = data[:nnz]
    if not np.isfinite(y).all():
        bad = int(np.flatnonzero(~np.isfinite(y))[0])
        raise ValueError(f"y[{bad}] = {y[bad]} is not finite; the formats need finite labels")
    finite = np.isfinite(data)
    if not finite.all():
        j = int(np.flatnonzero(~finite)[0])
        row = int(np.searchsorted(indptr, j, side="right")) - 1
        raise ValueError(
            f"X[{row}, {indices[j]}] = {data[j]} is not finite; drop or impute NaN/inf first"
        )
    if ffm:
        fields = np.asarray(fields)
        if fields.shape != (n_cols,) or fields.dtype.kind not in "iu":
            raise ValueError(
                f"fields must be an integer array of shape ({n_cols},), got "
                f"{fields.dtype} {fields.shape}"
            )
        if fields.size and fields.max() > scan.MAX_INDEX:
            raise ValueError(f"field ids must be <= {scan.MAX_INDEX}")
        fields = fields.astype(np.int32)  # stored features need a field >= 0: _write_chunks
    else:
        fields = np.empty(0, dtype=np.int32)
    single = data.dtype == np.float32

    path = os.fspath(path)
    compile_notice(format_rows, seconds=_WRITE_COMPILE_S)
    with atomic_write(path) as raw:
        if path.endswith(".gz"):
            # Closing the GzipFile writes the trailer but leaves raw open.
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
                _write_chunks(gz, indptr, indices, data, y, fields, ffm, single)
        else:
            _write_chunks(raw, indptr, indices, data, y, fields, ffm, single)


def _write_chunks(f, indptr, indices, data, y, fields, ffm, single):
    """Format and write rows in chunks of about _CHUNK_NNZ tokens."""
    n_rows = indptr.shape[0] - 1
    out = np.empty(0, dtype=np.uint8)
    r0 = 0
    while r0 < n_rows:
        r1 = int(np.searchsorted(indptr, indptr[r0] + _CHUNK_NNZ, side="right")) - 1
        r1 = min(max(r1, r0 + 1), r0 + _CHUNK_ROWS, n_rows)
        need = MAX_ROW_BYTES * (r1 - r0) + MAX_TOKEN_BYTES * int(indptr[r1] - indptr[r0])
        if out.shape[0] < need:
            out = np.empty(need, dtype=np.uint8)
        j0, j1 = int(indptr[r0]), int(indptr[r1])
        # float64 chunk: one compiled kernel for both dtypes; `single` keeps float32 text short.
        chunk = data[j0:j1].astype(np.float64)
        tok_fields = fields[indices[j0:j1]] if ffm else fields
        if ffm and j1 > j0 and tok_fields.min() < 0:
            c = indices[j0 + int(np.argmax(tok_fields < 0))]
            raise ValueError(
                f"feature {c} occurs in X but fields[{c}] = {fields[c]}; give every stored "
                "feature a field >= 0"
            )
        n = format_rows(indptr, indices, chunk, tok_fields, j0, y, ffm, single, r0, r1, out)
        f.write(memoryview(out)[:n])
        r0 = r1
