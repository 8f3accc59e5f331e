"""Out-of-core training of a deep model (issue 14): DeepFM from an FFM file's block cache vs
the same rows in memory, side by side in one run: peak RSS as the file grows, epoch time,
test log loss.

The data is out_of_core.py's (Zipf-distributed categorical fields, a planted binary FM),
written as FFM text (the fields come from the file) under ``benchmarks/_work/ooc``, never
committed. Each fit runs in a child process under ``/usr/bin/time -v`` (peak RSS); the
in-memory and out-of-core fits of the smallest size alternate ``--repeats`` times, so that a
loaded machine slows both alike.

Run (2 cores shared, loaded machine)::

    PYTHONPATH=src /work/main/benchmarks/.venv/bin/python benchmarks/out_of_core_deep.py

``--quick`` (< 3 min): ``--rows 100000 200000 --epochs 2 --repeats 1``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from out_of_core import FIELDS, WORK, _timed_child, _write_text  # noqa: E402

PY = sys.executable
BLOCK_MB = 16
HIDDEN = (64, 64)
N_FACTORS = 8

_CHILD = r"""
import json, sys, time, numpy as np
sys.path.insert(0, {src!r})
from fmlearn.data.cache import TextFiles
from fmlearn.data.textio import read_ffm
from fmlearn.deep import DeepFMClassifier
from fmlearn.metrics import logloss
mode, train, test, cache_dir, epochs, block_mb = {args!r}
kw = dict(n_factors={k}, hidden_layer_sizes={hidden!r}, max_iter=epochs, tol=None,
          early_stopping=False, random_state=0, n_jobs=1, device="cpu")
t0 = time.perf_counter()
if mode == "disk":
    m = DeepFMClassifier(**kw).fit(TextFiles(train, cache_dir=cache_dir, block_mb=block_mb))
else:
    X, y, f = read_ffm(train)
    m = DeepFMClassifier(fields=np.maximum(f, 0), **kw).fit(X, y)
    del X, y
total = time.perf_counter() - t0
Xt, yt, _ = read_ffm(test)
Xt.resize((Xt.shape[0], m.n_features_in_))  # features the training rows never had: dropped
p = m.predict_proba(Xt)[:, 1]
print("RESULT", json.dumps({{"total": total,
      "epoch_times": np.diff([0.0] + m.history_["time"]).tolist(),
      "logloss": float(logloss(yt, p)), "n_features": m.n_features_in_}}))
"""


def run(mode, train, test, epochs, cache_dir):
    code = _CHILD.format(src=str(HERE.parent / "src"), k=N_FACTORS, hidden=HIDDEN,
                         args=(mode, str(train), str(test), str(cache_dir), epochs, BLOCK_MB))
    return _timed_child(code)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[250_000, 500_000, 1_000_000])
    ap.add_argument("--features", type=int, default=200_000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="--rows 100000 200000 --epochs 2 "
                    "--repeats 1 (under 3 minutes)")
    ap.add_argument("--no-report", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.rows, args.epochs, args.repeats = [100_000, 200_000], 2, 1
    WORK.mkdir(parents=True, exist_ok=True)
    sizes = sorted(args.rows)
    test = WORK / f"deep-test-{args.features}.ffm"
    _write_text(test, 20_000, args.features, 2, "ffm")
    files = {}
    for rows in sizes:
        files[rows] = WORK / f"deep-train-{rows}-{args.features}.ffm"
        _write_text(files[rows], rows, args.features, 1, "ffm")
    cache_dir = WORK / "deep-cache"
    shutil.rmtree(cache_dir, ignore_errors=True)
    disk, mem = {}, []
    small = sizes[0]
    for rows in sizes:  # each size once, the smallest as the first of its pairs
        disk[rows] = [run("disk", files[rows], test, args.epochs, cache_dir)]
        print(rows, "disk", disk[rows][-1], flush=True)
        if rows == small:
            mem.append(run("memory", files[rows], test, args.epochs, cache_dir))
            print(rows, "memory", mem[-1], flush=True)
    for _ in range(args.repeats - 1):  # more interleaved pairs on the smallest size
        disk[small].append(run("disk", files[small], test, args.epochs, cache_dir))
        print(small, "disk", disk[small][-1], flush=True)
        mem.append(run("memory", files[small], test, args.epochs, cache_dir))
        print(small, "memory", mem[-1], flush=True)

    def epoch(res):  # median of the epochs after the first (the first pass is in the first)
        t = res["epoch_times"]
        return float(np.median(t[1:] if len(t) > 1 else t))

    e_disk = float(np.median([epoch(r) for r, _ in disk[small]]))
    e_mem = float(np.median([epoch(r) for r, _ in mem]))
    rss_mem = float(np.median([rss for _, rss in mem]))
    lines = [
        f"Command: `PYTHONPATH=src {Path(PY).name} benchmarks/out_of_core_deep.py --rows "
        f"{' '.join(map(str, sizes))} --features {args.features} --epochs {args.epochs} "
        f"--repeats {args.repeats}` (`--quick`: 100,000 and 200,000 rows, one pair), on "
        f"{platform.machine()} with {os.cpu_count()} cores shared by several engineers (a "
        f"loaded machine: ratios, not absolute times), Python {platform.python_version()}.",
        "",
        f"Data: out_of_core.py's generator as FFM text ({FIELDS} Zipf categorical fields over "
        f"{args.features:,} features, a planted binary FM); DeepFMClassifier "
        f"n_factors={N_FACTORS}, hidden_layer_sizes={HIDDEN}, Adam, batch 1024, one torch "
        f"thread, {BLOCK_MB} MB text blocks; fields from the FFM file.",
        "",
        "| rows | text MB | mode | peak RSS MB | epoch s (median of epochs 2..) | total fit s "
        "| test log loss |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for rows in sizes:
        mb = files[rows].stat().st_size / 2**20
        res, rss = disk[rows][0]
        lines.append(f"| {rows:,} | {mb:.0f} | out of core (cache) | {rss:.0f} | "
                     f"{epoch(res):.2f} | {res['total']:.1f} | {res['logloss']:.4f} |")
        if rows == small:
            res, rss = mem[0]
            lines.append(f"| {rows:,} | {mb:.0f} | in memory | {rss:.0f} | {epoch(res):.2f} | "
                         f"{res['total']:.1f} | {res['logloss']:.4f} |")
    rss = [disk[r][0][1] for r in sizes]
    lines += [
        "",
        f"- Peak RSS out of core: {', '.join(f'{x:.0f}' for x in rss)} MB as the file grows "
        f"{sizes[-1] // sizes[0]}x (spread {max(rss) - min(rss):.0f} MB); in memory "
        f"{rss_mem:.0f} MB at the smallest size.",
        f"- Epoch from the cache / in memory, same rows ({small:,}), median of "
        f"{len(mem)} interleaved pair(s): {e_disk / e_mem:.2f}x (no target for the deep "
        "models; the numba models' target is <= 1.3x). Each pair's epochs (s), cache vs "
        "memory: " + "; ".join(
            f"{', '.join(f'{t:.2f}' for t in d['epoch_times'])} vs "
            f"{', '.join(f'{t:.2f}' for t in m['epoch_times'])}"
            for (d, _), (m, _) in zip(disk[small], mem, strict=True)) + ".",
    ]
    body = "## Out-of-core training of a deep model (DeepFM)\n\n" + "\n".join(lines)
    print(body)
    if not args.no_report:
        from _report import write_section

        write_section("out_of_core_deep", body)


if __name__ == "__main__":
    main()
