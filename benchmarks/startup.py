"""Start-up and first-run times: the ``fmlearn`` command, ``import fmlearn``, a first fit.

Every measurement runs in a fresh Python process (``sys.executable``), timed from the parent
(wall time of the whole process: interpreter start, imports, work, exit) unless it says
otherwise. Four parts (``--parts``):

``help`` — ``fmlearn --help``, ``fmlearn train --help`` and ``fmlearn libfm -help`` (run as
    ``python -m fmlearn ...``), median of ``--repeats`` runs (default 7) after one untimed run.
``import`` — ``python -c "import fmlearn"`` and, for reference, ``python -c pass``; same rule.
``first-run`` — a small libFM file (5,000 rows x 200 features, made here) read with
    ``read_libfm``, then a first ``FMRegressor(solver="adagrad", max_iter=10, tol=None).fit``
    on it, each step timed inside the process: *cold* with a fresh, empty ``NUMBA_CACHE_DIR``
    (every kernel compiled; ``--cold-repeats`` runs, each with its own empty cache), then *warm*
    with that cache filled (median of ``--repeats`` runs).
``libfm`` — ``fmlearn libfm`` on MovieLens 100K u1 (user + item one-hot, written as libFM
    files from ``ml-100k``), ``-method mcmc -dim 1,1,8 -iter 100``, median of 3 runs after an
    untimed one: the wall time against the learning time the command reports itself (the sum
    of the ``-rlog`` column ``time_learn4``, the wall time of each iteration). Skipped when the
    data are absent (``--data`` or ``$FMLEARN_DATA``, default ``../shared/data``).

Python's bytecode cache is on for the timed processes (``PYTHONDONTWRITEBYTECODE`` is removed
from their environment), as after ``pip install``; the untimed first runs fill it.

    python benchmarks/startup.py                          # all parts, about 2 minutes
    python benchmarks/startup.py --parts help,import --no-write

Section: ``startup`` of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _report import machine_line, write_section  # noqa: E402

PARTS = ("help", "import", "first-run", "libfm")
WORK = HERE / "_work" / "startup"
DATA = Path(os.environ.get("FMLEARN_DATA", HERE.parent.parent / "shared" / "data"))

# Runs in the child process of the first-run part; prints one JSON line of step times.
FIRST_RUN = """
import json, sys, time
t0 = time.perf_counter()
from fmlearn.data.textio import read_libfm
t1 = time.perf_counter()
X, y = read_libfm(sys.argv[1])
t2 = time.perf_counter()
from fmlearn import FMRegressor
t3 = time.perf_counter()
model = FMRegressor(solver="adagrad", max_iter=10, tol=None, random_state=0).fit(X, y)
t4 = time.perf_counter()
model.predict(X)
t5 = time.perf_counter()
print(json.dumps({"import reader": t1 - t0, "read": t2 - t1, "import estimator": t3 - t2,
                  "fit": t4 - t3, "predict": t5 - t4}))
"""
STEPS = ("import reader", "read", "import estimator", "fit", "predict")


def uncommitted_sources() -> list[str]:
    out = subprocess.run(["git", "status", "--porcelain", "--", "src/fmlearn"], cwd=HERE.parent,
                         capture_output=True, text=True, check=False).stdout
    return [line[3:] for line in out.splitlines() if line.strip()]


def child_env(**extra) -> dict:
    """The environment of a timed process: bytecode cache on, plus ``extra``."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra)
    return env


def wall(argv, env, cwd=None) -> tuple[float, str]:
    """Wall seconds of one process, and its standard output; fails loudly if it fails."""
    t0 = time.perf_counter()
    run = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed ({run.returncode}):\n{run.stderr}")
    return elapsed, run.stdout


def median_wall(argv, repeats, env, cwd=None) -> tuple[float, float]:
    """(median, best) wall seconds of ``repeats`` runs, after one untimed run."""
    wall(argv, env, cwd)
    times = [wall(argv, env, cwd)[0] for _ in range(repeats)]
    return statistics.median(times), min(times)


