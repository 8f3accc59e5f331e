"""Spark ML: ``pyspark.ml.regression.FMRegressor`` in local mode, ``local[J]`` for J threads.

The data goes through a LIBSVM text file (written once, untimed) read back with Spark's
``libsvm`` source into a DataFrame of ``SparseVector`` rows, split into J partitions and
cached in memory before the clock starts. Spark's FM is a batch learner: one iteration
(``maxIter``) is one gradient step over ``miniBatchFraction`` of the rows (default 1.0,
i.e. full batch), so "epochs" here is ``maxIter`` at fraction 1.0.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from . import Config, Data, holdout_rmse

NAME = "spark"
K = 16
DRIVER_MEMORY = "8g"
STEP_SIZE = 0.01


def configs(args) -> list[Config]:
    return [
        Config(
            f"adamW (default), full batch, stepSize={STEP_SIZE}",
            max_rows=getattr(args, "spark_rows", None),
            params={"solver": "adamW", "stepSize": STEP_SIZE},
        )
    ]


def describe(args) -> str:
    from importlib.metadata import version

    return (
        f"- Spark {version('pyspark')} (Java 17): `FMRegressor(factorSize=16, maxIter=E, "
        f"solver='adamW', stepSize={STEP_SIZE}, miniBatchFraction=1.0, regParam=0, tol=0, "
        "seed=0)` on `local[1]` / `local[2]` (`spark.driver.memory=8g`), DataFrame of "
        "SparseVectors from the `libsvm` reader, one partition per thread, cached and counted "
        "before timing. Each iteration is one full-batch gradient step, so after E steps the "
        "model has barely moved from its start: Spark's holdout RMSE is not comparable with "
        "the SGD tools' (it would need hundreds of iterations); its rows/s is."
    )


def _write_libsvm(path, ids: np.ndarray, y: np.ndarray) -> None:
    if path.exists():
        return
    tmp = path.with_suffix(".tmp")
    fmt = " ".join(["%d:1"] * ids.shape[1])
    with open(tmp, "w") as f:
        for start in range(0, len(ids), 50_000):
            chunk = (ids[start : start + 50_000] + 1).tolist()  # LIBSVM indices are 1-based
            ys = y[start : start + 50_000].tolist()
            f.write(
                "\n".join(f"{t:.6g} " + fmt % tuple(r) for t, r in zip(ys, chunk, strict=True))
                + "\n"
            )
    tmp.rename(path)


class _State:
    def __init__(self, data: Data, config: Config, train_path, test_path):
        self.data = data
        self.params = config.params
        self.train_path = train_path
        self.test_path = test_path
        self.spark = None
        self.threads = None
        self.train_df = self.test_df = None
        self.model = None


def prepare(data: Data, config: Config) -> _State:
    folder = data.workdir / "spark"
    folder.mkdir(parents=True, exist_ok=True)
    train_path = folder / f"{data.key}-train.libsvm"
    test_path = folder / f"{data.key}-test.libsvm"
    _write_libsvm(train_path, data.global_ids("train"), data.y_train)
    _write_libsvm(test_path, data.global_ids("test"), data.y_test)
    return _State(data, config, train_path, test_path)


def _session(state: _State, n_threads: int) -> None:
    """(Re)start Spark as local[n_threads] with the data cached in n_threads partitions."""
    if state.threads == n_threads:
        return
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers from this venv
    close(state)
    spark = (
        SparkSession.builder.master(f"local[{n_threads}]")
        .appName("fmlearn-throughput")
        .config("spark.driver.memory", DRIVER_MEMORY)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.default.parallelism", str(n_threads))
        .config("spark.sql.shuffle.partitions", str(n_threads))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")

    def load(path):
        df = (
            spark.read.format("libsvm")
            .option("numFeatures", state.data.n_features)
            .load(str(path))
            .repartition(n_threads)
            .cache()
        )
        df.count()
        return df

    state.spark, state.threads = spark, n_threads
    state.train_df, state.test_df = load(state.train_path), load(state.test_path)


def _estimator(state: _State, epochs: int):
    from pyspark.ml.regression import FMRegressor

    return FMRegressor(
        factorSize=K,
        maxIter=epochs,
        solver=state.params["solver"],
        stepSize=state.params["stepSize"],
        miniBatchFraction=1.0,
        regParam=0.0,
        tol=0.0,
        seed=0,
    )


def warmup(state: _State) -> None:
    _session(state, 1)
    small = state.train_df.limit(1000).cache()
    small.count()
    _estimator(state, 1).fit(small)  # JVM class loading and JIT of the gradient code
    small.unpersist()
    return None


def train(state: _State, n_threads: int, epochs: int) -> float:
    _session(state, n_threads)
    est = _estimator(state, epochs)
    t0 = time.perf_counter()
    state.model = est.fit(state.train_df)
    return time.perf_counter() - t0


def rmse(state: _State) -> float:
    rows = state.model.transform(state.test_df).select("label", "prediction").collect()
    arr = np.array([(r["label"], r["prediction"]) for r in rows], dtype=np.float64)
    return holdout_rmse(arr[:, 1], arr[:, 0])


def close(state: _State) -> None:
    if state.spark is not None:
        for df in (state.train_df, state.test_df):
            if df is not None:
                df.unpersist()
        state.spark.stop()
        state.spark = state.threads = state.train_df = state.test_df = None
