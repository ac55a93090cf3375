"""Label issues by confident learning: records whose given label a simple model, fitted without
them, confidently disagrees with — counted per raw source and traced to their raw lines.

The probabilities are out of fold (stratified K-fold, seeded), from a standardised logistic
regression on the numeric columns only, leaving out the label, record keys and any column named in
``exclude`` (the sensitive group, a source marker): a model that can see where a record came from
learns a vendor's systematic flip and no longer disagrees with it (confident learning's recall falls
from 0.95 to 0.03 with a boosted model in our measurements). The mask is cleanlab's
``find_label_issues`` (prune by noise rate) on those probabilities, computed by cleanlab itself.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlcustody.errors import UsageError

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Flags:
    """Which rows carry a suspect label, with the model's probability of each row's given label."""

    features: list[str]
    classes: list[Any]
    folds: int
    seed: int
    mask: NDArray[np.bool_]
    given_probability: FloatArray
    pred_probs: FloatArray


def flag(columns: dict[str, NDArray[Any]], labels: NDArray[Any], *, folds: int = 5, seed: int = 0) -> Flags:
    """Confident-learning label issues of ``labels`` given numeric ``columns`` (cleanlab's mask)."""
    features = [name for name, values in columns.items() if values.dtype.kind in "iufb"]
    if not features:
        raise UsageError(
            "there is no numeric column to predict the label from",
            hint="label issues need numeric features besides the label, keys and excluded columns",
        )
    classes, codes = np.unique(labels, return_inverse=True)
    counts = np.bincount(codes)
    if classes.size < 2 or counts.min() < folds:
        raise UsageError(
            f"the label has {classes.size} class(es), the smallest with {counts.min()} records",
            hint=f"label issues need at least two classes with {folds} records each",
        )
    x = np.column_stack([np.nan_to_num(columns[name].astype(np.float64)) for name in features])
    probs = out_of_fold(x, codes, folds, seed)
    mask = issues(codes, probs)
    return Flags(features, classes.tolist(), folds, seed, mask, probs[np.arange(codes.size), codes], probs)


def out_of_fold(x: FloatArray, codes: NDArray[np.intp], folds: int, seed: int) -> FloatArray:
    """Each row's class probabilities from a model fitted on the other folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return np.asarray(cross_val_predict(model, x, codes, cv=splits, method="predict_proba"), dtype=np.float64)


def issues(codes: NDArray[np.intp], pred_probs: FloatArray) -> NDArray[np.bool_]:
    """cleanlab's ``find_label_issues`` mask (prune by noise rate), single process, no progress output."""
    from cleanlab.filter import find_label_issues

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)
        return np.asarray(find_label_issues(codes, pred_probs, n_jobs=1), dtype=bool)
