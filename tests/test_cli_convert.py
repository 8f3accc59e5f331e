"""fmlearn convert, and the train command's notes (#11)."""

import numpy as np
import pandas as pd
import pytest

from fmlearn.cli import main
from fmlearn.data.textio import read_ffm, read_libfm, write_libfm


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({
        "user": [f"u{i}" for i in rng.integers(0, 40, n)],
        "item": [f"i{i}" for i in rng.integers(0, 25, n)],
        "age": rng.normal(30, 5, n).round(1),
        "genres": rng.choice(["a|b", "b", "c|a"], n),
        "click": np.where(rng.random(n) < 0.3, "yes", "no"),
    })
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    return df, path


def test_table_to_ffm_with_fields_and_a_reusable_encoder(table, tmp_path, capsys):
    df, path = table
    out, enc = tmp_path / "t.ffm", tmp_path / "enc.fmz"
    assert main(["convert", "--data", str(path), "--target", "click", "--to", "ffm",
                 "--out", str(out), "--multi-hot", "genres", "--encoder-out", str(enc)]) == 0
    X, y, fields = read_ffm(out)
    assert X.shape[0] == len(df) and set(np.unique(y)) == {0.0, 1.0}
    assert np.array_equal(y, (df["click"] == "yes").to_numpy(float))
    # user, item, age, genres: four fields; one user and one item per row, an age, a bag.
    assert np.unique(fields).tolist() == [0, 1, 2, 3]
    assert "'no' -> 0, 'yes' -> 1" in capsys.readouterr().err
    # A second file through the saved encoder gets the same columns.
    out2 = tmp_path / "t2.ffm"
    assert main(["convert", "--data", str(path), "--target", "click", "--to", "ffm",
                 "--out", str(out2), "--encoder", str(enc)]) == 0
    assert out2.read_bytes() == out.read_bytes()


