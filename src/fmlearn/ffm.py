"""Field-aware factorization machines: :class:`FFMRegressor`, :class:`FFMClassifier`.

Each feature has one latent vector per field and uses, with each partner, the vector of the
partner's field (Juan et al. 2016). Fields come from ``read_ffm``, from
``FMEncoder.fields_`` or from any array mapping each feature (column) to a field.
Unlike libffm these models have bias and linear terms, regression as well as classification,
sample weights, early stopping and warm starts; they share every solver and the training loop
with :class:`fmlearn.FMRegressor`.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.utils.validation import check_is_fitted

from fmlearn.base import BaseFM, family_init
from fmlearn.data.fielded import model_groups
from fmlearn.data.validation import check_fields
from fmlearn.fm import _Classifier, _Regressor
from fmlearn.models.ffm import FFMParams

_FFM_DOC = """
    Field-aware parameters (in addition to those of :class:`fmlearn.FMRegressor`; the
    defaults differ: ``n_factors=4`` and, for AdaGrad, libffm's ``learning_rate`` 0.2, and
    for SGD and AdaGrad ``l2_reg_w`` and ``l2_reg_V`` 1e-2, chosen across data sets by
    ``benchmarks/defaults.py``):

    fields : array-like of int, shape (n_features,), default=None
        Field of each feature (column of ``X``); values in ``[0, n_fields)``. -1 (a feature
        that never occurs, as ``read_ffm`` reports) is taken as field 0. None takes the fields
        that ``X`` carries when it is ``FMEncoder`` output (so a ``Pipeline`` of an encoder and
        this model gets each fit's fields; relation blocks get one field each), and otherwise
        puts every feature in one field, which makes the model a plain FM (with a warning).
    normalize : bool, default=False
        Scale every row to unit L2 norm before training and prediction (libffm's instance
        normalization; helps with a varying number of non-zeros per row).

    Attributes
    ----------
    V_ : ndarray of shape (n_features, n_fields, n_factors)
        ``V_[i, f]`` is the vector feature ``i`` uses with partners of field ``f``.
    fields_ : ndarray of int32, shape (n_features,)
    n_fields_ : int
"""


class _FieldAware:
    """Model-family hooks shared by the FFM regressor and classifier."""

    _params_class = FFMParams
    _parameter_constraints = {
        **BaseFM._parameter_constraints,
        "fields": ["array-like", None],
        "normalize": ["boolean"],
    }

    __init__ = family_init(
        {"fields": None, "normalize": False},
        n_factors=4,
    )
    # libffm's learning rate for AdaGrad; L2 chosen across data sets (benchmarks/defaults.py):
    # FFM's factors want less than the FM's 5e-2.
    _solver_defaults = {"adagrad": {"learning_rate": 0.2, "l2_reg_w": 1e-2, "l2_reg_V": 1e-2},
                        "sgd": {"l2_reg_w": 1e-2, "l2_reg_V": 1e-2},
                        # Not part of the study: v0.1's (libffm's) values.
                        "ftrl": {"learning_rate": 0.2, "l2_reg_w": 2e-5, "l2_reg_V": 2e-5}}

    def _resolved_fields(self, *, warn=True) -> np.ndarray:
        """The validated field of each model column, int32 (n_columns,)."""
        n = self._n_columns()
        carried = getattr(self, "_input_fields", None)
        if self.fields is None and carried is not None:
            # FMEncoder output (e.g. a Pipeline's fold) brings the fields of its columns.
            return model_groups(carried, getattr(self, "_relation_widths", ()))
        if self.fields is None:
            if not warn:
                return np.zeros(n, dtype=np.int32)
            warnings.warn(
                f"{type(self).__name__} got no fields: all features share one field, which is "
                "a plain FM. Pass fields= (from read_ffm or FMEncoder.fields_).",
                UserWarning,
                stacklevel=4,
            )
            return np.zeros(n, dtype=np.int32)
        hint = (" X is FMEncoder output, which carries its own fields: leave fields=None (in a "
                "Pipeline each fold's encoder has its own columns)." if carried is not None else "")
        return check_fields(self.fields, n, hint=hint)

    def _param_columns(self) -> int:
        fields = self._resolved_fields(warn=False)
        n_fields = int(fields.max()) + 1 if fields.size else 1
        return FFMParams.n_param_columns(self.n_factors, n_fields)

    def _n_fields(self) -> int:
        fields = self._resolved_fields(warn=False)
        return int(fields.max()) + 1 if fields.size else 1

    def _extra_model_bytes(self, n_features: int) -> int:
        # Beside the table (counted by _param_columns): the first float32 draw of factors
        # covers at least one whole row of n_fields * n_factors.
        return self._n_fields() * max(self.n_factors, 1) * 4

    def _new_params(self, n_features, rng, w0, n_state):
        return FFMParams.initialize(
            n_features, self.n_factors, self.init_stdev, rng, self._resolved_fields(), w0=w0,
            n_state=n_state,
        )

    def _check_warm_start(self):
        super()._check_warm_start()
        if not np.array_equal(self._resolved_fields(), self._params.fields):
            raise ValueError(
                "fields changed since the model was fitted; set warm_start=False to refit."
            )

    def _design(self, X, X_rel=None, *, expand=False):
        Xk = super()._design(X, X_rel, expand=True)
        if not self.normalize:
            return Xk
        counts = np.diff(Xk.indptr)
        rows = np.repeat(np.arange(Xk.n_rows), counts)
        norms = np.sqrt(np.bincount(rows, weights=Xk.data.astype(np.float64) ** 2,
                                    minlength=Xk.n_rows))
        norms[norms == 0] = 1.0
        return Xk._replace(data=(Xk.data / norms[rows]).astype(Xk.data.dtype))

    @property
    def fields_(self) -> np.ndarray:
        check_is_fitted(self)
        return self._params.fields

    @property
    def n_fields_(self) -> int:
        check_is_fitted(self)
        return self._params.n_fields


class FFMRegressor(_FieldAware, _Regressor):
    __doc__ = (
        """Field-aware factorization machine for regression (squared loss).

    Cost O(n_factors * nnz^2) per row. Takes the parameters of :class:`fmlearn.FMRegressor`
    except the MCMC-only ones.
    """
        + _FFM_DOC
    )


class FFMClassifier(_FieldAware, _Classifier):
    __doc__ = (
        """Field-aware factorization machine for binary classification (logistic loss).

    Cost O(n_factors * nnz^2) per row; any two class labels. Takes the parameters of
    :class:`fmlearn.FMClassifier` except the MCMC-only ones.
    """
        + _FFM_DOC
    )


__all__ = ["FFMClassifier", "FFMRegressor"]
