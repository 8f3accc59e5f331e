"""Fitted parameters of a second-order factorization machine.

``FMParams`` is the one container that solvers update, estimators expose (``w0_``, ``w_``,
``V_``) and model files store. Field-aware and higher-order models add their own containers
with the same small interface (``initialize``, ``decision_function``, ``arrays``,
``from_arrays``, ``copy``), so solvers and I/O need no per-model branches.
"""

from __future__ import annotations

import numpy as np

from fmlearn._kernels import fm as fm_kernels
from fmlearn._kernels import sgd as sgd_kernels
from fmlearn._parallel import effective_n_jobs, run_blocks
from fmlearn.data.design import KernelCSR


class FMParams:
    """Parameters of ``y(x) = w0 + <w, x> + sum_{i<j} <v_i, v_j> x_i x_j``.

    Stored as one table with a row per feature, ``[v_i (k) | w_i | solver state ...]``, so that
    a training step touches one contiguous row per feature (see :mod:`fmlearn._kernels.fm`).
    ``V`` and ``w`` are views into it.

    Parameters
    ----------
    w0 : ndarray, shape (1,)
        Global bias (an array so that kernels can update it in place).
    table : ndarray, shape (n_features, n_factors + 1 + n_state)
        C-contiguous parameter table.
    n_factors : int
    """

    kind = "fm"

    def __init__(self, w0: np.ndarray, table: np.ndarray, n_factors: int):
        self.w0, self.table, self.n_factors = w0, table, int(n_factors)

    @staticmethod
    def n_param_columns(n_factors: int) -> int:
        """Parameter columns of the table (before any solver state): ``V`` and ``w``."""
        return n_factors + 1

    @classmethod
    def initialize(
        cls, n_features, n_factors, init_stdev, rng, dtype=np.float32, w0=0.0, n_state=0
    ):
        """Zero bias and weights, factors from N(0, init_stdev^2), ``n_state`` zero columns."""
        table = np.zeros((n_features, n_factors + 1 + n_state), dtype=dtype)
        # Drawn in float32 whatever the dtype: half the memory and time on large models.
        V = rng.standard_normal((n_features, n_factors), dtype=np.float32)
        V *= np.float32(init_stdev)
        table[:, :n_factors] = V
        return cls(np.array([w0], dtype=dtype), table, n_factors)

    @property
    def n_features(self) -> int:
        return self.table.shape[0]

    @property
    def dtype(self):
        return self.table.dtype

    @property
    def V(self) -> np.ndarray:
        """Factors, shape (n_features, n_factors); a view into the table."""
        return self.table[:, : self.n_factors]

    @property
    def w(self) -> np.ndarray:
        """Linear weights, shape (n_features,); a view into the table."""
        return self.table[:, self.n_factors]

    @property
    def state(self) -> np.ndarray:
        """Solver-state columns, shape (n_features, n_state); a view into the table."""
        return self.table[:, self.n_factors + 1 :]

    def with_state(self, n_state: int) -> FMParams:
        """These parameters with ``n_state`` zeroed solver-state columns (a copy if changed)."""
        if self.state.shape[1] == n_state:
            return self
        table = np.zeros((self.n_features, self.n_factors + 1 + n_state), dtype=self.dtype)
        table[:, : self.n_factors + 1] = self.table[:, : self.n_factors + 1]
        return type(self)(self.w0.copy(), table, self.n_factors)

    def sgd_epoch(self, X: KernelCSR, y, sample_weight, order, acc_w0, solver) -> float:
        """One (stochastic) pass of ``solver`` over ``order``; see :mod:`fmlearn._kernels.sgd`.

        Thread-safe in the Hogwild sense: the solver calls it from several threads on disjoint
        chunks of the order.
        """
        return sgd_kernels.sgd_epoch(
            X.indptr, X.indices, X.data, y, sample_weight, order,
            self.w0, acc_w0, self.table, self.n_factors,
            solver.loss, solver.learning_rate, solver.l2_reg_w, solver.l2_reg_V,
            solver.adaptive, solver.fit_intercept, solver.fit_linear,
        )

    def decision_function(self, X: KernelCSR, n_jobs: int = 1) -> np.ndarray:
        """Raw model output for each row of ``X``; float64 of shape (n_rows,)."""
        out = np.empty(X.n_rows, dtype=np.float64)

        def block(a, b):
            fm_kernels.predict(
                X.indptr[a : b + 1], X.indices, X.data, self.w0, self.table, self.n_factors,
                out[a:b],
            )

        # Threads only pay off past a few thousand rows.
        n_threads = min(effective_n_jobs(n_jobs), max(1, X.n_rows // 5000))
        run_blocks(block, X.n_rows, n_threads)
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """The model arrays by name (contiguous copies), as stored in model files."""
        return {"w0": self.w0, "w": np.ascontiguousarray(self.w), "V": np.ascontiguousarray(self.V)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], state=None) -> FMParams:
        """Inverse of :meth:`arrays`, with optional solver-state columns (n_features, n_state).

        Raises ``ValueError`` if the shapes or dtypes do not fit together.
        """
        w0, w, V = arrays["w0"], arrays["w"], arrays["V"]
        if w0.shape != (1,) or w.ndim != 1 or V.ndim != 2 or V.shape[0] != w.shape[0]:
            raise ValueError(
                f"inconsistent FM parameter shapes: w0 {w0.shape}, w {w.shape}, V {V.shape}"
            )
        if not (w0.dtype == w.dtype == V.dtype) or V.dtype not in (np.float32, np.float64):
            raise ValueError(f"FM parameters must share a float dtype, got {w0.dtype}/{V.dtype}")
        n_state = 0 if state is None else state.shape[1]
        if state is not None and (state.ndim != 2 or state.shape[0] != w.shape[0]):
            raise ValueError(f"solver state of shape {state.shape} does not fit {w.shape[0]} rows")
        k = V.shape[1]
        table = np.empty((w.shape[0], k + 1 + n_state), dtype=V.dtype)
        table[:, :k] = V
        table[:, k] = w
        if state is not None:
            table[:, k + 1 :] = state
        return cls(w0.copy(), table, k)

    def copy(self) -> FMParams:
        return type(self)(self.w0.copy(), self.table.copy(), self.n_factors)

    def all_finite(self) -> bool:
        return bool(np.isfinite(self.w0).all() and np.isfinite(self.table).all())
