"""Bias metrics equal fairlearn's (the oracle) to 1e-9, edge cases included; the bootstrap is seeded."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fairlearn import metrics as fm

from mlcustody.errors import UsageError
from mlcustody.forensics import bias


def _same(ours: float, theirs: float) -> bool:
    return (math.isnan(ours) and math.isnan(theirs)) or abs(ours - theirs) <= 1e-9


def _world(seed: int, groups: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sensitive = rng.choice([f"g{i}" for i in range(groups)], size=n)
    y_true = rng.integers(0, 2, n)
    y_pred = np.where(rng.random(n) < 0.7, y_true, 1 - y_true)
    return sensitive, y_true, y_pred


@pytest.mark.parametrize(("seed", "groups", "n"), [(0, 2, 500), (1, 4, 3000), (2, 6, 200), (3, 3, 40)])
def test_every_number_equals_fairlearn(seed: int, groups: int, n: int) -> None:
    sensitive, y_true, y_pred = _world(seed, groups, n)
    if seed == 3:  # a group with no actual positives: fairlearn sets its TPR to 0
        y_true[sensitive == "g0"] = 0
    found = bias.measure(sensitive, y_pred, y_true, replicates=0)
    frame = fm.MetricFrame(
        metrics={
            "selection_rate": fm.selection_rate,
            "tpr": fm.true_positive_rate,
            "fpr": fm.false_positive_rate,
            "accuracy": lambda t, p: float(np.mean(t == p)),
        },
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=sensitive,
    )
    for group in found.groups:
        for metric in bias.METRICS:
            assert _same(getattr(group, metric), frame.by_group.loc[group.group, metric])
        assert group.count == int((sensitive == group.group).sum())
    for metric in bias.METRICS:
        assert _same(getattr(found.overall, metric), frame.overall[metric])
    oracle = {
        "demographic_parity_difference": fm.demographic_parity_difference,
        "demographic_parity_ratio": fm.demographic_parity_ratio,
        "equalized_odds_difference": fm.equalized_odds_difference,
        "equalized_odds_ratio": fm.equalized_odds_ratio,
        "equal_opportunity_difference": fm.equal_opportunity_difference,
        "equal_opportunity_ratio": fm.equal_opportunity_ratio,
    }
    for item in found.disparities:
        for method in ("between_groups", "to_overall"):
            theirs = oracle[item.name](y_true, y_pred, sensitive_features=sensitive, method=method)
            assert _same(getattr(item, method), theirs), (item.name, method)
    if seed == 3:
        assert any("no actual positives" in text for text in found.warnings)
        assert found.groups[0].tpr == 0.0


def test_bootstrap_is_seeded_and_covers_the_estimate() -> None:
    sensitive, y_true, y_pred = _world(5, 3, 2000)
    a = bias.measure(sensitive, y_pred, y_true, replicates=300, seed=7)
    b = bias.measure(sensitive, y_pred, y_true, replicates=300, seed=7)
    c = bias.measure(sensitive, y_pred, y_true, replicates=300, seed=8)
    assert a == b
    assert a != c
    for group in a.groups:
        interval = group.intervals["selection_rate"]
        assert interval.low <= group.selection_rate <= interval.high
        assert interval.high - interval.low < 0.15


def test_predictions_only_give_selection_rates() -> None:
    sensitive, _, y_pred = _world(6, 2, 300)
    found = bias.measure(sensitive, y_pred, None, replicates=0)
    assert found.groups[0].tpr is None
    assert [d.name for d in found.disparities] == ["demographic_parity_difference", "demographic_parity_ratio"]
    theirs = fm.demographic_parity_difference(y_pred, y_pred, sensitive_features=sensitive)
    assert _same(found.disparities[0].between_groups, theirs)


def test_more_than_two_classes_is_refused() -> None:
    with pytest.raises(UsageError, match="two classes"):
        bias.measure(np.array(["a", "b", "a"]), np.array([0, 1, 2]), None)
