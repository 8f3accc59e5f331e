"""Cost of the per-feature L2 floor (``l2_min_count``) in the FM and FFM SGD-type epochs.

The floor hands every epoch kernel one L2 multiplier per feature (``reg_scale``), read at each
entry; FM and FFM compile their epochs with and without it. Three variants, fitted side by side
in one process, interleaved (A B C, then C B A, ...), so that they see the same machine load:

- ``off``: ``l2_min_count=0``, the kernel without the scale (the code before the floor);
- ``scaled, all 1``: ``l2_min_count=1e-9``: the kernel with the scale, every multiplier 1, so
  the same arithmetic and the same trajectory as ``off``: the kernel's own cost;
- ``floor 100``: ``l2_min_count=100``, the default of a fit without early stopping (other
  penalties, so another trajectory, same work per update).

Data: throughput.py's synthetic click-through-like set (20 one-hot fields of 50,000
Zipf(1.1) categories; 1M columns, most of them rare), ``FMRegressor`` k = 16, one thread;
and Frappe (``frappe.validation.libfm``) for ``FFMClassifier`` k = 4. Seconds per epoch as
``(t(3 epochs) - t(1 epoch)) / 2`` of whole fits (``tol=None``, no early stopping), median
over ``--repeats``.

    python benchmarks/l2_floor_cost.py               # about 10 minutes on a loaded machine
    python benchmarks/l2_floor_cost.py --quick       # 100k rows, 3 repeats: under 3 minutes

Section: ``l2_floor_cost`` of docs/benchmarks.md.
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

from _report import machine_line, write_section  # noqa: E402

VARIANTS = {"off": 0.0, "scaled, all 1": 1e-9, "floor 100": 100.0}


def synthetic(rows: int):
    from throughput import make_data

    z = np.load(make_data(rows, "zipf", 1.1, 0))
    n_fields, n_cats = z["train"].shape[1], int(z["n_cats"])
    ids = z["train"].astype(np.int64) + np.arange(n_fields, dtype=np.int64) * n_cats
    X = sp.csr_matrix((np.ones(ids.size, np.float32), ids.ravel(),
                       np.arange(0, ids.size + 1, n_fields)),
                      shape=(ids.shape[0], n_fields * n_cats))
    return X, z["y_train"].astype(np.float64)


def frappe(data: Path):
    from fmlearn.data.textio import read_libfm

    cards = (957, 4082, 7, 7, 2, 3, 2, 9, 80, 233)
    edges = np.cumsum((0,) + cards)
    fields = (np.searchsorted(edges, np.arange(edges[-1]), side="right") - 1).astype(np.int32)
    X, y = read_libfm(data / "frappe" / "frappe.validation.libfm", n_features=int(edges[-1]))
    return X, (y > 0).astype(int), fields


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.environ.get("FMLEARN_DATA", "/work/shared/data"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--rows", type=int, default=300_000)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.repeats = 100_000, 3
    import fmlearn

    cases = []
    X, y = synthetic(args.rows)
    for solver, lr in (("sgd", 0.01), ("adagrad", 0.05)):
        def make_fm(m, s=solver, lr=lr):
            return fmlearn.FMRegressor(n_factors=16, solver=s, learning_rate=lr, l2_reg_w=1e-4,
                                       l2_reg_V=1e-4, init_stdev=0.1, l2_min_count=m)

        cases.append((f"FM {solver}, {X.shape[0]:,} rows x 1M columns (Zipf)", X, y, make_fm))
    frappe_path = Path(args.data) / "frappe" / "frappe.validation.libfm"
    if frappe_path.exists():
        Xf, yf, fields = frappe(Path(args.data))
        def make_ffm(m, f=fields):
            return fmlearn.FFMClassifier(n_factors=4, fields=f, l2_min_count=m)

        cases.append(("FFM adagrad, Frappe 57,722 rows", Xf, yf, make_ffm))
    rows = []
    for name, X, y, make in cases:
        def fit(m, epochs, X=X, y=y, make=make):
            est = make(m).set_params(max_iter=epochs, tol=None, early_stopping=False,
                                     random_state=0, n_jobs=1)
            t0 = time.perf_counter()
            est.fit(X, y)
            return time.perf_counter() - t0

        for m in VARIANTS.values():  # compile / load every kernel first
            fit(m, 1)
        times = {v: [] for v in VARIANTS}
        names = list(VARIANTS)
        for r in range(args.repeats):
            for v in names if r % 2 == 0 else names[::-1]:
                m = VARIANTS[v]
                times[v].append((fit(m, 3) - fit(m, 1)) / 2)
        med = {v: float(np.median(t)) for v, t in times.items()}
        rows.append((name, med))
        print(name, {v: round(t, 3) for v, t in med.items()}, flush=True)
    lines = [
        "## Cost of the per-feature L2 floor",
        "",
        f"Command: `python benchmarks/l2_floor_cost.py{' ' + ' '.join(argv or sys.argv[1:])}`. "
        f"Machine: {machine_line()} (2 cores shared with other jobs: timings noisy; one "
        f"thread per fit). Seconds per epoch, median of {args.repeats} interleaved repeats; "
        "ratio to `off`. `scaled, all 1` runs the kernel with the scale but every multiplier "
        "1 (the same trajectory as `off`): the kernel's own cost; `floor 100` the default "
        "of a fit without early stopping.",
        "",
        "| case | " + " | ".join(VARIANTS) + " |",
        "| --- |" + " --- |" * len(VARIANTS),
    ]
    for name, med in rows:
        lines.append(f"| {name} | " + " | ".join(
            f"{med[v]:.3f} s ({med[v] / med['off']:.2f}x)" for v in VARIANTS) + " |")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("l2_floor_cost", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
