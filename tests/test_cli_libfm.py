"""``fmlearn libfm``: libFM command lines, files and outputs, on small synthetic files."""

import struct

import numpy as np
import pytest
import scipy.sparse as sp

import fmlearn
from fmlearn.cli import main as fmlearn_main
from fmlearn.cli.libfm import parse_cmdline, run
from fmlearn.cli.libfm_report import rlog_columns
from fmlearn.data.libfm_binary import read_binary_matrix
from fmlearn.data.textio import write_libfm
from fmlearn.exceptions import DataFormatError
from fmlearn.optim import SOLVERS

N_MAIN, N_USERS = 10, 20

needs_bayes = pytest.mark.skipif(
    not {"als", "mcmc"} <= set(SOLVERS) or not hasattr(fmlearn, "RelationBlock"),
    reason="needs fmlearn's ALS/MCMC solvers and RelationBlock",
)
needs_blocks = pytest.mark.skipif(
    not hasattr(fmlearn, "RelationBlock"), reason="needs fmlearn.RelationBlock"
)


# --------------------------------------------------------------------------- libFM's binary files
# Written here with struct, byte by byte as libFM's convert/transpose tools write them.


def write_fmatrix(path, X, float_size=4):
    X = sp.csr_matrix(X)
    out = [struct.pack("<IIQII", 2, float_size, X.nnz, X.shape[0], X.shape[1])]
    entry = "<If" if float_size == 4 else "<I4xd"  # sparse_entry<double>: id padded to 8 bytes
    for r in range(X.shape[0]):
        lo, hi = X.indptr[r], X.indptr[r + 1]
        out.append(struct.pack("<I", hi - lo))
        out += [struct.pack(entry, int(j), float(v)) for j, v in zip(X.indices[lo:hi],
                                                                      X.data[lo:hi], strict=True)]
    with open(path, "wb") as f:
        f.write(b"".join(out))


def write_dvector(path, values, fmt):
    values = np.asarray(values)
    with open(path, "wb") as f:
        f.write(struct.pack("<III", 1, struct.calcsize(fmt), values.shape[0]))
        f.write(b"".join(struct.pack(fmt, v) for v in values.tolist()))


# --------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    """Ratings-like data: a few context features per row plus a user (a relation block)."""
    d = tmp_path_factory.mktemp("libfm")
    rng = np.random.default_rng(0)
    n = 500
    cols = np.stack([rng.choice(N_MAIN, 3, replace=False) for _ in range(n)])
    cols[0] = [N_MAIN - 1, 0, 1]  # every file uses all N_MAIN context features
    cols[-1] = [N_MAIN - 1, 2, 3]
    X = sp.csr_matrix((np.ones(3 * n), cols.ravel(), np.arange(0, 3 * n + 1, 3)),
                      shape=(n, N_MAIN))
    users = rng.integers(0, N_USERS, n)
    users[:N_USERS] = np.arange(N_USERS)
    P, Q = rng.normal(0, 0.7, (N_MAIN, 3)), rng.normal(0, 0.7, (N_USERS, 3))
    y = 3 + X @ rng.normal(0, 0.5, N_MAIN) + rng.normal(0, 0.5, N_USERS)[users]
    y = np.clip(np.round(y + ((X @ P) * Q[users]).sum(1) + rng.normal(0, 0.1, n), 1), 1, 5)
    U = sp.identity(N_USERS, format="csr", dtype=np.float32)
    flat = sp.hstack([X, U[users]], format="csr")
    tr, te = slice(0, 400), slice(400, n)
    write_libfm(d / "train.libfm", X[tr], y[tr])
    write_libfm(d / "test.libfm", X[te], y[te])
    write_libfm(d / "flat_train.libfm", flat[tr], y[tr])
    write_libfm(d / "flat_test.libfm", flat[te], y[te])
    labels = (y > np.median(y)).astype(int)  # 0/1: libFM maps targets <= 0 to the negative class
    write_libfm(d / "ctr_train.libfm", X[tr], labels[tr])
    write_libfm(d / "ctr_test.libfm", X[te], labels[te])
    # The same relation four ways: text, binary, transposed binary only.
    write_libfm(d / "user.x", U, np.zeros(N_USERS))
    np.savetxt(d / "user.train", users[tr], fmt="%d")
    np.savetxt(d / "user.test", users[te], fmt="%d")
    write_fmatrix(d / "ubin.x", U)
    write_dvector(d / "ubin.train", users[tr], "<I")
    write_dvector(d / "ubin.test", users[te], "<I")
    write_fmatrix(d / "ut.xt", U.T)
    np.savetxt(d / "ut.train", users[tr], fmt="%d")
    np.savetxt(d / "ut.test", users[te], fmt="%d")
    # Main tables as libFM binary: FILE.x + FILE.y (FILE itself does not exist) and FILE.xt.
    write_fmatrix(d / "bin_train.x", X[tr])
    write_dvector(d / "bin_train.y", y[tr], "<f")
    write_fmatrix(d / "bin_test.xt", X[te].T)
    write_dvector(d / "bin_test.y", y[te], "<f")
    (d / "meta.txt").write_text("".join(f"{j % 2}\n" for j in range(N_MAIN)))
    return d


