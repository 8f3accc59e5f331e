"""The deep estimators (fmlearn.deep): scikit-learn conventions, training through the engine,
model files, ONNX parity, init_from, and a GPU run where CUDA exists."""

import numpy as np
import pytest
import scipy.sparse as sp
from _modelfile import rewrite

torch = pytest.importorskip("torch")

import fmlearn  # noqa: E402
import fmlearn.deep as deep  # noqa: E402
from fmlearn import FMClassifier, FMEncoder, FMRegressor  # noqa: E402
from fmlearn.callbacks import EpochEnv  # noqa: E402
from fmlearn.exceptions import ModelFileError  # noqa: E402

# Layers small enough for a test, for every parameter a model has.
TINY = {"hidden_layer_sizes": (8,), "cin_layer_sizes": (4, 4), "attention_size": 4,
        "n_heads": 2, "n_attention_layers": 2, "conv_channels": 4}
NAMES = sorted(n for n in deep.__all__ if not n.endswith("Ranker"))  # rankers: test_deep_ranking


def tiny(cls, **kw):
    own = cls().get_params()
    return cls(**{k: v for k, v in TINY.items() if k in own},
               **{"n_factors": 4, "max_iter": 3, "random_state": 0, **kw})


def _fielded(n=240, seed=0):
    """Sparse rows over 4 fields: two one-hot fields, a multi-hot one, a real-valued one, with
    empty fields in some rows."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 5, n), rng.integers(0, 4, n)
    rows, cols, vals = [], [], []
    for r in range(n):
        rows += [r, r]
        cols += [a[r], 5 + b[r]]
        vals += [1.0, 1.0]
        for t in rng.choice(3, size=rng.integers(0, 3), replace=False):  # multi-hot, maybe empty
            rows.append(r)
            cols.append(9 + t)
            vals.append(1.0)
        if r % 3:
            rows.append(r)
            cols.append(12)
            vals.append(rng.normal())
    X = sp.csr_matrix((vals, (rows, cols)), shape=(n, 13))
    fields = np.array([0] * 5 + [1] * 4 + [2] * 3 + [3])
    score = (a % 2) * 1.5 - (b == 1) + 0.5 * X[:, 12].toarray().ravel()
    return X, fields, score


# ------------------------------------------------------------------ scikit-learn checks
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

CHECKED = [deep.TorchFMRegressor(n_factors=4, max_iter=10, batch_size=64, learning_rate=0.05,
                                 random_state=0),
           deep.DeepFMClassifier(n_factors=4, hidden_layer_sizes=(16,), max_iter=10,
                                 batch_size=64, learning_rate=0.05, random_state=0)]
_MINIBATCH = ("shuffled mini-batch steps: a row of weight 2 is not the same trajectory as the "
              "row repeated (scikit-learn lists these checks for SGDClassifier too)")


def _expected_failures(est):
    failures = dict.fromkeys(("check_sample_weight_equivalence_on_dense_data",
                              "check_sample_weight_equivalence_on_sparse_data"), _MINIBATCH)
    if "hidden_layer_sizes" in est.get_params():
        failures["check_methods_subset_invariance"] = (
            "float32 matrix products over batches of other sizes may differ in the last bit "
            "(about 1e-7 relative), beyond the check's rtol=1e-7")
    return failures


# Not strict: the subset check passes when the products happen to agree bit for bit.
@parametrize_with_checks(CHECKED, expected_failed_checks=_expected_failures)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_every_class_has_only_parameters_it_uses():
    for name in NAMES:
        cls = getattr(deep, name)
        params = cls().get_params()
        own = set(cls._model_class.params)
        assert set(TINY) & set(params) <= own | {"dropout"}, name
        assert ("hidden_layer_sizes" in params) == ("hidden_layer_sizes" in own), name
    assert "hidden_layer_sizes" not in deep.TorchFMRegressor().get_params()
    assert "dropout" not in deep.CFMClassifier().get_params()
    assert deep.XDeepFMClassifier().get_params()["cin_layer_sizes"] == (200, 200, 200)


# ------------------------------------------------------------------ every model, end to end
@pytest.mark.parametrize("name", NAMES)
def test_fit_predict_save_load_onnx(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from fmlearn.export import padded_inputs

    cls = getattr(deep, name)
    X, fields, score = _fielded()
    classifier = name.endswith("Classifier")
    y = np.digitize(score, [-0.5, 0.7]) if classifier else score  # three classes
    est = tiny(cls, fields=fields).fit(X, y)
    assert len(est.history_["epoch"]) == 3
    out = est.predict_proba(X) if classifier else est.predict(X)
    assert np.isfinite(out).all() and out.shape[0] == X.shape[0]
    path = tmp_path / "m.fm"
    est.save(path)
    loaded = fmlearn.load(path)
    assert type(loaded) is cls and loaded.get_params()["fields"].tolist() == fields.tolist()
    np.testing.assert_array_equal(loaded.predict_proba(X) if classifier else loaded.predict(X),
                                  out)
    onnx_path = tmp_path / "m.onnx"
    est.to_onnx(onnx_path)
    session = ort.InferenceSession(str(onnx_path))
    assert [o.name for o in session.get_outputs()] == (["probabilities"] if classifier
                                                       else ["prediction"])
    got = session.run(None, padded_inputs(X))[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, out, atol=1e-5, rtol=1e-5)


def test_binary_onnx_and_one_empty_row(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from fmlearn.export import padded_inputs

    X, fields, score = _fielded()
    clf = tiny(deep.DeepFMClassifier, fields=fields).fit(X, score > 0)
    X2 = sp.vstack([X[:5], sp.csr_matrix((1, 13))]).tocsr()  # a row with no features at all
    clf.to_onnx(tmp_path / "b.onnx")
    got = ort.InferenceSession(str(tmp_path / "b.onnx")).run(None, padded_inputs(X2))[0]
    np.testing.assert_allclose(got, clf.predict_proba(X2), atol=1e-5)
    assert got.shape == (6, 2)


# ------------------------------------------------------------------ training behaviour
def test_learns_planted_interaction_better_than_constant():
    X, fields, score = _fielded(400)
    y = (score > 0.3).astype(int)
    clf = deep.DeepFMClassifier(n_factors=4, hidden_layer_sizes=(16,), max_iter=20,
                                batch_size=32, learning_rate=0.01, fields=fields,
                                random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.9
    losses = clf.history_["train_logloss"]
    assert losses[-1] < 0.6 * losses[0]


def test_reproducible_and_leaves_global_rngs_alone():
    X, fields, score = _fielded()
    torch.manual_seed(123)
    before_t, before_np = torch.get_rng_state(), np.random.get_state()[1].copy()  # noqa: NPY002
    a = tiny(deep.NFMRegressor, fields=fields, dropout=0.3).fit(X, score).predict(X)
    b = tiny(deep.NFMRegressor, fields=fields, dropout=0.3).fit(X, score).predict(X)
    np.testing.assert_array_equal(a, b)
    c = tiny(deep.NFMRegressor, fields=fields, dropout=0.3, random_state=1).fit(X, score)
    assert not np.array_equal(a, c.predict(X))
    assert torch.equal(torch.get_rng_state(), before_t)
    np.testing.assert_array_equal(np.random.get_state()[1], before_np)  # noqa: NPY002


def test_early_stopping_restores_the_best_epoch_and_callbacks_see_every_epoch():
    X, fields, score = _fielded(300)
    seen = []

    def record(env: EpochEnv):
        seen.append((env.epoch, env.valid))

    reg = deep.TorchFMRegressor(n_factors=4, max_iter=30, learning_rate=0.3, batch_size=16,
                                fields=fields, early_stopping=True, n_iter_no_change=2,
                                random_state=0)
    reg.fit(X, score, callbacks=[record])
    valid = reg.history_["valid_rmse"]
    assert [e for e, _ in seen] == reg.history_["epoch"]
    assert reg.n_iter_ < 30 and reg.best_iteration_ == int(np.argmin(valid)) + 1
    # With an eval_set, the restored model scores the best validation RMSE on it.
    Xv, yv = X[:40], score[:40]
    reg2 = deep.TorchFMRegressor(n_factors=4, max_iter=30, learning_rate=0.3, batch_size=16,
                                 fields=fields, early_stopping=True, random_state=0)
    reg2.fit(X[40:], score[40:], eval_set=(Xv, yv))
    best = min(reg2.history_["valid_rmse"])
    assert np.sqrt(np.mean((reg2.predict(Xv) - yv) ** 2)) == pytest.approx(best, rel=1e-6)


def test_partial_fit_and_warm_start_continue():
    X, fields, score = _fielded()
    y = np.digitize(score, [-0.5, 0.7])
    clf = tiny(deep.AFMClassifier, fields=fields)
    for _ in range(3):
        clf.partial_fit(X[:120], y[:120], classes=[0, 1, 2])
    assert clf.history_["epoch"] == [1, 2, 3] and list(clf.classes_) == [0, 1, 2]
    reg = tiny(deep.TorchFwFMRegressor, fields=fields, warm_start=True).fit(X, score)
    first = reg.history_["train_rmse"][-1]
    reg.fit(X, score)
    assert reg.history_["epoch"] == [1, 2, 3, 4, 5, 6]
    assert reg.history_["train_rmse"][-1] < first
    with pytest.raises(ValueError, match="fields changed"):
        reg.set_params(fields=np.arange(13)).fit(X, score)


def test_fields_from_encoder_in_pipeline_and_grid_search():
    pd = pytest.importorskip("pandas")
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"user": rng.integers(0, 8, 200).astype(str),
                       "item": rng.integers(0, 6, 200).astype(str),
                       "x": rng.normal(size=200)})
    y = ((df.user.isin(["1", "2", "3"])) ^ (df.item.isin(["0", "1"]))).astype(int).to_numpy()
    pipe = Pipeline([("enc", FMEncoder()),
                     ("clf", deep.DeepFMClassifier(n_factors=4, hidden_layer_sizes=(8,),
                                                   max_iter=3, random_state=0))])
    search = GridSearchCV(pipe, {"clf__n_factors": [2, 4]}, cv=2).fit(df, y)
    clf = search.best_estimator_.named_steps["clf"]
    assert clf.n_fields_ == 3
    assert search.predict_proba(df).shape == (200, 2)


def test_fields_errors_say_how_to_fix():
    X = sp.random(10, 300, density=0.05, format="csr", random_state=0)
    with pytest.raises(ValueError, match="pass fields="):
        deep.TorchFMRegressor(max_iter=1).fit(X, np.ones(10))
    with pytest.raises(ValueError, match="fields must give the field of each of the 300"):
        deep.TorchFMRegressor(max_iter=1, fields=[0, 1]).fit(X, np.ones(10))
    with pytest.raises(ValueError, match="device='cuda'") if not torch.cuda.is_available() \
            else pytest.raises(Exception, match="never"):
        deep.TorchFMRegressor(max_iter=1, device="cuda").fit(np.eye(3), [1.0, 2.0, 3.0])


def test_init_from_numba_fm(tmp_path):
    X, fields, score = _fielded()
    fm = FMRegressor(n_factors=4, max_iter=5, random_state=0).fit(X, score)
    nfm = deep.NFMRegressor(n_factors=4, hidden_layer_sizes=(8,), max_iter=1, fields=fields,
                            init_from=fm, random_state=0, learning_rate=1e-12)
    nfm.fit(X, score)
    np.testing.assert_allclose(nfm.module_.embedding.V.detach().numpy(), fm.V_, atol=1e-6)
    np.testing.assert_allclose(nfm.module_.embedding.w[:, 0].detach().numpy(), fm.w_, atol=1e-6)
    # An FM baseline started from the FM predicts as it does when each feature is its own
    # field (no within-field pairs are lost then).
    Xd = X[:, [0, 5, 12]]
    fm3 = FMRegressor(n_factors=4, max_iter=5, random_state=0).fit(Xd, score)
    fm3.save(tmp_path / "fm.fm")
    tfm = deep.TorchFMRegressor(n_factors=4, max_iter=1, learning_rate=1e-12,
                                init_from=str(tmp_path / "fm.fm")).fit(Xd, score)
    np.testing.assert_allclose(tfm.predict(Xd), fm3.predict(Xd), atol=1e-5)
    with pytest.raises(ValueError, match="n_factors"):
        deep.DeepFMClassifier(n_factors=3, init_from=FMClassifier(n_factors=4, max_iter=2)
                              .fit(X, score > 0), fields=fields, max_iter=1).fit(X, score > 0)


def test_damaged_deep_file_is_refused(tmp_path):
    X, fields, score = _fielded()
    tiny(deep.TorchFMRegressor, fields=fields).fit(X, score).save(tmp_path / "m.fm")
    # the tensors no longer fit the hyper-parameters
    bad = rewrite(tmp_path / "m.fm", lambda m: m["params"].update(n_factors=5),
                  out=tmp_path / "bad.fm")
    with pytest.raises(ModelFileError, match="do not fit"):
        fmlearn.load(bad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_fit_predict_matches_cpu_closely():
    X, fields, score = _fielded()
    gpu = tiny(deep.XDeepFMRegressor, fields=fields, device="cuda").fit(X, score)
    assert next(gpu.module_.parameters()).is_cuda
    cpu = tiny(deep.XDeepFMRegressor, fields=fields, device="cpu").fit(X, score)
    np.testing.assert_allclose(gpu.predict(X), cpu.predict(X), atol=1e-3)


def test_cli_train_evaluate_predict_deep_models(tmp_path, capsys):
    from fmlearn.cli import main
    from fmlearn.data.textio import write_ffm, write_libfm

    X, fields, score = _fielded(200)
    y = (score > 0.3).astype(int)
    write_ffm(tmp_path / "t.ffm", X, y, fields)
    model = tmp_path / "m.fm"
    rc = main(["train", "--model", "xdeepfm", "--task", "classification", "--format", "ffm",
               "--train", str(tmp_path / "t.ffm"), "--max-iter", "2", "--n-factors", "4",
               "--hidden-layer-sizes", "8,8", "--cin-layer-sizes", "4,4", "--cin-activation",
               "relu", "--quiet", "--model-out", str(model)])
    assert rc == 0
    loaded = fmlearn.load(model)
    assert type(loaded) is deep.XDeepFMClassifier
    assert loaded.hidden_layer_sizes == (8, 8) and loaded.n_fields_ == 4
    assert loaded.cin_activation == "relu" and loaded.module_.cin.activation == "relu"
    assert main(["evaluate", "--model", str(model), "--data", str(tmp_path / "t.ffm"),
                 "--format", "ffm"]) == 0
    assert "auc=" in capsys.readouterr().out
    # A libFM file of one-hot fields: the fields are each column's position in its rows.
    onehot = X[:, :9]
    write_libfm(tmp_path / "o.libfm", onehot, score)
    rc = main(["train", "--model", "torchfm", "--train", str(tmp_path / "o.libfm"),
               "--max-iter", "1", "--quiet"])
    assert rc == 0
    from fmlearn.deep.data import fields_by_position

    np.testing.assert_array_equal(fields_by_position(onehot), fields[:9])
    assert fields_by_position(X) is None  # the multi-hot field moves the last column around


@pytest.mark.parametrize("optimizer", ["adagrad", "sgd"])
def test_other_optimizers_pooling_and_decay_train(optimizer):
    X, fields, score = _fielded()
    reg = tiny(deep.DeepFMRegressor, fields=fields, optimizer=optimizer, learning_rate=0.05,
               lr_decay=0.5, pooling="mean", max_iter=4).fit(X, score)
    rmse = reg.history_["train_rmse"]
    assert rmse[-1] < rmse[0]
    assert reg._optimizer.param_groups[0]["lr"] == pytest.approx(0.05 / (1 + 0.5 * 3))
    # warm_start with another optimizer continues the model with that optimizer's own state
    reg.set_params(warm_start=True, optimizer="adam", max_iter=1).fit(X, score)
    assert type(reg._optimizer).__name__ == "Adam" and reg.history_["epoch"][-1] == 5
