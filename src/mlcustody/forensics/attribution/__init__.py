"""Training-data attribution for single decisions: which training records most influenced this prediction.

::

    result = attribute(model, X_train, y_train, x, top=10)         # one decision
    attributor = prepare(model, X_train, y_train)                   # many decisions of one model:
    result = attributor.attribute(x)                                #   the per-model work is done once

The method follows the model, because each model class admits a different exact or near-exact answer:

    method          models                                   delta of a record
    influence       LogisticRegression (L2 or none)          Δ logit if left out (one Newton step)
    loo-exact       Ridge, LinearRegression                  Δ prediction if left out (exact)
    forest-kernel   RandomForest*, ExtraTrees*               Δ probability / value if left out, trees fixed
    boostin         (Hist)GradientBoosting* (binary, L2)     Δ logit / value if left out, trees fixed, first order
    knn             anything else with predict               similarity to the decision (a baseline)

``method="knn"`` forces the baseline on any model. ``X_train`` and ``y_train`` must be exactly the rows
the model was fitted on, in order and unweighted: the deltas are indexed by row of ``X_train``.
docs/attribution.md gives the formulas, the measured exactness and the limits.
"""

from __future__ import annotations

from typing import Any

from numpy.typing import NDArray

from mlcustody.errors import UsageError

from ._common import (
    KNN_HINT,
    Attribution,
    Attributor,
    FloatArray,
    Influence,
    check_top,
    extremes,
    largest,
    training_data,
)
from .boostin import boosted_trees, is_lightgbm, is_xgboost
from .forest import forest_kernel
from .knn import same_label_neighbours
from .linear import least_squares_loo, logistic_influence

__all__ = [
    "METHODS",
    "Attribution",
    "Attributor",
    "Influence",
    "attribute",
    "checked_training_data",
    "choose_method",
    "extremes",
    "largest",
    "prepare",
]

_BUILDERS = {
    "influence": logistic_influence,
    "loo-exact": least_squares_loo,
    "forest-kernel": forest_kernel,
    "boostin": boosted_trees,
    "knn": same_label_neighbours,
}
METHODS = tuple(_BUILDERS)
COVERS = {  # the model families each method is built for, as errors name them
    "influence": "LogisticRegression (binary or multinomial)",
    "loo-exact": "Ridge and LinearRegression",
    "forest-kernel": "RandomForest* and ExtraTrees*",
    "boostin": "binary or squared-error (Hist)GradientBoosting*, LightGBM and XGBoost models",
    "knn": "any model with predict",
}


def attribute(
    model: Any,
    X_train: Any,  # noqa: N803 - named as scikit-learn names it
    y_train: Any,
    x: Any,
    top: int = 10,
    *,
    method: str | None = None,
) -> Attribution:
    """The ``top`` training records that most influenced the model's decision on ``x``.

    Prepares from scratch on every call; hold a ``prepare`` result to attribute many decisions.
    """
    check_top(top)
    return prepare(model, X_train, y_train, method=method).attribute(x, top)


def prepare(model: Any, X_train: Any, y_train: Any, *, method: str | None = None) -> Attributor:  # noqa: N803 - as above
    """Bind a fitted model to its training rows, doing the per-model work of the chosen method once.

    ``method=None`` chooses by model class; naming a method that does not fit the model is an error
    rather than a silent fallback, so a result's ``method`` is always the one asked for.
    """
    chosen = choose_method(model, method)
    return _BUILDERS[chosen](model, *checked_training_data(model, X_train, y_train))


def checked_training_data(model: Any, X_train: Any, y_train: Any) -> tuple[FloatArray, NDArray[Any]]:  # noqa: N803
    """The training rows as the methods take them, checked against the fitted model's width."""
    features, labels = training_data(X_train, y_train)
    _require_fitted(model)
    expected = getattr(model, "n_features_in_", features.shape[1])
    if expected != features.shape[1]:
        raise UsageError(
            f"the model expects {expected} features, X_train has {features.shape[1]}",
            hint="pass the training features with the columns the model was fitted on, in the same order",
        )
    return features, labels


def choose_method(model: Any, method: str | None) -> str:
    """The method ``prepare`` uses for ``model``: its most exact one, or ``method`` if that fits it."""
    if method is not None and method not in _BUILDERS:
        raise UsageError(f"unknown attribution method {method!r}", hint=f"choose one of {', '.join(METHODS)}")
    if method == "knn":
        return method
    natural = _natural_method(model)
    if method is not None and method != natural:
        raise UsageError(
            f"method {method!r} does not apply to {type(model).__name__} (its method is {natural!r})",
            hint=f"{method} covers {COVERS[method]}; leave method unset to use {natural!r}; or {KNN_HINT}",
        )
    return natural


def _natural_method(model: Any) -> str:
    """The most exact method this model's class admits; scikit-learn is imported only when needed."""
    from sklearn import ensemble, linear_model

    families = {
        "influence": (linear_model.LogisticRegression,),
        "loo-exact": (linear_model.Ridge, linear_model.LinearRegression),
        "forest-kernel": (
            ensemble.RandomForestClassifier,
            ensemble.RandomForestRegressor,
            ensemble.ExtraTreesClassifier,
            ensemble.ExtraTreesRegressor,
        ),
        "boostin": (
            ensemble.HistGradientBoostingClassifier,
            ensemble.HistGradientBoostingRegressor,
            ensemble.GradientBoostingClassifier,
            ensemble.GradientBoostingRegressor,
        ),
    }
    for name, classes in families.items():
        if isinstance(model, classes):
            return name
    return "boostin" if is_lightgbm(model) or is_xgboost(model) else "knn"


def _require_fitted(model: Any) -> None:
    """An unfitted scikit-learn model fails here with the fix, not deep inside a method."""
    from sklearn.base import BaseEstimator
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(model, BaseEstimator):
        return
    try:
        check_is_fitted(model)
    except NotFittedError as exc:
        raise UsageError(
            f"this {type(model).__name__} is not fitted", hint="attribute the fitted model that made the decision"
        ) from exc
