"""Ordinal regression: cumulative-link FM by SGD (logit) and MCMC (ordered probit)."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit, logit, ndtri

from fmlearn import FMOrdinalRegressor, load
from fmlearn._kernels import ordinal as ok
from fmlearn._kernels.updates import SGD
from fmlearn.data import make_fm_regression
from fmlearn.exceptions import ModelFileError
from fmlearn.models import FMParams, OrdinalFMParams, OrdinalPosteriorFM
from fmlearn.tasks import Ordinal

DATA = Path(__file__).parent / "data"


def _stars(seed=0, n=3000):
    X, y, _ = make_fm_regression(n_samples=n, n_features=40, n_factors=2, random_state=seed)
    cuts = np.quantile(y, [0.1, 0.3, 0.6, 0.85])
    return X, np.digitize(y, cuts) + 1, y


@pytest.mark.parametrize("solver", ["adagrad", "mcmc"])
def test_ordinal_learns_ordered_classes(solver):
    X, stars, latent = _stars()
    m = FMOrdinalRegressor(n_factors=2, solver=solver, max_iter=40, random_state=0)
    m.fit(X[:2400], stars[:2400])
    proba = m.predict_proba(X[2400:])
    assert proba.shape == (600, 5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert np.all(proba >= 0)
    expected = m.predict(X[2400:])
    np.testing.assert_allclose(expected, proba @ np.arange(1, 6))
    assert np.corrcoef(expected, latent[2400:])[0, 1] > 0.85
    rmse = np.sqrt(np.mean((expected - stars[2400:]) ** 2))
    assert rmse < 0.8 * np.std(stars[2400:])
    assert np.all(np.diff(m.cutpoints_) > 0)
    assert set(m.predict_class(X[:50])) <= set(m.classes_)


def test_sgd_gradient_matches_numerical_derivative():
    # One row, plain SGD: the kernel's step on the cutpoints is -lr * d(-log p)/d theta.
    rng = np.random.default_rng(0)
    k, n_features = 3, 5
    table = rng.normal(scale=0.3, size=(n_features, k + 1))
    indptr = np.array([0, 3], dtype=np.int64)
    indices = np.array([0, 2, 4], dtype=np.int32)
    data = np.array([1.0, 0.5, -1.0])
    cut = np.array([-1.0, 0.2, 1.5])
    for c in range(4):
        y = np.array([float(c)])

        def loss(cut_, table_=table, c=c):
            x = np.zeros(n_features)
            x[indices] = data
            V, w = table_[:, :k], table_[:, k]
            f = x @ w + 0.5 * (((x @ V) ** 2).sum() - ((x[:, None] * V) ** 2).sum())
            cdf = np.r_[0.0, expit(cut_ - f), 1.0]
            return -np.log(cdf[c + 1] - cdf[c])

        cut_after = cut.copy()
        tab = table.copy()
        lr = 1e-4
        total = ok.sgd_epoch(indptr, indices, data, y, np.ones(1), np.zeros(1, np.int64), tab, k,
                             cut_after, np.ones(3), SGD, (lr, 0.0, 0.0, 0.0), True)
        assert abs(total - loss(cut)) < 1e-9
        eps = 1e-6
        num = np.array([(loss(cut + eps * e) - loss(cut - eps * e)) / (2 * eps)
                        for e in np.eye(3)])
        np.testing.assert_allclose((cut - cut_after) / lr, num, rtol=1e-5, atol=1e-8)
        # And the factor step follows d loss / d V.
        gV = np.zeros_like(table)
        for i in indices:
            for f in range(k + 1):
                t1, t2 = table.copy(), table.copy()
                t1[i, f] += eps
                t2[i, f] -= eps
                gV[i, f] = (loss(cut, t1) - loss(cut, t2)) / (2 * eps)
        np.testing.assert_allclose((table - tab) / lr, gV, rtol=1e-4, atol=1e-7)


def test_latent_targets_fall_between_their_cutpoints():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 5000).astype(np.float64)
    pred = rng.normal(scale=3, size=5000)
    cut = np.array([-1.0, 0.0, 2.0])
    z = np.empty(5000)
    ok.latent_targets(y, pred, cut, np.array([3], dtype=np.uint64), z)
    lo = np.r_[-np.inf, cut][y.astype(int)]
    hi = np.r_[cut, np.inf][y.astype(int)]
    assert np.all((z >= lo) & (z <= hi))
    # Class 1 rows with a score of ~0: z is N(0, 1) truncated to (-1, 0).
    sel = (y == 1) & (np.abs(pred) < 0.2)
    assert abs(z[sel].mean() - stats.truncnorm.mean(-1, 0)) < 0.1


def test_mcmc_cutpoints_and_round_trip(tmp_path):
    X, stars, _ = _stars(1, 1500)
    m = FMOrdinalRegressor(n_factors=2, solver="mcmc", max_iter=20, random_state=0).fit(X, stars)
    assert m.cutpoint_samples_.shape == (18, 4)
    assert np.all(np.diff(m.cutpoint_samples_, axis=1) > 0)
    m.save(tmp_path / "o.fmz")
    r = load(tmp_path / "o.fmz")
    np.testing.assert_allclose(r.predict_proba(X[:100]), m.predict_proba(X[:100]))
    s = FMOrdinalRegressor(n_factors=2, max_iter=3, random_state=0).fit(X, stars)
    s.save(tmp_path / "s.fmz")
    np.testing.assert_allclose(load(tmp_path / "s.fmz").predict(X[:50]), s.predict(X[:50]))


def test_ordinal_errors():
    X, stars, _ = _stars(2, 300)
    with pytest.raises(ValueError, match="no solver='als'"):
        FMOrdinalRegressor(solver="als").fit(X, stars)
    with pytest.raises(ValueError, match="numeric ordered labels"):
        FMOrdinalRegressor().fit(X, np.array(["a", "b", "c"])[stars % 3])
    m = FMOrdinalRegressor(max_iter=2).fit(X, stars)
    with pytest.raises(ValueError, match="not one of the classes"):
        m.partial_fit(X[:3], [1, 2, 9])


# --------------------------------------------------------------- cutpoints as parameters
SOLVERS = ["sgd", "adagrad", "ftrl", "mcmc"]


def _file_contents(path):
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("metadata.json"))
    return meta["model_kind"], set(meta["arrays"])


@pytest.mark.parametrize("solver", SOLVERS)
def test_cutpoints_are_model_parameters_saved_with_the_model(solver, tmp_path):
    X, stars, _ = _stars(3, 800)
    m = FMOrdinalRegressor(n_factors=2, solver=solver, max_iter=6, random_state=0)
    m.fit(X, stars)
    params = m._params
    probit = solver == "mcmc"
    assert isinstance(params, OrdinalPosteriorFM if probit else OrdinalFMParams)
    assert params.link == ("probit" if probit else "logit")
    assert m.w0_ == 0.0  # the FM's bias: the cutpoints take its place
    if not probit:
        np.testing.assert_array_equal(m.cutpoints_, params.cutpoints)
    m.save(tmp_path / "m.fmz")
    kind, arrays = _file_contents(tmp_path / "m.fmz")
    assert kind == params.kind
    assert "params/cutpoints" in arrays
    assert not any(a.startswith("state/cut") and a != "state/cut_step" for a in arrays)
    r = load(tmp_path / "m.fmz")
    np.testing.assert_array_equal(r.cutpoints_, m.cutpoints_)
    np.testing.assert_allclose(r.predict_proba(X[:100]), m.predict_proba(X[:100]))
    # The loaded model continues where it stopped, as the fitted one does (given the same
    # random numbers: a loaded model's generator starts afresh from random_state).
    m._rng = np.random.default_rng(0)
    r._rng = np.random.default_rng(0)
    if probit:
        r.set_params(warm_start=True, max_iter=2).fit(X, stars)
        m.set_params(warm_start=True, max_iter=2).fit(X, stars)
    else:
        r.partial_fit(X, stars)
        m.partial_fit(X, stars)
    np.testing.assert_allclose(r.predict_proba(X[:100]), m.predict_proba(X[:100]),
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("solver", SOLVERS)
def test_each_solver_trains_through_the_model_and_task_hooks(solver, monkeypatch):
    # The SGD epoch driver calls the container's sgd_epoch and the coordinate solver the
    # task's latent targets, as for every other model: neither has an ordinal case.
    calls = []
    if solver == "mcmc":
        hook = Ordinal.latent_targets

        def spy(self, params, *args, **kwargs):
            calls.append(params.cutpoints.copy())
            return hook(self, params, *args, **kwargs)

        monkeypatch.setattr(Ordinal, "latent_targets", spy)
    else:
        hook = OrdinalFMParams.sgd_epoch

        def spy(self, *args):
            calls.append(self.cutpoints.copy())
            return hook(self, *args)

        monkeypatch.setattr(OrdinalFMParams, "sgd_epoch", spy)
    X, stars, _ = _stars(4, 500)
    m = FMOrdinalRegressor(n_factors=2, solver=solver, max_iter=3, tol=None, random_state=0)
    m.fit(X, stars)
    assert len(calls) == 3
    # Every epoch starts from the model's cutpoints, the first from the class frequencies.
    quantile = ndtri if solver == "mcmc" else logit
    freq = np.bincount(stars - 1) / stars.shape[0]
    np.testing.assert_allclose(calls[0], quantile(np.cumsum(freq)[:-1]), atol=1e-5)
    assert not hasattr(FMParams, "ordinal_sgd_epoch")


@pytest.mark.parametrize("solver", SOLVERS)
def test_cutpoints_stay_strictly_increasing(solver):
    # A rare middle class and a large step: neighbouring cutpoints are pushed together.
    X, stars, _ = _stars(5, 1200)
    stars = stars.copy()
    stars[stars == 3] = 2
    stars[:2] = 3
    m = FMOrdinalRegressor(n_factors=2, solver=solver, learning_rate=0.5, max_iter=8,
                           random_state=0).fit(X, stars)
    assert m.cutpoints_.shape == (4,)
    assert np.all(np.diff(m.cutpoints_) > 0)
    if solver == "mcmc":
        assert np.all(np.diff(m.cutpoint_samples_, axis=1) > 0)
    proba = m.predict_proba(X[:200])
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)


def test_fit_intercept_does_not_apply_to_the_cutpoints():
    # The cutpoints are the intercepts: fitted either way, and the FM bias stays 0.
    X, stars, _ = _stars(6, 400)
    a = FMOrdinalRegressor(n_factors=2, max_iter=3, random_state=0).fit(X, stars)
    b = FMOrdinalRegressor(n_factors=2, max_iter=3, random_state=0, fit_intercept=False)
    b.fit(X, stars)
    np.testing.assert_array_equal(a.cutpoints_, b.cutpoints_)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_warm_start_with_another_solver_keeps_the_cutpoints():
    X, stars, _ = _stars(7, 600)
    m = FMOrdinalRegressor(n_factors=2, solver="sgd", max_iter=5, random_state=0).fit(X, stars)
    before = m.cutpoints_
    m.set_params(warm_start=True, solver="adagrad", learning_rate=1e-6, max_iter=1)
    m.fit(X, stars)
    np.testing.assert_allclose(m.cutpoints_, before, atol=1e-4)


# ------------------------------------------- files that keep the cutpoints in solver state
# tests/data/cutpoints_in_state_*.fmz were saved by commit ad03490 (before the cutpoints
# became parameters), from fits on cutpoints_in_state_inputs.npz's X and y; the npz holds
# their class probabilities on X[:60] then, and those of the loaded file after one more epoch
# (partial_fit(X, y); MCMC: a warm-started fit of 3 sweeps).
@pytest.mark.parametrize("solver", ["sgd", "ftrl", "mcmc"])
def test_files_with_cutpoints_in_the_solver_state_load_and_continue(solver, tmp_path):
    data = np.load(DATA / "cutpoints_in_state_inputs.npz")
    X, y = data["X"], data["y"]
    m = load(DATA / f"cutpoints_in_state_{solver}.fmz")
    assert isinstance(m._params, OrdinalPosteriorFM if solver == "mcmc" else OrdinalFMParams)
    np.testing.assert_allclose(m.cutpoints_, data[f"{solver}_cutpoints"], rtol=1e-12)
    np.testing.assert_allclose(m.predict_proba(X[:60]), data[solver], rtol=1e-6, atol=1e-9)
    m.save(tmp_path / "new.fmz")
    kind, arrays = _file_contents(tmp_path / "new.fmz")
    assert kind.startswith("fm_ordinal") and "params/cutpoints" in arrays
    assert "state/cutpoints" not in arrays and f"state/{solver}_cut" not in arrays
    r = load(tmp_path / "new.fmz")
    np.testing.assert_array_equal(r.predict_proba(X[:60]), m.predict_proba(X[:60]))
    if solver == "mcmc":
        # The Gibbs sweep's scan order changed since these files were written (feature by
        # feature, docs/bayesian.md): three more sweeps are another draw from the same
        # posterior, not the recorded one. The chain continues from the file's state, the
        # same way every time, with its cutpoints in order.
        m.set_params(warm_start=True, max_iter=3).fit(X, y)
        again = load(DATA / "cutpoints_in_state_mcmc.fmz")
        again.set_params(warm_start=True, max_iter=3).fit(X, y)
        p = m.predict_proba(X[:60])
        np.testing.assert_array_equal(p, again.predict_proba(X[:60]))
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
        assert m._params.n_samples == 3 and np.all(np.diff(m.cutpoints_) > 0)
        return
    m.partial_fit(X, y)
    np.testing.assert_allclose(m.predict_proba(X[:60]), data[f"{solver}_continued"],
                               rtol=1e-5, atol=1e-8)


def test_file_of_an_ordinal_model_without_cutpoints_is_refused(tmp_path):
    src = DATA / "cutpoints_in_state_sgd.fmz"
    with zipfile.ZipFile(src) as zf:
        meta = json.loads(zf.read("metadata.json"))
        members = {n: zf.read(n) for n in zf.namelist()}
    del meta["arrays"]["state/cutpoints"]
    members.pop("state/cutpoints.npy")
    members["metadata.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(tmp_path / "bad.fmz", "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    with pytest.raises(ModelFileError, match="without cutpoints"):
        load(tmp_path / "bad.fmz")
