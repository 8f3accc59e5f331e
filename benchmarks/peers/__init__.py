"""Peer FM tools for ``benchmarks/throughput.py``, one small module each.

Every module exposes the same tiny interface::

    NAME: str                                   # tool name shown in the table
    configs(args) -> list[Config]               # what to run (each with its own thread counts)
    prepare(data, config) -> obj                # convert the data to the tool's format (untimed)
    warmup(obj) -> float | None                 # untimed warm-up; seconds of JIT compile if any
    train(obj, n_threads, epochs) -> float      # fresh model, fit; wall seconds of training only
    rmse(obj) -> float                          # RMSE of the last trained model on the holdout

``obj`` is whatever the module wants to keep between calls (converted data, last model).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TOOLS = ("fmlearn", "spark", "torchfm", "vw")
_MODULES = {
    "fmlearn": "fmlearn_peer",
    "spark": "spark_fm",
    "torchfm": "torchfm_peer",
    "vw": "vw_peer",
}


@dataclass
class Data:
    """The synthetic click-through-like set, as per-field category ids.

    ``train``/``test`` are ``(n, n_fields)`` int32 arrays of the category (0..n_cats-1) active
    in each field; the global feature id of field ``f``, category ``c`` is ``f * n_cats + c``.
    """

    train: np.ndarray
    y_train: np.ndarray
    test: np.ndarray
    y_test: np.ndarray
    n_cats: int
    distribution: str
    workdir: Path  # scratch folder for files a tool needs (VW text/cache, Spark libsvm)
    key: str  # identifies the data set (rows, distribution, seed) for cached conversions

    @property
    def n_fields(self) -> int:
        return self.train.shape[1]

    @property
    def n_features(self) -> int:
        return self.n_fields * self.n_cats

    def head(self, n_rows: int | None) -> Data:
        """The same data set with only the first ``n_rows`` training rows (holdout unchanged)."""
        if n_rows is None or n_rows >= len(self.train):
            return self
        return Data(
            self.train[:n_rows],
            self.y_train[:n_rows],
            self.test,
            self.y_test,
            self.n_cats,
            self.distribution,
            self.workdir,
            f"{self.key}-head{n_rows}",
        )

    def global_ids(self, part: str = "train") -> np.ndarray:
        """``(n, n_fields)`` int64 global feature ids of ``part`` ("train" or "test")."""
        fields = self.train if part == "train" else self.test
        offsets = np.arange(self.n_fields, dtype=np.int64) * self.n_cats
        return fields.astype(np.int64) + offsets


@dataclass
class Config:
    """One table row family: a tool configuration run at each of ``threads``.

    ``threads`` entries may be ``None`` for a thread count the tool cannot use (shown "n/a").
    ``max_rows`` caps the training rows for slow configurations; ``params`` is tool-specific.
    """

    label: str
    threads: tuple[int, ...] = (1, 2)
    max_rows: int | None = None
    params: dict = field(default_factory=dict)
    note: str = ""


def load(tool: str):
    """The peer module for ``tool`` (imported lazily: each needs its own packages)."""
    return importlib.import_module(f"{__name__}.{_MODULES[tool]}")


def holdout_rmse(pred: np.ndarray, y: np.ndarray) -> float:
    pred = np.asarray(pred, dtype=np.float64).ravel()
    return float(np.sqrt(np.mean((pred - np.asarray(y, dtype=np.float64)) ** 2)))
