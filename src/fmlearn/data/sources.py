"""Batch sources: the training rows an epoch visits, as batches of kernel arrays.

The engine's epoch asks its solver for one pass; a stochastic solver takes that pass batch by
batch from a :class:`BatchSource`, shuffling the rows within each batch. Data in memory is
one batch (:class:`InMemorySource`), so an epoch is one shuffled pass over all rows, exactly
as before there were sources. A file stream, an on-disk cache or a Dask partition implements
the same two methods, and everything above it (solvers, the engine, callbacks, ``history_``)
stays as it is. Solvers that need every row at once (ALS and MCMC sweep by column) ask for
:meth:`BatchSource.in_memory`, which only sources that fit in memory provide.

Implementations: :class:`InMemorySource` (rows in memory: one batch) and
:class:`fmlearn.data.cache.CachedSource` (a binary block cache of text files, CSV/Parquet or
an iterator of chunks: one batch per block, blocks reshuffled every epoch, the next block read
on a thread; see ``docs/out-of-core.md``).

The interface, for any consumer (the SGD-type solvers, deep models, a Dask worker):

- ``batches(rng)``: the batches of one epoch, each a :class:`Batch` ``(X, y,
  sample_weight)`` with ``X`` a :class:`~fmlearn.data.design.KernelCSR` (CSR arrays:
  int64 ``indptr``, int32 ``indices``, float32/float64 ``data``, ``n_features``) and ``y``,
  ``sample_weight`` float64 of ``X.n_rows``. A source may shuffle the order of its batches
  with ``rng``; rows within a batch come in stored order (the consumer shuffles them). A
  batch may be released after the next one is asked for: keep arrays only by copying.
- ``weight_sum``: the sum of all sample weights (loss sums -> metrics).
- ``in_memory()``: all rows as one batch, or ``TypeError`` for a stream.
- Metadata (optional; both sources have it): ``n_rows``, ``n_features`` (the width of every
  batch's ``X``) and, for a cache, ``nnz``, ``n_blocks`` and ``fields`` (the field of each
  feature, int32, or None).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from fmlearn.data.design import KernelCSR
from fmlearn.data.relation import BlockDesign

__all__ = ["Batch", "BatchSource", "InMemorySource"]


class Batch(NamedTuple):
    """Rows ready for the kernels.

    Attributes
    ----------
    X : KernelCSR or BlockDesign
        ``n_rows`` rows in the model's columns.
    y : ndarray of float64, shape (n_rows,)
        Targets, encoded by the task.
    sample_weight : ndarray of float64, shape (n_rows,)
    """

    X: KernelCSR | BlockDesign
    y: np.ndarray
    sample_weight: np.ndarray


class BatchSource:
    """What a stochastic epoch reads: batches of rows, in an order it may randomize."""

    def batches(self, rng: np.random.Generator) -> Iterator[Batch]:
        """The batches of one epoch (a source of several may shuffle their order with
        ``rng``; rows within a batch are shuffled by the solver)."""
        raise NotImplementedError

    @property
    def weight_sum(self) -> float:
        """Sum of the sample weights of all rows (turns loss sums into metrics)."""
        raise NotImplementedError

    def in_memory(self) -> Batch:
        """All rows as one batch, for solvers that sweep by column (ALS, MCMC)."""
        raise TypeError(
            f"{type(self).__name__} does not hold its rows in memory; solver='als' and "
            "'mcmc' need them all at once: use solver='sgd', 'adagrad' or 'ftrl'."
        )


class InMemorySource(BatchSource):
    """Rows already in memory: one batch.

    Parameters
    ----------
    X : KernelCSR or BlockDesign
    y : ndarray of float64, shape (n_rows,)
    sample_weight : ndarray of float64, shape (n_rows,)
    """

    def __init__(self, X, y, sample_weight):
        self.batch = Batch(X, y, sample_weight)

    @property
    def n_rows(self) -> int:
        return self.batch.X.n_rows

    @property
    def n_features(self) -> int:
        return int(self.batch.X.n_features)  # KernelCSR and BlockDesign both have it

    @property
    def weight_sum(self) -> float:
        return float(self.batch.sample_weight.sum())

    def batches(self, rng):
        yield self.batch

    def in_memory(self) -> Batch:
        return self.batch
