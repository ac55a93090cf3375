"""Meaningful information about the logic of one decision: what each feature contributed, which factors
were principal, and what single change would have changed the result.

Contributions are exact Shapley values of the model's score against one baseline, the average
training record: the score is the decision function where the model has one (log-odds for a
logistic regression), else the probability of the positive class, else the prediction. For a linear
model they reduce to ``coef · (x − mean)`` (interventional SHAP); for trees and any other model they
are the same definition computed by enumerating feature coalitions, which stays exact up to
``MAX_EXACT`` features and is refused beyond (a report states the gap rather than an approximation
that looks exact). The sum of the contributions is the score minus the baseline's score, always.

A counterfactual moves one feature, the others held, to the nearest value inside the range the
training data covered that changes the predicted class (C-203/22: how different data would have
changed the result). It is searched on a grid and refined by bisection, so it is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import factorial
from typing import Any

import numpy as np
from numpy.typing import NDArray

MAX_EXACT = 12  # 2**12 coalitions, one batched prediction
MAX_REASONS = 4  # Reg B commentary: more than four principal reasons rarely help
_GRID = 512
_BISECT = 40


@dataclass(frozen=True)
class Contribution:
    feature: str
    value: Any  # the person's value
    baseline: float  # the training average
    effect: float  # what this feature added to the score, against the baseline


@dataclass(frozen=True)
class Counterfactual:
    feature: str
    value: Any
    needed: float  # nearest value (others held) that changes the predicted class
    outcome: Any  # the predicted class it would give


@dataclass(frozen=True)
class Explanation:
    method: str
    score: str  # what the contributions are measured in
    value: float  # the model's score for this decision
    baseline_value: float  # the score of the average training record
    predicted: Any  # the reloaded model's prediction
    contributions: list[Contribution]  # largest effect first
    counterfactuals: list[Counterfactual]  # one per feature that can change the result alone


def explain(model: Any, features: list[str], x: list[Any], rows: NDArray[Any]) -> Explanation:
    """The explanation of ``model`` at point ``x`` (in ``features`` order), ``rows`` its training matrix."""
    if len(features) > MAX_EXACT:
        raise ValueError(f"{len(features)} features: exact Shapley values are computed for at most {MAX_EXACT}")
    data = np.asarray(rows, dtype=float)
    point = np.asarray(x, dtype=float)
    baseline = data.mean(axis=0)
    score, unit = _score(model)
    effects = _shapley(score, point, baseline)
    value, base_value = (float(v) for v in score(np.vstack([point, baseline])))
    order = sorted(range(len(features)), key=lambda j: (-abs(effects[j]), features[j]))
    contributions = [Contribution(features[j], x[j], float(baseline[j]), float(effects[j])) for j in order]
    predicted = _plain(model.predict(point.reshape(1, -1))[0])
    found = [_counterfactual(model, features, j, point, data, predicted) for j in range(len(features))]
    counterfactuals = sorted((c for c in found if c is not None), key=lambda c: c.feature)
    method = "exact Shapley values against the training average (interventional SHAP)"
    return Explanation(method, unit, value, base_value, predicted, contributions, counterfactuals)


def principal(found: Explanation) -> list[Contribution]:
    """The factors that moved this decision's score most in the direction it went, at most four."""
    direction = np.sign(found.value - found.baseline_value) or 1.0
    pushing = [c for c in found.contributions if np.sign(c.effect) == direction and c.effect != 0]
    return pushing[:MAX_REASONS]


def _score(model: Any) -> tuple[Any, str]:
    """The model's real-valued score of a batch of rows, and what it is."""
    if hasattr(model, "decision_function"):
        return (lambda rows: np.ravel(model.decision_function(rows))), "decision score (log-odds for logistic models)"
    if hasattr(model, "predict_proba"):
        return (lambda rows: model.predict_proba(rows)[:, -1]), "probability of the positive class"
    return (lambda rows: np.asarray(model.predict(rows), dtype=float)), "prediction"


def _shapley(score: Any, point: NDArray[Any], baseline: NDArray[Any]) -> NDArray[Any]:
    """Exact Shapley values of ``score`` at ``point``, absent features taking the baseline's value."""
    n = len(point)
    masks = [frozenset(c) for size in range(n + 1) for c in combinations(range(n), size)]
    index = {mask: i for i, mask in enumerate(masks)}
    batch = np.tile(baseline, (len(masks), 1))
    for i, mask in enumerate(masks):
        batch[i, list(mask)] = point[list(mask)]
    values = score(batch)
    weight = [factorial(s) * factorial(n - s - 1) / factorial(n) for s in range(n)]
    effects = np.zeros(n)
    for mask in masks:
        for j in range(n):
            if j not in mask:
                effects[j] += weight[len(mask)] * (values[index[mask | {j}]] - values[index[mask]])
    return effects


def _counterfactual(
    model: Any, features: list[str], j: int, point: NDArray[Any], data: NDArray[Any], predicted: Any
) -> Counterfactual | None:
    low, high = float(data[:, j].min()), float(data[:, j].max())
    if low == high:
        return None
    grid = np.linspace(low, high, _GRID)
    batch = np.tile(point, (_GRID, 1))
    batch[:, j] = grid
    outcomes = [_plain(v) for v in model.predict(batch)]
    changed = [i for i, outcome in enumerate(outcomes) if outcome != predicted]
    if not changed:
        return None
    nearest = min(changed, key=lambda i: (abs(grid[i] - point[j]), grid[i]))
    inside, outside = float(point[j]), float(grid[nearest])  # same class at ``inside``, changed at ``outside``
    for _ in range(_BISECT):
        middle = (inside + outside) / 2
        probe = point.copy()
        probe[j] = middle
        if _plain(model.predict(probe.reshape(1, -1))[0]) == predicted:
            inside = middle
        else:
            outside = middle
    probe = point.copy()
    probe[j] = outside
    outcome = _plain(model.predict(probe.reshape(1, -1))[0])
    return Counterfactual(features[j], _plain(point[j]), float(outside), outcome)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
