"""Before and after: fmlearn at a baseline commit against the working tree, side by side.

Issue #10 asks that the benchmarks be rerun after the restructuring (engine, optimizer layer,
task objects, ``models/`` package, ``parse.py`` split, lazy imports) and show no regression
beyond noise against the commit before the move. This script measures both versions in one
run, with the same measuring code, on four small cases per area:

``movielens`` — MovieLens 100K u1 (user + item one-hot), ``FMRegressor`` k = 8, AdaGrad and
    SGD with the settings chosen in the ``movielens`` section (early stopping on 10% of the
    base, patience 20): wall seconds of ``fit``, epochs, test RMSE.
``throughput`` — synthetic click-through-like data (``throughput.make_data``: 20 one-hot
    fields of 50,000 Zipf(1.1)-distributed categories), ``FMRegressor`` k = 16, SGD and AdaGrad,
    ``n_jobs`` 1 and 2: seconds of one epoch alone, ``(t(E2) - t(E1)) / (E2 - E1)`` of whole
    fits (best of 3 each, ``tol=None``), as rows/s; holdout RMSE after E2 epochs.
``fields`` — Frappe (``frappe.validation.libfm`` less a seeded 10% as train, that 10% as
    validation, ``frappe.test.libfm`` as test), ``FFMClassifier`` (libffm settings) and
    ``FwFMClassifier`` (the setting chosen in the ``fields`` section): seconds per epoch by the
    same difference method at 1 and 2 threads; at 1 thread also an early-stopped fit (patience
    3) scored on the test file: log loss and AUC.
``bayes`` — MovieLens u1, k = 8, ``FMRegressor(solver="mcmc")`` (100 iterations, 95 samples
    kept) and ``solver="als"`` (100 sweeps, the regularization chosen in the ``bayes``
    section): seconds per iteration (wall time of ``fit`` / iterations), test RMSE.

The baseline's ``src/`` is exported with ``git archive`` into ``benchmarks/_work/regression/``;
"new" is this working tree's ``src/``. Every measurement is a fresh subprocess of this script
(``--job``) with ``PYTHONPATH`` set to one tree's ``src`` (checked: the imported ``fmlearn``
must come from there) and ``NUMBA_CACHE_DIR`` set to a cache folder of that tree's own. Each
tree's cache is filled first by one untimed process that runs every case on a little data;
every measuring process then runs its case once on a little data, untimed, before the clock
starts. The two trees alternate case by case (A B, then B A in the next repeat, ...), so both
see the same machine load; medians over ``--repeats`` processes per tree are compared. Only
public API that both versions have is used.

    python benchmarks/regression.py            # 32 min with 1.6 of 2 cores busy elsewhere
    python benchmarks/regression.py --parts throughput --repeats 3 --no-write
    python benchmarks/regression.py --quick --no-write                   # tiny, to debug
    python benchmarks/regression.py --cases tp-adagrad-2 --repeats 6 --no-write  # re-measure
    python benchmarks/regression.py --render RESULTS [RECHECK ...]  # section from saved runs

A case is flagged when the ratio of the medians or the median of the paired ratios (the two
processes of one repeat, run one right after the other) says more than 10% slower; the reading
gives the noise band of the run (from the scatter of the paired ratios), and a re-measurement
of flagged cases (``--cases``) can be shown under the table (``--render`` with both results
files, saved under ``benchmarks/_work/regression/``).

Section: ``regression`` of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _report import machine_line, write_section  # noqa: E402

WORK = HERE / "_work" / "regression"
DATA = Path(os.environ.get("FMLEARN_DATA", ROOT.parent / "shared" / "data"))
PARTS = ("movielens", "throughput", "fields", "bayes")
RESULT_TAG = "RESULT "
SEED = 0
VALID_FRACTION = 0.1
WARM_ROWS = 12_000  # enough rows for n_jobs=2 to start two threads
SLOWER, FASTER = 1.10, 0.90  # time ratios flagged
ACC_TOL = {"rmse": 0.001, "logloss": 0.001, "auc": 0.001}

# movielens: the u1-validated settings of the movielens section (FM_COMMON / FM_GRIDS there)
ML_COMMON = dict(n_factors=8, max_iter=300, tol=1e-4, n_iter_no_change=20, early_stopping=True,
                 random_state=SEED, n_jobs=1, init_stdev=0.01, l2_reg_V=0.08, l2_reg_w=0.01)
ML_LR = {"adagrad": 0.05, "sgd": 0.01}
ML_INNER = 5  # fits per process; the fastest is the process's measurement

# throughput: the peers/fmlearn_peer.py estimator
TP_ROWS, TP_EXPONENT = 300_000, 1.1
TP_LR = {"sgd": 0.01, "adagrad": 0.1}
TP_EPOCHS = (1, 11)
INNER_BEST = 3  # fits per epoch count, fastest kept

# fields: FFM with libffm's settings (fields.py FFM_LIBFFM), FwFM with its Frappe choice
FRAPPE_FIELDS = (957, 4082, 7, 7, 2, 3, 2, 9, 80, 233)  # cardinalities, in index order
FIELD_PARAMS = {
    "ffm": dict(n_factors=4, solver="adagrad", learning_rate=0.2, l2_reg_w=2e-5, l2_reg_V=2e-5,
                normalize=True, init_stdev=0.1),
    "fwfm": dict(n_factors=8, solver="adagrad", learning_rate=0.2, l2_reg_w=0.01,
                 l2_reg_V=0.01, init_stdev=0.1),
}  # init_stdev pinned: its default changed with #11, and both trees must train one model
FIELD_CLASSES = {"ffm": "FFMClassifier", "fwfm": "FwFMClassifier"}
FIELD_MAX_EPOCHS = {"ffm": 100, "fwfm": 200}
FIELD_PATIENCE = 3
FIELD_EPOCHS = (1, 21)

# bayes: k = 8 on u1; ALS at the regularization chosen in the bayes section
BAYES_PARAMS = {
    "mcmc": dict(n_factors=8, solver="mcmc", max_iter=100, n_kept_samples=95, init_stdev=0.1,
                 tol=None, random_state=SEED, n_jobs=1),
    "als": dict(n_factors=8, solver="als", max_iter=100, l2_reg_w=1.0, l2_reg_V=10.0,
                init_stdev=0.1, tol=None, random_state=SEED, n_jobs=1),
}
BAYES_INNER = 2


def log(msg: str) -> None:
    print(f"[regression {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ============================================================================ the measurements
# Everything in this block runs in the --job subprocess, against whichever fmlearn PYTHONPATH
# names; it uses only public API that the baseline has too.


def _csr(ids: np.ndarray, n_features: int):
    """One-hot CSR float32 matrix from an (n, nnz) array of column ids (all values 1)."""
    import scipy.sparse as sp

    n, nnz = ids.shape
    return sp.csr_matrix(
        (np.ones(n * nnz, dtype=np.float32), ids.ravel().astype(np.int32),
         np.arange(0, n * nnz + 1, nnz, dtype=np.int64)),
        shape=(n, n_features),
    )


def _rmse(pred, y) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred, np.float64) - np.asarray(y, np.float64)) ** 2)))


def _logloss(y01, p) -> float:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(y01 * np.log(p) + (1 - y01) * np.log1p(-p)))


def _timed_fit(model, X, y, **kw) -> float:
    t0 = time.perf_counter()
    model.fit(X, y, **kw)
    return time.perf_counter() - t0


def _movielens(path: str):
    z = np.load(path)
    n_users, n_items = int(z["n_users"]), int(z["n_items"])

    def design(part):
        ids = np.column_stack([z[f"user_{part}"] - 1, n_users + z[f"item_{part}"] - 1])
        return _csr(ids, n_users + n_items), z[f"y_{part}"].astype(np.float64)

    return (*design("train"), *design("test"))


def job_movielens(case: dict, warm: bool, quick: bool) -> dict:
    from fmlearn import FMRegressor

    X, y, Xt, yt = _movielens(case["data"])
    params = {**ML_COMMON, "solver": case["solver"], "learning_rate": ML_LR[case["solver"]]}
    if warm:
        FMRegressor(**{**params, "max_iter": 3}).fit(X[:WARM_ROWS], y[:WARM_ROWS]).predict(Xt)
        return {}
    times, model = [], None
    for _ in range(1 if quick else ML_INNER):
        model = FMRegressor(**params)
        times.append(_timed_fit(model, X, y))
    fit_s = min(times)
    return {"time": fit_s, "fit_s_all": times, "epochs": int(model.n_iter_),
            "s_per_epoch": fit_s / model.n_iter_, "rmse": _rmse(model.predict(Xt), yt)}


def job_throughput(case: dict, warm: bool, quick: bool) -> dict:
    from fmlearn import FMRegressor

    z = np.load(case["data"])
    n_fields, n_cats = z["train"].shape[1], int(z["n_cats"])
    offsets = np.arange(n_fields, dtype=np.int64) * n_cats
    X = _csr(z["train"].astype(np.int64) + offsets, n_fields * n_cats)
    y = z["y_train"].astype(np.float64)

    def model(epochs):
        # Every setting pinned, so that both trees train the same model whatever their
        # defaults (v0.1's L2 and init; no early stopping, which 'auto' turns on here).
        return FMRegressor(n_factors=16, solver=case["solver"],
                           learning_rate=TP_LR[case["solver"]], max_iter=epochs, tol=None,
                           n_jobs=case["n_jobs"], random_state=SEED, early_stopping=False,
                           l2_reg_w=1e-4, l2_reg_V=1e-4, init_stdev=0.1)

    if warm:
        model(1).fit(X[:WARM_ROWS], y[:WARM_ROWS]).predict(X[:100])
        return {}
    e1, e2 = TP_EPOCHS
    t1, t2 = [], []
    for _ in range(1 if quick else INNER_BEST):  # alternated, so drift hits both alike
        t1.append(_timed_fit(model(e1), X, y))
        last = model(e2)
        t2.append(_timed_fit(last, X, y))
    epoch_s = (min(t2) - min(t1)) / (e2 - e1)
    if epoch_s <= 0:
        raise RuntimeError(f"{e2} epochs took no longer than {e1}: too few rows to time")
    Xt = _csr(z["test"].astype(np.int64) + offsets, n_fields * n_cats)
    return {"time": epoch_s, "rows": int(X.shape[0]), "rows_per_s": X.shape[0] / epoch_s,
            "fit1_s": min(t1), "fit2_s": min(t2), "rmse": _rmse(last.predict(Xt), z["y_test"])}


def job_fields(case: dict, warm: bool, quick: bool) -> dict:
    from sklearn.metrics import roc_auc_score

    import fmlearn

    cls = getattr(fmlearn, FIELD_CLASSES[case["model"]])
    z = np.load(case["data"])
    n_features, fields = int(z["n_features"]), z["fields"]
    X, y = _csr(z["X"], n_features), z["y"]
    fit, val = z["fit"], z["valid"]
    X_fit, y_fit, X_val, y_val = X[fit], y[fit], X[val], y[val]
    X_te, y_te = _csr(z["X_test"], n_features), z["y_test"]
    params = {**FIELD_PARAMS[case["model"]], "fields": fields}

    def model(epochs, n_jobs, early=False):
        return cls(**params, max_iter=epochs, tol=None, random_state=SEED, n_jobs=n_jobs,
                   early_stopping=early, n_iter_no_change=FIELD_PATIENCE)

    if warm:
        model(1, case["n_jobs"]).fit(X_fit[:WARM_ROWS], y_fit[:WARM_ROWS])
        if case["accuracy"]:
            m = model(2, 1, True)
            m.fit(X_fit[:WARM_ROWS], y_fit[:WARM_ROWS], eval_set=(X_val, y_val))
            m.predict_proba(X_te)
        return {}
    e1, e2 = (1, 3) if quick else FIELD_EPOCHS
    t1, t2 = [], []
    for _ in range(1 if quick else INNER_BEST):
        t1.append(_timed_fit(model(e1, case["n_jobs"]), X_fit, y_fit))
        t2.append(_timed_fit(model(e2, case["n_jobs"]), X_fit, y_fit))
    out = {"time": (min(t2) - min(t1)) / (e2 - e1), "rows": int(X_fit.shape[0])}
    if case["accuracy"]:
        m = model(FIELD_MAX_EPOCHS[case["model"]], 1, True)
        out["fit_s"] = _timed_fit(m, X_fit, y_fit, eval_set=(X_val, y_val))
        p = m.predict_proba(X_te)[:, 1]
        out.update(epochs=int(m.best_iteration_), logloss=_logloss(y_te, p),
                   auc=float(roc_auc_score(y_te, p)))
    return out


def _als_on_mean_loss() -> bool:
    """Whether this tree's ALS penalizes the mean loss (after #11) rather than the total."""
    try:
        from fmlearn.optim._registry import hyper  # noqa: F401  (came with that change)
    except ImportError:
        return False
    return True


