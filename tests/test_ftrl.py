"""FTRL-Proximal: the kernels against a plain numpy reference, L1 sparsity, every family,
model files and refusals."""

import copy

import numpy as np
import pytest
import scipy.sparse as sp
from test_ffm import _field_aware_data
from test_fwfm import _field_weighted_data

import fmlearn
from fmlearn import (
    FFMClassifier,
    FFMRegressor,
    FMClassifier,
    FMRegressor,
    FwFMClassifier,
    FwFMRegressor,
)
from fmlearn._kernels.losses import LOGISTIC, SQUARED
from fmlearn._kernels.updates import FTRL_BETA
from fmlearn.data.design import as_kernel_csr
from fmlearn.data.sources import InMemorySource
from fmlearn.models import FFMParams, FMParams
from fmlearn.models.fwfm import FwFMParams
from fmlearn.optim import SOLVERS, FTRLSolver

ALPHA, L1, L2_W, L2_V = 0.2, 0.05, 0.01, 0.02


# ------------------------------------------------------------------------ numpy reference
def ftrl_step(w, z, n, g, l1, l2, alpha=ALPHA, beta=FTRL_BETA):
    """McMahan et al. (2013), Algorithm 1, on arrays of coordinates (float64)."""
    sigma = (np.sqrt(n + g * g) - np.sqrt(n)) / alpha
    z = z + g - sigma * w
    n = n + g * g
    w = np.where(np.abs(z) <= l1, 0.0,
                 -(z - np.sign(z) * l1) / ((beta + np.sqrt(n)) / alpha + l2))
    return w, z, n


class ReferenceFM:
    """A second-order FM trained by FTRL-Proximal row by row, written for clarity."""

    def __init__(self, w0, w, V, loss, l1=L1, l2_w=L2_W, l2_V=L2_V):
        self.w0, self.w, self.V = float(w0), w.astype(np.float64), V.astype(np.float64)
        self.loss, self.l1, self.l2_w, self.l2_V = loss, l1, l2_w, l2_V
        # Start: n = 0 and z giving the current values back through the closed form.
        self.z0, self.n0 = -self.w0 * FTRL_BETA / ALPHA, 0.0
        self.zw = -(self.w * (FTRL_BETA / ALPHA + l2_w) + np.sign(self.w) * l1)
        self.nw = np.zeros_like(self.w)
        self.zV = -self.V * (FTRL_BETA / ALPHA + l2_V)
        self.nV = np.zeros_like(self.V)

    def predict_row(self, idx, x):
        s = x @ self.V[idx]
        pair = 0.5 * (s @ s - ((x[:, None] * self.V[idx]) ** 2).sum())
        return self.w0 + x @ self.w[idx] + pair

    def epoch(self, X, y, sw, order):
        X = sp.csr_matrix(X)
        for row in order:
            idx = X.indices[X.indptr[row] : X.indptr[row + 1]]
            x = X.data[X.indptr[row] : X.indptr[row + 1]].astype(np.float64)
            p = self.predict_row(idx, x)
            if self.loss == SQUARED:
                g = sw[row] * (p - y[row])
            else:
                g = -sw[row] * y[row] / (1.0 + np.exp(y[row] * p))
            # Every gradient at the parameters before the row's update.
            s = x @ self.V[idx]
            gw = g * x
            gV = g * x[:, None] * (s[None, :] - self.V[idx] * x[:, None])
            w0, self.z0, self.n0 = ftrl_step(self.w0, self.z0, self.n0, g, 0.0, 0.0)
            self.w0 = float(w0)
            self.w[idx], self.zw[idx], self.nw[idx] = ftrl_step(
                self.w[idx], self.zw[idx], self.nw[idx], gw, self.l1, self.l2_w)
            self.V[idx], self.zV[idx], self.nV[idx] = ftrl_step(
                self.V[idx], self.zV[idx], self.nV[idx], gV, 0.0, self.l2_V)


class _InOrder:
    """An rng whose permutations are the identity: rows are visited in order."""

    @staticmethod
    def permutation(n):
        return np.arange(n)


def _data(n_rows=60, n_features=12, seed=0, loss=SQUARED):
    rng = np.random.default_rng(seed)
    X = sp.random(n_rows, n_features, density=0.3, random_state=seed, format="csr")
    X.data = rng.normal(size=X.nnz)
    y = rng.normal(size=n_rows) if loss == SQUARED else np.sign(rng.normal(size=n_rows))
    return X, y, rng.uniform(0.5, 2.0, n_rows)


def _solver(loss=SQUARED, l1=L1):
    return FTRLSolver(learning_rate=ALPHA, l1_reg_w=l1, l2_reg_w=L2_W, l2_reg_V=L2_V,
                      loss=loss, fit_intercept=True, fit_linear=True)