def test_hashed_categories(table, tmp_path):
    from fmlearn.data.encoder import FMEncoder

    df, path = table
    out = tmp_path / "h.ffm"
    assert main(["convert", "--data", str(path), "--target", "click", "--to", "ffm",
                 "--out", str(out), "--categorical", "user,item", "--numeric", "age",
                 "--hash-bits", "8"]) == 0
    X, _, fields = read_ffm(out)
    assert X.shape[1] == 2 * 2**8 + 1  # 256 hashed columns per field, then age
    assert (np.asarray(X[:, :256].sum(axis=1)).ravel() == 1).all()  # one user per row
    assert (np.asarray(X[:, 256:512].sum(axis=1)).ravel() == 1).all()  # one item per row
    np.testing.assert_allclose(X[:, 512].toarray().ravel(), df["age"], rtol=1e-6)
    used = fields >= 0  # an FFM file gives the fields of the features it has
    assert (fields[used] == (np.arange(513)[used] // 256)).all() and fields[512] == 2
    # One hash for one concept: the column ids of FMEncoder(hash_bits=8) (MurmurHash3).
    enc = FMEncoder(categorical=["user", "item"], numeric=["age"], hash_bits=8)
    H = enc.fit_transform(df.drop(columns="click"))
    np.testing.assert_array_equal(X.indices, H.indices)
    np.testing.assert_array_equal(X.indptr, H.indptr)
    np.testing.assert_array_equal(fields[used], enc.fields_[used])
    # A hashing encoder saved with --encoder-out converts another file alike.
    out1, out2, saved = tmp_path / "h1.ffm", tmp_path / "h2.ffm", tmp_path / "enc.fmz"
    assert main(["convert", "--data", str(path), "--target", "click", "--to", "ffm",
                 "--out", str(out1), "--categorical", "user,item", "--hash-bits", "1",
                 "--encoder-out", str(saved)]) == 0
    X1, _, fields1 = read_ffm(out1)
    assert X1.shape[1] == 4 and fields1.tolist() == [0, 0, 1, 1]  # all used
    assert main(["convert", "--data", str(path), "--target", "click", "--to", "ffm",
                 "--out", str(out2), "--encoder", str(saved)]) == 0
    assert out2.read_bytes() == out1.read_bytes()
    assert main(["convert", "--data", str(path), "--target", "click", "--out", str(out1),
                 "--hash-bits", "25"]) == 2


def test_hashed_libfm_file_as_train_hashes_it(tmp_path):
    from fmlearn.data.hashing import hash_columns

    src = tmp_path / "a.libsvm"
    X = np.array([[1.0, 0, 2, 0], [0, 3, 0, 4]])
    write_libfm(src, X, np.array([1.0, 0.0]))
    fmap = tmp_path / "fields.txt"
    fmap.write_text("0-1 0\n2-3 1\n")
    out = tmp_path / "a.ffm"
    assert main(["convert", "--data", str(src), "--to", "ffm", "--out", str(out),
                 "--field-map", str(fmap), "--hash-bits", "3"]) == 0
    Xf, _, fields = read_ffm(out)
    H, hf = hash_columns(read_libfm(src)[0], 3, np.array([0, 0, 1, 1]))
    np.testing.assert_array_equal(Xf.indices, H.indices)
    used = fields >= 0
    assert used.sum() >= 2 and (fields[used] == hf[: fields.shape[0]][used]).all()


def test_libsvm_to_ffm_needs_fields_and_takes_a_field_map(tmp_path, capsys):
    src = tmp_path / "a.libsvm"
    X = np.array([[1.0, 0, 2, 0], [0, 3, 0, 4]])
    write_libfm(src, X, np.array([1.0, 0.0]))
    out = tmp_path / "a.ffm"
    assert main(["convert", "--data", str(src), "--to", "ffm", "--out", str(out)]) == 2
    assert "--field-map" in capsys.readouterr().err and not out.exists()
    fmap = tmp_path / "fields.txt"
    fmap.write_text("0-1 0\n2 1  # the third feature\n3 1\n")
    assert main(["convert", "--data", str(src), "--to", "ffm", "--out", str(out),
                 "--field-map", str(fmap)]) == 0
    Xf, y, fields = read_ffm(out)
    assert fields.tolist() == [0, 0, 1, 1] and np.array_equal(Xf.toarray(), X)
    fmap.write_text("0-1 0\n")
    assert main(["convert", "--data", str(src), "--to", "ffm", "--out", str(out),
                 "--field-map", str(fmap)]) == 2
    assert "no field for feature 2" in capsys.readouterr().err
    back = tmp_path / "b.libfm"
    assert main(["convert", "--data", str(out), "--to", "libfm", "--out", str(back)]) == 0
    assert np.array_equal(read_libfm(back)[0].toarray(), X)


def test_table_errors_are_one_line(table, tmp_path, capsys):
    _, path = table
    out = tmp_path / "x.libfm"
    assert main(["convert", "--data", str(path), "--out", str(out)]) == 2
    assert "--target" in capsys.readouterr().err
    assert main(["convert", "--data", str(path), "--target", "nope", "--out", str(out)]) == 2
    assert "no column 'nope'" in capsys.readouterr().err


@pytest.fixture
def binary_file(tmp_path):
    rng = np.random.default_rng(0)
    X = (rng.random((300, 10)) < 0.3).astype(float)
    path = tmp_path / "b.libfm"
    write_libfm(path, X, (X[:, 0] > 0).astype(float))
    return path


def test_train_notes_two_valued_labels_and_no_model_out(binary_file, capsys):
    assert main(["train", "--train", str(binary_file), "--max-iter", "2"]) == 0
    err = capsys.readouterr().err
    assert "labels take only two values (0, 1)" in err and "--task classification" in err
    assert "no --model-out given" in err
    assert main(["train", "--train", str(binary_file), "--max-iter", "2", "--task",
                 "regression", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "two values" not in err and "no --model-out" not in err


def test_reader_errors_name_the_flag(tmp_path, capsys):
    path = tmp_path / "f.ffm"
    path.write_text("1 0:3:1 1:5:1\n")
    assert main(["train", "--train", str(path)]) == 2
    err = capsys.readouterr().err
    assert "--format ffm" in err and "read_ffm" not in err
