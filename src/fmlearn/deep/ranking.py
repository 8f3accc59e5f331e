"""Deep rankers: every deep model trained with BPR or WARP on :class:`fmlearn.FMRanker`'s inputs.

``<Model>Ranker`` (``DeepFMRanker``, ``NFMRanker``, ``CFMRanker``, ...) scores a (query,
candidate) pair by the model's output on the concatenated row ``[query features | candidate
features]``, as :class:`~fmlearn.ranking.FMRanker` does with an FM. What every ranker shares
comes from :mod:`fmlearn.ranking` (:class:`~fmlearn.ranking.RankingInputs`: the inputs and
positives, the hold-out of positives, the validation metrics, ``recommend``'s checks); the
negatives are drawn by :func:`fmlearn._kernels.ranking.draw_negatives`, the numba ranker's own
draws; the top k by :func:`fmlearn.retrieval.top_k`. Here is only what differs:

- The pair rows of a mini-batch (:class:`PairRows`): the query's and the candidate's entries
  side by side, made from the query and candidate rows (never an n_queries x n_candidates
  table).
- The losses in torch. BPR: one negative per positive, the first of ``max_sampled`` draws
  that is not a positive of the query. WARP, batched: ``max_sampled`` draws per positive scored
  in one forward pass without gradients; the first that violates the margin (scores above the
  positive's minus 1, not a positive) is the negative, its hinge weighted by LightFM's rank
  estimate ``log(max(1, floor((n_candidates - 1) / draws)))``.
- Scoring without a factorized shortcut: every (query, candidate) pair by batched forward
  passes (:class:`ForwardScores`), for ``recommend`` and the validation metric.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from fmlearn._kernels import ranking as rank_kernels
from fmlearn.base import EARLY_STOPPING_AUTO_ROWS, _rng_from
from fmlearn.data.validation import check_fields
from fmlearn.deep import data as deep_data
from fmlearn.deep.estimators import (
    _COMMON,
    _COMMON_DOC,
    _FAMILIES,
    _MODEL_CONSTRAINTS,
    PREDICT_BATCH,
    _DeepEstimator,
    _device,
    _make_init,
    _model_doc,
    _seeded,
    _torch_threads,
)
from fmlearn.deep.layers import OneValueFields
from fmlearn.ranking import (
    RANKING_CONSTRAINTS,
    RANKING_DEFAULTS,
    RankingInputs,
    _parse_metric,
    score_ranking,
)
from fmlearn.retrieval import _as_exclude, mask_excluded, top_k


class PairRows:
    """The rows ``[query | candidate]`` of (query, candidate) pairs, made per mini-batch.

    Parameters
    ----------
    Q : sparse matrix of shape (n_queries, n_query_features)
    C : sparse matrix of shape (n_candidates, n_candidate_features)
    fields : ndarray of int32, shape (n_query_features + n_candidate_features,)
        Field of each model column; the query columns' fields all come before the
        candidates' (checked by the ranker).
    """

    def __init__(self, Q, C, fields):
        nq = Q.shape[1]
        self.n_query_columns = nq
        self.n_query_fields = int(fields[:nq].max()) + 1
        self.n_fields = int(fields.max()) + 1
        self.q = deep_data.as_rows(Q, fields[:nq])
        self.c = deep_data.as_rows(C, fields[nq:] - self.n_query_fields)
        self.n_columns = nq + C.shape[1]
        # One entry per (row, field) on both sides: pair batches are two row gathers.
        dq = self.q.one_value_matrices(self.n_query_fields)
        dc = self.c.one_value_matrices(self.n_fields - self.n_query_fields)
        self._one_value = (dq, dc) if dq is not None and dc is not None else None

    @property
    def shape(self) -> tuple[int, int]:
        return self.q.n_rows, self.c.n_rows

    def batch(self, q: np.ndarray, c: np.ndarray):
        """The model input of pairs ``(q[t], c[t])`` (row numbers, int64)."""
        nq = self.n_query_columns
        if self._one_value is not None:
            (qi, qv), (ci, cv) = self._one_value
            if qv is None and cv is None:  # one-hot on both sides: no value products
                values = None
            else:
                values = torch.from_numpy(np.hstack([
                    np.ones(qi.shape[1], dtype=np.float32)[None].repeat(q.size, 0)
                    if qv is None else qv[q],
                    np.ones(ci.shape[1], dtype=np.float32)[None].repeat(c.size, 0)
                    if cv is None else cv[c]]))
            return OneValueFields(torch.from_numpy(np.hstack([qi[q], ci[c] + nq])), values,
                                  int(q.shape[0]))
        pos_q, cnt_q = self.q._positions(q)
        pos_c, cnt_c = self.c._positions(c)
        n = q.shape[0]
        # Each pair's query entries, then its candidate entries (fields stay in order).
        order = np.argsort(np.concatenate([np.repeat(np.arange(n), cnt_q),
                                           np.repeat(np.arange(n), cnt_c)]), kind="stable")
        rows = deep_data.Rows(
            np.concatenate([self.q.data[pos_q], self.c.data[pos_c]])[order],
            np.concatenate([self.q.indices[pos_q], self.c.indices[pos_c] + nq])[order],
            np.concatenate([[0], np.cumsum(cnt_q + cnt_c)]).astype(np.int64),
            np.concatenate([self.q.entry_fields[pos_q],
                            self.c.entry_fields[pos_c] + self.n_query_fields])[order],
            self.n_columns)
        return rows.bags(np.arange(n, dtype=np.int64), self.n_fields)


class ForwardScores:
    """Every (query, candidate) score by batched forward passes: the scorer of
    :func:`fmlearn.retrieval.top_k` and :func:`fmlearn.ranking.score_ranking` for a model
    whose score does not split into query and candidate parts."""

    def __init__(self, module, pairs: PairRows, device, batch: int = PREDICT_BATCH):
        self.module, self.pairs, self.device, self.batch = module, pairs, device, batch
        self.shape = pairs.shape

    def pair_scores(self, q: np.ndarray, c: np.ndarray) -> np.ndarray:
        self.module.eval()
        out = np.empty(q.shape[0], dtype=np.float64)
        with torch.no_grad():
            for a in range(0, q.shape[0], self.batch):
                b = min(a + self.batch, q.shape[0])
                x = self.pairs.batch(q[a:b], c[a:b]).to(self.device)
                out[a:b] = self.module(x)[:, 0].cpu().numpy()
        return out

    def scores(self, a: int, b: int, exclude) -> np.ndarray:
        n_c = self.shape[1]
        q = np.repeat(np.arange(a, b, dtype=np.int64), n_c)
        c = np.tile(np.arange(n_c, dtype=np.int64), b - a)
        return mask_excluded(self.pair_scores(q, c).reshape(b - a, n_c), a, b, exclude)


class _Positives:
    """The batch source of a ranker's epoch: its positives (one batch, in memory)."""

    def __init__(self, pairs, pos_q, pos_c, sample_weight, known, popular):
        self.batch = (pairs, pos_q, pos_c, sample_weight, known, popular)
        self.weight_sum = float(sample_weight.sum())

    def batches(self, rng):
        yield self.batch


