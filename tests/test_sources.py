"""Batch sources: what a stochastic epoch reads (fmlearn.data.sources)."""

import numpy as np
import pytest

from fmlearn._kernels.losses import SQUARED
from fmlearn.data.design import as_kernel_csr
from fmlearn.data.sources import Batch, BatchSource, InMemorySource
from fmlearn.models import FMParams
from fmlearn.optim import AdaGradSolver, ALSSolver


class _Chunks(BatchSource):
    """Rows in fixed chunks, visited in a random order: a stand-in for a file stream."""

    def __init__(self, X, y, sw, n_chunks):
        self.parts = [
            Batch(as_kernel_csr(X[idx]), y[idx], sw[idx])
            for idx in np.array_split(np.arange(X.shape[0]), n_chunks)
        ]
        self.visits = 0

    @property
    def weight_sum(self):
        return float(sum(b.sample_weight.sum() for b in self.parts))

    def batches(self, rng):
        for i in rng.permutation(len(self.parts)):
            self.visits += 1
            yield self.parts[i]


def _problem(n=3000, d=30, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.random((n, d)) < 0.15).astype(np.float64)
    w, V = rng.normal(0, 1, d), rng.normal(0, 0.5, (d, k))
    y = X @ w + 0.5 * (((X @ V) ** 2).sum(1) - ((X**2) @ (V**2)).sum(1))
    return X, y, np.ones(n)


def _train(source, X, n_epochs=15):
    solver = AdaGradSolver(learning_rate=0.1, l2_reg_w=1e-5, l2_reg_V=1e-5, loss=SQUARED,
                           fit_intercept=True, fit_linear=True)
    rng = np.random.default_rng(0)
    params = FMParams.initialize(X.shape[1], 4, 0.1, rng,
                                 n_state=solver.state_columns(FMParams.n_param_columns(4)))
    state = solver.init_state(params)
    data = solver.prepare(source)
    losses = [solver.run_epoch(params, state, data, rng) / source.weight_sum
              for _ in range(n_epochs)]
    return params, losses


def test_an_epoch_visits_every_batch_of_a_chunked_source_and_learns_as_in_memory():
    X, y, sw = _problem()
    chunks = _Chunks(X, y, sw, 4)
    p_chunks, l_chunks = _train(chunks, X)
    assert chunks.visits == 4 * 15
    p_mem, l_mem = _train(InMemorySource(as_kernel_csr(X), y, sw), X)
    assert l_chunks[-1] < 0.2 * l_chunks[0]  # it learns
    # Shuffling within chunks rather than over all rows costs little here.
    assert l_chunks[-1] < 1.5 * l_mem[-1] + 1e-3
    Xk = as_kernel_csr(X)
    rmse = np.sqrt(np.mean((p_chunks.decision_function(Xk) - y) ** 2))
    assert rmse < 0.5 * np.std(y)


def test_in_memory_source_is_one_batch_with_its_weight_sum():
    X, y, sw = _problem(n=50)
    source = InMemorySource(as_kernel_csr(X), y, sw * 2)
    batches = list(source.batches(np.random.default_rng(0)))
    assert len(batches) == 1 and batches[0] is source.in_memory()
    assert source.n_rows == 50 and source.weight_sum == 100.0


def test_coordinate_solvers_need_the_rows_in_memory():
    X, y, sw = _problem(n=100)
    solver = ALSSolver(loss=SQUARED, l2_reg_w=1.0, l2_reg_V=1.0, fit_intercept=True,
                       fit_linear=True, prior_groups=None, n_kept_samples=None, max_iter=5)
    with pytest.raises(TypeError, match="does not hold its rows in memory.*'sgd'"):
        solver.prepare(_Chunks(X, y, sw, 2))
