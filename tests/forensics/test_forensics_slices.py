"""Slice search: SliceLine's scores, the same top slice as the `sliceline` package, Fisher p-values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import fisher_exact
from sliceline.slicefinder import Slicefinder

from mlcustody.errors import UsageError
from mlcustody.forensics import slices


def _planted(seed: int, n: int = 4000) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    columns = {f"c{j}": rng.integers(0, 2 + j % 3, n) for j in range(6)}
    inside = (columns["c2"] == 3) & (columns["c4"] == 1)
    errors = (rng.random(n) < np.where(inside, 0.6, 0.1)).astype(int)
    return columns, errors


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_slice_equals_sliceline(seed: int) -> None:
    columns, errors = _planted(seed)
    found = slices.search(columns, errors, alpha=0.95, min_support=32, significance=1.0, top=3)
    finder = Slicefinder(alpha=0.95, k=1, max_l=2, min_sup=32, verbose=False)
    finder.fit(np.column_stack(list(columns.values())), errors)
    theirs = finder.top_slices_[0]
    ours = {c.column: int(c.value) for c in found.slices[0].conditions}
    assert ours == {f"c{j}": int(v) for j, v in enumerate(theirs) if v is not None}
    assert abs(found.slices[0].score - finder.top_slices_statistics_[0]["slice_score"]) <= 1e-9
    assert found.slices[0].text == "c2 = 3 ∧ c4 = 1"
    assert found.slices[0].p_adjusted < 1e-10


def test_p_values_are_fishers_and_null_data_has_no_significant_slice() -> None:
    columns, errors = _planted(3)
    top = slices.search(columns, errors, alpha=0.95).slices[0]
    mask = top.mask(columns)
    a, size, total = int(errors[mask].sum()), int(mask.sum()), int(errors.sum())
    table = [[a, size - a], [total - a, errors.size - size - (total - a)]]
    assert abs(top.p_value - fisher_exact(table, alternative="greater").pvalue) <= 1e-12
    rng = np.random.default_rng(4)
    null = slices.search(columns, (rng.random(errors.size) < 0.1).astype(int))
    assert null.slices == []


def test_numeric_columns_are_binned_at_deciles() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=3000)
    errors = (rng.random(3000) < np.where(x > 1.3, 0.7, 0.05)).astype(int)
    top = slices.search({"x": x}, errors, alpha=0.95, max_conditions=1).slices[0]
    (condition,) = top.conditions
    assert condition.high is None and 1.1 < condition.low < 1.4
    assert top.mask({"x": x}).sum() == top.size


def test_three_conditions_are_refused() -> None:
    with pytest.raises(UsageError, match="max-conditions 3"):
        slices.search({"a": np.zeros(3)}, np.zeros(3), max_conditions=3)
