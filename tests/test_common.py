"""scikit-learn's estimator checks over every fmlearn estimator, and the conventions they imply.

One ``parametrize_with_checks`` runs all of scikit-learn's checks on an instance of every
estimator (and of each solver path with its own code). A check that genuinely does not apply
to an estimator is listed by ``_expected_failures``, with its reason; anything else that fails
is a bug to fix in the estimator.

``FMRanker`` is not in that list: it learns from implicit feedback, ``fit(queries,
candidates, positives)``, with no ``y`` and no ``predict``, so the checks' ``fit(X, y)``
calls do not apply. The checks that never fit run on it below; its fitting behaviour is
tested in tests/test_ranking.py.
"""

import inspect

import numpy as np
import pytest
from scipy.special import ndtr
from sklearn.base import clone, is_classifier
from sklearn.utils import estimator_checks
from sklearn.utils.estimator_checks import parametrize_with_checks

from fmlearn import (
    FFMClassifier,
    FFMRegressor,
    FMClassifier,
    FMOrdinalRegressor,
    FMRanker,
    FMRegressor,
    FwFMClassifier,
    FwFMRegressor,
    HOFMClassifier,
    HOFMRegressor,
)

# The checks' X have no fields to give FFM and FwFM, which warn that they are then plain FMs.
pytestmark = pytest.mark.filterwarnings("ignore:.*got no fields:UserWarning")

# Small models: the checks fit each estimator about a hundred times, on at most a few hundred
# rows. ALS and MCMC sweeps cost more than SGD epochs, and MCMC keeps every sweep after
# burn-in, so they get fewer.
SMALL = {"n_factors": 2, "max_iter": 30, "random_state": 0}
SWEEPS = {**SMALL, "max_iter": 10}


def _estimators():
    for cls in (FMRegressor, FMClassifier):
        yield cls(**SMALL)
        # ALS and MCMC have their own coordinate kernels, fit-time paths and probit link.
        yield cls(solver="als", **SWEEPS)
        yield cls(solver="mcmc", **SWEEPS)
    # Without fields FFM and FwFM are one-field models (and warn): the checks' X vary in width.
    for cls in (FFMRegressor, FFMClassifier, FwFMRegressor, FwFMClassifier):
        yield cls(**SMALL)
    for cls in (HOFMRegressor, HOFMClassifier):
        yield cls(**SMALL)
    yield FMOrdinalRegressor(**SMALL)
    yield FMOrdinalRegressor(solver="mcmc", **SWEEPS)


ESTIMATORS = list(_estimators())

_WEIGHT_CHECKS = (
    "check_sample_weight_equivalence_on_dense_data",
    "check_sample_weight_equivalence_on_sparse_data",
)
_STOCHASTIC = {
    # Rows are visited in a random order with one gradient step each: a row of weight 2 (one
    # step of twice the size) and the same row twice (two steps, at other points of the
    # shuffled order) are different trajectories, which agree only in expectation.
    # scikit-learn lists the same checks for its SGDClassifier and SGDRegressor.
    "sgd": "stochastic per-row updates: weight 2 is not the same trajectory as a repeated row",
    "adagrad": "stochastic per-row updates: weight 2 is not the same trajectory as a repeated "
    "row",
    # A weighted row and a repeated one give the same posterior, but the Gibbs chain draws a
    # different random sequence for different rows, so the few kept samples average to
    # different predictions (they agree only as the number of samples grows).
    "mcmc": "Gibbs sampling: the same posterior, but other random draws from it",
    # ALS is deterministic and minimizes the weighted loss exactly: it passes these checks.
}


def _expected_failures(estimator) -> dict:
    """Checks that cannot pass for ``estimator``, each with its reason."""
    failures = {}
    reason = _STOCHASTIC.get(estimator.solver)
    if reason is not None:
        failures.update(dict.fromkeys(_WEIGHT_CHECKS, reason))
    if isinstance(estimator, FMOrdinalRegressor):
        failures["check_regressors_no_decision_function"] = (
            "an ordinal regressor predicts the expected value (a regressor, scored by R^2) and "
            "also gives the class probabilities it comes from (predict_proba), which this "
            "check forbids regressors to have"
        )
    return failures


def test_expected_failures_are_known_checks():
    # A renamed check must not turn an expected failure into a silent no-op.
    for est in ESTIMATORS:
        for name in _expected_failures(est):
            assert callable(getattr(estimator_checks, name)), name


# Strict: an expected failure that starts passing fails, so the list stays true (the option
# exists from scikit-learn 1.7).
_STRICT = (
    {"xfail_strict": True}
    if "xfail_strict" in inspect.signature(parametrize_with_checks).parameters
    else {}
)


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures, **_STRICT)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# ------------------------------------------------------------------ FMRanker: API checks only
# The checks that never call fit(X, y): constructor, parameters, cloning, tags, repr.
RANKER_API_CHECKS = [
    "check_estimator_cloneable",
    "check_estimator_tags_renamed",
    "check_valid_tag_types",
    "check_estimator_repr",
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_mixin_order",
]


@pytest.mark.parametrize("check", RANKER_API_CHECKS)
def test_ranker_api_checks(check):
    getattr(estimator_checks, check)("FMRanker", FMRanker(n_factors=2, max_iter=2))


