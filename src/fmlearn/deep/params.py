"""A fitted deep model as numpy arrays: what model files store (``kind`` "deep").

The torch module's ``state_dict`` (tensor names in ``tensor_names``, tensors as ``t0``,
``t1``, ...), the field of each column and the number of fields. Loading rebuilds the module
from the estimator's hyper-parameters and checks every tensor's shape (``load_state_dict``,
strict): no ``torch.load``, no pickle.
"""

from __future__ import annotations

import numpy as np
import torch


class DeepParams:
    kind = "deep"
    extra_state = ()
    state = np.zeros((0, 0), dtype=np.float32)

    def __init__(self, model: str, tensors: dict, fields: np.ndarray, n_fields: int):
        self.model, self.tensors = model, tensors
        self.fields, self.n_fields = np.asarray(fields, dtype=np.int32), int(n_fields)

    @classmethod
    def from_module(cls, model: str, module, fields) -> DeepParams:
        tensors = {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}
        return cls(model, tensors, fields, module.n_fields)

    @property
    def n_features(self) -> int:
        return int(self.tensors["embedding.V"].shape[0])

    @property
    def n_outputs(self) -> int:
        return int(self.tensors["bias"].shape[0])

    def all_finite(self) -> bool:
        return all(np.isfinite(v).all() for v in self.tensors.values() if v.dtype.kind == "f")

    def arrays(self) -> dict:
        names = list(self.tensors)
        out = {"model": np.array([self.model]), "tensor_names": np.array(names),
               "fields": self.fields, "n_fields": np.array([self.n_fields], dtype=np.int64)}
        out.update({f"t{i}": self.tensors[n] for i, n in enumerate(names)})
        return out

    @classmethod
    def from_arrays(cls, arrays: dict, state=None) -> DeepParams:
        names = [str(n) for n in arrays["tensor_names"]]
        if set(arrays) != {"model", "tensor_names", "fields", "n_fields",
                           *(f"t{i}" for i in range(len(names)))}:
            raise ValueError("the deep model's arrays do not match its tensor_names")
        fields = np.asarray(arrays["fields"])
        n_fields = int(arrays["n_fields"][0])
        if fields.ndim != 1 or (fields.size and (fields.min() < 0 or fields.max() >= n_fields)):
            raise ValueError("fields out of range of n_fields")
        tensors = {n: arrays[f"t{i}"] for i, n in enumerate(names)}
        if "embedding.V" not in tensors or "bias" not in tensors:
            raise ValueError("a deep model without embedding.V or bias")
        if tensors["embedding.V"].shape[0] != fields.shape[0]:
            raise ValueError("fields and embedding.V have different numbers of features")
        return cls(str(arrays["model"][0]), tensors, fields, n_fields)

    def state_dict(self) -> dict:
        return {n: torch.from_numpy(np.ascontiguousarray(v)) for n, v in self.tensors.items()}
