"""The fmlearn command line, end to end on small files."""

import re
import subprocess
import sys

import numpy as np
import pytest

from fmlearn.cli import main
from fmlearn.data import make_fm_regression
from fmlearn.data.textio import write_ffm, write_libfm


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
    # Applying a model reads no field table (the model has its own fields): no conflict warning.
    assert main(["evaluate", "--model", str(model), "--data",
                 str(crit / "xlearn_small_test.ffm"), "--format", "ffm"]) == 0
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


# --------------------------------------------------------------------------- train's model flags


@pytest.fixture(scope="module")
def ffm_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_ffm")
    X, y, _ = make_fm_regression(600, 12, random_state=0, noise=0.05)
    fields = np.arange(12) // 4  # three fields of four features
    write_ffm(d / "train.ffm", X, np.where(y > np.median(y), 1, 0), fields)
    return d / "train.ffm"


def _trained_params(argv, path):
    assert main(["train", *argv, "--max-iter", "2", "--quiet", "--model-out", str(path)]) == 0
    import fmlearn

    return fmlearn.load(path).get_params()


@pytest.mark.parametrize("model", ["ffm", "fwfm"])
def test_train_keeps_each_models_own_defaults(ffm_file, tmp_path, capsys, model):
    """Flags left out are not passed: FFM keeps libffm's defaults, not FM's."""
    from fmlearn.cli.train import model_class

    cls = model_class(model, "classification")
    params = _trained_params(["--train", str(ffm_file), "--format", "ffm", "--model", model,
                              "--task", "classification"], tmp_path / "m.fmz")
    defaults = cls().get_params()
    for name in ("n_factors", "learning_rate", "l2_reg_w", "l2_reg_V", "init_stdev", "tol"):
        assert params[name] == defaults[name], name
    if model == "ffm":
        # FFM's own defaults: k = 4 and, for AdaGrad, libffm's learning rate 0.2 (None: the
        # family's value for the solver, see fmlearn.optim.hyper).
        from fmlearn.optim import get_solver, hyper

        assert params["n_factors"] == 4
        assert hyper(cls(), "learning_rate", get_solver("adagrad")) == 0.2
    params = _trained_params(["--train", str(ffm_file), "--format", "ffm", "--model", model,
                              "--task", "classification", "--n-factors", "3",
                              "--no-fit-linear", "--normalize", "--learning-rate", "0.05"],
                             tmp_path / "m2.fmz")
    assert (params["n_factors"], params["fit_linear"], params["normalize"]) == (3, False, True)
    assert params["learning_rate"] == 0.05
    assert params["random_state"] == 0 and params["verbose"] == 0  # --seed, --quiet


