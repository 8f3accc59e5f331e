"""Ordinal regression with an FM score: cumulative link models.

Classes ``0 .. C-1`` are ordered; with increasing cutpoints ``theta`` (C - 1,) and the FM
score ``f(x)`` (no bias: the cutpoints play its part),

    P(y <= c | x) = F(theta_c - f(x)),  so  P(y = c | x) = F(theta_c - f) - F(theta_{c-1} - f)

with ``theta_{-1} = -inf`` and ``theta_{C-1} = +inf``. SGD fits the logistic ``F``
(proportional odds); MCMC the probit ``F`` (ordered probit, Albert and Chib 1993), whose
latent ``z ~ N(f, 1)`` falls between the cutpoints of its class.
"""

import math

import numpy as np

from fmlearn._kernels._jit import jit
from fmlearn._kernels.fm import row_sums
from fmlearn._kernels.hogwild import NO_HOT
from fmlearn._kernels.intrinsics import _eaddr, _ld
from fmlearn._kernels.rng import interval_probability, ndtr, normal, normal_between, uniform
from fmlearn._kernels.sgd import fm_step, prefetch_row
from fmlearn._kernels.updates import addr_step, by_code, typed_args

_FLOOR = 1e-300  # probabilities below this count as this, so that log stays finite


@jit(inline="always")
def _sigmoid(t):
    if t >= 0.0:
        return 1.0 / (1.0 + math.exp(-t))
    e = math.exp(t)
    return e / (1.0 + e)


def _make_epoch(OPT):
    """The SGD epoch kernel for optimizer code ``OPT`` (see :mod:`fmlearn._kernels.updates`),
    a closure over the int as numba's cache wants."""

    @jit
    def sgd_epoch(indptr, indices, data, y, sample_weight, order, table, k, cut, cut_state,
                  hp, fit_linear, reg_scale):
        """One pass; see :func:`sgd_epoch` (the dispatcher)."""
        T = table.dtype.type
        lr = hp[0]
        hpT = typed_args(T, hp)
        stride = table.shape[1]
        tab0 = _eaddr(table)
        c0, s0 = _eaddr(cut), _eaddr(cut_state)
        sums = np.empty(2 * k, dtype=table.dtype)
        n_cut = cut.shape[0]
        total = 0.0
        stop = order.shape[0]
        for t in range(stop):
            prefetch_row(indptr, indices, data, y, sample_weight, order, t, stop, table)
            row = _ld(order, t)
            start, end = _ld(indptr, row), _ld(indptr, row + 1)
            f = row_sums(indices, data, start, end, T, 0, k, tab0, stride, NO_HOT, sums)
            c = int(_ld(y, row))
            sw = _ld(sample_weight, row)
            upper = _sigmoid(cut[c] - f) if c < n_cut else 1.0
            lower = _sigmoid(cut[c - 1] - f) if c > 0 else 0.0
            p = max(upper - lower, _FLOOR)
            total -= sw * math.log(p)
            du = upper * (1.0 - upper)
            dl = lower * (1.0 - lower)
            # d(-log p)/d theta_c = -du / p, / d theta_{c-1} = dl / p, / d f = (du - dl) / p.
            # Each cutpoint takes its optimizer step, then is kept inside its neighbours.
            if c < n_cut:
                addr_step(np.float64, np.float64, np.float64, OPT, c0 + c, s0 + c, n_cut,
                          -sw * du / p, lr, 0.0, 0.0)
                cut[c] = _kept_increasing(cut, c, cut[c])
            if c > 0:
                addr_step(np.float64, np.float64, np.float64, OPT, c0 + c - 1, s0 + c - 1,
                          n_cut, sw * dl / p, lr, 0.0, 0.0)
                cut[c - 1] = _kept_increasing(cut, c - 1, cut[c - 1])
            fm_step(indices, data, start, end, T, 0, k, tab0, stride, NO_HOT, sums,
                    T(sw * (du - dl) / p), OPT, hpT, fit_linear, indices, reg_scale, 1)
        return total

    return sgd_epoch


_epoch = by_code(_make_epoch)


def sgd_epoch(indptr, indices, data, y, sample_weight, order, table, k, cut, cut_state,
              code, hp, fit_linear, reg_scale=None):
    """One pass of the proportional-odds model; returns the sum of weighted log losses.

    ``y`` float64 class indices; ``cut`` (C - 1,) float64 cutpoints, updated in place (with
    their solver state in the float64 ``cut_state``, ``[state 0 of each | state 1 of each]``,
    see :mod:`fmlearn._kernels.updates`) and kept increasing. Same table contract, ``code``
    and ``hp`` as :func:`fmlearn._kernels.sgd.sgd_epoch`; the bias is not used. The row loop is
    the FM epoch's (generic number of factors), see :mod:`fmlearn._kernels.sgd` for its
    design. ``reg_scale``: None or feature ``j``'s L2 scale, as there.
    """
    if reg_scale is None:
        reg_scale = np.ones(table.shape[0], dtype=table.dtype)
    return _epoch(code)(indptr, indices, data, y, sample_weight, order, table, k, cut,
                        cut_state, hp, fit_linear, np.ascontiguousarray(reg_scale, table.dtype))


