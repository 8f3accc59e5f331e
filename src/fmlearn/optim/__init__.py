"""Solvers: one module each, looked up by name so that a new solver touches no estimator code.

A solver is a class constructed from the estimator's hyper-parameters with three methods:

- ``state_columns(n_param_columns)``: per-feature state columns in the parameter table;
- ``extra_bytes(n_features, n_factors)``: other memory it needs (for the memory guard);
- ``init_params(params) -> params``: the parameters it trains (e.g. MCMC wraps them in a
  posterior container, other solvers take a point estimate);
- ``init_state(params) -> state``: per-fit state (e.g. AdaGrad accumulators), or ``None``;
  a dict of arrays, saved in model files so that training resumes exactly;
- ``prepare(source, validation) -> data``: the data as every epoch reads it, from a
  :class:`~fmlearn.data.sources.BatchSource`, built once per fit (SGD-type solvers keep the
  source and take it batch by batch, so a file stream or a Dask partition plugs in unchanged;
  coordinate solvers ask for ``source.in_memory()`` and build CSC copies). ``validation`` is
  the held-out rows' source, or None; only a solver that trains on them reads it;
- ``run_epoch(params, state, data, rng, n_jobs) -> float``: one pass over the data updating
  ``params`` in place; returns the sum of weighted per-row losses.

Class attributes: ``name`` (the registry key), ``families`` and ``tasks`` (what it trains:
model kinds of :mod:`fmlearn.models` and task names of :mod:`fmlearn.tasks`, ``None`` for all;
estimators and the command line ask :func:`supports` / :func:`solvers_for` rather than keeping
lists of their own), ``accepts_blocks`` (relation blocks are given as blocks rather than
expanded rows), ``needs_validation`` (SGDA: it trains on validation rows too, so the estimator
holds them out even without early stopping), ``stoppable`` (tolerance-based and early
stopping apply; False for MCMC, whose sweeps are samples) and ``classification_link``
("logit" or "probit").

SGD-type solvers (``sgd``, ``adagrad``, ``ftrl``) share one epoch driver
(:class:`fmlearn.optim.sgd.SGDSolver`) and differ only in their optimizer ``code``, the update
rule every epoch kernel runs (:mod:`fmlearn._kernels.updates`), its state
(``state_columns``, ``init_coords``) and their ``kernel_args``, the hyper-parameter tuple every
kernel takes: adding one is a rule there and a module here.

The Python epoch loop (progress bars, callbacks, early stopping) lives in ``fmlearn.base``.
"""

from __future__ import annotations

from fmlearn.optim._registry import (
    SOLVERS,
    get_solver,
    hyper,
    register_solver,
    solvers_for,
    supports,
)
from fmlearn.optim.coordinate import ALSSolver, MCMCSolver
from fmlearn.optim.ftrl import FTRLSolver
from fmlearn.optim.sgd import AdaGradSolver, SGDSolver
from fmlearn.optim.sgda import SGDASolver

__all__ = [
    "SOLVERS",
    "ALSSolver",
    "AdaGradSolver",
    "FTRLSolver",
    "MCMCSolver",
    "SGDASolver",
    "SGDSolver",
    "get_solver",
    "hyper",
    "register_solver",
    "solvers_for",
    "supports",
]
