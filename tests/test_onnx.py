"""ONNX export (fmlearn.export.onnx): onnxruntime gives every estimator's own predictions."""

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

import fmlearn
from fmlearn.export import padded_inputs

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from fmlearn._atomic import UnsafeTargetError  # noqa: E402
from fmlearn.cli import main  # noqa: E402
from fmlearn.export.onnx import onnx_model  # noqa: E402

N_FEATURES = 20_000  # the rows use the last ids too: large indices into the tables
N_FIELDS = 5


def _data(n=150, seed=0):
    """Sparse rows over a pool of 30 common features and a few of the largest ids, with
    row 3 empty; a target that depends on pairs."""
    rng = np.random.default_rng(seed)
    pool = np.r_[np.arange(30), N_FEATURES - 3, N_FEATURES - 2, N_FEATURES - 1]
    rows, cols = [], []
    for r in range(n):
        if r == 3:
            continue  # a row with no non-zero
        k = rng.integers(1, 8)
        c = rng.choice(pool, size=k, replace=False)
        rows += [r] * k
        cols += list(c)
    vals = rng.uniform(0.5, 1.5, size=len(rows)).astype(np.float32)
    X = sp.csr_matrix((vals, (rows, cols)), shape=(n, N_FEATURES), dtype=np.float32)
    a = rng.normal(size=N_FEATURES)
    y = np.asarray(X @ a).ravel() + 0.5 * np.asarray(X[:, 0].toarray()).ravel() * np.asarray(
        X[:, 1].toarray()
    ).ravel()
    return X, y


X, Y = _data()
FIELDS = (np.arange(N_FEATURES) % N_FIELDS).astype(np.int32)
Y3 = np.digitize(Y, np.quantile(Y, [1 / 3, 2 / 3]))  # 0, 1, 2
YB = (Y > np.median(Y)).astype(int)

F = fmlearn
FIT = dict(max_iter=4, random_state=0)
CASES = {
    "fm_reg": lambda: F.FMRegressor(n_factors=4, **FIT).fit(X, Y),
    "fm_linear": lambda: F.FMRegressor(n_factors=0, **FIT).fit(X, Y),
    "fm_reg_mcmc": lambda: F.FMRegressor(n_factors=4, solver="mcmc", max_iter=12,
                                         random_state=0).fit(X, Y),
    "fm_bin": lambda: F.FMClassifier(n_factors=4, **FIT).fit(X, np.where(YB, 1, -1)),
    "fm_bin_als": lambda: F.FMClassifier(n_factors=4, solver="als", **FIT).fit(X, YB),
    "fm_bin_mcmc": lambda: F.FMClassifier(n_factors=4, solver="mcmc", max_iter=12,
                                          random_state=0).fit(X, YB),
    "fm_multi": lambda: F.FMClassifier(n_factors=3, **FIT).fit(X, np.array([0, 2, 7])[Y3]),
    "fm_multi_str": lambda: F.FMClassifier(n_factors=3, **FIT).fit(
        X, np.array(["lo", "mid", "hi"])[Y3]),
    "ffm_reg": lambda: F.FFMRegressor(n_factors=4, fields=FIELDS, **FIT).fit(X, Y),
    "ffm_bin_norm": lambda: F.FFMClassifier(n_factors=4, fields=FIELDS, normalize=True,
                                            **FIT).fit(X, YB),
    "fwfm_reg": lambda: F.FwFMRegressor(n_factors=4, fields=FIELDS, **FIT).fit(X, Y),
    "fwfm_bin": lambda: F.FwFMClassifier(n_factors=4, fields=FIELDS, **FIT).fit(X, YB),
    "hofm_reg3": lambda: F.HOFMRegressor(n_factors=3, degree=3, **FIT).fit(X, Y),
    "hofm_bin5": lambda: F.HOFMClassifier(n_factors=2, degree=5, **FIT).fit(
        X, np.array(["no", "yes"])[YB]),
    "ordinal": lambda: F.FMOrdinalRegressor(n_factors=4, **FIT).fit(X, Y3 + 1),
    "ordinal_mcmc": lambda: F.FMOrdinalRegressor(n_factors=4, solver="mcmc", max_iter=12,
                                                 random_state=0).fit(X, Y3 + 1),
    "ranker": lambda: F.FMRanker(n_factors=4, max_iter=3, random_state=0).fit(
        X[:, :12], X[:, 12:30], sp.eye(150, format="csr")),
}