@jit(inline="always")
def _kept_increasing(cut, c, value):
    """``value`` moved at least ``1e-6`` inside the neighbours of cutpoint ``c``.

    The neighbours are read unconditionally (clamped indices), then ignored at the ends: an
    array read under a branch of an inlined helper would bring reference counting into the
    caller's loop.
    """
    gap = 1e-6
    n_cut = cut.shape[0]
    below, above = cut[max(c - 1, 0)], cut[min(c + 1, n_cut - 1)]
    if c > 0 and value < below + gap:
        value = below + gap
    if c + 1 < n_cut and value > above - gap:
        value = above - gap
    return value


@jit(inline="always")
def class_probability(c, f, cut):
    """``P(y = c | f)`` of the ordered probit model with cutpoints ``cut``, at least _FLOOR."""
    n_cut = cut.shape[0]
    lo = cut[c - 1] - f if c > 0 else -np.inf
    hi = cut[c] - f if c < n_cut else np.inf
    return max(interval_probability(lo, hi), _FLOOR)


@jit
def latent_targets(y, pred, cut, rng, out):
    """Draw each latent ``z_n ~ N(pred_n, 1)`` within its class's cutpoints."""
    n_cut = cut.shape[0]
    for n in range(y.shape[0]):
        c = int(y[n])
        m = pred[n]
        lo = cut[c - 1] - m if c > 0 else -np.inf
        hi = cut[c] - m if c < n_cut else np.inf
        out[n] = m + normal_between(rng, lo, hi)


# The cutpoints: one random-walk Metropolis step each, with the latent targets integrated out.
# Drawing them from ``p(theta | f)`` (then ``z`` given them) mixes where the textbook Gibbs
# step, uniform between neighbouring latent values, barely moves on large data (Cowles 1996).
# Moving ``theta_c`` changes the likelihood of classes ``c`` and ``c + 1`` only, so given the
# odd cutpoints the even ones are independent (their classes are disjoint), and the other way
# round: the steps go by parity, the even cutpoints' in one pass over the rows, then the odd
# ones', and a pass's sums split over blocks of rows (threads).
@jit
def cutpoint_propose(cut, step, parity, rng, proposal):
    """``proposal``: ``cut`` with each cutpoint of the given parity moved by a random-walk
    step, unless that breaks the order (then it stays)."""
    n_cut = cut.shape[0]
    for c in range(n_cut):
        proposal[c] = cut[c]
        if c % 2 != parity:
            continue
        new = cut[c] + step[c] * normal(rng)
        if (c > 0 and new <= cut[c - 1]) or (c + 1 < n_cut and new >= cut[c + 1]):
            continue
        proposal[c] = new


@jit
def cutpoint_deltas(y, pred, sample_weight, cut, proposal, parity, start, stop):
    """Per cutpoint ``c`` of the parity, ``sum s_n (log P(y_n | f_n; proposal) - log P(y_n |
    f_n; cut))`` over rows ``start <= n < stop``: the log acceptance ratio's share of these
    rows. Each row's class borders one cutpoint of each parity, so one end of its interval
    moves: the other end's normal CDF serves both probabilities (3 erfc, not 4)."""
    n_cut = cut.shape[0]
    out = np.zeros(n_cut)
    for n in range(start, stop):
        cls = int(y[n])
        c = cls if cls % 2 == parity else cls - 1
        if c < 0 or c >= n_cut or proposal[c] == cut[c]:
            continue
        f = pred[n]
        lo = cut[cls - 1] - f if cls > 0 else -np.inf
        hi = cut[cls] - f if cls < n_cut else np.inf
        moved = proposal[c] - f
        if c != cls and (lo > 0.0) != (moved > 0.0):  # the lower end crosses 0: apart
            before = interval_probability(lo, hi)
            after = interval_probability(moved, hi)
        else:
            # P(lo < t < hi) = s (ndtr(s hi) - ndtr(s lo)) with s = -1 above 0 (lo > 0),
            # where the upper tail keeps its precision (see interval_probability).
            s = -1.0 if lo > 0.0 else 1.0
            if c == cls:
                fixed = ndtr(s * lo)
                before = s * (ndtr(s * hi) - fixed)
                after = s * (ndtr(s * moved) - fixed)
            else:
                fixed = ndtr(s * hi)
                before = s * (fixed - ndtr(s * lo))
                after = s * (fixed - ndtr(s * moved))
        out[c] += sample_weight[n] * math.log(max(after, _FLOOR) / max(before, _FLOOR))
    return out


@jit
def cutpoint_accept(cut, proposal, deltas, parity, rng, accepted):
    """Accept each moved cutpoint of the parity with probability ``exp(deltas[c])``."""
    for c in range(cut.shape[0]):
        if c % 2 != parity or proposal[c] == cut[c]:
            continue
        if math.log(uniform(rng)) < deltas[c]:
            cut[c] = proposal[c]
            accepted[c] += 1.0
