"""Second-order factorization machine estimators: :class:`FMRegressor`, :class:`FMClassifier`.

They hold no math: :class:`fmlearn.base.BaseFM` runs the shared training loop, the task hooks
here encode targets and score the loss.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from scipy.special import logit, ndtri
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from fmlearn.base import BaseFM, _finite_output, check_known_labels, class_labels, family_init
from fmlearn.data.fielded import model_groups
from fmlearn.models.multiclass import MulticlassFMParams
from fmlearn.optim import SOLVERS, solvers_for, supports
from fmlearn.retrieval import RecommendMixin
from fmlearn.tasks import BinaryClassification, Multinomial, Regression

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
    learning_rate : float or None, default=None
        Step size, None for the solver's default (0.1 for AdaGrad and FTRL, 0.01 for SGD).
        AdaGrad: initial scale of the per-coordinate steps; FTRL: its ``alpha``, each
        coordinate's rate being ``alpha / (1 + sqrt(sum of its squared gradients))``. Not
        used by ALS and MCMC. The defaults were chosen across data sets
        (``benchmarks/defaults.py``, ``docs/benchmarks.md``).
    max_iter : int, default=100
        Maximum number of epochs (passes over the training rows; sweeps for ALS and MCMC).
    l1_reg_w : float, default=0.0
        L1 regularization of the linear weights ``w``, ``solver="ftrl"`` only (other solvers
        refuse a positive value): the weights of features whose accumulated gradient stays
        within it are exactly 0. The factors get no L1.
    l2_reg_w : float or None, default=None
        L2 regularization of the linear weights ``w``, None for the solver's default (1e-2
        for SGD and AdaGrad, 1e-4 for ALS and FTRL). Per row touched for SGD and AdaGrad, on
        the mean loss for ALS (so one value suits data of any size), in FTRL's closed form
        for FTRL. MCMC samples it instead.
    l2_reg_V : float or None, default=None
        L2 regularization of the factors ``V``, None for the solver's default (5e-2 for
        AdaGrad, 8e-2 for SGD, 1e-4 for ALS and FTRL); applied as ``l2_reg_w``.
    l2_min_count : float or None, default=None
        Floor on the rows a feature's L2 counts for, stochastic solvers (SGD, AdaGrad, FTRL)
        only. Their L2 is applied at each update of a feature, so over an epoch a feature in
        ``count`` rows is penalized ``count`` times and one seen once hardly at all: on small
        data it learns its rows' labels. A feature in fewer than ``l2_min_count`` training
        rows has its ``l2_reg_w`` and ``l2_reg_V`` scaled by ``l2_min_count / count`` at each
        update, so that its penalty per epoch is that of ``l2_min_count`` rows; more frequent
        features are unchanged. 0 turns it off; a value >= the number of rows penalizes every
        feature alike (the full-batch ``mean loss + l2 / 2 ||theta||^2``). None: for SGD and
        AdaGrad 100 in a fit that does not stop early (with the default 1e-2 on ``w``, a rare
        feature's total penalty is 1, logistic regression's ``C=1``), 0 with early stopping
        (which guards already) and in ``partial_fit``; 0 for FTRL. With plain SGD keep
        ``learning_rate * l2 * l2_min_count`` below 1. ALS, MCMC and SGDA refuse a value
        (their penalty is per feature already, or learned). See ``docs/solvers.md``.
    init_stdev : float, default=0.01
        Standard deviation of the normal initialization of ``V``.
    fit_intercept : bool, default=True
        Learn the global bias ``w0`` (initialized from the targets).
    fit_linear : bool, default=True
        Learn the linear weights ``w``.
    tol : float or None, default=1e-4
        Training stops when the monitored metric (validation with ``early_stopping``, else the
        training metric) has not improved by ``tol`` for ``n_iter_no_change`` epochs. None
        runs all ``max_iter`` epochs (unless ``early_stopping``).
    early_stopping : "auto" or bool, default="auto"
        Monitor a validation set (``eval_set`` passed to ``fit``, else ``validation_fraction``
        of the training rows held out) and restore the parameters of its best epoch. "auto"
        (as scikit-learn's ``HistGradientBoosting*``): on when ``fit`` gets more than 10,000
        rows and the solver is SGD, AdaGrad or FTRL; off for ALS (it converges to its
        regularized optimum), MCMC (its samples are all kept) and ``partial_fit``.
    validation_fraction : float, default=0.1
        Share of the training rows held out when ``early_stopping`` has no ``eval_set``.
    n_iter_no_change : int or None, default=None
        Patience of the stopping rule, in epochs. None: the solver's, 20 for plain SGD (whose
        validation loss can stay on a plateau while the factors grow from a small start) and
        5 for the others.
    warm_start : bool, default=False
        ``fit`` continues from the current parameters instead of starting anew.
    random_state : int, RandomState instance, Generator or None, default=None
        Seeds initialization, shuffling and validation splits. With ``n_jobs=1`` the same seed
        gives the same model.
    n_jobs : int or None, default=None
        Threads for training (lock-free Hogwild over rows) and prediction; None means 1,
        -1 all cores. Multi-threaded training is not bit-for-bit reproducible.
    verbose : int, default=0
        1 shows a progress bar over epochs (sweeps for ALS and MCMC) with the training and
        validation metrics, the bar ``fmlearn train`` draws. An SGD-type epoch over more than
        262,144 rows also shows how far it has got within the epoch; the model is the same
        as without ``verbose``.

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


_MCMC_PARAMS_DOC = """
    n_kept_samples : int or None, default=None
        MCMC: the number of last sweeps whose samples are kept and averaged by ``predict``;
        the sweeps before are burn-in. None keeps all but the first 10 %.
    prior_groups : array-like of int, shape (n_columns,), "fields" or None, default=None
        MCMC: the hyper-prior group of each feature column (``X``'s columns, then those of
        the relation blocks), e.g. ``FMEncoder.fields_``: each group (user ids, item ids,
        context...) gets its own prior mean and precision, as libFM's ``-meta`` file and
        myFM's grouping. ``"fields"`` takes one group per field from ``X`` when it is
        ``FMEncoder`` output (in a ``Pipeline``, each fit's own fields; relation blocks one
        group each). None puts all features in one group.
