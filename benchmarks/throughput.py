"""Side-by-side FM training throughput: fmlearn vs Spark ML, torchfm and Vowpal Wabbit.

Every tool trains a squared-loss factorization machine with 16 factors on the same synthetic
click-through-like data (20 one-hot categorical fields), converted to the tool's own format
before the clock starts. Reported: training rows/second (rows x epochs / wall seconds of
training only, after a warm-up) at 1 and 2 threads, and the RMSE on a 10% holdout.

    bash benchmarks/setup_peers.sh
    benchmarks/.venv/bin/python benchmarks/throughput.py                 # full run, ~25 min
    benchmarks/.venv/bin/python benchmarks/throughput.py --rows 100000 --tools fmlearn,vw

Each tool runs in its own subprocess (fresh thread pools, memory returned between tools).
The table goes to stdout and, unless ``--no-write``, to the "throughput" section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _report import machine_line, write_section  # noqa: E402
from peers import TOOLS, Config, Data, load  # noqa: E402

WORKDIR = HERE / "_work"
N_FIELDS = 20
N_CATS = 50_000
HIDDEN_K = 16
NOISE = 0.1
W0, LINEAR_VAR, PAIR_VAR = 0.5, 0.5, 0.5  # hidden FM: bias, variance of linear / pair parts
RESULT_TAG = "RESULT "
# a timed fit shorter than this is repeated (up to SHORT_RUN_REPEATS fits) and the best kept
SHORT_RUN_S, SHORT_RUN_REPEATS = 5.0, 3
BUSY_CORES = 0.25  # other jobs' average CPU use (cores) above which a row is marked


# ----------------------------------------------------------------------------- data


def hidden_fm(rng: np.random.Generator, n_features: int):
    """Parameters (w0, w, V) of the FM that generates the target.

    Scales chosen so that, with one active feature per field, the linear part and the
    pairwise part each have variance LINEAR_VAR / PAIR_VAR: 20 weights of variance
    s_w^2, and 190 field pairs x k=16 products of variance s_v^4.
    """
    n_pairs = N_FIELDS * (N_FIELDS - 1) // 2
    s_w = (LINEAR_VAR / N_FIELDS) ** 0.5
    s_v = (PAIR_VAR / (n_pairs * HIDDEN_K)) ** 0.25
    w = rng.normal(0.0, s_w, n_features)
    V = rng.normal(0.0, s_v, (n_features, HIDDEN_K))
    return W0, w, V


def sample_fields(rng: np.random.Generator, rows: int, distribution: str, exponent: float):
    """``(rows, N_FIELDS)`` int32 category ids, one active category per field and row.

    ``zipf``: the category of popularity rank r (1-based) is drawn with probability
    proportional to 1 / r**exponent; ranks map to ids through a random permutation per field.
    ``uniform``: every category equally likely.
    """
    fields = np.empty((rows, N_FIELDS), dtype=np.int32)
    if distribution == "zipf":
        p = 1.0 / np.arange(1, N_CATS + 1, dtype=np.float64) ** exponent
        cdf = np.cumsum(p / p.sum())
        for f in range(N_FIELDS):
            ranks = np.minimum(np.searchsorted(cdf, rng.random(rows), side="right"), N_CATS - 1)
            fields[:, f] = rng.permutation(N_CATS).astype(np.int32)[ranks]
    elif distribution == "uniform":
        for f in range(N_FIELDS):
            fields[:, f] = rng.integers(0, N_CATS, rows, dtype=np.int32)
    else:
        raise ValueError(f"unknown distribution {distribution!r}")
    return fields


def fm_target(fields: np.ndarray, w0, w, V, rng: np.random.Generator, chunk: int = 50_000):
    """y = w0 + sum_i w_i + sum_{i<j} <v_i, v_j> + N(0, NOISE^2), all x_i = 1."""
    offsets = np.arange(N_FIELDS, dtype=np.int64) * N_CATS
    y = np.empty(len(fields), dtype=np.float64)
    for start in range(0, len(fields), chunk):
        ids = fields[start : start + chunk].astype(np.int64) + offsets
        Vs = V[ids]  # (c, fields, k)
        s = Vs.sum(axis=1)
        pair = 0.5 * ((s * s).sum(axis=1) - (Vs * Vs).sum(axis=(1, 2)))
        y[start : start + chunk] = w0 + w[ids].sum(axis=1) + pair
    y += rng.normal(0.0, NOISE, len(y))
    return y.astype(np.float32)


def make_data(rows: int, distribution: str, exponent: float, seed: int) -> Path:
    """Generate (or reuse) the data set; returns the path of its .npz under benchmarks/_work."""
    tag = f"zipf{exponent:g}" if distribution == "zipf" else distribution
    path = WORKDIR / f"data-{rows}-{tag}-s{seed}.npz"
    if path.exists():
        return path
    WORKDIR.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rng_model, rng_data, rng_noise = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    w0, w, V = hidden_fm(rng_model, N_FIELDS * N_CATS)
    fields = sample_fields(rng_data, rows, distribution, exponent)
    y = fm_target(fields, w0, w, V, rng_noise)
    n_test = rows // 10
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        train=fields[:-n_test],
        y_train=y[:-n_test],
        test=fields[-n_test:],
        y_test=y[-n_test:],
        n_cats=N_CATS,
        distribution=tag,
    )
    tmp.rename(path)
    log(f"data {path.name}: {time.perf_counter() - t0:.1f}s")
    return path


def load_data(path: Path) -> Data:
    z = np.load(path)
    return Data(
        train=z["train"],
        y_train=z["y_train"],
        test=z["test"],
        y_test=z["y_test"],
        n_cats=int(z["n_cats"]),
        distribution=str(z["distribution"]),
        workdir=WORKDIR,
        key=path.stem,
    )


# ----------------------------------------------------------------------------- worker


def log(msg: str) -> None:
    print(f"[throughput {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _busy_ticks() -> int:
    """CPU ticks spent busy on the whole machine so far (all cores, /proc/stat)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(
            int, f.readline().split()[1:9]
        )
    return user + nice + system + irq + softirq + steal


