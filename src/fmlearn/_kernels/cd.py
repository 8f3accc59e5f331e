"""Coordinate-wise updates of the FM: ALS (coordinate descent) and Gibbs sampling (MCMC).

Both solvers visit one parameter ``theta`` at a time. The FM is linear in each parameter,
``y(x_n) = g_n + theta h_n`` with ``h_n`` free of ``theta``, so with residuals
``e_n = t_n - y(x_n)`` and row weights ``s_n`` the conditional of ``theta`` under a
``N(mu, 1/lam)`` prior and noise precision ``alpha`` is normal with

    precision = alpha * sum_n s_n h_n^2 + lam
    mean      = (alpha * sum_n s_n h_n (e_n + theta h_n) + mu * lam) / precision

ALS sets ``theta`` to the mean (alpha = 1, mu = 0, lam = the L2 strength); MCMC draws from
this normal (Freudenthaler, Schmidt-Thieme and Rendle 2011). Afterwards ``e_n -= delta h_n``.
For the linear weight ``h_n = x_ni``; for factor ``f`` of feature ``i``,
``h_n = x_ni (q_nf - v_if x_ni)`` with the factor sums ``q_nf = sum_j v_jf x_nj``, which the
update keeps current (``q_nf += delta x_ni``). A sweep costs O(k * nnz), column by column, so
the design comes in CSC form: ``indptr`` int64 (n_cols + 1,), ``rows`` int32, ``vals``.

Relation blocks (Rendle 2013, "Scaling factorization machines to relational data"): a block
is a small matrix ``B`` (n_block_rows, n_block_cols) and an index ``idx`` (n_rows,) telling
which block row each data row repeats. A block feature's sums over the data rows are
regrouped by block row from five per-block-row aggregates, with ``c_r = sum_{n in r} s_n``::

    Q1_r = sum s_n q_n,  Q2_r = sum s_n q_n^2,  E_r = sum s_n e_n,  EQ_r = sum s_n e_n q_n

and the change of every ``e_n``/``q_n`` of block row ``r`` is summarized by two numbers
(``DQ_r``, ``B_r``) applied once after the block's sweep: ``q_n += DQ_r`` and
``e_n -= DQ_r q_n + B_r``. A block's sweep then costs O(nnz(B)) plus O(n_rows), not the nnz
of the expanded rows.

Parameters sit in the FM table (``table[i, f]`` factor ``f``, ``table[i, wcol]`` weight);
``groups`` int32 (n_features,) gives each feature's prior group and ``mu``/``lam`` (n_groups,)
the prior of the parameters being updated. ``sample`` switches MCMC (True) and ALS (False);
``rng`` is a :mod:`fmlearn._kernels.rng` state.
"""

import math

import numpy as np

from fmlearn._kernels._jit import jit
from fmlearn._kernels.fm import predict_blocked
from fmlearn._kernels.intrinsics import _eaddr, _transpose4
from fmlearn._kernels.ordinal import class_probability as ordinal_class_probability
from fmlearn._kernels.ordinal import cutpoint_deltas
from fmlearn._kernels.ordinal import latent_targets as ordinal_latent_targets
from fmlearn._kernels.prefetch import prefetch
from fmlearn._kernels.rng import gamma, mean_above, normal, normal_above
from fmlearn._kernels.sync import MODE, atomic_load, barrier, wait_post

# Rows gathered ahead of use by :func:`sweep_columns`.
PREFETCH = 8


@jit(inline="always")
def _draw(theta, s_hh, s_he, alpha, mu, lam, sample, rng):
    """New value of a parameter from its sufficient sums (see the module docstring)."""
    precision = alpha * s_hh + lam
    if precision <= 0.0:
        return theta  # never observed and no prior: nothing to learn
    mean = (alpha * (s_he + theta * s_hh) + mu * lam) / precision
    if sample:
        return mean + normal(rng) / math.sqrt(precision)
    return mean


# One column's update in the factor-major scan, split into its sums and its application so
# that the distributed ALS (fmlearn.dask: linear_block_sums, apply_linear_block, ...) runs the
# same arithmetic as update_linear / update_factor.
@jit(inline="always")
def _linear_col_sums(indptr, rows, vals, c, e, sw):
    s_hh = 0.0
    s_he = 0.0
    for p in range(indptr[c], indptr[c + 1]):
        n = rows[p]
        h = vals[p]
        sh = sw[n] * h
        s_hh += sh * h
        s_he += sh * e[n]
    return s_hh, s_he


@jit(inline="always")
def _linear_col_apply(indptr, rows, vals, c, e, d):
    for p in range(indptr[c], indptr[c + 1]):
        e[rows[p]] -= d * vals[p]


@jit(inline="always")
def _factor_col_sums(indptr, rows, vals, c, v, e, q, sw):
    s_hh = 0.0
    s_he = 0.0
    for p in range(indptr[c], indptr[c + 1]):
        n = rows[p]
        x = vals[p]
        h = x * (q[n] - v * x)
        sh = sw[n] * h
        s_hh += sh * h
        s_he += sh * e[n]
    return s_hh, s_he


@jit(inline="always")
def _factor_col_apply(indptr, rows, vals, c, v, d, e, q):
    for p in range(indptr[c], indptr[c + 1]):
        n = rows[p]
        x = vals[p]
        e[n] -= d * x * (q[n] - v * x)
        q[n] += d * x


@jit
def update_linear(indptr, rows, vals, col0, e, sw, table, wcol, alpha, mu, lam, groups, sample,
                  rng):
    """Update the linear weights of columns ``col0 .. col0 + n_cols`` of the model."""
    for c in range(indptr.shape[0] - 1):
        i = col0 + c
        g = groups[i]
        s_hh, s_he = _linear_col_sums(indptr, rows, vals, c, e, sw)
        old = table[i, wcol]
        new = _draw(old, s_hh, s_he, alpha, mu[g], lam[g], sample, rng)
        table[i, wcol] = new
        _linear_col_apply(indptr, rows, vals, c, e, new - old)


@jit
def update_factor(indptr, rows, vals, col0, f, e, q, sw, table, alpha, mu, lam, groups, sample,
                  rng):
    """Update factor ``f`` of columns ``col0 ..``, keeping ``e`` and ``q`` (= q_.f) current."""
    for c in range(indptr.shape[0] - 1):
        i = col0 + c
        g = groups[i]
        v = table[i, f]
        s_hh, s_he = _factor_col_sums(indptr, rows, vals, c, v, e, q, sw)
        new = _draw(v, s_hh, s_he, alpha, mu[g], lam[g], sample, rng)
        table[i, f] = new
        _factor_col_apply(indptr, rows, vals, c, v, new - v, e, q)


