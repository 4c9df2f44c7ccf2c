"""scikit-learn estimators: params and clone, fit/predict contracts, Pipeline, cross-validation, grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from deepmine.sklearn_api import TabularClassifier, TabularRegressor, TextClassifier

SMALL = {"hidden": (16,), "epochs": 8, "batch_size": 32, "lr": 0.01}


def numeric_problem(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two informative numbers and one noise column; label = sign of a linear score."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = (X[:, 0] + 0.8 * X[:, 1] > 0).astype(int)
    return X, y


def category_problem(n: int = 200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A string category and a number decide a string label."""
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "green", "blue"], n)
    size = rng.normal(size=n)
    score = np.where(color == "red", 1.5, -0.75) + size
    X = pd.DataFrame({"color": color, "size": size})
    return X, np.where(score > 0, "yes", "no")


def linear_problem(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = 3.0 * X[:, 0] - 2.0 * X[:, 1] + 0.5 * X[:, 2] + 10 + rng.normal(0, 0.3, n)
    return X, y


# ---- parameters ------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [TabularClassifier, TabularRegressor])
def test_clone_keeps_plain_and_routed_params(cls):
    est = cls(hidden=(16,), epochs=3, seed=5, module__hidden=[8], optimizer__lr=0.01, trainer__patience=2)
    copy = clone(est)
    assert copy is not est
    params = copy.get_params()
    assert params["hidden"] == (16,) and params["epochs"] == 3 and params["seed"] == 5
    assert params["module__hidden"] == [8]
    assert params["optimizer__lr"] == 0.01
    assert params["trainer__patience"] == 2
    assert not hasattr(copy, "predictor_")


def test_get_and_set_params_with_nested_keys():
    est = TabularClassifier(epochs=4)
    assert "module__hidden" not in est.get_params()
    returned = est.set_params(module__hidden=[12], trainer__patience=3, epochs=2)
    assert returned is est
    params = est.get_params()
    assert params["module__hidden"] == [12] and params["trainer__patience"] == 3 and params["epochs"] == 2
    est.set_params(module__hidden=[4])
    assert est.get_params()["module__hidden"] == [4]
    assert clone(est).get_params()["module__hidden"] == [4]


def test_unknown_plain_param_is_rejected():
    with pytest.raises(ValueError, match="bogus"):
        TabularClassifier().set_params(bogus=1)


@pytest.mark.parametrize("cls", [TabularClassifier, TabularRegressor, TextClassifier])
def test_unknown_plain_keyword_is_refused_at_construction(cls):
    # an unknown name without '__' (ensemble=1, epoch=2) was stored, left out of get_params and ignored by fit
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'ensemble'.*section__key"):
        cls(ensemble=1)
    with pytest.raises(TypeError, match=r"'epoch' \(did you mean 'epochs'\?\)"):
        cls(epoch=2)


def test_unknown_routed_prefix_raises_at_fit_naming_the_parameter():
    X, y = numeric_problem(40)
    est = TabularClassifier(**SMALL, bogus__x=1)  # accepted at construction, like every sklearn estimator
    with pytest.raises(ValueError, match="bogus__x"):
        est.fit(X, y)
    assert not hasattr(est, "predictor_")


def test_routed_params_reach_the_model():
    X, y = numeric_problem(80)
    small = TabularClassifier(**SMALL, module__hidden=[3]).fit(X, y)
    large = TabularClassifier(**SMALL, module__hidden=[24]).fit(X, y)
    count = lambda est: sum(p.numel() for p in est.predictor_.model.parameters())  # noqa: E731
    assert count(small) < count(large)
    assert small.predictor_.config.model.hidden == [3]


# ---- fit / predict contracts ---------------------------------------------------------------------
@pytest.mark.parametrize("cls", [TabularClassifier, TabularRegressor])
def test_predict_before_fit_raises_not_fitted(cls):
    X, _ = numeric_problem(10)
    with pytest.raises(NotFittedError, match="not fitted"):
        cls(**SMALL).predict(X)
    if cls is TabularClassifier:
        with pytest.raises(NotFittedError, match="not fitted"):
            cls(**SMALL).predict_proba(X)


def test_classifier_on_numpy_numbers():
    X, y = numeric_problem()
    est = TabularClassifier(**SMALL)
    assert est.fit(X, y) is est
    assert est.classes_.tolist() == [0, 1]
    assert est.n_features_in_ == 3
    proba = est.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    pred = est.predict(X)
    assert pred.shape == (len(X),) and set(pred) <= {0, 1}
    np.testing.assert_array_equal(pred, est.classes_[proba.argmax(axis=1)])
    assert est.score(X, y) > 0.7
    as_frame = pd.DataFrame(X, columns=["a", "b", "c"])  # fitted on an array: a DataFrame is read by position
    np.testing.assert_allclose(est.predict_proba(as_frame), proba)
    with pytest.raises(ValueError, match="X has 2 features, but this TabularClassifier was fitted on 3"):
        est.predict(X[:, :2])


def test_targets_an_estimator_cannot_learn_are_named_in_scikit_learn_terms():
    from scipy import sparse

    X, _ = numeric_problem(40)
    with pytest.raises(ValueError, match=r"y has 1 class \('a'\); a classifier needs at least two") as caught:
        TabularClassifier(**SMALL).fit(X, ["a"] * 40)
    assert "__target__" not in str(caught.value)
    with pytest.raises(ValueError, match="such as 'low'; TabularRegressor predicts numbers"):
        TabularRegressor(**SMALL).fit(X, ["low", "high"] * 20)
    with pytest.raises(TypeError, match=r"scipy sparse matrix.*X.toarray\(\)"):
        TabularClassifier(**SMALL).fit(sparse.csr_matrix(X), [0, 1] * 20)


def test_classifier_on_dataframe_with_string_categories_multiclass():
    X, _ = category_problem(210)
    y = np.where(X["color"] == "red", "r", np.where(X["size"] > 0, "big", "small"))
    est = TabularClassifier(**SMALL).fit(X, y)
    assert est.classes_.tolist() == ["big", "r", "small"]
    assert est.feature_names_in_.tolist() == ["color", "size"]
    proba = est.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert set(est.predict(X)) <= {"big", "r", "small"}
    assert est.score(X, y) > 0.5  # chance is about 1/3


def test_same_seed_gives_identical_probabilities_and_other_seed_differs():
    X, y = category_problem(120)
    first = TabularClassifier(**SMALL, seed=11).fit(X, y).predict_proba(X)
    second = TabularClassifier(**SMALL, seed=11).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)
    other = TabularClassifier(**SMALL, seed=12).fit(X, y).predict_proba(X)
    assert not np.array_equal(first, other)


