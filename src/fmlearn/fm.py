"""Second-order factorization machine estimators: :class:`FMRegressor`, :class:`FMClassifier`.

They hold no math: :class:`fmlearn.base.BaseFM` runs the shared training loop, the task hooks
here encode targets and score the loss.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from fmlearn._kernels.losses import LOGISTIC, SQUARED
from fmlearn.base import BaseFM

_PARAMS_DOC = """
    Parameters
    ----------
    n_factors : int, default=8
        Dimension k of the latent factors; 0 gives a linear model.
    solver : {"adagrad", "sgd"}, default="adagrad"
        "sgd": stochastic gradient descent with a constant ``learning_rate``; "adagrad": SGD
        with AdaGrad per-coordinate step sizes, less sensitive to ``learning_rate``.
    learning_rate : float, default=0.1
        Step size (AdaGrad: initial scale of the per-coordinate steps). For plain SGD start
        near 0.01.
    max_iter : int, default=100
        Maximum number of epochs (passes over the training rows).
    l2_reg_w : float, default=1e-4
        L2 regularization of the linear weights ``w``.
    l2_reg_V : float, default=1e-4
        L2 regularization of the factors ``V``.
    init_stdev : float, default=0.1
        Standard deviation of the normal initialization of ``V``.
    fit_intercept : bool, default=True
        Learn the global bias ``w0`` (initialized from the targets).
    fit_linear : bool, default=True
        Learn the linear weights ``w``.
    tol : float or None, default=1e-4
        Training stops when the monitored metric (validation with ``early_stopping``, else the
        training metric) has not improved by ``tol`` for ``n_iter_no_change`` epochs. None
        runs all ``max_iter`` epochs (unless ``early_stopping``).
    early_stopping : bool, default=False
        Monitor a validation set (``eval_set`` passed to ``fit``, else ``validation_fraction``
        of the training rows held out) and restore the parameters of its best epoch.
    validation_fraction : float, default=0.1
        Share of the training rows held out when ``early_stopping`` has no ``eval_set``.
    n_iter_no_change : int, default=5
        Patience of the stopping rule, in epochs.
    warm_start : bool, default=False
        ``fit`` continues from the current parameters instead of starting anew.
    random_state : int, RandomState instance, Generator or None, default=None
        Seeds initialization, shuffling and validation splits. With ``n_jobs=1`` the same seed
        gives the same model.
    n_jobs : int or None, default=None
        Threads for training (lock-free Hogwild over rows) and prediction; None means 1,
        -1 all cores. Multi-threaded training is not bit-for-bit reproducible.
    verbose : int, default=0
        1 shows a progress bar over epochs with the training and validation metrics.

    Attributes
    ----------
    w0_ : float
        Global bias.
    w_ : ndarray of shape (n_features,)
        Linear weights.
    V_ : ndarray of shape (n_features, n_factors)
        Latent factors, one row per feature (float32).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined when ``X`` has string column names.
    n_iter_ : int
        Epochs run by the last ``fit`` or ``partial_fit``.
    best_iteration_ : int
        Epoch whose parameters were kept, when a validation set was monitored.
    history_ : dict of lists
        Per epoch: ``"epoch"``, ``"train_<metric>"`` (progressive: each row scored before
        its update), ``"valid_<metric>"`` when validating, ``"time"`` (seconds since start).
