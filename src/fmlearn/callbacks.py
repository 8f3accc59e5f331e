"""Training callbacks: called after every epoch by the training loop (:func:`fmlearn.engine.train`).

A callback is any callable ``cb(env) -> bool | None`` taking a :class:`EpochEnv`; returning
True stops training after that epoch. Built-ins: :class:`EarlyStopping` (what the estimators'
``early_stopping``/``tol`` parameters create), :class:`ProgressBar` (``verbose >= 1``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

__all__ = ["EarlyStopping", "EpochEnv", "ProgressBar"]


@dataclass
class EpochEnv:
    """What a callback sees after an epoch.

    Attributes
    ----------
    estimator : the estimator being trained
    epoch : int
        1-based epoch number within this call to ``fit``/``partial_fit``.
    max_iter : int
    metric : str
        Name of the reported metric, e.g. ``"rmse"`` or ``"logloss"``.
    train : float
        Progressive training metric of the epoch (each row scored before its update).
    valid : float or None
        Metric on the validation data, if any.
    elapsed : float
        Seconds since training started.
    valid_output : ndarray of shape (n_valid,) or None
        The model's output on the validation rows that ``valid`` was computed from: the
        prediction (regression) or the positive-class probability (classification); for
        ``solver="mcmc"`` the posterior mean so far.
    snapshot : callable or None
        Returns a copy of the model's current parameters (what early stopping restores).
    """

    estimator: object
    epoch: int
    max_iter: int
    metric: str
    train: float
    valid: float | None
    elapsed: float
    valid_output: object = None
    snapshot: object = None


class EarlyStopping:
    """Stop when the monitored metric has not improved by ``tol`` for ``patience`` epochs.

    With ``restore_best`` the parameters of the best epoch are kept (``best_params``, from
    ``env.snapshot()``) for the training loop to restore (only when monitoring validation
    data).

    Parameters
    ----------
    patience : int
    tol : float
    restore_best : bool
    monitor : {"auto", "valid", "train"}
        Which metric to watch; "auto" takes validation when there is one.
    mode : {"min", "max"}
        Whether lower (losses) or higher (ranking metrics, AUC) is better.
    """

    def __init__(
        self, patience: int = 5, tol: float = 1e-4, restore_best: bool = True, monitor="auto",
        mode="min",
    ):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.patience = patience
        self.tol = tol
        self.restore_best = restore_best
        self.monitor = monitor
        self.mode = mode
        self.best = math.inf
        self.best_epoch = 0
        self.best_params = None
        self._bad = 0

    def __call__(self, env: EpochEnv) -> bool:
        use_valid = env.valid is not None and self.monitor != "train"
        value = env.valid if use_valid else env.train
        if self.mode == "max":
            value = -value
        # scikit-learn's rule: only a gain larger than tol resets the patience count, while
        # any new minimum becomes the reference (and the snapshot to restore).
        self._bad = self._bad + 1 if value > self.best - self.tol else 0
        if value < self.best:
            self.best, self.best_epoch = value, env.epoch
            if self.restore_best and use_valid and env.snapshot is not None:
                self.best_params = env.snapshot()
        return self._bad >= self.patience


class ProgressBar:
    """A tqdm bar over epochs showing the training and validation metric.

    The one progress display of every estimator's ``verbose`` (and so of the command line,
    which fits with ``verbose=1`` unless ``--quiet``). ``train_name`` labels the training
    metric when it differs from ``env.metric`` (e.g. the ranker's loss beside its validation
    NDCG). A long epoch also reports within itself: the SGD-type solvers call :meth:`rows`
    between chunks of rows (see :class:`fmlearn.optim.sgd.SGDSolver`), shown as the share of
    the current epoch done, at most every ``mininterval`` seconds of ``clock``.
    """

    def __init__(self, total: int, desc: str = "fmlearn", train_name: str | None = None, *,
                 mininterval: float = 0.5, clock=time.monotonic):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=desc, unit="epoch", leave=True)
        self._train_name = train_name
        self._mininterval = mininterval
        self._clock = clock
        self._shown = -math.inf

    def __call__(self, env: EpochEnv) -> None:
        post = {f"train_{self._train_name or env.metric}": f"{env.train:.5g}"}
        if env.valid is not None:
            post[f"valid_{env.metric}"] = f"{env.valid:.5g}"
        self._bar.set_postfix(post, refresh=False)
        self._bar.update(1)

    def rows(self, done: int, total: int | None) -> None:
        """Within an epoch: ``done`` of its ``total`` rows (None: unknown) visited so far."""
        if total is not None and done >= total:
            return  # the epoch's end is shown by __call__, with its metrics
        now = self._clock()
        if now - self._shown < self._mininterval:
            return
        self._shown = now
        epoch = self._bar.n + 1
        where = (f"epoch {epoch}: {100 * done / total:.0f}% of {total:,} rows" if total
                 else f"epoch {epoch}: {done:,} rows")
        self._bar.set_postfix_str(where, refresh=True)

    def close(self) -> None:
        self._bar.close()
