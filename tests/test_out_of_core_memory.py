"""Out-of-core paths under an address-space limit (RLIMIT_AS) that in-memory training exceeds.

Each child process first warms up (imports, numba kernels from the cache, a tiny fit of every
path, the prefetch thread) and reads its own VmSize; only then does it set RLIMIT_AS to that
baseline plus ``MARGIN``, so the limit measures what training adds, not what numba and LLVM
map at start-up. glibc's per-thread malloc arenas reserve 64 MB of address space each: the
children run with ``MALLOC_ARENA_MAX=2`` so that a new prefetch thread does not count as data.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from fmlearn.data.textio import write_ffm, write_libfm

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="RLIMIT_AS and /proc/self/status are Linux's")

MARGIN_MB = 32
N_ROWS = 500_000
N_FEATURES = 2_000
NNZ = 12

_CHILD = r"""
import json, resource, sys
import numpy as np
from fmlearn import FFMClassifier, FMClassifier, HOFMClassifier
from fmlearn.data.cache import TextFiles, TableFiles, cache_chunks, CachedSource
from fmlearn.data.encoder import FMEncoder
from fmlearn.data.textio import read_libfm

mode, work, margin_mb, tiny = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
kw = dict(n_factors=4, max_iter=2, tol=None, early_stopping=False, random_state=0)

def vm():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024

def generated(n_chunks, rows):
    import scipy.sparse as sp
    rng = np.random.default_rng(0)
    for _ in range(n_chunks):
        cols = rng.integers(0, 2000, (rows, 12))
        X = sp.csr_matrix((np.ones(rows * 12, np.float32), (np.repeat(np.arange(rows), 12),
                           cols.reshape(-1))), shape=(rows, 2000))
        yield X, (rng.random(rows) < 0.3).astype(float)

def enc():  # a hashing encoder of the CSV's 12 id columns
    return FMEncoder(categorical=[f"c{j}" for j in range(12)], hash_bits=8)

def chunks(path):
    # An iterator of (X, y) arrays: the file read back in slices (stands for a stream).
    X, y = read_libfm(path)
    for i in range(0, X.shape[0], 500):
        yield X[i:i + 500], y[i:i + 500]

# Warm up every path on tiny files: kernels compiled or loaded, threads started.
FMClassifier(**kw).fit(*read_libfm(tiny[0]))
if mode == "disk":
    FMClassifier(**kw).fit(TextFiles(tiny[0], cache_dir=work + "/warm", block_mb=0.01))
    FFMClassifier(**kw).fit(TextFiles(tiny[1], cache_dir=work + "/warm", block_mb=0.01))
    FMClassifier(**kw).fit(cache_chunks(chunks(tiny[0]), work + "/warm/chunks"))
    HOFMClassifier(degree=3, **kw).fit(TextFiles(tiny[0], cache_dir=work + "/warm",
                                                 block_mb=0.01))
    FMClassifier(**kw).fit(TableFiles(tiny[2], target="y", encoder=enc(), chunk_rows=100,
                                      cache_dir=work + "/warm"))
base = vm()
resource.setrlimit(resource.RLIMIT_AS, (base + margin_mb * 2**20, resource.RLIM_INFINITY))
out = {"base_mb": base / 2**20}
try:
    if mode == "memory":
        FMClassifier(**kw).fit(*read_libfm(work + "/big.libfm"))
    else:
        m = FMClassifier(**kw).fit(TextFiles(work + "/big.libfm", cache_dir=work + "/c",
                                             block_mb=1))
        out["fm_iter"] = m.n_iter_
        m = FFMClassifier(**kw).fit(TextFiles(work + "/big.ffm", cache_dir=work + "/c",
                                              block_mb=1))
        out["ffm_iter"] = m.n_iter_
        # An iterator of array chunks (a stream made on the fly), cached then trained.
        cache = cache_chunks(generated(400, 500), work + "/c/stream")
        m = FMClassifier(**kw).fit(cache)
        out["chunks_iter"], out["chunk_rows"] = m.n_iter_, CachedSource(cache).n_rows
        # HOFM through the same cache; a CSV read in chunks through a hashing encoder.
        m = HOFMClassifier(degree=3, **kw).fit(TextFiles(work + "/big.libfm",
                                                         cache_dir=work + "/c", block_mb=1))
        out["hofm_iter"] = m.n_iter_
        m = FMClassifier(**kw).fit(TableFiles(work + "/big.csv", target="y", encoder=enc(),
                                              chunk_rows=5_000, cache_dir=work + "/c"))
        out["csv_iter"], out["csv_fields"] = m.n_iter_, int(m._input_fields.max()) + 1
    out["ok"] = True
except (MemoryError, ValueError) as e:
    out["ok"] = False
    out["error"] = f"{type(e).__name__}: {e}"[:300]
