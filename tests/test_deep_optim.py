"""embedding_optimizer: the embedding tables and the network trained by two optimizers."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fmlearn  # noqa: E402
import fmlearn.deep as deep  # noqa: E402
from fmlearn.deep import optim as deep_optim  # noqa: E402
from tests.test_deep import _fielded, tiny  # noqa: E402
from tests.test_deep_files import _same, _state  # noqa: E402


def _kw(fields, **extra):
    return dict(fields=fields, batch_size=32, early_stopping=False, tol=None, **extra)


def test_each_part_has_its_optimizer_and_step_size():
    X, fields, score = _fielded()
    est = tiny(deep.DeepFMRegressor, max_iter=2,
               **_kw(fields, embedding_optimizer="adagrad", embedding_learning_rate=0.05,
                     learning_rate=0.002, lr_decay=1.0)).fit(X, score)
    opt = est._optimizer
    assert isinstance(opt, deep_optim.SplitOptimizer)
    assert isinstance(opt.embeddings, torch.optim.Adagrad)
    assert isinstance(opt.network, torch.optim.Adam)
    names = [n for n, _ in est.module_.named_parameters()]
    state = opt.state_dict()["state"]
    assert sorted(state) == list(range(len(names)))  # every tensor, indexed as one optimizer
    for i, n in enumerate(names):
        want = "sum" if n.startswith("embedding.") else "exp_avg"
        assert want in state[i], n
    # lr_decay scales both: epoch 2 (t = 1) ran at half of each base rate.
    assert [g["lr"] for g in opt.embeddings.param_groups] == [0.025]
    assert [g["lr"] for g in opt.network.param_groups] == [0.001]
    assert est._optimizer_name == "adagrad/adam"


def test_the_same_optimizer_for_both_parts_is_the_single_optimizer():
    X, fields, score = _fielded()
    one = tiny(deep.DeepFMRegressor, max_iter=2, **_kw(fields, learning_rate=0.01)).fit(X, score)
    two = tiny(deep.DeepFMRegressor, max_iter=2,
               **_kw(fields, learning_rate=0.01, embedding_optimizer="adam")).fit(X, score)
    _same(_state(one), _state(two))
    # ... and another step size for the embeddings changes the fit (the test can fail).
    other = tiny(deep.DeepFMRegressor, max_iter=2,
                 **_kw(fields, learning_rate=0.01, embedding_optimizer="adam",
                       embedding_learning_rate=0.05)).fit(X, score)
    assert not np.array_equal(other.predict(X), one.predict(X))


def test_save_load_then_more_epochs_equals_one_longer_fit(tmp_path):
    X, fields, score = _fielded()
    y = (score > 0).astype(int)
    kw = _kw(fields, embedding_optimizer="adagrad", embedding_learning_rate=0.1,
             learning_rate=0.01, lr_decay=0.3, l2_reg_V=0.05, l2_reg_w=0.01)
    straight = tiny(deep.DeepFMClassifier, max_iter=3, **kw).fit(X, y)
    first = tiny(deep.DeepFMClassifier, max_iter=2, **kw).fit(X, y)
    first.save(tmp_path / "m.fm")
    resumed = fmlearn.load(tmp_path / "m.fm")
    assert resumed.embedding_optimizer == "adagrad"
    resumed.partial_fit(X, y)
    _same(_state(resumed), _state(straight))
    np.testing.assert_array_equal(resumed.predict_proba(X), straight.predict_proba(X))
    # A file of a single optimizer continued with a split: fresh state, no error.
    plain = tiny(deep.DeepFMClassifier, max_iter=1, **_kw(fields)).fit(X, y)
    plain.save(tmp_path / "p.fm")
    split = fmlearn.load(tmp_path / "p.fm").set_params(embedding_optimizer="adagrad")
    split.partial_fit(X, y)
    assert split._optimizer_name == "adagrad/adam"


@pytest.mark.parametrize("bad", [{"embedding_optimizer": "rmsprop"},
                                 {"embedding_learning_rate": 0.0}])
def test_bad_values_are_refused(bad):
    X, fields, score = _fielded()
    with pytest.raises(ValueError, match=next(iter(bad))):
        deep.DeepFMRegressor(fields=fields, **bad).fit(X, score)


def test_command_line_trains_the_embeddings_apart(tmp_path):
    from fmlearn.cli import main
    from fmlearn.data.textio import write_ffm

    X, fields, score = _fielded(200)
    write_ffm(tmp_path / "t.ffm", X, (score > 0.3).astype(int), fields)
    model = tmp_path / "m.fm"
    rc = main(["train", "--model", "deepfm", "--task", "classification", "--format", "ffm",
               "--train", str(tmp_path / "t.ffm"), "--max-iter", "2", "--n-factors", "4",
               "--hidden-layer-sizes", "8", "--embedding-optimizer", "adagrad",
               "--embedding-learning-rate", "0.1", "--quiet", "--model-out", str(model)])
    assert rc == 0
    loaded = fmlearn.load(model)
    assert (loaded.embedding_optimizer, loaded.embedding_learning_rate) == ("adagrad", 0.1)
    assert loaded._solver_state["optim"][0] == "adagrad/adam"


def test_a_ranker_trains_its_embeddings_apart_and_resumes_exactly(tmp_path):
    from tests.test_deep_ranking import _side
    from tests.test_deep_ranking import tiny as tiny_ranker

    Q, C, fields, likes = _side()
    kw = dict(fields=fields, loss="warp", embedding_optimizer="adagrad",
              embedding_learning_rate=0.1)
    straight = tiny_ranker(deep.DeepFMRanker, max_iter=3, **kw).fit(Q, C, likes)
    assert isinstance(straight._optimizer, deep_optim.SplitOptimizer)
    tiny_ranker(deep.DeepFMRanker, max_iter=2, **kw).fit(Q, C, likes).save(tmp_path / "r.fm")
    loaded = fmlearn.load(tmp_path / "r.fm")
    loaded.partial_fit(Q, C, likes)
    _same(_state(loaded), _state(straight))


def test_divergence_names_the_embeddings_settings():
    from sklearn.exceptions import NotFittedError

    from fmlearn.exceptions import TrainingDivergedError

    X, fields, score = _fielded()
    est = tiny(deep.TorchFMRegressor, max_iter=3,
               **_kw(fields, embedding_optimizer="sgd", embedding_learning_rate=1e30))
    with pytest.raises(TrainingDivergedError,
                       match=r"embedding_optimizer='sgd', embedding_learning_rate=1e\+30"):
        est.fit(X, score * 1e6)
    with pytest.raises(NotFittedError):  # no model of NaN weights is left behind
        est.predict(X)
