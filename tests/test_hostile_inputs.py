"""Hostile inputs (issue #12): malformed sparse structures, field arrays, extreme numbers and
exact resume.

The kernels do no bounds checks, so every input they index is validated at the boundary
(:mod:`fmlearn.data.validation`). The properties here are generated with hypothesis on a fixed,
small, derandomized budget: each input must give a clean ``ValueError`` (or
``DataFormatError``) with a useful message, or a correct result; never a crash. A few fixed
cases run in a subprocess to show that the process survives them (a segfault would otherwise
take pytest down with it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fmlearn
from fmlearn import FFMRegressor, FMClassifier, FMOrdinalRegressor, FMRegressor, RelationBlock
from fmlearn.data.encoder import FMEncoder
from fmlearn.data.textio import read_ffm, read_libfm
from fmlearn.data.validation import FLOAT32_MAX, check_matrix
from fmlearn.exceptions import DataFormatError, ModelFileError
from fmlearn.retrieval import recommend

N_COLS = 8
SETTINGS = dict(deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _data(n_rows=60, n_cols=N_COLS, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n_rows, n_cols, density=0.4, format="csr", random_state=seed,
                  dtype=np.float64)
    return X, rng.normal(size=n_rows)


@pytest.fixture(scope="module")
def model():
    X, y = _data()
    return FMRegressor(n_factors=4, max_iter=3, random_state=0).fit(X, y)


# ------------------------------------------------------------------ generated CSR structures
_GOOD = st.integers(0, N_COLS - 1)
_BAD = st.sampled_from([-1, -(2**31), N_COLS, N_COLS + 1, 2**31 - 1, 2**31, 2**32 + 3,
                        2**63 - 1])
_VALUE = st.one_of(
    st.floats(-100, 100, allow_nan=False),
    st.just(0.0),
    st.sampled_from([1e30, -1e30, 3e38, -3e38, 1e200, -1e200, 1e-300]),
)


@st.composite
def hand_built_csr(draw):
    """(matrix, expected dense or None): a CSR built from raw arrays, possibly malformed
    (index out of range, negative, beyond int32; indptr broken), with unsorted rows,
    duplicates and explicit zeros. ``expected`` is the dense matrix when the structure is
    valid (duplicates summed), else None."""
    n_rows = draw(st.integers(1, 5))
    rows = [draw(st.lists(st.tuples(st.one_of(_GOOD, _GOOD, _GOOD, _BAD), _VALUE),
                          max_size=6)) for _ in range(n_rows)]
    indices = np.array([j for r in rows for j, _ in r], dtype=np.int64)
    data = np.array([v for r in rows for _, v in r], dtype=np.float64)
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    broken = draw(st.sampled_from(["none", "none", "none", "decrease", "past_end"]))
    if broken == "decrease" and n_rows >= 2:
        indptr[1] = indptr[-1] + 5  # row 0 runs past the arrays, row 1 goes backwards
    elif broken == "past_end":
        indptr[-1] += 3
    else:
        broken = "none"
    if indices.size and np.all((indices >= 0) & (indices < 2**31)) and draw(st.booleans()):
        indices = indices.astype(np.int32)
    # Bypass scipy's constructor checks, as a hand-made or mutated matrix does.
    M = sp.csr_matrix((n_rows, N_COLS), dtype=np.float64)
    M.data, M.indices, M.indptr = data, indices, indptr
    valid = broken == "none" and bool(np.all((indices >= 0) & (indices < N_COLS)))
    expected = None
    if valid:
        expected = np.zeros((n_rows, N_COLS))
        row_of = np.repeat(np.arange(n_rows), np.diff(indptr))
        np.add.at(expected, (row_of, indices), data)
    return M, expected


def _check_message(e: ValueError):
    msg = str(e)
    assert len(msg) > 30, msg
    assert any(w in msg for w in ("row", "indptr", "index", "column", "indices")), msg


@settings(max_examples=60, **SETTINGS)
@given(case=hand_built_csr())
def test_predict_on_hand_built_csr_is_correct_or_a_clean_error(model, case):
    M, expected = case
    try:
        got = model.predict(M)
    except ValueError as e:
        _check_message(e)
        if expected is not None:
            # A valid structure may only fail on its values: out of float32's range, or a
            # prediction that overflows.
            assert not (np.abs(expected) <= 1e3).all(), str(e)
        return
    assert expected is not None, "a malformed matrix was accepted"
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, model.predict(expected), rtol=1e-6, atol=1e-6)


@settings(max_examples=25, **SETTINGS)
@given(case=hand_built_csr())
def test_fit_on_hand_built_csr_is_a_model_or_a_clean_error(case):
    M, expected = case
    y = np.linspace(-1, 1, M.shape[0])
    try:
        est = FMRegressor(n_factors=2, max_iter=1, random_state=0).fit(M, y)
    except ValueError as e:
        _check_message(e)
        assert expected is None or not (np.abs(expected) <= 1e3).all(), str(e)
        return
    assert expected is not None, "a malformed matrix was accepted"
    assert np.isfinite(est.V_).all()


@settings(max_examples=30, **SETTINGS)
@given(case=hand_built_csr(), fmt=st.sampled_from(["csc", "coo"]))
def test_other_sparse_formats_are_checked_before_conversion(case, fmt):
    M, expected = case
    if fmt == "csc":  # the transposed structure, read as CSC of the transposed shape
        C = sp.csc_matrix((N_COLS, M.shape[0]), dtype=np.float64)
        C.data, C.indices, C.indptr = M.data, M.indices, M.indptr
        expected = None if expected is None else expected.T
    else:
        if expected is None:
            return  # COO has no indptr; its own coordinates are tried below
        coo = sp.coo_matrix(M.shape)
        row_of = np.repeat(np.arange(M.shape[0]), np.diff(M.indptr))
        coo.row, coo.col, coo.data = row_of.astype(np.int32), M.indices, M.data
        C = coo
    try:
        out = check_matrix(C)
    except ValueError as e:
        _check_message(e)
        assert expected is None or not (np.abs(expected) <= FLOAT32_MAX).all(), str(e)
        return
    assert expected is not None
    np.testing.assert_allclose(out.toarray(), expected)
    assert out.has_canonical_format and (out.data != 0).all()


@pytest.mark.parametrize("col", [-1, N_COLS, 2**31, 2**32 + 3])
def test_coo_coordinates_out_of_range(model, col):
    C = sp.coo_matrix((2, N_COLS))
    C.coords = (np.array([0, 1], dtype=np.int64), np.array([1, col], dtype=np.int64))
    C.data = np.ones(2)
    # (scipy itself may cut a mutated coordinate to its index dtype: refused all the same)
    with pytest.raises(ValueError, match=r"col index -?\d+ \(entry 1\), outside \[0, 8\)"):
        model.predict(C)


def test_int64_index_does_not_wrap_to_int32(model):
    M = sp.csr_matrix((1, N_COLS))
    M.indices, M.indptr, M.data = np.array([2**32 + 3]), np.array([0, 1]), np.ones(1)
    with pytest.raises(ValueError, match=r"column index 4294967299 in row 0"):
        model.predict(M)


# ------------------------------------------------------------------ explicit stored zeros
@settings(max_examples=8, **SETTINGS)
@given(seed=st.integers(0, 2**16), n_zeros=st.integers(1, 20))
def test_explicit_zeros_train_the_same_model(seed, n_zeros):
    X, y = _data(40, 6, seed)
    rng = np.random.default_rng(seed)
    dense = X.toarray()
    r, c = np.nonzero(dense == 0)
    pick = rng.choice(r.size, min(n_zeros, r.size), replace=False)
    coo = X.tocoo()
    Z = sp.csr_matrix(
        (np.r_[coo.data, np.zeros(pick.size)], (np.r_[coo.row, r[pick]], np.r_[coo.col, c[pick]])),
        shape=X.shape,
    )
    Z.sum_duplicates()
    assert Z.nnz == X.nnz + pick.size  # the zeros are stored
    for make in (lambda: FMRegressor(n_factors=3, max_iter=3, random_state=0),
                 lambda: FFMRegressor(fields=np.arange(6) % 2, max_iter=3, random_state=0)):
        a = make().fit(X, y).predict(X)
        b = make().fit(Z, y).predict(X)
        np.testing.assert_array_equal(a, b)


def test_validation_never_modifies_the_callers_matrix():
    M = sp.csr_matrix((np.array([0.0, 1.0, 2.0]), np.array([3, 1, 1]), np.array([0, 3])),
                      shape=(1, 4))
    before = (M.data.copy(), M.indices.copy(), M.indptr.copy())
    out = check_matrix(M)
    assert out.toarray().tolist() == [[0.0, 3.0, 0.0, 0.0]]
    for a, b in zip(before, (M.data, M.indices, M.indptr), strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ fields
_FIELD = st.one_of(
    st.integers(-1, 2),
    st.sampled_from([-2, 2**31 - 1, 2**31, 2**32 + 1, 2**63 - 1]),
)


@settings(max_examples=30, **SETTINGS)
@given(values=st.lists(_FIELD, min_size=4, max_size=4),
       dtype=st.sampled_from(["int64", "uint64", "float64", "int32"]),
       weird=st.sampled_from([None, None, 1.5, np.nan, np.inf]))
def test_field_arrays_are_checked_before_any_cast(values, dtype, weird):
    fields = np.array(values, dtype=object)
    X, y = _data(20, 4)
    try:
        arr = fields.astype(dtype)
    except (OverflowError, ValueError):
        return  # the value does not exist in that dtype
    if not np.issubdtype(arr.dtype, np.floating):
        weird = None
    if weird is not None:
        arr[1] = weird
    if not np.array_equal(arr.astype(object), fields) and weird is None:
        return  # numpy itself changed the value (e.g. -1 as uint64)
    valid = weird is None and all(-1 <= v <= 2 for v in values)
    try:
        est = FFMRegressor(fields=arr, n_factors=2, max_iter=1, random_state=0).fit(X, y)
    except ValueError as e:
        assert "fields[" in str(e) or "field ids" in str(e), str(e)
        assert not valid, str(e)
        return
    assert valid, f"fields {arr!r} were accepted"
    np.testing.assert_array_equal(est.fields_, np.maximum(np.array(values), 0))


@pytest.mark.parametrize("bad", [2**31, 2**32 + 1])
@pytest.mark.parametrize("cls", [FFMRegressor, fmlearn.FwFMRegressor])
def test_huge_field_ids_are_refused(cls, bad):
    X, y = _data(20, 4)
    with pytest.raises(ValueError, match=rf"fields\[2\] = {bad}: field ids must be at most"):
        cls(fields=np.array([0, 1, bad, 0], dtype=np.int64), max_iter=1).fit(X, y)


# ------------------------------------------------------------------ numbers
@settings(max_examples=20, **SETTINGS)
@given(scale=st.floats(1.0, 1e300, allow_nan=False, allow_infinity=False))
def test_large_values_predict_finite_or_raise(model, scale):
    X, _ = _data(10)
    try:
        out = model.predict(X * scale)
    except ValueError as e:
        assert "float32" in str(e), str(e)
        return
    assert np.isfinite(out).all()


def test_predict_times_1e200_is_an_error(model):
    X, _ = _data(10)
    with pytest.raises(ValueError, match=r"X has the value \S+e\+\d+ in row \d+, column \d+: "
                                         r"feature values must be finite"):
        model.predict(X * 1e200)


@settings(max_examples=25, **SETTINGS)
@given(a=st.floats(-3.4e38, 3.4e38), b=st.floats(-3.4e38, 3.4e38),
       ffm=st.booleans(), double=st.booleans())
def test_read_duplicate_sums_overflow_is_a_format_error(a, b, ffm, double):
    line = f"1 0:3:{a!r} 1:4:1 0:3:{b!r}\n" if ffm else f"1 3:{a!r} 4:1 3:{b!r}\n"
    dtype = np.float64 if double else np.float32
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.txt"
        path.write_text(("0 0:1:1" if ffm else "0 1:1") + "\n# comment\n\n" + line)
        try:
            X = (read_ffm if ffm else read_libfm)(path, dtype=dtype)[0]
        except DataFormatError as e:
            assert e.line == 4 and e.column is not None, str(e)
            assert "overflows" in str(e)
            assert abs(a + b) > np.finfo(dtype).max
            return
    assert np.isfinite(X.data).all()
    assert X[1, 3] == pytest.approx(dtype(a + b), rel=1e-6)


def test_read_libfm_3e38_twice():
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.libfm"
        path.write_text("1 3:3e38 3:3e38\n")
        with pytest.raises(DataFormatError, match=r"x.libfm:1:10: feature 3 is repeated"):
            read_libfm(path)
        assert read_libfm(path, dtype=np.float64)[0][0, 3] == 6e38


@settings(max_examples=25, **SETTINGS)
@given(v=st.floats(allow_nan=False, allow_infinity=False),
       scale=st.sampled_from(["none", "standard", "minmax"]),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_encoder_numeric_overflow_is_an_error(v, scale, dtype):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1.0, v, 2.0], "c": ["x", "y", "x"]})
    try:
        X = FMEncoder(scale_numeric=scale, dtype=dtype).fit_transform(df)
    except ValueError as e:
        assert "numeric column 'a'" in str(e) and "overflow" in str(e), str(e)
        return
    assert np.isfinite(X.data).all()


# ------------------------------------------------------------------ other boundaries
def _bad_csr(n_rows, n_cols, col):
    M = sp.csr_matrix((n_rows, n_cols))
    M.indices = np.array([col], dtype=np.int64)
    M.indptr = np.r_[0, np.ones(n_rows, dtype=np.int64)]
    M.data = np.ones(1)
    return M


def test_relation_blocks_and_retrieval_inputs_are_checked(model):
    with pytest.raises(ValueError, match="RelationBlock X has column index 5"):
        RelationBlock([0, 0], _bad_csr(1, 3, 5))
    good = sp.identity(4, format="csr")
    with pytest.raises(ValueError, match="queries has column index 4"):
        recommend(model, _bad_csr(2, 4, 4), good)
    with pytest.raises(ValueError, match="candidates has column index -3"):
        recommend(model, good, _bad_csr(2, 4, -3))


def test_ranker_queries_candidates_and_positives_are_checked():
    Q, C = sp.identity(3, format="csr"), sp.identity(4, format="csr")
    pos = sp.csr_matrix(np.eye(3, 4))
    ranker = fmlearn.FMRanker(n_factors=2, max_iter=1, random_state=0).fit(Q, C, pos)
    with pytest.raises(ValueError, match="queries has column index 7"):
        ranker.fit(_bad_csr(3, 3, 7), C, pos)
    with pytest.raises(ValueError, match="positives has column index 9"):
        ranker.fit(Q, C, _bad_csr(3, 4, 9))
    with pytest.raises(ValueError, match="candidates has column index 4"):
        ranker.recommend(Q, _bad_csr(4, 4, 4))
    with pytest.raises(ValueError, match="X has column index 99"):
        ranker.decision_function(_bad_csr(2, 7, 99))


_SUBPROCESS = textwrap.dedent("""
    import numpy as np, scipy.sparse as sp
    from fmlearn import FMRegressor, FFMRegressor
    X = sp.random(30, 6, density=0.5, format="csr", random_state=0)
    y = np.arange(30.0)
    m = FMRegressor(n_factors=2, max_iter=1, random_state=0).fit(X, y)
    def bad(indices, indptr):
        M = sp.csr_matrix((len(indptr) - 1, 6))
        M.indices, M.indptr = np.asarray(indices), np.asarray(indptr, dtype=np.int64)
        M.data = np.ones(len(M.indices))
        return M
    cases = [
        lambda: m.predict(bad([1, 10**6], [0, 1, 2])),
        lambda: m.predict(bad([1, -(10**6)], [0, 1, 2])),
        lambda: m.predict(bad(np.array([2**32 + 3]), [0, 1])),
        lambda: m.predict(bad([1, 2], [0, 10**9, 2])),
        lambda: FMRegressor(max_iter=1).fit(bad([1, 10**6], [0, 1, 2]), [0.0, 1.0]),
        lambda: FFMRegressor(fields=[0, 1, 2**31, 0, 1, 2], max_iter=1).fit(X, y),
    ]
    for case in cases:
        try:
            case()
            print("accepted")
        except ValueError:
            print("ValueError")
