"""Plain SGD and AdaGrad over rows, serial or lock-free parallel (Hogwild)."""

from __future__ import annotations

import numpy as np
from scipy.special import logit

from fmlearn._kernels.losses import ORDINAL
from fmlearn._parallel import effective_n_jobs, run_blocks
from fmlearn.solvers._registry import register_solver

# Below this many rows per thread, starting threads costs more than it saves.
MIN_ROWS_PER_THREAD = 5000


def _threads(n_jobs, n_rows: int) -> int:
    return min(effective_n_jobs(n_jobs), max(1, n_rows // MIN_ROWS_PER_THREAD))


# AdaGrad accumulators start here rather than at 0 so that the first steps are not of size
# ``learning_rate`` in every coordinate whatever the gradient (libffm and xLearn start at 1).
ADAGRAD_INITIAL_ACCUMULATOR = 1.0


@register_solver
class SGDSolver:
    """Stochastic gradient descent on one row at a time with a constant learning rate.

    Each epoch visits the rows in a fresh random order. L2 penalties apply to the coordinates a
    row touches (the usual lazy form for sparse data). With ``n_jobs > 1`` the shuffled rows
    are split into contiguous chunks updated by all threads at once without locks (Hogwild):
    results then depend on thread timing, while ``n_jobs=1`` is exactly reproducible.
    """

    name = "sgd"
    adaptive = False
    accepts_blocks = False
    stoppable = True
    classification_link = "logit"

    def __init__(self, *, learning_rate, l2_reg_w, l2_reg_V, loss, fit_intercept, fit_linear,
                 n_classes=0):
        self.learning_rate = float(learning_rate)
        self.l2_reg_w = float(l2_reg_w)
        self.l2_reg_V = float(l2_reg_V)
        self.loss = int(loss)
        self.fit_intercept = bool(fit_intercept)
        self.fit_linear = bool(fit_linear)
        self.n_classes = int(n_classes)  # ordinal regression: its cutpoints are state

    @property
    def rates(self) -> tuple:
        """``(loss, learning_rate, l2_reg_w, l2_reg_V)``, as every epoch kernel takes them."""
        return self.loss, self.learning_rate, self.l2_reg_w, self.l2_reg_V

    @property
    def flags(self) -> tuple:
        """``(adaptive, fit_intercept, fit_linear)``, the epoch kernels' trailing switches."""
        return self.adaptive, self.fit_intercept, self.fit_linear

    @classmethod
    def from_estimator(cls, est, loss):
        return cls(
            learning_rate=est.learning_rate,
            l2_reg_w=est.l2_reg_w,
            l2_reg_V=est.l2_reg_V,
            loss=loss,
            fit_intercept=est.fit_intercept,
            fit_linear=est.fit_linear,
            n_classes=len(getattr(est, "classes_", ())),
        )

    @staticmethod
    def state_columns(n_param_columns: int) -> int:
        """Per-feature solver-state columns the parameter table must carry."""
        return 0

    def extra_bytes(self, n_features: int, n_factors: int) -> int:
        """Memory beyond the parameter table, for the estimator's guard."""
        return 0

    def init_params(self, params):
        """The parameters to train from (a posterior continues from its current sample)."""
        return params.as_point()

    def init_state(self, params):
        """Reset the solver state held in ``params`` and return the rest (or None)."""
        return self._ordinal_state({})

    def _ordinal_state(self, state):
        if self.loss != ORDINAL:
            return state or None
        # Filled from the class frequencies by the first epoch.
        state["cutpoints"] = np.zeros(0)
        state["acc_cut"] = np.full(self.n_classes - 1, ADAGRAD_INITIAL_ACCUMULATOR)
        return state

    def prepare(self, X, y, sample_weight):
        """What every epoch reads; rows are visited straight from the CSR arrays."""
        return X, y, sample_weight

    def run_epoch(self, params, state, data, rng, n_jobs=1):
        """One shuffled pass; returns the sum of weighted losses before each row's update."""
        X, y, sample_weight = data
        order = rng.permutation(X.n_rows)
        if self.loss == ORDINAL:
            cut, acc_cut = state["cutpoints"], state["acc_cut"]
            if cut.shape[0] != self.n_classes - 1:
                cut = state["cutpoints"] = initial_cutpoints(y, sample_weight, self.n_classes,
                                                             logit)

            def chunk(a, b):
                return params.ordinal_sgd_epoch(X, y, sample_weight, order[a:b], cut, acc_cut,
                                                self)

            return float(sum(run_blocks(chunk, X.n_rows, _threads(n_jobs, X.n_rows))))
        acc_w0 = state["acc_w0"] if state else np.zeros(1, dtype=params.dtype)

        def chunk(a, b):
            return params.sgd_epoch(X, y, sample_weight, order[a:b], acc_w0, self)

        return float(sum(run_blocks(chunk, X.n_rows, _threads(n_jobs, X.n_rows))))


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
    adaptive = True

    @staticmethod
    def state_columns(n_param_columns: int) -> int:
        # One accumulator per parameter column, laid out in the same order after them.
        return n_param_columns

    def init_state(self, params):
        params.state[:] = ADAGRAD_INITIAL_ACCUMULATOR
        # One bias accumulator per bias (the multinomial FM has one per class).
        acc_w0 = np.full(params.w0.shape, ADAGRAD_INITIAL_ACCUMULATOR, dtype=params.dtype)
        state = {"acc_w0": acc_w0}
        return self._ordinal_state(state)


def initial_cutpoints(y, sample_weight, n_classes, quantile) -> np.ndarray:
    """Cutpoints reproducing the class frequencies at a zero score: ``quantile(P(y <= c))``."""
    freq = np.bincount(y.astype(np.intp), weights=sample_weight, minlength=n_classes)
    cum = np.cumsum(freq)[:-1] / freq.sum()
    cut = quantile(np.clip(cum, 1e-6, 1 - 1e-6))
    # Empty classes would give equal cutpoints: keep them strictly increasing.
    return np.maximum.accumulate(cut + 1e-6 * np.arange(cut.shape[0]))
