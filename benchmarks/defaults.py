"""Defaults that generalize: every model family with no tuning, on several real data sets.

For each data set and model family this fits

- ``old``: the defaults before this study (v0.1: ``l2_reg_*=1e-4``, ``init_stdev=0.1``, no
  early stopping; FFM libffm's ``learning_rate=0.2, l2=2e-5``; the ranker ``lr=0.05, l2=1e-5``);
- ``default``: the estimator as constructed with no hyper-parameter (today's defaults);
- ``cand:<name>``: candidate defaults (``--candidates``), the same values (or rule: ``S<c>``
  adds ``c / n_rows`` to the per-row L2) on every data set;
- ``tuned``: a small grid, chosen on a validation split of the training data (never on test):
  10% of the training rows (positives for the ranker, 20% as benchmarks/ranking.py) for the
  large sets, 25% of each training fold for the small ones; the grid's fits stop early on that
  validation set (ALS: all sweeps), and the chosen setting is refitted on the whole training
  part (``early_stopping=True``, ALS without) and scored on test;
- a linear baseline: scikit-learn ``Ridge()`` (regression) or ``LogisticRegression()``
  (classification, ``C=1``), on the same features; the item popularity for the ranker.

Data (``${FMLEARN_DATA:-/work/shared/data}``; see its README):

- MovieLens 100K u1 (user + item one-hot; train u1.base, test u1.test): RMSE of FMRegressor
  (AdaGrad, SGD, ALS); implicit (ratings >= 4) for FMRanker, precision@10 over all items,
  training positives excluded.
- Frappe: the NFM split's train file is not available, so train on frappe.validation.libfm
  (57,722 rows), test on frappe.test.libfm (28,860): AUC of FMClassifier, FFMClassifier,
  FwFMClassifier (fields: the 10 one-hot ranges of frappe/README.txt).
- Criteo sample: xLearn's small_train / small_test FFM files (200 + 200 rows, 18 fields).
- Avazu sample: DeepCTR's 100 raw rows; every column but ``id``/``click`` one-hot (one field
  each, fitted on the training fold); stratified 5-fold CV.
- scikit-learn's bundled breast cancer (569 rows, 30 numeric columns) and digits binarized as
  ``digit >= 5`` (1,797 rows, 64 pixels / 16): standardized on the training fold, one field
  per column; stratified 5-fold CV. diabetes (442 rows, regression, standardized X and y in
  original units): 5-fold CV.

Cross-validated sets report the mean over folds; on the fixed splits the default and old rows
are the median over ``--seeds``, candidates and tuned use the first seed.
Run (2 cores, one thread per fit; about 10-20 minutes, 30 with six candidates on a loaded
machine)::

    python benchmarks/defaults.py                      # writes docs/benchmarks.md "defaults"
    python benchmarks/defaults.py --candidates B D F es S10 S100   # the published run
    python benchmarks/defaults.py --no-write --sets movielens --families fm-als
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _report import machine_line, write_section  # noqa: E402

SETS = ("movielens", "frappe", "criteo", "avazu", "breast_cancer", "digits", "diabetes")
FAMILIES = ("fm-adagrad", "fm-sgd", "fm-als", "fm", "ffm", "fwfm", "ranker")
N_FOLDS = 5
K_FM, K_FFM, K_RANK = 8, 4, 16

# The defaults before this study (v0.1), per family: no L2 floor for the stochastic solvers,
# FwFM's field-pair weights unpenalized.
_V01 = dict(learning_rate=0.1, l2_reg_w=1e-4, l2_reg_V=1e-4, init_stdev=0.1,
            early_stopping=False)
_V01_SGD = dict(_V01, l2_min_count=0.0)
OLD = {
    "fm-adagrad": _V01_SGD, "fm-sgd": _V01_SGD, "fm-als": _V01, "fm": _V01_SGD,
    "fwfm": _V01_SGD,
    "ffm": dict(_V01_SGD, learning_rate=0.2, l2_reg_w=2e-5, l2_reg_V=2e-5),
    "ranker": dict(_V01, learning_rate=0.05, l2_reg_w=1e-5, l2_reg_V=1e-5),
}
# Candidate defaults: the same values for every family and data set (learning rates stay
# the family's default unless given).
CANDIDATES = {
    "A": dict(init_stdev=0.01, l2_reg_w=1e-4, l2_reg_V=1e-4),
    "B": dict(init_stdev=0.01, l2_reg_w=1e-3, l2_reg_V=1e-3),
    "D": dict(init_stdev=0.01, l2_reg_w=1e-2, l2_reg_V=1e-2),
    "F": dict(init_stdev=0.01, l2_reg_w=1e-2, l2_reg_V=5e-2),
    "G": dict(init_stdev=0.01, l2_reg_w=5e-2, l2_reg_V=5e-2),
    "F+es": dict(init_stdev=0.01, l2_reg_w=1e-2, l2_reg_V=5e-2, early_stopping=True),
    # Today's defaults with early stopping on at any size (scikit-learn's threshold off).
    "es": dict(early_stopping=True),
    # A prior on the total loss, as MCMC's and logistic regression's are: S<c> adds c / n_rows
    # to the family's default per-row L2 (w and V) of the stochastic solvers (ALS, whose
    # penalty is on the mean loss already, keeps its own). Small data gets more.
    "S10": ("rows", 10.0),
    "S100": ("rows", 100.0),
    # The defaults before the per-feature L2 floor: L2 per occurrence only (l2_min_count=0).
    "P": ("previous",),
}
# The tuning grid, per solver kind: learning rates x L2 (w and V alike), init_stdev 0.01.
GRID_L2 = (1e-4, 1e-3, 1e-2, 5e-2)
GRID_LR = {"adagrad": (0.05, 0.1, 0.2), "sgd": (0.005, 0.01, 0.03), "als": (None,),
           "ranker": (0.05, 0.1)}
GRID_L2_ALS = (3e-5, 1e-4, 3e-4, 1e-3)
# Tuned fits' patience: SGD with a small learning rate sits on a plateau for several epochs.
PATIENCE = 20


# Repeated cross-validation of the tiny classification sets (--cv): their single split's test
# AUC has a standard error of about 0.05, so settings are compared by the paired difference to
# logistic regression over many splits. Criteo: the 400 rows of small_train + small_test
# pooled, CV_REPEATS x 2 folds (train 200, test 200, as the original split); Avazu:
# CV_REPEATS // 2 x 5 stratified folds of its 100 rows (20 and 25 splits).
CV_REPEATS = 10
# Settings compared there (name -> estimator parameters): "default" is the estimator as
# constructed (l2_min_count "auto": 100 here); "P" the defaults before the floor
# (CANDIDATES["P"]); the others vary the per-feature L2 floor (l2_min_count;
# "rows" = the training rows: every feature the same penalty per epoch) or turn early
# stopping on. FwFM's own (("fwfm", params): FwFM only; ("fwfm-prior", params, c): also
# ``l2_reg_r = c / n_rows``, its prior towards r = 1 with a total of c per epoch): its
# AdaGrad L2 on V before this round (FFM's 1e-2), a weaker one (2e-2) alone and with the prior.
CV_SETTINGS = {
    "default": {},
    "P": ("previous",),
    "m=0": {"l2_min_count": 0.0},
    "m=20": {"l2_min_count": 20.0},
    "m=50": {"l2_min_count": 50.0},
    "m=200": {"l2_min_count": 200.0},
    "m=rows": {"l2_min_count": "rows"},
    "es": {"early_stopping": True},
    "FwFM V=1e-2": ("fwfm", {"l2_reg_V": 1e-2}),
    "FwFM V=2e-2": ("fwfm", {"l2_reg_V": 2e-2}),
    "FwFM V=2e-2, r=10/n": ("fwfm-prior", {"l2_reg_V": 2e-2}, 10.0),
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- data
@dataclass
class Split:
    X_tr: object
    y_tr: np.ndarray
    X_te: object
    y_te: np.ndarray
    fields: np.ndarray | None = None


@dataclass
class DataSet:
    name: str
    task: str  # "reg", "clf" or "rank"
    splits: list  # of Split (one fixed split, or the CV folds)
    large: bool  # > 10,000 training rows: tuned on a 10% validation split
    note: str = ""


def _folds(X, y, task, make_fields, seed=0):
    from sklearn.model_selection import KFold, StratifiedKFold

    cv = (StratifiedKFold if task == "clf" else KFold)(N_FOLDS, shuffle=True, random_state=seed)
    out = []
    for tr, te in cv.split(X, y):
        out.append(make_fields(X, y, tr, te))
    return out


def load_movielens(data: Path) -> DataSet:
    from fmlearn.data.movielens import load_movielens100k

    X, y, Xt, yt = load_movielens100k(data / "ml-100k", "u1")
    return DataSet("MovieLens 100K u1", "reg", [Split(X, y, Xt, yt)], True,
                   "user + item one-hot (943 + 1,682 columns); train u1.base, test u1.test")


def load_movielens_implicit(data: Path) -> DataSet:
    def positives(path):
        t = np.loadtxt(path, dtype=np.int64, delimiter="\t", ndmin=2)
        t = t[t[:, 2] >= 4]
        m = sp.csr_matrix((np.ones(len(t), np.float32), (t[:, 0] - 1, t[:, 1] - 1)),
                          shape=(943, 1682))
        m.sum_duplicates()
        return m

    root = data / "ml-100k"
    base, test = positives(root / "u1.base"), positives(root / "u1.test")
    return DataSet("MovieLens 100K u1, implicit", "rank", [Split(base, None, test, None)], True,
                   "ratings >= 4 are positives; ranked over all 1,682 items, training "
                   "positives excluded")


def load_frappe(data: Path) -> DataSet:
    from fmlearn.data.textio import read_libfm

    cards = (957, 4082, 7, 7, 2, 3, 2, 9, 80, 233)  # frappe/README.txt, in index order
    edges = np.cumsum((0,) + cards)
    fields = (np.searchsorted(edges, np.arange(edges[-1]), side="right") - 1).astype(np.int32)
    src = data / "frappe"
    if (src / "frappe.train.libfm").exists():
        X, y = read_libfm(src / "frappe.train.libfm", n_features=int(edges[-1]))
        Xt, yt = read_libfm(src / "frappe.test.libfm", n_features=int(edges[-1]))
        note = "train frappe.train.libfm, test frappe.test.libfm"
    else:
        X, y = read_libfm(src / "frappe.validation.libfm", n_features=int(edges[-1]))
        Xt, yt = read_libfm(src / "frappe.test.libfm", n_features=int(edges[-1]))
        note = ("the NFM train file is not available: train frappe.validation.libfm (57,722 "
                "rows), test frappe.test.libfm (28,860); not comparable with published numbers")
    return DataSet("Frappe", "clf", [Split(X, (y > 0).astype(int), Xt, (yt > 0).astype(int),
                                           fields)], True, note)


def load_criteo(data: Path) -> DataSet:
    from fmlearn.data.textio import read_ffm

    src = data / "criteo-samples"
    parts = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for part in ("train", "test"):
            parts[part] = read_ffm(src / f"xlearn_small_{part}.ffm", on_field_conflict="first")
    n = max(parts["train"][0].shape[1], parts["test"][0].shape[1])
    fields = np.zeros(n, dtype=np.int32)
    for part in ("test", "train"):  # a feature's field from the train file wins
        f = parts[part][2]
        fields[: f.shape[0]][f >= 0] = f[f >= 0]
    X, Xt = (sp.csr_matrix(parts[p][0], copy=True) for p in ("train", "test"))
    X.resize(X.shape[0], n)
    Xt.resize(Xt.shape[0], n)
    y, yt = ((parts[p][1] > 0).astype(int) for p in ("train", "test"))
    return DataSet("Criteo sample", "clf", [Split(X, y, Xt, yt, fields)], False,
                   "xLearn small_train (200 rows, 48 positive) / small_test (200, 46): AUC "
                   "standard error about 0.04, differences of a few hundredths are noise")


def load_avazu(data: Path) -> DataSet:
    import pandas as pd
    from sklearn.preprocessing import OneHotEncoder

    df = pd.read_csv(data / "avazu-samples" / "deepctr_avazu_sample.csv", dtype=str)
    y = df.pop("click").astype(int).to_numpy()
    X = df.drop(columns=["id"]).to_numpy()

    def make(X, y, tr, te):
        enc = OneHotEncoder(handle_unknown="ignore", dtype=np.float32).fit(X[tr])
        fields = np.repeat(np.arange(X.shape[1]), [len(c) for c in enc.categories_])
        return Split(enc.transform(X[tr]).tocsr(), y[tr], enc.transform(X[te]).tocsr(), y[te],
                     fields.astype(np.int32))

    return DataSet("Avazu sample", "clf", _folds(X, y, "clf", make), False,
                   "100 raw rows (20 clicks), 22 columns one-hot; stratified 5-fold CV, "
                   "about 4 positives per test fold: very noisy")


def _dense(name, X, y, task, note):
    from sklearn.preprocessing import StandardScaler

    def make(X, y, tr, te):
        sc = StandardScaler().fit(X[tr])
        return Split(sc.transform(X[tr]), y[tr], sc.transform(X[te]), y[te],
                     np.arange(X.shape[1], dtype=np.int32))

    return DataSet(name, task, _folds(X, y, task, make), False, note)


def load_breast_cancer(data: Path) -> DataSet:
    from sklearn.datasets import load_breast_cancer as load

    X, y = load(return_X_y=True)
    return _dense("breast cancer (sklearn)", X, y, "clf",
                  "569 rows, 30 numeric columns standardized; stratified 5-fold CV")


def load_digits(data: Path) -> DataSet:
    from sklearn.datasets import load_digits as load

    X, y = load(return_X_y=True)
    return _dense("digits >= 5 (sklearn)", X / 16.0, (y >= 5).astype(int), "clf",
                  "1,797 rows, 64 pixels standardized, label digit >= 5; stratified 5-fold CV")


def load_diabetes(data: Path) -> DataSet:
    from sklearn.datasets import load_diabetes as load

    X, y = load(return_X_y=True)
    return _dense("diabetes (sklearn)", X, y, "reg",
                  "442 rows, 10 numeric columns standardized, target in original units; "
                  "5-fold CV")


LOADERS = {"movielens": (load_movielens, load_movielens_implicit), "frappe": (load_frappe,),
           "criteo": (load_criteo,), "avazu": (load_avazu,),
           "breast_cancer": (load_breast_cancer,), "digits": (load_digits,),
           "diabetes": (load_diabetes,)}


def cv_splits(name: str, data: Path) -> tuple[str, list]:
    """(data set name, the 20 splits) of a tiny set for :func:`run_cv`."""
    from sklearn.model_selection import StratifiedKFold

    if name == "criteo":
        ds = load_criteo(data)
        s = ds.splits[0]
        X = sp.vstack([s.X_tr, s.X_te]).tocsr()
        y = np.concatenate([s.y_tr, s.y_te])
        out = []
        for rep in range(CV_REPEATS):
            cv = StratifiedKFold(2, shuffle=True, random_state=rep)
            out += [Split(X[tr], y[tr], X[te], y[te], s.fields) for tr, te in cv.split(X, y)]
        return ds.name, out
    if name == "breast_cancer":
        from sklearn.datasets import load_breast_cancer as load
        from sklearn.preprocessing import StandardScaler

        X, y = load(return_X_y=True)
        fields = np.arange(X.shape[1], dtype=np.int32)
        out = []
        for rep in range(CV_REPEATS):
            for tr, te in StratifiedKFold(N_FOLDS, shuffle=True, random_state=rep).split(X, y):
                sc = StandardScaler().fit(X[tr])
                out.append(Split(sc.transform(X[tr]), y[tr], sc.transform(X[te]), y[te], fields))
        return "breast cancer (sklearn)", out
    ds = load_avazu(data)
    import pandas as pd
    from sklearn.preprocessing import OneHotEncoder

    df = pd.read_csv(data / "avazu-samples" / "deepctr_avazu_sample.csv", dtype=str)
    y = df.pop("click").astype(int).to_numpy()
    X = df.drop(columns=["id"]).to_numpy()
    out = []
    for rep in range(CV_REPEATS // 2):
        for tr, te in StratifiedKFold(N_FOLDS, shuffle=True, random_state=rep).split(X, y):
            enc = OneHotEncoder(handle_unknown="ignore", dtype=np.float32).fit(X[tr])
            fields = np.repeat(np.arange(X.shape[1]), [len(c) for c in enc.categories_])
            out.append(Split(enc.transform(X[tr]).tocsr(), y[tr], enc.transform(X[te]).tocsr(),
                             y[te], fields.astype(np.int32)))
    return ds.name, out


def _rows_floor(params, split: Split, family: str) -> dict | None:
    """The estimator parameters of a CV setting on ``split``; None: not for ``family``."""
    if isinstance(params, tuple) and params[0] in ("fwfm", "fwfm-prior"):
        if family != "fwfm":
            return None
        if params[0] == "fwfm":
            return params[1]
        return dict(params[1], l2_reg_r=params[2] / split.X_tr.shape[0])
    if isinstance(params, tuple):
        return _as_of(family, "P", params, split)
    if params.get("l2_min_count") == "rows":
        return dict(params, l2_min_count=float(split.X_tr.shape[0]))
    return params


def run_cv(name: str, data: Path, settings: dict) -> tuple[str, int, dict]:
    """Per family and setting: (mean AUC, mean paired AUC - logistic regression's, its
    standard error over the splits); and logistic regression's mean AUC under "linear"."""
    title, splits = cv_splits(name, data)
    ds = DataSet(title, "clf", splits, False)
    lin = np.array([linear(ds, s) for s in splits])
    out = {"linear": (float(lin.mean()), 0.0, 0.0)}
    for fam in families_for("clf"):
        for sname, params in settings.items():
            t0 = time.perf_counter()
            if _rows_floor(params, splits[0], fam) is None:
                continue
            auc = np.array([fit_score(ds, fam, _rows_floor(params, s, fam), s, 0)[0]
                            for s in splits])
            d = auc - lin
            out[(fam, sname)] = (float(auc.mean()), float(d.mean()),
                                 float(d.std(ddof=1) / np.sqrt(d.size)))
            log(f"  cv {title} {fam} {sname}: {auc.mean():.4f}, vs LR {d.mean():+.4f} +- "
                f"{out[(fam, sname)][2]:.4f} ({time.perf_counter() - t0:.1f} s)")
    return title, len(splits), out


