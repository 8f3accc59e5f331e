"""Training on data larger than memory: a binary block cache of text files and chunk streams.

The first pass over the input (libFM/libsvm or FFM text files read in chunks, or any iterable
of ``(X, y[, sample_weight])`` chunks: arrays, DataFrames encoded by a hashing
:class:`~fmlearn.data.encoder.FMEncoder`, CSV or Parquet read in pieces) writes one folder:

``manifest.json``
    What the cache holds: ``n_rows``, ``nnz``, ``n_features``, ``n_fields``, the label summary
    (the distinct labels and their counts while there are at most :data:`MAX_LABELS`, else
    their sum), the block list (rows, non-zeros, CRC-32 of every array) and the key of the
    sources it was built from (path, size, ``mtime_ns`` and a content digest, see
    :func:`source_key`).
``columns.npy``
    Occurrences of every column (int64, shape (n_features,)): the memory guard's and the
    hashing report's input.
``fields.npy``
    FFM input: the field of every feature (int32, -1 for a feature that never occurs).
``bNNNNN.{indptr,indices,data,y,w}.npy``
    One CSR block each (int64, int32, float32/float64, float64, float64; ``w`` only where
    weights were given). Plain ``.npy`` files: ``numpy.load(..., mmap_mode="r")`` maps them.

:class:`CachedSource` is the :class:`~fmlearn.data.sources.BatchSource` over such a cache: each
epoch visits the blocks in a fresh order drawn from the epoch's ``rng`` (one block: no draw, so
that a one-block cache trains exactly as the rows in memory do), the solver shuffles the rows
within each block, and the next block is read on a thread while the current one trains. At
most two blocks are in memory at once.

Cache entries live in ``cache_dir`` (default :func:`default_cache_dir`: ``$FMLEARN_CACHE_DIR``,
else ``$XDG_CACHE_HOME/fmlearn``, else ``~/.cache/fmlearn``), one folder per list of source
paths and reading options. A cache whose sources changed (size, modification time or digest)
is stale and rebuilt; a truncated or damaged one (missing file, wrong size, CRC mismatch,
unreadable manifest) raises :class:`CacheError` when opened directly and is rebuilt by
:func:`open_cache`. See ``docs/out-of-core.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from fmlearn.data.sources import Batch, BatchSource

__all__ = [
    "CacheError",
    "CachedSource",
    "DiskCache",
    "TableFiles",
    "TextFiles",
    "as_text_files",
    "build_cache",
    "cache_chunks",
    "default_cache_dir",
    "open_cache",
    "replace_files",
    "source_key",
]

FORMAT = "fmlearn-cache"
VERSION = 1
MANIFEST = "manifest.json"
# Distinct labels the manifest lists (with their counts) before keeping only their sum: a
# classifier's classes and the initial bias come from this summary without a pass over y.
MAX_LABELS = 1024
# Bytes hashed at each end of a source file for its partial digest (see source_key).
PARTIAL_HASH_BYTES = 1 << 20
DEFAULT_BLOCK_MB = 64
_ARRAYS = ("indptr", "indices", "data", "y", "w")


# glibc's malloc raises its mmap threshold (up to 32 MiB) after the first large free, so that
# later block-sized arrays come from the heap, which fragments and keeps the memory of freed
# blocks: a fixed threshold returns every freed block to the OS (peak RSS on 6M rows, 1 GB of
# text: 720 -> 665 MB for one epoch from the cache).
_MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
_fixed_threshold = False


_M_TRIM_THRESHOLD = -1


def set_malloc_thresholds(mmap_threshold: int, trim_threshold: int | None = None) -> None:
    """Set glibc's mmap (and trim) thresholds for the rest of the process, unless the user set
    ``MALLOC_MMAP_THRESHOLD_``; a no-op outside glibc. Later :func:`_fix_mmap_threshold` calls
    keep these.

    A consumer that allocates mid-size buffers at every step calls it with a higher mmap
    threshold: torch's dense gradients of an embedding table (megabytes per mini-batch) would
    otherwise be mapped and unmapped at each step, page faults and zeroing included (DeepFM
    from a cache: 1.4-1.6x slower per epoch with the 1 MiB threshold, measured).
    """
    global _fixed_threshold
    _fixed_threshold = True
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:  # the user's choice
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))
        if trim_threshold is not None:
            libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold))
    except (OSError, AttributeError):
        pass


def _fix_mmap_threshold() -> None:
    """Pin glibc's mmap threshold at 1 MiB, once per process (a no-op elsewhere, and after
    :func:`set_malloc_thresholds`)."""
    if not _fixed_threshold:
        set_malloc_thresholds(_MMAP_THRESHOLD)


class CacheError(ValueError):
    """A cache folder is truncated, damaged, from another fmlearn version or stale."""


def default_cache_dir() -> Path:
    """``$FMLEARN_CACHE_DIR``, else ``$XDG_CACHE_HOME/fmlearn``, else ``~/.cache/fmlearn``.

    The user's cache folder rather than beside the data: the data's folder may be read-only
    or shared, and a cache is disposable (deleting it costs one pass over the text).
    """
    env = os.environ.get("FMLEARN_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "fmlearn" if xdg else Path.home() / ".cache" / "fmlearn"


def source_key(path, *, full_hash: bool = False) -> dict:
    """What identifies a source file's content: absolute path, size, ``mtime_ns``, digest.

    The digest is BLAKE2b of the size and the first and last :data:`PARTIAL_HASH_BYTES` of the
    file (``full_hash=False``, the default: constant time, catches appended or rewritten
    files even when a copy kept the modification time), or of the whole file
    (``full_hash=True``: one extra read of the data per fit, for files edited in the middle in
    place with their size and modification time restored).
    """
    p = Path(os.fspath(path)).resolve()
    st = p.stat()
    h = hashlib.blake2b(digest_size=16)
    h.update(st.st_size.to_bytes(8, "little"))
    with open(p, "rb") as f:
        if full_hash or st.st_size <= 2 * PARTIAL_HASH_BYTES:
            for piece in iter(lambda: f.read(1 << 24), b""):
                h.update(piece)
        else:
            h.update(f.read(PARTIAL_HASH_BYTES))
            f.seek(st.st_size - PARTIAL_HASH_BYTES)
            h.update(f.read(PARTIAL_HASH_BYTES))
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "digest": h.hexdigest(), "full_hash": bool(full_hash)}


@dataclass
class TextFiles:
    """Training rows in libFM/libsvm or FFM text files, read through a block cache.

    ``fit(path)`` means ``fit(TextFiles(path))``; build one to choose the options.

    Parameters
    ----------
    paths : path or list of paths
        The files, read in order (plain or gzip-compressed).
    format : {"auto", "libfm", "ffm"}, default="auto"
        "auto": FFM for files named ``*.ffm`` (``.gz`` aside), libFM otherwise.
    cache_dir : path, optional
        Where cache entries live (default :func:`default_cache_dir`).
    block_mb : float, default=64
        Megabytes of text per block: the unit read, shuffled and held in memory (at most two
        blocks at once).
    max_cache_mb : float, optional
        Bound on the cache folder's size: building an entry larger than this fails, and older
        entries (least recently used first) are removed to make room.
    full_hash : bool, default=False
        Hash the whole source to detect changes, not just its ends (see :func:`source_key`).
    dtype : {np.float32, np.float64}, default=np.float32
    hash_bits : int, optional
        Hash the feature indices into ``2**hash_bits`` columns (per field for FFM files; see
        :func:`fmlearn.data.hashing.hash_columns`) as the cache is written.
    progress : callable, optional
        ``progress(n_bytes, n_rows)`` after each chunk of text is read (not part of the key).
    """

    paths: object
    format: str = "auto"
    cache_dir: object = None
    block_mb: float = DEFAULT_BLOCK_MB
    max_cache_mb: float | None = None
    full_hash: bool = False
    dtype: object = np.float32
    hash_bits: int | None = None
    progress: object = field(default=None, repr=False, compare=False)
    _list: list = field(init=False, repr=False, default=None)

    def __post_init__(self):
        raw = self.paths
        items = [raw] if isinstance(raw, (str, os.PathLike)) else list(raw)
        if not items:
            raise ValueError("TextFiles needs at least one path.")
        self._list = [os.fspath(p) for p in items]
        for p in self._list:
            if not os.path.isfile(p):
                raise FileNotFoundError(
                    f"training file {p!r} does not exist (or is not a file); a path, or a list "
                    "of paths, given as X names training files (libFM/libsvm or FFM).")
        if self.format not in ("auto", "libfm", "ffm"):
            raise ValueError(f"format must be 'auto', 'libfm' or 'ffm', got {self.format!r}.")
        if not self.block_mb > 0:
            raise ValueError(f"block_mb must be > 0, got {self.block_mb!r}.")
        if self.hash_bits is not None and not 1 <= int(self.hash_bits) <= 28:
            raise ValueError(f"hash_bits must be in 1..28, got {self.hash_bits!r}.")

    @property
    def path_list(self) -> list[str]:
        return list(self._list)

    @property
    def ffm(self) -> bool:
        if self.format != "auto":
            return self.format == "ffm"
        return all(p.removesuffix(".gz").endswith(".ffm") for p in self._list)

    def options(self) -> dict:
        """The reading options a cache entry is keyed by."""
        return {"format": "ffm" if self.ffm else "libfm", "block_mb": float(self.block_mb),
                "dtype": np.dtype(self.dtype).name, "hash_bits": self.hash_bits}

    def entry_dir(self) -> Path:
        """This input's folder in ``cache_dir``: named by its paths and options."""
        key = json.dumps([[str(Path(p).resolve()) for p in self._list], self.options()])
        name = hashlib.blake2b(key.encode(), digest_size=10).hexdigest()
        return Path(self.cache_dir or default_cache_dir()) / name


