"""Pipeline files: an ``FMEncoder``, or a ``Pipeline`` of encoders and an fmlearn model, in one
safe file (no pickle, no code run at load).

Layout (a zip archive, stored, like a model file; see ``docs/model-files.md``)::

    metadata.json           {"format": "fmlearn-pipeline", "format_version": 1,
                             "fmlearn_version": "...", "class": "Pipeline" or "FMEncoder",
                             "pipeline": {"memory": null, "verbose": false, ...},
                             "steps": [{"name": "enc", "class": "FMEncoder",
                                        "encoder": {params and fitted attributes}}, ...,
                                       {"name": "ffm", "class": "FFMClassifier",
                                        "model": "steps/1/model.fmz"}],
                             "arrays": {"steps/0/fields_": {"shape": [..], "dtype": ".."}}}
    steps/0/fields_.npy     the encoder's array state: fields, known categories per field
    steps/0/categories/1.npy
    steps/1/model.fmz       the model, a model file exactly as ``model.save`` writes it

Loading looks classes up in a fixed table (``Pipeline``, ``FMEncoder``, the fmlearn
estimators), reads arrays with ``allow_pickle=False``, checks every array against the metadata
and the encoder's state for consistency, and raises :class:`fmlearn.exceptions.ModelFileError`
on any damage. The model member is read by :func:`fmlearn.io.load`, with its own checks.
"""

from __future__ import annotations

import inspect
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from fmlearn._atomic import atomic_write
from fmlearn._version import __version__
from fmlearn.exceptions import ModelFileError
from fmlearn.io import (
    _check_members,
    _estimator_class,
    _fail,
    _open_regular,
    _read_npy,
    check_format_version,
)
from fmlearn.io import load as load_model
from fmlearn.io import save as save_model

FORMAT = "fmlearn-pipeline"
FORMAT_VERSION = 1
METADATA = "metadata.json"
_ENCODER_PARAMS = ("categorical", "numeric", "multi_hot", "multi_hot_sep", "bag_norm",
                   "scale_numeric", "handle_missing", "handle_unknown", "min_frequency",
                   "field_weights", "hash_bits", "hash_signed")
_DTYPES = {"float32": np.float32, "float64": np.float64}
_KINDS = ("categorical", "numeric", "multi_hot")


def _is_model(est) -> bool:
    return _estimator_class(type(est).__name__) is type(est)


def _is_encoder(est) -> bool:
    from fmlearn.data.encoder import FMEncoder

    return type(est) is FMEncoder


def is_pipeline(obj) -> bool:
    """Whether :func:`save` writes ``obj`` as a pipeline file: an ``FMEncoder``, or a
    ``Pipeline`` whose steps are encoders, fmlearn models and ``"passthrough"``."""
    return _is_encoder(obj) or type(obj).__name__ == "Pipeline" and hasattr(obj, "steps")


# ---------------------------------------------------------------------------------- writing


def _name(value):
    """A column name as JSON: str or int."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"cannot save column name {value!r}: column names must be str or int")
    return value


def _names(values):
    return None if values is None else [_name(v) for v in values]


def _scalar(value):
    """A category that is not held in a numeric or string array, as JSON."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(
        f"cannot save category {value!r} of type {type(value).__name__}: a pipeline file keeps "
        "categories that are numbers, strings or booleans (no pickle)"
    )


