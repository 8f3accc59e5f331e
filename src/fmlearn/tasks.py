"""Learning tasks: what a model's output means and how training scores it.

A task holds the math that depends on the target and not on the model family or solver: the
kernel loss code, the metric reported per epoch (from the kernels' loss sums and on
validation outputs), the initial bias and how an output becomes a prediction. Estimators
validate and encode the targets (scikit-learn plumbing) and hand the encoded ``y`` to their
task. The SGD-type solvers read only ``loss``; the coordinate solvers (ALS, MCMC) fit a task as
a Gaussian model of (latent) targets and ask the task for them (``latent_data``,
``latent_targets``, ``latent_loss``): the targets themselves for regression, probit latent
targets for binary classification, and for ordinal regression (ordered probit) the cutpoints'
Metropolis step and latent targets between them.

Encoded targets (float64): regression the values; binary classification +-1; multinomial
and ordinal the class index 0..C-1; pairwise tasks have no per-row target.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logit, ndtri

from fmlearn._kernels import cd
from fmlearn._kernels.losses import LOGISTIC, ORDINAL, SQUARED
from fmlearn._parallel import run_blocks, run_tasks
from fmlearn.models import ordinal as ordinal_models

# Quantile functions (inverse CDFs) of the output links with a latent scale.
QUANTILES = {"logit": logit, "probit": ndtri}

__all__ = ["BinaryClassification", "Multinomial", "Ordinal", "Pairwise", "Regression", "Task"]


_NO_CUTPOINTS = np.zeros(1)  # the kernels' ``cut`` for tasks without cutpoints


class Task:
    """Base of the tasks. ``loss``: kernel loss code; ``metric``: name of the epoch metric."""

    loss: int
    metric: str
    #: Whether a larger metric is better (ranking metrics); losses are minimized.
    higher_is_better = False
    #: Whether validation splits keep the class proportions (classification).
    stratify = False
    #: Whether the model's intercepts are the task's own parameters rather than the FM bias
    #: (the ordinal cutpoints): ``initial_bias`` gives them whatever ``fit_intercept`` says,
    #: the task's kernels or ``latent_targets`` train them, and the FM bias stays 0.
    task_intercepts = False
    #: Whether the coordinate solvers fit it as a probit model: latent targets of unit noise.
    latent_probit = False
    #: Whether ``latent_targets`` works row by row (draws or means of latent targets), so that
    #: the solver splits the rows over threads (its ``rows`` argument).
    latent_draws = False
    #: The coordinate solvers' model of the task in the kernels (cd.LATENT_SQUARED, ...): its
    #: latent passes (cd.latent_rows) and its loss, taken in the sweep's last pass over the
    #: rows (cd.latent_loss_of_row). None: no coordinate-solver form.
    latent_code: int | None = None

    def initial_bias(self, y: np.ndarray, sample_weight: np.ndarray):
        """The bias to start training from (the best constant model)."""
        return 0.0

    # -- the coordinate solvers' (ALS, MCMC) Gaussian model of latent targets
    def latent_data(self, y: np.ndarray, sample_weight: np.ndarray):
        """What :meth:`latent_targets` reads every sweep, built once per fit."""
        return None

    def latent_targets(self, params, data, y, sample_weight, pred, state, rng, *, sample,
                       sweep, rows=None) -> np.ndarray:
        """The targets of a coordinate sweep given the current outputs ``pred``: drawn
        (``sample``, MCMC) or their conditional means (ALS). ``rng``: the kernels' generator
        state; ``state``: the solver's state dict, for the task's own sampler state;
        ``sweep``: sweeps done in this fit. May update task parameters of ``params``.
        ``rows``: the :class:`LatentRows` that run the passes over the rows (None: all rows
        at once from ``rng``)."""
        raise NotImplementedError(f"{type(self).__name__} has no coordinate-solver form")

    def latent_loss(self, params, y, sample_weight, target, e, n_threads=1) -> float:
        """The sum of weighted losses after a sweep; ``target - e`` are the new outputs (the
        sum the sweep's last row pass takes, ``cd.take_residuals``, for sweeps that do not
        keep every row's state: chunks of rows on up to ``n_threads`` threads, added in
        order)."""
        if self.latent_code is None:
            raise NotImplementedError(f"{type(self).__name__} has no coordinate-solver form")
        n, ch = y.shape[0], cd.SUM_CHUNK
        parts = np.empty(-(-n // ch))
        code, cut = self.latent_code, self.kernel_cutpoints(params)
        run_blocks(lambda a, b: cd.latent_loss_chunks(code, y, target, e, sample_weight, cut,
                                                      a * ch, min(b * ch, n), parts),
                   parts.shape[0], n_threads)
        return float(cd.ordered_sum(parts))

    def kernel_cutpoints(self, params) -> np.ndarray:
        """The cutpoints the kernels' ``cut`` takes: the model's own (ordinal), else a
        placeholder."""
        return _NO_CUTPOINTS

    def metric_from_loss_sum(self, loss_sum: float, weight_sum: float) -> float:
        """The epoch metric from the kernels' sum of weighted row losses."""
        return float(loss_sum / weight_sum)

    def score(self, y: np.ndarray, output: np.ndarray, sample_weight: np.ndarray) -> float:
        """The metric of outputs (after the link) against encoded targets."""
        raise NotImplementedError