@dataclass
class TableFiles:
    """Training rows in CSV or Parquet files, read in chunks and encoded by ``encoder``.

    ``fit(TableFiles(...))`` caches the encoded chunks as :class:`TextFiles` caches text.

    Parameters
    ----------
    paths : path or list of paths
        ``*.csv`` (optionally ``.gz``) or ``*.parquet`` files.
    target : str
        The label column.
    encoder : FMEncoder
        A hashing encoder (``FMEncoder(hash_bits=...)``: stateless, every chunk encodes alike),
        or an already fitted one (its ``transform`` is used).
    chunk_rows : int, default=200_000
        Rows per chunk (one cache block each).
    cache_dir, max_cache_mb, full_hash, progress
        As for :class:`TextFiles`.
    """

    paths: object
    target: str
    encoder: object
    chunk_rows: int = 200_000
    cache_dir: object = None
    max_cache_mb: float | None = None
    full_hash: bool = False
    progress: object = field(default=None, repr=False, compare=False)
    _list: list = field(init=False, repr=False, default=None)

    def __post_init__(self):
        raw = self.paths
        items = [raw] if isinstance(raw, (str, os.PathLike)) else list(raw)
        self._list = [os.fspath(p) for p in items]
        for p in self._list:
            if not os.path.isfile(p):
                raise FileNotFoundError(f"training file {p!r} does not exist (or is not a file).")
            if not p.removesuffix(".gz").endswith((".csv", ".parquet", ".pq")):
                raise ValueError(f"{p}: TableFiles reads *.csv and *.parquet files.")
        hashing = getattr(self.encoder, "hash_bits", None) is not None
        fitted = hasattr(self.encoder, "fields_")
        if not (hashing or fitted):
            raise ValueError(
                "TableFiles needs an encoder that encodes every chunk alike: "
                "FMEncoder(hash_bits=...) (no vocabulary to learn), or an FMEncoder already "
                "fitted on a sample."
            )

    @property
    def path_list(self) -> list[str]:
        return list(self._list)

    def options(self) -> dict:
        params = {k: repr(v) for k, v in sorted(self.encoder.get_params().items())}
        state = None
        if getattr(self.encoder, "hash_bits", None) is None:
            # A fitted vocabulary: its size and fields (another fit gives another key).
            state = [int(self.encoder.n_features_out_),
                     hashlib.blake2b(np.asarray(self.encoder.fields_).tobytes(),
                                     digest_size=8).hexdigest()]
        return {"format": "table", "target": self.target, "chunk_rows": int(self.chunk_rows),
                "encoder": params, "vocabulary": state}

    entry_dir = TextFiles.entry_dir
    hash_bits = None

    def chunks(self):
        """``(X, y, None, fields)`` per chunk, X encoded."""
        from fmlearn.data.fielded import carried_fields

        hashing = getattr(self.encoder, "hash_bits", None) is not None
        for path in self._list:
            for df in _table_chunks(path, self.chunk_rows):
                if self.target not in df.columns:
                    raise ValueError(f"{path}: no target column {self.target!r}; it has "
                                     f"{list(df.columns)}.")
                y = df[self.target].to_numpy(dtype=np.float64)
                table = df.drop(columns=[self.target])
                X = (self.encoder.fit_transform(table) if hashing
                     else self.encoder.transform(table))
                if self.progress is not None:
                    self.progress(int(df.memory_usage(deep=False).sum()), len(df))
                yield X, y, None, carried_fields(X)


