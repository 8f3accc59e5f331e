"""FTRL-Proximal (McMahan et al. 2013): the online CTR optimizer, with L1 and L2.

Per coordinate, FTRL-Proximal keeps ``z`` (the gradients minus what the proximal terms took
back) and ``n`` (the squared gradients), and its value is the closed-form minimizer

    w = 0                                            if |z| <= l1
    w = -(z - sign(z) l1) / ((beta + sqrt(n)) / alpha + l2)    otherwise,

with the per-coordinate rate ``alpha / (beta + sqrt(n))`` (``alpha`` = ``learning_rate``,
``beta`` = :data:`fmlearn._kernels.updates.FTRL_BETA` = 1). The rule itself is the ``FTRL`` code
of :mod:`fmlearn._kernels.updates`, which every SGD-type epoch kernel runs; this module gives
it its state and hyper-parameters over the shared epoch driver (:class:`SGDSolver`).

- L1 (``l1_reg_w``) applies to the linear weights only, and makes those whose ``|z|`` stays
  within it exactly zero: truly sparse ``w_``. L1 on the factors would zero whole rows of
  ``V``, which then get no gradient (each factor's gradient is a sum of the others') and stay
  zero for good.
- L2 (``l2_reg_w``, ``l2_reg_V``; FwFM's ``l2_reg_r``, towards 1: its rule runs on ``r - 1``)
  sits in the closed form, not in the gradient as for SGD and AdaGrad.
- State: two table columns per parameter column, ``z`` then ``n`` (the table row stays one
  contiguous burst), and ``[z, n]`` per bias under the solver state ``ftrl_w0``.
- Start: ``n = 0`` and ``z`` such that the closed form gives the current value back: the
  random initial factors (``z = -v (beta / alpha + l2_V)``), the bias set from the targets
  (``z = -w0 beta / alpha``), and on a warm start from another solver all the parameters.
"""

from __future__ import annotations

import numpy as np

from fmlearn._kernels.updates import FTRL, FTRL_BETA
from fmlearn.optim._registry import register_solver
from fmlearn.optim.sgd import SGDSolver


@register_solver
class FTRLSolver(SGDSolver):
    """FTRL-Proximal with per-coordinate learning rates, L1 on the linear weights and L2.

    ``learning_rate`` is FTRL's ``alpha``. Supported by every SGD-type model family (FM, FFM,
    FwFM, HOFM, the multinomial FM, ordinal regression and the ranker): the rule lives in the
    shared kernels.
    """

    name = "ftrl"
    code = FTRL
    # Not part of the defaults study: v0.1's values (FTRL's L2 sits in its closed form), and
    # no L2 floor (l2_min_count 0).
    defaults = {"learning_rate": 0.1, "l2_reg_w": 1e-4, "l2_reg_V": 1e-4, "n_iter_no_change": 5,
                "l2_min_count": 0.0}
    state_prefix = "ftrl"
    has_l1 = True

    def init_coords(self, values, states, l1, l2) -> None:
        """``n = 0`` and ``z`` such that the closed form gives ``values`` back."""
        z, n = states
        v = np.asarray(values, dtype=np.float64)
        z[...] = -(v * (FTRL_BETA / self.learning_rate + l2) + np.sign(v) * l1)
        n[...] = 0.0