class Regression(Task):
    """Squared loss; metric RMSE; output the prediction."""

    loss = SQUARED
    metric = "rmse"
    latent_code = cd.LATENT_SQUARED

    def initial_bias(self, y, sample_weight):
        return float(np.average(y, weights=sample_weight))

    def metric_from_loss_sum(self, loss_sum, weight_sum):
        return float(np.sqrt(loss_sum / weight_sum))

    def score(self, y, output, sample_weight):
        return float(np.sqrt(np.average((output - y) ** 2, weights=sample_weight)))

    def latent_targets(self, params, data, y, sample_weight, pred, state, rng, *, sample,
                       sweep, rows=None):
        return y




class LatentRows:
    """The passes of a coordinate sweep's latent targets over the rows (:func:`cd.latent_rows`),
    for the task of kernel ``code``: all rows at once from the chain's stream ``rng``, or one
    block of rows ``cuts[t]:cuts[t + 1]`` per stream of ``streams`` (uint64 (t,)), on ``t``
    threads. ``crew``: None, or ``crew(mode, cut, proposal)`` running the blocks on a solver's
    kept helper threads, returning ``(target, deltas)`` like :meth:`run`, or None where it
    cannot (then :func:`run_tasks` runs them). The same draws either way.

    ``y``, ``pred``, ``sample_weight``: (n_rows,) the encoded targets, the current outputs and
    the weights; ``sample``: draw (MCMC) or take the conditional means (ALS).
    """

    def __init__(self, code, y, pred, sample_weight, sample, rng, streams=None, cuts=None,
                 crew=None):
        self.code, self.y, self.pred, self.sw = code, y, pred, sample_weight
        self.sample, self.rng, self.streams, self.cuts, self.crew = (sample, rng, streams,
                                                                     cuts, crew)

    def run(self, mode, cut=None, proposal=None):
        """One pass (``cd.LATENT_DRAW``, ...): ``(target (n_rows,), deltas (blocks, n_cut))``,
        the drawn targets (a draw pass) and each block's share of the cutpoints' log
        acceptance ratios (a cutpoints pass)."""
        cut = _NO_CUTPOINTS if cut is None else cut
        proposal = _NO_CUTPOINTS if proposal is None else proposal
        if self.crew is not None:
            out = self.crew(mode, cut, proposal)
            if out is not None:
                return out
        target = np.empty_like(self.pred)
        args = (mode, self.code, self.y, self.pred, target, self.sw, cut, proposal, self.sample)
        if self.streams is None:
            deltas = np.zeros((1, cut.shape[0]))
            cd.latent_rows(*args, self.rng, 0, self.pred.shape[0], deltas[0])
            return target, deltas
        s, c = self.streams, self.cuts
        deltas = np.zeros((s.shape[0], cut.shape[0]))
        run_tasks([lambda t=t: cd.latent_rows(*args, s[t: t + 1], c[t], c[t + 1], deltas[t])
                   for t in range(s.shape[0])])
        return target, deltas

    def targets(self, cut=None) -> np.ndarray:
        """The rows' latent targets, drawn or their means (between the cutpoints ``cut``)."""
        return self.run(cd.LATENT_DRAW, cut)[0]

    def cutpoint_deltas(self, cut, proposal, parity) -> np.ndarray:
        """The log acceptance ratios (n_cut,) of the cutpoints of ``parity`` moved from
        ``cut`` to ``proposal`` (fmlearn._kernels.ordinal.cutpoint_deltas), summed over the
        blocks in order."""
        deltas = self.run(cd.LATENT_DELTAS_EVEN + parity, cut, proposal)[1]
        total = deltas[0].copy()
        for d in deltas[1:]:
            total += d
        return total


