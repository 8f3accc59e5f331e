"""``fmlearn libfm``: libFM's command line (flags, files and outputs) on fmlearn's estimators.

Existing libFM scripts run unchanged: the same single-dash flags (``-task r -train FILE ...``;
``--flag`` works too), the same inputs (libFM text files, the binary files of libFM's
``convert``/``transpose`` tools, ``-meta`` group files, ``-relation`` block structure), and the
same outputs (``-out``: one prediction per test row; ``-rlog``: libFM's tab-separated columns;
``#Iter=`` progress lines on standard output). ``docs/libfm.md`` lists what maps to what and
what differs from libFM 1.4.4.

This module parses libFM's flags and drives :class:`fmlearn.FMRegressor` /
:class:`fmlearn.FMClassifier`; libFM's input files are read by :mod:`fmlearn.cli.libfm_inputs`
and its reports written by :mod:`fmlearn.cli.libfm_report`.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import textwrap
from dataclasses import dataclass

from fmlearn.exceptions import DataFormatError, ModelFileError, TrainingDivergedError

# Parsing libFM's flags and printing -help need nothing more: numpy, the readers and the
# estimators are imported by Command, once a command line has been checked.

PROG = "fmlearn libfm"

# libFM's registered parameters (src/libfm/libfm.cpp, libFM 1.4.4) and fmlearn's -quiet.
FLAGS = {
    "cache_size": "cache size for data storage; accepted and ignored (fmlearn reads all data "
    "into memory)",
    "dim": "'k0,k1,k2': k0=use bias, k1=use 1-way interactions, k2=dim of 2-way interactions; "
    "default=1,1,8",
    "help": "this screen",
    "init_stdev": "stdev for initialization of 2-way factors; default=0.1",
    "iter": "number of iterations; default=100",
    "learn_rate": "learn_rate for SGD; default=0.1",
    "load_model": "filename of a model saved by -save_model: predict -test without training",
    "meta": "filename for meta information about data set (group id of each feature, one per "
    "line)",
    "method": "learning method (SGD, SGDA, ALS, MCMC); default=MCMC",
    "out": "filename for output (one prediction per test row)",
    "quiet": "fmlearn: print nothing on standard output",
    "regular": "'r0,r1,r2' for SGD and ALS: r0=bias regularization, r1=1-way regularization, "
    "r2=2-way regularization",
    "relation": "BS: filenames for the relations, default=''",
    "rlog": "write measurements within iterations to a file; default=''",
    "save_model": "filename for writing the FM model (an fmlearn model file; MCMC too)",
    "seed": "integer value, default=None",
    "task": "r=regression, c=binary classification [MANDATORY]",
    "test": "filename for test data [MANDATORY]",
    "train": "filename for training data [MANDATORY unless -load_model]",
    "validation": "filename for validation data (only for SGDA)",
    "verbosity": "how much infos to print; default=0",
}
SWITCHES = frozenset({"help", "quiet"})
METHODS = ("sgd", "sgda", "als", "mcmc")
BAYES = ("als", "mcmc")  # libFM runs ALS as MCMC without sampling: same reports


class UsageError(Exception):
    """A bad command line or input file set: reported as one line, exit status 2."""


_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_SPLIT = re.compile(r"[;,]")  # libFM's list delimiters


# ---------------------------------------------------------------------------------------------
# Command line


def add_parser(subparsers) -> None:
    """Register ``fmlearn libfm`` on the ``fmlearn`` command's subparsers.

    The flags are libFM's (single dash, ``-flag value``), which argparse cannot parse, so the
    subcommand hands its raw arguments to :func:`run`.
    """
    p = subparsers.add_parser(
        "libfm",
        help="libFM drop-in: libFM's flags, files and outputs (fmlearn libfm -help)",
        description="Runs libFM command lines: fmlearn libfm -task r -train FILE -test FILE ...",
        prefix_chars="\0",  # no argv token starts with NUL: every token is passed through
        add_help=False,
    )
    p.add_argument("argv", nargs="*", help=argparse.SUPPRESS)
    p.set_defaults(func=lambda args: run(args.argv))


def _flag_name(token: str) -> str | None:
    if token.startswith("--"):
        return token[2:]
    if token.startswith("-"):
        return token[1:]
    return None


def parse_cmdline(argv) -> dict[str, str]:
    """Flag -> value (``""`` for a flag without value), by libFM's rules.

    A token starting with ``-`` or ``--`` names a flag; the next token is its value unless it
    is itself a flag (negative numbers are values here, where libFM would reject them). Unknown
    and repeated flags are errors, as in libFM.
    """
    values: dict[str, str] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        name = _flag_name(token)
        if not name:
            raise UsageError(f"cannot parse '{token}': expected a flag such as -train FILE")
        if name == "h":
            name = "help"
        if name not in FLAGS:
            raise UsageError(f"the parameter -{name} does not exist (see {PROG} -help)")
        if name in values:
            raise UsageError(f"the parameter -{name} is already specified")
        value = ""
        if name not in SWITCHES and i + 1 < len(argv):
            nxt = argv[i + 1]
            if _flag_name(nxt) is None or _NUMBER.match(nxt):
                value = nxt
                i += 1
        values[name] = value
        i += 1
    return values


def help_text() -> str:
    """libFM's help screen layout: the flag in 16 columns, its help wrapped at 72."""
    lines = [f"usage: {PROG} -task r|c -train FILE -test FILE [-flag value ...]", ""]
    for name, text in FLAGS.items():
        wrapped = textwrap.wrap(text, 56) or [""]
        lines.append(f"-{name:<15}{wrapped[0]}")
        lines += [" " * 16 + rest for rest in wrapped[1:]]
    lines += ["", "Flags may also be written --flag. See docs/libfm.md for the differences from "
              "libFM 1.4.4."]
    return "\n".join(lines)


