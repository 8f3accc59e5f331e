"""xLearn (FFM, FM, linear) for ``benchmarks/fields.py``, run in a subprocess.

xLearn is a C++ library whose Python binding prints its log on the process' stdout and reads
its training data from text files, writing a binary cache ``<file>.bin`` beside each one: give
it files in a scratch folder (``benchmarks/_work/``), never the shared data folder. Its Python
package aborts on import unless the ``USER`` environment variable is set.

Each call of :func:`run` starts ``<python> benchmarks/peers/xlearn_ffm.py <job.json>`` (the same
Python as the caller, i.e. ``benchmarks/.venv``), with ``USER`` set. The child redirects xLearn's
log into a file, parses the per-epoch table out of it and prints one JSON line with the result.

Jobs (dicts):

``{"op": "fit", "model": "ffm"|"fm"|"linear", "train": path, "valid": path|None,
"test": path|None, "workdir": path, "params": {...}, "early_stop": bool, "nthread": int}``
    One ``fit`` (``params`` are xLearn's: ``task, lr, lambda, k, epoch, stop_window, ...``),
    with ``valid`` as xLearn's validation set (early stopping on its log loss when
    ``early_stop``), then ``predict`` on ``test`` with the sigmoid. Returns ``epochs``,
    ``train_loss``, ``valid_loss`` (per epoch, from the log), ``best_epoch`` (the epoch whose
    model xLearn kept when it stopped early, else the last), ``fit_s`` (wall seconds of
    ``fit``) and ``pred`` (test probabilities).

``{"op": "time", "model": ..., "train": path, "workdir": path, "params": {...},
"nthreads": [1, 2], "epochs": [E1, E2]}``
    Seconds per epoch at each thread count by the difference method: one untimed warm-up fit
    of E1 epochs, then fits of E1 and E2 epochs (quiet, no validation set, early stopping off)
    timed around ``fit``; ``(t(E2) - t(E1)) / (E2 - E1)`` cancels what does not scale with the
    epochs (reading the binary cache, allocating, writing the model file). Returns
    ``{"per_epoch": {"1": s, "2": s}, "t1": {...}, "t2": {...}}``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME = "xlearn"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EPOCH = re.compile(r"^\[\s*\d+%\s*\]\s+(\d+)\s+([-+0-9.eE\s]+)$")
_EARLY = re.compile(r"Early-stopping at epoch (\d+)")


# ------------------------------------------------------------------------------ caller side
def version(python: str = sys.executable) -> str:
    """xLearn's version in ``python``; raises ``RuntimeError`` (with the reason) if absent."""
    out = subprocess.run(
        [python, "-c", "from importlib.metadata import version; import xlearn; "
         "print(version('xlearn'))"],
        capture_output=True, text=True, env=_env(), check=False,
    )
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise RuntimeError(f"xlearn not importable in {python}: {last}")
    return out.stdout.strip().splitlines()[-1]


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("USER", "fmlearn-bench")  # xlearn's import aborts without it
    return env