def libfm(d, *args, method="sgd", task="r", train="train.libfm", test="test.libfm", out="out.txt",
          iters="6", extra=()):
    """argv of a libFM command line on the fixture's files."""
    argv = ["-task", task, "-method", method, "-dim", "1,1,4", "-iter", iters, "-seed", "3"]
    if train:
        argv += ["-train", str(d / train)]
    if test:
        argv += ["-test", str(d / test)]
    if out:
        argv += ["-out", str(d / out)]
    if method in ("sgd", "sgda"):
        argv += ["-learn_rate", "0.02", "-regular", "0,0.01,0.01"]
    return argv + [str(a) for a in args] + list(extra)


def ok(argv, capsys):
    rc = run(argv)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return captured


def iter_lines(stdout):
    return [line for line in stdout.splitlines() if line.startswith("#Iter=")]


def read_rlog(path):
    lines = path.read_text().splitlines()
    return lines[0].split("\t"), [[float(v) for v in line.split("\t")] for line in lines[1:]]


# --------------------------------------------------------------------------- command line


def test_parse_cmdline_follows_libfm_rules():
    assert parse_cmdline(["-task", "r", "--dim", "1,1,8", "-verbosity", "-1", "-quiet"]) == {
        "task": "r",
        "dim": "1,1,8",
        "verbosity": "-1",
        "quiet": "",
    }
    assert parse_cmdline(["-train", "-test", "t"]) == {"train": "", "test": "t"}


def test_help_and_registration(capsys):
    assert run([]) == 0
    out = capsys.readouterr().out
    for flag in ("-task", "-train", "-relation", "-meta", "-rlog", "-save_model", "-load_model"):
        assert flag in out
    assert fmlearn_main(["libfm", "-help"]) == 0
    assert "-init_stdev" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["-dim", "1,1"], "-dim must be 'k0,k1,k2'"),
        (["-dim", "1,x,8"], "-dim must be 'k0,k1,k2'"),
        (["-dim", "1,1,-2"], "k2 must be >= 0"),
        (["-method", "foo"], "-method must be one of"),
        (["-iter", "abc"], "-iter must be an integer"),
        (["-iter", "0"], "-iter must be >= 1"),
        (["-init_stdev", "x"], "-init_stdev must be a number"),
        (["-learn_rate", "-0.1"], "-learn_rate must be a positive number"),
        (["-learn_rate", "0.1,0.2,0.3"], "-learn_rate takes one"),
        (["-regular", "1,2"], "-regular takes 1 or 3 values"),
        (["-bogus", "1"], "the parameter -bogus does not exist"),
        (["-seed", "1", "-seed", "2"], "the parameter -seed is already specified"),
        (["stray"], "cannot parse 'stray'"),
        (["-out"], "-out needs a value"),
        (["-test", "nowhere.libfm"], "cannot open"),
    ],
)
def test_bad_command_lines_are_one_line_errors(d, capsys, args, message):
    argv = ["-task", "r", "-train", str(d / "train.libfm")]  # every error comes before training
    if "-test" not in args:
        argv += ["-test", str(d / "test.libfm")]
    assert run(argv + args) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n") == 1 and err.startswith("fmlearn libfm: error: ")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-train", "x", "-test", "y"], "-task is mandatory"),
        (["-task", "x", "-train", "x", "-test", "y"], "-task must be r"),
        (["-task", "r", "-test", "y"], "-train FILE is mandatory"),
        (["-task", "r", "-train", "x"], "-test FILE is mandatory"),
    ],
)
def test_mandatory_flags(capsys, argv, message):
    assert run(argv) == 2
    assert message in capsys.readouterr().err


