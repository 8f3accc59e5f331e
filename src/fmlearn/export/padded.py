"""CSR rows as the padded ``(ids, values)`` arrays of exported graphs."""

from __future__ import annotations

import numpy as np

from fmlearn.data.design import as_kernel_csr


def padded_inputs(X, *, width: int | None = None) -> dict[str, np.ndarray]:
    """Rows of ``X`` as padded id and value arrays, the input of an exported model.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_rows, n_features)
        Rows in the model's columns (validated as a design matrix: explicit zeros dropped).
    width : int, optional
        Positions per row; default the largest number of non-zeros of a row (at least 1).

    Returns
    -------
    dict with
        ``"ids"`` : ndarray of int64, shape (n_rows, width)
        ``"values"`` : ndarray of float32, shape (n_rows, width)

        Row ``i``'s non-zeros first, in column order, then padding (id 0, value 0).
    """
    Xk = as_kernel_csr(X)
    counts = np.diff(Xk.indptr)
    longest = int(counts.max(initial=0))
    if width is None:
        width = max(longest, 1)
    elif longest > width:
        raise ValueError(
            f"a row has {longest} non-zeros but width={width}; pass width >= {longest} or "
            "leave it unset"
        )
    n = Xk.n_rows
    ids = np.zeros((n, width), dtype=np.int64)
    values = np.zeros((n, width), dtype=np.float32)
    rows = np.repeat(np.arange(n), counts)
    cols = np.arange(Xk.indices.shape[0]) - np.repeat(Xk.indptr[:-1], counts)
    ids[rows, cols] = Xk.indices
    values[rows, cols] = Xk.data
    return {"ids": ids, "values": values}
