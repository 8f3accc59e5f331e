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

from fmlearn._parallel import effective_n_jobs
from fmlearn.base import family_init
from fmlearn.ffm import _FieldAware
from fmlearn.fm import _Classifier, _Regressor
from fmlearn.models.fwfm import FwFMParams

_FWFM_DOC = """
    Field-weighted parameters (in addition to those of :class:`fmlearn.FMRegressor`; for
    AdaGrad, the default solver, ``learning_rate=0.2``, ``l2_reg_w=1e-2`` and ``l2_reg_V=5e-2``
    (2e-2 with ``normalize=True``); for SGD and FTRL those of :class:`fmlearn.FFMRegressor`):

    fields : array-like of int, shape (n_features,), default=None
        Field of each feature (column of ``X``); values in ``[0, n_fields)``. -1 (a feature
        that never occurs, as ``read_ffm`` reports) is taken as field 0. None takes the fields
        that ``X`` carries when it is ``FMEncoder`` output (so a ``Pipeline`` of an encoder and
        this model gets each fit's fields; relation blocks get one field each), and otherwise
        puts every feature in one field, which makes the model a plain FM (with a warning).
    normalize : bool, default=False
        Scale every row to unit L2 norm before training and prediction (libffm's instance
        normalization).
    l2_reg_r : float, default=0.0
        L2 regularization of the field-pair weights ``r`` towards 1 (penalty
        ``l2_reg_r / 2 (r_FG - 1)^2``): a prior towards a plain FM, so that a pair of fields
        the data say little about keeps the FM's weight instead of collapsing to 0. Applied
        lazily, like the others, to the pairs of fields that occur together in a training row.
        (Model files written before this prior keep their penalty towards 0.)

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

    @property
    def _solver_defaults(self) -> dict:
        """AdaGrad: FFM's (libffm's) learning rate, L2 on the factors 5e-2 (the FM's) on raw
        rows and 2e-2 on normalized ones; SGD and FTRL: FFM's values (not part of the study).

        Chosen by benchmarks/defaults.py (docs/benchmarks.md, "Defaults"): FFM's 1e-2 on V,
        which FwFM had until then, left it 0.06 AUC below logistic regression on the
        200-row Criteo sample (5e-2: 0.001 below, as FM and FFM; Frappe 0.951 -> 0.948).
        Normalized rows (``normalize=True``) have pair terms ``1 / nnz`` of the raw ones,
        so the same per-row L2 weighs more: 5e-2 put Frappe below logistic regression
        (0.924), 2e-2 gives 0.941 and Criteo still ties.
        """
        adagrad = {"learning_rate": 0.2, "l2_reg_w": 1e-2,
                   "l2_reg_V": 2e-2 if self.normalize else 5e-2}
        return {**_FieldAware._solver_defaults, "adagrad": adagrad}

    def _param_columns(self) -> int:
        return FwFMParams.n_param_columns(self.n_factors)

    def _extra_model_bytes(self, n_features: int) -> int:
        # r and its solver state (up to 2 float32 slices), and the kernels' float64 scratch
        # of (n_fields, n_fields) per thread (two, for the pair sums and r's gradient).
        threads = effective_n_jobs(self.n_jobs) if isinstance(self.n_jobs, int) else 1
        return self._n_fields() ** 2 * (3 * 4 + 2 * 8 * max(threads, 1))

    def _new_params(self, n_features, rng, w0, n_state):
        return FwFMParams.initialize(
            n_features, self.n_factors, self.init_stdev, rng, self._resolved_fields(), w0=w0,
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


class FwFMRegressor(_FwFMMixin, _Regressor):
    __doc__ = (
        """Field-weighted factorization machine for regression (squared loss).

    ``y(x) = w0 + sum_i w_i x_i + sum_{a<b} r_{F(i_a), F(i_b)} <v_{i_a}, v_{i_b}> x_a x_b``.
    Cost O(n_factors * (nnz + m^2)) per row, ``m`` the number of distinct fields in the row.
    Takes the parameters of :class:`fmlearn.FMRegressor` except the MCMC-only ones.
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


class FwFMClassifier(_FwFMMixin, _Classifier):
    __doc__ = (
        """Field-weighted factorization machine for binary classification (logistic loss).

    Cost O(n_factors * (nnz + m^2)) per row, ``m`` the number of distinct fields in the row;
    any two class labels. Takes the parameters of :class:`fmlearn.FMClassifier` except the
    MCMC-only ones.
    """
        + _FWFM_DOC
        + """
    classes_ : ndarray of shape (2,)
        The class labels, sorted.
    """
    )


__all__ = ["FwFMClassifier", "FwFMParams", "FwFMRegressor"]