# One column's updates, on its rows gathered into the scratch ``S`` (k + 3, m) of
# :func:`sweep_columns`: rows ``0 .. k-1`` the factor sums, ``k`` the residuals, ``k + 1`` the
# weights, ``k + 2`` the column's values. The sums, the draw (:func:`_draw`) and the
# application are apart so that :func:`columns_sums` / :func:`columns_apply` (distributed ALS,
# fmlearn.dask) run the same arithmetic, term for term, as the local sweep.
# Numbers of factors whose gather and scatter run with a literal ``k`` (their loops unrolled);
# others take the same code with ``k`` at run time.
GATHER_FACTORS = (4, 8, 16, 32)


@jit(inline="always")
def _gather(rows, vals, p0, m, R, S):
    """Column rows ``rows[p0 : p0 + m]`` of ``R`` into ``S``, transposed."""
    k = R.shape[1] - 2
    if k == 8:
        _gather_k(rows, vals, p0, m, R, S, 8)
    elif k == 16:
        _gather_k(rows, vals, p0, m, R, S, 16)
    elif k == 4:
        _gather_k(rows, vals, p0, m, R, S, 4)
    elif k == 32:
        _gather_k(rows, vals, p0, m, R, S, 32)
    else:
        _gather_k(rows, vals, p0, m, R, S, k)


@jit(inline="always")
def _gather_k(rows, vals, p0, m, R, S, k):
    """:func:`_gather` for ``k`` factors (``R.shape[1] - 2``; a literal from its caller). Four
    rows at a time, their factor sums moved as 4 x 4 blocks (:func:`_transpose4`): the
    copies in and out of the scratch are more of a sweep than its arithmetic."""
    W = k + 2
    k4 = k - k % 4
    ms = S.shape[1]
    rb = _eaddr(R)
    sb = _eaddr(S)
    last = rows.shape[0] - 1
    j = 0
    while j < m:
        step = 4 if j + 4 <= m else 1
        for i in range(step):
            # The row PREFETCH steps ahead is a cache miss on large data: ask for it now.
            ahead = rows[min(p0 + j + i + PREFETCH, last)] * W
            prefetch(R, ahead)
            prefetch(R, ahead + W - 1)
            n = rows[p0 + j + i]
            S[k + 2, j + i] = vals[p0 + j + i]
            S[k, j + i] = R[n, k]
            S[k + 1, j + i] = R[n, k + 1]
        if step == 4:
            a0 = rb + rows[p0 + j] * W
            a1 = rb + rows[p0 + j + 1] * W
            a2 = rb + rows[p0 + j + 2] * W
            a3 = rb + rows[p0 + j + 3] * W
            for f0 in range(0, k4, 4):
                d = sb + f0 * ms + j
                _transpose4(R, a0 + f0, a1 + f0, a2 + f0, a3 + f0, d, d + ms, d + 2 * ms,
                            d + 3 * ms)
            for f in range(k4, k):
                for i in range(4):
                    S[f, j + i] = R[rows[p0 + j + i], f]
        else:
            n = rows[p0 + j]
            for f in range(k):
                S[f, j] = R[n, f]
        j += step


@jit(inline="always")
def _scatter(rows, p0, m, R, S):
    """The gathered residuals and factor sums back to ``R``."""
    k = R.shape[1] - 2
    if k == 8:
        _scatter_k(rows, p0, m, R, S, 8)
    elif k == 16:
        _scatter_k(rows, p0, m, R, S, 16)
    elif k == 4:
        _scatter_k(rows, p0, m, R, S, 4)
    elif k == 32:
        _scatter_k(rows, p0, m, R, S, 32)
    else:
        _scatter_k(rows, p0, m, R, S, k)


@jit(inline="always")
def _scatter_k(rows, p0, m, R, S, k):
    """:func:`_scatter` for ``k`` factors (a literal from its caller), four rows at a time
    as :func:`_gather_k`."""
    W = k + 2
    k4 = k - k % 4
    ms = S.shape[1]
    rb = _eaddr(R)
    sb = _eaddr(S)
    j = 0
    while j + 4 <= m:
        n0 = rows[p0 + j]
        n1 = rows[p0 + j + 1]
        n2 = rows[p0 + j + 2]
        n3 = rows[p0 + j + 3]
        for f0 in range(0, k4, 4):
            a = sb + f0 * ms + j
            _transpose4(R, a, a + ms, a + 2 * ms, a + 3 * ms, rb + n0 * W + f0,
                        rb + n1 * W + f0, rb + n2 * W + f0, rb + n3 * W + f0)
        for i in range(4):
            n = rows[p0 + j + i]
            R[n, k] = S[k, j + i]
            for f in range(k4, k):
                R[n, f] = S[f, j + i]
        j += 4
    while j < m:
        n = rows[p0 + j]
        R[n, k] = S[k, j]
        for f in range(k):
            R[n, f] = S[f, j]
        j += 1


@jit(inline="always")
def _linear_sums(S, j0, j1, k):
    """``(sum s h^2, sum s h e)`` of a column's linear weight (``h = x``), its rows at
    ``j0 <= j < j1`` of ``S``."""
    be = S[k]
    bs = S[k + 1]
    bx = S[k + 2]
    s_hh = 0.0
    s_he = 0.0
    for j in range(j0, j1):
        sx = bs[j] * bx[j]
        s_hh += sx * bx[j]
        s_he += sx * be[j]
    return s_hh, s_he


@jit(inline="always")
def _linear_apply(S, j0, j1, k, d):
    """The residuals after the linear weight changed by ``d``."""
    be = S[k]
    bx = S[k + 2]
    for j in range(j0, j1):
        be[j] -= d * bx[j]


@jit(inline="always")
def _factor_sums(S, j0, j1, k, f, v):
    """``(sum s h^2, sum s h e)`` of factor ``f`` (value ``v``): ``h = x (q_f - v x)``."""
    be = S[k]
    bs = S[k + 1]
    bx = S[k + 2]
    bq = S[f]
    s_hh = 0.0
    s_he = 0.0
    for j in range(j0, j1):
        x = bx[j]
        h = x * (bq[j] - v * x)
        sh = bs[j] * h
        s_hh += sh * h
        s_he += sh * be[j]
    return s_hh, s_he


