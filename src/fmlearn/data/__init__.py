"""Data layer: design matrices, synthetic generators, text formats and DataFrame encoding."""

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
    "FMEncoder", "load_movielens100k", "load_movielens100k_relational",
    "RecommendationData", "RelationBlock", "TrueFM", "make_fm_regression", "make_recommendation"]
