"""ALS (coordinate descent) and MCMC (Gibbs sampling): one parameter at a time, exactly.

Both sweep the parameters in the same order with the same kernels
(:mod:`fmlearn._kernels.cd`): ALS moves each to the minimizer of the regularized squared
error given the others, MCMC draws it from its conditional posterior (Bayesian FM with
Normal-Gamma hyper-priors, Freudenthaler et al. 2011; Rendle 2012). Both fit a Gaussian model
of targets that the task gives (:mod:`fmlearn.tasks`, ``latent_targets``): the targets
themselves for regression, latent probit targets for classification (Albert and Chib 1993) and
ordered probit. Neither needs a learning rate, and MCMC needs no regularization either: its
precisions are sampled, per prior group.

A sweep:

1. takes every row's prediction from the residuals the last sweep kept current, and every
   ``REFRESH_SWEEPS`` sweeps recomputes it from scratch (multi-threaded over rows), so
   rounding in the cached residuals cannot drift;
2. asks the task for the targets: e.g. draws (MCMC) or takes the mean of (ALS) the latent
   probit targets (ordinal: after Metropolis steps of the cutpoints), on threads over blocks
   of rows, one random stream each (the task's passes: ``tasks.LatentRows``);
3. MCMC: draws the noise precision and every group's prior means and precisions, from the
   residuals' sums (``cd.residual_sums``);
4. updates ``w0``; then, feature by feature, ``w_i`` and ``v_i1 .. v_ik`` of every column of
   X (``cd.sweep_columns``), on ``n_jobs`` threads over runs of columns that share no row
   (block Gibbs: their parameters are conditionally independent; ``cd.exclusive_runs``),
   each run split between its columns or, when a few heavy columns make that uneven, by rows
   (``cd.run_step``); then each relation block, its ``w_i`` and factor by factor its
   ``v_if``, at the cost of its unique rows. Data too large to keep every row's sums go
   factor by factor instead.

Every parallel region runs on ``fmlearn._parallel.run_tasks``' kept helper threads, or where
the sweep is one region (``cd.sweep_team``) on a crew of helpers kept in compiled code, which
also runs the task's passes over the rows and the fresh starts.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from fmlearn._kernels import cd, sync
from fmlearn._kernels import fm as fm_kernels
from fmlearn._kernels import rng as krng
from fmlearn._parallel import Crew, effective_n_jobs, run_blocks, run_in_parts, run_tasks, split
from fmlearn.data.design import KernelCSR
from fmlearn.data.relation import BlockDesign
from fmlearn.models.fm import FMParams
from fmlearn.optim._registry import hyper, register_solver
from fmlearn.optim.sgd import check_no_l1, check_no_l2_min_count
from fmlearn.tasks import LatentRows
from fmlearn.tasks import for_loss as task_for_loss

# Hyper-priors of libFM and myFM: Gamma(1, 1) on the noise precision, and on each group's
# parameters a Normal-Gamma with mu_0 = 0, gamma_0 = 1, alpha_lambda = beta_lambda = 1.
ALPHA_0 = BETA_0 = 1.0
# Every row's factor sums, residual and weight (n_rows x (k + 2) float64) are kept for the
# feature-major sweep when they take less memory than this (1M rows at k = 32: 272 MiB);
# otherwise the factor-major sweep computes one factor's sums at a time.
SUMS_CACHE_BYTES = 512 * 2**20
# The feature-major sweep recomputes every row's output and sums from scratch every this many
# sweeps (a full pass, 15-20% of a sweep), and carries them over between, so rounding cannot
# drift far.
REFRESH_SWEEPS = 8
# A run of mutually exclusive columns is split over the threads when each gets at least this
# many non-zeros: below, starting threads costs more than it saves.
PARALLEL_RUN_NNZ = 8192
# What a column costs the sweep beyond its non-zeros, in non-zeros (its k + 1 draws and loop
# starts): on u1 at k = 8 the item run's cut by non-zeros left one thread 320 columns and the
# other 1,362, which took 1.35 and 1.75 ms; 16 balances them (both costs grow with k).
COLUMN_COST_NNZ = 16
# A run is split by rows instead (factor by factor over its columns, each thread on its own
# rows: cd.run_step) when one of its columns holds more than 1 / (ROW_SPLIT_SHARE *
# threads) of its non-zeros: cut between columns, the threads' shares would be uneven (side
# features: 7 age groups, a genre column alone in its run).
ROW_SPLIT_SHARE = 8
# ... and only with at least this many non-zeros per thread: a run split by rows takes one
# parallel region per parameter, and on the ML-1M-sized set (k = 32) splitting the genre runs
# (about 110,000 non-zeros) as well cost more in the main thread's steps than it saved
# (critical path 0.73x of the one-thread CPU time, against 0.66x with the heavy runs only).
ROW_SPLIT_NNZ = 250_000
# A run split by rows keeps its entries gathered on each thread, (k + 3) float64 per entry,
# for all its parameters' steps (one scratch per thread, reused run after run): a run whose
# entries would take more than this is cut between columns instead.
ROW_SPLIT_BYTES = 256 * 2**20
# The (latent) targets' draws (probit, ordinal) are split over the threads, each block of rows
# with its own random stream, when each thread gets at least this many rows.
PARALLEL_DRAW_ROWS = 8192
# The sweep's cheap row passes (residuals into and out of the rows' state, a few ns a row)
# are split when each thread gets at least this many rows: below, waking a thread costs more.
PARALLEL_PASS_ROWS = 30_000
# A relation block's aggregates over the data rows are summed in this many fixed parts of the
# rows, on up to this many threads, and then added up in order (cd.block_stats_all).
BLOCK_STATS_PARTS = 2
# A crew's helper threads (the fused sweep's, _parallel.Crew) wait this many checks for the
# next sweep before they leave: a few thousand spins, then yields of the core (some ms).
CREW_LINGER = 50_000
MU_0, GAMMA_0, ALPHA_LAMBDA, BETA_LAMBDA = 0.0, 1.0, 1.0, 1.0


def _chunk_cuts(n_rows: int, n: int) -> np.ndarray:
    """Row cuts (n + 1,) int64 of ``n`` blocks of whole chunks of ``cd.SUM_CHUNK`` rows: the
    threads' rows of the fused sweep (their sums: cd.take_residuals) and of the latent
    passes."""
    ch = cd.SUM_CHUNK
    return np.array([min(a * ch, n_rows) for a, _ in split(-(-n_rows // ch), n)] + [n_rows],
                    dtype=np.int64)


class _CSC(NamedTuple):
    indptr: np.ndarray
    rows: np.ndarray
    vals: np.ndarray


def _csc(X: KernelCSR) -> _CSC:
    m = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.n_rows, X.n_features)).tocsc()
    m.sort_indices()
    return _CSC(
        m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data.astype(np.float64)
    )


class _Block(NamedTuple):
    idx: np.ndarray
    csr: KernelCSR
    csc: _CSC
    col0: int
    scratch: np.ndarray  # (n_block_rows, 8): per block row aggregates (see _kernels.cd)


class _Data(NamedTuple):
    """What a sweep reads: the design, its columns, targets, weights, prior groups and what
    the task's latent targets read (``Task.latent_data``)."""

    X: KernelCSR | BlockDesign
    main: KernelCSR
    main_csc: _CSC
    blocks: list
    y: np.ndarray
    sw: np.ndarray
    groups: np.ndarray  # int32 (n_features,)
    group_sizes: np.ndarray  # float64 (n_groups,): features per prior group
    task_data: object = None
    runs: np.ndarray = None  # int64 (n_runs + 1,): main columns no two of which share a row
    sw_sum: float = 0.0  # sum of the row weights
    n_weighted: int = 0  # rows of non-zero weight


