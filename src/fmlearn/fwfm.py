"""Field-weighted factorization machines: :class:`FwFMRegressor`, :class:`FwFMClassifier`.

An FwFM (Pan et al. 2018, "Field-weighted Factorization Machines for Click-Through Rate
Prediction in Display Advertising") is an FM whose pair terms are scaled by a learned weight
per pair of fields::

    y(x) = w0 + sum_i w_i x_i + sum_{a<b} r_{F(i_a), F(i_b)} <v_{i_a}, v_{i_b}> x_a x_b

One latent vector per feature, as in an FM, plus a symmetric (n_fields, n_fields) matrix ``r``
(its diagonal weighs pairs within one field): nearly the accuracy of a field-aware FM with
about ``1 / n_fields`` of its parameters. ``r`` starts at 1, so training starts from a plain FM.
Fields are given as for :class:`fmlearn.FFMRegressor`; the estimators share every solver and
the training loop with :class:`fmlearn.FMRegressor`.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from fmlearn._kernels import fwfm as fwfm_kernels
from fmlearn._model import TableParams
from fmlearn.base import family_init
from fmlearn.ffm import _FieldAware
from fmlearn.fm import FMClassifier, FMRegressor
from fmlearn.solvers.sgd import ADAGRAD_INITIAL_ACCUMULATOR


class FwFMParams(TableParams):
    """Parameters of a field-weighted FM (Pan et al. 2018).

    Table row ``i``: FM's ``[v_i (n_factors) | w_i | solver state]``; ``V`` and ``w`` are
    views. Beside the table: ``r`` (n_fields, n_fields), the symmetric field-pair weights;
    ``acc_r``, their AdaGrad sums (same shape, used only by adaptive solvers); ``fields`` int32
    (n_features,) mapping each feature to its field; and ``reg_r``, the L2 strength on ``r``
    (a training option the estimator sets before every fit, since solvers know only the FM
    hyper-parameters).
    """

    kind = "fwfm"
    # Solver state held beside the table, by attribute name. Like the table's state columns
    # (and only when there are some), model files keep each under ``state/<name>``, and
    # loading passes it back to :meth:`from_arrays` as a keyword.
    extra_state = ("acc_r",)

    def __init__(self, w0, table, n_factors, fields, r, acc_r=None, reg_r=0.0):
        super().__init__(w0, table, n_factors)
        self.fields = fields
        self.r = r
        if acc_r is None:
            acc_r = np.full_like(r, ADAGRAD_INITIAL_ACCUMULATOR)
        self.acc_r = acc_r
        self.reg_r = float(reg_r)

    @staticmethod
    def n_param_columns(n_factors: int) -> int:
        """Parameter columns of the table (before any solver state): ``V`` and ``w``."""
        return n_factors + 1

    @classmethod
    def initialize(
        cls, n_features, n_factors, init_stdev, rng, fields, dtype=np.float32, w0=0.0,
        n_state=0, reg_r=0.0,
    ):
        """As :meth:`fmlearn._model.FMParams.initialize`, with every ``r`` at 1 (a plain FM).

        ``fields`` int32 (n_features,) in ``[0, n_fields)``; ``n_fields = fields.max() + 1``.
        """
        n_fields = int(fields.max()) + 1 if fields.size else 1
        table = cls._new_table(n_features, n_factors, n_state, init_stdev, rng, dtype)
        r = np.ones((n_fields, n_fields), dtype=dtype)
        return cls(np.array([w0], dtype=dtype), table, n_factors, fields, r, reg_r=reg_r)

    @property
    def wcol(self) -> int:
        return self.n_factors

    @property
    def n_fields(self) -> int:
        return self.r.shape[0]

    @property
    def V(self) -> np.ndarray:
        """Factors, shape (n_features, n_factors); a view into the table."""
        return self.table[:, : self.n_factors]

    def _like(self, w0, table):
        # New solver state (see with_state): r carries over, its accumulators start afresh.
        return FwFMParams(w0, table, self.n_factors, self.fields, self.r.copy(),
                          reg_r=self.reg_r)

    def copy(self):
        return FwFMParams(self.w0.copy(), self.table.copy(), self.n_factors, self.fields,
                          self.r.copy(), self.acc_r.copy(), self.reg_r)

    def all_finite(self) -> bool:
        return super().all_finite() and bool(np.isfinite(self.r).all())

    def sgd_epoch(self, X, y, sample_weight, order, acc_w0, solver) -> float:
        """One (stochastic) pass; see :mod:`fmlearn._kernels.fwfm`."""
        return fwfm_kernels.sgd_epoch(
            X.indptr, X.indices, X.data, y, sample_weight, order,
            self.w0, acc_w0, self.table, self.n_factors, self.fields, self.r, self.acc_r,
            *solver.rates, self.reg_r, *solver.flags,
        )

    def _predict_block(self, indptr, X, out):
        fwfm_kernels.predict(
            indptr, X.indices, X.data, self.w0, self.table, self.n_factors, self.fields,
            self.r, out,
        )

    def _latent_arrays(self):
        return {"V": np.ascontiguousarray(self.V), "r": self.r, "fields": self.fields}

    @classmethod
    def from_arrays(cls, arrays, state=None, acc_r=None) -> FwFMParams:
        """Inverse of :meth:`arrays`, with optional solver state.

        Parameters
        ----------
        arrays : dict of str to ndarray
            ``w0``, ``w``, ``V``, ``r`` and ``fields``; an ``acc_r`` there (model files written
            before ``acc_r`` moved to the solver state) is used when ``acc_r`` is None.
        state : ndarray of shape (n_features, n_state), optional
            The table's solver-state columns.
        acc_r : ndarray of the shape and dtype of ``r``, optional
            AdaGrad sums of ``r`` (see :attr:`extra_state`); None starts them afresh.

        Raises
        ------
        ValueError
            If the shapes or dtypes do not fit together.
        """
        V, r, fields = arrays["V"], arrays["r"], arrays["fields"]
        dtype = arrays["w"].dtype
        if V.ndim != 2 or V.dtype != dtype:
            raise ValueError(f"V must be 2-D of the dtype of w, got {V.shape} {V.dtype}")
        if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] < 1 or r.dtype != dtype:
            raise ValueError(f"r must be square of the dtype of w, got {r.shape} {r.dtype}")
        if not np.array_equal(r, r.T):
            raise ValueError("r must be symmetric")
        if fields.shape != (V.shape[0],) or fields.dtype != np.int32:
            raise ValueError(f"fields must be int32 of shape ({V.shape[0]},)")
        if fields.size and (fields.min() < 0 or fields.max() >= r.shape[0]):
            raise ValueError(f"fields must lie in [0, {r.shape[0]})")
        if acc_r is None:
            acc_r = arrays.get("acc_r")
        if acc_r is not None:
            if acc_r.shape != r.shape or acc_r.dtype != dtype:
                raise ValueError(f"acc_r must be of the shape and dtype of r, got {acc_r.shape}")
            acc_r = acc_r.copy()
        cls._check_common(arrays, V.shape[0])
        return cls(arrays["w0"].copy(), cls._assemble(arrays["w"], V, state), V.shape[1],
                   fields.copy(), r.copy(), acc_r)


_FWFM_DOC = """
    Field-weighted parameters (in addition to those of :class:`fmlearn.FMRegressor`, whose
    defaults they keep):

    fields : array-like of int, shape (n_features,), default=None
        Field of each feature (column of ``X``); values in ``[0, n_fields)``. -1 (a feature
        that never occurs, as ``read_ffm`` reports) is taken as field 0. None puts every
        feature in one field, which makes the model a plain FM (with a warning).
    normalize : bool, default=False
        Scale every row to unit L2 norm before training and prediction (libffm's instance
        normalization).
    l2_reg_r : float, default=0.0
        L2 regularization of the field-pair weights ``r``, applied (lazily, like the others)
        to the pairs of fields that occur together in a training row.

    Attributes
    ----------
    V_ : ndarray of shape (n_features, n_factors)
        One latent vector per feature, as in an FM.
    r_ : ndarray of shape (n_fields, n_fields)
        Symmetric field-pair weights; ``r_[F, G]`` scales every pair of a feature of field
        ``F`` with one of field ``G``. Initialized to 1 (training starts from a plain FM); an
        entry whose fields never occur together in a training row (e.g. the diagonal on
        one-hot data) stays at 1 and has no effect.
    fields_ : ndarray of int32, shape (n_features,)
    n_fields_ : int
