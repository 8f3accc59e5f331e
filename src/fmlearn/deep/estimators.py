"""scikit-learn estimators over the deep models: ``<Model>Regressor`` and ``<Model>Classifier``.

Plumbing only, as :mod:`fmlearn.base` is for the numba models: parameters, validation, the
design matrix (CSR + the field of each column, :mod:`fmlearn.deep.data`), the batch source, and
:func:`fmlearn.engine.train` for the epochs (``history_``, callbacks, early stopping restoring
the best epoch, the progress bar). The math is in :mod:`fmlearn.deep.models`, the targets' in
:mod:`fmlearn.tasks`.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from fmlearn.base import (
    EARLY_STOPPING_AUTO_ROWS,
    _name_of,
    _rng_from,
    cache_initial_bias,
    cache_labels,
    cached_eval_source,
    check_known_labels,
    class_labels,
    init_from_signature,
)
from fmlearn.callbacks import ProgressBar
from fmlearn.data.cache import as_text_files
from fmlearn.data.fielded import carried_fields, encode_eval_set
from fmlearn.data.sources import Batch, BatchSource, InMemorySource
from fmlearn.deep import data as deep_data
from fmlearn.deep import optim as deep_optim
from fmlearn.deep import optstate
from fmlearn.deep.models import MODELS
from fmlearn.deep.params import DeepParams
from fmlearn.engine import History, stopping_rule, train, validate_over
from fmlearn.exceptions import TrainingDivergedError
from fmlearn.tasks import BinaryClassification, Multinomial, Regression

# Rows per forward pass at prediction.
PREDICT_BATCH = 8192

_COMMON_DOC = """
    Parameters
    ----------
    n_factors : int, default=10
        Embedding size ``k`` of every feature.{model_doc}
    batch_size : int, default=1024
        Rows per gradient step.
    optimizer : {{"adam", "adagrad", "sgd"}}, default="adam"
        The torch optimizer of every parameter (fused kernels where torch has them).
    learning_rate : float, default=1e-3
        Step size of the optimizer.
    embedding_optimizer : {{"adagrad", "adam", "sgd"}} or None, default=None
        Train the embedding tables (factors and linear weights) with this optimizer and the
        network (every other tensor) with ``optimizer``; None: ``optimizer`` trains all.
        ``"adagrad"`` with ``embedding_learning_rate=0.1``, ``l2_reg_V=0.05`` and
        ``l2_reg_w=0.01`` fits the embeddings as the numba FM's default solver does (see
        docs/deep.md, "Training the embeddings as the FM does").
    embedding_learning_rate : float or None, default=None
        Step size of ``embedding_optimizer``; None: ``learning_rate``.
    lr_decay : float, default=0.0
        The learning rate of epoch ``t`` (counted across ``partial_fit`` calls) is
        ``learning_rate / (1 + lr_decay * t)`` (``embedding_learning_rate`` likewise).
    l2_reg_w : float, default=0.0
        L2 penalty on the linear weights of the features in each row (per row, as the numba
        solvers apply it).
    l2_reg_V : float, default=0.0
        L2 penalty on the embeddings of the features in each row.
    l2_reg_net : float, default=0.0
        L2 penalty on the network's weight matrices (not biases), per gradient step.
    max_iter : int, default=10
        Epochs.
    early_stopping : "auto" or bool, default="auto"
        Monitor a validation set (``eval_set``, else ``validation_fraction`` of the rows) and
        restore the best epoch's parameters; "auto" is on above 10,000 training rows.
    validation_fraction : float, default=0.1
        Share of the rows held out for early stopping when there is no ``eval_set``.
    n_iter_no_change : int, default=2
        Patience of the stopping rule, in epochs.
    tol : float or None, default=1e-4
        Minimum improvement of the monitored metric; None runs all ``max_iter`` epochs unless
        early stopping.
    fields : array-like of int, shape (n_features,), default=None
        Field of each column: the columns of a field are pooled into one embedding of the
        ``[batch, n_fields, n_factors]`` tensor the model reads. None takes the fields that
        ``X`` carries (``FMEncoder`` output, e.g. in a ``Pipeline``), else gives each column
        its own field (up to 256 columns; wider data needs its fields).
    pooling : {{"sum", "mean"}}, default="sum"
        How the columns of one field (a multi-hot bag) are pooled; values weight them.
    init_from : fitted FMRegressor or FMClassifier, or path of its model file, default=None
        Start the embeddings, linear weights and bias from a numba FM of the same
        ``n_factors`` and columns (NFM and AFM pre-train so). A path survives ``clone``.
    random_state : int, RandomState, Generator or None, default=None
        Seeds initialization, shuffling, dropout and validation splits: a CPU fit with
        ``n_jobs=1`` is reproducible.
    n_jobs : int or None, default=None
        Torch threads during fit and predict; None means 1, -1 all cores.
    device : {{"auto", "cpu", "cuda"}}, default="auto"
        "auto" is CUDA when available.
    verbose : int, default=0
        1 shows a progress bar over epochs.
    warm_start : bool, default=False
        ``fit`` continues from the fitted model (and its optimizer state).

    Attributes
    ----------
    module_ : torch.nn.Module
        The fitted model (``fmlearn.deep.models``).
    fields_ : ndarray of int32, shape (n_features,)
    n_fields_ : int
    n_features_in_ : int
    n_iter_ : int
    best_iteration_ : int
        Epoch whose parameters were kept, when a validation set was monitored.
    history_ : dict of lists
        Per epoch: "epoch", "train_<metric>", "valid_<metric>" when validating, "time".
