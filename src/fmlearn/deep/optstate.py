"""The torch optimizer's state as arrays, so that model files keep it (no ``torch.save``).

A model file stores it under ``state/`` (see :mod:`fmlearn.io`): ``optim`` names the optimizer
(a 1-element string array) and ``optim_<i>_<key>`` holds entry ``key`` of the state of the
``i``-th parameter of ``module.parameters()`` (Adam: ``step``, ``exp_avg``, ``exp_avg_sq``;
AdaGrad: ``step``, ``sum``; plain SGD keeps none). Loading checks every array against the
rebuilt module's parameters, and the next ``partial_fit`` / ``warm_start`` fit hands them to
the new optimizer with ``load_state_dict``, so training continues as if never saved.
"""

from __future__ import annotations

import re

import numpy as np
import torch

NAME = "optim"
_KEY = re.compile(r"optim_([0-9]+)_([A-Za-z_][A-Za-z0-9_]*)\Z")
# Per-parameter scalars of the torch optimizers (the others have the parameter's shape).
_SCALARS = frozenset({"step"})


def to_arrays(optimizer: torch.optim.Optimizer, name: str) -> dict[str, np.ndarray]:
    """``{"optim": [name], "optim_<i>_<key>": array}`` of ``optimizer``'s per-parameter state."""
    out = {NAME: np.array([name])}
    for i, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            if value is None:  # e.g. SGD's momentum buffer without momentum
                continue
            arr = (value.detach().cpu().numpy() if torch.is_tensor(value)
                   else np.asarray(value, dtype=np.float64))
            out[f"optim_{int(i)}_{key}"] = np.array(arr, order="C")  # 0-d stays 0-d
    return out


def check_arrays(arrays: dict, module, names) -> dict:
    """The arrays of :func:`to_arrays` checked against ``module``'s parameters.

    Returns ``{"name": optimizer name, "state": {i: {key: array}}}``; raises ValueError naming
    the array that does not fit (a damaged or hand-edited file).
    """
    if NAME not in arrays:
        raise ValueError(f"optimizer state without state/{NAME} (the optimizer's name)")
    name = np.asarray(arrays[NAME])
    if name.shape != (1,) or name.dtype.kind != "U" or str(name[0]) not in names:
        raise ValueError(f"state/{NAME} must name one of the optimizers {sorted(names)}")
    shapes = [tuple(p.shape) for p in module.parameters()]
    state: dict[int, dict] = {}
    for key, arr in arrays.items():
        if key == NAME:
            continue
        m = _KEY.match(key)
        if m is None:
            raise ValueError(f"unknown solver state array state/{key}")
        i, entry = int(m.group(1)), m.group(2)
        if i >= len(shapes):
            raise ValueError(f"state/{key}: the model has {len(shapes)} parameter tensors")
        want = () if entry in _SCALARS else shapes[i]
        if arr.dtype.kind != "f" or arr.shape != want:
            raise ValueError(f"state/{key} has shape {arr.shape} and dtype {arr.dtype}; the "
                             f"model's parameter {i} needs floats of shape {want}")
        state.setdefault(i, {})[entry] = arr
    return {"name": str(name[0]), "state": state}


def restore(optimizer: torch.optim.Optimizer, name: str, checked: dict | None) -> bool:
    """Load ``checked`` (from :func:`check_arrays`) into a fresh ``optimizer`` called ``name``;
    False (nothing loaded) when there is no state or it belongs to another optimizer."""
    if checked is None or checked["name"] != name:
        return False
    sd = optimizer.state_dict()
    sd["state"] = {i: {k: torch.from_numpy(v.copy()) for k, v in entries.items()}
                   for i, entries in checked["state"].items()}
    # load_state_dict puts each entry on its parameter's device and dtype (fused optimizers'
    # step counts too).
    optimizer.load_state_dict(sd)
    return True
