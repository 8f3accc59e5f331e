"""Field interaction matrices against brute force over feature pairs."""

import numpy as np
import scipy.sparse as sp

from fmlearn import FFMRegressor, FMRegressor
from fmlearn.inspection import field_interaction_matrix
from fmlearn.models import FFMParams, FMParams


def _bruteforce(weight, fields):
    n_fields = fields.max() + 1
    sums = np.zeros((n_fields, n_fields))
    counts = np.zeros((n_fields, n_fields))
    for i in range(len(fields)):
        for j in range(len(fields)):
            if i != j:
                sums[fields[i], fields[j]] += weight(i, j) ** 2
                counts[fields[i], fields[j]] += 1
    return np.sqrt(np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0))


def test_fm_matrix_matches_bruteforce():
    rng = np.random.default_rng(0)
    fields = np.array([0, 0, 1, 1, 1, 2, 2])
    p = FMParams.initialize(7, 3, 1.0, rng)
    V = p.V.astype(np.float64)
    want = _bruteforce(lambda i, j: V[i] @ V[j], fields)
    np.testing.assert_allclose(field_interaction_matrix(p, fields), want, rtol=1e-5)


def test_ffm_matrix_matches_bruteforce():
    rng = np.random.default_rng(1)
    fields = np.array([0, 1, 1, 2, 2, 2], dtype=np.int32)
    p = FFMParams.initialize(6, 2, 1.0, rng, fields)
    V = p.V.astype(np.float64)
    want = _bruteforce(lambda i, j: V[i, fields[j]] @ V[j, fields[i]], fields)
    np.testing.assert_allclose(field_interaction_matrix(p, fields), want, rtol=1e-5)


def test_estimators_find_the_interacting_fields():
    # Target: only fields 0 and 2 interact; field 1 is pure noise features.
    rng = np.random.default_rng(2)
    n, size = 4000, 10
    cols = np.column_stack([rng.integers(0, size, n) + f * size for f in range(3)])
    X = sp.csr_matrix((np.ones(3 * n), cols.ravel(), np.arange(0, 3 * n + 1, 3)), (n, 3 * size))
    a, b = rng.normal(size=size), rng.normal(size=size)
    y = a[cols[:, 0]] * b[cols[:, 2] - 2 * size] + rng.normal(0, 0.05, n)
    fields = np.repeat(np.arange(3), size)
    for model in (FMRegressor(n_factors=2, l2_reg_V=1e-3, init_stdev=0.01),
                  FFMRegressor(n_factors=2, fields=fields, l2_reg_V=1e-3, init_stdev=0.01)):
        model.set_params(max_iter=30, random_state=0).fit(X, y)
        M = model.field_interactions(fields, X=X)
        assert M.shape == (3, 3) and np.allclose(M, M.T)
        assert M[0, 2] > 3 * max(M[0, 1], M[1, 2])
