"""Vowpal Wabbit on MovieLens: the classic low-rank-quadratic demo, ``--lrq ui8``.

Each rating is the line ``<rating> |u <user id> |i <item id>``; ``--lrq ui8`` adds a rank-8
interaction between the two namespaces (user and item latent vectors), on top of VW's linear
terms and constant: a second-order FM over the two one-hot fields. Settings follow VW's
``demo/movielens`` (``--lrq ... --lrqdropout --adaptive --invariant -l 0.1``) with squared loss
instead of the demo's quantile loss (we score RMSE); ``--l2`` is chosen on validation.

Passes are driven from Python through the bindings (``Workspace.learn`` on each text line, in
a fresh seeded shuffle every pass), with the validation RMSE after each pass and early
stopping as for fmlearn. During development VW's own multi-pass driver (``--passes`` over a
cache, one fixed order) reached a clearly worse validation RMSE, and pre-parsed examples
change VW's invariant-update clock, so plain text lines it is.
"""

from __future__ import annotations

import time

import numpy as np

from .ratings_ml import FitResult, Patience, Ratings, rmse

NAME = "vw"
KNOB = "l2"
GRID = [{"l2": v} for v in (1e-6, 3e-6, 1e-5)]
FIXED = {"learning_rate": 0.1, "max_passes": 60, "patience": 5}
LABEL = "`--lrq ui8 --lrqdropout`, adaptive"  # the table's config column, before the chosen knob
EARLY_STOPPING = True
BITS = 24  # 2^24 weights: the 2,625 features (x 16 weights each) practically never collide


def version() -> str:
    from importlib.metadata import version as dist_version

    import vowpalwabbit  # noqa: F401

    return dist_version("vowpalwabbit")


def args(params: dict, seed: int = 0) -> str:
    p = {**FIXED, **params}
    return (
        f"--quiet -b {BITS} --loss_function squared --lrq ui8 --lrqdropout --adaptive "
        f"--invariant -l {p['learning_rate']} --l2 {p['l2']:g} --random_seed {seed}"
    )


def describe(params: dict) -> str:
    p = {**FIXED, **params}
    return (
        f'`vowpalwabbit.Workspace("{args(params)}")`, lines `<rating> |u <user> |i <item>`; '
        f"one `learn` per line, a new seeded shuffle each pass, up to {p['max_passes']} passes, "
        f"early stopping on the validation RMSE (patience {p['patience']}), the best pass kept"
    )


def _lines(r: Ratings, labels: bool) -> list[str]:
    users, items = (r.users + 1).tolist(), (r.items + 1).tolist()  # MovieLens' own 1-based ids
    if labels:
        return [f"{y:g} |u {u} |i {i}" for y, u, i in zip(r.y.tolist(), users, items, strict=True)]
    return [f"|u {u} |i {i}" for u, i in zip(users, items, strict=True)]


def fit_predict(
    train: Ratings, valid: Ratings | None, test: Ratings | None, params: dict, seed: int = 0
) -> FitResult:
    import vowpalwabbit

    p = {**FIXED, **params}
    train_lines = _lines(train, True)
    valid_lines = _lines(valid, False) if valid is not None else None
    test_lines = _lines(test, False) if test is not None else None
    rng = np.random.default_rng(seed)
    ws = vowpalwabbit.Workspace(args(params, seed))
    stopper = Patience(p["patience"])
    pred, best_valid, kept, epoch, predict_s = None, None, None, 0, 0.0
    t0 = time.perf_counter()
    try:
        for epoch in range(1, p["max_passes"] + 1):
            for j in rng.permutation(len(train_lines)).tolist():
                ws.learn(train_lines[j])
            if valid_lines is None:
                continue
            score = rmse([ws.predict(s) for s in valid_lines], valid.y)
            improved, stop = stopper.update(epoch, score)
            if improved:
                best_valid, kept = score, epoch
                if test_lines is not None:  # the kept model's test predictions (untimed)
                    t1 = time.perf_counter()
                    pred = np.array([ws.predict(s) for s in test_lines])
                    predict_s += time.perf_counter() - t1
            if stop:
                break
        fit_s = time.perf_counter() - t0 - predict_s
        if valid_lines is None and test_lines is not None:
            pred = np.array([ws.predict(s) for s in test_lines])
    finally:
        ws.finish()
    return FitResult(pred, best_valid, epoch, kept, fit_s)


def close() -> None:
    pass
