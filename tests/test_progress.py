"""Progress with ``verbose``: one bar for Python and the command line, and long epochs that
report their rows without changing what they compute (issue #11). No timing: the bar's clock
is a fake one, and reports are counted."""

import numpy as np
import pytest

from fmlearn import FFMClassifier, FMClassifier, FMRegressor, FwFMClassifier
from fmlearn.callbacks import ProgressBar
from fmlearn.cli import main
from fmlearn.data import make_fm_regression
from fmlearn.data.textio import write_libfm
from fmlearn.optim import sgd

N_ROWS, CHUNK = 500, 37


@pytest.fixture(scope="module")
def data():
    X, y, _ = make_fm_regression(N_ROWS, 30, random_state=1, noise=0.1)
    return X.astype(np.float32), y, (y > np.median(y)).astype(int)


def _fields(n):
    return np.arange(n, dtype=np.int32) % 5


MODELS = {
    "fm-adagrad": (lambda: FMRegressor(n_factors=4, solver="adagrad"), "reg"),
    "fm-sgd": (lambda: FMRegressor(n_factors=4, solver="sgd"), "reg"),
    "fm-ftrl-clf": (lambda: FMClassifier(n_factors=4, solver="ftrl"), "clf"),
    "ffm": (lambda: FFMClassifier(n_factors=2, fields=_fields(30)), "clf"),
    "fwfm": (lambda: FwFMClassifier(n_factors=3, fields=_fields(30)), "clf"),
}


def _fit(name, data, **kw):
    make, task = MODELS[name]
    X, y, labels = data
    est = make().set_params(max_iter=3, early_stopping=False, tol=None, random_state=0,
                            n_jobs=1, **kw)
    return est.fit(X, y if task == "reg" else labels)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_chunked_epochs_train_the_same_model(name, data, monkeypatch):
    """With verbose, an epoch runs in chunks of CHUNK rows: with one thread the parameters
    are bit-identical to an unchunked fit; only the loss sum's rounding may differ."""
    monkeypatch.setattr(sgd, "PROGRESS_ROWS", CHUNK)
    calls = []
    real = ProgressBar.rows
    monkeypatch.setattr(ProgressBar, "rows",
                        lambda self, done, total: (calls.append((done, total)),
                                                   real(self, done, total)))
    quiet = _fit(name, data, verbose=0)
    assert calls == []  # no bar, no chunks
    loud = _fit(name, data, verbose=1)
    per_epoch = [(b, N_ROWS) for b in range(CHUNK, N_ROWS, CHUNK)] + [(N_ROWS, N_ROWS)]
    assert calls == per_epoch * 3
    np.testing.assert_array_equal(loud._params.table, quiet._params.table)  # w, V, state
    for key, value in quiet._params.arrays().items():  # w0, FwFM's r, ...
        np.testing.assert_array_equal(loud._params.arrays()[key], value, err_msg=key)
    key = next(k for k in quiet.history_ if k.startswith("train_"))
    np.testing.assert_allclose(loud.history_[key], quiet.history_[key], rtol=1e-12)


def test_chunked_epochs_with_threads(monkeypatch):
    """Two threads share each chunk (Hogwild, so not reproducible): every row is still
    visited once per epoch and reported."""
    monkeypatch.setattr(sgd, "PROGRESS_ROWS", 4000)
    X, y, _ = make_fm_regression(12000, 30, random_state=2, noise=0.1)
    calls = []
    monkeypatch.setattr(ProgressBar, "rows", lambda self, done, total: calls.append(done))
    est = FMRegressor(n_factors=4, max_iter=2, early_stopping=False, tol=None, random_state=0,
                      n_jobs=2, verbose=1).fit(X, y)
    assert calls == [4000, 8000, 12000] * 2
    # Hogwild results vary from run to run (also unchunked, by the threads' timing): only
    # check that it learned, far below predicting the mean.
    assert est._params.all_finite() and est.history_["train_rmse"][-1] < 0.5 * np.std(y)


def test_sweep_solvers_report_every_sweep(data, monkeypatch):
    """ALS and MCMC report per sweep (an epoch is one sweep): one bar step each, no rows."""
    X, y, _ = data
    steps, rows = [], []
    real = ProgressBar.__call__
    monkeypatch.setattr(ProgressBar, "__call__",
                        lambda self, env: (steps.append(env.epoch), real(self, env)))
    monkeypatch.setattr(ProgressBar, "rows", lambda self, done, total: rows.append(done))
    for solver in ("als", "mcmc"):
        steps.clear()
        FMRegressor(n_factors=2, solver=solver, max_iter=4, random_state=0, verbose=1,
                    tol=None).fit(X, y)
        assert steps == [1, 2, 3, 4]
    assert rows == []


def test_bar_shows_rows_at_most_every_mininterval(capsys):
    """Within an epoch the bar shows the share of rows done, throttled by its clock."""
    now = [0.0]
    bar = ProgressBar(3, "FMRegressor", mininterval=0.5, clock=lambda: now[0])
    bar.rows(100_000, 1_000_000)
    now[0] = 0.2
    bar.rows(200_000, 1_000_000)  # too soon: not shown
    now[0] = 0.8
    bar.rows(300_000, 1_000_000)
    now[0] = 5.0
    bar.rows(1_000_000, 1_000_000)  # the epoch's end: left to the epoch's report
    bar.rows(7, None)  # a source that does not know its length
    bar.close()
    err = capsys.readouterr().err
    assert "epoch 1: 10% of 1,000,000 rows" in err
    assert "epoch 1: 30% of 1,000,000 rows" in err
    assert "20%" not in err and "100%" not in err.split("30% of")[1].split("epoch 1: 7")[0]
    assert "epoch 1: 7 rows" in err


def test_python_and_cli_show_the_same_bar(tmp_path, capsys, data):
    """`fmlearn train` (not --quiet) and verbose=1 in Python draw the same bar: the estimator's
    ProgressBar, over epochs, with the training and validation metric."""
    X, y, _ = data
    write_libfm(tmp_path / "t.libfm", X[:400], y[:400])
    write_libfm(tmp_path / "v.libfm", X[400:], y[400:])
    assert main(["train", "--train", str(tmp_path / "t.libfm"), "--valid",
                 str(tmp_path / "v.libfm"), "--n-factors", "4", "--max-iter", "3",
                 "--task", "regression"]) == 0
    cli = capsys.readouterr().err
    FMRegressor(n_factors=4, max_iter=3, verbose=1).fit(
        X[:400], y[:400], eval_set=(X[400:], y[400:]))
    py = capsys.readouterr().err

    def bar_line(err):
        last = err.replace("\r", "\n").strip().splitlines()[-1]
        return last.split("|")[0].split(":")[0], "3/3" in last, "train_rmse=" in last, \
            "valid_rmse=" in last, "epoch" in last

    assert bar_line(cli) == bar_line(py) == ("FMRegressor", True, True, True, True)
    # --quiet: no bar (what was read and trained is still reported).
    assert main(["train", "--train", str(tmp_path / "t.libfm"), "--n-factors", "4",
                 "--max-iter", "3", "--task", "regression", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "read 400 rows" in err and "FMRegressor" not in err and "epoch/s" not in err
