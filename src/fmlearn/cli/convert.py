"""``fmlearn convert``: CSV/Parquet tables and libsvm/libFM/FFM files into libFM or FFM text.

Tables are encoded by :class:`fmlearn.FMEncoder` (one-hot categories, numeric values, multi-hot
bags; each column one field), with ``--hash-bits`` by ``FMEncoder(hash_bits=...)``: each
``column=value`` hashed (MurmurHash3, :mod:`fmlearn.data.hashing`) into ``2**N`` columns of its
field, for vocabularies too large to one-hot. ``--encoder-out`` saves the fitted
encoder, and ``--encoder`` converts a further file (a test split) with it, so that its
columns are the training file's. A libsvm/libFM file becomes FFM with a field map (``feature
field`` per line, or ``first-last field`` for a range), or one field per feature.
"""

from __future__ import annotations

import argparse
import sys

TEXT_FORMATS = ("libfm", "libsvm", "ffm")
FORMATS = (*TEXT_FORMATS, "csv", "parquet")


def add_parser(sub) -> None:
    text = "convert a CSV/Parquet table or a libsvm/libFM/FFM file into libFM or FFM text"
    p = sub.add_parser(
        "convert", help=text, description=text[0].upper() + text[1:] + ".",
        epilog="examples:\n"
        "  fmlearn convert --data train.csv --target click --to ffm --out train.ffm "
        "--encoder-out enc.fmz\n"
        "  fmlearn convert --data test.csv --target click --to ffm --out test.ffm "
        "--encoder enc.fmz\n"
        "  fmlearn convert --data train.libsvm --to ffm --field-map fields.txt --out "
        "train.ffm\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, metavar="FILE", help="the input file")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="input format. Default: csv for .csv/.tsv, parquet for .parquet, ffm "
                   "for .ffm, else libfm (libsvm is the same format)")
    p.add_argument("--to", choices=("libfm", "ffm"), default="libfm",
                   help="output format. Default: libfm.")
    p.add_argument("--out", required=True, metavar="FILE", help="the output file")
    g = p.add_argument_group("tables (CSV, Parquet)")
    g.add_argument("--target", metavar="COLUMN", help="the label column (required for tables)")
    g.add_argument("--categorical", metavar="A,B,...",
                   help="one-hot columns. Default: the text, category and boolean columns")
    g.add_argument("--numeric", metavar="A,B,...",
                   help="numeric columns, one feature each. Default: the other numeric columns")
    g.add_argument("--multi-hot", metavar="A,B,...",
                   help="bag columns (e.g. genres 'a|b|c'), one normalized feature per token")
    g.add_argument("--multi-hot-sep", default="|", metavar="CHAR",
                   help="separator inside a bag. Default: |")
    g.add_argument("--sep", metavar="CHAR", help="CSV separator. Default: tab for .tsv, else ,")
    g.add_argument("--hash-bits", type=int, metavar="N",
                   help="hash each categorical and multi-hot column=value into 2**N features "
                   "of its field instead of one-hot (MurmurHash3, as FMEncoder(hash_bits=N): "
                   "the same column ids), N in 1..24; numeric columns stay one feature each")
    g.add_argument("--encoder-out", metavar="PATH",
                   help="save the fitted FMEncoder (a safe model file) to convert more files "
                   "with the same columns")
    g.add_argument("--encoder", metavar="PATH",
                   help="an encoder saved by --encoder-out: convert with its columns")
    g = p.add_argument_group("libsvm/libFM into FFM")
    g.add_argument("--field-map", metavar="FILE",
                   help="lines 'feature field' or 'first-last field' (0-based indices)")
    g.add_argument("--field-per-feature", action="store_true",
                   help="without a field map: every feature its own field")
    p.set_defaults(func=run)


def _input_format(path, fmt) -> str:
    from fmlearn.cli.tables import table_format

    if fmt is not None:
        return "libfm" if fmt == "libsvm" else fmt
    table = table_format(path, None)
    if table:
        return table
    return "ffm" if str(path).lower().removesuffix(".gz").endswith(".ffm") else "libfm"


