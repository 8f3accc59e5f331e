"""Solvers: one module each, looked up by name so that a new solver touches no estimator code.

A solver is a class constructed from the estimator's hyper-parameters with three methods:

- ``init_state(params) -> state``: per-fit state (e.g. AdaGrad accumulators), or ``None``;
- ``run_epoch(params, state, X, y, sample_weight, rng, n_jobs) -> float``: one pass over the
  data updating ``params`` in place; returns the sum of weighted per-row losses;
- ``state_arrays(state) / state_from_arrays(arrays)``: to save and resume that state.

The Python epoch loop (progress bars, callbacks, early stopping) lives in ``fmlearn.base``.
"""

from __future__ import annotations

from fmlearn.solvers._registry import SOLVERS, get_solver, register_solver
from fmlearn.solvers.sgd import AdaGradSolver, SGDSolver

__all__ = ["SOLVERS", "AdaGradSolver", "SGDSolver", "get_solver", "register_solver"]
