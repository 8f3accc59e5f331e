"""Design matrices that carry their fields: how fields travel through a scikit-learn Pipeline.

:class:`fmlearn.FMEncoder` returns a :class:`FieldedCSR`: a ``scipy.sparse.csr_matrix`` (every
consumer treats it as one) that also holds the field of each column and the fitted encoder that
made it. An fmlearn estimator fitted on it then finds, per fit:

* the fields of a field-aware model (FFM, FwFM) when ``fields=None``;
* the MCMC prior groups when ``prior_groups="fields"``;
* the encoder to apply to an ``eval_set`` given as a raw table (a DataFrame or a dict of
  columns), so that a validation set passed once to ``GridSearchCV`` is encoded by each fold's
  own encoder.

So ``Pipeline([("enc", FMEncoder(...)), ("ffm", FFMClassifier())])`` works in ``GridSearchCV``
and ``cross_val_score``: every fold refits the encoder, whose output brings that fold's fields to
the model. Why this mechanism and not metadata routing is in ``docs/encoding.md``.

Only what the encoder built directly carries fields (and row selections and copies of it): a
matrix derived otherwise (another transformer's output, a column slice, a stack) is a plain
matrix to the estimators, so stale fields never reach a model.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp

__all__ = ["FieldedCSR", "carried_encoder", "carried_fields", "encode_eval_set", "model_groups"]


class FieldedCSR(sp.csr_matrix):
    """A CSR design matrix with the field of each column (the output of ``FMEncoder``).

    Attributes
    ----------
    fields : ndarray of int32, shape (n_columns,) or None
        Field index of each column (``FMEncoder.fields_``). None on matrices that scipy derives
        from this one by other operations than row selection and copying.
    field_names : list or None
        Name of each field (``FMEncoder.field_names_``).
    encoder : FMEncoder or None
        The fitted encoder that produced the matrix; fmlearn estimators use it to encode an
        ``eval_set`` given as a raw table.
    """

    fields = None
    field_names = None
    encoder = None

    def _carry(self, out):
        if isinstance(out, FieldedCSR) and out is not self and out.shape[1] == self.shape[1]:
            out.fields, out.field_names, out.encoder = self.fields, self.field_names, self.encoder
        return out

    def __getitem__(self, key):
        out = super().__getitem__(key)
        rows_only = not isinstance(key, tuple) or (
            len(key) == 2 and isinstance(key[1], slice) and key[1] == slice(None)
        )
        return self._carry(out) if rows_only else out

    def copy(self):
        return self._carry(super().copy())


def fielded(X: sp.csr_matrix, fields, field_names, encoder) -> FieldedCSR:
    """``X`` (CSR, arrays shared, index dtypes kept) as a :class:`FieldedCSR`."""
    out = FieldedCSR(X.shape, dtype=X.dtype)
    # Assigned, not passed to the constructor, which may narrow the int64 row pointers.
    out.data, out.indices, out.indptr = X.data, X.indices, X.indptr
    out.fields = np.asarray(fields, dtype=np.int32)
    out.field_names = list(field_names)
    out.encoder = encoder
    return out


def carried_fields(X) -> np.ndarray | None:
    """The fields ``X`` carries (one per column, int32), or None."""
    fields = getattr(X, "fields", None) if isinstance(X, FieldedCSR) else None
    if fields is None or np.shape(fields) != (X.shape[1],):
        return None
    return np.asarray(fields, dtype=np.int32)


def carried_encoder(X):
    """The fitted encoder that produced ``X``, or None."""
    return X.encoder if isinstance(X, FieldedCSR) and carried_fields(X) is not None else None


def model_groups(fields, relation_widths=()) -> np.ndarray:
    """Field of each model column: ``fields`` for ``X``'s, then one new field per relation
    block for the block's columns."""
    fields = np.asarray(fields, dtype=np.int32)
    start = int(fields.max()) + 1 if fields.size else 0
    blocks = [np.full(w, start + j, dtype=np.int32) for j, w in enumerate(relation_widths)]
    return np.concatenate([fields, *blocks]) if blocks else fields


def _is_table(X) -> bool:
    """A raw table (pandas DataFrame or dict of columns), as opposed to a design matrix."""
    return isinstance(X, Mapping) or (
        type(X).__name__ == "DataFrame" and hasattr(X, "columns") and hasattr(X, "iloc")
    )


def encode_eval_set(X, eval_set):
    """``eval_set`` with a raw-table ``X_valid`` encoded by the encoder that produced ``X``.

    Anything else (no carried encoder, an already encoded ``X_valid``, a malformed
    ``eval_set`` that the estimator's validation will report) is returned unchanged.
    """
    encoder = carried_encoder(X) if eval_set is not None else None
    if encoder is None:
        return eval_set
    single = isinstance(eval_set, tuple)
    sets = [eval_set] if single else eval_set
    if not (isinstance(sets, list) and all(isinstance(s, tuple) and len(s) for s in sets)):
        return eval_set
    sets = [(encoder.transform(s[0]), *s[1:]) if _is_table(s[0]) else s for s in sets]
    return sets[0] if single else sets
