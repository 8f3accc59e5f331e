"""Pairwise ranking epochs (BPR, WARP) and score parts for an FM over [query | candidate] rows.

The FM of a (query, candidate) pair is the FM of the concatenated row ``x = [x_q | x_c]``. With
``S_q = sum_{i in q} v_i x_i`` and ``S_c`` likewise it splits into three parts::

    f(q, c) = [w0 + fm_q] + [fm_c] + <S_q, S_c>

where ``fm_q = sum_{i in q} w_i x_i + sum_{i<j in q} <v_i, v_j> x_i x_j`` (the FM of the query
row alone, without bias) and ``fm_c`` likewise. Query and candidate features are disjoint
columns of one parameter table (candidate indices arrive already shifted past the query
features), so :func:`fmlearn._kernels.fm.fm_row` gives both parts and their factor sums.

A pairwise loss sees only ``d = f(q, i) - f(q, j)`` for a positive ``i`` and a negative ``j``
of the same query, and the query part cancels::

    d = fm_i - fm_j + <S_q, S_i - S_j>

so ``w0`` and the query's linear weights get no gradient (they stay at 0 and do not affect any
ranking), the query factors move along ``S_i - S_j``, and a candidate feature ``b`` present
with value ``xi`` in ``i`` and ``xj`` in ``j`` (0 when absent) gets::

    dd/dw_b = xi - xj
    dd/dv_b = xi (S_q + S_i - v_b xi) - xj (S_q + S_j - v_b xj)

Candidate rows are merged on their sorted indices so that a feature in both rows (a shared
genre, say) takes one step with its summed gradient. Every gradient of a step is taken at the
parameters before the step.

Losses (``g`` below is the derivative with respect to ``d``, times the positive's weight):

- BPR (Rendle et al. 2009): ``log(1 + exp(-d))``, one sampled negative per positive.
- WARP (Weston et al. 2011, as in LightFM): negatives are sampled until one violates the
  margin, ``d < 1``, or ``max_sampled`` draws are spent; after ``N`` draws the rank of the
  positive is estimated as ``floor((n_candidates - 1) / N)`` and the hinge ``1 - d`` is
  weighted by ``log(max(1, that))``.

Negatives are drawn uniformly over the candidates, or in proportion to their popularity (a
uniform draw from the candidates of all training positives). Draws that are positives of the
query (``pos_indptr``/``pos_indices``, a CSR with sorted candidates per query) are rejected;
for WARP they count as draws, as in LightFM.

Random numbers come from :mod:`fmlearn._kernels.rng` (SplitMix64), one stream per call seeded by
the caller, so one thread's epoch is reproducible and Hogwild threads get independent streams.
"""

import math

import numpy as np

from fmlearn._kernels._jit import jit
from fmlearn._kernels.fm import fm_row
from fmlearn._kernels.losses import LOGISTIC, loss_gradient, loss_value
from fmlearn._kernels.rng import next_u64
from fmlearn._kernels.updates import by_code, coord_step, typed_args

BPR = 0
WARP = 1
UNIFORM = 0
POPULARITY = 1

_TO_UNIT = 1.0 / 9007199254740992.0  # 2^-53


@jit(inline="always")
def rand_below(state, n):
    """A uniform integer in ``[0, n)`` from the SplitMix64 stream ``state`` (uint64 (1,))."""
    r = np.int64(np.float64(next_u64(state) >> np.uint64(11)) * _TO_UNIT * n)
    return r if r < n else n - 1


@jit(inline="always")
def is_positive(pos_indptr, pos_indices, q, c):
    """Whether candidate ``c`` is among query ``q``'s sorted positives."""
    lo = pos_indptr[q]
    hi = pos_indptr[q + 1]
    while lo < hi:
        mid = (lo + hi) >> 1
        if pos_indices[mid] < c:
            lo = mid + 1
        else:
            hi = mid
    return lo < pos_indptr[q + 1] and pos_indices[lo] == c


@jit(inline="always")
def draw_candidate(state, sampling, n_candidates, popular):
    """A negative candidate: uniform, or a uniform draw from ``popular`` (popularity)."""
    if sampling == POPULARITY:
        return popular[rand_below(state, popular.shape[0])]
    return rand_below(state, n_candidates)