def test_missing_files_and_directories(d, capsys):
    assert run(libfm(d, train="nothing.libfm")) == 2
    err = capsys.readouterr().err
    assert "-train: cannot open" in err and "nothing.libfm" in err
    assert run(libfm(d, "-rlog", d / "no" / "dir" / "log.txt")) == 2
    assert "does not exist" in capsys.readouterr().err
    assert run(libfm(d, method="sgda")) == 2
    assert "-method sgda needs -validation FILE" in capsys.readouterr().err


def test_malformed_data_file_names_line_and_column(d, tmp_path, capsys):
    bad = tmp_path / "bad.libfm"
    bad.write_text("1 0:1 3:1\n0 2:1 x:1\n")
    assert run(libfm(d, train=bad)) == 2
    err = capsys.readouterr().err
    assert "bad.libfm:2:" in err and "Traceback" not in err


# --------------------------------------------------------------------------- SGD


def test_sgd_regression_outputs_like_libfm(d, capsys):
    out = ok(libfm(d, "-rlog", d / "sgd.rlog"), capsys).out
    lines = iter_lines(out)
    assert len(lines) == 6 and lines[0].startswith("#Iter=  0\tTrain=")
    assert lines[-1].startswith("#Iter=  5\t")
    final = [line for line in out.splitlines() if line.startswith("Final\t")]
    assert len(final) == 1 and "\tTest=" in final[0]
    assert "num_rows=400\tnum_values=1200\tnum_features=10\tmin_target=" in out

    pred = np.loadtxt(d / "out.txt")
    y_train = np.loadtxt(d / "train.libfm", usecols=0)
    y_test = np.loadtxt(d / "test.libfm", usecols=0)
    assert pred.shape == (100,)
    assert pred.min() >= y_train.min() and pred.max() <= y_train.max()  # libFM clips
    assert np.sqrt(np.mean((pred - y_test) ** 2)) < np.std(y_test)

    header, rows = read_rlog(d / "sgd.rlog")
    assert header == ["rmse", "mae", "time_pred", "time_learn", "time_learn2", "time_learn4",
                      "rmse_train"]
    assert header == rlog_columns("sgd", "r", 4, 1)
    assert len(rows) == 6 and all(len(r) == 7 for r in rows)
    rows = np.array(rows)
    assert np.isnan(rows[:, 4:6]).all()  # libFM's SGD leaves time_learn2/4 empty
    test_rmse = [float(line.split("Test=")[1]) for line in lines]
    np.testing.assert_allclose(rows[:, 0], test_rmse, rtol=1e-5)
    assert rows[-1, 0] < rows[0, 0]


def test_double_dash_flags_are_the_same_command(d, capsys):
    ok(libfm(d, out="a.txt"), capsys)
    double = ["-" + a if a.startswith("-") and not a[1:2].isdigit() else a
              for a in libfm(d, out="b.txt")]
    assert "--task" in double
    ok(double, capsys)
    np.testing.assert_array_equal(np.loadtxt(d / "a.txt"), np.loadtxt(d / "b.txt"))


def test_quiet_prints_nothing(d, capsys):
    assert ok(libfm(d, "-quiet"), capsys).out == ""


def test_sgd_classification_writes_probabilities(d, capsys):
    out = ok(libfm(d, "-rlog", d / "c.rlog", task="c", train="ctr_train.libfm",
                   test="ctr_test.libfm", iters="10"), capsys).out
    p = np.loadtxt(d / "out.txt")
    labels = np.loadtxt(d / "ctr_test.libfm", usecols=0)
    assert ((p > 0) & (p < 1)).all()
    assert p[labels == 1].mean() > p[labels == 0].mean()
    accuracy = float(iter_lines(out)[-1].split("Test=")[1])  # libFM prints accuracies
    assert accuracy == pytest.approx(np.mean((p >= 0.5) == (labels == 1)), abs=1e-6)
    header, rows = read_rlog(d / "c.rlog")
    assert header == ["accuracy", "time_pred", "time_learn", "time_learn2", "time_learn4",
                      "rmse_train"]
    assert len(rows) == 10


