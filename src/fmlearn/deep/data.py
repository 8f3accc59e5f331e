"""Sparse rows as embedding bags: the input pipeline of the deep models.

:func:`as_rows` turns a validated design matrix into :class:`Rows` once per fit: CSR arrays with
int64 feature ids, and each row's entries ordered by field (a stable sort, skipped when the
columns are already in field order, as ``FMEncoder`` and ``read_ffm`` columns usually are).
:meth:`Rows.bags` then makes a mini-batch's :class:`~fmlearn.deep.layers.Bags` in O(its
non-zeros): a gather of the selected rows' entries and a ``bincount`` of their (row, field)
bag numbers. Nothing is densified; an empty (row, field) bag is an empty bag.
:meth:`Rows.batch` takes a faster path when every (row, field) holds exactly one entry (all
fields one-hot or single-valued, checked once per :class:`Rows`): the ``(n, F)`` id and value
matrices are made once and a mini-batch is two row gathers (:class:`OneValueFields`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from fmlearn.data.validation import check_fields
from fmlearn.deep.layers import Bags, OneValueFields

# Without fields, each column is its own field up to this many columns: the [B, F, k] tensor
# of wider data would be as wide as the data.
MAX_AUTO_FIELDS = 256


def resolve_fields(fields, carried, n_columns: int, owner: str) -> np.ndarray:
    """The field of each column, int32: ``fields``, else the ones ``X`` carries, else one
    field per column (for at most ``MAX_AUTO_FIELDS`` columns)."""
    if fields is not None:
        hint = (" X is FMEncoder output, which carries its own fields: leave fields=None."
                if carried is not None else "")
        return check_fields(fields, n_columns, hint=hint)
    if carried is not None:
        return np.asarray(carried, dtype=np.int32)
    if n_columns > MAX_AUTO_FIELDS:
        raise ValueError(
            f"{owner} got {n_columns} columns and no fields: pass fields= (the field of each "
            "column: read_ffm's fields, FMEncoder.fields_) or FMEncoder output, which carries "
            f"them. Without fields each column is its own field, for up to {MAX_AUTO_FIELDS} "
            "columns.")
    return np.arange(n_columns, dtype=np.int32)


def fields_by_position(X) -> np.ndarray | None:
    """Fields of a libFM-style ``X`` whose rows list one feature per field in field order:
    the field of a column is its position in its rows, when every column keeps one position
    (as in Frappe's or MovieLens' libFM files); None otherwise.

    ``X`` is a CSR matrix, or an iterable of CSR blocks of the same columns (a cache's
    blocks, :meth:`fmlearn.data.cache.DiskCache.csr_blocks`, read one at a time)."""
    lo = hi = None
    for B in [X] if sp.issparse(X) else X:
        B = B.tocsr()
        B.sort_indices()
        if lo is None:
            lo = np.full(B.shape[1], np.iinfo(np.int64).max)
            hi = np.full(B.shape[1], -1)
        counts = np.diff(B.indptr)
        pos = np.arange(B.indices.shape[0]) - np.repeat(B.indptr[:-1], counts)
        np.minimum.at(lo, B.indices, pos)
        np.maximum.at(hi, B.indices, pos)
        seen = hi >= 0
        if not (lo[seen] == hi[seen]).all():
            return None
    if lo is None:
        return None
    return np.where(hi >= 0, hi, 0).astype(np.int32)


class Rows:
    """CSR rows with int64 ids, each row's entries in field order, and their fields.

    Attributes
    ----------
    data : ndarray of float32, shape (nnz,)
    indices : ndarray of int64, shape (nnz,)
    indptr : ndarray of int64, shape (n_rows + 1,)
    entry_fields : ndarray of int64, shape (nnz,)
    n_columns : int
    """

    def __init__(self, data, indices, indptr, entry_fields, n_columns):
        self.data, self.indices, self.indptr = data, indices, indptr
        self.entry_fields, self.n_columns = entry_fields, int(n_columns)
        self._one_value: dict[int, tuple | None] = {}

    def one_value_matrices(self, n_fields: int):
        """``(ids, values)`` of shape ``(n_rows, n_fields)`` when every row holds exactly one
        entry per field (entries are in field order), else None; computed once. ``values`` is
        None when every value is 1 (one-hot fields)."""
        if n_fields not in self._one_value:
            n, found = self.n_rows, None
            if (self.indices.shape[0] == n * n_fields
                    and (np.diff(self.indptr) == n_fields).all()
                    and (self.entry_fields.reshape(n, n_fields)
                         == np.arange(n_fields)).all()):
                values = self.data.reshape(n, n_fields)
                found = (self.indices.reshape(n, n_fields),
                         None if (values == 1).all() else values)
            self._one_value[n_fields] = found
        return self._one_value[n_fields]

    def batch(self, rows: np.ndarray, n_fields: int) -> Bags | OneValueFields:
        """The model input of ``rows``: :class:`OneValueFields` when every (row, field) holds
        one entry, else :meth:`bags` (the same model outputs either way)."""
        dense = self.one_value_matrices(n_fields)
        if dense is None:
            return self.bags(rows, n_fields)
        rows = np.asarray(rows, dtype=np.int64)
        ids, values = dense
        return OneValueFields(torch.from_numpy(ids[rows]),
                              None if values is None else torch.from_numpy(values[rows]),
                              int(rows.shape[0]))

    @property
    def n_rows(self) -> int:
        return self.indptr.shape[0] - 1

    def _positions(self, rows: np.ndarray):
        starts = self.indptr[rows]
        counts = self.indptr[rows + 1] - starts
        total = int(counts.sum())
        before = np.cumsum(counts) - counts
        pos = np.arange(total, dtype=np.int64) + np.repeat(starts - before, counts)
        return pos, counts

    def take(self, rows) -> Rows:
        rows = np.asarray(rows, dtype=np.int64)
        pos, counts = self._positions(rows)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return Rows(self.data[pos], self.indices[pos], indptr, self.entry_fields[pos],
                    self.n_columns)

    def bags(self, rows: np.ndarray, n_fields: int) -> Bags:
        """The bags of ``rows`` (row numbers), one per (row, field)."""
        rows = np.asarray(rows, dtype=np.int64)
        pos, counts = self._positions(rows)
        local = np.repeat(np.arange(rows.shape[0], dtype=np.int64), counts)
        bag = local * n_fields + self.entry_fields[pos]
        per_bag = np.bincount(bag, minlength=rows.shape[0] * n_fields)
        offsets = np.cumsum(per_bag) - per_bag
        return Bags(torch.from_numpy(self.indices[pos]), torch.from_numpy(self.data[pos]),
                    torch.from_numpy(offsets),
                    torch.from_numpy(per_bag.reshape(rows.shape[0], n_fields).astype(np.float32)),
                    int(rows.shape[0]))


def as_rows(X, fields: np.ndarray) -> Rows:
    """Validated ``X`` (dense or sparse, ``n_columns == fields.shape[0]``) as :class:`Rows`."""
    X = sp.csr_matrix(X) if not sp.issparse(X) else X.tocsr()
    # Own int64 arrays (FieldedCSR may mix index dtypes; the caller's arrays stay untouched).
    X = sp.csr_matrix((X.data.copy(), X.indices.astype(np.int64), X.indptr.astype(np.int64)),
                      shape=X.shape)
    X.sum_duplicates()
    X.eliminate_zeros()
    data = X.data.astype(np.float32)
    if not np.isfinite(data).all():
        raise ValueError("X has values beyond float32's range; rescale them (e.g. log1p or "
                         "sklearn.preprocessing.MaxAbsScaler).")
    indices = X.indices.astype(np.int64)
    indptr = X.indptr.astype(np.int64)
    entry_fields = np.asarray(fields, dtype=np.int64)[indices]
    rows = np.repeat(np.arange(X.shape[0], dtype=np.int64), np.diff(indptr))
    n_fields = int(entry_fields.max(initial=0)) + 1
    key = rows * n_fields + entry_fields
    if key.size and not (np.diff(key) >= 0).all():
        order = np.argsort(key, kind="stable")
        data, indices, entry_fields = data[order], indices[order], entry_fields[order]
    return Rows(data, indices, indptr, entry_fields, X.shape[1])
