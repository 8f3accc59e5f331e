"""The estimator base shared by every factorization machine in fmlearn.

It is scikit-learn plumbing only: parameter constraints, input validation, validation splits,
warm starts and ``partial_fit``, the memory guard. The loop is :func:`fmlearn.engine.train`,
the target's math a task (:mod:`fmlearn.tasks`), the parameters a container
(:mod:`fmlearn.models`) and the updates a solver (:mod:`fmlearn.optim`), so new models,
tasks and solvers plug in without touching this module.
"""

from __future__ import annotations

import inspect
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from fmlearn._compile_notice import notice_on_compile
from fmlearn._memory import available_memory, fmt_bytes
from fmlearn.callbacks import ProgressBar
from fmlearn.data.cache import as_text_files, replace_files
from fmlearn.data.design import as_kernel_csr
from fmlearn.data.fielded import carried_fields, encode_eval_set
from fmlearn.data.relation import BlockDesign, RelationBlock
from fmlearn.data.sources import Batch, InMemorySource
from fmlearn.engine import History, stopping_rule, train, validate_over
from fmlearn.exceptions import TrainingDivergedError
from fmlearn.models.fm import FMParams
from fmlearn.optim import SOLVERS, get_solver, hyper, solvers_for, supports
from fmlearn.tasks import Regression

# Refuse to allocate a model larger than this share of the memory currently available.
MEMORY_SHARE = 0.8
# Rough cold compile time of a first fit's kernels on 2 cores (benchmarks/startup.py).
FIT_COMPILE_S = 3
# early_stopping="auto" turns early stopping on above this many training rows (as
# scikit-learn's HistGradientBoosting*): enough rows that holding out validation_fraction of
# them costs little and the validation metric is stable.
EARLY_STOPPING_AUTO_ROWS = 10_000


def family_init(extra: dict, drop=(), tail=None, **defaults):
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
    tail : dict, optional
        Parameters (name -> default) appended after BaseFM's, e.g. the MCMC-only ones of the
        estimators that have an MCMC solver.
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
    last = [inspect.Parameter(k, kw_only, default=v) for k, v in (tail or {}).items()]
    return init_from_signature(base.replace(parameters=params[:2] + own + params[2:] + last))


def init_from_signature(signature: inspect.Signature):
    """A scikit-learn ``__init__`` that stores each argument of ``signature`` as an attribute,
    exposed through ``__signature__`` so that ``get_params`` finds the parameters."""

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
    return as_kernel_csr(m, check=False)


def _finite_output(out: np.ndarray) -> np.ndarray:
    """``out`` (predictions, one row per input row), refusing NaN or infinite ones.

    Inputs are finite and within float32's range (:mod:`fmlearn.data.validation`), yet large
    values can still overflow the model's float32 sums (to inf, then NaN): say so rather than
    return them.
    """
    finite = np.isfinite(out)
    if not finite.all():
        rows = ~finite.reshape(finite.shape[0], -1).all(axis=1)
        r = int(np.flatnonzero(rows)[0])
        raise ValueError(
            f"the model output of row {r} overflowed ({int(rows.sum())} rows in all): its "
            "feature values are too large for the model's float32 arithmetic. Rescale large "
            "feature values (e.g. log1p or sklearn.preprocessing.MaxAbsScaler), as for "
            "training."
        )
    return out


def _available_memory() -> int | None:
    """Bytes the process may still allocate: free RAM, RLIMIT_AS and the memory cgroup."""
    return available_memory()


def _name_of(files) -> str:
    """The first file of ``TextFiles``, or a cache's folder, for messages."""
    paths = getattr(files, "path_list", None)
    return paths[0] if paths else str(getattr(files, "folder", files))


def class_labels(name: str, y, classes=None) -> np.ndarray:
    """A classifier's sorted labels at a fresh fit: those of ``y``, or ``classes`` when given
    (``partial_fit``); at least two, else a clear error naming the estimator ``name``."""
    check_classification_targets(y)
    labels = np.unique(y) if classes is None else np.unique(np.asarray(classes))
    if labels.shape[0] < 2:
        what = f"only one class ({labels[0]!r})" if labels.shape[0] else "no class"
        raise ValueError(
            f"{name} needs at least 2 classes; y has {what}. Check the target column (and "
            "pass every label as classes= to partial_fit)."
        )
    return labels


