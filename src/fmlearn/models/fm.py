"""Second-order FM parameters (:class:`FMParams`) and the prediction of relation-block designs."""

from __future__ import annotations

import numpy as np

from fmlearn._kernels import fm as fm_kernels
from fmlearn._kernels import hogwild
from fmlearn._kernels import sgd as sgd_kernels
from fmlearn._parallel import effective_n_jobs, run_blocks
from fmlearn.data.design import KernelCSR
from fmlearn.data.relation import BlockDesign
from fmlearn.models.table import TableParams


class FMParams(TableParams):
    """Parameters of ``y(x) = w0 + <w, x> + sum_{i<j} <v_i, v_j> x_i x_j``.

    Table row ``i``: ``[v_i (n_factors) | w_i | solver state]``; ``V`` and ``w`` are views.
    """

    kind = "fm"
    blocked = True

    @staticmethod
    def n_param_columns(n_factors: int) -> int:
        """Parameter columns of the table (before any solver state): ``V`` and ``w``."""
        return n_factors + 1

    @classmethod
    def initialize(
        cls, n_features, n_factors, init_stdev, rng, dtype=np.float32, w0=0.0, n_state=0
    ):
        """Zero bias and weights, factors from N(0, init_stdev^2), ``n_state`` zero columns."""
        table = cls._new_table(n_features, n_factors, n_state, init_stdev, rng, dtype)
        return cls(np.array([w0], dtype=dtype), table, n_factors)

    @property
    def wcol(self) -> int:
        return self.n_factors

    @property
    def V(self) -> np.ndarray:
        """Factors, shape (n_features, n_factors); a view into the table."""
        return self.table[:, : self.n_factors]

    def _like(self, w0, table):
        return FMParams(w0, table, self.n_factors)

    def posterior(self, capacity: int):
        """A Gibbs chain (:class:`~fmlearn.models.posterior.PosteriorFM`) starting at these
        parameters, with room for ``capacity`` kept samples."""
        from fmlearn.models.posterior import PosteriorFM

        return PosteriorFM.start(self, capacity)

    def decision_function(self, X, n_jobs: int = 1) -> np.ndarray:
        if isinstance(X, BlockDesign):
            return blocked_decision_function(self.w0, self.table, self.n_factors, X, n_jobs)
        return super().decision_function(X, n_jobs)

    def sgd_epoch(
        self, X: KernelCSR, y, sample_weight, order, w0_state, solver, concurrent=None
    ) -> float:
        """One (stochastic) pass of ``solver`` over ``order``; see :mod:`fmlearn._kernels.sgd`.

        ``w0_state``: the bias's solver state. Thread-safe in the Hogwild sense: the solver
        calls it from several threads on disjoint chunks of the order (``concurrent``), which
        then buffer the hot rows (see :meth:`_hot_rows`).
        """
        return sgd_kernels.sgd_epoch(
            X.indptr, X.indices, X.data, y, sample_weight, order,
            self.w0, w0_state, self.table, self.n_factors, solver.loss, solver.code,
            solver.kernel_args, solver.fit_intercept, solver.fit_linear,
            hot=self._hot_rows(X, order, concurrent), reg_scale=solver.reg_scale,
        )

    def _hot_lookup(self, X, slot, rows):
        # The FM epoch reads hot entries from a remapped copy of the indices (see
        # fmlearn._kernels.hogwild.hot_indices): any lookup beside the index cost it 30-40%.
        if rows.shape[0] == 0:
            return X.indices  # unused: without hot rows the plain kernel runs
        return hogwild.hot_indices(X.indices, slot, rows.shape[0])

    def _predict_block(self, indptr, X, out):
        fm_kernels.predict(indptr, X.indices, X.data, self.w0, self.table, self.n_factors, out)

    def _latent_arrays(self):
        return {"V": np.ascontiguousarray(self.V)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], state=None) -> FMParams:
        """Inverse of :meth:`arrays`, with optional solver-state columns (n_features, n_state).

        Raises ``ValueError`` if the shapes or dtypes do not fit together.
        """
        V = arrays["V"]
        if V.ndim != 2 or V.dtype != arrays["w"].dtype:
            raise ValueError(f"V must be 2-D of the dtype of w, got {V.shape} {V.dtype}")
        cls._check_common(arrays, V.shape[0])
        return cls(arrays["w0"].copy(), cls._assemble(arrays["w"], V, state), V.shape[1])




def blocked_decision_function(w0, table, k, X: BlockDesign, n_jobs=1, sums=None) -> np.ndarray:
    """FM output of each row of a relation-block design, at the cost of its unique rows.

    Each block's rows are summarized once (linear part, factor sums, squared terms; see
    :func:`fmlearn._kernels.fm.block_sums`), then every data row adds up its main part and
    the summaries of its block rows. ``sums`` (k, n_rows), if given, receives every row's
    factor sums.
    """
    n_block_rows = max(X.n_block_rows, 1)
    lin = np.zeros(n_block_rows)
    Q = np.zeros((n_block_rows, k))
    sq = np.zeros(n_block_rows)
    for b, off in zip(X.blocks, X.row_offset, strict=True):
        c = b.csr
        end = off + c.n_rows
        fm_kernels.block_sums(
            c.indptr, c.indices, c.data, b.col0, table, k, lin[off:end], Q[off:end], sq[off:end]
        )
    m = X.main
    out = np.empty(m.n_rows, dtype=np.float64)
    keep = sums is not None

    def block(a, z):
        scratch = sums if keep else np.empty((k, 1))  # one scratch column per thread
        fm_kernels.predict_blocked(
            m.indptr, m.indices, m.data, w0, table, k, X.idx, X.row_offset, lin, Q, sq, a, z, out,
            scratch, keep,
        )

    run_blocks(block, m.n_rows, min(effective_n_jobs(n_jobs), max(1, m.n_rows // 5000)))
    return out
