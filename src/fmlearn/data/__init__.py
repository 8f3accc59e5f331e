"""Data layer: design matrices, synthetic generators, text formats and DataFrame encoding."""

from fmlearn.data.encoder import FMEncoder
from fmlearn.data.relation import RelationBlock
from fmlearn.data.synthetic import (
    RecommendationData,
    TrueFM,
    make_fm_regression,
    make_recommendation,
)

__all__ = [
    "FMEncoder",
    "RecommendationData", "RelationBlock", "TrueFM", "make_fm_regression", "make_recommendation"]
