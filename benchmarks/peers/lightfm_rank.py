"""LightFM (lightfm-next) for the ranking benchmark: WARP with optional user/item features.

Trained as LightFM's own examples do: ``LightFM(loss="warp", no_components=k, learning_rate,
item_alpha=user_alpha)`` fitted one epoch at a time with ``fit_partial`` on one thread. Scores
come from LightFM's user and item representations (biases and embeddings), so ranking all
items for all users is one matrix product; the benchmark does the top-k and the metrics with
the same code for every model.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

NAME = "lightfm"


def version() -> str:
    from importlib.metadata import version as dist_version

    import lightfm  # noqa: F401

    return f"lightfm-next {dist_version('lightfm-next')}"


def describe(params: dict, k: int) -> str:
    alpha = params.get("alpha", 0.0)
    return (
        f"`LightFM(loss='warp', no_components={k}, learning_rate={params['learning_rate']}, "
        f"item_alpha={alpha:g}, user_alpha={alpha:g}, max_sampled=10)`, `fit_partial` one "
        "epoch at a time, `num_threads=1`"
    )


class Model:
    """A LightFM model over fixed user and item feature matrices (None: identity)."""

    def __init__(self, params: dict, k: int, seed: int, user_features=None, item_features=None):
        from lightfm import LightFM

        alpha = params.get("alpha", 0.0)
        self.model = LightFM(
            no_components=k, loss="warp", learning_rate=params["learning_rate"],
            item_alpha=alpha, user_alpha=alpha, random_state=seed,
        )
        self.uf = None if user_features is None else sp.csr_matrix(user_features, dtype=np.float32)
        self.itf = None if item_features is None else sp.csr_matrix(item_features,
                                                                   dtype=np.float32)
        self.fit_seconds = 0.0

    def epoch(self, interactions: sp.coo_matrix) -> None:
        t0 = time.perf_counter()
        self.model.fit_partial(interactions, user_features=self.uf, item_features=self.itf,
                               epochs=1, num_threads=1)
        self.fit_seconds += time.perf_counter() - t0

    def scores(self, user_features=None, item_features=None) -> np.ndarray:
        """(n_users, n_items) scores; the training feature matrices unless others are given."""
        uf = self.uf if user_features is None else sp.csr_matrix(user_features, dtype=np.float32)
        itf = self.itf if item_features is None else sp.csr_matrix(item_features,
                                                                   dtype=np.float32)
        ub, ue = self.model.get_user_representations(uf)
        ib, ie = self.model.get_item_representations(itf)
        return ue.astype(np.float64) @ ie.T.astype(np.float64) + ub[:, None] + ib[None, :]
