"""Learning to rank with factorization machines: :class:`FMRanker`.

A ranking problem has *queries* (a user, a user in a context, a search...) and *candidates*
(items), each described by its own sparse feature matrix: one row per query with the query
features, one row per candidate with the candidate features. The score of a pair is the FM of
the concatenated row ``[query features | candidate features]``, so the model's feature space is
the query columns followed by the candidate columns.

- :class:`FMRanker` learns that FM from implicit feedback, (query, candidate) positives only,
  with the pairwise BPR or WARP loss (see :mod:`fmlearn._kernels.ranking` for the gradients).
- :func:`fmlearn.retrieval.recommend` returns the top-k candidates of many queries from it or
  any other second-order FM.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from fmlearn._kernels import ranking as rank_kernels
from fmlearn._parallel import effective_n_jobs, run_blocks
from fmlearn.base import BaseFM, _rng_from, family_init
from fmlearn.data.design import MAX_FEATURES
from fmlearn.data.validation import check_structure
from fmlearn.metrics import RANKING_METRICS, auc_per_query
from fmlearn.retrieval import (
    RecommendMixin,
    _check_k,
    _feature_csr,
    _model_space,
    _Parts,
    recommend,
    top_k,
)
from fmlearn.tasks import Pairwise

__all__ = ["FMRanker", "RankingInputs", "RecommendMixin", "recommend"]  # the last two re-exported

_LOSSES = {"bpr": rank_kernels.BPR, "warp": rank_kernels.WARP}
_SAMPLING = {"uniform": rank_kernels.UNIFORM, "popularity": rank_kernels.POPULARITY}
_METRIC_RE = re.compile(r"^(auc)$|^(precision|recall|ndcg|map|hit_rate)@([1-9][0-9]*)$")


def _pairs(positives, n_queries: int | None, n_candidates: int | None, name: str):
    """(query ids, candidate ids) int64 and the (n_queries, n_candidates) shape they index.

    ``positives`` is a sparse matrix (entries > 0 are positives, taken in row-major order) or
    an integer array of shape (n_positives, 2).
    """
    if sp.issparse(positives):
        M = sp.csr_matrix(check_structure(positives, name), copy=True)
        M.sum_duplicates()
        M.data = (M.data > 0).astype(np.float32)  # entries > 0 are positives
        M.eliminate_zeros()
        shape = (M.shape[0] if n_queries is None else n_queries,
                 M.shape[1] if n_candidates is None else n_candidates)
        if M.shape != shape:
            raise ValueError(
                f"{name} is a {M.shape[0]} x {M.shape[1]} matrix, but there are {shape[0]} "
                f"queries and {shape[1]} candidates; it must be (n_queries, n_candidates), "
                "rows and columns in the order of the query and candidate matrices."
            )
        q = np.repeat(np.arange(M.shape[0], dtype=np.int64), np.diff(M.indptr))
        return q, M.indices.astype(np.int64), shape
    arr = np.asarray(positives)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.dtype.kind not in "iu":
        raise ValueError(
            f"{name} must be a sparse (n_queries, n_candidates) matrix or an integer array of "
            f"(query index, candidate index) pairs of shape (n, 2); got an array of shape "
            f"{arr.shape} and dtype {arr.dtype}."
        )
    arr = arr.astype(np.int64)
    if n_queries is None or n_candidates is None:
        raise ValueError(
            f"with {name} given as index pairs, pass the query and candidate feature matrices "
            "(or give the positives as a sparse (n_queries, n_candidates) matrix)."
        )
    for col, n, what in ((0, n_queries, "query"), (1, n_candidates, "candidate")):
        bad = np.flatnonzero((arr[:, col] < 0) | (arr[:, col] >= n))
        if bad.size:
            r = int(bad[0])
            raise ValueError(
                f"{name}[{r}] = ({arr[r, 0]}, {arr[r, 1]}): {what} index {arr[r, col]} is out "
                f"of range; there are {n} {what} rows (indices 0..{n - 1})."
            )
    return arr[:, 0].copy(), arr[:, 1].copy(), (n_queries, n_candidates)


def read_pairs(path, name: str = "positives"):
    """The interactions of a text file: ``(pairs, weights)``.

    One ``query candidate [weight]`` per line: the 0-based row numbers of the query and
    candidate feature matrices (or ids, when those are one-hot ids) and an optional
    non-negative weight, separated by whitespace, tabs or commas; ``#`` starts a comment.
    Read in chunks into compact arrays: the ranker keeps its positives in memory as index
    pairs (no feature row per positive), about 32 bytes a positive with its weight and the
    queries' positive sets.

    Returns
    -------
    pairs : ndarray of int64, shape (n, 2)
    weights : ndarray of float64, shape (n,), or None when the file has two columns
    """
    import itertools
    import os

    path = os.fspath(path)
    pairs, weights = [], []
    n_cols, seen, line_no = None, 0, 0
    with open(path, encoding="utf-8", errors="replace") as f:
        while lines := list(itertools.islice(f, 1 << 18)):
            rows, where = [], []
            for i, line in enumerate(lines, line_no + 1):
                toks = line.split("#", 1)[0].replace(",", " ").split()
                if not toks:
                    continue
                if n_cols is None:
                    n_cols = len(toks)
                    if n_cols not in (2, 3):
                        raise ValueError(
                            f"{path}, line {i}: {name} files hold 'query candidate [weight]' "
                            f"per line (2 or 3 numbers); this line has {n_cols}: "
                            f"{line.strip()[:80]!r}.")
                if len(toks) != n_cols:
                    raise ValueError(
                        f"{path}, line {i}: expected {n_cols} fields as on the first data "
                        f"line, got {len(toks)}: {line.strip()[:80]!r}.")
                rows.append(toks)
                where.append(i)
            line_no += len(lines)
            if not rows:
                continue
            try:
                a = np.array(rows, dtype=np.float64)
            except ValueError:
                bad = next(k for k, r in enumerate(rows) if not _all_numbers(r))
                raise ValueError(
                    f"{path}, line {where[bad]} (data line {seen + bad + 1}): "
                    f"{' '.join(rows[bad])[:80]!r} is not numbers; expected 'query "
                    "candidate [weight]'.") from None
            ids = a[:, :2]
            bad = ~(np.isfinite(ids).all(axis=1) & (ids >= 0).all(axis=1)
                    & (ids == np.floor(ids)).all(axis=1))
            if n_cols == 3:
                bad |= ~(np.isfinite(a[:, 2]) & (a[:, 2] >= 0))
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"{path}, line {where[r]} (data line {seen + r + 1}) holds "
                    f"{a[r].tolist()}: ids must be integers >= 0 (and a weight a number >= 0)")
            pairs.append(ids.astype(np.int64))
            if n_cols == 3:
                weights.append(a[:, 2].copy())
            seen += a.shape[0]
    if not pairs:
        raise ValueError(f"{path}: {name} file holds no pair ('query candidate [weight]' "
                         "per line).")
    return np.concatenate(pairs), (np.concatenate(weights) if weights else None)


def _all_numbers(tokens) -> bool:
    try:
        [float(t) for t in tokens]
    except ValueError:
        return False
    return True


def _is_path(x) -> bool:
    import os

    return isinstance(x, (str, os.PathLike))


def _read_features(x, name):
    """A path of query or candidate features (libFM/libsvm, or FFM for ``*.ffm``) read as a
    matrix, its labels ignored; anything else as it is."""
    if not _is_path(x):
        return x
    from fmlearn.data.textio import read_ffm, read_libfm

    return (read_ffm(x)[0] if str(x).removesuffix(".gz").endswith(".ffm")
            else read_libfm(x)[0])


_NOT_ROWS = (
    "FMRanker learns from (query, candidate) positive pairs, not from labelled rows, so it has "
    "no fit(path) over a libFM/FFM file of rows: pass positives= a pairs file ('query "
    "candidate [weight]' per line, see fmlearn.ranking.read_pairs), with queries= and "
    "candidates= feature matrices or libFM files (None: one-hot ids). To train on labelled "
    "rows out of core (click / no click), use FMClassifier(...).fit(path).")


def _pair_matrix(q, c, shape) -> sp.csr_matrix:
    """Binary CSR (n_queries, n_candidates) with sorted, unique candidates per query."""
    M = sp.csr_matrix((np.ones(q.size, dtype=np.float32), (q, c)), shape=shape)
    M.sum_duplicates()
    M.data[:] = 1.0
    return M


# ------------------------------------------------------------------------ training
def _parse_metric(spec: str):
    """``"ndcg@10"`` -> ("ndcg", 10); ``"auc"`` -> ("auc", None)."""
    m = _METRIC_RE.match(spec) if isinstance(spec, str) else None
    if m is None:
        raise ValueError(
            f"eval_metric={spec!r} is not a ranking metric; use 'auc' or one of "
            f"{', '.join(RANKING_METRICS)} with a cut-off, e.g. 'ndcg@10' or 'precision@5'."
        )
    return ("auc", None) if m.group(1) else (m.group(2), int(m.group(3)))


@dataclass
class _RankData:
    """Validated training data: CSR features and positives (all int64 / float64)."""

    Q: sp.csr_matrix
    C: sp.csr_matrix
    pos_q: np.ndarray
    pos_c: np.ndarray
    sample_weight: np.ndarray
    shape: tuple[int, int]

    @property
    def matrix(self) -> sp.csr_matrix:
        return _pair_matrix(self.pos_q, self.pos_c, self.shape)

    def take(self, idx) -> _RankData:
        return replace(self, pos_q=self.pos_q[idx], pos_c=self.pos_c[idx],
                       sample_weight=self.sample_weight[idx])


@dataclass
class _Validation:
    """Held-out positives and what scoring them each epoch needs."""

    queries: np.ndarray  # the validation queries' rows of the query matrix
    relevant: sp.csr_matrix  # (n_valid_queries, n_candidates)
    exclude: sp.csr_matrix  # their training positives


# Hyper-parameters of every ranker (FMRanker and the deep rankers of fmlearn.deep).
RANKING_CONSTRAINTS = {
    "loss": [StrOptions(set(_LOSSES))],
    "negative_sampling": [StrOptions(set(_SAMPLING))],
    "max_sampled": [Interval(Integral, 1, None, closed="left")],
    "eval_metric": [str],
}
RANKING_DEFAULTS = {"loss": "warp", "negative_sampling": "uniform", "max_sampled": 10,
                    "eval_metric": "ndcg@10"}


def score_ranking(metric: str, scorer, v: _Validation, n_jobs) -> float:
    """The ranking ``metric`` of ``scorer`` (see :func:`fmlearn.retrieval.top_k`) on the
    held-out positives ``v``, their queries' training positives excluded."""
    name, k = _parse_metric(metric)
    if name == "auc":
        return auc_per_query(v.relevant, scorer.scores(0, scorer.shape[0], None),
                             exclude=v.exclude)
    top, _ = top_k(scorer, k, v.exclude, n_jobs)
    return RANKING_METRICS[name](v.relevant, top_k=top, k=top.shape[1])


