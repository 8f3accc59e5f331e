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

from fmlearn._kernels import hofm as hofm_kernels
from fmlearn._model import TableParams
from fmlearn.base import family_init
from fmlearn.data.design import KernelCSR
from fmlearn.fm import FMClassifier, FMRegressor

MAX_DEGREE = 5


class HOFMParams(TableParams):
    """Parameters of a higher-order FM (Blondel et al. 2016).

    Table row ``i``: ``[P^(2)_i | P^(3)_i | ... | P^(degree)_i | w_i | solver state]``, each
    ``P^(m)_i`` of length ``n_factors``; ``wcol = (degree - 1) * n_factors``. ``P`` is a view
    of shape (degree - 1, n_features, n_factors) (``P[m - 2]`` = ``P^(m)``) and ``V`` the view
    ``P^(2)`` of shape (n_features, n_factors), so that a degree-2 model reads like an FM.
    """

    kind = "hofm"

    def __init__(self, w0, table, n_factors, degree):
        super().__init__(w0, table, n_factors)
        self.degree = int(degree)

    @staticmethod
    def n_param_columns(n_factors: int, degree: int) -> int:
        """Parameter columns of the table (before any solver state): ``P`` and ``w``."""
        return (degree - 1) * n_factors + 1

    @classmethod
    def initialize(
        cls, n_features, n_factors, init_stdev, rng, degree, dtype=np.float32, w0=0.0, n_state=0
    ):
        """Zero bias and weights, every order's factors from N(0, init_stdev^2).

        One spread for all orders, as polylearn (the authors' implementation) does; a degree-2 model
        draws exactly what :meth:`FMParams.initialize` draws. Why not scale the higher orders
        up (their weights are products of ``m`` factors, spread ``init_stdev^m``): at init,
        with unit feature values, order ``m`` adds a term of variance about
        ``k * C(nnz, m) * init_stdev^(2m)`` to the output, ``(2 / m!) (nnz * init_stdev^2)^(m-2)``
        times the pairwise part's. With one spread this ratio stays below 1 up to
        ``nnz * init_stdev^2`` of about 3 (some 300 non-zeros per row at the default 0.1): the
        higher orders start as a small perturbation of an FM. Scaling order ``m`` to
        ``init_stdev^(2/m)`` (m-way weights as spread as pairwise ones) makes the ratio
        ``(2 / m!) nnz^(m-2)`` instead; on synthetic one-hot data from a hidden HOFM it trained
        no better with 5 to 8 non-zeros per row and clearly worse with 20 at degree 5.
        """
        table = cls._new_table(n_features, (degree - 1) * n_factors, n_state, init_stdev, rng,
                               dtype)
        return cls(np.array([w0], dtype=dtype), table, n_factors, degree)

    @property
    def wcol(self) -> int:
        return (self.degree - 1) * self.n_factors

    @property
    def P(self) -> np.ndarray:
        """Factors of every order, shape (degree - 1, n_features, n_factors); a view."""
        latent = self.table[:, : self.wcol].reshape(
            self.n_features, self.degree - 1, self.n_factors
        )
        return np.moveaxis(latent, 1, 0)

    @property
    def V(self) -> np.ndarray:
        """Second-order factors ``P^(2)``, shape (n_features, n_factors); a view."""
        return self.table[:, : self.n_factors]

    def _like(self, w0, table):
        return HOFMParams(w0, table, self.n_factors, self.degree)

    def sgd_epoch(self, X: KernelCSR, y, sample_weight, order, acc_w0, solver) -> float:
        """One (stochastic) pass; see :mod:`fmlearn._kernels.hofm`. Hogwild-safe."""
        return hofm_kernels.sgd_epoch(
            X.indptr, X.indices, X.data, y, sample_weight, order,
            self.w0, acc_w0, self.table, self.n_factors, self.degree, self.wcol,
            *solver.rates, *solver.flags,
        )

    def _predict_block(self, indptr, X, out):
        hofm_kernels.predict(
            indptr, X.indices, X.data, self.w0, self.table, self.n_factors, self.degree,
            self.wcol, out,
        )

    def _latent_arrays(self):
        return {"P": np.ascontiguousarray(self.P)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], state=None) -> HOFMParams:
        """Inverse of :meth:`arrays`, with optional solver-state columns (n_features, n_state).

        ``arrays["P"]`` has shape (degree - 1, n_features, n_factors). Raises ``ValueError`` if
        the shapes or dtypes do not fit together.
        """
        P = arrays["P"]
        if P.ndim != 3 or P.dtype != arrays["w"].dtype:
            raise ValueError(f"P must be 3-D of the dtype of w, got {P.shape} {P.dtype}")
        if not 1 <= P.shape[0] <= MAX_DEGREE - 1:
            raise ValueError(f"P must hold 1 to {MAX_DEGREE - 1} orders, got {P.shape[0]}")
        cls._check_common(arrays, P.shape[1])
        latent = np.moveaxis(P, 0, 1).reshape(P.shape[1], -1)
        table = cls._assemble(arrays["w"], latent, state)
        return cls(arrays["w0"].copy(), table, P.shape[2], P.shape[0] + 1)


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
    _solvers = frozenset({"sgd", "adagrad"})
    _parameter_constraints = {
        **FMRegressor._parameter_constraints,
        "degree": [Interval(Integral, 2, MAX_DEGREE, closed="both")],
    }

    __init__ = family_init({"degree": 3})

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


class HOFMRegressor(HOFMMixin, FMRegressor):
    __doc__ = (
        """Higher-order factorization machine for regression (squared loss).

    Predicts ``y(x) = w0 + <w, x> + sum_{m=2..degree} sum_s A^m(P^(m)[:, s], x)``, the ANOVA
    kernel ``A^m`` summing the products of every ``m`` distinct non-zeros of ``x``. Cost
    O(n_factors * nnz(x) * (degree - 1)(degree + 2) / 2) per row; an epoch takes about 3x an
    FM's for degree 3 and 6x for degree 5.
    Takes every parameter of :class:`fmlearn.FMRegressor`. Per-epoch metric: RMSE.
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


class HOFMClassifier(HOFMMixin, FMClassifier):
    __doc__ = (
        """Higher-order factorization machine for binary classification (logistic loss).

    Any two class labels; ``classes_[1]`` is the positive class. Cost as for
    :class:`HOFMRegressor`. Takes every parameter of :class:`fmlearn.FMClassifier`. Per-epoch
    metric: log loss.
    """
        + _HOFM_DOC
        + """
    classes_ : ndarray of shape (2,)
        The class labels, sorted.
    """
    )


__all__ = ["HOFMClassifier", "HOFMParams", "HOFMRegressor"]
