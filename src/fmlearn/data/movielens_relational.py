"""MovieLens 100K with side information, SVD++-style implicit bags and dates, as relation blocks.

:func:`load_movielens100k_relational` builds, for one train/test split, the rows to train and
predict in relational form: a small ``X`` per rating and two :class:`fmlearn.RelationBlock`
(users, movies) whose rows are shared by all ratings of a user or movie, so that
``solver="als"``/``"mcmc"`` sweep them at the cost of their distinct rows.

The feature set of myFM's own example ``examples/ml-100k-extended.ipynb`` (tohtsky/myFM; its
published result on split u1: RMSE 0.8833 with rank 10, 512 Gibbs iterations, every sample
kept), rebuilt here with numpy only and the same encoders' rules (myFM's
``myfm.utils.encoders``), so that any tool gets exactly the same columns:

* ``X`` (one row per rating, not relational): the **rating date** (UTC day of the timestamp),
  one-hot over the dates present in the train split, plus one "unknown date" column (index 0)
  that test dates absent from the train split map to.
* **user block**, one row per distinct user of the split, ``[user id | age | occupation |
  zip | (gender) | implicit]``:

  - user id one-hot over all 943 users of ``u.user`` (+ an unused "unknown" column);
  - age binned at its 10 deciles over the 943 users (myFM's ``BinningEncoder``: a NaN column,
    then one column per interval);
  - occupation one-hot (+ unknown); zip: the **first character** of the zip code, one-hot
    (+ unknown);
  - gender one-hot (+ unknown): **not** in myFM's example (its user encoder stops at the zip),
    so off by default, ``gender=True`` adds it;
  - implicit bag: every movie the user rated in the **train** split, each with value
    ``1/sqrt(n)`` (``n`` movies), over the movies rated in the train split (+ unknown).
* **movie block**, one row per distinct movie of the split, ``[movie id | release year |
  genres | implicit]``:

  - movie id one-hot over all 1,682 movies of ``u.item`` (+ unknown);
  - release year binned at its 10 deciles over the 1,682 movies (movie 267 has no date: the
    NaN column);
  - genres: the movie's genre flags, value ``1/sqrt(n_genres)`` (myFM's
    ``MultipleValuesToSparseEncoder`` normalizes by default), over the 19 genres (+ unknown);
  - implicit bag: every user who rated the movie in the **train** split, ``1/sqrt(n)``.

Every feature group (the date, each user column above, each movie column above) is its own
hyper-prior group, as myFM's example does with ``group_shapes``. The column layout is
``[X | user block | movie block]`` for both myFM (``X_rel`` blocks follow ``X``) and fmlearn.
Nothing from the test file is used except the (user, movie, date) keys of the rows to predict.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from fmlearn.data.movielens import SPLITS, _read_ratings
from fmlearn.data.relation import RelationBlock

N_PERCENTILES = 10  # myFM's BinningEncoder default


@dataclass
class Part:
    """One side (train or test) of a split in relational form."""

    X: sp.csr_matrix  # (n_rows, n_x_columns): the date one-hot
    blocks: list[tuple[np.ndarray, sp.csr_matrix]]  # (row -> block row, block matrix)
    y: np.ndarray  # ratings, float64

    def __len__(self) -> int:
        return len(self.y)

    @property
    def X_rel(self) -> list[RelationBlock]:
        """The blocks as estimators take them: ``fit(X, y, X_rel=part.X_rel)``."""
        return [RelationBlock(idx, B) for idx, B in self.blocks]

    def flat(self) -> sp.csr_matrix:
        """The same rows as one plain CSR matrix ``[X | user block[idx] | movie block[idx]]``."""
        return sp.hstack([self.X] + [B[idx] for idx, B in self.blocks], format="csr")


@dataclass
class RelationalData:
    """A split in relational form; ``prior_groups`` gives one hyper-prior group per feature
    group (the date, each user and each movie column group)."""

    train: Part
    test: Part
    groups: list[tuple[str, int]]  # (name, n_columns) of each prior group, in column order
    n_x: int  # columns in X
    block_names: tuple[str, ...] = ("user", "movie")

    @property
    def group_shapes(self) -> list[int]:
        return [n for _, n in self.groups]

    @property
    def prior_groups(self) -> np.ndarray:
        """Group of every column of ``[X | block 0 | block 1]`` (myFM's ``grouping``)."""
        return np.repeat(np.arange(len(self.groups)), self.group_shapes).astype(np.int64)

    @property
    def n_features(self) -> int:
        return int(sum(self.group_shapes))

    def describe(self) -> str:
        return ", ".join(f"{name} {n}" for name, n in self.groups)


# ------------------------------------------------------------------------------ encoders
def _onehot_codes(codes: np.ndarray, n_cols: int) -> sp.csr_matrix:
    """One 1 per row at column ``codes[r]`` (rows with code -1 stay empty)."""
    rows = np.flatnonzero(codes >= 0)
    return sp.csr_matrix((np.ones(rows.size), (rows, codes[rows])), shape=(codes.size, n_cols))


def _category(values: np.ndarray, vocabulary: np.ndarray) -> sp.csr_matrix:
    """myFM's ``CategoryValueToSparseEncoder``: column 0 "unknown", then sorted vocabulary."""
    vocab = np.unique(vocabulary)
    pos = np.searchsorted(vocab, values)
    known = (pos < vocab.size) & (vocab[np.minimum(pos, vocab.size - 1)] == values)
    return _onehot_codes(np.where(known, pos + 1, 0), vocab.size + 1)


def _binning(values: np.ndarray, reference: np.ndarray) -> sp.csr_matrix:
    """myFM's ``BinningEncoder``: column 0 NaN, then one column per interval between the
    unique deciles of ``reference`` (values above the k-th decile go to column k + 1)."""
    ref = reference[~np.isnan(reference)]
    cuts = np.unique(np.percentile(ref, np.linspace(0, 100, N_PERCENTILES + 2)[1:-1]))
    vals = np.asarray(values, dtype=np.float64)
    codes = np.zeros(vals.size, dtype=np.int64)
    ok = ~np.isnan(vals)
    codes[ok] = 1 + (vals[ok, None] > cuts[None, :]).sum(axis=1)
    return _onehot_codes(codes, cuts.size + 2)


def _bags(owner: np.ndarray, member: np.ndarray, n_owner: int, vocabulary: np.ndarray,
          *, normalize: bool = True) -> sp.csr_matrix:
    """myFM's ``MultipleValuesToSparseEncoder``: row ``o`` holds the distinct ``member`` values
    paired with owner ``o``, each ``1/sqrt(n)`` (or 1), over column 0 "unknown" + the sorted
    vocabulary (members outside it map to column 0)."""
    vocab = np.unique(vocabulary)
    pos = np.searchsorted(vocab, member)
    known = (pos < vocab.size) & (vocab[np.minimum(pos, vocab.size - 1)] == member)
    cols = np.where(known, pos + 1, 0)
    M = sp.csr_matrix((np.ones(owner.size), (owner, cols)), shape=(n_owner, vocab.size + 1))
    M.sum_duplicates()
    M.data[:] = 1.0  # distinct members only
    if normalize:
        n = np.diff(M.indptr)
        M.data /= np.sqrt(np.repeat(np.maximum(n, 1), n))
    return M


# ------------------------------------------------------------------------------ reading
def _users(root: Path):
    """ids, age, gender, occupation, zip first character (arrays in ``u.user`` order)."""
    rows = [line.split("|") for line in (root / "u.user").read_text().splitlines() if line]
    ids = np.array([int(r[0]) for r in rows])
    age = np.array([float(r[1]) for r in rows])
    gender = np.array([r[2] for r in rows])
    occupation = np.array([r[3] for r in rows])
    zip1 = np.array([r[4][:1] for r in rows])
    return ids, age, gender, occupation, zip1


def _movies(root: Path):
    """ids, release year (NaN if missing), (movie index, genre index) pairs."""
    text = (root / "u.item").read_bytes().decode("latin-1")
    ids, years, g_movie, g_genre = [], [], [], []
    for i, line in enumerate(l for l in text.splitlines() if l):
        f = line.split("|")
        ids.append(int(f[0]))
        years.append(_dt.datetime.strptime(f[2], "%d-%b-%Y").year if f[2] else np.nan)
        for g, flag in enumerate(f[5:24]):
            if flag == "1":
                g_movie.append(i)
                g_genre.append(g)
    return np.array(ids), np.array(years, dtype=np.float64), np.array(g_movie), np.array(g_genre)


# ------------------------------------------------------------------------------ build
def load_movielens100k_relational(path, split: str = "u1", *, gender: bool = False,
                                  date: bool = True, side_info: bool = True,
                                  implicit: bool = True) -> RelationalData:
    """MovieLens 100K ``split`` with the features of myFM's ``ml-100k-extended`` example.

    See the module docstring for the columns. Nothing of the test file is used except the
    (user, movie, date) keys of the rows to predict.

    Parameters
    ----------
    path : str or os.PathLike
        The ``ml-100k`` folder (``u.user``, ``u.item``, ``u1.base`` ...).
    split : {"u1", ..., "u5", "ua", "ub"}
    gender : bool, default=False
        Add the users' gender (not in myFM's example).
    date, side_info, implicit : bool, default=True
        Switch those feature groups off, for ablations (the ids always stay).

    Returns
    -------
    RelationalData
        ``train`` and ``test`` parts (``X``, ``X_rel``, ``y``, ``flat()``), the feature
        groups (``groups``, ``prior_groups`` of shape (n_features,)) and ``n_features``.

    Examples
    --------
    >>> data = load_movielens100k_relational("ml-100k", "u1")  # doctest: +SKIP
    >>> model = FMRegressor(n_factors=10, solver="mcmc", max_iter=200,
    ...                     prior_groups=data.prior_groups)  # doctest: +SKIP
    >>> model.fit(data.train.X, data.train.y, X_rel=data.train.X_rel)  # doctest: +SKIP
    >>> model.predict(data.test.X, X_rel=data.test.X_rel)  # doctest: +SKIP
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    root = Path(os.fspath(path))
    train, test = _read_ratings(root / f"{split}.base"), _read_ratings(root / f"{split}.test")
    uid, age, sex, occ, zip1 = _users(root)
    mid, year, g_movie, g_genre = _movies(root)
    if not (np.array_equal(uid, np.arange(1, uid.size + 1))
            and np.array_equal(mid, np.arange(1, mid.size + 1))):
        raise ValueError(f"{root}: expected users and movies numbered 1..n in file order")
    n_users, n_movies = uid.size, mid.size

    # user table, one row per user id (row u - 1)
    user_parts = [("user id", _category(uid, uid))]
    if side_info:
        user_parts += [("user age", _binning(age, age)), ("user occupation", _category(occ, occ)),
                       ("user zip", _category(zip1, zip1))]
        if gender:
            user_parts.append(("user gender", _category(sex, sex)))
    if implicit:
        user_parts.append(("user implicit (movies rated)",
                           _bags(train[:, 0] - 1, train[:, 1], n_users, train[:, 1])))
    # movie table, one row per movie id
    movie_parts = [("movie id", _category(mid, mid))]
    if side_info:
        movie_parts += [("movie release year", _binning(year, year)),
                        ("movie genres", _bags(g_movie, g_genre, n_movies, g_genre))]
    if implicit:
        movie_parts.append(("movie implicit (users who rated)",
                            _bags(train[:, 1] - 1, train[:, 0], n_movies, train[:, 0])))
    user_table = sp.hstack([m for _, m in user_parts], format="csr")
    movie_table = sp.hstack([m for _, m in movie_parts], format="csr")

    days_train = train[:, 3] // 86400  # UTC day, as pandas' .dt.date of unit="s" timestamps

    def part(table: np.ndarray) -> Part:
        if date:
            X = _category(table[:, 3] // 86400, days_train)
        else:
            X = sp.csr_matrix((table.shape[0], 0))
        blocks = []
        for col, tbl in ((0, user_table), (1, movie_table)):
            keys, idx = np.unique(table[:, col], return_inverse=True)
            blocks.append((idx.astype(np.int64), tbl[keys - 1]))
        return Part(X.tocsr(), blocks, table[:, 2].astype(np.float64))

    train_part, test_part = part(train), part(test)
    groups = ([("date", train_part.X.shape[1])] if date else []) + [
        (name, m.shape[1]) for name, m in user_parts + movie_parts]
    return RelationalData(train_part, test_part, groups, train_part.X.shape[1])
