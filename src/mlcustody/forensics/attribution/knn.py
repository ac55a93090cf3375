"""The same-label nearest-neighbour baseline: which training records look most like this decision.

It needs nothing from the model but ``predict``, so it covers every model the exact methods do not
(gradient-boosted trees until BoostIn is built, pipelines, neural nets), and it is the baseline the
exact methods are judged against. It measures proximity, not the effect of removing a record: on
gradient-boosted trees it finds rows whose removal moves the prediction, but ranks them less well than
influence methods do (research note, section 1). Features are standardised so that no column
dominates the distance by its unit alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlcustody.errors import UsageError

from ._common import Attributor, FloatArray, Prediction, python_scalar


def same_label_neighbours(model: Any, features: FloatArray, labels: NDArray[Any]) -> Attributor:
    """Similarity 1/(1+d) to the decision of each record labelled as the model predicts (all rows for a regressor)."""
    if not callable(getattr(model, "predict", None)):
        raise UsageError(
            f"{type(model).__name__} has no predict method, so there is no decision to attribute",
            hint="pass the fitted model (or pipeline) that made the decision",
        )
    centre = features.mean(axis=0)
    spread = features.std(axis=0)
    spread[spread == 0] = 1.0  # a constant column adds nothing to any distance
    standard = (features - centre) / spread
    labelled = hasattr(model, "classes_")

    def effects(x: FloatArray) -> tuple[Prediction, FloatArray]:
        predicted = model.predict(x[None, :])[0]
        distance = np.sqrt(np.square(standard - (x - centre) / spread).sum(axis=1))
        similarity = 1.0 / (1.0 + distance)
        if labelled:
            similarity[labels != predicted] = 0.0
        return python_scalar(predicted), similarity

    among = "records whose label is the model's predicted label" if labelled else "all records"
    return Attributor(
        method="knn",
        measure=(
            f"similarity 1/(1+d) to the decision among {among}, d the euclidean distance over standardised "
            "features: a proximity baseline, not the effect of leaving the record out; "
            "prediction is the model's predicted label or value"
        ),
        n_features=features.shape[1],
        effects=effects,
    )
