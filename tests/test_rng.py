"""The kernels' samplers (fmlearn._kernels.rng) against scipy's distributions.

Kolmogorov-Smirnov tests with fixed seeds: they cannot flake, and a wrong layer of the ziggurat
or a wrong branch of the truncated samplers moves the statistic far beyond the threshold.
"""

import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import ndtr

from fmlearn._kernels import rng as krng
from fmlearn._kernels._jit import jit


@jit
def _normals(state, n):
    out = np.empty(n)
    for i in range(n):
        out[i] = krng.normal(state)
    return out


@jit
def _above(state, a, n):
    out = np.empty(n)
    for i in range(n):
        out[i] = krng.normal_above(state, a)
    return out


@jit
def _between(state, a, b, n):
    out = np.empty(n)
    for i in range(n):
        out[i] = krng.normal_between(state, a, b)
    return out


def test_ziggurat_normal_matches_the_normal_distribution():
    x = _normals(np.array([99], dtype=np.uint64), 400_000)
    assert stats.kstest(x, stats.norm.cdf).pvalue > 0.01
    assert abs(x.mean()) < 0.005 and abs(x.var() - 1) < 0.01
    # The tail beyond the base layer (its own sampler) and the top layer's wedge.
    r = krng._ZIG_R
    assert abs(np.mean(np.abs(x) > r) / (2 * stats.norm.sf(r)) - 1) < 0.1
    assert abs(np.mean(np.abs(x) < 0.2) / (ndtr(0.2) - ndtr(-0.2)) - 1) < 0.02
    tail = np.abs(x[np.abs(x) > r])
    assert stats.kstest(tail, stats.truncnorm(r, np.inf).cdf).pvalue > 0.01


def test_ziggurat_layers_have_equal_areas():
    x, f = krng._ZIG_X, krng._ZIG_F
    areas = x[1:-1] * (f[2:] - f[1:-1])  # layer i >= 1: width x[i], heights f[i]..f[i+1]
    assert np.allclose(areas, krng._ZIG_V, rtol=1e-6)
    base = x[1] * f[1] + stats.norm.sf(x[1]) * math.sqrt(2 * math.pi)
    assert base == pytest.approx(krng._ZIG_V, rel=1e-6)


@pytest.mark.parametrize("a", [-3.0, -0.5, 0.0, 0.4, 0.99, 1.0, 2.5, 8.0, 40.0])
def test_normal_above_is_the_truncated_normal(a):
    x = _above(np.array([int(100 * abs(a)) + 7], dtype=np.uint64), a, 30_000)
    assert x.min() > a
    assert stats.kstest(x, stats.truncnorm(a, np.inf).cdf).pvalue > 0.01


_INTERVALS = [
    (-np.inf, -1.0), (-np.inf, 2.0), (-0.3, np.inf),        # one-sided
    (-0.4, 0.3), (-2.0, 1.5), (-3.0, 3.0),                   # around 0: uniform or normal
    (0.2, 0.9), (0.5, 3.0), (2.0, 2.3), (1.2, 6.0), (5.0, 9.0), (30.0, 30.5),  # above 0
    (1.0, 1.7),  # above 0, Robert's threshold needed (width between its bounds): uniform
    (-0.9, -0.2), (-6.0, -1.2), (-30.5, -30.0),             # below 0 (mirrored)
]


# A stream of its own per case: cases sharing a branch would otherwise test the same draws.
@pytest.mark.parametrize("case", range(len(_INTERVALS)))
def test_normal_between_is_the_truncated_normal(case):
    a, b = _INTERVALS[case]
    x = _between(np.array([1000 + case], dtype=np.uint64), a, b, 30_000)
    assert x.min() >= a and x.max() <= b
    assert stats.kstest(x, stats.truncnorm(a, b).cdf).pvalue > 0.01