def check_known_labels(y, classes, unknown=None) -> None:
    """Refuse a label of ``y`` outside the fitted ``classes`` (``unknown``: the rows' mask
    when the caller has it), naming the first such row."""
    if unknown is None:
        unknown = ~np.isin(y, classes)
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise ValueError(
            f"y has label {y[row]!r} (row {row}) that is not one of the classes "
            f"{list(classes)} the model was fitted with."
        )


def cache_labels(cache, encode_y, *, reset: bool, classes=None):
    """Encode a cache's labels as ``fit`` encodes ``y`` (classes, targets checked), from the
    manifest's label summary, without a pass over the rows; returns the summary or None.

    Past the summary's distinct labels (a regression target), only their mean is seen."""
    labels = cache.labels()
    task_y = labels[0] if labels is not None else None
    if task_y is not None or reset:
        if task_y is None:
            task_y = np.array([cache.manifest["label_sum"] / cache.n_rows])
        encode_y(task_y, reset=reset, classes=classes)
    return labels


def cached_eval_source(eval_set, files, transform, n_features):
    """``fit(path)``'s validation data: ``eval_set`` (a path or ``TextFiles``; None gives None)
    through its block cache as an unshuffled :class:`~fmlearn.data.cache.CachedSource`, in
    the training files' cache folder unless it names its own."""
    from fmlearn.data.cache import CachedSource, open_cache

    if eval_set is None:
        return None
    vfiles = as_text_files(eval_set)
    if vfiles is None:
        raise ValueError("with fit(path), eval_set must be a path (or TextFiles) too.")
    if getattr(vfiles, "cache_dir", True) is None:
        vfiles = replace_files(vfiles, files)
    vcache = open_cache(vfiles)
    if vcache.n_features > n_features:
        raise ValueError(
            f"the validation data {_name_of(vfiles)} has feature index "
            f"{vcache.n_features - 1}, beyond the {n_features} features of the training data."
        )
    return CachedSource(vcache, transform, n_features=n_features, shuffle=False)


def cache_initial_bias(cache, task, encode_y):
    """The task's initial bias of a cache's rows: of the rows themselves for a one-block
    cache (exactly as the same rows in memory), else of the manifest's label summary (its
    distinct labels and counts; past those, their mean)."""
    if cache.n_blocks == 1:
        _, _, _, yb, wb = cache.read_block(0)
        wb = np.ones(yb.shape[0]) if wb is None else wb
        return task.initial_bias(encode_y(yb, reset=False), wb)
    labels = cache.labels()
    if labels is not None:
        return task.initial_bias(encode_y(labels[0], reset=False), labels[1].astype(np.float64))
    return task.initial_bias(np.array([cache.manifest["label_sum"] / cache.n_rows]), np.ones(1))


class _StreamProbe(InMemorySource):
    """Stands for a file stream in a solver's ``prepare``, to learn before reading any data
    whether the solver can train from one (it fails on ``in_memory()``)."""

    def __init__(self):
        pass

    weight_sum = 1.0

    def in_memory(self):
        raise TypeError(
            "solver='als' and 'mcmc' sweep by column and need every row in memory at once; "
            "use solver='sgd', 'adagrad' or 'ftrl', or read the file with "
            "fmlearn.data.textio.read_libfm / read_ffm and fit the matrix."
        )


