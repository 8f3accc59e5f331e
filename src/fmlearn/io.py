"""Model files: a zip of ``.npy`` arrays plus JSON metadata; no pickle, no code on load.

Layout (readable with ``numpy.load(path, allow_pickle=False)`` too)::

    metadata.json        {"format": "fmlearn-model", "format_version": 1,
                          "fmlearn_version": "...", "class": "FMRegressor",
                          "params": {...get_params()...}, "attributes": {...},
                          "arrays": {"w0": {"shape": [1], "dtype": "float32"}, ...}}
    params/w0.npy ...    model parameters (``FMParams.arrays()``)
    state/table.npy ...  solver state (per-feature columns, e.g. AdaGrad accumulators, and
                         scalars), so that ``warm_start``/``partial_fit`` resume exactly
    attrs/classes_.npy   array-valued fitted attributes

``metadata.json`` also holds ``"rng"``, the state of the estimator's random-number generator
(numpy's ``bit_generator.state`` as JSON data; integers beyond 2**53 as ``{"int": "<decimal>"}``,
arrays as ``{"ndarray": [...], "dtype": ...}``), so that ``partial_fit`` after ``load`` draws
the same shuffles as it would have in memory. Files without it (fmlearn <= 0.1) still load;
training them further starts a fresh generator seeded with ``random_state``.

Writes go to a temporary file in the target directory, flushed and ``fsync``-ed, then renamed
over the target: a crash never leaves a half-written model. Loading checks the format name and
version, the class against a fixed registry, every array's shape and dtype against the metadata
and the zip CRCs, and raises :class:`fmlearn.exceptions.ModelFileError` on any mismatch.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from fmlearn._atomic import atomic_write, open_regular
from fmlearn._version import __version__
from fmlearn.exceptions import ModelFileError
from fmlearn.models import KINDS as _PARAMS_KINDS
from fmlearn.models.ordinal import migrate_solver_state_cutpoints

FORMAT = "fmlearn-model"
FORMAT_VERSION = 1
METADATA = "metadata.json"

# Containers a model file may name come from fmlearn.models.KINDS, estimator classes from
# _ESTIMATORS: loading never imports or calls anything outside these tables.
# Scalar fitted attributes stored in JSON, and array ones stored as .npy.
_SCALAR_ATTRS = (
    "n_features_in_",
    "n_iter_",
    "best_iteration_",
    "_epochs_done",
    "_solver_name",
    "_link",
    "_relation_widths",
    "n_query_features_",
    "_open_epoch",
)
_ARRAY_ATTRS = ("classes_", "feature_names_in_")
# Parameters that model files of earlier versions store for estimators that no longer have them
# (the MCMC-only ones were on every family).
_RETIRED_PARAMS = frozenset({"n_kept_samples", "prior_groups"})
# Containers of earlier files that are read as another kind today: (class, kind in the file)
# -> the migration of the file's parameter arrays and solver state (in place), which returns
# the kind to read them with. Ordinal models kept their cutpoints in the solver state.
_MIGRATIONS = {
    ("FMOrdinalRegressor", "fm"): migrate_solver_state_cutpoints,
    ("FMOrdinalRegressor", "fm_posterior"): migrate_solver_state_cutpoints,
}


# Estimator class name -> its module; imported only when a file names it.
_ESTIMATORS = {
    "FMRegressor": "fm", "FMClassifier": "fm",
    "FFMRegressor": "ffm", "FFMClassifier": "ffm",
    "FwFMRegressor": "fwfm", "FwFMClassifier": "fwfm",
    "HOFMRegressor": "hofm", "HOFMClassifier": "hofm",
    "FMOrdinalRegressor": "ordinal", "FMRanker": "ranking",
}
# The deep models (fmlearn[torch]): torch is imported only when a file names one.
_DEEP_STEMS = ("TorchFM", "TorchFFM", "TorchFwFM", "DeepFM", "NFM", "AFM", "XDeepFM", "AutoInt",
               "AutoIntPlus", "IFM", "DIFM", "CFM")
_ESTIMATORS.update({stem + task: "deep" for stem in _DEEP_STEMS
                    for task in ("Regressor", "Classifier", "Ranker")})


def _estimator_class(name) -> type | None:
    module = _ESTIMATORS.get(name) if isinstance(name, str) else None
    if module is None:
        return None
    return getattr(importlib.import_module(f"fmlearn.{module}"), name)


def _json_param(name, value, arrays):
    """JSON for a hyper-parameter; array-valued ones (e.g. ``fields``) go to ``arrays``."""
    if isinstance(value, (np.random.RandomState, np.random.Generator)):
        return None  # the RNG object itself is not data; the fitted model does not need it
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.ndarray, list, tuple)):
        arr = np.asarray(value)
        if arr.dtype.kind in "biuf":
            arrays[f"hyper/{name}"] = arr
            return {"array": f"hyper/{name}"}
    raise TypeError(f"cannot save parameter {name}={value!r}: not JSON data or a numeric array")


# Bit generators a model file may name (numpy.random classes; nothing else is looked up).
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def _to_json(value):
    """A bit generator's state as JSON data: exact whatever the JSON reader."""
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return {"ndarray": [_to_json(v) for v in value.tolist()], "dtype": value.dtype.str}
    if isinstance(value, (bool, str, float)) or value is None:
        return value
    if isinstance(value, (int, np.integer)):
        value = int(value)
        return value if abs(value) < 2**53 else {"int": str(value)}
    raise TypeError(f"cannot store random-number state of type {type(value).__name__}")


