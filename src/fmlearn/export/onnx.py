"""ONNX export of the numba-trained estimators: :func:`to_onnx` (``estimator.to_onnx(path)``).

The graph reads the padded sparse rows of :func:`fmlearn.export.padded_inputs`, ``ids`` int64
and ``values`` float32 of shape (N, L), padding id 0 and value 0, and computes the estimator's
own predictions in float32 (see ``docs/serving.md``):

- regressors: ``prediction`` float32 (N,);
- classifiers: ``probabilities`` float32 (N, n_classes) and ``label`` int64 (N,);
- :class:`fmlearn.FMOrdinalRegressor`: ``probabilities``, ``label`` (``predict_class``) and
  ``prediction`` (the expected value, ``predict``);
- :class:`fmlearn.FMRanker`: ``score`` float32 (N,).

``label`` holds the class labels when they are integers (or booleans, as 0/1), otherwise the
index into ``classes_`` (the model's ``label_is`` metadata says which; ``classes`` lists them).

Two parts, one home each:

- a *score* subgraph per parameter container (:data:`SCORES`, keyed by the container class,
  looked up along its MRO): the model output ``y(x)`` of every row and head, (N, H). A head is
  a class of the multinomial FM, a kept sample of an MCMC posterior, or the one output of a
  point estimate. Feature tables are initializers read with ``Gather`` and summed with
  ``ReduceSum`` over the padded axis, so an empty row gives the bias alone;
- an *output* head per task (:data:`OUTPUTS`, keyed by the estimator's ``_task_name``): the
  link, the average over posterior samples and the label, as the estimator's ``predict`` and
  ``predict_proba`` do.

Ids outside ``[0, n_features)`` contribute nothing, as ``fmlearn predict`` ignores feature
indices the model does not have. Models fitted with relation blocks read the expanded rows:
``X``'s columns, then each block's (``scipy.sparse.hstack([X, *(b.expand() for b in
X_rel)])``).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

try:
    import onnx
    from onnx import helper
except ImportError as e:  # an optional dependency: say how to get it
    raise ImportError(
        "ONNX export needs the onnx package: pip install 'fmlearn[onnx]' (onnxruntime runs "
        "the exported graphs)"
    ) from e

from fmlearn._version import __version__
from fmlearn.export._graph import FLOAT, INT64, IR_VERSION, OPSET, Graph, tensor
from fmlearn.models import (
    FFMParams,
    FMParams,
    FwFMParams,
    HOFMParams,
    MulticlassFMParams,
    PosteriorFM,
)

# protobuf refuses messages of 2 GiB; keep a margin for the graph around the tables.
_MAX_BYTES = 2**31 - 2**24


# ----------------------------------------------------------------------------- inputs
# Inside the graph rows are the *last* axis: ids and values are transposed to (L, N) once, and
# every tensor keeps N last. onnxruntime broadcasts and reduces span by span along the last
# axis, so with (N, L, k) layouts a k-long span (4 to 17 values) paid the per-span overhead:
# rows last made the FM graph about 3x and the HOFM graph about 2.5x faster.
def _inputs(g: Graph, n_features: int, normalize: bool) -> tuple[str, str]:
    """``(ids, x)`` of shape (L, N): ids outside ``[0, n_features)`` become 0 with value 0
    (ignored); rows scaled to unit L2 norm when the model normalizes them (FFM/FwFM
    ``normalize=True``)."""
    ids = g.op("Transpose", "ids", perm=[1, 0])
    x = g.op("Transpose", "values", perm=[1, 0])
    valid = g.op("And", g.op("GreaterOrEqual", ids, g.i64(0)),
                 g.op("Less", ids, g.i64(n_features)))
    ids = g.op("Where", valid, ids, g.i64(0))
    x = g.op("Where", valid, x, g.f32(0.0))
    if normalize:
        norm = g.op("Sqrt", g.sum(g.mul(x, x), [0], keepdims=1))
        # An all-zero row stays zero (its norm taken as 1), as the estimator's design does.
        safe = g.op("Where", g.op("Equal", norm, g.f32(0.0)), g.f32(1.0), norm)
        x = g.op("Div", x, safe)
    return ids, x


def _n_rows(g: Graph) -> str:
    """N as a 1-D int64 tensor."""
    return g.op("Shape", "ids", start=0, end=1)


# ----------------------------------------------------------------------------- scores
def _fm_heads(g: Graph, ids, x, w0, w, V) -> tuple[str, int]:
    """Second-order FM of H heads: ``w0`` (H,), ``w`` (n, H), ``V`` (n, H, k) -> (N, H).

    ``y = w0 + sum_l w x + 1/2 sum_f ((sum_l v x)^2 - sum_l (v x)^2)``, from one table
    ``[V | w]`` of shape (n, H (k + 1)): one Gather per position.
    """
    n, H, k = V.shape
    table = np.concatenate([V, w[:, :, None]], axis=2).reshape(n, H * (k + 1))
    rows = g.op("Gather", g.f32(table, "table"), ids, axis=0)  # (L, N, H (k + 1))
    vx = g.mul(g.op("Transpose", rows, perm=[2, 0, 1]), x)  # (H (k + 1), L, N)
    # (H (k + 1), N) -> (H, k + 1, N); sizes explicit, as -1 is undefined for N = 0.
    shape = g.op("Concat", g.i64([H, k + 1]), _n_rows(g), axis=0)
    s = g.op("Reshape", g.sum(vx, [1]), shape, allowzero=1)
    out = g.op("Squeeze", g.slice(s, k, k + 1, 1), g.i64([1]))  # (H, N)
    if k:
        sq = g.op("Reshape", g.sum(g.mul(vx, vx), [1]), shape, allowzero=1)
        diff = g.slice(g.sub(g.mul(s, s), sq), 0, k, 1)
        out = g.add(out, g.mul(g.sum(diff, [1]), g.f32(0.5)))
    out = g.op("Transpose", out, perm=[1, 0])  # (N, H)
    return g.add(out, g.f32(w0, "w0")), H


def _fm_scores(g, params: FMParams, ids, x):
    return _fm_heads(g, ids, x, params.w0[:1], params.w[:, None], params.V[:, None, :])


def _multiclass_scores(g, params: MulticlassFMParams, ids, x):
    """One head per class (the softmax logits)."""
    return _fm_heads(g, ids, x, params.w0, params.w, params.V)


def _posterior_scores(g, params: PosteriorFM, ids, x):
    """One head per kept sample (the current sample when none is kept): the estimator
    averages the link of each sample's output, which is not the output of averaged factors."""
    S, k = params.n_samples, params.n_factors
    if S == 0:
        return _fm_scores(g, params, ids, x)
    kept = params.samples[:S]  # (S, n, k + 1): [V | w] per sample
    V = np.transpose(kept[:, :, :k], (1, 0, 2))
    w = kept[:, :, k].T
    return _fm_heads(g, ids, x, params.w0_samples[:S], w, V)