def render_cv(results: list, settings: dict, args, elapsed: float) -> str:
    lines = [
        "## Defaults on the tiny samples: repeated cross-validation",
        "",
        f"Command: `python benchmarks/defaults.py {' '.join(args.argv)}` ({elapsed / 60:.0f} "
        f"min). Machine: {machine_line()} (shared with other jobs; one thread per fit).",
        "",
        "Each cell: mean test AUC over the splits, then the mean paired difference to "
        "scikit-learn's `LogisticRegression()` on the same split ± its standard error (the "
        "splits overlap, so the true uncertainty is somewhat larger). Criteo: the 400 rows of "
        f"xLearn's small_train + small_test pooled, {CV_REPEATS} x 2 stratified folds (200 "
        f"train / 200 test); Avazu: {CV_REPEATS // 2} x {N_FOLDS} stratified folds of its 100 "
        "rows (one-hot fitted on each training fold); breast cancer (scikit-learn's, 569 rows, "
        f"30 dense columns standardized on each training fold): {CV_REPEATS} x {N_FOLDS} "
        "stratified folds, the defaults and P only (the floor and FwFM's variants change "
        "nothing on dense rows). One seed per fit.",
        "",
        "| data set (splits) | family | LR | " + " | ".join(settings) + " |",
        "| --- | --- | --- |" + " --- |" * len(settings),
    ]
    for title, n, res in results:
        for fam in families_for("clf"):
            cells = [f"{res[(fam, s)][0]:.4f} ({res[(fam, s)][1]:+.4f} ± {res[(fam, s)][2]:.4f})"
                     if (fam, s) in res else "-" for s in settings]
            lines.append(f"| {title} ({n}) | {LABEL[fam]} | {res['linear'][0]:.4f} | "
                         + " | ".join(cells) + " |")
    lines += ["", "Settings: " + "; ".join(
        f"{k}: {_setting(v) or 'the defaults'}" for k, v in settings.items())]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- models