@jit(inline="always")
def _factor_apply(S, j0, j1, k, f, v, d):
    """Residuals and factor sums after factor ``f`` changed from ``v`` by ``d``."""
    be = S[k]
    bx = S[k + 2]
    bq = S[f]
    # The residuals' update, fused with the factor sums' (h from the old v).
    for j in range(j0, j1):
        x = bx[j]
        be[j] -= d * x * (bq[j] - v * x)
        bq[j] += d * x


@jit
def sweep_columns(indptr, rows, vals, c0, c1, col0, R, table, wcol, fit_linear, alpha, mu_w,
                  lam_w, mu_V, lam_V, groups, sample, rng, S):
    """Update ``w_i`` then ``v_i0 .. v_i,k-1`` of columns ``c0 <= c < c1``, feature by feature.

    The feature-major scan of :meth:`~fmlearn.optim.coordinate._CoordinateSolver.run_epoch`.
    ``R`` (n_rows, k + 2) float64, C order: each data row's factor sums ``q_n0 .. q_n,k-1``,
    residual ``e_n`` (column ``k``) and weight ``s_n`` (column ``k + 1``) side by side, so a
    row is one or two cache lines. ``mu_V``/``lam_V`` (k, n_groups). ``S`` (k + 3, m) float64
    scratch, ``m`` at least the longest column.

    A column's rows are gathered once, transposed, into ``S`` (rows ``0 .. k-1`` the factor
    sums, ``k`` the residuals, ``k + 1`` the weights, ``k + 2`` the column's values), its
    ``k + 1`` updates run there as contiguous loops over the rows (which LLVM vectorizes, in
    L1), and ``R`` gets the result back: one random access per non-zero instead of one per
    non-zero and factor (the factor-major scan), and no separate error-update pass over the
    data. Columns with no row in common touch disjoint rows of ``R``, so threads may run this
    on disjoint ranges of such columns at once (block Gibbs; see :func:`exclusive_runs`).
    """
    k = R.shape[1] - 2
    for c in range(c0, c1):
        i = col0 + c
        g = groups[i]
        p0 = indptr[c]
        m = indptr[c + 1] - p0
        _gather(rows, vals, p0, m, R, S)
        if fit_linear:
            s_hh, s_he = _linear_sums(S, 0, m, k)
            old = table[i, wcol]
            new = _draw(old, s_hh, s_he, alpha, mu_w[g], lam_w[g], sample, rng)
            table[i, wcol] = new
            _linear_apply(S, 0, m, k, new - old)
        for f in range(k):
            v = table[i, f]
            s_hh, s_he = _factor_sums(S, 0, m, k, f, v)
            new = _draw(v, s_hh, s_he, alpha, mu_V[f, g], lam_V[f, g], sample, rng)
            table[i, f] = new
            _factor_apply(S, 0, m, k, f, v, new - v)
        _scatter(rows, p0, m, R, S)


@jit
def sweep_team(t, n_threads, ctrl, row_cuts, target, pred, scal, R, indptr, rows, vals,
               run_cuts, run_split, table, wcol, fit_linear, mu_w, lam_w, mu_V, lam_V, groups,
               sample, chain_rng, streams, S, e, pred_out, sw, parts, code, y, cut):
    """Thread ``t``'s part of a whole feature-major sweep over the main columns, in one call.

    The parallel regions of a sweep, fused: :func:`set_residuals` of rows ``row_cuts[t] ..
    row_cuts[t + 1]``; then each run ``u`` of mutually exclusive columns, split over the
    threads at ``run_cuts[u]`` (n_threads + 1,) where ``run_split[u]``, each thread drawing from
    its own stream ``streams[t : t + 1]``, else all of it on thread 0 from the chain's own
    ``chain_rng``; then :func:`take_residuals` of the thread's rows (whole chunks of
    ``SUM_CHUNK``: their sums and the task's loss (``code``, ``y``, ``cut``) go to ``parts``).
    The threads meet at a
    spinning barrier (:func:`fmlearn._kernels.sync.barrier`, ``ctrl``) between the steps
    instead of leaving the call, and once more at the end, so when any thread returns True
    all have done their part. The draws are those of the separate regions, in the same
    order: the same chain. ``scal``: the noise precision ``alpha`` and the bias's change
    ``shift``; ``S``: this thread's scratch (see :func:`sweep_columns`). Returns False if
    the region was aborted.
    """
    alpha = scal[0]
    a = row_cuts[t]
    b = row_cuts[t + 1]
    mine = own_state(streams[t: t + 1])  # off the cache line of the other threads' states
    set_residuals(target, pred, scal[1], R, a, b)
    if not barrier(ctrl, n_threads):
        return False
    for u in range(run_split.shape[0]):
        if run_split[u]:
            sweep_columns(indptr, rows, vals, run_cuts[u, t], run_cuts[u, t + 1], 0, R, table,
                          wcol, fit_linear, alpha, mu_w, lam_w, mu_V, lam_V, groups, sample,
                          mine, S)
        elif t == 0:
            sweep_columns(indptr, rows, vals, run_cuts[u, 0], run_cuts[u, n_threads], 0, R,
                          table, wcol, fit_linear, alpha, mu_w, lam_w, mu_V, lam_V, groups,
                          sample, chain_rng, S)
        if not barrier(ctrl, n_threads):
            return False
    streams[t] = mine[0]
    take_residuals(R, target, e, pred_out, a, b, sw, parts, code, y, cut)
    return barrier(ctrl, n_threads)


@jit
def refresh_part(t, n_threads, ctrl, row_cuts, m_indptr, m_indices, m_data, w0, table, k, R,
                 pred):
    """Thread ``t``'s part of a fresh start of the sweep's rows (no relation blocks): the
    outputs ``pred`` and factor sums ``R[:, :k]`` of rows ``row_cuts[t] .. row_cuts[t + 1]``
    (:func:`fmlearn._kernels.fm.predict_blocked`), then the barrier. Returns False if the
    region was aborted."""
    no_blocks = np.empty((0, 1), dtype=np.int32)
    dummy = np.zeros(1)
    predict_blocked(m_indptr, m_indices, m_data, w0, table, k, no_blocks,
                    np.zeros(1, dtype=np.int64), dummy, np.zeros((1, k)), dummy, row_cuts[t],
                    row_cuts[t + 1], pred, R.T, True)
    return barrier(ctrl, n_threads)


