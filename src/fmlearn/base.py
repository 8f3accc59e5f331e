"""The estimator base shared by every factorization machine in fmlearn.

It owns everything that is not math: parameter constraints, input validation, the Python epoch
loop with callbacks, early stopping and progress bars, warm starts and ``partial_fit``. The
math lives in a parameter container (``fmlearn.models``) and a solver (``fmlearn.solvers``),
both chosen by name, so new models and solvers plug in without touching this loop.
"""

from __future__ import annotations

import inspect
import math
import os
import time
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from fmlearn.callbacks import EarlyStopping, EpochEnv, ProgressBar
from fmlearn.data.design import as_kernel_csr
from fmlearn.data.relation import BlockDesign, RelationBlock
from fmlearn.exceptions import TrainingDivergedError
from fmlearn.models.fm import FMParams
from fmlearn.solvers import SOLVERS, get_solver

# Refuse to allocate a model larger than this share of the memory currently available.
MEMORY_SHARE = 0.8


def family_init(extra: dict, drop=(), **defaults):
    """An ``__init__`` for a model family: BaseFM's parameters plus ``extra`` ones.

    scikit-learn reads an estimator's parameters from its ``__init__`` signature; rather than
    copy BaseFM's long signature into every family (FFM, FwFM, HOFM, the ranker), this builds
    one with ``extra`` (name -> default) inserted after ``n_factors``, BaseFM's ``defaults``
    overridden and the ``drop`` ones left out, exposed through ``__signature__``. Like every
    scikit-learn ``__init__`` it only stores the values as attributes.

    Parameters
    ----------
    extra : dict
        The family's own parameters and their defaults.
    drop : iterable of str, default=()
        BaseFM parameters the family does not have (a class attribute may then stand in).
    **defaults
        New defaults for BaseFM parameters (e.g. libffm's ``learning_rate=0.2``).
    """
    base = inspect.signature(BaseFM.__init__)
    unknown = (set(defaults) | set(drop)) - set(base.parameters)
    if unknown:
        raise TypeError(f"not BaseFM parameters: {sorted(unknown)}")
    params = [
        p.replace(default=defaults[p.name]) if p.name in defaults else p
        for p in base.parameters.values()
        if p.name not in drop
    ]
    kw_only = inspect.Parameter.KEYWORD_ONLY
    own = [inspect.Parameter(k, kw_only, default=v) for k, v in extra.items()]
    signature = base.replace(parameters=params[:2] + own + params[2:])

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name, value in bound.arguments.items():
            if name != "self":
                setattr(self, name, value)

    __init__.__signature__ = signature
    return __init__


