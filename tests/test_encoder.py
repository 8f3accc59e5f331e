"""Tests of fmlearn.data.encoder.FMEncoder."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import DATA_DIR
from numpy.testing import assert_allclose, assert_array_equal

import fmlearn.data.encoder as encoder_module
from fmlearn.data.encoder import FMEncoder

pd = pytest.importorskip("pandas")

S2 = 1 / np.sqrt(2)


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "user": ["u2", "u1", "u2"],
            "age": [20.0, 30.0, 40.0],
            "genres": ["Drama|Comedy", "Drama", ""],
        }
    )


def encode(df, **params):
    enc = FMEncoder(**params)
    return enc, enc.fit_transform(df)


def test_categorical_one_hot(frame):
    enc, X = encode(frame, categorical=["user"])
    assert_array_equal(X.toarray(), [[0, 1], [1, 0], [0, 1]])
    assert enc.get_feature_names_out().tolist() == ["user=u1", "user=u2"]
    assert_array_equal(enc.categories_["user"], ["u1", "u2"])
    assert enc.field_names_ == ["user"] and enc.field_kinds_ == ["categorical"]


def test_numeric_values_as_given(frame):
    enc, X = encode(frame, numeric=["age"])
    assert_array_equal(X.toarray(), [[20], [30], [40]])
    assert enc.get_feature_names_out().tolist() == ["age"]


@pytest.mark.parametrize(
    "scale, expected",
    [("standard", [-np.sqrt(1.5), 0, np.sqrt(1.5)]), ("minmax", [0, 0.5, 1])],
)
def test_numeric_scaling(frame, scale, expected):
    enc, X = encode(frame, numeric=["age"], scale_numeric=scale)
    assert_allclose(X.toarray().ravel(), expected, rtol=1e-6)
    assert X.nnz == np.count_nonzero(expected)  # zeros are not stored
    # learned at fit time, not re-estimated on new data
    assert_allclose(enc.transform(frame.iloc[:1]).toarray().ravel(), expected[:1], rtol=1e-6)


def test_constant_numeric_column_is_not_divided_by_zero():
    enc, X = encode(pd.DataFrame({"x": [3.0, 3.0]}), scale_numeric="standard")
    assert enc.numeric_scaling_["x"] == (3.0, 1.0)
    assert X.nnz == 0


def test_full_frame_exact_matrix_and_fields(frame):
    # Lists given in another order: fields still follow the DataFrame's column order.
    enc, X = encode(frame, multi_hot=["genres"], numeric=["age"], categorical=["user"])
    assert enc.get_feature_names_out().tolist() == [
        "user=u1",
        "user=u2",
        "age",
        "genres=Comedy",
        "genres=Drama",
    ]
    assert_array_equal(
        X.toarray(),
        [[0, 1, 20, 0.5, 0.5], [1, 0, 30, 0, 1], [0, 1, 40, 0, 0]],
    )
    assert enc.field_names_ == ["user", "age", "genres"]
    assert enc.n_fields_ == 3
    assert enc.fields_.dtype == np.int32
    assert_array_equal(enc.fields_, [0, 0, 1, 2, 2])
    assert enc.n_features_out_ == X.shape[1] == len(enc.fields_)
    assert enc.n_features_in_ == 3
    assert enc.feature_names_in_.tolist() == ["user", "age", "genres"]


def test_output_format(frame):
    enc, X = encode(frame)
    assert isinstance(X, sp.csr_matrix) and X.format == "csr"  # FieldedCSR, a subclass
    assert X.indptr.dtype == np.int64 and X.indices.dtype == np.int32
    assert X.dtype == np.float32 and X.has_canonical_format
    X64 = FMEncoder(dtype=np.float64).fit_transform(frame)
    assert X64.dtype == np.float64
    assert_allclose(X64.toarray(), X.toarray(), rtol=1e-6)


def test_fit_transform_equals_fit_then_transform(frame):
    params = dict(handle_unknown="bucket", scale_numeric="minmax", bag_norm="l2")
    X1 = FMEncoder(**params).fit_transform(frame)
    X2 = FMEncoder(**params).fit(frame).transform(frame)
    assert (X1 != X2).nnz == 0


@pytest.mark.parametrize(
    "bag_norm, row",
    [
        ("l1", [2 / 3, 1 / 3]),
        ("l2", [2 / np.sqrt(5), 1 / np.sqrt(5)]),
        ("none", [2, 1]),
    ],
)
def test_bag_norm_counts_repeated_tokens(bag_norm, row):
    df = pd.DataFrame({"tags": ["a|b|a", "a|b", "b"]})
    enc, X = encode(df, multi_hot=["tags"], bag_norm=bag_norm)
    assert enc.get_feature_names_out().tolist() == ["tags=a", "tags=b"]
    two = {"l1": [0.5, 0.5], "l2": [S2, S2], "none": [1, 1]}[bag_norm]
    assert_allclose(X.toarray(), [row, two, [0, 1]], rtol=1e-6)


def test_multi_hot_cell_types_and_separator():
    cells = [["x", "y"], ("y",), np.array(["x"]), {"z"}, None, [], "x;z", ";;"]
    df = pd.DataFrame({"t": pd.Series(cells, dtype=object)})
    enc, X = encode(df, multi_hot=["t"], multi_hot_sep=";")
    assert_array_equal(enc.categories_["t"], ["x", "y", "z"])
    expected = [
        [0.5, 0.5, 0],
        [0, 1, 0],
        [1, 0, 0],
        [0, 0, 1],
        [0, 0, 0],  # missing cell: empty bag
        [0, 0, 0],
        [0.5, 0, 0.5],
        [0, 0, 0],  # empty tokens are dropped
    ]
    assert_allclose(X.toarray(), expected)


def test_unknown_ignore_gives_no_feature(frame):
    enc = FMEncoder(categorical=["user"], multi_hot=["genres"]).fit(frame)
    new = pd.DataFrame({"user": ["u9", "u1", None], "genres": ["Horror", "Drama|Horror", None]})
    # In the "ignore" mode the bag is normalized over its known tokens.
    assert_array_equal(enc.transform(new).toarray(), [[0, 0, 0, 0], [1, 0, 0, 1], [0, 0, 0, 0]])


def test_unknown_bucket(frame):
    enc = FMEncoder(categorical=["user"], multi_hot=["genres"], handle_unknown="bucket")
    enc.fit(frame)
    assert enc.get_feature_names_out().tolist() == [
        "user=u1",
        "user=u2",
        "user=<unknown>",
        "genres=Comedy",
        "genres=Drama",
        "genres=<unknown>",
    ]
    assert_array_equal(enc.fields_, [0, 0, 0, 1, 1, 1])
    new = pd.DataFrame({"user": ["u9", "u1", None], "genres": ["Horror", "Drama|Horror", None]})
    # A missing categorical value is unknown; a missing multi-hot cell is an empty bag.
    assert_array_equal(
        enc.transform(new).toarray(),
        [[0, 0, 1, 0, 0, 1], [1, 0, 0, 0, 0.5, 0.5], [0, 0, 1, 0, 0, 0]],
    )


def test_missing_categorical_at_fit_is_not_a_category():
    df = pd.DataFrame({"c": ["a", None, np.nan, "a"]})
    enc, X = encode(df, categorical=["c"], handle_unknown="bucket")
    assert_array_equal(enc.categories_["c"], ["a"])
    assert_array_equal(X.toarray(), [[1, 0], [0, 1], [0, 1], [1, 0]])


def test_min_frequency():
    df = pd.DataFrame({"c": ["a", "b", "a", "c"], "t": ["x|y", "x", "x|z", "z|z"]})
    enc, X = encode(df, categorical=["c"], multi_hot=["t"], min_frequency=2)
    assert_array_equal(enc.categories_["c"], ["a"])
    assert_array_equal(enc.categories_["t"], ["x", "z"])  # z occurs 3 times, y once
    assert_allclose(X.toarray(), [[1, 1, 0], [0, 1, 0], [1, 0.5, 0.5], [0, 0, 1]])
    enc, X = encode(df, categorical=["c"], min_frequency=2, handle_unknown="bucket")
    assert_array_equal(X.toarray(), [[1, 0], [0, 1], [1, 0], [0, 1]])


def test_numeric_nan_is_an_error_naming_column_and_row():
    df = pd.DataFrame({"age": [1.0, np.nan]}, index=["r1", "r2"])
    with pytest.raises(ValueError, match=r"'age'.*row 1 \(index label 'r2'\).*handle_missing"):
        FMEncoder(numeric=["age"]).fit(df)
    enc = FMEncoder(numeric=["age"]).fit(df.iloc[:1])
    with pytest.raises(ValueError, match="'age'.*row 1"):
        enc.transform(df)
    with pytest.raises(ValueError, match="'age' is infinite at row 0"):
        enc.transform({"age": [np.inf]})


def test_numeric_nan_handle_missing_zero():
    df = pd.DataFrame({"age": [1.0, None, 3.0]})
    enc, X = encode(df, handle_missing="zero", scale_numeric="standard")
    assert enc.numeric_scaling_["age"] == (2.0, 1.0)  # statistics ignore missing values
    assert_array_equal(X.toarray().ravel(), [-1, 0, 1])


def test_inference_of_column_kinds():
    df = pd.DataFrame(
        {
            "i": [1, 2],
            "f": [0.5, 1.5],
            "b": [True, False],
            "s": ["x", "y"],
            "o": pd.Series([1, "y"], dtype=object),
            "cat": pd.Categorical(["p", "q"]),
            "n": pd.array([1, None], dtype="Int64"),
            "l": [["a", "b"], ["b"]],
        }
    )
    enc = FMEncoder(handle_missing="zero").fit(df)
    assert enc.field_kinds_ == [
        "numeric",
        "numeric",
        "categorical",
        "categorical",
        "categorical",
        "categorical",
        "numeric",
        "multi_hot",
    ]
    assert "b=False" in enc.get_feature_names_out()
    with pytest.raises(TypeError, match="cannot infer .*'d'"):
        FMEncoder().fit(pd.DataFrame({"d": pd.to_datetime(["2024-01-01"])}))


def test_only_listed_columns_are_encoded(frame):
    enc, X = encode(frame, categorical=["user"], numeric=[])
    assert enc.field_names_ == ["user"] and X.shape == (3, 2)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(categorical=["nope"]), r"columns \['nope'\] are not in X"),
        (dict(categorical=["user", "user"]), r"'user' is listed twice \(in categorical\)"),
        (dict(categorical=["age"], numeric=["age"]), "'age' is listed twice .*numeric"),
        (dict(categorical=[], numeric=[]), "no columns to encode"),
        (dict(dtype=np.int32), "dtype must be"),
        (dict(multi_hot_sep=""), "multi_hot_sep"),
    ],
)
def test_value_errors(frame, params, match):
    with pytest.raises(ValueError, match=match):
        FMEncoder(**params).fit(frame)


@pytest.mark.parametrize(
    "params", [dict(bag_norm="l3"), dict(min_frequency=0), dict(categorical="user")]
)
def test_parameters_are_validated_at_fit(frame, params):
    enc = FMEncoder(**params)  # __init__ stores without validating
    with pytest.raises(ValueError):
        enc.fit(frame)


def test_input_errors(frame):
    with pytest.raises(ValueError, match="duplicate column names"):
        FMEncoder().fit(pd.concat([frame, frame[["age"]]], axis=1))
    with pytest.raises(ValueError, match="same length"):
        FMEncoder().fit({"a": [1, 2], "b": [1]})
    with pytest.raises(TypeError, match="sparse"):
        FMEncoder().fit(sp.eye(3, format="csr"))
    with pytest.raises(TypeError, match="multi_hot"):
        FMEncoder(categorical=["l"]).fit({"l": [["a"], ["b", "c"]]})
    enc = FMEncoder().fit(frame)
    with pytest.raises(ValueError, match=r"\['genres'\] are not in X"):
        enc.transform(frame[["user", "age"]])


def test_transform_selects_columns_by_name(frame):
    enc = FMEncoder().fit(frame)
    shuffled = frame[["genres", "age", "user"]].assign(extra=1)
    assert (enc.transform(shuffled) != enc.transform(frame)).nnz == 0


def test_dict_and_array_inputs(frame):
    enc = FMEncoder(categorical=["user"], numeric=["age"], multi_hot=["genres"])
    X_df = enc.fit_transform(frame)
    X_dict = enc.fit_transform({c: frame[c].tolist() for c in frame})
    assert (X_df != X_dict).nnz == 0
    assert enc.feature_names_in_.tolist() == ["user", "age", "genres"]

    arr = frame.to_numpy(dtype=object)
    enc = FMEncoder(categorical=[0], numeric=[1], multi_hot=[2])
    assert (enc.fit_transform(arr) != X_df).nnz == 0
    assert enc.get_feature_names_out().tolist()[:3] == ["0=u1", "0=u2", "1"]
    assert not hasattr(enc, "feature_names_in_")
    with pytest.raises(ValueError, match="expecting 3 features"):
        enc.transform(arr[:, :2])


def test_without_pandas(frame, monkeypatch):
    data = {
        "user": ["u2", "u1", "u2", None],
        "mixed": [1, "a", 1, 2.5],
        "n": np.array([3, 1, 3, 2]),
        "age": [20.0, 30.0, 40.0, np.nan],
        "genres": ["Drama|Comedy", "Drama", "", None],
        "lists": [["a"], ["a", "b"], [], ["c"]],
    }
    params = dict(
        categorical=["user", "mixed", "n"],
        numeric=["age"],
        multi_hot=["genres", "lists"],
        handle_unknown="bucket",
        handle_missing="zero",
    )
    with_pandas = FMEncoder(**params).fit(data)
    monkeypatch.setattr(encoder_module, "_pandas", lambda: None)
    enc = FMEncoder(**params).fit(data)
    assert_array_equal(enc.get_feature_names_out(), with_pandas.get_feature_names_out())
    new = {**data, "user": ["u1", "u3", None, "u2"], "mixed": ["a", "b", 2.5, 1]}
    assert_allclose(enc.transform(new).toarray(), with_pandas.transform(new).toarray())


def test_pipeline_and_clone(frame):
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    enc = FMEncoder(categorical=["user"], multi_hot=["genres"], handle_unknown="bucket")
    pipe = Pipeline([("enc", enc), ("lr", LogisticRegression())])
    pipe.fit(frame, [0, 1, 0])
    assert pipe.predict(frame).shape == (3,)
    assert pipe[:-1].get_feature_names_out().tolist()[0] == "user=u1"

    fitted = FMEncoder(categorical=["user"], min_frequency=2).fit(frame)
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "fields_")


def test_get_feature_names_out_checks_input_features(frame):
    enc = FMEncoder().fit(frame)
    names = enc.get_feature_names_out(["user", "age", "genres"])
    assert names.dtype == object and len(names) == enc.n_features_out_
    with pytest.raises(ValueError):
        enc.get_feature_names_out(["a", "b", "c"])


def test_fields_are_consistent_with_names(frame):
    enc = FMEncoder(handle_unknown="bucket").fit(frame)
    for name, field in zip(enc.get_feature_names_out(), enc.fields_, strict=True):
        assert name.split("=")[0] == enc.field_names_[field]
    assert np.all(np.diff(enc.fields_) >= 0)  # features are grouped by field


def test_sklearn_estimator_checks():
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_estimator(FMEncoder())


def test_movielens_sample():
    path = DATA_DIR / "ml-1m-sample" / "deepctr_movielens_sample.csv"
    if not path.exists():
        pytest.skip(f"{path} not found (set FMLEARN_DATA)")
    df = pd.read_csv(path)
    categorical = ["user_id", "movie_id", "gender", "age", "occupation"]
    enc = FMEncoder(categorical=categorical, multi_hot=["genres"])
    X = enc.fit_transform(df)

    assert enc.field_names_ == ["user_id", "movie_id", "genres", "gender", "age", "occupation"]
    genres = df["genres"].str.split("|").explode()
    sizes = [df[c].nunique() for c in enc.field_names_[:2]]
    sizes += [genres.nunique()] + [df[c].nunique() for c in enc.field_names_[3:]]
    assert_array_equal(np.bincount(enc.fields_), sizes)
    assert X.shape == (len(df), sum(sizes))
    assert "genres=Drama" in enc.get_feature_names_out()

    genre_field = enc.field_names_.index("genres")
    per_field = [X[:, enc.fields_ == f].sum(axis=1).A1 for f in range(enc.n_fields_)]
    for f, sums in enumerate(per_field):
        assert_allclose(sums, 1, rtol=1e-6, err_msg=enc.field_names_[f])  # one-hot or l1 bag
    n_genres = df["genres"].str.count(r"\|").to_numpy() + 1
    assert_array_equal(np.diff(X[:, enc.fields_ == genre_field].indptr), n_genres)


def test_field_weights_scale_a_fields_values_and_survive_a_pipeline_file(tmp_path):
    from sklearn.base import clone

    import fmlearn

    df = pd.DataFrame({"user": [1, 2, 1], "genres": ["a|b", "b", "c"], "age": [20.0, 30.0, 40.0]})
    plain = FMEncoder(categorical=["user"], multi_hot=["genres"], numeric=["age"])
    weighted = clone(plain).set_params(field_weights={"genres": 0.1, "age": 0.5})
    A, B = plain.fit_transform(df).toarray(), weighted.fit_transform(df).toarray()
    fields = plain.fields_
    np.testing.assert_allclose(B[:, fields == 0], A[:, fields == 0])
    np.testing.assert_allclose(B[:, fields == 1], 0.1 * A[:, fields == 1], rtol=1e-6)
    np.testing.assert_allclose(B[:, fields == 2], 0.5 * A[:, fields == 2], rtol=1e-6)
    fmlearn.save(weighted, tmp_path / "enc.fmz")
    again = fmlearn.load(tmp_path / "enc.fmz")
    assert again.field_weights == {"genres": 0.1, "age": 0.5}
    np.testing.assert_array_equal(again.transform(df).toarray(), B)
    for bad, match in (({"zip": 2.0}, "not encoded"), ({"age": 0.0}, "finite number > 0"),
                       ({"age": float("nan")}, "finite number > 0")):
        with pytest.raises(ValueError, match=match):
            clone(plain).set_params(field_weights=bad).fit(df)