def _names(text):
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def run(args) -> int:
    from fmlearn._atomic import resolve_target

    resolve_target(args.out)  # a missing folder or a device fails before any work
    if args.encoder_out:
        resolve_target(args.encoder_out)
    fmt = _input_format(args.data, args.format)
    if fmt in ("csv", "parquet"):
        X, y, fields = _from_table(args, fmt)
    else:
        X, y, fields = _from_text(args, fmt)
    from fmlearn.data.textio import write_ffm, write_libfm

    if args.to == "ffm":
        write_ffm(args.out, X, y, fields)
    else:
        write_libfm(args.out, X, y)
    n_fields = int(fields.max()) + 1 if fields is not None and fields.size else 0
    print(f"wrote {X.shape[0]} rows x {X.shape[1]} features ({X.nnz} non-zeros"
          + (f", {n_fields} fields" if args.to == "ffm" else "") + f") to {args.out}",
          file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- tables
def _read_table(path, fmt, sep):
    import pandas as pd

    if fmt == "parquet":
        from fmlearn.cli.tables import _read

        return _read(path, fmt, None, sep)
    if sep is None:
        sep = "\t" if ".tsv" in str(path).lower() else ","
    return pd.read_csv(path, sep=sep)


def _labels(df, target, path):
    import numpy as np

    if not target:
        raise ValueError("a table needs --target COLUMN: the label column")
    if target not in df.columns:
        raise ValueError(f"{path}: no column {target!r} (--target); the columns are "
                         f"{', '.join(map(str, df.columns[:20]))}")
    col = df[target]
    if col.isna().any():
        row = int(np.flatnonzero(col.isna().to_numpy())[0])
        raise ValueError(f"{path}: the label column {target!r} is empty in data row {row + 1}")
    values = col.to_numpy()
    if values.dtype.kind in "biuf":
        return values.astype(np.float64)
    classes = np.unique(values.astype(str))
    if classes.shape[0] != 2:
        raise ValueError(
            f"{path}: the label column {target!r} holds text with {classes.shape[0]} distinct "
            "values; libFM/FFM labels are numbers (two text values are written as 0 and 1)")
    print(f"fmlearn convert: note: labels {str(classes[0])!r} -> 0, {str(classes[1])!r} -> 1",
          file=sys.stderr)
    return (values.astype(str) == classes[1]).astype(np.float64)


def _from_table(args, fmt):
    import numpy as np

    df = _read_table(args.data, fmt, args.sep)
    y = _labels(df, args.target, args.data)
    features = df.drop(columns=[args.target])
    if args.encoder:
        return _with_encoder(args, features, y)
    categorical, numeric = _names(args.categorical), _names(args.numeric)
    multi_hot = _names(args.multi_hot)
    if categorical is None and numeric is None:
        taken = set(multi_hot or ())
        categorical = [c for c in features.columns if c not in taken
                       and features[c].dtype.kind not in "iuf"]
        numeric = [c for c in features.columns if c not in taken
                   and features[c].dtype.kind in "iuf"]
    if args.hash_bits is not None and not 1 <= args.hash_bits <= 24:
        raise ValueError(f"--hash-bits must be in 1..24, got {args.hash_bits}")
    from fmlearn.data.encoder import FMEncoder

    # One hash for one concept: FMEncoder's per-field MurmurHash3, so that a converted file
    # and FMEncoder(hash_bits=N) give a (column, value) the same column id.
    enc = FMEncoder(categorical=categorical or None, numeric=numeric or None,
                    multi_hot=multi_hot, multi_hot_sep=args.multi_hot_sep,
                    hash_bits=args.hash_bits)
    X = enc.fit_transform(features)
    if args.encoder_out:
        import fmlearn

        fmlearn.save(enc, args.encoder_out)
        print(f"saved the encoder to {args.encoder_out}", file=sys.stderr)
    return X, y, np.asarray(enc.fields_, dtype=np.int32)


def _with_encoder(args, features, y):
    import numpy as np

    import fmlearn
    from fmlearn.data.encoder import FMEncoder

    enc = fmlearn.load(args.encoder)
    if not isinstance(enc, FMEncoder):
        raise ValueError(f"{args.encoder}: not an encoder saved by fmlearn convert "
                         "--encoder-out (fmlearn.save of an FMEncoder)")
    return enc.transform(features), y, np.asarray(enc.fields_, dtype=np.int32)


# --------------------------------------------------------------------------- text files
def _from_text(args, fmt):
    import numpy as np

    from fmlearn.cli.commands import read_data

    X, y, fields = read_data(args.data, fmt)
    if args.to == "ffm" and fields is None:
        if args.field_map:
            fields = _field_map(args.field_map, X.shape[1])
        elif args.field_per_feature:
            fields = np.arange(X.shape[1], dtype=np.int32)
        else:
            raise ValueError("--to ffm from a libsvm/libFM file needs fields: give --field-map "
                             "FILE ('feature field' or 'first-last field' per line) or "
                             "--field-per-feature")
    if args.hash_bits is not None:
        # As fmlearn train --hash-bits and TextFiles(hash_bits=): MurmurHash3 of each feature
        # index, into 2**N columns per field when there are fields (after the field map).
        from fmlearn.data.hashing import hash_columns

        if not 1 <= args.hash_bits <= 24:
            raise ValueError(f"--hash-bits must be in 1..24, got {args.hash_bits}")
        X, fields = hash_columns(X, args.hash_bits, fields)
    return X, y, fields


def _field_map(path, n_features: int):
    import numpy as np

    fields = np.full(n_features, -1, dtype=np.int64)
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            text = line.split("#", 1)[0].split()
            if not text:
                continue
            try:
                if len(text) != 2:
                    raise ValueError
                first, _, last = text[0].partition("-")
                lo, hi, field = int(first), int(last or first), int(text[1])
                if lo < 0 or hi < lo or field < 0:
                    raise ValueError
            except ValueError:
                raise ValueError(f"{path}:{line_no}: expected 'feature field' or 'first-last "
                                 f"field' with non-negative integers, got {line.strip()!r}"
                                 ) from None
            fields[lo : min(hi, n_features - 1) + 1] = field
    missing = np.flatnonzero(fields < 0)
    if missing.size:
        raise ValueError(f"{path}: no field for feature {missing[0]} ({missing.size} features "
                         "in all); map every feature of the data")
    return fields.astype(np.int32)