def _from_json(value):
    if isinstance(value, dict):
        if set(value) == {"int"} and isinstance(value["int"], str):
            return int(value["int"])
        if set(value) == {"ndarray", "dtype"}:
            dtype = np.dtype(str(value["dtype"]))
            if dtype.kind not in "iu":
                raise ValueError(f"state array of dtype {dtype}")
            return np.array([_from_json(v) for v in value["ndarray"]], dtype=dtype)
        return {k: _from_json(v) for k, v in value.items()}
    return value


def _rng_state(rng) -> dict | None:
    """JSON data of a Generator's state (None for anything else)."""
    if not isinstance(rng, np.random.Generator):
        return None
    state = rng.bit_generator.state
    if state.get("bit_generator") not in _BIT_GENERATORS:
        return None  # a third-party bit generator: resume starts afresh, as for old files
    return _to_json(state)


def _restore_rng(data) -> np.random.Generator:
    """The Generator saved by :func:`_rng_state`; ValueError if ``data`` is not one."""
    name = data.get("bit_generator") if isinstance(data, dict) else None
    if name not in _BIT_GENERATORS:
        raise ValueError(f"unknown random-number generator {name!r}")
    bit_generator = getattr(np.random, name)()
    try:
        bit_generator.state = _from_json(data)
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise ValueError(f"bad random-number state ({e})") from None
    return np.random.Generator(bit_generator)


def _write_array(zf: zipfile.ZipFile, name: str, arr: np.ndarray) -> dict:
    arr = np.asarray(arr)
    spec = {}
    if arr.dtype == object:
        # Strings held as Python objects (pandas column names, labels) are stored as unicode
        # and given back as objects; anything else would need pickle.
        if not all(isinstance(v, str) for v in arr.ravel()):
            raise TypeError(
                f"cannot save {name}: object arrays need pickle; use numeric or string labels"
            )
        arr = arr.astype(str)
        spec["object"] = "str"
    with zf.open(name, "w", force_zip64=True) as f:
        np.lib.format.write_array(f, arr, allow_pickle=False)
    return {"shape": list(arr.shape), "dtype": arr.dtype.str, **spec}


