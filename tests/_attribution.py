"""Brute-force oracles of training-data attribution: seeded data, actual leave-one-out retrains and the
bars a computed influence must meet against them (the research note's section 1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

SEED = 20_260_301
Array = np.ndarray[Any, Any]


def make_data(n: int = 600, p: int = 6, seed: int = SEED) -> tuple[Array, Array, Array, Array]:
    """Features, noisy binary labels, a continuous target, and one unseen decision."""
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(n, p)) * rng.uniform(0.5, 3.0, size=p)
    weights = rng.normal(size=p) / train.std(axis=0)
    y = (train @ weights + 0.3 + rng.logistic(size=n) > 0).astype(int)
    target = train @ weights + rng.normal(size=n)
    return train, y, target, rng.normal(size=p) * train.std(axis=0)


def leave_one_out(
    fit: Callable[[Array, Array], Any], output: str, train: Array, y: Array, x: Array, rows: Array
) -> Array:
    """Actual change of the model's output on x when each of ``rows`` is dropped and the model refitted."""
    full = getattr(fit(train, y), output)(x[None, :])[0]
    return np.array(
        [getattr(fit(np.delete(train, row, 0), np.delete(y, row)), output)(x[None, :])[0] - full for row in rows]
    )


def assert_matches_retrains(predicted: Array, actual: Array) -> None:
    pearson = np.corrcoef(predicted, actual)[0, 1]
    worst = np.abs(predicted - actual).max()
    assert pearson >= 0.99, pearson
    assert worst <= 0.05 * np.abs(actual).max(), (worst, np.abs(actual).max())


def sampled_rows(n: int, count: int) -> Array:
    return np.random.default_rng(SEED + 1).choice(n, size=count, replace=False)