"""

_MODEL_PARAM_DOCS = {
    "hidden_layer_sizes": "hidden_layer_sizes : tuple of int, default={default}\n"
                          "        Units of the MLP's hidden layers.",
    "dropout": "dropout : float, default={default}\n        Dropout rate of the MLP "
               "(AFM: of the attention output).",
    "cin_layer_sizes": "cin_layer_sizes : tuple of int, default={default}\n"
                       "        Feature maps of the CIN's layers (half of each but the last "
                       "feed the next layer).",
    "cin_activation": "cin_activation : {{\"identity\", \"relu\"}}, default={default}\n"
                      "        Activation of the CIN's feature maps (the paper found the identity "
                      "best).",
    "n_attention_layers": "n_attention_layers : int, default={default}\n"
                          "        Stacked self-attention (interacting) layers.",
    "n_heads": "n_heads : int, default={default}\n        Attention heads.",
    "attention_size": "attention_size : int, default={default}\n"
                      "        Width of the attention (per head for self-attention).",
    "conv_channels": "conv_channels : int, default={default}\n"
                     "        Channels of the 3-D convolutions.",
}

_POSITIVE = [Interval(Integral, 1, None, closed="left")]
_MODEL_CONSTRAINTS = {
    "hidden_layer_sizes": ["array-like"],
    "cin_layer_sizes": ["array-like"],
    "cin_activation": [StrOptions({"identity", "relu"})],
    "dropout": [Interval(Real, 0, 1, closed="left")],
    "n_attention_layers": _POSITIVE,
    "n_heads": _POSITIVE,
    "attention_size": _POSITIVE,
    "conv_channels": _POSITIVE,
}

_COMMON = {
    "n_factors": 10, "batch_size": 1024, "optimizer": "adam", "learning_rate": 1e-3,
    "embedding_optimizer": None, "embedding_learning_rate": None, "lr_decay": 0.0,
    "l2_reg_w": 0.0, "l2_reg_V": 0.0, "l2_reg_net": 0.0, "max_iter": 10,
    "early_stopping": "auto", "validation_fraction": 0.1, "n_iter_no_change": 2, "tol": 1e-4,
    "fields": None, "pooling": "sum", "init_from": None, "random_state": None, "n_jobs": None,
    "device": "auto", "verbose": 0, "warm_start": False,
}


def _make_init(model_params: dict, common: dict = _COMMON):
    """An ``__init__`` storing the ``common`` parameters and the model's own (keyword-only)."""
    kw = inspect.Parameter.KEYWORD_ONLY
    names = list(common)
    ordered = names[:1] + list(model_params) + names[1:]
    defaults = {**common, **model_params}
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params.append(inspect.Parameter("n_factors", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    default=defaults["n_factors"]))
    params += [inspect.Parameter(n, kw, default=defaults[n]) for n in ordered[1:]]
    signature = inspect.Signature(params)
    return init_from_signature(signature)


@contextlib.contextmanager
def _torch_threads(n_jobs):
    """Torch's intra-op threads set to ``n_jobs`` (None: 1), restored after."""
    n = 1 if n_jobs is None else (os.cpu_count() or 1) if n_jobs < 0 else max(int(n_jobs), 1)
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device):
    """Torch's generators (CPU, and ``device``'s if CUDA) seeded with ``seed``, the caller's
    state restored after: the estimator's draws never touch the user's torch RNG.
    (Not ``torch.manual_seed``: it seeds every accelerator backend, at a cost per call.)"""
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        if cuda:
            torch.cuda.manual_seed(seed)
        yield


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch finds no CUDA device; use device='auto' or "
                         "'cpu', or install a CUDA build of torch.")
    return torch.device(name)


