"""The torch optimizers of the deep estimators, and one for embeddings and network apart.

``embedding_optimizer`` trains the embedding tables (factors and linear weights, the sparse
part) with one optimizer and the network (every other tensor: MLP, attention, CIN, bias) with
``optimizer``, as Wide & Deep trains its wide part by FTRL and its deep part by AdaGrad.
AdaGrad at the numba FM's step size, with its L2 on the features of each row, fits the
embeddings as the FM does; Adam at a small step size suits the dense network
(docs/deep.md, "Training the embeddings as the FM does").
"""

from __future__ import annotations

import torch

OPTIMIZERS = {"adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad, "sgd": torch.optim.SGD}
# The embedding tables' parameter names start with this (fmlearn.deep.models.base).
EMBEDDING_PREFIX = "embedding."


def _one(name: str, params: list, lr: float, device: str) -> torch.optim.Optimizer:
    # The fused kernels update each tensor in one pass over its memory instead of one per
    # elementwise op (Adam: about eight): the optimizer was a third of a DeepFM epoch.
    # Adagrad has a fused kernel on the CPU only.
    fused = device == "cpu" or (device == "cuda" and name != "adagrad")
    return OPTIMIZERS[name](params, lr=lr, fused=fused)


def set_base_rates(optimizer, lr: float, embedding_lr: float | None = None) -> None:
    """The step sizes before ``lr_decay`` (each group's ``base_lr``): ``embedding_lr`` (None:
    ``lr``) for a :class:`SplitOptimizer`'s embeddings, ``lr`` for everything else."""
    emb = lr if embedding_lr is None else embedding_lr
    if isinstance(optimizer, SplitOptimizer):
        pairs = [(optimizer.embeddings, emb), (optimizer.network, lr)]
    else:
        pairs = [(optimizer, lr)]
    for opt, rate in pairs:
        for group in opt.param_groups:
            group["base_lr"] = group["lr"] = rate


def set_lr_scale(optimizer, scale: float) -> None:
    """Every parameter group's step size set to its ``base_lr`` times ``scale``."""
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * scale


def name_of(optimizer: str, embedding_optimizer: str | None) -> str:
    """The optimizer's name in model files: ``optimizer``, or ``"<embedding>/<network>"``."""
    return optimizer if embedding_optimizer is None else f"{embedding_optimizer}/{optimizer}"


def names() -> set[str]:
    """Every name :func:`name_of` gives."""
    return set(OPTIMIZERS) | {f"{e}/{n}" for e in OPTIMIZERS for n in OPTIMIZERS}


def make(module, optimizer: str, lr: float, embedding_optimizer: str | None = None,
         embedding_lr: float | None = None):
    """The optimizer of ``module``'s parameters: one ``optimizer`` at ``lr``, or, with
    ``embedding_optimizer``, a :class:`SplitOptimizer` (embeddings at ``embedding_lr``, None
    meaning ``lr``)."""
    device = next(module.parameters()).device.type
    if embedding_optimizer is None:
        opt = _one(optimizer, list(module.parameters()), lr, device)
    else:
        named = list(module.named_parameters())
        emb = [n.startswith(EMBEDDING_PREFIX) for n, _ in named]
        opt = SplitOptimizer(
            _one(embedding_optimizer, [p for n, p in named if n.startswith(EMBEDDING_PREFIX)],
                 lr, device),
            _one(optimizer, [p for n, p in named if not n.startswith(EMBEDDING_PREFIX)], lr,
                 device),
            emb)
    set_base_rates(opt, lr, embedding_lr)
    return opt


class SplitOptimizer:
    """Two torch optimizers as one: ``embeddings`` steps the parameters flagged in
    ``is_embedding`` (in ``module.parameters()`` order), ``network`` the others.

    ``state_dict``/``load_state_dict`` index the state by the parameter's position in
    ``module.parameters()``, as a single optimizer's does, so that
    :mod:`fmlearn.deep.optstate` stores and restores it the same way.
    """

    def __init__(self, embeddings, network, is_embedding: list[bool]):
        self.embeddings, self.network = embeddings, network
        # Global index of each inner optimizer's i-th parameter.
        self._index = ([i for i, e in enumerate(is_embedding) if e],
                       [i for i, e in enumerate(is_embedding) if not e])

    @property
    def param_groups(self) -> list:
        return self.embeddings.param_groups + self.network.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.embeddings.zero_grad(set_to_none=set_to_none)
        self.network.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.embeddings.step()
        self.network.step()

    def state_dict(self) -> dict:
        state = {}
        for opt, index in zip((self.embeddings, self.network), self._index, strict=True):
            for i, entries in opt.state_dict()["state"].items():
                state[index[i]] = entries
        return {"state": state}

    def load_state_dict(self, sd: dict) -> None:
        for opt, index in zip((self.embeddings, self.network), self._index, strict=True):
            inner = opt.state_dict()
            local = {g: i for i, g in enumerate(index)}
            inner["state"] = {local[g]: v for g, v in sd["state"].items() if g in local}
            opt.load_state_dict(inner)
