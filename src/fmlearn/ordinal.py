"""Ordinal regression with factorization machines: :class:`FMOrdinalRegressor`.

For ordered classes such as 1-5 stars. The FM gives a score ``f(x)`` and learned, increasing
cutpoints split it into classes (a cumulative link model, see
:mod:`fmlearn._kernels.ordinal`): ``solver="sgd"``/``"adagrad"``/``"ftrl"`` fit the logistic
link (proportional odds), ``solver="mcmc"`` the probit link (ordered probit, as myFM) with the
cutpoints sampled too. The cutpoints and the link are the model's
(:mod:`fmlearn.models.ordinal`); the task (:class:`fmlearn.tasks.Ordinal`) starts the cutpoints
and gives MCMC its latent targets. ``predict`` gives the expected value of the target,
``predict_proba`` the class probabilities, ``predict_class`` the most probable class.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils import ClassifierTags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, column_or_1d

from fmlearn.base import BaseFM, _finite_output, check_known_labels, family_init
from fmlearn.fm import _PARAMS_DOC, _Posterior, _with_mcmc
from fmlearn.models.ordinal import OrdinalFMParams
from fmlearn.optim import get_solver
from fmlearn.tasks import Ordinal


class FMOrdinalRegressor(_Posterior, RegressorMixin, BaseFM):
    __doc__ = (
        """Factorization machine for ordinal regression (ordered classes, e.g. ratings).

    ``P(y <= c | x) = F(theta_c - f(x))`` with an FM score ``f`` (no bias) and increasing
    cutpoints ``theta``; ``F`` is the logistic CDF for the SGD solvers and the normal CDF
    for ``solver="mcmc"`` (ordered probit). Targets are numeric class labels (e.g. 1..5);
    every label seen in training is a class. Per-epoch metric: log loss of the classes.
    Solvers: "sgd", "adagrad", "ftrl", "mcmc" (no ALS).
    """
        + _with_mcmc(_PARAMS_DOC)
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

    _task_name = "ordinal"
    _parameter_constraints = {**BaseFM._parameter_constraints, **_Posterior._mcmc_constraints}
    __init__ = family_init({}, tail=_Posterior._mcmc_params)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # A regressor (predict: the expected value) that also gives class probabilities:
        # predict_proba has one column per class of y, as a multi-class classifier's.
        tags.classifier_tags = ClassifierTags(multi_class=True)
        return tags

    # ----------------------------------------------------------------- task hooks
    @property
    def _task(self) -> Ordinal:
        # The link is that of the model the solver trains (the SGD-type solvers the logistic
        # model, MCMC the probit one): the initial cutpoints are its quantiles.
        try:
            link = get_solver(self.solver).classification_link
        except ValueError:  # an unknown solver; fit's validation says so
            link = "logit"
        return Ordinal(len(getattr(self, "classes_", ())), link)

    # ----------------------------------------------------------------- model-family hooks
    def _new_params(self, n_features, rng, w0, n_state):
        """The FM (bias 0) and the cutpoints, which ``_fit`` gives in the bias's place
        (:meth:`fmlearn.tasks.Ordinal.initial_bias`)."""
        return OrdinalFMParams.initialize(n_features, self.n_factors, self.init_stdev, rng,
                                          cutpoints=w0, n_state=n_state)

    def _encode_y(self, y, *, reset, classes=None):
        y = _numeric_labels(column_or_1d(y, warn=True))
        if reset:
            labels = np.unique(y) if classes is None else np.unique(_numeric_labels(classes))
            if labels.dtype.kind not in "biuf":
                raise ValueError(
                    f"FMOrdinalRegressor needs numeric ordered labels (e.g. 1..5 stars), got "
                    f"{labels.dtype} labels such as {labels[0]!r}; map them to numbers in "
                    "their order first."
                )
            if labels.shape[0] < 2:
                what = f"only one class ({labels[0]!r})" if labels.shape[0] else "no class"
                raise ValueError(
                    f"FMOrdinalRegressor needs at least 2 ordered classes; y has {what}."
                )
            self.classes_ = labels
        index = np.searchsorted(self.classes_, y)
        unknown = (index >= self.classes_.shape[0]) | (
            self.classes_[np.minimum(index, self.classes_.shape[0] - 1)] != y
        )
        check_known_labels(y, self.classes_, unknown)
        return index.astype(np.float64)

    # ----------------------------------------------------------------- outputs
    def _output(self, Xk, link=None) -> np.ndarray:
        """Class probabilities (n, n_classes) under the model's link, averaged over posterior
        samples for MCMC."""
        return self._params.mean_output(Xk, n_jobs=self.n_jobs)

    @property
    def cutpoints_(self) -> np.ndarray:
        check_is_fitted(self)
        params = self._params
        if getattr(params, "samples", None) is not None and params.n_samples:
            return params.cutpoint_samples.mean(axis=0)
        return params.cutpoints.copy()

    @property
    def cutpoint_samples_(self) -> np.ndarray:
        return self._samples("cutpoint_samples_").cutpoint_samples

    @available_if(BaseFM._check_partial_fit)
    def partial_fit(self, X, y, classes=None, sample_weight=None, *, X_rel=None,
                    eval_set=None, eval_X_rel=None, callbacks=None, end_epoch=True):
        """One epoch; ``classes`` (all labels) is needed on the first call.
        ``end_epoch=False``: one chunk of an epoch, as for ``FMRegressor.partial_fit``."""
        first = not self.__sklearn_is_fitted__()
        if first:
            self._validate_params()
        return self._fit(X, y, sample_weight, eval_set, callbacks, reset=first, max_iter=1,
                         classes=classes, X_rel=X_rel, eval_X_rel=eval_X_rel,
                         end_epoch=end_epoch)

    def predict_proba(self, X, X_rel=None) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        return _finite_output(self._output(self._predict_design(X, X_rel)))

    def predict(self, X, X_rel=None) -> np.ndarray:
        """Expected value of the target, ``sum_c P(c | x) classes_[c]``, shape (n_samples,)."""
        return self.predict_proba(X, X_rel) @ self.classes_.astype(np.float64)

    def predict_class(self, X, X_rel=None) -> np.ndarray:
        """The most probable class label, shape (n_samples,)."""
        return self.classes_[np.argmax(self.predict_proba(X, X_rel), axis=1)]


def _numeric_labels(labels) -> np.ndarray:
    """Labels of object dtype that hold numbers (e.g. a pandas column of objects) as a numeric
    array, as scikit-learn's regressors take them; any other labels as given."""
    labels = np.asarray(labels)
    if labels.dtype == object:
        numeric = np.asarray(labels.tolist())
        if numeric.shape == labels.shape and numeric.dtype.kind in "biuf":
            return numeric
    return labels


__all__ = ["FMOrdinalRegressor"]
