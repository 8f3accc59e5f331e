"""fmlearn: factorization machines for Python.

Estimators follow scikit-learn's API; kernels are compiled by numba on first use and cached.

``import fmlearn`` loads nothing but the version: each public name imports its module on first
access (PEP 562), so that the command line and scripts that need one model do not pay for
scikit-learn, numba and every model family at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fmlearn._lazy import lazy_module
from fmlearn._version import __version__

# Public name -> the module defining it, imported on first access.
_LAZY = {
    "FFMClassifier": "fmlearn.ffm",
    "FFMRegressor": "fmlearn.ffm",
    "FMClassifier": "fmlearn.fm",
    "FMEncoder": "fmlearn.data.encoder",
    "FMOrdinalRegressor": "fmlearn.ordinal",
    "FMRanker": "fmlearn.ranking",
    "FMRegressor": "fmlearn.fm",
    "FwFMClassifier": "fmlearn.fwfm",
    "FwFMRegressor": "fmlearn.fwfm",
    "HOFMClassifier": "fmlearn.hofm",
    "HOFMRegressor": "fmlearn.hofm",
    "RelationBlock": "fmlearn.data.relation",
    "plot_field_interactions": "fmlearn.plotting",
    "plot_learning_curve": "fmlearn.plotting",
    "recommend": "fmlearn.retrieval",
}

# Subpackages and modules that `import fmlearn` used to load as a side effect, so that
# `fmlearn.metrics.rmse` keeps working after a bare `import fmlearn`.
_SUBMODULES = frozenset({
    "base", "callbacks", "data", "exceptions", "ffm", "fm", "fwfm", "hofm", "inspection", "io",
    "metrics", "ordinal", "pipeline_io", "plotting", "optim", "ranking", "solvers",
})

if TYPE_CHECKING:  # what type checkers and IDEs see; keep in sync with _LAZY (tested)
    from fmlearn.data.encoder import FMEncoder
    from fmlearn.data.relation import RelationBlock
    from fmlearn.ffm import FFMClassifier, FFMRegressor
    from fmlearn.fm import FMClassifier, FMRegressor
    from fmlearn.fwfm import FwFMClassifier, FwFMRegressor
    from fmlearn.hofm import HOFMClassifier, HOFMRegressor
    from fmlearn.ordinal import FMOrdinalRegressor
    from fmlearn.plotting import plot_field_interactions, plot_learning_curve
    from fmlearn.ranking import FMRanker
    from fmlearn.retrieval import recommend

__all__ = [
    "FFMClassifier",
    "FFMRegressor",
    "FMClassifier",
    "FMEncoder",
    "FMOrdinalRegressor",
    "FMRanker",
    "FMRegressor",
    "FwFMClassifier",
    "FwFMRegressor",
    "HOFMClassifier",
    "HOFMRegressor",
    "RelationBlock",
    "__version__",
    "load",
    "plot_field_interactions",
    "plot_learning_curve",
    "recommend",
    "save",
]


__getattr__, __dir__ = lazy_module(globals(), _LAZY, _SUBMODULES, extra=__all__)


def load(path):
    """Load a model saved with ``model.save(path)`` (see :func:`fmlearn.io.load`), or an
    ``FMEncoder`` or ``Pipeline`` saved with :func:`fmlearn.save`
    (see :func:`fmlearn.pipeline_io.load`)."""
    from fmlearn.pipeline_io import load as _load

    return _load(path)


def save(obj, path) -> None:
    """Save a fitted fmlearn model (as ``model.save(path)``), ``FMEncoder``, or ``Pipeline``
    of encoders and a model, in the safe file format (no pickle); :func:`fmlearn.load` reads
    it back. See docs/model-files.md."""
    from fmlearn.pipeline_io import is_pipeline

    if is_pipeline(obj):
        from fmlearn.pipeline_io import save as _save
    else:
        from fmlearn.io import save as _save
    _save(obj, path)
