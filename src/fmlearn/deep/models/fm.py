"""FM, FFM and FwFM as torch modules: the baselines of the deep models, on the same data."""

from __future__ import annotations

from fmlearn.deep.layers import FFMInteraction, FMTerm, FwFMInteraction, bi_interaction
from fmlearn.deep.models.base import DeepModel


class FM(DeepModel):
    """``w0 + sum w_i x_i + sum_{f<g} <e_f, e_g>`` (Rendle 2010), over field embeddings."""

    name = "fm"

    def build(self, config):
        self.fm = FMTerm(self.k, self.n_outputs)

    def head(self, E, L):
        return self.linear(L) + self.fm(bi_interaction(E))


class FFM(DeepModel):
    """Field-aware FM (Juan et al. 2016): ``sum_{f<g} <e_{f,g}, e_{g,f}>``."""

    name = "ffm"
    per_field_vectors = True

    def build(self, config):
        self.ffm = FFMInteraction(self.n_fields)
        self.fm = FMTerm(self.k, self.n_outputs)

    def head(self, E, L):
        E4 = E.view(E.shape[0], self.n_fields, self.n_fields, self.k)
        return self.linear(L) + self.fm(self.ffm(E4))


class FwFM(DeepModel):
    """Field-weighted FM (Pan et al. 2018): ``sum_{f<g} r_{fg} <e_f, e_g>``."""

    name = "fwfm"

    def build(self, config):
        self.fwfm = FwFMInteraction(self.n_fields)
        self.fm = FMTerm(self.k, self.n_outputs)

    def head(self, E, L):
        return self.linear(L) + self.fm(self.fwfm(E))