def job_bayes(case: dict, warm: bool, quick: bool) -> dict:
    from fmlearn import FMRegressor

    X, y, Xt, yt = _movielens(case["data"])
    params = dict(BAYES_PARAMS[case["solver"]])
    if params["solver"] == "als" and _als_on_mean_loss():
        # The same objective in both trees: libFM-style penalties on the total loss became
        # penalties on the mean loss (issue #11), so divide them by the number of rows.
        params.update(l2_reg_w=params["l2_reg_w"] / X.shape[0],
                      l2_reg_V=params["l2_reg_V"] / X.shape[0])
    if quick:
        params.update(max_iter=10, **({"n_kept_samples": 5} if "n_kept_samples" in params else {}))
    if warm:
        small = {"max_iter": 3, **({"n_kept_samples": 2} if "n_kept_samples" in params else {})}
        FMRegressor(**{**params, **small}).fit(X[:2000], y[:2000]).predict(Xt)
        return {}
    times, model = [], None
    for _ in range(1 if quick else BAYES_INNER):
        model = FMRegressor(**params)
        times.append(_timed_fit(model, X, y))
    return {"time": min(times) / params["max_iter"], "fit_s": min(times),
            "iterations": params["max_iter"], "rmse": _rmse(model.predict(Xt), yt)}


