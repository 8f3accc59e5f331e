"""Encode tabular data (a DataFrame) into a sparse design matrix with per-feature fields.

A factorization machine sees one row as a sparse vector ``x`` of real values. Tabular data
is turned into such vectors column by column; the source column of an output feature is its
**field**:

* a *categorical* column (``user``) gives one binary feature per known category
  (``user=42``), exactly one of which is 1 in a row (one-hot);
* a *numeric* column (``age``) gives one feature holding the (optionally scaled) value;
* a *multi-hot* column (``genres``, each cell a list of tokens or a ``"|"``-separated string)
  gives one feature per known token, the tokens of a row forming a normalized bag
  (``1/n`` each for ``n`` tokens, as in Rendle's encoding of implicit feedback).

Plain FMs only need the matrix. Field-aware models (FFM) learn one latent vector per
(feature, field) pair and therefore also need ``fields_``: the field index of every output
column. :class:`FMEncoder` produces both, and ``field_names_`` maps field indices back to
column names.

pandas is optional: it is imported lazily, used for fast hashing when installed, and a dict
of 1-D arrays works without it. See ``docs/encoding.md`` for the full behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain
from numbers import Integral
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.preprocessing import normalize
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from fmlearn.data.fielded import FieldedCSR, fielded

__all__ = ["FMEncoder"]

UNKNOWN = "<unknown>"
_KINDS = ("categorical", "numeric", "multi_hot")
_LIST_TYPES = (list, tuple, set, frozenset, np.ndarray)


def _pandas():
    """Return the pandas module, or None when it is not installed (it is optional)."""
    try:
        import pandas
    except ImportError:
        return None
    return pandas


def _is_missing(value) -> bool:
    """Whether a scalar cell is None, NaN, ``pd.NA`` or ``pd.NaT``."""
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return bool(np.isnan(value))
    # Checked by type name so that pandas need not be imported.
    return type(value).__name__ in ("NAType", "NaTType")


# --------------------------------------------------------------------------- input columns


def _as_1d(name, values) -> np.ndarray:
    """Convert one column of a dict input to a 1-D array (pandas Series are kept as is)."""
    if hasattr(values, "iloc"):
        return values
    if isinstance(values, np.ndarray):
        if values.ndim == 1:
            return values
        if values.ndim == 2:  # fixed-length token lists, one row per cell
            return np.fromiter(values, dtype=object, count=len(values))
        raise ValueError(f"column {name!r} must be 1-D, got an array of shape {values.shape}")
    values = list(values)
    try:
        arr = np.asarray(values)
    except ValueError:  # ragged lists of tokens
        arr = None
    # numpy would turn list cells into a 2-D array and ``[1, "a"]`` into strings: keep the
    # original Python objects in those cases.
    if arr is None or arr.ndim != 1 or arr.dtype.kind in "US":
        arr = np.fromiter(values, dtype=object, count=len(values))
    return arr


def _as_columns(X):
    """Split ``X`` into columns.

    Returns
    -------
    names : list
        Column names, in input order (column indices for a 2-D array).
    columns : dict
        Name -> 1-D array or pandas Series of length ``n_rows``.
    n_rows : int
    index : pandas.Index or None
        Row labels, used in error messages.
    named : bool
        False for array input, whose columns are named by position.
    """
    pd = _pandas()
    if pd is not None and isinstance(X, pd.DataFrame):
        names = list(X.columns)
        if len(set(names)) != len(names):
            dup = sorted({str(n) for n in names if names.count(n) > 1})
            raise ValueError(f"X has duplicate column names {dup}; rename them before encoding")
        columns = {name: X.iloc[:, j] for j, name in enumerate(names)}
        return names, columns, len(X), X.index, True
    if sp.issparse(X):
        raise TypeError(
            "FMEncoder does not accept sparse input: it encodes tabular data (a DataFrame, "
            "a dict of columns or a 2-D array); pass a sparse design matrix to the model directly"
        )
    if isinstance(X, Mapping):
        columns = {name: _as_1d(name, values) for name, values in X.items()}
        lengths = {name: len(col) for name, col in columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(
                f"all columns of a dict input must have the same length, got {lengths}"
            )
        n_rows = next(iter(lengths.values()), 0)
        return list(columns), columns, n_rows, None, True
    if hasattr(X, "iloc") or X is None or isinstance(X, str):
        raise TypeError(
            f"FMEncoder expects a pandas DataFrame, a dict of 1-D columns or a 2-D array, "
            f"got {type(X).__name__}"
        )
    try:
        arr = np.asarray(X)
    except ValueError:  # ragged rows, e.g. list cells of different lengths
        arr = np.asarray(X, dtype=object)
    if arr.ndim != 2:
        raise ValueError(
            f"expected a 2-D array of shape (n_rows, n_columns), got shape {arr.shape}; "
            "Reshape your data, e.g. with X.reshape(-1, 1) for a single column"
        )
    names = list(range(arr.shape[1]))
    return names, {j: arr[:, j] for j in names}, arr.shape[0], None, False


def _first_present(col):
    """First non-missing cell of a column, or None."""
    return next((v for v in col if not _is_missing(v)), None)


def _infer_kind(name, col) -> str:
    kind = getattr(col.dtype, "kind", "O")  # pandas extension dtypes have .kind too
    if kind in "iuf":
        return "numeric"
    if kind == "b":
        return "categorical"
    if kind in "OUS":  # object, str, category
        return "multi_hot" if isinstance(_first_present(col), _LIST_TYPES) else "categorical"
    if kind == "c":
        raise ValueError(f"Complex data not supported (column {name!r})")
    raise TypeError(
        f"cannot infer how to encode column {name!r} of dtype {col.dtype}; list it in "
        "categorical, numeric or multi_hot (or drop it)"
    )


def _row(index, pos) -> str:
    """Describe row ``pos`` (0-based) for an error message."""
    if index is None:
        return f"row {pos}"
    return f"row {pos} (index label {index[pos]!r})"


# ------------------------------------------------------------------ categories and tokens


def _factorize(values):
    """Hash-encode values.

    Returns
    -------
    codes : ndarray of shape (n,)
        Index into ``uniques``, -1 for missing values.
    uniques : ndarray of shape (n_uniques,)
        Distinct non-missing values in order of appearance (object dtype for strings).
    """
    pd = _pandas()
    if pd is not None:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        uniques = np.asarray(uniques)
    else:
        values = np.asarray(values)
        if values.dtype.kind == "O":
            lookup = {}
            codes = np.fromiter(
                (-1 if _is_missing(v) else lookup.setdefault(v, len(lookup)) for v in values),
                dtype=np.intp,
                count=len(values),
            )
            uniques = np.fromiter(lookup, dtype=object, count=len(lookup))
        else:
            present = ~np.isnan(values) if values.dtype.kind in "fc" else slice(None)
            uniques, inverse = np.unique(values[present], return_inverse=True)
            codes = np.full(len(values), -1, dtype=np.intp)
            codes[present] = inverse
    if uniques.dtype.kind in "US":
        uniques = uniques.astype(object)
    return codes, uniques


def _index_of(values, categories) -> np.ndarray:
    """Position of each of ``values`` (distinct) in ``categories``, -1 when absent."""
    pd = _pandas()
    if pd is not None:
        return pd.Index(categories).get_indexer(values)
    lookup = {c: i for i, c in enumerate(categories.tolist())}
    return np.fromiter(
        (lookup.get(v, -1) for v in values.tolist()), dtype=np.intp, count=len(values)
    )


def _sorted(categories) -> np.ndarray:
    try:
        order = np.argsort(categories, kind="stable")
    except TypeError:  # mixed types such as ints and strings: group by type, then by text
        order = sorted(
            range(len(categories)),
            key=lambda i: (type(categories[i]).__name__, str(categories[i])),
        )
    return categories[np.asarray(order, dtype=np.intp)]


def _cell_tokens(cell, sep) -> list:
    """Tokens of one multi-hot cell; a missing cell is an empty bag."""
    if isinstance(cell, str):
        tokens = cell.split(sep)
        return [t for t in tokens if t] if "" in tokens else tokens
    if isinstance(cell, _LIST_TYPES):
        items = cell.tolist() if isinstance(cell, np.ndarray) else cell
        return [t for t in items if not _is_missing(t)]
    return [] if _is_missing(cell) else [cell]


class _Bags(NamedTuple):
    """A categorical or multi-hot column as distinct cells and the tokens of each cell.

    Working on distinct cells means a column with few distinct values (a user id repeated
    over ratings, genre combinations) is hashed once per row and split once per cell.
    """

    cell_of_row: np.ndarray  # (n_rows,) cell of each row, in [0, n_cells)
    lengths: np.ndarray  # (n_cells,) number of tokens of each cell
    token_code: np.ndarray  # (n_tokens,) index in uniques, -1 for a missing categorical value
    uniques: np.ndarray  # (n_uniques,) distinct tokens

    def token_cell(self):
        """Cell of each token, shape (n_tokens,)."""
        return np.repeat(np.arange(len(self.lengths)), self.lengths)


def _bags(name, kind, col, sep) -> _Bags:
    if kind == "categorical":
        try:
            cell_of_row, uniques = _factorize(col)
        except TypeError as exc:
            raise TypeError(
                f"column {name!r} has unhashable values ({exc}); list-valued columns must be "
                "listed in multi_hot"
            ) from exc
        n = len(uniques)
        # Cell i holds category i; missing values get an extra cell holding the unknown token.
        cell_of_row[cell_of_row < 0] = n
        lengths = np.ones(n + 1, dtype=np.intp)
        return _Bags(cell_of_row, lengths, np.append(np.arange(n), -1), uniques)
    try:
        cell_of_row, cells = _factorize(col)
        cells = cells.tolist()
    except TypeError:  # list cells are unhashable: every row is its own cell
        cells = col.tolist()
        cell_of_row = np.arange(len(cells))
    cell_of_row[cell_of_row < 0] = len(cells)
    cells.append(None)  # the cell of missing rows: an empty bag
    bags = [_cell_tokens(cell, sep) for cell in cells]
    lengths = np.fromiter(map(len, bags), dtype=np.intp, count=len(bags))
    tokens = np.fromiter(chain.from_iterable(bags), dtype=object, count=int(lengths.sum()))
    try:
        token_code, uniques = _factorize(tokens)
    except TypeError as exc:
        raise TypeError(f"multi-hot column {name!r} has unhashable tokens ({exc})") from exc
    return _Bags(cell_of_row, lengths, token_code, uniques)


def _fit_categories(bags: _Bags, min_frequency) -> np.ndarray:
    """Sorted tokens occurring in at least ``min_frequency`` places (rows x multiplicity)."""
    rows_per_cell = np.bincount(bags.cell_of_row, minlength=len(bags.lengths))
    known = bags.token_code >= 0
    counts = np.bincount(
        bags.token_code[known],
        weights=rows_per_cell[bags.token_cell()[known]],
        minlength=len(bags.uniques),
    )
    return _sorted(bags.uniques[counts >= min_frequency])


def _bag_block(bags: _Bags, categories, bucket, bag_norm) -> sp.csr_matrix:
    """Encoded field, shape (n_rows, len(categories) + bucket)."""
    # Position of each token among the categories; token code -1 picks the trailing -1.
    col = np.append(_index_of(bags.uniques, categories), -1)[bags.token_code]
    if bucket:
        col[col < 0] = len(categories)
    keep = col >= 0
    # COO -> CSR sums the repeated tokens of a cell into counts.
    per_cell = sp.coo_matrix(
        (np.ones(int(keep.sum())), (bags.token_cell()[keep], col[keep])),
        shape=(len(bags.lengths), len(categories) + bucket),
    ).tocsr()
    if bag_norm != "none":  # a no-op on one-hot cells
        per_cell = normalize(per_cell, norm=bag_norm, copy=False)
    return per_cell[bags.cell_of_row]


def _hashed_block(bags: _Bags, name, bits, signed, bag_norm) -> sp.csr_matrix:
    """Encoded field by feature hashing, shape (n_rows, 2**bits): each distinct token hashed
    once (:func:`fmlearn.data.hashing.hash_tokens`); colliding tokens of a cell add up."""
    from fmlearn.data.hashing import hash_tokens

    cols, sign = hash_tokens(name, bags.uniques.tolist(), bits, signed=signed)
    known = bags.token_code >= 0  # a missing categorical value gives no feature
    code = bags.token_code[known]
    values = np.ones(code.shape[0]) if sign is None else sign[code]
    per_cell = sp.coo_matrix(
        (values, (bags.token_cell()[known], cols[code])),
        shape=(len(bags.lengths), 1 << bits),
    ).tocsr()
    per_cell.eliminate_zeros()  # signed collisions that cancelled
    if bag_norm != "none":
        per_cell = normalize(per_cell, norm=bag_norm, copy=False)
    return per_cell[bags.cell_of_row]


# ------------------------------------------------------------------------ numeric columns


def _numeric_values(name, col, index, handle_missing):
    """Float64 values and missing mask of a numeric column, shape (n_rows,) each."""
    try:
        if hasattr(col, "to_numpy"):
            values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            values = np.asarray(col, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"numeric column {name!r} cannot be converted to float ({exc}); list it in "
            "categorical instead"
        ) from exc
    missing = np.isnan(values)
    infinite = np.flatnonzero(np.isinf(values))
    if infinite.size:
        raise ValueError(f"numeric column {name!r} is infinite at {_row(index, infinite[0])}")
    if handle_missing == "error" and missing.any():
        raise ValueError(
            f"numeric column {name!r} has a missing value (None/NaN) at "
            f"{_row(index, np.flatnonzero(missing)[0])}; fill it, or pass "
            "handle_missing='zero' to encode missing values as 0"
        )
    return values, missing


def _fit_scaling(values, missing, mode, name=None):
    """(offset, scale) such that the encoded value is ``(x - offset) / scale``."""
    present = values[~missing]
    if mode == "none" or present.size == 0:
        return 0.0, 1.0
    if mode == "standard":
        with np.errstate(over="ignore", invalid="ignore"):
            offset, scale = present.mean(), present.std()
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            offset, scale = present.min(), np.ptp(present)
    if not (np.isfinite(offset) and np.isfinite(scale)):
        raise ValueError(
            f"numeric column {name!r}: its values (up to {float(np.abs(present).max()):g} in "
            f"magnitude) overflow float64 when computing the {mode!r} scaling; rescale the "
            "column (e.g. log1p)"
        )
    return float(offset), float(scale) if scale > 0 else 1.0  # constant column: no division


def _numeric_block(values, missing, offset, scale, *, name, index, dtype) -> sp.csr_matrix:
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = (values - offset) / scale
    scaled[missing] = 0.0
    # Overflow is an error, not a silent inf: the encoded value must be finite in ``dtype``.
    limit = float(np.finfo(dtype).max)
    over = ~(np.abs(scaled) <= limit)
    if over.any():
        pos = int(np.flatnonzero(over)[0])
        raise ValueError(
            f"numeric column {name!r} at {_row(index, pos)}: {float(values[pos]):g} encodes to "
            f"{float(scaled[pos]):g} (offset {offset:g}, scale {scale:g}), which overflows "
            f"{np.dtype(dtype).name} (max ~{limit:.3g}); rescale the column (e.g. log1p), or "
            "use dtype=np.float64 where it fits there"
        )
    stored = scaled != 0  # zeros are not stored
    indptr = np.zeros(len(scaled) + 1, dtype=np.int64)
    np.cumsum(stored, out=indptr[1:])
    indices = np.zeros(indptr[-1], dtype=np.int32)
    return sp.csr_matrix((scaled[stored], indices, indptr), shape=(len(scaled), 1))


# ------------------------------------------------------------------------------ estimator


class FMEncoder(TransformerMixin, BaseEstimator):
    """Encode a DataFrame into a sparse FM design matrix and the field of each feature.

    Parameters
    ----------
    categorical : list of column names or None, default=None
        Columns one-hot encoded: one feature ``col=value`` per category seen at fit time.
        Missing values (None/NaN) are treated as unknown categories.
    numeric : list of column names or None, default=None
        Columns used as real values, one feature each, named after the column.
    multi_hot : list of column names or None, default=None
        List-valued columns: each cell is a list/tuple/array/set of tokens or a string split
        on ``multi_hot_sep``. One feature ``col=token`` per token; a row holds the bag of its
        tokens normalized by ``bag_norm``. A missing or empty cell is an empty bag.

        If ``categorical``, ``numeric`` and ``multi_hot`` are all None, every column is
        encoded and its kind inferred: numeric dtypes are numeric; bool, category, string
        and object columns are categorical, or multi-hot when their first non-missing cell
        is a list/tuple/set/array. Otherwise only the listed columns are encoded.
    multi_hot_sep : str, default="|"
        Separator of string cells in multi-hot columns. Empty tokens are dropped.
    bag_norm : {"l1", "l2", "none"}, default="l1"
        Normalization of a multi-hot bag: token counts divided by their sum ("l1": ``1/n``
        for ``n`` distinct tokens) or Euclidean norm ("l2": ``1/sqrt(n)``), or raw counts.
    scale_numeric : {"none", "standard", "minmax"}, default="none"
        Scaling of numeric columns learned at fit time: none, ``(x - mean) / std`` or
        ``(x - min) / (max - min)``. A constant column is only shifted.
    handle_missing : {"error", "zero"}, default="error"
        A missing (None/NaN) value in a numeric column raises a ValueError naming the column
        and row, or is encoded as 0 (after scaling, so "standard" imputes the mean).
    handle_unknown : {"ignore", "bucket"}, default="ignore"
        A category or token not known at fit time (unseen, rarer than ``min_frequency``, or a
        missing categorical value) gives no feature ("ignore") or the field's ``col=<unknown>``
        feature, reserved at fit time as the field's last column ("bucket").
        Transform never fails on unknown values.
    min_frequency : int, default=1
        Categories and tokens seen fewer times at fit time are unknown.
    dtype : {np.float32, np.float64}, default=np.float32
        Dtype of the output values.
    hash_bits : int or None, default=None
        Hash each categorical and multi-hot ``column=value`` into ``2**hash_bits`` columns of
        its field (MurmurHash3, stable across runs and platforms; see
        :mod:`fmlearn.data.hashing` and ``docs/out-of-core.md``) instead of learning the
        categories: no vocabulary, so that chunks of an unbounded stream encode alike without
        a fit on all of them. Each field keeps its own columns, so FFM and FwFM still know
        fields. Missing values give no feature; ``min_frequency`` and ``handle_unknown`` do
        not apply. Numeric columns stay one column each.
    hash_signed : bool, default=False
        With ``hash_bits``: multiply each hashed value by a sign drawn from a second hash, so
        that colliding values cancel on average rather than add up.
    field_weights : dict or None, default=None
        Column -> a positive factor multiplying every value of that column's field (after
        ``bag_norm`` and ``scale_numeric``), e.g. ``{"genres": 0.1, "age": 0.1}`` to give side
        features less weight than the user and item ids (a usual choice for side information,
        see docs/encoding.md). Columns not listed keep 1.

    Attributes
    ----------
    field_names_ : list
        Encoded source columns, in input column order. Field ``f`` is ``field_names_[f]``.
    field_kinds_ : list of str
        ``"categorical"``, ``"numeric"`` or ``"multi_hot"`` for each field.
    n_fields_ : int
    fields_ : ndarray of shape (n_features_out_,), dtype int32
        Field index of each output column.
    feature_names_out_ : ndarray of shape (n_features_out_,), dtype object
        Output column names: ``col=value``, ``col=<unknown>`` or ``col`` (numeric).
    n_features_out_ : int
    categories_ : dict
        Column -> sorted ndarray of the known categories (tokens for multi-hot columns).
    numeric_scaling_ : dict
        Numeric column -> ``(offset, scale)``; the encoded value is ``(x - offset) / scale``.
    n_features_in_ : int
        Number of input columns (encoded or not).
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Input column names; only set when they are all strings.

    Notes
    -----
    Output columns come field by field in input column order, sorted categories within a
    field. :meth:`transform` returns a ``scipy.sparse.csr_matrix`` of shape
    (n_rows, n_features_out_) with sorted indices, int64 ``indptr`` and int32 ``indices``;
    zero values are not stored. Columns are selected by name, so at transform time a
    DataFrame or dict may hold them in any order and carry extra columns.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"user": [1, 2, 1], "genres": ["a|b", "b", "c"], "age": [20, 30, 40]})
    >>> enc = FMEncoder(categorical=["user"], multi_hot=["genres"], numeric=["age"])
    >>> X = enc.fit_transform(df)
    >>> enc.get_feature_names_out().tolist()
    ['user=1', 'user=2', 'genres=a', 'genres=b', 'genres=c', 'age']
    >>> enc.fields_.tolist()
    [0, 0, 1, 1, 1, 2]
    >>> X.toarray()[0].tolist()
    [1.0, 0.0, 0.5, 0.5, 0.0, 20.0]
    """

    _parameter_constraints: dict = {
        "categorical": ["array-like", None],
        "numeric": ["array-like", None],
        "multi_hot": ["array-like", None],
        "multi_hot_sep": [str],
        "bag_norm": [StrOptions({"l1", "l2", "none"})],
        "scale_numeric": [StrOptions({"none", "standard", "minmax"})],
        "handle_missing": [StrOptions({"error", "zero"})],
        "handle_unknown": [StrOptions({"ignore", "bucket"})],
        "min_frequency": [Interval(Integral, 1, None, closed="left")],
        "dtype": "no_validation",  # checked in fit: numpy spells it in several ways
        "field_weights": [dict, None],
        "hash_bits": [Interval(Integral, 1, 24, closed="both"), None],
        "hash_signed": ["boolean"],
    }

    def __init__(
        self,
        categorical=None,
        numeric=None,
        multi_hot=None,
        *,
        multi_hot_sep="|",
        bag_norm="l1",
        scale_numeric="none",
        handle_missing="error",
        handle_unknown="ignore",
        min_frequency=1,
        dtype=np.float32,
        field_weights=None,
        hash_bits=None,
        hash_signed=False,
    ):
        self.categorical = categorical
        self.numeric = numeric
        self.multi_hot = multi_hot
        self.multi_hot_sep = multi_hot_sep
        self.bag_norm = bag_norm
        self.scale_numeric = scale_numeric
        self.handle_missing = handle_missing
        self.handle_unknown = handle_unknown
        self.min_frequency = min_frequency
        self.dtype = dtype
        self.field_weights = field_weights
        self.hash_bits = hash_bits
        self.hash_signed = hash_signed

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the fields, categories and numeric scaling of ``X``.

        Parameters
        ----------
        X : pandas.DataFrame, dict of 1-D array-likes, or array-like of shape (n_rows, n_cols)
            Input table; a 2-D array's columns are named by their index.
        y : None
            Ignored.

        Returns
        -------
        self : FMEncoder
        """
        self._fit(X, encode=False)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit and encode ``X`` in one pass (same result as ``fit(X).transform(X)``).

        Parameters
        ----------
        X : pandas.DataFrame, dict of 1-D array-likes, or array-like of shape (n_rows, n_cols)
        y : None
            Ignored.

        Returns
        -------
        X_out : FieldedCSR of shape (n_rows, n_features_out_)
            A ``scipy.sparse.csr_matrix`` that also carries ``fields_`` (see ``transform``).
        """
        return self._fielded(self._fit(X, encode=True))

    def transform(self, X):
        """Encode ``X`` with the fitted fields; unknown values never raise.

        Parameters
        ----------
        X : pandas.DataFrame, dict of 1-D array-likes, or array-like of shape (n_rows, n_cols)
            Must contain the encoded columns (``field_names_``); other columns are ignored.

        Returns
        -------
        X_out : FieldedCSR of shape (n_rows, n_features_out_)
            A ``scipy.sparse.csr_matrix`` (a subclass) that also carries the field of each
            column and this encoder, so that an fmlearn model after the encoder in a
            ``Pipeline`` gets each fit's fields (see :mod:`fmlearn.data.fielded`).
        """
        check_is_fitted(self)
        names, columns, _, index, named = _as_columns(X)
        if not named and len(names) != self.n_features_in_:
            raise ValueError(
                f"X has {len(names)} features, but FMEncoder is expecting "
                f"{self.n_features_in_} features as input"
            )
        self._check_present(self.field_names_, columns, named)
        return self._fielded(self._encode(columns, index, fit=False, encode=True))

    def get_feature_names_out(self, input_features=None):
        """Names of the output columns.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Only checked against ``feature_names_in_`` (scikit-learn convention).

        Returns
        -------
        feature_names_out : ndarray of shape (n_features_out_,), dtype object
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features, generate_names=False)
        if self.feature_names_out_ is None:  # hashed: made on request
            return np.asarray(list(chain.from_iterable(self._labels())), dtype=object)
        return self.feature_names_out_.copy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.transformer_tags.preserves_dtype = []  # the output dtype is the dtype parameter
        return tags

    # ------------------------------------------------------------------------ internals

    def _fielded(self, X_out) -> FieldedCSR:
        """The encoded matrix, carrying the field of each column and this encoder."""
        return fielded(X_out, self.fields_, self.field_names_, self)

    def _fit(self, X, encode):
        """Learn the encoding; return the encoded ``X`` if ``encode``."""
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            dtype = None
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be np.float32 or np.float64, got {self.dtype!r}")
        if not self.multi_hot_sep:
            raise ValueError("multi_hot_sep must be a non-empty string")
        names, columns, n_rows, index, named = _as_columns(X)
        if n_rows == 0 or not names:
            raise ValueError(
                f"cannot fit FMEncoder on 0 rows or 0 feature(s) (shape=({n_rows}, {len(names)}))"
                " while a minimum of 1 is required."
            )

        self.n_features_in_ = len(names)
        if named and all(isinstance(name, str) for name in names):
            self.feature_names_in_ = np.asarray(names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.field_names_, self.field_kinds_ = self._resolve_fields(names, columns, named)
        self._check_field_weights()
        self.n_fields_ = len(self.field_names_)
        self.categories_, self.numeric_scaling_ = {}, {}

        X_out = self._encode(columns, index, fit=True, encode=encode)

        if self.hash_bits is not None:
            # 2**hash_bits columns per hashed field: names are made on request only
            # (get_feature_names_out), not kept.
            sizes = [1 if kind == "numeric" else 1 << self.hash_bits
                     for kind in self.field_kinds_]
            self.feature_names_out_ = None
            self.n_features_out_ = int(sum(sizes))
            self.fields_ = np.repeat(np.arange(self.n_fields_, dtype=np.int32), sizes)
            return X_out
        self.feature_names_out_ = np.asarray(list(chain.from_iterable(self._labels())),
                                             dtype=object)
        self.n_features_out_ = len(self.feature_names_out_)
        self.fields_ = np.repeat(
            np.arange(self.n_fields_, dtype=np.int32), [len(f) for f in self._labels()]
        )
        return X_out

    def _labels(self):
        """Output column names, field by field (hashed fields: ``column#bucket``)."""
        bucket = [UNKNOWN] if self.handle_unknown == "bucket" else []
        return [
            [str(name)]
            if kind == "numeric"
            else [f"{name}#{j}" for j in range(1 << self.hash_bits)]
            if self.hash_bits is not None
            else [f"{name}={c}" for c in self.categories_[name].tolist() + bucket]
            for name, kind in zip(self.field_names_, self.field_kinds_, strict=True)
        ]

    def _resolve_fields(self, names, columns, named):
        """Encoded columns in input order and the kind of each."""
        lists = dict(zip(_KINDS, (self.categorical, self.numeric, self.multi_hot), strict=True))
        if all(cols is None for cols in lists.values()):
            kinds = {name: _infer_kind(name, columns[name]) for name in names}
        else:
            kinds = {}
            for kind, cols in lists.items():
                for name in () if cols is None else cols:
                    if name in kinds:
                        where = kind if kinds[name] == kind else f"{kinds[name]} and {kind}"
                        raise ValueError(f"column {name!r} is listed twice (in {where})")
                    kinds[name] = kind
            self._check_present(kinds, columns, named)
        if not kinds:
            raise ValueError("no columns to encode: categorical, numeric and multi_hot are empty")
        fields = [name for name in names if name in kinds]
        return fields, [kinds[name] for name in fields]

    def _check_field_weights(self) -> None:
        for name, weight in (self.field_weights or {}).items():
            if name not in self.field_names_:
                raise ValueError(
                    f"field_weights names column {name!r}, which is not encoded; the encoded "
                    f"columns are {list(self.field_names_)}"
                )
            if isinstance(weight, bool) or not isinstance(weight, (int, float, np.number)) or (
                    not np.isfinite(weight) or weight <= 0):
                raise ValueError(
                    f"field_weights[{name!r}] = {weight!r}: a weight must be a finite number > 0"
                )

    @staticmethod
    def _check_present(required, columns, named):
        missing = [name for name in required if name not in columns]
        if missing:
            hint = "" if named else " (a 2-D array's columns are named 0..n_cols-1)"
            raise ValueError(f"columns {missing} are not in X{hint}; X has columns {list(columns)}")

    def _encode(self, columns, index, *, fit, encode):
        """Encode every field (learning categories and scaling first if ``fit``)."""
        bucket = self.handle_unknown == "bucket"
        blocks = []
        for name, kind in zip(self.field_names_, self.field_kinds_, strict=True):
            col = columns[name]
            if kind == "numeric":
                values, missing = _numeric_values(name, col, index, self.handle_missing)
                if fit:
                    self.numeric_scaling_[name] = _fit_scaling(
                        values, missing, self.scale_numeric, name
                    )
                if encode:
                    blocks.append(_numeric_block(
                        values, missing, *self.numeric_scaling_[name], name=name, index=index,
                        dtype=self.dtype,
                    ))
            else:
                bags = _bags(name, kind, col, self.multi_hot_sep)
                if self.hash_bits is not None:
                    if fit:
                        self.categories_[name] = np.empty(0, dtype=object)
                    if encode:
                        blocks.append(_hashed_block(bags, name, self.hash_bits,
                                                    self.hash_signed, self.bag_norm))
                    continue
                if fit:
                    self.categories_[name] = _fit_categories(bags, self.min_frequency)
                if encode:
                    blocks.append(_bag_block(bags, self.categories_[name], bucket, self.bag_norm))
        if not encode:
            return None
        for f, name in enumerate(self.field_names_):
            weight = (self.field_weights or {}).get(name, 1)
            if weight != 1:
                blocks[f] = blocks[f] * weight
        X_out = sp.csr_matrix(sp.hstack(blocks, format="csr", dtype=np.dtype(self.dtype)))
        # int64 row pointers for > 2**31 stored values; int32 column indices halve the memory.
        X_out.indices = X_out.indices.astype(np.int32, copy=False)
        X_out.indptr = X_out.indptr.astype(np.int64, copy=False)
        return X_out