@pytest.mark.parametrize("loss", [SQUARED, LOGISTIC])
@pytest.mark.parametrize("k", [0, 2, 3, 4, 16])  # linear; generic (scalar tail, vectors); k-vectors
def test_fm_epochs_match_the_numpy_reference(k, loss):
    """Three in-order epochs through the solver and the float64 kernel: the reference's
    parameters and FTRL state, to rounding."""
    X, y, sw = _data(loss=loss, seed=k)
    l1 = 6.0  # about the median |z| of the linear weights after these epochs
    solver = _solver(loss, l1)
    params = FMParams.initialize(X.shape[1], k, 0.3, np.random.default_rng(1), dtype=np.float64,
                                 w0=0.4, n_state=solver.state_columns(k + 1))
    ref = ReferenceFM(params.w0[0], params.w, params.V, loss, l1=l1)
    start = params.table[:, : k + 1].copy()
    state = solver.init_state(params)
    np.testing.assert_array_equal(params.table[:, : k + 1], start)  # init changes no value
    data = solver.prepare(InMemorySource(as_kernel_csr(X), y, sw))
    for _ in range(3):
        got = solver.run_epoch(params, state, data, _InOrder(), n_jobs=1)
        ref.epoch(X, y, sw, range(X.shape[0]))
    assert np.isfinite(got)
    z, n = params.state[:, : k + 1], params.state[:, k + 1 :]
    np.testing.assert_allclose(params.w0[0], ref.w0, rtol=1e-10)
    np.testing.assert_allclose(state["ftrl_w0"], [ref.z0, ref.n0], rtol=1e-10)
    np.testing.assert_allclose(params.w, ref.w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(params.V, ref.V, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(z, np.column_stack([ref.zV, ref.zw]), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(n, np.column_stack([ref.nV, ref.nw]), rtol=1e-9, atol=1e-12)
    # L1 really zeroes the linear weights whose |z| stays within it (here some, not all).
    assert ((ref.w == 0) == (params.w == 0)).all()
    assert (params.w == 0).any() and (params.w != 0).any()


@pytest.mark.parametrize("k", [3, 8])
def test_float32_fm_epoch_follows_the_reference(k):
    """The float32 kernels (exact square roots, unlike AdaGrad's estimate) stay close."""
    X, y, sw = _data(seed=10 + k)
    X = X.astype(np.float32)
    solver = _solver()
    params = FMParams.initialize(X.shape[1], k, 0.3, np.random.default_rng(2),
                                 n_state=solver.state_columns(k + 1))
    ref = ReferenceFM(params.w0[0], params.w, params.V, SQUARED)
    state = solver.init_state(params)
    data = solver.prepare(InMemorySource(as_kernel_csr(X), y, sw))
    solver.run_epoch(params, state, data, _InOrder(), 1)
    ref.epoch(X, y, sw, range(X.shape[0]))
    np.testing.assert_allclose(params.V, ref.V, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(params.w, ref.w, rtol=1e-3, atol=1e-5)


def test_init_reproduces_values_through_the_closed_form():
    solver = _solver()
    v = np.array([-0.7, -0.01, 0.0, 0.02, 1.3])
    z, n = np.empty(5), np.empty(5)
    solver.init_coords(v, (z, n), L1, L2_W)
    w = np.where(np.abs(z) <= L1, 0.0,
                 -(z - np.sign(z) * L1) / ((FTRL_BETA + np.sqrt(n)) / ALPHA + L2_W))
    np.testing.assert_allclose(w, v, rtol=1e-12)
    assert (n == 0).all()


# ------------------------------------------------------------------------ estimators
def _sparse_linear_data(n=6000, d=200, n_relevant=20, seed=0):
    """Clicks from a logistic model on the first ``n_relevant`` of ``d`` binary features."""
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=0.05, random_state=seed, format="csr")
    X.data[:] = 1.0
    w = np.zeros(d)
    w[:n_relevant] = rng.choice([-1.5, 1.5], n_relevant)
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ w)))).astype(int)
    return X, y, n_relevant


def test_l1_gives_exact_zeros_for_irrelevant_features():
    X, y, n_relevant = _sparse_linear_data()
    tr, te = slice(0, 4500), slice(4500, None)
    # FTRL is an online method: |z| grows with the epochs, so does the useful L1.
    kw = dict(n_factors=2, solver="ftrl", max_iter=3, tol=None, random_state=0, n_jobs=1)
    dense = FMClassifier(**kw).fit(X[tr], y[tr])
    sparse = FMClassifier(l1_reg_w=30.0, **kw).fit(X[tr], y[tr])
    assert (dense.w_ == 0).sum() == 0
    # Truly sparse: most irrelevant weights exactly 0, every relevant one kept.
    assert (sparse.w_[n_relevant:] == 0).mean() > 0.8
    assert (sparse.w_[:n_relevant] != 0).all()
    assert sparse.score(X[te], y[te]) > dense.score(X[te], y[te]) - 0.02
    assert sparse.score(X[te], y[te]) > 0.65