class BaseFM(BaseEstimator):
    """Shared hyper-parameters, validation and training loop of the FM estimators.

    Not meant to be used directly; see :class:`fmlearn.FMRegressor` and
    :class:`fmlearn.FMClassifier` for the parameter documentation.
    """

    _parameter_constraints: dict = {
        "n_factors": [Interval(Integral, 0, None, closed="left")],
        "solver": [StrOptions(set(SOLVERS))],
        "learning_rate": [Interval(Real, 0, None, closed="neither"), None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "l1_reg_w": [Interval(Real, 0, None, closed="left")],
        "l2_reg_w": [Interval(Real, 0, None, closed="left"), None],
        "l2_reg_V": [Interval(Real, 0, None, closed="left"), None],
        "l2_min_count": [Interval(Real, 0, None, closed="left"), None],
        "init_stdev": [Interval(Real, 0, None, closed="left")],
        "fit_intercept": ["boolean"],
        "fit_linear": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left"), None],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), None],
        "warm_start": ["boolean"],
        "random_state": ["random_state", np.random.Generator],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
    }

    # Set by subclasses: the learning task (fmlearn.tasks), as an attribute or a property, and
    # its name as solvers declare what they train (fmlearn.optim.supports): "regression",
    # "binary", "ordinal" or "pairwise" (a classifier fitted on > 2 classes: "multinomial").
    _task: object
    _task_name: str
    # The model family: its parameter container (see fmlearn.models); its ``kind`` is the
    # family name solvers declare.
    _params_class = FMParams
    # Per solver name, a family's own values for hyper-parameters left at None (over the
    # solver classes' ``defaults``; see fmlearn.optim.hyper).
    _solver_defaults: dict = {}

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
        ``expand``, or the family's container has no blocked kernels (``blocked``).
        """
        if not X_rel:
            return as_kernel_csr(X)
        design = BlockDesign.from_blocks(X, X_rel)
        if expand or not self._params_class.blocked:
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
        learning_rate=None,
        max_iter=100,
        l1_reg_w=0.0,
        l2_reg_w=None,
        l2_reg_V=None,
        l2_min_count=None,
        init_stdev=0.01,
        fit_intercept=True,
        fit_linear=True,
        tol=1e-4,
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=None,
        warm_start=False,
        random_state=None,
        n_jobs=None,
        verbose=0,
    ):
        self.n_factors = n_factors
        self.solver = solver
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.l1_reg_w = l1_reg_w
        self.l2_reg_w = l2_reg_w
        self.l2_reg_V = l2_reg_V
        self.l2_min_count = l2_min_count
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

    @property
    def reg_w_(self) -> np.ndarray:
        """``solver="sgda"``: the learned L2 strength of the linear weights, one per group."""
        return self._sgda_state("sgda_reg_w")

    @property
    def reg_V_(self) -> np.ndarray:
        """``solver="sgda"``: the learned L2 strengths of the factors, (n_groups, n_factors)."""
        return self._sgda_state("sgda_reg_V")

    def _sgda_state(self, name):
        check_is_fitted(self)
        state = getattr(self, "_solver_state", None) or {}
        if name not in state:
            raise AttributeError(f"only a model trained with solver='sgda' has learned "
                                 f"regularization (this one: solver={self._solver_name!r})")
        return state[name].copy()

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

    @property
    def _metric_name(self) -> str:
        return self._task.metric

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
            y_numeric=isinstance(self._task, Regression),
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
        if not (self._stopping_early or get_solver(self.solver).needs_validation):
            return (X, y, sw), None
        idx = np.arange(X.n_rows)
        stratify = y if self._task.stratify else None
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
        nbytes += self._extra_model_bytes(n_features)
        available = _available_memory()
        if available is not None and nbytes > MEMORY_SHARE * available:
            raise ValueError(
                f"X has {n_features} columns, so the model would need {fmt_bytes(nbytes)} "
                "for its parameters (n_features x a row of float32 parameters and solver state), "
                f"more than the {fmt_bytes(available)} of memory available. Parameters follow "
                "the number of columns, not the features used: re-index the columns to those "
                "that occur (e.g. np.unique on the indices), hash them into a smaller space "
                "(sklearn.feature_extraction.FeatureHasher), or lower n_factors."
            )

    def _extra_model_bytes(self, n_features: int) -> int:
        """Memory a fit allocates beside the parameter table (a family's field tables)."""
        return 0

    # ----------------------------------------------------------------- training
    def _solver_class(self):
        """The registered solver class of ``solver``, checked against this family and task."""
        solver_cls = get_solver(self.solver)
        family, task = self._params_class.kind, self._task_name
        if not supports(solver_cls, family, task):
            scope = [
                f"{what}: {', '.join(sorted(names))}"
                for what, names in (("models", solver_cls.families), ("tasks", solver_cls.tasks))
                if names is not None
            ]
            raise ValueError(
                f"{type(self).__name__} has no solver={self.solver!r} ({self.solver!r} trains "
                f"{'; '.join(scope)} only); use one of {solvers_for(family, task)}."
            )
        if self.early_stopping != "auto" and self.early_stopping and not solver_cls.stoppable:
            raise ValueError(
                f"early_stopping does not apply to solver={self.solver!r}: its iterations are "
                "posterior samples, all of which are averaged. Set early_stopping=False (pass "
                "eval_set to follow the validation metric in history_)."
            )
        return solver_cls

    def _resolve_early_stopping(self, n_rows: int, max_iter: int, solver_cls) -> bool:
        """Whether this fit stops early; sets ``_stopping_early``.

        ``early_stopping="auto"`` is on for more than ``EARLY_STOPPING_AUTO_ROWS`` training
        rows (positives for the ranker) with the stochastic solvers (SGD, AdaGrad, FTRL), and
        off for ALS and MCMC (``auto_early_stopping``: ALS converges to its regularized
        optimum, MCMC cannot stop) and for one-epoch calls (``partial_fit``, ``max_iter=1``),
        which have nothing to stop.
        """
        if self.early_stopping == "auto":
            on = (solver_cls.stoppable and getattr(solver_cls, "auto_early_stopping", True)
                  and max_iter > 1 and n_rows > EARLY_STOPPING_AUTO_ROWS)
        else:
            on = bool(self.early_stopping)
        self._stopping_early = on
        return on

    def _start(self, n_features, solver_cls, solver, w0) -> None:
        """Fresh parameters, solver state and history for a new fit."""
        self._check_model_memory(n_features, solver)
        self._params = self._new_params(
            n_features, self._rng, w0=w0,
            n_state=solver_cls.state_columns(self._param_columns()),
        )
        self._params = solver.init_params(self._params)
        self._solver_state, self._solver_name = solver.init_state(self._params), self.solver
        self.history_ = {}
        self._epochs_done = 0
        self._open_epoch = None  # partial_fit(end_epoch=False) sums of an earlier model

    def _continue(self, solver_cls, solver) -> None:
        """Continue training the fitted parameters (warm start, ``partial_fit``) with
        ``solver``; another solver than the last one starts its state afresh."""
        self._check_warm_start()
        self._params = solver.init_params(self._params)
        if self._solver_name != self.solver:
            self._params = solver.init_params(
                self._params.with_state(solver_cls.state_columns(self._param_columns()))
            )
            self._solver_state, self._solver_name = solver.init_state(self._params), self.solver

    def _fit(self, X, y, sample_weight, eval_set, callbacks, *, reset, max_iter, classes=None,
             X_rel=None, eval_X_rel=None, end_epoch=True):
        files = as_text_files(X)
        if files is not None:
            return self._fit_files(files, y, sample_weight, eval_set, callbacks, reset=reset,
                                   max_iter=max_iter, classes=classes, X_rel=X_rel,
                                   end_epoch=end_epoch)
        # Fields carried by FMEncoder output (a Pipeline's fold), and a raw-table eval_set
        # encoded by the same encoder: see fmlearn.data.fielded.
        self._input_fields = carried_fields(X)
        eval_set = encode_eval_set(X, eval_set)
        solver_cls = self._solver_class()
        X, y = self._validate_Xy(X, y, reset=reset, blocks=bool(X_rel))
        y = self._encode_y(y, reset=reset, classes=classes)
        sw = self._check_sample_weight(sample_weight, X)
        blocks = self._check_relations(X_rel, X.shape[0], reset=reset)
        task = self._task
        solver = solver_cls.from_estimator(self, task.loss)
        if reset:
            self._rng = _rng_from(self.random_state)
        design = self._design(X, blocks, expand=not solver_cls.accepts_blocks)
        self._resolve_early_stopping(X.shape[0], max_iter, solver_cls)
        (Xk, y, sw), valid = self._validation_data(eval_set, eval_X_rel, design, y, sw, self._rng)
        if reset:
            fit_bias = self.fit_intercept or task.task_intercepts
            w0 = task.initial_bias(y, sw) if fit_bias else 0.0
            self._start(self._n_columns(), solver_cls, solver, w0)
        else:
            self._continue(solver_cls, solver)
        self._link = solver_cls.classification_link
        return self._fit_source(
            solver, solver_cls, InMemorySource(Xk, y, sw),
            None if valid is None else InMemorySource(*valid), max_iter, callbacks,
            end_epoch=end_epoch,
        )

    def _fit_source(self, solver, solver_cls, source, valid, max_iter, callbacks, *,
                    end_epoch=True):
        """Train on a :class:`~fmlearn.data.sources.BatchSource` (in memory or a stream),
        scoring ``valid`` (a source, or None) after each epoch.

        ``end_epoch=False`` (``partial_fit`` of a chunk that is part of an epoch): one pass
        over the chunk, its loss added to the open epoch's, no epoch recorded; the next call
        with ``end_epoch=True`` closes the epoch with the training metric of all its chunks.
        """
        task = self._task
        # What l2_min_count="auto" resolves by (fmlearn.optim.sgd.SGDSolver.resolved_min_count):
        # the floor where nothing else keeps rare features from overfitting.
        solver.auto_floor = not self._stopping_early and end_epoch and max_iter > 1
        data = solver.prepare(source, valid)
        weight_sum = source.weight_sum
        if not end_epoch:
            loss_sum = solver.run_epoch(self._params, self._solver_state, data, self._rng,
                                        self.n_jobs)
            if not (np.isfinite(loss_sum) and self._params.all_finite()):
                raise self._diverged(self._epochs_done + 1)
            opened = getattr(self, "_open_epoch", None) or [0.0, 0.0]
            self._open_epoch = [opened[0] + float(loss_sum), opened[1] + float(weight_sum)]
            return self
        opened = getattr(self, "_open_epoch", None) or [0.0, 0.0]
        self._open_epoch = None

        def epoch():
            nonlocal opened
            loss_sum = solver.run_epoch(
                self._params, self._solver_state, data, self._rng, self.n_jobs
            ) + opened[0]
            total, opened = weight_sum + opened[1], [0.0, 0.0]
            return task.metric_from_loss_sum(loss_sum, total)

        validate = None if valid is None else validate_over(valid, self._output, task)
        return self._train(epoch, validate, max_iter, callbacks, stoppable=solver_cls.stoppable,
                           solver=solver)

    def _fit_files(self, files, y, sample_weight, eval_set, callbacks, *, reset, max_iter,
                   classes, X_rel, end_epoch):
        """``fit(path)``: train from text files through their block cache
        (:mod:`fmlearn.data.cache`); ``eval_set`` may be a file too."""
        from fmlearn.data.cache import CachedSource, open_cache

        if y is not None or sample_weight is not None or X_rel:
            raise ValueError(
                "fit(path) reads the labels from the file: pass no y, sample_weight or X_rel "
                "(the text formats carry no weights)."
            )
        solver_cls = self._solver_class()
        # A solver that needs every row in memory (ALS, MCMC) fails before the first pass.
        probe = solver_cls.from_estimator(self, self._task.loss)
        try:
            probe.prepare(_StreamProbe(), None if eval_set is None else _StreamProbe())
        except TypeError as e:
            raise ValueError(f"fit(path) streams the rows from disk: {e}") from None
        cache = open_cache(files)
        self._fit_rows = cache.n_rows
        n_features = cache.n_features
        if reset:
            self.n_features_in_ = n_features
            self.__dict__.pop("feature_names_in_", None)
            self._relation_widths = ()
        elif n_features > self.n_features_in_:
            raise ValueError(
                f"{_name_of(files)} has feature index {n_features - 1}; the model was "
                f"fitted with {self.n_features_in_} features. Refit (warm_start=False), or "
                "give the first fit all the columns."
            )
        n_features = self.n_features_in_
        self._input_fields = cache.fields()
        cache_labels(cache, self._encode_y, reset=reset, classes=classes)
        task = self._task
        solver = solver_cls.from_estimator(self, task.loss)
        if reset:
            self._rng = _rng_from(self.random_state)
        self._resolve_early_stopping(cache.n_rows, max_iter, solver_cls)
        if eval_set is None and self._stopping_early:
            if self.early_stopping != "auto":
                raise ValueError(
                    "early_stopping=True with fit(path) needs a validation file: pass "
                    "eval_set=path (the rows of a file are not split)."
                )
            self._stopping_early = False

        def transform(X, yb, wb):
            return Batch(self._design(X), self._encode_y(yb, reset=False), wb)

        source = CachedSource(cache, transform, n_features=n_features)
        valid = cached_eval_source(eval_set, files, transform, n_features)
        if reset:
            fit_bias = self.fit_intercept or task.task_intercepts
            w0 = cache_initial_bias(cache, task, self._encode_y) if fit_bias else 0.0
            self._start(n_features, solver_cls, solver, w0)
        else:
            self._continue(solver_cls, solver)
        self._link = solver_cls.classification_link
        return self._fit_source(solver, solver_cls, source, valid, max_iter, callbacks,
                                end_epoch=end_epoch)

    def _train(self, epoch, validate, max_iter, callbacks, *, stoppable=True, solver=None):
        """Run :func:`fmlearn.engine.train` with this estimator's stopping rule, progress bar
        and ``history_``; keep the best epoch's parameters when early stopping restores them.
        A ``solver`` with a ``progress`` hook (the SGD-type ones) reports long epochs' rows to
        the bar too."""
        task = self._task
        history = History(self.history_, task.metric, self._metric_name,
                          epochs_done=self._epochs_done, validating=validate is not None)
        stoppers = stopping_rule(
            max_iter, early_stopping=self._stopping_early, tol=self.tol,
            n_iter_no_change=hyper(self, "n_iter_no_change", get_solver(self.solver)) or 5,
            validating=validate is not None,
            stoppable=stoppable, mode="max" if task.higher_is_better else "min",
        )
        bar = ProgressBar(max_iter, type(self).__name__, task.metric) if self.verbose else None
        if bar is not None and hasattr(solver, "progress"):
            solver.progress = bar.rows
        try:
            # A first fit with an empty numba cache compiles its epoch kernel: say so.
            with notice_on_compile(seconds=FIT_COMPILE_S):
                result = train(
                    epoch, max_iter=max_iter, metric=self._metric_name, validate=validate,
                    stoppers=stoppers, callbacks=callbacks, progress=bar, history=history,
                    snapshot=lambda: self._params.copy(), diverged=self._diverged,
                    estimator=self,
                )
        finally:
            self._epochs_done = history.epochs_done
        self.n_iter_ = result.n_iter
        if result.best_snapshot is not None:
            self._params = result.best_snapshot
        if result.best_epoch is not None:
            self.best_iteration_ = result.best_epoch
        if not self._params.all_finite():
            raise self._diverged(result.n_iter)
        return self

    def _diverged(self, epoch) -> Exception:
        """The error for a fit that diverged at ``epoch``; never leaves a broken model behind."""
        del self._params
        # Advice that applies to this fit: a learning rate only where the solver has one, and
        # AdaGrad only to those not on it already.
        advice = ["more regularization (l2_reg_w, l2_reg_V)", "a smaller init_stdev",
                  "scale large feature values"]
        stepped = self.solver in ("sgd", "adagrad", "ftrl", "sgda")
        if stepped:
            advice.insert(0, "a smaller learning_rate")
        if self.solver == "sgd":
            advice.append("or solver='adagrad' (per-coordinate step sizes)")
        rate = hyper(self, "learning_rate", get_solver(self.solver)) if stepped else None
        setting = f"solver={self.solver!r}" + (f", learning_rate={rate:g}" if stepped else "")
        return TrainingDivergedError(
            f"training diverged at epoch {epoch}: the {self._task.metric} became NaN or "
            f"infinite with {setting}. Use {', '.join(advice)}."
        )

    def fit(self, X, y=None, sample_weight=None, *, X_rel=None, eval_set=None, eval_X_rel=None,
            callbacks=None):
        """Train the model on ``X`` and ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), path, list of paths \
or fmlearn.data.cache.TextFiles
            Any scipy sparse format (converted once to CSR, never densified); float32 and
            float64 data are used as given. A path (or a list of them, or ``TextFiles`` for
            the options) trains out of core from libFM/libsvm or FFM text files: the first
            pass writes a binary block cache, epochs read it block by block (solvers "sgd",
            "adagrad" and "ftrl"; see ``docs/out-of-core.md``). The labels then come from the
            file and ``eval_set`` may be a file too.
        y : array-like of shape (n_samples,)
            Required unless ``X`` names files.
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

    def _check_partial_fit(self) -> bool:
        """Whether ``partial_fit`` applies to ``solver``; the check of its ``available_if``.

        Raises AttributeError otherwise, so that ``hasattr(est, "partial_fit")`` is False (as
        scikit-learn's MLP estimators do for their non-stochastic solvers).
        """
        if not get_solver(self.solver).stoppable:
            raise AttributeError(
                f"partial_fit is not available for solver={self.solver!r}: its samples are kept "
                "from a window of a fixed number of sweeps. Use fit (with warm_start=True to "
                "continue the chain)."
            )
        return True

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
        return _finite_output(self._params.decision_function(Xk, self.n_jobs))

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

    def to_onnx(self, path) -> None:
        """Write the fitted model as an ONNX graph to ``path`` (needs ``fmlearn[onnx]``).

        The graph reads padded sparse rows (:func:`fmlearn.export.padded_inputs`: ``ids``
        int64 and ``values`` float32, both (N, L)) and gives this estimator's predictions in
        float32; see :func:`fmlearn.export.onnx.to_onnx` and ``docs/serving.md``.
        """
        from fmlearn.export.onnx import to_onnx

        to_onnx(self, path)
