"""Model inspection: how strongly fields interact in a fitted FM, FFM or FwFM.

The strength of fields F and G is the root mean square of the learned pairwise weights of
their feature pairs, ``<v_i, v_j>`` for FM, ``<v_{i,G}, v_{j,F}>`` for FFM, and
``r_FG <v_i, v_j>`` for FwFM, over ``i`` in F and ``j`` in G (``i != j``). It is computed from
k x k Gram matrices in O(n_features * k^2), never from the n_features^2 pairs.
"""

from __future__ import annotations

import numpy as np


def _gram_strength(A, B, same):
    """RMS of ``<a_i, b_j>`` over all (i, j), leaving out i == j when ``same``."""
    A = A.astype(np.float64)
    B = B.astype(np.float64)
    total = float(np.sum((A.T @ A) * (B.T @ B)))
    count = A.shape[0] * B.shape[0]
    if same:
        total -= float(np.sum(np.einsum("ij,ij->i", A, B) ** 2))
        count -= A.shape[0]
    return np.sqrt(max(total, 0.0) / count) if count > 0 else 0.0


def field_interaction_matrix(params, fields, used=None) -> np.ndarray:
    """Field-by-field interaction strengths of fitted parameters.

    Parameters
    ----------
    params : FMParams, FFMParams or a container with ``V`` (and ``r`` for FwFM)
    fields : ndarray of int, shape (n_features,)
        Field of each feature; features with a negative field are left out.
    used : ndarray of bool, shape (n_features,), optional
        Features to include (e.g. those that occur in the training data: features never
        seen keep their random initialization and would only add noise).

    Returns
    -------
    ndarray of float64, shape (n_fields, n_fields)
        Symmetric; entry (F, G) is the RMS pairwise weight between fields F and G.
    """
    fields = np.asarray(fields)
    keep = fields >= 0
    if used is not None:
        keep &= np.asarray(used, dtype=bool)
    n_fields = int(fields[keep].max()) + 1 if keep.any() else 0
    members = [np.flatnonzero(keep & (fields == f)) for f in range(n_fields)]
    V = params.V
    out = np.zeros((n_fields, n_fields))
    for F in range(n_fields):
        for G in range(F, n_fields):
            if V.ndim == 3:  # field-aware: feature i in F uses V[i, G] with partners in G
                A, B = V[members[F], G], V[members[G], F]
            else:
                A, B = V[members[F]], V[members[G]]
            strength = _gram_strength(A, B, same=F == G)
            r = getattr(params, "r", None)
            if r is not None:
                strength *= abs(float(r[F, G]))
            out[F, G] = out[G, F] = strength
    return out