def _list(text: str) -> list[str]:
    return [t for t in _SPLIT.split(text) if t]


def _int(name: str, text: str, minimum: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"-{name} must be an integer, got '{text}'") from None
    if minimum is not None and value < minimum:
        raise UsageError(f"-{name} must be >= {minimum}, got {value}")
    return value


def _float(name: str, text: str, *, positive: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"-{name} must be a number, got '{text}'") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise UsageError(f"-{name} must be a {'positive' if positive else 'non-negative'} "
                         f"number, got '{text}'")
    return value


@dataclass
class Options:
    """The command line, typed and checked."""

    task: str | None  # "r" or "c"; None with -load_model (then from the model)
    method: str
    train: str | None
    test: str
    validation: str | None
    meta: str | None
    relation: list
    out: str | None
    rlog: str | None
    save_model: str | None
    load_model: str | None
    k0: bool
    k1: bool
    k2: int
    n_iter: int
    init_stdev: float
    learn_rate: float
    regular: list
    seed: int | None
    verbosity: int
    quiet: bool

    @classmethod
    def from_values(cls, values: dict[str, str]) -> Options:
        def get(name, default=None):
            if name not in values:
                return default
            if values[name] == "":
                raise UsageError(f"-{name} needs a value")
            return values[name]

        load_model = get("load_model")
        task = get("task")
        if task is not None:
            task = {"regression": "r", "classification": "c"}.get(task.lower(), task.lower())
            if task not in ("r", "c"):
                raise UsageError(f"-task must be r (regression) or c (classification), "
                                 f"got '{values['task']}'")
        elif load_model is None:
            raise UsageError("-task is mandatory: r (regression) or c (classification)")
        train = get("train")
        if train is None and load_model is None:
            raise UsageError("-train FILE is mandatory (unless -load_model)")
        test = get("test")
        if test is None:
            raise UsageError("-test FILE is mandatory")
        method = get("method", "mcmc").lower()
        if method not in METHODS:
            raise UsageError(f"-method must be one of {', '.join(METHODS)}; got '{method}'")
        dim_text = get("dim", "1,1,8")
        dim = _list(dim_text)
        try:
            k0, k1, k2 = (int(t) for t in dim)
        except ValueError:
            raise UsageError(f"-dim must be 'k0,k1,k2' (three integers such as '1,1,8'), got "
                             f"'{dim_text}'") from None
        if k2 < 0:
            raise UsageError(f"-dim: the factor dimension k2 must be >= 0, got {k2}")
        n_iter = _int("iter", get("iter", "100"), minimum=0 if load_model else 1)
        lr = [_float("learn_rate", t, positive=True) for t in _list(get("learn_rate", "0.1"))]
        if len(lr) == 3 and len(set(lr)) == 1:
            lr = lr[:1]
        if len(lr) != 1:
            raise UsageError(f"-learn_rate takes one positive number (fmlearn has a single SGD "
                             f"learning rate), got '{values['learn_rate']}'")
        regular = [_float("regular", t) for t in _list(get("regular", ""))]
        seed = get("seed")
        if "cache_size" in values:
            _int("cache_size", get("cache_size"), minimum=0)
        return cls(
            task=task,
            method=method,
            train=train,
            test=test,
            validation=get("validation"),
            meta=get("meta"),
            relation=_list(get("relation", "")),
            out=get("out"),
            rlog=get("rlog"),
            save_model=get("save_model"),
            load_model=load_model,
            k0=k0 != 0,
            k1=k1 != 0,
            k2=k2,
            n_iter=n_iter,
            init_stdev=_float("init_stdev", get("init_stdev", "0.1")),
            learn_rate=lr[0],
            regular=regular,
            seed=None if seed is None else _int("seed", seed) % 2**32,  # libFM: srand(unsigned)
            verbosity=_int("verbosity", get("verbosity", "0")),
            quiet="quiet" in values,
        )


