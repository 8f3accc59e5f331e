"""Data layer: design matrices, synthetic generators, text formats and DataFrame encoding.

Names import their module on first access (PEP 562), so that ``from fmlearn.data.textio
import read_libfm`` does not load scikit-learn (the encoder's) or pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fmlearn._lazy import lazy_module

# Public name -> the module defining it, imported on first access.
_LAZY = {
    "FMEncoder": "fmlearn.data.encoder",
    "RecommendationData": "fmlearn.data.synthetic",
    "RelationBlock": "fmlearn.data.relation",
    "TrueFM": "fmlearn.data.synthetic",
    "load_movielens100k": "fmlearn.data.movielens",
    "load_movielens100k_relational": "fmlearn.data.movielens_relational",
    "make_fm_regression": "fmlearn.data.synthetic",
    "make_recommendation": "fmlearn.data.synthetic",
}

if TYPE_CHECKING:  # what type checkers and IDEs see; keep in sync with _LAZY (tested)
    from fmlearn.data.encoder import FMEncoder
    from fmlearn.data.movielens import load_movielens100k
    from fmlearn.data.movielens_relational import load_movielens100k_relational
    from fmlearn.data.relation import RelationBlock
    from fmlearn.data.synthetic import (
        RecommendationData,
        TrueFM,
        make_fm_regression,
        make_recommendation,
    )

__all__ = [
    "FMEncoder",
    "RecommendationData",
    "RelationBlock",
    "TrueFM",
    "load_movielens100k",
    "load_movielens100k_relational",
    "make_fm_regression",
    "make_recommendation",
]

# Submodules resolve too, as `import fmlearn.data` used to load most of them.
__getattr__, __dir__ = lazy_module(globals(), _LAZY)