def families_for(task: str) -> tuple[str, ...]:
    return {"reg": ("fm-adagrad", "fm-sgd", "fm-als"), "clf": ("fm", "ffm", "fwfm"),
            "rank": ("ranker",)}[task]


def make_model(family: str, params: dict, split: Split, seed: int):
    import fmlearn

    kw = dict(params, random_state=seed, n_jobs=1)
    k_fm = kw.pop("n_factors", K_FM)
    if family.startswith("fm-"):
        return fmlearn.FMRegressor(n_factors=K_FM, solver=family[3:], **kw)
    if family == "fm":
        return fmlearn.FMClassifier(n_factors=k_fm, **kw)
    if family == "ffm":
        return fmlearn.FFMClassifier(n_factors=K_FFM, fields=split.fields, **kw)
    if family == "fwfm":
        return fmlearn.FwFMClassifier(n_factors=K_FM, fields=split.fields, **kw)
    if family == "ranker":
        return fmlearn.FMRanker(n_factors=K_RANK, **kw)
    raise ValueError(family)


def score(task: str, model, X, y, train=None) -> float:
    from fmlearn.metrics import auc as roc_auc
    from fmlearn.metrics import precision_at_k

    if task == "reg":
        return float(np.sqrt(np.mean((model.predict(X) - y) ** 2)))
    if task == "clf":
        return float(roc_auc(y, model.predict_proba(X)[:, 1]))
    top, _ = model.recommend(k=10, exclude=train)
    return float(precision_at_k(X, top_k=top, k=10))


