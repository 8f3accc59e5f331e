"""torchfm on MovieLens: ``FactorizationMachineModel(field_dims=[943, 1682], embed_dim=8)``.

The model class comes from ``peers.torchfm_peer`` (torchfm's FM without its final sigmoid, and
the ``np.long`` alias torchfm 0.7.0 needs on NumPy 2). Trained as torchfm's examples do: Adam,
MSE loss, shuffled mini-batches, one thread; ``weight_decay`` (Adam's L2 term) is chosen on
validation, the epoch by early stopping on the validation RMSE (best epoch's weights kept). The
bias starts at the training mean, as fmlearn's does, instead of 0 (a constant Adam would
otherwise spend its first epochs walking up to ~3.5).
"""

from __future__ import annotations

import time

import numpy as np

from .ratings_ml import FitResult, Patience, Ratings, rmse

NAME = "torchfm"
KNOB = "weight_decay"
GRID = [{"weight_decay": v} for v in (1e-5, 1e-4, 3e-4, 1e-3)]
FIXED = {"lr": 0.003, "batch_size": 1024, "max_epochs": 100, "patience": 5}
LABEL = "Adam lr=0.003, batch 1024"  # the table's config column, before the chosen knob
EARLY_STOPPING = True
K = 8


def version() -> str:
    from importlib.metadata import version as dist_version

    import torch
    import torchfm  # noqa: F401

    return f"{dist_version('torchfm')} (torch {torch.__version__})"


def describe(params: dict) -> str:
    p = {**FIXED, **params}
    return (
        "`FactorizationMachineModel(field_dims=[943, 1682], embed_dim=8)` without the sigmoid, "
        f"`torch.optim.Adam(lr={p['lr']}, weight_decay={p['weight_decay']:g})`, `MSELoss`, "
        f"batch {p['batch_size']}, bias initialized to the training mean, "
        f"`torch.set_num_threads(1)`, up to {p['max_epochs']} epochs, early stopping on the "
        f"validation RMSE (patience {p['patience']}), the best epoch kept"
    )


def _tensors(r: Ratings):
    import torch

    x = torch.from_numpy(np.column_stack([r.users, r.items]).astype(np.int64))
    return x, torch.from_numpy(r.y.astype(np.float32))


def fit_predict(
    train: Ratings, valid: Ratings | None, test: Ratings | None, params: dict, seed: int = 0
) -> FitResult:
    import torch

    from .torchfm_peer import _model_class

    p = {**FIXED, **params}
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    x, y = _tensors(train)
    xv = _tensors(valid)[0] if valid is not None else None
    model = _model_class()([train.n_users, train.n_items], K)
    with torch.no_grad():
        model.linear.bias.fill_(float(y.mean()))
    opt = torch.optim.Adam(model.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
    loss_fn = torch.nn.MSELoss()
    gen = torch.Generator().manual_seed(seed)
    stopper = Patience(p["patience"])
    best_state, best_valid, kept, epoch, bs = None, None, None, 0, p["batch_size"]
    t0 = time.perf_counter()
    for epoch in range(1, p["max_epochs"] + 1):
        model.train()
        order = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y), bs):
            idx = order[start : start + bs]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if xv is None:
            continue
        model.eval()
        with torch.no_grad():
            score = rmse(model(xv).numpy(), valid.y)
        improved, stop = stopper.update(epoch, score)
        if improved:
            best_valid, kept = score, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if stop:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    fit_s = time.perf_counter() - t0
    pred = None
    if test is not None:
        model.eval()
        with torch.no_grad():
            pred = model(_tensors(test)[0]).numpy().astype(np.float64)
    return FitResult(pred, best_valid, epoch, kept, fit_s)


def close() -> None:
    pass
