"""Model files written by fmlearn 0.1 (before the models/ and engine restructuring) still load.

tests/data/v0.1_*.fmz were saved by commit bced3fc from small fits; v0.1_inputs.npz holds the
rows they were fitted on and each model's predictions then (the ranker's top-3 candidates).
"""

from pathlib import Path

import numpy as np
import pytest

import fmlearn

DATA = Path(__file__).parent / "data"
NAMES = ["fm_adagrad", "fm_mcmc", "ffm", "fwfm", "hofm", "ordinal", "ranker"]


@pytest.fixture(scope="module")
def inputs():
    return np.load(DATA / "v0.1_inputs.npz")


@pytest.mark.parametrize("name", NAMES)
def test_old_model_files_load_and_predict_the_same(name, inputs):
    model = fmlearn.load(DATA / f"v0.1_{name}.fmz")
    if name == "ranker":
        got = model.recommend(k=3)[0].astype(float)
    else:
        got = model.predict(inputs["X"])
    np.testing.assert_allclose(got, inputs[name], rtol=1e-6, atol=1e-9)


def test_old_field_aware_file_drops_the_retired_mcmc_parameters():
    model = fmlearn.load(DATA / "v0.1_ffm.fmz")
    assert "prior_groups" not in model.get_params()
    assert "n_kept_samples" not in model.get_params()


@pytest.mark.parametrize("name", ["fm_adagrad", "ordinal"])
def test_old_model_files_continue_training(name, inputs):
    model = fmlearn.load(DATA / f"v0.1_{name}.fmz")
    X = inputs["X"]
    y = np.round(inputs[name]).astype(int) if name == "ordinal" else inputs[name]
    if name == "ordinal":
        y = np.clip(y, model.classes_.min(), model.classes_.max())
    before = model.n_iter_
    model.set_params(warm_start=True, max_iter=2).fit(X, y)
    assert model.n_iter_ == 2 and before >= 1
    assert model.history_["epoch"][-1] == before + 2