"""
_MCMC_ATTRS_DOC = """
    w0_samples_, w_samples_, V_samples_, noise_samples_ : ndarray
        MCMC only: the kept posterior samples, shapes (n_samples,), (n_samples, n_features),
        (n_samples, n_features, n_factors) and (n_samples,) (noise precision). ``w0_``,
        ``w_`` and ``V_`` are then the chain's last sample.
"""


def _with_mcmc(doc: str) -> str:
    """The shared parameter docs plus the MCMC-only parameters and attributes."""
    attrs, n_iter = "\n    Attributes\n", "\n    n_iter_ : int\n"
    doc = doc.replace(attrs, _MCMC_PARAMS_DOC.rstrip("\n") + "\n" + attrs, 1)
    return doc.replace(n_iter, _MCMC_ATTRS_DOC.rstrip("\n") + n_iter, 1)


class _Posterior:
    """The MCMC solver's parameters and kept samples: for the estimators that have it.

    ``n_kept_samples`` and ``prior_groups`` (and the ``*_samples_`` attributes) exist only on
    :class:`FMRegressor`, :class:`FMClassifier` and :class:`fmlearn.FMOrdinalRegressor`.
    """

    _mcmc_params = {"n_kept_samples": None, "prior_groups": None}
    _mcmc_constraints = {
        "n_kept_samples": [Interval(Integral, 1, None, closed="left"), None],
        "prior_groups": ["array-like", StrOptions({"fields"}), None],
    }

    def _resolved_prior_groups(self):
        """``prior_groups`` as the MCMC solver takes it: ``"fields"`` becomes the fields that
        ``X`` carries (FMEncoder output), relation blocks one group each."""
        if not (isinstance(self.prior_groups, str) and self.prior_groups == "fields"):
            return self.prior_groups
        carried = getattr(self, "_input_fields", None)
        if carried is None:
            if self.solver != "mcmc":
                return None  # only MCMC samples per-group priors
            raise ValueError(
                "prior_groups='fields' takes one prior group per field from X when X is the "
                "output of FMEncoder (e.g. in a Pipeline after it); this X carries no fields. "
                "Pass prior_groups as an array (one group per column), e.g. FMEncoder.fields_."
            )
        return model_groups(carried, getattr(self, "_relation_widths", ()))

    def _samples(self, what: str):
        check_is_fitted(self)
        arrays = getattr(self._params, "samples", None)
        if arrays is None:
            raise AttributeError(
                f"{what} exists for solver='mcmc' only; this model was fitted with "
                f"solver={self._solver_name!r}."
            )
        return self._params

    @property
    def w0_samples_(self) -> np.ndarray:
        """Kept posterior samples of the bias, shape (n_samples,) (``solver="mcmc"``)."""
        p = self._samples("w0_samples_")
        return p.w0_samples[: p.n_samples]

    @property
    def w_samples_(self) -> np.ndarray:
        """Kept posterior samples of ``w``, shape (n_samples, n_features) (float32)."""
        p = self._samples("w_samples_")
        return p.samples[: p.n_samples, :, p.n_factors]

    @property
    def V_samples_(self) -> np.ndarray:
        """Kept posterior samples of ``V``, shape (n_samples, n_features, n_factors)."""
        p = self._samples("V_samples_")
        return p.samples[: p.n_samples, :, : p.n_factors]

    @property
    def noise_samples_(self) -> np.ndarray:
        """Kept samples of the noise precision ``alpha``, shape (n_samples,) (regression)."""
        p = self._samples("noise_samples_")
        return p.noise_samples[: p.n_samples]



class _Regressor(RegressorMixin, BaseFM):
    """Regression task hooks shared by every family's regressor."""

    _task = Regression()
    _task_name = "regression"
    _output_link = "identity"

    def _encode_y(self, y, *, reset, classes=None):
        return np.ascontiguousarray(y, dtype=np.float64)

    @available_if(BaseFM._check_partial_fit)
    def partial_fit(self, X, y, sample_weight=None, *, X_rel=None, eval_set=None,
                    eval_X_rel=None, callbacks=None, end_epoch=True):
        """One epoch over ``X`` and ``y``, continuing from the current model if fitted.

        With ``end_epoch=False`` the rows are one chunk of an epoch (streaming): they are
        trained on, but no epoch is recorded until a call with ``end_epoch=True`` (the
        default) closes it, its training metric then covering every chunk since the last
        epoch (see ``docs/out-of-core.md``)."""
        first = not self.__sklearn_is_fitted__()
        if first:
            self._validate_params()
        return self._fit(X, y, sample_weight, eval_set, callbacks, reset=first, max_iter=1,
                         X_rel=X_rel, eval_X_rel=eval_X_rel, end_epoch=end_epoch)

    def predict(self, X, X_rel=None):
        """Predicted targets, shape (n_samples,).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        X_rel : list of RelationBlock, optional
            The relation blocks of these rows, if the model was fitted with blocks.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        return self._raw_predict(X, X_rel)


class FMRegressor(RecommendMixin, _Posterior, _Regressor):
    __doc__ = (
        """Factorization machine for regression (squared loss).

    Predicts ``y(x) = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j`` in O(k * nnz(x)).
    Per-epoch metric: RMSE.
    """
        + _with_mcmc(_PARAMS_DOC)
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

    _parameter_constraints = {**BaseFM._parameter_constraints, **_Posterior._mcmc_constraints}
    __init__ = family_init({}, tail=_Posterior._mcmc_params)

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
            return super().predict(X, X_rel)
        check_is_fitted(self)
        if not hasattr(self._params, "predictive_std"):
            raise ValueError(
                f"return_std=True needs a posterior: this model was fitted with "
                f"solver={self._solver_name!r}. Fit with solver='mcmc'."
            )
        Xk = self._predict_design(X, X_rel)
        return (
            _finite_output(self._params.decision_function(Xk, self.n_jobs)),
            self._params.predictive_std(Xk, self.n_jobs),
        )


class _Classifier(ClassifierMixin, BaseFM):
    """Classification task hooks shared by every family's classifier: binary, or
    multinomial for the families with multinomial kernels (``_multiclass``)."""

    # Only the plain FM has multinomial kernels; the other families are binary.
    _multiclass = False
    _task_name = "binary"

    @property
    def _task(self):
        if self._multinomial():
            return Multinomial(len(self.classes_))
        return _BINARY

    @property
    def _output_link(self) -> str:
        # SGD fits the logistic model, ALS and MCMC the probit model.
        return getattr(self, "_link", "logit")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Multi-class is the plain FM's (multinomial, by the SGD solvers); the other families,
        # and ALS and MCMC, are binary.
        tags.classifier_tags.multi_class = self._multiclass and self._solver_trains_multinomial()
        return tags


    # ----------------------------------------------------- binary or multinomial, per fit
    def _multinomial(self) -> bool:
        """Whether the model (being) fitted is the multinomial one (> 2 classes)."""
        return len(getattr(self, "classes_", ())) > 2

    def _solver_trains_multinomial(self) -> bool:
        return self.solver in SOLVERS and supports(
            SOLVERS[self.solver], self._params_class.kind, "multinomial"
        )

    def _check_multinomial(self, labels) -> None:
        name = type(self).__name__
        listed = f"{labels.shape[0]} classes ({', '.join(map(repr, labels[:5]))}...)"
        if not self._multiclass:
            raise ValueError(
                f"Only binary classification is supported by {name}: y has {listed}. "
                "Multi-class (a multinomial FM) is available in FMClassifier; or train one "
                f"model per class with sklearn.multiclass.OneVsRestClassifier({name}())."
            )
        if not self._solver_trains_multinomial():
            raise ValueError(
                f"Only binary classification is supported with solver={self.solver!r}: it "
                f"is not supported for more than two classes yet (y has {listed}); the "
                f"multinomial FM is trained with solver= one of "
                f"{solvers_for(self._params_class.kind, 'multinomial')}. Or train one model per "
                "class with "
                f"sklearn.multiclass.OneVsRestClassifier({name}(solver={self.solver!r}))."
            )

    def _encode_y(self, y, *, reset, classes=None):
        if reset:
            labels = class_labels(type(self).__name__, y, classes)
            if labels.shape[0] > 2:
                self._check_multinomial(labels)
            self.classes_ = labels
        elif self._multinomial():
            self._check_multinomial(self.classes_)  # e.g. a warm start with solver="als"
        check_known_labels(y, self.classes_)
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

    @available_if(BaseFM._check_partial_fit)
    def partial_fit(
        self, X, y, classes=None, sample_weight=None, *, X_rel=None, eval_set=None,
        eval_X_rel=None, callbacks=None, end_epoch=True,
    ):
        """One epoch over ``X`` and ``y``; ``classes`` (every label) is needed on the first call
        when ``y`` may not show them all. Its number of labels chooses the binary or the
        multinomial model for good. ``end_epoch=False``: one chunk of an epoch, as for the
        regressors' ``partial_fit``."""
        first = not self.__sklearn_is_fitted__()
        if first:
            self._validate_params()
        return self._fit(
            X, y, sample_weight, eval_set, callbacks, reset=first, max_iter=1, classes=classes,
            X_rel=X_rel, eval_X_rel=eval_X_rel, end_epoch=end_epoch,
        )

    def decision_function(self, X, X_rel=None) -> np.ndarray:
        """Model output ``y(x)``.

        Two classes: shape (n_samples,), the log-odds of ``classes_[1]`` (SGD solvers) or its
        probit score (ALS, MCMC). More than two: shape (n_samples, n_classes), each class's FM
        score (the softmax logits). Positive exactly where ``predict`` gives ``classes_[1]``,
        in the order of ``predict_proba(X)[:, 1]``.

        With ``solver="mcmc"`` it is the probit of the posterior predictive probability,
        ``Phi^-1(predict_proba(X)[:, 1])`` (infinite where that probability is 0 or 1 in
        floating point): the posterior mean of the FM output would classify and rank some rows
        otherwise than the averaged probabilities do.
        """
        check_is_fitted(self)
        if getattr(self._params, "samples", None) is None or self._multinomial():
            return self._raw_predict(X, X_rel)
        inverse_link = ndtri if self._output_link == "probit" else logit
        return inverse_link(self.predict_proba(X, X_rel)[:, 1])

    def predict_proba(self, X, X_rel=None) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order.

        With ``solver="mcmc"``, the probabilities averaged over the posterior samples.
        """
        Xk = self._predict_design(X, X_rel)
        p = _finite_output(self._output(Xk))
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


class FMClassifier(RecommendMixin, _Posterior, _Classifier):
    __doc__ = (
        """Factorization machine for classification: binary (logistic loss) or multi-class.

    Two classes: one FM score, the log-odds of ``classes_[1]`` (any two labels; ALS and MCMC
    fit the probit model). More than two: a multinomial FM, one FM score per class with its
    own bias, weights and rank-``n_factors`` factors, and ``P(c | x) = softmax(scores)_c``;
    O(n_classes * n_factors * nnz(x)) per row, trained by ``solver="sgd"`` or ``"adagrad"``
    (see ``docs/multiclass.md``). Per-epoch metric: log loss (multinomial for more than two
    classes).
    """
        + _with_mcmc(_PARAMS_DOC)
        + """
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted.

    With more than two classes the fitted parameters have a class axis: ``w0_`` of shape
    (n_classes,), ``w_`` of shape (n_features, n_classes) and ``V_`` of shape
    (n_features, n_classes, n_factors), where ``V_[:, c]`` are the factors of class
    ``classes_[c]``.
    """
    )

    _multiclass = True
    _parameter_constraints = {**BaseFM._parameter_constraints, **_Posterior._mcmc_constraints}
    __init__ = family_init({}, tail=_Posterior._mcmc_params)


_BINARY = BinaryClassification()
