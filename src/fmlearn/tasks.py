"""Learning tasks: what a model's output means and how training scores it.

A task holds the math that depends on the target and not on the model family or solver: the
kernel loss code, the metric reported per epoch (from the kernels' loss sums and on
validation outputs), the initial bias and how an output becomes a prediction. Estimators
validate and encode the targets (scikit-learn plumbing) and hand the encoded ``y`` to their
task; solvers read only ``loss``.

Encoded targets (float64): regression the values; binary classification +-1; multinomial
and ordinal the class index 0..C-1; pairwise tasks have no per-row target.
"""

from __future__ import annotations

import numpy as np

from fmlearn._kernels.losses import LOGISTIC, ORDINAL, SQUARED
from fmlearn.models.table import LINKS

__all__ = ["BinaryClassification", "Multinomial", "Ordinal", "Pairwise", "Regression", "Task"]


class Task:
    """Base of the tasks. ``loss``: kernel loss code; ``metric``: name of the epoch metric."""

    loss: int
    metric: str
    #: Whether a larger metric is better (ranking metrics); losses are minimized.
    higher_is_better = False
    #: Whether validation splits keep the class proportions (classification).
    stratify = False

    def initial_bias(self, y: np.ndarray, sample_weight: np.ndarray):
        """The bias to start training from (the best constant model)."""
        return 0.0

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

    def initial_bias(self, y, sample_weight):
        return float(np.average(y, weights=sample_weight))

    def metric_from_loss_sum(self, loss_sum, weight_sum):
        return float(np.sqrt(loss_sum / weight_sum))

    def score(self, y, output, sample_weight):
        return float(np.sqrt(np.average((output - y) ** 2, weights=sample_weight)))


def _log_loss(p_true: np.ndarray, sample_weight) -> float:
    return float(np.average(-np.log(np.clip(p_true, 1e-300, 1.0)), weights=sample_weight))


class BinaryClassification(Task):
    """Logistic loss on +-1 targets (SGD) or the probit model (ALS, MCMC); metric log loss.

    The output is the probability of the positive class.
    """

    loss = LOGISTIC
    metric = "logloss"
    stratify = True

    def initial_bias(self, y, sample_weight):
        p = np.average(y > 0, weights=sample_weight)
        p = min(max(p, 1e-6), 1 - 1e-6)
        return float(np.log(p / (1 - p)))

    def score(self, y, output, sample_weight):
        return _log_loss(np.where(y > 0, output, 1.0 - output), sample_weight)


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

    The cutpoints ``theta`` act as the bias (the FM's own bias stays 0).
    """

    loss = ORDINAL
    metric = "logloss"

    @staticmethod
    def class_probabilities(f: np.ndarray, cutpoints: np.ndarray, link: str) -> np.ndarray:
        """(n, n_classes) class probabilities of scores ``f`` (n,) under ``link``."""
        cdf = LINKS[link](cutpoints[None, :] - f[:, None])
        n = f.shape[0]
        return np.diff(np.hstack([np.zeros((n, 1)), cdf, np.ones((n, 1))]), axis=1)

    def score(self, y, proba, sample_weight):
        return _log_loss(proba[np.arange(y.shape[0]), y.astype(np.intp)], sample_weight)


class Pairwise(Task):
    """Ranking from positive pairs (BPR, WARP); the epoch metric is the mean pair loss.

    Validation is a ranking metric (higher is better), scored by the ranker itself.
    """

    higher_is_better = True

    def __init__(self, loss: int, name: str):
        self.loss = int(loss)
        self.metric = name
