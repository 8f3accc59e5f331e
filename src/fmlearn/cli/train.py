"""``fmlearn train``: its model flags are generated from the chosen estimator's signature.

``--model`` and ``--task`` pick an estimator class (``--model ffm --task classification`` is
:class:`fmlearn.FFMClassifier`); every parameter of its ``__init__`` that a command line can
express becomes a flag (``n_factors`` -> ``--n-factors``), typed from the class's
``_parameter_constraints``, its help text taken from the class's numpydoc ``Parameters``
section and its default shown from the signature. A flag left out is not passed to the
estimator, so each model keeps its own defaults (FFM's ``n_factors=4``, ``learning_rate=0.2``,
FM's 8 and 0.1), and a parameter added to or removed from an estimator appears on or
disappears from the command line with no change here.

The class is imported only for this command, after a first pass over the arguments has read
``--model`` and ``--task``: ``fmlearn --help`` and the other commands never pay for it. Training
itself needs the class anyway, so ``fmlearn train`` costs nothing extra.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import re
import sys
import textwrap
import time
from dataclasses import dataclass
from numbers import Integral, Real

PROG = "fmlearn train"

# (--model, --task) -> (module, class). Only that module is imported.
MODELS = {
    ("fm", "regression"): ("fmlearn.fm", "FMRegressor"),
    ("fm", "classification"): ("fmlearn.fm", "FMClassifier"),
    ("ffm", "regression"): ("fmlearn.ffm", "FFMRegressor"),
    ("ffm", "classification"): ("fmlearn.ffm", "FFMClassifier"),
    ("fwfm", "regression"): ("fmlearn.fwfm", "FwFMRegressor"),
    ("fwfm", "classification"): ("fmlearn.fwfm", "FwFMClassifier"),
    ("hofm", "regression"): ("fmlearn.hofm", "HOFMRegressor"),
    ("hofm", "classification"): ("fmlearn.hofm", "HOFMClassifier"),
}
# The deep models (fmlearn.deep, torch imported only when one is chosen).
DEEP_MODELS = {"torchfm": "TorchFM", "torchffm": "TorchFFM", "torchfwfm": "TorchFwFM",
               "deepfm": "DeepFM", "nfm": "NFM", "afm": "AFM", "xdeepfm": "XDeepFM",
               "autoint": "AutoInt", "autointplus": "AutoIntPlus", "ifm": "IFM", "difm": "DIFM",
               "cfm": "CFM"}
MODELS.update({(name, task): ("fmlearn.deep", stem + suffix)
               for name, stem in DEEP_MODELS.items()
               for task, suffix in (("regression", "Regressor"), ("classification", "Classifier"))})
MODEL_NAMES = ("fm", "ffm", "fwfm", "hofm", *DEEP_MODELS)
TASKS = ("regression", "classification")
FIELD_MODELS = ("ffm", "fwfm")

# Estimator parameters that the command sets itself, or that mean nothing for one run.
CLI_SET = {
    "random_state": "--seed",
    "verbose": "--quiet",
    "fields": "the fields of the --format ffm file",
    "warm_start": "each run trains a new model",
}
# What a flag means on the command line beyond the estimator's own documentation.
CLI_NOTES = {
    "tol": "A negative value, or none, runs all --max-iter epochs.",
}


def model_class(model: str, task: str) -> type:
    """The estimator class of ``--model`` and ``--task`` (imports its module)."""
    module, name = MODELS[model, task]
    return getattr(importlib.import_module(module), name)


# ---------------------------------------------------------------------------------------------
# Flags from the signature


@dataclass(frozen=True)
class Flag:
    """One estimator parameter as a command-line flag."""

    param: str
    kind: type  # bool, int, float or str
    choices: tuple | None
    none: bool  # "none" is a value (the parameter takes None)
    default: object  # the estimator's own
    help: str

    @property
    def option(self) -> str:
        return "--" + self.param.replace("_", "-")


def _kind(constraints, default):
    """(kind, choices, none) of a parameter from its scikit-learn constraints, or None when no
    constraint is a scalar a command line can give (arrays, random states, callables)."""
    kinds, choices, none = set(), None, False
    if isinstance(default, tuple) and default and all(isinstance(v, int) for v in default):
        return tuple, None, False  # layer sizes: --hidden-layer-sizes 400,400
    for c in constraints:
        if c is None:
            none = True
        elif c == "boolean" or (isinstance(c, type) and issubclass(c, bool)):
            kinds.add(bool)
        elif isinstance(c, type) and issubclass(c, Integral):
            kinds.add(int)
        elif isinstance(c, type) and issubclass(c, Real):
            kinds.add(float)
        elif isinstance(c, type) and issubclass(c, str):
            kinds.add(str)
        elif hasattr(c, "options") and all(isinstance(o, str) for o in c.options):  # StrOptions
            kinds.add(str)
            choices = tuple(sorted(c.options))
        elif hasattr(c, "closed") and hasattr(c, "type"):  # Interval(Integral | Real, ...)
            kinds.add(int if c.type is Integral else float)
    if not constraints and default is not None and type(default) in (bool, int, float, str):
        kinds.add(type(default))  # no constraints declared: the default's type
    if bool in kinds and choices:  # e.g. early_stopping: on, off or "auto"
        return bool, (*choices, True, False), none
    for kind in (bool, str, float, int):  # float takes an int's text too
        if kind in kinds:
            return kind, choices, none
    return None


_ENTRY = re.compile(r"^(\w+) : ")


def param_docs(cls) -> dict[str, str]:
    """Parameter name -> description, from the numpydoc docstrings along ``cls``'s MRO (a
    family documents its own parameters and refers to FMRegressor's for the others)."""
    from fmlearn.fm import FMClassifier, FMRegressor

    docs: dict[str, str] = {}
    for klass in (*cls.__mro__, FMRegressor, FMClassifier):
        lines = inspect.cleandoc(klass.__dict__.get("__doc__") or "").splitlines()
        name, text = None, []
        for line in lines + [""]:
            if name is not None and line.startswith(" "):  # the entry's description
                text.append(line.strip())
                continue
            if name is not None:
                docs.setdefault(name, " ".join(text))  # the most derived class's wins
                name = None
            match = _ENTRY.match(line)
            if match:
                name, text = match.group(1), []
    return docs