def _log_loss(p_true: np.ndarray, sample_weight) -> float:
    return float(np.average(-np.log(np.clip(p_true, 1e-300, 1.0)), weights=sample_weight))


class BinaryClassification(Task):
    """Logistic loss on +-1 targets (SGD) or the probit model (ALS, MCMC); metric log loss.

    The output is the probability of the positive class.
    """

    loss = LOGISTIC
    metric = "logloss"
    stratify = True
    latent_probit = True
    latent_draws = True
    latent_code = cd.LATENT_PROBIT

    def initial_bias(self, y, sample_weight):
        p = np.average(y > 0, weights=sample_weight)
        p = min(max(p, 1e-6), 1 - 1e-6)
        return float(np.log(p / (1 - p)))

    def score(self, y, output, sample_weight):
        return _log_loss(np.where(y > 0, output, 1.0 - output), sample_weight)

    def latent_targets(self, params, data, y, sample_weight, pred, state, rng, *, sample,
                       sweep, rows=None):
        """Probit latent targets (Albert and Chib 1993): drawn, or their means (ALS's EM)."""
        rows = rows or LatentRows(self.latent_code, y, pred, sample_weight, sample, rng)
        return rows.targets()



class Multinomial(Task):
    """Softmax over one FM score per class; metric multinomial log loss.

    Uses the logistic loss code: the multinomial kernels have their own loss.
    """

    loss = LOGISTIC
    metric = "logloss"
    stratify = True

    def __init__(self, n_classes: int):
        self.n_classes = int(n_classes)

    def initial_bias(self, y, sample_weight):
        # Log class priors, centred: softmax ignores a common shift.
        prior = np.bincount(y.astype(np.intp), weights=sample_weight, minlength=self.n_classes)
        log_prior = np.log(np.maximum(prior / prior.sum(), 1e-6))
        return log_prior - log_prior.mean()

    def score(self, y, proba, sample_weight):
        return _log_loss(proba[np.arange(y.shape[0]), y.astype(np.intp)], sample_weight)