def save(estimator, path) -> None:
    """Save a fitted fmlearn estimator to ``path`` atomically.

    Parameters
    ----------
    estimator : fitted fmlearn estimator
    path : str or os.PathLike
        Destination; an existing file is replaced only once the new one is complete.
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    name = type(estimator).__name__
    if _estimator_class(name) is not type(estimator):
        raise TypeError(f"cannot save {name}: not an fmlearn estimator")
    path = Path(os.fspath(path))
    params = estimator._params
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fmlearn_version": __version__,
        "class": name,
        "model_kind": params.kind,
        "params": {},
        "attributes": {a: getattr(estimator, a) for a in _SCALAR_ATTRS if hasattr(estimator, a)},
        "history": estimator.history_,
        "arrays": {},
    }
    rng = _rng_state(getattr(estimator, "_rng", None))
    if rng is not None:
        meta["rng"] = rng
    arrays = {f"params/{k}": v for k, v in params.arrays().items()}
    # A deep estimator leaves out what its file does not need (init_from: the weights are in).
    file_params = getattr(estimator, "_model_file_params", None)
    hyper = file_params() if file_params is not None else estimator.get_params(deep=False)
    for k, v in hyper.items():
        meta["params"][k] = _json_param(k, v, arrays)
    with atomic_write(path) as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as zf:
        if params.state.shape[1]:
            arrays["state/table"] = np.ascontiguousarray(params.state)
            # Solver state a container keeps beside its table (FwFM: acc_r).
            for name in getattr(params, "extra_state", ()):
                arrays[f"state/{name}"] = np.ascontiguousarray(getattr(params, name))
        solver_state = getattr(estimator, "_solver_state", None) or {}
        arrays.update({f"state/{k}": v for k, v in solver_state.items()})
        arrays.update(
            {f"attrs/{a}": getattr(estimator, a) for a in _ARRAY_ATTRS if hasattr(estimator, a)}
        )
        for key, arr in arrays.items():
            meta["arrays"][key] = _write_array(zf, key + ".npy", arr)
        zf.writestr(METADATA, json.dumps(meta, indent=1, allow_nan=True))


def _fail(path, what, fix="") -> ModelFileError:
    return ModelFileError(f"{path}: {what}" + (f" {fix}" if fix else ""))


# ---------------------------------------------------------------------------------------------
# Validation: limits and schema. Every size read from a file is checked against the file's
# real size and these limits before anything is allocated; every JSON value against its type.

# metadata.json: parameters, scalar attributes and the per-epoch history (a few KB per 1,000
# epochs); anything larger is not a model file.
MAX_METADATA_BYTES = 16 << 20
# A .npy header is a short Python literal; numpy's own default limit.
MAX_NPY_HEADER_BYTES = 10_000
_ARRAY_KEY = re.compile(r"(params|state|attrs|hyper)/[A-Za-z_][A-Za-z0-9_]*\Z")


def _type_name(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null", int: "an integer", float: "a number"}.get(type(value), "?")


def _is_int(value, minimum=0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _open_regular(path):
    """Open ``path`` for reading only if it is a regular file; (file object, size in bytes)."""
    return open_regular(
        path, lambda kind: _fail(path, f"not an fmlearn model file: it is {kind}."))


def _check_members(zf: zipfile.ZipFile, size: int, path) -> None:
    """Each member is stored (not compressed) and lies within the file's ``size`` bytes."""
    for info in zf.infolist():
        where = f"member {info.filename!r}"
        if info.compress_type != zipfile.ZIP_STORED:
            raise _fail(
                path,
                f"damaged model file: {where} is compressed; fmlearn stores every member "
                "uncompressed.",
            )
        if (info.file_size != info.compress_size or info.header_offset < 0
                or info.header_offset + info.compress_size > size):
            raise _fail(
                path,
                f"damaged model file: {where} declares {info.file_size} bytes at offset "
                f"{info.header_offset}, beyond the file's {size} bytes.",
            )
        if info.filename == METADATA and info.file_size > MAX_METADATA_BYTES:
            raise _fail(
                path,
                f"damaged model file: metadata.json declares {info.file_size} bytes, more than "
                f"the {MAX_METADATA_BYTES >> 20} MiB limit.",
            )


def _check_shape(value) -> bool:
    return isinstance(value, list) and all(_is_int(n) for n in value)