def test_sgda_learns_regularization_on_validation_with_libfm_columns(d, capsys):
    # -method sgda is fmlearn's solver="sgda": the regularization per -meta group (and per
    # factor) is learned on the -validation rows, starting from -regular.
    argv = libfm(d, "-validation", d / "test.libfm", "-meta", d / "meta.txt", "-rlog",
                 d / "sgda.rlog", "-save_model", d / "sgda.fmz", method="sgda", iters="8")
    captured = ok(argv, capsys)
    assert "no adaptive regularization" not in captured.err
    assert len(iter_lines(captured.out)) == 8  # every iteration: no early stopping, as libFM
    header, rows = read_rlog(d / "sgda.rlog")
    assert header[:10] == ["rmse", "mae", "time_pred", "time_learn", "time_learn2",
                           "time_learn4", "rmse_train", "rmse_val", "wmean", "wvar"]
    assert header[10:18] == [f"v{s}{f}" for f in range(4) for s in ("mean", "var")]
    assert header[18:] == ["regw[0]", "regv[0,0]", "regv[0,1]", "regv[0,2]", "regv[0,3]",
                           "regw[1]", "regv[1,0]", "regv[1,1]", "regv[1,2]", "regv[1,3]"]
    first = dict(zip(header, rows[0], strict=True))
    last = dict(zip(header, rows[-1], strict=True))
    assert first["regw[1]"] == 0.01  # the first epoch takes no regularization steps
    regs = [last[c] for c in header[18:]]
    assert min(regs) >= 0 and any(abs(r - 0.01) > 1e-4 for r in regs)
    assert last["wmean"] == 0 and last["wvar"] > 0
    model = fmlearn.load(d / "sgda.fmz")
    assert model.solver == "sgda" and model.reg_V_.shape == (2, 4)
    np.testing.assert_allclose(model.reg_V_[1], [last[f"regv[1,{f}]"] for f in range(4)],
                               rtol=1e-5)


def test_validation_is_ignored_except_for_sgda(d, capsys):
    out = ok(libfm(d, "-validation", d / "test.libfm"), capsys).out
    assert "WARNING: Validation data is only used for SGDA. The data is ignored." in out


def test_notes_for_what_fmlearn_does_not_do(d, capsys):
    argv = libfm(d)
    argv[argv.index("-regular") + 1] = "0.5,0.01,0.01"
    assert "r0=0.5 (bias regularization) has no fmlearn equivalent" in ok(argv, capsys).err


def test_main_tables_in_libfm_binary_format(d, capsys):
    ok(libfm(d, out="text.txt"), capsys)
    out = ok(libfm(d, train="bin_train", test="bin_test", out="bin.txt"), capsys).out
    assert "num_rows=400\tnum_values=1200\tnum_features=10" in out
    np.testing.assert_array_equal(np.loadtxt(d / "text.txt"), np.loadtxt(d / "bin.txt"))


def test_binary_matrix_reader(tmp_path):
    X = sp.random(7, 5, density=0.4, format="csr", random_state=1, dtype=np.float64)
    X.data[:] = np.round(X.data * 8) / 8
    for size in (4, 8):
        write_fmatrix(tmp_path / "m.x", X, float_size=size)
        np.testing.assert_array_equal(read_binary_matrix(str(tmp_path / "m.x")).toarray(),
                                      X.toarray())
    data = (tmp_path / "m.x").read_bytes()
    (tmp_path / "cut.x").write_bytes(data[:-4])
    with pytest.raises(DataFormatError, match="cut.x"):
        read_binary_matrix(str(tmp_path / "cut.x"))
    (tmp_path / "foreign.x").write_bytes(b"\x07" * 40)
    with pytest.raises(DataFormatError, match="not a libFM binary sparse matrix"):
        read_binary_matrix(str(tmp_path / "foreign.x"))


def test_meta_file_errors(d, tmp_path, capsys):
    bad = tmp_path / "meta.txt"
    bad.write_text("0\n1\nx\n")
    assert run(libfm(d, "-meta", bad)) == 2
    assert "meta.txt:3:1" in capsys.readouterr().err
    short = tmp_path / "short.txt"
    short.write_text("0\n1\n")
    assert "2 group ids for 10 features" in ok(libfm(d, "-meta", short), capsys).err


