"""FuxiCTR models for ``benchmarks/deep.py``.

The ``fuxictr`` package on PyPI (2.3.x) ships the layers, ``BaseModel`` and the data loaders
but not the models: those live in the ``model_zoo/`` folder of its repository, each a small
``BaseModel`` subclass over the packaged layers. The classes below are that glue, written here
over the packaged layers in the same arrangement (embedding -> ``FactorizationMachine`` /
``CompressedInteractionNet`` / ``InnerProductInteraction`` / ``MLP_Block`` / self-attention
with residual), with the feature map built in memory (one categorical feature per field).
AutoInt's multi-head self-attention block is not in the package; it is written out here
(query/key/value projections, residual projection, ReLU, no scaling, no layer norm: the
model zoo's defaults).

Training goes through FuxiCTR's own input path and step: an ``NpzDataLoader`` (a
``DataLoader`` over rows of a stacked array, collated into a dict of column tensors; one
``.npz`` per part under the scratch folder, ``num_workers=0``) and ``BaseModel.train_step``
(forward, BCE, backward, gradient clipping at norm 10, Adam step); prediction is
``BaseModel.predict``. Not used: its ``fit`` (it checkpoints to disk and decays the learning
rate on plateaus), so that all peers stop by the same rule.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import OrderedDict

import numpy as np

from .deep_common import DeepData, Spec, Trainer, set_threads, train_with_early_stopping

NAME = "FuxiCTR"
MODELS = {
    "fm": "FM",
    "fwfm": "FwFM",
    "deepfm": "DeepFM",
    "xdeepfm": "xDeepFM",
    "autoint": "AutoInt (no DNN)",
    "autoint+": "AutoInt (with DNN)",
    "nfm": "NFM",
    "afm": "AFM",
}


def describe(spec: Spec) -> str:
    from importlib.metadata import version

    return (
        f"FuxiCTR {version('fuxictr')}: the pip package has no models (they are in the "
        "repository's `model_zoo/`), so `benchmarks/peers/deep_fuxictr.py` assembles "
        f"{', '.join(MODELS.values())} from the packaged layers (`FeatureEmbedding`, "
        "`FactorizationMachine`, `CompressedInteractionNet`, `InnerProductInteraction`, "
        "`MLP_Block`, `ScaledDotProductAttention`) as the model zoo does; data through its "
        "`NpzDataLoader` (`num_workers=0`), steps through `BaseModel.train_step` (gradient "
        "clipping at norm 10 included), scores through `BaseModel.predict`. Embeddings start "
        "N(0, 1e-4) and dense layers Xavier-normal (`BaseModel.reset_parameters`). "
        "Its CIN has no split-half option (all maps of a layer feed the next)."
    )


def _classes():
    """The model classes (fuxictr imported only in the worker)."""
    import torch
    from fuxictr.pytorch.layers import (
        CompressedInteractionNet,
        FactorizationMachine,
        FeatureEmbedding,
        InnerProductInteraction,
        LogisticRegression,
        MLP_Block,
        ScaledDotProductAttention,
    )
    from fuxictr.pytorch.models import BaseModel
    from torch import nn

    def mlp(input_dim, spec):
        return MLP_Block(input_dim=input_dim, output_dim=1, hidden_units=list(spec.hidden),
                         hidden_activations="ReLU", output_activation=None,
                         dropout_rates=spec.dropout, batch_norm=False)

    class _Base(BaseModel):
        def __init__(self, feature_map, spec, model_root):
            super().__init__(feature_map, model_id=type(self).__name__, gpu=-1,
                             verbose=0, model_root=model_root, metrics=["logloss"],
                             reduce_lr_on_plateau=False)
            self.embedding_layer = FeatureEmbedding(feature_map, spec.n_factors)
            self.build(feature_map, spec)
            self.compile("adam", "binary_crossentropy", spec.learning_rate)
            self.reset_parameters()
            self.model_to_device()

        def forward(self, inputs):
            X = self.get_inputs(inputs)
            return {"y_pred": self.output_activation(self.logit(X, self.embedding_layer(X)))}

    class FM(_Base):
        def build(self, fmap, spec):
            self.fm = FactorizationMachine(fmap)

        def logit(self, X, emb):
            return self.fm(X, emb)

    class FwFM(_Base):  # linear + sum over field pairs of r_fg <v_f, v_g>
        def build(self, fmap, spec):
            self.lr_layer = LogisticRegression(fmap, use_bias=True)
            self.inner = InnerProductInteraction(fmap.num_fields, output="inner_product")
            n_pairs = fmap.num_fields * (fmap.num_fields - 1) // 2
            self.r = nn.Linear(n_pairs, 1, bias=False)

        def logit(self, X, emb):
            return self.lr_layer(X) + self.r(self.inner(emb))

    class DeepFM(_Base):
        def build(self, fmap, spec):
            self.fm = FactorizationMachine(fmap)
            self.mlp = mlp(fmap.sum_emb_out_dim(), spec)

        def logit(self, X, emb):
            return self.fm(X, emb) + self.mlp(emb.flatten(start_dim=1))

    class xDeepFM(_Base):
        def build(self, fmap, spec):
            self.lr_layer = LogisticRegression(fmap, use_bias=False)
            self.cin = CompressedInteractionNet(fmap.num_fields, list(spec.cin), output_dim=1)
            self.dnn = mlp(fmap.sum_emb_out_dim(), spec)

        def logit(self, X, emb):
            return self.lr_layer(X) + self.cin(emb) + self.dnn(emb.flatten(start_dim=1))

    class SelfAttention(nn.Module):
        def __init__(self, dim, heads, dropout):
            super().__init__()
            self.heads, self.head_dim = heads, dim // heads
            self.W_q, self.W_k, self.W_v, self.W_res = (nn.Linear(dim, dim, bias=False)
                                                        for _ in range(4))
            self.attention = ScaledDotProductAttention(dropout)

        def forward(self, x):
            b = x.size(0)

            def split(t):
                return t.view(b, -1, self.heads, self.head_dim).transpose(1, 2)

            out, _ = self.attention(split(self.W_q(x)), split(self.W_k(x)), split(self.W_v(x)))
            out = out.transpose(1, 2).contiguous().view(b, -1, self.heads * self.head_dim)
            return (out + self.W_res(x)).relu()

    class AutoInt(_Base):
        with_dnn = False

        def build(self, fmap, spec):
            k = spec.n_factors
            self.attn = nn.Sequential(*[SelfAttention(k, spec.att_heads, spec.dropout)
                                        for _ in range(spec.att_layers)])
            self.fc = nn.Linear(fmap.num_fields * k, 1)
            self.dnn = mlp(fmap.sum_emb_out_dim(), spec) if self.with_dnn else None

        def logit(self, X, emb):
            out = self.fc(self.attn(emb).flatten(start_dim=1))
            if self.dnn is not None:
                out = out + self.dnn(emb.flatten(start_dim=1))
            return out

    class AutoIntPlus(AutoInt):
        with_dnn = True

    class NFM(_Base):
        def build(self, fmap, spec):
            self.lr_layer = LogisticRegression(fmap, use_bias=False)
            self.bi = InnerProductInteraction(fmap.num_fields, output="bi_interaction")
            self.dnn = mlp(spec.n_factors, spec)

        def logit(self, X, emb):
            return self.lr_layer(X) + self.dnn(self.bi(emb))

    class AFM(_Base):
        def build(self, fmap, spec):
            k = spec.n_factors
            self.product = InnerProductInteraction(fmap.num_fields, output="elementwise_product")
            self.lr_layer = LogisticRegression(fmap, use_bias=True)
            self.attention = nn.Sequential(nn.Linear(k, spec.afm_att), nn.ReLU(),
                                           nn.Linear(spec.afm_att, 1, bias=False),
                                           nn.Softmax(dim=1))
            self.weight_p = nn.Linear(k, 1, bias=False)

        def logit(self, X, emb):
            pairs = self.product(emb)
            pooled = torch.sum(self.attention(pairs) * pairs, dim=1)
            return self.lr_layer(X) + self.weight_p(pooled)

    return {"fm": FM, "fwfm": FwFM, "deepfm": DeepFM, "xdeepfm": xDeepFM, "autoint": AutoInt,
            "autoint+": AutoIntPlus, "nfm": NFM, "afm": AFM}


class _Trainer(Trainer):
    def __init__(self, model: str, data: DeepData, spec: Spec, seed: int, workdir: str):
        import torch
        from fuxictr.features import FeatureMap
        from fuxictr.pytorch.dataloaders.npz_dataloader import NpzDataLoader

        logging.getLogger().setLevel(logging.WARNING)
        torch.manual_seed(seed)
        fmap = FeatureMap("bench", workdir)
        fmap.features = OrderedDict(
            (f"f{i}", {"source": "", "type": "categorical", "vocab_size": int(c)})
            for i, c in enumerate(data.cards))
        fmap.labels = ["label"]
        fmap.default_emb_dim = spec.n_factors
        fmap.num_fields = fmap.get_num_fields()
        fmap.set_column_index()
        self.loaders = {}
        for part in ("train", "valid", "test"):
            X = getattr(data, f"X_{part}")
            path = os.path.join(workdir, f"{part}.npz")
            if not os.path.exists(path):
                np.savez(path, label=getattr(data, f"y_{part}").astype(np.float32),
                         **{f"f{i}": X[:, i] for i in range(data.n_fields)})
            self.loaders[part] = NpzDataLoader(
                fmap, path, batch_size=spec.batch_size if part == "train" else spec.predict_batch,
                shuffle=part == "train", num_workers=0)
        self.net = _classes()[model](fmap, spec, workdir)
        self.net._max_gradient_norm = 10.0  # set by BaseModel.fit, read by train_step

    def module(self):
        return self.net

    def train_epoch(self) -> None:
        self.net.train()
        for batch in self.loaders["train"]:
            self.net.train_step(batch)

    def predict(self, part: str) -> np.ndarray:
        return self.net.predict(self.loaders[part])


def run(model: str, data: DeepData, spec: Spec, seed: int) -> dict:
    set_threads(spec.threads)
    with tempfile.TemporaryDirectory(prefix="fuxictr-") as workdir:
        return train_with_early_stopping(_Trainer(model, data, spec, seed, workdir), data, spec)