""")


def test_risky_calls_do_not_crash_the_process():
    env = dict(os.environ)
    src = str(Path(fmlearn.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", _SUBPROCESS], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["ValueError"] * 6, proc.stdout


# ------------------------------------------------------------------ exact resume
def _resume_cases():
    X, y = _data(80, 6)
    y3 = np.digitize(y, [-0.5, 0.5])
    return [
        ("fm-adagrad", lambda: FMRegressor(n_factors=3, max_iter=2, random_state=0), X, y),
        ("fm-sgd", lambda: FMRegressor(n_factors=3, solver="sgd", learning_rate=0.01,
                                       max_iter=2, random_state=0), X, y),
        ("ffm", lambda: FFMRegressor(fields=np.arange(6) % 3, max_iter=2, random_state=0), X, y),
        ("multiclass", lambda: FMClassifier(n_factors=3, max_iter=2, random_state=0), X, y3),
        ("ordinal", lambda: FMOrdinalRegressor(n_factors=3, max_iter=2, random_state=0), X, y3),
    ]


def _outputs(est, X):
    return est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)


@pytest.mark.parametrize("case", _resume_cases(), ids=lambda c: c[0])
def test_partial_fit_after_load_resumes_exactly(case, tmp_path):
    _, make, X, y = case
    est = make().fit(X, y)
    est.save(tmp_path / "m.fmz")
    loaded = fmlearn.load(tmp_path / "m.fmz")
    for _ in range(2):
        est.partial_fit(X, y)
        loaded.partial_fit(X, y)
    np.testing.assert_array_equal(_outputs(est, X), _outputs(loaded, X))
    for key in set(est.history_) - {"time"}:  # the same epochs and metrics (not seconds)
        assert loaded.history_[key] == est.history_[key], key


def test_rng_state_is_json_data_and_old_files_still_load(tmp_path):
    X, y = _data(40, 5)
    est = FMRegressor(n_factors=2, max_iter=1, random_state=3).fit(X, y)
    est.save(tmp_path / "m.fmz")
    with zipfile.ZipFile(tmp_path / "m.fmz") as zf:
        meta = json.loads(zf.read("metadata.json"))
        members = {n: zf.read(n) for n in zf.namelist()}
    assert meta["rng"]["bit_generator"] == "PCG64"
    assert isinstance(meta["rng"]["state"]["state"], dict)  # 128 bits: a decimal string
    # A file from before the state was saved: loads, and training it further works.
    del meta["rng"]
    with zipfile.ZipFile(tmp_path / "old.fmz", "w") as zf:
        for name, raw in members.items():
            zf.writestr(name, json.dumps(meta) if name == "metadata.json" else raw)
    old = fmlearn.load(tmp_path / "old.fmz")
    np.testing.assert_array_equal(old.predict(X), est.predict(X))
    assert np.isfinite(old.partial_fit(X, y).predict(X)).all()
    # ... from a fresh generator: not the exact resume the saved state gives.
    resumed = fmlearn.load(tmp_path / "m.fmz").partial_fit(X, y)
    np.testing.assert_array_equal(resumed.predict(X), est.partial_fit(X, y).predict(X))
    assert not np.array_equal(old.predict(X), resumed.predict(X))
    # A damaged state is a ModelFileError at load.
    meta["rng"] = {"bit_generator": "NotAGenerator"}
    with zipfile.ZipFile(tmp_path / "bad.fmz", "w") as zf:
        for name, raw in members.items():
            zf.writestr(name, json.dumps(meta) if name == "metadata.json" else raw)
    with pytest.raises(ModelFileError, match="random-number generator"):
        fmlearn.load(tmp_path / "bad.fmz")
