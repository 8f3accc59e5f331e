"""Fitted parameters of factorization machines, one container class per model family.

A container is what solvers update, estimators expose (``w0_``, ``w_``, ``V_``) and model files
store. Every family keeps a bias ``w0`` and one table row per feature,
``[latent columns | w_i | solver state]`` (see :mod:`fmlearn._kernels.fm` for why), and
differs only in what the latent columns mean and which kernels read them. Solvers and I/O use
the small shared interface (``initialize``, ``sgd_epoch``, ``decision_function``, ``arrays``,
``from_arrays``, ``with_state``, ``copy``), so they need no per-model branches.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np
from scipy.special import expit, ndtr

from fmlearn._kernels import ffm as ffm_kernels
from fmlearn._kernels import fm as fm_kernels
from fmlearn._kernels import hogwild
from fmlearn._kernels import ordinal as ordinal_kernels
from fmlearn._kernels import sgd as sgd_kernels
from fmlearn._parallel import effective_n_jobs, run_blocks
from fmlearn.data.design import KernelCSR
from fmlearn.data.relation import BlockDesign

# Output links: the regression identity, the logistic (SGD) and probit (ALS, MCMC) models.
LINKS = {"identity": lambda f: f, "logit": expit, "probit": ndtr}


_HOT_LOCK = threading.Lock()


def _drop_hot(params_ref, key):
    """Forget the hot rows cached for a design whose index array is gone."""
    params = params_ref()
    if params is not None and params._hot is not None and params._hot[0] == key:
        params._hot = None


class TableParams:
    """Shared storage: bias ``w0`` (1,) and ``table`` (n_features, wcol + 1 + n_state).

    Subclasses define ``kind``, ``latent_columns`` (= ``wcol``, the column of ``w``), the
    kernels, and the named arrays of model files.
    """

    kind = ""

    def __init__(self, w0: np.ndarray, table: np.ndarray, n_factors: int):
        self.w0, self.table, self.n_factors = w0, table, int(n_factors)
        self._init_hogwild()

    def _init_hogwild(self):
        # Several threads training this table at once (Hogwild) share one merge lock for
        # their hot rows, and the hot features of the current design (see _hot_rows).
        self._merge_lock = np.zeros(16, dtype=np.int32)  # 64 bytes: a cache line of its own
        self._hot = None

    # -- layout
    @property
    def wcol(self) -> int:
        """Column of the linear weights; the latent columns come before it."""
        raise NotImplementedError

    @property
    def n_features(self) -> int:
        return self.table.shape[0]

    @property
    def dtype(self):
        return self.table.dtype

    @property
    def w(self) -> np.ndarray:
        """Linear weights, shape (n_features,); a view into the table."""
        return self.table[:, self.wcol]

    @property
    def state(self) -> np.ndarray:
        """Solver-state columns, shape (n_features, n_state); a view into the table."""
        return self.table[:, self.wcol + 1 :]

    @staticmethod
    def _new_table(n_features, n_latent, n_state, init_stdev, rng, dtype):
        table = np.zeros((n_features, n_latent + 1 + n_state), dtype=dtype)
        # Drawn in float32 whatever the dtype, and in slices of about 1 MB: the same numbers
        # as one draw (the generator fills in order), without a temporary as large as the
        # factors (on 1M features it took longer to fault in than to fill).
        step = max(1, (1 << 18) // max(n_latent, 1))
        scale = np.float32(init_stdev)
        for a in range(0, n_features, step):
            b = min(n_features, a + step)
            latent = rng.standard_normal((b - a, n_latent), dtype=np.float32)
            latent *= scale
            table[a:b, :n_latent] = latent
        return table

    def _like(self, w0, table):
        """A container of the same family and shape metadata over new arrays."""
        raise NotImplementedError

    def with_state(self, n_state: int):
        """These parameters with ``n_state`` zeroed solver-state columns (a copy if changed)."""
        if self.state.shape[1] == n_state:
            return self
        table = np.zeros((self.n_features, self.wcol + 1 + n_state), dtype=self.dtype)
        table[:, : self.wcol + 1] = self.table[:, : self.wcol + 1]
        return self._like(self.w0.copy(), table)

    def copy(self):
        return self._like(self.w0.copy(), self.table.copy())

    def as_point(self):
        """One point estimate of the parameters (a posterior gives its current sample)."""
        return self

    def all_finite(self) -> bool:
        return bool(np.isfinite(self.w0).all() and np.isfinite(self.table).all())

    # -- concurrent epochs
    def _hot_rows(self, X, order):
        """``hot`` for an epoch kernel (see :mod:`fmlearn._kernels.hogwild`) run on ``order``.

        Called on a part of the rows (``order`` shorter than ``X``), the solver's threads are
        training this table at once: each then keeps its own copies of the hot features' rows
        and of the bias, and merges its changes into the table every few hundred rows, instead
        of passing their cache lines back and forth with the other threads at nearly every
        row. Returns ``(lookup, rows, lock)`` (see :meth:`_hot_lookup`), computed once per
        design and kept while its index array lives, or None on all the rows (one thread).
        """
        if order.shape[0] >= X.n_rows:
            return None
        key = (id(X.indices), X.indices.shape[0], X.n_rows)
        cached = self._hot
        if cached is None or cached[0] != key:
            with _HOT_LOCK:  # the threads of the first epoch all get here
                cached = self._hot
                if cached is None or cached[0] != key:
                    slot, rows = hogwild.hot_features(X.indices, self.n_features, X.n_rows)
                    hot = (self._hot_lookup(X, slot, rows), rows, self._merge_lock)
                    cached = self._hot = (key, hot)
                    # The lookup may be as large as the design: drop it with the design.
                    weakref.finalize(X.indices, _drop_hot, weakref.ref(self), key)
        return cached[1]

    def _hot_lookup(self, X, slot, rows):
        """What the family's epoch kernel finds hot features by: ``slot`` from
        :func:`fmlearn._kernels.hogwild.hot_features` by default."""
        return slot

    def __getstate__(self):
        # Caches and the lock are per process (and per run of the threads).
        state = dict(self.__dict__)
        state.pop("_hot", None)
        state.pop("_merge_lock", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_hogwild()

    # -- kernels
    def _predict_block(self, indptr, X: KernelCSR, out) -> None:
        raise NotImplementedError

    def decision_function(self, X: KernelCSR | BlockDesign, n_jobs: int = 1) -> np.ndarray:
        """Raw model output for each row of ``X``; float64 of shape (n_rows,).

        Relation blocks are expanded to plain rows unless the family has a blocked kernel.
        """
        if isinstance(X, BlockDesign):
            X = X.expand()
        out = np.empty(X.n_rows, dtype=np.float64)

        def block(a, b):
            self._predict_block(X.indptr[a : b + 1], X, out[a:b])

        # Threads only pay off past a few thousand rows.
        n_threads = min(effective_n_jobs(n_jobs), max(1, X.n_rows // 5000))
        run_blocks(block, X.n_rows, n_threads)
        return out

    def mean_output(self, X, link="identity", n_jobs=1) -> np.ndarray:
        """``link(y(x))`` for each row of ``X`` (a posterior averages it over samples)."""
        return LINKS[link](self.decision_function(X, n_jobs))

    # -- model files
    def _latent_arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def arrays(self) -> dict[str, np.ndarray]:
        """The model arrays by name (contiguous copies), as stored in model files."""
        return {"w0": self.w0, "w": np.ascontiguousarray(self.w), **self._latent_arrays()}

    @staticmethod
    def _check_common(arrays, n_latent_rows):
        w0, w = arrays["w0"], arrays["w"]
        if w0.shape != (1,) or w.ndim != 1 or n_latent_rows != w.shape[0]:
            raise ValueError(f"inconsistent parameter shapes: w0 {w0.shape}, w {w.shape}")
        if w0.dtype != w.dtype or w.dtype not in (np.float32, np.float64):
            raise ValueError(f"parameters must share a float dtype, got {w0.dtype}/{w.dtype}")

    @staticmethod
    def _assemble(w, latent2d, state):
        """Table from ``w`` (n,), latent columns (n, L) and optional state (n, S)."""
        n, n_latent = latent2d.shape
        n_state = 0 if state is None else state.shape[1]
        if state is not None and (state.ndim != 2 or state.shape[0] != n):
            raise ValueError(f"solver state of shape {state.shape} does not fit {n} rows")
        table = np.empty((n, n_latent + 1 + n_state), dtype=w.dtype)
        table[:, :n_latent] = latent2d
        table[:, n_latent] = w
        if state is not None:
            table[:, n_latent + 1 :] = state
        return table


class FMParams(TableParams):
    """Parameters of ``y(x) = w0 + <w, x> + sum_{i<j} <v_i, v_j> x_i x_j``.

    Table row ``i``: ``[v_i (n_factors) | w_i | solver state]``; ``V`` and ``w`` are views.
    """

    kind = "fm"

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

    def decision_function(self, X, n_jobs: int = 1) -> np.ndarray:
        if isinstance(X, BlockDesign):
            return blocked_decision_function(self.w0, self.table, self.n_factors, X, n_jobs)
        return super().decision_function(X, n_jobs)

    def sgd_epoch(self, X: KernelCSR, y, sample_weight, order, acc_w0, solver) -> float:
        """One (stochastic) pass of ``solver`` over ``order``; see :mod:`fmlearn._kernels.sgd`.

        Thread-safe in the Hogwild sense: the solver calls it from several threads on disjoint
        chunks of the order, which then buffer the hot rows (see :meth:`_hot_rows`).
        """
        return sgd_kernels.sgd_epoch(
            X.indptr, X.indices, X.data, y, sample_weight, order,
            self.w0, acc_w0, self.table, self.n_factors,
            *solver.rates, *solver.flags, hot=self._hot_rows(X, order),
        )

    def _hot_lookup(self, X, slot, rows):
        # The FM epoch reads hot entries from a remapped copy of the indices (see
        # fmlearn._kernels.hogwild.hot_indices): any lookup beside the index cost it 30-40%.
        if rows.shape[0] == 0:
            return X.indices  # unused: without hot rows the plain kernel runs
        return hogwild.hot_indices(X.indices, slot, rows.shape[0])

    def ordinal_sgd_epoch(self, X, y, sample_weight, order, cut, acc_cut, solver) -> float:
        """One pass of the proportional-odds model (see :mod:`fmlearn._kernels.ordinal`)."""
        _, lr, reg_w, reg_V = solver.rates
        adaptive, _, fit_linear = solver.flags
        return ordinal_kernels.sgd_epoch(
            X.indptr, X.indices, X.data, y, sample_weight, order, self.table, self.n_factors,
            cut, acc_cut, lr, reg_w, reg_V, adaptive, fit_linear,
        )

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

    def sgd_epoch(self, X, y, sample_weight, order, acc_w0, solver) -> float:
        """One (stochastic) pass; see :mod:`fmlearn._kernels.ffm`.

        Several threads buffer the hot rows (see :meth:`_hot_rows`). Every row updates a
        feature of each of its fields, so with small fields plain Hogwild threads passed those
        rows' cache lines back and forth all the time (2 threads were 2x slower than one on
        Frappe).
        """
        return ffm_kernels.sgd_epoch(
            X.indptr, X.indices, X.data, y, sample_weight, order,
            self.w0, acc_w0, self.table, self.n_factors, self.fields, self.wcol,
            *solver.rates, *solver.flags, hot=self._hot_rows(X, order),
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
