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
import os
import zipfile
from pathlib import Path

import numpy as np

from fmlearn._atomic import atomic_write
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
    for k, v in estimator.get_params(deep=False).items():
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


def _read_metadata(zf: zipfile.ZipFile, path) -> dict:
    if METADATA not in zf.namelist():
        raise _fail(
            path,
            "not an fmlearn model file (no metadata.json in the archive).",
            "Was it written by fmlearn's model.save()?",
        )
    try:
        meta = json.loads(zf.read(METADATA).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, zipfile.BadZipFile, OSError) as e:
        raise _fail(
            path, f"damaged model file: metadata.json is unreadable ({e}).", "Save the model again."
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _fail(path, "not an fmlearn model file (metadata.json has another format).")
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise _fail(path, "damaged model file: no format_version in metadata.json.")
    if version > FORMAT_VERSION:
        raise _fail(
            path,
            f"written by fmlearn {meta.get('fmlearn_version', '?')} in model format "
            f"{version}; this fmlearn ({__version__}) reads formats up to {FORMAT_VERSION}.",
            "Upgrade fmlearn (pip install -U fmlearn) to load it.",
        )
    return meta


def _read_arrays(zf: zipfile.ZipFile, meta: dict, path) -> dict[str, np.ndarray]:
    out = {}
    specs = meta.get("arrays")
    if not isinstance(specs, dict):
        raise _fail(path, "damaged model file: metadata.json lists no arrays.")
    for key, spec in specs.items():
        try:
            with zf.open(key + ".npy") as f:
                arr = np.lib.format.read_array(f, allow_pickle=False)
        except KeyError:
            raise _fail(path, f"damaged model file: array {key!r} is missing.") from None
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise _fail(
                path,
                f"damaged model file: array {key!r} is unreadable ({e}).",
                "Save the model again.",
            ) from None
        if list(arr.shape) != spec.get("shape") or arr.dtype.str != spec.get("dtype"):
            raise _fail(
                path,
                f"damaged model file: array {key!r} has shape {arr.shape} and "
                f"dtype {arr.dtype.str}, metadata says {spec}.",
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
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise _fail(
            path,
            f"not an fmlearn model file, or truncated ({e}).",
            "fmlearn models are written by model.save(path).",
        ) from None
    with zf:
        meta = _read_metadata(zf, path)
        cls = _estimator_class(meta.get("class"))
        kind_name = meta.get("model_kind")
        kind = _PARAMS_KINDS.get(kind_name)
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
        own = cls().get_params(deep=False)
        for name in _RETIRED_PARAMS.intersection(hyper).difference(own):
            # Files of fmlearn <= 0.1 list them for every family; only None can be dropped.
            if hyper.pop(name) is not None:
                raise ValueError(f"{cls.__name__} has no parameter {name!r}")
        est = cls(**hyper)
        extra = {n: state.pop(n) for n in getattr(kind, "extra_state", ()) if n in state}
        est._params = kind.from_arrays(
            model_arrays,
            state=state.pop("table", None),
            **extra,
        )
    except (TypeError, ValueError, KeyError) as e:
        raise _fail(path, f"damaged model file: {e}.") from None
    est._solver_state = state or None
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
    return est
