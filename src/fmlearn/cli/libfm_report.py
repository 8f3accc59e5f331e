"""libFM's reports for ``fmlearn libfm``: ``#Iter=`` lines, ``-rlog`` columns and metrics.

The few formulas here (RMSE, accuracy, libFM's log10 likelihood, target clipping) reproduce
libFM's *reporting*, not its training.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import numpy as np

from fmlearn.cli.libfm import BAYES
from fmlearn.cli.libfm_inputs import Split, scores

# libFM's evaluation (fm_learn.h, fm_learn_mcmc_simultaneous.h): regression predictions are
# clipped to the training targets' range; accuracy thresholds at 0.5; the MCMC log likelihood
# is a mean negative log10 likelihood with probabilities clipped to [0.01, 0.99].


def _rmse_mae(y, p, clip):
    if clip is not None:
        p = np.clip(p, *clip)
    d = np.asarray(p, dtype=np.float64) - y
    return float(np.sqrt(np.mean(d * d))), float(np.mean(np.abs(d)))


def _accuracy(y_pm, proba) -> float:
    return float(np.mean((proba >= 0.5) == (y_pm > 0)))


def _ll(y_pm, proba) -> float:
    p = np.clip(proba, 0.01, 0.99)
    m = (y_pm + 1.0) * 0.5
    return float(np.mean(-(m * np.log10(p) + (1 - m) * np.log10(1 - p))))


def libfm_metric(task: str, split: Split, p, clip) -> float:
    """What libFM prints as Train=/Test=: RMSE (clipped predictions) or accuracy."""
    if task == "r":
        return _rmse_mae(split.y, p, clip)[0]
    return _accuracy(split.y, p)


def rlog_columns(method: str, task: str, k: int, n_groups: int) -> list[str]:
    """libFM's rlog header for a method and task, in libFM's order."""
    cols = ["rmse", "mae"] if task == "r" else ["accuracy"]
    cols += ["time_pred", "time_learn", "time_learn2", "time_learn4"]
    if method == "sgd":
        return cols + ["rmse_train"]
    if method == "sgda":
        cols += ["rmse_train", "rmse_val", "wmean", "wvar"]
        for f in range(k):
            cols += [f"vmean{f}", f"vvar{f}"]
        for g in range(n_groups):
            cols += [f"regw[{g}]"] + [f"regv[{g},{f}]" for f in range(k)]
        return cols
    cols.append("alpha")
    if task == "r":
        cols += ["rmse_mcmc_this", "rmse_mcmc_all", "rmse_mcmc_all_but5"]
    else:
        cols += ["acc_mcmc_this", "acc_mcmc_all", "acc_mcmc_all_but5", "ll_mcmc_this",
                 "ll_mcmc_all", "ll_mcmc_all_but5"]
    for g in range(n_groups):
        cols += [f"wmu[{g}]", f"wlambda[{g}]"]
        for f in range(k):
            cols += [f"vmu[{g},{f}]", f"vlambda[{g},{f}]"]
    return cols


@dataclass(frozen=True)
class _Clock:
    """User CPU (libFM's getusertime), process CPU (clock()) and wall time."""

    user: float
    cpu: float
    wall: float

    @classmethod
    def now(cls) -> _Clock:
        try:  # microseconds, where os.times() has clock ticks
            import resource

            user = resource.getrusage(resource.RUSAGE_SELF).ru_utime
        except ImportError:  # pragma: no cover - Windows
            user = os.times().user
        return cls(user, time.process_time(), time.perf_counter())

    def __sub__(self, other: _Clock) -> _Clock:
        return _Clock(self.user - other.user, self.cpu - other.cpu, self.wall - other.wall)


def _estimator(env):
    model = getattr(env, "model", None)
    return model if model is not None else env.estimator


class Reporter:
    """Training callback: libFM's ``#Iter=`` lines and rlog rows, one per iteration."""

    def __init__(self, *, method, task, train, test, valid, clip, rlog, say, k, k1,
                 n_groups, reg):
        self.method, self.task = method, task
        self.train, self.test, self.valid = train, test, valid
        self.clip, self.rlog, self.say = clip, rlog, say
        self.k, self.k1, self.n_groups, self.reg = k, k1, n_groups, reg
        self.columns = rlog_columns(method, task, k, n_groups)
        self._sum_all = self._sum_but5 = None
        self._mark = _Clock.now()

    def start(self) -> None:
        if self.rlog is not None:
            self.rlog.write("\t".join(self.columns) + "\n")
            self.rlog.flush()
        self._mark = _Clock.now()

    def __call__(self, env) -> None:
        learn = _Clock.now() - self._mark
        est, i = _estimator(env), env.epoch - 1
        values = {"time_learn": learn.user}
        if self.method in BAYES:
            values.update(time_learn2=learn.cpu, time_learn4=learn.wall)
            line = self._bayes(est, i, env, values)
        else:
            line = self._sgd(est, i, values)
        self.say(line)
        if self.rlog is not None:
            self.rlog.write("\t".join(f"{values.get(c, math.nan):g}" for c in self.columns))
            self.rlog.write("\n")
            self.rlog.flush()
        self._mark = _Clock.now()

    def _metric(self, split, p) -> float:
        return libfm_metric(self.task, split, p, self.clip)

    def _sgd(self, est, i, values) -> str:
        t = _Clock.now()
        p_test = scores(est, self.test, self.task)
        values["time_pred"] = (_Clock.now() - t).user
        train = self._metric(self.train, scores(est, self.train, self.task))
        if self.task == "r":
            test, values["mae"] = _rmse_mae(self.test.y, p_test, self.clip)
            values["rmse"] = test
        else:
            values["accuracy"] = test = _accuracy(self.test.y, p_test)
        values["rmse_train"] = train
        if self.method == "sgda":
            values["rmse_val"] = self._metric(self.valid, scores(est, self.valid, self.task))
            # libFM logs the spread of the parameters with the means set to 0, and the
            # regularization SGDA has learned so far (solver="sgda": reg_w_, reg_V_).
            values["wmean"], values["wvar"] = 0.0, float(np.var(est.w_))
            V = est.V_
            for f in range(self.k):
                values[f"vmean{f}"], values[f"vvar{f}"] = 0.0, float(np.var(V[:, f]))
            reg_w, reg_V = est.reg_w_, est.reg_V_
            for g in range(min(self.n_groups, reg_w.shape[0])):
                values[f"regw[{g}]"] = float(reg_w[g])
                for f in range(self.k):
                    values[f"regv[{g},{f}]"] = float(reg_V[g, f])
        return f"#Iter={i:3d}\tTrain={train:g}\tTest={test:g}"

    def _bayes(self, est, i, env, values) -> str:
        if self.method == "mcmc":
            # The test set is the estimator's eval_set: its posterior mean output so far (over
            # the kept samples; the current sample during burn-in) is libFM's "all" prediction.
            # predict() gives the same but recomputes every kept sample's output, so it is the
            # fallback only. Train= is the current sample's training metric, as in libFM.
            p = getattr(env, "valid_output", None)
            if p is None:
                p = scores(est, self.test, self.task)
            every, this, but5 = p, None, None
            train = env.train
        else:
            p = scores(est, self.test, self.task)
            train = self._metric(self.train, scores(est, self.train, self.task))
            # libFM's ALS is its MCMC without sampling: every iterate counts as a "sample", the
            # reported prediction is the mean of the (clipped) iterates so far, and of those
            # from the 6th on.
            sample = np.clip(p, *self.clip) if self.task == "r" and self.clip else p
            if self._sum_all is None:
                self._sum_all = np.zeros_like(sample, dtype=np.float64)
                self._sum_but5 = np.zeros_like(self._sum_all)
            self._sum_all += sample
            if i >= 5:
                self._sum_but5 += sample
            every, this = self._sum_all / (i + 1), p
            but5 = self._sum_but5 / (i - 4) if i >= 5 else None
        y = self.test.y
        if self.task == "r":
            rmse, mae = _rmse_mae(y, every, self.clip)
            values.update(rmse=rmse, mae=mae, rmse_mcmc_all=rmse)
            if this is not None:
                values["rmse_mcmc_this"] = _rmse_mae(y, this, self.clip)[0]
            if but5 is not None:
                values["rmse_mcmc_all_but5"] = _rmse_mae(y, but5, self.clip)[0]
            line = f"\tTest={rmse:g}"
        else:
            acc, ll = _accuracy(y, every), _ll(y, every)
            values.update(accuracy=acc, acc_mcmc_all=acc, ll_mcmc_all=ll)
            if this is not None:
                values.update(acc_mcmc_this=_accuracy(y, this), ll_mcmc_this=_ll(y, this))
            if but5 is not None:
                values.update(acc_mcmc_all_but5=_accuracy(y, but5), ll_mcmc_all_but5=_ll(y, but5))
            line = f"\tTest={acc:g}\tTest(ll)={ll:g}"
        if self.method == "als":  # libFM's ALS: fixed hyper-parameters, alpha = 1, means 0
            values["alpha"] = 1.0
            for g in range(self.n_groups):
                if self.k1:
                    values[f"wmu[{g}]"], values[f"wlambda[{g}]"] = 0.0, self.reg[1]
                for f in range(self.k):
                    values[f"vmu[{g},{f}]"], values[f"vlambda[{g},{f}]"] = 0.0, self.reg[2]
        return f"#Iter={i:3d}\tTrain={train:g}" + line
