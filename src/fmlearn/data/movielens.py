"""MovieLens 100K in the original GroupLens ``ml-100k`` folder layout.

fmlearn ships no data (MovieLens terms forbid redistribution); point these functions at a
folder holding ``u.data``, ``u1.base``/``u1.test`` ... as unpacked from ``ml-100k.zip``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")


def _read_ratings(path: Path) -> np.ndarray:
    """(n, 4) int64 array of user, item, rating, timestamp from a tab-separated file."""
    try:
        table = np.loadtxt(path, dtype=np.int64, delimiter="\t", ndmin=2)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} not found: expected the MovieLens 100K folder layout (u.data, u1.base, "
            "u1.test, ...) as unpacked from ml-100k.zip"
        ) from None
    except ValueError as e:
        raise ValueError(f"{path}: not a MovieLens ratings file ({e})") from None
    if table.shape[1] != 4:
        raise ValueError(f"{path}: expected 4 tab-separated columns, found {table.shape[1]}")
    return table


def load_movielens100k(path, split="u1", *, dtype=np.float32):
    """One-hot user and item features and ratings for a train/test split of MovieLens 100K.

    Columns are ``[user 1..943 | item 1..1682]`` (ids from ``u.data``, so every split has the
    same columns).

    Parameters
    ----------
    path : str or os.PathLike
        The ``ml-100k`` folder.
    split : {"u1", ..., "u5", "ua", "ub"}
    dtype : float dtype of ``X``

    Returns
    -------
    X_train : csr_matrix of shape (n_train, n_users + n_items)
    y_train : ndarray of float64, shape (n_train,)
    X_test : csr_matrix of shape (n_test, n_users + n_items)
    y_test : ndarray of float64, shape (n_test,)
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    root = Path(os.fspath(path))
    every = _read_ratings(root / "u.data")
    n_users, n_items = int(every[:, 0].max()), int(every[:, 1].max())

    def encode(table):
        rows = np.repeat(np.arange(table.shape[0]), 2)
        cols = np.column_stack([table[:, 0] - 1, n_users + table[:, 1] - 1]).ravel()
        X = sp.csr_matrix(
            (np.ones(cols.size, dtype=dtype), (rows, cols)),
            shape=(table.shape[0], n_users + n_items),
        )
        return X, table[:, 2].astype(np.float64)

    X_train, y_train = encode(_read_ratings(root / f"{split}.base"))
    X_test, y_test = encode(_read_ratings(root / f"{split}.test"))
    return X_train, y_train, X_test, y_test
