"""Ranking on MovieLens 100K as implicit feedback: FMRanker (WARP, BPR, side features) vs LightFM.

Positives are ratings >= 4. Train on u1.base, test on u1.test: every model ranks all 1,682
items for each user with a test positive, its u1.base positives excluded, and is scored by
precision@10 and NDCG@10 (``fmlearn.metrics``, the same top-k code for every model). Every
factor model has k = 32 latent factors.

Protocol (u1.test is never used for a choice):

1. Tuning: a seeded 20% of the u1.base rating lines is held out as validation (its ratings
   >= 4 are the validation positives), the other 80% trains. Each model fits every setting
   of its small grid for up to 150 epochs, scoring validation NDCG@10 after each epoch
   (patience 10); the setting with the best validation NDCG@10 wins, with its best epoch E.
2. Final: the chosen setting is trained on all of u1.base for E epochs with seeds 0, 1, 2 and
   scored on u1.test; the table shows the mean ± std over the seeds.

Side features: users' age group (7), gender (2) and occupation (21) from u.user; items' genres
(19) and release decade (9) from u.item, beside the one-hot ids, their values scaled by
``side_weight`` (tuned: with AdaGrad the value scale acts as the side features' step size, and
it scales their interactions with each other).

Also: ``recommend`` timed for all 943 users x 1,682 items; a cold-start experiment (a seeded
20% of the users left out of training, then ranked from their side features alone).

    benchmarks/.venv/bin/python benchmarks/ranking.py             # everything, writes the doc
    python benchmarks/ranking.py --tools fmlearn --no-write          # fmlearn only
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _report import machine_line, write_section  # noqa: E402

N_USERS, N_ITEMS = 943, 1682
K = 32  # latent factors of every model
TOP = 10
SEEDS = (0, 1, 2)
MAX_EPOCHS = 150
PATIENCE = 10
VALID_FRACTION = 0.2
RECOMMEND_TARGET = 0.2
AGE_EDGES = (18, 25, 35, 45, 50, 56)  # MovieLens 1M's age groups

# name -> (label, uses side features, grid). fmlearn settings add to FM_COMMON.
FM_COMMON = dict(n_factors=K, init_stdev=0.01, l2_reg_w=1e-5, solver="adagrad")
GRIDS = {
    "fmlearn-warp": ("FMRanker WARP", False, [
        dict(loss="warp", learning_rate=lr, l2_reg_V=reg)
        for lr in (0.02, 0.05) for reg in (1e-4, 1e-3)
    ]),
    "fmlearn-bpr": ("FMRanker BPR", False, [
        dict(loss="bpr", learning_rate=lr, l2_reg_V=reg)
        for lr in (0.05, 0.1) for reg in (1e-5, 1e-4)
    ]),
    "lightfm-warp": ("LightFM WARP", False, [
        dict(learning_rate=lr, alpha=a) for lr in (0.02, 0.05) for a in (0.0, 1e-6)
    ]),
    "fmlearn-warp-side": ("FMRanker WARP", True, [
        dict(loss="warp", learning_rate=lr, l2_reg_V=1e-3, side_weight=w)
        for lr in (0.02, 0.05) for w in (0.1, 0.3)
    ]),
    "lightfm-warp-side": ("LightFM WARP", True, [
        dict(learning_rate=lr, alpha=0.0, side_weight=w) for lr in (0.02, 0.05) for w in (0.1, 0.3)
    ]),
}
TOOLS = ("fmlearn", "lightfm")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- data
def read_ratings(path: Path) -> np.ndarray:
    return np.loadtxt(path, dtype=np.int64, delimiter="\t", ndmin=2)


def positives(table: np.ndarray) -> sp.csr_matrix:
    """Binary (users, items) matrix of the ratings >= 4 of a ratings table."""
    t = table[table[:, 2] >= 4]
    m = sp.csr_matrix((np.ones(len(t), dtype=np.float32), (t[:, 0] - 1, t[:, 1] - 1)),
                      shape=(N_USERS, N_ITEMS))
    m.sum_duplicates()
    return m


def side_features(root: Path) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(users x 30, items x 28) one-hot side features from u.user and u.item.

    Users: age group (AGE_EDGES, 7), gender (2), occupation (21, u.occupation order).
    Items: 19 genre flags (multi-hot) and release decade (1920s or earlier .. 2000s, 9; the one
    item without a date counts as 1990s).
    """
    occupations = (root / "u.occupation").read_text().split()
    users = [line.split("|") for line in (root / "u.user").read_text("latin-1").splitlines()]
    age = np.searchsorted(AGE_EDGES, [int(u[1]) for u in users], side="right")
    gender = np.array([u[2] == "F" for u in users], dtype=np.int64)
    job = np.array([occupations.index(u[3]) for u in users])
    cols = np.column_stack([age, 7 + gender, 9 + job]).ravel()
    U = sp.csr_matrix((np.ones(cols.size, np.float32), (np.repeat(np.arange(N_USERS), 3), cols)),
                      shape=(N_USERS, 9 + len(occupations)))
    items = [line.split("|") for line in (root / "u.item").read_text("latin-1").splitlines()]
    genres = sp.csr_matrix(np.array([[int(x) for x in it[5:24]] for it in items], np.float32))
    year = np.array([int(it[2][-4:]) if it[2] else 1995 for it in items])
    decade = np.clip((year - 1920) // 10, 0, 8)
    D = sp.csr_matrix((np.ones(N_ITEMS, np.float32), (np.arange(N_ITEMS), decade)),
                      shape=(N_ITEMS, 9))
    return U, sp.hstack([genres, D], format="csr")


@dataclass
class Data:
    root: Path
    base: sp.csr_matrix  # u1.base positives
    test: sp.csr_matrix  # u1.test positives
    fit: sp.csr_matrix  # the 80% of u1.base used in tuning
    valid: sp.csr_matrix  # the 20%'s positives
    user_side: sp.csr_matrix
    item_side: sp.csr_matrix
    every: np.ndarray  # u.data

    def features(self, side_weight: float | None):
        """(user rows, item rows): one-hot ids, plus the side features scaled by side_weight."""
        if side_weight is None:
            return None, None
        eye_u = sp.identity(N_USERS, dtype=np.float32, format="csr")
        eye_i = sp.identity(N_ITEMS, dtype=np.float32, format="csr")
        return (sp.hstack([eye_u, side_weight * self.user_side], format="csr"),
                sp.hstack([eye_i, side_weight * self.item_side], format="csr"))


def load(root: Path) -> Data:
    base = read_ratings(root / "u1.base")
    perm = np.random.default_rng(0).permutation(len(base))
    n_valid = int(round(VALID_FRACTION * len(base)))
    U, I = side_features(root)
    return Data(root, positives(base), positives(read_ratings(root / "u1.test")),
                positives(base[np.sort(perm[n_valid:])]), positives(base[np.sort(perm[:n_valid])]),
                U, I, read_ratings(root / "u.data"))


# ---------------------------------------------------------------------------------- scoring
def top_k_from_scores(S: np.ndarray, exclude: sp.csr_matrix | None, k: int = TOP) -> np.ndarray:
    """Top-k item indices per user from a full score matrix (LightFM, popularity)."""
    S = np.array(S, dtype=np.float64)
    if exclude is not None:
        S[np.repeat(np.arange(S.shape[0]), np.diff(exclude.indptr)), exclude.indices] = -np.inf
    part = np.argpartition(-S, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(S, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def scores_of(relevant: sp.csr_matrix, top: np.ndarray) -> tuple[float, float]:
    from fmlearn.metrics import ndcg_at_k, precision_at_k

    return precision_at_k(relevant, top_k=top, k=TOP), ndcg_at_k(relevant, top_k=top, k=TOP)


@dataclass
class Tuned:
    setting: dict
    valid_ndcg: float
    best_epoch: int
    epochs: int
    fit_s: float
    chosen: bool = False


@dataclass
class Row:
    name: str
    label: str
    side: bool
    grid: list[Tuned] = field(default_factory=list)
    chosen: Tuned | None = None
    p10: list[float] = field(default_factory=list)
    ndcg10: list[float] = field(default_factory=list)
    fit_s: list[float] = field(default_factory=list)
    status: str = ""
    description: str = ""


def fmt_setting(s: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in s.items() if k != "loss")


# ---------------------------------------------------------------------------------- fmlearn
def fm_model(setting: dict, **kw):
    from fmlearn.ranking import FMRanker

    params = {k: v for k, v in setting.items() if k != "side_weight"}
    return FMRanker(**FM_COMMON, **params, n_jobs=1, **kw)


def tune_fmlearn(row: Row, data: Data) -> None:
    for setting in GRIDS[row.name][2]:
        U, I = data.features(setting.get("side_weight", 1.0) if row.side else None)
        model = fm_model(setting, max_iter=MAX_EPOCHS, early_stopping=True,
                         n_iter_no_change=PATIENCE, tol=0.0, eval_metric=f"ndcg@{TOP}",
                         random_state=0)
        t0 = time.perf_counter()
        model.fit(U, I, data.fit, eval_set=data.valid)
        fit_s = time.perf_counter() - t0
        best = model.history_[f"valid_ndcg@{TOP}"][model.best_iteration_ - 1]
        row.grid.append(Tuned(setting, best, model.best_iteration_, model.n_iter_, fit_s))
        log(f"{row.name} {fmt_setting(setting)}: valid NDCG@10 {best:.4f} "
            f"(best epoch {model.best_iteration_} of {model.n_iter_}, {fit_s:.1f}s)")


def final_fmlearn(row: Row, data: Data, seeds) -> list:
    c = row.chosen
    U, I = data.features(c.setting.get("side_weight", 1.0) if row.side else None)
    models = []
    for seed in seeds:
        model = fm_model(c.setting, max_iter=c.best_epoch, early_stopping=False, tol=None,
                         random_state=seed)
        t0 = time.perf_counter()
        model.fit(U, I, data.base)
        row.fit_s.append(time.perf_counter() - t0)
        top, _ = model.recommend(U, I, k=TOP, exclude=data.base)
        p, n = scores_of(data.test, top)
        row.p10.append(p)
        row.ndcg10.append(n)
        log(f"{row.name} seed {seed}: test P@10 {p:.4f} NDCG@10 {n:.4f} ({row.fit_s[-1]:.1f}s)")
        models.append(model)
    row.description = (
        f"`FMRanker(n_factors={K}, loss={c.setting['loss']!r}, solver='adagrad', "
        f"learning_rate={c.setting['learning_rate']}, l2_reg_V={c.setting['l2_reg_V']:g}, "
        f"l2_reg_w={FM_COMMON['l2_reg_w']:g}, init_stdev={FM_COMMON['init_stdev']}, "
        f"max_iter={c.best_epoch}, tol=None, n_jobs=1)`"
        + (f", side features x {c.setting['side_weight']}" if row.side else "")
    )
    return models


# ---------------------------------------------------------------------------------- LightFM
def tune_lightfm(row: Row, data: Data, peer) -> None:
    fit = data.fit.tocoo()
    for setting in GRIDS[row.name][2]:
        U, I = data.features(setting.get("side_weight") if row.side else None)
        model = peer.Model(setting, K, 0, U, I)
        history = []
        for _ in range(MAX_EPOCHS):
            model.epoch(fit)
            history.append(scores_of(data.valid, top_k_from_scores(model.scores(), data.fit))[1])
            if len(history) - 1 - int(np.argmax(history)) >= PATIENCE:
                break
        best = int(np.argmax(history))
        row.grid.append(Tuned(setting, history[best], best + 1, len(history), model.fit_seconds))
        log(f"{row.name} {fmt_setting(setting)}: valid NDCG@10 {history[best]:.4f} "
            f"(best epoch {best + 1} of {len(history)}, {model.fit_seconds:.1f}s training)")


def final_lightfm(row: Row, data: Data, peer, seeds) -> list:
    c = row.chosen
    U, I = data.features(c.setting.get("side_weight") if row.side else None)
    base = data.base.tocoo()
    models = []
    for seed in seeds:
        model = peer.Model(c.setting, K, seed, U, I)
        for _ in range(c.best_epoch):
            model.epoch(base)
        row.fit_s.append(model.fit_seconds)
        p, n = scores_of(data.test, top_k_from_scores(model.scores(), data.base))
        row.p10.append(p)
        row.ndcg10.append(n)
        log(f"{row.name} seed {seed}: test P@10 {p:.4f} NDCG@10 {n:.4f} "
            f"({model.fit_seconds:.1f}s)")
        models.append(model)
    row.description = (
        f"{peer.version()}: {peer.describe(c.setting, K)}, {c.best_epoch} epochs"
        + (f", side features x {c.setting['side_weight']}" if row.side else "")
    )
    return models


# ---------------------------------------------------------------------------------- extras
def popularity_row(data: Data) -> Row:
    row = Row("popularity", "popularity", False, description="items by their number of "
              "u1.base positives")
    pop = np.asarray(data.base.sum(axis=0)).ravel()
    top = top_k_from_scores(np.tile(pop, (N_USERS, 1)), data.base)
    p, n = scores_of(data.test, top)
    row.p10, row.ndcg10 = [p], [n]
    return row


def time_recommend(model, data: Data, side_weight, repeats: int = 7) -> dict:
    """Median and best wall time of recommend(all users, all items, k=10, exclude=base)."""
    U, I = data.features(side_weight)
    if U is None:
        U = sp.identity(N_USERS, dtype=np.float32, format="csr")
        I = sp.identity(N_ITEMS, dtype=np.float32, format="csr")
    model.recommend(U, I, k=TOP, exclude=data.base)  # warm-up (kernels, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.recommend(U, I, k=TOP, exclude=data.base)
        times.append(time.perf_counter() - t0)
    return {"median": float(np.median(times)), "best": float(np.min(times)),
            "n_features": model.n_features_in_}


@dataclass
class ColdStart:
    rows: list = field(default_factory=list)  # (label, [p10], [ndcg10])
    n_new: int = 0
    n_relevant: int = 0


def cold_start(data: Data, fm_row: Row | None, lfm_row: Row | None, peer, seeds) -> ColdStart:
    """A seeded 20% of the users left out entirely; ranked from their side features only."""
    every = positives(data.every)
    rng = np.random.default_rng(0)
    new = np.sort(rng.choice(N_USERS, N_USERS // 5, replace=False))
    keep = np.ones(N_USERS, dtype=bool)
    keep[new] = False
    train = sp.diags(keep.astype(np.float32)) @ every
    train.eliminate_zeros()
    relevant = every[new]
    out = ColdStart(n_new=new.size, n_relevant=int(relevant.nnz))
    pop = np.asarray(train.sum(axis=0)).ravel()
    out.rows.append(("popularity (of the other users' positives)",
                     *[[v] for v in scores_of(relevant, top_k_from_scores(
                         np.tile(pop, (new.size, 1)), None))]))
    rand = [scores_of(relevant, np.argsort(np.random.default_rng(s).random((new.size, N_ITEMS)),
                                           axis=1)[:, :TOP]) for s in seeds]
    out.rows.append(("random", [r[0] for r in rand], [r[1] for r in rand]))
    for row, kind in ((fm_row, "fmlearn"), (lfm_row, "lightfm")):
        if row is None or row.chosen is None:
            continue
        c = row.chosen
        U, I = data.features(c.setting["side_weight"])
        U_new = U[new].tolil()
        U_new[:, :N_USERS] = 0  # a new user has no trained id: side features only
        U_new = U_new.tocsr()
        ps, ns = [], []
        for seed in seeds:
            if kind == "fmlearn":
                model = fm_model(c.setting, max_iter=c.best_epoch, early_stopping=False,
                                 tol=None, random_state=seed)
                model.fit(U, I, train)
                top, _ = model.recommend(U_new, I, k=TOP)
            else:
                model = peer.Model(c.setting, K, seed, U, I)
                coo = train.tocoo()
                for _ in range(c.best_epoch):
                    model.epoch(coo)
                top = top_k_from_scores(model.scores(U_new, I), None)
            p, n = scores_of(relevant, top)
            ps.append(p)
            ns.append(n)
            log(f"cold start {row.name} seed {seed}: P@10 {p:.4f} NDCG@10 {n:.4f}")
        out.rows.append((f"{row.label} + side features (setting chosen above)", ps, ns))
    return out


# ---------------------------------------------------------------------------------- report
def mean_std(v) -> str:
    if not v:
        return "-"
    if len(v) == 1:
        return f"{v[0]:.4f}"
    return f"{np.mean(v):.4f} ± {np.std(v, ddof=1):.4f}"


def targets(rows: dict[str, Row], timing) -> list[str]:
    def mean(name, metric):
        r = rows.get(name)
        return float(np.mean(getattr(r, metric))) if r and getattr(r, metric) else None

    out = []
    lfm = {m: mean("lightfm-warp", m) for m in ("p10", "ndcg10")}
    fm = {m: max([v for v in (mean("fmlearn-warp", m), mean("fmlearn-bpr", m)) if v is not None],
                 default=None) for m in ("p10", "ndcg10")}
    if None in lfm.values() or None in fm.values():
        out.append("- fmlearn >= LightFM WARP (ids only) on P@10 and NDCG@10: **not evaluated** "
                   "(a model did not run).")
    else:
        ok = "met" if all(fm[m] >= lfm[m] for m in fm) else "NOT met"
        out.append(
            f"- fmlearn >= LightFM WARP (ids only) on P@10 and NDCG@10: **{ok}**"
            f" (best fmlearn model {fm['p10']:.4f} / {fm['ndcg10']:.4f}, LightFM "
            f"{lfm['p10']:.4f} / {lfm['ndcg10']:.4f}; means over seeds)."
        )
    side = {m: mean("fmlearn-warp-side", m) for m in ("p10", "ndcg10")}
    if None in side.values() or None in fm.values():
        out.append("- side features better again: **not evaluated**.")
    else:
        ok = all(side[m] > fm[m] for m in fm)
        out.append(
            f"- FMRanker with side features better than without: **{'met' if ok else 'NOT met'}**"
            f" ({side['p10']:.4f} / {side['ndcg10']:.4f} against {fm['p10']:.4f} / "
            f"{fm['ndcg10']:.4f})."
        )
    if timing:
        worst = max(t["median"] for t in timing.values())
        out.append(
            f"- `recommend` for 943 users x 1,682 items under {RECOMMEND_TARGET} s: "
            f"**{'met' if worst < RECOMMEND_TARGET else 'NOT met'}** (median {worst:.3f} s, "
            "slowest model below)."
        )
    return out


def render(rows: dict[str, Row], timing, cold: ColdStart | None, data: Data, seeds, elapsed,
           load_before) -> str:
    out = ["## Ranking: MovieLens 100K as implicit feedback", ""]
    exe = Path(sys.executable)
    exe = exe.relative_to(HERE.parent) if exe.is_relative_to(HERE.parent) else Path("python")
    cmd = " ".join(shlex.quote(a) for a in [str(exe), "benchmarks/ranking.py"] + sys.argv[1:])
    out.append(
        "Reproduce: `bash benchmarks/setup_peers.sh && benchmarks/.venv/bin/python "
        "benchmarks/ranking.py` (LightFM is `lightfm-next`, in the benchmark venv only). "
        f"This run: `{cmd}`, {elapsed / 60:.1f} min in all. Machine: {machine_line()}. Load "
        f"average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after."
    )
    out += ["", "Targets:", ""] + targets(rows, timing) + [""]
    out.append(
        f"Positives: ratings >= 4 (u1.base {data.base.nnz:,}; u1.test "
        f"{data.test.nnz:,}). Every model ranks all 1,682 items for each user with a "
        "test positive, its u1.base positives excluded; k = 32 factors for every factor model; "
        f"mean ± std over seeds {', '.join(map(str, seeds))}; fit time is the training "
        "time of one final fit (one thread)."
    )
    out += ["", "| model | features | P@10 | NDCG@10 | epochs | fit time |",
            "|---|---|---:|---:|---:|---:|"]
    for row in rows.values():
        feats = "ids + side features" if row.side else "user and item ids"
        if row.name == "popularity":
            feats = "-"
        if row.status:
            out.append(f"| {row.label} | {feats} | {row.status} | | | |")
            continue
        epochs = str(row.chosen.best_epoch) if row.chosen else "-"
        fit = f"{np.mean(row.fit_s):.1f}s" if row.fit_s else "-"
        out.append(f"| {row.label} | {feats} | {mean_std(row.p10)} | {mean_std(row.ndcg10)} "
                   f"| {epochs} | {fit} |")
    if timing:
        out += ["", "`recommend` (top 10 of all 1,682 items for all 943 users, u1.base "
                "positives excluded, `n_jobs=1`; one warm-up call, then 7 timed):", ""]
        for name, t in timing.items():
            feats = "ids + side features" if rows[name].side else "ids"
            out.append(f"- {rows[name].label}, {feats} ({t['n_features']} features): median "
                       f"{t['median'] * 1000:.1f} ms, best {t['best'] * 1000:.1f} ms.")
    if cold is not None:
        out += ["", f"Cold start: a seeded 20% of the users ({cold.n_new}) is left out of "
                "training entirely; the models train on the other users' positives in u.data "
                "and rank all items for the new users from their side features alone (age "
                "group, gender, occupation; id columns empty). Relevant: the new users' "
                f"positives in u.data ({cold.n_relevant}).", "",
                "| model | P@10 | NDCG@10 |", "|---|---:|---:|"]
        for label, p, n in cold.rows:
            out.append(f"| {label} | {mean_std(p)} | {mean_std(n)} |")
    out += ["", "Chosen settings:", ""]
    for row in rows.values():
        if row.description and row.name != "popularity":
            out.append(f"- {row.label}{' + side features' if row.side else ''}: "
                       f"{row.description}")
    out += ["", f"Validation grid (80% of u1.base trains, 20% validates; seed 0; up to "
            f"{MAX_EPOCHS} epochs, patience {PATIENCE}):", "",
            "| model | setting | valid NDCG@10 | best epoch (of) | fit time | |",
            "|---|---|---:|---:|---:|---|"]
    for row in rows.values():
        for g in row.grid:
            out.append(f"| {row.label}{' + side' if row.side else ''} | {fmt_setting(g.setting)} "
                       f"| {g.valid_ndcg:.4f} | {g.best_epoch} ({g.epochs}) | {g.fit_s:.1f}s "
                       f"| {'chosen' if g.chosen else ''} |")
    out += ["", "Notes:", ""]
    out.append(
        "- Protocol: hyper-parameters and the number of epochs are chosen on a seeded 20% of "
        "u1.base (validation NDCG@10, each model's own small grid); the final models train on "
        "all of u1.base for the chosen number of epochs. u1.test is used only for the table."
    )
    out.append(
        "- fmlearn's FM of one-hot user and item ids is LightFM's model without features (a "
        "user bias, which no ranking can use, aside); with side features the FM adds the "
        "interactions among a candidate's own features (item x genre, genre x genre), LightFM "
        "only sums them."
    )
    out.append(
        "- Seeds move P@10 and NDCG@10 by about ±0.005 here, about as much as the models "
        "differ; read the ± column before the ranking of the rows."
    )
    return "\n".join(out)


# ---------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tools", default=",".join(TOOLS), help="comma list of fmlearn, lightfm")
    p.add_argument("--seeds", type=int, default=len(SEEDS), help="final fits per model")
    p.add_argument("--no-cold-start", action="store_true", help="skip the cold-start experiment")
    p.add_argument("--data", default=None,
                   help="the ml-100k folder (default: ${FMLEARN_DATA:-/work/shared/data}/ml-100k)")
    p.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = p.parse_args(argv)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for t in tools:
        if t not in TOOLS:
            p.error(f"unknown tool {t!r}; choose from {', '.join(TOOLS)}")
    seeds = tuple(range(args.seeds))
    root = Path(args.data) if args.data else (
        Path(os.environ.get("FMLEARN_DATA", "/work/shared/data")) / "ml-100k")

    start, load_before = time.perf_counter(), os.getloadavg()[0]
    data = load(root)
    peer = None
    if "lightfm" in tools:
        try:
            from peers import lightfm_rank as peer

            log(f"LightFM: {peer.version()}")
        except ImportError as exc:
            log(f"LightFM not run ({exc}); it lives in benchmarks/.venv (setup_peers.sh)")
            peer = None
    rows: dict[str, Row] = {}
    models: dict[str, list] = {}
    for name, (label, side, _) in GRIDS.items():
        row = Row(name, label, side)
        rows[name] = row
        tool = name.split("-")[0]
        if tool not in tools or (tool == "lightfm" and peer is None):
            row.status = ("not run (not in --tools)" if tool not in tools else
                          "not run (lightfm not importable; bash benchmarks/setup_peers.sh)")
            continue
        if tool == "fmlearn":
            tune_fmlearn(row, data)
        else:
            tune_lightfm(row, data, peer)
        best = max(row.grid, key=lambda g: g.valid_ndcg)
        best.chosen, row.chosen = True, best
        models[name] = (final_fmlearn(row, data, seeds) if tool == "fmlearn"
                        else final_lightfm(row, data, peer, seeds))
    rows["popularity"] = popularity_row(data)
    timing = {}
    for name in ("fmlearn-warp", "fmlearn-warp-side"):
        if models.get(name):
            side = rows[name].chosen.setting.get("side_weight") if rows[name].side else None
            timing[name] = time_recommend(models[name][0], data, side)
            log(f"recommend {name}: median {timing[name]['median'] * 1000:.1f} ms")
    cold = None
    if not args.no_cold_start and models.get("fmlearn-warp-side"):
        cold = cold_start(data, rows["fmlearn-warp-side"],
                          rows["lightfm-warp-side"] if models.get("lightfm-warp-side") else None,
                          peer, seeds)
    body = render(rows, timing, cold, data, seeds, time.perf_counter() - start, load_before)
    print(body)
    if not args.no_write:
        write_section("ranking", body)
        log("wrote the ranking section of docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
