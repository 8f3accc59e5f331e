"""Block Gibbs on threads: runs of mutually exclusive columns, sampled (MCMC) or solved (ALS)
on ``n_jobs`` threads, each with its own random stream."""

from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp

from fmlearn import FMClassifier, FMOrdinalRegressor, FMRegressor
from fmlearn._kernels import cd
from fmlearn.data.design import as_kernel_csr
from fmlearn.optim.coordinate import _csc
from fmlearn.tasks import BinaryClassification, Ordinal, Regression


def _ratings(n_users=40, n_items=30, n=900, seed=0, side=True):
    """User one-hot | item one-hot | (optionally) two dense side columns; noisy FM targets."""
    rng = np.random.default_rng(seed)
    u = rng.integers(0, n_users, n)
    i = rng.integers(0, n_items, n)
    cols = [sp.csr_matrix((np.ones(n), (np.arange(n), u)), shape=(n, n_users)),
            sp.csr_matrix((np.ones(n), (np.arange(n), i)), shape=(n, n_items))]
    if side:
        cols.append(sp.csr_matrix(rng.uniform(0.5, 1.5, (n, 2))))
    X = sp.hstack(cols).tocsr()
    U, I_ = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    y = (U[u] * I_[i]).sum(1) + 0.3 * rng.normal(size=n)
    return X, y


@pytest.fixture
def threads_on_small_data(monkeypatch):
    # Split every run, however small, so that these small problems use the threads.
    monkeypatch.setattr("fmlearn.optim.coordinate.PARALLEL_RUN_NNZ", 1)
    monkeypatch.setattr("fmlearn.optim.coordinate.PARALLEL_DRAW_ROWS", 1)
    monkeypatch.setattr("fmlearn.optim.coordinate.PARALLEL_PASS_ROWS", 1)
    monkeypatch.setattr("fmlearn.optim.coordinate.ROW_SPLIT_NNZ", 1)


def _runs(X):
    c = _csc(as_kernel_csr(sp.csr_matrix(X)))
    starts = np.empty(X.shape[1] + 1, dtype=np.int64)
    return starts[: cd.exclusive_runs(c.indptr, c.rows, X.shape[0], starts) + 1]


def test_exclusive_runs_are_the_one_hot_fields_and_maximal():
    X, _ = _ratings()
    np.testing.assert_array_equal(_runs(X), [0, 40, 70, 71, 72])
    # Random design: no two columns of a run share a row, and each run's first column shares
    # a row with a column of the run before it (maximal).
    R = sp.random(60, 25, density=0.05, random_state=3, format="csc")
    runs = _runs(R.tocsr())
    B = (R != 0).astype(int)
    for a, b in zip(runs[:-1], runs[1:], strict=True):
        assert (B[:, a:b].sum(axis=1) <= 1).all()
        if a > 0:
            prev = runs[np.searchsorted(runs, a) - 1]
            assert (B[:, prev:a].sum(axis=1).A1 * B[:, a].toarray().ravel()).any()
    assert runs[0] == 0 and runs[-1] == 25


@pytest.mark.usefixtures("threads_on_small_data")
@pytest.mark.parametrize("make, latent_passes", [
    (lambda: FMRegressor(solver="mcmc", n_kept_samples=5), 0),
    (lambda: FMRegressor(solver="als", l2_reg_w=1e-3, l2_reg_V=1e-3), 0),
    (lambda: FMClassifier(solver="mcmc", n_kept_samples=5), 1),
    (lambda: FMOrdinalRegressor(solver="mcmc", n_kept_samples=5), 3),
], ids=["mcmc", "als", "probit", "ordinal"])
def test_fused_sweep_is_the_separate_regions(make, latent_passes, monkeypatch):
    # The fused sweep (one parallel region, helpers kept in compiled code between sweeps:
    # cd.sweep_team, cd.refresh_part, cd.latent_part, _parallel.Crew) makes the same draws in
    # the same order as the sweep's separate regions: the same chain, bit for bit.
    from fmlearn import _parallel
    from fmlearn._kernels import sync

    X, y = _ratings(seed=4, side=False)
    if isinstance(make(), FMClassifier):
        y = (y > 0).astype(int)
    elif isinstance(make(), FMOrdinalRegressor):
        y = np.digitize(y, [-1.0, 0.0, 1.0])
    posts = []
    real_run = _parallel.Crew.run
    monkeypatch.setattr(_parallel.Crew, "run", lambda self, part0: posts.append(
        int(self.ctrl[sync.MODE])) or real_run(self, part0))
    kw = dict(n_factors=3, max_iter=12, random_state=0, n_jobs=2)
    fused = make().set_params(**kw).fit(X, y)
    # Every sweep went through the crew, and so did the fresh start of the rows' sums after
    # sweep 8 (REFRESH_SWEEPS) and the latent passes (the probit draws; the ordinal
    # cutpoints' two passes and draws) of every sweep after the first, which comes before
    # the crew exists.
    assert posts.count(0) == 12 and posts.count(1) == 1
    assert len(posts) == 12 + 1 + 11 * latent_passes
    monkeypatch.setattr("fmlearn.optim.coordinate._CoordinateSolver._team",
                        lambda self, *a: None)
    apart = make().set_params(**kw).fit(X, y)
    np.testing.assert_array_equal(fused.V_, apart.V_)
    np.testing.assert_array_equal(fused.w_, apart.w_)
    np.testing.assert_array_equal(fused.predict(X), apart.predict(X))


