"""The storage every model family's parameters share: :class:`TableParams`.

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

from fmlearn._kernels import hogwild
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
    # Whether decision_function predicts relation-block designs without expanding them.
    blocked = False

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

    @property
    def intercepts(self) -> np.ndarray:
        """The parameters in the bias's place, whose solver state a solver keeps as the
        bias's: ``w0`` (one bias per class for the multinomial FM; the ordinal models'
        cutpoints)."""
        return self.w0

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

    def coordinate_groups(self, n_states, l1_w, l2_w, l2_V):
        """The parameters by regularization, each with its solver state, for a solver keeping
        ``n_states`` values per parameter (the table's state columns: ``n_states`` blocks laid
        out as the parameter columns): ``[(values, [state views], l1, l2), ...]``, views into
        the table. The latent columns (L2 ``l2_V``), the linear weights (``l1_w``, ``l2_w``);
        families with other parameters add theirs."""
        t = self.table
        n_param = t.shape[1] - self.state.shape[1]
        if self.state.shape[1] != n_states * n_param:
            raise ValueError(f"{self.state.shape[1]} state columns do not hold {n_states} "
                             f"per parameter column ({n_param})")

        def states(a, b):
            return [t[:, j * n_param + a : j * n_param + b] for j in range(1, n_states + 1)]

        wcol = self.wcol
        return [(t[:, :wcol], states(0, wcol), 0.0, l2_V),
                (t[:, wcol:n_param], states(wcol, n_param), l1_w, l2_w)]

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
    def _hot_rows(self, X, order, concurrent=None):
        """``hot`` for an epoch kernel (see :mod:`fmlearn._kernels.hogwild`) run on ``order``.

        When ``concurrent`` (None: when ``order`` is a part of ``X``'s rows), the solver's
        threads are training this table at once: each then keeps its own copies of the hot
        features' rows and of the bias, and merges its changes into the table every few
        hundred rows, instead of passing their cache lines back and forth with the other
        threads at nearly every row. Returns ``(lookup, rows, lock)`` (see
        :meth:`_hot_lookup`), computed once per design and kept while its index array lives,
        or None for one thread (also one thread taking an epoch in chunks of rows, as it does
        to report progress: its updates then go straight to the table, exactly as unchunked).
        """
        if concurrent is None:
            concurrent = order.shape[0] < X.n_rows
        if not concurrent:
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