out["peak_vm_mb"] = vm() / 2**20
print("RESULT " + json.dumps(out))
"""


# The deep models: the same limit, after the same warm-up of torch and of both paths.
_CHILD_DEEP = r"""
import json, resource, sys
import numpy as np
import torch
from fmlearn.data.cache import TextFiles
from fmlearn.data.textio import read_ffm
from fmlearn.deep import DeepFMClassifier

mode, work, margin_mb, tiny = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
kw = dict(n_factors=4, hidden_layer_sizes=(8,), max_iter=1, early_stopping=False, batch_size=8192,
          random_state=0)

def vm():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024

X, y, f = read_ffm(tiny[1])
DeepFMClassifier(fields=f, **kw).fit(X, y).predict_proba(X)
DeepFMClassifier(**kw).fit(TextFiles(tiny[1], cache_dir=work + "/warm", block_mb=0.01))
base = vm()
resource.setrlimit(resource.RLIMIT_AS, (base + margin_mb * 2**20, resource.RLIM_INFINITY))
out = {"base_mb": base / 2**20}
# One child for both (torch's start-up is most of its time): out of core first, then the
# same rows in memory under the same limit.
for mode in ("disk", "memory"):
    try:
        if mode == "memory":
            X, y, f = read_ffm(work + "/big.ffm")
            DeepFMClassifier(fields=f, **kw).fit(X, y)
        else:
            m = DeepFMClassifier(**kw).fit(TextFiles(work + "/big.ffm", cache_dir=work + "/c",
                                                     block_mb=1))
            out["iter"], out["n_fields"] = m.n_iter_, m.n_fields_
        out[mode] = "ok"
    except (MemoryError, ValueError, RuntimeError) as e:  # torch: RuntimeError on allocation
        out[mode] = f"{type(e).__name__}: {e}"[:300]
    out[mode + "_peak_vm_mb"] = vm() / 2**20
print("RESULT " + json.dumps(out))
"""


def _rows(n, seed):
    rng = np.random.default_rng(seed)
    cols = np.sort(rng.choice(N_FEATURES // NNZ, (n, NNZ)), axis=1)
    cols = cols + np.arange(NNZ) * (N_FEATURES // NNZ)
    X = sp.csr_matrix((np.ones(n * NNZ, np.float32), cols.reshape(-1),
                       np.arange(0, n * NNZ + 1, NNZ)), shape=(n, N_FEATURES))
    y = (rng.random(n) < 0.3).astype(np.float64)
    fields = (np.arange(N_FEATURES) // (N_FEATURES // NNZ)).clip(0, NNZ - 1)
    return X, y, fields


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("ooc_mem")
    X, y, fields = _rows(N_ROWS, 0)
    write_libfm(d / "big.libfm", X, y)
    write_ffm(d / "big.ffm", X, y, fields)
    Xt, yt, _ = _rows(300, 1)
    write_libfm(d / "tiny.libfm", Xt, yt)
    write_ffm(d / "tiny.ffm", Xt, yt, fields)
    _csv(d / "big.csv", X, y)
    _csv(d / "tiny.csv", Xt, yt)
    return d


def _csv(path, X, y):
    """The rows as a table of 12 id columns (a field each) and the label."""
    import pandas as pd

    ids = X.indices.reshape(-1, NNZ)
    df = pd.DataFrame(ids, columns=[f"c{j}" for j in range(NNZ)])
    df["y"] = y.astype(np.int8)
    df.to_csv(path, index=False)


def _child(mode, work: Path, script=_CHILD) -> dict:
    env = dict(os.environ, MALLOC_ARENA_MAX="2", OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", script, mode, str(work), str(MARGIN_MB),
         str(work / "tiny.libfm"), str(work / "tiny.ffm"), str(work / "tiny.csv")],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    assert lines, out.stderr[-3000:]
    return json.loads(lines[-1][7:])


def test_in_memory_training_exceeds_the_limit_that_out_of_core_trains_under(work):
    text_mb = (work / "big.libfm").stat().st_size / 2**20
    assert text_mb > MARGIN_MB  # the file alone would not fit in what the limit adds
    mem = _child("memory", work)
    assert not mem["ok"], mem
    disk = _child("disk", work)
    assert disk["ok"], disk
    assert disk["fm_iter"] == 2 and disk["ffm_iter"] == 2 and disk["chunks_iter"] == 2
    assert disk["chunk_rows"] == 200_000
    assert disk["hofm_iter"] == 2 and disk["csv_iter"] == 2 and disk["csv_fields"] == NNZ


def test_deep_models_train_out_of_core_under_the_limit_in_memory_training_exceeds(work):
    pytest.importorskip("torch")
    out = _child("both", work, _CHILD_DEEP)
    assert out["disk"] == "ok", out
    assert out["iter"] == 1 and out["n_fields"] == NNZ
    assert out["memory"] != "ok", out
