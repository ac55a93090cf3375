"""Drift statistics equal scipy's to 1e-9 in the same mode (exact and asymptotic KS alike)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlcustody.forensics import drift


@pytest.mark.parametrize(("n1", "n2", "shift"), [(50, 80, 0.3), (3000, 2500, 0.0), (20_000, 15_000, 0.02)])
def test_numeric_statistics_equal_scipy(n1: int, n2: int, shift: float) -> None:
    rng = np.random.default_rng(n1)
    a = np.round(rng.normal(0, 1, n1), 2)  # ties, as real data has
    b = np.round(rng.normal(shift, 1.0 + shift, n2), 2)
    found = drift.column("x", a, b)
    ks = stats.ks_2samp(a, b)
    assert abs(found.ks - ks.statistic) <= 1e-9
    assert abs(found.ks_p - ks.pvalue) <= 1e-9
    assert found.ks_mode == ("exact" if max(n1, n2) <= 10_000 else "asymp")
    assert abs(found.wasserstein - stats.wasserstein_distance(a, b)) <= 1e-9
    cuts = np.array(found.bins)
    p = np.bincount(np.searchsorted(cuts, a, side="right"), minlength=cuts.size + 1)
    q = np.bincount(np.searchsorted(cuts, b, side="right"), minlength=cuts.size + 1)
    assert abs(found.jensen_shannon - jensenshannon(p, q)) <= 1e-9
    chi = stats.chi2_contingency(np.vstack([p, q]))
    assert abs(found.chi2 - chi.statistic) <= 1e-9 and abs(found.chi2_p - chi.pvalue) <= 1e-9
    pp, qq = np.maximum(p / p.sum(), 1e-4), np.maximum(q / q.sum(), 1e-4)
    assert abs(found.psi - (stats.entropy(pp, qq) + stats.entropy(qq, pp))) <= 1e-9


def test_categorical_shift_is_found() -> None:
    rng = np.random.default_rng(4)
    a = rng.choice(["a", "b", "c"], p=[0.8, 0.1, 0.1], size=20_000)
    b = rng.choice(["a", "b", "c", "d"], p=[0.7, 0.15, 0.1, 0.05], size=20_000)
    found = drift.column("c", a, b)
    p = np.array([(a == v).sum() for v in found.bins])
    q = np.array([(b == v).sum() for v in found.bins])
    assert found.bins == ["a", "b", "c", "d"]
    assert abs(found.chi2_p - stats.chi2_contingency(np.vstack([p, q])).pvalue) <= 1e-9
    assert found.chi2_p < 1e-6 and found.ks is None
    assert abs(found.jensen_shannon - jensenshannon(p, q)) <= 1e-9


def test_a_large_shift_reports_the_bound_within_scipy() -> None:
    rng = np.random.default_rng(9)
    a, b = rng.normal(0, 1, 30_000), rng.normal(0.5, 1, 30_000)
    found = drift.column("x", a, b)
    assert found.ks_mode == "asymp-bound"
    assert abs(found.ks_p - stats.ks_2samp(a, b).pvalue) <= 1e-9
    assert found.drifted and found.wasserstein_normed > 0.4
