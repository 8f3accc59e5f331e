"""Relation blocks: design matrices whose rows repeat large blocks of features.

In recommendation, every rating row of a user repeats the user's side features and, for
SVD++-style models, the bag of items the user rated; the expanded design matrix is then many
times larger than the information in it. A :class:`RelationBlock` stores such a part once, as a
small matrix with one row per distinct block row (user), plus an index per data row (libFM's
"BS" format, Rendle 2013; myFM's ``RelationBlock``). The model's feature columns are
``[main X columns | block 0 columns | block 1 columns | ...]``.

ALS and MCMC sweep blocks at the cost of their unique rows; SGD solvers and the field-aware
and higher-order models work on the expanded rows (:meth:`BlockDesign.expand`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from fmlearn.data.design import KernelCSR, as_kernel_csr
from fmlearn.data.validation import check_matrix


class RelationBlock:
    """A block of features shared by many rows.

    Parameters
    ----------
    indices : array-like of int, shape (n_rows,)
        For each data row, the row of ``X`` it repeats.
    X : {array-like, sparse matrix} of shape (n_block_rows, n_block_features)
        The distinct block rows (e.g. one per user).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from fmlearn import RelationBlock
    >>> users = sp.identity(3, format="csr")          # one-hot user ids
    >>> block = RelationBlock([0, 0, 2, 1], users)   # 4 ratings by users 0, 0, 2, 1
    >>> block.expand().toarray()[:, :3].tolist()
    [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    """

    def __init__(self, indices, X):
        if not sp.issparse(X):
            X = np.asarray(X)
            if X.ndim != 2 or X.dtype.kind not in "biuf":
                raise ValueError(
                    f"RelationBlock X must be a 2-D numeric array or sparse matrix, got "
                    f"{X.dtype} of shape {X.shape}."
                )
        if X.dtype.kind not in "biuf":
            raise ValueError(f"RelationBlock X must be numeric, got dtype {X.dtype}.")
        # Sparse structure, finite values within float32's range, no stored zeros: checked
        # once, here (the kernels index with it unchecked).
        X = check_matrix(X, "RelationBlock X")
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise ValueError(
                f"RelationBlock indices must be a 1-D integer array (one block row per data "
                f"row), got {idx.dtype} of shape {idx.shape}."
            )
        if idx.size and (idx.min() < 0 or idx.max() >= X.shape[0]):
            pos = int(np.flatnonzero((idx < 0) | (idx >= X.shape[0]))[0])
            raise ValueError(
                f"RelationBlock indices[{pos}] = {int(idx[pos])} is out of range: X has "
                f"{X.shape[0]} rows, so indices must lie in [0, {X.shape[0]})."
            )
        self.indices = idx.astype(np.int32, copy=False)
        self.X = X

    @property
    def n_rows(self) -> int:
        """Number of data rows the block covers."""
        return self.indices.shape[0]

    @property
    def n_features(self) -> int:
        """Number of feature columns of the block."""
        return self.X.shape[1]

    def expand(self) -> sp.csr_matrix:
        """The block as ordinary rows: a CSR matrix of shape (n_rows, n_features)."""
        return self.X[self.indices]

    def __repr__(self) -> str:
        return (
            f"RelationBlock(n_rows={self.n_rows}, n_block_rows={self.X.shape[0]}, "
            f"n_features={self.n_features}, nnz={self.X.nnz})"
        )


class KernelBlock(NamedTuple):
    """A relation block in kernel dtypes: ``idx`` int32 (n_rows,), block rows as CSR, and the
    model column of its first feature."""

    idx: np.ndarray
    csr: KernelCSR
    col0: int


class BlockDesign:
    """A design matrix made of a main CSR part and relation blocks, as solvers see it.

    Parameters
    ----------
    main : KernelCSR
        The main part; its columns are the first model features.
    blocks : list of KernelBlock
    """

    def __init__(self, main: KernelCSR, blocks: list[KernelBlock]):
        self.main = main
        self.blocks = blocks
        self.n_features = main.n_features + sum(b.csr.n_features for b in blocks)
        # Stacked for the prediction kernel: one (n_blocks, n_rows) index and row offsets.
        self.idx = np.ascontiguousarray(
            np.stack([b.idx for b in blocks]) if blocks else np.zeros((0, main.n_rows), np.int32)
        )
        sizes = [b.csr.n_rows for b in blocks]
        sizes = np.asarray(sizes, dtype=np.int64)
        self.row_offset = np.cumsum(sizes) - sizes  # where each block's rows start
        self.n_block_rows = int(sum(sizes))

    @classmethod
    def from_blocks(cls, X, blocks: list[RelationBlock]) -> BlockDesign:
        main = as_kernel_csr(X)
        col0 = main.n_features
        kernel_blocks = []
        for b in blocks:
            csr = as_kernel_csr(b.X, check=False)  # checked when the block was made
            if csr.data.dtype != main.data.dtype:
                csr = csr._replace(data=csr.data.astype(main.data.dtype))
            kernel_blocks.append(KernelBlock(b.indices, csr, col0))
            col0 += csr.n_features
        return cls(main, kernel_blocks)

    @property
    def n_rows(self) -> int:
        return self.main.n_rows

    def take(self, rows) -> BlockDesign:
        """The design restricted to data rows ``rows`` (the blocks themselves are shared)."""
        m = self.main
        sub = sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.n_rows, m.n_features))[rows]
        blocks = [b._replace(idx=np.ascontiguousarray(b.idx[rows])) for b in self.blocks]
        return BlockDesign(as_kernel_csr(sub, check=False), blocks)

    def expand(self) -> KernelCSR:
        """All columns as one CSR matrix (n_rows, n_features): for solvers without blocks."""
        m = self.main
        parts = [sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.n_rows, m.n_features))]
        for b in self.blocks:
            c = b.csr
            B = sp.csr_matrix((c.data, c.indices, c.indptr), shape=(c.n_rows, c.n_features))
            parts.append(B[b.idx])
        return as_kernel_csr(sp.hstack(parts, format="csr"), check=False)
