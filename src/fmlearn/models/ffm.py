"""Field-aware FM parameters (:class:`FFMParams`), the libffm layout."""

from __future__ import annotations

import numpy as np

from fmlearn._kernels import ffm as ffm_kernels
from fmlearn.models.table import TableParams


class FFMParams(TableParams):
    """Parameters of a field-aware FM (Juan et al. 2016).

    Table row ``i``: ``[v_{i,0} | ... | v_{i,n_fields-1} | w_i | solver state]``, each ``v`` of
    length ``n_factors``; ``V`` is a view of shape (n_features, n_fields, n_factors).
    ``fields`` int32 (n_features,) maps each feature to its field.
    """

    kind = "ffm"

    def __init__(self, w0, table, n_factors, fields):
        super().__init__(w0, table, n_factors)
        self.fields = fields
        self.n_fields = int(fields.max()) + 1 if fields.size else 1

    @staticmethod
    def n_param_columns(n_factors: int, n_fields: int) -> int:
        return n_fields * n_factors + 1

    @classmethod
    def initialize(
        cls, n_features, n_factors, init_stdev, rng, fields, dtype=np.float32, w0=0.0, n_state=0
    ):
        """As :meth:`FMParams.initialize`; ``fields`` int32 (n_features,) in [0, n_fields)."""
        n_fields = int(fields.max()) + 1 if fields.size else 1
        table = cls._new_table(n_features, n_fields * n_factors, n_state, init_stdev, rng, dtype)
        return cls(np.array([w0], dtype=dtype), table, n_factors, fields)

    @property
    def wcol(self) -> int:
        return self.n_fields * self.n_factors

    @property
    def V(self) -> np.ndarray:
        """Field-aware factors, shape (n_features, n_fields, n_factors); a view."""
        return self.table[:, : self.wcol].reshape(self.n_features, self.n_fields, self.n_factors)

    def _like(self, w0, table):
        return FFMParams(w0, table, self.n_factors, self.fields)

    def sgd_epoch(
        self, X, y, sample_weight, order, w0_state, solver, concurrent=None
    ) -> float:
        """One (stochastic) pass; see :mod:`fmlearn._kernels.ffm`.

        Several threads (``concurrent``) buffer the hot rows (see :meth:`_hot_rows`). Every
        row updates a feature of each of its fields, so with small fields plain Hogwild threads
        passed those rows' cache lines back and forth all the time (2 threads were 2x slower
        than one on Frappe).
        """
        return ffm_kernels.sgd_epoch(
            X.indptr, X.indices, X.data, y, sample_weight, order,
            self.w0, w0_state, self.table, self.n_factors, self.fields, self.wcol,
            solver.loss, solver.code, solver.kernel_args, solver.fit_intercept,
            solver.fit_linear, hot=self._hot_rows(X, order, concurrent),
            reg_scale=solver.reg_scale,
        )

    def _predict_block(self, indptr, X, out):
        ffm_kernels.predict(
            indptr, X.indices, X.data, self.w0, self.table, self.n_factors, self.fields,
            self.wcol, out,
        )

    def _latent_arrays(self):
        return {"V": np.ascontiguousarray(self.V), "fields": self.fields}

    @classmethod
    def from_arrays(cls, arrays, state=None) -> FFMParams:
        V, fields = arrays["V"], arrays["fields"]
        if V.ndim != 3 or V.dtype != arrays["w"].dtype:
            raise ValueError(f"V must be 3-D of the dtype of w, got {V.shape} {V.dtype}")
        if fields.shape != (V.shape[0],) or fields.dtype != np.int32:
            raise ValueError(f"fields must be int32 of shape ({V.shape[0]},)")
        if fields.size and (fields.min() < 0 or fields.max() >= V.shape[1]):
            raise ValueError(f"fields must lie in [0, {V.shape[1]})")
        cls._check_common(arrays, V.shape[0])
        latent = V.reshape(V.shape[0], -1)
        return cls(arrays["w0"].copy(), cls._assemble(arrays["w"], latent, state), V.shape[2],
                   fields.copy())


