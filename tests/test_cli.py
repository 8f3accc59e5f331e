"""The fmlearn command line, end to end on small files."""

import subprocess
import sys

import numpy as np
import pytest

from fmlearn.cli import main
from fmlearn.data import make_fm_regression
from fmlearn.data.textio import write_libfm


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    X, y, _ = make_fm_regression(3000, 40, random_state=0, noise=0.05)
    write_libfm(d / "train.libfm", X[:2000], y[:2000])
    write_libfm(d / "test.libfm", X[2000:], y[2000:])
    labels = np.where(y > np.median(y), 1, -1)
    write_libfm(d / "ctr_train.libfm", X[:2000], labels[:2000])
    write_libfm(d / "ctr_test.libfm", X[2000:], labels[2000:])
    return d


def test_train_evaluate_predict_regression(files, capsys):
    model = files / "reg.fmz"
    rc = main(
        [
            "train",
            "--train",
            str(files / "train.libfm"),
            "--valid",
            str(files / "test.libfm"),
            "--n-factors",
            "4",
            "--max-iter",
            "30",
            "--quiet",
            "--model-out",
            str(model),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "valid: rmse=" in out and "saved model" in out
    assert main(["evaluate", "--model", str(model), "--data", str(files / "test.libfm")]) == 0
    out = capsys.readouterr().out
    rmse = float(out.split("rmse=")[1].split()[0])
    y_std = np.std(np.loadtxt(files / "test.libfm", usecols=0))
    assert rmse < 0.5 * y_std
    pred = files / "pred.txt"
    assert (
        main(
            [
                "predict",
                "--model",
                str(model),
                "--data",
                str(files / "test.libfm"),
                "--out",
                str(pred),
            ]
        )
        == 0
    )
    assert np.loadtxt(pred).shape == (1000,)


def test_classification_outputs_probabilities(files, capsys):
    model = files / "clf.fmz"
    assert (
        main(
            [
                "train",
                "--train",
                str(files / "ctr_train.libfm"),
                "--task",
                "classification",
                "--max-iter",
                "20",
                "--quiet",
                "--model-out",
                str(model),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model), "--data", str(files / "ctr_test.libfm")]) == 0
    out = capsys.readouterr().out
    assert "logloss=" in out and "auc=" in out and "accuracy=" in out
    assert float(out.split("auc=")[1].split()[0]) > 0.75
    main(["predict", "--model", str(model), "--data", str(files / "ctr_test.libfm")])
    p = np.array(capsys.readouterr().out.split(), dtype=float)
    assert p.shape == (1000,) and (p >= 0).all() and (p <= 1).all()
    main(["predict", "--model", str(model), "--data", str(files / "ctr_test.libfm"), "--labels"])
    assert set(np.array(capsys.readouterr().out.split(), dtype=float)) <= {-1.0, 1.0}


def test_malformed_file_names_line(files, capsys, tmp_path):
    bad = tmp_path / "bad.libfm"
    bad.write_text("1 0:1 3:1\n0 2:1 x:1\n")
    assert main(["train", "--train", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "bad.libfm:2" in err


def test_damaged_model_is_a_clean_error(files, capsys, tmp_path):
    bad = tmp_path / "bad.fmz"
    bad.write_bytes(b"not a model")
    assert main(["evaluate", "--model", str(bad), "--data", str(files / "test.libfm")]) == 2
    assert "not an fmlearn model file" in capsys.readouterr().err


def test_help_and_module_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "fmlearn", "train", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in ("--train", "--n-factors", "--solver", "--early-stopping", "--model-out"):
        assert flag in out


def test_warnings_print_as_messages_without_source_lines(tmp_path):
    data = tmp_path / "hashed.ffm"
    # Feature 3 under fields 0 and 1: read_ffm keeps its first field, with a warning.
    data.write_text("1 0:3:1 1:5:1\n0 1:3:1 0:4:1\n1 0:4:1 1:5:1\n0 0:3:1 1:6:1\n")
    run = subprocess.run(
        [sys.executable, "-m", "fmlearn", "train", "--train", str(data), "--format", "ffm",
         "--task", "classification", "--max-iter", "2", "--quiet"],
        capture_output=True, text=True, check=True,
    )
    lines = run.stderr.splitlines()
    assert any(ln.startswith("fmlearn train: warning: ") and "first field" in ln for ln in lines)
    assert "UserWarning" not in run.stderr and "read_ffm(" not in run.stderr


def test_demo_runs(capsys):
    from fmlearn.demo import run_demo

    results = run_demo(seed=1)
    out = capsys.readouterr().out
    assert "test RMSE" in out
    assert results["FM (n_factors=8)"] < results["linear (n_factors=0)"] - 0.05


def test_demo_on_movielens(data_dir, capsys):
    results = __import__("fmlearn.demo", fromlist=["run_demo"]).run_demo(data=data_dir / "ml-100k")
    assert results["FM (n_factors=8)"] < results["linear (n_factors=0)"]
    assert results["FM (n_factors=8)"] < 0.94


def test_huge_feature_index_in_file_fails_clearly(capsys, tmp_path):
    f = tmp_path / "huge.libfm"
    f.write_text("1 2000000000:1 3:1\n0 5:1\n")
    assert main(["train", "--train", str(f), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "re-index" in err and "2000000001 columns" in err


def test_train_on_real_ffm_file(data_dir, capsys, tmp_path):
    crit = data_dir / "criteo-samples"
    model = tmp_path / "ctr.fmz"
    with pytest.warns(UserWarning, match="first field"):
        rc = main(["train", "--train", str(crit / "xlearn_small_train.ffm"), "--format", "ffm",
                   "--task", "classification", "--max-iter", "10", "--quiet",
                   "--model-out", str(model)])
    assert rc == 0
    capsys.readouterr()
    with pytest.warns(UserWarning):
        main(["evaluate", "--model", str(model), "--data", str(crit / "xlearn_small_test.ffm"),
              "--format", "ffm"])
    assert "auc=" in capsys.readouterr().out


def test_train_ffm_model_on_real_ffm_file(data_dir, capsys, tmp_path):
    crit = data_dir / "criteo-samples"
    model = tmp_path / "ffm.fmz"
    with pytest.warns(UserWarning, match="first field"):
        rc = main(["train", "--train", str(crit / "xlearn_small_train.ffm"), "--valid",
                   str(crit / "xlearn_small_test.ffm"), "--format", "ffm", "--model", "ffm",
                   "--task", "classification", "--n-factors", "4", "--max-iter", "5",
                   "--normalize", "--quiet", "--model-out", str(model)])
    assert rc == 0
    assert "valid: logloss=" in capsys.readouterr().out
    import fmlearn

    loaded = fmlearn.load(model)
    assert type(loaded).__name__ == "FFMClassifier" and loaded.n_fields_ == 18


def test_ffm_model_needs_ffm_format(files, capsys):
    assert main(["train", "--train", str(files / "train.libfm"), "--model", "ffm",
                 "--quiet"]) == 2
    assert "--format ffm" in capsys.readouterr().err


def test_train_fwfm_model(data_dir, capsys, tmp_path):
    crit = data_dir / "criteo-samples"
    model = tmp_path / "fwfm.fmz"
    with pytest.warns(UserWarning, match="first field"):
        assert main(["train", "--train", str(crit / "xlearn_small_train.ffm"), "--format", "ffm",
                     "--model", "fwfm", "--task", "classification", "--max-iter", "5",
                     "--quiet", "--model-out", str(model)]) == 0
    import fmlearn

    loaded = fmlearn.load(model)
    assert type(loaded).__name__ == "FwFMClassifier" and loaded.r_.shape == (18, 18)


def test_train_hofm_model(files, capsys, tmp_path):
    model = tmp_path / "hofm.fmz"
    assert main(["train", "--train", str(files / "train.libfm"), "--model", "hofm", "--degree",
                 "3", "--max-iter", "5", "--quiet", "--model-out", str(model)]) == 0
    assert main(["evaluate", "--model", str(model), "--data", str(files / "test.libfm")]) == 0
    assert "rmse=" in capsys.readouterr().out
    assert main(["train", "--train", str(files / "train.libfm"), "--model", "hofm", "--degree",
                 "7", "--quiet"]) == 2
    assert "degree" in capsys.readouterr().err


def test_multiclass_file_reports_and_predicts_every_class(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X, _, _ = make_fm_regression(n_samples=300, n_features=20, random_state=0)
    y = rng.integers(0, 3, 300).astype(float)
    write_libfm(tmp_path / "mc.libfm", X, y)
    model = str(tmp_path / "mc.fmz")
    assert main(["train", "--train", str(tmp_path / "mc.libfm"), "--task", "classification",
                 "--max-iter", "3", "--model-out", model]) == 0
    assert main(["evaluate", "--model", model, "--data", str(tmp_path / "mc.libfm")]) == 0
    assert "accuracy=" in capsys.readouterr().out
    out = tmp_path / "p.txt"
    assert main(["predict", "--model", model, "--data", str(tmp_path / "mc.libfm"),
                 "--out", str(out)]) == 0
    proba = np.loadtxt(out)
    assert proba.shape == (300, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("solver", ["als", "mcmc"])
def test_train_with_coordinate_solvers(files, tmp_path, solver):
    model = str(tmp_path / f"{solver}.fmz")
    argv = ["train", "--train", str(files / "train.libfm"), "--solver", solver, "--max-iter", "5",
            "--l2-reg-w", "1", "--l2-reg-V", "1", "--model-out", model]
    assert main(argv) == 0
    assert main(["evaluate", "--model", model, "--data", str(files / "test.libfm")]) == 0
