"""Higher-order FM parameters (:class:`HOFMParams`): one block of factors per order."""

from __future__ import annotations

import numpy as np

from fmlearn._kernels import hofm as hofm_kernels
from fmlearn.data.design import KernelCSR
from fmlearn.models.table import TableParams

# Highest order the kernels support.
MAX_DEGREE = 5


class HOFMParams(TableParams):
    """Parameters of a higher-order FM (Blondel et al. 2016).

    Table row ``i``: ``[P^(2)_i | P^(3)_i | ... | P^(degree)_i | w_i | solver state]``, each
    ``P^(m)_i`` of length ``n_factors``; ``wcol = (degree - 1) * n_factors``. ``P`` is a view
    of shape (degree - 1, n_features, n_factors) (``P[m - 2]`` = ``P^(m)``) and ``V`` the view
    ``P^(2)`` of shape (n_features, n_factors), so that a degree-2 model reads like an FM.
    """

    kind = "hofm"

    def __init__(self, w0, table, n_factors, degree):
        super().__init__(w0, table, n_factors)
        self.degree = int(degree)

    @staticmethod
    def n_param_columns(n_factors: int, degree: int) -> int:
        """Parameter columns of the table (before any solver state): ``P`` and ``w``."""
        return (degree - 1) * n_factors + 1

    @classmethod
    def initialize(
        cls, n_features, n_factors, init_stdev, rng, degree, dtype=np.float32, w0=0.0, n_state=0
    ):
        """Zero bias and weights, every order's factors from N(0, init_stdev^2).

        One spread for all orders, as polylearn (the authors' implementation) does; a degree-2 model
        draws exactly what :meth:`FMParams.initialize` draws. Why not scale the higher orders
        up (their weights are products of ``m`` factors, spread ``init_stdev^m``): at init,
        with unit feature values, order ``m`` adds a term of variance about
        ``k * C(nnz, m) * init_stdev^(2m)`` to the output, ``(2 / m!) (nnz * init_stdev^2)^(m-2)``
        times the pairwise part's. With one spread this ratio stays below 1 up to
        ``nnz * init_stdev^2`` of about 3 (some 300 non-zeros per row at the default 0.1): the
        higher orders start as a small perturbation of an FM. Scaling order ``m`` to
        ``init_stdev^(2/m)`` (m-way weights as spread as pairwise ones) makes the ratio
        ``(2 / m!) nnz^(m-2)`` instead; on synthetic one-hot data from a hidden HOFM it trained
        no better with 5 to 8 non-zeros per row and clearly worse with 20 at degree 5.
        """
        table = cls._new_table(n_features, (degree - 1) * n_factors, n_state, init_stdev, rng,
                               dtype)
        return cls(np.array([w0], dtype=dtype), table, n_factors, degree)

    @property
    def wcol(self) -> int:
        return (self.degree - 1) * self.n_factors

    @property
    def P(self) -> np.ndarray:
        """Factors of every order, shape (degree - 1, n_features, n_factors); a view."""
        latent = self.table[:, : self.wcol].reshape(
            self.n_features, self.degree - 1, self.n_factors
        )
        return np.moveaxis(latent, 1, 0)

    @property
    def V(self) -> np.ndarray:
        """Second-order factors ``P^(2)``, shape (n_features, n_factors); a view."""
        return self.table[:, : self.n_factors]

    def _like(self, w0, table):
        return HOFMParams(w0, table, self.n_factors, self.degree)

    def sgd_epoch(
        self, X: KernelCSR, y, sample_weight, order, w0_state, solver, concurrent=None
    ) -> float:
        """One (stochastic) pass; see :mod:`fmlearn._kernels.hofm`. Hogwild-safe."""
        return hofm_kernels.sgd_epoch(
            X.indptr, X.indices, X.data, y, sample_weight, order,
            self.w0, w0_state, self.table, self.n_factors, self.degree, self.wcol,
            solver.loss, solver.code, solver.kernel_args, solver.fit_intercept,
            solver.fit_linear, reg_scale=solver.reg_scale,
        )

    def _predict_block(self, indptr, X, out):
        hofm_kernels.predict(
            indptr, X.indices, X.data, self.w0, self.table, self.n_factors, self.degree,
            self.wcol, out,
        )

    def _latent_arrays(self):
        return {"P": np.ascontiguousarray(self.P)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], state=None) -> HOFMParams:
        """Inverse of :meth:`arrays`, with optional solver-state columns (n_features, n_state).

        ``arrays["P"]`` has shape (degree - 1, n_features, n_factors). Raises ``ValueError`` if
        the shapes or dtypes do not fit together.
        """
        P = arrays["P"]
        if P.ndim != 3 or P.dtype != arrays["w"].dtype:
            raise ValueError(f"P must be 3-D of the dtype of w, got {P.shape} {P.dtype}")
        if not 1 <= P.shape[0] <= MAX_DEGREE - 1:
            raise ValueError(f"P must hold 1 to {MAX_DEGREE - 1} orders, got {P.shape[0]}")
        cls._check_common(arrays, P.shape[1])
        latent = np.moveaxis(P, 0, 1).reshape(P.shape[1], -1)
        table = cls._assemble(arrays["w"], latent, state)
        return cls(arrays["w0"].copy(), table, P.shape[2], P.shape[0] + 1)