@jit
def draw_negatives(queries, pos_indptr, pos_indices, popular, n_candidates, n_draws, sampling,
                   state, out, usable):
    """``n_draws`` negatives per query, drawn as :func:`rank_epoch` draws them.

    For the rankers that score outside numba (:mod:`fmlearn.deep.ranking`): ``out[r, t]`` is
    the ``t``-th draw for query ``queries[r]`` (int64 (B,)) and ``usable[r, t]`` whether it is
    not a positive of that query. ``out`` (B, n_draws) int64 and ``usable`` (B, n_draws) bool
    are filled in place; ``state`` (uint64 (1,)) is the SplitMix64 stream, advanced.
    """
    for r in range(queries.shape[0]):
        q = queries[r]
        for t in range(n_draws):
            c = draw_candidate(state, sampling, n_candidates, popular)
            out[r, t] = c
            usable[r, t] = not is_positive(pos_indptr, pos_indices, q, c)


@jit(inline="always")
def factor_step(table, i, k, a, P, b, Q, c, code, lr, l2):
    """One step of rule ``code`` on ``v_i = table[i, :k]`` with loss gradient ``a P + b Q + c v_i``.

    ``P``, ``Q`` are (k,) vectors; the scalars are in the table's dtype, ``l2`` the L2 strength
    (see :mod:`fmlearn._kernels.updates`; the solver state is at ``table[i, (k + 1) (1 + j) + f]``).
    ``code`` is a literal, so the loop is branch-free and vectorizes.
    """
    zero = table.dtype.type(0.0)
    for f in range(k):
        coord_step(table, i, f, k + 1, code, a * P[f] + b * Q[f] + c * table[i, f], lr, zero, l2)


@jit(inline="always")
def pair_step(
    q_indptr, q_indices, q_data, c_indptr, c_indices, c_data, q, i, j, g, table, k,
    s_q, s_i, s_j, p_i, p_j, code, hpT, fit_linear,
):
    """One gradient step of ``g * d`` with ``d = f(q, i) - f(q, j)``; see the module text.

    ``s_q``, ``s_i``, ``s_j`` hold the factor sums of the query and the two candidate rows
    (from ``fm_row``); ``p_i``, ``p_j`` are (k,) scratch. ``hpT``: the hyper-parameters in the
    table's dtype (:func:`fmlearn._kernels.updates.typed_args`); ``g`` is a float64.
    """
    T = table.dtype.type
    lr, l1_w, l2_w, l2_V = hpT
    gT = T(g)
    zero = T(0.0)
    for f in range(k):
        p_i[f] = s_q[f] + s_i[f]
        p_j[f] = s_q[f] + s_j[f]
    # Query features: only their factors, along S_i - S_j.
    for p in range(q_indptr[q], q_indptr[q + 1]):
        a = q_indices[p]
        gx = gT * T(q_data[p])
        factor_step(table, a, k, gx, s_i, -gx, s_j, zero, code, lr, l2_V)
    # Candidate features: a merge of the two sorted rows.
    pa, ea = c_indptr[i], c_indptr[i + 1]
    pb, eb = c_indptr[j], c_indptr[j + 1]
    while pa < ea or pb < eb:
        fa = c_indices[pa] if pa < ea else -1
        fb = c_indices[pb] if pb < eb else -1
        xi = T(0.0)
        xj = T(0.0)
        if fb < 0 or (fa >= 0 and fa <= fb):
            b = fa
            xi = T(c_data[pa])
            pa += 1
            if fb == fa:
                xj = T(c_data[pb])
                pb += 1
        else:
            b = fb
            xj = T(c_data[pb])
            pb += 1
        if fit_linear:
            coord_step(table, b, k, k + 1, code, gT * (xi - xj), lr, l1_w, l2_w)
        factor_step(table, b, k, gT * xi, p_i, -gT * xj, p_j, -gT * (xi * xi - xj * xj), code,
                    lr, l2_V)


@jit(inline="always")
def warp_weight(n_candidates, n_drawn):
    """LightFM's WARP rank weight after ``n_drawn`` draws: log(max(1, floor((n - 1) / N)))."""
    return math.log(max(1.0, math.floor((n_candidates - 1) / n_drawn)))