def test_regressor_learns_a_linear_problem():
    X, y = linear_problem()
    train, test = slice(0, 180), slice(180, None)
    est = TabularRegressor(hidden=(16,), epochs=30, batch_size=32, lr=0.01)
    assert est.fit(X[train], y[train]) is est
    pred = est.predict(X[test])
    assert pred.dtype == np.float64 and pred.shape == (60,)
    assert r2_score(y[test], pred) > 0.5
    assert est.score(X[test], y[test]) == pytest.approx(r2_score(y[test], pred))


# ---- composition with scikit-learn -------------------------------------------------------------------
def test_inside_pipeline_with_function_transformer():
    X, y = numeric_problem()
    pipe = make_pipeline(FunctionTransformer(lambda a: a * 2.0), TabularClassifier(**SMALL))
    pipe.set_params(tabularclassifier__module__hidden=[8])
    assert pipe.get_params()["tabularclassifier__module__hidden"] == [8]
    pipe.fit(X, y)
    assert pipe[-1].predictor_.config.model.hidden == [8]
    proba = pipe.predict_proba(X)
    assert proba.shape == (len(X), 2)
    assert pipe.score(X, y) > 0.7


def test_cross_val_score_beats_chance():
    X, y = category_problem(160)
    cv = StratifiedKFold(2, shuffle=True, random_state=0)
    scores = cross_val_score(TabularClassifier(**SMALL), X, y, cv=cv)
    assert scores.shape == (2,)
    chance = max(np.mean(y == "yes"), np.mean(y == "no"))
    assert scores.mean() > chance


def test_grid_search_over_routed_hidden():
    X, y = numeric_problem(160)
    grid = {"module__hidden": [[8], [16]]}
    cv = KFold(2, shuffle=True, random_state=0)
    search = GridSearchCV(TabularClassifier(epochs=8, batch_size=32, lr=0.01), grid, cv=cv)
    search.fit(X, y)
    assert search.best_params_["module__hidden"] in grid["module__hidden"]
    assert search.best_estimator_.get_params()["module__hidden"] == search.best_params_["module__hidden"]
    assert search.best_estimator_.predictor_.config.model.hidden == search.best_params_["module__hidden"]
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 2 and (scores > 0.6).all()  # balanced labels: chance is about 0.5
