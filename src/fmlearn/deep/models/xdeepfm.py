"""xDeepFM (Lian et al. 2018): linear part, Compressed Interaction Network and an MLP."""

from __future__ import annotations

from torch import nn

from fmlearn.deep.layers import CIN, MLP
from fmlearn.deep.models.base import DeepModel


class XDeepFM(DeepModel):
    # N(0, 1e-4) embeddings, as DeepCTR-Torch and FuxiCTR start them, for the MLP that reads
    # them raw (against 0.01: Frappe AUC level, log loss lower; level on the planted rows and
    # MovieLens: docs/deep.md).
    embedding_std = 1e-4
    name = "xdeepfm"
    params = {"hidden_layer_sizes": (400, 400), "dropout": 0.0,
              "cin_layer_sizes": (200, 200, 200), "cin_activation": "identity"}
    #: Model files written before ``cin_activation`` existed hold ReLU CINs.
    file_defaults = {"cin_activation": "relu"}

    def build(self, config):
        self.cin = CIN(self.n_fields, config["cin_layer_sizes"], split_half=True,
                       activation=config["cin_activation"])
        self.cin_out = nn.Linear(self.cin.output_size, self.n_outputs, bias=False)
        self.mlp = MLP(self.n_fields * self.k, config["hidden_layer_sizes"], config["dropout"])
        self.out = nn.Linear(self.mlp.output_size, self.n_outputs, bias=False)

    def head(self, E, L):
        return (self.linear(L) + self.cin_out(self.cin(E))
                + self.out(self.mlp(E.flatten(1))))
