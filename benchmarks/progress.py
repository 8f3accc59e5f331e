"""What progress within an epoch costs (issue #11): the same fits with and without it.

With ``verbose``, an SGD-type epoch over more than ``fmlearn.optim.sgd.PROGRESS_ROWS`` rows
(262,144) runs in chunks of that many rows of its shuffled order, and the bar shows the share
done after each (at most every 0.5 s). This script times the epochs of the same fit

- ``quiet``: ``verbose=0`` (one kernel call per epoch, no bar);
- ``bar``: ``verbose=1``: the bar, with the default chunk size (MovieLens u1's 80,000 rows are
  one chunk, so this is the epoch bar alone);
- ``bar+chunks``: ``verbose=1`` with ``PROGRESS_ROWS`` lowered to 10,000, i.e. 8 chunks and
  8 reports per u1 epoch, far more than the default would take, to make the chunks' cost show;

on MovieLens 100K u1 (user + item one-hot, FM k = 8, one thread, 30 epochs, no early stopping),
AdaGrad and SGD, interleaved, ``--repeats`` times; and on a synthetic 2,000,000-row set
(20 one-hot fields, k = 8, 3 epochs) with the default chunk size (8 chunks per epoch). Epoch
time = the median difference of ``history_["time"]`` (the bar's cost is inside it),
best of the repeats. The bar
writes to /dev/null. One-thread parameters are checked to be bit-identical across the modes.

    python benchmarks/progress.py                 # ~3 min; writes its docs/benchmarks.md section
    python benchmarks/progress.py --repeats 3 --no-write
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _report import machine_line, write_section  # noqa: E402

MODES = ("quiet", "bar", "bar+chunks")


def synthetic(rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_fields, n_cats = 20, 5000
    cols = rng.zipf(1.3, size=(rows, n_fields)) % n_cats + np.arange(n_fields) * n_cats
    X = sp.csr_matrix((np.ones(rows * n_fields, np.float32), cols.ravel().astype(np.int32),
                       np.arange(0, rows * n_fields + 1, n_fields)),
                      shape=(rows, n_fields * n_cats))
    y = rng.normal(size=rows) + 0.01 * cols[:, 0] % 3
    return X, y


def epoch_times(X, y, solver, mode, max_iter):
    from fmlearn import FMRegressor
    from fmlearn.optim import sgd

    default = sgd.PROGRESS_ROWS
    sgd.PROGRESS_ROWS = 10_000 if mode == "bar+chunks" else default
    est = FMRegressor(n_factors=8, solver=solver, max_iter=max_iter, early_stopping=False,
                      tol=None, random_state=0, n_jobs=1, verbose=int(mode != "quiet"))
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
            est.fit(X, y)
    finally:
        sgd.PROGRESS_ROWS = default
    t = np.diff([0.0, *est.history_["time"]])
    return float(np.median(t)), est._params.table.copy()


def run(name, X, y, solvers, repeats, max_iter, modes):
    rows = []
    for solver in solvers:
        times = {m: [] for m in modes}
        tables = {}
        epoch_times(X[:1000], y[:1000], solver, "quiet", 2)  # compile / load the cache
        for _ in range(repeats):
            for m in modes:  # interleaved: the machine's load moves all modes alike
                t, tables[m] = epoch_times(X, y, solver, m, max_iter)
                times[m].append(t)
        same = all(np.array_equal(tables[m], tables["quiet"]) for m in modes)
        # Best of the repeats: the machine is shared, and load only ever adds time.
        med = {m: float(np.min(v)) for m, v in times.items()}
        rows.append((name, solver, med, same))
        print(name, solver, {m: f"{v * 1e3:.1f} ms" for m, v in med.items()}, "same:", same,
              file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.environ.get("FMLEARN_DATA", "/work/shared/data"))
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--synthetic-rows", type=int, default=2_000_000)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    from fmlearn.data.movielens import load_movielens100k

    start = time.perf_counter()
    X, y, _, _ = load_movielens100k(Path(args.data) / "ml-100k", "u1")
    rows = run("MovieLens 100K u1", X, y, ("adagrad", "sgd"), args.repeats, 30, MODES)
    Xs, ys = synthetic(args.synthetic_rows)
    rows += run(f"synthetic {args.synthetic_rows:,} rows", Xs, ys, ("adagrad",),
                max(1, args.repeats // 2), 3, ("quiet", "bar"))
    lines = [
        "## Cost of progress within an epoch",
        "",
        f"Command: `python benchmarks/progress.py{' ' + ' '.join(argv or sys.argv[1:])}` "
        f"({(time.perf_counter() - start) / 60:.1f} min). Machine: {machine_line()} (shared "
        "with other jobs: a few percent are noise).",
        "",
        "Median epoch time over the epochs of a fit, best of "
        f"{args.repeats} interleaved repeats (the synthetic set: {max(1, args.repeats // 2)}); "
        "FM k = 8, one thread, no early stopping. **bar**: `verbose=1` (u1's 80,000 rows "
        "are one chunk of the default 262,144: the epoch bar alone; the synthetic set: 8 "
        "chunks and reports per epoch); **bar+chunks**: `verbose=1` with `PROGRESS_ROWS` "
        "lowered to 10,000 (8 chunks and reports per u1 epoch). Ratio = mode / quiet.",
        "",
        "| data | solver | quiet | bar | ratio | bar+chunks | ratio | parameters identical |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, solver, med, same in rows:
        q = med["quiet"]
        cells = []
        for m in ("bar", "bar+chunks"):
            cells += ([f"{med[m] * 1e3:.1f} ms", f"{med[m] / q:.3f}"] if m in med
                      else ["-", "-"])
        lines.append(f"| {name} | {solver} | {q * 1e3:.1f} ms | " + " | ".join(cells)
                     + f" | {'yes' if same else 'NO'} |")
    worst = max(med[m] / med["quiet"] for _, _, med, _ in rows for m in med if m != "quiet")
    lines += ["", f"**Target (no measurable slowdown):** worst ratio {worst:.3f}; "
              + ("met (within this machine's noise)" if worst < 1.03 else "not met")
              + ". One-thread parameters are bit-identical in every mode "
              + ("(checked)." if all(r[3] for r in rows) else "(NOT: see the table).")]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("progress", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