def _table_chunks(path, rows):
    """DataFrames of about ``rows`` rows of a CSV or Parquet file."""
    if path.removesuffix(".gz").endswith(".csv"):
        import pandas as pd

        yield from pd.read_csv(path, chunksize=rows)
        return
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
        yield batch.to_pandas()


def replace_files(files, like):
    """``files`` with the cache settings (folder, block size, bound, hashing) of ``like``:
    a validation file cached beside its training files (caches are kept as they are)."""
    if not isinstance(files, TextFiles) or not isinstance(like, TextFiles):
        return files
    return TextFiles(files.path_list, format=files.format, cache_dir=like.cache_dir,
                     block_mb=like.block_mb, max_cache_mb=like.max_cache_mb,
                     full_hash=like.full_hash, dtype=files.dtype, hash_bits=like.hash_bits)


def as_text_files(X) -> TextFiles | DiskCache | None:
    """``X`` as :class:`TextFiles` when it names files (a path, a list of paths, TextFiles),
    ``X`` itself when it is an opened :class:`DiskCache` (e.g. of :func:`cache_chunks`), the
    cache of a :class:`CachedSource` (the estimator makes its own source over it), else None
    (data in memory)."""
    if isinstance(X, (TextFiles, TableFiles, DiskCache)):
        return X
    if isinstance(X, CachedSource):
        return X.cache
    if isinstance(X, (str, os.PathLike)):
        return TextFiles(X)
    if isinstance(X, (list, tuple)) and X and all(isinstance(p, (str, os.PathLike)) for p in X):
        return TextFiles(list(X))
    return None


