"""``investigate drift --evidently-compatible``: the verdict Evidently's data-drift preset would give,
column by column, by the test Evidently picks by default — so a team that monitors with Evidently can
check our numbers against its dashboard.

Evidently's default choice (``legacy/calculations/stattests/registry.py``), with n the reference's
rows and u the distinct values of reference and current together, nulls dropped:

==============  ==================================  ==================================
                n ≤ 1000                            n > 1000
==============  ==================================  ==================================
numeric, u > 5  KS p-value (``ks_2samp``), ≤ 0.05   Wasserstein / max(std_ref, 0.001), ≥ 0.1
otherwise       χ² p-value if u > 2, else two-       Jensen–Shannon distance (nats) of the
                proportion z p-value; < 0.05        value shares, ≥ 0.1
==============  ==================================  ==================================

Its "χ²" is a goodness-of-fit test of the current counts against the reference's scaled to the
current size (``chisquare(f_obs=cur, f_exp=ref·n_cur/n_ref)``), not the homogeneity test of plain
``drift``; its z test pools the two proportions of "not the smallest value". The dataset drifts when
at least half of its columns do (``drift_share`` 0.5). A column is numeric when its type is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

SMALL = 1000  # reference rows up to which Evidently uses p-value tests
FEW = 5  # distinct values up to which a numeric column is treated as categorical
DRIFT_SHARE = 0.5
_THRESHOLDS = {"ks": 0.05, "chisquare": 0.05, "z": 0.05, "wasserstein": 0.1, "jensenshannon": 0.1}
_P_VALUES = {"ks", "chisquare", "z"}


@dataclass(frozen=True)
class ColumnVerdict:
    column: str
    column_type: str  # num | cat, as Evidently names them
    test: str  # ks | chisquare | z | wasserstein | jensenshannon
    score: float  # a p-value for ks, chisquare and z; a distance otherwise
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class EvidentlyReport:
    columns: list[ColumnVerdict]
    drifted_columns: int
    share: float
    drift_share: float
    dataset_drift: bool


def report(pairs: list[tuple[str, NDArray[Any], NDArray[Any]]]) -> EvidentlyReport:
    """The verdict of every (column, reference, current) and of the dataset, nulls already dropped."""
    found = [verdict(name, reference, current) for name, reference, current in pairs]
    drifted = sum(v.drifted for v in found)
    share = drifted / len(found) if found else 0.0
    return EvidentlyReport(found, drifted, share, DRIFT_SHARE, bool(found) and share >= DRIFT_SHARE)


def verdict(name: str, reference: NDArray[Any], current: NDArray[Any]) -> ColumnVerdict:
    """The test Evidently picks for this column, its score and whether it calls the column drifted."""
    numeric = reference.dtype.kind in "iuf" and current.dtype.kind in "iuf"
    both = np.concatenate([reference, current]) if numeric else np.concatenate([_text(reference), _text(current)])
    distinct = np.unique(both).size
    if reference.size <= SMALL:
        if numeric and distinct > FEW:
            test, score = "ks", _ks(reference, current)
        elif distinct > 2:
            test, score = "chisquare", _goodness_of_fit(*_counts(reference, current, numeric))
        else:
            test, score = "z", _two_proportions(reference, current, numeric)
    elif numeric and distinct > FEW:
        test = "wasserstein"
        score = _wasserstein(reference, current) / max(float(np.std(reference)), 0.001)
    else:
        test, score = "jensenshannon", _jensen_shannon(*_counts(reference, current, numeric))
    threshold = _THRESHOLDS[test]
    drifted = score <= threshold if test == "ks" else score < threshold if test in _P_VALUES else score >= threshold
    return ColumnVerdict(name, "num" if numeric else "cat", test, float(score), threshold, bool(drifted))


def _ks(reference: NDArray[Any], current: NDArray[Any]) -> float:
    from scipy.stats import ks_2samp

    return float(ks_2samp(reference.astype(np.float64), current.astype(np.float64)).pvalue)


def _wasserstein(reference: NDArray[Any], current: NDArray[Any]) -> float:
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(reference.astype(np.float64), current.astype(np.float64)))


def _counts(
    reference: NDArray[Any], current: NDArray[Any], numeric: bool
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Counts of every value seen in either sample, in the same order for both."""
    ref, cur = (reference, current) if numeric else (_text(reference), _text(current))
    values, codes = np.unique(np.concatenate([ref, cur]), return_inverse=True)
    return (
        np.bincount(codes[: ref.size], minlength=values.size).astype(np.float64),
        np.bincount(codes[ref.size :], minlength=values.size).astype(np.float64),
    )


def _goodness_of_fit(ref: NDArray[np.float64], cur: NDArray[np.float64]) -> float:
    """``chisquare(f_obs=cur, f_exp=ref·Σcur/Σref)``'s p-value; a value absent from the reference gives 0."""
    from scipy.stats import chi2

    expected = ref * cur.sum() / ref.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(expected > 0, (cur - expected) ** 2 / expected, np.where(cur > 0, np.inf, 0.0))
    return float(chi2.sf(terms.sum(), ref.size - 1))


def _two_proportions(reference: NDArray[Any], current: NDArray[Any], numeric: bool) -> float:
    """Two-sided pooled z test of the share of values other than the smallest one."""
    from scipy.stats import norm

    ref, cur = (reference, current) if numeric else (_text(reference), _text(current))
    values = np.unique(np.concatenate([ref, cur]))
    if values.size < 2:
        return 1.0
    p1, p2 = float(np.mean(ref != values[0])), float(np.mean(cur != values[0]))
    pooled = (p1 * ref.size + p2 * cur.size) / (ref.size + cur.size)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / ref.size + 1 / cur.size))
    return float(2 * (1 - norm.cdf(abs(z))))


def _jensen_shannon(ref: NDArray[np.float64], cur: NDArray[np.float64]) -> float:
    from scipy.spatial import distance

    return float(distance.jensenshannon(ref / ref.sum(), cur / cur.sum()))


def _text(values: NDArray[Any]) -> NDArray[Any]:
    return values.astype(str)