JOBS = {"movielens": job_movielens, "throughput": job_throughput, "fields": job_fields,
        "bayes": job_bayes}


def run_job(spec: dict) -> None:
    """The --job entry point: run one tree's cases, one RESULT line each."""
    t0 = time.perf_counter()
    import fmlearn

    # the estimators' modules: loaded by ``import fmlearn`` before the move, lazily after it
    for name in ("FMRegressor", *FIELD_CLASSES.values()):
        getattr(fmlearn, name)
    import_s = time.perf_counter() - t0
    where = Path(fmlearn.__file__).resolve()
    if not where.is_relative_to(Path(spec["src"]).resolve()):
        raise SystemExit(f"fmlearn imported from {where}, not from {spec['src']}")
    for case in spec["cases"]:
        job = JOBS[case["part"]]
        try:
            t0 = time.perf_counter()
            job(case, warm=True, quick=spec["quick"])  # compile or load the cache, untimed
            warm_s = time.perf_counter() - t0
            res = {} if spec["warm_only"] else job(case, warm=False, quick=spec["quick"])
        except Exception as exc:  # noqa: BLE001 - reported in the table
            print(f"{case['name']}: {exc!r}", file=sys.stderr, flush=True)
            res, warm_s = {"error": f"{type(exc).__name__}: {exc}"}, float("nan")
        print(RESULT_TAG + json.dumps({"case": case["name"], "import_s": import_s,
                                       "warm_s": warm_s, **res}), flush=True)


# ============================================================================ the driver


@dataclass
class Case:
    name: str
    part: str
    label: str
    measure: str  # what "time" is
    spec: dict
    rate: str = ""  # when set, the medians are shown as rates: spec key of the row count
    acc: tuple[str, ...] = ("rmse",)


@dataclass
class Tree:
    tag: str  # "baseline" or "new"
    label: str  # commit, as shown
    src: Path
    cache: Path
    runs: dict[str, list[dict]] = field(default_factory=dict)
    other_cores: list[float] = field(default_factory=list)


def prepare_movielens(data: Path) -> Path:
    path = WORK / "ml100k-u1.npz"
    if path.exists():
        return path
    every = np.loadtxt(data / "ml-100k" / "u.data", dtype=np.int64, delimiter="\t")
    parts = {p: np.loadtxt(data / "ml-100k" / f"u1.{f}", dtype=np.int64, delimiter="\t")
             for p, f in (("train", "base"), ("test", "test"))}
    arrays = {f"{k}_{p}": t[:, i] for p, t in parts.items()
              for k, i in (("user", 0), ("item", 1), ("y", 2))}
    np.savez(path, n_users=every[:, 0].max(), n_items=every[:, 1].max(), **arrays)
    return path


def _read_onehot_libfm(path: Path, n_fields: int) -> tuple[np.ndarray, np.ndarray]:
    """(column ids (n, n_fields), labels) of a libFM file whose values are all 1."""
    ids, labels = [], []
    for i, line in enumerate(path.read_text().splitlines()):
        tok = line.split()
        feats = [t.split(":") for t in tok[1:]]
        if len(feats) != n_fields or any(v != "1" for _, v in feats):
            raise ValueError(f"{path} line {i + 1}: expected {n_fields} features of value 1")
        labels.append(float(tok[0]))
        ids.append([int(c) for c, _ in feats])
    return np.asarray(ids, dtype=np.int64), np.asarray(labels)