# ---------------------------------------------------------------------------------------------
# Reading text in chunks of whole lines


def _text_chunks(path, chunk_bytes: int) -> Iterator[tuple[np.ndarray, int, int]]:
    """``(buf, offset, n_bytes)``: whole lines of ``path`` (about ``chunk_bytes`` each, gzip
    files decompressed as a stream) read into one reused buffer, and their byte offset in
    the (decompressed) text. ``buf`` is valid until the next chunk is asked for."""
    import gzip

    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gz else open
    buf = np.empty(chunk_bytes + 1, dtype=np.uint8)
    have = 0  # bytes of a partial line carried over from the last read
    offset = 0
    with opener(path, "rb") as f:
        while True:
            if have == buf.shape[0]:  # a line longer than the buffer: grow it
                grown = np.empty(2 * buf.shape[0], dtype=np.uint8)
                grown[:have] = buf[:have]
                buf = grown
            got = f.readinto(memoryview(buf)[have:])
            n = have + got
            if n == 0:
                return
            if got == 0:  # the end: the last line may lack its newline
                cut = n
            else:
                cut = _after_last_newline(buf, n)
                if cut == 0:
                    have = n
                    continue
            yield buf[:cut], offset, cut
            offset += cut
            have = n - cut
            buf[:have] = buf[cut:n].copy()
            if got == 0:
                return


def _after_last_newline(buf, n) -> int:
    """1 + the position of the last b"\\n" in ``buf[:n]``, 0 if there is none."""
    end = n
    while end > 0:
        start = max(0, end - (1 << 16))
        hits = np.flatnonzero(buf[start:end] == 10)
        if hits.size:
            return start + int(hits[-1]) + 1
        end = start
    return 0


def _lines_before(path, offset) -> int:
    """Newlines in the first ``offset`` bytes of the (decompressed) text: error path only."""
    import gzip

    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
    count, left = 0, offset
    with (gzip.open if gz else open)(path, "rb") as f:
        while left > 0:
            piece = f.read(min(left, 1 << 24))
            if not piece:
                break
            count += piece.count(b"\n")
            left -= len(piece)
    return count


def _read_text_chunks(files: TextFiles, on_progress=None):
    """``(X, y, None, fields)`` per chunk of ``files`` (CSR with its own column count)."""
    from fmlearn.data.textio import parse_buffer
    from fmlearn.exceptions import DataFormatError

    chunk_bytes = int(files.block_mb * (1 << 20))
    for path in files.path_list:
        for buf, offset, nbytes in _text_chunks(path, chunk_bytes):
            try:
                got = parse_buffer(path, buf, ffm=files.ffm, n_features=-1, n_fields=-1,
                                   dtype=files.dtype, strict_fields=True, empty_ok=True)
            except DataFormatError as e:
                at = None if e.line is None else e.line + _lines_before(path, offset)
                raise DataFormatError(e.path, at, e.column, e.reason) from None
            n_rows = 0 if got is None else got[0].shape[0]
            if on_progress is not None:
                on_progress(nbytes, n_rows)
            if got is not None:
                X, y, fields = got
                if files.hash_bits is not None:
                    from fmlearn.data.hashing import hash_columns

                    X, fields = hash_columns(X, files.hash_bits, fields)
                yield X, y, None, fields