def fit_score(ds: DataSet, family: str, params: dict, split: Split, seed: int,
              eval_set=None) -> tuple[float, int]:
    """(test score, epochs); a fit that diverges scores NaN (shown as "diverged")."""
    from fmlearn.exceptions import TrainingDivergedError

    m = make_model(family, params, split, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if ds.task == "rank":
                m.fit(None, None, split.X_tr, eval_set=eval_set)
            else:
                m.fit(split.X_tr, split.y_tr, eval_set=eval_set)
        except TrainingDivergedError:
            return float("nan"), 0
    return score(ds.task, m, split.X_te, split.y_te, split.X_tr), int(m.n_iter_)


def grid(family: str) -> list[dict]:
    solver = family[3:] if family.startswith("fm-") else family
    solver = solver if solver in GRID_LR else "adagrad"
    if solver == "als":
        return [dict(l2_reg_w=r, l2_reg_V=r, init_stdev=0.01) for r in GRID_L2_ALS]
    return [dict(learning_rate=lr, l2_reg_w=r, l2_reg_V=r, init_stdev=0.01)
            for lr in GRID_LR[solver] for r in GRID_L2]


def _hold_out(ds: DataSet, split: Split, seed: int) -> tuple[Split, object]:
    """(the training part without the validation rows, the validation set for eval_set)."""
    rng = np.random.default_rng(seed)
    if ds.task == "rank":
        m = split.X_tr.tocoo()
        perm = rng.permutation(m.nnz)
        n_val = int(round(0.2 * m.nnz))
        val, fit = perm[:n_val], perm[n_val:]
        pick = lambda idx: sp.csr_matrix((m.data[idx], (m.row[idx], m.col[idx])),  # noqa: E731
                                         shape=m.shape)
        return Split(pick(fit), None, split.X_te, None), pick(val)
    n = split.y_tr.shape[0]
    if ds.task == "clf":
        from sklearn.model_selection import train_test_split

        fit, val = train_test_split(np.arange(n), test_size=0.1 if ds.large else 0.25,
                                    random_state=seed, stratify=split.y_tr)
    else:
        perm = rng.permutation(n)
        n_val = int(round((0.1 if ds.large else 0.25) * n))
        val, fit = perm[:n_val], perm[n_val:]
    Xf, Xv = split.X_tr[fit], split.X_tr[val]
    return (Split(Xf, split.y_tr[fit], split.X_te, split.y_te, split.fields),
            (Xv, split.y_tr[val]))


def tuned(ds: DataSet, family: str, split: Split, seed: int) -> tuple[float, dict]:
    """The grid setting with the best validation score, refitted on the whole training part
    (SGD-type: early stopping on its own 10% hold-out; ALS: every row, no stopping), and its
    test score."""
    fit_part, valid = _hold_out(ds, split, seed)
    als = family == "fm-als"
    best = None
    for params in grid(family):
        # ALS is chosen on the validation score after all its sweeps (no stopping).
        p = dict(params, early_stopping=not als, max_iter=200, n_iter_no_change=PATIENCE)
        m = make_model(family, p, fit_part, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                if ds.task == "rank":
                    m.fit(None, None, fit_part.X_tr, eval_set=valid)
                    v = m.history_[f"valid_{m.eval_metric}"][m.best_iteration_ - 1]
                else:
                    m.fit(fit_part.X_tr, fit_part.y_tr, eval_set=valid)
                    v = score(ds.task, m, *valid)
            except Exception:  # a diverged setting is just not chosen
                continue
        better = v < best[0] if (best and ds.task == "reg") else (best is None or v > best[0])
        if best is None or better:
            best = (v, params, m)
    if best is None:  # every setting diverged
        return float("nan"), {}
    chosen = dict(best[1], early_stopping=not als, max_iter=200, n_iter_no_change=PATIENCE)
    return fit_score(ds, family, chosen, split, seed)[0], best[1]


def linear(ds: DataSet, split: Split) -> float:
    from sklearn.linear_model import LogisticRegression, Ridge

    from fmlearn.metrics import auc as roc_auc
    from fmlearn.metrics import precision_at_k

    if ds.task == "reg":
        pred = Ridge().fit(split.X_tr, split.y_tr).predict(split.X_te)
        return float(np.sqrt(np.mean((pred - split.y_te) ** 2)))
    if ds.task == "clf":
        lr = LogisticRegression(max_iter=2000).fit(split.X_tr, split.y_tr)
        return float(roc_auc(split.y_te, lr.predict_proba(split.X_te)[:, 1]))
    # Ranking: item popularity, training positives excluded.
    pop = np.asarray(split.X_tr.sum(axis=0)).ravel()
    S = np.tile(pop, (split.X_tr.shape[0], 1)).astype(float)
    tr = split.X_tr
    S[np.repeat(np.arange(tr.shape[0]), np.diff(tr.indptr)), tr.indices] = -np.inf
    top = np.argsort(-S, axis=1, kind="stable")[:, :10]
    return float(precision_at_k(split.X_te, top_k=top, k=10))


# ---------------------------------------------------------------------------------- study
def _as_of(family: str, name: str, params, split: Split) -> dict:
    """The setting ``params`` of ``name`` for ``family`` on ``split``: v0.1's ALS penalized
    the total loss (its 1e-4 is 1e-4 / n_rows on today's scale); a rows-scaled candidate
    (``("rows", c)``) adds ``c / n_rows`` to the family's default L2."""
    n = split.X_tr.shape[0]
    if family == "fm-als" and name == "old":
        return dict(params, l2_reg_w=params["l2_reg_w"] / n, l2_reg_V=params["l2_reg_V"] / n)
    if isinstance(params, tuple) and params[0] == "previous":
        if family in ("fm-als", "ranker"):
            return {}
        return {"l2_min_count": 0.0}
    if isinstance(params, tuple) and params[0] == "rows":
        if family in ("fm-als", "ranker"):
            return {}
        from fmlearn.optim import get_solver, hyper

        est = make_model(family, {}, split, 0)
        solver = get_solver(est.solver)
        return {name: hyper(est, name, solver) + params[1] / n
                for name in ("l2_reg_w", "l2_reg_V")}
    return params


def run_set(ds: DataSet, families, seeds, candidates, do_tuned) -> dict:
    out = {"linear": float(np.mean([linear(ds, s) for s in ds.splits]))}
    for fam in families:
        res = {}
        settings = {"old": OLD[fam], "default": {}}
        settings.update({f"cand:{c}": CANDIDATES[c] for c in candidates})
        for name, params in settings.items():
            vals, iters = [], []
            t0 = time.perf_counter()
            # Seeds for the fixed splits' default and old rows; one seed elsewhere.
            many = len(ds.splits) == 1 and name in ("old", "default")
            for seed in (seeds if many else seeds[:1]):
                per = [fit_score(ds, fam, _as_of(fam, name, params, s), s, seed)
                       for s in ds.splits]
                vals.append(np.mean([p[0] for p in per]))
                iters += [p[1] for p in per]
            res[name] = (float(np.median(vals)), int(np.median(iters)))
            log(f"  {ds.name} {fam} {name}: {res[name][0]:.4f} ({res[name][1]} epochs, "
                f"{time.perf_counter() - t0:.1f} s)")
        if do_tuned:
            t0 = time.perf_counter()
            per = [tuned(ds, fam, s, seeds[0]) for s in ds.splits]
            res["tuned"] = (float(np.mean([p[0] for p in per])), per[0][1])
            log(f"  {ds.name} {fam} tuned: {res['tuned'][0]:.4f} {per[0][1]} "
                f"({time.perf_counter() - t0:.1f} s)")
        out[fam] = res
    return out


METRIC = {"reg": "RMSE (lower is better)", "clf": "AUC", "rank": "precision@10"}
LABEL = {"fm-adagrad": "FM AdaGrad", "fm-sgd": "FM SGD", "fm-als": "FM ALS", "fm": "FM",
         "ffm": "FFM", "fwfm": "FwFM", "ranker": "FMRanker WARP"}


def _num(x: float) -> str:
    return "diverged" if np.isnan(x) else f"{x:.4f}"


def _setting(p) -> str:
    if isinstance(p, tuple) and p[0] == "fwfm":
        return "FwFM only: " + _setting(p[1])
    if isinstance(p, tuple) and p[0] == "fwfm-prior":
        return f"FwFM only: {_setting(p[1])}, l2_reg_r={p[2]:g} / n_rows (towards r = 1)"
    if isinstance(p, tuple) and p[0] == "previous":
        return ("the defaults before the per-feature L2 floor: `l2_min_count=0` (L2 per "
                "occurrence only; ALS and the ranker: their defaults)")
    if isinstance(p, tuple) and p[0] == "rows":
        return (f"the default L2 + {p[1]:g} / n_rows on w and V (SGD-type solvers; ALS and the "
                "ranker keep their defaults)")
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in p.items())


def targets(results: list) -> list[str]:
    """Issue #11's "done when" lines, marked from the numbers of this run."""
    out = ["Targets (#11), from this run:", ""]
    for ds, res in results:
        if ds.name == "MovieLens 100K u1":
            got = {f: res[f]["default"][0] for f in ("fm-adagrad", "fm-sgd", "fm-als") if f in res}
            ok = all(v <= 0.93 for v in got.values())
            out.append("- MovieLens 100K u1, default RMSE <= 0.93: "
                       + ", ".join(f"{LABEL[f]} {v:.4f}" for f, v in got.items())
                       + f": **{'met' if ok else 'not met'}**")
    clf = [(ds, res) for ds, res in results if ds.task == "clf"]
    for ds, res in clf:
        lin = res["linear"]
        got = {f: res[f]["default"][0] for f in families_for("clf") if f in res}
        short = [f"{LABEL[f]} {v - lin:+.4f}" for f, v in got.items() if v < lin]
        out.append(f"- {ds.name}, default AUC >= logistic regression's ({lin:.4f}): "
                   + ("**met**" if not short else f"**not met** ({', '.join(short)})"))
    return out


def render(results: list, args, elapsed: float) -> str:
    from fmlearn.base import BaseFM  # noqa: F401  (the defaults below are the estimators')

    lines = [
        "## Defaults: no tuning, several real data sets",
        "",
        f"Command: `python benchmarks/defaults.py{' ' + ' '.join(args.argv) if args.argv else ''}`"
        f" ({elapsed / 60:.0f} min). Machine: {machine_line()} (shared with other jobs; one "
        "thread per fit).",
        "",
        "**default** is the estimator with no hyper-parameter given (k = 8; FFM k = 4; the "
        "ranker k = 16); **old** the v0.1 defaults (`l2_reg_*=1e-4`, `init_stdev=0.1`, no "
        "early stopping; FFM `learning_rate=0.2`, `l2=2e-5`; ranker `l2=1e-5`); **tuned** the "
        "best of a small grid (learning rate x L2, `init_stdev=0.01`) on a validation split of "
        f"the training data (early stopping on it with patience {PATIENCE}, ALS all sweeps), "
        "refitted on the whole training part (`early_stopping=True`; ALS without); "
        "**linear** scikit-learn `Ridge()` / `LogisticRegression()` on the same features "
        "(the ranker: item "
        f"popularity). Cross-validated sets: mean over {N_FOLDS} folds; fixed splits: default "
        f"and old are the median over seeds {', '.join(map(str, args.seeds))}, candidates and "
        "tuned seed 0.",
        "",
        "| data set | metric | default (each model family) | old defaults | tuned | "
        "linear / logistic regression |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for ds, res in results:
        fams = [f for f in families_for(ds.task) if f in res]

        def cell(key, fams=fams, res=res):
            return "; ".join(f"{LABEL[f]} {_num(res[f][key][0])}" for f in fams if key in res[f])

        lines.append(f"| {ds.name} | {METRIC[ds.task]} | {cell('default')} | {cell('old')} | "
                     f"{cell('tuned')} | {res['linear']:.4f} |")
    lines += ["", *targets(results)]
    cands = sorted({k for _, r in results for f, v in r.items() if f != "linear" for k in v
                    if k.startswith("cand:")})
    if cands:
        lines += ["", "Candidates tried (the same values on every set):", ""]
        lines += [f"- {c[5:]}: {_setting(CANDIDATES[c[5:]])}" for c in cands]
        lines += ["", "| data set | family | " + " | ".join(c[5:] for c in cands) + " |",
                  "| --- | --- |" + " --- |" * len(cands)]
        for ds, res in results:
            for f in families_for(ds.task):
                if f in res:
                    lines.append(f"| {ds.name} | {LABEL[f]} | " + " | ".join(
                        _num(res[f][c][0]) for c in cands if c in res[f]) + " |")
    lines += ["", "Tuned settings chosen (first split):", ""]
    for ds, res in results:
        for f in families_for(ds.task):
            if f in res and "tuned" in res[f]:
                lines.append(f"- {ds.name}, {LABEL[f]}: {_setting(res[f]['tuned'][1])}")
    lines += ["", "Data:", ""] + [f"- {ds.name}: {ds.note}" for ds, _ in results]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.environ.get("FMLEARN_DATA", "/work/shared/data"))
    p.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    p.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--candidates", nargs="*", choices=sorted(CANDIDATES), default=[])
    p.add_argument("--no-tuned", action="store_true")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--old-only", action="store_true",
                   help="only the v0.1 column ('old'), printed (no section written)")
    p.add_argument("--default-only", action="store_true",
                   help="only the default column, printed (no section written)")
    p.add_argument("--cv", action="store_true",
                   help="only the repeated cross-validation of the Criteo and Avazu samples "
                        "and of breast cancer (section defaults_cv)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    data = Path(args.data)
    start = time.perf_counter()
    if args.old_only or args.default_only:
        what = "old" if args.old_only else "default"
        for name in args.sets:
            for loader in LOADERS[name]:
                ds = loader(data)
                for fam in [f for f in families_for(ds.task) if f in args.families]:
                    many = len(ds.splits) == 1
                    params = OLD[fam] if what == "old" else {}
                    vals = [np.mean([fit_score(ds, fam, _as_of(fam, what, params, sp_), sp_,
                                               seed)[0] for sp_ in ds.splits])
                            for seed in (args.seeds if many else args.seeds[:1])]
                    print(f"{what} | {ds.name} | {LABEL[fam]} | {_num(float(np.median(vals)))}",
                          flush=True)
        return 0
    if args.cv:
        # Breast cancer is dense: the floor and FwFM's variants change nothing there.
        dense = {k: CV_SETTINGS[k] for k in ("default", "P")}
        results = [run_cv(name, data, CV_SETTINGS) for name in ("criteo", "avazu")]
        results.append(run_cv("breast_cancer", data, dense))
        text = render_cv(results, CV_SETTINGS, args, time.perf_counter() - start)
        print(text)
        if not args.no_write:
            write_section("defaults_cv", text)
        return 0
    results = []
    for name in args.sets:
        for loader in LOADERS[name]:
            ds = loader(data)
            fams = [f for f in families_for(ds.task) if f in args.families]
            if not fams:
                continue
            log(f"{ds.name}:")
            results.append((ds, run_set(ds, fams, args.seeds, args.candidates,
                                        not args.no_tuned)))
    text = render(results, args, time.perf_counter() - start)
    print(text)
    if not args.no_write:
        write_section("defaults", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
