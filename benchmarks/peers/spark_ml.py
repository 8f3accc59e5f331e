"""Spark ML on MovieLens: ``pyspark.ml.regression.FMRegressor(factorSize=8)`` on ``local[2]``.

Features are the same user + item one-hot vectors (2,625 columns), written to a libsvm file in
a temporary folder and read with ``spark.read.format("libsvm")``; the DataFrame is cached and
counted before the timed ``fit``. Spark's FM trains full-batch (``miniBatchFraction=1.0``) with
AdamW for a fixed ``maxIter`` and has no early stopping, so the final fits use the whole base
split; ``regParam`` is chosen on validation. ``stepSize=0.03, maxIter=100`` were set by hand
on the u1 validation split during development (Spark's default ``stepSize=1.0`` gives RMSE
~1.4 there, and 200 iterations overfit); never on a test split.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .ratings_ml import FitResult, Ratings, rmse

NAME = "spark"
KNOB = "regParam"
GRID = [{"regParam": v} for v in (0.0, 0.001, 0.01)]
FIXED = {"stepSize": 0.03, "maxIter": 100}
LABEL = "AdamW full batch, 100 iterations"  # the table's config column, before the chosen knob
EARLY_STOPPING = False
K = 8

_state: dict = {}


def version() -> str:
    import pyspark

    return pyspark.__version__


def describe(params: dict) -> str:
    p = {**FIXED, **params}
    return (
        f"`FMRegressor(factorSize={K}, regParam={p['regParam']:g}, stepSize={p['stepSize']}, "
        f'maxIter={p["maxIter"]}, solver="adamW", miniBatchFraction=1.0, initStd=0.01, '
        'seed=0)` on `SparkSession.builder.master("local[2]")` (driver memory 2g); no '
        "early stopping, so the final fits use the whole base split"
    )


def session():
    """The shared local[2] session, started on first use (its start-up time is recorded)."""
    if "spark" not in _state:
        from pyspark.sql import SparkSession

        t0 = time.perf_counter()
        spark = (
            SparkSession.builder.master("local[2]")
            .appName("fmlearn-movielens")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.memory", "2g")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        _state["spark"] = spark
        _state["startup_s"] = time.perf_counter() - t0
        _state["dir"] = Path(tempfile.mkdtemp(prefix="fmlearn-movielens-spark-"))
        _state["n"] = 0
    return _state["spark"]


def startup_seconds() -> float | None:
    return _state.get("startup_s")


def _frame(r: Ratings):
    """A cached DataFrame (label, features) of ``r``, via a libsvm file."""
    spark = session()
    _state["n"] += 1
    path = _state["dir"] / f"part{_state['n']}.libsvm"
    first = r.users + 1  # libsvm indices are 1-based
    second = r.n_users + r.items + 1
    with open(path, "w") as f:
        f.writelines(
            f"{y:g} {a}:1 {b}:1\n"
            for y, a, b in zip(r.y.tolist(), first.tolist(), second.tolist(), strict=True)
        )
    df = (
        spark.read.format("libsvm")
        .option("numFeatures", str(r.n_users + r.n_items))
        .load(str(path))
        .cache()
    )
    df.count()
    return df


def _predict(model, df, y: np.ndarray) -> np.ndarray:
    rows = model.transform(df).select("label", "prediction").collect()
    labels = np.array([row[0] for row in rows])
    if not np.array_equal(labels, y):  # Spark kept the file's row order
        raise AssertionError("Spark returned the rows in another order")
    return np.array([row[1] for row in rows], dtype=np.float64)


def fit_predict(
    train: Ratings, valid: Ratings | None, test: Ratings | None, params: dict, seed: int = 0
) -> FitResult:
    from pyspark.ml.regression import FMRegressor

    p = {**FIXED, **params}
    df = _frame(train)
    est = FMRegressor(
        factorSize=K,
        regParam=p["regParam"],
        stepSize=p["stepSize"],
        maxIter=p["maxIter"],
        solver="adamW",
        miniBatchFraction=1.0,
        initStd=0.01,
        seed=seed,
    )
    t0 = time.perf_counter()
    model = est.fit(df)
    fit_s = time.perf_counter() - t0
    df.unpersist()
    valid_rmse = pred = None
    if valid is not None:
        dv = _frame(valid)
        valid_rmse = rmse(_predict(model, dv, valid.y), valid.y)
        dv.unpersist()
    if test is not None:
        dt = _frame(test)
        pred = _predict(model, dt, test.y)
        dt.unpersist()
    return FitResult(pred, valid_rmse, p["maxIter"], None, fit_s)


def close() -> None:
    spark = _state.pop("spark", None)
    if spark is not None:
        spark.stop()
    folder = _state.pop("dir", None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
