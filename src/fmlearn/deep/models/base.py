"""The model base: embeddings, linear part and bias shared by every deep model."""

from __future__ import annotations

import torch
from torch import nn

from fmlearn.deep.layers import Bags, FieldEmbedding


class DeepModel(nn.Module):
    """``forward(bags) -> [B, n_outputs]`` raw scores (no link).

    Subclasses set ``name``, ``params`` (their hyper-parameters and defaults, beyond the common
    ones) and write :meth:`head`, which reads the field tensor ``E`` ``[B, F, k]`` and the
    per-field linear sums ``L`` ``[B, F, n_outputs]``; the same head serves training
    (:class:`~fmlearn.deep.layers.FieldEmbedding` bags) and export
    (:class:`~fmlearn.deep.layers.PaddedFields`).

    Parameters
    ----------
    n_features, n_fields, n_outputs : int
    config : dict
        ``n_factors``, ``dropout``, ``pooling`` and the model's own ``params``.
    """

    name = ""
    params: dict = {}
    #: Embedding width per feature as a multiple of n_factors (FFM: one vector per field).
    per_field_vectors = False

    def __init__(self, n_features, n_fields, n_outputs, config):
        super().__init__()
        self.n_fields, self.n_outputs = int(n_fields), int(n_outputs)
        self.k = int(config["n_factors"])
        width = self.k * (self.n_fields if self.per_field_vectors else 1)
        self.embedding = FieldEmbedding(n_features, n_fields, width, n_outputs,
                                        config.get("pooling", "sum"))
        self.bias = nn.Parameter(torch.zeros(n_outputs))
        self.build(config)

    def build(self, config) -> None:
        """Create the model's own layers."""

    def linear(self, L):
        return L.sum(dim=1) + self.bias

    def head(self, E, L):
        raise NotImplementedError

    def forward(self, bags: Bags):
        E, L = self.embedding(bags)
        return self.head(E, L)

    def network_weights(self):
        """The weights ``l2_reg_net`` applies to: every matrix outside the embedding tables."""
        return [p for n, p in self.named_parameters()
                if not n.startswith("embedding.") and p.dim() > 1]
