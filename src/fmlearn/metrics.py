"""Evaluation metrics for regression and binary classification.

Thin, documented wrappers so that the CLI, the demo and benchmarks report the same numbers.
Ranking metrics (per-query AUC, precision/recall/NDCG/MAP@k) belong here too.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def rmse(y_true, y_pred, sample_weight=None) -> float:
    """Root mean squared error."""
    d = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    return float(np.sqrt(np.average(d * d, weights=sample_weight)))


def mae(y_true, y_pred, sample_weight=None) -> float:
    """Mean absolute error."""
    d = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    return float(np.average(np.abs(d), weights=sample_weight))


def logloss(y_true, proba, sample_weight=None, eps=1e-15) -> float:
    """Binary log loss; ``y_true`` in {0, 1} (or booleans), ``proba`` of the positive class."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.clip(np.asarray(proba, dtype=np.float64), eps, 1 - eps)
    return float(np.average(-(y * np.log(p) + (1 - y) * np.log1p(-p)), weights=sample_weight))


def auc(y_true, score, sample_weight=None) -> float:
    """Area under the ROC curve; NaN when ``y_true`` holds a single class."""
    y = np.asarray(y_true)
    if np.unique(y).shape[0] < 2:
        return float("nan")
    return float(roc_auc_score(y, score, sample_weight=sample_weight))


def accuracy(y_true, y_pred, sample_weight=None) -> float:
    """Share of correct labels."""
    return float(np.average(np.asarray(y_true) == np.asarray(y_pred), weights=sample_weight))


def regression_report(y_true, y_pred) -> dict[str, float]:
    """RMSE and MAE."""
    return {"rmse": rmse(y_true, y_pred), "mae": mae(y_true, y_pred)}


def classification_report(y_true01, proba) -> dict[str, float]:
    """Log loss, AUC and accuracy (threshold 0.5) for 0/1 targets and positive-class scores."""
    y = np.asarray(y_true01)
    p = np.asarray(proba)
    return {"logloss": logloss(y, p), "auc": auc(y, p), "accuracy": accuracy(y, p > 0.5)}
