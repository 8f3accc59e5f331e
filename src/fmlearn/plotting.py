"""Plots of a fitted model: learning curves and field interactions (matplotlib, optional).

Both functions take a fitted estimator (or, for the learning curve, its ``history_`` dict) and
return the matplotlib ``Axes`` they drew on, as LightGBM's ``plot_metric`` does, so that they
compose with the caller's figures. matplotlib is imported on first use only:
``pip install fmlearn[plot]``.
"""

from __future__ import annotations

import numpy as np


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "fmlearn's plots need matplotlib: pip install 'fmlearn[plot]' (or matplotlib)"
        ) from e
    return plt


def _axes(ax, figsize):
    if ax is not None:
        return ax
    _, ax = _pyplot().subplots(figsize=figsize)
    return ax


def _series(history: dict, prefix: str) -> dict[str, list]:
    return {k[len(prefix):]: v for k, v in history.items() if k.startswith(prefix) and v}


def plot_learning_curve(model, *, ax=None, title=None, figsize=(6, 4)):
    """Training and validation metrics per epoch, as recorded in ``history_``.

    The training metric is the progressive one of each epoch (each row scored before its
    update; for ``solver="mcmc"``, the current sample); the validation metric is that of the
    ``eval_set`` (or early-stopping holdout). When the two are different metrics (e.g.
    :class:`fmlearn.FMRanker`'s loss and NDCG), the validation one gets its own y-axis. When
    early stopping kept an earlier epoch's parameters (``best_iteration_``), it is marked.

    Parameters
    ----------
    model : fitted fmlearn estimator, or dict
        An estimator with ``history_`` (loaded model files keep it), or such a dict:
        ``{"epoch": [...], "train_<metric>": [...], "valid_<metric>": [...]}``.
    ax : matplotlib Axes, optional
        Where to draw; a new figure by default.
    title : str, optional
    figsize : tuple, default=(6, 4)
        Size of the new figure (ignored with ``ax``).

    Returns
    -------
    matplotlib.axes.Axes
    """
    history = model if isinstance(model, dict) else getattr(model, "history_", None)
    if not history or not history.get("epoch"):
        raise ValueError(
            "no training history to plot: fit the model first (history_ is filled epoch by "
            "epoch; a model file keeps it)"
        )
    epochs = np.asarray(history["epoch"])
    train, valid = _series(history, "train_"), _series(history, "valid_")
    ax = _axes(ax, figsize)
    lines = []
    for name, values in train.items():
        lines += ax.plot(epochs[: len(values)], values, label=f"train {name}", color="C0")
    ax.set_xlabel("epoch")
    ax.set_ylabel(", ".join(train) or "metric")
    vax = ax
    if valid and set(valid) != set(train):
        vax = ax.twinx()
        vax.set_ylabel(", ".join(valid))
    for name, values in valid.items():
        lines += vax.plot(epochs[: len(values)], values, label=f"valid {name}", color="C1")
    best = None if isinstance(model, dict) else getattr(model, "best_iteration_", None)
    # Marked when an earlier epoch than the last was restored (early stopping).
    if best is not None and valid and best < epochs[-1]:
        lines.append(ax.axvline(best, color="0.5", linestyle="--", label=f"kept: epoch {best}"))
    ax.legend(handles=lines, loc="best")
    ax.grid(True, alpha=0.3)
    if title is None and not isinstance(model, dict):
        title = f"{type(model).__name__}: learning curve"
    if title:
        ax.set_title(title)
    return ax


def plot_field_interactions(model, *, fields=None, X=None, field_names=None, ax=None,
                            annotate=None, cmap="viridis", title=None, figsize=(6, 5)):
    """Heat map of :meth:`field_interactions`: how strongly each pair of fields interacts.

    Parameters
    ----------
    model : fitted FM, FFM or FwFM estimator
    fields : array-like of int, shape (n_features,), optional
        Field of each feature; field-aware models default to their own ``fields_``.
    X : {array-like, sparse matrix}, optional
        Restrict to the features occurring in ``X`` (pass the training data).
    field_names : sequence of str, optional
        Tick labels, one per field (e.g. the DataFrame columns ``FMEncoder`` encoded).
    ax : matplotlib Axes, optional
    annotate : bool, optional
        Write each value in its cell; default: when there are at most 12 fields.
    cmap : str, default="viridis"
    title : str, optional
    figsize : tuple, default=(6, 5)

    Returns
    -------
    matplotlib.axes.Axes
    """
    M = model.field_interactions(fields=fields, X=X)
    n = M.shape[0]
    if field_names is not None and len(field_names) != n:
        raise ValueError(f"field_names has {len(field_names)} names for {n} fields")
    names = [str(s) for s in field_names] if field_names is not None else [str(i) for i in range(n)]
    ax = _axes(ax, figsize)
    image = ax.imshow(M, cmap=cmap)
    ax.figure.colorbar(image, ax=ax, label="RMS pairwise weight")
    ax.set_xticks(range(n), names, rotation=90 if n > 6 else 0)
    ax.set_yticks(range(n), names)
    if annotate is None:
        annotate = n <= 12
    if annotate:
        top = float(M.max()) if M.size else 0.0
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{M[i, j]:.2g}", ha="center", va="center", fontsize=8,
                        color="black" if M[i, j] > 0.6 * top else "white")
    ax.set_title(title if title is not None else f"{type(model).__name__}: field interactions")
    return ax


__all__ = ["plot_field_interactions", "plot_learning_curve"]
