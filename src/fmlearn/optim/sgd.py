"""SGD-type solvers over rows, serial or lock-free parallel (Hogwild): plain SGD and AdaGrad
(FTRL, in :mod:`fmlearn.optim.ftrl`, shares the epoch driver)."""

from __future__ import annotations

import numpy as np

from fmlearn._kernels.updates import ADAGRAD, ADAGRAD_INITIAL_ACCUMULATOR, SGD, state_count
from fmlearn._parallel import effective_n_jobs, run_blocks
from fmlearn.optim._registry import hyper, register_solver

# l2_min_count="auto" (the SGD and AdaGrad default) is this floor when the fit does not stop
# early (small data, or early_stopping=False), 0 when it does: a feature in fewer than 100 rows
# is then penalized as if seen in 100, a total of 100 * 1e-2 = 1 per epoch on w, logistic
# regression's C=1. With early stopping on large data, the floor cost accuracy on data whose
# users have fewer ratings than that (the README's synthetic ratings: AdaGrad RMSE 0.588 ->
# 0.608, SGD 0.598 -> 0.655), while the stopping already keeps rare features from overfitting.
AUTO_L2_MIN_COUNT = 100.0
# Below this many rows per thread, starting threads costs more than it saves.
MIN_ROWS_PER_THREAD = 5000
# With a progress callback (verbose), an epoch over more rows than this is taken in chunks of
# this many, reporting after each: a few tenths of a second of FM AdaGrad on 2 cores, so a
# long epoch says how far it has got, while a chunk's fixed cost (a kernel call) is nothing.
PROGRESS_ROWS = 1 << 18


