"""libFM's binary data files (written by its ``convert`` and ``transpose`` tools).

Readers for the sparse matrices (``.x``, ``.xt``, ``.data``, ``.datat``), dense vectors
(``.y``, ``.target``, binary block indices) and whitespace-separated integer files (``-meta``,
text ``R.train``/``R.test``) that ``fmlearn libfm`` accepts; errors name the file (and line and
column for text).
"""

from __future__ import annotations

import re
import struct

import numpy as np
import scipy.sparse as sp

from fmlearn.exceptions import DataFormatError

_FMATRIX_HEADER = struct.Struct("<IIQII")  # id=2, float size, #values, #rows, #cols (24 bytes)
_FMATRIX_ID = 2
_DVECTOR_HEADER = struct.Struct("<III")  # id=1, value size, #values
_DVECTOR_ID = 1


def file_head(path: str, n: int) -> bytes:
    """The first ``n`` bytes of a file."""
    with open(path, "rb") as f:
        return f.read(n)


def is_binary_matrix(path: str) -> bool:
    """True for a sparse matrix written by libFM's ``convert``/``transpose`` tools."""
    head = file_head(path, 8)
    return len(head) == 8 and struct.unpack("<II", head) in ((_FMATRIX_ID, 4), (_FMATRIX_ID, 8))


def read_binary_matrix(path: str) -> sp.csr_matrix:
    """A libFM binary sparse matrix (``.x``, ``.xt``, ``.data``, ``.datat``) as CSR.

    Layout (little-endian): a 24-byte header ``uint32 id=2, uint32 float_size, uint64 n_values,
    uint32 n_rows, uint32 n_cols``, then per row ``uint32 size`` and ``size`` entries
    ``{uint32 id; float value}`` (8 bytes; 16 with double values, ``id`` padded to 8 bytes).
    """
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < _FMATRIX_HEADER.size:
        raise DataFormatError(path, None, None, "truncated libFM binary matrix header")
    fid, fsize, nnz, n_rows, n_cols = _FMATRIX_HEADER.unpack_from(buf)
    if fid != _FMATRIX_ID or fsize not in (4, 8):
        raise DataFormatError(path, None, None, f"not a libFM binary sparse matrix (file id "
                              f"{fid}, float size {fsize}; expected 2 and 4 or 8)")
    body = buf[_FMATRIX_HEADER.size:]
    if len(body) % 4:
        raise DataFormatError(path, None, None, "truncated libFM binary matrix")
    words = np.frombuffer(body, dtype="<u4")
    step = 2 if fsize == 4 else 4  # 4-byte words per entry
    starts = np.empty(n_rows, dtype=np.int64)
    pos, end = 0, words.shape[0]
    for r in range(n_rows):  # each row's offset depends on the sizes before it
        if pos >= end:
            raise DataFormatError(path, None, None, f"truncated: the header announces {n_rows} "
                                  f"rows, the file holds {r}")
        starts[r] = pos
        pos += 1 + step * int(words[pos])
    if pos != end:
        raise DataFormatError(path, None, None, "the rows do not match the file size (truncated "
                              "or trailing bytes)")
    sizes = words[starts].astype(np.int64)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(sizes, out=indptr[1:])
    if indptr[-1] != nnz:
        raise DataFormatError(path, None, None, f"the header announces {nnz} values, the rows "
                              f"hold {indptr[-1]}")
    at = np.repeat(starts + 1, sizes) + step * (np.arange(nnz) - np.repeat(indptr[:-1], sizes))
    ids = words[at]
    if fsize == 4:
        values = words[at + 1].view("<f4")
    else:
        values = np.ascontiguousarray(np.stack([words[at + 2], words[at + 3]], 1)).view("<f8")
        values = values.reshape(-1)
    if nnz and int(ids.max()) >= n_cols:
        raise DataFormatError(path, None, None, f"column id {int(ids.max())} >= the header's "
                              f"{n_cols} columns")
    X = sp.csr_matrix((values.astype(np.float32), ids.astype(np.int32), indptr),
                      shape=(n_rows, n_cols))
    X.sum_duplicates()
    return X


def read_binary_vector(path: str, kind: str) -> np.ndarray:
    """A libFM binary dense vector (``.y``, ``.target``; block indices): ``kind`` "float"/"uint".

    Layout: ``uint32 id=1, uint32 value_size, uint32 n`` then ``n`` values.
    """
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < _DVECTOR_HEADER.size:
        raise DataFormatError(path, None, None, "truncated libFM binary vector header")
    fid, size, n = _DVECTOR_HEADER.unpack_from(buf)
    dtypes = {("float", 4): "<f4", ("float", 8): "<f8", ("uint", 4): "<u4"}
    if fid != _DVECTOR_ID or (kind, size) not in dtypes:
        raise DataFormatError(path, None, None, f"not a libFM binary {kind} vector (file id "
                              f"{fid}, value size {size})")
    if len(buf) != _DVECTOR_HEADER.size + n * size:
        raise DataFormatError(path, None, None, f"the header announces {n} values of {size} "
                              f"bytes, the file holds {len(buf) - _DVECTOR_HEADER.size} bytes")
    return np.frombuffer(buf, dtype=dtypes[kind, size], offset=_DVECTOR_HEADER.size).copy()


def is_binary_index_file(path: str) -> bool:
    """libFM's own test (relation.h): a binary vector of 4-byte unsigned ints."""
    head = file_head(path, 8)
    return len(head) == 8 and struct.unpack("<II", head) == (_DVECTOR_ID, 4)


def read_int_tokens(path: str, what: str) -> np.ndarray:
    """Whitespace-separated non-negative integers (a -meta file, a text R.train/R.test)."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", errors="replace")
    tokens = text.split()
    try:
        values = np.array(tokens, dtype=np.int64) if tokens else np.zeros(0, np.int64)
        ok = bool((values >= 0).all())
    except (ValueError, OverflowError):
        ok = False
    if not ok:
        for m in re.finditer(r"\S+", text):
            tok = m.group()
            if not tok.isdigit():
                line = text.count("\n", 0, m.start()) + 1
                col = m.start() - text.rfind("\n", 0, m.start())
                raise DataFormatError(path, line, col, f"'{tok[:40]}' is not a non-negative "
                                      f"integer; {what}")
    return values
