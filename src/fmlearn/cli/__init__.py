"""The ``fmlearn`` command line: demo, train, predict, evaluate, plot, export, convert, libfm.

Argument parsing and calls into the estimators and readers only; no math here.

Start-up is kept short: building the parser and ``fmlearn --help`` import nothing but
argparse (no numpy, scikit-learn or numba), and each command imports what it needs once its
arguments are parsed. ``fmlearn train`` builds its model flags from the chosen estimator's
signature (:mod:`fmlearn.cli.train`), so it parses its own arguments, as ``fmlearn libfm``
does (:mod:`fmlearn.cli.libfm`).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import os
import sys
import warnings

EPILOG = """examples:
  fmlearn demo
  fmlearn train --train ml.train.libfm --valid ml.valid.libfm --task regression \\
      --n-factors 8 --l2-reg-V 0.1 --early-stopping --model-out ml.fmz
  fmlearn evaluate --model ml.fmz --data ml.test.libfm
  fmlearn predict --model ml.fmz --data ml.test.libfm --out predictions.txt
  fmlearn export ml.fmz --onnx ml.onnx

Input files are libFM/libsvm text ("label idx:value idx:value ..."; indices used as given,
0-based or 1-based alike), or FFM text ("label field:idx:value ...") with --format ffm.
A model file holding an FMEncoder pipeline (fmlearn.save) predicts from a CSV or Parquet
table of the original columns:
  fmlearn evaluate --model pipe.fmz --data test.csv --target rating
