#!/usr/bin/env bash
# Create benchmarks/.venv with fmlearn (editable) and the peer FM tools used by the benchmarks.
#
# Everything goes into that venv only: never the system Python, never fmlearn's dependencies.
# Idempotent: re-running skips what is already installed and prints the versions at the end.
#
#   bash benchmarks/setup_peers.sh            # fmlearn + pyspark, torch (CPU), torchfm, vowpalwabbit, myfm, lightfm-next
#   EXTRA_PEERS=1 bash benchmarks/setup_peers.sh   # also xlearn (best effort)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
VENV="$HERE/.venv"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo ">> creating $VENV"
    "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
# pip's output minus the noise of this machine's extra (file) indexes lacking a package
pip_install() {
    "$VPY" -m pip install --disable-pip-version-check "$@" 2>&1 \
        | { grep -v "is ignored: it is neither a file nor a directory" || true; }
    return "${PIPESTATUS[0]}"
}
has() { "$VPY" -c "import $1" >/dev/null 2>&1; }

pip_install -q --upgrade pip wheel "setuptools<81"

echo ">> fmlearn (editable)"
pip_install -q -e "$ROOT"

# torch first, pinned: this version resolves to a local CPU-only wheel, so torchfm below cannot
# pull a CUDA build of torch.
if ! "$VPY" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
    echo ">> torch==2.13.0 (CPU)"
    pip_install -q "torch==2.13.0"
fi
if ! has torchfm; then
    echo ">> torchfm (--no-deps: torch is already there)"
    pip_install -q --no-deps torchfm
fi

if ! has pyspark; then
    echo ">> pyspark (needs Java 17: $(java -version 2>&1 | head -n1))"
    pip_install -q pyspark
fi

if ! has vowpalwabbit; then
    echo ">> vowpalwabbit"
    pip_install -q vowpalwabbit
fi

# myFM (Bayesian FM by Gibbs sampling) for benchmarks/bayes.py. Its __init__ imports
# pkg_resources, which setuptools 81 removed: keep setuptools below 81 in this venv.
if ! has myfm; then
    echo ">> myfm"
    pip_install -q myfm "setuptools<81" || echo "!! myfm failed (benchmarks/bayes.py will skip it)"
fi

# LightFM for benchmarks/ranking.py: the lightfm-next fork of LightFM (imported as lightfm; pip
# builds it from source, which needs a C compiler).
if ! has lightfm; then
    echo ">> lightfm-next"
    pip_install -q lightfm-next || echo "!! lightfm-next failed (benchmarks/ranking.py will skip it)"
fi

# Peers used by other benchmarks; best effort, a failure here does not stop the script.
if [ "${EXTRA_PEERS:-0}" = "1" ]; then
    has xlearn || USER="${USER:-$(id -un)}" pip_install -q xlearn || echo "!! xlearn failed"
fi

# Deep CTR peers (benchmarks/deep.py), Dask (benchmarks/dask_scale.py) and ONNX Runtime; torch
# is already pinned above, so these cannot pull a CUDA build.
if [ "${DEEP_PEERS:-1}" = "1" ]; then
    has deepctr_torch || pip_install -q deepctr-torch || echo "!! deepctr-torch failed"
    has fuxictr || pip_install -q fuxictr || echo "!! fuxictr failed"
    has distributed || pip_install -q "dask[array,dataframe]" distributed || echo "!! dask failed"
    has onnxruntime || pip_install -q onnx onnxruntime || echo "!! onnxruntime failed"
fi

echo ">> versions"
"$VPY" - <<'EOF'
import importlib
import sys

print(f"python       {sys.version.split()[0]}")
for mod in ["fmlearn", "numba", "numpy", "scipy", "torch", "torchfm", "pyspark", "vowpalwabbit",
            "myfm", "xlearn", "lightfm", "deepctr_torch", "fuxictr", "dask", "distributed",
            "onnxruntime"]:
    try:
        m = importlib.import_module(mod)
    except Exception as exc:  # noqa: BLE001 - report anything
        print(f"{mod:12s} not available ({type(exc).__name__})")
        continue
    version = getattr(m, "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as dist_version

            version = dist_version({"vowpalwabbit": "vowpalwabbit"}.get(mod, mod))
        except Exception:  # noqa: BLE001
            version = "?"
    print(f"{mod:12s} {version}")
EOF