@jit
def team_loop(t, seen, linger, n_threads, ctrl, row_cuts, target, pred, scal, R, indptr, rows,
              vals, run_cuts, run_split, table, wcol, fit_linear, mu_w, lam_w, mu_V, lam_V,
              groups, sample, chain_rng, streams, S, e, pred_out, sw, parts, code, y, cut,
              m_indptr, m_indices, m_data, w0, proposal, deltas):
    """A helper thread's regions: its part of every posted region, until none is posted for
    ``linger`` checks (:func:`fmlearn._kernels.sync.wait_post`). By ``ctrl[MODE]``: 0 a sweep
    (:func:`sweep_team`); 1 a fresh start of the rows (:func:`refresh_part`, with the main
    CSR ``m_*`` and the bias ``w0``); a latent pass (:data:`LATENT_DRAW`, ...) of the task
    ``code`` over the thread's rows (:func:`latent_rows`, its row ``deltas[t]``). The caller
    changes the arrays' contents between regions, never the arrays. Returns the regions it
    ran, or -1 if one was aborted."""
    done = 0
    while wait_post(ctrl, seen, linger):
        seen += 1
        mode = atomic_load(ctrl, MODE)
        if mode == 1:
            ok = refresh_part(t, n_threads, ctrl, row_cuts, m_indptr, m_indices, m_data, w0,
                              table, wcol, R, pred_out)
        elif mode >= LATENT_DRAW:
            ok = latent_part(t, n_threads, ctrl, row_cuts, mode, code, y, pred_out, target, sw,
                             cut, proposal, sample, streams, deltas)
        else:
            ok = sweep_team(t, n_threads, ctrl, row_cuts, target, pred, scal, R, indptr, rows,
                            vals, run_cuts, run_split, table, wcol, fit_linear, mu_w, lam_w,
                            mu_V, lam_V, groups, sample, chain_rng, streams, S, e, pred_out, sw,
                            parts, code, y, cut)
        if not ok:
            return -1
        done += 1
    return done


# -- The latent targets' passes over the rows (fmlearn.tasks): the task's ``code`` says which
# model; ``mode`` which pass (also the crew's ctrl[MODE] that runs it, cd.team_loop).
LATENT_SQUARED, LATENT_PROBIT, LATENT_ORDINAL = 0, 1, 2
LATENT_DRAW, LATENT_DELTAS_EVEN, LATENT_DELTAS_ODD = 2, 3, 4


@jit(inline="always")
def own_state(rng):
    """A copy of the generator state ``rng`` (uint64 (1,)) for one thread to draw from: the
    middle of 128 bytes of its own, so that its cache line holds nothing another thread
    writes (the states of ``streams`` share one line, which a draw per row would pass to
    and fro between the cores)."""
    state = np.empty(16, dtype=np.uint64)[8:9]
    state[0] = rng[0]
    return state


@jit
def latent_part(t, n_threads, ctrl, row_cuts, mode, code, y, pred, target, sw, cut, proposal,
                sample, streams, deltas):
    """Thread ``t``'s part of a latent pass: :func:`latent_rows` over rows ``row_cuts[t] ..
    row_cuts[t + 1]`` from stream ``streams[t : t + 1]`` into ``deltas[t]``, then the
    barrier. Returns False if the region was aborted."""
    latent_rows(mode, code, y, pred, target, sw, cut, proposal, sample, streams[t: t + 1],
                row_cuts[t], row_cuts[t + 1], deltas[t])
    return barrier(ctrl, n_threads)


@jit
def latent_rows(mode, code, y, pred, target, sw, cut, proposal, sample, rng, start, stop,
                deltas):
    """One latent pass over rows ``start <= n < stop``: :data:`LATENT_DRAW` writes their
    targets (probit: :func:`probit_targets`; ordinal: drawn between the cutpoints ``cut``);
    :data:`LATENT_DELTAS_EVEN` / ``_ODD`` writes into ``deltas`` (n_cut,) these rows' share of
    the log acceptance ratios of the cutpoints of that parity moved to ``proposal``
    (:func:`fmlearn._kernels.ordinal.cutpoint_deltas`)."""
    if mode == LATENT_DRAW:
        # The stream's state in an array of this thread's own: the threads' states lie side
        # by side in one cache line, which a draw per row would pass to and fro.
        state = own_state(rng)
        if code == LATENT_PROBIT:
            probit_targets(y[start:stop], pred[start:stop], sample, state, target[start:stop])
        else:
            ordinal_latent_targets(y[start:stop], pred[start:stop], cut, state,
                                   target[start:stop])
        rng[0] = state[0]
    else:
        deltas[:] = cutpoint_deltas(y, pred, sw, cut, proposal, mode - LATENT_DELTAS_EVEN,
                                    start, stop)


# -- A sweep's row passes: residuals into and out of the rows' state ``R`` (see sweep_columns),
# fused so that the start and the end of a sweep read ``R`` once each. IEEE arithmetic (no
# fast-math reassociation): the distributed ALS (fmlearn.dask) does the same in numpy and
# agrees bit for bit with one worker. Sums over rows go in chunks of SUM_CHUNK rows counted
# from ``start``, each chunk in row order, then the chunks in order: the same sums whether
# one thread computed every chunk or several threads some each (cd.sweep_team).
SUM_CHUNK = 4096


@jit(fastmath=False)
def residual_sums(target, pred, sw, start, stop):
    """``(sum s e, sum s e^2)`` over rows ``start <= n < stop`` of ``e = target - pred``: the
    noise precision's and the bias's sums, before ``R`` is written."""
    s_e = 0.0
    s_ee = 0.0
    for c0 in range(start, stop, SUM_CHUNK):
        a = 0.0
        b = 0.0
        for n in range(c0, min(c0 + SUM_CHUNK, stop)):
            se = sw[n] * (target[n] - pred[n])
            a += se
            b += se * (target[n] - pred[n])
        s_e += a
        s_ee += b
    return s_e, s_ee


@jit(fastmath=False)
def chunk_totals(parts):
    """The column sums of ``parts`` (n_chunks, 3) (:func:`take_residuals`), chunk by chunk."""
    a = 0.0
    b = 0.0
    c = 0.0
    for i in range(parts.shape[0]):
        a += parts[i, 0]
        b += parts[i, 1]
        c += parts[i, 2]
    return a, b, c