class _DeepEstimator(BaseEstimator):
    """Shared plumbing of the deep estimators (see the concrete classes for parameters)."""

    _model_class: type
    # Model-file containers io.load may build for this class (fmlearn.models.KINDS is numpy only).
    _file_kinds = {DeepParams.kind: DeepParams}
    _parameter_constraints: dict = {
        "n_factors": _POSITIVE,
        "batch_size": _POSITIVE,
        "optimizer": [StrOptions(set(deep_optim.OPTIMIZERS))],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "embedding_optimizer": [StrOptions(set(deep_optim.OPTIMIZERS)), None],
        "embedding_learning_rate": [Interval(Real, 0, None, closed="neither"), None],
        "lr_decay": [Interval(Real, 0, None, closed="left")],
        "l2_reg_w": [Interval(Real, 0, None, closed="left")],
        "l2_reg_V": [Interval(Real, 0, None, closed="left")],
        "l2_reg_net": [Interval(Real, 0, None, closed="left")],
        "max_iter": _POSITIVE,
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": _POSITIVE,
        "tol": [Interval(Real, 0, None, closed="left"), None],
        "fields": ["array-like", None],
        "pooling": [StrOptions({"sum", "mean"})],
        "init_from": [None, str, os.PathLike, HasMethods(["predict"])],
        "random_state": ["random_state", np.random.Generator],
        "n_jobs": [Integral, None],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }

    # ----------------------------------------------------------------- tags, fitted state
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.non_deterministic = self.device != "cpu" and torch.cuda.is_available()
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "module_")

    @property
    def fields_(self) -> np.ndarray:
        check_is_fitted(self)
        return self._fields.copy()

    @property
    def n_fields_(self) -> int:
        check_is_fitted(self)
        return int(self.module_.n_fields)

    def _config(self) -> dict:
        """The model's hyper-parameters as its module takes them."""
        config = {"n_factors": int(self.n_factors), "pooling": self.pooling,
                  "dropout": float(getattr(self, "dropout", 0.0))}
        for name in self._model_class.params:
            value = getattr(self, name)
            if name.endswith("_sizes"):
                value = tuple(int(v) for v in np.atleast_1d(np.asarray(value)))
                if any(v < 1 for v in value):
                    raise ValueError(f"{name} must hold positive layer sizes, got {value}")
            config[name] = value
        return config

    # ----------------------------------------------------------------- model file state
    @property
    def _params(self) -> DeepParams:
        """The fitted model as numpy arrays (what model files store)."""
        check_is_fitted(self)
        return DeepParams.from_module(self._model_class.name, self.module_, self._fields)

    @_params.setter
    def _params(self, params: DeepParams) -> None:
        # io.load: rebuild the module from the file's arrays and hyper-parameters.
        if params.model != self._model_class.name:
            raise ValueError(f"the file holds a {params.model!r} model, not "
                             f"{self._model_class.name!r}")
        for name in self._model_class.params:
            if name.endswith("_sizes"):  # saved as arrays: give back the tuple
                setattr(self, name, tuple(int(v) for v in np.atleast_1d(getattr(self, name))))
        module = self._model_class(params.n_features, params.n_fields, params.n_outputs,
                                   self._config())
        try:
            module.load_state_dict(params.state_dict(), strict=True)
        except RuntimeError as e:
            raise ValueError(f"the arrays do not fit the model's hyper-parameters ({e})") from None
        self.module_ = module
        self._fields = params.fields
        self._optimizer = None

    @property
    def _solver_state(self) -> dict | None:
        """The optimizer's state as arrays, saved in model files (:mod:`fmlearn.deep.optstate`):
        the live optimizer's, else the one a loaded file brought and no fit has used yet."""
        if getattr(self, "_optimizer", None) is not None:
            return optstate.to_arrays(self._optimizer, self._optimizer_name)
        loaded = getattr(self, "_loaded_optimizer", None)
        if loaded is None:
            return None
        return {optstate.NAME: np.array([loaded["name"]]),
                **{f"optim_{i}_{k}": v for i, e in loaded["state"].items() for k, v in e.items()}}

    @_solver_state.setter
    def _solver_state(self, arrays) -> None:
        # io.load, after _params: checked now, handed to the optimizer by the next fit.
        self._loaded_optimizer = (optstate.check_arrays(arrays, self.module_, deep_optim.names())
                                  if arrays else None)

    def _n_columns(self) -> int:
        return self.n_features_in_

    @classmethod
    def _file_defaults(cls) -> dict:
        """Hyper-parameters a model file means when it lacks them (written before they
        existed): read by :func:`fmlearn.io.load`."""
        return dict(cls._model_class.file_defaults)

    def _model_file_params(self) -> dict:
        """Hyper-parameters as model files store them: ``init_from`` has done its work (the
        model holds the weights) and is not saved."""
        return {**self.get_params(deep=False), "init_from": None}

    def save(self, path) -> None:
        """Save the fitted model to ``path`` (see :func:`fmlearn.save`)."""
        from fmlearn.io import save

        save(self, path)

    def to_onnx(self, path, *, opset: int = 17) -> None:
        """Export the fitted model to an ONNX graph at ``path`` (see ``docs/deep.md``).

        The graph reads ``ids`` (int64) and ``values`` (float32), both ``[N, L]``, as
        :func:`fmlearn.export.padded_inputs` makes them (padding: id 0, value 0), and gives
        ``prediction`` (float32 ``[N]``, regressors) or ``probabilities`` (float32
        ``[N, n_classes]``, classifiers).
        """
        from fmlearn.deep.onnx import export

        check_is_fitted(self)
        export(self, path, opset=opset)

    # ----------------------------------------------------------------- validation
    def _validate_X(self, X, *, reset: bool):
        return validate_data(self, X, reset=reset, accept_sparse=["csr", "csc", "coo"],
                             dtype=[np.float32, np.float64])

    def _resolved_fields(self, n_columns: int) -> np.ndarray:
        carried = getattr(self, "_input_fields", None)
        return deep_data.resolve_fields(self.fields, carried, n_columns, type(self).__name__)

    def _check_sample_weight(self, sample_weight, X) -> np.ndarray:
        sw = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        if not np.isfinite(sw).all():
            raise ValueError("sample_weight contains NaN or infinity; give finite weights.")
        if sw.sum() <= 0:
            raise ValueError("sample_weight sums to zero: at least one row needs weight > 0.")
        return sw

    def _eval_data(self, eval_set):
        if isinstance(eval_set, tuple):
            eval_set = [eval_set]
        if not (isinstance(eval_set, list) and len(eval_set) == 1
                and len(eval_set[0]) in (2, 3)):
            raise ValueError("eval_set must be a tuple (X_valid, y_valid[, sample_weight_valid]) "
                             "or a list holding one such tuple.")
        Xv, yv, *rest = eval_set[0]
        Xv, yv = validate_data(self, Xv, yv, reset=False, accept_sparse=["csr", "csc", "coo"],
                               dtype=[np.float32, np.float64],
                               y_numeric=isinstance(self._task, Regression))
        swv = self._check_sample_weight(rest[0] if rest else None, Xv)
        return deep_data.as_rows(Xv, self._fields), self._encode_y(yv, reset=False), swv

    # ----------------------------------------------------------------- training
    def _new_module(self, n_features, n_outputs, fields):
        n_fields = int(fields.max()) + 1 if fields.size else 1
        return self._model_class(n_features, n_fields, n_outputs, self._config())

    def _init_from_fm(self, module) -> None:
        """Copy a numba FM's factors, linear weights and bias into ``module``."""
        source = self.init_from
        if isinstance(source, (str, os.PathLike)):
            from fmlearn.io import load

            source = load(source)
        check_is_fitted(source)
        V, w = getattr(source, "V_", None), getattr(source, "w_", None)
        emb = module.embedding
        if V is None or V.ndim != 2 or getattr(source, "_params", None) is None \
                or source._params.kind not in ("fm", "fm_posterior"):
            raise ValueError(f"init_from takes a fitted FMRegressor or binary FMClassifier, got "
                             f"{type(source).__name__}")
        if V.shape != tuple(emb.V.shape):
            raise ValueError(
                f"init_from has factors of shape {V.shape} (n_features, n_factors); this model "
                f"needs {tuple(emb.V.shape)}: fit both on the same columns with the same "
                "n_factors (FFM models cannot start from an FM).")
        with torch.no_grad():
            emb.V.copy_(torch.as_tensor(np.asarray(V, dtype=np.float32)))
            if module.n_outputs == 1:
                emb.w[:, 0].copy_(torch.as_tensor(np.asarray(w, dtype=np.float32)))
                module.bias.fill_(float(source.w0_))

    def _start(self, n_columns, fields, n_outputs, initial_bias):
        """A fresh module (``initial_bias()``: the task's bias of the training targets, asked
        only when ``init_from`` does not give one), optimizer and history."""
        self._fields = fields
        with _seeded(int(self._rng.integers(2**62)), torch.device("cpu")):
            module = self._new_module(n_columns, n_outputs, fields)
        if self.init_from is not None:
            self._init_from_fm(module)
        else:
            with torch.no_grad():
                module.bias.copy_(torch.as_tensor(
                    np.atleast_1d(initial_bias()), dtype=torch.float32))
        self.module_ = module
        self._optimizer = None
        self._loaded_optimizer = None
        self.history_ = {}
        self._epochs_done = 0
        self._open_epoch = None  # partial_fit(end_epoch=False) sums of an earlier model

    def _ensure_optimizer(self, reset: bool) -> None:
        """The optimizer of the module (on its device): kept across ``partial_fit`` calls."""
        name = deep_optim.name_of(self.optimizer, self.embedding_optimizer)
        if self._optimizer is None or getattr(self, "_optimizer_name", None) != name:
            # A new fit, a loaded model, or another optimizer for warm_start: fresh state.
            self._optimizer = deep_optim.make(self.module_, self.optimizer, self.learning_rate,
                                              self.embedding_optimizer,
                                              self.embedding_learning_rate)
            self._optimizer_name = name
            if not reset:  # a loaded model continues with the optimizer state of its file
                optstate.restore(self._optimizer, name,
                                 getattr(self, "_loaded_optimizer", None))
            self._loaded_optimizer = None
        # Set on every fit: warm_start or partial_fit may come with other step sizes.
        deep_optim.set_base_rates(self._optimizer, self.learning_rate,
                                  self.embedding_learning_rate)

    def _fit(self, X, y, sample_weight, eval_set, callbacks, *, reset, max_iter, classes=None,
             end_epoch=True):
        files = as_text_files(X)
        if files is not None:
            return self._fit_files(files, y, sample_weight, eval_set, callbacks, reset=reset,
                                   max_iter=max_iter, classes=classes, end_epoch=end_epoch)
        self._input_fields = carried_fields(X)
        eval_set = encode_eval_set(X, eval_set)
        X, y = validate_data(self, X, y, reset=reset, accept_sparse=["csr", "csc", "coo"],
                             dtype=[np.float32, np.float64],
                             y_numeric=isinstance(self._task, Regression))
        y = self._encode_y(y, reset=reset, classes=classes)
        sw = self._check_sample_weight(sample_weight, X)
        device = _device(self.device)
        if reset:
            self._rng = _rng_from(self.random_state)
            fields = self._resolved_fields(X.shape[1])
        else:
            fields = self._fields
            if self.fields is not None or self._input_fields is not None:
                new = self._resolved_fields(X.shape[1])
                if not np.array_equal(new, fields):
                    raise ValueError("fields changed since the model was fitted; set "
                                     "warm_start=False to refit.")
        rows = deep_data.as_rows(X, fields)
        task = self._task
        stopping = (self.early_stopping if self.early_stopping != "auto"
                    else max_iter > 1 and X.shape[0] > EARLY_STOPPING_AUTO_ROWS)
        valid = None
        if eval_set is not None:
            if reset:
                self._fields = fields  # the eval rows are read with them
            valid = self._eval_data(eval_set)
        elif stopping:
            idx = np.arange(rows.n_rows)
            try:
                tr, va = train_test_split(
                    idx, test_size=self.validation_fraction,
                    random_state=int(self._rng.integers(np.iinfo(np.int32).max)),
                    stratify=y if task.stratify else None)
            except ValueError as e:
                raise ValueError(
                    f"cannot hold out validation_fraction={self.validation_fraction} of "
                    f"{rows.n_rows} rows for early stopping ({e}); pass eval_set, use a larger "
                    "validation_fraction or set early_stopping=False.") from None
            valid = (rows.take(va), y[va], sw[va])
            rows, y, sw = rows.take(tr), y[tr], sw[tr]
        if reset:
            self._start(rows.n_columns, fields, self._n_outputs(),
                        lambda: self._task.initial_bias(y, sw))
        source = InMemorySource(rows, y, sw)
        return self._fit_source(source, valid, max_iter, callbacks, stopping, device,
                                reset=reset, end_epoch=end_epoch)

    def _fit_files(self, files, y, sample_weight, eval_set, callbacks, *, reset, max_iter,
                   classes, end_epoch):
        """``fit(path)``: train from text files (or ``TableFiles``, a ``DiskCache``) through
        their block cache (:mod:`fmlearn.data.cache`), one block at a time through
        :func:`fmlearn.deep.data.as_rows`; ``eval_set`` may be a file too. The fields come
        from ``fields=``, else from the cache (FFM files, FMEncoder chunks)."""
        from fmlearn.data.cache import CachedSource, open_cache, set_malloc_thresholds

        if y is not None or sample_weight is not None:
            raise ValueError("fit(path) reads the labels from the file: pass no y or "
                             "sample_weight (the text formats carry no weights).")
        if eval_set is not None and as_text_files(eval_set) is None:
            raise ValueError("with fit(path), eval_set must be a path (or TextFiles) too.")
        device = _device(self.device)
        cache = open_cache(files)
        # glibc's upper dynamic mmap threshold (32 MiB, trim at twice that) rather than the
        # cache's 1 MiB: torch's per-step buffers (the embedding table's dense gradients) come
        # from the heap again, while the large arrays of a block are still mapped and freed.
        set_malloc_thresholds(32 << 20, 64 << 20)
        self._fit_rows = cache.n_rows
        n_columns = cache.n_features
        carried = cache.fields()
        # A feature that never occurs in an FFM file has field -1: any field will do.
        self._input_fields = None if carried is None else np.maximum(carried, 0)
        if reset:
            self.n_features_in_ = n_columns
            self.__dict__.pop("feature_names_in_", None)
            self._rng = _rng_from(self.random_state)
            fields = self._resolved_fields(n_columns)
        else:
            check_is_fitted(self)
            if n_columns > self.n_features_in_:
                raise ValueError(
                    f"{_name_of(files)} has feature index {n_columns - 1}; the model was "
                    f"fitted with {self.n_features_in_} features. Refit (warm_start=False), or "
                    "give the first fit all the columns.")
            fields = self._fields
            if self.fields is not None:
                changed = not np.array_equal(self._resolved_fields(self.n_features_in_), fields)
            elif carried is not None:  # the fields of the features this file has
                seen = carried >= 0
                changed = not np.array_equal(carried[seen], fields[:n_columns][seen])
            else:
                changed = False
            if changed:
                raise ValueError("fields changed since the model was fitted; set "
                                 "warm_start=False to refit.")
        n_columns = self.n_features_in_
        cache_labels(cache, self._encode_y, reset=reset, classes=classes)
        stopping = (self.early_stopping if self.early_stopping != "auto"
                    else max_iter > 1 and cache.n_rows > EARLY_STOPPING_AUTO_ROWS)
        if stopping and eval_set is None:
            if self.early_stopping != "auto":
                raise ValueError("early_stopping=True with fit(path) needs a validation file: "
                                 "pass eval_set=path (the rows of a file are not split).")
            stopping = False

        def transform(X, yb, wb):
            return Batch(deep_data.as_rows(X, fields), self._encode_y(yb, reset=False), wb)

        source = CachedSource(cache, transform, n_features=n_columns)
        valid = cached_eval_source(eval_set, files, transform, n_columns)
        if reset:
            self._start(n_columns, fields, self._n_outputs(),
                        lambda: cache_initial_bias(cache, self._task, self._encode_y))
        return self._fit_source(source, valid, max_iter, callbacks, stopping, device,
                                reset=reset, end_epoch=end_epoch)

    def _fit_source(self, source, valid, max_iter, callbacks, stopping, device, *, reset,
                    end_epoch=True):
        """Train the module on a :class:`~fmlearn.data.sources.BatchSource` (rows in memory
        or a file's block cache), scoring ``valid`` (``(rows, y, sample_weight)`` or a
        source) after each epoch."""
        if self.module_.n_outputs != self._n_outputs():
            raise ValueError("the number of classes changed since the model was fitted")
        self.module_.to(device)
        self._ensure_optimizer(reset)
        with _torch_threads(self.n_jobs):
            return self._train(source, valid, max_iter, callbacks, stopping, device,
                               end_epoch=end_epoch)

    def _train(self, source, valid, max_iter, callbacks, stopping, device, *, end_epoch=True):
        """Epochs over ``source`` by :func:`fmlearn.engine.train`.

        ``end_epoch=False`` (``partial_fit`` of a chunk that is part of an epoch): one pass
        over the chunk, its loss added to the open epoch's, no epoch recorded; the next call
        with ``end_epoch=True`` closes the epoch with the training metric of all its chunks
        (as :meth:`fmlearn.base.BaseFM._fit_source`)."""
        task, module, opt = self._task, self.module_, self._optimizer

        def one_pass() -> float:
            deep_optim.set_lr_scale(opt, 1.0 / (1.0 + self.lr_decay * self._epochs_done_now))
            seed = int(self._rng.integers(2**62))
            module.train()
            loss_sum = 0.0
            with _seeded(seed, device):
                for batch in source.batches(self._rng):
                    loss_sum += self._batch_epoch(batch, opt, device)
            return loss_sum

        self._epochs_done_now = self._epochs_done
        opened = getattr(self, "_open_epoch", None) or [0.0, 0.0]
        if not end_epoch:
            loss_sum = one_pass()
            finite = all(bool(torch.isfinite(p).all()) for p in module.parameters())
            if not (np.isfinite(loss_sum) and finite):
                raise self._diverged(self._epochs_done + 1)
            self._open_epoch = [opened[0] + float(loss_sum),
                                opened[1] + float(source.weight_sum)]
            return self
        self._open_epoch = None

        def epoch():
            nonlocal opened
            loss_sum = one_pass() + opened[0]
            total, opened = source.weight_sum + opened[1], [0.0, 0.0]
            self._epochs_done_now += 1
            return task.metric_from_loss_sum(loss_sum, total)

        validate = self._validation_fn(valid)
        history = History(self.history_, task.metric, self._metric_name,
                          epochs_done=self._epochs_done, validating=validate is not None)
        stoppers = stopping_rule(max_iter, early_stopping=stopping, tol=self.tol,
                                 n_iter_no_change=self.n_iter_no_change,
                                 validating=validate is not None,
                                 mode="max" if task.higher_is_better else "min")
        bar = ProgressBar(max_iter, type(self).__name__, task.metric) if self.verbose else None

        def snapshot():
            return {k: v.detach().clone() for k, v in module.state_dict().items()}

        try:
            result = train(epoch, max_iter=max_iter, metric=self._metric_name, validate=validate,
                           stoppers=stoppers, callbacks=callbacks, progress=bar,
                           history=history, snapshot=snapshot, diverged=self._diverged,
                           estimator=self)
        finally:
            self._epochs_done = history.epochs_done
        self.n_iter_ = result.n_iter
        if result.best_snapshot is not None:
            module.load_state_dict(result.best_snapshot)
        if result.best_epoch is not None:
            self.best_iteration_ = result.best_epoch
        return self

    @property
    def _metric_name(self) -> str:
        """The validation metric (history, callbacks): the task's, a ranker's ``eval_metric``."""
        return self._task.metric

    def _validation_fn(self, valid):
        """``validate()`` for :func:`fmlearn.engine.train` over ``valid``: ``(rows, y,
        weights)``, or a :class:`~fmlearn.data.sources.BatchSource` read a block at a time."""
        if valid is None:
            return None
        if isinstance(valid, BatchSource):
            return validate_over(valid, self._output, self._task)
        Xv, yv, swv = valid

        def validate():
            output = self._output(Xv)
            return self._task.score(yv, output, swv), output

        return validate

    def _penalty(self, objective, ids, n_rows):
        """``objective`` plus the L2 penalties of a mini-batch of ``n_rows`` rows whose
        features are ``ids``."""
        emb = self.module_.embedding
        if self.l2_reg_V:
            objective = objective + self.l2_reg_V * emb.V[ids].pow(2).sum() / n_rows
        if self.l2_reg_w:
            objective = objective + self.l2_reg_w * emb.w[ids].pow(2).sum() / n_rows
        if self.l2_reg_net:
            objective = objective + self.l2_reg_net * sum(
                p.pow(2).sum() for p in self.module_.network_weights())
        return objective

    def _batch_epoch(self, batch, opt, device) -> float:
        """One pass over a source batch in shuffled mini-batches; the sum of weighted losses
        (each mini-batch scored before its step)."""
        rows, y_all, sw_all = batch
        order = self._rng.permutation(rows.n_rows)
        module, total = self.module_, 0.0
        weighted_rows = not (sw_all == 1).all()  # unit weights: skip the multiply (exact)
        for start in range(0, order.shape[0], self.batch_size):
            sel = order[start:start + self.batch_size]
            bags = rows.batch(sel, module.n_fields).to(device)
            y = torch.as_tensor(y_all[sel], device=device)
            out = module(bags)
            losses = self._row_losses(out, y)
            if weighted_rows:
                losses = losses * torch.as_tensor(sw_all[sel], device=device)
            total += self._step(opt, losses.sum(), bags.ids, sel.shape[0])
        return total

    def _step(self, opt, weighted, ids, n_rows: int) -> float:
        """One optimizer step on a mini-batch's summed weighted loss ``weighted`` (its rows'
        feature ids ``ids`` for the L2 penalty); returns that sum as a float."""
        objective = self._penalty(weighted / n_rows, ids, n_rows)
        opt.zero_grad(set_to_none=True)
        objective.backward()
        opt.step()
        return float(weighted.detach())

    def _diverged(self, epoch) -> Exception:
        """The error for a fit that diverged at ``epoch``; never leaves a broken model behind
        (as :meth:`fmlearn.base.BaseFM._diverged`)."""
        if hasattr(self, "module_"):
            del self.module_
        self._optimizer = None
        settings = f"optimizer={self.optimizer!r}, learning_rate={self.learning_rate:g}"
        if self.embedding_optimizer is not None:
            emb_lr = self.embedding_learning_rate or self.learning_rate
            settings += (f", embedding_optimizer={self.embedding_optimizer!r}, "
                         f"embedding_learning_rate={emb_lr:g}")
        return TrainingDivergedError(
            f"training diverged at epoch {epoch}: the {self._task.metric} became NaN or "
            f"infinite with {settings}. "
            "Use a smaller learning_rate, more regularization (l2_reg_V, l2_reg_net) or scale "
            "large feature values.")

    # ----------------------------------------------------------------- prediction
    def _scores(self, rows) -> np.ndarray:
        """Raw model outputs ``[n, n_outputs]`` (float64) of prepared rows."""
        module = self.module_
        device = next(module.parameters()).device
        module.eval()
        out = []
        with torch.no_grad(), _torch_threads(self.n_jobs):
            for start in range(0, rows.n_rows, PREDICT_BATCH):
                sel = np.arange(start, min(start + PREDICT_BATCH, rows.n_rows))
                out.append(module(rows.batch(sel, module.n_fields).to(device)).cpu().numpy())
        scores = (np.concatenate(out) if out
                  else np.zeros((0, module.n_outputs), dtype=np.float32)).astype(np.float64)
        if not np.isfinite(scores).all():
            r = int(np.flatnonzero(~np.isfinite(scores).all(axis=1))[0])
            raise ValueError(f"the model output of row {r} overflowed: its feature values are "
                             "too large; rescale them (e.g. log1p or MaxAbsScaler), as for "
                             "training.")
        return scores

    def _rows_of(self, X):
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return deep_data.as_rows(X, self._fields)

    def fit(self, X, y=None, sample_weight=None, eval_set=None, callbacks=None):
        """Train the model on ``X`` and ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix, FieldedCSR} of shape (n_samples, n_features), path, \
list of paths, TextFiles, TableFiles or DiskCache
            Never densified; an ``FMEncoder``'s output brings its fields. A path (or a list of
            them, ``fmlearn.data.cache.TextFiles``/``TableFiles`` for the options, or a
            ``DiskCache`` of ``cache_chunks``) trains out of core from libFM/libsvm or FFM
            text, CSV or Parquet: the first pass writes a binary block cache, and every epoch
            reads it one block at a time, blocks reshuffled (see ``docs/out-of-core.md``).
            The fields then come from ``fields=``, else from the FFM file or the encoder.
        y : array-like of shape (n_samples,)
            Required unless ``X`` names files (their labels are used).
        sample_weight : array-like of shape (n_samples,), default=None
        eval_set : tuple (X_valid, y_valid[, sample_weight_valid]) or path, default=None
            Scored after every epoch (``history_``); what early stopping monitors. A path
            (or ``TextFiles``) when ``X`` names files.
        callbacks : list of callable, default=None
            Called after every epoch with a :class:`fmlearn.callbacks.EpochEnv`; returning
            True stops training.

        Returns
        -------
        self
        """
        self._validate_params()
        reset = not (self.warm_start and self.__sklearn_is_fitted__())
        return self._fit(X, y, sample_weight, eval_set, callbacks, reset=reset,
                         max_iter=self.max_iter)


