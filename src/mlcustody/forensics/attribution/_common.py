"""What every attribution method shares: the result values, the prepared attributor, input checks.

Each method splits its work the same way: what depends only on the model and its training rows (a
factorised Hessian, leaf ids, standardised features) is done once by ``prepare``; what depends on the
decision costs O(n·p) or O(n·T) and returns one signed number per training row. Keeping that split
in one ``Attributor`` type lets a caller attribute many decisions of one model version cheaply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlcustody.errors import UsageError

FloatArray = NDArray[np.float64]
Prediction = float | int | str
Effects = Callable[[FloatArray], tuple[Prediction, FloatArray]]

KNN_HINT = 'pass method="knn" for the same-label similarity baseline, which works on any model'


@dataclass(frozen=True)
class Influence:
    """One training record's part in a decision: its row index in ``X_train`` and the signed ``delta``."""

    index: int
    delta: float


@dataclass(frozen=True)
class Attribution:
    """The records that most influenced one decision, largest ``|delta|`` first.

    ``measure`` says in words what ``delta`` and ``prediction`` are for this ``method``, because the
    methods measure different things (a change of logit, of probability, a similarity score).
    """

    method: str
    measure: str
    prediction: Prediction
    top: list[Influence]


@dataclass(frozen=True)
class Attributor:
    """A model bound to its training rows, with the per-model work already done.

    ``effects`` maps one decision's validated features to the model's own output and one delta per
    training row; a delta of exactly 0 means the record has no part in that decision.
    """

    method: str
    measure: str
    n_features: int
    effects: Effects

    def deltas(self, x: Any) -> tuple[Prediction, FloatArray]:
        """The model's output for ``x`` and the delta of every training row (index = row of ``X_train``)."""
        return self.effects(decision_features(x, self.n_features))

    def attribute(self, x: Any, top: int = 10) -> Attribution:
        """The ``top`` training records with the largest ``|delta|`` for the decision ``x``."""
        check_top(top)
        prediction, delta = self.deltas(x)
        return Attribution(self.method, self.measure, prediction, largest(delta, top))


def largest(delta: FloatArray, top: int) -> list[Influence]:
    """The non-zero deltas with the largest magnitude, ties broken by row index so output is stable.

    ``argpartition`` keeps this O(n) however large the training set: only ``top`` rows get sorted.
    """
    rows = np.flatnonzero(delta)
    size = np.abs(delta[rows])
    if rows.size > top:
        keep = np.argpartition(-size, top - 1)[:top]
        rows, size = rows[keep], size[keep]
    order = np.lexsort((rows, -size))
    return [Influence(int(row), float(delta[row])) for row in rows[order]]


def extremes(delta: FloatArray, top: int) -> tuple[list[Influence], list[Influence]]:
    """The ``top`` records that most raised the decision (leaving them out lowers it: the most negative
    deltas) and the ``top`` that most lowered it (the most positive), each largest effect first."""
    raised = largest(np.minimum(delta, 0.0), top)
    lowered = largest(np.maximum(delta, 0.0), top)
    return raised, lowered


def check_top(top: int) -> None:
    if isinstance(top, bool) or not isinstance(top, int | np.integer) or top < 1:
        raise UsageError(f"top must be a positive whole number, got {top!r}", hint="pass top=10, for example")


def training_data(rows: Any, labels: Any) -> tuple[FloatArray, NDArray[Any]]:
    """``X_train`` as a finite float matrix and ``y_train`` as a vector of the same length."""
    features = numeric(rows, "X_train")
    if features.ndim != 2 or features.shape[0] < 2 or features.shape[1] < 1:
        raise UsageError(
            f"X_train must be a 2-D array of at least 2 rows and 1 column, got shape {features.shape}",
            hint="pass the training features as an (n_rows, n_features) array",
        )
    require_finite(features, "X_train")
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != features.shape[0]:
        raise UsageError(
            f"y_train must be a 1-D array with one label per row of X_train ({features.shape[0]}), got shape {y.shape}",
            hint="pass the training labels in the same row order as X_train",
        )
    if y.dtype.kind == "f":
        require_finite(y, "y_train")
    return features, y


def decision_features(x: Any, n_features: int) -> FloatArray:
    """One decision's features as a finite 1-D float vector of the model's width."""
    features = numeric(x, "x")
    if features.shape != (n_features,):
        raise UsageError(
            f"x must be one decision's features as a 1-D array of {n_features} values, got shape {features.shape}",
            hint="pass one row, X[i], with the columns the model was trained on",
        )
    require_finite(features, "x")
    return features


def numeric(values: Any, name: str) -> FloatArray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{name} is not numeric: {exc}", hint=f"encode {name} as numbers first") from exc


def require_finite(values: NDArray[Any], name: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise UsageError(
            f"{name} holds {int(bad.sum())} NaN or infinite value(s)",
            hint=f"impute or drop them as the model's pipeline did before attributing; {name} must be finite",
        )


def class_codes(y: NDArray[Any], classes: NDArray[Any]) -> NDArray[np.intp]:
    """Each label's index in the model's ``classes_``; a label the model never saw means wrong rows."""
    known = np.isin(y, classes)
    if not known.all():
        unseen = np.unique(y[~known])[:5].tolist()
        raise UsageError(
            f"y_train holds labels the model was not trained on: {unseen}",
            hint="pass the exact rows and labels the model was fitted on",
        )
    return np.searchsorted(classes, y)


def python_scalar(value: Any) -> Prediction:
    """A numpy scalar as the plain Python value, so results serialise to JSON as they are."""
    return value.item() if isinstance(value, np.generic) else value  # type: ignore[no-any-return]
