"""What every tool of ``benchmarks/deep.py`` shares: the data, the settings, the training loop.

Every tool module (``deep_fmlearn``, ``deep_deepctr``, ``deep_fuxictr``, ``deep_torchfm``)
exposes::

    NAME: str                                 # tool name shown in the tables
    MODELS: dict[str, str]                    # model key -> the tool's class it runs
    describe(spec) -> str                     # one paragraph: version, classes, deviations
    run(model, data, spec, seed) -> dict      # one fit + test scoring, see ``result``

The peers (PyTorch libraries without an sklearn-style fit with early stopping on our terms)
implement ``Trainer`` and go through :func:`train_with_early_stopping`, so all peers stop by the
same rule: validation log loss after every epoch, patience ``spec.patience``, best epoch
restored. fmlearn uses its own ``early_stopping`` with the same patience on the same rows.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

# The architecture every tool builds, unless the tool has no such knob (then its
# ``describe`` says so). Models without an MLP ignore ``hidden``.
MODEL_KEYS = ("fm", "ffm", "fwfm", "deepfm", "xdeepfm", "autoint", "autoint+", "nfm", "afm",
              "ifm", "difm", "cfm", "fm-numba")


@dataclass
class Spec:
    """The shared settings of one run (the same for every tool)."""

    n_factors: int = 10
    hidden: tuple[int, ...] = (400, 400)
    dropout: float = 0.0
    batch_size: int = 1024
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    max_epochs: int = 30
    patience: int = 2
    tol: float = 1e-4  # absolute, on the validation log loss
    threads: int = 2
    cin: tuple[int, ...] = (64, 64)  # xDeepFM's CIN feature maps per layer (split-half)
    att_layers: int = 2  # AutoInt: self-attention layers
    att_heads: int = 2  # AutoInt / DIFM heads; attention width = n_factors
    afm_att: int = 16  # AFM attention network width
    predict_batch: int = 8192
    predict_repeats: int = 3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Spec:
        d = dict(d)
        for key in ("hidden", "cin"):
            d[key] = tuple(d[key])
        return cls(**d)


@dataclass
class DeepData:
    """One data set as per-field category ids (every field single-valued).

    ``X_*`` are ``(n, n_fields)`` int64 arrays of local ids (``0 <= x[:, f] < cards[f]``);
    the global id of field ``f``, category ``c`` is ``offsets[f] + c``. Labels are 0/1.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    cards: np.ndarray
    field_names: list[str] = field(default_factory=list)

    @property
    def n_fields(self) -> int:
        return int(self.cards.size)

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.cards)[:-1]]).astype(np.int64)

    def save(self, path) -> None:
        np.savez(path, X_train=self.X_train, y_train=self.y_train, X_valid=self.X_valid,
                 y_valid=self.y_valid, X_test=self.X_test, y_test=self.y_test, cards=self.cards,
                 field_names=np.array(self.field_names), name=np.array(self.name))

    @classmethod
    def load(cls, path) -> DeepData:
        z = np.load(path)
        return cls(str(z["name"]), z["X_train"], z["y_train"], z["X_valid"], z["y_valid"],
                   z["X_test"], z["y_test"], z["cards"], [str(s) for s in z["field_names"]])

    def csr(self, part: str):
        """``(csr_matrix, fields)``: the one-hot design matrix of ``part``, each column's field."""
        import scipy.sparse as sp

        X = getattr(self, f"X_{part}")
        n, f = X.shape
        cols = (X + self.offsets).ravel()
        M = sp.csr_matrix((np.ones(n * f, np.float32), cols, np.arange(0, n * f + 1, f)),
                          shape=(n, int(self.cards.sum())))
        fields = np.repeat(np.arange(f, dtype=np.int32), self.cards)
        return M, fields


# ------------------------------------------------------------------------------ metrics
def logloss(y01, p) -> float:
    p = np.clip(np.asarray(p, dtype=np.float64).ravel(), 1e-7, 1 - 1e-7)
    y01 = np.asarray(y01, dtype=np.float64).ravel()
    return float(-np.mean(y01 * np.log(p) + (1 - y01) * np.log1p(-p)))


def auc(y01, p) -> float:
    from sklearn.metrics import roc_auc_score

    y01 = np.asarray(y01).ravel()
    if np.unique(y01).size < 2:
        return float("nan")
    return float(roc_auc_score(y01, np.asarray(p, dtype=np.float64).ravel()))