def _check_metadata(meta: dict, path) -> None:
    """The types of metadata.json's values (its schema); raise ModelFileError naming the key."""

    def bad(key, want, value):
        return _fail(
            path,
            f"damaged model file: metadata.json {key} is {_type_name(value)} "
            f"({str(value)[:60]}), expected {want}.",
        )

    for key, kind, want in (
        ("class", str, "a string"), ("model_kind", str, "a string"),
        ("params", dict, "an object"), ("arrays", dict, "an object"),
    ):
        if not isinstance(meta.get(key), kind):
            raise bad(f"'{key}'", want, meta.get(key))
    for key in ("attributes", "history"):
        if not isinstance(meta.get(key, {}), dict):
            raise bad(f"'{key}'", "an object", meta[key])
    for key, values in meta.get("history", {}).items():
        if not isinstance(values, list):
            raise bad(f"history[{key!r}]", "a list", values)
    for key, spec in meta["arrays"].items():
        if not _ARRAY_KEY.match(key):
            raise _fail(path, f"damaged model file: metadata.json lists an array {key!r}, not a "
                        "name fmlearn writes.")
        if not isinstance(spec, dict):
            raise bad(f"arrays[{key!r}]", "an object", spec)
        if not _check_shape(spec.get("shape")):
            raise bad(f"arrays[{key!r}]['shape']", "a list of integers >= 0", spec.get("shape"))
        if not isinstance(spec.get("dtype"), str):
            raise bad(f"arrays[{key!r}]['dtype']", "a string", spec.get("dtype"))
        if spec.get("object", "str") != "str":
            raise bad(f"arrays[{key!r}]['object']", '"str"', spec.get("object"))
    for key, value in meta["params"].items():
        if isinstance(value, dict):
            ref = value.get("array")
            if list(value) != ["array"] or ref not in meta["arrays"]:
                raise bad(f"params[{key!r}]", "a listed array reference {\"array\": ...}",
                          value)
        elif value is not None and not isinstance(value, (bool, int, float, str)):
            raise bad(f"params[{key!r}]", "a number, string, boolean or null", value)
    for key, value in meta.get("attributes", {}).items():
        check = _ATTRIBUTE_TYPES.get(key)
        if check is not None and not check[0](value):
            raise bad(f"attributes[{key!r}]", check[1], value)


def _check_link(value) -> bool:
    from fmlearn.models import LINKS

    return isinstance(value, str) and value in LINKS


def _check_solver_name(value) -> bool:
    from fmlearn.optim import SOLVERS

    return isinstance(value, str) and value in SOLVERS


# Scalar attribute -> (check, what it must be).
_ATTRIBUTE_TYPES = {
    "n_features_in_": (_is_int, "an integer >= 0"),
    "n_iter_": (_is_int, "an integer >= 0"),
    "best_iteration_": (lambda v: v is None or _is_int(v), "an integer >= 0 or null"),
    "_epochs_done": (_is_int, "an integer >= 0"),
    "_solver_name": (_check_solver_name, "the name of a solver"),
    "_link": (_check_link, "one of the links identity, logit, probit"),
    "_relation_widths": (
        lambda v: v is None or (isinstance(v, list) and all(_is_int(n) for n in v)),
        "a list of integers >= 0",
    ),
    "n_query_features_": (lambda v: v is None or _is_int(v), "an integer >= 0 or null"),
    # partial_fit(..., end_epoch=False): the open epoch's (loss sum, weight sum).
    "_open_epoch": (
        lambda v: v is None or (isinstance(v, list) and len(v) == 2
                                and all(isinstance(x, (int, float)) for x in v)),
        "null or a list of two numbers",
    ),
}


def _read_npy(zf: zipfile.ZipFile, key: str, spec: dict, path) -> np.ndarray:
    """One ``.npy`` member, its header checked against ``spec`` and the member's size first."""
    info = zf.getinfo(key + ".npy")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            header = np.lib.format.read_array_header_1_0(f, max_header_size=MAX_NPY_HEADER_BYTES)
        elif version == (2, 0):
            header = np.lib.format.read_array_header_2_0(f, max_header_size=MAX_NPY_HEADER_BYTES)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        shape, fortran, dtype = header
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
            raise ValueError(f"dtype {dtype} is not a plain numeric or string dtype")
        if list(shape) != spec["shape"] or dtype.str != spec["dtype"]:
            raise _fail(
                path,
                f"damaged model file: array {key!r} has shape {tuple(shape)} and dtype "
                f"{dtype.str}, metadata says {spec}.",
            )
        nbytes = math.prod(shape) * dtype.itemsize
        have = info.file_size - f.tell()
        if nbytes != have:
            raise _fail(
                path,
                f"damaged model file: array {key!r} declares {nbytes} bytes of data, its "
                f"member holds {have}.",
            )
        data = f.read(nbytes)
        if len(data) != nbytes:
            raise EOFError(f"{len(data)} of {nbytes} bytes")
    arr = np.frombuffer(data, dtype=dtype)
    arr = arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)
    return arr.copy()  # writable, owning its memory


