"""CFM (Xin et al. 2019): the outer products of the field embeddings stacked into a cube, read
by 3-D convolutions."""

from __future__ import annotations

from torch import nn

from fmlearn.deep.layers import InteractionCube
from fmlearn.deep.models.base import DeepModel


class CFM(DeepModel):
    name = "cfm"
    params = {"conv_channels": 32}

    def build(self, config):
        self.cube = InteractionCube(self.n_fields, self.k, config["conv_channels"])
        self.out = nn.Linear(self.cube.output_size, self.n_outputs, bias=False)

    def head(self, E, L):
        return self.linear(L) + self.out(self.cube(E))