def prepare_frappe(data: Path) -> Path:
    path = WORK / "frappe.npz"
    if path.exists():
        return path
    edges = np.cumsum([0, *FRAPPE_FIELDS])
    fields = np.searchsorted(edges, np.arange(edges[-1]), side="right") - 1
    X, y = _read_onehot_libfm(data / "frappe" / "frappe.validation.libfm", len(FRAPPE_FIELDS))
    X_te, y_te = _read_onehot_libfm(data / "frappe" / "frappe.test.libfm", len(FRAPPE_FIELDS))
    perm = np.random.default_rng(SEED).permutation(len(y))  # as fields.py's validation_split
    n_valid = int(round(VALID_FRACTION * len(y)))
    np.savez(path, X=X, y=(y > 0).astype(np.int64), X_test=X_te,
             y_test=(y_te > 0).astype(np.int64), fields=fields, n_features=edges[-1],
             fit=np.sort(perm[n_valid:]), valid=np.sort(perm[:n_valid]))
    return path


def make_cases(parts: list[str], data: Path, quick: bool, prepare: bool = True) -> list[Case]:
    """The cases of ``parts``; ``prepare``: write their data files under WORK first."""
    WORK.mkdir(parents=True, exist_ok=True)
    cases = []
    if {"movielens", "bayes"} & set(parts):
        ml = str(prepare_movielens(data)) if prepare else ""
    if "movielens" in parts:
        for solver, name in (("adagrad", "AdaGrad"), ("sgd", "SGD")):
            cases.append(Case(
                f"ml-{solver}", "movielens", f"u1, FM k=8 {name}, early stopping",
                "fit time", {"data": ml, "solver": solver}))
    if "throughput" in parts:
        from throughput import make_data  # the data set of the throughput section

        rows = 30_000 if quick else TP_ROWS
        tp = str(make_data(rows, "zipf", TP_EXPONENT, SEED)) if prepare else ""
        for solver in ("sgd", "adagrad"):
            for n_jobs in (1, 2):
                cases.append(Case(
                    f"tp-{solver}-{n_jobs}", "throughput",
                    f"{rows:,} rows zipf{TP_EXPONENT:g}, FM k=16 {solver}, n_jobs={n_jobs}",
                    "epoch alone (rows/s)",
                    {"data": tp, "solver": solver, "n_jobs": n_jobs}, rate="rows"))
    if "fields" in parts:
        fr = str(prepare_frappe(data)) if prepare else ""
        for model, name in (("ffm", "FFM"), ("fwfm", "FwFM")):
            for n_jobs in (1, 2):
                cases.append(Case(
                    f"fields-{model}-{n_jobs}", "fields", f"Frappe, {name}, n_jobs={n_jobs}",
                    "s/epoch",
                    {"data": fr, "model": model, "n_jobs": n_jobs, "accuracy": n_jobs == 1},
                    acc=("logloss", "auc") if n_jobs == 1 else ()))
    if "bayes" in parts:
        for solver, name in (("mcmc", "MCMC"), ("als", "ALS")):
            iters = "10" if quick else "100"
            cases.append(Case(
                f"bayes-{solver}", "bayes", f"u1, k=8, {name}, {iters} iterations",
                "s/iteration", {"data": ml, "solver": solver}))
    for c in cases:
        c.spec.update(name=c.name, part=c.part)
    return cases