@pytest.mark.usefixtures("threads_on_small_data")
@pytest.mark.parametrize("side", [False, True])
def test_threaded_als_is_the_serial_als(side):
    # Columns of a run share no row: their updates commute, so ALS on threads is exact when
    # the runs are split between columns. The side columns are runs of one column, split by
    # rows: the same updates, with each sum added up in two parts (rounding only).
    X, y = _ratings(seed=1, side=side)
    kw = dict(n_factors=3, solver="als", max_iter=8, l2_reg_w=1e-3, l2_reg_V=1e-3,
              random_state=0, tol=None)
    a = FMRegressor(**kw, n_jobs=1).fit(X, y)
    b = FMRegressor(**kw, n_jobs=2).fit(X, y)
    if not side:
        np.testing.assert_array_equal(a.V_, b.V_)
        np.testing.assert_array_equal(a.w_, b.w_)
        np.testing.assert_array_equal(a.history_["train_rmse"], b.history_["train_rmse"])
    else:
        np.testing.assert_allclose(b.V_, a.V_, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(b.w_, a.w_, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(b.history_["train_rmse"], a.history_["train_rmse"],
                                   rtol=1e-10)


@pytest.mark.usefixtures("threads_on_small_data")
@pytest.mark.parametrize("cls", [FMRegressor, FMClassifier, FMOrdinalRegressor])
def test_threaded_chain_is_reproducible(cls):
    X, y = _ratings(seed=2)
    if cls is FMClassifier:
        y = y > 0
    elif cls is FMOrdinalRegressor:
        y = np.digitize(y, [-1.0, 0.0, 1.0])
    kw = dict(n_factors=2, solver="mcmc", max_iter=12, random_state=7)
    a = cls(**kw, n_jobs=2).fit(X, y)
    b = cls(**kw, n_jobs=2).fit(X, y)
    c = cls(**kw, n_jobs=1).fit(X, y)
    np.testing.assert_array_equal(a.V_samples_, b.V_samples_)
    np.testing.assert_array_equal(a.w0_samples_, b.w0_samples_)
    # The threads draw from their own streams: another chain than the one-thread sampler's.
    assert not np.allclose(a.V_samples_, c.V_samples_)


def _sample_outputs(m, X):
    """(n_samples, n_rows): the FM output of every kept sample."""
    X = X.toarray()
    lin = m.w_samples_ @ X.T + m.w0_samples_[:, None]
    XV = np.einsum("ni,sif->snf", X, m.V_samples_)
    X2V2 = np.einsum("ni,sif->snf", X * X, m.V_samples_ ** 2)
    return lin + 0.5 * (XV ** 2 - X2V2).sum(-1)


def _mean_and_se(values, n_batches=25):
    """Mean over axis 0 and its Monte Carlo standard error by batch means."""
    n = values.shape[0] // n_batches * n_batches
    batches = values[:n].reshape(n_batches, -1, *values.shape[1:]).mean(1)
    return values.mean(0), batches.std(0, ddof=1) / np.sqrt(n_batches)


@pytest.mark.usefixtures("threads_on_small_data")
@pytest.mark.parametrize("side", [False, True])
def test_threaded_sampler_has_the_serial_posterior(side):
    # Block Gibbs on threads has the same stationary distribution as the one-thread sweep:
    # posterior predictive means and spreads of the FM output agree within their Monte Carlo
    # errors (batch means over long chains; fixed seeds, so the outcome is deterministic, and
    # 5 standard errors leave a margin no fixed seed comes near by chance).
    # side: two dense columns, runs of one column each, sampled with their rows split.
    X, y = _ratings(n_users=15, n_items=12, n=300, seed=4, side=side)
    test = X[:40]
    kw = dict(n_factors=2, solver="mcmc", max_iter=3000, n_kept_samples=2500,
              init_stdev=0.1)
    out = [_sample_outputs(FMRegressor(**kw, random_state=s, n_jobs=j).fit(X, y), test)
           for s, j in ((11, 1), (12, 2))]
    (m1, se1), (m2, se2) = (_mean_and_se(o) for o in out)
    z = np.abs(m1 - m2) / np.sqrt(se1 ** 2 + se2 ** 2)
    assert z.max() < 5.0, z.max()
    (s1, sse1), (s2, sse2) = (_mean_and_se((o - o.mean(0)) ** 2) for o in out)
    z = np.abs(s1 - s2) / np.sqrt(sse1 ** 2 + sse2 ** 2)
    assert z.max() < 5.0, z.max()
    # Not vacuous: the intervals are far narrower than the spread of the predictions.
    assert np.sqrt(se1 ** 2 + se2 ** 2).max() < 0.1 * m1.std()


def test_small_data_chain_is_the_one_thread_chain_whatever_n_jobs():
    # No run is large enough to split: the threads' streams are never drawn.
    X, y = _ratings(seed=5)
    kw = dict(n_factors=2, solver="mcmc", max_iter=6, random_state=3)
    a = FMRegressor(**kw, n_jobs=1).fit(X, y)
    b = FMRegressor(**kw, n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(a.V_samples_, b.V_samples_)


@pytest.mark.parametrize("k", sorted({*cd.GATHER_FACTORS, 3, 10}))
def test_gather_and_scatter_copy_a_columns_rows(k):
    # sweep_columns copies a column's rows of R into the scratch S, transposed, and back: with
    # a literal k for cd.GATHER_FACTORS, else k at run time; four rows at a time as 4 x 4
    # blocks, the last rows one by one. A column of 11 rows.
    rng = np.random.default_rng(k)
    n, m_max = 60, 25
    X = sp.random(n, 4, density=0.3, random_state=k, format="lil")
    X[:, 1] = 0.0
    X[np.sort(rng.choice(n, 11, replace=False)), 1] = rng.uniform(0.5, 2.0, (11, 1))
    c = _csc(as_kernel_csr(X.tocsr()))
    assert c.indptr[2] - c.indptr[1] == 11
    R = rng.normal(size=(n, k + 2))
    p0, m = c.indptr[1], c.indptr[2] - c.indptr[1]
    rows = c.rows[p0: p0 + m]
    S = np.full((k + 3, m_max), np.nan)
    cd._gather(c.rows, c.vals, p0, m, R, S)
    np.testing.assert_array_equal(S[: k + 2, :m], R[rows].T)
    np.testing.assert_array_equal(S[k + 2, :m], c.vals[p0: p0 + m])
    assert np.isnan(S[:, m:]).all()
    S[:k + 1, :m] += 1.0  # new factor sums and residuals
    before = R.copy()
    cd._scatter(c.rows, p0, m, R, S)
    np.testing.assert_array_equal(R[rows, : k + 1], before[rows, : k + 1] + 1.0)
    np.testing.assert_array_equal(R[rows, k + 1], before[rows, k + 1])  # weights stay
    others = np.setdiff1d(np.arange(n), rows)
    np.testing.assert_array_equal(R[others], before[others])


def test_sweep_row_passes_match_numpy():
    rng = np.random.default_rng(0)
    n, k, ch = 10_000, 3, cd.SUM_CHUNK  # three chunks of rows, the last one short
    t, p, sw = rng.normal(size=n), rng.normal(size=n), rng.uniform(0.5, 2.0, n)
    s_e, s_ee = cd.residual_sums(t, p, sw, 0, n)
    np.testing.assert_allclose([s_e, s_ee], [(sw * (t - p)).sum(), (sw * (t - p) ** 2).sum()],
                               rtol=1e-12)
    R = rng.normal(size=(n, k + 2))
    before = R.copy()
    cd.set_residuals(t, p, 0.25, R, 10, 40)
    np.testing.assert_array_equal(R[10:40, k], (t - p)[10:40] - 0.25)
    np.testing.assert_array_equal(np.delete(R, k, axis=1), np.delete(before, k, axis=1))
    np.testing.assert_array_equal(R[:10], before[:10])
    e, out = np.full(n, np.nan), np.full(n, np.nan)
    parts = np.full((3, 3), np.nan)
    # Two blocks of whole chunks, as two threads take them.
    cut = np.zeros(1)  # regression: the loss is the squared residuals
    cd.take_residuals(R, t, e, out, 0, ch, sw, parts, cd.LATENT_SQUARED, t, cut)
    cd.take_residuals(R, t, e, out, ch, n, sw, parts, cd.LATENT_SQUARED, t, cut)
    np.testing.assert_array_equal(e, R[:, k])
    np.testing.assert_array_equal(out, t - R[:, k])
    for c, (a, b) in enumerate([(0, ch), (ch, 2 * ch), (2 * ch, n)]):
        d = t[a:b] - out[a:b]
        np.testing.assert_allclose(parts[c], [(sw[a:b] * d).sum(), (sw[a:b] * d * d).sum(),
                                              (sw[a:b] * e[a:b] ** 2).sum()], rtol=1e-10)
    loss = Regression().latent_loss(None, t, sw, t, e)  # the loss of sweeps without R
    np.testing.assert_allclose(loss, (sw * e * e).sum(), rtol=1e-12)
    # The chunk sums add up to exactly what the next sweep and the loss would compute: the
    # same result whichever threads took which chunks.
    totals = cd.chunk_totals(parts)
    assert totals[:2] == cd.residual_sums(t, out, sw, 0, n)
    assert totals[2] == loss


def test_probit_loss_is_scipys_log_ndtr():
    from scipy.special import log_ndtr

    f = np.array([-60.0, -35.0, -29.0, -8.0, -1.0, 0.0, 0.5, 3.0, 12.0, 40.0])
    y = np.where(np.arange(f.size) % 2 == 0, 1.0, -1.0)
    sw = np.linspace(0.5, 1.5, f.size)
    for a in range(f.size):  # each term alone, so a small one is checked on its own scale
        np.testing.assert_allclose(BinaryClassification().latent_loss(
                                       None, y[a:a + 1], sw[a:a + 1], f[a:a + 1], np.zeros(1)),
                                   -sw[a] * log_ndtr(y[a] * f[a]), rtol=1e-11, atol=1e-300)


@pytest.mark.parametrize("cls", [FMClassifier, FMOrdinalRegressor])
def test_threaded_latent_draws_keep_the_posterior(cls, monkeypatch):
    # The latent targets drawn on two threads (one stream per block of rows) give the same
    # fit as one thread up to Monte Carlo error: predictions on the training rows agree.
    monkeypatch.setattr("fmlearn.optim.coordinate.PARALLEL_DRAW_ROWS", 100)
    X, y = _ratings(seed=6, n=2000)
    y = y > 0 if cls is FMClassifier else np.digitize(y, [-1.0, 0.0, 1.0])
    kw = dict(n_factors=2, solver="mcmc", max_iter=300, random_state=1)
    one, two = (cls(**kw, n_jobs=j).fit(X, y) for j in (1, 2))
    p1, p2 = one.predict_proba(X), two.predict_proba(X)
    assert not np.array_equal(p1, p2)  # the threads drew: another chain
    assert np.abs(p1 - p2).mean() < 0.03
    labels = [p.argmax(1) for p in (p1, p2)]
    assert (labels[0] == labels[1]).mean() > 0.95
    assert (labels[1] == (y if cls is FMOrdinalRegressor else y.astype(int))).mean() > 0.6


def test_cutpoint_deltas_are_the_log_likelihood_ratio():
    # Each cutpoint's sum is the change of the ordered probit log-likelihood when it alone
    # moves to its proposal; a split over row blocks adds up to the same. Scores far into
    # both tails too (the pass shares one end's CDF between the two probabilities).
    from fmlearn._kernels import ordinal as ok

    rng = np.random.default_rng(3)
    n, cut = 400, np.array([-1.0, -0.2, 0.5, 1.4])
    y = rng.integers(0, 5, n).astype(np.float64)
    pred, sw = rng.normal(size=n), rng.uniform(0.5, 1.5, n)
    pred[:6] = [-40.0, 40.0, 35.0, -35.0, 9.0, -9.0]
    zero = np.zeros(n)  # residuals: the loss at outputs ``pred``
    for parity in (0, 1):
        proposal = cut.copy()
        proposal[parity::2] += rng.normal(0, 0.1, proposal[parity::2].shape)
        got = ok.cutpoint_deltas(y, pred, sw, cut, proposal, parity, 0, n)
        halves = ok.cutpoint_deltas(y, pred, sw, cut, proposal, parity, 0, 150) + \
            ok.cutpoint_deltas(y, pred, sw, cut, proposal, parity, 150, n)
        np.testing.assert_allclose(halves, got, rtol=1e-10, atol=1e-12)
        for c in range(cut.size):
            if c % 2 != parity:
                assert got[c] == 0.0
                continue
            moved = cut.copy()
            moved[c] = proposal[c]
            expect = (-Ordinal().latent_loss(SimpleNamespace(cutpoints=moved), y, sw, pred, zero)
                      + Ordinal().latent_loss(SimpleNamespace(cutpoints=cut), y, sw, pred, zero))
            np.testing.assert_allclose(got[c], expect, rtol=1e-9, atol=1e-9)


@pytest.mark.usefixtures("threads_on_small_data")
def test_fused_sweeps_of_two_fits_at_once_do_not_interfere():
    # Two fits with n_jobs=2 from two Python threads at once: each solver has its own crew,
    # and one thread's other parallel regions never stop the other's crew mid-sweep.
    import threading

    X, y = _ratings(seed=5, side=False)
    kw = dict(n_factors=3, max_iter=15, random_state=0, n_jobs=2)
    makers = [lambda: FMRegressor(solver="mcmc", n_kept_samples=5, **kw),
              lambda: FMClassifier(solver="mcmc", n_kept_samples=5, **kw)]
    targets = [y, (y > 0).astype(int)]
    alone = [make().fit(X, t).predict(X) for make, t in zip(makers, targets, strict=True)]
    out = [None, None]

    def run(i):
        out[i] = makers[i]().fit(X, targets[i]).predict(X)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not any(th.is_alive() for th in threads)
    for a, b in zip(alone, out, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("parts", [1, 3])
def test_block_stats_match_numpy(parts):
    # The aggregates of block rows (cd.block_stats_all: gathered by block row, in batches of
    # cd.STATS_BATCH) against numpy, with one block row longer than a batch and parts of the
    # order that cut through block rows.
    rng = np.random.default_rng(5)
    n, k, n_br = 1500, 4, 7
    idx = np.concatenate([np.zeros(cd.STATS_BATCH + 40, np.int64),
                          rng.integers(1, n_br, n - cd.STATS_BATCH - 40)])
    rng.shuffle(idx)
    R = rng.normal(size=(n, k + 2))
    R[:, k + 1] = rng.uniform(0.5, 2.0, n)
    order = np.argsort(idx, kind="stable")
    m = 2 + 3 * k + k * (k - 1) // 2
    P = np.zeros((n_br, m))
    cuts = np.linspace(0, n, parts + 1).astype(int)
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        part = np.full((n_br, m), np.nan)
        cd.block_stats_all(idx, order, R, part, a, b)
        P += part
    s, e, q = R[:, k + 1], R[:, k], R[:, :k]
    for r in range(n_br):
        rows = idx == r
        sr, er, qr = s[rows], e[rows], q[rows]
        want = [sr.sum(), (sr * er).sum()]
        for f in range(k):
            want += [(sr * qr[:, f]).sum(), (sr * qr[:, f] ** 2).sum(),
                     (sr * qr[:, f] * er).sum()]
        for f in range(k):
            want += [(sr * qr[:, f] * qr[:, g]).sum() for g in range(f)]
        np.testing.assert_allclose(P[r], want, rtol=1e-10, atol=1e-10)
