"""IFM (Yu et al. 2019) and DIFM (Lu et al. 2020): input-aware factors. A network reads the
row's field embeddings and gives each field a weight, which rescales that field's embedding
and linear weights before an FM."""

from __future__ import annotations

from fmlearn.deep.layers import DualFEN, FMTerm, InputAwareFEN, bi_interaction
from fmlearn.deep.models.base import DeepModel


class IFM(DeepModel):
    name = "ifm"
    params = {"hidden_layer_sizes": (400, 400), "dropout": 0.0}

    def build(self, config):
        self.fen = InputAwareFEN(self.n_fields, self.k, config["hidden_layer_sizes"],
                                 config["dropout"])
        self.fm = FMTerm(self.k, self.n_outputs)

    def weights(self, E):
        return self.fen(E)

    def head(self, E, L):
        m = self.weights(E).unsqueeze(-1)  # [B, F, 1]
        return self.linear(L * m) + self.fm(bi_interaction(E * m))


class DIFM(IFM):
    name = "difm"
    params = {"hidden_layer_sizes": (400, 400), "dropout": 0.0, "n_heads": 2,
              "attention_size": 8}

    def build(self, config):
        self.fen = DualFEN(self.n_fields, self.k, config["hidden_layer_sizes"],
                           config["attention_size"], config["n_heads"], config["dropout"])
        self.fm = FMTerm(self.k, self.n_outputs)
