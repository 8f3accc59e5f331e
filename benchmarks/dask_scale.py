"""fmlearn.dask scale-out: 1 vs 2 workers, against one process and Spark's FMClassifier.

Synthetic click data with Zipf-popular categories (10 one-hot fields, labels drawn from a
hidden FM's logistic output), generated here. On a ``LocalCluster`` of in-process workers with
one thread each (``NUMBA_NUM_THREADS=1``), ``DaskFMClassifier`` trains ``--epochs`` epochs on
1 and on 2 workers; the same epochs run in one process (``FMClassifier``, ``n_jobs=1``).
Reported: training rows/s (rows x epochs / seconds of the epochs, from ``history_``: data
loading onto the workers excluded), the 2-worker / 1-worker ratio (target >= 1.6x), test log
loss and AUC against the single process (target within 0.002), and, in the same run,
Spark ML's ``FMClassifier`` on ``local[2]`` (full-batch AdamW, as in
benchmarks/peers/spark_fm.py) trained for growing ``maxIter`` until it reaches the log loss of
fmlearn's 2-worker model, with the seconds it took.

    PYTHONPATH=src benchmarks/.venv/bin/python benchmarks/dask_scale.py            # ~5 min
    PYTHONPATH=src benchmarks/.venv/bin/python benchmarks/dask_scale.py --rows 200000 --no-spark

Writes the "dask_scale" section of docs/benchmarks.md unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _report import machine_line, write_section  # noqa: E402

WORKDIR = HERE / "_work"
N_FIELDS, N_CATS, EXPONENT, HIDDEN_K = 10, 20_000, 1.1, 8


def make_data(rows: int, seed: int = 0):
    """(X, y) with one Zipf-drawn category per field; y ~ Bernoulli(sigmoid(hidden FM))."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, N_CATS + 1) ** EXPONENT
    cdf = np.cumsum(p / p.sum())
    ids = np.empty((rows, N_FIELDS), dtype=np.int32)
    for f in range(N_FIELDS):
        ranks = np.minimum(np.searchsorted(cdf, rng.random(rows), side="right"), N_CATS - 1)
        ids[:, f] = rng.permutation(N_CATS).astype(np.int32)[ranks] + f * N_CATS
    n = N_FIELDS * N_CATS
    w = rng.normal(0, 0.3, n)
    V = rng.normal(0, 0.25, (n, HIDDEN_K))
    logit = np.empty(rows)
    for a in range(0, rows, 200_000):  # (rows, fields, k) float64 in slices: bounded memory
        Vs = V[ids[a:a + 200_000]]
        s = Vs.sum(1)
        pair = 0.5 * ((s ** 2).sum(1) - (Vs ** 2).sum((1, 2)))
        logit[a:a + 200_000] = -0.5 + w[ids[a:a + 200_000]].sum(1) + pair
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    X = sp.csr_matrix((np.ones(ids.size, np.float32), ids.ravel(),
                       np.arange(0, ids.size + 1, N_FIELDS, dtype=np.int64)), shape=(rows, n))
    return X, y, ids


def scores(y, p):
    from sklearn.metrics import log_loss, roc_auc_score

    return log_loss(y, p, labels=[0, 1]), roc_auc_score(y, p)


