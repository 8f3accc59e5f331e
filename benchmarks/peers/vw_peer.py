"""Vowpal Wabbit: an FM over all field pairs with ``--lrq`` (low-rank quadratics), k = 16.

One namespace per field (letters a..t) and one ``--lrq xy16`` per field pair (190 of them).
VW's lrq keeps a single k-vector per feature, at a fixed offset from the feature's weight,
whichever pair it takes part in, so the 190 pairs share each feature's latent vector: that is
exactly a second-order FM (``--lrqfa`` would instead give every feature one vector per other
field, a field-aware FM, with 20x the parameters). Squared loss, VW's default update
(adaptive, normalized, invariant), ``--random_weights`` (see INIT). Note that lrq learns each
example twice (once per side of the pairs) and expands 190 x 16 product features per pass.

Hashing: with k = 16 each feature owns a block of 32 weights, so ``-b 25`` holds 2^20 blocks.
Feature names are integers chosen so that VW's hash (integer name + namespace hash, masked)
lands every one of the 1,000,000 features in its own block, clear of the constant: the
collision-free table a user would approach with a much larger ``-b``. ``prepare`` checks this
on a sample of rows.

Learning is timed on VW's own driver through the Python bindings: ``Workspace`` with
``--cache_file --passes E`` parses the binary cache and learns (VW reads input in a parser
thread beside its single learning thread; there is no multi-threaded learning, so 2 threads
is "n/a"). The time of the same call on a 10-row cache (allocation, set-up) is subtracted.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np

from . import Config, Data, holdout_rmse

NAME = "vw"
K = 16
BITS = 25  # 2^25 weights / 32 per feature = 2^20 feature blocks >= 1,000,000 features
BLOCK = 32  # weights per feature: next power of two >= 1 + K
CONSTANT_BLOCK = 11650396 % (2**BITS // BLOCK)  # VW's constant feature
NAMESPACES = "abcdefghijklmnopqrst"
LEARNING_RATE = 0.5  # VW's default
# lrq on its own starts each latent weight at U[0, 1) when first touched: all 190 pair terms
# start positive and the first predictions are in the hundreds; centred random weights fit
# this data much better (holdout RMSE about 0.5 lower after one pass in our trials).
INIT = ["--random_weights"]


def _args(extra: list[str] | None = None) -> list[str]:
    pairs = [f"{a}{b}{K}" for a, b in itertools.combinations(NAMESPACES, 2)]
    return (
        ["-b", str(BITS), "--quiet", "--holdout_off", "-l", str(LEARNING_RATE)]
        + INIT
        + [tok for p in pairs for tok in ("--lrq", p)]
        + (extra or [])
    )


def describe(args) -> str:
    return (
        f"- vw {_version()}: `vowpalwabbit.Workspace` (VW's own driver via the Python bindings), "
        f"`-b {BITS} --lrq ab{K} --lrq ac{K} ... --lrq st{K}` (all 190 pairs of the 20 "
        "field namespaces, one shared k=16 vector per feature = a plain FM; not `--lrqfa`, which "
        "is field-aware), `--random_weights` (all weights start U(-0.5, 0.5); lrq's own start "
        "U[0, 1) for latent weights makes every pair term positive and fit much worse here), "
        "squared loss, default adaptive/normalized/invariant updates, "
        f"`-l {LEARNING_RATE}`, `--holdout_off`, `--passes E` from a binary cache built "
        "beforehand. Integer feature names pre-offset so the 1M features hash to distinct "
        "weight blocks (no collisions). The time of the same run on a 10-row cache (set-up) "
        "is subtracted. VW learns in one thread (plus its parser thread): 2 threads n/a."
    )


def _version() -> str:
    from importlib.metadata import version

    return version("vowpalwabbit")


def configs(args) -> list[Config]:
    return [Config(f"--lrq 190 pairs, k={K}", threads=(1, None))]


def _names(data: Data, fields: np.ndarray, ns_hash: np.ndarray) -> np.ndarray:
    """Integer feature names whose VW hash is ``(CONSTANT_BLOCK + 1 + global id)`` blocks."""
    blocks = 2**BITS // BLOCK
    offsets = np.arange(data.n_fields, dtype=np.int64) * data.n_cats
    target = (CONSTANT_BLOCK + 1 + fields.astype(np.int64) + offsets) % blocks
    return (target - ns_hash[None, :]) % 2**BITS


def _write(path: Path, y: np.ndarray | None, names: np.ndarray) -> None:
    fmt = " ".join(f"|{ns} %d" for ns in NAMESPACES)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        for start in range(0, len(names), 50_000):
            chunk = names[start : start + 50_000]
            if y is None:
                lines = [fmt % tuple(r) for r in chunk.tolist()]
            else:
                lines = [
                    f"{t:.6g} " + fmt % tuple(r)
                    for t, r in zip(y[start : start + 50_000].tolist(), chunk.tolist(), strict=True)
                ]
            f.write("\n".join(lines) + "\n")
    tmp.rename(path)


class _State:
    def __init__(self, data: Data, train_txt: Path, test_lines: list[str], tiny_txt: Path):
        self.data = data
        self.train_txt = train_txt
        self.test_lines = test_lines
        self.tiny_txt = tiny_txt
        self.ws = None


def prepare(data: Data, config: Config) -> _State:
    import vowpalwabbit

    if data.n_features > 2**BITS // BLOCK - 1:
        raise ValueError("too many features for the collision-free layout; raise BITS")
    probe = vowpalwabbit.Workspace(arg_list=_args())
    ns_hash = np.array([probe.hash_space(ns) for ns in NAMESPACES], dtype=np.int64)
    folder = data.workdir / "vw"
    folder.mkdir(parents=True, exist_ok=True)
    train_txt = folder / f"{data.key}-train.vw"
    if not train_txt.exists():
        _write(train_txt, data.y_train, _names(data, data.train, ns_hash))
    tiny_txt = folder / f"{data.key}-tiny.vw"
    if not tiny_txt.exists():
        _write(tiny_txt, data.y_train[:10], _names(data, data.train[:10], ns_hash))
    test_names = _names(data, data.test, ns_hash)
    fmt = " ".join(f"|{ns} %d" for ns in NAMESPACES)
    test_lines = [fmt % tuple(r) for r in test_names.tolist()]

    # check the layout: every feature of a sample of rows sits in the block we aimed for
    blocks = 2**BITS // BLOCK
    want = (CONSTANT_BLOCK + 1 + data.global_ids("test")[:200]) % blocks
    for i, line in enumerate(test_lines[:200]):
        ex = probe.parse(line)
        got = [ex.feature(ns, 0) // BLOCK % blocks for ns in NAMESPACES]
        probe.finish_example(ex)
        if got != want[i].tolist():
            raise AssertionError(f"VW hashed row {i} to {got}, expected {want[i].tolist()}")
    probe.finish()

    # the binary caches, built by one untimed pass (these are VW's "converted" data)
    for txt in (train_txt, tiny_txt):
        cache = txt.with_suffix(".cache")
        if not cache.exists():
            # parse-only pass; --noop cannot sit under --lrq, and the cache does not depend
            # on it (it holds the hashed features)
            vowpalwabbit.Workspace(
                arg_list=[
                    "-b",
                    str(BITS),
                    "--quiet",
                    "-d",
                    str(txt),
                    "--cache_file",
                    str(cache),
                    "--noop",
                ]
            ).finish()
    return _State(data, train_txt, test_lines, tiny_txt)


def warmup(state: _State) -> None:
    _run(state.tiny_txt, 1).finish()  # pages the library in; nothing to compile
    return None


def _run(txt: Path, epochs: int):
    import vowpalwabbit

    return vowpalwabbit.Workspace(
        arg_list=_args(["--cache_file", str(txt.with_suffix(".cache")), "--passes", str(epochs)])
    )


def train(state: _State, n_threads: int, epochs: int) -> float:
    if n_threads != 1:
        raise ValueError("VW learns in a single thread")
    if state.ws is not None:
        state.ws.finish()
    t0 = time.perf_counter()
    tiny = _run(state.tiny_txt, epochs)
    setup = time.perf_counter() - t0
    tiny.finish()
    t0 = time.perf_counter()
    state.ws = _run(state.train_txt, epochs)
    return time.perf_counter() - t0 - setup


def rmse(state: _State) -> float:
    pred = np.array([state.ws.predict(line) for line in state.test_lines])
    return holdout_rmse(pred, state.data.y_test)


def close(state: _State) -> None:
    if state.ws is not None:
        state.ws.finish()
        state.ws = None