# ------------------------------------------------------------------ conventions, directly
CLASSIFIERS = [est for est in ESTIMATORS if is_classifier(est)]


def _noisy_binary(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 6))
    y = (X[:, 0] + rng.normal(size=60) > 0).astype(int)
    return X, y, 3 * rng.normal(size=(500, 6))


@pytest.mark.parametrize("est", CLASSIFIERS, ids=repr)
def test_decision_function_agrees_with_predict_and_proba(est):
    # Beyond scikit-learn's checks (whose easy blobs MCMC also passed before): on noisy data
    # and rows far from the training ones, the posterior mean of an MCMC score classified and
    # ranked a few percent of the rows otherwise than the averaged probabilities.
    X, y, Xt = _noisy_binary()
    clf = clone(est).set_params(n_factors=4).fit(X, y)
    d, p = clf.decision_function(Xt), clf.predict_proba(Xt)[:, 1]
    assert d.shape == (Xt.shape[0],)
    np.testing.assert_array_equal(clf.classes_[(d > 0).astype(int)], clf.predict(Xt))
    # The probability never decreases as the score grows (it may tie where it saturates
    # in floating point and the score does not, as scikit-learn's check allows).
    assert np.all(np.diff(p[np.argsort(d, kind="stable")]) >= 0)


def test_mcmc_decision_function_is_probit_of_predictive_probability():
    X, y, Xt = _noisy_binary()
    clf = FMClassifier(solver="mcmc", n_factors=4, max_iter=20, random_state=0).fit(X, y)
    np.testing.assert_allclose(ndtr(clf.decision_function(Xt)), clf.predict_proba(Xt)[:, 1],
                               rtol=1e-12, atol=1e-15)


def test_classifier_multi_class_tag_follows_solver():
    # Only the SGD solvers have multinomial kernels; ALS and MCMC refuse > 2 classes with
    # scikit-learn's message for binary-only classifiers.
    tags = {s: FMClassifier(solver=s).__sklearn_tags__().classifier_tags.multi_class
            for s in ("sgd", "adagrad", "als", "mcmc")}
    assert tags == {"sgd": True, "adagrad": True, "als": False, "mcmc": False}
    assert not FFMClassifier().__sklearn_tags__().classifier_tags.multi_class
    with pytest.raises(ValueError, match="Only binary classification is supported"):
        FMClassifier(solver="als", max_iter=2).fit(np.eye(6), [0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize("cls", [FMRegressor, FMClassifier, FMOrdinalRegressor])
def test_partial_fit_absent_for_mcmc(cls):
    # As MLPClassifier with solver="lbfgs": the method exists only where it applies.
    est = cls(solver="mcmc")
    assert not hasattr(est, "partial_fit")
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as err:
        est.partial_fit  # noqa: B018
    # The reason comes with it, as the cause.
    assert "partial_fit is not available for solver='mcmc'" in str(err.value.__cause__)
    assert hasattr(est.set_params(solver="adagrad"), "partial_fit")


def test_object_dtype_labels():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4))
    strings = np.array(["no", "yes"], dtype=object)[(X[:, 0] > 0).astype(int)]
    for clf in (FMClassifier(max_iter=3), FFMClassifier(max_iter=3), HOFMClassifier(max_iter=3),
                FMClassifier(solver="mcmc", max_iter=3)):
        clf.fit(X, strings)
        assert list(clf.classes_) == ["no", "yes"]
        assert set(clf.predict(X)) <= {"no", "yes"}
    # The ordinal regressor takes numbers held in an object array (a pandas object column)
    # and keeps their numeric classes; strings have no order it could know.
    stars = np.digitize(X[:, 0], [-0.5, 0.5]) + 1
    reg = FMOrdinalRegressor(max_iter=3, random_state=0).fit(X, stars.astype(object))
    assert reg.classes_.dtype.kind == "i" and list(reg.classes_) == [1, 2, 3]
    same = FMOrdinalRegressor(max_iter=3, random_state=0).fit(X, stars)
    np.testing.assert_array_equal(reg.predict_proba(X), same.predict_proba(X))
    with pytest.raises(ValueError, match="numeric ordered labels"):
        FMOrdinalRegressor(max_iter=3).fit(X, strings)


def test_one_sample_errors_name_the_single_class():
    X = np.ones((1, 3))
    with pytest.raises(ValueError, match="only one class"):
        FMOrdinalRegressor().fit(X, [3])
    with pytest.raises(ValueError, match="only one class"):
        FMClassifier().fit(X, [3])


@pytest.mark.parametrize("est", [*ESTIMATORS, FMRanker()], ids=repr)
def test_every_estimator_takes_sparse_input(est):
    # Every family validates with accept_sparse=True and converts once to CSR; the sparse
    # checks above hold them to it (FMRanker: tests/test_ranking.py).
    assert est.__sklearn_tags__().input_tags.sparse


def test_ordinal_regressor_tags_describe_predict_proba():
    tags = FMOrdinalRegressor().__sklearn_tags__()
    assert tags.estimator_type == "regressor" and tags.input_tags.sparse
    assert tags.classifier_tags.multi_class  # predict_proba: one column per class
