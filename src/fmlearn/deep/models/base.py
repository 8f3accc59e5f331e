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
    #: Values a model file means when it lacks one of ``params`` (files written before the
    #: parameter existed), where they differ from today's default: ``fmlearn.io.load`` uses them.
    file_defaults: dict = {}
    #: Embedding width per feature as a multiple of n_factors (FFM: one vector per field).
    per_field_vectors = False
    #: Standard deviation of the embeddings' start (new fits only: files keep their tensors).
    embedding_std = 0.01

    def __init__(self, n_features, n_fields, n_outputs, config):
        super().__init__()
        self.n_fields, self.n_outputs = int(n_fields), int(n_outputs)
        self.k = int(config["n_factors"])
        width = self.k * (self.n_fields if self.per_field_vectors else 1)
        self.embedding = FieldEmbedding(n_features, n_fields, width, n_outputs,
                                        config.get("pooling", "sum"), self.embedding_std)
        self.bias = nn.Parameter(torch.zeros(n_outputs))
        self.build(config)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Dense layers (``nn.Linear``, ``nn.Conv1d``: the MLPs, attention, CIN, projections)
        start Xavier-normal with zero biases, as FuxiCTR's and the papers' code start them,
        instead of torch's default uniform(+-1/sqrt(fan_in)): on Frappe it was the better start
        (2 seeds: DIFM test AUC 0.893 vs 0.881, DeepFM log loss 0.370 vs 0.404). A weight
        marked ``keep_init`` (a layer's deliberate start, e.g. the multi-class FM projection
        at ones) is left alone; CFM's ``nn.Conv3d`` keeps torch's default."""
        for module in self.modules():
            if type(module) in (nn.Linear, nn.Conv1d) \
                    and not getattr(module.weight, "keep_init", False):
                nn.init.xavier_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

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