class _Regressor(RegressorMixin, _DeepEstimator):
    _task = Regression()

    def _n_outputs(self) -> int:
        return 1

    def _encode_y(self, y, *, reset, classes=None):
        return np.ascontiguousarray(y, dtype=np.float64)

    @staticmethod
    def _row_losses(out, y):
        return (out[:, 0] - y.to(out.dtype)).pow(2)

    def _output(self, rows):
        return self._scores(rows)[:, 0]

    def partial_fit(self, X, y, sample_weight=None, eval_set=None, callbacks=None, *,
                    end_epoch=True):
        """One epoch over ``X`` and ``y``, continuing from the current model if fitted.

        ``X`` may name files (``y=None``), as for :meth:`fit`. With ``end_epoch=False`` the
        rows are one chunk of an epoch (streaming): trained on, but no epoch is recorded
        until a call with ``end_epoch=True`` (the default) closes it, its training metric
        covering every chunk since the last epoch (see ``docs/out-of-core.md``)."""
        first = not self.__sklearn_is_fitted__()
        if first:
            self._validate_params()
        return self._fit(X, y, sample_weight, eval_set, callbacks, reset=first, max_iter=1,
                         end_epoch=end_epoch)

    def predict(self, X) -> np.ndarray:
        """Predicted targets, shape (n_samples,)."""
        return self._output(self._rows_of(X))


