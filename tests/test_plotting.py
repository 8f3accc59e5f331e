"""Learning-curve and field-interaction plots, from the API and the CLI."""

import numpy as np
import pytest
import scipy.sparse as sp

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fmlearn import FFMClassifier, FMRanker, FMRegressor  # noqa: E402
from fmlearn.cli import main  # noqa: E402
from fmlearn.data.textio import write_ffm  # noqa: E402
from fmlearn.plotting import plot_field_interactions, plot_learning_curve  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _field_data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    fields = np.repeat(np.arange(3), 5).astype(np.int32)
    cols = np.stack([rng.integers(0, 5, n) + 5 * f for f in range(3)], axis=1)
    X = sp.csr_matrix((np.ones(3 * n, np.float32), cols.ravel(), np.arange(0, 3 * n + 1, 3)),
                      shape=(n, 15))
    y = (cols[:, 0] % 2 == cols[:, 1] % 2).astype(int)
    return X, y, fields


def test_learning_curve_of_an_early_stopped_fit():
    X, y, fields = _field_data()
    # Validation labels unrelated to the features: the first epoch stays the best one.
    y_valid = np.random.default_rng(1).integers(0, 2, 100)
    model = FFMClassifier(fields=fields, max_iter=30, early_stopping=True, n_iter_no_change=3,
                          random_state=0).fit(X[:300], y[:300], eval_set=(X[300:], y_valid))
    assert model.best_iteration_ < model.n_iter_
    ax = plot_learning_curve(model)
    train, valid, kept = ax.get_lines()
    np.testing.assert_array_equal(train.get_xdata(), model.history_["epoch"])
    np.testing.assert_allclose(train.get_ydata(), model.history_["train_logloss"])
    np.testing.assert_allclose(valid.get_ydata(), model.history_["valid_logloss"])
    assert kept.get_xdata()[0] == model.best_iteration_
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["train logloss", "valid logloss", f"kept: epoch {model.best_iteration_}"]


def test_no_kept_epoch_marker_when_the_last_epoch_is_kept():
    X, y, fields = _field_data()
    model = FFMClassifier(fields=fields, max_iter=5, random_state=0).fit(
        X[:300], y[:300], eval_set=(X[300:], y[300:]))
    assert model.best_iteration_ == model.n_iter_ == 5
    labels = [t.get_text() for t in plot_learning_curve(model).get_legend().get_texts()]
    assert labels == ["train logloss", "valid logloss"]


def test_learning_curve_from_a_history_dict_and_errors():
    ax = plot_learning_curve({"epoch": [1, 2, 3], "train_rmse": [3.0, 2.0, 1.5]})
    assert len(ax.get_lines()) == 1 and ax.get_ylabel() == "rmse"
    with pytest.raises(ValueError, match="no training history"):
        plot_learning_curve({"epoch": []})
    with pytest.raises(ValueError, match="no training history"):
        plot_learning_curve(FMRegressor())


def test_different_train_and_valid_metrics_get_two_axes():
    rng = np.random.default_rng(0)
    pos = sp.csr_matrix((np.ones(200), (rng.integers(0, 30, 200), rng.integers(0, 40, 200))),
                        shape=(30, 40))
    ranker = FMRanker(max_iter=3, random_state=0).fit(None, None, pos, eval_set=pos)
    ax = plot_learning_curve(ranker)
    twins = [a for a in ax.figure.axes if a is not ax]
    assert len(twins) == 1 and twins[0].get_ylabel() == "ndcg@10"


def test_field_interactions_heat_map():
    X, y, fields = _field_data()
    model = FFMClassifier(fields=fields, max_iter=5, random_state=0).fit(X, y)
    ax = plot_field_interactions(model, X=X, field_names=["a", "b", "c"])
    np.testing.assert_allclose(ax.get_images()[0].get_array(), model.field_interactions(X=X))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert len(ax.texts) == 9  # annotated: few fields
    with pytest.raises(ValueError, match="3 fields"):
        plot_field_interactions(model, field_names=["a", "b"])
    fm = FMRegressor(max_iter=2, random_state=0).fit(X, y.astype(float))
    with pytest.raises(ValueError, match="fields"):
        plot_field_interactions(fm)
    assert plot_field_interactions(fm, fields=fields).get_images()[0].get_array().shape == (3, 3)


def test_cli_plot(tmp_path, capsys):
    X, y, fields = _field_data()
    data = tmp_path / "train.ffm"
    write_ffm(data, X, y, fields)
    model = tmp_path / "m.fmz"
    assert main(["train", "--train", str(data), "--format", "ffm", "--model", "ffm", "--task",
                 "classification", "--max-iter", "4", "--quiet", "--model-out",
                 str(model)]) == 0
    for args, out in ((["--out"], "curve.png"), (["--interactions", "--out"], "fields.svg")):
        path = tmp_path / out
        assert main(["plot", "--model", str(model), *args, str(path)]) == 0
        head = path.read_bytes()[:8]
        assert head.startswith(b"\x89PNG") if out.endswith(".png") else b"<?xml" in head
    capsys.readouterr()
    assert main(["plot", "--model", str(model), "--out", str(tmp_path / "x.txt")]) == 2
    assert ".png, .svg or .pdf" in capsys.readouterr().err
    # A plain FM has no fields of its own: they come from an FFM data file.
    fm = tmp_path / "fm.fmz"
    main(["train", "--train", str(data), "--format", "ffm", "--task", "classification",
          "--max-iter", "2", "--quiet", "--model-out", str(fm)])
    assert main(["plot", "--model", str(fm), "--interactions", "--out",
                 str(tmp_path / "f.png")]) == 2
    assert "--data FILE --format ffm" in capsys.readouterr().err
    assert main(["plot", "--model", str(fm), "--interactions", "--data", str(data),
                 "--format", "ffm", "--out", str(tmp_path / "f.png")]) == 0
    assert not list(tmp_path.glob(".*.fmlearn-tmp-*"))  # written atomically