def part_help(repeats) -> list[str]:
    env = child_env()
    fm = [sys.executable, "-m", "fmlearn"]
    rows = []
    for args in (["--help"], ["train", "--help"], ["libfm", "-help"]):
        med, best = median_wall(fm + args, repeats, env)
        cmd = "fmlearn " + " ".join(args)
        print(f"{cmd:24s} median {med:.3f} s  best {best:.3f} s", flush=True)
        rows.append(f"| `{cmd}` | {med:.2f} s | {best:.2f} s |")
    return [
        "### Commands that only parse their arguments",
        "",
        f"Wall time of the whole process (`python -m fmlearn ...`), median and best of "
        f"{repeats} runs after an untimed one. Target (issue \"one training engine\"): "
        "`fmlearn --help` under 0.6 s.",
        "",
        "| command | median | best |",
        "| --- | ---: | ---: |",
        *rows,
    ]


def part_import(repeats) -> list[str]:
    env = child_env()
    rows = []
    for code in ("pass", "import fmlearn"):
        med, best = median_wall([sys.executable, "-c", code], repeats, env)
        print(f"python -c {code!r:18s} median {med:.3f} s  best {best:.3f} s", flush=True)
        rows.append(f"| `python -c \"{code}\"` | {med:.2f} s | {best:.2f} s |")
    return [
        "### `import fmlearn`",
        "",
        f"Wall time of the whole process, median and best of {repeats} runs after an untimed "
        "one. `import fmlearn` loads the version only; each public name imports its module on "
        "first use.",
        "",
        "| command | median | best |",
        "| --- | ---: | ---: |",
        *rows,
    ]


def small_file() -> Path:
    from fmlearn.data import make_fm_regression
    from fmlearn.data.textio import write_libfm

    path = WORK / "small.libfm"
    if not path.exists():
        X, y, _ = make_fm_regression(5000, 200, random_state=0)
        WORK.mkdir(parents=True, exist_ok=True)
        write_libfm(path, X, y)
    return path


def first_run(path, cache) -> dict:
    env = child_env(NUMBA_CACHE_DIR=str(cache))
    elapsed, out = wall([sys.executable, "-c", FIRST_RUN, str(path)], env)
    steps = json.loads(out.strip().splitlines()[-1])
    steps["process"] = elapsed
    return steps


def part_first_run(repeats, cold_repeats) -> list[str]:
    path = small_file()
    columns = (*STEPS, "process")
    cold = []
    with tempfile.TemporaryDirectory(prefix="fmlearn-numba-") as tmp:
        wall([sys.executable, "-c", "import fmlearn.fm, fmlearn.data.textio"], child_env())
        for i in range(cold_repeats):
            cache = Path(tmp) / f"cold{i}"  # fresh and empty: every kernel compiles
            cold.append(first_run(path, cache))
            print("cold", {k: round(v, 3) for k, v in cold[-1].items()}, flush=True)
        warm = [first_run(path, cache) for _ in range(repeats)]  # the last cold run's cache
    cold_med = {c: statistics.median(r[c] for r in cold) for c in columns}
    warm_med = {c: statistics.median(r[c] for r in warm) for c in columns}
    print("warm", {k: round(v, 3) for k, v in warm_med.items()}, flush=True)
    head = " | ".join(columns)
    return [
        "### First run: reading a file and a first fit",
        "",
        "A fresh process reads a libFM file of 5,000 rows x 200 features (`read_libfm`) and "
        "fits `FMRegressor(solver=\"adagrad\", max_iter=10, tol=None, random_state=0)` on it "
        "(n_factors = 8), then predicts the same rows; each step timed inside the process, "
        "\"process\" is the wall time of the whole process. Cold: a fresh, empty "
        f"`NUMBA_CACHE_DIR` (numba compiles every kernel; median of {cold_repeats} run(s)); "
        f"warm: the cache that run filled (median of {repeats} runs).",
        "",
        f"| numba cache | {head} |",
        "| --- |" + " ---: |" * len(columns),
        "| cold | " + " | ".join(f"{cold_med[c]:.2f} s" for c in columns) + " |",
        "| warm | " + " | ".join(f"{warm_med[c]:.2f} s" for c in columns) + " |",
    ]


