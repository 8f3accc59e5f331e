"""Pointwise losses as integer-coded inline functions.

Kernels take a ``loss`` code instead of a function object so that one compiled kernel serves
every task; the branch is perfectly predictable inside a row loop.
"""

import math

from fmlearn._kernels._jit import jit

SQUARED = 0  # regression; y real; value (p - y)^2, gradient of (p - y)^2 / 2
LOGISTIC = 1  # binary classification; y in {-1, +1}; value log(1 + exp(-y p))
# Ordinal regression (y a class index) needs cutpoints, so it has its own kernels
# (fmlearn._kernels.ordinal), run by the ordinal containers (fmlearn.models.ordinal).
ORDINAL = 2


@jit(inline="always")
def loss_value(loss, y, p):
    """Loss of prediction ``p`` for target ``y`` (float64 scalars)."""
    if loss == LOGISTIC:
        z = -y * p
        # log(1 + exp(z)) without overflow for large |z|.
        if z > 0.0:
            return z + math.log1p(math.exp(-z))
        return math.log1p(math.exp(z))
    d = p - y
    return d * d


@jit(inline="always")
def loss_gradient(loss, y, p):
    """Derivative of the loss with respect to the prediction ``p``."""
    if loss == LOGISTIC:
        z = y * p
        # -y * sigmoid(-z), written to avoid exp overflow on either side.
        if z > 0.0:
            e = math.exp(-z)
            return -y * e / (1.0 + e)
        return -y / (1.0 + math.exp(z))
    return p - y


@jit(inline="always")
def row_loss_gradient(loss, y, sample_weight, row, p):
    """Weighted loss and gradient of row ``row`` with prediction ``p``."""
    sw = sample_weight[row]
    return sw * loss_value(loss, y[row], p), sw * loss_gradient(loss, y[row], p)
