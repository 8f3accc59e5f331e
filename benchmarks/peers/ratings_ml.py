"""Shared pieces of the MovieLens adapters (``*_ml.py``) of ``benchmarks/movielens.py``.

Every adapter module exposes::

    NAME: str                      # tool name shown in the table
    KNOB: str                      # the regularization parameter chosen on validation
    GRID: list[dict]               # the values of KNOB tried (merged over FIXED)
    FIXED: dict                    # the other settings, the same for every fit
    LABEL: str                     # short config shown in the table
    EARLY_STOPPING: bool           # True: fit monitors a validation set and keeps its best epoch
    version() -> str               # imports the tool; raises if it is not installed
    describe(params) -> str        # the exact configuration, for the report
    fit_predict(train, valid, test, params, seed) -> FitResult
    close() -> None                # release what the module started (JVM, ...)

``train``/``valid``/``test`` are :class:`Ratings`; ``valid`` is None for a tool without early
stopping in the final fits, ``test`` is None while tuning (only the validation RMSE counts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Ratings:
    """Ratings as 0-based user and item ids (the two one-hot fields) and targets."""

    users: np.ndarray  # int64, 0 .. n_users - 1
    items: np.ndarray  # int64, 0 .. n_items - 1
    y: np.ndarray  # float64
    n_users: int
    n_items: int

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx: np.ndarray) -> Ratings:
        return Ratings(self.users[idx], self.items[idx], self.y[idx], self.n_users, self.n_items)


@dataclass
class FitResult:
    pred: np.ndarray | None  # predictions on ``test`` (None while tuning)
    valid_rmse: float | None  # RMSE on ``valid`` of the kept model
    epochs: int  # epochs (passes, iterations) run
    best_epoch: int | None  # epoch whose model was kept (None: the last one)
    fit_seconds: float  # wall time of training, validation scoring included, test excluded


def rmse(pred, y) -> float:
    pred = np.asarray(pred, dtype=np.float64).ravel()
    return float(np.sqrt(np.mean((pred - np.asarray(y, dtype=np.float64)) ** 2)))


class Patience:
    """Early stopping on a validation RMSE: stop after ``patience`` epochs without a gain."""

    def __init__(self, patience: int, tol: float = 1e-4):
        self.patience, self.tol = patience, tol
        self.best, self.best_epoch, self.since = np.inf, 0, 0

    def update(self, epoch: int, value: float) -> tuple[bool, bool]:
        """(improved, stop) after ``epoch`` scored ``value``."""
        improved = value < self.best
        if improved:
            self.since = 0 if value < self.best - self.tol else self.since + 1
            self.best, self.best_epoch = value, epoch
        else:
            self.since += 1
        return improved, self.since >= self.patience or not np.isfinite(value)