def _session(est):
    return ort.InferenceSession(onnx_model(est).SerializeToString(),
                                providers=["CPUExecutionProvider"])


def _run(sess, X_, width=None):
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, padded_inputs(X_, width=width)), strict=True))


def _expected(est, X_):
    """The estimator's own outputs, by the names the graph gives them."""
    task = est._task_name
    if task == "pairwise":
        return {"score": est.decision_function(X_)}
    if task == "regression":
        return {"prediction": est.predict(X_)}
    out = {"probabilities": est.predict_proba(X_)}
    if task == "ordinal":
        out["prediction"] = est.predict(X_)
        out["label"] = est.predict_class(X_)
    else:
        out["label"] = est.predict(X_)
    return out


def _check(est, got, X_):
    for name, want in _expected(est, X_).items():
        have = got[name]
        if name == "label":
            meta = {p.key: p.value for p in onnx_model(est).metadata_props}
            if meta["label_is"] == "index":
                have = est.classes_[have]
            assert have.dtype == want.dtype or meta["label_is"] == "class"
            proba = got["probabilities"]
            top2 = np.sort(proba, axis=1)[:, -2:]
            clear = top2[:, 1] - top2[:, 0] > 1e-5  # no near-tie that float32 may flip
            np.testing.assert_array_equal(have[clear], want[clear])
            continue
        assert have.dtype == np.float32 and have.shape == want.shape
        np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(want).max()))


@pytest.fixture(scope="module", params=sorted(CASES))
def fitted(request):
    est = CASES[request.param]()
    if request.param == "ranker":  # scored on concatenated [query | candidate] rows
        return est, X[:, :30]
    return est, X


def test_parity_padded_wider_and_single_rows(fitted):
    est, X_ = fitted
    sess = _session(est)
    _check(est, _run(sess, X_), X_)
    # Width larger than any row needs; a batch of one row, also the empty row (bias only).
    _check(est, _run(sess, X_, width=int(np.diff(X_.indptr).max()) + 3), X_)
    for r in (0, 3):
        got = _run(sess, X_[r : r + 1])
        _check(est, got, X_[r : r + 1])
    assert X_[3].nnz == 0


def test_outputs_and_metadata(fitted):
    est, _ = fitted
    model = onnx_model(est)
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["estimator"] == type(est).__name__ and meta["n_features"] == str(
        est._params.n_features)
    names = {o.name for o in model.graph.output}
    want = {"regression": {"prediction"}, "pairwise": {"score"},
            "binary": {"probabilities", "label"},
            "ordinal": {"probabilities", "label", "prediction"}}[est._task_name]
    assert names == want
    assert [i.name for i in model.graph.input] == ["ids", "values"]
    # Only ops that run on empty bags: no reductions that need an element.
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"ReduceMax", "ReduceMin", "ArgMin"}


def test_labels_are_class_values_when_integers():
    est = CASES["fm_multi"]()
    got = _run(_session(est), X)
    assert got["label"].dtype == np.int64 and set(got["label"]) <= {0, 2, 7}
    est = CASES["fm_bin"]()
    assert set(_run(_session(est), X)["label"]) <= {-1, 1}


def test_empty_batch_and_zero_width(fitted):
    """No op fails on empty input: a batch of 0 rows, and rows of width L = 0 (the bias)."""
    est, X_ = fitted
    sess = _session(est)
    for shape in ((0, 4), (0, 0)):
        out = sess.run(None, {"ids": np.zeros(shape, np.int64),
                              "values": np.zeros(shape, np.float32)})
        assert all(o.shape[0] == 0 for o in out)
    empty = sp.csr_matrix((2, X_.shape[1]), dtype=np.float32)
    got = dict(zip([o.name for o in sess.get_outputs()],
                   sess.run(None, {"ids": np.zeros((2, 0), np.int64),
                                   "values": np.zeros((2, 0), np.float32)}), strict=True))
    _check(est, got, empty)


