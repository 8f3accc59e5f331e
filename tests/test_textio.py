"""Tests for fmlearn.data.textio: libFM / libsvm / FFM readers and writers."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import DATA_DIR

from fmlearn.data.textio import read_ffm, read_libfm, write_ffm, write_libfm
from fmlearn.exceptions import DataFormatError

DATA = DATA_DIR


def _file(tmp_path, content, name="data.txt"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def _bits(a):
    """View floats as integers so comparisons see -0.0 vs 0.0 and every last bit."""
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def _random_csr(rng, n_rows, n_cols, density, dtype):
    X = sp.random(n_rows, n_cols, density=density, format="csr", random_state=rng, dtype=dtype)
    # Spread magnitudes and signs so formatting sees long, short, tiny and huge numbers.
    scale = 10.0 ** rng.integers(-12, 12, X.nnz)
    X.data = (X.data * rng.choice([-1, 1], X.nnz) * scale).astype(dtype)
    X.data[::7] = np.round(X.data[::7])  # some integral values ('3', '-0')
    return X


# --------------------------------------------------------------------------------------------
# Reading: lexical rules


def test_libfm_lexical_rules(tmp_path):
    content = (
        b"1 0:1 3:0.5\r\n"
        b"\r\n"
        b"# a comment line\n"
        b"-1\t2:1e-3 qid:7 2:1   # trailing comment\n"
        b"+1 5:0.3651\n"
        b"   \n"
        b"3.5\n"
        b"1e-3 1:-2"  # no final newline
    )
    X, y = read_libfm(_file(tmp_path, content))
    expected = np.zeros((5, 6), dtype=np.float32)
    expected[0, [0, 3]] = [1, 0.5]
    expected[1, 2] = np.float32(1.001)  # duplicates within a row are summed
    expected[2, 5] = np.float32(0.3651)
    expected[4, 1] = -2
    np.testing.assert_array_equal(X.toarray(), expected)
    np.testing.assert_array_equal(y, [1, -1, 1, 3.5, 1e-3])
    assert X.shape == (5, 6)
    assert y.dtype == np.float64
    assert X.indptr.dtype == np.int64 and X.indices.dtype == np.int32
    assert X.data.dtype == np.float32
    assert X.has_sorted_indices and X.has_canonical_format


def test_utf8_bom_and_float64_dtype(tmp_path):
    X, y = read_libfm(_file(tmp_path, b"\xef\xbb\xbf0 2:0.1\n"), dtype=np.float64)
    assert X.data.dtype == np.float64
    assert X.data[0] == 0.1 and y[0] == 0 and X.shape == (1, 3)


def test_duplicates_summed_and_sorted(tmp_path):
    rng = np.random.default_rng(0)
    lines, rows = [], []
    for n in (3, 40, 200):  # short rows use insertion sort, long ones heapsort
        idx = rng.integers(0, 30, n)
        val = rng.integers(-5, 6, n).astype(float)
        lines.append("1 " + " ".join(f"{i}:{v:g}" for i, v in zip(idx, val, strict=True)))
        rows.append((idx, val))
    X, _ = read_libfm(_file(tmp_path, "\n".join(lines) + "\n"), n_features=30)
    ref = sp.csr_matrix(
        (
            np.concatenate([v for _, v in rows]),
            np.concatenate([i for i, _ in rows]),
            np.cumsum([0] + [len(i) for i, _ in rows]),
        ),
        shape=(3, 30),
    )
    ref.sum_duplicates()
    assert X.has_sorted_indices
    for r in range(3):
        seg = X.indices[X.indptr[r] : X.indptr[r + 1]]
        assert np.all(np.diff(seg) > 0)
    np.testing.assert_array_equal(X.indptr, ref.indptr)
    np.testing.assert_array_equal(X.indices, ref.indices)
    np.testing.assert_array_equal(X.data, ref.data)


def test_leading_zeros_and_row_order(tmp_path):
    # Leading zeros are fine however many; rows in order are not re-sorted, and one row out of
    # order (here the last, with a duplicate) is sorted and summed.
    content = "1 0000000000000000000003:1 7:2\n0 0:1 000:2\n1 5:1 3:0.5 5:2\n"
    X, y = read_libfm(_file(tmp_path, content))
    assert X.indptr.tolist() == [0, 2, 3, 5] and X.indices.tolist() == [3, 7, 0, 3, 5]
    assert X.data.tolist() == [1, 2, 3, 0.5, 3]
    X, y, fields = read_ffm(_file(tmp_path, "1 0002:00010:1 2:9:1\n"))
    assert X.indices.tolist() == [9, 10] and fields[[9, 10]].tolist() == [2, 2]


def test_n_features(tmp_path):
    path = _file(tmp_path, "1 0:1 5:2\n0 3:1\n")
    assert read_libfm(path)[0].shape == (2, 6)
    assert read_libfm(path, n_features=10)[0].shape == (2, 10)
    with pytest.raises(DataFormatError) as exc:
        read_libfm(path, n_features=4)
    assert (exc.value.line, exc.value.column) == (1, 7)
    assert "n_features=4" in str(exc.value) and "n_features=6" in str(exc.value)


def test_gzip_input(tmp_path):
    text = b"1 0:1 2:0.25\n0 1:3\n"
    plain = read_libfm(_file(tmp_path, text))
    gz = tmp_path / "data.libfm.gz"
    gz.write_bytes(gzip.compress(text))
    zipped = read_libfm(gz)
    assert (plain[0] != zipped[0]).nnz == 0
    np.testing.assert_array_equal(plain[1], zipped[1])
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(text)[:-12])
    with pytest.raises(DataFormatError, match="gzip"):
        read_libfm(bad)


# --------------------------------------------------------------------------------------------
# Reading: errors (each with path, 1-based line and column, and a hint)

ERROR_CASES = [
    # (reader, content, line, column, message fragment)
    ("libfm", "1 0:1\n1 -3:1\n", 2, 3, "negative feature index '-3'"),
    ("libfm", "1 1.5:1\n", 1, 3, "not a non-negative integer"),
    ("libfm", "1 abc:1\n", 1, 3, "not a non-negative integer"),
    ("libfm", "1 0:1 7\n", 1, 7, "has no ':'"),
    ("libfm", "\n\n1 3:abc\n", 3, 5, "bad value 'abc'"),
    ("libfm", "1 3:\n", 1, 5, "bad value ''"),
    ("libfm", "abc 3:1\n", 1, 1, "bad label 'abc'"),
    ("libfm", "1:1 2:1\n", 1, 1, "instead of a label"),
    ("libfm", "1 2147483647:1\n", 1, 3, "re-hash"),
    ("libfm", "1 99999999999999999999:1\n", 1, 3, "re-hash"),
    ("libfm", "1 0:1\r\n0 3:nan\r\n", 2, 5, "not finite"),
    ("libfm", "1 3:inf\n", 1, 5, "not finite"),
    ("libfm", "1 3:-Infinity\n", 1, 5, "not finite"),
    ("libfm", "1 3:1e400\n", 1, 5, "infinite"),
    ("libfm", "nan 3:1\n", 1, 1, "label 'nan' is not finite"),
    ("libfm", "1 3:1e39\n", 1, 5, "overflows float32"),
    ("libfm", "1 3:12345678901234567890123e20\n", 1, 5, "overflows float32"),
    ("libfm", "0 1:1\n1e400 3:1\n", 2, 1, "label '1e400' is infinite"),
    ("libfm", "1 0:1:2\n", 1, 3, "use read_ffm"),
    ("libfm", "1 1:2:3:4\n", 1, 3, "has 3 ':'"),
    ("ffm", "1 1:2\n", 1, 3, "use read_libfm"),
    ("ffm", "1 0:1:1 1:1:1\n", 1, 9, "under field 1 in token '1:1:1' but under field 0"),
    ("ffm", "1 -1:2:1\n", 1, 3, "negative field"),
    ("ffm", "1 a:2:1\n", 1, 3, "field 'a'"),
    ("ffm", "1 0:-2:1\n", 1, 5, "negative feature index"),
    ("ffm", "1 0:2:x\n", 1, 7, "bad value 'x'"),
    # Tokens that only look like an svmlight 'qid:N'.
    ("libfm", "1 qid:1:2 0:1\n", 1, 3, "use read_ffm"),
    ("libfm", "1 QID:3\n", 1, 3, "feature index 'QID'"),
    # A conflict past the first 1024 features: the field map grows while re-parsing.
    ("ffm", "1 0:5000:1\n0 1:5000:1\n", 2, 3, "under field 0 earlier"),
]


@pytest.mark.parametrize(("reader", "content", "line", "column", "fragment"), ERROR_CASES)
def test_parse_errors(tmp_path, reader, content, line, column, fragment):
    path = _file(tmp_path, content)
    read = read_libfm if reader == "libfm" else read_ffm
    with pytest.raises(DataFormatError) as exc:
        read(path)
    err = exc.value
    assert (err.path, err.line, err.column) == (str(path), line, column), str(err)
    assert fragment in str(err)
    assert str(err).startswith(f"{path}:{line}:{column}: ")


def test_bound_hints_use_the_whole_number(tmp_path):
    # Token texts in messages are cut at 40 characters; the suggested bound is not.
    index = "0" * 40 + "12"
    with pytest.raises(DataFormatError, match="pass n_features=13 or more"):
        read_libfm(_file(tmp_path, f"1 {index}:1\n"), n_features=8)
    with pytest.raises(DataFormatError, match="pass n_fields=13 or more"):
        read_ffm(_file(tmp_path, f"1 {index}:0:1\n"), n_fields=2)


def test_n_fields_bound(tmp_path):
    path = _file(tmp_path, "1 0:1:1 2:3:1\n")
    assert read_ffm(path, n_fields=3)[2].tolist() == [-1, 0, -1, 2]
    with pytest.raises(DataFormatError, match="n_fields=2; pass n_fields=3") as exc:
        read_ffm(path, n_fields=2)
    assert exc.value.column == 9


@pytest.mark.parametrize("content", [b"", b"# only a comment\n\n   \r\n"])
def test_no_rows(tmp_path, content):
    with pytest.raises(DataFormatError, match="no rows"):
        read_libfm(_file(tmp_path, content))


def test_missing_file(tmp_path):
    path = tmp_path / "nope.libfm"
    with pytest.raises(FileNotFoundError, match="nope.libfm"):
        read_libfm(path)


def test_bad_arguments(tmp_path):
    path = _file(tmp_path, "1 0:1\n")
    with pytest.raises(ValueError, match="dtype"):
        read_libfm(path, dtype=np.int32)
    with pytest.raises(ValueError, match="n_features"):
        read_libfm(path, n_features=-1)


# --------------------------------------------------------------------------------------------
# Number conversion: exactly Python's float()


def _random_number_strings(rng, n):
    out = [
        "0.3651", "1e-3", "0", "-0", "-0.0", ".5", "5.", "+1", "1E5", "1e+05",
        "9007199254740993", "9007199254740992.5", "2.2250738585072011e-308",
        "2.2250738585072014e-308", "4.9e-324", "2.4703282292062327e-324",
        "2.4703282292062328e-324", "1.7976931348623157e308", "1e-400",
        "123456789012345678901234567890", "0.000000000000000000000000000001234",
        "3.4028235677973366e38", "1.00000005960464477539062499", "8.589973e9",
        "0.1000000000000000055511151231257827021181583404541015625",
    ]  # fmt: skip
    for _ in range(n):
        kind = rng.integers(4)
        sign = rng.choice(["", "-", "+"])
        if kind == 0:  # typical data: short decimals
            s = f"{rng.integers(0, 1000)}.{rng.integers(0, 10 ** rng.integers(1, 6))}"
        elif kind == 1:  # repr of random doubles
            s = repr(abs(float(rng.standard_normal() * 10.0 ** rng.integers(-30, 30))))
        elif kind == 2:  # long mantissas (beyond 19 digits -> Python fallback)
            digits = "".join(rng.choice(list("0123456789"), rng.integers(1, 30)))
            point = rng.integers(0, len(digits) + 1)
            s = digits[:point] + "." + digits[point:] if point < len(digits) else digits
        else:  # wide exponents
            s = f"{rng.integers(1, 10 ** rng.integers(1, 19))}e{rng.integers(-340, 300)}"
        out.append(sign + s)
    return [s for s in out if np.isfinite(float(s))]


def test_floats_match_python_float(tmp_path):
    rng = np.random.default_rng(42)
    strings = _random_number_strings(rng, 20000)
    path = _file(tmp_path, "".join(f"{s} 0:{s}\n" for s in strings))
    X, y = read_libfm(path, dtype=np.float64)
    expected = np.array([float(s) for s in strings])
    np.testing.assert_array_equal(_bits(y), _bits(expected))
    np.testing.assert_array_equal(_bits(X.data), _bits(expected))

    # float32: parse to float64, then cast -- the same as np.float32(float(s)).
    small = [s for s in strings if abs(float(s)) < 3.4e38]
    X32, _ = read_libfm(_file(tmp_path, "".join(f"1 0:{s}\n" for s in small)))
    with np.errstate(over="ignore"):
        expected32 = np.array([float(s) for s in small]).astype(np.float32)
    np.testing.assert_array_equal(_bits(X32.data), _bits(expected32))


# --------------------------------------------------------------------------------------------
# Writing


def test_write_shortest_text(tmp_path):
    values = np.array(
        [1.0, 0.5, 0.3651, 1e-5, 1e-4, 123456792.0, -0.0, 1e20, 3.4028235e38, 2.5e-3, -7.0],
        dtype=np.float32,
    )
    X = sp.csr_matrix(values.reshape(1, -1))
    X.data = values  # keep the explicit -0.0
    X.indices = np.arange(values.size, dtype=np.int32)
    X.indptr = np.array([0, values.size])
    path = tmp_path / "out.libfm"
    write_libfm(path, X, [1.25])
    text = path.read_text()
    assert text == (
        "1.25 0:1 1:0.5 2:0.3651 3:1e-5 4:0.0001 5:123456790 6:-0 7:1e20 8:3.4028235e38 "
        "9:0.0025 10:-7\n"
    )
    X2, y2 = read_libfm(path)
    np.testing.assert_array_equal(_bits(X2.data), _bits(values))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shortest_matches_repr(tmp_path, dtype):
    rng = np.random.default_rng(1)
    values = (rng.standard_normal(5000) * 10.0 ** rng.integers(-40, 38, 5000)).astype(dtype)
    values[values == 0] = 1
    X = sp.csr_matrix((values, np.zeros(values.size, np.int32), np.arange(values.size + 1)))
    path = tmp_path / "v.libfm"
    write_libfm(path, X, np.zeros(values.size))
    written = [line.split(":", 1)[1] for line in path.read_text().splitlines()]
    for v, w in zip(values, written, strict=True):
        assert dtype(float(w)) == v
        # same number of significant digits as numpy's shortest repr
        ref = repr(float(v)) if dtype == np.float64 else str(v)
        sig = ref.lower().split("e")[0].replace("-", "").replace(".", "").strip("0")
        got = w.lower().split("e")[0].replace("-", "").replace(".", "").strip("0")
        assert len(got) <= len(sig), (v, w, ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_libfm_round_trip(tmp_path, dtype):
    rng = np.random.default_rng(3)
    X = _random_csr(rng, 300, 2000, 0.02, dtype)
    y = rng.standard_normal(300) * 100
    y[::3] = np.round(y[::3])
    path = tmp_path / "rt.libfm"
    write_libfm(path, X, y)
    X2, y2 = read_libfm(path, n_features=X.shape[1], dtype=dtype)
    assert X2.shape == X.shape
    np.testing.assert_array_equal(X2.indptr, X.indptr)
    np.testing.assert_array_equal(X2.indices, X.indices)
    np.testing.assert_array_equal(_bits(X2.data), _bits(X.data))
    np.testing.assert_array_equal(_bits(y2), _bits(y))
    assert not [p for p in os.listdir(tmp_path) if ".fmlearn-tmp-" in p]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ffm_round_trip(tmp_path, dtype):
    rng = np.random.default_rng(4)
    X = _random_csr(rng, 200, 5000, 0.01, dtype)
    fields = rng.integers(0, 12, X.shape[1]).astype(np.int32)
    fields[~np.isin(np.arange(X.shape[1]), X.indices)] = -1
    y = rng.choice([0.0, 1.0], 200)
    path = tmp_path / "rt.ffm"
    write_ffm(path, X, y, fields)
    X2, y2, f2 = read_ffm(path, n_features=X.shape[1], dtype=dtype)
    np.testing.assert_array_equal(X2.indices, X.indices)
    np.testing.assert_array_equal(_bits(X2.data), _bits(X.data))
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(f2, fields)
    # without n_features the field map grows as indices appear
    X3, _, f3 = read_ffm(path)
    assert X3.shape[1] == X.indices.max() + 1
    np.testing.assert_array_equal(f3, fields[: X3.shape[1]])


def test_write_gzip_and_dense(tmp_path):
    X = np.array([[0, 1.5, 0], [2, 0, 0]], dtype=np.float64)
    path = tmp_path / "d.libfm.gz"
    write_libfm(path, X, [1, 0])
    assert gzip.decompress(path.read_bytes()) == b"1 1:1.5\n0 0:2\n"
    X2, y2 = read_libfm(path, dtype=np.float64)
    np.testing.assert_array_equal(X2.toarray(), X[:, :2])
    np.testing.assert_array_equal(y2, [1, 0])


def test_write_rejects_bad_input_atomically(tmp_path):
    path = tmp_path / "keep.libfm"
    path.write_text("original\n")
    X = sp.csr_matrix(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="not finite"):
        write_libfm(path, X, [1])
    with pytest.raises(ValueError, match="not finite"):
        write_libfm(path, sp.csr_matrix(np.ones((1, 2))), [np.inf])
    with pytest.raises(ValueError, match="shape"):
        write_libfm(path, sp.csr_matrix(np.ones((2, 2))), [1])
    with pytest.raises(ValueError, match="fields"):
        write_ffm(path, sp.csr_matrix(np.ones((1, 2))), [1], np.array([0, -1]))
    assert path.read_text() == "original\n"
    assert sorted(os.listdir(tmp_path)) == ["keep.libfm"]


# --------------------------------------------------------------------------------------------
# Interoperability and real files


def test_matches_sklearn_loader(tmp_path):
    datasets = pytest.importorskip("sklearn.datasets")
    rng = np.random.default_rng(5)
    X = _random_csr(rng, 400, 300, 0.05, np.float64)
    y = rng.integers(-1, 2, 400).astype(float)
    path = tmp_path / "sk.svm"
    datasets.dump_svmlight_file(X, y, str(path), zero_based=True)
    Xs, ys = datasets.load_svmlight_file(str(path), zero_based=True, n_features=300)
    Xf, yf = read_libfm(path, n_features=300, dtype=np.float64)
    np.testing.assert_array_equal(yf, ys)
    assert abs(Xf - Xs).max() == 0
    # and sklearn reads what we write
    ours = tmp_path / "ours.svm"
    write_libfm(ours, X, y)
    Xs2, ys2 = datasets.load_svmlight_file(str(ours), zero_based=True, n_features=300)
    assert abs(Xs2 - X).max() == 0 and np.array_equal(ys2, y)


def test_real_frappe():
    path = DATA / "frappe" / "frappe.test.libfm"
    if not path.exists():
        pytest.skip(f"{path} not found (set FMLEARN_DATA)")
    X, y = read_libfm(path)
    assert X.shape[0] == 28860 and X.nnz == 288600
    assert X.shape[1] <= 5382 and X.indices.max() <= 5381
    assert set(np.unique(y)) == {-1.0, 1.0}
    assert np.all(np.diff(X.indptr) == 10) and np.all(X.data == 1)


def test_real_xlearn_ffm(tmp_path):
    path = DATA / "criteo-samples" / "xlearn_small_train.ffm"
    if not path.exists():
        pytest.skip(f"{path} not found (set FMLEARN_DATA)")
    lines = path.read_text().splitlines()
    # This file reuses feature ids across fields (indices are hashed per field), which
    # fmlearn's one-field-per-feature model rejects: find the first such token by hand.
    first_field, where = {}, None
    for n, line in enumerate(lines, 1):
        col = len(line.split(" ", 1)[0]) + 2
        for tok in line.split()[1:]:
            f, i, _ = tok.split(":")
            if first_field.setdefault(i, f) != f and where is None:
                where = (n, col, f"under field {first_field[i]} earlier")
            col += len(tok) + 1
    with pytest.raises(DataFormatError) as exc:
        read_ffm(path)
    assert (exc.value.line, exc.value.column) == where[:2]
    assert where[2] in str(exc.value)

    # Re-indexed per field as the message suggests, the file reads fine.
    fixed = []
    for line in lines:
        label, *toks = line.split()
        toks = [t.split(":") for t in toks]
        fixed.append(" ".join([label] + [f"{f}:{int(f) * 10000 + int(i)}:{v}" for f, i, v in toks]))
    X, y, fields = read_ffm(_file(tmp_path, "\n".join(fixed) + "\n"))
    assert X.shape[0] == 200 and int((y == 1).sum()) == 48
    assert set(np.unique(y)) == {0.0, 1.0}
    used = np.unique(X.indices)
    assert len(np.unique(fields[used])) == 18 and np.all(fields[used] == used // 10000)
    assert X.nnz == len({(r, t) for r, line in enumerate(fixed) for t in line.split()[1:]})


def test_xlearn_file_loads_with_first_field_policy(data_dir):
    path = data_dir / "criteo-samples" / "xlearn_small_train.ffm"
    with pytest.warns(UserWarning, match="keeps its first field"):
        X, y, fields = read_ffm(path, on_field_conflict="first")
    assert X.shape[0] == 200 and int((y == 1).sum()) == 48
    assert fields.max() == 17 and (fields[np.unique(X.indices)] >= 0).all()
    with pytest.raises(ValueError, match="on_field_conflict"):
        read_ffm(path, on_field_conflict="ignore")