def run_dask(n_workers, params, X, y, Xt, yt, rounds=1):
    import dask.array as da
    from distributed import Client, LocalCluster

    from fmlearn.dask import DaskFMClassifier

    chunk = -(-X.shape[0] // (4 * n_workers))
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        Xd = da.from_array(X, chunks=(chunk, X.shape[1]), asarray=False)
        yd = da.from_array(y, chunks=chunk)
        t0 = time.perf_counter()
        est = DaskFMClassifier(**params, rounds_per_epoch=rounds, client=client).fit(Xd, yd)
        wall = time.perf_counter() - t0
        train_s = est.history_["time"][-1]
    p = est.to_local().predict_proba(Xt)[:, 1]
    return train_s, wall, scores(yt, p)


def parallel_ceiling(X, y, repeats=3):
    """The machine's own 2-thread speed-up on this work: the plain AdaGrad epoch kernel on two
    halves of the rows, one after the other vs from two threads at once (best of
    ``repeats``). Other jobs' load caps what any 2-worker run can show."""
    import threading

    from fmlearn import FMClassifier
    from fmlearn.data.sources import InMemorySource
    from fmlearn.optim import AdaGradSolver

    est = FMClassifier(n_factors=8, random_state=0)
    est.n_features_in_ = X.shape[1]
    est._rng = np.random.default_rng(0)
    solver = AdaGradSolver(learning_rate=0.1, l2_reg_w=0.01, l2_reg_V=0.05, loss=1,
                           fit_intercept=True, fit_linear=True)
    est._start(X.shape[1], AdaGradSolver, solver, 0.0)
    from fmlearn.data.design import as_kernel_csr

    half = X.shape[0] // 2
    yy = np.where(y > 0, 1.0, -1.0)
    sources = [InMemorySource(as_kernel_csr(X[a:b]), yy[a:b], np.ones(b - a))
               for a, b in ((0, half), (half, X.shape[0]))]

    def go(src):
        params = est._params.copy()
        state = {k: v.copy() for k, v in est._solver_state.items()}
        solver.run_epoch(params, state, src, np.random.default_rng(0), 1)

    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for src in sources:
            go(src)
        serial = time.perf_counter() - t0
        threads = [threading.Thread(target=go, args=(src,)) for src in sources]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        best = max(best, serial / (time.perf_counter() - t0))
    return best


def run_spark(X_ids, y, Xt_ids, yt, n_features, target, iters, budget_s):
    """Spark FMClassifier on local[2]: (maxIter, seconds, log loss, AUC) per try, stopping
    at the first that reaches ``target`` or past ``budget_s`` seconds of training."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.ml.classification import FMClassifier
    from pyspark.sql import SparkSession

    folder = WORKDIR / "dask_scale"
    folder.mkdir(parents=True, exist_ok=True)

    def write(path, ids, labels):
        if path.exists():  # same rows, same seed: written by an earlier run
            return
        fmt = " ".join(["%d:1"] * ids.shape[1])
        with open(path, "w") as f:
            for a in range(0, len(ids), 50_000):
                chunk = (np.sort(ids[a:a + 50_000], axis=1) + 1).tolist()
                f.write("\n".join(f"{t} " + fmt % tuple(r) for t, r in
                                  zip(labels[a:a + 50_000].tolist(), chunk, strict=True)) + "\n")

    tr, te = folder / f"train-{len(y)}.libsvm", folder / f"test-{len(yt)}.libsvm"
    write(tr, X_ids, y)
    write(te, Xt_ids, yt)
    spark = (SparkSession.builder.master("local[2]").appName("fmlearn-dask-scale")
             .config("spark.driver.memory", "3g").config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.default.parallelism", "2").config("spark.sql.shuffle.partitions", "2")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")

    def load(path):
        df = spark.read.format("libsvm").option("numFeatures", n_features).load(str(path))
        df = df.repartition(2).cache()
        df.count()
        return df

    train_df, test_df = load(tr), load(te)
    out = []
    try:
        FMClassifier(factorSize=8, maxIter=1, seed=0).fit(train_df.limit(1000))  # JIT warm-up
        for it in iters:
            est = FMClassifier(factorSize=8, maxIter=it, solver="adamW", stepSize=0.01,
                               miniBatchFraction=1.0, regParam=0.0, tol=0.0, seed=0)
            t0 = time.perf_counter()
            model = est.fit(train_df)
            secs = time.perf_counter() - t0
            rows = model.transform(test_df).select("label", "probability").collect()
            lab = np.array([r["label"] for r in rows])
            prob = np.clip(np.array([float(r["probability"][1]) for r in rows]), 1e-7, 1 - 1e-7)
            ll, auc = scores(lab, prob)
            out.append((it, secs, ll, auc))
            print(f"spark maxIter={it}: {secs:.1f} s, log loss {ll:.4f}, AUC {auc:.4f}",
                  flush=True)
            if ll <= target or secs > budget_s:
                break
    finally:
        spark.stop()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="training rows")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--solver", default="adagrad")
    ap.add_argument("--rounds", type=int, nargs="+", default=[1, 4],
                    help="rounds_per_epoch values tried with 2 workers")
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument("--spark-iters", type=int, nargs="+", default=[5, 20, 60])
    ap.add_argument("--spark-budget", type=float, default=200.0)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--section", default="dask_scale",
                    help="section of docs/benchmarks.md to write (one per data size)")
    args = ap.parse_args(argv)

    from fmlearn import FMClassifier

    n_test = max(args.rows // 10, 10_000)
    X_all, y_all, ids = make_data(args.rows + n_test)
    X, y, Xt, yt = X_all[:args.rows], y_all[:args.rows], X_all[args.rows:], y_all[args.rows:]
    params = dict(n_factors=8, solver=args.solver, max_iter=args.epochs, early_stopping=False,
                  tol=None, random_state=0, n_jobs=1)
    print(f"{args.rows} rows, {X.shape[1]} columns, {args.epochs} epochs", flush=True)

    # Warm-up (compiles the kernels; untimed).
    FMClassifier(**{**params, "max_iter": 1}).fit(X[:20_000], y[:20_000])
    run_dask(1, {**params, "max_iter": 1}, X[:20_000], y[:20_000], Xt[:1000], yt[:1000])

    ceiling = parallel_ceiling(X[:400_000], y[:400_000])
    print(f"machine's 2-thread ceiling: {ceiling:.2f}x", flush=True)
    local = FMClassifier(**params).fit(X, y)
    local_train = local.history_["time"][-1]
    local_scores = scores(yt, local.predict_proba(Xt)[:, 1])
    print(f"one process: {local_train:.1f} s, {local_scores}", flush=True)

    results = {}
    for n_workers, rounds in [(1, 1)] + [(2, r) for r in args.rounds]:
        results[(n_workers, rounds)] = run_dask(n_workers, params, X, y, Xt, yt, rounds)
        print(n_workers, rounds, results[(n_workers, rounds)], flush=True)

    spark = []
    if not args.no_spark:
        target = results[(2, args.rounds[0])][2][0]
        spark = run_spark(ids[:args.rows], y, ids[args.rows:], yt, X.shape[1], target,
                          args.spark_iters, args.spark_budget)

    work = args.rows * args.epochs
    one = results[(1, 1)]
    lines = [
        f"`PYTHONPATH=src benchmarks/.venv/bin/python benchmarks/dask_scale.py --rows "
        f"{args.rows} --epochs {args.epochs} --solver {args.solver}`",
        "",
        f"Machine: {machine_line()}; 2 cores shared with five other engineers' jobs (timings "
        "taken on a loaded machine). LocalCluster of in-process workers, 1 thread each, "
        "NUMBA_NUM_THREADS=1.",
        "",
        f"Data: {args.rows:,} training rows, {n_test:,} test rows, {N_FIELDS} one-hot fields "
        f"of {N_CATS:,} Zipf({EXPONENT})-popular categories ({X.shape[1]:,} columns), labels "
        f"from a hidden FM (k={HIDDEN_K}). FMClassifier(n_factors=8, solver={args.solver!r}, "
        f"{args.epochs} epochs, no early stopping, random_state=0).",
        "",
        "| run | training s | rows/s | vs 1 worker | test log loss | AUC | log loss vs one "
        "process |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| one process (FMClassifier, n_jobs=1) | {local_train:.1f} | "
        f"{work / local_train:,.0f} | | {local_scores[0]:.4f} | {local_scores[1]:.4f} | |",
    ]
    for (n_workers, rounds), (train_s, _, (ll, auc)) in results.items():
        ratio = one[0] / train_s
        lines.append(
            f"| DaskFMClassifier, {n_workers} worker{'s' if n_workers > 1 else ''}, "
            f"rounds_per_epoch={rounds} | {train_s:.1f} | {work / train_s:,.0f} | "
            f"{ratio:.2f}x | {ll:.4f} | {auc:.4f} | {ll - local_scores[0]:+.4f} |")
    two = results[(2, args.rounds[0])]
    ratio = one[0] / two[0]
    gap = abs(two[2][0] - local_scores[0])
    lines += [
        "",
        f"- Throughput, 2 workers vs 1 (rounds_per_epoch={args.rounds[0]}): {ratio:.2f}x — "
        f"target >= 1.6x {'**met**' if ratio >= 1.6 else '**not met**'}. The machine's own "
        f"ceiling in this run: the plain epoch kernel on two halves of 400k rows from two "
        f"threads at once ran {ceiling:.2f}x as fast as one after the other (best of 3): no "
        f"2-worker run could beat that here.",
        f"- Test log loss, 2 workers vs one process after the same {args.epochs} epochs: "
        f"{two[2][0] - local_scores[0]:+.4f} (AUC {two[2][1] - local_scores[1]:+.4f}) — target "
        f"within 0.002 {'**met**' if gap <= 0.002 else '**not met**'}.",
    ]
    if spark:
        reached = [s for s in spark if s[2] <= two[2][0]]
        lines += ["", "Spark ML FMClassifier on local[2] (factorSize=8, full-batch AdamW, "
                  "stepSize 0.01, same rows through a LIBSVM file, cached), same run:", "",
                  "| maxIter | training s | test log loss | AUC |", "| ---: | ---: | ---: | ---: |"]
        lines += [f"| {it} | {s:.1f} | {ll:.4f} | {auc:.4f} |" for it, s, ll, auc in spark]
        if reached:
            lines.append(f"\nSpark reached fmlearn's 2-worker log loss ({two[2][0]:.4f}) in "
                         f"{reached[0][1]:.1f} s against {two[0]:.1f} s.")
        else:
            lines.append(f"\nSpark did not reach fmlearn's 2-worker log loss ({two[2][0]:.4f}) "
                         f"within the iterations tried ({sum(s[1] for s in spark):.0f} s of "
                         f"training in all); fmlearn's 2 workers took {two[0]:.1f} s.")
    body = (f"## Dask scale-out (fmlearn.dask, #15), {args.rows:,} rows\n\n"
            + "\n".join(lines))
    print(body)
    if not args.no_write:
        write_section(args.section, body)


if __name__ == "__main__":
    main()