def check_format_version(meta: dict, path, what: str, readable: int) -> None:
    """Raise ModelFileError unless ``meta`` (a ``what`` file's metadata: "model",
    "pipeline") has an integer ``format_version`` of at most ``readable``."""
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise _fail(path, f"damaged {what} file: no format_version in metadata.json.")
    if version > readable:
        raise _fail(
            path,
            f"written by fmlearn {meta.get('fmlearn_version', '?')} in {what} format "
            f"{version}; this fmlearn ({__version__}) reads formats up to {readable}.",
            "Upgrade fmlearn (pip install -U fmlearn) to load it.",
        )


def _read_metadata(zf: zipfile.ZipFile, path) -> dict:
    if METADATA not in zf.namelist():
        raise _fail(
            path,
            "not an fmlearn model file (no metadata.json in the archive).",
            "Was it written by fmlearn's model.save()?",
        )
    try:
        meta = json.loads(zf.read(METADATA).decode("utf-8"))
    except RecursionError:
        raise _fail(path, "damaged model file: metadata.json is nested too deeply.") from None
    except (UnicodeDecodeError, json.JSONDecodeError, zipfile.BadZipFile, OSError) as e:
        raise _fail(
            path, f"damaged model file: metadata.json is unreadable ({e}).", "Save the model again."
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _fail(path, "not an fmlearn model file (metadata.json has another format).")
    check_format_version(meta, path, "model", FORMAT_VERSION)
    _check_metadata(meta, path)
    return meta


def _read_arrays(zf: zipfile.ZipFile, meta: dict, path) -> dict[str, np.ndarray]:
    out = {}
    specs = meta.get("arrays")
    if not isinstance(specs, dict):
        raise _fail(path, "damaged model file: metadata.json lists no arrays.")
    for key, spec in specs.items():
        try:
            arr = _read_npy(zf, key, spec, path)
        except KeyError:
            raise _fail(path, f"damaged model file: array {key!r} is missing.") from None
        except (ValueError, TypeError, SyntaxError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise _fail(
                path,
                f"damaged model file: array {key!r} is unreadable ({e}).",
                "Save the model again.",
            ) from None
        if arr.dtype.kind in "fc" and key.startswith(("params/", "state/")):
            if not np.isfinite(arr).all():
                raise _fail(
                    path, f"damaged model file: array {key!r} holds NaN or infinite values."
                )
        out[key] = arr.astype(object) if spec.get("object") == "str" else arr
    return out


def load(path):
    """Load a model written by :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    estimator
        A fitted estimator of the saved class, ready for ``predict`` (and, as its solver state
        is kept, for ``partial_fit`` or ``warm_start`` continuation).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ModelFileError
        The file is damaged, truncated, not an fmlearn model, or from a newer fmlearn.
    """
    path = os.fspath(path)
    raw, size = _open_regular(path)  # FileNotFoundError as is
    try:
        zf = zipfile.ZipFile(raw)
        _check_members(zf, size, path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raw.close()
        if isinstance(e, ModelFileError):
            raise
        raise _fail(
            path,
            f"not an fmlearn model file, or truncated ({e}).",
            "fmlearn models are written by model.save(path).",
        ) from None
    with raw, zf:
        meta = _read_metadata(zf, path)
        cls = _estimator_class(meta.get("class"))
        kind_name = meta.get("model_kind")
        kind = _PARAMS_KINDS.get(kind_name)
        if kind is None and cls is not None:  # a deep model's container lives beside torch
            kind = getattr(cls, "_file_kinds", {}).get(kind_name)
        if cls is None or kind is None:
            raise _fail(
                path,
                f"unknown model class {meta.get('class')!r} (kind {meta.get('model_kind')!r}).",
                "It may need a newer fmlearn.",
            )
        arrays = _read_arrays(zf, meta, path)
    state = {k[len("state/") :]: v for k, v in arrays.items() if k.startswith("state/")}
    model_arrays = {k[len("params/") :]: v for k, v in arrays.items() if k.startswith("params/")}
    try:
        migrate = _MIGRATIONS.get((meta["class"], kind_name))
        if migrate is not None:
            kind = _PARAMS_KINDS[migrate(kind_name, model_arrays, state)]
        hyper = {
            k: arrays[v["array"]] if isinstance(v, dict) else v for k, v in meta["params"].items()
        }
        # A parameter added after the file was written: the value the file's model had, where
        # it differs from today's default (e.g. xDeepFM's cin_activation, ReLU before).
        file_defaults = getattr(cls, "_file_defaults", None)
        for name, value in (file_defaults() if file_defaults else {}).items():
            hyper.setdefault(name, value)
        own = cls().get_params(deep=False)
        for name in _RETIRED_PARAMS.intersection(hyper).difference(own):
            # Files of fmlearn <= 0.1 list them for every family; only None can be dropped.
            if hyper.pop(name) is not None:
                raise ValueError(f"{cls.__name__} has no parameter {name!r}")
        est = cls(**hyper)
        est._validate_params()  # the hyper-parameters as fit checks them
        extra = {n: state.pop(n) for n in getattr(kind, "extra_state", ()) if n in state}
        est._params = kind.from_arrays(
            model_arrays,
            state=state.pop("table", None),
            **extra,
        )
        est._solver_state = state or None  # a deep model checks its optimizer state here
    except (TypeError, ValueError, KeyError, IndexError) as e:
        raise _fail(path, f"damaged model file: {e}.") from None
    for a, v in meta.get("attributes", {}).items():
        if a in _SCALAR_ATTRS:
            setattr(est, a, v)
    for a in _ARRAY_ATTRS:
        if f"attrs/{a}" in arrays:
            setattr(est, a, arrays[f"attrs/{a}"])
    est.history_ = meta.get("history", {})
    if meta.get("rng") is not None:
        try:
            est._rng = _restore_rng(meta["rng"])
        except ValueError as e:
            raise _fail(path, f"damaged model file: {e}.") from None
    else:  # written before fmlearn saved the state: continuing starts a fresh generator
        est._rng = np.random.default_rng(
            est.random_state if isinstance(est.random_state, int) else None
        )
    if isinstance(getattr(est, "_relation_widths", None), list):
        est._relation_widths = tuple(est._relation_widths)
    n = est._n_columns() if isinstance(getattr(est, "n_features_in_", None), int) else None
    if n != est._params.n_features:
        raise _fail(
            path,
            f"damaged model file: {n} feature columns (n_features_in_ and relation blocks) but "
            f"the parameters have {est._params.n_features} rows.",
        )
    _check_classes(est, path)
    return est


def _check_classes(est, path) -> None:
    """A classifier's ``classes_``: present, distinct, and as many as its parameters model."""
    if not hasattr(type(est), "predict_proba"):
        return
    classes = getattr(est, "classes_", None)
    if classes is None:
        raise _fail(path, "damaged model file: a classifier without attrs/classes_.")
    if classes.ndim != 1 or classes.shape[0] < 2 or np.unique(classes).shape[0] != classes.shape[0]:
        raise _fail(
            path,
            f"damaged model file: attrs/classes_ must list at least 2 distinct classes, got "
            f"{np.ravel(classes)[:10].tolist()}.",
        )
    n_outputs = getattr(est._params, "n_classes", None)
    if n_outputs is None and est._params.kind == "fm_multiclass":
        n_outputs = est._params.w0.shape[0]
    if est._params.kind == "fm_multiclass" and n_outputs != classes.shape[0]:
        raise _fail(
            path,
            f"damaged model file: the parameters model {n_outputs} classes, attrs/classes_ "
            f"lists {classes.shape[0]}.",
        )
    if (est._params.kind != "fm_multiclass" and getattr(est, "_multiclass", None) is not None
            and classes.shape[0] != 2):
        raise _fail(
            path,
            f"damaged model file: a binary {est._params.kind!r} model with "
            f"{classes.shape[0]} classes in attrs/classes_.",
        )