def test_ftrl_fm_regressor_learns_like_adagrad():
    X, y, _ = fmlearn.data.make_fm_regression(2000, 30, random_state=0)
    kw = dict(n_factors=4, max_iter=30, random_state=0)
    ftrl = FMRegressor(solver="ftrl", learning_rate=0.1, **kw).fit(X[:1500], y[:1500])
    ada = FMRegressor(solver="adagrad", **kw).fit(X[:1500], y[:1500])
    assert ftrl.score(X[1500:], y[1500:]) > 0.9
    assert ftrl.score(X[1500:], y[1500:]) > ada.score(X[1500:], y[1500:]) - 0.05


def test_ffm_learns_with_ftrl():
    X, y, fields = _field_aware_data()
    tr, te = slice(0, 5000), slice(5000, None)
    kw = dict(n_factors=3, fields=fields, max_iter=40, random_state=0, l2_reg_V=1e-5,
              l2_reg_w=1e-5)
    ftrl = FFMRegressor(solver="ftrl", learning_rate=0.1, **kw).fit(X[tr], y[tr])
    ada = FFMRegressor(learning_rate=0.1, **kw).fit(X[tr], y[tr])
    base = np.std(y[te])
    rmse = np.sqrt(np.mean((ftrl.predict(X[te]) - y[te]) ** 2))
    rmse_ada = np.sqrt(np.mean((ada.predict(X[te]) - y[te]) ** 2))
    assert rmse < 0.3 * base and rmse < 1.3 * rmse_ada
    labels = y > np.median(y)
    clf = FFMClassifier(solver="ftrl", fields=fields, max_iter=10, random_state=0,
                        normalize=True, l1_reg_w=0.01, init_stdev=0.1).fit(X[tr], labels[tr])
    # (v0.1's init_stdev: the smaller default needs more than these 10 epochs here)
    assert clf.score(X[te], labels[te]) > 0.8


def test_fwfm_learns_with_ftrl_and_its_r_state():
    X, y, fields, r_true = _field_weighted_data()
    tr, te = slice(0, 5000), slice(5000, None)
    kw = dict(n_factors=3, fields=fields, max_iter=40, random_state=0, l2_reg_V=1e-5,
              l2_reg_w=1e-5)
    m = FwFMRegressor(solver="ftrl", **kw).fit(X[tr], y[tr])
    rmse = np.sqrt(np.mean((m.predict(X[te]) - y[te]) ** 2))
    assert rmse < 0.3 * np.std(y[te])
    np.testing.assert_array_equal(m.r_, m.r_.T)
    assert m._params.acc_r.shape == (2, 6, 6)  # z and n of every field pair
    np.testing.assert_array_equal(m._params.acc_r[1], m._params.acc_r[1].T)
    iu = np.triu_indices(6, 1)
    assert np.corrcoef(np.abs(m.r_[iu]), r_true[iu])[0, 1] > 0.8


@pytest.mark.parametrize("make", [
    lambda: (FMClassifier(n_factors=3, solver="ftrl", l1_reg_w=0.05, max_iter=3,
                          random_state=0), None),
    lambda: (FFMClassifier(n_factors=2, solver="ftrl", max_iter=3, random_state=0), "ffm"),
    lambda: (FwFMClassifier(n_factors=2, solver="ftrl", max_iter=3, random_state=0), "fwfm"),
])
def test_model_file_keeps_the_state_and_partial_fit_resumes_exactly(make, tmp_path):
    X, y, fields = _field_aware_data(1500, seed=3)
    labels = y > np.median(y)
    est, family = make()
    if family:
        est.set_params(fields=fields)
    est.fit(X, labels)
    est.save(tmp_path / "m.fmz")
    loaded = fmlearn.load(tmp_path / "m.fmz")
    assert loaded.l1_reg_w == est.l1_reg_w and loaded.solver == "ftrl"
    np.testing.assert_array_equal(loaded._params.table, est._params.table)
    np.testing.assert_array_equal(loaded._solver_state["ftrl_w0"], est._solver_state["ftrl_w0"])
    loaded._rng = copy.deepcopy(est._rng)  # the shuffles are the only thing not saved
    est.partial_fit(X, labels)
    loaded.partial_fit(X, labels)
    np.testing.assert_array_equal(loaded._params.table, est._params.table)
    np.testing.assert_array_equal(loaded._params.w0, est._params.w0)
    if family == "fwfm":
        np.testing.assert_array_equal(loaded._params.acc_r, est._params.acc_r)


