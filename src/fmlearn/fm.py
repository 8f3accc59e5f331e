"""Second-order factorization machine estimators: :class:`FMRegressor`, :class:`FMClassifier`.

They hold no math: :class:`fmlearn.base.BaseFM` runs the shared training loop, the task hooks
here encode targets and score the loss.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from fmlearn._kernels.losses import LOGISTIC, SQUARED
from fmlearn.base import BaseFM
from fmlearn.models.fm import FMParams
from fmlearn.models.multiclass import MulticlassFMParams
from fmlearn.retrieval import RecommendMixin

# Solvers with multinomial kernels (more than two classes).
_MULTICLASS_SOLVERS = frozenset({"sgd", "adagrad", "ftrl"})

_PARAMS_DOC = """
    Parameters
    ----------
    n_factors : int, default=8
        Dimension k of the latent factors; 0 gives a linear model.
    solver : {"adagrad", "sgd", "ftrl", "als", "mcmc"}, default="adagrad"
        "sgd": stochastic gradient descent with a constant ``learning_rate``; "adagrad": SGD
        with AdaGrad per-coordinate step sizes, less sensitive to ``learning_rate``; "ftrl":
        FTRL-Proximal (McMahan et al. 2013), per-coordinate rates with L1 (``l1_reg_w``) and
        L2 in closed form, the online click-through-rate optimizer (see
        ``docs/solvers.md``); "als":
        exact coordinate descent (no learning rate); "mcmc": Bayesian FM by Gibbs sampling
        (no learning rate and no regularization to tune; ``predict`` averages the kept
        posterior samples; ``predict(X, return_std=True)`` gives predictive uncertainty).
        ALS and MCMC classify with the probit model. See ``docs/bayesian.md``.
    learning_rate : float, default=0.1
        Step size (AdaGrad: initial scale of the per-coordinate steps; FTRL: its ``alpha``,
        each coordinate's rate being ``alpha / (1 + sqrt(sum of its squared gradients))``).
        For plain SGD start near 0.01. Not used by ALS and MCMC.
    max_iter : int, default=100
        Maximum number of epochs (passes over the training rows; sweeps for ALS and MCMC).
    l1_reg_w : float, default=0.0
        L1 regularization of the linear weights ``w``, ``solver="ftrl"`` only (other solvers
        refuse a positive value): the weights of features whose accumulated gradient stays
        within it are exactly 0. The factors get no L1.
    l2_reg_w : float, default=1e-4
        L2 regularization of the linear weights ``w``: per row touched for SGD, on the total
        loss for ALS (useful ALS values are larger, about 1-100), in FTRL's closed form for
        FTRL. MCMC samples it instead.
    l2_reg_V : float, default=1e-4
        L2 regularization of the factors ``V`` (as ``l2_reg_w``).
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
    n_kept_samples : int or None, default=None
        MCMC: the number of last sweeps whose samples are kept and averaged by ``predict``;
        the sweeps before are burn-in. None keeps all but the first 10 %.
    prior_groups : array-like of int, shape (n_columns,), default=None
        MCMC: the hyper-prior group of each feature column (``X``'s columns, then those of
        the relation blocks), e.g. ``FMEncoder.fields_``: each group (user ids, item ids,
        context...) gets its own prior mean and precision, as libFM's ``-meta`` file and
        myFM's grouping. None puts all features in one group.

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
    w0_samples_, w_samples_, V_samples_, noise_samples_ : ndarray
        MCMC only: the kept posterior samples, shapes (n_samples,), (n_samples, n_features),
        (n_samples, n_features, n_factors) and (n_samples,) (noise precision). ``w0_``,
        ``w_`` and ``V_`` are then the chain's last sample.
    n_iter_ : int
        Epochs run by the last ``fit`` or ``partial_fit``.
    best_iteration_ : int
        Epoch whose parameters were kept, when a validation set was monitored.
    history_ : dict of lists
        Per epoch: ``"epoch"``, ``"train_<metric>"`` (progressive: each row scored before
        its update), ``"valid_<metric>"`` when validating, ``"time"`` (seconds since start).
"""


class FMRegressor(RecommendMixin, RegressorMixin, BaseFM):
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
    _output_link = "identity"

    def _encode_y(self, y, *, reset, classes=None):
        return np.ascontiguousarray(y, dtype=np.float64)

    def _initial_bias(self, y, sample_weight):
        return float(np.average(y, weights=sample_weight))

    def _metric_from_loss_sum(self, loss_sum, weight_sum):
        return float(np.sqrt(loss_sum / weight_sum))

    def _metric(self, y, output, sample_weight):
        return float(np.sqrt(np.average((output - y) ** 2, weights=sample_weight)))

    def partial_fit(self, X, y, sample_weight=None, *, X_rel=None, eval_set=None,
                    eval_X_rel=None, callbacks=None):
        """One epoch over ``X`` and ``y``, continuing from the current model if fitted."""
        first = not self.__sklearn_is_fitted__()
        if first:
            self._validate_params()
        self._check_partial_fit()
        return self._fit(X, y, sample_weight, eval_set, callbacks, reset=first, max_iter=1,
                         X_rel=X_rel, eval_X_rel=eval_X_rel)

    def predict(self, X, X_rel=None, return_std=False):
        """Predicted targets, shape (n_samples,).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        X_rel : list of RelationBlock, optional
            The relation blocks of these rows, if the model was fitted with blocks.
        return_std : bool, default=False
            Also return the standard deviation of the posterior predictive distribution of
            each target (``solver="mcmc"`` only): the spread of the FM output across samples
            plus the noise. ``mean +- 1.645 * std`` is a 90 % predictive interval.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            With ``solver="mcmc"``, the posterior mean over the kept samples.
        y_std : ndarray of shape (n_samples,)
            Only with ``return_std=True``.
        """
        if not return_std:
            return self._raw_predict(X, X_rel)
        check_is_fitted(self)
        if not hasattr(self._params, "predictive_std"):
            raise ValueError(
                f"return_std=True needs a posterior: this model was fitted with "
                f"solver={self._solver_name!r}. Fit with solver='mcmc'."
            )
        Xk = self._predict_design(X, X_rel)
        return (
            self._params.decision_function(Xk, self.n_jobs),
            self._params.predictive_std(Xk, self.n_jobs),
        )


class FMClassifier(RecommendMixin, ClassifierMixin, BaseFM):
    __doc__ = (
        """Factorization machine for classification: binary (logistic loss) or multi-class.

    Two classes: one FM score, the log-odds of ``classes_[1]`` (any two labels; ALS and MCMC
    fit the probit model). More than two: a multinomial FM, one FM score per class with its
    own bias, weights and rank-``n_factors`` factors, and ``P(c | x) = softmax(scores)_c``;
    O(n_classes * n_factors * nnz(x)) per row, trained by ``solver="sgd"`` or ``"adagrad"``
    (see ``docs/multiclass.md``). Per-epoch metric: log loss (multinomial for more than two
    classes).
    """
        + _PARAMS_DOC
        + """
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted.

    With more than two classes the fitted parameters have a class axis: ``w0_`` of shape
    (n_classes,), ``w_`` of shape (n_features, n_classes) and ``V_`` of shape
    (n_features, n_classes, n_factors), where ``V_[:, c]`` are the factors of class
    ``classes_[c]``.
    """
    )

    _loss = LOGISTIC
    _metric_name = "logloss"

    @property
    def _output_link(self) -> str:
        # SGD fits the logistic model, ALS and MCMC the probit model.
        return getattr(self, "_link", "logit")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Multi-class is the plain FM's (multinomial); the other families are binary.
        tags.classifier_tags.multi_class = self._params_class is FMParams
        return tags

    # ----------------------------------------------------- binary or multinomial, per fit
    def _multinomial(self) -> bool:
        """Whether the model (being) fitted is the multinomial one (> 2 classes)."""
        return len(getattr(self, "classes_", ())) > 2

    def _check_multinomial(self, labels) -> None:
        name = type(self).__name__
        listed = f"{labels.shape[0]} classes ({', '.join(map(repr, labels[:5]))}...)"
        if self._params_class is not FMParams:
            raise ValueError(
                f"Only binary classification is supported by {name}: y has {listed}. "
                "Multi-class (a multinomial FM) is available in FMClassifier; or train one "
                f"model per class with sklearn.multiclass.OneVsRestClassifier({name}())."
            )
        if self.solver not in _MULTICLASS_SOLVERS:
            raise ValueError(
                f"solver={self.solver!r} is not supported for more than two classes yet "
                f"(y has {listed}): the multinomial FM is trained with solver='adagrad', 'sgd' "
                "or 'ftrl'. Or train one model per class with "
                f"sklearn.multiclass.OneVsRestClassifier({name}(solver={self.solver!r}))."
            )

    def _encode_y(self, y, *, reset, classes=None):
        if reset:
            check_classification_targets(y)
            labels = np.unique(y) if classes is None else np.unique(np.asarray(classes))
            if labels.shape[0] < 2:
                what = f"only one class ({labels[0]!r})" if labels.shape[0] else "no class"
                raise ValueError(
                    f"{type(self).__name__} needs at least 2 classes; y has {what}. Check the "
                    "target column (and pass every label as classes= to partial_fit)."
                )
            if labels.shape[0] > 2:
                self._check_multinomial(labels)
            self.classes_ = labels
        elif self._multinomial():
            self._check_multinomial(self.classes_)  # e.g. a warm start with solver="als"
        unknown = ~np.isin(y, self.classes_)
        if unknown.any():
            raise ValueError(
                f"y has label {y[unknown][0]!r} (row {int(np.flatnonzero(unknown)[0])}) that is "
                f"not one of the classes {list(self.classes_)} the model was fitted with."
            )
        if self._multinomial():
            return np.searchsorted(self.classes_, y).astype(np.float64)
        return np.where(y == self.classes_[1], 1.0, -1.0)

    def _param_columns(self) -> int:
        if self._multinomial():
            return MulticlassFMParams.n_param_columns(self.n_factors, len(self.classes_))
        return super()._param_columns()

    def _new_params(self, n_features, rng, w0, n_state):
        if self._multinomial():
            return MulticlassFMParams.initialize(
                n_features, self.n_factors, len(self.classes_), self.init_stdev, rng, w0=w0,
                n_state=n_state,
            )
        return super()._new_params(n_features, rng, w0, n_state)

    def _initial_bias(self, y, sample_weight):
        if self._multinomial():
            # Log class priors (centred: softmax ignores a common shift).
            prior = np.bincount(y.astype(np.intp), weights=sample_weight,
                                minlength=len(self.classes_))
            log_prior = np.log(np.maximum(prior / prior.sum(), 1e-6))
            return log_prior - log_prior.mean()
        p = np.average(y > 0, weights=sample_weight)
        p = min(max(p, 1e-6), 1 - 1e-6)
        return float(np.log(p / (1 - p)))

    def _metric_from_loss_sum(self, loss_sum, weight_sum):
        return float(loss_sum / weight_sum)

    def _metric(self, y, proba, sample_weight):
        if self._multinomial():
            p = proba[np.arange(y.shape[0]), y.astype(np.intp)]
        else:
            p = np.where(y > 0, proba, 1.0 - proba)
        return float(np.average(-np.log(np.clip(p, 1e-300, 1.0)), weights=sample_weight))

    @property
    def w0_(self) -> float | np.ndarray:
        """Bias: a float, or one per class, shape (n_classes,), for more than two classes."""
        check_is_fitted(self)
        return self._params.w0 if self._multinomial() else float(self._params.w0[0])

    def field_interactions(self, fields=None, X=None) -> np.ndarray:
        check_is_fitted(self)
        if self._multinomial():
            raise ValueError(
                "field_interactions is not available for a multi-class model yet (it would "
                "need one matrix per class); inspect V_[:, c] of class classes_[c] instead."
            )
        return super().field_interactions(fields, X)

    field_interactions.__doc__ = BaseFM.field_interactions.__doc__

    def partial_fit(
        self, X, y, classes=None, sample_weight=None, *, X_rel=None, eval_set=None,
        eval_X_rel=None, callbacks=None,
    ):
        """One epoch over ``X`` and ``y``; ``classes`` (every label) is needed on the first call
        when ``y`` may not show them all. Its number of labels chooses the binary or the
        multinomial model for good."""
        first = not self.__sklearn_is_fitted__()
        if first:
            self._validate_params()
        self._check_partial_fit()
        return self._fit(
            X, y, sample_weight, eval_set, callbacks, reset=first, max_iter=1, classes=classes,
            X_rel=X_rel, eval_X_rel=eval_X_rel,
        )

    def decision_function(self, X, X_rel=None) -> np.ndarray:
        """Model output ``y(x)``.

        Two classes: shape (n_samples,), the log-odds of ``classes_[1]`` (SGD solvers) or its
        probit score (ALS, MCMC; the posterior mean for MCMC). More than two: shape
        (n_samples, n_classes), each class's FM score (the softmax logits).
        """
        return self._raw_predict(X, X_rel)

    def predict_proba(self, X, X_rel=None) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order.

        With ``solver="mcmc"``, the probabilities averaged over the posterior samples.
        """
        Xk = self._predict_design(X, X_rel)
        p = self._output(Xk)
        if self._multinomial():
            return p
        return np.column_stack([1.0 - p, p])

    def predict(self, X, X_rel=None) -> np.ndarray:
        """Predicted class labels, shape (n_samples,)."""
        check_is_fitted(self)
        if self._multinomial():
            return self.classes_[np.argmax(self.decision_function(X, X_rel), axis=1)]
        p = self.predict_proba(X, X_rel)[:, 1]
        return self.classes_[(p > 0.5).astype(np.intp)]
