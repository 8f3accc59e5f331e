"""Pipelines of FMEncoder and a model: fields travel with the encoded matrix (issue #11)."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
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
