"""Training-data attribution against brute force: actual leave-one-out retrains, recomputed leaf means.

The logistic bars are the research note's (section 1): Pearson alone cannot see a scale error such as
a missing L2 term, so the largest absolute error must also stay within 5 % of the largest effect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesRegressor, RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeClassifier

from _attribution import SEED, Array, assert_matches_retrains, leave_one_out, make_data, sampled_rows
from mlcustody.errors import UsageError
from mlcustody.forensics.attribution import Attribution, attribute, prepare

# --- logistic regression: influence with the leverage correction --------------------------------------


@pytest.mark.parametrize("c", [0.01, 1.0, 100.0])
def test_logistic_influence_matches_leave_one_out_retrains(c: float) -> None:
    train, y, _, x = make_data()

    def fit(features: Array, labels: Array) -> LogisticRegression:
        return LogisticRegression(C=c, solver="newton-cholesky", tol=1e-12, max_iter=200).fit(features, labels)

    model = fit(train, y)
    rows = sampled_rows(len(train), 160)
    prediction, delta = prepare(model, train, y).deltas(x)
    assert prediction == pytest.approx(model.decision_function(x[None, :])[0], abs=1e-12)
    assert_matches_retrains(delta[rows], leave_one_out(fit, "decision_function", train, y, x, rows))


@pytest.mark.parametrize(
    "settings",
    [
        {"fit_intercept": False, "solver": "newton-cholesky"},
        {"C": np.inf, "solver": "newton-cholesky"},  # no penalty
        {"class_weight": {0: 1.0, 1: 3.0}, "solver": "newton-cholesky"},
        {"solver": "liblinear", "intercept_scaling": 2.0},  # penalises its intercept
        {"solver": "lbfgs", "max_iter": 1000},
    ],
    ids=["no-intercept", "no-penalty", "class-weight", "liblinear", "lbfgs"],
)
def test_logistic_variants_match_leave_one_out_retrains(settings: dict[str, Any]) -> None:
    train, y, _, x = make_data(n=400, seed=SEED + 2)

    def fit(features: Array, labels: Array) -> LogisticRegression:
        return LogisticRegression(tol=1e-10, **settings).fit(features, labels)

    rows = sampled_rows(len(train), 60)
    _, delta = prepare(fit(train, y), train, y).deltas(x)
    assert_matches_retrains(delta[rows], leave_one_out(fit, "decision_function", train, y, x, rows))


def test_top_is_the_largest_deltas_in_order() -> None:
    train, y, _, x = make_data()
    model = LogisticRegression(solver="newton-cholesky").fit(train, y)
    result = attribute(model, train, y, x, top=7)
    _, delta = prepare(model, train, y).deltas(x)
    assert isinstance(result, Attribution)
    assert result.method == "influence"
    assert "logit" in result.measure
    assert [item.index for item in result.top] == list(np.argsort(-np.abs(delta), kind="stable")[:7])
    assert [item.delta for item in result.top] == pytest.approx(delta[[item.index for item in result.top]])


# --- least squares: exact leave-one-out -----------------------------------------------------------------


@pytest.mark.parametrize(
    "make_model",
    [
        lambda: Ridge(alpha=0.1),
        lambda: Ridge(alpha=10.0, fit_intercept=False),
        LinearRegression,
        lambda: LinearRegression(fit_intercept=False),
    ],
    ids=["ridge", "ridge-no-intercept", "ols", "ols-no-intercept"],
)
def test_least_squares_closed_form_equals_retrain(make_model: Callable[[], Any]) -> None:
    train, _, target, x = make_data()
    rows = sampled_rows(len(train), 40)
    model = make_model().fit(train, target)
    result = prepare(model, train, target)
    prediction, delta = result.deltas(x)
    actual = leave_one_out(lambda f, t: make_model().fit(f, t), "predict", train, target, x, rows)
    assert result.method == "loo-exact"
    assert prediction == pytest.approx(model.predict(x[None, :])[0], abs=1e-12)
    np.testing.assert_allclose(delta[rows], actual, rtol=0, atol=1e-8)


# --- random forests: exact kernel and fixed-structure leave-one-out ---------------------------------------


def test_forest_decomposition_equals_the_forest() -> None:
    train, y, target, _ = make_data(n=400)
    decisions = np.random.default_rng(SEED + 3).normal(size=(15, train.shape[1])) * train.std(axis=0)
    three = np.digitize(train[:, 0], np.quantile(train[:, 0], [0.33, 0.66]))
    classifier = RandomForestClassifier(n_estimators=30, random_state=0).fit(train, y)
    multiclass = RandomForestClassifier(n_estimators=30, max_samples=0.7, random_state=0).fit(train, three)
    regressor = ExtraTreesRegressor(n_estimators=20, min_samples_leaf=3, random_state=0).fit(train, target)
    checks = [
        (prepare(classifier, train, y), lambda d: classifier.predict_proba(d)[0, 1]),
        (prepare(multiclass, train, three), lambda d: multiclass.predict_proba(d)[0].max()),
        (prepare(regressor, train, target), lambda d: regressor.predict(d)[0]),
    ]
    for attributor, forest_output in checks:
        assert attributor.method == "forest-kernel"
        for decision in decisions:
            prediction, _ = attributor.deltas(decision)
            assert abs(prediction - forest_output(decision[None, :])) <= 1e-12


def forest_without(model: Any, train: Array, target: Array, x: Array, row: int) -> float:
    """The forest's output on x with ``row`` dropped from every bootstrap, splits kept, from the rows.

    Each tree answers with the in-bag mean of the deepest node on x's path that still holds a row.
    """
    outputs = []
    for tree, drawn in zip(model.estimators_, model.estimators_samples_, strict=True):
        counts = np.bincount(drawn, minlength=len(train))
        counts[row] = 0
        membership = tree.decision_path(train).tocsc()
        for node in tree.decision_path(x[None, :]).indices[::-1]:
            inside = (membership[:, node].toarray().ravel() > 0) & (counts > 0)
            if inside.any():
                outputs.append(np.average(target[inside], weights=counts[inside]))
                break
    return float(np.mean(outputs))


def sole_members(model: Any, train: Array, x: Array) -> set[int]:
    """Rows that are the only in-bag row of x's leaf in some tree: removing one empties that leaf."""
    sole = set()
    for tree, drawn, leaf in zip(model.estimators_, model.estimators_samples_, model.apply(x[None, :])[0], strict=True):
        members = np.unique(drawn[tree.apply(train[drawn]) == leaf])
        if members.size == 1:
            sole.add(int(members[0]))
    return sole


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_forest_leave_one_out_equals_recomputed_leaf_means(kind: str) -> None:
    train, y, target, x = make_data(n=300)
    if kind == "classifier":  # fully grown classification leaves are pure: leaving a row out changes nothing
        model = RandomForestClassifier(n_estimators=25, min_samples_leaf=5, random_state=1).fit(train, y)
        explained = (y == 1).astype(float)
    else:
        model = RandomForestRegressor(n_estimators=25, random_state=1).fit(train, target)
        explained = target
    prediction, delta = prepare(model, train, y if kind == "classifier" else target).deltas(x)
    emptying = sorted(sole_members(model, train, x))[:3]
    others = [row for row in np.flatnonzero(delta)[:6] if row not in emptying][:3]
    assert len(others) == 3
    if kind == "regressor":
        assert emptying, "fully grown regression trees should leave some leaf with one in-bag row"
    for row in [*emptying, *others]:
        assert delta[row] == pytest.approx(forest_without(model, train, explained, x, row) - prediction, abs=1e-12)