def _rng_from(random_state) -> np.random.Generator:
    """A Generator from an estimator's ``random_state``, never touching numpy's global RNG."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    return np.random.default_rng(random_state)


def _take(X, rows):
    """Rows ``rows`` of a kernel design (CSR arrays or relation blocks)."""
    if isinstance(X, BlockDesign):
        return X.take(rows)
    m = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.n_rows, X.n_features))[rows]
    return as_kernel_csr(m)


def _available_memory() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class BaseFM(BaseEstimator):
    """Shared hyper-parameters, validation and training loop of the FM estimators.

    Not meant to be used directly; see :class:`fmlearn.FMRegressor` and
    :class:`fmlearn.FMClassifier` for the parameter documentation.
    """

    _parameter_constraints: dict = {
        "n_factors": [Interval(Integral, 0, None, closed="left")],
        "solver": [StrOptions(set(SOLVERS))],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "l1_reg_w": [Interval(Real, 0, None, closed="left")],
        "l2_reg_w": [Interval(Real, 0, None, closed="left")],
        "l2_reg_V": [Interval(Real, 0, None, closed="left")],
        "init_stdev": [Interval(Real, 0, None, closed="left")],
        "fit_intercept": ["boolean"],
        "fit_linear": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left"), None],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
        "random_state": ["random_state", np.random.Generator],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
        "n_kept_samples": [Interval(Integral, 1, None, closed="left"), None],
        "prior_groups": ["array-like", None],
    }

    # Set by subclasses: the kernel loss code and the metric reported per epoch.
    _loss: int
    _metric_name: str
    # The model family: its parameter container (see fmlearn.models), and the solvers it has
    # kernels for (None: all registered).
    _params_class = FMParams
    _solvers: frozenset | None = None

    # ----------------------------------------------------------------- model-family hooks
    def _param_columns(self) -> int:
        """Per-feature parameter columns of the model's table (before solver state)."""
        return self._params_class.n_param_columns(self.n_factors)

    def _new_params(self, n_features, rng, w0, n_state):
        """Freshly initialized parameters for ``n_features`` features."""
        return self._params_class.initialize(
            n_features, self.n_factors, self.init_stdev, rng, w0=w0, n_state=n_state
        )

    def _design(self, X, X_rel=None, *, expand=False):
        """Kernel arrays of validated ``X`` and relation blocks; families may transform rows.

        Relation blocks stay blocks (:class:`~fmlearn.data.relation.BlockDesign`) unless
        ``expand``, or the family has no blocked kernels (``_params_class`` is not FMParams).
        """
        if not X_rel:
            return as_kernel_csr(X)
        design = BlockDesign.from_blocks(X, X_rel)
        if expand or self._params_class is not FMParams:
            return design.expand()
        return design

    def _n_columns(self) -> int:
        """Model feature columns: those of ``X`` plus those of the relation blocks."""
        return self.n_features_in_ + sum(getattr(self, "_relation_widths", ()))

    def _check_relations(self, X_rel, n_rows: int, *, reset: bool):
        """Validated list of :class:`RelationBlock` (or None) for ``n_rows`` data rows."""
        if X_rel is None or (isinstance(X_rel, (list, tuple)) and len(X_rel) == 0):
            blocks = []
        elif isinstance(X_rel, RelationBlock):
            blocks = [X_rel]
        elif isinstance(X_rel, (list, tuple)) and all(
            isinstance(b, RelationBlock) for b in X_rel
        ):
            blocks = list(X_rel)
        else:
            raise TypeError(
                "X_rel must be a RelationBlock or a list of them (fmlearn.RelationBlock(indices, "
                f"X)), got {type(X_rel).__name__}."
            )
        for j, b in enumerate(blocks):
            if b.n_rows != n_rows:
                raise ValueError(
                    f"X_rel[{j}] indexes {b.n_rows} rows but X has {n_rows}: a relation block "
                    "needs one index per row of X."
                )
        widths = tuple(b.n_features for b in blocks)
        if reset:
            self._relation_widths = widths
        elif widths != tuple(getattr(self, "_relation_widths", ())):
            raise ValueError(
                f"X_rel has blocks of {list(widths)} features, the model was fitted with "
                f"{list(getattr(self, '_relation_widths', ()))}: pass blocks of the same "
                "features, in the same order."
            )
        return blocks

    def _check_warm_start(self):
        """Raise if the hyper-parameters no longer fit the parameters being continued."""
        if self._params.n_factors != self.n_factors:
            raise ValueError(
                f"n_factors changed from {self._params.n_factors} to {self.n_factors} since "
                "the model was fitted; set warm_start=False (or refit) to train a new model."
            )

    def __init__(
        self,
        n_factors=8,
        *,
        solver="adagrad",
        learning_rate=0.1,
        max_iter=100,
        l1_reg_w=0.0,
        l2_reg_w=1e-4,
        l2_reg_V=1e-4,
        init_stdev=0.1,
        fit_intercept=True,
        fit_linear=True,
        tol=1e-4,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        warm_start=False,
        random_state=None,
        n_jobs=None,
        verbose=0,
        n_kept_samples=None,
        prior_groups=None,
    ):
        self.n_factors = n_factors
        self.solver = solver
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.l1_reg_w = l1_reg_w
        self.l2_reg_w = l2_reg_w
        self.l2_reg_V = l2_reg_V
        self.init_stdev = init_stdev
        self.fit_intercept = fit_intercept
        self.fit_linear = fit_linear
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.n_kept_samples = n_kept_samples
        self.prior_groups = prior_groups

    # ----------------------------------------------------------------- fitted parameters
    @property
    def w0_(self) -> float:
        """Global bias."""
        check_is_fitted(self)
        return float(self._params.w0[0])

    @property
    def w_(self) -> np.ndarray:
        """Linear weights, shape (n_features,)."""
        check_is_fitted(self)
        return self._params.w

    @property
    def V_(self) -> np.ndarray:
        """Latent factors, shape (n_features, n_factors)."""
        check_is_fitted(self)
        return self._params.V

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

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "_params")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # ----------------------------------------------------------------- task hooks
    def _encode_y(self, y, *, reset: bool, classes=None) -> np.ndarray:
        """Targets as the kernels want them (float64); subclasses validate and encode."""
        raise NotImplementedError

    def _initial_bias(self, y: np.ndarray, sample_weight: np.ndarray) -> float:
        raise NotImplementedError

    def _metric_from_loss_sum(self, loss_sum: float, weight_sum: float) -> float:
        raise NotImplementedError

    def _metric(self, y: np.ndarray, f: np.ndarray, sample_weight: np.ndarray) -> float:
        raise NotImplementedError

    # ----------------------------------------------------------------- validation
    def _validate_X(self, X, *, reset: bool, blocks=False):
        # With relation blocks, X may have no columns: every feature can sit in the blocks.
        return validate_data(
            self, X, reset=reset, accept_sparse=True, dtype=[np.float64, np.float32],
            ensure_min_features=0 if blocks else 1,
        )

    def _validate_Xy(self, X, y, *, reset: bool, blocks=False):
        return validate_data(
            self,
            X,
            y,
            reset=reset,
            accept_sparse=True,
            dtype=[np.float64, np.float32],
            y_numeric=self._loss == 0,
            ensure_min_features=0 if blocks else 1,
        )

    def _check_sample_weight(self, sample_weight, X) -> np.ndarray:
        sw = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        if sample_weight is not None and not np.isfinite(sw).all():
            raise ValueError("sample_weight contains NaN or infinity; give finite weights.")
        if sw.sum() <= 0:
            raise ValueError("sample_weight sums to zero: at least one row needs weight > 0.")
        return sw

    def _validation_data(self, eval_set, eval_X_rel, X, y, sw, rng):
        """(train, valid) parts as (X, y, sample_weight, X_rel): from ``eval_set``, or a split
        of the training rows when ``early_stopping`` (``X`` is then a design)."""
        if eval_set is not None:
            if isinstance(eval_set, tuple):
                eval_set = [eval_set]
            ok = isinstance(eval_set, list) and len(eval_set) == 1
            if not ok or len(eval_set[0]) not in (2, 3):
                raise ValueError(
                    "eval_set must be a tuple (X_valid, y_valid[, sample_weight_valid]) or a "
                    "list holding one such tuple."
                )
            Xv, yv, *rest = eval_set[0]
            Xv, yv = self._validate_Xy(Xv, yv, reset=False, blocks=bool(eval_X_rel))
            swv = self._check_sample_weight(rest[0] if rest else None, Xv)
            rel = self._check_relations(eval_X_rel, Xv.shape[0], reset=False)
            return (X, y, sw), (self._design(Xv, rel), self._encode_y(yv, reset=False), swv)
        if eval_X_rel is not None:
            raise ValueError("eval_X_rel was given without eval_set.")
        if not self.early_stopping:
            return (X, y, sw), None
        idx = np.arange(X.n_rows)
        stratify = y if self._loss == 1 else None
        try:
            tr, va = train_test_split(
                idx,
                test_size=self.validation_fraction,
                random_state=int(rng.integers(np.iinfo(np.int32).max)),
                stratify=stratify,
            )
        except ValueError as e:
            raise ValueError(
                f"cannot hold out validation_fraction={self.validation_fraction} of "
                f"{X.shape[0]} rows for early stopping ({e}); pass eval_set, use a larger "
                "validation_fraction or set early_stopping=False."
            ) from None
        return (_take(X, tr), y[tr], sw[tr]), (_take(X, va), y[va], sw[va])

    def _check_model_memory(self, n_features: int, solver) -> None:
        n_cols = self._param_columns()
        nbytes = n_features * (n_cols + solver.state_columns(n_cols)) * 4
        nbytes += solver.extra_bytes(n_features, self.n_factors)
        available = _available_memory()
        if available is not None and nbytes > MEMORY_SHARE * available:
            raise ValueError(
                f"X has {n_features} columns, so the model would need {_fmt_bytes(nbytes)} "
                "for its parameters (n_features x a row of float32 parameters and solver state), "
                f"more than the {_fmt_bytes(available)} of memory available. Parameters follow "
                "the number of columns, not the features used: re-index the columns to those "
                "that occur (e.g. np.unique on the indices), hash them into a smaller space "
                "(sklearn.feature_extraction.FeatureHasher), or lower n_factors."
            )

    # ----------------------------------------------------------------- training
    def _fit(self, X, y, sample_weight, eval_set, callbacks, *, reset, max_iter, classes=None,
             X_rel=None, eval_X_rel=None):
        solver_cls = get_solver(self.solver)
        if self._solvers is not None and self.solver not in self._solvers:
            raise ValueError(
                f"{type(self).__name__} has no solver={self.solver!r}; use one of "
                f"{sorted(self._solvers)} (ALS and MCMC are available on FMRegressor and "
                "FMClassifier)."
            )
        stoppable = getattr(solver_cls, "stoppable", True)
        if self.early_stopping and not stoppable:
            raise ValueError(
                f"early_stopping does not apply to solver={self.solver!r}: its iterations are "
                "posterior samples, all of which are averaged. Set early_stopping=False (pass "
                "eval_set to follow the validation metric in history_)."
            )
        X, y = self._validate_Xy(X, y, reset=reset, blocks=bool(X_rel))
        y = self._encode_y(y, reset=reset, classes=classes)
        sw = self._check_sample_weight(sample_weight, X)
        blocks = self._check_relations(X_rel, X.shape[0], reset=reset)
        solver = solver_cls.from_estimator(self, self._loss)
        if reset:
            self._rng = _rng_from(self.random_state)
        accepts_blocks = getattr(solver_cls, "accepts_blocks", False)
        design = self._design(X, blocks, expand=not accepts_blocks)
        (Xk, y, sw), valid = self._validation_data(eval_set, eval_X_rel, design, y, sw, self._rng)
        n_features = self._n_columns()
        if reset:
            self._check_model_memory(n_features, solver)
            self._params = self._new_params(
                n_features,
                self._rng,
                w0=self._initial_bias(y, sw) if self.fit_intercept else 0.0,
                n_state=solver_cls.state_columns(self._param_columns()),
            )
            self._params = solver.init_params(self._params)
            self._solver_state, self._solver_name = solver.init_state(self._params), self.solver
            self.history_ = {"epoch": [], f"train_{self._metric_name}": [], "time": []}
            if valid is not None:
                self.history_[f"valid_{self._metric_name}"] = []
            self._epochs_done = 0
        else:
            self._check_warm_start()
            self._params = solver.init_params(self._params)
        if self._solver_name != self.solver:
            # Warm start with another solver: its state (e.g. AdaGrad history) starts afresh.
            self._params = solver.init_params(
                self._params.with_state(solver_cls.state_columns(self._param_columns()))
            )
            self._solver_state, self._solver_name = solver.init_state(self._params), self.solver
        self._link = getattr(solver_cls, "classification_link", "logit")
        if valid is not None:
            Xv_k, yv, swv = valid
            self.history_.setdefault(f"valid_{self._metric_name}", [])
        data = solver.prepare(Xk, y, sw)

        stoppers = []
        if max_iter > 1 and self.early_stopping:
            stoppers.append(
                EarlyStopping(self.n_iter_no_change, self.tol or 0.0, True, monitor="valid")
            )
        elif max_iter > 1 and self.tol is not None and stoppable:
            stoppers.append(EarlyStopping(self.n_iter_no_change, self.tol, False, monitor="train"))
        weight_sum = float(sw.sum())

        def epoch_fn():
            loss_sum = solver.run_epoch(
                self._params, self._solver_state, data, self._rng, self.n_jobs
            )
            return self._metric_from_loss_sum(loss_sum, weight_sum)

        def valid_fn():
            output = self._output(Xv_k)
            return self._metric(yv, output, swv), output

        bar = ProgressBar(max_iter, type(self).__name__) if self.verbose else None
        return self._epoch_loop(
            max_iter, self._metric_name, epoch_fn, None if valid is None else valid_fn,
            stoppers, callbacks, bar,
        )

    def _epoch_loop(self, max_iter, metric_name, epoch_fn, valid_fn, stoppers, callbacks, bar):
        """Run up to ``max_iter`` epochs with history, callbacks and stopping; restore the best.

        ``epoch_fn()`` trains one epoch and returns its training metric; ``valid_fn()``, if
        given, returns the validation metric and output. ``stoppers`` come first among the
        callbacks; the first one's best parameters, if any, are restored at the end.
        """
        user_callbacks = list(callbacks or [])
        start = time.perf_counter()
        epoch = 0
        try:
            for epoch in range(1, max_iter + 1):
                train = epoch_fn()
                if not math.isfinite(train):
                    self._raise_diverged(epoch)
                valid_metric, valid_output = valid_fn() if valid_fn is not None else (None, None)
                elapsed = time.perf_counter() - start
                self._record(epoch, train, valid_metric, elapsed)
                env = EpochEnv(
                    self, epoch, max_iter, metric_name, train, valid_metric, elapsed,
                    valid_output,
                )
                if bar is not None:
                    bar(env)
                # Every callback sees every epoch, so no short-circuit.
                stop = [bool(cb(env)) for cb in stoppers + user_callbacks]
                if any(stop):
                    break
        finally:
            if bar is not None:
                bar.close()
        self.n_iter_ = epoch
        best = stoppers[0] if stoppers else None
        if best is not None and best.best_params is not None:
            self._params = best.best_params
            self.best_iteration_ = best.best_epoch
        elif valid_fn is not None:
            self.best_iteration_ = epoch
        if not self._params.all_finite():
            self._raise_diverged(epoch)
        return self

    @property
    def _history_names(self) -> tuple[str, str]:
        """The names of the training and validation metrics in ``history_``."""
        return self._metric_name, self._metric_name

    def _record(self, epoch, train, valid, elapsed):
        self._epochs_done += 1
        h = self.history_
        train_name, valid_name = self._history_names
        h["epoch"].append(self._epochs_done)
        h[f"train_{train_name}"].append(train)
        h["time"].append(elapsed)
        if valid is not None:
            h[f"valid_{valid_name}"].append(valid)

    def _raise_diverged(self, epoch):
        del self._params  # never leave a broken model behind
        raise TrainingDivergedError(
            f"training diverged at epoch {epoch}: the {self._metric_name} became NaN or "
            f"infinite with solver={self.solver!r}, learning_rate={self.learning_rate}. Use a "
            "smaller learning_rate, more regularization (l2_reg_w, l2_reg_V), a smaller "
            "init_stdev, scale large feature values, or solver='adagrad'."
        )

    def fit(self, X, y, sample_weight=None, *, X_rel=None, eval_set=None, eval_X_rel=None,
            callbacks=None):
        """Train the model on ``X`` and ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Any scipy sparse format (converted once to CSR, never densified); float32 and
            float64 data are used as given.
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights scaling each row's loss.
        X_rel : list of RelationBlock, default=None
            Relation blocks completing the rows of ``X`` (see :class:`fmlearn.RelationBlock`):
            the model's features are ``X``'s columns followed by each block's. ALS and MCMC
            sweep blocks at the cost of their unique rows; other solvers expand them. ``X``
            may then have zero columns.
        eval_set : tuple (X_valid, y_valid[, sample_weight_valid]) or list of one, default=None
            Validation data scored after every epoch (into ``history_``). With
            ``early_stopping=True`` it is what early stopping monitors (instead of holding out
            ``validation_fraction`` of ``X``), and the best epoch's parameters are restored.
            For ``solver="mcmc"`` the score is that of the posterior mean so far.
        eval_X_rel : list of RelationBlock, default=None
            Relation blocks of the ``eval_set`` rows.
        callbacks : list of callable, default=None
            Called after every epoch with an :class:`fmlearn.callbacks.EpochEnv`; a callback
            returning True stops training.

        Returns
        -------
        self
        """
        self._validate_params()
        reset = not (self.warm_start and self.__sklearn_is_fitted__())
        return self._fit(
            X, y, sample_weight, eval_set, callbacks, reset=reset, max_iter=self.max_iter,
            X_rel=X_rel, eval_X_rel=eval_X_rel,
        )

    def _check_partial_fit(self):
        if not getattr(get_solver(self.solver), "stoppable", True):
            raise ValueError(
                f"partial_fit is not available for solver={self.solver!r}: its samples are kept "
                "from a window of a fixed number of sweeps. Use fit (with warm_start=True to "
                "continue the chain)."
            )

    def _predict_design(self, X, X_rel):
        check_is_fitted(self)
        X = self._validate_X(X, reset=False, blocks=bool(X_rel))
        blocks = self._check_relations(X_rel, X.shape[0], reset=False)
        return self._design(X, blocks)

    def _output(self, Xk, link=None) -> np.ndarray:
        """Mean model output on a design: ``link(y(x))``, averaged over posterior samples."""
        return self._params.mean_output(Xk, link or self._output_link, self.n_jobs)

    def _raw_predict(self, X, X_rel=None) -> np.ndarray:
        """Model output ``y(x)`` for each row, shape (n_samples,)."""
        Xk = self._predict_design(X, X_rel)
        return self._params.decision_function(Xk, self.n_jobs)

    def field_interactions(self, fields=None, X=None) -> np.ndarray:
        """How strongly each pair of fields interacts: an (n_fields, n_fields) matrix.

        Entry (F, G) is the root mean square of the learned pairwise weights between the
        features of fields F and G (see :mod:`fmlearn.inspection`); print it, or plot it with
        ``matplotlib.pyplot.imshow``.

        Parameters
        ----------
        fields : array-like of int, shape (n_features,), optional
            Field of each feature, e.g. ``FMEncoder.fields_``. Field-aware models default to
            their own ``fields_``.
        X : {array-like, sparse matrix}, optional
            Restrict to features that occur in ``X`` (pass the training data: features never
            seen keep their random initial factors).

        Returns
        -------
        ndarray of shape (n_fields, n_fields)
        """
        from fmlearn.inspection import field_interaction_matrix

        check_is_fitted(self)
        if fields is None:
            fields = getattr(self._params, "fields", None)
        if fields is None:
            raise ValueError("pass fields=: the field of each feature (e.g. FMEncoder.fields_)")
        fields = np.asarray(fields)
        if fields.shape != (self.n_features_in_,):
            raise ValueError(
                f"fields must have one entry per feature ({self.n_features_in_}), got "
                f"shape {fields.shape}"
            )
        used = None
        if X is not None:
            Xk = self._design(self._validate_X(X, reset=False))
            used = np.bincount(Xk.indices, minlength=self.n_features_in_) > 0
        return field_interaction_matrix(self._params, fields, used)

    def save(self, path) -> None:
        """Save the fitted model to ``path`` (see :func:`fmlearn.save`)."""
        from fmlearn.io import save

        save(self, path)