class RankingInputs:
    """What every ranker shares (:class:`FMRanker`, the deep rankers): the task, the query x
    candidate inputs and positives, the hold-out of positives, the validation queries and
    :meth:`recommend`'s checks. A ranker provides ``_top_k(Q, C, k, exclude)`` and
    ``_check_sample_weight``, and sets ``_stopping_early`` before splitting."""

    _task_name = "pairwise"

    @property
    def _task(self) -> Pairwise:
        return Pairwise(_LOSSES[self.loss], self.loss)

    @property
    def _metric_name(self) -> str:
        # Callbacks and history see the ranking metric validation is scored by.
        return self.eval_metric

    @property
    def _sampling(self) -> int:
        return _SAMPLING[self.negative_sampling]

    def _negatives_from(self, data: _RankData):
        """(known positives as CSR (n_queries, n_candidates), the popularity draw list): what
        negative sampling reads (:mod:`fmlearn._kernels.ranking`)."""
        popular = data.pos_c if self.negative_sampling == "popularity" else data.pos_c[:0]
        return data.matrix, popular

    # ----------------------------------------------------------------- validation
    def _read_files(self, queries, candidates, positives, sample_weight, eval_set):
        """Paths among the inputs read (:func:`read_pairs`, libFM/FFM feature files): the
        arrays, and ``n_ids`` (the id counts a pairs file implies for one-hot ids) or None."""
        if positives is None:
            raise ValueError(_NOT_ROWS if _is_path(queries) else
                             f"{type(self).__name__}.fit needs positives: (query, candidate) "
                             "pairs.")
        queries = _read_features(queries, "queries")
        candidates = _read_features(candidates, "candidates")
        n_ids = None
        if _is_path(positives):
            positives, file_weight = read_pairs(positives)
            if file_weight is not None:
                if sample_weight is not None:
                    raise ValueError("the positives file has weights (a third column): pass "
                                     "no sample_weight.")
                sample_weight = file_weight
            # One-hot ids (queries/candidates None): as many as the largest id + 1.
            n_ids = tuple(int(positives[:, j].max()) + 1 for j in (0, 1))
        if _is_path(eval_set):
            eval_set = read_pairs(eval_set, "eval_set")[0]
        return queries, candidates, positives, sample_weight, eval_set, n_ids

    def _rank_data(self, queries, candidates, positives, sample_weight, name="positives",
                   n_ids=None):
        n_q = (None if n_ids is None else n_ids[0]) if queries is None else _num_rows(queries)
        n_c = (None if n_ids is None else n_ids[1]) if candidates is None else _num_rows(candidates)
        pos_q, pos_c, shape = _pairs(positives, n_q, n_c, name)
        Q = _feature_csr(queries, "queries", shape[0])
        C = _feature_csr(candidates, "candidates", shape[1])
        if Q.shape[1] + C.shape[1] > MAX_FEATURES:
            raise ValueError(
                f"queries and candidates have {Q.shape[1] + C.shape[1]} columns together; "
                f"fmlearn supports at most {MAX_FEATURES}. Hash or re-index the features."
            )
        if pos_q.size == 0:
            raise ValueError(f"{name} is empty: training needs at least one positive pair.")
        sw = self._check_sample_weight(sample_weight, pos_q)
        return _RankData(Q, C, pos_q, pos_c, sw, shape)

    def _check_widths(self, data: _RankData) -> None:
        nq, nc = data.Q.shape[1], data.C.shape[1]
        if (nq, nq + nc) != (self.n_query_features_, self.n_features_in_):
            raise ValueError(
                f"queries have {nq} and candidates {nc} columns, but the model was fitted with "
                f"{self.n_query_features_} and "
                f"{self.n_features_in_ - self.n_query_features_}; use matrices with the same "
                "columns (or warm_start=False to train a new model)."
            )

    def _split_validation(self, data: _RankData, eval_set):
        """(training data, validation positives as (q, c) arrays or None)."""
        if eval_set is not None:
            vq, vc, _ = _pairs(eval_set, *data.shape, "eval_set")
            if vq.size == 0:
                raise ValueError("eval_set holds no positive pair.")
            return data, (vq, vc)
        if not self._stopping_early:
            return data, None
        n = data.pos_q.size
        n_valid = int(round(self.validation_fraction * n))
        if n_valid < 1 or n_valid >= n:
            raise ValueError(
                f"cannot hold out validation_fraction={self.validation_fraction} of {n} "
                "positives for early stopping; pass eval_set, use another validation_fraction "
                "or set early_stopping=False."
            )
        perm = self._rng.permutation(n)
        valid = np.sort(perm[:n_valid])
        return data.take(np.sort(perm[n_valid:])), (data.pos_q[valid], data.pos_c[valid])

    def _validation(self, data: _RankData, valid) -> _Validation | None:
        if valid is None:
            return None
        vq, vc = valid
        queries, inverse = np.unique(vq, return_inverse=True)
        relevant = _pair_matrix(inverse, vc, (queries.size, data.shape[1]))
        exclude = data.matrix[queries]
        return _Validation(queries, relevant, exclude)

    def recommend(self, queries=None, candidates=None, k=10, *, exclude=None):
        """Top-``k`` candidates per query, best first (see :func:`recommend`).

        Parameters
        ----------
        queries : {array-like, sparse matrix} of shape (n_queries, n_query_features_) or None
            Query feature rows; new queries (cold start) need only their side features. None
            means one row per query feature, one-hot (the training queries when they were
            one-hot ids).
        candidates : {array-like, sparse matrix} of shape (n_candidates, n_cand_features) or None
            Candidate feature rows; None means one-hot, as for ``queries``.
        k : int, default=10
        exclude : sparse matrix of shape (n_queries, n_candidates), or list, optional
            Pairs never recommended, e.g. the training positives.

        Returns
        -------
        indices : ndarray of int64, shape (n_queries, min(k, n_candidates))
        scores : ndarray of float64, shape (n_queries, min(k, n_candidates))
        """
        check_is_fitted(self)
        nq, nc = self.n_query_features_, self.n_features_in_ - self.n_query_features_
        Q = _feature_csr(queries, "queries", nq)
        C = _feature_csr(candidates, "candidates", nc)
        if Q.shape[1] != nq or C.shape[1] != nc:
            raise ValueError(
                f"queries must have {nq} columns and candidates {nc}, as in fit; got "
                f"{Q.shape[1]} and {C.shape[1]}."
            )
        return self._top_k(Q, C, _check_k(k), exclude)




