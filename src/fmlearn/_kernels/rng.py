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


@jit(inline="always")
def normal(state):
    """Standard normal float64 (Box-Muller, one output per call)."""
    r = math.sqrt(-2.0 * math.log(uniform(state)))
    return r * math.cos(2.0 * math.pi * uniform(state))


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
def normal_above(state, a):
    """A standard normal conditioned on being greater than ``a``.

    Rejection from the normal itself when ``a <= 0`` (acceptance >= 1/2); otherwise Robert's
    (1995) exponential proposal, whose acceptance stays above 3/4 however far ``a`` lies in
    the tail, where inverting the CDF would lose all precision.
    """
    if a <= 0.0:
        while True:
            t = normal(state)
            if t > a:
                return t
    rate = 0.5 * (a + math.sqrt(a * a + 4.0))
    while True:
        t = a - math.log(uniform(state)) / rate
        d = t - rate
        if uniform(state) <= math.exp(-0.5 * d * d):
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


# Acklam's rational approximation of the normal quantile (relative error 1.2e-9), refined by
# one Halley step to full double precision.
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
      6.680131188771972e01, -1.328068155288572e01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
      3.754408661907416e00)


@jit(inline="always")
def _tail_quantile(q):
    """Acklam's lower-tail branch for ``q = sqrt(-2 log p)``."""
    num = ((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]
    return num / ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0)


@jit
def ndtri(p):
    """Standard normal quantile of ``0 < p < 1``."""
    if p < 0.02425:
        x = _tail_quantile(math.sqrt(-2.0 * math.log(p)))
    elif p > 1.0 - 0.02425:
        x = -_tail_quantile(math.sqrt(-2.0 * math.log1p(-p)))
    else:
        q = p - 0.5
        r = q * q
        num = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q
        x = num / (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)
    e = ndtr(x) - p
    u = e * _SQRT_2PI * math.exp(0.5 * x * x)
    return x - u / (1.0 + 0.5 * x * u)


@jit(inline="always")
def normal_between(state, a, b):
    """A standard normal conditioned on ``a < t < b`` (``a`` may be -inf, ``b`` +inf).

    Inverts the CDF on the side of zero the interval lies on, so that intervals far in a
    tail keep their precision; beyond the reach of ``erfc`` it falls back to the one-sided
    sampler, clipped to the interval.
    """
    if a > 0.0:
        qa, qb = ndtr(-a), ndtr(-b)
        if qa <= 1e-300:
            t = normal_above(state, a)
        else:
            t = -ndtri(qb + (qa - qb) * uniform(state))
    elif b < 0.0:
        pa, pb = ndtr(a), ndtr(b)
        if pb <= 1e-300:
            t = -normal_above(state, -b)
        else:
            t = ndtri(pa + (pb - pa) * uniform(state))
    else:
        pa, pb = ndtr(a), ndtr(b)
        t = ndtri(pa + (pb - pa) * uniform(state))
    return min(max(t, a), b)


@jit(inline="always")
def interval_probability(a, b):
    """``P(a < t < b)`` for a standard normal ``t``, accurate in both tails."""
    if a > 0.0:
        return ndtr(-a) - ndtr(-b)
    return ndtr(b) - ndtr(a)