# ---------------------------------------------------------------------------------------------
# Writing


class _Builder:
    """Writes blocks and the manifest into a fresh folder (renamed into place at the end)."""

    def __init__(self, folder: Path, max_bytes: int | None):
        self.folder = folder
        self.max_bytes = max_bytes
        self.blocks: list[dict] = []
        self.n_rows = self.nnz = self.bytes = 0
        self.n_features = 0
        self.columns = np.zeros(0, dtype=np.int64)
        self.fields = None
        self.labels: dict[float, int] | None = {}
        self.label_sum = 0.0
        self.weights = False
        self.weight_sum = 0.0
        self.dtype = None

    def add(self, X, y, w, fields):
        X = sp.csr_matrix(X) if not sp.issparse(X) else X.tocsr()
        n, nf = X.shape
        if n == 0:
            return
        y = np.ascontiguousarray(y, dtype=np.float64).reshape(-1)
        if y.shape[0] != n:
            raise ValueError(f"a chunk has {n} rows but {y.shape[0]} targets.")
        if self.dtype is None:
            self.dtype = X.data.dtype if X.data.dtype in (np.float32, np.float64) else np.float64
        arrays = {
            "indptr": np.ascontiguousarray(X.indptr, dtype=np.int64),
            "indices": np.ascontiguousarray(X.indices, dtype=np.int32),
            "data": np.ascontiguousarray(X.data, dtype=self.dtype),
            "y": y,
        }
        if w is not None or self.weights:
            if w is not None and not self.weights and self.blocks:
                raise ValueError("sample weights were given for some chunks only; give them "
                                 "for every chunk or for none.")
            self.weights = True
            arrays["w"] = np.ones(n) if w is None else np.ascontiguousarray(w, dtype=np.float64)
            self.weight_sum += float(arrays["w"].sum())
        else:
            self.weight_sum += n
        name = f"b{len(self.blocks):05d}"
        crc, sizes = {}, {}
        for kind, a in arrays.items():
            p = self.folder / f"{name}.{kind}.npy"
            np.save(p, a, allow_pickle=False)
            crc[kind] = zlib.crc32(memoryview(a).cast("B"))
            sizes[kind] = p.stat().st_size
            self.bytes += a.nbytes
        if self.max_bytes is not None and self.bytes > self.max_bytes:
            raise ValueError(
                f"the cache would exceed max_cache_mb={self.max_bytes / 2**20:g} MB "
                f"({self.bytes / 2**20:.0f} MB after {self.n_rows + n} rows); raise it or "
                "choose another cache_dir."
            )
        self.blocks.append({"name": name, "n_rows": n, "nnz": int(X.nnz), "crc": crc,
                            "bytes": sizes})
        self.n_rows += n
        self.nnz += int(X.nnz)
        if nf > self.n_features:
            grown = np.zeros(nf, dtype=np.int64)
            grown[: self.columns.shape[0]] = self.columns
            self.columns, self.n_features = grown, nf
        self.columns += np.bincount(arrays["indices"], minlength=self.n_features)
        self._add_fields(fields)
        self._add_labels(y)

    def _add_fields(self, fields):
        if fields is None:
            return
        fields = np.asarray(fields, dtype=np.int32)
        if self.fields is None:
            self.fields = np.full(0, -1, dtype=np.int32)
        if fields.shape[0] > self.fields.shape[0]:
            grown = np.full(fields.shape[0], -1, dtype=np.int32)
            grown[: self.fields.shape[0]] = self.fields
            self.fields = grown
        mine = self.fields[: fields.shape[0]]
        clash = (mine >= 0) & (fields >= 0) & (mine != fields)
        if clash.any():
            f = int(np.flatnonzero(clash)[0])
            raise ValueError(
                f"feature {f} appears under field {int(mine[f])} and, after row {self.n_rows}, "
                f"under field {int(fields[f])}: each feature must belong to one field."
            )
        np.copyto(mine, fields, where=mine < 0)

    def _add_labels(self, y):
        self.label_sum += float(y.sum())
        if self.labels is None:
            return
        values, counts = np.unique(y, return_counts=True)
        for v, c in zip(values.tolist(), counts.tolist(), strict=True):
            self.labels[v] = self.labels.get(v, 0) + c
        if len(self.labels) > MAX_LABELS:
            self.labels = None

    def finish(self, sources, options) -> dict:
        if not self.blocks:
            raise ValueError("the training data has no rows.")
        np.save(self.folder / "columns.npy", self.columns, allow_pickle=False)
        if self.fields is not None:
            if self.fields.shape[0] < self.n_features:
                self._add_fields(np.full(self.n_features, -1, dtype=np.int32))
            np.save(self.folder / "fields.npy", self.fields, allow_pickle=False)
        labels = None
        if self.labels is not None:
            keys = sorted(self.labels)
            labels = {"values": keys, "counts": [self.labels[k] for k in keys]}
        manifest = {
            "format": FORMAT, "version": VERSION, "sources": sources, "options": options,
            "n_rows": self.n_rows, "nnz": self.nnz, "n_features": self.n_features,
            "n_fields": None if self.fields is None else int(self.fields.max()) + 1,
            "dtype": np.dtype(self.dtype).name, "weights": self.weights,
            "weight_sum": self.weight_sum, "labels": labels, "label_sum": self.label_sum,
            "bytes": self.bytes, "blocks": self.blocks, "created": time.time(),
        }
        # The manifest last: a folder without one is an unfinished build.
        with open(self.folder / MANIFEST, "w") as f:
            json.dump(manifest, f)
        return manifest