@jit(fastmath=False)
def ordered_sum(x):
    """``x[0] + x[1] + ...`` from 0, in order (the chunks' sums: the same for any threads)."""
    acc = 0.0
    for i in range(x.shape[0]):
        acc += x[i]
    return acc


@jit(fastmath=False)
def set_residuals(target, pred, shift, R, start, stop):
    """``R[n, k] = (target[n] - pred[n]) - shift``: the residuals after the bias moved by
    ``shift``, for rows ``start <= n < stop``."""
    k = R.shape[1] - 2
    for n in range(start, stop):
        R[n, k] = (target[n] - pred[n]) - shift


@jit(fastmath=False)
def take_residuals(R, target, e, pred, start, stop, sw, parts, code, y, cut):
    """``e[n] = R[n, k]`` and the outputs ``pred[n] = target[n] - e[n]`` after a sweep (the next
    sweep's outputs unless it refreshes), for rows ``start <= n < stop`` (``start`` a multiple
    of ``SUM_CHUNK``); and for each chunk ``c`` of those rows, ``parts[c]`` = the next sweep's
    :func:`residual_sums` (while its targets stay these) and this sweep's loss over the chunk
    (:func:`latent_loss_of_row`): ``(sum s d,
    sum s d^2, loss)``, ``d = target - pred``."""
    k = R.shape[1] - 2
    for c0 in range(start, stop, SUM_CHUNK):
        a = 0.0
        b = 0.0
        c1 = min(c0 + SUM_CHUNK, stop)
        for n in range(c0, c1):
            en = R[n, k]
            e[n] = en
            p = target[n] - en
            pred[n] = p
            se = sw[n] * (target[n] - p)
            a += se
            b += se * (target[n] - p)
        c = c0 // SUM_CHUNK
        parts[c, 0] = a
        parts[c, 1] = b
        # Apart, over the chunk just written (in cache): in the loop above the loss's branches
        # changed how its sums compiled inside cd.sweep_team (the last bits of ``a``).
        parts[c, 2] = _chunk_loss(code, y, target, e, sw, cut, c0, c1)