class _Classifier(ClassifierMixin, _DeepEstimator):
    @property
    def _task(self):
        n = len(getattr(self, "classes_", ()))
        return Multinomial(n) if n > 2 else _BINARY

    def _n_outputs(self) -> int:
        n = len(self.classes_)
        return n if n > 2 else 1

    def _encode_y(self, y, *, reset, classes=None):
        if reset:
            self.classes_ = class_labels(type(self).__name__, y, classes)
        check_known_labels(y, self.classes_)
        if len(self.classes_) > 2:
            return np.searchsorted(self.classes_, y).astype(np.float64)
        return np.where(y == self.classes_[1], 1.0, -1.0)

    def _row_losses(self, out, y):
        if out.shape[1] > 1:
            return torch.nn.functional.cross_entropy(out, y.long(), reduction="none")
        return torch.nn.functional.softplus(-y.to(out.dtype) * out[:, 0])

    def _output(self, rows):
        """Positive-class probability (binary) or class probabilities (multi-class)."""
        s = self._scores(rows)
        if s.shape[1] == 1:
            return 1.0 / (1.0 + np.exp(-s[:, 0]))
        s = np.exp(s - s.max(axis=1, keepdims=True))
        return s / s.sum(axis=1, keepdims=True)

    def partial_fit(self, X, y, classes=None, sample_weight=None, eval_set=None,
                    callbacks=None, *, end_epoch=True):
        """One epoch over ``X`` and ``y``; ``classes`` (every label) is needed on the first
        call when ``y`` may not show them all. ``end_epoch=False``: one chunk of an epoch,
        as for the regressors' ``partial_fit``."""
        first = not self.__sklearn_is_fitted__()
        if first:
            self._validate_params()
        return self._fit(X, y, sample_weight, eval_set, callbacks, reset=first, max_iter=1,
                         classes=classes, end_epoch=end_epoch)

    def decision_function(self, X) -> np.ndarray:
        """Logits: shape (n_samples,) for two classes (of ``classes_[1]``), else
        (n_samples, n_classes)."""
        s = self._scores(self._rows_of(X))
        return s[:, 0] if s.shape[1] == 1 else s

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        p = self._output(self._rows_of(X))
        return np.column_stack([1.0 - p, p]) if p.ndim == 1 else p

    def predict(self, X) -> np.ndarray:
        """Predicted class labels, shape (n_samples,)."""
        s = self.decision_function(X)
        return self.classes_[(s > 0).astype(np.intp) if s.ndim == 1 else np.argmax(s, axis=1)]