def test_save_and_load_model_predicts_without_training(d, capsys):
    ok(libfm(d, "-save_model", d / "sgd.fmz", out="trained.txt"), capsys)
    out = ok(["-load_model", str(d / "sgd.fmz"), "-test", str(d / "test.libfm"),
              "-train", str(d / "train.libfm"), "-out", str(d / "loaded.txt")], capsys).out
    assert not iter_lines(out) and "Final\tTrain=" in out
    np.testing.assert_array_equal(np.loadtxt(d / "trained.txt"), np.loadtxt(d / "loaded.txt"))
    assert run(["-load_model", str(d / "sgd.fmz"), "-task", "c", "-test",
                str(d / "test.libfm")]) == 2
    assert "is a regression model" in capsys.readouterr().err
    libfm_model = d / "libfm_model.txt"
    libfm_model.write_text("#global bias W0\n0.5\n")
    assert run(["-load_model", str(libfm_model), "-test", str(d / "test.libfm")]) == 2
    assert "is a libFM model file" in capsys.readouterr().err


# --------------------------------------------------------------------------- relations (BS)


@needs_blocks
def test_relation_is_the_same_model_as_joined_rows(d, capsys):
    ok(libfm(d, train="flat_train.libfm", test="flat_test.libfm", out="flat.txt"), capsys)
    out = ok(libfm(d, "-relation", d / "user", out="rel.txt"), capsys).out
    assert "#relations: 1" in out
    np.testing.assert_allclose(np.loadtxt(d / "rel.txt"), np.loadtxt(d / "flat.txt"), rtol=1e-5)


@needs_blocks
@pytest.mark.parametrize("name", ["ubin", "ut"])
def test_relation_binary_files(d, capsys, name):
    ok(libfm(d, "-relation", d / "user", out="rel_text.txt"), capsys)
    ok(libfm(d, "-relation", d / name, out=f"rel_{name}.txt"), capsys)
    np.testing.assert_array_equal(np.loadtxt(d / "rel_text.txt"),
                                  np.loadtxt(d / f"rel_{name}.txt"))


@needs_blocks
def test_relation_errors(d, tmp_path, capsys):
    rel = tmp_path / "r"
    write_libfm(tmp_path / "r.x", sp.identity(3, format="csr"), np.zeros(3))
    np.savetxt(tmp_path / "r.train", np.zeros(400, dtype=int), fmt="%d")
    np.savetxt(tmp_path / "r.test", np.r_[np.zeros(50, dtype=int), 7, np.zeros(49, dtype=int)],
               fmt="%d")
    assert run(libfm(d, "-relation", rel)) == 2
    assert "r.test:51: block row 7 does not exist (the block has 3 rows" in capsys.readouterr().err
    np.savetxt(tmp_path / "r.test", np.zeros(10, dtype=int), fmt="%d")
    assert run(libfm(d, "-relation", rel)) == 2
    assert "10 block rows for 100 data rows" in capsys.readouterr().err
    assert run(libfm(d, "-relation", tmp_path / "missing")) == 2
    assert "cannot open" in capsys.readouterr().err


# --------------------------------------------------------------------------- ALS and MCMC


@needs_bayes
def test_mcmc_regression_outputs_like_libfm(d, capsys):
    out = ok(libfm(d, "-meta", d / "meta.txt", "-relation", d / "user", "-rlog", d / "mcmc.rlog",
                   method="mcmc", iters="30"), capsys).out
    assert "#relations: 1" in out
    lines = iter_lines(out)
    assert len(lines) == 30 and "Final" not in out  # libFM prints no final line for MCMC
    pred = np.loadtxt(d / "out.txt")
    y_test = np.loadtxt(d / "test.libfm", usecols=0)
    y_train = np.loadtxt(d / "train.libfm", usecols=0)
    assert pred.min() >= y_train.min() and pred.max() <= y_train.max()
    rmse = np.sqrt(np.mean((pred - y_test) ** 2))
    assert rmse < 0.5 * np.std(y_test)
    header, rows = read_rlog(d / "mcmc.rlog")
    assert header[:10] == ["rmse", "mae", "time_pred", "time_learn", "time_learn2",
                           "time_learn4", "alpha", "rmse_mcmc_this", "rmse_mcmc_all",
                           "rmse_mcmc_all_but5"]
    assert header[10:14] == ["wmu[0]", "wlambda[0]", "vmu[0,0]", "vlambda[0,0]"]
    # Groups: the two of -meta, then one for the relation's features (no user.groups file).
    assert header[-2:] == ["vmu[2,3]", "vlambda[2,3]"] and len(header) == 10 + 3 * (2 + 2 * 4)
    assert len(rows) == 30
    # Test= is the posterior mean's RMSE, what -out holds at the end.
    assert float(lines[-1].split("Test=")[1]) == pytest.approx(rmse, rel=1e-4)


