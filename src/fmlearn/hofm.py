"""Higher-order factorization machines: :class:`HOFMRegressor`, :class:`HOFMClassifier`.

Blondel, Fujino, Ueda and Ishihata (2016), "Higher-order factorization machines" (NIPS):

``y(x) = w0 + <w, x> + sum_{m=2..degree} sum_{s=1..k} A^m(P^(m)[:, s], x)``

with the ANOVA kernel ``A^m(p, x) = sum_{j1<...<jm} prod_t p_{jt} x_{jt}`` and separate
factors ``P^(m)`` of shape (n_features, k) per order ``m``. ``degree=2`` is the plain FM
(``A^2(p, x) = sum_{i<j} p_i p_j x_i x_j``, summed over the factors, is ``sum_{i<j} <v_i, v_j>
x_i x_j`` with ``V = P^(2)``). The math lives in :mod:`fmlearn._kernels.hofm`; the models share
every solver and the training loop with :class:`fmlearn.FMRegressor`.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from fmlearn.base import BaseFM, family_init
from fmlearn.fm import _Classifier, _Regressor
from fmlearn.models.hofm import MAX_DEGREE, HOFMParams

_HOFM_DOC = """
    Higher-order parameter (in addition to those of :class:`fmlearn.FMRegressor`):

    degree : int, default=3
        Highest interaction order, 2 to 5. Order ``m`` has its own factors ``P^(m)``
        (n_features x n_factors). ``degree=2`` is the plain factorization machine.

    ``init_stdev`` is the spread of every order's initial factors (see
    :meth:`HOFMParams.initialize` for why it is not scaled per order) and ``l2_reg_V``
    regularizes the factors of every order.

    Attributes
    ----------
    P_ : ndarray of shape (degree - 1, n_features, n_factors)
        ``P_[m - 2]`` holds the factors of order ``m``; a view into the parameters.
    V_ : ndarray of shape (n_features, n_factors)
        The second-order factors, ``P_[0]`` (as for an FM).
"""


class HOFMMixin:
    """Model-family hooks shared by the HOFM regressor and classifier."""

    _params_class = HOFMParams
    _parameter_constraints = {
        **BaseFM._parameter_constraints,
        "degree": [Interval(Integral, 2, MAX_DEGREE, closed="both")],
    }

    # init_stdev stays 0.1: the m-way terms start at about init_stdev^m (docs/hofm.md), and
    # HOFM was not part of the defaults study (benchmarks/defaults.py).
    __init__ = family_init({"degree": 3}, init_stdev=0.1)

    def _param_columns(self) -> int:
        return HOFMParams.n_param_columns(self.n_factors, self.degree)

    def _new_params(self, n_features, rng, w0, n_state):
        return HOFMParams.initialize(
            n_features, self.n_factors, self.init_stdev, rng, self.degree, w0=w0,
            n_state=n_state,
        )

    def _check_warm_start(self):
        super()._check_warm_start()
        if self._params.degree != self.degree:
            raise ValueError(
                f"degree changed from {self._params.degree} to {self.degree} since the model "
                "was fitted; set warm_start=False (or refit) to train a new model."
            )

    @property
    def P_(self) -> np.ndarray:
        """Factors of every order, shape (degree - 1, n_features, n_factors)."""
        check_is_fitted(self)
        return self._params.P


class HOFMRegressor(HOFMMixin, _Regressor):
    __doc__ = (
        """Higher-order factorization machine for regression (squared loss).

    Predicts ``y(x) = w0 + <w, x> + sum_{m=2..degree} sum_s A^m(P^(m)[:, s], x)``, the ANOVA
    kernel ``A^m`` summing the products of every ``m`` distinct non-zeros of ``x``. Cost
    O(n_factors * nnz(x) * (degree - 1)(degree + 2) / 2) per row; an epoch takes about 3x an
    FM's for degree 3 and 6x for degree 5.
    Takes the parameters of :class:`fmlearn.FMRegressor` except the MCMC-only ones.
    Per-epoch metric: RMSE.
    """
        + _HOFM_DOC
        + """
    Examples
    --------
    >>> from fmlearn.hofm import HOFMRegressor
    >>> from fmlearn.data import make_fm_regression
    >>> X, y, _ = make_fm_regression(n_samples=500, n_features=30, random_state=0)
    >>> model = HOFMRegressor(n_factors=4, degree=3, max_iter=5, random_state=0).fit(X, y)
    >>> model.P_.shape
    (2, 30, 4)
    """
    )


class HOFMClassifier(HOFMMixin, _Classifier):
    __doc__ = (
        """Higher-order factorization machine for binary classification (logistic loss).

    Any two class labels; ``classes_[1]`` is the positive class. Cost as for
    :class:`HOFMRegressor`. Takes the parameters of :class:`fmlearn.FMClassifier` except the
    MCMC-only ones. Per-epoch metric: log loss.
    """
        + _HOFM_DOC
        + """
    classes_ : ndarray of shape (2,)
        The class labels, sorted.
    """
    )


__all__ = ["HOFMClassifier", "HOFMParams", "HOFMRegressor"]