def _linear(g: Graph, ids, x, w) -> str:
    """``sum_l w[ids] x`` (N,)."""
    return g.sum(g.mul(g.op("Gather", g.f32(w, "w"), ids, axis=0), x), [0])


def _fields(g: Graph, ids, fields) -> str:
    """The field of every position (L, N), int64."""
    return g.op("Gather", g.i64(fields, "fields"), ids, axis=0)


def _outer(g: Graph, a, b) -> tuple[str, str]:
    """(L, L, N, ...) from two (L, N, ...) tensors: ``a[l] op b[m]`` broadcast."""
    return g.unsqueeze(a, [1]), g.unsqueeze(b, [0])


def _upper_sum(g: Graph, pairs) -> str:
    """Sum of ``pairs`` (L, L, N) over positions ``l < m``: each pair once."""
    L = g.op("Shape", "ids", start=1, end=2)
    ones = g.op("ConstantOfShape", g.op("Concat", L, L, axis=0),
                value=helper.make_tensor("one", FLOAT, [1], [1.0]))
    mask = g.unsqueeze(g.op("Trilu", ones, g.i64(1), upper=1), [2])  # (L, L, 1)
    return g.sum(g.mul(pairs, mask), [0, 1])


def _pair_values(g: Graph, x) -> str:
    """``x_l x_m`` (L, L, N)."""
    return g.mul(*_outer(g, x, x))


def _field_pairs(g: Graph, fid, left, n_fields: int) -> str:
    """(L, L, N) int64: ``left[l] * n_fields + fid[m]``, a row of an (n * n_fields) table."""
    return g.add(*_outer(g, g.mul(left, g.i64(n_fields)), fid))