def run(job: dict, python: str = sys.executable, timeout: float = 900) -> dict:
    """Run one job (see the module docstring) in a child process; its result dict."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(job, f)
        path = f.name
    try:
        out = subprocess.run(
            [python, str(Path(__file__).resolve()), path],
            capture_output=True, text=True, env=_env(), timeout=timeout, check=False,
        )
    finally:
        os.unlink(path)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        tail = " | ".join((out.stderr or out.stdout).strip().splitlines()[-3:])
        raise RuntimeError(
            f"xlearn job {job.get('op')} failed (exit {out.returncode}): {tail or 'no output'}; "
            f"xLearn's log is in {job.get('workdir')}"
        )
    result = json.loads(lines[-1])
    if "error" in result:
        raise RuntimeError(f"xlearn job {job.get('op')} failed: {result['error']}")
    return result


# ------------------------------------------------------------------------------ child side
class _Captured:
    """Redirect fds 1 and 2 (where xLearn's C++ code prints) into a file."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = (os.dup(1), os.dup(2))
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(self.fd, 1)
        os.dup2(self.fd, 2)
        return self

    def __exit__(self, *exc):
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        for fd in (*self.saved, self.fd):
            os.close(fd)

    def text(self) -> str:
        return _ANSI.sub("", self.path.read_text(errors="replace"))


def _create(model: str):
    import xlearn as xl

    return {"ffm": xl.create_ffm, "fm": xl.create_fm, "linear": xl.create_linear}[model]()


def parse_log(text: str) -> dict:
    """Per-epoch losses and the early-stopping epoch from an xLearn training log."""
    epochs, train, valid = [], [], []
    for line in text.splitlines():
        m = _EPOCH.match(line.strip())
        if not m:
            continue
        nums = [float(v) for v in m.group(2).split()]
        epochs.append(int(m.group(1)))
        train.append(nums[0])
        if len(nums) >= 3:  # train loss, valid loss, [metric], seconds
            valid.append(nums[1])
    early = _EARLY.search(text)
    return {
        "epochs": epochs,
        "train_loss": train,
        "valid_loss": valid,
        "best_epoch": int(early.group(1)) if early else (epochs[-1] if epochs else None),
        "stopped_early": bool(early),
    }


def _fit(job: dict) -> dict:
    work = Path(job["workdir"])
    work.mkdir(parents=True, exist_ok=True)
    model_path, out_path, log_path = work / "xl_model.bin", work / "xl_pred.txt", work / "xl.log"
    m = _create(job["model"])
    m.setTrain(job["train"])
    if job.get("valid"):
        m.setValidate(job["valid"])
    if not job.get("early_stop", True):
        m.disableEarlyStop()
    if not job.get("norm", True):
        m.disableNorm()
    params = {**job["params"], "nthread": int(job.get("nthread", 1))}
    with _Captured(log_path) as cap:
        t0 = time.perf_counter()
        m.fit(params, str(model_path))
        fit_s = time.perf_counter() - t0
    result = {**parse_log(cap.text()), "fit_s": fit_s}
    if job.get("test"):
        p = _create(job["model"])
        p.setTest(job["test"])
        p.setSigmoid()
        if not job.get("norm", True):
            p.disableNorm()  # prediction must scale rows as training did
        with _Captured(log_path.with_suffix(".predict.log")):
            p.predict(str(model_path), str(out_path))
        result["pred"] = [float(v) for v in out_path.read_text().split()]
    return result


def _time(job: dict) -> dict:
    work = Path(job["workdir"])
    work.mkdir(parents=True, exist_ok=True)
    e1, e2 = (int(e) for e in job["epochs"])

    def timed(epochs: int, nthread: int) -> float:
        m = _create(job["model"])
        m.setTrain(job["train"])
        m.setQuiet()
        m.disableEarlyStop()
        if not job.get("norm", True):
            m.disableNorm()
        params = {**job["params"], "epoch": epochs, "nthread": nthread}
        with _Captured(work / "xl_time.log"):
            t0 = time.perf_counter()
            m.fit(params, str(work / "xl_time_model.bin"))
            return time.perf_counter() - t0

    out = {"per_epoch": {}, "t1": {}, "t2": {}}
    for nt in job["nthreads"]:
        timed(e1, nt)  # warm-up: binary cache, page cache, thread pool
        t1, t2 = timed(e1, nt), timed(e2, nt)
        out["t1"][str(nt)], out["t2"][str(nt)] = t1, t2
        out["per_epoch"][str(nt)] = (t2 - t1) / (e2 - e1)
    return out


def _main(path: str) -> None:
    job = json.loads(Path(path).read_text())
    try:
        result = {"fit": _fit, "time": _time}[job["op"]](job)
    except Exception as exc:  # noqa: BLE001 - reported to the caller as JSON
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    _main(sys.argv[1])