def libfm_files(data: Path) -> tuple[Path, Path]:
    from fmlearn.data.movielens import load_movielens100k
    from fmlearn.data.textio import write_libfm

    train, test = WORK / "ml100k.u1.train.libfm", WORK / "ml100k.u1.test.libfm"
    if not (train.exists() and test.exists()):
        X_train, y_train, X_test, y_test = load_movielens100k(data / "ml-100k", "u1")
        WORK.mkdir(parents=True, exist_ok=True)
        write_libfm(train, X_train, y_train)
        write_libfm(test, X_test, y_test)
    return train, test


def part_libfm(data: Path, repeats) -> list[str]:
    if not (data / "ml-100k").is_dir():
        print(f"libfm: skipped, no {data / 'ml-100k'}", flush=True)
        return []
    train, test = libfm_files(data)
    rlog = WORK / "ml100k.rlog"
    args = ["-task", "r", "-train", train.name, "-test", test.name, "-dim", "1,1,8", "-iter",
            "100", "-method", "mcmc", "-seed", "0", "-out", "ml100k.pred", "-rlog", rlog.name]
    argv = [sys.executable, "-m", "fmlearn", "libfm", *args]
    env = child_env()
    wall(argv, env, cwd=WORK)
    walls, learns = [], []
    for _ in range(repeats):
        walls.append(wall(argv, env, cwd=WORK)[0])
        with open(rlog) as f:
            header = f.readline().rstrip("\n").split("\t")
            col = header.index("time_learn4")
            learns.append(sum(float(line.split("\t")[col]) for line in f))
    w, learn = statistics.median(walls), statistics.median(learns)
    print(f"fmlearn libfm: wall {w:.2f} s, learning {learn:.2f} s", flush=True)
    return [
        "### `fmlearn libfm` on MovieLens 100K",
        "",
        "MovieLens 100K u1 (user + item one-hot, 80,000 training and 20,000 test rows as libFM "
        f"text files): `fmlearn libfm {' '.join(args)}`. Median of {repeats} runs after an "
        "untimed one. Learning = the sum of the `time_learn4` column of the `-rlog` (the wall "
        "time of each iteration); the rest is start-up, reading, set-up and writing.",
        "",
        "| wall time | learning | the rest |",
        "| ---: | ---: | ---: |",
        f"| {w:.2f} s | {learn:.2f} s | {w - learn:.2f} s |",
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {PARTS}")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per measurement")
    parser.add_argument("--cold-repeats", type=int, default=1,
                        help="first-run part: cold runs, each compiling every kernel")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--no-write", action="store_true", help="don't update docs/benchmarks.md")
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")

    load_before, start = os.getloadavg()[0], time.perf_counter()
    body = []
    if "help" in parts:
        body += part_help(args.repeats) + [""]
    if "import" in parts:
        body += part_import(args.repeats) + [""]
    if "first-run" in parts:
        body += part_first_run(args.repeats, args.cold_repeats) + [""]
    if "libfm" in parts:
        body += part_libfm(args.data, 3) + [""]

    cmd = "python benchmarks/startup.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    import fmlearn

    dirty = uncommitted_sources()
    lines = [
        "## Start-up and first run",
        "",
        f"Measured by `{cmd}` on {time.strftime('%Y-%m-%d')} in "
        f"{(time.perf_counter() - start) / 60:.1f} min; fmlearn {fmlearn.__version__}. "
        f"Machine: {machine_line()}. Load average (1 min) {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after (a shared machine: times are noisy). Python's "
        "bytecode cache on."
        + (" fmlearn ran from a working tree with uncommitted changes in "
           + ", ".join(f"`{f}`" for f in dirty) + "." if dirty else ""),
        "",
        *body,
    ]
    text = "\n".join(lines)
    print()
    print(text)
    if not args.no_write:
        write_section("startup", text)


if __name__ == "__main__":
    main()
