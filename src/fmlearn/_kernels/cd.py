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

from fmlearn._kernels._jit import jit
from fmlearn._kernels.rng import mean_above, normal, normal_above


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


@jit
def update_linear(indptr, rows, vals, col0, e, sw, table, wcol, alpha, mu, lam, groups, sample,
                  rng):
    """Update the linear weights of columns ``col0 .. col0 + n_cols`` of the model."""
    for c in range(indptr.shape[0] - 1):
        i = col0 + c
        g = groups[i]
        s_hh = 0.0
        s_he = 0.0
        for p in range(indptr[c], indptr[c + 1]):
            n = rows[p]
            h = vals[p]
            sh = sw[n] * h
            s_hh += sh * h
            s_he += sh * e[n]
        old = table[i, wcol]
        new = _draw(old, s_hh, s_he, alpha, mu[g], lam[g], sample, rng)
        table[i, wcol] = new
        d = new - old
        for p in range(indptr[c], indptr[c + 1]):
            e[rows[p]] -= d * vals[p]


@jit
def update_factor(indptr, rows, vals, col0, f, e, q, sw, table, alpha, mu, lam, groups, sample,
                  rng):
    """Update factor ``f`` of columns ``col0 ..``, keeping ``e`` and ``q`` (= q_.f) current."""
    for c in range(indptr.shape[0] - 1):
        i = col0 + c
        g = groups[i]
        v = table[i, f]
        s_hh = 0.0
        s_he = 0.0
        for p in range(indptr[c], indptr[c + 1]):
            n = rows[p]
            x = vals[p]
            h = x * (q[n] - v * x)
            sh = sw[n] * h
            s_hh += sh * h
            s_he += sh * e[n]
        new = _draw(v, s_hh, s_he, alpha, mu[g], lam[g], sample, rng)
        table[i, f] = new
        d = new - v
        for p in range(indptr[c], indptr[c + 1]):
            n = rows[p]
            x = vals[p]
            e[n] -= d * x * (q[n] - v * x)
            q[n] += d * x


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


# -- Distributed ALS (fmlearn.dask): a coordinate update split into its sums, its new value and
# its application, so that the sums of a block of columns sharing no row can be added up over
# workers before the values are set. The loops are update_linear's and update_factor's, term
# for term, so that one worker holding every row reproduces them exactly.

@jit
def linear_block_sums(indptr, rows, vals, start, stop, e, sw, out):
    """``out[c - start] = (sum s h^2, sum s h e)`` of the linear weight of CSC columns
    ``start <= c < stop`` (``h = x``); ``out`` float64 (stop - start, 2)."""
    for c in range(start, stop):
        s_hh = 0.0
        s_he = 0.0
        for p in range(indptr[c], indptr[c + 1]):
            n = rows[p]
            h = vals[p]
            sh = sw[n] * h
            s_hh += sh * h
            s_he += sh * e[n]
        out[c - start, 0] = s_hh
        out[c - start, 1] = s_he


@jit
def factor_block_sums(indptr, rows, vals, start, stop, f, e, q, sw, table, out):
    """As :func:`linear_block_sums` for factor ``f`` (``h = x (q - v x)``)."""
    for c in range(start, stop):
        v = table[c, f]
        s_hh = 0.0
        s_he = 0.0
        for p in range(indptr[c], indptr[c + 1]):
            n = rows[p]
            x = vals[p]
            h = x * (q[n] - v * x)
            sh = sw[n] * h
            s_hh += sh * h
            s_he += sh * e[n]
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
    """Set the linear weights of columns ``start:stop`` to ``new`` and update ``e``."""
    for c in range(start, stop):
        old = table[c, wcol]
        value = new[c - start]
        table[c, wcol] = value
        d = value - old
        for p in range(indptr[c], indptr[c + 1]):
            e[rows[p]] -= d * vals[p]


@jit
def apply_factor_block(indptr, rows, vals, start, stop, f, e, q, table, new):
    """Set factor ``f`` of columns ``start:stop`` to ``new``; update ``e`` and ``q``."""
    for c in range(start, stop):
        v = table[c, f]
        value = new[c - start]
        table[c, f] = value
        d = value - v
        for p in range(indptr[c], indptr[c + 1]):
            n = rows[p]
            x = vals[p]
            e[n] -= d * x * (q[n] - v * x)
            q[n] += d * x