"""


class _FwFMMixin(_FieldAware):
    """Model-family hooks shared by the FwFM regressor and classifier.

    Field handling (``fields``, ``normalize``, warm-start checks, ``fields_``) is FFM's.
    """

    _params_class = FwFMParams
    _parameter_constraints = {
        **_FieldAware._parameter_constraints,
        "l2_reg_r": [Interval(Real, 0, None, closed="left")],
    }

    __init__ = family_init({"fields": None, "normalize": False, "l2_reg_r": 0.0})

    def _param_columns(self) -> int:
        self._fields = self._resolved_fields()
        return FwFMParams.n_param_columns(self.n_factors)

    def _new_params(self, n_features, rng, w0, n_state):
        return FwFMParams.initialize(
            n_features, self.n_factors, self.init_stdev, rng, self._fields, w0=w0,
            n_state=n_state, reg_r=self.l2_reg_r,
        )

    def _check_warm_start(self):
        super()._check_warm_start()
        self._params.reg_r = float(self.l2_reg_r)  # may have changed through set_params

    @property
    def r_(self) -> np.ndarray:
        """Field-pair weights, shape (n_fields, n_fields), symmetric."""
        check_is_fitted(self)
        return self._params.r


class FwFMRegressor(_FwFMMixin, FMRegressor):
    __doc__ = (
        """Field-weighted factorization machine for regression (squared loss).

    ``y(x) = w0 + sum_i w_i x_i + sum_{a<b} r_{F(i_a), F(i_b)} <v_{i_a}, v_{i_b}> x_a x_b``.
    Cost O(n_factors * (nnz + m^2)) per row, ``m`` the number of distinct fields in the row.
    Takes every parameter of :class:`fmlearn.FMRegressor`.
    """
        + _FWFM_DOC
        + """
    Examples
    --------
    >>> import numpy as np
    >>> from fmlearn.fwfm import FwFMRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = np.zeros((500, 6))
    >>> X[np.arange(500), rng.integers(0, 3, 500)] = 1.0      # field 0: columns 0-2
    >>> X[np.arange(500), 3 + rng.integers(0, 3, 500)] = 1.0  # field 1: columns 3-5
    >>> y = X[:, 0] * X[:, 3] - X[:, 1] * X[:, 4]
    >>> model = FwFMRegressor(n_factors=2, fields=[0, 0, 0, 1, 1, 1], random_state=0)
    >>> model.fit(X, y).r_.shape
    (2, 2)
    """
    )


class FwFMClassifier(_FwFMMixin, FMClassifier):
    __doc__ = (
        """Field-weighted factorization machine for binary classification (logistic loss).

    Cost O(n_factors * (nnz + m^2)) per row, ``m`` the number of distinct fields in the row;
    any two class labels. Takes every parameter of :class:`fmlearn.FMClassifier`.
    """
        + _FWFM_DOC
        + """
    classes_ : ndarray of shape (2,)
        The class labels, sorted.
    """
    )


__all__ = ["FwFMClassifier", "FwFMParams", "FwFMRegressor"]