def test_forest_refuses_rows_it_was_not_trained_on() -> None:
    train, y, _, x = make_data(n=200)
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(train, y)
    order = np.random.default_rng(SEED).permutation(len(train))
    with pytest.raises(UsageError, match="do not reproduce the leaves"):
        attribute(model, train[order], y[order], x)


# --- the nearest-neighbour baseline ------------------------------------------------------------------


def nearest(train: Array, x: Array, eligible: Array, count: int) -> list[int]:
    centre, spread = train.mean(axis=0), train.std(axis=0)
    distance = np.linalg.norm((train - centre) / spread - (x - centre) / spread, axis=1)
    distance[~eligible] = np.inf
    return list(np.argsort(distance)[:count])


def test_knn_top_records_are_the_nearest_rows_with_the_predicted_label() -> None:
    train, y, _, x = make_data()
    labels = np.where(y == 1, "approve", "deny")
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(train, labels)
    result = attribute(model, train, labels, x, top=8)
    assert result.method == "knn"
    assert result.prediction == model.predict(x[None, :])[0]
    assert [item.index for item in result.top] == nearest(train, x, labels == result.prediction, 8)
    assert all(0 < item.delta <= 1 for item in result.top)


class _MeanOfFeatures:
    """A model that is not scikit-learn's: anything with predict can be attributed by the baseline."""

    def predict(self, train: Array) -> Array:
        return np.asarray(train).mean(axis=1)