def test_unknown_ids_are_ignored():
    est = CASES["fwfm_reg"]()
    sess = _session(est)
    inp = padded_inputs(X[:10], width=12)
    inp["ids"][:, -1] = N_FEATURES + 5  # not in the model
    inp["ids"][:, -2] = -3
    inp["values"][:, -2:] = 1.0
    got = sess.run(None, inp)[0]
    np.testing.assert_allclose(got, est.predict(X[:10]), rtol=1e-5, atol=1e-5)


def test_relation_block_model_reads_expanded_rows():
    rng = np.random.default_rng(1)
    n_users = 20
    users = sp.random(n_users, 6, density=0.5, random_state=2, format="csr", dtype=np.float32)
    idx = rng.integers(0, n_users, size=X.shape[0])
    Xs = X[:, :40]
    block = fmlearn.RelationBlock(idx, users)
    est = F.FMRegressor(n_factors=4, solver="als", max_iter=4, random_state=0).fit(
        Xs, Y, X_rel=[block])
    expanded = sp.hstack([Xs, block.expand()], format="csr")
    got = _run(_session(est), expanded)["prediction"]
    np.testing.assert_allclose(got, est.predict(Xs, X_rel=[block]), rtol=1e-5, atol=1e-5)


def test_to_onnx_writes_atomically_and_refuses_bad_targets(tmp_path):
    est = CASES["fm_reg"]()
    path = tmp_path / "m.onnx"
    est.to_onnx(path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    _check(est, _run(sess, X), X)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary left
    with pytest.raises(UnsafeTargetError):
        est.to_onnx(tmp_path)
    with pytest.raises(FileNotFoundError):
        est.to_onnx(tmp_path / "missing" / "m.onnx")
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        F.FMRegressor().to_onnx(tmp_path / "n.onnx")


def test_import_fmlearn_does_not_import_onnx():
    code = ("import sys, fmlearn, fmlearn.export; fmlearn.FMRegressor; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('onnx', 'onnxruntime')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_cli_export_matches_cli_predict(tmp_path, capsys, task):
    from fmlearn.data.textio import write_libfm

    y = Y if task == "regression" else np.where(YB, 1, -1)
    data = tmp_path / "d.libfm"
    write_libfm(data, X[:, :40], y)
    model, out_onnx, pred = tmp_path / "m.fmz", tmp_path / "m.onnx", tmp_path / "p.txt"
    assert main(["train", "--train", str(data), "--task", task, "--n-factors", "4",
                 "--max-iter", "5", "--quiet", "--model-out", str(model)]) == 0
    assert main(["export", str(model), "--onnx", str(out_onnx)]) == 0
    assert main(["predict", "--model", str(model), "--data", str(data), "--out", str(pred)]) == 0
    sess = ort.InferenceSession(str(out_onnx), providers=["CPUExecutionProvider"])
    got = _run(sess, X[:, :40])
    got = got["prediction"] if task == "regression" else got["probabilities"][:, 1]
    np.testing.assert_allclose(got, np.loadtxt(pred), rtol=2e-5, atol=1e-5)
    capsys.readouterr()


def test_cli_export_errors_are_one_line(tmp_path, capsys):
    est = CASES["fm_reg"]()
    model = tmp_path / "m.fmz"
    est.save(model)
    assert main(["export", str(model), "--onnx", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fmlearn export: error:") and err.count("\n") == 1
    assert main(["export", str(tmp_path / "none.fmz"), "--onnx", str(tmp_path / "o.onnx")]) == 2
    assert "fmlearn export: error:" in capsys.readouterr().err


def test_cli_export_refuses_a_pipeline_file(tmp_path, capsys):
    import pandas as pd
    from sklearn.pipeline import Pipeline

    df = pd.DataFrame({"user": list("abcabcabca"), "item": list("xxyyzzxyzx")})
    pipe = Pipeline([("enc", fmlearn.FMEncoder(categorical=["user", "item"])),
                     ("fm", F.FMRegressor(n_factors=2, max_iter=2, random_state=0))])
    pipe.fit(df, np.arange(10.0))
    fmlearn.save(pipe, tmp_path / "pipe.fmz")
    assert main(["export", str(tmp_path / "pipe.fmz"), "--onnx", str(tmp_path / "p.onnx")]) == 2
    err = capsys.readouterr().err
    assert "Pipeline" in err and "no ONNX export" in err and err.count("\n") == 1
    assert not (tmp_path / "p.onnx").exists()
