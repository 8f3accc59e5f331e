"""libFM's input files for ``fmlearn libfm``: data files (text or binary), relations, groups.

Reads what libFM reads (see :mod:`fmlearn.cli.libfm`) into the arrays and
:class:`fmlearn.RelationBlock` objects the estimators take.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fmlearn.cli.libfm import UsageError
from fmlearn.data.libfm_binary import (
    is_binary_index_file,
    is_binary_matrix,
    read_binary_matrix,
    read_binary_vector,
    read_int_tokens,
)
from fmlearn.exceptions import DataFormatError

# ---------------------------------------------------------------------------------------------
# libFM's files


@dataclass
class Table:
    """One libFM data file: its rows and raw targets."""

    path: str
    X: sp.csr_matrix
    y: np.ndarray
    binary: bool = False


def _binary_set(path: str):
    """The binary files libFM reads for ``-train/-test/-validation path``, if present."""
    for xs, xts, ys in ((".data", ".datat", ".target"), (".x", ".xt", ".y")):
        if os.path.isfile(path + ys):
            if os.path.isfile(path + xs):
                return path + xs, False, path + ys
            if os.path.isfile(path + xts):
                return path + xts, True, path + ys
    return None


def read_table(path: str, flag: str) -> Table:
    """A data file as libFM reads it: binary files ``path.x``/``path.xt`` + ``path.y`` (or
    ``.data``/``.datat`` + ``.target``) when present, else libFM text."""
    from fmlearn.data.textio import read_libfm

    binary = _binary_set(path)
    if binary is not None:
        xpath, transposed, ypath = binary
        X = read_binary_matrix(xpath)
        X = X.T.tocsr() if transposed else X
        y = read_binary_vector(ypath, "float").astype(np.float64)
        if y.shape[0] != X.shape[0]:
            raise DataFormatError(ypath, None, None, f"{y.shape[0]} targets for {X.shape[0]} "
                                  f"rows in {xpath}")
        X.sort_indices()
        return Table(path, X, y, binary=True)
    if not os.path.isfile(path):
        raise UsageError(f"-{flag}: cannot open '{path}': no such file (nor libFM binary files "
                         f"{path}.x or .xt with {path}.y)")
    X, y = read_libfm(path)
    return Table(path, X, y)


@dataclass
class Relation:
    """One relation of libFM's block structure: block rows and the block row of each row."""

    name: str
    X: sp.csr_matrix  # (n_block_rows, n_block_features)
    train: np.ndarray | None  # block row of each training row
    test: np.ndarray  # block row of each test row
    groups: np.ndarray  # group of each block feature (R.groups, else all 0)


def _read_block(name: str) -> sp.csr_matrix:
    from fmlearn.data.textio import read_libfm

    if os.path.isfile(name + ".x"):
        if is_binary_matrix(name + ".x"):
            return read_binary_matrix(name + ".x")
        return read_libfm(name + ".x")[0]  # text fallback: "0 idx:value ..." per block row
    if os.path.isfile(name + ".xt"):
        return read_binary_matrix(name + ".xt").T.tocsr()
    raise UsageError(f"-relation {name}: cannot open '{name}.x' or '{name}.xt' (the block's "
                     "rows: libFM binary from convert/transpose, or libFM text)")


def _read_join(path: str, n_rows: int, n_block_rows: int, note) -> np.ndarray:
    if not os.path.isfile(path):
        raise UsageError(f"-relation: cannot open '{path}' (the block row of each data row, "
                         "one per line)")
    if is_binary_index_file(path):
        index = read_binary_vector(path, "uint").astype(np.int64)
    else:
        index = read_int_tokens(path, "block row indices are integers >= 0")
    if index.shape[0] < n_rows:
        raise DataFormatError(path, None, None, f"{index.shape[0]} block rows for {n_rows} data "
                              "rows; write one block row index per data row")
    if index.shape[0] > n_rows:
        note(f"{path}: {index.shape[0]} block row indices for {n_rows} data rows; the extra "
             "ones are ignored (as libFM does)")
        index = index[:n_rows]
    if n_rows and int(index.max()) >= n_block_rows:
        bad = int(np.argmax(index >= n_block_rows))
        raise DataFormatError(path, bad + 1, None, f"block row {int(index[bad])} does not exist "
                              f"(the block has {n_block_rows} rows, numbered from 0)")
    return index


def read_relation(name: str, n_train: int | None, n_test: int, note) -> Relation:
    X = _read_block(name)
    train = None if n_train is None else _read_join(name + ".train", n_train, X.shape[0], note)
    test = _read_join(name + ".test", n_test, X.shape[0], note)
    groups = np.zeros(X.shape[1], dtype=np.int64)
    if os.path.isfile(name + ".groups"):
        groups = _fit_groups(read_int_tokens(name + ".groups", "group ids are integers >= 0"),
                             X.shape[1], name + ".groups", note)
    return Relation(name, X, train, test, groups)


def _fit_groups(groups: np.ndarray, n: int, path: str, note) -> np.ndarray:
    if groups.shape[0] < n:
        note(f"{path}: {groups.shape[0]} group ids for {n} features; the others get group 0")
        groups = np.concatenate([groups, np.zeros(n - groups.shape[0], dtype=np.int64)])
    return groups[:n]


def feature_groups(meta: str | None, n_main: int, relations, note):
    """(group of every model feature, number of groups), numbered as libFM does: the -meta
    groups, then each relation's groups shifted past the previous ones."""
    if meta is not None:
        if not os.path.isfile(meta):
            raise UsageError(f"-meta: cannot open '{meta}'")
        main = _fit_groups(read_int_tokens(meta, "write one group id per feature"), n_main,
                           meta, note)
        n_groups = int(main.max()) + 1 if n_main else 0
    else:
        main, n_groups = np.zeros(n_main, dtype=np.int64), 1
    parts = [main]
    for rel in relations:
        parts.append(rel.groups + n_groups)
        n_groups += int(rel.groups.max()) + 1 if rel.groups.size else 1
    return np.concatenate(parts), n_groups


# ---------------------------------------------------------------------------------------------
# Model inputs


def _pad(X: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """``X`` with ``n`` columns: extra empty columns, or (loaded models) unknown ones dropped."""
    if X.shape[1] > n:
        X = X[:, :n]
    return sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], n))


@dataclass
class Split:
    """A data set as the model takes it."""

    X: sp.csr_matrix
    y: np.ndarray  # model targets: raw (regression) or -1/+1 (classification)
    rel: list | None  # one fmlearn.RelationBlock per relation

    @property
    def kw(self) -> dict:
        return {} if self.rel is None else {"X_rel": self.rel}


def make_split(table: Table, task: str, n_main: int, relations, which: str) -> Split:
    """Rows padded to the model's main features, libFM's targets (classification: the sign,
    0 counting as negative), and the relation blocks of these rows."""
    from fmlearn import RelationBlock

    X = _pad(table.X, n_main)
    y = np.where(table.y > 0, 1.0, -1.0) if task == "c" else table.y
    rel = [RelationBlock(getattr(r, which), r.X) for r in relations] if relations else None
    return Split(X, y, rel)


def scores(model, split: Split, task: str) -> np.ndarray:
    """Regression predictions, or probabilities of the positive class."""
    if task == "c":
        return model.predict_proba(split.X, **split.kw)[:, 1]
    return model.predict(split.X, **split.kw)
