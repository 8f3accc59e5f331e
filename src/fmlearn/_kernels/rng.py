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


@jit(inline="always")
def uniform(state):
    """Uniform float64 in (0, 1]: never 0, so ``log`` of it is finite."""
    return (float(next_u64(state) >> np.uint64(11)) + 1.0) * _TO_UNIT


@jit(inline="always")
def normal(state):
    """Standard normal float64 (Box-Muller, one output per call)."""
    r = math.sqrt(-2.0 * math.log(uniform(state)))
    return r * math.cos(2.0 * math.pi * uniform(state))


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