def build_cache(chunks: Iterable, folder, *, sources=None, options=None,
                max_bytes: int | None = None) -> DiskCache:
    """Write the chunks ``(X, y, sample_weight or None, fields or None)`` as a cache in
    ``folder`` (replacing what is there) and open it.

    Built in a temporary sibling folder and renamed into place, so that an interrupted build
    leaves no half-written entry behind.
    """
    _fix_mmap_threshold()
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        b = _Builder(tmp, max_bytes)
        for chunk in chunks:
            b.add(*chunk)
        b.finish(sources or [], options or {})
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return DiskCache(folder)


def cache_chunks(chunks: Iterable, folder) -> DiskCache:
    """Cache an iterable of ``(X, y)`` or ``(X, y, sample_weight)`` chunks (arrays, sparse
    matrices, FMEncoder output; fields come from a chunk that carries them) in ``folder``."""
    from fmlearn.data.fielded import carried_fields

    def normalized():
        for i, chunk in enumerate(chunks):
            if not isinstance(chunk, tuple) or len(chunk) not in (2, 3):
                raise TypeError(f"chunk {i} must be a tuple (X, y) or (X, y, sample_weight), "
                                f"got {type(chunk).__name__}.")
            X, y, *w = chunk
            yield X, y, w[0] if w else None, carried_fields(X)

    return build_cache(normalized(), folder, sources=[], options={"kind": "chunks"})


def _evict(root: Path, keep: Path, max_bytes: int) -> None:
    """Remove the least recently used entries of ``root`` (but ``keep``) until the folder
    holds at most ``max_bytes`` of cache blocks."""
    entries = []
    for d in root.iterdir():
        m = d / MANIFEST
        if d == keep or not m.is_file():
            continue
        try:
            size = json.loads(m.read_text()).get("bytes", 0)
        except (OSError, ValueError):
            continue
        entries.append((m.stat().st_mtime, size, d))
    total = sum(e[1] for e in entries) + DiskCache(keep).manifest["bytes"]
    for _, size, d in sorted(entries):
        if total <= max_bytes:
            break
        shutil.rmtree(d, ignore_errors=True)
        total -= size


def open_cache(files, *, on_progress=None, rebuilt=None, verify=True) -> DiskCache:
    """The cache entry of ``files``: reused when its sources are unchanged and it is intact,
    otherwise (missing, stale, truncated or damaged) built by a pass over the text.

    ``verify``: check the CRC-32 of every block of a reused entry (one read of the cache, which
    also warms the page cache for the first epoch); a damaged entry is rebuilt.
    ``on_progress(n_bytes, n_rows)`` is called as text is read (default: ``files.progress``);
    ``rebuilt`` (a list) receives the reason when the entry had to be (re)built. An opened
    :class:`DiskCache` is returned as it is.
    """
    if isinstance(files, DiskCache):
        return files
    folder = files.entry_dir()
    sources = [source_key(p, full_hash=files.full_hash) for p in files.path_list]
    options = files.options()
    reason = "no cache entry yet"
    if (folder / MANIFEST).exists():
        try:
            cache = DiskCache(folder)
            stale = cache.manifest["sources"] != sources or cache.manifest["options"] != options
            if not stale and verify:
                cache.verify()
            if not stale:
                os.utime(folder / MANIFEST)  # least recently used eviction
                return cache
            reason = "its source files changed"
        except CacheError as e:
            reason = str(e)
    if rebuilt is not None:
        rebuilt.append(reason)
    max_bytes = None if files.max_cache_mb is None else int(files.max_cache_mb * (1 << 20))
    on_progress = on_progress or files.progress
    chunks = (files.chunks() if isinstance(files, TableFiles)
              else _read_text_chunks(files, on_progress))
    cache = build_cache(chunks, folder, sources=sources,
                        options=options, max_bytes=max_bytes)
    if max_bytes is not None:
        _evict(folder.parent, folder, max_bytes)
    return cache


