"""Prediction throughput: an exported ONNX graph in onnxruntime vs ``estimator.predict``.

MovieLens 100K split u1 (``fmlearn.data.load_movielens100k``: user + item one-hot, 2,625
columns, 2 non-zeros per row). Models fitted on u1.base (AdaGrad, 10 epochs, seed 0): an
``FMRegressor`` (k = 8) and an ``FFMRegressor`` (k = 4, fields user / item). Rows to predict:
u1.test (20,000 rows), repeated to fill the largest batch. Batch sizes 1, 256 and 65,536;
for each, the median over 5 repeats of the time per batch (1: 300 calls per repeat, 256: 40
calls, 65,536: one call), as rows per second, of

- ``predict``: ``estimator.predict(X_batch)`` on a CSR batch, one thread (``n_jobs=1``):
  validation, design matrix and the numba kernel, what a Python caller pays;
- ``ort``: ``session.run`` on ready padded arrays, one onnxruntime thread
  (``intra_op_num_threads=1``), the serving cost when a request already carries ids/values;
- ``pad+ort``: ``padded_inputs(X_batch)`` then ``session.run``, from the same CSR batch.

Every graph's output is checked against ``predict`` (max abs difference reported).

    PYTHONPATH=src python benchmarks/onnx_serving.py             # about 1 minute

Writes the ``onnx_serving`` section of docs/benchmarks.md and of docs/serving.md. Data:
``${FMLEARN_DATA:-/work/shared/data}``/ml-100k or ``--data``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import scipy.sparse as sp

from fmlearn import FFMRegressor, FMRegressor
from fmlearn.data import load_movielens100k
from fmlearn.export import padded_inputs

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _report import machine_line, write_section  # noqa: E402

BATCHES = {1: 300, 256: 40, 65536: 1}  # batch size -> calls per repeat
REPEATS = 5


def _median_rows_per_s(fn, batch: int, calls: int) -> float:
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t) / calls)
    return batch / float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(
        os.environ.get("FMLEARN_DATA", "/work/shared/data"), "ml-100k"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    X_train, y_train, X_test, _ = load_movielens100k(args.data, "u1")
    n_users = 943
    fields = (np.arange(X_train.shape[1]) >= n_users).astype(np.int32)
    models = {
        "FMRegressor (k=8)": FMRegressor(n_factors=8, max_iter=10, random_state=0, n_jobs=1),
        "FFMRegressor (k=4)": FFMRegressor(n_factors=4, fields=fields, max_iter=10,
                                           random_state=0, n_jobs=1),
    }
    big = max(BATCHES)
    reps = -(-big // X_test.shape[0])
    X_all = sp.vstack([X_test] * reps, format="csr")[:big]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, est in models.items():
            est.fit(X_train, y_train)
            path = Path(tmp) / "m.onnx"
            est.to_onnx(path)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            ref = est.predict(X_test)
            got = sess.run(None, padded_inputs(X_test))[0]
            diff = float(np.abs(got - ref).max())
            for batch, calls in BATCHES.items():
                Xb = X_all[:batch]
                feed = padded_inputs(Xb)
                est.predict(Xb)  # warm-up (compiled kernels, caches)
                sess.run(None, feed)
                r_pred = _median_rows_per_s(lambda e=est, Xb=Xb: e.predict(Xb), batch, calls)
                r_ort = _median_rows_per_s(lambda s=sess, f=feed: s.run(None, f), batch, calls)
                r_pad = _median_rows_per_s(
                    lambda s=sess, Xb=Xb: s.run(None, padded_inputs(Xb)), batch, calls)
                rows.append((name, batch, r_pred, r_ort, r_pad, diff))
                print(f"{name:20s} batch {batch:6d}: predict {r_pred:12,.0f} rows/s  ort "
                      f"{r_ort:12,.0f}  pad+ort {r_pad:12,.0f}  (max |diff| {diff:.1e})",
                      flush=True)

    lines = [
        "## ONNX serving: onnxruntime vs `predict` (MovieLens 100K u1)",
        "",
        "Command: `PYTHONPATH=src python benchmarks/onnx_serving.py` (protocol in its "
        "docstring). Machine: " + machine_line() + "; 2 cores shared with other jobs, so "
        "timings are noisy. Rows per second, median of 5 repeats; one thread each "
        f"(onnxruntime {ort.__version__}, `intra_op_num_threads=1`; `predict` with "
        "`n_jobs=1`). `ort`: `session.run` on ready padded arrays; `pad+ort`: "
        "`padded_inputs` from CSR, then `session.run`.",
        "",
        "| model | batch | predict (rows/s) | ort (rows/s) | pad+ort (rows/s) | ort / predict "
        "| max abs diff |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, batch, r_pred, r_ort, r_pad, diff in rows:
        lines.append(f"| {name} | {batch:,} | {r_pred:,.0f} | {r_ort:,.0f} | {r_pad:,.0f} | "
                     f"{r_ort / r_pred:.1f}x | {diff:.1e} |")
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("onnx_serving", body)
        write_section("onnx_serving", body, ROOT / "docs" / "serving.md")


if __name__ == "__main__":
    main()
