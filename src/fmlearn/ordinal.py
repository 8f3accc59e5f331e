"""Ordinal regression with factorization machines: :class:`FMOrdinalRegressor`.

For ordered classes such as 1-5 stars. The FM gives a score ``f(x)`` and learned, increasing
cutpoints split it into classes (a cumulative link model, see
:mod:`fmlearn._kernels.ordinal`): ``solver="sgd"``/``"adagrad"`` fit the logistic link
(proportional odds), ``solver="mcmc"`` the probit link (ordered probit, as myFM) with the
cutpoints sampled too. ``predict`` gives the expected value of the target,
``predict_proba`` the class probabilities, ``predict_class`` the most probable class.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_is_fitted, column_or_1d

from fmlearn._kernels.losses import ORDINAL
from fmlearn.base import BaseFM
from fmlearn.fm import _PARAMS_DOC
from fmlearn.models.table import LINKS


class FMOrdinalRegressor(RegressorMixin, BaseFM):
    __doc__ = (
        """Factorization machine for ordinal regression (ordered classes, e.g. ratings).

    ``P(y <= c | x) = F(theta_c - f(x))`` with an FM score ``f`` (no bias) and increasing
    cutpoints ``theta``; ``F`` is the logistic CDF for the SGD solvers and the normal CDF
    for ``solver="mcmc"`` (ordered probit). Targets are numeric class labels (e.g. 1..5);
    every label seen in training is a class. Per-epoch metric: log loss of the classes.
    Solvers: "sgd", "adagrad", "ftrl", "mcmc" (no ALS).
    """
        + _PARAMS_DOC
        + """
    classes_ : ndarray of shape (n_classes,)
        The ordered class labels.
    cutpoints_ : ndarray of shape (n_classes - 1,)
        The cutpoints (MCMC: their posterior mean).
    cutpoint_samples_ : ndarray of shape (n_samples, n_classes - 1)
        MCMC only: the kept samples of the cutpoints.

    Examples
    --------
    >>> import numpy as np
    >>> from fmlearn import FMOrdinalRegressor
    >>> from fmlearn.data import make_fm_regression
    >>> X, y, _ = make_fm_regression(n_samples=2000, n_features=50, random_state=0)
    >>> stars = np.digitize(y, np.quantile(y, [0.2, 0.4, 0.6, 0.8])) + 1
    >>> model = FMOrdinalRegressor(n_factors=4, random_state=0).fit(X, stars)
    >>> model.predict_proba(X[:2]).shape
    (2, 5)
    """
    )

    _loss = ORDINAL
    _metric_name = "logloss"
    _solvers = frozenset({"sgd", "adagrad", "ftrl", "mcmc"})

    # ----------------------------------------------------------------- task hooks
    def _encode_y(self, y, *, reset, classes=None):
        y = column_or_1d(y, warn=True)
        if reset:
            labels = np.unique(y) if classes is None else np.unique(np.asarray(classes))
            if labels.dtype.kind not in "biuf":
                raise ValueError(
                    f"FMOrdinalRegressor needs numeric ordered labels (e.g. 1..5 stars), got "
                    f"{labels.dtype} labels such as {labels[0]!r}; map them to numbers in "
                    "their order first."
                )
            if labels.shape[0] < 2:
                raise ValueError(
                    f"FMOrdinalRegressor needs at least 2 ordered classes; y has "
                    f"{labels.shape[0]}."
                )
            self.classes_ = labels
        index = np.searchsorted(self.classes_, y)
        unknown = (index >= self.classes_.shape[0]) | (
            self.classes_[np.minimum(index, self.classes_.shape[0] - 1)] != y
        )
        if unknown.any():
            row = int(np.flatnonzero(unknown)[0])
            raise ValueError(
                f"y has label {y[row]!r} (row {row}) that is not one of the classes "
                f"{list(self.classes_)} the model was fitted with."
            )
        return index.astype(np.float64)

    def _initial_bias(self, y, sample_weight):
        return 0.0  # the cutpoints act as the bias

    def _metric_from_loss_sum(self, loss_sum, weight_sum):
        return float(loss_sum / weight_sum)

    def _metric(self, y, proba, sample_weight):
        p = proba[np.arange(y.shape[0]), y.astype(np.intp)]
        return float(np.average(-np.log(np.clip(p, 1e-300, 1.0)), weights=sample_weight))

    # ----------------------------------------------------------------- outputs
    @staticmethod
    def _class_probabilities(f, cut, link) -> np.ndarray:
        cdf = LINKS[link](cut[None, :] - f[:, None])
        n = f.shape[0]
        return np.diff(np.hstack([np.zeros((n, 1)), cdf, np.ones((n, 1))]), axis=1)

    def _output(self, Xk, link=None) -> np.ndarray:
        """Class probabilities (n, n_classes), averaged over posterior samples for MCMC."""
        params = self._params
        if getattr(params, "samples", None) is not None and params.n_samples:
            total = 0.0
            for s, f in enumerate(params.sample_outputs(Xk, self.n_jobs)):
                total = total + self._class_probabilities(f, params.extra_samples[s], "probit")
            return total / params.n_samples
        f = params.as_point().decision_function(Xk, self.n_jobs)
        link = "probit" if self._solver_name == "mcmc" else "logit"
        return self._class_probabilities(f, self._solver_state["cutpoints"], link)

    @property
    def cutpoints_(self) -> np.ndarray:
        check_is_fitted(self)
        params = self._params
        if getattr(params, "samples", None) is not None and params.n_samples:
            return params.extra_samples[: params.n_samples].mean(axis=0)
        return self._solver_state["cutpoints"].copy()

    @property
    def cutpoint_samples_(self) -> np.ndarray:
        params = self._samples("cutpoint_samples_")
        return params.extra_samples[: params.n_samples]

    def partial_fit(self, X, y, classes=None, sample_weight=None, *, X_rel=None,
                    eval_set=None, eval_X_rel=None, callbacks=None):
        """One epoch; ``classes`` (all labels) is needed on the first call."""
        first = not self.__sklearn_is_fitted__()
        if first:
            self._validate_params()
        self._check_partial_fit()
        return self._fit(X, y, sample_weight, eval_set, callbacks, reset=first, max_iter=1,
                         classes=classes, X_rel=X_rel, eval_X_rel=eval_X_rel)

    def predict_proba(self, X, X_rel=None) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        return self._output(self._predict_design(X, X_rel))

    def predict(self, X, X_rel=None) -> np.ndarray:
        """Expected value of the target, ``sum_c P(c | x) classes_[c]``, shape (n_samples,)."""
        return self.predict_proba(X, X_rel) @ self.classes_.astype(np.float64)

    def predict_class(self, X, X_rel=None) -> np.ndarray:
        """The most probable class label, shape (n_samples,)."""
        return self.classes_[np.argmax(self.predict_proba(X, X_rel), axis=1)]


__all__ = ["FMOrdinalRegressor"]