@jit(fastmath=False)
def latent_loss_chunks(code, y, target, e, sw, cut, start, stop, out):
    """:func:`take_residuals`' loss alone: ``out[c]`` = the loss of chunk ``c`` of rows
    ``start <= n < stop`` (``start`` a multiple of ``SUM_CHUNK``) with residuals ``e`` and
    outputs ``target - e``; :func:`ordered_sum` adds them up as the sweep does."""
    for c0 in range(start, stop, SUM_CHUNK):
        c1 = min(c0 + SUM_CHUNK, stop)
        out[c0 // SUM_CHUNK] = _chunk_loss(code, y, target, e, sw, cut, c0, c1)


@jit(inline="always")
def _chunk_loss(code, y, target, e, sw, cut, c0, c1):
    """The sum of :func:`latent_loss_of_row` over rows ``c0 <= n < c1``, in order."""
    loss = 0.0
    for n in range(c0, c1):
        loss += latent_loss_of_row(code, y[n], target[n] - e[n], e[n], sw[n], cut)
    return loss


@jit(inline="always")
def latent_loss_of_row(code, y, p, e, s, cut):
    """Row loss of the coordinate solvers' model ``code`` at output ``p`` and residual ``e``:
    ``s e^2`` (regression), ``-s log Phi(y p)`` (probit, ``y`` +-1), ``-s log P(y | p)``
    (ordered probit, class ``y``, cutpoints ``cut``)."""
    if code == LATENT_SQUARED:
        return s * e * e
    if code == LATENT_PROBIT:
        return -s * _log_ndtr(y * p)
    return -s * math.log(ordinal_class_probability(int(y), p, cut))


@jit
def exclusive_runs(indptr, rows, n_rows, starts):
    """Split the columns into maximal runs of consecutive columns no two of which share a row.

    Writes each run's first column to ``starts`` (n_cols + 1,) and the end after the last;
    returns the number of runs. A one-hot field (all users, all items) is one run. Given the
    other parameters, the parameters of a run's columns are conditionally independent.
    """
    mark = np.full(n_rows, -1, dtype=np.int64)
    n_runs = 0
    for c in range(indptr.shape[0] - 1):
        clash = n_runs == 0
        for p in range(indptr[c], indptr[c + 1]):
            if mark[rows[p]] == n_runs - 1:
                clash = True
                break
        if clash:
            starts[n_runs] = c
            n_runs += 1
        for p in range(indptr[c], indptr[c + 1]):
            mark[rows[p]] = n_runs - 1
    starts[n_runs] = indptr.shape[0] - 1
    return n_runs


@jit
def group_moments(table, groups, sums, squares):
    """Per prior group ``g`` and column ``c`` of ``table`` (n_features, n_cols): ``sums[g, c]``
    and ``squares[g, c]``, the sum and the sum of squares of ``table[i, c]`` over the features
    ``i`` of the group; both (n_groups, n_cols). One pass for every hyper-parameter's sums.
    """
    sums[:, :] = 0.0
    squares[:, :] = 0.0
    for i in range(table.shape[0]):
        g = groups[i]
        for c in range(table.shape[1]):
            t = table[i, c]
            sums[g, c] += t
            squares[g, c] += t * t


@jit
def draw_hyper(table, groups, n_g, gamma_0, mu_0, alpha_l, beta_l, lam_w, lam_V, mu_w, mu_V,
               sums, squares, rng):
    """MCMC's draws of every prior group's means and precisions (Normal-Gamma hyper-priors,
    Freudenthaler et al. 2011), in one call: per group ``g`` and parameter column ``c`` (the
    ``k`` factors, then the linear weight), from the group's sum and sum of squares over its
    features,

        mu  ~ N((sum + gamma_0 mu_0) / (n_g + gamma_0), 1 / ((n_g + gamma_0) lam))
        lam ~ Gamma((alpha_l + n_g + 1) / 2, rate = (beta_l + sum (theta - mu)^2
                                                      + gamma_0 (mu - mu_0)^2) / 2)

    with ``lam`` the current precision in the mean's draw. Writes ``mu_w``/``lam_w``
    (n_groups,) and ``mu_V``/``lam_V`` (k, n_groups) (``lam_*`` in place); ``sums`` and
    ``squares`` (n_groups, k + 1) are scratch. A compiled call: the numpy version's dozen
    small operations cost 0.2 ms between two sweeps, whose data leave the caches cold."""
    group_moments(table, groups, sums, squares)
    k = mu_V.shape[0]
    for g in range(sums.shape[0]):
        n = n_g[g]
        for c in range(k + 1):
            lam = lam_w[g] if c == k else lam_V[c, g]
            s = sums[g, c]
            m = (s + gamma_0 * mu_0) / (n + gamma_0) + normal(rng) / math.sqrt(
                (n + gamma_0) * lam)
            dev = max(squares[g, c] - 2.0 * m * s + n * m * m, 0.0)  # sum (theta - m)^2
            rate = 0.5 * (beta_l + dev + gamma_0 * (m - mu_0) ** 2)
            lam = gamma(rng, 0.5 * (alpha_l + n + 1.0), 1.0 / rate)
            if c == k:
                mu_w[g], lam_w[g] = m, lam
            else:
                mu_V[c, g], lam_V[c, g] = m, lam


@jit
def factor_sums(indptr, indices, data, col0, table, f, start, stop, out):
    """``out[r] = sum_j table[col0 + j, f] * x_rj`` for CSR rows ``start <= r < stop``."""
    for r in range(start, stop):
        acc = 0.0
        for p in range(indptr[r], indptr[r + 1]):
            acc += table[col0 + indices[p], f] * data[p]
        out[r] = acc


@jit
def add_gathered(q, block_values, idx, start, stop):
    """``q[n] += block_values[idx[n]]`` for ``start <= n < stop``."""
    for n in range(start, stop):
        q[n] += block_values[idx[n]]


# ----------------------------------------------------------------------------- relation blocks
# A block's per-block-row aggregates sit side by side in one array ``A`` (n_block_rows, 8),
# columns C, Q1, Q2, E, EQ, DQ, B: a block feature's update reads and writes all of them for
# each of its rows, so one cache line per block row instead of seven.
C, Q1, Q2, E, EQ, DQ, B = 0, 1, 2, 3, 4, 5, 6


@jit
def block_linear_stats(idx, sw, e, A):
    """Per block row: ``c_r = sum s_n`` and ``E_r = sum s_n e_n`` (other columns zeroed)."""
    A[:] = 0.0
    for n in range(idx.shape[0]):
        r = idx[n]
        A[r, C] += sw[n]
        A[r, E] += sw[n] * e[n]


@jit
def block_update_linear(indptr, rows, vals, col0, A, table, wcol, alpha, mu, lam, groups,
                        sample, rng):
    """Update a block's linear weights from the aggregates; ``B_r`` collects ``e``'s change."""
    for col in range(indptr.shape[0] - 1):
        i = col0 + col
        g = groups[i]
        s_hh = 0.0
        s_he = 0.0
        for p in range(indptr[col], indptr[col + 1]):
            r = rows[p]
            a = vals[p]
            s_hh += a * a * A[r, C]
            s_he += a * A[r, E]
        old = table[i, wcol]
        new = _draw(old, s_hh, s_he, alpha, mu[g], lam[g], sample, rng)
        table[i, wcol] = new
        d = new - old
        for p in range(indptr[col], indptr[col + 1]):
            r = rows[p]
            da = d * vals[p]
            A[r, E] -= da * A[r, C]
            A[r, B] += da


@jit
def block_apply_linear(idx, e, A):
    """``e_n -= B[idx[n]]``: the block's linear updates reach the data rows."""
    for n in range(idx.shape[0]):
        e[n] -= A[idx[n], B]


@jit
def block_factor_stats(idx, sw, e, q, A):
    """Per block row: ``c, Q1, Q2, E, EQ`` of the module docstring (``DQ``, ``B`` zeroed)."""
    A[:] = 0.0
    for n in range(idx.shape[0]):
        r = idx[n]
        s = sw[n]
        qn = q[n]
        sq = s * qn
        A[r, C] += s
        A[r, Q1] += sq
        A[r, Q2] += sq * qn
        A[r, E] += s * e[n]
        A[r, EQ] += sq * e[n]


@jit
def block_update_factor(indptr, rows, vals, col0, f, A, table, alpha, mu, lam, groups, sample,
                        rng):
    """Update factor ``f`` of a block's columns from the per-block-row aggregates ``A``.

    After each column, the aggregates of the block rows it occurs in are brought up to date
    (exactly: the FM is multilinear), and ``DQ``/``B`` accumulate the change that
    :func:`block_apply_factor` then applies to the data rows.
    """
    for col in range(indptr.shape[0] - 1):
        i = col0 + col
        g = groups[i]
        v = table[i, f]
        s_hh = 0.0
        s_he = 0.0
        for p in range(indptr[col], indptr[col + 1]):
            r = rows[p]
            a = vals[p]
            va = v * a
            # sum over the rows n of r of s_n h_n^2 and s_n h_n e_n, h_n = a (q_n - v a)
            s_hh += a * a * (A[r, Q2] - 2.0 * va * A[r, Q1] + va * va * A[r, C])
            s_he += a * (A[r, EQ] - va * A[r, E])
        new = _draw(v, s_hh, s_he, alpha, mu[g], lam[g], sample, rng)
        table[i, f] = new
        d = new - v
        for p in range(indptr[col], indptr[col + 1]):
            r = rows[p]
            a = vals[p]
            va = v * a
            da = d * a
            c, q1, q2, er = A[r, C], A[r, Q1], A[r, Q2], A[r, E]
            G1 = a * (q1 - va * c)  # sum s_n h_n
            GQ = a * (q2 - va * q1)  # sum s_n h_n q_n
            A[r, EQ] += da * er - d * GQ - d * da * G1
            A[r, E] = er - d * G1
            A[r, Q2] = q2 + 2.0 * da * q1 + da * da * c
            A[r, Q1] = q1 + da * c
            A[r, B] += da * (A[r, DQ] - va)
            A[r, DQ] += da


@jit
def block_apply_factor(idx, e, q, A):
    """Apply a block's factor updates to the data rows' ``e`` and ``q``."""
    for n in range(idx.shape[0]):
        r = idx[n]
        e[n] -= A[r, DQ] * q[n] + A[r, B]
        q[n] += A[r, DQ]


# A block swept whole (the feature-major sweep): one pass over the data rows gathers, per block
# row, every factor's aggregates and the cross moments M_gf = sum s_n q_ng q_nf (g < f), from
# which each factor's EQ is brought up to date after the earlier factors' updates; one more
# pass applies all the changes. Columns of ``P`` (n_block_rows, 2 + 3k + k(k-1)/2): C, E, then
# per factor Q1, Q2, EQ, then the M_gf at ``_moment(g, f, k)``.
@jit(inline="always")
def _moment(g, f, k):
    return 2 + 3 * k + f * (f - 1) // 2 + g


# Data rows of one block row gathered at a time by block_stats_all.
STATS_BATCH = 256


@jit
def block_stats_all(idx, order, R, P, start, stop):
    """``P``'s aggregates of every block row from the sums, residuals and weights ``R``
    (n_rows, k + 2) (as in :func:`sweep_columns`) of data rows ``order[start:stop]``.

    ``order`` lists the data rows by block row (a stable argsort of ``idx``). A block row's
    data rows are gathered, up to ``STATS_BATCH`` at a time, into feature-major buffers, and
    each aggregate is then one dot product over them, summed in registers (it vectorizes).
    Accumulated row by row into ``P``, each data row was a read-modify-write of its block
    row's 2 + 3k + k(k - 1)/2 values: about 3x the time on MovieLens' relation blocks.
    """
    k = R.shape[1] - 2
    width = R.shape[1]
    P[:, :] = 0.0
    Q = np.empty((k, STATS_BATCH))  # q_f of the gathered rows
    SQ = np.empty((k, STATS_BATCH))  # s q_f
    se = np.empty((2, STATS_BATCH))  # s, e
    j = start
    while j < stop:
        r = idx[order[j]]
        m = 0
        while j < stop and m < STATS_BATCH and idx[order[j]] == r:
            n = order[j]
            if j + PREFETCH < stop:
                ahead = order[j + PREFETCH] * width
                prefetch(R, ahead)
                prefetch(R, ahead + width - 1)
            s = R[n, k + 1]
            se[0, m] = s
            se[1, m] = R[n, k]
            for f in range(k):
                q = R[n, f]
                Q[f, m] = q
                SQ[f, m] = s * q
            m += 1
            j += 1
        P[r, 0] += _batch_sum(se, 0, m)
        P[r, 1] += _batch_dot(se, 0, se, 1, m)
        for f in range(k):
            P[r, 2 + 3 * f] += _batch_sum(SQ, f, m)
            P[r, 3 + 3 * f] += _batch_dot(SQ, f, Q, f, m)
            P[r, 4 + 3 * f] += _batch_dot(SQ, f, se, 1, m)
            base = 2 + 3 * k + f * (f - 1) // 2
            for g in range(f):
                P[r, base + g] += _batch_dot(SQ, f, Q, g, m)


@jit(inline="always")
def _batch_sum(A, a, m):
    t = 0.0
    for i in range(m):
        t += A[a, i]
    return t


@jit(inline="always")
def _batch_dot(A, a, B, b, m):
    t = 0.0
    for i in range(m):
        t += A[a, i] * B[b, i]
    return t


@jit
def block_start_factor(P, A, f, DQs, Bs, Blin):
    """Factor ``f``'s aggregates in ``A`` (C and E are kept current in ``A`` from the previous
    updates): Q1 and Q2 as gathered (``q_f`` has not changed yet), EQ less the residual changes
    of the linear update (``Blin``) and of factors ``g < f`` (``DQs``/``Bs`` (n_block_rows,
    k))."""
    k = DQs.shape[1]
    for r in range(A.shape[0]):
        q1 = P[r, 2 + 3 * f]
        eq = P[r, 4 + 3 * f] - Blin[r] * q1
        for g in range(f):
            eq -= DQs[r, g] * P[r, _moment(g, f, k)] + Bs[r, g] * q1
        A[r, Q1] = q1
        A[r, Q2] = P[r, 3 + 3 * f]
        A[r, EQ] = eq
        A[r, DQ] = 0.0
        A[r, B] = 0.0


@jit
def block_apply_all(idx, R, DQs, Bs, Blin, start, stop):
    """Every update of the block reaches data rows ``start <= n < stop``: ``e_n -= Blin +
    sum_f (DQ_f q_nf + B_f)`` (the factor sums before the changes), ``q_nf += DQ_f``."""
    k = DQs.shape[1]
    for n in range(start, stop):
        r = idx[n]
        de = Blin[r]
        for f in range(k):
            de += DQs[r, f] * R[n, f] + Bs[r, f]
            R[n, f] += DQs[r, f]
        R[n, k] -= de


# ----------------------------------------------------------------------------- probit targets
@jit
def probit_targets(y, pred, sample, rng, out):
    """Latent targets of the probit model for labels ``y`` in {-1, +1}.

    MCMC draws ``z_n ~ N(pred_n, 1)`` truncated to the side of zero its label says (Albert and
    Chib 1993); ALS takes the mean of that truncated normal (an EM step).
    """
    for n in range(y.shape[0]):
        m = pred[n]
        if y[n] > 0:
            t = normal_above(rng, -m) if sample else mean_above(-m)
            out[n] = m + t
        else:
            t = normal_above(rng, m) if sample else mean_above(m)
            out[n] = m - t


_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


@jit(inline="always")
def _log_ndtr(x):
    """``log Phi(x)``, accurate in both tails."""
    if x > 0.0:
        return math.log1p(-0.5 * math.erfc(x / math.sqrt(2.0)))  # log(1 - Phi(-x))
    if x > -30.0:
        return math.log(0.5 * math.erfc(-x / math.sqrt(2.0)))
    # erfc underflows: the asymptotic series of log Phi, exact to double precision.
    z = 1.0 / (x * x)
    series = z * (-1.0 + z * (3.0 + z * (-15.0 + 105.0 * z)))
    return -0.5 * x * x - math.log(-x) - _LOG_SQRT_2PI + math.log1p(series)


# -- Distributed ALS (fmlearn.dask): a coordinate update split into its sums, its new value and
# its application, so that the sums of a block of columns sharing no row can be added up over
# workers before the values are set. They run the local sweep's own helpers (feature-major:
# _gather, _linear_sums, ...; factor-major: _linear_col_sums, ...), so that one worker holding
# every row reproduces the local sweep bit for bit. Columns are the model's (col0 = 0).

@jit
def columns_sums(indptr, rows, vals, c0, c1, R, table, f, S, out):
    """``out[c - c0] = (sum s h^2, sum s h e)`` of parameter ``table[c, f]`` of columns
    ``c0 <= c < c1``, from the rows' sums and residuals ``R`` (n_rows, k + 2) as in
    :func:`sweep_columns` (``S`` its scratch); ``f == k`` is the linear weight. ``out``
    float64 (c1 - c0, 2)."""
    k = R.shape[1] - 2
    for c in range(c0, c1):
        p0 = indptr[c]
        m = indptr[c + 1] - p0
        _gather(rows, vals, p0, m, R, S)
        if f == k:
            s_hh, s_he = _linear_sums(S, 0, m, k)
        else:
            s_hh, s_he = _factor_sums(S, 0, m, k, f, table[c, f])
        out[c - c0, 0] = s_hh
        out[c - c0, 1] = s_he


@jit
def columns_apply(indptr, rows, vals, c0, c1, R, table, f, new, S):
    """Set ``table[c, f]`` to ``new[c - c0]`` for ``c0 <= c < c1`` and bring ``R``'s residuals
    (and factor sums) up to date, as :func:`sweep_columns`; ``f == k`` is the linear weight."""
    k = R.shape[1] - 2
    for c in range(c0, c1):
        p0 = indptr[c]
        m = indptr[c + 1] - p0
        _gather(rows, vals, p0, m, R, S)
        old = table[c, f]
        table[c, f] = new[c - c0]
        if f == k:
            _linear_apply(S, 0, m, k, new[c - c0] - old)
        else:
            _factor_apply(S, 0, m, k, f, old, new[c - c0] - old)
        _scatter(rows, p0, m, R, S)


# -- A run split by rows (a few heavy columns: side features): factor by factor over the run's
# columns, each thread on its own rows. Columns of a run are conditionally independent, so
# visiting them factor by factor draws from the same conditionals as column by column.
@jit
def run_step(indptr, rows, vals, c0, c1, R, S, f_prev, old, new, table, f, out):
    """One step of a run's parameter-by-parameter sweep, on the rows that ``indptr``/``rows``/
    ``vals`` hold (a CSC of a block of the data rows, the model's column numbers). The run's
    entries stay gathered in ``S`` (k + 3, at least their number) from the first step
    (``f_prev < 0``: gather) to the last (``f < 0``: scatter back to ``R``), so each
    parameter's step is contiguous loops over them, as :func:`sweep_columns`' per column:
    for each column ``c0 <= c < c1``, parameter ``f_prev`` changed from ``old[c - c0]`` to
    ``new[c - c0]`` reaches the rows' residuals and sums, then ``out[c - c0]`` gets the sums
    ``(sum s h^2, sum s h e)`` of parameter ``f`` over these rows. ``k`` is the linear
    weight."""
    k = R.shape[1] - 2
    p0 = indptr[c0]
    m = indptr[c1] - p0
    if f_prev < 0:
        _gather(rows, vals, p0, m, R, S)
    for c in range(c0, c1):
        j0 = indptr[c] - p0
        j1 = indptr[c + 1] - p0
        if f_prev >= 0:
            d = new[c - c0] - old[c - c0]
            if f_prev == k:
                _linear_apply(S, j0, j1, k, d)
            else:
                _factor_apply(S, j0, j1, k, f_prev, old[c - c0], d)
        if f >= 0:
            if f == k:
                s_hh, s_he = _linear_sums(S, j0, j1, k)
            else:
                s_hh, s_he = _factor_sums(S, j0, j1, k, f, table[c, f])
            out[c - c0, 0] = s_hh
            out[c - c0, 1] = s_he
    if f < 0:
        _scatter(rows, p0, m, R, S)


@jit
def run_values(table, c0, c1, col, sums, alpha, mu, lam, groups, sample, rng, out):
    """New values of ``table[c, col]``, ``c0 <= c < c1``, from their summed ``sums``
    (c1 - c0, 2) and each column's prior group (``mu``/``lam`` (n_groups,)), by
    :func:`_draw` in column order."""
    for c in range(c0, c1):
        g = groups[c]
        out[c - c0] = _draw(table[c, col], sums[c - c0, 0], sums[c - c0, 1], alpha, mu[g],
                            lam[g], sample, rng)


@jit
def linear_block_sums(indptr, rows, vals, start, stop, e, sw, out):
    """Factor-major (:func:`update_linear`): ``out[c - start] = (sum s h^2, sum s h e)`` of the
    linear weight of columns ``start <= c < stop``; ``out`` float64 (stop - start, 2)."""
    for c in range(start, stop):
        s_hh, s_he = _linear_col_sums(indptr, rows, vals, c, e, sw)
        out[c - start, 0] = s_hh
        out[c - start, 1] = s_he


@jit
def factor_block_sums(indptr, rows, vals, start, stop, f, e, q, sw, table, out):
    """As :func:`linear_block_sums` for factor ``f`` (:func:`update_factor`)."""
    for c in range(start, stop):
        s_hh, s_he = _factor_col_sums(indptr, rows, vals, c, table[c, f], e, q, sw)
        out[c - start, 0] = s_hh
        out[c - start, 1] = s_he


@jit
def block_values(theta, sums, alpha, mu, lam, sample, rng, out):
    """New values of parameters ``theta`` from their summed ``sums`` (n, 2), by :func:`_draw`
    (ALS: ``alpha`` 1, ``mu`` 0, ``lam`` the L2 strength, ``sample`` False; ``rng`` a
    :mod:`fmlearn._kernels.rng` state)."""
    for c in range(theta.shape[0]):
        out[c] = _draw(theta[c], sums[c, 0], sums[c, 1], alpha, mu, lam, sample, rng)


@jit
def apply_linear_block(indptr, rows, vals, start, stop, e, table, wcol, new):
    """Factor-major: set the linear weights of columns ``start:stop`` to ``new``; update
    ``e``."""
    for c in range(start, stop):
        old = table[c, wcol]
        table[c, wcol] = new[c - start]
        _linear_col_apply(indptr, rows, vals, c, e, new[c - start] - old)


@jit
def apply_factor_block(indptr, rows, vals, start, stop, f, e, q, table, new):
    """Factor-major: set factor ``f`` of columns ``start:stop`` to ``new``; update ``e`` and
    ``q``."""
    for c in range(start, stop):
        v = table[c, f]
        table[c, f] = new[c - start]
        _factor_col_apply(indptr, rows, vals, c, v, new[c - start] - v, e, q)
