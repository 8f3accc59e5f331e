"""fmlearn: ``FMRegressor`` on a scipy CSR float32 matrix (20 ones per row).

The warm-up fits 1,000 rows at each thread count first, so the numba kernels (serial and
Hogwild-parallel) are compiled or loaded from the on-disk cache before the clock starts.
``compile_times`` measures the first fit in a fresh process, with and without that cache.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import Config, Data, holdout_rmse

NAME = "fmlearn"
K = 16
SRC = Path(__file__).resolve().parents[2] / "src" / "fmlearn"

# Rows of the warm-up and first fits: enough for n_jobs=2 to start two threads (the solver keeps
# fewer than 5,000 rows per thread on one), whose kernel variant is compiled separately.
WARMUP_ROWS = 12_000

# the fresh-process first fit: import + a 12,000-row fit at n_jobs=1, then at n_jobs=2
_FIRST_FIT = """
import time
t0 = time.perf_counter()
import numpy as np, scipy.sparse as sp
from fmlearn import FMRegressor
t1 = time.perf_counter()
rng = np.random.default_rng(0)
n = 12_000
rows, cols = np.repeat(np.arange(n), 20), rng.integers(0, 1000, 20 * n)
X = sp.csr_matrix((np.ones(20 * n, np.float32), (rows, cols)), shape=(n, 1000))
y = rng.normal(size=n)
out = [t1 - t0]
for j in (1, 2):
    t = time.perf_counter()
    FMRegressor(n_factors=16, solver="sgd", learning_rate=0.01, max_iter=1, tol=None,
                n_jobs=j, random_state=0).fit(X, y)
    out.append(time.perf_counter() - t)
print(*out)
"""


def configs(args) -> list[Config]:
    return [
        Config("sgd lr=0.01", params={"solver": "sgd", "learning_rate": 0.01}),
        Config("adagrad lr=0.1", params={"solver": "adagrad", "learning_rate": 0.1}),
    ]


def describe(args) -> str:
    import fmlearn

    return (
        f"- fmlearn {fmlearn.__version__}: `FMRegressor(n_factors=16, solver=..., "
        "learning_rate=..., max_iter=E, tol=None, n_jobs=J, random_state=0).fit(X, y)` with "
        "X a scipy CSR float32 matrix; `early_stopping=False, l2_reg_w=1e-4, l2_reg_V=1e-4, "
        "init_stdev=0.1` (v0.1's defaults). n_jobs=2 is lock-free Hogwild over rows. Timed: "
        "the whole `fit` call (input checks included), after a warm-up fit on 1,000 rows at "
        "the same n_jobs."
    )


def _estimator(params: dict, epochs: int, n_jobs: int):
    from fmlearn import FMRegressor

    return FMRegressor(
        n_factors=K,
        solver=params["solver"],
        learning_rate=params["learning_rate"],
        max_iter=epochs,
        tol=None,
        n_jobs=n_jobs,
        random_state=0,
        # The speed measured is that of v0.1's defaults: no hold-out, these L2 and init.
        early_stopping=False,
        l2_reg_w=1e-4,
        l2_reg_V=1e-4,
        init_stdev=0.1,
    )


def _csr(ids: np.ndarray, n_features: int):
    import scipy.sparse as sp

    n, nnz = ids.shape
    return sp.csr_matrix(
        (
            np.ones(n * nnz, dtype=np.float32),
            ids.ravel().astype(np.int32),
            np.arange(0, n * nnz + 1, nnz, dtype=np.int64),
        ),
        shape=(n, n_features),
    )


class _State:
    def __init__(self, data: Data, config: Config):
        self.params = config.params
        self.X = _csr(data.global_ids("train"), data.n_features)
        self.y = data.y_train.astype(np.float64)
        self.X_test = _csr(data.global_ids("test"), data.n_features)
        self.y_test = data.y_test
        self.model = None


def prepare(data: Data, config: Config) -> _State:
    return _State(data, config)


def warmup(state: _State) -> float:
    """Seconds of the first small fits in this process (compile or cache load)."""
    t0 = time.perf_counter()
    for j in (1, 2):
        _estimator(state.params, 1, j).fit(state.X[:WARMUP_ROWS], state.y[:WARMUP_ROWS])
    return time.perf_counter() - t0


def train(state: _State, n_threads: int, epochs: int) -> float:
    est = _estimator(state.params, epochs, n_threads)
    state.model = None
    t0 = time.perf_counter()
    est.fit(state.X, state.y)
    seconds = time.perf_counter() - t0
    state.model = est
    return seconds


EPOCHS_DIFF = (1, 6)


def epoch_seconds(state: _State, n_threads: int, repeats: int = 3) -> float:
    """Seconds of one training epoch alone: ``(t(E2) - t(E1)) / (E2 - E1)`` of whole fits
    (:data:`EPOCHS_DIFF`, best of ``repeats`` each), so that input checks, parameter set-up
    and thread start-up cancel out."""

    def best(epochs: int) -> float:
        times = []
        for _ in range(repeats):
            est = _estimator(state.params, epochs, n_threads)
            t0 = time.perf_counter()
            est.fit(state.X, state.y)
            times.append(time.perf_counter() - t0)
        return min(times)

    e1, e2 = EPOCHS_DIFF
    return (best(e2) - best(e1)) / (e2 - e1)


def rmse(state: _State) -> float:
    return holdout_rmse(state.model.predict(state.X_test), state.y_test)


def _clear_numba_cache() -> int:
    files = [p for ext in ("*.nbi", "*.nbc") for p in SRC.rglob(f"__pycache__/{ext}")]
    for p in files:
        p.unlink(missing_ok=True)
    return len(files)


def _first_fit() -> tuple[float, float, float]:
    out = subprocess.run(
        [sys.executable, "-c", _FIRST_FIT], capture_output=True, text=True, check=True
    ).stdout.split()
    return tuple(float(x) for x in out[-3:])


def compile_times() -> dict:
    """First fit in a fresh process: cold (numba cache files removed), then warm."""
    _clear_numba_cache()
    t0 = time.perf_counter()
    cold = _first_fit()
    cold_total = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = _first_fit()
    warm_total = time.perf_counter() - t0
    return {
        "import_s": warm[0],
        "cold_import_s": cold[0],
        "cold_fit1_s": cold[1],
        "cold_fit2_s": cold[2],
        "cold_process_s": cold_total,
        "warm_fit1_s": warm[1],
        "warm_fit2_s": warm[2],
        "warm_process_s": warm_total,
    }
