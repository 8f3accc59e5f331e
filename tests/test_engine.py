"""fmlearn.engine.train over plain callables: the loop any model family reuses."""

import math

import pytest

from fmlearn.callbacks import EarlyStopping
from fmlearn.engine import History, stopping_rule, train


class Toy:
    """A 'model' whose parameter is a counter; its validation curve is given."""

    def __init__(self, valid_curve, train_curve=None):
        self.param = 0
        self.valid_curve = valid_curve
        self.train_curve = train_curve

    def epoch(self):
        self.param += 1
        return self.train_curve[self.param - 1] if self.train_curve else 1.0 / self.param

    def validate(self):
        return self.valid_curve[self.param - 1], None


def test_early_stopping_restores_the_best_validation_epoch():
    toy = Toy([5.0, 3.0, 2.0, 2.5, 2.6, 2.7, 2.8, 1.0])
    stoppers = stopping_rule(8, early_stopping=True, tol=0.0, n_iter_no_change=3,
                             validating=True)
    result = train(toy.epoch, max_iter=8, metric="rmse", validate=toy.validate,
                   stoppers=stoppers, snapshot=lambda: toy.param)
    assert result.n_iter == 6  # epochs 4, 5, 6 did not improve on epoch 3
    assert result.best_epoch == 3 and result.best_snapshot == 3


def test_maximized_metric():
    toy = Toy([0.1, 0.3, 0.2, 0.2, 0.2])
    stoppers = stopping_rule(5, early_stopping=True, tol=0.0, n_iter_no_change=2,
                             validating=True, mode="max")
    result = train(toy.epoch, max_iter=5, metric="ndcg@10", validate=toy.validate,
                   stoppers=stoppers, snapshot=lambda: toy.param)
    assert (result.n_iter, result.best_epoch, result.best_snapshot) == (4, 2, 2)


def test_training_metric_tolerance_restores_nothing():
    toy = Toy([0] * 10, train_curve=[1.0, 0.5, 0.5, 0.5, 0.5, 0.5])
    stoppers = stopping_rule(6, early_stopping=False, tol=1e-3, n_iter_no_change=2,
                             validating=False)
    result = train(toy.epoch, max_iter=6, metric="rmse", stoppers=stoppers,
                   snapshot=lambda: toy.param)
    assert result.n_iter == 4 and result.best_snapshot is None and result.best_epoch is None


def test_no_stopper_for_one_epoch_or_unstoppable_solvers():
    assert stopping_rule(1, early_stopping=True, tol=1e-4, n_iter_no_change=5,
                         validating=True) == []
    assert stopping_rule(9, early_stopping=False, tol=1e-4, n_iter_no_change=5,
                         validating=True, stoppable=False) == []


def test_callbacks_see_every_epoch_and_can_stop():
    seen, other = [], []
    toy = Toy([3.0, 2.0, 1.0, 0.5])

    def stop_at_3(env):
        seen.append((env.epoch, env.metric, env.valid))
        return env.epoch == 3

    result = train(toy.epoch, max_iter=4, metric="rmse", validate=toy.validate,
                   callbacks=[stop_at_3, lambda env: other.append(env.epoch)])
    assert result.n_iter == 3 and result.best_epoch == 3
    assert seen == [(1, "rmse", 3.0), (2, "rmse", 2.0), (3, "rmse", 1.0)]
    assert other == [1, 2, 3]  # no short-circuit: every callback ran on the last epoch too


def test_divergence_raises_the_given_error_and_closes_progress():
    closed = []

    class Bar:
        def __call__(self, env):
            pass

        def close(self):
            closed.append(True)

    curve = iter([1.0, math.nan])
    with pytest.raises(ArithmeticError, match="epoch 2"):
        train(lambda: next(curve), max_iter=5, metric="rmse", progress=Bar(),
              diverged=lambda n: ArithmeticError(f"epoch {n}"))
    assert closed == [True]


def test_history_numbers_continue_across_calls():
    store = {}
    h = History(store, "warp", "ndcg@10", validating=True)
    train(lambda: 0.5, max_iter=2, metric="ndcg@10", validate=lambda: (0.2, None), history=h)
    h2 = History(store, "warp", "ndcg@10", epochs_done=h.epochs_done)
    train(lambda: 0.4, max_iter=1, metric="ndcg@10", history=h2)
    assert store["epoch"] == [1, 2, 3]
    assert store["train_warp"] == [0.5, 0.5, 0.4]
    assert store["valid_ndcg@10"] == [0.2, 0.2]
    assert len(store["time"]) == 3


def test_early_stopping_callback_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="up")