def _own_ticks(root: int) -> int:
    """CPU ticks of process ``root`` and its descendants (threads and waited children included)."""
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        procs[int(name)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    tree, grew = {root}, True
    while grew:
        new = {pid for pid, (ppid, _) in procs.items() if ppid in tree} - tree
        tree |= new
        grew = bool(new)
    return sum(procs[pid][1] for pid in tree if pid in procs)


class OtherLoad:
    """Average number of cores other processes kept busy while the block ran.

    Busy ticks of the machine minus those of this process tree, over the wall time: the way to
    tell a clean measurement from one shared with someone else's job.
    """

    def __enter__(self):
        self.t0, self.busy0, self.own0 = time.perf_counter(), _busy_ticks(), _own_ticks(os.getpid())
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t0
        others = (_busy_ticks() - self.busy0) - (_own_ticks(os.getpid()) - self.own0)
        self.cores = max(0.0, others / os.sysconf("SC_CLK_TCK") / max(wall, 1e-9))
        return False


def run_worker(args) -> None:
    """Run every configuration of one tool on one data set; print one JSON line per result."""
    data = load_data(Path(args.data))
    module = load(args.worker)

    def emit(cfg: Config, threads, rows, **fields):
        rec = {
            "tool": module.NAME,
            "config": cfg.label,
            "data": data.distribution,
            "threads": threads,
            "rows": rows,
            "epochs": args.epochs,
            "note": cfg.note,
        }
        rec.update(fields)
        print(RESULT_TAG + json.dumps(rec), flush=True)

    for cfg in module.configs(args):
        sub = data.head(cfg.max_rows)
        rows = len(sub.train)
        try:
            t0 = time.perf_counter()
            obj = module.prepare(sub, cfg)
            log(
                f"{module.NAME} {cfg.label}: prepared {rows} rows in "
                f"{time.perf_counter() - t0:.1f}s"
            )
            compile_s = module.warmup(obj)
        except Exception as exc:  # report and go on with the next configuration
            log(f"{module.NAME} {cfg.label}: FAILED to prepare: {exc!r}")
            emit(cfg, None, rows, error=f"{type(exc).__name__}: {exc}")
            continue
        for threads in cfg.threads:
            if threads is None:
                emit(cfg, None, rows)
                continue
            try:
                with OtherLoad() as other:
                    seconds = module.train(obj, threads, args.epochs)
                    repeats = 1
                    while seconds * repeats < SHORT_RUN_S and repeats < SHORT_RUN_REPEATS:
                        seconds = min(seconds, module.train(obj, threads, args.epochs))
                        repeats += 1
                err = module.rmse(obj)
            except Exception as exc:
                log(f"{module.NAME} {cfg.label} x{threads}: FAILED: {exc!r}")
                emit(cfg, threads, rows, error=f"{type(exc).__name__}: {exc}")
                continue
            rate = rows * args.epochs / seconds
            extra = {}
            if hasattr(module, "epoch_seconds"):  # the epoch alone, set-up costs cancelled
                with OtherLoad() as other_epoch:
                    extra["epoch_rows_per_s"] = rows / module.epoch_seconds(obj, threads)
                extra["epoch_other_cores"] = other_epoch.cores
            log(
                f"{module.NAME} {cfg.label} x{threads}: {seconds:.2f}s, {rate:,.0f} rows/s, "
                f"rmse {err:.4f}, other jobs {other.cores:.2f} cores"
            )
            emit(
                cfg,
                threads,
                rows,
                seconds=seconds,
                rows_per_s=rate,
                rmse=err,
                compile_s=compile_s,
                repeats=repeats,
                other_cores=other.cores,
                **extra,
            )
        if hasattr(module, "close"):
            module.close(obj)


# ----------------------------------------------------------------------------- driver


def run_tool(tool: str, data_path: Path, args) -> list[dict]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        tool,
        "--data",
        str(data_path),
    ] + args.passthrough
    log(f"--- {tool} on {data_path.name}")
    try:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, text=True, timeout=args.timeout, check=False
        )
        out, failure = proc.stdout, (f"exit code {proc.returncode}" if proc.returncode else "")
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        failure = f"timed out after {args.timeout:.0f}s"
    results = [
        json.loads(line[len(RESULT_TAG) :])
        for line in out.splitlines()
        if line.startswith(RESULT_TAG)
    ]
    if failure:
        log(f"{tool}: worker {failure}")
        results.append(
            {
                "tool": tool,
                "config": "(worker)",
                "data": load_data_tag(data_path.stem),
                "threads": None,
                "rows": None,
                "epochs": args.epochs,
                "error": failure,
            }
        )
    return results


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def render_table(results: list[dict]) -> str:
    by_key = {(r["tool"], r["config"], r["data"], r["threads"]): r for r in results}
    lines = [
        "| tool | config | data | threads | rows used | epochs | rows/s | speedup 2 vs 1 "
        "| holdout RMSE |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        threads = "n/a" if r["threads"] is None and "error" not in r else r["threads"] or "-"
        rows = f"{r['rows']:,}" if r.get("rows") else "-"
        if "error" in r:
            rate, speed, err = f"failed: {r['error'][:80]}", "", ""
        elif r["threads"] is None:
            rate, speed, err = "n/a", "n/a", ""
        else:
            rate, err, speed = fmt_rate(r["rows_per_s"]), f"{r['rmse']:.4f}", ""
            if r.get("other_cores", 0.0) > BUSY_CORES:
                rate += " †"
            one = by_key.get((r["tool"], r["config"], r["data"], 1))
            if r["threads"] == 2 and one and "rows_per_s" in one:
                speed = f"{r['rows_per_s'] / one['rows_per_s']:.2f}x"
        lines.append(
            f"| {r['tool']} | {r['config']} | {r['data']} | {threads} | {rows} | "
            f"{r['epochs']} | {rate} | {speed} | {err} |"
        )
    return "\n".join(lines)


def render_epoch_table(results: list[dict]) -> str:
    """Tools that can time one epoch alone (fmlearn): rows/s of the epoch and its speedup."""
    rows = [r for r in results if "epoch_rows_per_s" in r]
    if not rows:
        return ""
    by_key = {(r["tool"], r["config"], r["data"], r["threads"]): r for r in rows}
    lines = [
        "| tool | config | data | threads | rows/s, epoch alone | speedup 2 vs 1 |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        rate = fmt_rate(r["epoch_rows_per_s"])
        if r.get("epoch_other_cores", 0.0) > BUSY_CORES:
            rate += " †"
        one = by_key.get((r["tool"], r["config"], r["data"], 1))
        speed = (f"{r['epoch_rows_per_s'] / one['epoch_rows_per_s']:.2f}x"
                 if r["threads"] == 2 and one else "")
        lines.append(f"| {r['tool']} | {r['config']} | {r['data']} | {r['threads']} | {rate} | "
                     f"{speed} |")
    return "\n".join(lines)


def baseline_rmse(data_path: Path) -> tuple[float, float]:
    """RMSE on the holdout of predicting the training mean, and of the noise alone."""
    z = np.load(data_path)
    y_test = z["y_test"].astype(np.float64)
    mean = float(z["y_train"].astype(np.float64).mean())
    return float(np.sqrt(np.mean((y_test - mean) ** 2))), NOISE


def data_notes(args, paths: dict[str, Path]) -> str:
    n_test = args.rows // 10
    lines = [
        f"- Data: {args.rows:,} rows generated in the script (numpy `default_rng` seed "
        f"{args.seed}), {N_FIELDS} categorical fields x {N_CATS:,} categories = "
        f"{N_FIELDS * N_CATS:,} one-hot features, exactly one active feature per field "
        f"(20 nonzeros of value 1.0 per row). The last {n_test:,} rows are the holdout; "
        f'training uses the first {args.rows - n_test:,} (or fewer where "rows used" says so).',
        f"- `zipf{args.zipf_exponent:g}`: within each field the category of popularity rank r is "
        f"drawn with probability proportional to 1/r^{args.zipf_exponent:g} (ranks shuffled to "
        f"ids per field), like real CTR logs. `uniform`: all categories equally likely "
        f"(~{(args.rows - n_test) / N_CATS:.0f} occurrences each in training).",
        f"- Target: a hidden FM (k = {HIDDEN_K}, w0 = {W0}, w and V normal with scales such "
        f"that the linear and the pairwise parts each have variance {LINEAR_VAR} when the "
        f"features are uniform) plus N(0, {NOISE}^2) noise; every tool fits a squared-loss FM "
        "with 16 factors. Most of the million features are rare (all of them, for `uniform`), "
        "so no tool gets near the noise floor in one pass; the RMSE column is a sanity check "
        "that training works, compare it with the predict-the-mean RMSE below.",
    ]
    for dist, path in paths.items():
        base, noise = baseline_rmse(path)
        lines.append(
            f"- Holdout RMSE of predicting the training mean ({dist}): {base:.4f}; "
            f"noise floor: {noise:.2f}."
        )
    return "\n".join(lines)


def compile_notes(info: dict | None) -> str:
    if not info:
        return ""
    return (
        "- fmlearn JIT compile, measured in fresh `python -c` processes that import fmlearn and "
        "fit 12,000 rows (sgd, 16 factors) at n_jobs=1, then again at n_jobs=2 (two threads: "
        "their kernel, with per-thread copies of the hot rows, is a variant of its own): with "
        f"the numba cache files removed (cold) the first fit takes {info['cold_fit1_s']:.2f}s "
        f"and the n_jobs=2 fit after it {info['cold_fit2_s']:.2f}s; with the cache written by "
        f"that run (warm) {info['warm_fit1_s']:.2f}s and {info['warm_fit2_s']:.2f}s. "
        f"`import fmlearn` (with numpy/scipy/scikit-learn) takes {info['import_s']:.1f}s; the "
        f"whole processes {info['cold_process_s']:.1f}s cold, {info['warm_process_s']:.1f}s "
        "warm. The timed fits above ran after an in-process warm-up fit on 12,000 rows at "
        "both thread counts."
    )


def peer_notes(tools: list[str], args) -> str:
    out = []
    for tool in tools:
        try:
            out.append(load(tool).describe(args))
        except Exception as exc:  # a peer that cannot even be imported still gets a line
            out.append(f"- {tool}: could not describe ({type(exc).__name__}: {exc})")
    return "\n".join(out)


def settings_of(args) -> dict:
    keys = ("rows", "epochs", "zipf_exponent", "seed", "spark_rows", "torch_rows")
    return {k: getattr(args, k) for k in keys}


def merge_state(args, tools, dists, results, compile_info, run) -> dict:
    """This run's results, with ``--merge`` on top of the last run's for the other tools.

    The last results are kept in benchmarks/_work/throughput-last-*.json, so a tool whose numbers
    were spoiled (another job on the shared machine) can be re-measured alone.
    """
    state = {
        "settings": settings_of(args),
        "results": results,
        "compile": compile_info,
        "runs": [run],
    }
    last_run = WORKDIR / f"throughput-last-{args.rows}-e{args.epochs}.json"
    if args.merge and last_run.exists():
        prev = json.loads(last_run.read_text())
        if prev["settings"] != state["settings"]:
            raise SystemExit(f"--merge: the last run used other settings: {prev['settings']}")
        tags = {
            load_data_tag(make_data(args.rows, d, args.zipf_exponent, args.seed).stem)
            for d in dists
        }
        redone = {(t, tag) for t in tools for tag in tags}
        kept = [r for r in prev["results"] if (r["tool"], r["data"]) not in redone]
        order = {t: i for i, t in enumerate(TOOLS)}
        state["results"] = sorted(
            kept + results,
            key=lambda r: (not r["data"].startswith("zipf"), order.get(r["tool"], len(order))),
        )
        state["compile"] = compile_info or prev.get("compile")
        # A re-measurement of the same tools and distributions replaces the earlier one; the
        # runs whose rows are all gone are no longer reported.
        state["runs"] = [
            r for i, r in enumerate(prev["runs"])
            if i == 0 or r.get("what") != run["what"]
        ] + [run]
    WORKDIR.mkdir(parents=True, exist_ok=True)
    last_run.write_text(json.dumps(state, indent=1))
    return state


def load_data_tag(stem: str) -> str:
    """The distribution tag ("zipf1.1", "uniform") of a data file stem."""
    return stem.split("-")[2]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="rows generated (10%% holdout)")
    p.add_argument("--epochs", type=int, default=1, help="passes over the training rows")
    p.add_argument("--tools", default=",".join(TOOLS), help=f"comma list of {', '.join(TOOLS)}")
    p.add_argument(
        "--distribution",
        default="zipf,uniform",
        help="comma list of zipf, uniform (each runs every tool)",
    )
    p.add_argument("--zipf-exponent", type=float, default=1.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--spark-rows", type=int, default=None, help="cap on Spark's training rows (default: all)"
    )
    p.add_argument(
        "--torch-rows",
        default="500,25000,200000",
        help="training rows for torchfm at batch 1, 256, 2048 (dense updates of "
        "17M parameters per step make it slow)",
    )
    p.add_argument("--timeout", type=float, default=1800, help="seconds per tool subprocess")
    p.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    p.add_argument(
        "--render",
        action="store_true",
        help="measure nothing: rewrite the section from the last run's saved results",
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the last run's rows for the tools/distributions not run now (same settings)",
    )
    p.add_argument(
        "--no-compile-times",
        action="store_true",
        help="skip fmlearn's cold/warm first-fit measurement",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        run_worker(args)
        return 0
    if args.render:
        last_run = WORKDIR / f"throughput-last-{args.rows}-e{args.epochs}.json"
        body = render_body(args, json.loads(last_run.read_text()))
        print(body)
        if not args.no_write:
            write_section("throughput", body)
        return 0

    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    dists = [d.strip() for d in args.distribution.split(",") if d.strip()]
    unknown = sorted(set(tools) - set(TOOLS)) + sorted(set(dists) - {"zipf", "uniform"})
    if unknown:
        p.error(f"unknown tool/distribution: {', '.join(unknown)}")
    # options the workers need, passed through verbatim
    args.passthrough = [
        "--rows",
        str(args.rows),
        "--epochs",
        str(args.epochs),
        "--torch-rows",
        args.torch_rows,
    ] + (["--spark-rows", str(args.spark_rows)] if args.spark_rows else [])

    t_start = time.perf_counter()
    load_before = os.getloadavg()[0]
    compile_info = None
    if "fmlearn" in tools and not args.no_compile_times:
        try:
            compile_info = load("fmlearn").compile_times()
            log(f"fmlearn compile: {compile_info}")
        except Exception as exc:
            log(f"fmlearn compile-time measurement failed: {exc!r}")

    results = []
    for dist in dists:
        path = make_data(args.rows, dist, args.zipf_exponent, args.seed)
        for tool in tools:
            results.extend(run_tool(tool, path, args))
    run = {
        "command": "benchmarks/.venv/bin/python benchmarks/throughput.py "
        + shlex.join(argv if argv is not None else sys.argv[1:]),
        "minutes": (time.perf_counter() - t_start) / 60,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "what": f"{', '.join(tools)} on {', '.join(dists)}",
        "machine": machine_line(),
    }
    state = merge_state(args, tools, dists, results, compile_info, run)
    body = render_body(args, state)
    print(body)
    if not args.no_write:
        write_section("throughput", body)
        log("wrote the throughput section of docs/benchmarks.md")
    return 0


def render_body(args, state: dict) -> str:
    results = state["results"]
    tools = [t for t in TOOLS if any(r["tool"] == t for r in results)]
    paths = {}
    for r in results:
        dist = "zipf" if r["data"].startswith("zipf") else "uniform"
        paths.setdefault(dist, make_data(args.rows, dist, args.zipf_exponent, args.seed))
    first, *later = state["runs"]
    runs = [
        f"Reproduce: `bash benchmarks/setup_peers.sh && {first['command'].strip()}` "
        f"({first['minutes']:.1f} min; load average (1 min) {first['load_before']:.1f} before, "
        f"{first['load_after']:.1f} after)."
    ]
    for run in later:
        runs.append(
            f"Then {run['what']} re-measured with `{run['command'].strip()}` "
            f"({run['minutes']:.1f} min; load average "
            f"{run['load_before']:.1f} before, {run['load_after']:.1f} after)."
        )
    repeats = any(r.get("repeats", 1) > 1 for r in results)
    return "\n\n".join(
        part
        for part in [
            "## Training throughput vs peer FM tools",
            "Rows/s = training rows x epochs / wall seconds of training only (data already "
            "converted to each tool's format, warm-up done). n_factors = 16 everywhere. "
            "Speedup = rows/s at 2 threads / rows/s at 1 thread. The RMSE on the 10% holdout "
            "checks that the fast runs do learn: compare it with the predict-the-mean RMSE "
            "under Data (one pass over mostly rare features is not enough for a good model)."
            + (
                f" Fits shorter than {SHORT_RUN_S:.0f} s were timed up to {SHORT_RUN_REPEATS} "
                "times and the fastest kept."
                if repeats
                else ""
            ),
            render_table(results),
            (
                "One epoch alone, without the fixed costs of a `fit` (input checks, the "
                "parameter table's allocation and random draws, thread start-up), which weigh "
                "heavily in a one-epoch fit: (t(6 epochs) - t(1 epoch)) / 5 of whole fits, best "
                "of 3 each.\n\n" + render_epoch_table(results)
            )
            if render_epoch_table(results)
            else "",
            f"† other processes kept more than {BUSY_CORES} of the 2 cores busy on average "
            "while this row was timed (measured from /proc: busy CPU time of the machine minus "
            "the benchmark's own), so it is likely too low."
            if any(r.get("other_cores", 0.0) > BUSY_CORES for r in results)
            else "",
            "\n".join(runs),
            f"Machine: {first.get('machine') or machine_line()}. The machine is shared: other "
            "jobs running at the same time lower the 2-thread numbers most.",
            "### Data\n\n" + data_notes(args, paths),
            "### Configurations\n\n"
            + "\n".join(
                x for x in [compile_notes(state.get("compile")), peer_notes(tools, args)] if x
            ),
        ]
        if part
    )


if __name__ == "__main__":
    sys.exit(main())
