"""The ``fmlearn`` command line: demo, train, predict, evaluate.

Argument parsing and calls into the estimators and readers only; no math here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

EPILOG = """examples:
  fmlearn demo
  fmlearn train --train ml.train.libfm --valid ml.valid.libfm --task regression \\
      --n-factors 8 --l2-reg-V 0.1 --early-stopping --model-out ml.fmz
  fmlearn evaluate --model ml.fmz --data ml.test.libfm
  fmlearn predict --model ml.fmz --data ml.test.libfm --out predictions.txt

Input files are libFM/libsvm text ("label idx:value idx:value ..."; indices used as given,
0-based or 1-based alike), or FFM text ("label field:idx:value ...") with --format ffm.
"""


def _add_training_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and solver")
    g.add_argument("--model", choices=("fm", "ffm", "fwfm", "hofm"), default="fm",
                   help="fm: factorization machine; ffm: field-aware FM; fwfm: field-weighted "
                   "FM (ffm and fwfm need --format ffm: fields from the file); hofm: "
                   "higher-order FM (see --degree). Default: fm.")
    g.add_argument("--degree", type=int, default=3, metavar="D",
                   help="hofm: highest interaction order, 2 to 5. Default: 3.")
    g.add_argument("--normalize", action="store_true",
                   help="ffm/fwfm: scale each row to unit length (libffm's instance "
                   "normalization).")
    g.add_argument(
        "--task",
        choices=("regression", "classification"),
        default="regression",
        help="regression (squared loss) or classification (the file's label values: two "
        "give a binary model, more a multinomial FM). Default: regression.",
    )
    g.add_argument(
        "--solver",
        choices=("adagrad", "sgd", "ftrl", "als", "mcmc"),
        default="adagrad",
        help="adagrad (robust default), sgd (plain SGD; use a learning rate near 0.01), ftrl "
        "(FTRL-Proximal, the online CTR optimizer; L1 with --l1-reg-w), als (coordinate "
        "descent; FM only) or mcmc (Bayesian FM by Gibbs sampling, no learning rate or "
        "regularization to tune; FM only). Default: adagrad.",
    )
    g.add_argument(
        "--n-factors",
        type=int,
        default=8,
        metavar="K",
        help="latent dimension k; 0 trains a linear model. Default: 8.",
    )
    g.add_argument("--learning-rate", type=float, default=0.1, metavar="LR", help="default 0.1")
    g.add_argument(
        "--max-iter",
        type=int,
        default=100,
        metavar="N",
        help="maximum number of epochs. Default: 100.",
    )
    g.add_argument(
        "--l1-reg-w",
        type=float,
        default=0.0,
        metavar="L",
        help="L1 regularization of linear weights, --solver ftrl only: weights of features "
        "that do not earn it are exactly 0. Default: 0.",
    )
    g.add_argument(
        "--l2-reg-w",
        type=float,
        default=1e-4,
        metavar="L",
        help="L2 regularization of linear weights. Default: 1e-4.",
    )
    g.add_argument(
        "--l2-reg-V",
        type=float,
        default=1e-4,
        metavar="L",
        help="L2 regularization of factors. Default: 1e-4.",
    )
    g.add_argument(
        "--init-stdev",
        type=float,
        default=0.1,
        metavar="S",
        help="stdev of the factors' initialization. Default: 0.1.",
    )
    g.add_argument(
        "--tol",
        type=float,
        default=1e-4,
        help="stop when the monitored metric improves less than this for "
        "--n-iter-no-change epochs; a negative value disables. Default: 1e-4.",
    )
    g.add_argument(
        "--early-stopping",
        action="store_true",
        help="monitor the --valid file (or a held-out 10%% of --train) and keep the "
        "best epoch's model.",
    )
    g.add_argument(
        "--n-iter-no-change",
        type=int,
        default=5,
        metavar="N",
        help="patience in epochs. Default: 5.",
    )
    g.add_argument(
        "--n-jobs",
        type=int,
        default=1,
        metavar="N",
        help="threads (lock-free parallel SGD); -1 for all cores. Default: 1.",
    )
    g.add_argument("--seed", type=int, default=0, help="random seed. Default: 0.")


def _read(path, fmt):
    """(X, y, fields or None) from a libFM/libsvm or FFM file."""
    from fmlearn.data.textio import read_ffm, read_libfm

    if fmt == "ffm":
        # Files hashed into one index space reuse indices across fields: keep the first.
        return read_ffm(path, on_field_conflict="first")
    return (*read_libfm(path), None)


def _conform(X, n_features: int, path: str):
    """Give ``X`` the model's width: ignore features the model never saw, pad the rest."""
    import scipy.sparse as sp

    if X.shape[1] > n_features:
        X = X.tocsc()[:, :n_features].tocsr()
        warnings.warn(
            f"{path}: feature indices >= {n_features} do not exist in the model and are ignored.",
            stacklevel=2,
        )
    elif X.shape[1] < n_features:
        X = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], n_features))
    return X