@needs_bayes
def test_mcmc_classification(d, capsys):
    out = ok(libfm(d, "-rlog", d / "mc.rlog", method="mcmc", task="c", train="ctr_train.libfm",
                   test="ctr_test.libfm", iters="20"), capsys).out
    assert "\tTest(ll)=" in iter_lines(out)[-1]
    p = np.loadtxt(d / "out.txt")
    labels = np.loadtxt(d / "ctr_test.libfm", usecols=0)
    assert ((p >= 0) & (p <= 1)).all() and p[labels == 1].mean() > p[labels == 0].mean()
    header, _ = read_rlog(d / "mc.rlog")
    assert header[:12] == ["accuracy", "time_pred", "time_learn", "time_learn2", "time_learn4",
                           "alpha", "acc_mcmc_this", "acc_mcmc_all", "acc_mcmc_all_but5",
                           "ll_mcmc_this", "ll_mcmc_all", "ll_mcmc_all_but5"]


@needs_bayes
def test_mcmc_model_with_relation_saved_and_reloaded(d, capsys):
    ok(libfm(d, "-relation", d / "user", "-save_model", d / "mcmc.fmz", method="mcmc",
             out="mcmc_trained.txt", iters="10"), capsys)
    ok(["-load_model", str(d / "mcmc.fmz"), "-relation", str(d / "user"), "-train",
        str(d / "train.libfm"), "-test", str(d / "test.libfm"), "-out",
        str(d / "mcmc_loaded.txt")], capsys)
    np.testing.assert_allclose(np.loadtxt(d / "mcmc_loaded.txt"),
                               np.loadtxt(d / "mcmc_trained.txt"), rtol=1e-5)


@needs_bayes
def test_als_relation_matches_joined_rows_and_logs_fixed_priors(d, capsys):
    reg = ["-regular", "0,2,3"]
    ok(libfm(d, *reg, method="als", train="flat_train.libfm", test="flat_test.libfm",
             out="als_flat.txt"), capsys)
    ok(libfm(d, *reg, "-relation", d / "user", "-rlog", d / "als.rlog", method="als",
             out="als_rel.txt"), capsys)
    np.testing.assert_allclose(np.loadtxt(d / "als_rel.txt"), np.loadtxt(d / "als_flat.txt"),
                               rtol=1e-4)
    header, rows = read_rlog(d / "als.rlog")
    row = dict(zip(header, rows[-1], strict=True))
    # libFM's ALS: alpha 1, prior means 0, the -regular precisions; one group per relation.
    assert row["alpha"] == 1 and row["wmu[1]"] == 0 and row["wlambda[1]"] == 2
    assert row["vlambda[0,3]"] == 3 and not np.isnan(row["rmse_mcmc_this"])
    assert np.isnan(rows[4][header.index("rmse_mcmc_all_but5")])
    assert not np.isnan(row["rmse_mcmc_all_but5"])


def test_mcmc_report_uses_the_estimators_validation_output_when_given():
    """MCMC's posterior mean on the test set is costly to recompute each sweep: a callback
    environment carrying it (``valid_output``) is used instead of predict()."""
    from types import SimpleNamespace

    from fmlearn.cli.libfm_inputs import Split
    from fmlearn.cli.libfm_report import Reporter

    class NoPredict:
        def predict(self, *args, **kwargs):
            raise AssertionError("predict() called")

    y = np.array([1.0, 2.0, 3.0, 4.0])
    split = Split(sp.csr_matrix((4, 2)), y, None)
    lines = []
    rep = Reporter(method="mcmc", task="r", train=split, test=split, valid=None, clip=(1.5, 3.5),
                   rlog=None, say=lines.append, k=2, k1=True, n_groups=1, reg=(0, 0, 0))
    rep.start()
    env = SimpleNamespace(estimator=NoPredict(), epoch=1, max_iter=3, metric="rmse", train=0.25,
                          valid=0.7, elapsed=0.1, valid_output=np.array([1.0, 2.0, 3.0, 5.0]))
    rep(env)
    # Clipped to the training range [1.5, 3.5]: errors 0.5, 0, 0, 0.5.
    assert lines == [f"#Iter=  0\tTrain=0.25\tTest={np.sqrt(0.125):g}"]
