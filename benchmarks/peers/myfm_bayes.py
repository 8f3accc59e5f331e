"""myFM (PyPI ``myfm``): Bayesian FM by Gibbs sampling, for ``benchmarks/bayes.py``.

Runs in the caller's process (``benchmarks/.venv``, where ``bash benchmarks/setup_peers.sh``
installs it). myFM's training is single-threaded C++ (Eigen); its progress bar (tqdm) is turned
off through ``TQDM_DISABLE`` and its default callback, which scores a status line every 10
iterations, is replaced by one that only records a timestamp, so the timed ``fit`` is sampling
plus myFM's own input conversion (CSR to float64) and nothing else.

myFM's defaults that matter for a comparison (``myfm`` 0.4): ``init_stdev=0.1``; hyper-priors
``alpha_0 = beta_0 = gamma_0 = reg_0 = 1``, ``mu_0 = 0``; ``n_kept_samples=None`` keeps the last
``n_iter - 5`` samples (a 5-iteration burn-in); without ``grouping``/``group_shapes`` every
column shares one hyper-prior group. Prediction is the mean over the kept samples.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

NAME = "myfm"


def _import():
    os.environ.setdefault("TQDM_DISABLE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pkg_resources deprecation notice on import
        import myfm
    return myfm


def version() -> str:
    """myFM's version; raises ``ImportError`` if it is not installed."""
    return _import().__version__


def default_kept(n_iter: int) -> int:
    """What myFM keeps when ``n_kept_samples=None``."""
    return min(max(n_iter - 5, 5), n_iter)


@dataclass
class Result:
    pred: np.ndarray  # posterior-mean prediction on the test rows
    fit_seconds: float  # wall time of ``fit``
    predict_seconds: float  # wall time of ``predict`` on the test rows
    iter_seconds: np.ndarray  # per-iteration wall times (callback to callback)
    n_iter: int
    n_kept: int
    model: object = field(default=None, repr=False)


# The models of ``fit_predict``'s ``kind``, and what its prediction is: the regressor's
# output, the classifier's probability of class 1 (``y`` 0/1, probit), the ordered probit's
# expected class index (``y`` 0..C-1).
KINDS = {"regression": "MyFMRegressor", "probit": "MyFMClassifier",
         "ordinal": "MyFMOrderedProbit"}


def fit_predict(X, y, X_test, *, rank: int, n_iter: int, n_kept_samples: int | None = None,
                grouping=None, X_rel=None, X_rel_test=None, seed: int = 0,
                init_stdev: float = 0.1, keep_model: bool = False,
                kind: str = "regression") -> Result:
    """Fit myFM's model of ``kind`` (:data:`KINDS`) on ``(X, y)`` (``X_rel``: list of
    (indices, block matrix)) and predict ``X_test``. ``grouping``: the hyper-prior group of
    every column of ``[X | blocks...]``, or None for one group."""
    myfm = _import()
    rel = [myfm.RelationBlock(np.asarray(i, dtype=np.int64), B) for i, B in (X_rel or [])]
    rel_test = [myfm.RelationBlock(np.asarray(i, dtype=np.int64), B)
                for i, B in (X_rel_test or [])]
    stamps: list[float] = []

    def callback(i, fm, hyper, history):
        stamps.append(time.perf_counter())
        return False, None

    n_kept = default_kept(n_iter) if n_kept_samples is None else n_kept_samples
    model = getattr(myfm, KINDS[kind])(rank=rank, init_stdev=init_stdev, random_seed=seed)
    grouping = None if grouping is None else [int(g) for g in grouping]
    y = np.asarray(y, dtype=np.float64 if kind == "regression" else np.int64)
    t0 = time.perf_counter()
    model.fit(X, y, X_rel=rel, n_iter=n_iter, n_kept_samples=n_kept, grouping=grouping,
              callback=callback)
    fit_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    if kind == "regression":
        pred = model.predict(X_test, rel_test)
    else:
        proba = np.asarray(model.predict_proba(X_test, rel_test), dtype=np.float64)
        pred = proba @ np.arange(proba.shape[1]) if proba.ndim == 2 else proba
    pred = np.asarray(pred, dtype=np.float64)
    pred_s = time.perf_counter() - t1
    iters = np.diff(np.asarray([t0] + stamps))
    return Result(pred, fit_s, pred_s, iters, n_iter, n_kept, model if keep_model else None)


def predictive_samples(result: Result, X_test, X_rel_test=None) -> tuple[np.ndarray, np.ndarray]:
    """(f, alpha): per kept sample, the FM output on ``X_test`` (n_kept, n_rows) and the noise
    precision, for posterior predictive intervals. Needs ``fit_predict(..., keep_model=True)``.
    """
    myfm = _import()
    import scipy.sparse as sp

    model = result.model
    rel = [myfm.RelationBlock(np.asarray(i, dtype=np.int64), B) for i, B in (X_rel_test or [])]
    X = sp.csr_matrix(X_test, dtype=np.float64)
    samples = model.predictor_.samples
    f = np.stack([np.asarray(s.predict_score(X, rel)) for s in samples])
    alphas = np.asarray([h.alpha for h in model.history_.hypers])
    # history_.hypers holds every iteration; the kept samples are the last len(samples) ones
    return f, alphas[-len(samples):]
