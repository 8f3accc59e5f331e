"""The design matrix as the kernels see it: canonical CSR arrays.

Every estimator converts its validated input here once: any scipy sparse format or dense array
becomes CSR with ``indptr`` int64, ``indices`` int32 and ``data`` float32 or float64 (as given).
Index arrays are copied only when their dtype differs; sparse input is never densified. The
structure and the values are checked first (:mod:`fmlearn.data.validation`): the kernels do no
bounds checks.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from fmlearn.data.validation import check_matrix

MAX_FEATURES = np.iinfo(np.int32).max


class KernelCSR(NamedTuple):
    """CSR arrays in the dtypes every kernel is compiled for.

    Attributes
    ----------
    indptr : ndarray of int64, shape (n_rows + 1,)
    indices : ndarray of int32, shape (nnz,)
    data : ndarray of float32 or float64, shape (nnz,)
    n_features : int
    """

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    n_features: int

    @property
    def n_rows(self) -> int:
        return self.indptr.shape[0] - 1


def as_kernel_csr(X, *, name: str = "X", check: bool = True) -> KernelCSR:
    """Canonical CSR arrays of a 2-D matrix ``X`` (dense or any sparse format).

    With ``check`` (the default) ``X`` goes through
    :func:`fmlearn.data.validation.check_matrix` first: a malformed sparse structure, an index
    outside ``[0, n_columns)`` (checked before the cast to int32), or a value that is not
    finite within float32's range raises ``ValueError`` (naming ``name``, the row and the
    column), duplicate entries of a row are summed and explicit zeros dropped, all on a copy:
    the caller's matrix is never modified. ``check=False`` is for matrices derived from an
    already checked one (row subsets, stacked blocks).
    """
    shape = X.shape if sp.issparse(X) else np.shape(X)
    if len(shape) == 2 and shape[1] > MAX_FEATURES:
        raise ValueError(
            f"{name} has {shape[1]} columns; fmlearn supports at most {MAX_FEATURES}. "
            "Re-index the features to the columns actually used, or hash them into a smaller "
            "space (e.g. sklearn.feature_extraction.FeatureHasher)."
        )
    if check:
        X = check_matrix(X, name)
    elif sp.issparse(X):
        X = X.tocsr()
        if not X.has_canonical_format:
            X = X.copy()
            X.sum_duplicates()
    else:
        X = sp.csr_matrix(np.asarray(X))
    data = X.data
    if data.dtype not in (np.float32, np.float64):
        data = data.astype(np.float64)
    return KernelCSR(
        np.ascontiguousarray(X.indptr, dtype=np.int64),
        np.ascontiguousarray(X.indices, dtype=np.int32),
        np.ascontiguousarray(data),
        int(X.shape[1]),
    )
