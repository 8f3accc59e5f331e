"""What the boundary validation of design matrices costs (issue #12), on the throughput data shape.

Every design matrix is checked once before the kernels see it (``fmlearn.data.validation``):
``indptr`` sound, every index in ``[0, n_features)`` (one vectorized min/max pass), values finite
within float32 and explicit zeros counted (one pass over the data). This script times that
against one training epoch on the shape of ``benchmarks/throughput.py``: 900,000 rows, 20
one-hot fields of 50,000 categories (zipf 1.1), CSR float32, ``FMRegressor(n_factors=16,
max_iter=1, tol=None, n_jobs=1)``, SGD and AdaGrad.

    python benchmarks/validation_cost.py            # ~1 min; writes its docs/benchmarks.md section
    python benchmarks/validation_cost.py --rows 100000 --no-write

Reported: the checks alone (best of several runs; on a fresh matrix object, so scipy's cached
canonical-format flag does not hide that pass), and the whole ``fit`` with the checks and
with them switched off (best of 3 each, interleaved), whose ratio is the throughput cost.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from _report import machine_line, write_section  # noqa: E402

N_FIELDS, N_CATS = 20, 50_000


def make_X(rows: int, seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray]:
    """One-hot rows as in throughput.py: zipf(1.1) category per field, ids offset per field."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, N_CATS + 1, dtype=np.float64) ** 1.1
    cdf = np.cumsum(p / p.sum())
    ids = np.empty((rows, N_FIELDS), dtype=np.int32)
    for f in range(N_FIELDS):
        ranks = np.minimum(np.searchsorted(cdf, rng.random(rows), side="right"), N_CATS - 1)
        ids[:, f] = rng.permutation(N_CATS).astype(np.int32)[ranks] + f * N_CATS
    X = sp.csr_matrix(
        (np.ones(rows * N_FIELDS, np.float32), ids.ravel(),
         np.arange(0, rows * N_FIELDS + 1, N_FIELDS, dtype=np.int64)),
        shape=(rows, N_FIELDS * N_CATS),
    )
    return X, rng.normal(size=rows)


def fresh(X: sp.csr_matrix) -> sp.csr_matrix:
    """The same arrays in a new matrix object (no cached scipy flags)."""
    M = sp.csr_matrix(X.shape, dtype=X.dtype)
    M.data, M.indices, M.indptr = X.data, X.indices, X.indptr
    return M


def best(f, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def timed_fit(est, X, y) -> float:
    M = fresh(X)
    t0 = time.perf_counter()
    est.fit(M, y)
    return time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=900_000)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    import fmlearn.data.design as design
    from fmlearn import FMRegressor
    from fmlearn.data import validation

    load_before = os.getloadavg()[0]
    X, y = make_X(args.rows)
    nnz = X.nnz
    # warm-up: compile or load every kernel involved (validation scans, both epochs)
    validation.check_matrix(fresh(X[:1000]))
    for solver, lr in (("sgd", 0.01), ("adagrad", 0.1)):
        FMRegressor(n_factors=16, solver=solver, learning_rate=lr, max_iter=1, tol=None,
                    n_jobs=1, random_state=0).fit(X[:12_000], y[:12_000])

    def structure_and_values():
        M = fresh(X)
        validation._check_compressed(M.indptr, M.indices, M.shape[0], M.shape[1], "X")
        validation.value_counts(M.data, validation.FLOAT32_MAX)

    t_new = best(structure_and_values, 7)
    t_all = best(lambda: validation.check_matrix(fresh(X)), 7)

    def unchecked(M, name="X"):  # the pre-#12 path: canonical format only
        if not M.has_canonical_format:
            M = M.copy()
            M.sum_duplicates()
        return M

    rows = []
    for solver, lr in (("sgd", 0.01), ("adagrad", 0.1)):
        est = FMRegressor(n_factors=16, solver=solver, learning_rate=lr, max_iter=1, tol=None,
                          n_jobs=1, random_state=0)
        with_checks, without = [], []
        for _ in range(3):  # interleaved, so that load changes hit both alike
            with_checks.append(timed_fit(est, X, y))
            design.check_matrix, saved = unchecked, design.check_matrix
            try:
                without.append(timed_fit(est, X, y))
            finally:
                design.check_matrix = saved
        rows.append((solver, lr, min(with_checks), min(without)))
    load_after = os.getloadavg()[0]

    lines = [
        "## Cost of the design-matrix validation",
        "",
        f"Data: {args.rows:,} rows x {N_FIELDS} non-zeros ({nnz:,} stored values), "
        f"{N_FIELDS * N_CATS:,} columns, CSR float32 with int32 indices and int64 indptr (the "
        "throughput benchmark's shape, zipf 1.1). `FMRegressor(n_factors=16, max_iter=1, "
        "tol=None, n_jobs=1)`; each `fit` on a fresh matrix object.",
        "",
        "| what | seconds | share of one epoch (sgd / adagrad) |",
        "|---|---:|---:|",
    ]
    sgd_fit, ada_fit = rows[0][3], rows[1][3]
    for label, t in (
        ("new checks: indptr, index range (min/max pass), values and zeros (one data pass)",
         t_new),
        ("all of `check_matrix` (adds scipy's canonical-format pass, which fit did before)",
         t_all),
    ):
        lines.append(f"| {label} | {t:.4f} | {t / sgd_fit:.1%} / {t / ada_fit:.1%} |")
    lines += [
        "",
        "| solver | fit with checks (s) | fit without (s) | rows/s with | rows/s without | "
        "throughput with / without |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for solver, lr, t_with, t_without in rows:
        lines.append(
            f"| {solver} lr={lr} | {t_with:.3f} | {t_without:.3f} | {args.rows / t_with:,.0f} | "
            f"{args.rows / t_without:,.0f} | {t_without / t_with:.3f} |"
        )
    lines += [
        "",
        "\"Without\" replaces `check_matrix` by the former canonical-format step only. Fits "
        "are best of 3, interleaved; the checks best of 7. One epoch = the fit without checks "
        "(it includes scikit-learn's own input checks).",
        "",
        f"Reproduce: `python benchmarks/validation_cost.py` (load average (1 min) "
        f"{load_before:.1f} before, {load_after:.1f} after).",
        "",
        f"Machine: {machine_line()}. The machine is shared: other jobs add noise of a few "
        "percent to the fit times.",
    ]
    if max(load_before, load_after) > (os.cpu_count() or 1):
        lines += [
            "",
            f"This run was overloaded (load average above the {os.cpu_count()} cores): the fits "
            "ran several times slower than in the throughput table, and the with/without "
            "ratios are within the noise of other jobs. The checks' share of an epoch is the "
            "steadier figure; rerun on a quiet machine for the throughput ratio.",
        ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("validation_cost", body)


if __name__ == "__main__":
    main()