def _ffm_scores(g, params: FFMParams, ids, x):
    """``sum_{l<m} <V[i_l, F(i_m)], V[i_m, F(i_l)]> x_l x_m``: for every pair of positions the
    vector of each for the other's field, gathered as an (L, L, N, k) grid (O(L^2 k) per row,
    as libffm; fine at serving widths)."""
    F, k = params.n_fields, params.n_factors
    out = g.add(g.f32(params.w0[:1], "w0"), _linear(g, ids, x, params.w))
    if k:
        VF = params.V.reshape(params.n_features * F, k)
        grid = _field_pairs(g, _fields(g, ids, params.fields), ids, F)
        A = g.op("Gather", g.f32(VF, "V"), grid, axis=0)  # V[i_l, F(i_m)] at [l, m]
        B = g.op("Transpose", A, perm=[1, 0, 2, 3])  # V[i_m, F(i_l)] at [l, m]
        dots = g.sum(g.mul(A, B), [3])  # (L, L, N)
        out = g.add(out, _upper_sum(g, g.mul(dots, _pair_values(g, x))))
    return g.unsqueeze(out, [1]), 1


def _fwfm_scores(g, params: FwFMParams, ids, x):
    """``sum_{l<m} r[F(i_l), F(i_m)] <v_l, v_m> x_l x_m``: the (L, L, N) Gram matrix of the
    rows' ``v`` times the gathered field-pair weights."""
    F, k = params.n_fields, params.n_factors
    out = g.add(g.f32(params.w0[:1], "w0"), _linear(g, ids, x, params.w))
    if k:
        v = g.op("Gather", g.f32(params.V, "V"), ids, axis=0)  # (L, N, k)
        gram = g.sum(g.mul(*_outer(g, v, v)), [3])  # (L, L, N)
        fid = _fields(g, ids, params.fields)
        R = g.op("Gather", g.f32(params.r.reshape(-1), "r"), _field_pairs(g, fid, fid, F),
                 axis=0)
        out = g.add(out, _upper_sum(g, g.mul(g.mul(gram, R), _pair_values(g, x))))
    return g.unsqueeze(out, [1]), 1


def _hofm_scores(g, params: HOFMParams, ids, x):
    """``sum_{m=2..degree} sum_f A^m(p^(m)_f x)``, the ANOVA kernel of every order by its
    dynamic programme along the padded axis (a Scan, as the kernel's table DP:
    ``A^t <- A^t + z A^(t-1)`` for each position's ``z = p x``)."""
    D, k = params.degree, params.n_factors
    M = D - 1
    out = g.add(g.f32(params.w0[:1], "w0"), _linear(g, ids, x, params.w))
    if k:
        P = np.moveaxis(params.P, 0, 1).reshape(params.n_features, M * k)
        z = g.op("Transpose", g.op("Gather", g.f32(P, "P"), ids, axis=0), perm=[0, 2, 1])
        z = g.mul(z, g.unsqueeze(x, [1]))  # (L, M k, N)
        # One more position of z = 0 (it leaves the state as it is): onnxruntime's Scan
        # crashes (SIGFPE) on a sequence of length 0, i.e. input of width L = 0.
        z = g.op("Pad", z, g.i64([0, 0, 0, 1, 0, 0]))  # (L + 1, M k, N)
        n_rows = _n_rows(g)
        # Every size explicit: a -1 cannot be inferred from an empty batch.
        z = g.op("Reshape", z, g.op("Concat", g.op("Shape", z, start=0, end=1),
                                    g.i64([M, k]), n_rows, axis=0),
                 allowzero=1)  # (L + 1, M, k, N)
        # State (D + 1, M, k, N): A^0 .. A^D of every order's factors; A^0 = 1.
        start = np.zeros((D + 1, M, k, 1), dtype=np.float32)
        start[0] = 1.0
        shape = g.op("Concat", g.i64([D + 1, M, k]), n_rows, axis=0)
        state = g.op("Expand", g.f32(start, "anova0"), shape)
        final = g.op("Scan", state, z, body=_anova_step(D), num_scan_inputs=1,
                     scan_input_axes=[0])
        pick = np.zeros((D + 1, M, 1, 1), dtype=np.float32)  # A^m of order m's factors
        for m in range(2, D + 1):
            pick[m, m - 2] = 1.0
        out = g.add(out, g.sum(g.mul(final, g.f32(pick, "orders")), [0, 1, 2]))
    return g.unsqueeze(out, [1]), 1


