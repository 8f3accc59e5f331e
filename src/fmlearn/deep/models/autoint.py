"""AutoInt and AutoInt+ (Song et al. 2019): multi-head self-attention over the field
embeddings; AutoInt+ adds an MLP in parallel."""

from __future__ import annotations

from torch import nn

from fmlearn.deep.layers import MLP, MultiHeadSelfAttention
from fmlearn.deep.models.base import DeepModel


class AutoInt(DeepModel):
    name = "autoint"
    params = {"n_attention_layers": 3, "n_heads": 2, "attention_size": 8}
    def build(self, config):
        d, d_out = self.k, config["n_heads"] * config["attention_size"]
        layers = []
        for _ in range(config["n_attention_layers"]):
            layers.append(MultiHeadSelfAttention(d, config["attention_size"], config["n_heads"]))
            d = d_out
        self.attention = nn.Sequential(*layers)
        self.att_out = nn.Linear(self.n_fields * d, self.n_outputs, bias=False)

    def head(self, E, L):
        return self.linear(L) + self.att_out(self.attention(E).flatten(1))


class AutoIntPlus(AutoInt):
    # N(0, 1e-4) embeddings, as DeepCTR-Torch and FuxiCTR start them, for the MLP that reads
    # them raw (measured better than 0.01 on Frappe and the planted rows, level on MovieLens;
    # AutoInt without the MLP is level or worse with it: docs/deep.md).
    embedding_std = 1e-4
    name = "autointplus"
    params = {"hidden_layer_sizes": (400, 400), "dropout": 0.0, **AutoInt.params}

    def build(self, config):
        super().build(config)
        self.mlp = MLP(self.n_fields * self.k, config["hidden_layer_sizes"], config["dropout"])
        self.out = nn.Linear(self.mlp.output_size, self.n_outputs, bias=False)

    def head(self, E, L):
        return super().head(E, L) + self.out(self.mlp(E.flatten(1)))