class Ordinal(Task):
    """Cumulative link model: ``P(y <= c | x) = F(theta_c - f(x))``; metric log loss.

    The cutpoints ``theta`` (model parameters, see :mod:`fmlearn.models.ordinal`) act as the
    bias (the FM's own bias stays 0). ``link``: the ``F`` being trained, "logit" (the SGD-type
    solvers) or "probit" (MCMC), for the initial cutpoints.
    """

    loss = ORDINAL
    metric = "logloss"
    task_intercepts = True
    latent_probit = True
    latent_draws = True
    latent_code = cd.LATENT_ORDINAL

    def __init__(self, n_classes: int = 0, link: str = "logit"):
        self.n_classes = int(n_classes)
        self.link = link

    def initial_bias(self, y, sample_weight) -> np.ndarray:
        """Cutpoints reproducing the class frequencies at a zero score:
        ``quantile(P(y <= c))``, float64 of shape (n_classes - 1,)."""
        freq = np.bincount(y.astype(np.intp), weights=sample_weight, minlength=self.n_classes)
        cum = np.cumsum(freq)[:-1] / freq.sum()
        cut = QUANTILES[self.link](np.clip(cum, 1e-6, 1 - 1e-6))
        # Empty classes would give equal cutpoints: keep them strictly increasing.
        return np.maximum.accumulate(cut + 1e-6 * np.arange(cut.shape[0]))

    @staticmethod
    def class_probabilities(f: np.ndarray, cutpoints: np.ndarray, link: str) -> np.ndarray:
        """(n, n_classes) class probabilities of scores ``f`` (n,) under ``link``."""
        return ordinal_models.class_probabilities(f, cutpoints, link)

    def score(self, y, proba, sample_weight):
        return _log_loss(proba[np.arange(y.shape[0]), y.astype(np.intp)], sample_weight)

    # -- ordered probit by MCMC: the cutpoints are drawn with the latent targets integrated
    # out, then the latent targets given them (see fmlearn._kernels.ordinal.cutpoint_propose)
    def latent_data(self, y, sample_weight):
        """Rows per class (n_classes,) float64."""
        return np.bincount(y.astype(np.intp), minlength=self.n_classes).astype(np.float64)

    def latent_targets(self, params, data, y, sample_weight, pred, state, rng, *, sample,
                       sweep, rows=None):
        """Cutpoints (``params.cutpoints``, in place) by Metropolis steps given the scores,
        then the latent targets; the steps' sizes are sampler state (``state["cut_step"]``)."""
        from fmlearn._kernels import ordinal as ordinal_kernels

        if not sample:
            raise ValueError(
                "ordinal regression has no ALS solver; use solver='mcmc' (ordered probit) or "
                "'sgd'/'adagrad' (proportional odds)."
            )
        counts, cut = data, params.cutpoints
        step = state.get("cut_step")
        if step is None or step.shape != cut.shape:
            # Random-walk steps near the cutpoints' posterior spread, then adapted.
            step = state["cut_step"] = 2.0 / np.sqrt(np.maximum(counts[:-1] + counts[1:], 1.0))
        rows = rows or LatentRows(self.latent_code, y, pred, sample_weight, sample, rng)
        accepted = np.zeros(cut.shape[0])
        proposal = np.empty_like(cut)
        for parity in (0, 1):  # the even cutpoints, then the odd (independent within each)
            ordinal_kernels.cutpoint_propose(cut, step, parity, rng, proposal)
            deltas = rows.cutpoint_deltas(cut, proposal, parity)
            ordinal_kernels.cutpoint_accept(cut, proposal, deltas, parity, rng, accepted)
        # Robbins-Monro towards 40 % acceptance, fading so the chain keeps its target.
        step *= np.exp((accepted - 0.4) / np.sqrt(sweep + 1.0))
        return rows.targets(cut)

    def kernel_cutpoints(self, params):
        return params.cutpoints


class Pairwise(Task):
    """Ranking from positive pairs (BPR, WARP); the epoch metric is the mean pair loss.

    Validation is a ranking metric (higher is better), scored by the ranker itself.
    """

    higher_is_better = True

    def __init__(self, loss: int, name: str):
        self.loss = int(loss)
        self.metric = name


def for_loss(loss: int, n_classes: int = 0) -> Task:
    """The task of a per-row kernel loss code, for solvers built from a code alone."""
    if loss == SQUARED:
        return Regression()
    if loss == LOGISTIC:
        return BinaryClassification()
    if loss == ORDINAL:
        return Ordinal(n_classes, "probit")
    raise ValueError(f"no per-row task has loss code {loss}")