def _make_epoch(OPT):
    """The epoch kernel for optimizer code ``OPT`` (see :mod:`fmlearn._kernels.updates`), a
    closure over the int as numba's cache wants."""

    @jit
    def rank_epoch(
        q_indptr, q_indices, q_data, c_indptr, c_indices, c_data,
        pos_q, pos_c, sample_weight, order, pos_indptr, pos_indices, popular,
        table, k, seed, sampling, max_sampled, loss, hp, fit_linear,
    ):
        """One pass; see :func:`rank_epoch` (the dispatcher)."""
        T = table.dtype.type
        hpT = typed_args(T, hp)
        n_candidates = c_indptr.shape[0] - 1
        zero = np.zeros(1, dtype=table.dtype)
        s_q = np.empty(k, dtype=table.dtype)
        s_i = np.empty(k, dtype=table.dtype)
        s_j = np.empty(k, dtype=table.dtype)
        s_t = np.empty(k, dtype=table.dtype)
        p_i = np.empty(k, dtype=table.dtype)
        p_j = np.empty(k, dtype=table.dtype)
        state = np.full(1, seed, dtype=np.uint64)
        total = 0.0
        for t in range(order.shape[0]):
            row = order[t]
            q = pos_q[row]
            i = pos_c[row]
            sw = sample_weight[row]
            # Scores without the query's own part, which cancels in every difference.
            fm_row(q_indptr, q_indices, q_data, q, zero, table, k, s_q)
            f_i = fm_row(c_indptr, c_indices, c_data, i, zero, table, k, s_i)
            for f in range(k):
                f_i += s_q[f] * s_i[f]
            j = -1
            g = 0.0
            if loss == BPR:
                for _ in range(max_sampled):
                    c = draw_candidate(state, sampling, n_candidates, popular)
                    if not is_positive(pos_indptr, pos_indices, q, c):
                        j = c
                        break
                if j >= 0:
                    f_j = fm_row(c_indptr, c_indices, c_data, j, zero, table, k, s_j)
                    for f in range(k):
                        f_j += s_q[f] * s_j[f]
                    total += sw * loss_value(LOGISTIC, 1.0, f_i - f_j)
                    g = sw * loss_gradient(LOGISTIC, 1.0, f_i - f_j)
            else:
                for n_drawn in range(1, max_sampled + 1):
                    c = draw_candidate(state, sampling, n_candidates, popular)
                    f_c = fm_row(c_indptr, c_indices, c_data, c, zero, table, k, s_t)
                    for f in range(k):
                        f_c += s_q[f] * s_t[f]
                    if f_c > f_i - 1.0 and not is_positive(pos_indptr, pos_indices, q, c):
                        j = c
                        for f in range(k):
                            s_j[f] = s_t[f]
                        weight = sw * warp_weight(n_candidates, n_drawn)
                        total += weight * (1.0 - f_i + f_c)
                        g = -weight
                        break
            if j >= 0 and g != 0.0:
                pair_step(
                    q_indptr, q_indices, q_data, c_indptr, c_indices, c_data, q, i, j, g,
                    table, k, s_q, s_i, s_j, p_i, p_j, OPT, hpT, fit_linear,
                )
        return total

    return rank_epoch


_epoch = by_code(_make_epoch)


def rank_epoch(
    q_indptr, q_indices, q_data, c_indptr, c_indices, c_data,
    pos_q, pos_c, sample_weight, order, pos_indptr, pos_indices, popular,
    table, k, seed, sampling, max_sampled, loss, code, hp, fit_intercept, fit_linear,
):
    """One pass of BPR or WARP over the positives ``order`` (int64 ids); returns the loss sum.

    Positive ``t`` is query row ``pos_q[t]`` of the query CSR and candidate row ``pos_c[t]``
    of the candidate CSR (whose indices are already offset past the query features), with
    weight ``sample_weight[t]``. ``table`` (n_features, stride) is updated in place, with the
    solver state of optimizer ``code`` after the parameters (see
    :mod:`fmlearn._kernels.updates`). ``seed`` (uint64) starts the random stream of
    negatives. ``sampling`` and ``loss`` are the codes above; ``code`` and ``hp`` (the
    solver's ``kernel_args``) as in :func:`fmlearn._kernels.sgd.sgd_epoch` (``fit_intercept``
    is ignored: no pairwise loss moves ``w0``). The
    returned sum is, per positive before its step, the weighted BPR loss, or WARP's weighted
    rank-weighted hinge (0 when no draw violated the margin).
    """
    return _epoch(code)(
        q_indptr, q_indices, q_data, c_indptr, c_indices, c_data,
        pos_q, pos_c, sample_weight, order, pos_indptr, pos_indices, popular,
        table, k, seed, sampling, max_sampled, loss, hp, fit_linear,
    )


@jit
def row_parts(indptr, indices, data, w0, table, k, const, sums):
    """Per row: ``const[r]`` = w0 + its FM alone, ``sums[r]`` = its factor sums ``S`` (k,).

    ``table`` holds the rows' features at the indices used (e.g. a query or candidate block
    of a model's table). Rows are independent: callers parallelize over ``indptr`` slices.
    """
    s = np.empty(k, dtype=np.float64)
    for r in range(const.shape[0]):
        const[r] = fm_row(indptr, indices, data, r, w0, table, k, s)
        for f in range(k):
            sums[r, f] = s[f]