def test_knn_can_be_forced_on_any_model() -> None:
    train, y, target, x = make_data()
    logistic = LogisticRegression().fit(train, y)
    forced = attribute(logistic, train, y, x, top=5, method="knn")
    assert forced.method == "knn"
    assert [item.index for item in forced.top] == nearest(train, x, y == logistic.predict(x[None, :])[0], 5)
    anything = attribute(_MeanOfFeatures(), train, target, x, top=5)
    assert anything.method == "knn"
    assert anything.prediction == pytest.approx(x.mean())
    assert [item.index for item in anything.top] == nearest(train, x, np.ones(len(train), bool), 5)
    assert attribute(GaussianNB().fit(train, y), train, y, x).method == "knn"


# --- bad input -------------------------------------------------------------------------------------------


def test_unpenalised_multiclass_logistic_regression_is_refused_with_the_knn_hint() -> None:
    """Without a penalty, adding one vector to every class's weights changes nothing: H is singular."""
    train, _, _, x = make_data()
    three = np.digitize(train[:, 0], [-0.5, 0.5])
    model = LogisticRegression(C=np.inf, max_iter=2000).fit(train, three)
    with pytest.raises(UsageError, match="undetermined") as raised:
        attribute(model, train, three, x)
    assert 'method="knn"' in raised.value.hint
    assert attribute(model, train, three, x, method="knn").method == "knn"


def test_non_smooth_or_unknown_setups_are_refused() -> None:
    train, y, target, x = make_data(n=200)
    l1 = LogisticRegression(l1_ratio=1.0, solver="liblinear").fit(train, y)
    ridge = Ridge().fit(train, target)
    with pytest.raises(UsageError, match="L1"):
        attribute(l1, train, y, x)
    with pytest.raises(UsageError, match="does not apply to Ridge"):
        attribute(ridge, train, target, x, method="influence")
    with pytest.raises(UsageError, match="unknown attribution method"):
        attribute(ridge, train, target, x, method="shapley")
    with pytest.raises(UsageError, match="not fitted"):
        attribute(Ridge(), train, target, x)
    with pytest.raises(UsageError, match="labels the model was not trained on"):
        attribute(LogisticRegression().fit(train, y), train, y + 5, x)
    collinear = np.hstack([train, train[:, :1]])
    with pytest.raises(UsageError, match="collinear"):
        attribute(LinearRegression().fit(collinear, target), collinear, target, np.append(x, x[0]))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda train, y, x: (train, y, np.append(x, 0.0)), "1-D array of 6 values"),
        (lambda train, y, x: (train, y, x[None, :]), "got shape"),
        (lambda train, y, x: (train[:, :5], y, x[:5]), "expects 6 features"),
        (lambda train, y, x: (train, y, np.where(np.arange(x.size) == 2, np.nan, x)), "x holds 1 NaN"),
        (lambda train, y, x: (np.where(train > 2.5, np.nan, train), y, x), "X_train holds"),
        (lambda train, y, x: (train, np.where(np.arange(y.size) == 0, np.inf, y), x), "y_train holds 1"),
        (lambda train, y, x: (train, y[:-1], x), "one label per row"),
        (lambda train, y, x: (train[0], y, x), "2-D array"),
        (lambda train, y, x: (train, y, ["a"] * x.size), "x is not numeric"),
    ],
)
def test_bad_input_is_a_usage_error(change: Callable[..., tuple[Any, Any, Any]], message: str) -> None:
    train, _, target, x = make_data(n=200)
    model = Ridge().fit(train, target)
    features, labels, decision = change(train, target, x)
    with pytest.raises(UsageError, match=message) as raised:
        attribute(model, features, labels, decision)
    assert raised.value.hint


@pytest.mark.parametrize("top", [0, -1, 2.5, True])
def test_top_must_be_a_positive_whole_number(top: Any) -> None:
    train, _, target, x = make_data(n=50)
    with pytest.raises(UsageError, match="top must be"):
        attribute(Ridge().fit(train, target), train, target, x, top=top)
