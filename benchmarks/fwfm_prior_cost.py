"""Cost of FwFM's prior towards r = 1 (``l2_reg_r``, ``updates.addr_step_toward``) per epoch.

The field-pair weights' rule now runs on ``r - 1`` (a subtraction and an addition per
field-pair update; ``m (m + 1) / 2`` of them per row of ``m`` fields). Variants, fitted side
by side, each in its own process (one numba cache per source tree), interleaved (A B C, then
C B A, ...), so that they see the same machine load:

- ``before``: the source tree given by ``--before`` (e.g. ``git archive 5eb9f55 src`` unpacked;
  left out without it): the rule on ``r`` itself;
- ``prior off``: this tree, ``l2_reg_r=0`` (the default);
- ``prior 0.05``: this tree, ``l2_reg_r=0.05`` (same work, another trajectory).

Data: synthetic one-hot rows, 20 fields of 50 categories, ``FwFMClassifier`` k = 8, AdaGrad
(learning rate 0.2, L2 1e-2: the same for every variant), one thread. CPU seconds of the
process per epoch (not wall time: on a machine shared with other jobs, time spent waiting for
a core is not counted) as ``(t(4 epochs) - t(1 epoch)) / 3`` of whole fits (``tol=None``, no
early stopping), best of two fits each, median over ``--repeats``.

    python benchmarks/fwfm_prior_cost.py --before /path/to/old/src   # about 3 minutes loaded
    python benchmarks/fwfm_prior_cost.py --quick                      # 30k rows, 3 repeats

Section: ``fwfm_prior_cost`` of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _report import machine_line, write_section  # noqa: E402

SRC = HERE.parent / "src"

# Run in a child process: ``python -c CHILD rows l2_reg_r`` prints seconds per epoch.
CHILD = r"""
import sys, time, warnings
import numpy as np, scipy.sparse as sp
warnings.simplefilter("ignore")
from fmlearn.fwfm import FwFMClassifier

rows, reg = int(sys.argv[1]), float(sys.argv[2])
rng = np.random.default_rng(0)
nf, size = 20, 50
cols = rng.integers(0, size, (rows, nf)) + size * np.arange(nf)
X = sp.csr_matrix((np.ones(nf * rows, np.float32), cols.ravel(),
                   np.arange(0, nf * rows + 1, nf)), (rows, nf * size))
fields = np.repeat(np.arange(nf), size).astype(np.int32)
y = (rng.random(rows) < 0.3).astype(int)


def fit(epochs):
    model = FwFMClassifier(fields=fields, n_factors=8, learning_rate=0.2, l2_reg_w=1e-2,
                           l2_reg_V=1e-2, l2_reg_r=reg, max_iter=epochs, tol=None,
                           early_stopping=False, random_state=0, n_jobs=1)
    t = time.process_time()
    model.fit(X, y)
    return time.process_time() - t


fit(1)  # compile / load the kernels
one = min(fit(1) for _ in range(2))
four = min(fit(4) for _ in range(2))
print((four - one) / 3)
"""


def run(src: Path, reg: float, rows: int, tag: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(src), NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", NUMBA_CACHE_DIR=f"/tmp/numba-fwfm-prior-{tag}")
    out = subprocess.run([sys.executable, "-c", CHILD, str(rows), str(reg)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", type=Path, help="an older fmlearn source tree (its src/)")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="30,000 rows, 3 repeats")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.repeats = 30_000, 3
    variants = {"prior off": (SRC, 0.0, "after"), "prior 0.05": (SRC, 0.05, "after")}
    if args.before is not None:
        variants = {"before": (args.before, 0.0, "before"), **variants}
    times = {k: [] for k in variants}
    names = list(variants)
    for rep in range(args.repeats):
        for name in (names if rep % 2 == 0 else names[::-1]):
            src, reg, tag = variants[name]
            times[name].append(run(src, reg, args.rows, tag))
        print(rep, {k: f"{v[-1] * 1e3:.1f} ms" for k, v in times.items()}, file=sys.stderr,
              flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["before"] if "before" in med else med["prior off"]
    lines = [
        "## Cost of FwFM's prior towards r = 1",
        "",
        f"Command: `python benchmarks/fwfm_prior_cost.py {' '.join(argv or sys.argv[1:])}`. "
        f"Machine: {machine_line()} (shared with other jobs; one thread).",
        "",
        f"FwFMClassifier k = 8, AdaGrad, {args.rows:,} synthetic rows of 20 one-hot fields; "
        "CPU seconds per epoch, `(t(4 epochs) - t(1)) / 3`, median of "
        f"{args.repeats} interleaved runs (each a separate process).",
        "",
        "| variant | ms per epoch (median) | runs (ms) | ratio to "
        + ("before" if "before" in med else "prior off") + " |",
        "| --- | --- | --- | --- |",
    ]
    for k, v in times.items():
        lines.append(f"| {k} | {med[k] * 1e3:.1f} | "
                     + ", ".join(f"{t * 1e3:.0f}" for t in v) + f" | {med[k] / base:.3f} |")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("fwfm_prior_cost", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