# ---------------------------------------------------------------------------------------------
# Reading


class DiskCache:
    """An opened cache folder: its manifest checked against the files on disk.

    Opening checks the manifest and that every block file exists with the size its shape
    implies (a truncated cache fails here); :meth:`read_block` with ``verify`` also checks the
    CRC-32 of the block's arrays (a damaged cache fails there). Both raise
    :class:`CacheError`.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        try:
            with open(self.folder / MANIFEST) as f:
                m = json.load(f)
        except (OSError, ValueError) as e:
            raise CacheError(f"cache {self.folder}: unreadable manifest ({e})") from None
        if not isinstance(m, dict) or m.get("format") != FORMAT or m.get("version") != VERSION:
            raise CacheError(f"cache {self.folder}: not an fmlearn cache of version {VERSION}")
        self.manifest = m
        try:
            for b in m["blocks"]:
                for kind in _ARRAYS[: 5 if m["weights"] else 4]:
                    p = self.folder / f"{b['name']}.{kind}.npy"
                    if not p.is_file() or p.stat().st_size != b["bytes"][kind]:
                        raise CacheError(
                            f"cache {self.folder}: block file {p.name} is missing or truncated")
        except (KeyError, TypeError) as e:
            raise CacheError(f"cache {self.folder}: damaged manifest ({e})") from None

    def verify(self) -> None:
        """Check the CRC-32 of every block (one read of the cache); :class:`CacheError` if
        one differs."""
        for i in range(self.n_blocks):
            self.read_block(i, verify=True, mmap=True)

    @property
    def n_rows(self) -> int:
        return int(self.manifest["n_rows"])

    @property
    def n_features(self) -> int:
        return int(self.manifest["n_features"])

    @property
    def n_blocks(self) -> int:
        return len(self.manifest["blocks"])

    @property
    def nbytes(self) -> int:
        return int(self.manifest["bytes"])

    def column_counts(self) -> np.ndarray:
        """Occurrences of every column, int64 of shape (n_features,)."""
        return np.load(self.folder / "columns.npy", allow_pickle=False)

    def fields(self) -> np.ndarray | None:
        """Field of each feature (FFM input), int32 of shape (n_features,), or None."""
        p = self.folder / "fields.npy"
        return np.load(p, allow_pickle=False) if p.is_file() else None

    def labels(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The distinct labels and their counts, or None past :data:`MAX_LABELS` labels."""
        lab = self.manifest["labels"]
        if lab is None:
            return None
        return np.asarray(lab["values"], dtype=np.float64), np.asarray(lab["counts"], np.int64)

    def csr_blocks(self):
        """Each block as a ``scipy.sparse.csr_matrix`` of ``n_features`` columns, in stored
        order, one at a time (a pass over the cache in bounded memory)."""
        for i in range(self.n_blocks):
            indptr, indices, data, y, _ = self.read_block(i)
            yield sp.csr_matrix((data, indices, indptr), shape=(y.shape[0], self.n_features),
                                copy=False)

    def read_block(self, i: int, *, verify: bool = False, mmap: bool = False):
        """Block ``i`` as ``(indptr, indices, data, y, w or None)``."""
        b = self.manifest["blocks"][i]
        out = []
        for kind in _ARRAYS[: 5 if self.manifest["weights"] else 4]:
            p = self.folder / f"{b['name']}.{kind}.npy"
            try:
                a = np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
            except (OSError, ValueError, EOFError) as e:
                raise CacheError(f"cache {self.folder}: cannot read {p.name} ({e})") from None
            if verify and zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B")) != \
                    b["crc"][kind]:
                raise CacheError(f"cache {self.folder}: {p.name} is damaged (CRC mismatch)")
            out.append(a)
        if len(out) == 4:
            out.append(None)
        indptr, indices = out[0], out[1]
        if (indptr.shape[0] != b["n_rows"] + 1 or indices.shape[0] != b["nnz"]
                or int(indptr[-1]) != b["nnz"]):
            raise CacheError(f"cache {self.folder}: block {b['name']} has inconsistent shapes")
        return tuple(out)


