"""torchfm: ``torchfm.model.fm.FactorizationMachineModel`` trained with MSE in plain PyTorch.

The model's ``forward`` ends in a sigmoid (it is written for CTR); for the regression target
the subclass below returns the same FM output without it. Its embeddings are ordinary dense
``nn.Embedding`` tables (1,000,000 x 16 + 1,000,000 x 1), so every optimizer step touches all
17M parameters whatever the batch size; that is how torchfm is used, and what dominates at
small batches. Input: a LongTensor ``(n, 20)`` of per-field category ids (the model adds the
field offsets itself).
"""

from __future__ import annotations

import time

import numpy as np

from . import Config, Data, holdout_rmse

NAME = "torchfm"
K = 16
SEED = 0


def _rows(args) -> list[int]:
    """Training-row caps for batch 1, 256 and 2048 (``--torch-rows``)."""
    return [int(x) for x in str(args.torch_rows).split(",")]


def configs(args) -> list[Config]:
    bs1, bs256, bs2048 = _rows(args)
    return [
        Config("SGD lr=0.01, batch 1", max_rows=bs1, params={"batch": 1, "opt": "sgd", "lr": 0.01}),
        Config(
            "Adam lr=0.001, batch 256",
            max_rows=bs256,
            params={"batch": 256, "opt": "adam", "lr": 0.001},
        ),
        Config(
            "Adam lr=0.01, batch 2048",
            max_rows=bs2048,
            params={"batch": 2048, "opt": "adam", "lr": 0.01},
        ),
    ]


def describe(args) -> str:
    from importlib.metadata import version

    import torch

    return (
        f"- torchfm {version('torchfm')} on torch {torch.__version__}: "
        "`FactorizationMachineModel(field_dims=[50000]*20, embed_dim=16)` with the final sigmoid "
        "dropped (regression) and its linear weights started at 0 instead of N(0, 1), MSE "
        "loss, a shuffled pass per epoch, `torch.set_num_threads(J)`. "
        "Batch 1 = true SGD (`torch.optim.SGD`); batch 256/2048 with `torch.optim.Adam` as "
        'torchfm\'s own examples train. Each runs on the first rows only (see "rows used"; '
        f"`--torch-rows {args.torch_rows}`): the embeddings are dense, so each step "
        "updates all 17M parameters. torchfm 0.7.0 still uses `np.long` (gone from NumPy 2): "
        "the benchmark aliases it to `np.int64` before building the model."
    )


def _model_class():
    if not hasattr(np, "long"):  # torchfm 0.7.0 builds its offsets with dtype=np.long
        np.long = np.int64
    import torch
    from torchfm.model.fm import FactorizationMachineModel

    class FMRegression(FactorizationMachineModel):
        """torchfm's FM without the final sigmoid, linear weights starting at zero."""

        def __init__(self, field_dims, embed_dim):
            super().__init__(field_dims, embed_dim)
            # nn.Embedding's default N(0, 1) start puts the sum of 20 linear weights at
            # std 4.5, far off a unit-scale target; FMs (libFM, fmlearn) start w at zero.
            torch.nn.init.zeros_(self.linear.fc.weight)

        def forward(self, x):
            return (self.linear(x) + self.fm(self.embedding(x))).squeeze(1)

    return FMRegression


class _State:
    def __init__(self, data: Data, config: Config):
        import torch

        self.torch = torch
        self.params = config.params
        self.field_dims = [data.n_cats] * data.n_fields
        self.x = torch.from_numpy(data.train.astype(np.int64))
        self.y = torch.from_numpy(data.y_train.astype(np.float32))
        self.x_test = torch.from_numpy(data.test.astype(np.int64))
        self.y_test = data.y_test
        self.cls = _model_class()
        self.model = None


def prepare(data: Data, config: Config) -> _State:
    return _State(data, config)


def _fit(state: _State, x, y, epochs: int, seed: int):
    torch = state.torch
    torch.manual_seed(seed)
    model = state.cls(state.field_dims, K)
    p = state.params
    if p["opt"] == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=p["lr"])
    else:
        opt = torch.optim.Adam(model.parameters(), lr=p["lr"])
    loss_fn = torch.nn.MSELoss()
    gen = torch.Generator().manual_seed(seed)
    batch = p["batch"]
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y), batch):
            idx = order[start : start + batch]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def warmup(state: _State) -> None:
    state.torch.set_num_threads(1)
    n = min(len(state.y), 4 * state.params["batch"])
    _fit(state, state.x[:n], state.y[:n], 1, SEED)  # allocator, kernels; nothing to compile
    return None


def train(state: _State, n_threads: int, epochs: int) -> float:
    state.torch.set_num_threads(n_threads)
    state.model = None
    t0 = time.perf_counter()
    state.model = _fit(state, state.x, state.y, epochs, SEED)
    return time.perf_counter() - t0


def rmse(state: _State) -> float:
    torch = state.torch
    state.model.eval()
    with torch.no_grad():
        pred = torch.cat(
            [state.model(state.x_test[i : i + 65536]) for i in range(0, len(state.x_test), 65536)]
        )
    return holdout_rmse(pred.numpy(), state.y_test)
