"""Naive numpy references of the FM formulas, written for clarity, not speed."""

import numpy as np


def fm_predict_bruteforce(X, w0, w, V):
    """y(x) = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j, by an explicit pair loop."""
    X = np.asarray(X.todense() if hasattr(X, "todense") else X, dtype=np.float64)
    w, V = np.asarray(w, np.float64), np.asarray(V, np.float64)
    out = np.empty(X.shape[0])
    for r in range(X.shape[0]):
        nz = np.flatnonzero(X[r])
        total = w0 + X[r, nz] @ w[nz]
        for a in range(len(nz)):
            for b in range(a + 1, len(nz)):
                i, j = nz[a], nz[b]
                total += V[i] @ V[j] * X[r, i] * X[r, j]
        out[r] = total
    return out


def fm_gradients(x, w0, w, V):
    """d y(x) / d(w0, w, V) for one dense row ``x``: (1, x_i, x_i (sum_j v_j x_j - v_i x_i))."""
    x = np.asarray(x, dtype=np.float64)
    s = x @ V
    gV = x[:, None] * (s[None, :] - V * x[:, None])
    return 1.0, x.copy(), gV


def ffm_predict_bruteforce(X, w0, w, V, fields):
    """FFM: w0 + sum_i w_i x_i + sum_{i<j} <V[i, f(j)], V[j, f(i)]> x_i x_j, pair by pair."""
    X = np.asarray(X.todense() if hasattr(X, "todense") else X, dtype=np.float64)
    out = np.empty(X.shape[0])
    for r in range(X.shape[0]):
        nz = np.flatnonzero(X[r])
        total = w0 + X[r, nz] @ np.asarray(w, np.float64)[nz]
        for a in range(len(nz)):
            for b in range(a + 1, len(nz)):
                i, j = nz[a], nz[b]
                total += V[i, fields[j]] @ V[j, fields[i]] * X[r, i] * X[r, j]
        out[r] = total
    return out


def numerical_table_gradient(params, Xk, y, h=1e-6):
    """d/dtheta of 0.5 * (f(x) - y)^2 for one row, theta = the parameter columns of the table.

    ``params`` is a table-backed container (fmlearn.models.table.TableParams); returns a flat
    float64 array over ``table[:, : wcol + 1]`` by central differences.
    """

    def loss(theta):
        p = params.copy()
        p.table[:, : p.wcol + 1] = theta.reshape(p.n_features, -1)
        return 0.5 * (p.decision_function(Xk)[0] - y[0]) ** 2

    theta = params.table[:, : params.wcol + 1].ravel().astype(np.float64)
    grad = np.zeros_like(theta)
    for c in range(theta.size):
        e = np.zeros_like(theta)
        e[c] = h
        grad[c] = (loss(theta + e) - loss(theta - e)) / (2 * h)
    return grad