class _CoordinateSolver:
    """Shared sweep of :class:`ALSSolver` and :class:`MCMCSolver`."""

    sample = False
    accepts_blocks = True
    needs_validation = False
    stoppable = True
    # early_stopping="auto" stays off: ALS converges to the regularized optimum (on MovieLens
    # u1 stopping on a 10% hold-out gave RMSE 0.936 against 0.929 without).
    auto_early_stopping = False
    # What None means for l2_reg_w / l2_reg_V (on the mean loss; MCMC samples them instead).
    defaults = {"learning_rate": None, "l2_reg_w": 1e-4, "l2_reg_V": 1e-4,
                "n_iter_no_change": 5}
    classification_link = "probit"
    # What it trains (see optim.supports): the coordinate kernels are the plain FM's, with
    # closed-form (Gaussian or probit) conditionals; no multinomial or pairwise likelihood.
    families = frozenset({"fm"})
    tasks = frozenset({"regression", "binary"})

    def __init__(self, *, loss, l2_reg_w, l2_reg_V, fit_intercept, fit_linear, prior_groups,
                 n_kept_samples, max_iter, n_classes=0, task=None):
        # The task gives the (latent) targets of the sweeps and the loss.
        self.task = task_for_loss(int(loss), n_classes) if task is None else task
        # Where the task's own parameters are the intercepts (the ordinal cutpoints), the FM
        # bias stays 0.
        fit_intercept = fit_intercept and not self.task.task_intercepts
        self.l2_reg_w = float(l2_reg_w)
        self.l2_reg_V = float(l2_reg_V)
        self.fit_intercept = bool(fit_intercept)
        self.fit_linear = bool(fit_linear)
        self.prior_groups = prior_groups
        self.max_iter = int(max_iter)
        if n_kept_samples is None:
            n_kept_samples = self.max_iter - self.max_iter // 10
        self.n_kept_samples = min(int(n_kept_samples), self.max_iter)
        self.sweep = 0  # sweeps done in this fit

    @classmethod
    def from_estimator(cls, est, loss):
        check_no_l1(est, cls.name)
        check_no_l2_min_count(est, cls.name)
        return cls(
            loss=loss,
            l2_reg_w=hyper(est, "l2_reg_w", cls),
            l2_reg_V=hyper(est, "l2_reg_V", cls),
            fit_intercept=est.fit_intercept,
            fit_linear=est.fit_linear,
            prior_groups=(est._resolved_prior_groups() if hasattr(est, "_resolved_prior_groups")
                          else getattr(est, "prior_groups", None)),
            n_kept_samples=getattr(est, "n_kept_samples", None),
            max_iter=est.max_iter,
            n_classes=len(getattr(est, "classes_", ())),
            task=getattr(est, "_task", None),
        )

    @staticmethod
    def state_columns(n_param_columns: int) -> int:
        return 0

    def extra_bytes(self, n_features: int, n_factors: int) -> int:
        """Memory beyond the parameter table (kept samples), for the estimator's guard."""
        return 0

    def init_params(self, params):
        """The chain's starting point: the parameters, in float64 for exact sweeps."""
        point = params.as_point()
        k = point.n_factors
        if point.dtype == np.float64 and point.table.shape[1] == k + 1:
            return point
        return FMParams(
            point.w0.astype(np.float64),
            np.ascontiguousarray(point.table[:, : k + 1], dtype=np.float64),
            k,
        )

    def init_state(self, params):
        return {"rng": np.zeros(1, dtype=np.uint64)}

    # ------------------------------------------------------------------ data
    def prepare(self, source, validation=None) -> _Data:
        """Column-major copies of the design, prior groups; built once per ``fit``. A sweep
        visits every row per column, so it takes the source's rows all at once;
        ``validation`` is not trained on."""
        X, y, sample_weight = source.in_memory()
        main = X.main if isinstance(X, BlockDesign) else X
        blocks = []
        for b in X.blocks if isinstance(X, BlockDesign) else []:
            scratch = np.zeros((b.csr.n_rows, 8))
            blocks.append(_Block(b.idx, b.csr, _csc(b.csr), b.col0, scratch))
        groups = self._groups(X.n_features)
        sizes = np.bincount(groups, minlength=1).astype(np.float64)
        csc = _csc(main)
        starts = np.empty(main.n_features + 1, dtype=np.int64)
        n_runs = cd.exclusive_runs(csc.indptr, csc.rows, main.n_rows, starts)
        return _Data(X, main, csc, blocks, y, sample_weight, groups, sizes,
                     self.task.latent_data(y, sample_weight), starts[: n_runs + 1].copy(),
                     float(sample_weight.sum()), int(np.count_nonzero(sample_weight)))

    def _groups(self, n_features) -> np.ndarray:
        if self.prior_groups is None or not self.sample:
            return np.zeros(n_features, dtype=np.int32)
        g = np.asarray(self.prior_groups)
        if g.shape != (n_features,) or (g.size and g.dtype.kind not in "iu"):
            raise ValueError(
                f"prior_groups must give an integer group for each of the model's {n_features} "
                f"feature columns (X's columns, then each relation block's), got "
                f"{g.dtype} of shape {g.shape}."
            )
        # Any integer labels: relabel to 0 .. n_groups - 1.
        return np.unique(g, return_inverse=True)[1].astype(np.int32).ravel()

    # ------------------------------------------------------------------ sweep
    def _priors(self, params, data, state, rng, sse):
        """Noise precision and the (mu, lambda) priors of w (n_groups,) and V (k, n_groups);
        ``sse``: the weighted sum of squared residuals."""
        # ALS: the penalties are on the mean weighted loss, so on the total they scale with
        # the weight of the rows (one l2 value fits data of any size, as for SGD).
        k = params.n_factors
        n = data.sw_sum
        return (1.0, np.zeros(1), np.full(1, self.l2_reg_w * n), np.zeros((k, 1)),
                np.full((k, 1), self.l2_reg_V * n))

    @staticmethod
    def _predict_with_sums(params, data, n_threads, R):
        """Predictions, and every row's factor sums into ``R[:, :k]``, in one threaded pass."""
        X, k, table = data.X, params.n_factors, params.table
        if not isinstance(X, BlockDesign):
            X = BlockDesign(X, [])
        n_br = max(X.n_block_rows, 1)
        lin, Qb, sq = np.zeros(n_br), np.zeros((n_br, k)), np.zeros(n_br)
        for b, off in zip(X.blocks, X.row_offset, strict=True):
            c = b.csr
            end = off + c.n_rows
            fm_kernels.block_sums(c.indptr, c.indices, c.data, b.col0, table, k, lin[off:end],
                                  Qb[off:end], sq[off:end])
        m = X.main
        pred = np.empty(m.n_rows)

        sums = R.T  # R[n, f] as sums[f, n]: the blocked prediction writes the sweep's layout

        def rows(a, z):
            fm_kernels.predict_blocked(m.indptr, m.indices, m.data, params.w0, table, k, X.idx,
                                       X.row_offset, lin, Qb, sq, a, z, pred, sums, True)

        run_blocks(rows, m.n_rows, n_threads)
        return pred

    def _factor_sums(self, data, table, f, q, n_threads):
        m = data.main

        def rows(a, b):
            cd.factor_sums(m.indptr, m.indices, m.data, 0, table, f, a, b, q)

        run_blocks(rows, m.n_rows, n_threads)
        for b in data.blocks:
            qb = np.empty(b.csr.n_rows)
            c = b.csr
            cd.factor_sums(c.indptr, c.indices, c.data, b.col0, table, f, 0, c.n_rows, qb)

            def gather(a, z, qb=qb, idx=b.idx):
                cd.add_gathered(q, qb, idx, a, z)

            run_blocks(gather, m.n_rows, n_threads)

    def run_epoch(self, params, state, data: _Data, rng, n_jobs=1):
        """One sweep over all parameters; returns the sum of weighted losses after it."""
        jobs = effective_n_jobs(n_jobs)
        n_rows = data.main.n_rows
        n_threads = min(jobs, max(1, n_rows // 20000))
        passes = min(jobs, max(1, n_rows // PARALLEL_PASS_ROWS))
        table, k, wcol = params.table, params.n_factors, params.n_factors
        sample, r = self.sample, state["rng"]
        if sample and not r[0]:
            r[0] = rng.integers(1, np.iinfo(np.int64).max)
        R = None
        sums = None  # the residuals' sums, where the last sweep's end left them
        if n_rows * (k + 2) * 8 > SUMS_CACHE_BYTES:
            pred = FMParams.decision_function(params, data.X, n_threads)
        else:
            # Each row's factor sums, then (below) residual and weight: see cd.sweep_columns.
            # Kept from sweep to sweep: fresh pages would cost a page fault per 4 KiB.
            R = getattr(self, "_rows", None)
            if R is None or R.shape != (n_rows, k + 2):
                R = self._rows = np.empty((n_rows, k + 2))
                R[:, k + 1] = data.sw
                self._e, self._pred = np.empty(n_rows), np.empty(n_rows)
                self._parts = np.empty((-(-n_rows // cd.SUM_CHUNK), 3))
                self._until_refresh = 0
            if self._until_refresh == 0:
                if self._refresh_on_crew(data, state, params, R):
                    pred = self._pred
                else:
                    pred = self._predict_with_sums(params, data, n_threads, R)
                self._until_refresh = REFRESH_SWEEPS
            else:
                # The sweep kept every row's sums and residual current (exactly, up to
                # rounding), and its end left the outputs and, for the same targets, their
                # residuals' sums (cd.take_residuals).
                pred, sums = self._pred, self._next_sums
            self._until_refresh -= 1
        target = self.task.latent_targets(params, data.task_data, data.y, data.sw, pred, state,
                                          r, sample=sample, sweep=self.sweep,
                                          rows=self._latent_rows(data, state, params, R, pred,
                                                                 jobs))
        # The residuals' sums before R is written: the noise precision's and the bias's. In
        # chunks of rows summed in order (cd.SUM_CHUNK): the same sums, so ALS the same
        # result, for any n_jobs. Kept only for targets that stay (drawn ones may come anew
        # in the same array: the crew's).
        if sums is not None and sums[0] is target and not self.task.latent_draws:
            s_e, s_ee = sums[1], sums[2]
        else:
            s_e, s_ee = cd.residual_sums(target, pred, data.sw, 0, n_rows)
        alpha, mu_w, lam_w, mu_V, lam_V = self._priors(params, data, state, rng, s_ee)
        groups, sw = data.groups, data.sw
        shift = 0.0
        if self.fit_intercept:
            s_h = data.sw_sum
            old = float(params.w0[0])
            mean = old + s_e / s_h
            new = mean + (rng.standard_normal() / np.sqrt(alpha * s_h) if sample else 0.0)
            params.w0[0] = new
            shift = new - old
        prior = (alpha, mu_w, lam_w, mu_V, lam_V)
        team = self._team(data, state, jobs, k) if R is not None else None
        if team is not None:
            # Feature-major, the whole sweep in one parallel region (cd.sweep_team).
            e, pred = self._sweep_team(team, data, state, params, R, prior, target, pred,
                                       shift)
        elif R is not None:
            # Feature-major: every main column's w_i and v_i (block Gibbs over threads), then
            # the blocks factor by factor.
            run_blocks(lambda a, b: cd.set_residuals(target, pred, shift, R, a, b), n_rows,
                       passes)
            self._sweep_main(data, state, table, R, prior, jobs)
            for b in data.blocks:
                self._sweep_block_whole(b, data, table, wcol, R, prior, r, jobs)
            e, pred, parts, ch = self._e, self._pred, self._parts, cd.SUM_CHUNK
            code, cut = self.task.latent_code, self.task.kernel_cutpoints(params)
            run_blocks(lambda a, b: cd.take_residuals(R, target, e, pred, a * ch,
                                                      min(b * ch, n_rows), sw, parts, code,
                                                      data.y, cut),
                       parts.shape[0], passes)
        else:
            # Factor-major, one factor's sums at a time: data too large for all of Q.
            e = target - pred
            e -= shift
            if self.fit_linear:
                c = data.main_csc
                cd.update_linear(c.indptr, c.rows, c.vals, 0, e, sw, table, wcol, alpha, mu_w,
                                 lam_w, groups, sample, r)
                self._sweep_blocks_linear(data, table, wcol, e, prior, r)
            q = np.zeros(n_rows)
            for f in range(k):
                q[:] = 0.0
                self._factor_sums(data, table, f, q, n_threads)
                c = data.main_csc
                cd.update_factor(c.indptr, c.rows, c.vals, 0, f, e, q, sw, table, alpha, mu_V[f],
                                 lam_V[f], groups, sample, r)
                self._sweep_blocks_factor(data, table, f, e, q, prior, r)
        self._after_sweep(params, state, alpha)
        if R is not None:  # the loss from the sweep's last pass (cd.take_residuals)
            s_e, s_ee, loss = cd.chunk_totals(self._parts)
            self._next_sums = (target, s_e, s_ee)
            return loss
        return self.task.latent_loss(params, data.y, sw, target, e,
                                     min(jobs, max(1, n_rows // PARALLEL_DRAW_ROWS)))

    @staticmethod
    def _streams(state, n_threads):
        """The threads' random streams (uint64 (n_threads,)), drawn from the chain's own
        stream the first time they are needed: the same (random_state, n_jobs), the same
        chain. Never drawn while nothing is split, so such a chain is the one-thread chain."""
        streams = state.get("rng_threads")
        if streams is None or streams.shape[0] != n_threads:
            streams = np.empty(n_threads, dtype=np.uint64)
            for t in range(n_threads):
                streams[t] = krng.next_seed(state["rng"])
            state["rng_threads"] = streams
        return streams

    def _draw_streams(self, state, n_rows, jobs):
        """One stream per block of rows of the (latent) targets' draws, or None: one thread."""
        t = min(jobs, n_rows // PARALLEL_DRAW_ROWS)
        if t < 2 or not self.task.latent_draws:
            return None
        if not self.sample:  # ALS: conditional means, nothing drawn
            return np.zeros(t, dtype=np.uint64)
        return self._streams(state, jobs)[:t]

    def _latent_rows(self, data, state, params, R, pred, jobs):
        """The :class:`~fmlearn.tasks.LatentRows` of this sweep: the rows' blocks of
        :func:`_chunk_cuts` (those of the fused sweep), on the fused sweep's crew where it
        lives and has as many threads."""
        n_rows = data.main.n_rows
        streams = self._draw_streams(state, n_rows, jobs)
        cuts = None if streams is None else _chunk_cuts(n_rows, streams.shape[0])
        crew = None
        if streams is not None and R is not None and not data.blocks:
            def crew(mode, cut, proposal):
                return self._latent_on_crew(data, state, params, R, pred, streams, mode, cut,
                                            proposal)
        return LatentRows(self.task.latent_code, data.y, pred, data.sw, self.sample,
                          state["rng"], streams, cuts, crew)

    def _latent_on_crew(self, data, state, params, R, pred, streams, mode, cut, proposal):
        """A latent pass (:func:`cd.latent_rows`) on the fused sweep's crew: ``(target,
        deltas)`` in the crew's own arrays, or None where no crew lives for these arrays and
        this many threads."""
        crew = self._live_crew(data, state, params, R)
        if (crew is None or crew.n_threads != streams.shape[0]
                or crew.deltas.shape[1] != cut.shape[0]):
            return None
        if pred is not self._pred:  # a refreshed sweep's outputs
            self._pred[:] = pred
        crew.cut[:] = cut
        crew.proposal[:] = proposal
        crew.ctrl[sync.MODE] = mode
        crew.run(lambda: cd.latent_part(0, crew.n_threads, crew.ctrl, self._team_plan[0], mode,
                                        self.task.latent_code, data.y, self._pred, crew.target,
                                        data.sw, crew.cut, crew.proposal, self.sample, streams,
                                        crew.deltas))
        crew.ctrl[sync.MODE] = 0
        if mode == cd.LATENT_DRAW:
            crew.last_target = crew.target
        return crew.target, crew.deltas

    def _sweep_block_whole(self, b, data, table, wcol, R, prior, r, jobs):
        """A relation block's ``w_i``, then its ``v_if`` factor by factor, with two passes over
        the data rows (``cd.block_stats_all``) instead of two per factor."""
        alpha, mu_w, lam_w, mu_V, lam_V = prior
        k = R.shape[1] - 2
        n_br = b.scratch.shape[0]
        # The aggregates over the data rows in BLOCK_STATS_PARTS fixed parts of the rows, on
        # up to that many threads, then added up in order: the same sums for any n_jobs. Kept
        # from sweep to sweep: fresh pages would cost a page fault per 4 KiB.
        shape = (BLOCK_STATS_PARTS, n_br, 2 + 3 * k + k * (k - 1) // 2)
        # The data rows by block row (cd.block_stats_all), made once per fit.
        kept = self.__dict__.setdefault("_block_stats", {})
        if kept.get(id(b), (None,))[0] is not b or kept[id(b)][1].shape != shape:
            kept[id(b)] = (b, np.empty(shape), np.argsort(b.idx, kind="stable"))
        _, Ps, order = kept[id(b)]
        parts = split(R.shape[0], BLOCK_STATS_PARTS)
        run_in_parts([lambda t=t, a=a, z=z: cd.block_stats_all(b.idx, order, R, Ps[t], a, z)
                      for t, (a, z) in enumerate(parts)], jobs)
        P = Ps[0]
        for t in range(1, BLOCK_STATS_PARTS):
            P += Ps[t]
        DQs, Bs = np.empty((n_br, k)), np.empty((n_br, k))
        A = b.scratch
        A[:, cd.C] = P[:, 0]
        A[:, cd.E] = P[:, 1]
        A[:, cd.B] = 0.0
        csc = b.csc
        if self.fit_linear:
            cd.block_update_linear(csc.indptr, csc.rows, csc.vals, b.col0, A, table, wcol, alpha,
                                   mu_w, lam_w, data.groups, self.sample, r)
        Blin = A[:, cd.B].copy()
        for f in range(k):
            cd.block_start_factor(P, A, f, DQs, Bs, Blin)
            cd.block_update_factor(csc.indptr, csc.rows, csc.vals, b.col0, f, A, table, alpha,
                                   mu_V[f], lam_V[f], data.groups, self.sample, r)
            DQs[:, f] = A[:, cd.DQ]
            Bs[:, f] = A[:, cd.B]
        run_in_parts([lambda a=a, z=z: cd.block_apply_all(b.idx, R, DQs, Bs, Blin, a, z)
                      for a, z in parts], jobs)

    def _sweep_blocks_linear(self, data, table, wcol, e, prior, r):
        alpha, mu_w, lam_w, _, _ = prior
        for b in data.blocks:
            A = b.scratch
            cd.block_linear_stats(b.idx, data.sw, e, A)
            cd.block_update_linear(b.csc.indptr, b.csc.rows, b.csc.vals, b.col0, A, table,
                                   wcol, alpha, mu_w, lam_w, data.groups, self.sample, r)
            cd.block_apply_linear(b.idx, e, A)

    def _sweep_blocks_factor(self, data, table, f, e, q, prior, r):
        alpha, _, _, mu_V, lam_V = prior
        for b in data.blocks:
            A = b.scratch
            cd.block_factor_stats(b.idx, data.sw, e, q, A)
            cd.block_update_factor(b.csc.indptr, b.csc.rows, b.csc.vals, b.col0, f, A, table,
                                   alpha, mu_V[f], lam_V[f], data.groups, self.sample, r)
            cd.block_apply_factor(b.idx, e, q, A)

    def _plan(self, data, n_threads, k):
        """Per run of mutually exclusive main columns ``(a, b, cuts)``: ``cuts`` the column
        cuts of its threads, or None for a run split by rows (``self._pieces``: per thread,
        the CSC of its block of rows, of those runs' columns; ``self._run_scratch``: per
        thread, room for the entries of its largest such run)."""
        key = (id(data.runs), n_threads, k)
        if getattr(self, "_plan_key", None) != key:
            ip, runs = data.main_csc.indptr, data.runs
            plan, by_rows = [], np.zeros(data.main.n_features)
            for a, b in zip(runs[:-1], runs[1:], strict=True):
                nnz = int(ip[b] - ip[a])
                t = n_threads if nnz >= PARALLEL_RUN_NNZ * n_threads else 1
                widest = int(np.diff(ip[a: b + 1]).max(initial=0))
                room = nnz * (k + 3) * 8  # its gathered entries, over all threads
                if (t > 1 and widest * ROW_SPLIT_SHARE * t > nnz and nnz >= ROW_SPLIT_NNZ * t
                        and room <= ROW_SPLIT_BYTES):
                    plan.append((a, b, None))
                    by_rows[a:b] = 1.0
                    continue
                # Equal shares of the cost: a run's rare columns cost more per non-zero.
                cost = ip[a: b + 1] - ip[a] + COLUMN_COST_NNZ * np.arange(b - a + 1)
                cuts = np.searchsorted(cost, np.arange(t + 1) * cost[-1] / t, "left")
                cuts = a + np.minimum(cuts, b - a)
                cuts[0], cuts[-1] = a, b
                plan.append((a, b, cuts))
            pieces, run_scratch = [], []
            if by_rows.any():
                m = data.main
                X = sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.n_rows, m.n_features))
                X = (X @ sp.diags(by_rows)).tocsr()
                X.eliminate_zeros()
                for a, b in split(m.n_rows, n_threads):
                    c = X[a:b].tocsc()
                    c.sort_indices()
                    pieces.append(_CSC(c.indptr.astype(np.int64), (c.indices + a).astype(np.int32),
                                       c.data.astype(np.float64)))
                    largest = max(int(c.indptr[r1] - c.indptr[r0]) for r0, r1, cuts in plan
                                  if cuts is None)
                    run_scratch.append(np.empty((k + 3, max(largest, 1))))
            widest = int(np.diff(ip).max(initial=0))
            self._plan_key, self._plan_cuts, self._widest, self._scratch = key, plan, widest, []
            self._pieces, self._run_scratch = pieces, run_scratch
        return self._plan_cuts

    def _sweep_main(self, data, state, table, R, prior, n_threads):
        """``w_i`` and ``v_i`` of every main column, feature by feature; runs of columns that
        share no row are split over ``n_threads`` threads, by columns (each thread with its
        own random stream, ``state["rng_threads"]``, drawn from the chain's generator when
        first needed) or by rows (:meth:`_sweep_by_rows`)."""
        alpha, mu_w, lam_w, mu_V, lam_V = prior
        c, k, sample = data.main_csc, R.shape[1] - 2, self.sample
        plan = self._plan(data, n_threads, k)
        width = max((len(cuts) - 1 for _, _, cuts in plan if cuts is not None), default=1)
        # Small data is never split: its chain stays the one-thread chain whatever n_jobs.
        streams = (self._streams(state, n_threads) if width > 1 and sample
                   else np.zeros(n_threads, dtype=np.uint64))
        while len(self._scratch) < width:  # one scratch per thread
            self._scratch.append(np.empty((k + 3, max(self._widest, 1))))

        def columns(a, b, r, t=0):
            cd.sweep_columns(c.indptr, c.rows, c.vals, a, b, 0, R, table, k, self.fit_linear,
                             alpha, mu_w, lam_w, mu_V, lam_V, data.groups, sample, r,
                             self._scratch[t])

        for a, b, cuts in plan:
            if cuts is None:
                self._sweep_by_rows(a, b, data, state, table, R, prior)
            elif len(cuts) == 2:
                columns(a, b, state["rng"])
            else:
                run_tasks([lambda u=u, cuts=cuts: columns(cuts[u], cuts[u + 1],
                                                          streams[u: u + 1], u)
                           for u in range(len(cuts) - 1)])

    def _team(self, data, state, n_threads, k):
        """``(row_cuts, run_cuts, run_split, streams)`` for :meth:`_sweep_team`, or None where
        the sweep keeps its separate regions: one thread, no run split over the threads,
        relation blocks, or a run split by rows."""
        if n_threads < 2 or data.blocks:
            return None
        plan = self._plan(data, n_threads, k)
        key = (self._plan_key, data.main.n_rows)
        if getattr(self, "_team_key", None) != key:
            team = None
            if all(cuts is not None for _, _, cuts in plan) and any(
                    len(cuts) > 2 for _, _, cuts in plan):
                run_cuts = np.empty((len(plan), n_threads + 1), dtype=np.int64)
                run_split = np.empty(len(plan), dtype=np.bool_)
                for u, (a, b, cuts) in enumerate(plan):
                    run_split[u] = len(cuts) > 2
                    run_cuts[u] = cuts if run_split[u] else [a] + [b] * n_threads
                team = (_chunk_cuts(data.main.n_rows, n_threads), run_cuts, run_split)
            self._team_key, self._team_plan = key, team
        if self._team_plan is None:
            return None
        streams = (self._streams(state, n_threads) if self.sample
                   else np.zeros(n_threads, dtype=np.uint64))
        return (*self._team_plan, streams)

    def _sweep_team(self, team, data, state, params, R, prior, target, pred, shift):
        """The main columns' sweep with its residual passes, as one parallel region: the
        calling thread runs part 0 of :func:`cd.sweep_team` and a crew of helpers, kept in
        :func:`cd.team_loop` from sweep to sweep (``_parallel.Crew``), the other parts (the
        same draws as :meth:`_sweep_main`'s regions). Returns the residuals and outputs."""
        alpha, mu_w, lam_w, mu_V, lam_V = prior
        row_cuts, run_cuts, run_split, streams = team
        k, n_threads = R.shape[1] - 2, run_cuts.shape[1] - 1
        while len(self._scratch) < n_threads:  # one scratch per thread
            self._scratch.append(np.empty((k + 3, max(self._widest, 1))))
        crew = self._live_crew(data, state, params, R, mu_V.shape)
        if crew is None:
            if getattr(self, "_crew", None) is not None:
                self._crew.close()
            crew = self._new_crew(n_threads, row_cuts, R, data, run_cuts, run_split, params,
                                  state, streams, mu_V.shape)
        if pred is not self._pred:  # a refreshed sweep's outputs
            self._pred[:] = pred
        if target is not crew.last_target:  # fixed for regression, drawn anew for probit
            crew.target[:] = target
            crew.last_target = target
        crew.scal[0], crew.scal[1] = alpha, shift
        crew.cut[:] = self.task.kernel_cutpoints(params)  # the loss's (the task's own)
        crew.mu_w[:], crew.lam_w[:], crew.mu_V[:], crew.lam_V[:] = mu_w, lam_w, mu_V, lam_V
        crew.ctrl[sync.MODE] = 0
        crew.run(lambda: cd.sweep_team(0, *crew.sweep_args(0)))
        return self._e, self._pred

    def _crew_arrays(self, data, state, params, R):
        """The arrays a crew's helpers hold from sweep to sweep (:meth:`_new_crew`): the
        per-sweep values are copied into the crew's own, and a new crew starts when any of
        these is another array."""
        return (self._team_plan[0], R, data.main_csc.indptr, data.main.indptr, params.table,
                params.w0, data.groups, data.sw, data.y, state["rng"], state.get("rng_threads"),
                self._e, self._pred, self._parts, self.task.kernel_cutpoints(params))

    def _live_crew(self, data, state, params, R, prior_shape=None):
        """This solver's crew if it works and was made for these arrays (and, if given, priors
        of this (k, n_groups) shape), else None."""
        crew = getattr(self, "_crew", None)
        if (crew is None or crew.broken
                or any(a is not b for a, b in zip(
                    crew.arrays, self._crew_arrays(data, state, params, R), strict=True))
                or prior_shape not in (None, crew.mu_V.shape)):
            return None
        return crew

    def _refresh_on_crew(self, data, state, params, R):
        """The rows' outputs and factor sums from scratch (every REFRESH_SWEEPS sweeps) on the
        fused sweep's crew, while its helpers linger; False if there is none to use."""
        if data.blocks or getattr(self, "_team_plan", None) is None:
            return False
        crew = self._live_crew(data, state, params, R)
        if crew is None:
            return False
        crew.ctrl[sync.MODE] = 1
        m, k = data.main, R.shape[1] - 2
        crew.run(lambda: cd.refresh_part(0, crew.n_threads, crew.ctrl, self._team_plan[0],
                                         m.indptr, m.indices, m.data, params.w0, params.table,
                                         k, R, self._pred))
        crew.ctrl[sync.MODE] = 0
        return True

    def _new_crew(self, n_threads, row_cuts, R, data, run_cuts, run_split, params, state,
                  streams, prior_shape):
        ctrl = np.zeros(sync.CTRL_SIZE, dtype=np.int64)
        target = np.empty_like(self._pred)
        scal = np.empty(2)
        mu_w, lam_w = np.empty(prior_shape[1]), np.empty(prior_shape[1])
        mu_V, lam_V = np.empty(prior_shape), np.empty(prior_shape)
        c, m, k = data.main_csc, data.main, R.shape[1] - 2
        # The task's: its cutpoints (the loss's, a pass's), proposal and each thread's share
        # of the acceptance ratios (cd.latent_rows).
        cut = self.task.kernel_cutpoints(params).copy()
        proposal, deltas = np.empty_like(cut), np.zeros((n_threads, cut.shape[0]))

        def sweep_args(t):  # cd.sweep_team's, after the thread's index
            return (n_threads, ctrl, row_cuts, target, self._pred, scal, R, c.indptr, c.rows,
                    c.vals, run_cuts, run_split, params.table, k, self.fit_linear, mu_w, lam_w,
                    mu_V, lam_V, data.groups, self.sample, state["rng"], streams,
                    self._scratch[t], self._e, self._pred, data.sw, self._parts,
                    self.task.latent_code, data.y, cut)

        crew = Crew(n_threads, lambda t, seen: cd.team_loop(
            t, seen, CREW_LINGER, *sweep_args(t), m.indptr, m.indices, m.data, params.w0,
            proposal, deltas), ctrl)
        crew.arrays = self._crew_arrays(data, state, params, R)
        crew.sweep_args, crew.target, crew.scal = sweep_args, target, scal
        crew.cut, crew.proposal, crew.deltas = cut, proposal, deltas
        crew.last_target = None
        crew.mu_w, crew.lam_w, crew.mu_V, crew.lam_V = mu_w, lam_w, mu_V, lam_V
        self._crew = crew
        return crew

    def _sweep_by_rows(self, a, b, data, state, table, R, prior):
        """Run ``a:b`` parameter by parameter over its columns (``w``, then ``v_0 .. v_k-1``),
        each thread summing and updating its own block of rows, gathered once for the whole
        run (``cd.run_step``: the last parameter's change, then the next one's sums, in one
        region); the draws in column order from the chain's own stream, so the chain does not
        depend on the threads but through the rounding of the sums."""
        alpha, mu_w, lam_w, mu_V, lam_V = prior
        k, n, pieces = R.shape[1] - 2, b - a, self._pieces
        outs = [np.empty((n, 2)) for _ in pieces]
        old, new = np.empty(n), np.empty(n)
        steps = ([k] if self.fit_linear else []) + list(range(k))
        f_prev = -1
        for f in [*steps, -1]:
            run_tasks([lambda t=t, p=p, f=f, f_prev=f_prev: cd.run_step(
                p.indptr, p.rows, p.vals, a, b, R, self._run_scratch[t], f_prev, old, new,
                table, f, outs[t]) for t, p in enumerate(pieces)])
            if f < 0:
                break
            total = outs[0].copy()
            for o in outs[1:]:
                total += o
            mu, lam = (mu_w, lam_w) if f == k else (mu_V[f], lam_V[f])
            old[:] = table[a:b, f]
            cd.run_values(table, a, b, f, total, alpha, mu, lam, data.groups, self.sample,
                          state["rng"], new)
            table[a:b, f] = new
            f_prev = f

    def _after_sweep(self, params, state, alpha):
        pass


@register_solver
class ALSSolver(_CoordinateSolver):
    """Alternating least squares, as libFM's ``-method als``: exact coordinate descent.

    Each sweep sets every parameter, in turn, to the minimizer of
    ``sum_n s_n (y_n - y(x_n))^2 / sum_n s_n + l2_reg_w ||w||^2 + l2_reg_V ||V||^2`` given
    the others, at O(k * nnz) per sweep; the loss never increases. The penalties are on the
    mean loss, so the same values suit data of any size (libFM's ``-regular r``, on the total,
    is ``r / n_rows`` here). Classification fits the
    probit model by EM (latent targets at their conditional mean). Multi-threaded: the
    per-sweep predictions, and the updates of columns that share no row (the same result as
    one thread: their updates commute).
    """

    name = "als"


@register_solver
class MCMCSolver(_CoordinateSolver):
    """Bayesian FM by Gibbs sampling, as libFM's ``-method mcmc``.

    Every sweep draws the noise precision, each prior group's mean and precision of ``w`` and
    of each factor of ``V`` (Normal-Gamma hyper-priors), ``w0``, every ``w_i`` and every
    ``v_if`` from their conditional posteriors. No learning rate and no regularization to tune.
    The last ``n_kept_samples`` sweeps are kept; predictions average over them. Classification
    samples latent probit targets. Multi-threaded: the per-sweep predictions, and block Gibbs
    over columns that share no row, each thread with its own random stream (the same
    ``(random_state, n_jobs)``, the same chain).
    """

    name = "mcmc"
    sample = True
    stoppable = False
    tasks = frozenset({"regression", "binary", "ordinal"})  # ordered probit

    def extra_bytes(self, n_features, n_factors):
        return self.n_kept_samples * n_features * (n_factors + 1) * 4

    def init_params(self, params):
        """A chain (the container's posterior, e.g. a
        :class:`~fmlearn.models.posterior.PosteriorFM`) from the current point."""
        return params.as_point().posterior(self.n_kept_samples)

    def init_state(self, params):
        k = params.n_factors
        return {
            "rng": np.zeros(1, dtype=np.uint64),
            "alpha": np.ones(1),
            "lam_w": np.ones(1),
            "lam_V": np.ones((k, 1)),
        }

    def _priors(self, params, data, state, rng, sse):
        k = params.n_factors
        r = state["rng"]
        if self.task.latent_probit:
            alpha = 1.0
        else:
            alpha = krng.gamma(r, 0.5 * (ALPHA_0 + data.n_weighted),
                               1.0 / (0.5 * (BETA_0 + sse)))
        state["alpha"][0] = alpha
        n_g = data.group_sizes
        n_groups = n_g.shape[0]
        if state["lam_w"].shape[0] != n_groups:
            state["lam_w"] = np.ones(n_groups)
            state["lam_V"] = np.ones((k, n_groups))
        mu_w, mu_V = np.empty(n_groups), np.empty((k, n_groups))
        sums, squares = np.empty((n_groups, k + 1)), np.empty((n_groups, k + 1))
        cd.draw_hyper(params.table, data.groups, n_g, GAMMA_0, MU_0, ALPHA_LAMBDA, BETA_LAMBDA,
                      state["lam_w"], state["lam_V"], mu_w, mu_V, sums, squares, r)
        return alpha, mu_w, state["lam_w"], mu_V, state["lam_V"]

    def _after_sweep(self, params, state, alpha):
        self.sweep += 1
        if self.sweep > self.max_iter - self.n_kept_samples:
            params.add_sample(alpha)
