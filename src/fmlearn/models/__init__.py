"""Parameter containers, numpy only: what solvers update, estimators expose and model files store.

One module per model family over the shared storage of :mod:`fmlearn.models.table`. ``KINDS``
is the fixed registry model files name their container by; loading never imports or calls
anything outside it (and never an estimator module).
"""

from fmlearn.models.ffm import FFMParams
from fmlearn.models.fm import FMParams
from fmlearn.models.fwfm import FwFMParams
from fmlearn.models.hofm import HOFMParams
from fmlearn.models.multiclass import MulticlassFMParams
from fmlearn.models.ordinal import OrdinalFMParams, OrdinalPosteriorFM
from fmlearn.models.posterior import PosteriorFM
from fmlearn.models.table import LINKS, TableParams

KINDS: dict[str, type] = {
    cls.kind: cls
    for cls in (FMParams, MulticlassFMParams, PosteriorFM, FFMParams, FwFMParams, HOFMParams,
                OrdinalFMParams, OrdinalPosteriorFM)
}

__all__ = [
    "KINDS",
    "LINKS",
    "FFMParams",
    "FMParams",
    "FwFMParams",
    "HOFMParams",
    "MulticlassFMParams",
    "OrdinalFMParams",
    "OrdinalPosteriorFM",
    "PosteriorFM",
    "TableParams",
]
