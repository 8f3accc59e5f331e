"""fmlearn's estimators for ``benchmarks/deep.py``: ``fmlearn.deep`` and the numba FM.

Input: the one-hot CSR design matrix with ``fields=`` (the field of each column), as a user
with per-field categories would give it. Training: the estimator's own ``fit`` with
``early_stopping=True``, ``eval_set=[(X_valid, y_valid)]`` and ``n_iter_no_change`` = the
shared patience, so the best epoch is restored by fmlearn's engine. Per-epoch seconds are the
differences of ``history_["time"]`` (each epoch's training pass plus its validation scoring,
the same work the peers' epochs are timed over).

Architecture knobs beyond the shared contract (CIN sizes, attention heads, ...) are passed
under fmlearn's names (``_arch``); a knob the estimator's ``get_params()`` does not know stays
at fmlearn's default and the result's ``note`` lists it.
"""

from __future__ import annotations

import time

import numpy as np

from .deep_common import DeepData, Spec, result, set_threads, timed_predict

NAME = "fmlearn"
MODELS = {
    "fm": "TorchFMClassifier",
    "ffm": "TorchFFMClassifier",
    "fwfm": "TorchFwFMClassifier",
    "deepfm": "DeepFMClassifier",
    "xdeepfm": "XDeepFMClassifier",
    "autoint": "AutoIntClassifier",
    "autoint+": "AutoIntPlusClassifier",
    "nfm": "NFMClassifier",
    "afm": "AFMClassifier",
    "ifm": "IFMClassifier",
    "difm": "DIFMClassifier",
    "cfm": "CFMClassifier",
    "fm-numba": "FMClassifier (numba)",
}
_MLP = {"deepfm", "xdeepfm", "autoint+", "nfm", "ifm", "difm"}


def _arch(spec: Spec) -> dict[str, dict[str, object]]:
    """Per model: fmlearn's own names for the knobs beyond the shared contract. Self-attention
    width is per head in fmlearn (``attention_size``), the total in the peers: k / heads."""
    att = {"n_heads": spec.att_heads, "attention_size": spec.n_factors // spec.att_heads}
    return {
        "xdeepfm": {"cin_layer_sizes": tuple(spec.cin)},
        "autoint": {"n_attention_layers": spec.att_layers, **att},
        "autoint+": {"n_attention_layers": spec.att_layers, **att},
        "difm": att,
        "afm": {"attention_size": spec.afm_att},
    }


def describe(spec: Spec) -> str:
    from importlib.metadata import version

    try:
        v = version("fmlearn")
    except Exception:  # noqa: BLE001 - a source tree on PYTHONPATH
        v = "source"
    return (
        f"fmlearn {v}: `fmlearn.deep` classifiers on the one-hot CSR with `fields=`, "
        f"`n_factors={spec.n_factors}`, `hidden_layer_sizes={tuple(spec.hidden)}` where the "
        f"model has an MLP, `optimizer='adam'`, `learning_rate={spec.learning_rate}`, "
        f"`batch_size={spec.batch_size}`, `l2_reg_w=l2_reg_V=l2_reg_net=0`, "
        f"`dropout={spec.dropout}`, "
        f"`early_stopping=True` with `eval_set`, `n_iter_no_change={spec.patience}`, "
        f"`tol={spec.tol:g}`, "
        f"`n_jobs={spec.threads}`, every other parameter at its default (embeddings start "
        "N(0, 1e-4) for DeepFM, xDeepFM and AutoInt+, N(0, 0.01) for the others; xDeepFM's "
        "CIN without activation). The numba `FMClassifier` (reference row `fm-numba`) trains "
        "with its own default solver and learning rate (not Adam), same factors and stopping."
    )


def _estimator(model: str, spec: Spec, fields: np.ndarray, seed: int):
    common = dict(n_factors=spec.n_factors, max_iter=spec.max_epochs, early_stopping=True,
                  n_iter_no_change=spec.patience, tol=spec.tol, random_state=seed,
                  n_jobs=spec.threads, fields=fields)
    if model == "fm-numba":
        from fmlearn import FMClassifier

        est = FMClassifier()
        params = {k: v for k, v in common.items() if k in est.get_params()}
        return est.set_params(**params), []
    import fmlearn.deep as deep

    cls = getattr(deep, MODELS[model])
    est = cls()
    known = est.get_params()
    params = dict(common, batch_size=spec.batch_size, optimizer=spec.optimizer,
                  learning_rate=spec.learning_rate, l2_reg_w=0.0, l2_reg_V=0.0, l2_reg_net=0.0)
    missing = [k for k in params if k not in known]
    params = {k: v for k, v in params.items() if k in known}
    if model in _MLP:
        params["hidden_layer_sizes"] = tuple(spec.hidden)
    if "dropout" in known:  # the models without an MLP or attention have none
        params["dropout"] = spec.dropout
    for name, value in _arch(spec).get(model, {}).items():
        if name in known:
            params[name] = value
        else:
            missing.append(name)
    return est.set_params(**params), missing


def run(model: str, data: DeepData, spec: Spec, seed: int) -> dict:
    set_threads(spec.threads)
    X_tr, fields = data.csr("train")
    X_va, _ = data.csr("valid")
    X_te, _ = data.csr("test")
    est, missing = _estimator(model, spec, fields, seed)
    t0 = time.perf_counter()
    est.fit(X_tr, data.y_train, eval_set=[(X_va, data.y_valid)])
    fit_s = time.perf_counter() - t0
    times = np.asarray(est.history_.get("time", []), dtype=np.float64)
    epoch_s = np.diff(np.concatenate([[0.0], times])).tolist()
    n_epochs = len(epoch_s) or int(getattr(est, "n_iter_", 0))
    best = getattr(est, "best_iteration_", None) or n_epochs
    proba, predict_s = timed_predict(lambda: est.predict_proba(X_te)[:, 1],
                                     spec.predict_repeats)
    note = "not set (fmlearn's default): " + ", ".join(missing) if missing else ""
    out = result(epoch_s=epoch_s, train_s=None, best_epoch=best, n_epochs=n_epochs,
                 proba=proba, y_test=data.y_test, predict_s=predict_s, note=note)
    out["fit_s"] = fit_s
    out["setup_s"] = max(0.0, fit_s - float(times[-1])) if times.size else None
    return out
