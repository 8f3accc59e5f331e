"""The ``fmlearn`` commands that read files and models: evaluate, predict, plot, export, demo.

Imported only once a command line has been parsed (``fmlearn --help`` never loads numpy); the
file helpers are shared with ``fmlearn train`` (:mod:`fmlearn.cli.train`).
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np


def read_data(path, fmt, need_fields=True):
    """(X, y, fields or None) from a libFM/libsvm or FFM file.

    ``need_fields=False``: an FFM file's field table (one entry per feature index) is not
    built, so that applying a model costs no memory for indices it does not have.
    """
    from fmlearn.data.textio import read_ffm, read_ffm_rows, read_libfm
    from fmlearn.exceptions import DataFormatError

    try:
        if fmt == "ffm" and not need_fields:
            return (*read_ffm_rows(path), None)
        if fmt == "ffm":
            # Files hashed into one index space reuse indices across fields: keep the first.
            return read_ffm(path, on_field_conflict="first")
        return (*read_libfm(path), None)
    except DataFormatError as e:
        # The reader's advice names Python functions; here the user's handle is --format.
        reason = e.reason
        for function, flag in _READER_FLAGS:
            reason = reason.replace(function, flag)
        if reason == e.reason:
            raise
        raise DataFormatError(e.path, e.line, e.column, reason) from None


# How the readers' messages read on the command line.
_READER_FLAGS = (
    ("use read_ffm for FFM files", "use --format ffm for FFM files"),
    ("use read_libfm for libFM/libsvm files", "use --format libfm for libFM/libsvm files"),
    ("but read_libfm expects", "but --format libfm expects"),
    ("but read_ffm expects", "but --format ffm expects"),
)


def conform(X, n_features: int, path: str):
    """Give ``X`` the model's width: ignore features the model never saw, pad the rest."""
    import scipy.sparse as sp

    if X.shape[1] > n_features:
        # O(nnz): no per-column array (a column index near 2**31 would cost 16 GiB in CSC).
        keep = X.indices < n_features
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        counts = np.bincount(rows[keep], minlength=X.shape[0])
        indptr = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        X = sp.csr_matrix(
            (X.data[keep], X.indices[keep], indptr), shape=(X.shape[0], n_features)
        )
        warnings.warn(
            f"{path}: feature indices >= {n_features} do not exist in the model and are ignored.",
            stacklevel=2,
        )
    elif X.shape[1] < n_features:
        X = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], n_features))
    return X


def metrics_report(model, X, y) -> dict[str, float]:
    from fmlearn import metrics

    if hasattr(model, "classes_"):
        unknown = ~np.isin(y, model.classes_)
        if unknown.any():
            raise SystemExit(
                f"error: label {y[unknown][0]:g} is not one of the model's classes "
                f"{list(model.classes_)}"
            )
        proba = model.predict_proba(X)
        if len(model.classes_) > 2:
            index = np.searchsorted(model.classes_, y)
            p = np.clip(proba[np.arange(len(y)), index], 1e-15, 1.0)
            return {
                "logloss": float(np.mean(-np.log(p))),
                "accuracy": float(np.mean(model.classes_[proba.argmax(axis=1)] == y)),
            }
        return metrics.classification_report(y == model.classes_[1], proba[:, 1])
    return metrics.regression_report(y, model.predict(X))


def format_report(report: dict[str, float]) -> str:
    return "  ".join(f"{k}={v:.5f}" for k, v in report.items())


def _load_data_for(model, path, fmt, args=None, *, need_target=False):
    from fmlearn.cli.tables import table_data_for, table_encoder, table_format

    if table_format(path, fmt) or table_encoder(model) is not None or hasattr(model, "steps"):
        # A CSV/Parquet table of the original columns, for a model file holding an encoder.
        return table_data_for(model, path, fmt, target=getattr(args, "target", None),
                              need_target=need_target, sep=getattr(args, "sep", None))
    X, y, _ = read_data(path, fmt, need_fields=False)
    return conform(X, model.n_features_in_, path), y


