"""The one training loop: epochs, history, callbacks, early stopping, progress, divergence.

:func:`train` is a plain function over callables (LightGBM's ``engine.train`` is the model),
so that anything that trains by epochs reuses it: the scikit-learn estimators
(:class:`fmlearn.base.BaseFM`, :class:`fmlearn.FMRanker`), and later a torch module, a file
stream or a Dask worker. It knows nothing of parameters or data: ``epoch()`` trains one pass
and returns its training metric, ``validate()`` scores the validation data, ``snapshot()``
copies what early stopping may restore.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from fmlearn.callbacks import EarlyStopping, EpochEnv

__all__ = ["History", "TrainResult", "stopping_rule", "train"]


class History:
    """Per-epoch records in a dict of lists (an estimator's ``history_``).

    Epoch numbers continue across calls (``partial_fit``, ``warm_start``) from
    ``epochs_done``. Keys: ``"epoch"``, ``"train_<train_name>"``, ``"time"`` and, when
    validating, ``"valid_<valid_name>"``.

    Parameters
    ----------
    store : dict of lists
        Appended to in place (created keys included).
    train_name, valid_name : str
        Names of the training and validation metrics.
    epochs_done : int, default=0
        Epochs recorded before.
    validating : bool, default=False
        Create the validation key now (so that it exists even if no epoch runs).
    """

    def __init__(self, store: dict, train_name: str, valid_name: str | None = None, *,
                 epochs_done: int = 0, validating: bool = False):
        self.store = store
        self.train_key = f"train_{train_name}"
        self.valid_key = f"valid_{valid_name or train_name}"
        self.epochs_done = int(epochs_done)
        for key in ("epoch", self.train_key, "time"):
            store.setdefault(key, [])
        if validating:
            store.setdefault(self.valid_key, [])

    def record(self, train: float, valid: float | None, elapsed: float) -> None:
        self.epochs_done += 1
        self.store["epoch"].append(self.epochs_done)
        self.store[self.train_key].append(train)
        self.store["time"].append(elapsed)
        if valid is not None:
            self.store.setdefault(self.valid_key, []).append(valid)


@dataclass
class TrainResult:
    """What :func:`train` reports.

    Attributes
    ----------
    n_iter : int
        Epochs run.
    best_epoch : int or None
        The epoch whose snapshot is returned, or (without one) the last epoch when a
        validation set was scored; None otherwise.
    best_snapshot : object or None
        ``snapshot()`` of the best validation epoch, when the first stopper restores it.
    """

    n_iter: int
    best_epoch: int | None
    best_snapshot: object = None


def validate_over(source, output: Callable, task) -> Callable:
    """``validate()`` for :func:`train` over a batch source of validation rows (in memory or
    a file's blocks, read one at a time): ``(task.score(y, outputs, weights), outputs)`` with
    ``output(X)`` the model's outputs of a batch's rows."""

    def validate():
        y, out, sw = [], [], []
        for Xv, yv, swv in source.batches(None):
            y.append(yv)
            out.append(output(Xv))
            sw.append(swv)
        if len(y) == 1:  # in memory: as it is
            y, out, sw = y[0], out[0], sw[0]
        else:
            y, out, sw = map(np.concatenate, (y, out, sw))
        return task.score(y, out, sw), out

    return validate


def stopping_rule(max_iter: int, *, early_stopping: bool, tol: float | None,
                  n_iter_no_change: int, validating: bool, stoppable: bool = True,
                  mode: str = "min") -> list[EarlyStopping]:
    """The stopper an estimator's ``early_stopping``/``tol``/``n_iter_no_change`` ask for.

    With ``early_stopping`` (and validation data) the validation metric is watched and its
    best epoch restored; else, with a ``tol`` and a ``stoppable`` solver, the training metric
    (nothing restored). One epoch needs no stopper.
    """
    if max_iter <= 1:
        return []
    if early_stopping and validating:
        return [EarlyStopping(n_iter_no_change, tol or 0.0, True, monitor="valid", mode=mode)]
    if tol is not None and stoppable:
        return [EarlyStopping(n_iter_no_change, tol, False, monitor="train")]
    return []


def train(
    epoch: Callable[[], float],
    *,
    max_iter: int,
    metric: str,
    validate: Callable[[], tuple[float, object]] | None = None,
    stoppers: Sequence = (),
    callbacks: Sequence | None = None,
    progress=None,
    history: History | None = None,
    snapshot: Callable[[], object] | None = None,
    diverged: Callable[[int], Exception] | None = None,
    estimator=None,
) -> TrainResult:
    """Run up to ``max_iter`` epochs.

    After each epoch: a non-finite training metric raises ``diverged(epoch)``; the validation
    metric is computed; the epoch is recorded in ``history``; ``progress``, the ``stoppers``
    and the user ``callbacks`` see an :class:`~fmlearn.callbacks.EpochEnv` (every callback
    sees every epoch); any of them returning True ends training.

    Parameters
    ----------
    epoch : callable () -> float
        Trains one epoch; returns its training metric.
    max_iter : int
    metric : str
        Name of the metric callbacks see (the validation one if it differs).
    validate : callable () -> (float, output), optional
        The validation metric and the output it was computed from.
    stoppers : sequence of EarlyStopping
        Run before the user callbacks; the first one's best snapshot is returned.
    callbacks : sequence of callable, optional
        User callbacks ``cb(env) -> bool | None``.
    progress : callable with ``close()``, optional
        E.g. :class:`fmlearn.callbacks.ProgressBar`; closed at the end, also on errors.
    history : History, optional
    snapshot : callable () -> object, optional
        A copy of what training changes (the parameters), for early stopping to restore.
    diverged : callable (epoch) -> Exception, optional
        The error raised on a non-finite training metric (default: ``FloatingPointError``).
    estimator : object, optional
        Passed to callbacks as ``env.estimator``.

    Returns
    -------
    TrainResult
    """
    checks = [*stoppers, *(callbacks or [])]
    start = time.perf_counter()
    n = 0
    try:
        for n in range(1, max_iter + 1):
            train_metric = epoch()
            if not math.isfinite(train_metric):
                raise (diverged(n) if diverged is not None
                       else FloatingPointError(f"training diverged at epoch {n}"))
            valid_metric, valid_output = validate() if validate is not None else (None, None)
            elapsed = time.perf_counter() - start
            if history is not None:
                history.record(train_metric, valid_metric, elapsed)
            env = EpochEnv(estimator, n, max_iter, metric, train_metric, valid_metric, elapsed,
                           valid_output, snapshot)
            if progress is not None:
                progress(env)
            if any([bool(cb(env)) for cb in checks]):  # a list: no short-circuit
                break
    finally:
        if progress is not None:
            progress.close()
    best = stoppers[0] if stoppers else None
    if best is not None and best.best_params is not None:
        return TrainResult(n, best.best_epoch, best.best_params)
    return TrainResult(n, n if validate is not None else None)