def _anova_step(D: int):
    """Scan body: state (D + 1, M, k, N), one position's ``z`` (M, k, N) -> the next state."""
    b = Graph("step_")
    lower = b.slice("A", 0, D, 0)
    higher = b.slice("A", 1, D + 1, 0)
    b.op("Concat", b.slice("A", 0, 1, 0), b.add(higher, b.mul("z", lower)), axis=0,
         out="A_next")
    return b.graph("anova_step", [tensor("A", FLOAT, None), tensor("z", FLOAT, None)],
                   [tensor("A_next", FLOAT, None)])


# Container class -> (graph, params, ids, x) -> (scores (N, H), H). Looked up along the MRO:
# the ordinal containers are an FM and a posterior FM.
SCORES = {
    FMParams: _fm_scores,
    MulticlassFMParams: _multiclass_scores,
    PosteriorFM: _posterior_scores,
    FFMParams: _ffm_scores,
    FwFMParams: _fwfm_scores,
    HOFMParams: _hofm_scores,
}


def _scores_of(params):
    for cls in type(params).__mro__:
        if cls in SCORES:
            return SCORES[cls]
    raise ValueError(
        f"ONNX export of {type(params).__name__} ({params.kind!r}) models is not supported; "
        f"supported containers: {', '.join(c.__name__ for c in SCORES)}"
    )


# ----------------------------------------------------------------------------- outputs
def _link(g: Graph, f: str, link: str) -> str:
    if link == "logit":
        return g.op("Sigmoid", f)
    if link == "probit":  # the normal CDF: (1 + erf(f / sqrt(2))) / 2
        erf = g.op("Erf", g.mul(f, g.f32(1.0 / math.sqrt(2.0))))
        return g.mul(g.add(erf, g.f32(1.0)), g.f32(0.5))
    raise ValueError(f"no ONNX form of the {link!r} link")


def _mean_heads(g: Graph, a: str, H: int) -> str:
    """Average over the heads axis 1 (the posterior samples)."""
    total = g.sum(a, [1])
    return total if H == 1 else g.mul(total, g.f32(1.0 / H))


def _labels(g: Graph, index: str, classes: np.ndarray, meta: dict) -> None:
    """``label``: the class labels where they are integers, else the index into classes_."""
    classes = np.asarray(classes)
    integral = classes.dtype.kind in "biu" or (
        classes.dtype.kind == "f" and np.all(np.isfinite(classes))
        and np.all(classes == np.round(classes)) and np.all(np.abs(classes) < 2**53)
    )
    meta["classes"] = json.dumps(classes.tolist())
    if integral:
        g.op("Gather", g.i64(classes.astype(np.int64), "classes"), index, axis=0, out="label")
        meta["label_is"] = "class"
    else:
        g.op("Identity", index, out="label")
        meta["label_is"] = "index"


def _regression(g, est, params, f, H, meta):
    g.op("Identity", _mean_heads(g, f, H), out="prediction")
    return [tensor("prediction", FLOAT, ["N"])]


def _ranking(g, est, params, f, H, meta):
    g.op("Identity", _mean_heads(g, f, H), out="score")
    return [tensor("score", FLOAT, ["N"])]


def _binary(g, est, params, f, H, meta):
    if est._multinomial():
        return _multinomial(g, est, params, f, H, meta)
    link = est._output_link
    p = _mean_heads(g, _link(g, f, link), H)
    g.op("Concat", g.unsqueeze(g.sub(g.f32(1.0), p), [1]), g.unsqueeze(p, [1]), axis=1,
         out="probabilities")
    # predict: classes_[1] where P > 1/2; for one head, exactly where the score is > 0.
    positive = (g.op("Greater", g.sum(f, [1]), g.f32(0.0)) if H == 1
                else g.op("Greater", p, g.f32(0.5)))
    _labels(g, g.op("Cast", positive, to=INT64), est.classes_, meta)
    meta["link"] = link
    return _class_outputs(len(est.classes_))


def _multinomial(g, est, params, f, H, meta):
    g.op("Softmax", f, axis=1, out="probabilities")
    _labels(g, g.op("ArgMax", f, axis=1, keepdims=0), est.classes_, meta)
    meta["link"] = "softmax"
    return _class_outputs(H)