# ---------------------------------------------------------------------------------------------
# The command


def _regularization(reg, method, n_groups, note):
    """(r0, r1, r2) from -regular: nothing, 'r', 'r0,r1,r2', or for ALS/MCMC libFM's per-group
    'r0,rw_1..rw_G,rv_1..rv_G'."""
    n = len(reg)
    if n == 0:
        return 0.0, 0.0, 0.0
    if n == 1:
        return reg[0], reg[0], reg[0]
    if n == 3:
        return tuple(reg)
    if method in BAYES and n == 1 + 2 * n_groups:
        rw, rv = reg[1:1 + n_groups], reg[1 + n_groups:]
        if method == "als" and (len(set(rw)) > 1 or len(set(rv)) > 1):
            raise UsageError("-regular: per-group regularization is not supported by fmlearn's "
                             "ALS; give 'r0,r1,r2'")
        if method == "mcmc":
            note("-regular: per-group values are only MCMC's starting hyper-parameters, which "
                 "are sampled from the first iteration on; using the first group's")
        return reg[0], rw[0], rv[0]
    groups = f", or 1+2*{n_groups} (per group) for ALS/MCMC" if method in BAYES else ""
    raise UsageError(f"-regular takes 1 or 3 values ('r0,r1,r2'){groups}; got {n}")


def _check_writable(flag: str, path: str | None) -> None:
    if path is None:
        return
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"-{flag}: cannot write '{path}': directory '{parent}' does not exist")


def _libfm_model_file(path: str) -> bool:
    from fmlearn.data.libfm_binary import file_head

    head = file_head(path, 32)
    return head.startswith((b"#global bias", b"#unary interactions", b"#pairwise interactions"))


