"""DeepFM (Guo et al. 2017): an FM and an MLP in parallel over shared embeddings."""

from __future__ import annotations

from torch import nn

from fmlearn.deep.layers import MLP, FMTerm, bi_interaction
from fmlearn.deep.models.base import DeepModel


class DeepFM(DeepModel):
    # N(0, 1e-4) embeddings, as DeepCTR-Torch and FuxiCTR start them, for the MLP that reads
    # them raw (measured better than 0.01 on Frappe and the planted rows, level on
    # MovieLens: docs/deep.md).
    embedding_std = 1e-4
    name = "deepfm"
    params = {"hidden_layer_sizes": (400, 400), "dropout": 0.0}

    def build(self, config):
        self.fm = FMTerm(self.k, self.n_outputs)
        self.mlp = MLP(self.n_fields * self.k, config["hidden_layer_sizes"], config["dropout"])
        self.out = nn.Linear(self.mlp.output_size, self.n_outputs)

    def head(self, E, L):
        deep = self.out(self.mlp(E.flatten(1)))
        return self.linear(L) + self.fm(bi_interaction(E)) + deep