def _threads(n_jobs, n_rows: int) -> int:
    return min(effective_n_jobs(n_jobs), max(1, n_rows // MIN_ROWS_PER_THREAD))


def column_counts(source) -> np.ndarray | None:
    """Rows in which each feature is non-zero, int64 (n_features,), of a batch source: from
    the rows of an in-memory source, from the manifest of a binary cache; None for a source
    that cannot tell without a pass (a stream probe)."""
    counts = getattr(source, "column_counts", None)
    if counts is not None:
        return np.asarray(counts(), dtype=np.int64)
    try:
        X = source.in_memory().X
    except TypeError:
        return None
    if hasattr(X, "expand"):  # relation blocks
        X = X.expand()
    return np.bincount(X.indices, minlength=X.n_features).astype(np.int64)


def l2_scale(counts: np.ndarray, min_count: float) -> np.ndarray:
    """Per-feature L2 multipliers ``max(1, min_count / count_j)`` (float64, (n_features,)).

    The SGD-type solvers apply L2 lazily, at each update of a feature: over an epoch feature
    ``j`` is penalized ``count_j`` times, as if the objective were ``sum_rows loss + sum_j
    l2 count_j / 2 theta_j^2``. A feature seen in one row is then barely penalized, and on
    small data it learns its row's label. With this multiplier a feature's penalty per epoch
    is ``l2 max(count_j, min_count)``: features in at least ``min_count`` rows keep theirs,
    rarer ones are penalized as if seen ``min_count`` times. ``min_count`` >= the number of
    rows gives every feature the same penalty, ``l2 n_rows / 2 ||theta||^2``, the full-batch
    objective ``mean loss + l2 / 2 ||theta||^2`` times ``n_rows``. Features never seen are
    never updated (multiplier 1).
    """
    counts = np.asarray(counts, dtype=np.float64)
    return np.maximum(1.0, min_count / np.maximum(counts, 1.0))


def check_no_l2_min_count(est, solver: str) -> None:
    """Refuse ``l2_min_count > 0`` for a solver whose penalty is not applied per occurrence."""
    if getattr(est, "l2_min_count", None):
        raise ValueError(
            f"l2_min_count={est.l2_min_count} scales the per-occurrence L2 of the stochastic "
            f"solvers ('sgd', 'adagrad', 'ftrl'); solver={solver!r} penalizes every feature "
            "the same already (or learns its penalties). Leave l2_min_count=None."
        )


def check_no_l1(est, solver: str) -> None:
    """Refuse ``l1_reg_w > 0`` for a solver without L1 (only FTRL has it)."""
    if getattr(est, "l1_reg_w", 0.0):
        raise ValueError(
            f"l1_reg_w={est.l1_reg_w} needs solver='ftrl' (FTRL-Proximal's L1 makes linear "
            f"weights exactly zero); solver={solver!r} has L2 only. Set l1_reg_w=0 or "
            "solver='ftrl'."
        )


@register_solver
class SGDSolver:
    """Stochastic gradient descent on one row at a time with a constant learning rate.

    Each epoch visits the rows in a fresh random order. L2 penalties apply to the coordinates a
    row touches (the usual lazy form for sparse data). With ``n_jobs > 1`` the shuffled rows
    are split into contiguous chunks updated by all threads at once without locks (Hogwild):
    results then depend on thread timing, while ``n_jobs=1`` is exactly reproducible.

    The update rule is the optimizer ``code``'s (:mod:`fmlearn._kernels.updates`); AdaGrad and
    FTRL are this class with another code and their state: the epoch driver is shared.
    """

    name = "sgd"
    code = SGD
    # Name of the intercepts' solver state in the state dict (and in model files):
    # "<prefix>_w0"; None without state. The intercepts are the bias, one bias per class
    # (multinomial) or the ordinal cutpoints: ``params.intercepts``.
    state_prefix = None
    # Whether the solver has L1 on the linear weights (the estimators' l1_reg_w).
    has_l1 = False
    accepts_blocks = False
    needs_validation = False
    stoppable = True
    # early_stopping="auto" applies: a stochastic solver over many rows is best stopped on a
    # validation set (benchmarks/defaults.py).
    auto_early_stopping = True
    # What None means for the estimator's hyper-parameters (see hyper(); chosen across data
    # sets by benchmarks/defaults.py). Per-row L2, as for AdaGrad.
    # Plain SGD's validation loss can sit on a plateau for ten epochs or more while the factors
    # grow from their small start: it gets more patience (u1: 0.958 stopped there, 0.929 not).
    # l2_min_count "auto": AUTO_L2_MIN_COUNT when the fit does not stop early (see
    # resolved_min_count; benchmarks/defaults.py).
    defaults = {"learning_rate": 0.01, "l2_reg_w": 1e-2, "l2_reg_V": 8e-2, "n_iter_no_change": 20,
                "l2_min_count": "auto"}
    classification_link = "logit"
    # Called as progress(rows_done, rows_total) within and after each batch of an epoch when
    # set (the estimators set it with verbose): see run_epoch.
    progress = None
    # What it trains (see optim.supports): every family's epoch kernel runs every update rule.
    families = None
    tasks = None

    def __init__(self, *, learning_rate, l2_reg_w, l2_reg_V, loss, fit_intercept, fit_linear,
                 l1_reg_w=0.0, l2_min_count=0.0):
        self.learning_rate = float(learning_rate)
        self.l1_reg_w = float(l1_reg_w)
        self.l2_reg_w = float(l2_reg_w)
        self.l2_reg_V = float(l2_reg_V)
        self.loss = int(loss)
        self.fit_intercept = bool(fit_intercept)
        self.fit_linear = bool(fit_linear)
        self.l2_min_count = l2_min_count if l2_min_count == "auto" else float(l2_min_count)
        # Set by the estimator before prepare(): whether l2_min_count="auto" puts the floor on
        # in this fit (a fit of several epochs that does not stop early).
        self.auto_floor = False
        # Feature j's L2 multiplier at each of its updates (set by prepare; None: 1 for all).
        self.reg_scale = None

    def resolved_min_count(self) -> float:
        """``l2_min_count`` as a number: "auto" is :data:`AUTO_L2_MIN_COUNT` in a fit of
        several epochs that does not stop early (:attr:`auto_floor`), else 0 (early stopping
        guards, or ``partial_fit``: a chunk's counts say nothing of the stream's)."""
        if self.l2_min_count == "auto":
            return AUTO_L2_MIN_COUNT if self.auto_floor else 0.0
        return self.l2_min_count

    @property
    def kernel_args(self) -> tuple:
        """The hyper-parameters every epoch kernel takes beside ``code``:
        ``(learning_rate, l1_reg_w, l2_reg_w, l2_reg_V)`` (:mod:`fmlearn._kernels.updates`)."""
        return self.learning_rate, self.l1_reg_w, self.l2_reg_w, self.l2_reg_V

    @classmethod
    def from_estimator(cls, est, loss):
        if not cls.has_l1:
            check_no_l1(est, cls.name)
        return cls(
            learning_rate=hyper(est, "learning_rate", cls),
            l2_reg_w=hyper(est, "l2_reg_w", cls),
            l2_reg_V=hyper(est, "l2_reg_V", cls),
            loss=loss,
            fit_intercept=est.fit_intercept,
            fit_linear=est.fit_linear,
            l1_reg_w=getattr(est, "l1_reg_w", 0.0),
            l2_min_count=hyper(est, "l2_min_count", cls) or 0.0,
        )

    @classmethod
    def state_columns(cls, n_param_columns: int) -> int:
        """Per-feature solver-state columns the parameter table must carry: each state value
        of the rule, one column per parameter column, in the same order after them."""
        return state_count(cls.code) * n_param_columns

    def extra_bytes(self, n_features: int, n_factors: int) -> int:
        """Memory beyond the parameter table, for the estimator's guard."""
        return 0

    def init_params(self, params):
        """The parameters to train from (a posterior continues from its current sample)."""
        return params.as_point()

    def init_coords(self, values, states, l1, l2) -> None:
        """Start the solver state ``states`` (one array per state value, each of ``values``'
        shape) of parameters ``values``, whose L1 and L2 strengths are ``l1`` and ``l2``.
        Plain SGD has none."""

    def init_state(self, params):
        """Start the solver state held in ``params`` and return the rest (or None)."""
        n = state_count(self.code)
        if not n:
            return None
        for values, states, l1, l2 in params.coordinate_groups(
                n, self.l1_reg_w, self.l2_reg_w, self.l2_reg_V):
            self.init_coords(values, states, l1, l2)
        # One state per intercept (one bias, a bias per class, the ordinal cutpoints).
        b = params.intercepts
        w0_state = np.zeros(n * b.shape[0], dtype=b.dtype)
        self.init_coords(b, w0_state.reshape(n, -1), 0.0, 0.0)
        return {f"{self.state_prefix}_w0": w0_state}

    def _w0_state(self, params, state):
        """The intercepts' solver state, or a placeholder for plain SGD."""
        if self.state_prefix is None:
            return np.zeros(1, dtype=params.intercepts.dtype)
        return state[f"{self.state_prefix}_w0"]

    def prepare(self, source, validation=None):
        """What every epoch reads: the :class:`~fmlearn.data.sources.BatchSource` itself
        (rows are visited straight from each batch's CSR arrays); ``validation`` is not
        trained on.

        With a resolved ``l2_min_count`` > 0 it also sets :attr:`reg_scale` from the source's
        column counts (see :func:`l2_scale`).
        """
        self.reg_scale = None
        min_count = self.resolved_min_count()
        if min_count > 0:
            counts = column_counts(source)
            if counts is not None:
                self.reg_scale = l2_scale(counts, min_count)
        return source

    def run_epoch(self, params, state, source, rng, n_jobs=1):
        """One pass over ``source``, each batch in a fresh random order; returns the sum of
        weighted losses before each row's update.

        With :attr:`progress` set, a batch of more than :data:`PROGRESS_ROWS` rows is taken
        in chunks of that many rows of its shuffled order, and ``progress(rows_done,
        rows_total)`` is called after each chunk and each batch (``rows_total`` None when the
        source does not know it). The updates are the same, in the same order: with one thread
        the parameters are bit-identical to an unchunked epoch (only the loss sum's rounding
        differs), and several threads share each chunk as they share a whole batch.
        """
        total_rows = getattr(source, "n_rows", None)
        done, loss = 0, 0.0
        for batch in source.batches(rng):
            loss += self._run_batch(params, state, batch, rng, n_jobs, done, total_rows)
            done += batch.X.n_rows
            if self.progress is not None:
                self.progress(done, total_rows)
        return loss

    def _run_batch(self, params, state, batch, rng, n_jobs, done=0, total_rows=None) -> float:
        X, y, sample_weight = batch
        scale = self.reg_scale
        if scale is not None and scale.shape[0] != params.n_features:
            # The kernels index it by feature unchecked: one entry per model feature (1 for
            # columns the counts did not cover).
            fitted = np.ones(params.n_features)
            n = min(scale.shape[0], params.n_features)
            fitted[:n] = scale[:n]
            self.reg_scale = fitted
        order = rng.permutation(X.n_rows)
        w0_state = self._w0_state(params, state)
        n_threads = _threads(n_jobs, X.n_rows)

        def rows(a, b):  # the last argument: concurrent (other threads train at once)
            return params.sgd_epoch(X, y, sample_weight, order[a:b], w0_state, self,
                                    n_threads > 1)

        step = max(1, X.n_rows if self.progress is None else PROGRESS_ROWS)
        loss = 0.0
        for a in range(0, X.n_rows, step):
            b = min(a + step, X.n_rows)
            loss += float(sum(run_blocks(lambda s, e, a=a: rows(a + s, a + e), b - a,
                                         n_threads)))
            if b < X.n_rows:
                self.progress(done + b, total_rows)
        return loss


@register_solver
class AdaGradSolver(SGDSolver):
    """SGD with AdaGrad per-coordinate step sizes (Duchi et al. 2011).

    Each coordinate's step is ``learning_rate / sqrt(G)``, ``G`` being its accumulated squared
    gradients (started at 1), so rare features keep large steps while frequent ones settle.
    Robust to the choice of ``learning_rate``. The accumulators sit beside each feature's
    parameters in the parameter table, which doubles its size but keeps one memory burst per
    feature per update.
    """

    name = "adagrad"
    code = ADAGRAD
    defaults = {"learning_rate": 0.1, "l2_reg_w": 1e-2, "l2_reg_V": 5e-2, "n_iter_no_change": 5,
                "l2_min_count": "auto"}
    state_prefix = "acc"

    def init_coords(self, values, states, l1, l2) -> None:
        """Accumulators at :data:`~fmlearn._kernels.updates.ADAGRAD_INITIAL_ACCUMULATOR`."""
        for acc in states:
            acc[...] = ADAGRAD_INITIAL_ACCUMULATOR