def test_train_flags_and_defaults_in_help_follow_the_model(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--model", "ffm", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "FFMRegressor parameters" in out and "--normalize" in out and "--degree" not in out
    assert re.search(r"--n-factors N\s+Dimension[^-]*Default: 4\.", out)
    with pytest.raises(SystemExit):
        main(["train", "--model", "hofm", "--task", "classification", "--help"])
    out = capsys.readouterr().out
    assert "HOFMClassifier parameters" in out and "--degree N" in out and "Default: 3." in out
    assert "--solver {adagrad,ftrl,sgd}" in out  # the family's solvers only


def test_a_flag_of_another_model_is_an_error_that_names_it(files, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--train", str(files / "train.libfm"), "--degree", "3"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --degree 3" in err and "--model hofm" in err


def test_flag_values_are_typed_from_the_constraints(files):
    from fmlearn.cli.train import estimator_params, parse_args

    args, cls, given = parse_args(["--train", "x", "--n-jobs", "none", "--tol", "-1",
                                   "--n-factors", "2", "--no-early-stopping", "--seed", "7"])
    assert cls.__name__ == "FMRegressor"
    assert given == {"n_jobs": None, "tol": -1.0, "n_factors": 2, "early_stopping": False}
    params = estimator_params(args, cls, given)
    assert params["tol"] is None and params["random_state"] == 7 and params["verbose"] == 1
    args, cls, given = parse_args(["--train", "x", "--tol", "none", "--quiet"])
    assert given == {"tol": None} and estimator_params(args, cls, given)["verbose"] == 0
    with pytest.raises(SystemExit):
        parse_args(["--train", "x", "--max-iter", "1.5"])
    # early_stopping is "auto" or a switch: --early-stopping [auto|on|off], --no-early-stopping.
    for flags, value in ((["--early-stopping", "auto"], "auto"), (["--early-stopping"], True),
                         (["--early-stopping", "on"], True), (["--early-stopping", "off"], False),
                         (["--no-early-stopping"], False)):
        assert parse_args(["--train", "x", *flags])[2] == {"early_stopping": value}, flags
    with pytest.raises(SystemExit):
        parse_args(["--train", "x", "--early-stopping", "sometimes"])


def test_bad_value_fails_before_the_data_is_read(capsys, tmp_path):
    missing = tmp_path / "missing.libfm"
    assert main(["train", "--train", str(missing), "--n-factors", "-1"]) == 2
    err = capsys.readouterr().err
    assert "n_factors" in err and "missing.libfm" not in err


def test_generated_flags_cover_every_estimator_parameter():
    """Drift guard: every parameter of every model the command trains is a flag, set by the
    command itself, or listed below as Python-only; each flag is documented in the estimator's
    numpydoc and parses to its type."""
    from fmlearn.cli.train import CLI_SET, MODELS, build_parser, estimator_flags, model_class

    python_only = {"prior_groups"}  # array-likes: no command-line spelling
    # tuple: layer sizes of the deep models; str: their --init-from path
    sample = {int: "3", float: "0.25", tuple: "3,4", str: "x.fmz"}
    for model, task in MODELS:
        cls = model_class(model, task)
        params = cls().get_params()
        flags, only = estimator_flags(cls)
        names = [f.param for f in flags]
        assert set(names) | set(only) | (set(CLI_SET) & set(params)) == set(params), cls
        assert set(only) <= python_only, f"{cls.__name__}: give {set(only) - python_only} a flag"
        parser = build_parser(cls, model, task)
        for flag in flags:
            assert flag.default == params[flag.param], (cls, flag.param)
            assert not flag.help.startswith("Default"), f"{cls.__name__}.{flag.param}: no docs"
            if flag.kind is bool:
                argv = [flag.option if not flag.default else "--no-" + flag.option[2:]]
                expected = not flag.default
            elif flag.choices:
                argv, expected = [flag.option, flag.choices[-1]], flag.choices[-1]
            else:
                argv = [flag.option, sample[flag.kind]]
                expected = (3, 4) if flag.kind is tuple else flag.kind(sample[flag.kind])
            args = parser.parse_args(["--train", "x", *argv])
            assert getattr(args, flag.param) == expected, (cls, flag.param)


def test_formatwarning_is_restored_after_a_command(files, tmp_path, capsys):
    import warnings

    original = warnings.formatwarning
    data = tmp_path / "hashed.ffm"
    data.write_text("1 0:3:1 1:5:1\n0 1:3:1 0:4:1\n1 0:4:1 1:5:1\n0 0:3:1 1:6:1\n")
    with pytest.warns(UserWarning, match="first field"):
        assert main(["train", "--train", str(data), "--format", "ffm", "--task",
                     "classification", "--max-iter", "2", "--quiet"]) == 0
    assert warnings.formatwarning is original
    assert main(["evaluate", "--model", str(tmp_path / "none.fmz"), "--data",
                 str(files / "test.libfm")]) == 2  # an error path
    assert warnings.formatwarning is original
    with pytest.raises(SystemExit):
        main(["train", "--train", str(data), "--bogus"])
    assert warnings.formatwarning is original


@pytest.mark.parametrize("body, status, out", [
    ("atexit.register(print, 'handler ran'); print('out', end=''); return 3", 3,
     "outhandler ran\n"),
    ("raise SystemExit(2)", 2, ""),
    ("raise SystemExit('fmlearn x: error: message')", 1, ""),
    ("raise SystemExit(None)", 0, ""),
    ("raise RuntimeError('boom')", 1, ""),
])
def test_console_entry_point_exit_status_and_flushed_output(body, status, out):
    """console_main ends the process without the interpreter's teardown: the command's status,
    its buffered output and its atexit handlers must survive that."""
    code = f"""
import atexit, sys
import fmlearn.cli as cli
def main(argv=None):
    {body}
cli.main = main
sys.exit(cli.console_main())
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == status and run.stdout == out
    if "message" in body:
        assert run.stderr.strip() == "fmlearn x: error: message"
    if "boom" in body:
        assert "RuntimeError: boom" in run.stderr


def test_module_entry_point_statuses(files, tmp_path):
    fm = [sys.executable, "-m", "fmlearn"]
    bad = subprocess.run([*fm, "train", "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--train" in bad.stderr
    missing = subprocess.run([*fm, "evaluate", "--model", str(tmp_path / "none.fmz"), "--data",
                              str(files / "test.libfm")], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.startswith("fmlearn evaluate: error:")
    pred = subprocess.run([*fm, "libfm", "-task", "r", "-train", str(files / "train.libfm"),
                           "-test", str(files / "test.libfm"), "-method", "mcmc", "-iter", "3",
                           "-out", str(tmp_path / "p.txt")], capture_output=True, text=True)
    assert pred.returncode == 0 and pred.stdout.rstrip().endswith(tuple("0123456789"))
    assert np.loadtxt(tmp_path / "p.txt").shape == (1000,)
