"""NFM (He and Chua 2017): bi-interaction pooling under an MLP."""

from __future__ import annotations

from torch import nn

from fmlearn.deep.layers import MLP, BiInteraction
from fmlearn.deep.models.base import DeepModel


class NFM(DeepModel):
    name = "nfm"
    params = {"hidden_layer_sizes": (400, 400), "dropout": 0.0}

    def build(self, config):
        self.bi = BiInteraction()
        self.dropout = nn.Dropout(config["dropout"])
        self.mlp = MLP(self.k, config["hidden_layer_sizes"], config["dropout"])
        self.out = nn.Linear(self.mlp.output_size, self.n_outputs, bias=False)

    def head(self, E, L):
        return self.linear(L) + self.out(self.mlp(self.dropout(self.bi(E))))
