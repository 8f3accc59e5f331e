"""A small counter-based random generator for kernels that sample (MCMC).

Kernels never use ``np.random`` (numba's process-wide generator): a solver seeds a one-element
``uint64`` state array from the estimator's ``numpy.random.Generator`` and passes it in, so that
sampling is reproducible from ``random_state`` and no global state is touched. The generator
is SplitMix64 (Steele et al. 2014), which passes BigCrush and needs one word of state.
"""

import math

import numpy as np

from fmlearn._kernels._jit import jit

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2 ** -53
_SQRT_2PI = math.sqrt(2.0 * math.pi)


@jit(inline="always")
def next_u64(state):
    """Advance ``state`` (uint64, shape (1,)) and return 64 random bits."""
    z = state[0] + _GAMMA
    state[0] = z
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@jit
def next_seed(state):
    """64 random bits from ``state``, e.g. the seed of a thread's own stream."""
    return next_u64(state)


@jit(inline="always")
def uniform(state):
    """Uniform float64 in (0, 1]: never 0, so ``log`` of it is finite."""
    return (float(next_u64(state) >> np.uint64(11)) + 1.0) * _TO_UNIT


# The ziggurat (Marsaglia and Tsang 2000, in Doornik's 2005 form: the layer's index and the
# uniform from separate bits of one draw): 256 layers of equal area under the normal density
# exp(-x^2 / 2). Layer 0 is the base strip plus the tail beyond _ZIG_R. 98.8 % of the draws
# are one 64-bit draw, a table read and a multiplication; Box-Muller needed two draws, a log,
# a square root and a cosine (38 ns against 4 ns here).
_ZIG_N = 256
_ZIG_R = 3.6541528853610088
_ZIG_V = 4.92867323399e-3  # each layer's area


def _ziggurat_tables():
    x = np.zeros(_ZIG_N + 1)
    x[0] = _ZIG_V / math.exp(-0.5 * _ZIG_R * _ZIG_R)
    x[1] = _ZIG_R
    for i in range(1, _ZIG_N - 1):
        x[i + 1] = math.sqrt(-2.0 * math.log(_ZIG_V / x[i] + math.exp(-0.5 * x[i] * x[i])))
    x[_ZIG_N] = 0.0
    return x, x[1:] / x[:-1], np.exp(-0.5 * x * x)


# Layer i spans |x| < _ZIG_X[i] between heights _ZIG_F[i] and _ZIG_F[i + 1]; a draw inside
# |x| < _ZIG_X[i + 1] lies under the curve for sure (_ZIG_RATIO[i] of the layer's width).
_ZIG_X, _ZIG_RATIO, _ZIG_F = _ziggurat_tables()


@jit
def normal(state):
    """Standard normal float64 (the ziggurat)."""
    while True:
        z = next_u64(state)
        i = int(z & np.uint64(_ZIG_N - 1))
        u = 2.0 * float(z >> np.uint64(11)) * _TO_UNIT - 1.0  # in [-1, 1)
        if abs(u) < _ZIG_RATIO[i]:
            return u * _ZIG_X[i]
        if i == 0:
            return _normal_tail(state, u < 0.0)
        t = u * _ZIG_X[i]
        if _ZIG_F[i + 1] + uniform(state) * (_ZIG_F[i] - _ZIG_F[i + 1]) < math.exp(-0.5 * t * t):
            return t


@jit
def _normal_tail(state, negative):
    """A normal draw beyond the ziggurat's base, ``|t| > _ZIG_R`` (Marsaglia 1964)."""
    while True:
        x = -math.log(uniform(state)) / _ZIG_R
        y = -math.log(uniform(state))
        if 2.0 * y >= x * x:
            return -(_ZIG_R + x) if negative else _ZIG_R + x


@jit
def gamma(state, shape, scale):
    """Gamma(``shape``, ``scale``) float64 (Marsaglia and Tsang 2000; for ``shape < 1`` a
    Gamma(shape + 1) draw times ``U ** (1 / shape)``)."""
    boost = 1.0
    if shape < 1.0:
        boost = uniform(state) ** (1.0 / shape)
        shape += 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = normal(state)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        if math.log(uniform(state)) < 0.5 * x * x + d - d * v + d * math.log(v):
            return d * v * scale * boost


