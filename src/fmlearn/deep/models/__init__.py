"""The deep models: each a small module over :mod:`fmlearn.deep.layers`.

``MODELS`` maps a model's name (model files, ``fmlearn train --model``) to its class.
"""

from fmlearn.deep.models.afm import AFM
from fmlearn.deep.models.autoint import AutoInt, AutoIntPlus
from fmlearn.deep.models.base import DeepModel
from fmlearn.deep.models.cfm import CFM
from fmlearn.deep.models.deepfm import DeepFM
from fmlearn.deep.models.fm import FFM, FM, FwFM
from fmlearn.deep.models.ifm import DIFM, IFM
from fmlearn.deep.models.nfm import NFM
from fmlearn.deep.models.xdeepfm import XDeepFM

MODELS = {cls.name: cls for cls in (FM, FFM, FwFM, DeepFM, NFM, AFM, XDeepFM, AutoInt,
                                    AutoIntPlus, IFM, DIFM, CFM)}

__all__ = ["AFM", "CFM", "DIFM", "FFM", "FM", "IFM", "MODELS", "NFM", "AutoInt", "AutoIntPlus",
           "DeepFM", "DeepModel", "FwFM", "XDeepFM"]