# The deep parameters a ranker takes: all but init_from (a numba FM's columns are not the
# ranker's [query | candidate] columns).
_RANKER_COMMON = {k: v for k, v in _COMMON.items() if k != "init_from"}

_RANKER_DOC = """
    The score of a (query, candidate) pair is the model's output on the concatenated row
    ``[query features | candidate features]``; training sees positive pairs only and fits
    the ranking with a pairwise loss against sampled negatives, as
    :class:`fmlearn.FMRanker` (same inputs, ``recommend``, metrics and validation). See
    docs/deep.md, "Ranking".

    Ranking parameters
    ------------------
    loss : {{"warp", "bpr"}}, default={loss!r}
        ``"bpr"``: ``log(1 + exp(-d))`` of the score difference with one sampled negative.
        ``"warp"``: ``max_sampled`` draws scored at once; the first within a margin of 1 of the
        positive is the negative, its hinge weighted by ``log(floor((n_candidates - 1) /
        draws))``.
    negative_sampling : {{"uniform", "popularity"}}, default="uniform"
        Negatives uniformly over the candidates, or in proportion to their training positives;
        known positives of the query are never negatives.
    max_sampled : int, default=10
        Draws per positive (WARP: scored in one forward pass; BPR: spent finding a candidate
        that is not a positive of the query).
    eval_metric : str, default="ndcg@10"
        Validation metric (higher is better): "auc" or "<name>@<k>" with name one of
        precision, recall, ndcg, map, hit_rate.
    fields : array-like of int, default=None
        Field of each column of ``[queries | candidates]``, the query columns' fields before
        the candidates'. None: the query columns are one field and the candidate columns
        another (one-hot ids: a user field and an item field); give side features their own
        fields.

    The other parameters are the deep estimators' (below; no ``init_from``). Fitted
    attributes add ``n_query_features_``; ``history_`` has ``"train_<loss>"`` and
    ``"valid_<eval_metric>"``.
"""


