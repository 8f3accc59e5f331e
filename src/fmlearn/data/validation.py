"""One home for the checks that keep malformed input away from the kernels.

The kernels run without bounds checks (that is what makes them fast), so everything they index
is checked here, once, at the boundary, in O(nnz):

- :func:`check_matrix`: a design matrix (any scipy sparse format, or dense). Its sparse
  structure (``indptr`` starts at 0, never decreases, ends within the arrays; every index in
  ``[0, n_columns)``, checked in the index dtype *before* any cast to int32), its values
  (finite and within float32's range, as the parameters are float32; after duplicates are
  summed), and explicit stored zeros, which are dropped (on a copy, only when present) so that
  a matrix trains exactly as the same matrix without them.
- :func:`check_fields`: the field of each feature (FFM, FwFM).

Every failure is a ``ValueError`` naming the argument, the row and the column.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fmlearn._kernels.csr import index_range, value_counts

# The parameters (and the SGD kernels' sums) are float32: a larger value overflows to inf.
FLOAT32_MAX = float(np.finfo(np.float32).max)
# Field ids are int32 in the kernels, and n_fields = max id + 1 must be an int32 too.
MAX_FIELD = int(np.iinfo(np.int32).max) - 1

_FAST_INDEX = (np.dtype(np.int32), np.dtype(np.int64))
_FAST_DATA = (np.dtype(np.float32), np.dtype(np.float64))


def _malformed(name: str, what: str) -> ValueError:
    return ValueError(
        f"{name} is a malformed sparse matrix: {what}. Build it with scipy's constructors "
        "(e.g. scipy.sparse.csr_matrix((data, (rows, cols)), shape=...)) or run "
        f"{name}.check_format(full_check=True) to find the fault."
    )


def _minmax(a: np.ndarray) -> tuple[int, int]:
    if a.dtype in _FAST_INDEX:
        lo, hi = index_range(a)
    else:  # other integer dtypes are rare: numpy, in their own dtype (no wrap-around)
        lo, hi = a.min(), a.max()
    return int(lo), int(hi)


def _check_index_array(a, name: str, what: str) -> None:
    a = np.asarray(a)
    if a.ndim != 1:
        raise _malformed(name, f"{what} is not 1-D (shape {a.shape})")
    if a.size and a.dtype.kind not in "iu":
        raise _malformed(name, f"{what} has dtype {a.dtype}, not an integer dtype")


def _check_compressed(indptr, indices, n_major: int, n_minor: int, name: str, csc=False):
    """Check CSR (or CSC: ``csc``) arrays; returns ``indptr[-1]``, the number of entries."""
    _check_index_array(indptr, name, "indptr")
    _check_index_array(indices, name, "indices")
    major, minor = ("column", "row") if csc else ("row", "column")
    if indptr.shape[0] != n_major + 1:
        raise _malformed(
            name, f"indptr has {indptr.shape[0]} entries for {n_major} {major}s (needs "
            f"{n_major + 1})"
        )
    if int(indptr[0]) != 0:
        raise _malformed(name, f"indptr starts at {int(indptr[0])}, not 0")
    if n_major and np.any(indptr[1:] < indptr[:-1]):
        r = int(np.flatnonzero(indptr[1:] < indptr[:-1])[0])
        raise _malformed(
            name, f"indptr decreases at {major} {r} ({int(indptr[r])} then {int(indptr[r + 1])})"
        )
    nnz = int(indptr[-1])
    if nnz > indices.shape[0]:
        raise _malformed(
            name, f"indptr ends at {nnz} but indices holds only {indices.shape[0]} entries"
        )
    if nnz:
        lo, hi = _minmax(indices[:nnz])
        if lo < 0 or hi >= n_minor:
            p = int(np.flatnonzero((indices[:nnz] < 0) | (indices[:nnz] >= n_minor))[0])
            r = int(np.searchsorted(indptr, p, side="right") - 1)
            raise ValueError(
                f"{name} has {minor} index {int(indices[p])} in {major} {r} (stored entry {p}), "
                f"outside [0, {n_minor}) for a matrix of {n_minor} {minor}s: the sparse "
                "structure is malformed (an index past the shape, negative, or too large for "
                "the index dtype). Build the matrix with scipy's constructors, which check "
                "indices, and pass its true shape."
            )
    return nnz


def _check_coo(X, name: str) -> None:
    n_rows, n_cols = X.shape
    for what, a, n in (("row", X.row, n_rows), ("col", X.col, n_cols)):
        _check_index_array(a, name, what)
        if a.size:
            lo, hi = _minmax(a)
            if lo < 0 or hi >= n:
                p = int(np.flatnonzero((a < 0) | (a >= n))[0])
                raise ValueError(
                    f"{name} has {what} index {int(a[p])} (entry {p}), outside [0, {n}) for a "
                    f"matrix of shape {X.shape}: the sparse structure is malformed."
                )
    if not (X.row.shape == X.col.shape == X.data.shape):
        raise _malformed(name, "row, col and data differ in length")


def _to_csr(X, name: str) -> sp.csr_matrix:
    """CSR of any sparse format, checking the structure of those whose conversion indexes
    with it (CSC, COO, BSR) first."""
    fmt = X.format
    if fmt == "csr":
        return X
    if fmt == "csc":
        _check_compressed(X.indptr, X.indices, X.shape[1], X.shape[0], name, csc=True)
    elif fmt == "coo":
        _check_coo(X, name)
    elif fmt == "bsr":
        R, C = X.blocksize
        _check_compressed(X.indptr, X.indices, X.shape[0] // R, X.shape[1] // C, name)
    return X.tocsr()


def _value_error(X, p: int, name: str, dup: bool) -> ValueError:
    r = int(np.searchsorted(X.indptr, p, side="right") - 1)
    x = X.data[p]
    summed = " (after summing duplicate entries of the row)" if dup else ""
    return ValueError(
        f"{name} has the value {x}{summed} in row {r}, column {int(X.indices[p])}: feature "
        f"values must be finite numbers within +-{FLOAT32_MAX:.4g} (the model's parameters "
        "are float32, so a larger value would overflow to inf or NaN). Drop or impute "
        "NaN/inf, and rescale very large feature values (e.g. log1p or "
        "sklearn.preprocessing.MaxAbsScaler)."
    )


def check_structure(X, name: str = "X") -> sp.csr_matrix:
    """``X`` (any sparse format, or dense) as a CSR matrix whose structure is sound: ``indptr``
    starts at 0, never decreases and ends within the arrays, and every column index lies in
    ``[0, n_columns)``, checked in the index dtype before any cast. Values are not checked
    (see :func:`check_matrix`); rows may be unsorted or hold duplicates.
    """
    if sp.issparse(X):
        X = _to_csr(X, name)
    else:
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {arr.shape}.")
        X = sp.csr_matrix(arr)
    if not isinstance(X, sp.csr_matrix):  # a csr_array: the same arrays, the matrix API
        X = sp.csr_matrix(X)
    n_rows, n_cols = X.shape
    nnz = _check_compressed(X.indptr, X.indices, n_rows, n_cols, name)
    data = np.asarray(X.data)
    if data.ndim != 1 or data.shape[0] < nnz:
        raise _malformed(name, f"data holds {data.shape[0]} entries, indptr needs {nnz}")
    if X.indices.shape[0] != nnz or data.shape[0] != nnz:
        # Entries past indptr[-1] are unused: leave them behind (as scipy's prune does).
        X = sp.csr_matrix((data[:nnz], X.indices[:nnz], X.indptr), shape=X.shape)
    return X


def check_matrix(X, name: str = "X") -> sp.csr_matrix:
    """A design matrix as a validated, canonical CSR matrix, ready for the kernels.

    Parameters
    ----------
    X : scipy sparse matrix or array (any format), or a 2-D array-like of numbers
    name : str
        The argument named in error messages.

    Returns
    -------
    csr_matrix
        Sorted indices, no duplicates (summed), no stored zeros, values finite and within
        float32's range. ``X`` itself if it already is all that; never a modified ``X``.

    Raises
    ------
    ValueError
        A malformed sparse structure (``indptr`` not starting at 0, decreasing, or past the
        arrays; an index outside ``[0, n_columns)``, negative, or beyond int32), or a NaN,
        infinite or float32-overflowing value; the message names the row and column.
    """
    X = check_structure(X, name)
    dup = False
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
        dup = True
    data = X.data
    if data.dtype in _FAST_DATA:
        zeros, bad = value_counts(data, FLOAT32_MAX) if data.size else (0, 0)
    elif data.dtype.kind in "biuf":
        wide = data.astype(np.float64)
        zeros = int(np.count_nonzero(wide == 0))
        bad = int(np.count_nonzero(~(np.abs(wide) <= FLOAT32_MAX)))
    else:
        raise ValueError(f"{name} must hold numbers, got dtype {data.dtype}.")
    if bad:
        with np.errstate(invalid="ignore"):
            p = int(np.flatnonzero(~(np.abs(data.astype(np.float64)) <= FLOAT32_MAX))[0])
        raise _value_error(X, p, name, dup)
    if zeros:
        X = X.copy() if not dup else X
        X.eliminate_zeros()
    return X


def check_fields(fields, n_features: int, name: str = "fields", hint: str = "") -> np.ndarray:
    """The field of each of ``n_features`` features as int32, -1 (a feature never seen, as
    ``read_ffm`` reports) taken as field 0.

    Field ids must be integers (an integral float is accepted) in ``[-1, MAX_FIELD]``; they are
    checked in their own dtype, so that 2**32 + 1 is refused rather than wrapped to 1.
    """
    fields = np.asarray(fields)
    if fields.ndim != 1 or fields.shape[0] != n_features:
        raise ValueError(
            f"{name} must give the field of each of the {n_features} features (columns of X, "
            f"then of any relation blocks); got shape {fields.shape}.{hint}"
        )
    if not fields.size:
        return np.zeros(0, dtype=np.int32)
    kind = fields.dtype.kind
    if kind == "f":
        ok = np.isfinite(fields) & (fields == np.round(fields))
        if not ok.all():
            bad = int(np.flatnonzero(~ok)[0])
            raise ValueError(f"{name}[{bad}] = {fields[bad]}: field ids must be integers.")
    elif kind not in "iu":
        raise ValueError(f"{name} must hold integer field ids, got dtype {fields.dtype}.")
    out = (fields < -1) | (fields > MAX_FIELD)
    if out.any():
        bad = int(np.flatnonzero(out)[0])
        rule = (f"must be at most {MAX_FIELD}" if fields[bad] > MAX_FIELD
                else "must be >= 0 (or -1 for a feature never seen)")
        raise ValueError(
            f"{name}[{bad}] = {fields[bad]}: field ids {rule}. Number the fields 0, 1, 2, ... "
            "(np.unique(fields, return_inverse=True) does)."
        )
    return np.maximum(fields, 0).astype(np.int32)


__all__ = ["FLOAT32_MAX", "MAX_FIELD", "check_fields", "check_matrix", "check_structure"]