def _report(model, X, y) -> dict[str, float]:
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


def _fmt(report: dict[str, float]) -> str:
    return "  ".join(f"{k}={v:.5f}" for k, v in report.items())


MODELS = {
    ("fm", "regression"): "FMRegressor",
    ("fm", "classification"): "FMClassifier",
    ("ffm", "regression"): "FFMRegressor",
    ("ffm", "classification"): "FFMClassifier",
    ("fwfm", "regression"): "FwFMRegressor",
    ("fwfm", "classification"): "FwFMClassifier",
    ("hofm", "regression"): "HOFMRegressor",
    ("hofm", "classification"): "HOFMClassifier",
}
FIELD_MODELS = ("ffm", "fwfm")


def cmd_train(args) -> int:
    import fmlearn

    if args.model in FIELD_MODELS and args.format != "ffm":
        raise ValueError(f"--model {args.model} needs fields: give an FFM file with --format ffm.")
    t = time.perf_counter()
    X, y, fields = _read(args.train, args.format)
    valid = None
    if args.valid:
        Xv, yv, fields_v = _read(args.valid, args.format)
        n = max(X.shape[1], Xv.shape[1])
        X, Xv = _conform(X, n, args.train), _conform(Xv, n, args.valid)
        valid = (Xv, yv)
        if fields is not None:
            # Features only in the validation file take their field from there.
            fields = np.concatenate([fields, np.full(n - fields.shape[0], -1, np.int32)])
            unseen = fields[: fields_v.shape[0]] < 0
            fields[: fields_v.shape[0]][unseen] = fields_v[unseen]
    print(
        f"read {X.shape[0]} rows x {X.shape[1]} features ({X.nnz} non-zeros) "
        f"in {time.perf_counter() - t:.2f}s",
        file=sys.stderr,
    )
    cls = getattr(fmlearn, MODELS[args.model, args.task])
    extra = {"fields": fields, "normalize": args.normalize} if args.model in FIELD_MODELS else {}
    if args.model == "hofm":
        extra = {"degree": args.degree}
    model = cls(
        **extra,
        n_factors=args.n_factors,
        solver=args.solver,
        learning_rate=args.learning_rate,
        max_iter=args.max_iter,
        l1_reg_w=args.l1_reg_w,
        l2_reg_w=args.l2_reg_w,
        l2_reg_V=args.l2_reg_V,
        init_stdev=args.init_stdev,
        tol=None if args.tol < 0 else args.tol,
        early_stopping=args.early_stopping,
        n_iter_no_change=args.n_iter_no_change,
        n_jobs=args.n_jobs,
        random_state=args.seed,
        verbose=0 if args.quiet else 1,
    )
    t = time.perf_counter()
    model.fit(X, y, eval_set=valid)
    elapsed = time.perf_counter() - t
    print(
        f"trained {model.n_iter_} epochs in {elapsed:.2f}s "
        f"({X.shape[0] * model.n_iter_ / elapsed:,.0f} rows/s)"
    )
    print(f"train: {_fmt(_report(model, X, y))}")
    if valid is not None:
        print(f"valid: {_fmt(_report(model, *valid))}")
    if args.model_out:
        model.save(args.model_out)
        print(f"saved model to {args.model_out}")
    return 0


def _load_data_for(model, path, fmt):
    X, y, _ = _read(path, fmt)
    return _conform(X, model.n_features_in_, path), y


def cmd_evaluate(args) -> int:
    import fmlearn

    model = fmlearn.load(args.model)
    X, y = _load_data_for(model, args.data, args.format)
    print(f"{args.data}: {X.shape[0]} rows  {_fmt(_report(model, X, y))}")
    return 0


def cmd_predict(args) -> int:
    import fmlearn

    model = fmlearn.load(args.model)
    X, _ = _load_data_for(model, args.data, args.format)
    if hasattr(model, "classes_") and not args.labels:
        # Binary: the probability of the positive class; multi-class: one column per class.
        pred = model.predict_proba(X)
        pred = pred[:, 1] if pred.shape[1] == 2 else pred
    else:
        pred = model.predict(X)
    out = sys.stdout if args.out == "-" else open(args.out, "w")
    try:
        np.savetxt(out, pred, fmt="%s" if pred.dtype.kind in "OUS" else "%.6g")
    finally:
        if out is not sys.stdout:
            out.close()
    if args.out != "-":
        print(f"wrote {pred.shape[0]} predictions to {args.out}", file=sys.stderr)
    return 0


