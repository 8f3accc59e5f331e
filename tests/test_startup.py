"""Start-up: ``import fmlearn`` and the command line's help load no heavy dependency.

Each check runs in a fresh interpreter and looks at ``sys.modules``; no timings here (see
``benchmarks/startup.py`` for those).
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import fmlearn

# numpy too: `fmlearn --help` should cost the interpreter and argparse only.
HEAVY = ("sklearn", "numba", "scipy", "numpy", "torch", "dask", "pandas", "matplotlib", "tqdm")

REPORT = """
import json, sys
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(%r))))
"""


def loaded_after(code: str) -> list[str]:
    """The heavy top-level packages a fresh interpreter holds after running ``code``."""
    run = subprocess.run([sys.executable, "-c", code + REPORT % (HEAVY,)], capture_output=True,
                         text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_import_fmlearn_loads_no_heavy_dependency():
    assert loaded_after("import fmlearn; fmlearn.__version__; fmlearn.__all__") == []


@pytest.mark.parametrize("argv", [
    ["--help"], ["--version"], ["demo", "--help"], ["evaluate", "--help"], ["predict", "--help"],
    ["plot", "--help"], ["convert", "--help"], ["libfm", "-help"], ["libfm"],
])
def test_help_loads_no_heavy_dependency(argv):
    code = f"""
import contextlib, io
from fmlearn.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main({argv!r})
    except SystemExit as e:
        assert e.code == 0, e.code
"""
    assert loaded_after(code) == []


def test_module_entry_point_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "fmlearn", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for command in ("demo", "train", "evaluate", "predict", "plot", "libfm"):
        assert command in out


def test_public_names_resolve_on_first_access():
    code = """
import fmlearn
assert "FMRegressor" not in vars(fmlearn)
from fmlearn import FMRegressor
assert fmlearn.FMRegressor is FMRegressor and FMRegressor.__module__ == "fmlearn.fm"
"""
    assert "sklearn" in loaded_after(code)  # the estimator's own dependencies, now
    for name in fmlearn.__all__:
        assert getattr(fmlearn, name) is not None, name
    assert set(fmlearn.__all__) <= set(dir(fmlearn))
    assert callable(fmlearn.load) and isinstance(fmlearn.__version__, str)
    assert fmlearn.metrics.rmse([1.0], [1.0]) == 0.0  # submodules, as before the lazy imports
    with pytest.raises(AttributeError, match="no attribute 'FMRegresor'"):
        fmlearn.FMRegresor  # noqa: B018


@pytest.mark.parametrize("package, eager", [(fmlearn, {"__version__", "load", "save"}),
                                             (fmlearn.data, set())])
def test_lazy_table_and_type_checking_imports_agree(package, eager):
    """``_LAZY`` (what runs), the ``if TYPE_CHECKING:`` imports (what type checkers see) and
    ``__all__`` name the same things."""
    tree = ast.parse(Path(package.__file__).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If)
                 and getattr(node.test, "id", None) == "TYPE_CHECKING")
    seen = {alias.name: node.module for node in block.body for alias in node.names}
    assert seen == package._LAZY
    assert set(package._LAZY) | eager == set(package.__all__)
    for name in package.__all__:
        assert getattr(package, name) is not None, name


def test_the_text_reader_loads_neither_scikit_learn_nor_pandas():
    assert {"sklearn", "pandas"}.isdisjoint(
        loaded_after("from fmlearn.data.textio import read_libfm"))
    assert loaded_after("import fmlearn.data") == []
