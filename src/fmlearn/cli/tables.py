"""Tables (CSV, Parquet) for ``fmlearn predict`` and ``fmlearn evaluate``.

A model file that holds an ``FMEncoder`` (a pipeline file written by ``fmlearn.save``) takes
the original columns: the table is read with pandas and handed to the pipeline, which encodes
it. The label column of ``evaluate`` is named by ``--target``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

TABLE_FORMATS = ("csv", "parquet")
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip")


def table_format(path, fmt) -> str | None:
    """"csv" or "parquet" when ``--format`` says so or (no ``--format``) the file name does."""
    if fmt is not None:
        return fmt if fmt in TABLE_FORMATS else None
    name = Path(str(path)).name.lower()
    for ext in _COMPRESSED:
        name = name.removesuffix(ext)
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    return None


def table_encoder(model):
    """The ``FMEncoder`` a loaded model file starts with (a Pipeline's first real step), or
    None when the model takes design matrices."""
    from fmlearn.data.encoder import FMEncoder

    if isinstance(model, FMEncoder):
        return model
    for _, step in getattr(model, "steps", [])[:-1]:
        if isinstance(step, FMEncoder):
            return step
        if not (step is None or step == "passthrough"):
            return None
    return None


def _read(path, fmt, encoder, sep):
    import pandas as pd

    if fmt == "parquet":
        if not any(importlib.util.find_spec(m) for m in ("pyarrow", "fastparquet")):
            raise ValueError(
                f"{path}: reading Parquet needs pyarrow: pip install pyarrow (or give the "
                "table as CSV)"
            )
        return pd.read_parquet(path)
    if sep is None:
        sep = "\t" if ".tsv" in Path(str(path)).name.lower() else ","
    # Category columns are read as text ("007" stays "007"), then each text is given back as
    # the category it spells (12, 2.5, True, "x"), so that CSV cells match what was fitted.
    kinds = dict(zip(encoder.field_names_, encoder.field_kinds_, strict=True))
    as_str = {name: str for name, kind in kinds.items() if kind != "numeric"}
    df = pd.read_csv(path, sep=sep, dtype=as_str or None)
    for name, kind in kinds.items():
        if kind == "categorical" and name in df.columns:
            df[name] = _as_categories(df[name], encoder.categories_[name])
    return df


def _as_categories(column, categories):
    """Text cells replaced by the known category whose ``str`` they are."""
    import pandas as pd

    cats = np.asarray(categories).astype(object)
    texts = np.array([str(c) for c in cats.tolist()], dtype=object)
    texts, first = np.unique(texts, return_index=True) if texts.size else (texts, texts)
    values = column.to_numpy(dtype=object, na_value=None)
    at = pd.Index(texts).get_indexer(values) if texts.size else np.full(len(values), -1)
    hit = at >= 0
    values[hit] = cats[np.asarray(first, dtype=np.intp)[at[hit]]]
    return pd.Series(values, index=column.index, dtype=object, name=column.name)


def _labels(y, model, target, path):
    """The target column as the model's labels."""
    y = np.asarray(y)
    if y.dtype.kind == "O" or y.dtype.kind == "f":
        missing = [i for i, v in enumerate(y.tolist()) if v is None or v != v]
        if missing:
            raise ValueError(f"{path}: --target column {target!r} is missing at row {missing[0]}")
    classes = getattr(model, "classes_", None)
    if classes is None:
        try:
            return y.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"{path}: --target column {target!r} is not numeric, and the model is a "
                "regressor") from None
    if classes.dtype.kind in "OUS" and y.dtype.kind not in "OUS":
        y = y.astype(str).astype(object)
    elif classes.dtype.kind in "iufb" and y.dtype.kind in "OUS":
        try:
            y = y.astype(classes.dtype)
        except (TypeError, ValueError):
            pass
    unknown = ~np.isin(y, classes)
    if unknown.any():
        raise ValueError(
            f"{path}: label {y[unknown][0]!r} of column {target!r} (row "
            f"{int(np.flatnonzero(unknown)[0])}) is not one of the model's classes "
            f"{list(classes.tolist())}"
        )
    return y


def table_data_for(model, path, fmt, *, target=None, need_target=False, sep=None):
    """(table, labels or None) for a model file that holds an encoder."""
    fmt = table_format(path, fmt)
    encoder = table_encoder(model)
    holds = type(model).__name__
    if encoder is None:
        raise ValueError(
            f"{path} is a table, but the model file holds {holds}, which takes libFM/FFM "
            "rows: save the encoder with it, fmlearn.save(Pipeline([('enc', FMEncoder(...)), "
            "('model', model)]), path), to predict from the original columns"
        )
    if encoder is model:
        raise ValueError("the model file holds an FMEncoder alone, without a model to apply")
    if fmt is None:
        raise ValueError(
            f"the model file holds a Pipeline that starts with an FMEncoder: give --data as a "
            f"CSV or Parquet table of its columns ({', '.join(map(str, encoder.field_names_))}), "
            "with --format csv or parquet when the file name does not say"
        )
    df = _read(path, fmt, encoder, sep)
    y = None
    if target is not None:
        if target not in df.columns:
            raise ValueError(
                f"{path}: no column {target!r} for --target; the table has {list(df.columns)}")
        y = _labels(df[target].to_numpy(), model, target, path)
        df = df.drop(columns=[target])
    elif need_target:
        raise ValueError(
            f"{path}: evaluate needs the label column of the table: --target COLUMN")
    return df, y
