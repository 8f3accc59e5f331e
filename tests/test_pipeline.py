"""Pipelines of FMEncoder and a model: fields travel with the encoded matrix (issue #11)."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from _modelfile import rewrite
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline

from fmlearn import FFMClassifier, FMEncoder, FMRegressor, FwFMRegressor
from fmlearn.data.fielded import FieldedCSR, carried_fields


def table(n=240, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "user": rng.integers(0, 40, n),
        "item": rng.choice([f"i{j}" for j in range(30)], n),
        "genres": rng.choice(["a|b", "b", "c|a", "d"], n),
        "age": rng.normal(30, 5, n),
    })
    score = (df["user"] % 3 == 0).to_numpy() ^ (df["item"] < "i15").to_numpy()
    return df, score.astype(int), rng.normal(3.0, 1.0, n) + score


def encoder():
    return FMEncoder(categorical=["user", "item"], multi_hot=["genres"], numeric=["age"],
                     scale_numeric="standard")


def test_encoder_output_carries_its_fields():
    df, _, _ = table()
    enc = encoder()
    X = enc.fit_transform(df)
    assert isinstance(X, FieldedCSR) and isinstance(X, sp.csr_matrix)
    assert_array_equal(X.fields, enc.fields_)
    assert X.encoder is enc and X.field_names == enc.field_names_
    assert_array_equal(carried_fields(enc.transform(df.iloc[:5])), enc.fields_)
    # Row selections and copies keep them; anything that changes the columns drops them.
    assert_array_equal(carried_fields(X[[0, 2, 3]]), enc.fields_)
    assert_array_equal(carried_fields(X[1:4, :]), enc.fields_)
    assert_array_equal(carried_fields(X.copy()), enc.fields_)
    assert carried_fields(X[:, :5]) is None
    assert carried_fields(sp.hstack([X, X], format="csr")) is None
    assert carried_fields(sp.csr_matrix(X.toarray())) is None


def test_ffm_after_encoder_takes_the_fields_of_each_fit():
    df, y, _ = table()
    pipe = Pipeline([("enc", encoder()), ("ffm", FFMClassifier(max_iter=2, random_state=0))])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "got no fields" warning
        pipe.fit(df, y)
    assert_array_equal(pipe["ffm"].fields_, pipe["enc"].fields_)
    assert pipe["ffm"].n_fields_ == 4
    # Each fit has its own columns: a subset with fewer users gives fewer columns.
    pipe.fit(df.iloc[:60], y[:60])
    assert_array_equal(pipe["ffm"].fields_, pipe["enc"].fields_)
    # Explicit fields still win (and a wrong length says what to do).
    enc = encoder().fit(df)
    model = FFMClassifier(max_iter=1, fields=np.zeros(enc.n_features_out_, dtype=int))
    assert model.fit(enc.transform(df), y).n_fields_ == 1
    with pytest.raises(ValueError, match="leave fields=None"):
        FFMClassifier(max_iter=1, fields=enc.fields_[:-3]).fit(enc.transform(df), y)
    # FwFM shares the mechanism.
    fwfm = FwFMRegressor(max_iter=2, random_state=0).fit(enc.transform(df), y.astype(float))
    assert fwfm.r_.shape == (4, 4)


def test_grid_search_and_cross_val_score_over_the_pipeline():
    df, y, _ = table()
    pipe = Pipeline([("enc", encoder()), ("ffm", FFMClassifier(max_iter=3, random_state=0))])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        search = GridSearchCV(pipe, {"ffm__n_factors": [2, 4]}, cv=3).fit(df, y)
        scores = cross_val_score(pipe, df, y, cv=3)
    assert search.best_params_["ffm__n_factors"] in (2, 4)
    assert search.best_estimator_["ffm"].n_fields_ == 4
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))


def test_mcmc_prior_groups_from_the_fields():
    df, _, y = table()
    pipe = Pipeline([
        ("enc", encoder()),
        ("fm", FMRegressor(solver="mcmc", prior_groups="fields", n_factors=2, max_iter=8,
                           random_state=0)),
    ])
    scores = cross_val_score(pipe, df, y, cv=3, scoring="neg_root_mean_squared_error")
    assert np.all(np.isfinite(scores))
    pipe.fit(df, y)
    assert_array_equal(pipe["fm"]._resolved_prior_groups(), pipe["enc"].fields_)
    # The same groups as wiring the array by hand.
    enc = encoder().fit(df)
    X = enc.transform(df)
    by_hand = FMRegressor(solver="mcmc", prior_groups=enc.fields_, n_factors=2, max_iter=8,
                          random_state=0).fit(sp.csr_matrix(X), y)
    assert_allclose(pipe.predict(df), by_hand.predict(X), rtol=1e-6)
    with pytest.raises(ValueError, match="carries no fields"):
        FMRegressor(solver="mcmc", prior_groups="fields", max_iter=2).fit(X.toarray(), y)


def test_raw_dataframe_eval_set_is_encoded_by_the_fold_encoder():
    df, y, _ = table()
    train, valid = df.iloc[:180], df.iloc[180:]
    pipe = Pipeline([
        ("enc", encoder()),
        ("ffm", FFMClassifier(max_iter=4, early_stopping=True, n_iter_no_change=2,
                              random_state=0)),
    ])
    pipe.fit(train, y[:180], ffm__eval_set=(valid, y[180:]))
    history = pipe["ffm"].history_
    assert len(history["valid_logloss"]) == pipe["ffm"].n_iter_
    # The same as encoding the validation rows by hand; a list of one tuple works too.
    enc = pipe["enc"]
    by_hand = FFMClassifier(max_iter=4, early_stopping=True, n_iter_no_change=2,
                            random_state=0).fit(enc.transform(train), y[:180],
                                                eval_set=[(enc.transform(valid), y[180:])])
    assert_allclose(by_hand.history_["valid_logloss"], history["valid_logloss"])
    # In a grid search every fold's encoder encodes the one eval_set given.
    search = GridSearchCV(pipe, {"ffm__n_factors": [2]}, cv=2)
    search.fit(train, y[:180], ffm__eval_set=(valid, y[180:]))
    assert "valid_logloss" in search.best_estimator_["ffm"].history_


# ------------------------------------------------------------------ pipeline files and the CLI


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A fitted pipeline saved to a file, and its training table as CSV."""
    import fmlearn

    d = tmp_path_factory.mktemp("pipe")
    df, y, _ = table()
    df["label"] = np.where(y == 1, "yes", "no")
    df["mixed"] = np.array([1, "x", 2.5] * (len(df) // 3), dtype=object)
    enc = FMEncoder(categorical=["user", "item", "mixed"], multi_hot=["genres"],
                    numeric=["age"], scale_numeric="standard", handle_unknown="bucket")
    pipe = Pipeline([("enc", enc), ("ffm", FFMClassifier(max_iter=3, random_state=0))])
    pipe.fit(df.drop(columns="label"), df["label"])
    fmlearn.save(pipe, d / "pipe.fmz")
    df.to_csv(d / "table.csv", index=False)
    return d, pipe, df


def test_pipeline_file_round_trip(saved, tmp_path):
    import fmlearn

    d, pipe, df = saved
    loaded = fmlearn.load(d / "pipe.fmz")
    assert isinstance(loaded, Pipeline) and [n for n, _ in loaded.steps] == ["enc", "ffm"]
    X = df.drop(columns="label")
    assert_allclose(loaded.predict_proba(X), pipe.predict_proba(X))
    enc, enc2 = pipe["enc"], loaded["enc"]
    assert enc2.get_params() == enc.get_params()
    for name in ("fields_", "feature_names_out_", "feature_names_in_"):
        assert_array_equal(getattr(enc2, name), getattr(enc, name))
    for col, cats in enc.categories_.items():
        assert cats.dtype == enc2.categories_[col].dtype
        assert cats.tolist() == enc2.categories_[col].tolist()
    assert enc2.numeric_scaling_ == enc.numeric_scaling_
    # An encoder alone; a plain model still goes through model.save's format.
    fmlearn.save(enc, tmp_path / "enc.fmz")
    again = fmlearn.load(tmp_path / "enc.fmz")
    assert (again.transform(X) != enc.transform(X)).nnz == 0
    fmlearn.save(pipe["ffm"], tmp_path / "model.fmz")
    assert type(fmlearn.load(tmp_path / "model.fmz")) is FFMClassifier
    with pytest.raises(TypeError, match="cannot save step"):
        from sklearn.preprocessing import MaxAbsScaler

        fmlearn.save(Pipeline([("enc", enc), ("s", MaxAbsScaler()), ("ffm", pipe["ffm"])]),
                     tmp_path / "x.fmz")


def test_damaged_pipeline_file_fails_cleanly(saved, tmp_path):
    import fmlearn
    from fmlearn.exceptions import ModelFileError

    d, _, _ = saved
    data = (d / "pipe.fmz").read_bytes()
    truncated = tmp_path / "truncated.fmz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError):
        fmlearn.load(truncated)
    cases = {
        "no_model.fmz": dict(drop=["steps/1/model.fmz"]),
        "bad_model.fmz": dict(extra={"steps/1/model.fmz": b"PK\x03\x04junk"}),
        "no_fields.fmz": dict(drop=["steps/0/fields_.npy"]),
        "class.fmz": dict(edit_meta=lambda m: m["steps"][1].update({"class": "os.system"})),
        "newer.fmz": dict(edit_meta=lambda m: m.update({"format_version": 99})),
        "state.fmz": dict(edit_meta=lambda m: m["steps"][0]["encoder"]["categories"].pop()),
        "names.fmz": dict(
            edit_meta=lambda m: m["steps"][0]["encoder"]["feature_names_out_"].pop()),
        "param.fmz": dict(
            edit_meta=lambda m: m["steps"][0]["encoder"]["params"].update({"x": 1})),
    }
    for name, change in cases.items():
        with pytest.raises(ModelFileError, match="pipe|newer|unknown|damaged"):
            fmlearn.load(rewrite(d / "pipe.fmz", out=tmp_path / name, **change))
    # The zip CRCs catch flipped bytes inside a member.
    flipped = bytearray(data)
    at = data.index(b"steps/1/model.fmz") + 200
    flipped[at] ^= 0xFF
    (tmp_path / "flipped.fmz").write_bytes(bytes(flipped))
    with pytest.raises(ModelFileError):
        fmlearn.load(tmp_path / "flipped.fmz")


def test_saved_pipeline_predicts_from_a_csv_in_a_fresh_process(saved, tmp_path):
    import subprocess
    import sys

    d, pipe, df = saved
    out = tmp_path / "pred.txt"
    run = subprocess.run(
        [sys.executable, "-m", "fmlearn", "predict", "--model", str(d / "pipe.fmz"),
         "--data", str(d / "table.csv"), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    expected = pipe.predict_proba(df.drop(columns="label"))[:, 1]
    assert_allclose(np.loadtxt(out), expected, rtol=1e-5, atol=1e-6)
    run = subprocess.run(
        [sys.executable, "-m", "fmlearn", "evaluate", "--model", str(d / "pipe.fmz"),
         "--data", str(d / "table.csv"), "--target", "label"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert f"{len(df)} rows" in run.stdout
    assert "auc=" in run.stdout


def test_cli_tables_say_what_is_wrong(saved, tmp_path, capsys):
    import importlib.util

    from fmlearn.cli import main

    d, pipe, df = saved
    model, csv = str(d / "pipe.fmz"), str(d / "table.csv")
    assert main(["predict", "--model", model, "--data", csv, "--labels"]) == 0
    labels = capsys.readouterr().out.split()
    assert labels == pipe.predict(df.drop(columns="label")).tolist()
    tsv = tmp_path / "table.tsv"
    df.to_csv(tsv, sep="\t", index=False)
    assert main(["evaluate", "--model", model, "--data", str(tsv), "--target", "label"]) == 0
    assert "accuracy=" in capsys.readouterr().out
    for argv, message in [
        (["evaluate", "--model", model, "--data", csv], "--target COLUMN"),
        (["evaluate", "--model", model, "--data", csv, "--target", "nope"], "no column 'nope'"),
        (["predict", "--model", model, "--data", csv, "--format", "libfm"], "CSV or Parquet"),
    ]:
        assert main(argv) == 2
        assert message in capsys.readouterr().err
    pipe["ffm"].save(tmp_path / "alone.fmz")
    assert main(["predict", "--model", str(tmp_path / "alone.fmz"), "--data", csv]) == 2
    assert "save the encoder with it" in capsys.readouterr().err
    if importlib.util.find_spec("pyarrow") is None:
        assert main(["predict", "--model", model, "--data", str(tmp_path / "t.parquet")]) == 2
        assert "pip install pyarrow" in capsys.readouterr().err
    else:
        # Parquet columns have one type: the mixed column goes in as text (an unknown
        # category for "1" and "2.5", taken by the encoder's bucket).
        df.astype({"mixed": str}).drop(columns="label").to_parquet(tmp_path / "t.parquet")
        assert main(["predict", "--model", model, "--data", str(tmp_path / "t.parquet"),
                     "--labels"]) == 0
        assert len(capsys.readouterr().out.split()) == len(df)


@pytest.mark.parametrize("signed", [False, True])
def test_hashing_encoder_in_pipeline_files(tmp_path, capsys, signed):
    import fmlearn
    from fmlearn.cli import main

    df, y, _ = table()
    enc = FMEncoder(categorical=["user", "item"], multi_hot=["genres"], numeric=["age"],
                    scale_numeric="standard", hash_bits=6, hash_signed=signed)
    # Alone: the same columns after load (no vocabulary; its fields and numeric scaling).
    X = enc.fit_transform(df)
    fmlearn.save(enc, tmp_path / "enc.fmz")
    again = fmlearn.load(tmp_path / "enc.fmz")
    assert again.get_params() == enc.get_params()
    assert_array_equal(again.fields_, enc.fields_)
    assert again.numeric_scaling_ == enc.numeric_scaling_
    unseen = df.assign(user=df["user"] + 1000)  # ids never seen: hashed, not dropped
    for rows in (df, unseen):
        assert (again.transform(rows) != enc.transform(rows)).nnz == 0
    assert (again.transform(df) != X).nnz == 0
    assert again.get_feature_names_out()[:2].tolist() == ["user#0", "user#1"]
    # In a Pipeline with a field-aware model, then `fmlearn predict` on a CSV.
    pipe = Pipeline([("enc", enc), ("ffm", FFMClassifier(n_factors=4, max_iter=3,
                                                          random_state=0))])
    pipe.fit(df, y)
    fmlearn.save(pipe, tmp_path / "pipe.fmz")
    loaded = fmlearn.load(tmp_path / "pipe.fmz")
    assert_array_equal(loaded.predict_proba(unseen), pipe.predict_proba(unseen))
    unseen.to_csv(tmp_path / "t.csv", index=False)
    assert main(["predict", "--model", str(tmp_path / "pipe.fmz"), "--data",
                 str(tmp_path / "t.csv"), "--out", str(tmp_path / "p.txt")]) == 0, \
        capsys.readouterr().err
    assert_allclose(np.loadtxt(tmp_path / "p.txt"), pipe.predict_proba(unseen)[:, 1],
                    rtol=1e-5, atol=1e-6)


def test_damaged_hashing_encoder_state_fails_cleanly(tmp_path):
    import fmlearn
    from fmlearn.exceptions import ModelFileError

    df, _, _ = table()
    fmlearn.save(FMEncoder(categorical=["user", "item"], hash_bits=4).fit(df), tmp_path / "e.fmz")
    # fields_ holds 2 x 16 columns
    bad = rewrite(tmp_path / "e.fmz",
                  lambda meta: meta["steps"][0]["encoder"]["params"].update(hash_bits=5),
                  out=tmp_path / "bad.fmz")
    with pytest.raises(ModelFileError, match="field 'user' has 16 columns"):
        fmlearn.load(bad)
