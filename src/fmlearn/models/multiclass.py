"""Parameters of the multinomial (softmax) factorization machine for more than two classes.

One FM score per class, ``f_c(x) = w0_c + <w_c, x> + sum_{i<j} <v_ic, v_jc> x_i x_j``, and
``P(c | x) = softmax(f(x))_c``. Each class has its own low-rank factors (rank ``n_factors``),
so a row costs O(C * k * nnz). The kernels are in :mod:`fmlearn._kernels.multiclass`.

Layout: one shared table with a class axis rather than one table per class, so that an SGD
step on a feature touches one contiguous burst for all classes (the house layout, see
``docs/architecture.md``)::

    table[i] = [V[i, 0, :] | ... | V[i, C-1, :] | w[i, 0] ... w[i, C-1] | solver state]

with ``P = C * (n_factors + 1)`` parameter columns first; the solver keeps each of its state
values per parameter column in the same order after them. ``w0`` has shape (C,).
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

from fmlearn._kernels import multiclass as mc_kernels
from fmlearn._parallel import effective_n_jobs, run_blocks
from fmlearn.data.design import KernelCSR
from fmlearn.data.relation import BlockDesign
from fmlearn.models.table import TableParams


class MulticlassFMParams(TableParams):
    """Parameters of a multinomial FM over ``n_classes`` classes (see the module docstring).

    Views into the table (shapes for ``n`` features, ``C`` classes, ``k`` factors):

    - ``V``: (n, C, k), ``V[i, c]`` the factors of feature ``i`` for class ``c``;
    - ``w``: (n, C) linear weights;
    - ``state``: (n, n_state) solver-state columns.

    ``wcol`` (= C * k) is the column of ``w[:, 0]``; ``n_param`` (= C * (k + 1)) the number of
    parameter columns, where the solver state starts.
    """

    kind = "fm_multiclass"

    def __init__(self, w0: np.ndarray, table: np.ndarray, n_factors: int):
        super().__init__(w0, table, n_factors)
        self.n_classes = int(w0.shape[0])

    @staticmethod
    def n_param_columns(n_factors: int, n_classes: int) -> int:
        """Parameter columns of the table (before solver state): ``V`` and ``w``."""
        return n_classes * (n_factors + 1)

    @classmethod
    def initialize(
        cls, n_features, n_factors, n_classes, init_stdev, rng, dtype=np.float32, w0=0.0,
        n_state=0,
    ):
        """Zero weights, factors from N(0, init_stdev^2); ``w0`` a scalar or (n_classes,)."""
        # _new_table gives ``w`` one column; the other C - 1 come out of its zeroed tail.
        table = cls._new_table(
            n_features, n_classes * n_factors, n_classes - 1 + n_state, init_stdev, rng, dtype
        )
        bias = np.array(np.broadcast_to(np.asarray(w0, dtype=dtype), (n_classes,)))
        return cls(bias, table, n_factors)

    # -- layout
    @property
    def wcol(self) -> int:
        return self.n_classes * self.n_factors

    @property
    def n_param(self) -> int:
        return self.n_classes * (self.n_factors + 1)

    @property
    def w(self) -> np.ndarray:
        """Linear weights, shape (n_features, n_classes); a view into the table."""
        return self.table[:, self.wcol : self.n_param]

    @property
    def V(self) -> np.ndarray:
        """Factors, shape (n_features, n_classes, n_factors); a view into the table."""
        return self.table[:, : self.wcol].reshape(
            self.n_features, self.n_classes, self.n_factors
        )

    @property
    def state(self) -> np.ndarray:
        """Solver-state columns, shape (n_features, n_state); a view into the table."""
        return self.table[:, self.n_param :]

    def _like(self, w0, table):
        return MulticlassFMParams(w0, table, self.n_factors)

    def with_state(self, n_state: int):
        """These parameters with ``n_state`` zeroed solver-state columns (a copy if changed)."""
        if self.state.shape[1] == n_state:
            return self
        table = np.zeros((self.n_features, self.n_param + n_state), dtype=self.dtype)
        table[:, : self.n_param] = self.table[:, : self.n_param]
        return self._like(self.w0.copy(), table)

    # -- kernels
    def sgd_epoch(
        self, X: KernelCSR, y, sample_weight, order, w0_state, solver, concurrent=None
    ) -> float:
        """One (stochastic) pass of ``solver`` over ``order``; ``y`` float64 class indices.

        ``w0_state`` holds the biases' solver state, ``[state 0 of each class | state 1 of
        each]`` (ignored by plain SGD). Hogwild-safe as
        :meth:`fmlearn.models.fm.FMParams.sgd_epoch`.
        """
        return mc_kernels.sgd_epoch(
            X.indptr, X.indices, X.data, y, sample_weight, order,
            self.w0, w0_state, self.table, self.n_factors,
            solver.code, solver.kernel_args, solver.fit_intercept, solver.fit_linear,
            reg_scale=solver.reg_scale,
        )

    def decision_function(self, X: KernelCSR | BlockDesign, n_jobs: int = 1) -> np.ndarray:
        """Every class's score for each row of ``X``; float64 of shape (n_rows, n_classes)."""
        if isinstance(X, BlockDesign):
            X = X.expand()
        out = np.empty((X.n_rows, self.n_classes), dtype=np.float64)

        def block(a, b):
            mc_kernels.predict(
                X.indptr[a : b + 1], X.indices, X.data, self.w0, self.table, self.n_factors,
                out[a:b],
            )

        run_blocks(block, X.n_rows, min(effective_n_jobs(n_jobs), max(1, X.n_rows // 5000)))
        return out

    def mean_output(self, X, link="logit", n_jobs=1) -> np.ndarray:
        """Class probabilities ``softmax(f(x))``, shape (n_rows, n_classes).

        ``link`` is the binary model's name for its output link: the multinomial model has
        the multinomial logit (softmax) only.
        """
        if link not in ("logit", "softmax"):
            raise ValueError(f"the multinomial FM has a softmax output, not {link!r}")
        return softmax(self.decision_function(X, n_jobs), axis=1)

    # -- model files
    def _latent_arrays(self):
        return {"V": np.ascontiguousarray(self.V)}

    @classmethod
    def from_arrays(cls, arrays, state=None) -> MulticlassFMParams:
        """Inverse of :meth:`arrays` (``w0`` (C,), ``w`` (n, C), ``V`` (n, C, k)), with
        optional solver-state columns (n, n_state). Raises ``ValueError`` on a mismatch."""
        w0, w, V = arrays["w0"], arrays["w"], arrays["V"]
        if (w0.ndim != 1 or not w0.size or V.ndim != 3 or V.shape[1:2] != w0.shape
                or w.shape != V.shape[:2]):
            raise ValueError(
                f"inconsistent parameter shapes: w0 {w0.shape}, w {w.shape}, V {V.shape} (want "
                "(C,), (n_features, C) and (n_features, C, n_factors))"
            )
        if not (w0.dtype == w.dtype == V.dtype) or w.dtype not in (np.float32, np.float64):
            raise ValueError(
                f"parameters must share a float dtype, got {w0.dtype}/{w.dtype}/{V.dtype}"
            )
        n, n_classes, k = V.shape
        # _assemble writes [latent | one w column | state]: the latent part is V and the
        # first C - 1 weight columns, the last weight column is its ``w``.
        latent = np.concatenate([V.reshape(n, n_classes * k), w[:, :-1]], axis=1)
        return cls(w0.copy(), cls._assemble(w[:, -1], latent, state), k)
