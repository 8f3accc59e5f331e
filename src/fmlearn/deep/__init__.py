"""The deep lineage of factorization machines on PyTorch (``pip install "fmlearn[torch]"``).

Importing this package imports torch; ``import fmlearn`` does not. For each model ``M`` in
TorchFM, TorchFFM, TorchFwFM, DeepFM, NFM, AFM, XDeepFM, AutoInt, AutoIntPlus, IFM, DIFM and CFM
there are ``MRegressor`` and ``MClassifier``, and ``MRanker`` (BPR/WARP on the query x candidate
inputs of ``FMRanker``, :mod:`fmlearn.deep.ranking`); see ``docs/deep.md``.
"""

from fmlearn.deep.estimators import (
    AFMClassifier,
    AFMRegressor,
    AutoIntClassifier,
    AutoIntPlusClassifier,
    AutoIntPlusRegressor,
    AutoIntRegressor,
    CFMClassifier,
    CFMRegressor,
    DeepFMClassifier,
    DeepFMRegressor,
    DIFMClassifier,
    DIFMRegressor,
    IFMClassifier,
    IFMRegressor,
    NFMClassifier,
    NFMRegressor,
    TorchFFMClassifier,
    TorchFFMRegressor,
    TorchFMClassifier,
    TorchFMRegressor,
    TorchFwFMClassifier,
    TorchFwFMRegressor,
    XDeepFMClassifier,
    XDeepFMRegressor,
)
from fmlearn.deep.ranking import RANKERS

globals().update(RANKERS)

__all__ = [
    "AFMClassifier", "AFMRegressor", "AutoIntClassifier", "AutoIntPlusClassifier",
    "AutoIntPlusRegressor", "AutoIntRegressor", "CFMClassifier", "CFMRegressor",
    "DIFMClassifier", "DIFMRegressor", "DeepFMClassifier", "DeepFMRegressor", "IFMClassifier",
    "IFMRegressor", "NFMClassifier", "NFMRegressor", "TorchFFMClassifier", "TorchFFMRegressor",
    "TorchFMClassifier", "TorchFMRegressor", "TorchFwFMClassifier", "TorchFwFMRegressor",
    "XDeepFMClassifier", "XDeepFMRegressor", *sorted(RANKERS),
]
