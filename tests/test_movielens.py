"""MovieLens 100K loaders (skip without the shared data)."""

import numpy as np
import pytest
import scipy.sparse as sp

from fmlearn import FMRegressor, RelationBlock
from fmlearn.data import load_movielens100k, load_movielens100k_relational


def test_one_hot_split(data_dir):
    X_tr, y_tr, X_te, y_te = load_movielens100k(data_dir / "ml-100k", "u1")
    assert X_tr.shape == (80_000, 943 + 1682) and X_te.shape == (20_000, 943 + 1682)
    assert np.all(np.diff(X_tr.indptr) == 2) and set(np.unique(y_tr)) == {1, 2, 3, 4, 5}
    with pytest.raises(ValueError, match="unknown split"):
        load_movielens100k(data_dir / "ml-100k", "u9")


def test_relational_split(data_dir, tmp_path):
    d = load_movielens100k_relational(data_dir / "ml-100k", "u1")
    assert len(d.train) == 80_000 and len(d.test) == 20_000
    # myFM's ml-100k-extended features: the widths its example reports.
    assert d.n_features == 5518 and d.prior_groups.shape == (5518,)
    assert [n for n, _ in d.groups][:3] == ["date", "user id", "user age"]
    for part in (d.train, d.test):
        assert all(isinstance(b, RelationBlock) for b in part.X_rel)
        flat = part.flat()
        assert flat.shape == (len(part), d.n_features)
        # Every rating row holds its user id and its movie id, once each.
        groups = d.prior_groups[flat.indices]
        rows = np.repeat(np.arange(len(part)), np.diff(flat.indptr))
        for g in (1, 1 + 5):  # user id, movie id
            assert np.array_equal(np.bincount(rows[groups == g], minlength=len(part)),
                                  np.ones(len(part)))
    # Blocks hold one row per distinct user / movie of the part.
    users, movies = (b.X for b in d.train.X_rel)
    assert sp.issparse(users) and users.shape[0] == 943 and movies.shape[0] == 1650

    # A few Gibbs sweeps over the blocks already beat the mean by far (0.94 vs 1.15).
    model = FMRegressor(n_factors=4, solver="mcmc", max_iter=10, random_state=0,
                        prior_groups=d.prior_groups)
    model.fit(d.train.X, d.train.y, X_rel=d.train.X_rel)
    pred = model.predict(d.test.X, X_rel=d.test.X_rel)
    rmse = float(np.sqrt(np.mean((pred - d.test.y) ** 2)))
    baseline = float(np.sqrt(np.mean((d.train.y.mean() - d.test.y) ** 2)))
    assert rmse < 1.0 < baseline

    (tmp_path / "ml").mkdir()
    with pytest.raises(FileNotFoundError, match="MovieLens 100K folder layout"):
        load_movielens100k_relational(tmp_path / "ml", "u1")
    with pytest.raises(ValueError, match="unknown split"):
        load_movielens100k_relational(data_dir / "ml-100k", "u6")