PLOT_FORMATS = ("png", "svg", "pdf")


def cmd_plot(args) -> int:
    import fmlearn
    from fmlearn._atomic import atomic_write

    fmt = os.path.splitext(args.out)[1].lstrip(".").lower()
    if fmt not in PLOT_FORMATS:
        raise ValueError(f"--out {args.out}: give a .png, .svg or .pdf file name")
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
            X, _, fields = _read(args.data, args.format)
            X = _conform(X, model.n_features_in_, args.data)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fmlearn",
        description="Factorization machines: train, evaluate and apply models on libFM, "
        "libsvm or FFM text files.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from fmlearn import __version__

    parser.add_argument("--version", action="version", version=f"fmlearn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "demo",
        help="compare a linear model and an FM on built-in data",
        description="Builds a synthetic recommendation data set (users, items, "
        "a context; ratings from a hidden factorization model plus noise), trains "
        "a linear model and an FM, and prints test RMSE and timings. With --data, "
        "runs the same on MovieLens 100K (split u1).",
    )
    p.add_argument("--data", metavar="DIR", help="a MovieLens 100K folder (ml-100k layout)")
    p.add_argument("--n-jobs", type=int, default=1, metavar="N", help="threads. Default: 1.")
    p.add_argument("--seed", type=int, default=0, help="random seed. Default: 0.")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "train",
        help="train a model on a libFM/libsvm/FFM file",
        description="Train an FM and optionally save it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--train", required=True, metavar="FILE", help="training data file")
    p.add_argument("--valid", metavar="FILE", help="validation file, scored every epoch")
    p.add_argument(
        "--format",
        choices=("libfm", "ffm"),
        default="libfm",
        help="input format (libfm covers libsvm). Default: libfm.",
    )
    p.add_argument("--model-out", metavar="PATH", help="where to save the trained model")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_training_flags(p)
    p.set_defaults(func=cmd_train)

    for name, func, text in (
        (
            "evaluate",
            cmd_evaluate,
            "print metrics of a saved model on a labeled file (RMSE/MAE, or logloss/AUC/accuracy)",
        ),
        (
            "predict",
            cmd_predict,
            "write one prediction per line (regression value, or the positive-class probability)",
        ),
    ):
        p = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        p.add_argument("--model", required=True, metavar="PATH", help="a model saved by train")
        p.add_argument(
            "--data",
            required=True,
            metavar="FILE",
            help="data file (labels may be dummies for predict)",
        )
        p.add_argument(
            "--format",
            choices=("libfm", "ffm"),
            default="libfm",
            help="input format. Default: libfm.",
        )
        if name == "predict":
            p.add_argument(
                "--out",
                default="-",
                metavar="FILE",
                help="output file; - for standard output (default)",
            )
            p.add_argument(
                "--labels",
                action="store_true",
                help="classification: write class labels instead of probabilities",
            )
        p.set_defaults(func=func)
    text = "plot a saved model's learning curve, or its field interactions (needs matplotlib)"
    p = sub.add_parser("plot", help=text, description=text[0].upper() + text[1:] + ".")
    p.add_argument("--model", required=True, metavar="PATH", help="a model saved by train")
    p.add_argument("--out", required=True, metavar="FILE", help="image file: .png, .svg or .pdf")
    p.add_argument(
        "--interactions",
        action="store_true",
        help="plot the fields x fields interaction strengths instead of the learning curve",
    )
    p.add_argument(
        "--data",
        metavar="FILE",
        help="--interactions: the training data, to use only the features that occur in it "
        "(an FFM file also gives a plain FM's fields)",
    )
    p.add_argument(
        "--format", choices=("libfm", "ffm"), default="libfm", help="--data format. Default: libfm."
    )
    p.add_argument("--field-names", metavar="A,B,...", help="--interactions: names of the fields")
    p.add_argument("--dpi", type=int, default=120, help="resolution of a .png. Default: 120.")
    p.set_defaults(func=cmd_plot)

    from fmlearn.cli_libfm import add_parser

    add_parser(sub)  # `fmlearn libfm`: libFM's own command lines
    return parser


def _cli_warning(command: str):
    def format_warning(message, category, filename, lineno, line=None):
        return f"fmlearn {command}: warning: {message}\n"

    return format_warning


def main(argv=None) -> int:
    """Entry point of the ``fmlearn`` command."""
    from fmlearn.exceptions import DataFormatError, ModelFileError, TrainingDivergedError

    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            # A command's warnings are messages to its user: no Python source lines.
            warnings.formatwarning = _cli_warning(args.command)
            return args.func(args)
    except (
        DataFormatError,
        ModelFileError,
        TrainingDivergedError,
        FileNotFoundError,
        ValueError,
    ) as e:
        print(f"fmlearn {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