"""


class FMRegressor(RegressorMixin, BaseFM):
    __doc__ = (
        """Factorization machine for regression (squared loss).

    Predicts ``y(x) = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j`` in O(k * nnz(x)).
    Per-epoch metric: RMSE.
    """
        + _PARAMS_DOC
        + """
    Examples
    --------
    >>> from fmlearn import FMRegressor
    >>> from fmlearn.data import make_fm_regression
    >>> X, y, _ = make_fm_regression(n_samples=2000, n_features=50, random_state=0)
    >>> model = FMRegressor(n_factors=4, random_state=0).fit(X, y)
    >>> model.predict(X[:3]).shape
    (3,)
    """
    )

    _loss = SQUARED
    _metric_name = "rmse"

    def _encode_y(self, y, *, reset, classes=None):
        return np.ascontiguousarray(y, dtype=np.float64)

    def _initial_bias(self, y, sample_weight):
        return float(np.average(y, weights=sample_weight))

    def _metric_from_loss_sum(self, loss_sum, weight_sum):
        return float(np.sqrt(loss_sum / weight_sum))

    def _metric(self, y, f, sample_weight):
        return float(np.sqrt(np.average((f - y) ** 2, weights=sample_weight)))

    def partial_fit(self, X, y, sample_weight=None, *, eval_set=None, callbacks=None):
        """One epoch over ``X`` and ``y``, continuing from the current model if fitted."""
        first = not self.__sklearn_is_fitted__()
        if first:
            self._validate_params()
        return self._fit(X, y, sample_weight, eval_set, callbacks, reset=first, max_iter=1)

    def predict(self, X) -> np.ndarray:
        """Predicted targets, shape (n_samples,)."""
        return self._raw_predict(X)


class FMClassifier(ClassifierMixin, BaseFM):
    __doc__ = (
        """Factorization machine for binary classification (logistic loss).

    Any two class labels are accepted; ``classes_[1]`` is the positive class. Per-epoch
    metric: log loss.
    """
        + _PARAMS_DOC
        + """
    classes_ : ndarray of shape (2,)
        The class labels, sorted.
    """
    )

    _loss = LOGISTIC
    _metric_name = "logloss"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _encode_y(self, y, *, reset, classes=None):
        if reset:
            check_classification_targets(y)
            labels = np.unique(y) if classes is None else np.unique(np.asarray(classes))
            if labels.shape[0] != 2:
                if labels.shape[0] < 2:
                    what = f"only one class ({labels[0]!r})" if labels.shape[0] else "no class"
                else:
                    what = f"{labels.shape[0]} classes ({', '.join(map(repr, labels[:5]))}...)"
                raise ValueError(
                    "Only binary classification is supported. FMClassifier needs exactly 2 "
                    f"classes; y has {what}. Check the target column, or for several classes "
                    "train one model per class with "
                    "sklearn.multiclass.OneVsRestClassifier(FMClassifier()).",
                )
            self.classes_ = labels
        unknown = ~np.isin(y, self.classes_)
        if unknown.any():
            raise ValueError(
                f"y has label {y[unknown][0]!r} (row {int(np.flatnonzero(unknown)[0])}) that is "
                f"not one of the classes {list(self.classes_)} the model was fitted with."
            )
        return np.where(y == self.classes_[1], 1.0, -1.0)

    def _initial_bias(self, y, sample_weight):
        p = np.average(y > 0, weights=sample_weight)
        p = min(max(p, 1e-6), 1 - 1e-6)
        return float(np.log(p / (1 - p)))

    def _metric_from_loss_sum(self, loss_sum, weight_sum):
        return float(loss_sum / weight_sum)

    def _metric(self, y, f, sample_weight):
        return float(np.average(np.logaddexp(0.0, -y * f), weights=sample_weight))

    def partial_fit(
        self, X, y, classes=None, sample_weight=None, *, eval_set=None, callbacks=None
    ):
        """One epoch over ``X`` and ``y``; ``classes`` (both labels) is needed on the first call
        when ``y`` may not show both."""
        first = not self.__sklearn_is_fitted__()
        if first:
            self._validate_params()
        return self._fit(
            X, y, sample_weight, eval_set, callbacks, reset=first, max_iter=1, classes=classes
        )

    def decision_function(self, X) -> np.ndarray:
        """Model output ``y(x)`` (log-odds of ``classes_[1]``), shape (n_samples,)."""
        return self._raw_predict(X)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n_samples, 2), columns in ``classes_`` order."""
        p = expit(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        """Predicted class labels, shape (n_samples,)."""
        check_is_fitted(self)
        return self.classes_[(self.decision_function(X) > 0).astype(np.intp)]
