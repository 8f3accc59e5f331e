"""Fitted parameters of a second-order factorization machine.

``FMParams`` is the one container that solvers update, estimators expose (``w0_``, ``w_``,
``V_``) and model files store. Field-aware and higher-order models add their own containers
with the same small interface (``initialize``, ``decision_function``, ``arrays``,
``from_arrays``), so solvers and I/O need no per-model branches.
"""

from __future__ import annotations

import numpy as np

from fmlearn._kernels import fm as fm_kernels
from fmlearn._parallel import n_blocks_for, numba_threads
from fmlearn.data.design import KernelCSR


class FMParams:
    """Parameters ``w0``, ``w`` and ``V`` of ``y(x) = w0 + <w, x> + sum_{i<j} <v_i, v_j> x_i x_j``.

    Parameters
    ----------
    w0 : ndarray, shape (1,)
        Global bias (an array so that kernels can update it in place).
    w : ndarray, shape (n_features,)
        Linear weights.
    V : ndarray, shape (n_features, n_factors)
        Latent factors, one row per feature, C-contiguous.
    """

    kind = "fm"

    def __init__(self, w0: np.ndarray, w: np.ndarray, V: np.ndarray):
        self.w0, self.w, self.V = w0, w, V

    @classmethod
    def initialize(cls, n_features, n_factors, init_stdev, rng, dtype=np.float32, w0=0.0):
        """Zero bias and weights, factors drawn from N(0, init_stdev^2) with ``rng``."""
        # Drawn in float32 whatever the dtype: half the memory and time on large models.
        V = rng.standard_normal((n_features, n_factors), dtype=np.float32)
        V *= np.float32(init_stdev)
        V = V.astype(dtype, copy=False)
        return cls(
            np.array([w0], dtype=dtype), np.zeros(n_features, dtype=dtype), np.ascontiguousarray(V)
        )

    @staticmethod
    def nbytes_for(n_features: int, n_factors: int, dtype) -> int:
        """Bytes the parameters take, to refuse a hopeless allocation before trying it."""
        return n_features * (n_factors + 1) * np.dtype(dtype).itemsize

    @property
    def n_features(self) -> int:
        return self.w.shape[0]

    @property
    def n_factors(self) -> int:
        return self.V.shape[1]

    @property
    def dtype(self):
        return self.V.dtype

    def decision_function(self, X: KernelCSR, n_jobs: int = 1) -> np.ndarray:
        """Raw model output for each row of ``X``; float64 of shape (n_rows,)."""
        out = np.empty(X.n_rows, dtype=np.float64)
        with numba_threads(n_jobs) as n_threads:
            if n_threads == 1 or X.n_rows < 10_000:
                fm_kernels.predict_serial(X.indptr, X.indices, X.data, self.w0, self.w, self.V, out)
            else:
                fm_kernels.predict_parallel(
                    X.indptr, X.indices, X.data, self.w0, self.w, self.V, out,
                    n_blocks_for(X.n_rows, n_threads),
                )
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """The parameter arrays by name, as stored in model files."""
        return {"w0": self.w0, "w": self.w, "V": self.V}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> FMParams:
        """Inverse of :meth:`arrays`; raises ``ValueError`` if the shapes do not fit."""
        w0, w, V = arrays["w0"], arrays["w"], arrays["V"]
        if w0.shape != (1,) or w.ndim != 1 or V.ndim != 2 or V.shape[0] != w.shape[0]:
            raise ValueError(
                f"inconsistent FM parameter shapes: w0 {w0.shape}, w {w.shape}, V {V.shape}"
            )
        if not (w0.dtype == w.dtype == V.dtype) or V.dtype not in (np.float32, np.float64):
            raise ValueError(f"FM parameters must share a float dtype, got {w0.dtype}/{V.dtype}")
        return cls(
            np.ascontiguousarray(w0), np.ascontiguousarray(w), np.ascontiguousarray(V)
        )

    def copy(self) -> FMParams:
        return type(self)(self.w0.copy(), self.w.copy(), self.V.copy())

    def all_finite(self) -> bool:
        return bool(
            np.isfinite(self.w0).all() and np.isfinite(self.w).all() and np.isfinite(self.V).all()
        )
