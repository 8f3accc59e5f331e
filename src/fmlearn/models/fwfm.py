"""Field-weighted FM parameters (:class:`FwFMParams`): FM's table plus field-pair weights."""

from __future__ import annotations

import numpy as np

from fmlearn._kernels import fwfm as fwfm_kernels
from fmlearn._kernels.updates import ADAGRAD_INITIAL_ACCUMULATOR
from fmlearn.models.table import TableParams

# The value L2 pulls the field-pair weights towards: 1, a plain FM (with little data an FwFM
# falls back to the FM instead of collapsing to its linear part, as a pull towards 0 did).
R_CENTER = 1.0


class FwFMParams(TableParams):
    """Parameters of a field-weighted FM (Pan et al. 2018).

    Table row ``i``: FM's ``[v_i (n_factors) | w_i | solver state]``; ``V`` and ``w`` are
    views. Beside the table: ``r`` (n_fields, n_fields), the symmetric field-pair weights;
    ``acc_r``, their solver state: of ``r``'s shape for solvers with at most one state value per
    parameter (AdaGrad's sums; unused by plain SGD), (n_states, n_fields, n_fields) otherwise
    (FTRL's ``z`` and ``n``); ``fields`` int32
    (n_features,) mapping each feature to its field; ``reg_r``, the L2 strength on ``r``
    (a training option the estimator sets before every fit, since solvers know only the FM
    hyper-parameters); and ``r_center``, the value that L2 pulls ``r`` towards: 1 (a plain FM,
    :data:`R_CENTER`) for models made today, 0 for model files written before the prior
    towards 1 (no ``r_center`` array), which so train on exactly as they did (their FTRL
    state of ``r`` is that of ``r`` itself, not of ``r - 1``).
    """

    kind = "fwfm"
    # Solver state held beside the table, by attribute name. Like the table's state columns
    # (and only when there are some), model files keep each under ``state/<name>``, and
    # loading passes it back to :meth:`from_arrays` as a keyword.
    extra_state = ("acc_r",)

    def __init__(self, w0, table, n_factors, fields, r, acc_r=None, reg_r=0.0,
                 r_center=R_CENTER):
        super().__init__(w0, table, n_factors)
        self.fields = fields
        self.r = r
        if acc_r is None:
            # As many state values as the table has per parameter column.
            n_states = self.state.shape[1] // (n_factors + 1)
            if n_states <= 1:
                acc_r = np.full_like(r, ADAGRAD_INITIAL_ACCUMULATOR)
            else:
                acc_r = np.zeros((n_states, *r.shape), dtype=r.dtype)
        self.acc_r = acc_r
        self.reg_r = float(reg_r)
        self.r_center = float(r_center)

    @staticmethod
    def n_param_columns(n_factors: int) -> int:
        """Parameter columns of the table (before any solver state): ``V`` and ``w``."""
        return n_factors + 1

    @classmethod
    def initialize(
        cls, n_features, n_factors, init_stdev, rng, fields, dtype=np.float32, w0=0.0,
        n_state=0, reg_r=0.0,
    ):
        """As :meth:`fmlearn.models.fm.FMParams.initialize`, with every ``r`` at 1 (a plain FM).

        ``fields`` int32 (n_features,) in ``[0, n_fields)``; ``n_fields = fields.max() + 1``.
        """
        n_fields = int(fields.max()) + 1 if fields.size else 1
        table = cls._new_table(n_features, n_factors, n_state, init_stdev, rng, dtype)
        r = np.ones((n_fields, n_fields), dtype=dtype)
        return cls(np.array([w0], dtype=dtype), table, n_factors, fields, r, reg_r=reg_r)

    @property
    def wcol(self) -> int:
        return self.n_factors

    @property
    def n_fields(self) -> int:
        return self.r.shape[0]

    @property
    def V(self) -> np.ndarray:
        """Factors, shape (n_features, n_factors); a view into the table."""
        return self.table[:, : self.n_factors]

    def _like(self, w0, table):
        # New solver state (see with_state): r carries over, its accumulators start afresh.
        return FwFMParams(w0, table, self.n_factors, self.fields, self.r.copy(),
                          reg_r=self.reg_r, r_center=self.r_center)

    def copy(self):
        return FwFMParams(self.w0.copy(), self.table.copy(), self.n_factors, self.fields,
                          self.r.copy(), self.acc_r.copy(), self.reg_r, self.r_center)

    def all_finite(self) -> bool:
        return super().all_finite() and bool(np.isfinite(self.r).all())

    def coordinate_groups(self, n_states, l1_w, l2_w, l2_V):
        """FM's groups and the field-pair weights ``r`` (L2 ``reg_r``) with ``acc_r``.

        ``r`` is given as ``r - r_center`` (a copy), the coordinates its rule runs in (see
        :func:`fmlearn._kernels.updates.addr_step_toward`), so FTRL's ``z`` reproduces ``r``.
        """
        groups = super().coordinate_groups(n_states, l1_w, l2_w, l2_V)
        states = list(self.acc_r.reshape(-1, *self.r.shape)[:n_states])
        return [*groups, (self.r - self.r.dtype.type(self.r_center), states, 0.0, self.reg_r)]

    def sgd_epoch(
        self, X, y, sample_weight, order, w0_state, solver, concurrent=None
    ) -> float:
        """One (stochastic) pass; see :mod:`fmlearn._kernels.fwfm`."""
        return fwfm_kernels.sgd_epoch(
            X.indptr, X.indices, X.data, y, sample_weight, order,
            self.w0, w0_state, self.table, self.n_factors, self.fields, self.r,
            self.acc_r.reshape(-1, *self.r.shape), solver.loss, solver.code,
            solver.kernel_args, self.reg_r, solver.fit_intercept, solver.fit_linear,
            reg_scale=solver.reg_scale, r_center=self.r_center,
        )

    def _predict_block(self, indptr, X, out):
        fwfm_kernels.predict(
            indptr, X.indices, X.data, self.w0, self.table, self.n_factors, self.fields,
            self.r, out,
        )

    def _latent_arrays(self):
        return {"V": np.ascontiguousarray(self.V), "r": self.r, "fields": self.fields,
                "r_center": np.array([self.r_center], dtype=self.r.dtype)}

    @classmethod
    def from_arrays(cls, arrays, state=None, acc_r=None) -> FwFMParams:
        """Inverse of :meth:`arrays`, with optional solver state.

        Parameters
        ----------
        arrays : dict of str to ndarray
            ``w0``, ``w``, ``V``, ``r``, ``fields`` and ``r_center`` (shape (1,); absent from
            files written before the prior towards 1, which get 0: the penalty they trained
            with); an ``acc_r`` there (model files written before ``acc_r`` moved to the
            solver state) is used when ``acc_r`` is None.
        state : ndarray of shape (n_features, n_state), optional
            The table's solver-state columns.
        acc_r : ndarray of the dtype of ``r``, optional
            Solver state of ``r`` (see :attr:`extra_state`): of ``r``'s shape (AdaGrad's
            sums), or (n_states, n_fields, n_fields) (FTRL); None starts it afresh.

        Raises
        ------
        ValueError
            If the shapes or dtypes do not fit together.
        """
        V, r, fields = arrays["V"], arrays["r"], arrays["fields"]
        dtype = arrays["w"].dtype
        if V.ndim != 2 or V.dtype != dtype:
            raise ValueError(f"V must be 2-D of the dtype of w, got {V.shape} {V.dtype}")
        if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] < 1 or r.dtype != dtype:
            raise ValueError(f"r must be square of the dtype of w, got {r.shape} {r.dtype}")
        if not np.array_equal(r, r.T):
            raise ValueError("r must be symmetric")
        if fields.shape != (V.shape[0],) or fields.dtype != np.int32:
            raise ValueError(f"fields must be int32 of shape ({V.shape[0]},)")
        if fields.size and (fields.min() < 0 or fields.max() >= r.shape[0]):
            raise ValueError(f"fields must lie in [0, {r.shape[0]})")
        center = arrays.get("r_center")
        if center is None:
            center = 0.0
        elif center.shape != (1,) or center.dtype != dtype or center[0] not in (0.0, 1.0):
            raise ValueError(f"r_center must be [0.] or [1.] of the dtype of w, got {center!r}")
        else:
            center = float(center[0])
        if acc_r is None:
            acc_r = arrays.get("acc_r")
        if acc_r is not None:
            if acc_r.shape[-2:] != r.shape or acc_r.ndim not in (2, 3) or acc_r.dtype != dtype:
                raise ValueError(f"acc_r must be of the shape and dtype of r (or a stack of "
                                 f"them), got {acc_r.shape}")
            acc_r = acc_r.copy()
        cls._check_common(arrays, V.shape[0])
        return cls(arrays["w0"].copy(), cls._assemble(arrays["w"], V, state), V.shape[1],
                   fields.copy(), r.copy(), acc_r, r_center=center)