"""


def _command(name: str):
    """``args -> int`` running ``fmlearn.cli.commands.<name>``, imported only when called."""

    def run(args):
        from fmlearn.cli import commands

        return getattr(commands, name)(args)

    return run


def _train(args) -> int:
    from fmlearn.cli.train import run

    return run(args.argv)


def _libfm(args) -> int:
    from fmlearn.cli.libfm import run

    return run(args.argv)


def _passthrough(sub, name: str, **kwargs) -> None:
    """A subcommand that parses its own arguments: every token after ``name`` is passed on."""
    p = sub.add_parser(name, prefix_chars="\0", add_help=False, **kwargs)  # no token is a flag
    p.add_argument("argv", nargs="*", help=argparse.SUPPRESS)


def _table_flags(p, name: str) -> None:
    """Flags of ``predict`` and ``evaluate`` for CSV/Parquet tables (fmlearn.cli.tables)."""
    p.add_argument(
        "--target",
        metavar="COLUMN",
        help="tables: the label column"
        + (" (required)" if name == "evaluate" else "; dropped before predicting, if given"),
    )
    p.add_argument(
        "--sep", metavar="CHAR", help="CSV: the field separator. Default: tab for .tsv, else ','."
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``fmlearn`` parser; imports nothing heavy (``fmlearn --help`` stays fast)."""
    from fmlearn._version import __version__

    parser = argparse.ArgumentParser(
        prog="fmlearn",
        description="Factorization machines: train, evaluate and apply models on libFM, "
        "libsvm or FFM text files.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    p.set_defaults(func=_command("cmd_demo"))

    # Its model flags come from the estimator chosen by --model and --task: see cli/train.py.
    _passthrough(sub, "train", help="train a model on a libFM/libsvm/FFM file "
                 "(fmlearn train --help; fmlearn train --model ffm --help ...)")
    sub.choices["train"].set_defaults(func=_train)

    for name, text in (
        (
            "evaluate",
            "print metrics of a saved model on a labeled file (RMSE/MAE, or logloss/AUC/accuracy)",
        ),
        (
            "predict",
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
            choices=("libfm", "ffm", "csv", "parquet"),
            default=None,
            help="input format. Default: csv for .csv/.tsv files, parquet for .parquet, "
            "else libfm. CSV and Parquet tables of the original columns need a model file "
            "that holds an FMEncoder (a Pipeline saved with fmlearn.save).",
        )
        _table_flags(p, name)
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
        p.set_defaults(func=_command(f"cmd_{name}"))
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
    p.set_defaults(func=_command("cmd_plot"))

    text = "export a saved model for serving: an ONNX graph that onnxruntime runs"
    p = sub.add_parser("export", help=text, description=text[0].upper() + text[1:] + " (see "
                       "docs/serving.md for its inputs and outputs).")
    p.add_argument("model", metavar="MODEL", help="a model file saved by train or fmlearn.save")
    p.add_argument("--onnx", required=True, metavar="OUT", help="the ONNX file to write")
    p.set_defaults(func=_command("cmd_export"))

    from fmlearn.cli import convert  # argparse only at import

    convert.add_parser(sub)

    _passthrough(sub, "libfm",
                 help="libFM drop-in: libFM's flags, files and outputs (fmlearn libfm -help)",
                 description="Runs libFM command lines: fmlearn libfm -task r -train FILE "
                 "-test FILE ...")
    sub.choices["libfm"].set_defaults(func=_libfm)
    return parser


def _cli_warning(command: str):
    def format_warning(message, category, filename, lineno, line=None):
        return f"fmlearn {command}: warning: {message}\n"

    return format_warning


@contextlib.contextmanager
def _warnings_as_messages(command: str):
    """Print warnings as ``fmlearn COMMAND: warning: ...`` while a command runs.

    A command's warnings are messages to its user: no Python source lines. The formatter is
    swapped rather than ``showwarning``, so that ``catch_warnings(record=True)`` (pytest.warns)
    still records them, and put back on the way out, which ``catch_warnings`` does not do.
    """
    saved = warnings.formatwarning
    try:
        with warnings.catch_warnings():
            warnings.formatwarning = _cli_warning(command)
            yield
    finally:
        warnings.formatwarning = saved


# Exit codes (docs/cli.md).
EXIT_OK = 0
EXIT_INTERNAL = 1  # a bug: an unexpected exception (FMLEARN_TRACEBACK=1 shows its traceback)
EXIT_USAGE = 2  # bad arguments, input files or model files; a refused output path; too large
EXIT_IO = 74  # reading or writing failed (disk full, I/O error): sysexits' EX_IOERR
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
EXIT_BROKEN_PIPE = 141  # the reader of standard output went away (128 + SIGPIPE)

# OSError numbers that mean the system failed a read or write, not that a path was wrong.
_IO_ERRNOS = frozenset(
    getattr(errno, name) for name in ("ENOSPC", "EIO", "EDQUOT", "EFBIG", "EROFS", "ENXIO")
    if hasattr(errno, name)
)


def _quiet_stdout() -> None:
    """Point standard output at /dev/null, so that flushing it at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _error_line(command: str, e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        name = os.fspath(e.filename) if e.filename is not None else ""
        text = f"{name}: {e.strerror}" if name and name not in e.strerror else e.strerror
    elif isinstance(e, MemoryError) and not str(e):
        text = "out of memory"
    else:
        text = str(e) or type(e).__name__
    return f"fmlearn {command}: error: {' '.join(text.split())}"


def main(argv=None) -> int:
    """Entry point of the ``fmlearn`` command.

    Returns the exit status; every failure prints one line on stderr and never a traceback
    (the codes are the ``EXIT_*`` constants above).
    """
    from fmlearn.exceptions import DataFormatError, ModelFileError, TrainingDivergedError

    args = build_parser().parse_args(argv)
    try:
        with _warnings_as_messages(args.command):
            status = args.func(args)
        sys.stdout.flush()  # a full disk or a closed pipe is an error of this command
        return status
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"fmlearn {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (
        DataFormatError,
        ModelFileError,
        TrainingDivergedError,
        ValueError,
        MemoryError,
    ) as e:
        print(_error_line(args.command, e), file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        print(_error_line(args.command, e), file=sys.stderr)
        if e.errno in _IO_ERRNOS:
            _quiet_stdout()  # stdout may be the full device
            return EXIT_IO
        return EXIT_USAGE
    except Exception as e:
        if os.environ.get("FMLEARN_TRACEBACK"):
            raise
        print(
            f"fmlearn {args.command}: internal error: {type(e).__name__}: {e} (please report "
            "it; FMLEARN_TRACEBACK=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def console_main() -> int:
    """The ``fmlearn`` executable and ``python -m fmlearn``: :func:`main`, then a quick exit.

    Tearing the interpreter down after a command (the ~1,800 modules that numba, scipy and
    scikit-learn bring, pandas among them) took 0.3-0.4 s and serves no purpose in a process
    that is ending. So once every other ``atexit`` handler has run, this one flushes the
    standard streams and ends the process with the command's status. :func:`main` itself
    returns normally, for callers in Python.
    """
    status = 1  # an uncaught exception

    def end() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe or stream
                pass
        os._exit(status)

    atexit.register(end)  # registered before any command's: handlers run last-in, first-out
    try:
        status = main()
    except SystemExit as e:  # --help, argparse errors, a command's SystemExit("message")
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        raise
    except KeyboardInterrupt:  # before a command started (main handles it after)
        print("fmlearn: interrupted", file=sys.stderr)
        status = EXIT_INTERRUPTED
    return status


__all__ = ["build_parser", "console_main", "main"]

if __name__ == "__main__":
    sys.exit(console_main())