_BINARY = BinaryClassification()

# (estimator name stem, model class, what it is, where it comes from)
_FAMILIES = (
    ("TorchFM", MODELS["fm"], "Factorization machine (Rendle 2010) in torch"),
    ("TorchFFM", MODELS["ffm"], "Field-aware factorization machine (Juan et al. 2016) in torch"),
    ("TorchFwFM", MODELS["fwfm"], "Field-weighted factorization machine (Pan et al. 2018) in "
                                  "torch"),
    ("DeepFM", MODELS["deepfm"], "DeepFM (Guo et al. 2017): an FM and an MLP in parallel"),
    ("NFM", MODELS["nfm"], "Neural FM (He and Chua 2017): bi-interaction pooling under an MLP"),
    ("AFM", MODELS["afm"], "Attentional FM (Xiao et al. 2017): attention over the pairwise "
                           "interactions"),
    ("XDeepFM", MODELS["xdeepfm"], "xDeepFM (Lian et al. 2018): CIN and an MLP"),
    ("AutoInt", MODELS["autoint"], "AutoInt (Song et al. 2019): multi-head self-attention over "
                                   "the fields"),
    ("AutoIntPlus", MODELS["autointplus"], "AutoInt+ (Song et al. 2019): self-attention and an "
                                           "MLP"),
    ("IFM", MODELS["ifm"], "Input-aware FM (Yu et al. 2019)"),
    ("DIFM", MODELS["difm"], "Dual input-aware FM (Lu et al. 2020)"),
    ("CFM", MODELS["cfm"], "Convolutional FM (Xin et al. 2019): outer-product cube and 3-D "
                           "convolutions"),
)


