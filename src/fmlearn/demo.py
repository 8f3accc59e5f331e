"""``fmlearn demo``: what pairwise interactions buy over a linear model.

Trains a linear model (an FM with ``n_factors=0``) and an FM with the same solver and stopping
rule on the same split, and prints test errors and timings. Built-in synthetic data needs no
download; ``data=`` runs the same on MovieLens 100K (split u1).
"""

from __future__ import annotations

import time

import numpy as np

# Settings shared by both models, tuned once on MovieLens 100K u1 (see docs/benchmarks.md).
DEMO_PARAMS = dict(
    solver="adagrad",
    learning_rate=0.05,
    l2_reg_w=0.01,
    l2_reg_V=0.1,
    init_stdev=0.01,
    max_iter=200,
    early_stopping=True,
    n_iter_no_change=5,
    tol=1e-4,
)


def _synthetic(seed):
    from fmlearn.data import make_recommendation

    data = make_recommendation(
        n_users=2000, n_items=1000, n_contexts=4, n_ratings=200_000, random_state=seed
    )
    X, _ = data.one_hot()
    y = data.rating
    test = np.random.default_rng(seed).random(X.shape[0]) < 0.2
    desc = (
        f"synthetic ratings: {data.n_users} users, {data.n_items} items, {data.n_contexts} "
        f"contexts, {X.shape[0]:,} ratings (80/20 split)"
    )
    return desc, X[~test], y[~test], X[test], y[test]


def _movielens(path):
    from fmlearn.data.movielens import load_movielens100k

    X_train, y_train, X_test, y_test = load_movielens100k(path, "u1")
    return "MovieLens 100K, split u1, user + item one-hot", X_train, y_train, X_test, y_test


def run_demo(data=None, n_jobs=1, seed=0, out=print):
    """Run the comparison and print a small table; returns ``{model name: test RMSE}``."""
    from fmlearn import FMRegressor
    from fmlearn.metrics import mae, rmse

    desc, X_train, y_train, X_test, y_test = _synthetic(seed) if data is None else _movielens(data)
    out(f"fmlearn demo: {desc}")
    out(
        f"  train {X_train.shape[0]:,} rows, test {X_test.shape[0]:,} rows, "
        f"{X_train.shape[1]:,} one-hot features"
    )
    base = float(np.mean(y_train))
    results = {"global mean": rmse(y_test, np.full_like(y_test, base))}
    rows = [
        ("global mean", results["global mean"], mae(y_test, np.full_like(y_test, base)), 0, 0.0)
    ]
    for name, k in (("linear (n_factors=0)", 0), ("FM (n_factors=8)", 8)):
        model = FMRegressor(n_factors=k, random_state=seed, n_jobs=n_jobs, **DEMO_PARAMS)
        t = time.perf_counter()
        model.fit(X_train, y_train)
        elapsed = time.perf_counter() - t
        pred = model.predict(X_test)
        results[name] = rmse(y_test, pred)
        rows.append((name, results[name], mae(y_test, pred), model.n_iter_, elapsed))
    out("")
    out(f"  {'model':<22}{'test RMSE':>10}{'test MAE':>10}{'epochs':>8}{'fit time':>10}")
    for name, r, m, epochs, sec in rows:
        out(f"  {name:<22}{r:>10.4f}{m:>10.4f}{epochs:>8}{sec:>9.2f}s")
    gain = results["linear (n_factors=0)"] - results["FM (n_factors=8)"]
    out("")
    out(
        f"  pairwise interactions lower the test RMSE by {gain:.4f} "
        f"({100 * gain / results['linear (n_factors=0)']:.1f}%) against the linear model."
    )
    out("  (fit times include numba compilation on the very first run; later runs use the cache)")
    return results