class _DeepRanker(RankingInputs, _DeepEstimator):
    """Shared plumbing of the deep rankers (see the concrete classes for parameters)."""

    # retrieval.recommend asks the ranker to score pairs (no factorized score).
    _scores_by_forward = True

    def _n_outputs(self) -> int:
        return 1

    def _model_file_params(self) -> dict:
        return self.get_params(deep=False)

    # ----------------------------------------------------------------- fields
    def _pair_fields(self, nq: int, nc: int) -> np.ndarray:
        if self.fields is None:
            return np.array([0] * nq + [1] * nc, dtype=np.int32)
        fields = check_fields(self.fields, nq + nc)
        if fields[:nq].max() >= fields[nq:].min():
            raise ValueError(
                "fields: every query column's field must come before every candidate column's "
                f"(the query columns have fields up to {fields[:nq].max()}, a candidate column "
                f"has field {fields[nq:].min()}); number the query fields first.")
        return fields

    # ----------------------------------------------------------------- training
    def fit(self, queries, candidates, positives, sample_weight=None, *, eval_set=None,
            callbacks=None):
        """Learn the ranking of ``candidates`` for ``queries`` from positive pairs.

        Parameters
        ----------
        queries : {array-like, sparse matrix} of shape (n_queries, n_query_features), path or None
            Query features, one row per query, or a libFM/FFM file of them; None means
            one-hot query ids.
        candidates : {array-like, sparse matrix} of shape (n_candidates, n_cand_features), \
path or None
            Candidate features, one row per candidate, or a file of them; None means one-hot
            candidate ids.
        positives : sparse matrix of shape (n_queries, n_candidates), int array (n, 2) or path
            The observed positives (entries > 0), (query row, candidate row) pairs, or a text
            file of ``query candidate [weight]`` lines (:func:`fmlearn.ranking.read_pairs`).
        sample_weight : array-like of shape (n_positives,), default=None
            Weight of each positive's loss.
        eval_set : sparse matrix (n_queries, n_candidates), int array (n, 2) or path, \
default=None
            Held-out positives, ranked after every epoch by ``eval_metric`` (training
            positives excluded); what early stopping monitors.
        callbacks : list of callable, default=None
            Called after every epoch with a :class:`fmlearn.callbacks.EpochEnv`.

        Returns
        -------
        self
        """
        self._validate_params()
        reset = not (self.warm_start and self.__sklearn_is_fitted__())
        return self._fit_pairs(queries, candidates, positives, sample_weight, eval_set,
                               callbacks, reset=reset, max_iter=self.max_iter)

    def partial_fit(self, queries, candidates, positives, sample_weight=None, *,
                    eval_set=None, callbacks=None):
        """One epoch over the positives, continuing from the current model if fitted."""
        first = not self.__sklearn_is_fitted__()
        if first:
            self._validate_params()
        return self._fit_pairs(queries, candidates, positives, sample_weight, eval_set,
                               callbacks, reset=first, max_iter=1)

    def _fit_pairs(self, queries, candidates, positives, sample_weight, eval_set, callbacks,
                   *, reset, max_iter):
        _parse_metric(self.eval_metric)
        queries, candidates, positives, sample_weight, eval_set, n_ids = self._read_files(
            queries, candidates, positives, sample_weight, eval_set)
        data = self._rank_data(queries, candidates, positives, sample_weight, n_ids=n_ids)
        nq, nc = data.Q.shape[1], data.C.shape[1]
        device = _device(self.device)
        if reset:
            self._rng = _rng_from(self.random_state)
            fields = self._pair_fields(nq, nc)
        else:
            self._check_widths(data)
            fields = self._fields
            if self.fields is not None and not np.array_equal(self._pair_fields(nq, nc),
                                                              fields):
                raise ValueError("fields changed since the model was fitted; set "
                                 "warm_start=False to refit.")
        self._stopping_early = (bool(self.early_stopping) if self.early_stopping != "auto"
                                else max_iter > 1 and data.pos_q.size > EARLY_STOPPING_AUTO_ROWS)
        data, valid = self._split_validation(data, eval_set)
        pairs = PairRows(data.Q, data.C, fields)
        if reset:
            self._fields = fields
            with _seeded(int(self._rng.integers(2**62)), torch.device("cpu")):
                self.module_ = self._new_module(nq + nc, 1, fields)
            self._optimizer = None
            self.history_ = {}
            self._epochs_done = 0
            self.n_features_in_, self.n_query_features_ = nq + nc, nq
        self.module_.to(device)
        self._ensure_optimizer(reset)
        valid = self._validation(data, valid)
        if valid is not None:
            valid = (valid, ForwardScores(self.module_, PairRows(data.Q[valid.queries], data.C,
                                                                 fields), device))
        known, popular = self._negatives_from(data)
        source = _Positives(pairs, data.pos_q, data.pos_c, data.sample_weight,
                            (known.indptr.astype(np.int64), known.indices.astype(np.int32)),
                            popular)
        with _torch_threads(self.n_jobs):
            return self._train(source, valid, max_iter, callbacks, self._stopping_early, device)

    def _validation_fn(self, valid):
        if valid is None:
            return None
        v, scorer = valid

        def validate():
            return score_ranking(self.eval_metric, scorer, v, 1), None

        return validate

    def _batch_epoch(self, batch, opt, device) -> float:
        """One shuffled pass over the positives in mini-batches; the sum of weighted losses
        (each mini-batch scored before its step)."""
        pairs, pos_q, pos_c, sw_all, (indptr, indices), popular = batch
        module, total = self.module_, 0.0
        order = self._rng.permutation(pos_q.shape[0])
        state = np.full(1, self._rng.integers(np.iinfo(np.int64).max), dtype=np.uint64)
        n_c, m = pairs.shape[1], self.max_sampled
        warp = self.loss == "warp"
        for start in range(0, order.shape[0], self.batch_size):
            sel = order[start:start + self.batch_size]
            q, c, sw = pos_q[sel], pos_c[sel], sw_all[sel]
            draws = np.empty((sel.shape[0], m), dtype=np.int64)
            usable = np.empty((sel.shape[0], m), dtype=np.bool_)
            rank_kernels.draw_negatives(q, indptr, indices, popular, n_c, m, self._sampling,
                                        state, draws, usable)
            if warp:
                with torch.no_grad():
                    s = module(pairs.batch(np.concatenate([q, np.repeat(q, m)]),
                                           np.concatenate([c, draws.ravel()])).to(device))
                s = s[:, 0].cpu().numpy()
                usable &= s[sel.shape[0]:].reshape(-1, m) > s[:sel.shape[0], None] - 1.0
            found = usable.any(axis=1)
            keep = np.flatnonzero(found)
            if keep.size == 0:
                continue
            first = usable.argmax(axis=1)[keep]
            weight = sw[keep]
            if warp:  # LightFM's rank estimate from the draws spent
                weight = weight * np.log(np.maximum(1.0, np.floor((n_c - 1) / (first + 1.0))))
            x = pairs.batch(np.concatenate([q[keep], q[keep]]),
                            np.concatenate([c[keep], draws[keep, first]])).to(device)
            s = module(x)[:, 0]
            d = s[:keep.size] - s[keep.size:]
            losses = (torch.nn.functional.relu(1.0 - d) if warp
                      else torch.nn.functional.softplus(-d))
            weighted = (losses * torch.as_tensor(weight, dtype=losses.dtype,
                                                 device=device)).sum()
            total += self._step(opt, weighted, x.ids, sel.shape[0])
        return total

    # ----------------------------------------------------------------- scoring
    def decision_function(self, X) -> np.ndarray:
        """Scores of concatenated rows ``[query features | candidate features]``, shape
        (n_pairs,)."""
        return self._scores(self._rows_of(X))[:, 0]

    def _top_k(self, Q, C, k, exclude):
        device = next(self.module_.parameters()).device
        scorer = ForwardScores(self.module_, PairRows(Q, C, self._fields), device)
        with _torch_threads(self.n_jobs):
            return top_k(scorer, k, _as_exclude(exclude, scorer.shape), 1)