def _model_doc(params: dict) -> str:
    lines = [_MODEL_PARAM_DOCS[n].format(default=repr(v)) for n, v in params.items()]
    return "".join("\n    " + line for line in lines)


def _family(stem: str, model_class, title: str):
    constraints = {**_DeepEstimator._parameter_constraints,
                   **{n: _MODEL_CONSTRAINTS[n] for n in model_class.params}}
    doc = _COMMON_DOC.format(model_doc=_model_doc(model_class.params))
    out = []
    for suffix, base, task in (("Regressor", _Regressor, "regression (squared loss)"),
                               ("Classifier", _Classifier,
                                "classification, binary (logistic loss) or multi-class "
                                "(softmax)")):
        name = stem + suffix
        cls = type(name, (base,), {
            "__module__": __name__, "__qualname__": name,
            "__doc__": f"{title}, for {task}.\n\n    Reads any sparse or dense ``X`` (or "
                       f"``FMEncoder`` output) through field embeddings; see docs/deep.md.\n"
                       + doc,
            "_model_class": model_class,
            "_parameter_constraints": constraints,
            "__init__": _make_init(dict(model_class.params)),
        })
        out.append(cls)
    return out


ESTIMATORS: dict[str, type] = {}
for _stem, _model, _title in _FAMILIES:
    for _cls in _family(_stem, _model, _title):
        ESTIMATORS[_cls.__name__] = _cls
globals().update(ESTIMATORS)

__all__ = sorted(ESTIMATORS)