def auc_se(a: float, y01) -> float:
    """Standard error of an AUC ``a`` on labels ``y01`` (Hanley and McNeil 1982)."""
    y01 = np.asarray(y01).ravel()
    n1, n0 = int(np.sum(y01 == 1)), int(np.sum(y01 == 0))
    if not (n1 and n0) or not np.isfinite(a):
        return float("nan")
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return float(np.sqrt(max(0.0, a * (1 - a) + (n1 - 1) * (q1 - a * a)
                             + (n0 - 1) * (q2 - a * a)) / (n1 * n0)))


def logloss_se(y01, p) -> float:
    """Standard error of the mean log loss over the rows."""
    p = np.clip(np.asarray(p, dtype=np.float64).ravel(), 1e-7, 1 - 1e-7)
    y01 = np.asarray(y01, dtype=np.float64).ravel()
    rows = -(y01 * np.log(p) + (1 - y01) * np.log1p(-p))
    return float(rows.std(ddof=1) / np.sqrt(rows.size)) if rows.size > 1 else float("nan")


def result(*, epoch_s: list[float], train_s: list[float] | None, best_epoch: int, n_epochs: int,
           proba: np.ndarray, y_test: np.ndarray, predict_s: list[float], note: str = "") -> dict:
    """The dict ``run`` returns (JSON-ready)."""
    return {
        "epoch_s": [float(t) for t in epoch_s],  # per epoch: training pass + validation scoring
        "train_s": [float(t) for t in train_s] if train_s is not None else None,
        "best_epoch": int(best_epoch),
        "n_epochs": int(n_epochs),
        "auc": auc(y_test, proba),
        "logloss": logloss(y_test, proba),
        "auc_se": auc_se(auc(y_test, proba), y_test),
        "logloss_se": logloss_se(y_test, proba),
        "predict_rows_per_s": float(len(y_test) / np.median(predict_s)),
        "note": note,
    }


def set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


# ------------------------------------------------------------------------------ peers' loop
class Trainer:
    """What a peer implements; :func:`train_with_early_stopping` drives it."""

    def train_epoch(self) -> None:  # one shuffled pass over the training rows
        raise NotImplementedError

    def predict(self, part: str) -> np.ndarray:  # probabilities of "valid" or "test"
        raise NotImplementedError

    def state(self):  # a copy of the parameters
        return {k: v.detach().clone() for k, v in self.module().state_dict().items()}

    def restore(self, state) -> None:
        self.module().load_state_dict(state)

    def module(self):
        raise NotImplementedError


def train_with_early_stopping(tr: Trainer, data: DeepData, spec: Spec, note: str = "") -> dict:
    """Epochs until the validation log loss has not improved by ``spec.tol`` for
    ``spec.patience`` epochs (or ``spec.max_epochs``), the best epoch restored; then the test
    scores and throughput."""
    best, best_epoch, best_state, waited = np.inf, 0, None, 0
    epoch_s, train_s = [], []
    n = 0
    for n in range(1, spec.max_epochs + 1):
        t0 = time.perf_counter()
        tr.train_epoch()
        t1 = time.perf_counter()
        loss = logloss(data.y_valid, tr.predict("valid"))
        t2 = time.perf_counter()
        train_s.append(t1 - t0)
        epoch_s.append(t2 - t0)
        if not np.isfinite(loss):
            break
        # fmlearn's rule (callbacks.EarlyStopping, scikit-learn's): only a gain larger than
        # tol resets the patience count; any new minimum is the epoch restored at the end.
        waited = waited + 1 if loss > best - spec.tol else 0
        if loss < best:
            best, best_epoch, best_state = loss, n, tr.state()
        if waited >= spec.patience:
            break
    if best_state is not None:
        tr.restore(best_state)
    proba, predict_s = timed_predict(lambda: tr.predict("test"), spec.predict_repeats)
    return result(epoch_s=epoch_s, train_s=train_s, best_epoch=best_epoch, n_epochs=n,
                  proba=proba, y_test=data.y_test, predict_s=predict_s, note=note)


def timed_predict(fn, repeats: int):
    """(last output, seconds of each of ``repeats`` calls)."""
    times, out = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return np.asarray(out, dtype=np.float64).ravel(), times