def export_baseline(rev: str) -> tuple[Path, str, str]:
    """The baseline's src/ under WORK (``git archive``); (folder, full sha, subject)."""
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    subject = git("log", "-1", "--format=%s", sha)
    folder = WORK / f"base-{sha[:7]}"
    marker = folder / "COMMIT"
    if not (marker.exists() and marker.read_text().strip() == sha):
        WORK.mkdir(parents=True, exist_ok=True)
        tar_path = WORK / f"base-{sha[:7]}.tar"
        subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(tar_path),
                        sha, "src"], check=True)
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tar_path) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(folder, filter="data")
            else:
                tar.extractall(folder)  # noqa: S202 - our own repository's archive
        tar_path.unlink()
        marker.write_text(sha + "\n")
    return folder, sha, subject


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def uncommitted_sources() -> list[str]:
    out = git("status", "--porcelain", "--", "src")
    return [line[3:] for line in out.splitlines() if line.strip()]


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy so far (/proc/stat, all cores)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(
            int, f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_tree(tree: Tree, cases: list[Case], *, warm_only: bool, quick: bool,
             timeout: float) -> tuple[dict[str, dict], float]:
    """One subprocess on ``tree``: its results by case, and the cores other processes kept
    busy meanwhile (the machine's busy time less this process's, over the wall time)."""
    spec = {"src": str(tree.src), "cases": [c.spec for c in cases], "warm_only": warm_only,
            "quick": quick}
    env = {**os.environ, "PYTHONPATH": str(tree.src), "NUMBA_CACHE_DIR": str(tree.cache)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--job", json.dumps(spec)]
    busy0, own0, t0 = _busy_seconds(), _children_cpu(), time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)
        out, err, failure = proc.stdout, proc.stderr, (
            f"exit code {proc.returncode}" if proc.returncode else "")
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        failure = f"timed out after {timeout:.0f}s"
    wall = time.perf_counter() - t0
    others = max(0.0, ((_busy_seconds() - busy0) - (_children_cpu() - own0)) / max(wall, 1e-9))
    results = {}
    for line in out.splitlines():
        if line.startswith(RESULT_TAG):
            r = json.loads(line[len(RESULT_TAG):])
            results[r["case"]] = r
    for c in cases:
        if c.name not in results:
            why = failure or "no result"
            tail = " | ".join(err.strip().splitlines()[-3:])
            log(f"{tree.tag} {c.name}: FAILED ({why}): {tail}")
            results[c.name] = {"case": c.name, "error": f"{why}: {tail[-200:]}"}
    return results, others


# ---------------------------------------------------------------------------- report


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def fmt_time(s: float) -> str:
    if not np.isfinite(s):
        return "-"
    if s < 1:
        return f"{s * 1e3:.2f} ms" if s < 0.1 else f"{s * 1e3:.0f} ms"
    return f"{s:.2f} s"


def fmt_value(case: Case, runs: list[dict], t: float) -> str:
    if case.rate:
        return f"{runs[0][case.rate] / t / 1e6:.2f}M" if np.isfinite(t) else "-"
    return fmt_time(t)


def summarize(case: Case, trees: list[Tree]) -> dict:
    out = {}
    for tree in trees:
        runs = [r for r in tree.runs.get(case.name, []) if "error" not in r]
        times = [r["time"] for r in runs]
        out[tree.tag] = {
            "runs": runs,
            "errors": [r["error"] for r in tree.runs.get(case.name, []) if "error" in r],
            "times": times,
            "median": med(times),
            "min": min(times) if times else float("nan"),
            "max": max(times) if times else float("nan"),
            "acc": {k: med([r[k] for r in runs]) for k in case.acc},
            "acc_values": {k: [r[k] for r in runs] for k in case.acc},
        }
    b, n = out["baseline"], out["new"]
    out["ratio"] = r = n["median"] / b["median"] if b["times"] and n["times"] else float("nan")
    # the two runs of one repeat ran one after the other: their ratio cancels slow load drift
    pairs = zip(trees[0].runs.get(case.name, []), trees[1].runs.get(case.name, []),
                strict=True)
    paired = [nr["time"] / br["time"] for br, nr in pairs if "error" not in br | nr]
    pm = med(paired)
    out["paired"], out["paired_median"] = paired, pm
    k = sum(x > 1 for x in paired)
    if not (np.isfinite(r) and paired):
        verdict = "failed"
    elif r > SLOWER or pm > SLOWER:
        verdict = f"**slower** ({k} of {len(paired)} pairs)"
    elif r < FASTER and pm < FASTER:
        verdict = f"faster ({len(paired) - k} of {len(paired)} pairs)"
    else:
        verdict = "within 10%"
    out["verdict"] = verdict
    out["acc_diff"] = {k: n["acc"][k] - b["acc"][k] for k in case.acc}
    return out


def fmt_acc(case: Case, s: dict, tag: str) -> str:
    if not case.acc:
        return "-"
    parts = []
    for k in case.acc:
        vals = s[tag]["acc_values"][k]
        if not vals:
            return "-"
        spread = max(vals) - min(vals)
        text = f"{k} {s[tag]['acc'][k]:.4f}"
        if spread >= 5e-5:
            text += f" ({min(vals):.4f}-{max(vals):.4f})"
        parts.append(text)
    return ", ".join(parts)


def render_table(cases: list[Case], summary: dict[str, dict]) -> str:
    lines = [
        "| area | case | measured | baseline median (range) | new median (range) "
        "| time new / baseline | paired ratios, median (range) | reading | accuracy, baseline "
        "| accuracy, new |",
        "|---|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for c in cases:
        s = summary[c.name]
        cells = []
        for tag in ("baseline", "new"):
            t = s[tag]
            if not t["times"]:
                cells.append("failed: " + (t["errors"][0][:60] if t["errors"] else "no run"))
                continue
            # a rate's range runs from the slowest run's rate to the fastest's
            lo, hi = (t["max"], t["min"]) if c.rate else (t["min"], t["max"])
            cells.append(f"{fmt_value(c, t['runs'], t['median'])} "
                         f"({fmt_value(c, t['runs'], lo)}-{fmt_value(c, t['runs'], hi)})")
        ratio = f"{s['ratio']:.2f}" if np.isfinite(s["ratio"]) else "-"
        paired = (f"{s['paired_median']:.2f} ({min(s['paired']):.2f}-{max(s['paired']):.2f})"
                  if s["paired"] else "-")
        lines.append(f"| {c.part} | {c.label} | {c.measure} | {cells[0]} | {cells[1]} | "
                     f"{ratio} | {paired} | {s['verdict']} | {fmt_acc(c, s, 'baseline')} | "
                     f"{fmt_acc(c, s, 'new')} |")
    return "\n".join(lines)


def details_table(cases: list[Case], summary: dict[str, dict]) -> str:
    """Secondary numbers: epochs, fit times of the accuracy fits, one-epoch fits."""
    lines = ["| case | baseline | new |", "|---|---|---|"]
    for c in cases:
        cells = []
        for tag in ("baseline", "new"):
            runs = summary[c.name][tag]["runs"]
            if not runs:
                cells.append("-")
                continue
            bits = []
            if "epochs" in runs[0]:
                ep = sorted({r["epochs"] for r in runs})
                bits.append("epochs " + "/".join(map(str, ep)))
            if "s_per_epoch" in runs[0]:
                bits.append(f"{fmt_time(med([r['s_per_epoch'] for r in runs]))}/epoch")
            if "fit_s" in runs[0]:
                bits.append(f"fit {fmt_time(med([r['fit_s'] for r in runs]))}")
            if "fit1_s" in runs[0]:
                f1, f2 = (fmt_time(med([r[k] for r in runs])) for k in ("fit1_s", "fit2_s"))
                bits.append(f"fit of {TP_EPOCHS[0]} epoch {f1}, of {TP_EPOCHS[1]} {f2}")
            imp, warm = (fmt_time(med([r[k] for r in runs])) for k in ("import_s", "warm_s"))
            bits.append(f"in the process: imports {imp}, first small fit {warm}")
            cells.append(", ".join(bits))
        lines.append(f"| {c.label} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def noise_band(cases: list[Case], summary: dict[str, dict]) -> tuple[float, float, int]:
    """(sd, half, n): pooled standard deviation of the paired log-ratios over the cases, and the
    ~95% half-width (as a fraction) of one case's median paired ratio from ``n`` pairs."""
    logs = [np.log(summary[c.name]["paired"]) for c in cases if len(summary[c.name]["paired"]) > 1]
    if not logs:
        return float("nan"), float("nan"), 0
    sd = float(np.sqrt(np.mean([np.var(x, ddof=1) for x in logs])))
    n = int(np.median([len(x) for x in logs]))
    # the median's standard error is about 1.2533 sd / sqrt(n) for normal scatter
    return sd, float(np.exp(2 * 1.2533 * sd / np.sqrt(n)) - 1), n


def reading(cases: list[Case], summary: dict[str, dict], trees: list[Tree],
            rechecked: dict[str, dict] | None = None) -> list[str]:
    by = {v: [c for c in cases if summary[c.name]["verdict"].startswith(v)]
          for v in ("**slower", "faster", "within", "failed")}
    sd, half, n = noise_band(cases, summary)
    out = []

    def names(cs):
        items = []
        for c in cs:
            sc = summary[c.name]
            pm = sc["paired_median"]
            beyond = np.isfinite(half) and abs(np.log(pm)) > np.log1p(half)
            text = (f"{c.part} {c.label} (ratio of medians {sc['ratio']:.2f}, paired "
                    f"{pm:.2f}, {'beyond' if beyond else 'inside'} the noise band")
            again = (rechecked or {}).get(c.name)
            if again:
                text += (f"; re-measured below: ratio of medians {again['ratio']:.2f}, paired "
                         f"{again['paired_median']:.2f}, {again['verdict'].replace('**', '')}")
            items.append(text + ")")
        return "; ".join(items)

    if by["within"]:
        out.append(f"- Within 10% (neither the ratio of the medians nor the median paired "
                   f"ratio above {SLOWER:.2f}, not both below {FASTER:.2f}): "
                   f"{len(by['within'])} of {len(cases)} cases.")
    if by["faster"]:
        out.append(f"- Faster after the move (both ratios below {FASTER:.2f}): "
                   f"{names(by['faster'])}.")
    out.append(f"- **Flagged, more than {SLOWER - 1:.0%} slower by either ratio: "
               f"{names(by['**slower'])}.**" if by["**slower"] else
               f"- No case is more than {SLOWER - 1:.0%} slower after the move by either ratio.")
    if by["failed"]:
        out.append(f"- Failed: {', '.join(c.label for c in by['failed'])} (see the table).")
    if n:
        out.append(
            f"- Noise: one pair's ratio scatters by about {sd:.0%} (pooled standard deviation of "
            f"the paired log-ratios over the cases), so with {n} pairs a case's median paired "
            f"ratio is known to about ±{half:.0%} (95%, the noise band): smaller differences are "
            "not resolved by this run, and a flag inside the band needs a re-measurement "
            "(`--cases`) before it is read as a regression.")
    same, off = [], []
    for c in cases:
        sc = summary[c.name]
        for k, d in sc["acc_diff"].items():
            vals = sc["baseline"]["acc_values"][k] + sc["new"]["acc_values"][k]
            if not vals:
                continue
            if max(vals) - min(vals) < 5e-7:
                same.append(f"{c.label} {k}")
            elif abs(d) > ACC_TOL[k]:
                spread = max(max(sc[t]["acc_values"][k]) - min(sc[t]["acc_values"][k])
                             for t in ("baseline", "new"))
                off.append(f"{c.part} {c.label}: {k} {d:+.4f} (new - baseline; run-to-run range "
                           f"within one tree up to {spread:.4f})")
    n_acc = sum(len(c.acc) for c in cases)
    tol = (f"{next(iter(ACC_TOL.values())):g}" if len(set(ACC_TOL.values())) == 1 else
           ", ".join(f"{v:g} in {k}" for k, v in ACC_TOL.items()))
    out.append(f"- Accuracy: {len(same)} of {n_acc} measures agree to 6 decimals in every run of "
               "both trees (fits on one thread, same seed)" + (
                   ("." if len(same) == n_acc else "; the others differ by at most " + tol + ".")
                   if not off else "; more than " + tol + ": " + "; ".join(off) + "."))
    pairs = [(b, n) for c in cases
             for b, n in zip(trees[0].runs.get(c.name, []), trees[1].runs.get(c.name, []),
                             strict=True) if "error" not in b | n]
    if pairs:
        parts = []
        for key, what in (("import_s", "importing fmlearn and its estimators"),
                          ("warm_s", "the first small fit (numba's cache warm: loading it)")):
            ratios = [n[key] / b[key] for b, n in pairs]
            parts.append(
                f"{what} {fmt_time(med([b[key] for b, _ in pairs]))} baseline, "
                f"{fmt_time(med([n[key] for _, n in pairs]))} new (paired ratio "
                f"{med(ratios):.2f}, new slower in {sum(x > 1 for x in ratios)} of {len(ratios)} "
                "pairs)")
        out.append("- Not in the table, the start of every measuring process (medians over all "
                   "cases): " + "; ".join(parts) + ".")
    load = {t.tag: t.other_cores for t in trees}
    if all(load.values()):
        out.append(
            "- Load from other processes during the measurements (cores busy, median over the "
            "measuring processes): baseline "
            f"{med(load['baseline']):.2f} (max {max(load['baseline']):.2f}), new "
            f"{med(load['new']):.2f} (max {max(load['new']):.2f}).")
    return out


def render(info: dict, cases: list[Case], summary: dict[str, dict], trees: list[Tree],
           rechecked: dict[str, dict] | None = None) -> str:
    base = trees[0]
    dirty = info["dirty"]
    out = [
        f"## Before and after the restructuring (side by side with {info['base_short']})",
        "",
        "Issue #10: the benchmarks rerun after the move to the engine / optimizer layer / task "
        "objects / `models/` package / split `parse.py` / lazy imports, side by side with the "
        "commit before it. Reproduce: `python benchmarks/regression.py` (`--base REV`, "
        "`--repeats N`, `--parts movielens,throughput,fields,bayes`, `--cases`, `--quick`, "
        "`--no-write`, `--render`). "
        "Data: `${FMLEARN_DATA:-/work/shared/data}` (ml-100k, frappe) or `--data`.",
        "",
        f"This run: `{info['command']}`, {info['minutes']:.1f} min in all, "
        f"{info['repeats']} measuring processes per tree and case. Baseline: "
        f"`{base.label}` ({info['base_subject']}), its `src/` exported by `git archive` into "
        "`benchmarks/_work/regression/`. New: this working tree, commit "
        f"`{info['new_short']}`"
        + (f" with uncommitted changes in {', '.join(f'`{d}`' for d in dirty)}" if dirty else "")
        + ". "
        f"Machine: {info['machine']}. Load average (1 min) {info['load_before']:.1f} before, "
        f"{info['load_after']:.1f} after: a shared machine, other jobs ran during the "
        "measurements (see the load line below), so compare the two trees' columns with each "
        "other, not with the absolute numbers of the other sections.",
        "",
        "How it is measured: every measurement is a fresh process (`PYTHONPATH` = that tree's "
        "`src`, `NUMBA_CACHE_DIR` a cache of its own, filled beforehand by one untimed process "
        "per tree), which first runs its case once on a little data, untimed, then measures. "
        "The two trees alternate case by case (baseline then new, then new then baseline in the "
        "next repeat, ...), so both see the same load. Medians and (min-max) ranges are over the "
        "measuring processes; ratios are new / baseline as times (below 1 = faster; for rates "
        "the inverse ratio of the rates): of the two medians, and paired: of the two processes "
        "of one repeat, which ran one right after the other, so that slow changes of the load "
        "cancel. Both trees run the same measuring "
        "code (`--job` in the script) and only public API that the baseline has too.",
        "",
        f"- movielens: MovieLens 100K u1, user + item one-hot, `FMRegressor(n_factors=8, "
        f"solver=..., learning_rate={ML_LR['adagrad']} (AdaGrad) / {ML_LR['sgd']} (SGD), "
        "init_stdev=0.01, l2_reg_V=0.08, l2_reg_w=0.01, early_stopping=True, "
        "n_iter_no_change=20, tol=1e-4, max_iter=300, n_jobs=1, random_state=0)` (the settings "
        "the movielens section chose on validation): wall time of `fit` (its validation "
        f"included), the fastest of {ML_INNER} fits per process; test RMSE.",
        f"- throughput: the throughput section's synthetic data (`make_data`, zipf"
        f"{TP_EXPONENT:g}, 20 one-hot fields x 50,000 categories, the last 10% held out), "
        f"`FMRegressor(n_factors=16, solver=..., learning_rate={TP_LR['sgd']} (sgd) / "
        f"{TP_LR['adagrad']} (adagrad), max_iter=E, tol=None, n_jobs=J, random_state=0)`; "
        f"the epoch alone = (t(E={TP_EPOCHS[1]}) - t(E={TP_EPOCHS[0]})) / "
        f"{TP_EPOCHS[1] - TP_EPOCHS[0]} with t the fastest of {INNER_BEST} whole fits, shown "
        "as training rows/s (M = million); holdout RMSE after "
        f"{TP_EPOCHS[1]} epochs (n_jobs=2 is Hogwild, so it varies run to run).",
        "- fields: Frappe, `frappe.validation.libfm` less a seeded 10% (validation) as train, "
        "`frappe.test.libfm` as test. FFM: `FFMClassifier(n_factors=4, fields=..., "
        "normalize=True, solver='adagrad', learning_rate=0.2, l2_reg_w=l2_reg_V=2e-5)` "
        "(libffm's settings); FwFM: `FwFMClassifier(n_factors=8, fields=..., "
        "learning_rate=0.2, l2_reg_w=l2_reg_V=0.01)` (the fields section's choice). Seconds "
        f"per epoch = (t(E={FIELD_EPOCHS[1]}) - t(E={FIELD_EPOCHS[0]})) / "
        f"{FIELD_EPOCHS[1] - FIELD_EPOCHS[0]}, t the fastest of {INNER_BEST} fits without "
        "validation; accuracy (n_jobs=1 rows) from an early-stopped fit on the validation "
        f"split (patience {FIELD_PATIENCE}, up to {FIELD_MAX_EPOCHS['ffm']} / "
        f"{FIELD_MAX_EPOCHS['fwfm']} epochs, best epoch kept), seed 0, on the test file.",
        "- bayes: MovieLens u1, `FMRegressor(n_factors=8, solver='mcmc', max_iter=100, "
        "n_kept_samples=95, init_stdev=0.1, tol=None)` and `FMRegressor(n_factors=8, "
        "solver='als', max_iter=100, l2_reg_w=1, l2_reg_V=10, init_stdev=0.1, tol=None)` (the "
        "regularization the bayes section chose), n_jobs=1, seed 0: wall time of `fit` / "
        f"iterations, the fastest of {BAYES_INNER} fits per process; test RMSE.",
        "",
        render_table(cases, summary),
        "",
        "Reading:",
        "",
        *reading(cases, summary, trees, rechecked),
        "",
        "Other numbers of the same runs (medians):",
        "",
        details_table(cases, summary),
    ]
    return "\n".join(out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", default="bced3fc", help="baseline commit (default bced3fc)")
    p.add_argument("--repeats", type=int, default=5,
                   help="measuring processes per tree and case (default 5)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    p.add_argument("--cases", default="",
                   help="only these cases of the parts (comma list of names such as ml-sgd, "
                        "tp-adagrad-2, fields-ffm-1, bayes-mcmc: the names in the log)")
    p.add_argument("--data", type=Path, default=DATA, help="folder with ml-100k/ and frappe/")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and one fit per measurement (to debug the script)")
    p.add_argument("--timeout", type=float, default=900, help="seconds per subprocess")
    p.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    p.add_argument("--render", nargs="*", type=Path, metavar="RESULTS",
                   help="no measuring: rewrite the section from saved results (default the "
                        "last run's, benchmarks/_work/regression/last.json); further files "
                        "(runs of some --cases) are shown as re-measurements under the table")
    p.add_argument("--job", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.job:
        run_job(json.loads(args.job))
        return
    if args.render is not None:
        return render_saved(args.render or [WORK / "last.json"], args)
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    bad = set(parts) - set(PARTS)
    if bad:
        p.error(f"unknown parts {sorted(bad)}; choose from {', '.join(PARTS)}")
    parts = [x for x in PARTS if x in parts]
    command = shlex.join([_shown_python(), "benchmarks/regression.py", *sys.argv[1:]])
    t_start, load_before = time.perf_counter(), os.getloadavg()[0]

    base_dir, base_sha, base_subject = export_baseline(args.base)
    new_sha = git("rev-parse", "HEAD")
    trees = [
        Tree("baseline", base_sha[:7], base_dir / "src", WORK / f"numba-base-{base_sha[:7]}"),
        Tree("new", f"{new_sha[:7]} (working tree)", ROOT / "src", WORK / "numba-new"),
    ]
    cases = make_cases(parts, args.data, args.quick)
    wanted = [x.strip() for x in args.cases.split(",") if x.strip()]
    if wanted:
        unknown = set(wanted) - {c.name for c in cases}
        if unknown:
            p.error(f"unknown cases {sorted(unknown)} in --parts {','.join(parts)}; there: "
                    + ", ".join(c.name for c in cases))
        cases = [c for c in cases if c.name in wanted]
    log(f"baseline {base_sha[:7]} ({base_subject}) from {base_dir}; new = {ROOT / 'src'}; "
        f"{len(cases)} cases x {args.repeats} repeats")

    for tree in trees:  # fill each tree's numba cache (compiling what is not there yet)
        t0 = time.perf_counter()
        res, _ = run_tree(tree, cases, warm_only=True, quick=args.quick, timeout=args.timeout)
        ok = sum("error" not in r for r in res.values())
        log(f"warm {tree.tag}: {time.perf_counter() - t0:.1f}s, {ok}/{len(cases)} cases ran")

    for rep in range(args.repeats):
        order = trees if rep % 2 == 0 else trees[::-1]
        for case in cases:
            line = []
            for tree in order:
                res, others = run_tree(tree, [case], warm_only=False, quick=args.quick,
                                       timeout=args.timeout)
                r = res[case.name]
                tree.runs.setdefault(case.name, []).append(r)
                tree.other_cores.append(others)
                if "error" not in r:
                    value = (f"{r[case.rate] / r['time'] / 1e6:.2f}M rows/s" if case.rate
                             else fmt_time(r["time"]))
                    accs = " ".join(f"{k} {r[k]:.4f}" for k in case.acc if k in r)
                    line.append(f"{tree.tag} {value} {accs} (others {others:.2f} cores)")
                else:
                    line.append(f"{tree.tag} FAILED {r['error'][:120]}")
            log(f"[{rep + 1}/{args.repeats}] {case.name}: " + " | ".join(line))

    minutes = (time.perf_counter() - t_start) / 60
    info = {
        "command": command, "minutes": minutes, "base_short": base_sha[:7],
        "base_subject": base_subject, "new_short": new_sha[:7], "dirty": uncommitted_sources(),
        "machine": machine_line(), "load_before": load_before, "load_after": os.getloadavg()[0],
        "parts": parts, "cases": [c.name for c in cases], "quick": args.quick,
        "repeats": args.repeats,
    }
    saved = {"info": info, "runs": {t.tag: t.runs for t in trees},
             "other_cores": {t.tag: t.other_cores for t in trees}}
    text = json.dumps(saved, indent=1)
    (WORK / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(text)
    (WORK / "last.json").write_text(text)
    body = publish(saved, cases, trees, args.no_write)
    log(f"done in {minutes:.1f} min" + ("" if args.no_write else
                                        "; wrote the regression section of docs/benchmarks.md"))
    return body


def publish(saved: dict, cases: list[Case], trees: list[Tree], no_write: bool,
            rechecks: list[dict] = ()) -> str:
    summary = {c.name: summarize(c, trees) for c in cases}
    rechecked, blocks = {}, []
    for extra in rechecks:
        block, again = render_recheck(extra)
        blocks.append(block)
        rechecked.update(again)
    body = "\n\n".join([render(saved["info"], cases, summary, trees, rechecked), *blocks])
    print(body)
    if not no_write:
        write_section("regression", body)
    return body


def _restore(saved: dict) -> tuple[list[Case], list[Tree]]:
    """Cases and trees of a results file (no data prepared, nothing measured)."""
    info = saved["info"]
    cases = make_cases(info["parts"], DATA, info["quick"], prepare=False)
    cases = [c for c in cases if c.name in info["cases"]]
    trees = [Tree("baseline", info["base_short"], Path(), Path()),
             Tree("new", f"{info['new_short']} (working tree)", Path(), Path())]
    for t in trees:
        t.runs, t.other_cores = saved["runs"][t.tag], saved["other_cores"][t.tag]
    return cases, trees


def render_recheck(saved: dict) -> tuple[str, dict[str, dict]]:
    """A later run of some cases (``--cases``), shown under the main table."""
    info = saved["info"]
    cases, trees = _restore(saved)
    summary = {c.name: summarize(c, trees) for c in cases}
    return "\n".join([
        f"### Re-measured: {len(cases)} case{'s' if len(cases) > 1 else ''} of the table",
        "",
        f"`{info['command']}`, {info['minutes']:.1f} min, {info['repeats']} measuring processes "
        f"per tree and case, the same protocol; baseline `{info['base_short']}`, new "
        f"`{info['new_short']}`. Load average (1 min) {info['load_before']:.1f} before, "
        f"{info['load_after']:.1f} after.",
        "",
        render_table(cases, summary),
        "",
        *reading(cases, summary, trees),
    ]), summary


def render_saved(paths: list[Path], args) -> str:
    """The section from results files of earlier runs (no measuring): the first is the main
    table, any further ones are re-measurements of some of its cases."""
    saved = [json.loads(p.read_text()) for p in paths]
    cases, trees = _restore(saved[0])
    log(f"rendering {', '.join(map(str, paths))}"
        + (" (not written: --no-write)" if args.no_write else ""))
    return publish(saved[0], cases, trees, args.no_write, saved[1:])


def _shown_python() -> str:
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe) if ".venv" in exe.parts else "python"


if __name__ == "__main__":
    main()