class Command:
    def __init__(self, opts: Options, stdout, stderr):
        self.opts, self.stdout, self.stderr = opts, stdout, stderr

    def say(self, line: str) -> None:
        if not self.opts.quiet:
            print(line, file=self.stdout, flush=True)

    def note(self, text: str) -> None:
        print(f"{PROG}: note: {text}", file=self.stderr, flush=True)

    def _load(self, path: str, flag: str):
        from fmlearn.cli.libfm_inputs import read_table

        self.say("Loading {}...\t".format({"train": "train", "test": "test",
                                           "validation": "validation set"}[flag]))
        t = read_table(path, flag)
        y = t.y
        self.say(f"num_rows={t.X.shape[0]}\tnum_values={t.X.nnz}\tnum_features={t.X.shape[1]}"
                 f"\tmin_target={y.min() if y.size else 0:g}"
                 f"\tmax_target={y.max() if y.size else 0:g}")
        if self.opts.verbosity > 0:
            for r in range(min(4, t.X.shape[0])):
                lo, hi = t.X.indptr[r], t.X.indptr[r + 1]
                row = zip(t.X.indices[lo:hi], t.X.data[lo:hi], strict=True)
                pairs = " ".join(f"{j}:{v:g}" for j, v in row)
                self.say(f"{y[r]:g} {pairs}".rstrip())
        return t

    def run(self) -> int:
        from fmlearn.cli.libfm_inputs import feature_groups, make_split, read_relation, scores
        from fmlearn.cli.libfm_report import Reporter, libfm_metric

        o = self.opts
        for flag in ("out", "rlog", "save_model"):
            _check_writable(flag, getattr(o, flag))
        self.say("-" * 76)
        self.say("fmlearn libfm: libFM 1.4.4 command line on fmlearn")
        self.say("-" * 76)
        model = None
        if o.load_model is not None:
            model = self._read_model()
        train = self._load(o.train, "train") if o.train is not None else None
        test = self._load(o.test, "test")
        valid = None
        if o.validation is not None:
            if o.method != "sgda" or model is not None:
                self.say("WARNING: Validation data is only used for SGDA. The data is ignored.")
            else:
                valid = self._load(o.validation, "validation")
        if o.method == "sgda" and valid is None and model is None:
            raise UsageError("-method sgda needs -validation FILE")

        self.say(f"#relations: {len(o.relation)}")
        relations = [read_relation(name, None if train is None else train.X.shape[0],
                                   test.X.shape[0], self.note) for name in o.relation]
        if relations and valid is not None:
            raise UsageError("-validation with -relation is not supported (libFM's SGDA does "
                             "not take relations either)")
        n_main = max(t.X.shape[1] for t in (train, test, valid) if t is not None)
        self.say("Loading meta data...\t")

        task = o.task
        if model is not None:
            task = self._model_task(model)
        clip = None
        if task == "r" and train is not None and train.y.size:
            clip = (float(train.y.min()), float(train.y.max()))
        if model is not None:
            return self._predict_only(model, task, train, test, relations, n_main, clip)

        groups, n_groups = feature_groups(o.meta, n_main, relations, self.note)
        reg = _regularization(o.regular, o.method, n_groups, self.note)
        if reg[0] != 0:
            self.note(f"-regular: r0={reg[0]:g} (bias regularization) has no fmlearn "
                      "equivalent and is ignored")
        solver = o.method  # sgda: fmlearn's solver="sgda", regularization learned on -validation
        tr = make_split(train, task, n_main, relations, "train")
        te = make_split(test, task, n_main, relations, "test")
        va = None if valid is None else make_split(valid, task, n_main, [], "train")
        prior_groups = groups if (o.meta is not None or relations) else None
        model_reg = reg
        if solver == "als" and tr.y.size:
            # libFM's ALS penalties are on the total loss, fmlearn's on the mean.
            model_reg = (reg[0], reg[1] / tr.y.size, reg[2] / tr.y.size)
        model = self._estimator(task, solver, model_reg, prior_groups)
        if o.verbosity > 0:
            self.say(f"num_attributes={groups.shape[0]}\nuse w0={int(o.k0)}\nuse w1={int(o.k1)}"
                     f"\ndim v ={o.k2}\nreg_w0={reg[0]:g}\nreg_w={reg[1]:g}\nreg_v={reg[2]:g}"
                     f"\ninit ~ N(0,{o.init_stdev:g})\n#groups={n_groups}\nmodel={model!r}")
        if solver in ("sgd", "sgda"):
            self.say(f"learnrate={o.learn_rate:g}")
            self.say(f"learnrates={o.learn_rate:g},{o.learn_rate:g},{o.learn_rate:g}")
            self.say(f"#iterations={o.n_iter}")

        rlog = open(o.rlog, "w") if o.rlog is not None else None
        try:
            if rlog is not None:
                self.say(f"logging to {o.rlog}")
            reporter = Reporter(method=o.method, task=task, train=tr, test=te, valid=va,
                                clip=clip, rlog=rlog, say=self.say, k=o.k2, k1=o.k1,
                                n_groups=n_groups, reg=reg)
            fit_kw = {"callbacks": [reporter]}
            if tr.rel is not None:
                fit_kw["X_rel"] = tr.rel
            if solver == "mcmc":
                fit_kw["eval_set"] = (te.X, te.y)
                if te.rel is not None:
                    fit_kw["eval_X_rel"] = te.rel
            elif va is not None:
                fit_kw["eval_set"] = (va.X, va.y)
            reporter.start()
            try:
                model.fit(tr.X, tr.y, **fit_kw)
            except TypeError as e:
                raise UsageError(f"this fmlearn cannot train -method {o.method} with these "
                                 f"inputs ({e})") from None
        finally:
            if rlog is not None:
                rlog.close()
        if o.method not in BAYES:  # libFM prints no final line for ALS/MCMC
            train_m = libfm_metric(task, tr, scores(model, tr, task), clip)
            test_m = libfm_metric(task, te, scores(model, te, task), clip)
            self.say(f"Final\tTrain={train_m:g}\tTest={test_m:g}")
        self._write_out(model, te, task, clip)
        if o.save_model is not None:
            self.say(f"Writing FM model to {o.save_model}")
            model.save(o.save_model)
        return 0

    def _estimator(self, task, solver, reg, prior_groups):
        import fmlearn

        o = self.opts
        cls = fmlearn.FMClassifier if task == "c" else fmlearn.FMRegressor
        kw = dict(n_factors=o.k2, fit_intercept=o.k0, fit_linear=o.k1, solver=solver,
                  max_iter=o.n_iter, init_stdev=o.init_stdev, l2_reg_w=reg[1],
                  l2_reg_V=reg[2], random_state=o.seed, tol=None)
        if solver in ("sgd", "sgda"):
            kw["learning_rate"] = o.learn_rate
        kw["early_stopping"] = False  # libFM stops no method early (SGDA learns on -validation)
        if solver == "mcmc":
            kw["n_kept_samples"] = o.n_iter  # libFM averages every sample: no burn-in
        if solver in ("mcmc", "sgda") and prior_groups is not None:
            # MCMC's hyper-prior groups; SGDA's regularization groups (-meta)
            kw["prior_groups"] = prior_groups
        try:
            return cls(**kw)
        except TypeError as e:
            raise UsageError(f"this fmlearn does not support -method {o.method} ({e})") from None

    def _read_model(self):
        import fmlearn

        path = self.opts.load_model
        self.say("Reading FM model... \t")
        if not os.path.isfile(path):
            raise UsageError(f"-load_model: cannot open '{path}'")
        if _libfm_model_file(path):
            raise UsageError(f"-load_model: '{path}' is a libFM model file; {PROG} loads models "
                             "saved by its own -save_model (retrain with fmlearn)")
        try:
            return fmlearn.load(path)
        except ModelFileError as e:
            raise UsageError(f"-load_model: {e}") from None

    def _model_task(self, model) -> str:
        task = "c" if hasattr(model, "classes_") else "r"
        if self.opts.task is not None and self.opts.task != task:
            kind = {"r": "regression", "c": "classification"}
            raise UsageError(f"-task {self.opts.task}: the model in '{self.opts.load_model}' is "
                             f"a {kind[task]} model")
        return task

    def _predict_only(self, model, task, train, test, relations, n_main, clip) -> int:
        """-load_model: predict -test (and score -train) with the saved model, no training."""
        from fmlearn.cli.libfm_inputs import make_split, scores
        from fmlearn.cli.libfm_report import libfm_metric, rlog_columns

        # The model's features are [main table | block 0 | block 1 ...], one weight each.
        n_blocks = sum(r.X.shape[1] for r in relations)
        n_params = model.w_.shape[0]
        n_model_main = n_params - n_blocks
        if n_model_main < 0:
            raise UsageError(f"the model has {n_params} features, fewer than the relations' "
                             f"{n_blocks}: was it trained with these -relation files?")
        if n_main > n_model_main:
            self.note(f"feature indices >= {n_model_main} do not exist in the model and are "
                      "ignored")
        te = make_split(test, task, n_model_main, relations, "test")
        parts = []
        if train is not None:
            tr = make_split(train, task, n_model_main, relations, "train")
            parts.append(f"Train={libfm_metric(task, tr, scores(model, tr, task), clip):g}")
        parts.append(f"Test={libfm_metric(task, te, scores(model, te, task), clip):g}")
        self.say("\t".join(["Final"] + parts))
        if self.opts.rlog is not None:
            with open(self.opts.rlog, "w") as f:
                f.write("\t".join(rlog_columns(self.opts.method, task, self.opts.k2, 1)) + "\n")
        self._write_out(model, te, task, clip)
        if self.opts.save_model is not None:
            self.say(f"Writing FM model to {self.opts.save_model}")
            model.save(self.opts.save_model)
        return 0

    def _write_out(self, model, split, task, clip) -> None:
        if self.opts.out is None:
            return
        import numpy as np

        from fmlearn.cli.libfm_inputs import scores

        p = scores(model, split, task)
        if task == "r" and clip is not None:
            p = np.clip(p, *clip)
        with open(self.opts.out, "w") as f:
            np.savetxt(f, p, fmt="%g")  # libFM writes with C++ stream defaults: 6 digits


def run(argv, stdout=None, stderr=None) -> int:
    """Run a libFM command line; returns the exit status (0, or 2 on any error)."""
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    try:
        values = parse_cmdline(list(argv))
        if not argv or "help" in values:
            print(help_text(), file=stdout)
            return 0
        return Command(Options.from_values(values), stdout, stderr).run()
    except (UsageError, DataFormatError, ModelFileError, TrainingDivergedError, ValueError,
            OSError) as e:
        message = " ".join(str(e).split())
        if isinstance(e, OSError) and e.filename is not None:
            message = f"{e.filename}: {e.strerror}"
        print(f"{PROG}: error: {message}", file=stderr)
        return 2


def main(argv=None) -> int:
    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
