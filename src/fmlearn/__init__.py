"""fmlearn: factorization machines for Python.

Estimators follow scikit-learn's API; kernels are compiled by numba on first use and cached.
"""

from fmlearn._version import __version__
from fmlearn.data.encoder import FMEncoder
from fmlearn.data.relation import RelationBlock
from fmlearn.ffm import FFMClassifier, FFMRegressor
from fmlearn.fm import FMClassifier, FMRegressor
from fmlearn.fwfm import FwFMClassifier, FwFMRegressor
from fmlearn.hofm import HOFMClassifier, HOFMRegressor
from fmlearn.ordinal import FMOrdinalRegressor
from fmlearn.plotting import plot_field_interactions, plot_learning_curve
from fmlearn.ranking import FMRanker, recommend

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
]


def load(path):
    """Load a model saved with ``model.save(path)``; see :func:`fmlearn.io.load`."""
    from fmlearn.io import load as _load

    return _load(path)
