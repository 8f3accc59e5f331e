"""DeepCTR-Torch models for ``benchmarks/deep.py``.

Each field is a ``SparseFeat`` (vocabulary = the field's cardinality, ``embedding_dim`` =
``n_factors``) in both the linear and the DNN feature columns, as DeepCTR's examples declare
them. Training is DeepCTR's own ``model.fit`` (its ``DataLoader`` over a ``TensorDataset`` of
the concatenated inputs, cast to float32 per batch), called for one epoch at a time so that the
shared early-stopping rule can score the validation rows between epochs; prediction is its
``model.predict``. All its L2 terms are set to 0 (the other tools train without regularization).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from .deep_common import DeepData, Spec, Trainer, set_threads, train_with_early_stopping

NAME = "DeepCTR-Torch"
MODELS = {
    "fm": "DeepFM(dnn_hidden_units=())",
    "deepfm": "DeepFM",
    "xdeepfm": "xDeepFM",
    "autoint": "AutoInt(dnn_hidden_units=())",
    "autoint+": "AutoInt",
    "nfm": "NFM",
    "afm": "AFM",
    "ifm": "IFM",
    "difm": "DIFM",
}


def describe(spec: Spec) -> str:
    from importlib.metadata import version

    return (
        f"DeepCTR-Torch {version('deepctr-torch')}: `deepctr_torch.models` "
        f"({', '.join(f'`{v}`' for v in MODELS.values())}) with every `l2_reg_*` = 0, "
        "`compile(torch.optim.Adam(lr), 'binary_crossentropy')`, trained by its own `fit` "
        "(one epoch per call; its loss is the batch *sum*), scored by its own `predict`. "
        "xDeepFM with `cin_split_half=True` (as fmlearn's CIN); AutoInt's attention width is "
        "the embedding size "
        "(DeepCTR has no separate knob); FM = DeepFM without the DNN (DeepCTR has no FM class)."
    )


def _build(model: str, data: DeepData, spec: Spec, seed: int):
    from deepctr_torch import models as m
    from deepctr_torch.inputs import SparseFeat

    cols = [SparseFeat(f"f{i}", int(c), embedding_dim=spec.n_factors)
            for i, c in enumerate(data.cards)]
    h, d = tuple(spec.hidden), spec.dropout
    common = dict(l2_reg_embedding=0.0, seed=seed, task="binary", device="cpu")
    lin = dict(l2_reg_linear=0.0)
    dnn = dict(dnn_hidden_units=h, dnn_dropout=d, l2_reg_dnn=0.0)
    if model == "fm":
        return m.DeepFM(cols, cols, use_fm=True, dnn_hidden_units=(), **lin, **common)
    if model == "deepfm":
        return m.DeepFM(cols, cols, **dnn, **lin, **common)
    if model == "xdeepfm":
        return m.xDeepFM(cols, cols, cin_layer_size=tuple(spec.cin), cin_split_half=True,
                         l2_reg_cin=0.0, **dnn, **lin, **common)
    if model in ("autoint", "autoint+"):
        hid = h if model == "autoint+" else ()
        return m.AutoInt(cols, cols, att_layer_num=spec.att_layers, att_head_num=spec.att_heads,
                         att_res=True, dnn_hidden_units=hid, dnn_dropout=d, l2_reg_dnn=0.0,
                         **common)
    if model == "nfm":
        return m.NFM(cols, cols, bi_dropout=0.0, **dnn, **lin, **common)
    if model == "afm":
        return m.AFM(cols, cols, attention_factor=spec.afm_att, l2_reg_att=0.0, afm_dropout=d,
                     **lin, **common)
    if model == "ifm":
        return m.IFM(cols, cols, **dnn, **lin, **common)
    if model == "difm":
        return m.DIFM(cols, cols, att_head_num=spec.att_heads, att_res=True, **dnn, **lin,
                      **common)
    raise KeyError(model)


class _Trainer(Trainer):
    def __init__(self, model: str, data: DeepData, spec: Spec, seed: int):
        import torch

        torch.manual_seed(seed)  # DataLoader shuffling draws from the global generator
        self.net = _build(model, data, spec, seed)
        self.net.compile(torch.optim.Adam(self.net.parameters(), lr=spec.learning_rate),
                         "binary_crossentropy")
        self.spec = spec
        self.inputs = {p: {f"f{i}": getattr(data, f"X_{p}")[:, i].astype(np.int32)
                           for i in range(data.n_fields)} for p in ("train", "valid", "test")}
        self.y = data.y_train.astype(np.float32)

    def module(self):
        return self.net

    def train_epoch(self) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints the device and sizes
            self.net.fit(self.inputs["train"], self.y, batch_size=self.spec.batch_size,
                         epochs=1, verbose=0)

    def predict(self, part: str) -> np.ndarray:
        return self.net.predict(self.inputs[part], batch_size=self.spec.predict_batch)


def run(model: str, data: DeepData, spec: Spec, seed: int) -> dict:
    set_threads(spec.threads)
    return train_with_early_stopping(_Trainer(model, data, spec, seed), data, spec)
