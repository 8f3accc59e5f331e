"""SGDA: SGD with the regularization learned on validation rows (Rendle, WSDM 2012).

libFM's ``-method sgda``. Plain SGD on the training rows, and after each training row a
gradient step on the L2 strengths from one validation row: the validation loss is taken at
the parameters one SGD step ahead, ``theta' = theta - lr (g + lam theta)``, so it depends on
``lam`` through ``d theta' / d lam = -lr theta``. Strengths that are too small let the next
step fit the training noise and raise the validation loss, so they grow; strengths that
shrink useful parameters fall back. They stay >= 0. The kernel is
:func:`fmlearn._kernels.sgda.sgda_epoch`.

- Strengths per group: ``reg_w_[g]`` for the linear weights of group ``g`` and
  ``reg_V_[g, f]`` per group and factor. Groups are the estimator's ``prior_groups`` (an
  array, or ``"fields"`` from FMEncoder output), else one group for all features. The bias
  is not regularized, as by every fmlearn solver.
- They start at ``l2_reg_w`` and ``l2_reg_V`` and are stepped with ``learning_rate`` (libFM
  uses one rate for both).
- Validation rows: ``eval_set`` if given, else ``validation_fraction`` of the training rows
  held out (with or without ``early_stopping``). Validation rows are visited in a shuffled
  order, cycling, one per training row.
- The first epoch takes no strength steps (the look-ahead needs each feature's last
  gradient; libFM does the same).
- State: one table column per parameter column (the last loss gradient of each parameter),
  and ``sgda_reg_w``, ``sgda_reg_V``, ``sgda_cursor``, ``sgda_epochs`` in the solver state,
  which model files keep, so ``partial_fit`` and ``warm_start`` continue with the learned
  strengths.
- FM regression and binary classification, one thread (``n_jobs`` is ignored).
"""

from __future__ import annotations

import numpy as np

from fmlearn._kernels.sgda import sgda_epoch
from fmlearn.optim._registry import hyper, register_solver
from fmlearn.optim.sgd import SGD, SGDSolver, check_no_l1, check_no_l2_min_count


@register_solver
class SGDASolver(SGDSolver):
    """SGD whose L2 strengths (per group, and per factor) are learned on validation rows."""

    name = "sgda"
    code = SGD
    families = frozenset({"fm"})
    tasks = frozenset({"regression", "binary"})
    # Trains on validation rows too: the estimator holds them out even without early stopping
    # and hands them to prepare().
    needs_validation = True
    # What None means for the estimator's hyper-parameters (see hyper()): the strengths start
    # at 0 and are learned; plain SGD's step size (benchmarks/sgda.py).
    defaults = {"learning_rate": 0.01, "l2_reg_w": 0.0, "l2_reg_V": 0.0, "n_iter_no_change": 20}

    def __init__(self, *, learning_rate, l2_reg_w, l2_reg_V, loss, fit_intercept, fit_linear,
                 l1_reg_w=0.0, groups=None):
        super().__init__(learning_rate=learning_rate, l2_reg_w=l2_reg_w, l2_reg_V=l2_reg_V,
                         loss=loss, fit_intercept=fit_intercept, fit_linear=fit_linear,
                         l1_reg_w=l1_reg_w)
        self.groups = groups

    @classmethod
    def from_estimator(cls, est, loss):
        check_no_l1(est, cls.name)
        check_no_l2_min_count(est, cls.name)
        groups = (est._resolved_prior_groups() if hasattr(est, "_resolved_prior_groups")
                  else getattr(est, "prior_groups", None))
        return cls(learning_rate=hyper(est, "learning_rate", cls),
                   l2_reg_w=hyper(est, "l2_reg_w", cls), l2_reg_V=hyper(est, "l2_reg_V", cls),
                   loss=loss, fit_intercept=est.fit_intercept, fit_linear=est.fit_linear,
                   groups=groups)

    @classmethod
    def state_columns(cls, n_param_columns: int) -> int:
        """One column per parameter column: its last loss gradient."""
        return n_param_columns

    def feature_groups(self, n_features: int) -> np.ndarray:
        """The group of each feature (int32), checked."""
        if self.groups is None:
            return np.zeros(n_features, dtype=np.int32)
        g = np.asarray(self.groups)
        if g.shape != (n_features,) or (g.size and g.dtype.kind not in "iu") or (
                g.size and g.min() < 0):
            raise ValueError(
                f"prior_groups (solver='sgda': one set of regularization values per group) must "
                f"give a non-negative integer group for each of the model's {n_features} feature "
                f"columns, got {g.dtype} of shape {g.shape}."
            )
        return g.astype(np.int32)

    def init_state(self, params):
        params.state[...] = 0
        n_groups = int(self.feature_groups(params.n_features).max(initial=0)) + 1
        k = params.n_factors
        return {
            "sgda_reg_w": np.full(n_groups, self.l2_reg_w),
            "sgda_reg_V": np.full((n_groups, k), self.l2_reg_V),
            "sgda_cursor": np.zeros(1, dtype=np.int64),
            "sgda_epochs": np.zeros(1, dtype=np.int64),
        }

    def prepare(self, source, validation=None):
        """The training source and the validation rows as arrays, in a shuffled order."""
        if validation is None:
            raise ValueError("solver='sgda' needs validation rows (eval_set or "
                             "validation_fraction)")
        Xv, yv, swv = validation.in_memory()
        if hasattr(Xv, "expand"):  # relation blocks: SGDA reads plain rows
            Xv = Xv.expand()
        v_order = np.random.default_rng(0).permutation(Xv.n_rows).astype(np.int64)
        return source, (Xv, np.asarray(yv, dtype=np.float64),
                        np.asarray(swv, dtype=np.float64), v_order)

    def run_epoch(self, params, state, data, rng, n_jobs=1):
        source, (Xv, yv, swv, v_order) = data
        groups = self.feature_groups(params.n_features)
        reg_w, reg_V = state["sgda_reg_w"], state["sgda_reg_V"]
        n_groups = int(groups.max(initial=0)) + 1
        if reg_w.shape[0] < n_groups or reg_V.shape[1] != params.n_factors:
            raise ValueError(
                f"the learned regularization has {reg_w.shape[0]} groups, prior_groups gives "
                f"{n_groups}: keep the same groups to continue training (or refit)."
            )
        cursor = state["sgda_cursor"]
        cursor[0] %= max(v_order.shape[0], 1)
        adapt = bool(state["sgda_epochs"][0] > 0)
        total = 0.0
        for X, y, sw in source.batches(rng):
            order = rng.permutation(X.n_rows).astype(np.int64)
            total += sgda_epoch(
                X.indptr, X.indices, X.data, y, sw, order,
                Xv.indptr, Xv.indices, Xv.data, yv, swv, v_order, cursor,
                params.w0, params.table, params.n_factors, groups, reg_w, reg_V,
                self.loss, self.learning_rate, self.learning_rate,
                self.fit_intercept, self.fit_linear, adapt,
            )
        state["sgda_epochs"][0] += 1
        return float(total)