def cmd_evaluate(args) -> int:
    import fmlearn

    model = fmlearn.load(args.model)
    X, y = _load_data_for(model, args.data, args.format, args, need_target=True)
    print(f"{args.data}: {X.shape[0]} rows  {format_report(metrics_report(model, X, y))}")
    return 0


def cmd_predict(args) -> int:
    import fmlearn
    from fmlearn._atomic import atomic_write, resolve_target

    if args.out != "-":
        resolve_target(args.out)  # a bad --out fails before the model and data are read
    model = fmlearn.load(args.model)
    X, _ = _load_data_for(model, args.data, args.format, args)
    if hasattr(model, "classes_") and not args.labels:
        # Binary: the probability of the positive class; multi-class: one column per class.
        pred = model.predict_proba(X)
        pred = pred[:, 1] if pred.shape[1] == 2 else pred
    else:
        pred = model.predict(X)
    fmt = "%s" if pred.dtype.kind in "OUS" else "%.6g"
    if args.out == "-":
        np.savetxt(sys.stdout, pred, fmt=fmt)
        sys.stdout.flush()  # a full disk or a closed pipe shows here, not at exit
    else:
        with atomic_write(args.out, "w") as out:
            np.savetxt(out, pred, fmt=fmt)
    if args.out != "-":
        print(f"wrote {pred.shape[0]} predictions to {args.out}", file=sys.stderr)
    return 0


def cmd_export(args) -> int:
    import fmlearn
    from fmlearn._atomic import resolve_target

    resolve_target(args.onnx)  # a bad output path fails before the model is read
    model = fmlearn.load(args.model)
    if not hasattr(model, "to_onnx"):
        raise ValueError(
            f"{args.model} holds a {type(model).__name__}, which has no ONNX export: an "
            "exported graph reads the model's own feature columns, so export a model file "
            "(fmlearn train --model-out, or estimator.save), not a pipeline with an encoder"
        )
    try:
        model.to_onnx(args.onnx)
    except ImportError as e:
        raise SystemExit(f"fmlearn export: error: {e}") from None
    print(f"wrote {args.onnx}", file=sys.stderr)
    return 0


PLOT_FORMATS = ("png", "svg", "pdf")


def cmd_plot(args) -> int:
    import fmlearn
    from fmlearn._atomic import atomic_write

    fmt = os.path.splitext(args.out)[1].lstrip(".").lower()
    if fmt not in PLOT_FORMATS:
        raise ValueError(f"--out {args.out}: give a .png, .svg or .pdf file name")
    from fmlearn._atomic import resolve_target

    resolve_target(args.out)
    try:
        import matplotlib
    except ImportError:
        raise SystemExit(
            "fmlearn plot: error: plots need matplotlib: pip install 'fmlearn[plot]'"
        ) from None
    matplotlib.use("Agg")  # files only: no display needed
    from fmlearn import plotting

    model = fmlearn.load(args.model)
    if args.interactions:
        fields = X = None
        if args.data:
            X, _, fields = read_data(args.data, args.format)
            X = conform(X, model.n_features_in_, args.data)
            if fields is not None:
                fields = np.concatenate([fields, np.full(model.n_features_in_, -1)])
                fields = np.maximum(fields[: model.n_features_in_], 0)
        if fields is None and getattr(model, "fields_", None) is None:
            raise ValueError(
                f"{args.model} is a {type(model).__name__}, which has no fields: give the "
                "training data as an FFM file (--data FILE --format ffm) for the features' fields."
            )
        if getattr(model, "fields_", None) is not None:
            fields = None  # a field-aware model's own fields
        names = args.field_names.split(",") if args.field_names else None
        ax = plotting.plot_field_interactions(model, fields=fields, X=X, field_names=names)
    else:
        ax = plotting.plot_learning_curve(model)
    fig = ax.figure
    fig.tight_layout()
    with atomic_write(args.out) as f:
        fig.savefig(f, format=fmt, dpi=args.dpi)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def cmd_demo(args) -> int:
    from fmlearn.demo import run_demo

    run_demo(data=args.data, n_jobs=args.n_jobs, seed=args.seed)
    return 0
