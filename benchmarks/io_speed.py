"""Time fmlearn's libFM and FFM text readers and writers on a large synthetic file.

Writes 1,000,000 rows x 20 nonzeros (default) as libFM (random float32 values and one-hot
1s) and as FFM, reads each back, checks the round trip is exact, and reports the best and
median wall time of ``--repeat`` runs. Numba compilation is done (and timed) first on a
tiny file, so the table shows steady-state speed.

Usage::

    python benchmarks/io_speed.py                # full size, updates docs/benchmarks.md
    python benchmarks/io_speed.py --rows 100000 --no-doc
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, write_section  # noqa: E402

from fmlearn.data.textio import read_ffm, read_libfm, write_ffm, write_libfm  # noqa: E402

FEATURES_PER_FIELD = 50_000


def make_data(n_rows, nnz, one_hot, seed=0):
    """Row-sorted CSR with one feature from each of ``nnz`` fields per row.

    Returns
    -------
    X : csr_matrix of float32, shape (n_rows, nnz * FEATURES_PER_FIELD)
    y : ndarray of float64, shape (n_rows,)
        Labels -1 / 1.
    fields : ndarray of int32, shape (nnz * FEATURES_PER_FIELD,)
    """
    rng = np.random.default_rng(seed)
    offsets = np.arange(nnz, dtype=np.int32) * FEATURES_PER_FIELD
    indices = offsets + rng.integers(0, FEATURES_PER_FIELD, (n_rows, nnz), dtype=np.int32)
    if one_hot:
        data = np.ones(n_rows * nnz, dtype=np.float32)
    else:
        data = rng.random(n_rows * nnz, dtype=np.float32)
    indptr = np.arange(0, n_rows * nnz + 1, nnz, dtype=np.int64)
    X = sp.csr_matrix((data, indices.ravel(), indptr), shape=(n_rows, nnz * FEATURES_PER_FIELD))
    y = rng.choice([-1.0, 1.0], n_rows)
    fields = np.repeat(np.arange(nnz, dtype=np.int32), FEATURES_PER_FIELD)
    return X, y, fields


def timed(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), result


def warm_up(directory):
    """Compile every kernel on a tiny file; return the seconds it took."""
    t0 = time.perf_counter()
    X, y, fields = make_data(10, 3, one_hot=False)
    path = os.path.join(directory, "warm")
    write_libfm(path, X, y)
    read_libfm(path)
    write_ffm(path, X, y, fields)
    read_ffm(path)
    return time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--nnz", type=int, default=20, help="nonzeros (fields) per row")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-doc", action="store_true", help="don't update docs/benchmarks.md")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    cases = [
        ("libFM", "random float32", False),
        ("libFM", "one-hot 1s", True),
        ("FFM", "random float32", False),
    ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="fmlearn-io-") as tmp:
        compile_s = warm_up(tmp)
        print(f"numba compile / cache load: {compile_s:.1f} s", flush=True)
        for fmt, values, one_hot in cases:
            X, y, fields = make_data(args.rows, args.nnz, one_hot)
            path = os.path.join(tmp, "bench." + fmt.lower())
            if fmt == "FFM":
                w = timed(lambda: write_ffm(path, X, y, fields), args.repeat)  # noqa: B023
                r = timed(lambda: read_ffm(path), args.repeat)  # noqa: B023
                X2, y2, f2 = r[2]
                expected = np.full(X2.shape[1], -1, dtype=np.int32)
                expected[X.indices] = fields[X.indices]  # unseen features have no field
                assert np.array_equal(f2, expected)
            else:
                w = timed(lambda: write_libfm(path, X, y), args.repeat)  # noqa: B023
                r = timed(lambda: read_libfm(path), args.repeat)  # noqa: B023
                X2, y2 = r[2]
            # the round trip must be exact
            assert np.array_equal(X2.indices, X.indices) and np.array_equal(X2.indptr, X.indptr)
            assert np.array_equal(X2.data, X.data) and np.array_equal(y2, y)
            mb = os.path.getsize(path) / 1e6
            rows.append((fmt, values, mb, w[0], w[1], r[0], r[1]))
            print(
                f"{fmt:5s} {values:15s} {mb:7.1f} MB  write {w[0]:.2f} s (median {w[1]:.2f})"
                f"  read {r[0]:.2f} s (median {r[1]:.2f})",
                flush=True,
            )
            os.remove(path)
    load_after = os.getloadavg()[0]

    cmd = "python benchmarks/io_speed.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    lines = [
        "## Text file I/O (`fmlearn.data.textio`)",
        "",
        f"Synthetic data: {args.rows:,} rows x {args.nnz} nonzeros per row (one feature from "
        f"each of {args.nnz} fields of {FEATURES_PER_FIELD:,} features), labels +-1. Wall "
        f"time, best and median of {args.repeat} runs, file in the page cache, after numba "
        f"compilation (the first calls in the process took {compile_s:.1f} s: compiling, or "
        "loading numba's on-disk cache). "
        "Reading includes the CSR construction; writing includes the atomic rename. Every "
        "round trip is checked to be exact.",
        "",
        "| format | values | file size | write (best / median) | read (best / median) "
        "| read speed |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for fmt, values, mb, wb, wm, rb, rm in rows:
        lines.append(
            f"| {fmt} | {values} | {mb:.0f} MB | {wb:.2f} s / {wm:.2f} s "
            f"| {rb:.2f} s / {rm:.2f} s | {mb / rb:.0f} MB/s |"
        )
    lines += [
        "",
        f"Reproduce: `{cmd}`",
        "",
        f"Machine: {machine_line()}. Load average (1 min) {load_before:.1f} before, "
        f"{load_after:.1f} after: the machine is shared, so numbers are noisy.",
    ]
    body = "\n".join(lines)
    print()
    print(body)
    if not args.no_doc:
        write_section("io", body)


if __name__ == "__main__":
    main()
