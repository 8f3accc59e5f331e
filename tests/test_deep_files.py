"""Deep model files keep the optimizer state: load, then continue exactly as if never saved."""

import zipfile

import numpy as np
import pytest
from _modelfile import rewrite

torch = pytest.importorskip("torch")

import fmlearn  # noqa: E402
import fmlearn.deep as deep  # noqa: E402
from fmlearn.exceptions import ModelFileError  # noqa: E402
from tests.test_deep import _fielded, tiny  # noqa: E402


def _state(est):
    return {k: v.detach().clone() for k, v in est.module_.state_dict().items()}


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("cls, optimizer", [(deep.DeepFMRegressor, "adam"),
                                            (deep.TorchFMClassifier, "adagrad"),
                                            (deep.NFMRegressor, "sgd")])
def test_save_load_then_more_epochs_equals_one_longer_fit(cls, optimizer, tmp_path):
    X, fields, score = _fielded()
    y = score if cls is not deep.TorchFMClassifier else (score > 0).astype(int)
    kw = dict(fields=fields, optimizer=optimizer, learning_rate=0.02, lr_decay=0.3,
              batch_size=32, early_stopping=False, tol=None)
    if "dropout" in cls().get_params():
        kw["dropout"] = 0.2  # dropout draws continue from the saved generator too
    straight = tiny(cls, max_iter=3, **kw).fit(X, y)
    first = tiny(cls, max_iter=2, **kw).fit(X, y)
    first.save(tmp_path / "m.fm")
    with zipfile.ZipFile(tmp_path / "m.fm") as z:
        names = z.namelist()
    assert "state/optim.npy" in names
    if optimizer != "sgd":
        assert any(n.startswith("state/optim_0_") for n in names)
    resumed = fmlearn.load(tmp_path / "m.fm")
    resumed.partial_fit(X, y)
    _same(_state(resumed), _state(straight))
    assert resumed.history_["epoch"] == [1, 2, 3]
    np.testing.assert_array_equal(resumed.predict(X), straight.predict(X))
    # Without the optimizer state the same step is a different one (the test can fail).
    if optimizer != "sgd":
        fresh = fmlearn.load(tmp_path / "m.fm")
        fresh._solver_state = None
        fresh.partial_fit(X, y)
        assert not np.array_equal(fresh.predict(X), straight.predict(X))


def test_warm_start_after_load_and_resave_keep_the_state(tmp_path):
    X, fields, score = _fielded()
    kw = dict(fields=fields, batch_size=32, early_stopping=False, tol=None)
    straight = tiny(deep.AFMRegressor, max_iter=3, **kw).fit(X, score)
    tiny(deep.AFMRegressor, max_iter=2, **kw).fit(X, score).save(tmp_path / "a.fm")
    fmlearn.load(tmp_path / "a.fm").save(tmp_path / "b.fm")  # unused state is saved again
    again = fmlearn.load(tmp_path / "b.fm").set_params(warm_start=True, max_iter=1)
    again.fit(X, score)
    _same(_state(again), _state(straight))
    # Another optimizer after loading starts from fresh state (as in memory).
    other = fmlearn.load(tmp_path / "a.fm").set_params(optimizer="adagrad")
    other.partial_fit(X, score)
    assert other._optimizer_name == "adagrad"


def test_damaged_optimizer_state_is_refused(tmp_path):
    X, fields, score = _fielded()
    tiny(deep.TorchFMRegressor, fields=fields).fit(X, score).save(tmp_path / "m.fm")
    # Swap the second moments of two parameters of different shapes.
    a, b = "state/optim_0_exp_avg_sq", "state/optim_1_exp_avg_sq"

    def swap(mapping, x, y):
        mapping[x], mapping[y] = mapping[y], mapping[x]

    bad = rewrite(tmp_path / "m.fm", lambda meta: swap(meta["arrays"], a, b),
                  edit_members=lambda members: swap(members, a + ".npy", b + ".npy"),
                  out=tmp_path / "bad.fm")
    with pytest.raises(ModelFileError, match="optim_0_exp_avg_sq"):
        fmlearn.load(bad)


def test_xdeepfm_file_without_cin_activation_loads_its_relu_cin(tmp_path):
    """Files written before ``cin_activation`` existed hold ReLU CINs (the default is now the
    identity): loading one must keep ReLU, or its predictions change."""
    X, fields, score = _fielded()
    est = tiny(deep.XDeepFMRegressor, fields=fields, cin_activation="relu").fit(X, score)
    est.save(tmp_path / "m.fm")
    # as an older fmlearn wrote it
    path = rewrite(tmp_path / "m.fm", lambda meta: meta["params"].pop("cin_activation"),
                   out=tmp_path / "old.fm")
    old = fmlearn.load(path)
    assert old.cin_activation == "relu"
    np.testing.assert_array_equal(old.predict(X), est.predict(X))
    # The same arrays read as an identity CIN predict otherwise (the test can fail).
    assert deep.XDeepFMRegressor().cin_activation == "identity"
    old.set_params(cin_activation="identity")
    old._params = est._params
    assert not np.allclose(old.predict(X), est.predict(X))