class FMRanker(RankingInputs, BaseFM):
    """Factorization machine ranking candidates for queries, trained on implicit feedback.

    The score of a (query, candidate) pair is the FM of the concatenated feature row
    ``x = [query features | candidate features]``::

        f(q, c) = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j

    With one-hot query and candidate ids only, this is matrix factorization with item biases;
    side features (user demographics, item genres, context) add their own weights and factors,
    which also score queries and candidates never seen in training (cold start).

    Training sees positives only, (query, candidate) pairs, and fits the ranking with a
    pairwise loss against sampled negatives:

    - ``"bpr"``: Bayesian personalized ranking (Rendle et al. 2009), ``log(1 + exp(-d))`` of
      the difference ``d = f(q, pos) - f(q, neg)`` for one sampled negative per positive.
      Optimizes the AUC.
    - ``"warp"``: weighted approximate-rank pairwise loss (Weston et al. 2011), as in LightFM:
      negatives are drawn until one scores within a margin of 1 of the positive (at most
      ``max_sampled`` draws); the hinge ``1 - d`` is weighted by ``log(rank estimate)``, the
      rank estimated from the number of draws. Optimizes the top of the list
      (precision@k); usually the better choice.

    In a difference the query's own terms cancel (``w0``, the query features' linear weights
    and their interactions with each other), so those stay at 0; the query factors are learned
    through their interactions with the candidate features.

    Parameters
    ----------
    n_factors : int, default=16
        Dimension k of the latent factors.
    loss : {"warp", "bpr"}, default="warp"
        Pairwise ranking loss, see above.
    negative_sampling : {"uniform", "popularity"}, default="uniform"
        How negatives are drawn: uniformly over the candidates, or in proportion to their
        number of training positives (popular candidates become harder negatives). Known
        positives of the query are never used as negatives.
    max_sampled : int, default=10
        WARP: the most negatives drawn per positive. BPR: the most draws spent finding a
        candidate that is not a positive of the query (the positive is skipped otherwise).
    eval_metric : str, default="ndcg@10"
        Validation metric (higher is better) reported in ``history_`` and monitored by early
        stopping: ``"auc"`` or ``"<name>@<k>"`` with name one of precision, recall, ndcg, map,
        hit_rate (see :mod:`fmlearn.metrics`). Training positives are excluded from the
        validation ranking.
    solver : {"adagrad", "sgd", "ftrl"}, default="adagrad"
        Per-pair stochastic gradient steps, plain, with AdaGrad step sizes or FTRL-Proximal
        (see :class:`fmlearn.FMRegressor`).
    learning_rate : float, default=0.05
        Step size (AdaGrad: initial scale of the per-coordinate steps).
    max_iter : int, default=100
        Maximum number of epochs (passes over the positives).
    l1_reg_w : float, default=0.0
        L1 regularization of the (candidate) linear weights, ``solver="ftrl"`` only.
    l2_reg_w : float, default=1e-2
        L2 regularization of the linear weights, on the coordinates a step touches.
    l2_reg_V : float, default=5e-2
        L2 regularization of the factors, on the coordinates a step touches.
    init_stdev : float, default=0.01
        Standard deviation of the normal initialization of the factors.
    fit_linear : bool, default=True
        Learn the candidate features' linear weights (e.g. item popularity biases).
    tol : float or None, default=1e-4
        Stop when the monitored value (validation metric with ``early_stopping``, else the
        mean training loss) has not improved by ``tol`` for ``n_iter_no_change`` epochs. None
        runs all ``max_iter`` epochs (unless ``early_stopping``).
    early_stopping : "auto" or bool, default="auto"
        Monitor ``eval_metric`` on held-out positives (``eval_set`` passed to ``fit``, else
        ``validation_fraction`` of the training positives) and restore the parameters of the
        best epoch. "auto": on for more than 10,000 training positives.
    validation_fraction : float, default=0.1
        Share of the positives held out when ``early_stopping`` has no ``eval_set``.
    n_iter_no_change : int or None, default=None
        Patience of the stopping rule, in epochs. None: the solver's, 20 for plain SGD (whose
        validation loss can stay on a plateau while the factors grow from a small start) and
        5 for the others.
    warm_start : bool, default=False
        ``fit`` continues from the current parameters (same feature matrices' widths).
    random_state : int, RandomState instance, Generator or None, default=None
        Seeds initialization, shuffling, negative sampling and validation splits. With
        ``n_jobs=1`` the same seed gives the same model.
    n_jobs : int or None, default=None
        Threads for training (lock-free Hogwild over the positives) and ``recommend``; None
        means 1, -1 all cores. Multi-threaded training is not bit-for-bit reproducible.
    verbose : int, default=0
        1 shows a progress bar over epochs with the training loss and validation metric.

    Attributes
    ----------
    w0_ : float
        Global bias (always 0: no pairwise loss can learn it).
    w_ : ndarray of shape (n_features_in_,)
        Linear weights: the query columns first (always 0), then the candidate columns.
    V_ : ndarray of shape (n_features_in_, n_factors)
        Latent factors, query columns first (float32).
    n_features_in_ : int
        ``n_query_features_`` + the number of candidate features.
    n_query_features_ : int
        Columns of the query feature matrix; the model's first columns.
    n_iter_ : int
        Epochs run by the last ``fit``.
    best_iteration_ : int
        Epoch whose parameters were kept, when a validation set was monitored.
    history_ : dict of lists
        Per epoch: ``"epoch"``, ``"train_<loss>"`` (mean weighted loss of each positive
        before its step; for WARP the rank-weighted hinge, 0 for positives no draw violated),
        ``"valid_<eval_metric>"`` when validating (e.g. ``"valid_ndcg@10"``), ``"time"``.

    See Also
    --------
    recommend : top-k candidates for many queries.
    fmlearn.metrics.ndcg_at_k, fmlearn.metrics.precision_at_k : evaluation.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from fmlearn.ranking import FMRanker
    >>> likes = sp.random(100, 60, density=0.1, random_state=0, format="csr")
    >>> model = FMRanker(n_factors=8, max_iter=5, random_state=0).fit(None, None, likes)
    >>> top, scores = model.recommend(k=5, exclude=likes)
    >>> top.shape
    (100, 5)
    """

    _parameter_constraints: dict = {
        **{
            name: BaseFM._parameter_constraints[name]
            for name in (
                "learning_rate", "max_iter", "l1_reg_w", "l2_reg_w", "l2_reg_V", "init_stdev",
                "fit_linear",
                "tol", "early_stopping", "validation_fraction", "n_iter_no_change",
                "warm_start", "random_state", "n_jobs", "verbose",
            )
        },
        "n_factors": [Interval(Integral, 1, None, closed="left")],
        "solver": [StrOptions({"adagrad", "sgd", "ftrl"})],
        **RANKING_CONSTRAINTS,
    }
    # Solvers read these (see SGDSolver.from_estimator): a pairwise loss has no bias gradient.
    fit_intercept = False
    # The pairwise epoch applies L2 per update, without a per-feature scale.
    l2_min_count = 0.0

    __init__ = family_init(
        RANKING_DEFAULTS,
        drop=("fit_intercept", "l2_min_count"),
        n_factors=16, learning_rate=0.05, l2_reg_w=1e-2, l2_reg_V=5e-2,
    )

    # ----------------------------------------------------------------- training
    def fit(self, queries, candidates=None, positives=None, sample_weight=None, *, eval_set=None,
            callbacks=None):
        """Learn the ranking of ``candidates`` for ``queries`` from positive pairs.

        Parameters
        ----------
        queries : {array-like, sparse matrix} of shape (n_queries, n_query_features), path or None
            Query features, one row per query (user one-hot, user side features, context),
            or a libFM/FFM file of them (labels ignored). None means one-hot query ids (the
            identity matrix).
        candidates : {array-like, sparse matrix} of shape (n_candidates, n_cand_features), \
path or None
            Candidate features, one row per candidate (item one-hot, genres...), or a file of
            them. None means one-hot candidate ids.
        positives : sparse matrix of shape (n_queries, n_candidates), int array (n, 2) or path
            The observed positives: entries > 0 of an interaction matrix (their values are not
            used; see ``sample_weight``), (query row, candidate row) index pairs, or a text
            file of pairs, ``query candidate [weight]`` per line (:func:`read_pairs`; with
            one-hot ids there are as many as the largest id + 1). The positives are held in
            memory as index pairs: there is no ``fit(path)`` over a file of labelled rows
            (see ``docs/out-of-core.md``).
        sample_weight : array-like of shape (n_positives,), default=None
            Non-negative weight of each positive (pairs order, or row-major order of the
            matrix's nonzeros), scaling its gradient.
        eval_set : sparse matrix (n_queries, n_candidates), int array (n, 2) or path, \
default=None
            Held-out positives of the same queries and candidates, ranked after every epoch
            by ``eval_metric`` (training positives excluded) into ``history_``; with
            ``early_stopping=True`` they are monitored instead of a held-out
            ``validation_fraction``, and the best epoch's parameters are restored.
        callbacks : list of callable, default=None
            Called after every epoch with an :class:`fmlearn.callbacks.EpochEnv` whose
            ``train`` is the mean training loss and ``valid`` the validation metric (named by
            ``metric``, higher is better); returning True stops training.

        Returns
        -------
        self
        """
        self._validate_params()
        _parse_metric(self.eval_metric)
        reset = not (self.warm_start and self.__sklearn_is_fitted__())
        queries, candidates, positives, sample_weight, eval_set, n_ids = self._read_files(
            queries, candidates, positives, sample_weight, eval_set)
        data = self._rank_data(queries, candidates, positives, sample_weight, n_ids=n_ids)
        solver_cls = self._solver_class()
        solver = solver_cls.from_estimator(self, self._task.loss)
        if reset:
            self._rng = _rng_from(self.random_state)
        else:
            self._check_widths(data)
        self._resolve_early_stopping(data.pos_q.size, self.max_iter, solver_cls)
        data, valid = self._split_validation(data, eval_set)
        if reset:
            self._start(data.Q.shape[1] + data.C.shape[1], solver_cls, solver, w0=0.0)
            self.n_features_in_ = data.Q.shape[1] + data.C.shape[1]
            self.n_query_features_ = data.Q.shape[1]
        else:
            self._continue(solver_cls, solver)
        valid = self._validation(data, valid)
        nq = data.Q.shape[1]
        Qk, Ck = _model_space(data.Q, None), _model_space(data.C, None, nq)
        # Unify the feature values' dtype: one compiled specialization of the epoch kernel.
        dtype = np.result_type(Qk.data.dtype, Ck.data.dtype)
        Qk, Ck = Qk._replace(data=Qk.data.astype(dtype)), Ck._replace(data=Ck.data.astype(dtype))
        known, popular = self._negatives_from(data)
        weight_sum = float(data.sample_weight.sum())

        def epoch():
            return self._epoch(data, Qk, Ck, known, popular, solver) / weight_sum

        validate = None
        if valid is not None:
            Qv = _model_space(data.Q[valid.queries], None)

            def validate():
                parts = _Parts.of(self._params, Qv, Ck, self.n_jobs)
                return score_ranking(self.eval_metric, parts, valid, self.n_jobs), None

        return self._train(epoch, validate, self.max_iter, callbacks)

    def _epoch(self, data, Qk, Ck, known, popular, solver) -> float:
        """One shuffled pass over the positives, Hogwild over ``n_jobs`` threads."""
        n = data.pos_q.size
        n_threads = max(1, min(effective_n_jobs(self.n_jobs), n))
        order = self._rng.permutation(n)
        # One independent random stream of negatives per thread's block.
        seeds = self._rng.integers(0, np.iinfo(np.int64).max, size=n_threads, dtype=np.int64)
        seed_of = {b * n // n_threads: np.uint64(s) for b, s in enumerate(seeds)}
        p = self._params
        indptr, indices = known.indptr.astype(np.int64), known.indices.astype(np.int32)

        def chunk(a, b):
            return rank_kernels.rank_epoch(
                Qk.indptr, Qk.indices, Qk.data, Ck.indptr, Ck.indices, Ck.data,
                data.pos_q, data.pos_c, data.sample_weight, order[a:b], indptr, indices,
                popular, p.table, p.n_factors, seed_of[a], self._sampling,
                self.max_sampled, solver.loss, solver.code, solver.kernel_args,
                solver.fit_intercept, solver.fit_linear,
            )

        return float(sum(run_blocks(chunk, n, n_threads)))

    # ----------------------------------------------------------------- scoring
    def decision_function(self, X) -> np.ndarray:
        """Scores of concatenated rows ``[query features | candidate features]``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_pairs, n_features_in_)
            E.g. ``scipy.sparse.hstack([queries[q], candidates[c]])``.

        Returns
        -------
        ndarray of shape (n_pairs,)
        """
        return self._raw_predict(X)

    def _top_k(self, Q, C, k, exclude):
        return recommend(self, Q, C, k, exclude=exclude, n_jobs=self.n_jobs)


def _num_rows(M) -> int:
    shape = getattr(M, "shape", None)
    if shape is None:
        shape = np.shape(M)
    if len(shape) != 2:
        raise ValueError(f"feature matrices must be 2-D, got shape {tuple(shape)}.")
    return int(shape[0])