def _ranker(stem: str, model_class, title: str) -> type:
    defaults = {**RANKING_DEFAULTS, **({"loss": "bpr"} if model_class.name == "cfm" else {})}
    constraints = {**_DeepEstimator._parameter_constraints, **RANKING_CONSTRAINTS,
                   **{n: _MODEL_CONSTRAINTS[n] for n in model_class.params}}
    del constraints["init_from"]
    # The deep parameters' text, less those the ranking text above gives (fields) or that a
    # ranker does not take (init_from); batch_size counts positives.
    doc = re.sub(r"    (fields|init_from) : .*?\n(?=    [a-z_]+ : )", "",
                 _COMMON_DOC.format(model_doc=_model_doc(model_class.params)), flags=re.S)
    doc = doc.replace("Rows per gradient step.", "Positives per gradient step.")
    name = stem + "Ranker"
    cfm_note = ("\n    CFM's own setting: its paper trains it for top-k ranking with this "
                "pairwise (BPR) loss, the default here.\n" if model_class.name == "cfm" else "")
    return type(name, (_DeepRanker,), {
        "__module__": __name__, "__qualname__": name,
        "__doc__": f"{title}, ranking candidates for queries from implicit feedback.\n"
                   + cfm_note + _RANKER_DOC.format(loss=defaults["loss"]) + doc,
        "_model_class": model_class,
        "_parameter_constraints": constraints,
        "__init__": _make_init({**dict(model_class.params), **defaults}, _RANKER_COMMON),
    })


RANKERS: dict[str, type] = {}
for _stem, _model, _title in _FAMILIES:
    RANKERS[_stem + "Ranker"] = _ranker(_stem, _model, _title)
globals().update(RANKERS)

__all__ = ["ForwardScores", "PairRows", *sorted(RANKERS)]