def _sentence(text: str) -> str:
    """The first sentence: the flag's help (the estimator's docs have the rest)."""
    return re.split(r"(?<=[.!?])(?<!e\.g\.)(?<!i\.e\.)\s+(?=[A-Z])", text, maxsplit=1)[0]


def _show(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def estimator_flags(cls) -> tuple[list[Flag], list[str]]:
    """The flags of ``cls``'s parameters, in signature order, and the parameters that only
    Python can set (arrays and the like; the command's own ones, ``CLI_SET``, are neither)."""
    params = inspect.signature(cls).parameters
    constraints = getattr(cls, "_parameter_constraints", {})
    solvers = None
    if hasattr(cls, "_params_class") and hasattr(cls, "_task_name"):
        from fmlearn.optim import solvers_for  # the solvers that train this model and task

        solvers = solvers_for(cls._params_class.kind, cls._task_name)
    docs = param_docs(cls)
    options = {name: "--" + name.replace("_", "-") for name in params}
    flags, python_only = [], []
    for name, p in params.items():
        if name in CLI_SET or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        kind = _kind(constraints.get(name, ()), p.default)
        if kind is None:
            python_only.append(name)
            continue
        kind, choices, none = kind
        if name == "solver" and choices and solvers:
            choices = tuple(c for c in choices if c in solvers)
        text = _sentence(docs.get(name, "")).replace("%", "%%")
        # ``learning_rate`` in the estimator's docs is --learning-rate here.
        text = re.sub(r"``(\w+)``", lambda m: options.get(m.group(1), m.group(1)), text)
        text = text.replace("``", "")
        text = " ".join(t for t in (text, CLI_NOTES.get(name, "")) if t)
        text += f" Default: {_show(p.default)}."
        flags.append(Flag(name, kind, choices, none, p.default, text.strip()))
    return flags, python_only


_SWITCH = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}


