"""pytorch-fm (``torchfm``) models for ``benchmarks/deep.py``.

torchfm ships model classes only, no training loop: the loop here is the plain one its README
example implies (Adam, ``BCELoss`` on the model's sigmoid output), over the whole training set
held as one LongTensor and indexed by a shuffled permutation per epoch (the cheapest input path
PyTorch has; torchfm's example wraps a ``Dataset`` in a ``DataLoader`` instead, which is slower).
Input: ``(n, n_fields)`` per-field ids; the models add the field offsets themselves.
"""

from __future__ import annotations

import numpy as np

from .deep_common import DeepData, Spec, Trainer, set_threads, train_with_early_stopping

NAME = "pytorch-fm"
MODELS = {
    "fm": "FactorizationMachineModel",
    "ffm": "FieldAwareFactorizationMachineModel",
    "deepfm": "DeepFactorizationMachineModel",
    "xdeepfm": "ExtremeDeepFactorizationMachineModel",
    "autoint+": "AutomaticFeatureInteractionModel",
    "nfm": "NeuralFactorizationMachineModel",
    "afm": "AttentionalFactorizationMachineModel",
}


def describe(spec: Spec) -> str:
    from importlib.metadata import version

    return (
        f"pytorch-fm {version('torchfm')}: `torchfm.model.*` (`{'`, `'.join(MODELS.values())}`),"
        " trained by a plain loop (shuffled index per epoch, `torch.optim.Adam`, `BCELoss`). "
        "Its MLP puts a BatchNorm1d after every hidden layer (not configurable); its AutoInt "
        "always has the MLP (AutoInt+ only) and projects the embeddings to the attention width "
        "before `nn.MultiheadAttention`; xDeepFM with `split_half=True` (as fmlearn's CIN). "
        "Its linear weights start N(0, 1) (`nn.Embedding`'s default), which takes many epochs "
        "to wash out. No FwFM, IFM, DIFM, "
        "CFM, no plain AutoInt. torchfm 0.7.0 uses `np.long` (gone from NumPy 2): aliased to "
        "`np.int64`."
    )


def _build(model: str, field_dims, spec: Spec):
    if not hasattr(np, "long"):  # torchfm 0.7.0 builds its offsets with dtype=np.long
        np.long = np.int64
    from torchfm.model import afi, afm, dfm, ffm, fm, nfm, xdfm

    k, h, d = spec.n_factors, spec.hidden, spec.dropout
    if model == "fm":
        return fm.FactorizationMachineModel(field_dims, k)
    if model == "ffm":
        return ffm.FieldAwareFactorizationMachineModel(field_dims, k)
    if model == "deepfm":
        return dfm.DeepFactorizationMachineModel(field_dims, k, h, d)
    if model == "xdeepfm":
        return xdfm.ExtremeDeepFactorizationMachineModel(field_dims, k, h, d, spec.cin,
                                                         split_half=True)
    if model == "autoint+":
        return afi.AutomaticFeatureInteractionModel(field_dims, k, k, spec.att_heads,
                                                    spec.att_layers, h, (d, d))
    if model == "nfm":
        return nfm.NeuralFactorizationMachineModel(field_dims, k, h, (d, d))
    if model == "afm":
        return afm.AttentionalFactorizationMachineModel(field_dims, k, spec.afm_att, (d, d))
    raise KeyError(model)


class _Trainer(Trainer):
    def __init__(self, model: str, data: DeepData, spec: Spec, seed: int):
        import torch

        self.torch = torch
        torch.manual_seed(seed)
        self.net = _build(model, [int(c) for c in data.cards], spec)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=spec.learning_rate)
        self.loss = torch.nn.BCELoss()
        self.gen = torch.Generator().manual_seed(seed)
        self.spec = spec
        self.x = torch.from_numpy(data.X_train.astype(np.int64))
        self.y = torch.from_numpy(data.y_train.astype(np.float32))
        self.parts = {p: torch.from_numpy(getattr(data, f"X_{p}").astype(np.int64))
                      for p in ("valid", "test")}

    def module(self):
        return self.net

    def train_epoch(self) -> None:
        self.net.train()
        order = self.torch.randperm(len(self.y), generator=self.gen)
        b = self.spec.batch_size
        for start in range(0, len(order), b):
            idx = order[start : start + b]
            if len(idx) < 2:  # BatchNorm1d cannot train on one row
                continue
            loss = self.loss(self.net(self.x[idx]), self.y[idx])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()

    def predict(self, part: str) -> np.ndarray:
        self.net.eval()
        x, b = self.parts[part], self.spec.predict_batch
        with self.torch.no_grad():
            return self.torch.cat([self.net(x[i : i + b]) for i in range(0, len(x), b)]).numpy()


def run(model: str, data: DeepData, spec: Spec, seed: int) -> dict:
    set_threads(spec.threads)
    return train_with_early_stopping(_Trainer(model, data, spec, seed), data, spec)