class CachedSource(BatchSource):
    """Batches of a :class:`DiskCache`, one per block, the next block read on a thread.

    Parameters
    ----------
    cache : DiskCache
    transform : callable, optional
        ``transform(X, y, sample_weight) -> Batch``, ``X`` a ``scipy.sparse.csr_matrix`` of
        ``n_features`` columns: the estimator's design and target encoding. Default: the
        arrays as they are (a :class:`~fmlearn.data.design.KernelCSR`).
    n_features : int, optional
        Columns of the batches (at least the cache's; a model fitted on more columns).
    shuffle : bool, default=True
        Visit the blocks in a fresh order each epoch (drawn from the epoch's ``rng`` when
        there are two blocks or more).
    verify : bool, default=False
        Check each block's CRC-32 the first time this source reads it (:func:`open_cache`
        checks them all when it reuses an entry).

    Attributes
    ----------
    n_rows, n_features, nnz, n_blocks : int
    fields : ndarray of int32 or None
        Field of each feature when the cache was built from FFM input.
    """

    def __init__(self, cache: DiskCache, transform=None, *, n_features=None, shuffle=True,
                 verify=False, prefetch=True):
        self.cache = cache
        self.transform = transform
        self.n_features = max(int(n_features or 0), cache.n_features)
        self.shuffle = shuffle
        self.prefetch = prefetch
        self._unverified = set(range(cache.n_blocks)) if verify else set()
        self._kept = None
        _fix_mmap_threshold()

    @property
    def n_rows(self) -> int:
        return self.cache.n_rows

    @property
    def nnz(self) -> int:
        return int(self.cache.manifest["nnz"])

    def column_counts(self) -> np.ndarray:
        """Rows in which each of the ``n_features`` columns is non-zero (int64), from the
        manifest's counts: no pass over the blocks."""
        counts = self.cache.column_counts()
        out = np.zeros(self.n_features, dtype=np.int64)
        out[: counts.shape[0]] = counts[: self.n_features]
        return out

    @property
    def n_blocks(self) -> int:
        return self.cache.n_blocks

    @property
    def fields(self):
        return self.cache.fields()

    @property
    def weight_sum(self) -> float:
        return float(self.cache.manifest["weight_sum"])

    def _load(self, i: int) -> Batch:
        indptr, indices, data, y, w = self.cache.read_block(i, verify=i in self._unverified)
        self._unverified.discard(i)
        w = np.ones(y.shape[0]) if w is None else w
        if self.transform is None:
            from fmlearn.data.design import KernelCSR

            return Batch(KernelCSR(indptr, indices, data, self.n_features), y, w)
        X = sp.csr_matrix((data, indices, indptr), shape=(y.shape[0], self.n_features),
                          copy=False)
        return self.transform(X, y, w)

    def block_order(self, rng) -> np.ndarray:
        n = self.n_blocks
        if self.shuffle and n > 1:
            return rng.permutation(n)
        return np.arange(n)

    def batches(self, rng, order=None):
        """The epoch's batches: blocks in ``order`` (default :meth:`block_order`)."""
        order = self.block_order(rng) if order is None else order
        if self.n_blocks == 1:
            # One block: read once and kept (memory is one block either way), so that an
            # epoch costs what it costs in memory.
            if self._kept is None:
                self._kept = self._load(0)
            yield self._kept
            return
        if not self.prefetch:
            for i in order:
                yield self._load(int(i))
            return
        with ThreadPoolExecutor(1, thread_name_prefix="fmlearn-prefetch") as pool:
            pending = pool.submit(self._load, int(order[0]))
            for j in range(len(order)):
                batch = pending.result()
                if j + 1 < len(order):
                    pending = pool.submit(self._load, int(order[j + 1]))
                yield batch
                del batch  # at most two blocks in memory: this one and the next

    def in_memory(self) -> Batch:
        return BatchSource.in_memory(self)


def cached_source_for(files: TextFiles, **kwargs) -> CachedSource:
    """Shortcut: the :class:`CachedSource` of ``files`` (building its cache if needed)."""
    return CachedSource(open_cache(files), **kwargs)