def _converter(flag: Flag):
    def convert(text):
        if flag.none and text.lower() == "none":
            return None
        if flag.kind is bool:  # a switch with named values too: on/off or a choice
            return _SWITCH.get(text.lower(), text)
        if flag.kind is tuple:
            return tuple(int(v) for v in text.split(",") if v.strip())
        return flag.kind(text)

    name = "comma-separated ints" if flag.kind is tuple else flag.kind.__name__
    convert.__name__ = name + (" or none" if flag.none else "")  # argparse errors
    return convert


def _add_flag(group, flag: Flag) -> None:
    kw = dict(dest=flag.param, default=argparse.SUPPRESS, help=flag.help)
    if flag.kind is bool and flag.choices:
        # --early-stopping [auto|on|off]: alone it means on; --no-early-stopping is off.
        metavar = "{" + ",".join(map(_show, flag.choices)) + "}"
        group.add_argument(flag.option, nargs="?", const=True, choices=flag.choices,
                           type=_converter(flag), metavar=metavar, **kw)
        group.add_argument("--no-" + flag.option[2:], dest=flag.param, action="store_const",
                           const=False, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    elif flag.kind is bool:
        group.add_argument(flag.option, action=argparse.BooleanOptionalAction, **kw)
    elif flag.choices:
        choices = flag.choices + ((None,) if flag.none else ())  # argparse checks converted values
        metavar = "{" + ",".join(map(_show, choices)) + "}"
        group.add_argument(flag.option, choices=choices, type=_converter(flag), metavar=metavar,
                           **kw)
    else:
        metavar = {int: "N", float: "X", str: "S", tuple: "N,N,..."}[flag.kind] + (
            "|none" if flag.none else "")
        group.add_argument(flag.option, type=_converter(flag), metavar=metavar, **kw)


# ---------------------------------------------------------------------------------------------
# The parser


def _add_command_flags(p: argparse.ArgumentParser, required: bool = True) -> None:
    """The flags of the command itself (files, model choice), the same for every model."""
    g = p.add_argument_group("input and output")
    g.add_argument("--train", required=required, metavar="FILE", help="training data file")
    g.add_argument("--valid", metavar="FILE", help="validation file, scored every epoch")
    g.add_argument("--format", choices=("libfm", "ffm"), default="libfm",
                   help="input format (libfm covers libsvm). Default: libfm.")
    g.add_argument("--on-disk", action="store_true",
                   help="train out of core: the first pass writes a binary block cache of "
                   "--train (and --valid), epochs read it block by block, so the data never "
                   "needs to fit in memory (solvers sgd, adagrad, ftrl; see "
                   "docs/out-of-core.md)")
    g.add_argument("--cache-dir", metavar="DIR",
                   help="where --on-disk keeps its cache. Default: $FMLEARN_CACHE_DIR, else "
                   "~/.cache/fmlearn.")
    g.add_argument("--block-mb", type=float, default=64.0, metavar="X",
                   help="--on-disk: megabytes of text per cache block (at most two blocks are "
                   "in memory). Default: 64.")
    g.add_argument("--hash-bits", type=int, metavar="N",
                   help="hash the feature indices into 2**N columns (per field for FFM "
                   "files): bounds the model's size for unbounded ids")
    g.add_argument("--model-out", metavar="PATH", help="where to save the trained model")
    g.add_argument("--quiet", action="store_true",
                   help="no progress bar, no notes and no first-run compile notice (what was "
                   "read, trained and saved is still reported)")
    g = p.add_argument_group("model")
    g.add_argument("--model", choices=MODEL_NAMES, default="fm",
                   help="fm: factorization machine; ffm: field-aware FM; fwfm: field-weighted "
                   "FM (ffm and fwfm need --format ffm: fields from the file); hofm: "
                   "higher-order FM; torchfm, torchffm, torchfwfm, deepfm, nfm, afm, xdeepfm, "
                   "autoint, autointplus, ifm, difm, cfm: the deep models of fmlearn.deep "
                   "(needs torch; fields from an FFM file, or inferred from a libFM file whose "
                   "columns each keep one position in their rows). The model's flags below "
                   "depend on it. Default: fm.")
    g.add_argument("--task", choices=TASKS, default=None,
                   help="regression (squared loss) or classification (the file's label values: "
                   "two give a binary model, more a multinomial FM). Default: regression "
                   "(with a note when the labels take only two values).")
    g.add_argument("--seed", type=int, default=0, metavar="N",
                   help="random seed (the model's random_state). Default: 0.")
    g = p.add_argument_group("distributed training on Dask (fm, ffm, fwfm; needs "
                             "pip install \"fmlearn[dask]\"; see docs/distributed.md)")
    g.add_argument("--dask-workers", type=int, metavar="N",
                   help="train on a local Dask cluster of N workers, one thread each "
                   "(fmlearn.dask): the file is read here and split into one slice of rows "
                   "per worker")
    g.add_argument("--dask-scheduler", metavar="ADDR",
                   help="train on the Dask cluster of this scheduler (e.g. tcp://host:8786): "
                   "the file is read here and a slice of rows sent to each worker")
    g.add_argument("--rounds-per-epoch", default="auto", metavar="N",
                   help="with --dask-*: synchronous rounds per epoch (an int, or auto). "
                   "Default: auto.")


def build_parser(cls, model: str = "fm", task: str = "regression") -> argparse.ArgumentParser:
    """The full ``fmlearn train`` parser for the estimator class ``cls``."""
    from fmlearn.cli import EPILOG

    flags, python_only = estimator_flags(cls)
    epilog = EPILOG
    if python_only:
        epilog += (f"\n{cls.__name__} parameters set in Python only: "
                   f"{', '.join(python_only)}.\n")
    p = argparse.ArgumentParser(
        prog=PROG,
        description=textwrap.fill(
            "Train a model and optionally save it. The model's flags and their defaults are "
            f"those of the estimator that --model and --task choose (--model {model} --task "
            f"{task}: {cls.__name__}); for another model's, run e.g. fmlearn train --model "
            "ffm --help.", 79),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_command_flags(p)
    g = p.add_argument_group(f"{cls.__name__} parameters (a flag left out keeps the model's "
                             "default)")
    for flag in flags:
        _add_flag(g, flag)
    return p


def _unknown(extras, model: str, task: str) -> str:
    """argparse's message for unrecognized arguments, plus which models have such a flag."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    for token in extras:
        option = token.split("=", 1)[0]
        if not option.startswith("--"):
            continue
        owners = [m for m in MODEL_NAMES if m != model and option in
                  {f.option for f in estimator_flags(model_class(m, task))[0]}]
        if owners:
            message += (f"; {option} is a flag of --model {' and '.join(owners)} (see "
                        f"fmlearn train --model {owners[0]} --help)")
    return message


def parse_args(argv):
    """(arguments, estimator class, the estimator parameters given on the command line)."""
    first = argparse.ArgumentParser(prog=PROG, add_help=False)
    _add_command_flags(first, required=False)
    known, _ = first.parse_known_args(argv)  # --model and --task choose the flags
    known.task_given = known.task is not None
    known.task = known.task or "regression"
    cls = model_class(known.model, known.task)
    parser = build_parser(cls, known.model, known.task)
    args, extras = parser.parse_known_args(argv)
    if extras:
        parser.error(_unknown(extras, known.model, known.task))
    args.task_given = known.task_given
    args.task = args.task or "regression"
    if (args.model, args.task) != (known.model, known.task):  # e.g. an ambiguous abbreviation
        parser.error("give --model and --task in full")
    given = {f.param: getattr(args, f.param) for f in estimator_flags(cls)[0]
             if hasattr(args, f.param)}
    return args, cls, given


def estimator_params(args, cls, given: dict) -> dict:
    """The keyword arguments of ``cls``: the flags given, plus what the command sets itself
    (``--seed``, ``--quiet``); every other parameter keeps the estimator's default."""
    params = dict(given)
    if params.get("tol") is not None and params["tol"] < 0:
        params["tol"] = None  # the command line's older spelling of "no tolerance"
    signature = inspect.signature(cls).parameters
    if "random_state" in signature:
        params["random_state"] = args.seed
    if "verbose" in signature:
        params["verbose"] = 0 if args.quiet else 1
    return params


# ---------------------------------------------------------------------------------------------
# The command


def run(argv) -> int:
    """Run ``fmlearn train`` on its arguments (those after ``train``)."""
    import numpy as np

    from fmlearn.cli.commands import conform, format_report, metrics_report, read_data

    args, cls, given = parse_args(argv)
    if args.model in FIELD_MODELS and args.format != "ffm":
        raise ValueError(f"--model {args.model} needs fields: give an FFM file with --format ffm.")
    params = estimator_params(args, cls, given)
    cls(**params)._validate_params()  # a bad value fails before a large file is read
    if args.model_out:
        from fmlearn._atomic import resolve_target

        resolve_target(args.model_out)  # a missing folder or a device fails before training

    def note(text: str, file=sys.stderr) -> None:
        if not args.quiet:
            print(text, file=file)

    if args.quiet:
        from fmlearn._compile_notice import QUIET_ENV

        os.environ[QUIET_ENV] = "1"  # nor the first run's compile notice
    if not args.model_out:
        note("fmlearn train: note: no --model-out given, so the trained model is not saved")

    if args.hash_bits is not None and not 1 <= args.hash_bits <= 28:
        raise ValueError(f"--hash-bits must be in 1..28, got {args.hash_bits}")
    dask_cls = _dask_class(args, cls, params)
    if args.on_disk:
        return _run_on_disk(args, cls, params, note)
    if args.cache_dir:
        raise ValueError("--cache-dir applies to --on-disk training only.")
    t = time.perf_counter()
    X, y, fields = read_data(args.train, args.format)
    if args.hash_bits is not None:
        from fmlearn.data.hashing import hash_columns

        X, fields = hash_columns(X, args.hash_bits, fields)
    valid = None
    if args.valid:
        Xv, yv, fields_v = read_data(args.valid, args.format)
        if args.hash_bits is not None:
            Xv, fields_v = hash_columns(Xv, args.hash_bits, fields_v)
        n = max(X.shape[1], Xv.shape[1])
        X, Xv = conform(X, n, args.train), conform(Xv, n, args.valid)
        valid = (Xv, yv)
        if fields is not None:
            # Features only in the validation file take their field from there.
            fields = np.concatenate([fields, np.full(n - fields.shape[0], -1, np.int32)])
            unseen = fields[: fields_v.shape[0]] < 0
            fields[: fields_v.shape[0]][unseen] = fields_v[unseen]
    print(f"read {X.shape[0]} rows x {X.shape[1]} features ({X.nnz} non-zeros) "
          f"in {time.perf_counter() - t:.2f}s", file=sys.stderr)
    labels = np.unique(y[: 1 << 20])
    if not args.task_given and labels.shape[0] == 2 and np.unique(y).shape[0] == 2:
        note(f"fmlearn train: note: the labels take only two values ({labels[0]:g}, "
             f"{labels[1]:g}); this trains a regression model on them. For a classifier "
             "(log loss, probabilities), pass --task classification.")
    if args.model in FIELD_MODELS:
        params["fields"] = fields
    elif args.model in DEEP_MODELS:
        from fmlearn.deep.data import MAX_AUTO_FIELDS, fields_by_position

        if fields is None and X.shape[1] > MAX_AUTO_FIELDS:
            fields = fields_by_position(X)
            if fields is None:
                raise ValueError(
                    f"--model {args.model} needs the field of each of the {X.shape[1]} "
                    "features: the libFM file does not give them (its columns do not each "
                    "keep one position in their rows). Give an FFM file with --format ffm "
                    "(fmlearn convert makes one).")
            note(f"fmlearn train: note: {int(fields.max()) + 1} fields inferred from the "
                 "position of each feature in its rows")
        params["fields"] = None if fields is None else np.maximum(fields, 0)
    t = time.perf_counter()
    if dask_cls is not None:
        model = _fit_dask(args, dask_cls, params, X, y, valid)
    else:
        model = cls(**params)
        model.fit(X, y, eval_set=valid)
    elapsed = time.perf_counter() - t
    print(f"trained {model.n_iter_} epochs in {elapsed:.2f}s "
          f"({X.shape[0] * model.n_iter_ / elapsed:,.0f} rows/s)")
    print(f"train: {format_report(metrics_report(model, X, y))}")
    if valid is not None:
        print(f"valid: {format_report(metrics_report(model, *valid))}")
    if args.model_out:
        model.save(args.model_out)
        print(f"saved model to {args.model_out}")
    return 0


def _dask_class(args, cls, params):
    """The fmlearn.dask class for ``--dask-workers``/``--dask-scheduler`` (None without them),
    after the checks that need no data: the model, the flags, Dask installed."""
    if args.dask_workers is None and args.dask_scheduler is None:
        if args.rounds_per_epoch != "auto":
            raise ValueError("--rounds-per-epoch applies to --dask-workers/--dask-scheduler "
                             "training only.")
        return None
    if args.dask_workers is not None and args.dask_scheduler is not None:
        raise ValueError("give --dask-workers (a local cluster) or --dask-scheduler (an "
                         "existing one), not both.")
    if args.dask_workers is not None and args.dask_workers < 1:
        raise ValueError(f"--dask-workers must be at least 1, got {args.dask_workers}.")
    if args.model not in ("fm", "ffm", "fwfm"):
        raise ValueError(f"--model {args.model} does not train on Dask; fmlearn.dask has fm, "
                         "ffm and fwfm.")
    if args.on_disk:
        raise ValueError("--on-disk and --dask-* do not combine: Dask workers hold their rows "
                         "in memory (for data larger than this machine, use fmlearn.dask from "
                         "Python with files the workers read; docs/distributed.md).")
    if args.rounds_per_epoch != "auto":
        try:
            args.rounds_per_epoch = int(args.rounds_per_epoch)
        except ValueError:
            raise ValueError(f"--rounds-per-epoch must be an int or auto, got "
                             f"{args.rounds_per_epoch!r}.") from None
    try:
        import fmlearn.dask as fdask
    except ImportError as e:
        raise ValueError(f"--dask-* needs Dask: {e}") from None
    dask_cls = getattr(fdask, "Dask" + cls.__name__)
    accepted = inspect.signature(dask_cls).parameters
    refused = [name for name in params if name not in accepted]
    if refused:
        flags = ", ".join("--" + name.replace("_", "-") for name in refused)
        raise ValueError(f"{flags} do(es) not apply to Dask training (docs/distributed.md).")
    if params.get("solver") not in (None, *fdask._SOLVERS):
        raise ValueError(f"--solver {params['solver']} does not run on Dask; use one of "
                         f"{', '.join(fdask._SOLVERS)}.")
    return dask_cls


def _fit_dask(args, dask_cls, params, X, y, valid):
    """Fit ``dask_cls`` on a local cluster or the given scheduler's; the plain model."""
    import logging

    from distributed import Client, LocalCluster

    cluster = None
    if args.dask_scheduler is not None:
        client = Client(args.dask_scheduler, timeout="10s")
    else:
        cluster = LocalCluster(n_workers=args.dask_workers, threads_per_worker=1,
                               processes=False, dashboard_address=None,
                               silence_logs=logging.ERROR)
        client = Client(cluster)
    try:
        n_workers = len(client.scheduler_info()["workers"])
        est = dask_cls(**params, rounds_per_epoch=args.rounds_per_epoch, client=client)
        est.fit(X, y, eval_set=valid)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    rounds = getattr(est, "rounds_per_epoch_", None)
    print(f"trained on {n_workers} Dask worker(s)"
          + (f", {rounds} round(s) per epoch" if rounds else ""), file=sys.stderr)
    return est.to_local()


def _run_on_disk(args, cls, params, note) -> int:
    """``fmlearn train --on-disk``: fit from the files' block cache, with progress in rows and
    MB while the first pass reads the text."""
    from fmlearn.cli.commands import format_report, metrics_report, read_data
    from fmlearn.data.cache import TextFiles

    start = time.perf_counter()
    counters = []

    def files(path):
        seen = {"path": os.path.basename(path), "bytes": 0, "rows": 0, "shown": 0.0}
        counters.append(seen)

        def progress(n_bytes, n_rows):
            seen["bytes"] += n_bytes
            seen["rows"] += n_rows
            now = time.perf_counter()
            if now - seen["shown"] >= 1.0:
                seen["shown"] = now
                _show_progress(seen, now - start, args.quiet)

        return TextFiles(path, format=args.format, cache_dir=args.cache_dir,
                         block_mb=args.block_mb, hash_bits=args.hash_bits, progress=progress)

    train = files(args.train)
    data = train
    if args.model in DEEP_MODELS and params.get("fields") is None:
        from fmlearn.data.cache import open_cache
        from fmlearn.deep.data import MAX_AUTO_FIELDS, fields_by_position

        data = open_cache(train)  # the first pass, then its fields
        if data.fields() is None and data.n_features > MAX_AUTO_FIELDS:
            fields = fields_by_position(data.csr_blocks())  # one block at a time
            if fields is None:
                raise ValueError(
                    f"--model {args.model} needs the field of each of the {data.n_features} "
                    "features: the libFM file does not give them (its columns do not each "
                    "keep one position in their rows). Give an FFM file with --format ffm "
                    "(fmlearn convert makes one).")
            note(f"fmlearn train: note: {int(fields.max()) + 1} fields inferred from the "
                 "position of each feature in its rows")
            params["fields"] = fields
    model = cls(**params)
    model.fit(data, eval_set=files(args.valid) if args.valid else None)
    for seen in counters:  # the first passes' totals (none when the caches were reused)
        if seen["bytes"]:
            _show_progress(seen, time.perf_counter() - start, args.quiet, done=True)
    elapsed = time.perf_counter() - start
    n_rows = model._fit_rows
    print(f"cached and trained {n_rows:,} rows x {model.n_features_in_} features, "
          f"{model.n_iter_} epochs in {elapsed:.2f}s (cache in {train.entry_dir()})")
    if args.valid and args.hash_bits is None:
        Xv, yv, _ = read_data(args.valid, args.format)
        from fmlearn.cli.commands import conform

        Xv = conform(Xv, model.n_features_in_, args.valid)
        print(f"valid: {format_report(metrics_report(model, Xv, yv))}")
    elif args.valid:
        note("fmlearn train: note: the validation metric per epoch is in the model's history "
             "(--hash-bits files are not re-read for the report)")
    if args.model_out:
        model.save(args.model_out)
        print(f"saved model to {args.model_out}")
    return 0


def _show_progress(seen, elapsed, quiet, done=False) -> None:
    if quiet:
        return
    mb = seen["bytes"] / 2**20
    print(f"caching {seen['path']}: {seen['rows']:,} rows, {mb:,.1f} MB"
          + (" (done)" if done else f" ({mb / max(elapsed, 1e-9):,.1f} MB/s)"),
          file=sys.stderr, flush=True)