def _encoder_state(enc, prefix, arrays) -> dict:
    """JSON state of a fitted FMEncoder; its arrays go to ``arrays`` under ``prefix``."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(enc)
    dtype = np.dtype(enc.dtype).name
    params = {p: getattr(enc, p) for p in _ENCODER_PARAMS}
    for kind in _KINDS:
        params[kind] = _names(params[kind])
    params["min_frequency"] = int(params["min_frequency"])
    params["dtype"] = dtype
    # JSON objects have string keys only: [column, weight] pairs keep integer column names.
    weights = params.pop("field_weights")
    if weights is not None:
        params["field_weights"] = [[_name(k), float(v)] for k, v in weights.items()]
    arrays[f"{prefix}fields_"] = np.asarray(enc.fields_, dtype=np.int32)
    categories = []
    for f, (name, kind) in enumerate(zip(enc.field_names_, enc.field_kinds_, strict=True)):
        if kind == "numeric":
            offset, scale = enc.numeric_scaling_[name]
            categories.append({"scaling": [float(offset), float(scale)]})
            continue
        cats = np.asarray(enc.categories_[name])
        if cats.dtype != object and cats.dtype.kind in "biufUSmM":
            arrays[f"{prefix}categories/{f}"] = cats
            categories.append({"array": f"{prefix}categories/{f}"})
        elif all(isinstance(c, str) for c in cats.tolist()):
            arrays[f"{prefix}categories/{f}"] = cats.astype(str) if cats.size else cats.astype("U1")
            categories.append({"array": f"{prefix}categories/{f}", "object": "str"})
        else:
            categories.append({"values": [_scalar(c) for c in cats.tolist()]})
    state = {
        "params": params,
        "n_features_in_": int(enc.n_features_in_),
        "feature_names_in_": _names(getattr(enc, "feature_names_in_", None)),
        "field_names_": _names(enc.field_names_),
        "field_kinds_": list(enc.field_kinds_),
        # A hashing encoder makes its names on request (2**hash_bits per field): none kept.
        "feature_names_out_": (None if enc.feature_names_out_ is None
                               else [str(n) for n in enc.feature_names_out_]),
        "categories": categories,
    }
    return state


def _write_array(zf, key, arr) -> dict:
    with zf.open(key + ".npy", "w", force_zip64=True) as f:
        np.lib.format.write_array(f, arr, allow_pickle=False)
    return {"shape": list(arr.shape), "dtype": arr.dtype.str}


def _model_bytes(est) -> bytes:
    """The model file ``model.save`` writes, as bytes."""
    with tempfile.TemporaryDirectory(prefix="fmlearn-") as tmp:
        target = Path(tmp) / "model.fmz"
        save_model(est, target)
        return target.read_bytes()


def save(obj, path) -> None:
    """Save a fitted ``FMEncoder``, or a fitted ``Pipeline`` of them and an fmlearn model.

    Parameters
    ----------
    obj : FMEncoder or sklearn.pipeline.Pipeline
        Pipeline steps may be ``FMEncoder``, fmlearn estimators and ``"passthrough"``.
    path : str or os.PathLike
        Written atomically: an existing file is replaced only once the new one is complete.
    """
    from sklearn.utils.validation import check_is_fitted

    if _is_encoder(obj):
        kind, steps, extra = "FMEncoder", [("encoder", obj)], {}
    elif type(obj).__name__ == "Pipeline" and type(obj).__module__.startswith("sklearn."):
        check_is_fitted(obj)
        kind, steps = "Pipeline", list(obj.steps)
        extra = {
            k: v for k, v in obj.get_params(deep=False).items()
            if k != "steps" and (v is None or isinstance(v, (bool, str)) or (
                isinstance(v, list) and all(isinstance(s, str) for s in v)))
        }
    else:
        raise TypeError(
            f"cannot save {type(obj).__name__} as a pipeline file: give an FMEncoder or a "
            "sklearn Pipeline (an fmlearn model alone is saved by model.save)"
        )
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "fmlearn_version": __version__,
        "class": kind, "pipeline": extra, "steps": [], "arrays": {},
    }
    arrays, members = {}, {}
    for i, (name, est) in enumerate(steps):
        prefix = f"steps/{i}/"
        if est is None or (isinstance(est, str) and est == "passthrough"):
            meta["steps"].append({"name": name, "class": "passthrough"})
        elif _is_encoder(est):
            meta["steps"].append({"name": name, "class": "FMEncoder",
                                  "encoder": _encoder_state(est, prefix, arrays)})
        elif _is_model(est):
            members[prefix + "model.fmz"] = _model_bytes(est)
            meta["steps"].append({"name": name, "class": type(est).__name__,
                                  "model": prefix + "model.fmz"})
        else:
            raise TypeError(
                f"cannot save step {name!r} ({type(est).__name__}): a pipeline file holds "
                "FMEncoder, fmlearn estimators and 'passthrough' only (no pickle)"
            )
    path = Path(os.fspath(path))
    with atomic_write(path) as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as zf:
        for key, arr in arrays.items():
            meta["arrays"][key] = _write_array(zf, key, arr)
        for key, data in members.items():
            zf.writestr(key, data)
        zf.writestr(METADATA, json.dumps(meta, indent=1, allow_nan=True))


# ---------------------------------------------------------------------------------- reading


def _peek(path) -> dict | None:
    """The metadata of a pipeline file at ``path``; None for anything else (a model file, a
    damaged or foreign file: :func:`fmlearn.io.load` then says what it is)."""
    # The model file's guards first: a regular file only (not /dev/zero or a FIFO), members
    # within the file's size, a bounded metadata.json.
    raw, size = _open_regular(path)
    with raw:
        try:
            with zipfile.ZipFile(raw) as zf:
                if METADATA not in zf.namelist():
                    return None
                _check_members(zf, size, path)
                meta = json.loads(zf.read(METADATA).decode("utf-8"))
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, UnicodeDecodeError,
                RecursionError, ModelFileError):
            return None  # fmlearn.io.load says what is wrong with it
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


def _read_arrays(zf, meta, path) -> dict:
    specs = meta.get("arrays")
    if not isinstance(specs, dict):
        raise _fail(path, "damaged pipeline file: metadata.json lists no arrays.")
    out = {}
    for key, spec in specs.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("shape"), list) or (
                not isinstance(spec.get("dtype"), str)):
            raise _fail(path, f"damaged pipeline file: array {key!r} has no valid shape.")
        try:
            # The header is checked against the metadata and the member's size before any
            # data is read (a header claiming terabytes allocates nothing).
            arr = _read_npy(zf, key, spec, path)
        except KeyError:
            raise _fail(path, f"damaged pipeline file: array {key!r} is missing.") from None
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise _fail(path, f"damaged pipeline file: array {key!r} is unreadable ({e}).",
                        "Save the pipeline again.") from None
        if not isinstance(spec, dict) or list(arr.shape) != spec.get("shape") or (
                arr.dtype.str != spec.get("dtype")):
            raise _fail(path, f"damaged pipeline file: array {key!r} has shape {arr.shape} and "
                              f"dtype {arr.dtype.str}, metadata says {spec}.")
        out[key] = arr
    return out


def _array(arrays, ref, what):
    if not isinstance(ref, dict) or ref.get("array") not in arrays:
        raise ValueError(f"{what} refers to no array")
    arr = arrays[ref["array"]]
    return arr.astype(object) if ref.get("object") == "str" else arr


def _load_encoder(state, arrays, prefix):
    """A fitted FMEncoder from its saved state; checks that the parts agree."""
    from fmlearn.data.encoder import FMEncoder

    params = dict(state["params"])
    params["dtype"] = _DTYPES[params["dtype"]]
    if params.get("field_weights") is not None:
        params["field_weights"] = {name: weight for name, weight in params["field_weights"]}
    unknown = set(params) - set(_ENCODER_PARAMS) - {"dtype"}
    if unknown:
        raise ValueError(f"unknown encoder parameters {sorted(unknown)}")
    enc = FMEncoder(**params)
    enc._validate_params()
    names, kinds = list(state["field_names_"]), list(state["field_kinds_"])
    if len(names) != len(kinds) or not names or any(k not in _KINDS for k in kinds):
        raise ValueError("the encoder's fields are inconsistent")
    fields = arrays.get(f"{prefix}fields_")
    if fields is None or fields.dtype != np.int32 or fields.ndim != 1:
        raise ValueError("the encoder's fields_ are missing")
    out_names = state["feature_names_out_"]
    hashing = params.get("hash_bits") is not None
    if hashing and out_names is not None:
        raise ValueError("a hashing encoder keeps no feature names")
    if not hashing and (not isinstance(out_names, list) or len(out_names) != fields.shape[0]):
        raise ValueError("the encoder's feature names and fields_ disagree")
    sizes = np.bincount(fields, minlength=len(names)) if fields.size else np.zeros(len(names))
    if fields.size and (fields.min() < 0 or fields.max() >= len(names)):
        raise ValueError("the encoder's fields_ are out of range")
    if len(state["categories"]) != len(names):
        raise ValueError("the encoder's categories do not match its fields")
    bucket = int(params["handle_unknown"] == "bucket")
    categories, scaling = {}, {}
    for f, (name, kind, entry) in enumerate(zip(names, kinds, state["categories"], strict=True)):
        if kind == "numeric":
            offset, scale = entry["scaling"]
            scaling[name] = (float(offset), float(scale))
            expected = 1
        else:
            if "values" in entry:
                cats = np.fromiter(entry["values"], dtype=object, count=len(entry["values"]))
            else:
                cats = _array(arrays, entry, f"the categories of field {name!r}")
            if cats.ndim != 1:
                raise ValueError(f"the categories of field {name!r} are not 1-D")
            categories[name] = cats
            if hashing and cats.size:
                raise ValueError(f"the hashed field {name!r} lists categories")
            expected = 1 << int(params["hash_bits"]) if hashing else len(cats) + bucket
        if sizes[f] != expected:
            raise ValueError(
                f"field {name!r} has {sizes[f]} columns in fields_, its state {expected}")
    enc.n_features_in_ = int(state["n_features_in_"])
    if state.get("feature_names_in_") is not None:
        enc.feature_names_in_ = np.asarray(state["feature_names_in_"], dtype=object)
    enc.field_names_, enc.field_kinds_, enc.n_fields_ = names, kinds, len(names)
    enc._check_field_weights()
    enc.categories_, enc.numeric_scaling_ = categories, scaling
    enc.fields_ = fields
    enc.feature_names_out_ = None if hashing else np.asarray(out_names, dtype=object)
    enc.n_features_out_ = int(fields.shape[0])
    return enc


def _load_model(zf, member, expected_class, path):
    """The model stored in ``member``, read by :func:`fmlearn.io.load`."""
    try:
        data = zf.read(member)
    except KeyError:
        raise _fail(path, f"damaged pipeline file: the model {member!r} is missing.") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise _fail(path, f"damaged pipeline file: the model {member!r} is unreadable ({e}).",
                    "Save the pipeline again.") from None
    with tempfile.TemporaryDirectory(prefix="fmlearn-") as tmp:
        target = Path(tmp) / "model.fmz"
        target.write_bytes(data)
        try:
            model = load_model(target)
        except ModelFileError as e:
            raise ModelFileError(str(e).replace(str(target), f"{path} [{member}]")) from None
    if type(model).__name__ != expected_class:
        raise _fail(path, f"damaged pipeline file: {member!r} holds a {type(model).__name__}, "
                          f"metadata.json says {expected_class}.")
    return model


def load(path):
    """Load a pipeline file written by :func:`save`, or a model file (:func:`fmlearn.io.load`).

    Returns
    -------
    FMEncoder, sklearn.pipeline.Pipeline or fmlearn estimator
        What was saved, fitted.

    Raises
    ------
    FileNotFoundError
    ModelFileError
        The file is damaged, truncated, foreign or from a newer fmlearn.
    """
    meta = _peek(path)
    if meta is None:
        return load_model(path)
    path = os.fspath(path)
    check_format_version(meta, path, "pipeline", FORMAT_VERSION)
    kind, steps = meta.get("class"), meta.get("steps")
    if kind not in ("Pipeline", "FMEncoder") or not isinstance(steps, list) or not steps:
        raise _fail(path, f"damaged pipeline file: unknown class {kind!r} or no steps.",
                    "It may need a newer fmlearn.")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise _fail(path, f"damaged pipeline file ({e}).") from None
    with zf:
        arrays = _read_arrays(zf, meta, path)
        built = []
        for i, step in enumerate(steps):
            try:
                name, cls = step["name"], step["class"]
                if not isinstance(name, str):
                    raise TypeError("a step name must be a string")
                if cls == "passthrough":
                    est = "passthrough"
                elif cls == "FMEncoder":
                    est = _load_encoder(step["encoder"], arrays, f"steps/{i}/")
                elif _estimator_class(cls) is not None:
                    est = None  # read below, outside this handler
                else:
                    raise _fail(path, f"unknown step class {cls!r}.",
                                "It may need a newer fmlearn.")
            except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
                if isinstance(e, ModelFileError):
                    raise
                raise _fail(path, f"damaged pipeline file: step {i}: {e}.") from None
            if est is None:
                est = _load_model(zf, step.get("model"), cls, path)
            built.append((name, est))
    if kind == "FMEncoder":
        if len(built) != 1 or not _is_encoder(built[0][1]):
            raise _fail(path, "damaged pipeline file: an FMEncoder file holds one encoder.")
        return built[0][1]
    from sklearn.pipeline import Pipeline

    known = set(inspect.signature(Pipeline).parameters) - {"steps"}
    options = meta.get("pipeline") if isinstance(meta.get("pipeline"), dict) else {}
    try:
        return Pipeline(built, **{k: v for k, v in options.items() if k in known})
    except (TypeError, ValueError) as e:
        raise _fail(path, f"damaged pipeline file: {e}.") from None