def _ordinal(g, est, params, f, H, meta):
    """``P(y <= c | x) = F(theta_c - f(x))`` per head (a kept sample has its own cutpoints),
    class probabilities as their differences, averaged over the heads."""
    S = getattr(params, "n_samples", 0)
    cut = params.cutpoint_samples if S else params.cutpoints[None, :]  # (H, C - 1)
    C = cut.shape[1] + 1
    z = g.sub(g.unsqueeze(g.f32(cut, "cutpoints"), [0]), g.unsqueeze(f, [2]))  # (N, H, C-1)
    cdf = _link(g, z, params.link)
    middle = g.sub(g.slice(cdf, 1, C - 1, 2), g.slice(cdf, 0, C - 2, 2))
    last = g.sub(g.f32(1.0), g.slice(cdf, C - 2, C - 1, 2))
    per_head = g.op("Concat", g.slice(cdf, 0, 1, 2), middle, last, axis=2)
    proba = g.op("Identity", _mean_heads(g, per_head, H), out="probabilities")
    g.op("MatMul", proba, g.f32(est.classes_.astype(np.float64), "classes"), out="prediction")
    _labels(g, g.op("ArgMax", proba, axis=1, keepdims=0), est.classes_, meta)
    meta["link"] = params.link
    return [*_class_outputs(C), tensor("prediction", FLOAT, ["N"])]


def _class_outputs(n_classes: int):
    return [tensor("probabilities", FLOAT, ["N", n_classes]), tensor("label", INT64, ["N"])]


# The estimator's _task_name -> its outputs (a classifier fitted on > 2 classes is
# multinomial).
OUTPUTS = {
    "regression": _regression,
    "binary": _binary,
    "ordinal": _ordinal,
    "pairwise": _ranking,
}


# ----------------------------------------------------------------------------- the model
def onnx_model(estimator) -> onnx.ModelProto:
    """The ONNX model of a fitted estimator, checked by ``onnx.checker`` (see the module
    docstring for its inputs and outputs).

    Raises
    ------
    sklearn.exceptions.NotFittedError
        The estimator is not fitted.
    ValueError
        Its model family or task has no ONNX form, or its tables exceed protobuf's 2 GiB.
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    params = estimator._params
    task = getattr(estimator, "_task_name", None)
    if task not in OUTPUTS:
        raise ValueError(f"ONNX export of {type(estimator).__name__} is not supported "
                         f"(task {task!r})")
    scores = _scores_of(params)
    size = params.table.nbytes + sum(
        a.nbytes for a in (getattr(params, "samples", None), getattr(params, "r", None))
        if a is not None
    )
    if size > _MAX_BYTES:
        raise ValueError(
            f"the model's tables take {size / 2**30:.1f} GiB; an ONNX file holds at most "
            "2 GiB (protobuf's limit). Re-index or hash the features into fewer columns."
        )
    n_features = int(params.n_features)
    g = Graph()
    ids, x = _inputs(g, n_features, bool(getattr(estimator, "normalize", False)))
    f, H = scores(g, params, ids, x)
    meta = {
        "producer": "fmlearn",
        "fmlearn_version": __version__,
        "estimator": type(estimator).__name__,
        "model_kind": params.kind,
        "n_features": str(n_features),
        "input_ids": "int64 (N, L): feature indices in [0, n_features); others are ignored",
        "input_values": "float32 (N, L): feature values; padding 0",
    }
    outputs = OUTPUTS[task](g, estimator, params, f, H, meta)
    inputs = [tensor("ids", INT64, ["N", "L"]), tensor("values", FLOAT, ["N", "L"])]
    graph = g.graph(f"fmlearn_{type(estimator).__name__}", inputs, outputs,
                    doc=f"fmlearn {__version__} {type(estimator).__name__}")
    model = helper.make_model(graph, producer_name="fmlearn", producer_version=__version__,
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    return model


def to_onnx(estimator, path) -> None:
    """Write the fitted ``estimator`` as an ONNX model to ``path``, atomically.

    The graph takes ``ids`` int64 and ``values`` float32 of shape (N, L) (see
    :func:`fmlearn.export.padded_inputs`) and gives the estimator's predictions in float32:
    ``prediction`` (regressors), ``probabilities`` and ``label`` (classifiers; the ordinal
    regressor has all three) or ``score`` (the ranker). See ``docs/serving.md``.

    Parameters
    ----------
    estimator : fitted fmlearn estimator
    path : str or os.PathLike
        A new file or a regular file to replace (see :func:`fmlearn._atomic.atomic_write`).
    """
    from fmlearn._atomic import atomic_write, resolve_target

    resolve_target(os.fspath(path))  # a bad path fails before the graph is built
    data = onnx_model(estimator).SerializeToString()
    with atomic_write(path) as f:
        f.write(data)


__all__ = ["OUTPUTS", "SCORES", "onnx_model", "to_onnx"]
