"""ONNX export of the deep models: the padded input convention of :mod:`fmlearn.export`.

The graph reads ``ids`` (int64 ``[N, L]``) and ``values`` (float32 ``[N, L]``), padding being
id 0 with value 0, and runs the fitted module's own head over
:class:`~fmlearn.deep.layers.PaddedFields`: a gather of the embedding rows and a one-hot
(position -> field) matrix product in place of EmbeddingBag, so an empty field is a zero
embedding and no op has a data-dependent shape. Outputs: ``prediction`` (float32 ``[N]``) for
a regressor, ``probabilities`` (float32 ``[N, n_classes]``) for a classifier.
"""

from __future__ import annotations

import copy
import io
import warnings

import torch
from torch import nn

from fmlearn._atomic import atomic_write
from fmlearn.deep.layers import PaddedFields


class Served(nn.Module):
    """A fitted module over padded inputs, with the output link of its task."""

    def __init__(self, module, fields, link: str):
        super().__init__()
        self.module = module
        self.inputs = PaddedFields(module.embedding, torch.as_tensor(fields))
        self.link = link

    def forward(self, ids, values):
        E, L = self.inputs(ids, values)
        out = self.module.head(E, L)
        if self.link == "identity":
            return out[:, 0]
        if self.link == "logit":
            p = torch.sigmoid(out[:, 0:1])
            return torch.cat([1.0 - p, p], dim=1)
        return torch.softmax(out, dim=1)


def served_module(estimator) -> Served:
    """The estimator's module (a CPU copy, in eval mode) over padded inputs."""
    module = copy.deepcopy(estimator.module_).cpu().eval()
    if not hasattr(type(estimator), "predict_proba"):
        link = "identity"
    else:
        link = "logit" if module.n_outputs == 1 else "softmax"
    return Served(module, estimator._fields, link).eval()


def export(estimator, path, *, opset: int = 17) -> None:
    served = served_module(estimator)
    name = "prediction" if served.link == "identity" else "probabilities"
    ids = torch.zeros((2, 3), dtype=torch.int64)
    values = torch.ones((2, 3), dtype=torch.float32)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            served, (ids, values), buffer, input_names=["ids", "values"], output_names=[name],
            dynamic_axes={"ids": {0: "n_rows", 1: "width"}, "values": {0: "n_rows", 1: "width"},
                          name: {0: "n_rows"}},
            opset_version=opset, dynamo=False,
        )
    with atomic_write(path) as f:
        f.write(buffer.getvalue())