@jit(inline="always")
def _accept(u, q):
    """``u <= exp(-q)`` for ``q >= 0``, the exp only when ``u`` is above its lower bound
    ``1 - q`` (a squeeze: most tries of a narrow interval are decided without it)."""
    return u <= 1.0 - q or u <= math.exp(-q)


# Below this, a draw above ``a > 0`` is a half-normal draw kept when it lands above ``a`` (at
# most 1 / 0.32 ziggurat draws); from it on, Robert's exponential proposal, which costs a log
# and an exp per try but keeps its acceptance above 3/4 however far in the tail ``a`` lies.
_ABOVE_BY_REJECTION = 1.0


@jit(inline="always")
def normal_above(state, a):
    """A standard normal conditioned on being greater than ``a``.

    Rejection from the normal itself when ``a <= 0`` (acceptance >= 1/2), from the half-normal
    for small ``a > 0``; further out Robert's (1995) exponential proposal.
    """
    if a <= 0.0:
        while True:
            t = normal(state)
            if t > a:
                return t
    if a < _ABOVE_BY_REJECTION:
        while True:
            t = abs(normal(state))
            if t > a:
                return t
    rate = 0.5 * (a + math.sqrt(a * a + 4.0))
    while True:
        t = a - math.log(uniform(state)) / rate
        d = t - rate
        if _accept(uniform(state), 0.5 * d * d):
            return t


@jit(inline="always")
def mean_above(a):
    """``E[t | t > a]`` for a standard normal ``t`` (the inverse Mills ratio)."""
    if a > 30.0:
        # erfc underflows here; the asymptotic series is exact to double precision.
        return a + 1.0 / a
    tail = 0.5 * math.erfc(a / math.sqrt(2.0))
    return math.exp(-0.5 * a * a) / _SQRT_2PI / tail


@jit(inline="always")
def ndtr(x):
    """Standard normal CDF."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


_SQRT_E = math.sqrt(math.e)
# Below this width an interval around 0 is drawn by uniform proposals (an exp per try), from
# it on by normal draws kept when inside: Robert's (1995) rule, where the two accept equally
# often. Measured with the ziggurat, a rejected normal costs about what a uniform try does
# (the branch mispredicts), so the rule still picks the cheaper one.
_BETWEEN_BY_NORMALS = _SQRT_2PI


@jit(inline="always")
def _between_positive(state, a, b):
    """A standard normal conditioned on ``0 < a < t < b`` (``b`` finite). Robert's (1995)
    choice: draws above ``a`` kept below ``b`` when the interval is wide for its distance
    from 0, else uniform proposals accepted with ``exp((a^2 - t^2) / 2)``."""
    width = b - a
    s = a + math.sqrt(a * a + 4.0)
    # Robert's threshold (2 sqrt(e) / s) exp(-a / s) lies between 2 / s and sqrt(e): its exp
    # only where the width falls between the two.
    if width >= _SQRT_E or (width >= 2.0 / s and width >= 2.0 * _SQRT_E / s * math.exp(-a / s)):
        while True:
            t = normal_above(state, a)
            if t < b:
                return t
    while True:
        t = a + width * uniform(state)
        if _accept(uniform(state), 0.5 * (t - a) * (t + a)):
            return t


@jit(inline="always")
def normal_between(state, a, b):
    """A standard normal conditioned on ``a < t < b`` (``a`` may be -inf, ``b`` +inf).

    Rejection throughout, exact in both tails: one-sided intervals by :func:`normal_above`;
    an interval around 0 by normal draws if wide, else by uniform proposals accepted with
    ``exp(-t^2 / 2)``; an interval on one side of 0 by :func:`_between_positive` (mirrored
    for ``b < 0``).
    """
    if b == np.inf:
        t = normal_above(state, a)
    elif a == -np.inf:
        t = -normal_above(state, -b)
    elif a > 0.0:
        t = _between_positive(state, a, b)
    elif b < 0.0:
        t = -_between_positive(state, -b, -a)
    elif b - a >= _BETWEEN_BY_NORMALS:
        while True:
            t = normal(state)
            if a < t < b:
                break
    else:
        width = b - a
        while True:
            t = a + width * uniform(state)
            if _accept(uniform(state), 0.5 * t * t):
                break
    return min(max(t, a), b)


@jit(inline="always")
def interval_probability(a, b):
    """``P(a < t < b)`` for a standard normal ``t``, accurate in both tails."""
    if a > 0.0:
        return ndtr(-a) - ndtr(-b)
    return ndtr(b) - ndtr(a)