def test_warm_start_from_adagrad_keeps_the_model():
    """Switching to FTRL starts its state from the current values: the first step moves
    them by one FTRL step, not back towards zero."""
    X, y, _ = fmlearn.data.make_fm_regression(800, 20, random_state=1)
    m = FMRegressor(n_factors=3, max_iter=10, random_state=0).fit(X, y)
    before = m.score(X, y)
    m.set_params(solver="ftrl", warm_start=True, max_iter=1, learning_rate=0.01).fit(X, y)
    assert m._params.state.shape[1] == 2 * 4 and set(m._solver_state) == {"ftrl_w0"}
    assert m.score(X, y) > before - 0.02


def test_fwfm_params_state_layout():
    params = FwFMParams.initialize(10, 2, 0.1, np.random.default_rng(0),
                                   np.arange(10, dtype=np.int32) % 3, n_state=2 * 3)
    assert params.acc_r.shape == (2, 3, 3)
    groups = params.coordinate_groups(2, 0.1, 0.2, 0.3)
    assert [g[2:] for g in groups] == [(0.0, 0.3), (0.1, 0.2), (0.0, 0.0)]
    assert all(len(g[1]) == 2 for g in groups)
    back = FwFMParams.from_arrays(params.arrays(), state=params.state, acc_r=params.acc_r)
    assert back.acc_r.shape == (2, 3, 3)
    assert FwFMParams.from_arrays(params.arrays(), state=params.state[:, :3]).acc_r.shape == (3, 3)


def test_ffm_params_state_groups():
    params = FFMParams.initialize(6, 2, 0.1, np.random.default_rng(0),
                                  np.array([0, 1, 2, 0, 1, 2], np.int32), n_state=2 * 7)
    (V, sV, l1V, l2V), (w, sw_, l1w, l2w) = params.coordinate_groups(2, 0.1, 0.2, 0.3)
    assert V.shape == sV[0].shape == sV[1].shape == (6, 6) and (l1V, l2V) == (0.0, 0.3)
    assert w.shape == sw_[0].shape == (6, 1) and (l1w, l2w) == (0.1, 0.2)
    assert np.shares_memory(sV[1], params.table)


# ------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("solver", ["sgd", "adagrad", "als", "mcmc"])
def test_l1_needs_ftrl(solver):
    X, y, _ = fmlearn.data.make_fm_regression(100, 5, random_state=0)
    with pytest.raises(ValueError, match="l1_reg_w=0.1 needs solver='ftrl'"):
        FMRegressor(solver=solver, l1_reg_w=0.1, max_iter=2).fit(X, y)


def test_negative_l1_is_refused():
    X, y, _ = fmlearn.data.make_fm_regression(100, 5, random_state=0)
    with pytest.raises(ValueError, match="l1_reg_w"):
        FMRegressor(solver="ftrl", l1_reg_w=-1.0).fit(X, y)


def test_ftrl_is_registered_with_its_state():
    assert SOLVERS["ftrl"] is FTRLSolver
    assert FTRLSolver.state_columns(5) == 10 and FTRLSolver.has_l1
    assert SOLVERS["adagrad"].state_columns(5) == 5 and SOLVERS["sgd"].state_columns(5) == 0
    assert _solver().kernel_args == (ALPHA, L1, L2_W, L2_V)


# ------------------------------------------------------------------------ command line
def test_command_line_trains_ftrl_with_l1(tmp_path, capsys):
    from fmlearn.cli import main
    from fmlearn.data.textio import write_libfm

    X, y, _ = _sparse_linear_data(3000)
    write_libfm(tmp_path / "ctr.libfm", X, np.where(y == 1, 1, -1))
    model = tmp_path / "ftrl.fmz"
    argv = ["train", "--train", str(tmp_path / "ctr.libfm"), "--task", "classification",
            "--solver", "ftrl", "--l1-reg-w", "20", "--max-iter", "3", "--quiet",
            "--model-out", str(model)]
    assert main(argv) == 0
    loaded = fmlearn.load(model)
    assert loaded.solver == "ftrl" and loaded.l1_reg_w == 20.0 and (loaded.w_ == 0).any()
    assert main(["evaluate", "--model", str(model), "--data", str(tmp_path / "ctr.libfm")]) == 0
    assert "auc=" in capsys.readouterr().out
    argv[argv.index("ftrl")] = "adagrad"
    assert main(argv) == 2
    assert "needs solver='ftrl'" in capsys.readouterr().err
