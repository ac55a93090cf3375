"""Suspect slices: the conjunctions of at most two conditions on which a model errs most, scored as
SliceLine scores them, kept only when their excess of errors survives a multiple-testing correction.

SliceLine (Sagadeeva & Boehm, SIGMOD 2021) scores a slice S of a data set of n rows with average
error ē as  sc(S) = α·(ē_S/ē − 1) − (1 − α)·(n/|S| − 1)  and searches a pruned lattice for the top
ones. With at most two conditions the whole lattice is small (Σc_j + Σc_j·c_k slices over binned
columns), so it is enumerated exhaustively, one ``bincount`` per column and per pair of columns:
same scores, same top slice as the ``sliceline`` package, without its search. Numeric columns with
more than ``max_bins`` distinct values are cut at their deciles; the cut points are recorded.

Each slice's errors are tested against the rest with the one-sided Fisher exact test
(hypergeometric tail: more errors in the slice than chance), Bonferroni-corrected over every slice
evaluated; only slices with support ≥ ``min_support``, a positive score and a corrected p below
``significance`` are kept. A two-condition slice with the very rows of one of its conditions is the
same slice and is not listed twice.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlcustody.errors import UsageError

FloatArray = NDArray[np.float64]
NULL = "null"


@dataclass(frozen=True)
class Condition:
    """``column == value`` (a category) or ``low ≤ column < high`` (a numeric bin; None: unbounded)."""

    column: str
    value: str | None
    low: float | None
    high: float | None

    @property
    def text(self) -> str:
        if self.value is not None:
            return f"{self.column} = {self.value}"
        if self.low is None:
            return f"{self.column} < {self.high:g}"
        if self.high is None:
            return f"{self.column} ≥ {self.low:g}"
        return f"{self.low:g} ≤ {self.column} < {self.high:g}"

    def mask(self, values: NDArray[Any]) -> NDArray[np.bool_]:
        """Which of ``values`` (the column, in any table that has it) satisfy the condition."""
        if self.value is not None:
            return np.asarray(_labels(values) == self.value)
        x = values.astype(np.float64)
        inside = ~np.isnan(x)
        if self.low is not None:
            inside &= x >= self.low
        if self.high is not None:
            inside &= x < self.high
        return inside


@dataclass(frozen=True)
class Slice:
    rank: int
    conditions: list[Condition]
    size: int
    errors: int
    error_rate: float
    positive_rate: float | None  # share of positive predictions in the slice
    score: float  # SliceLine's
    p_value: float  # one-sided Fisher exact, errors in the slice against the rest
    p_adjusted: float  # Bonferroni over the slices evaluated

    @property
    def text(self) -> str:
        return " ∧ ".join(c.text for c in self.conditions)

    def mask(self, columns: dict[str, NDArray[Any]]) -> NDArray[np.bool_]:
        found = np.ones(len(next(iter(columns.values()))), dtype=bool)
        for condition in self.conditions:
            found &= condition.mask(columns[condition.column])
        return found


@dataclass(frozen=True)
class Binned:
    """A column as slice codes: ``codes[i]`` is row i's bin, ``conditions[b]`` what bin b means."""

    column: str
    codes: NDArray[np.intp]
    conditions: list[Condition]


@dataclass(frozen=True)
class SliceSearch:
    alpha: float
    min_support: int
    max_conditions: int
    significance: float
    correction: str
    rows: int
    evaluated: int
    error_rate: float
    positive_rate: float | None
    slices: list[Slice]


def search(
    columns: dict[str, NDArray[Any]],
    errors: NDArray[Any],
    *,
    predicted_positive: NDArray[Any] | None = None,
    alpha: float = 0.6,
    min_support: int = 32,
    max_conditions: int = 2,
    top: int = 5,
    significance: float = 0.05,
    max_bins: int = 10,
) -> SliceSearch:
    """The ``top`` significant slices of at most ``max_conditions`` conditions, best SliceLine score first."""
    if max_conditions not in (1, 2):
        raise UsageError(
            f"--max-conditions {max_conditions} is not supported", hint="enumerate slices of 1 or 2 conditions"
        )
    if not columns:
        raise UsageError("there is no column to slice on", hint="slice a dataset with columns besides the label")
    e = np.asarray(errors, dtype=np.float64)
    n, total = e.size, float(e.sum())
    if total == 0:
        return SliceSearch(alpha, min_support, max_conditions, significance, "bonferroni", n, 0, 0.0, None, [])
    binned = [bin_column(name, values, max_bins) for name, values in columns.items()]
    positive = None if predicted_positive is None else np.asarray(predicted_positive, dtype=np.float64)
    candidates = list(_level_one(binned, e, positive))
    if max_conditions == 2:
        sizes = {tuple(c[0]): c[1] for c in candidates}
        candidates += _level_two(binned, e, positive, sizes)
    kept = [c for c in candidates if c[1] >= min_support]
    if not kept:
        return SliceSearch(alpha, min_support, max_conditions, significance, "bonferroni", n, 0, total / n, None, [])
    size = np.array([c[1] for c in kept], dtype=np.float64)
    err = np.array([c[2] for c in kept], dtype=np.float64)
    scores = score(size, err, n, total / n, alpha)
    p = fisher_greater(err, size, total, n)
    adjusted = np.minimum(p * len(kept), 1.0)
    chosen = [i for i in range(len(kept)) if scores[i] > 0 and adjusted[i] < significance]
    chosen.sort(key=lambda i: (-scores[i], " ∧ ".join(c.text for c in kept[i][0])))
    found = [
        Slice(
            rank,
            list(kept[i][0]),
            int(size[i]),
            int(err[i]),
            float(err[i] / size[i]),
            None if kept[i][3] is None else float(kept[i][3] / size[i]),
            float(scores[i]),
            float(p[i]),
            float(adjusted[i]),
        )
        for rank, i in enumerate(chosen[:top], start=1)
    ]
    overall_positive = None if positive is None else float(positive.mean())
    return SliceSearch(
        alpha, min_support, max_conditions, significance, "bonferroni", n, len(kept), total / n, overall_positive, found
    )


def score(size: FloatArray, errors: FloatArray, n: int, average: float, alpha: float) -> FloatArray:
    """SliceLine's score of slices with these sizes and error sums (``sliceline``'s ``_score``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(alpha * ((errors / size) / average - 1) - (1 - alpha) * (n / size - 1))


def fisher_greater(errors: FloatArray, size: FloatArray, total: float, n: int) -> FloatArray:
    """One-sided Fisher exact p of at least ``errors`` errors in a slice of ``size`` rows (vectorised:
    the hypergeometric tail, which ``fisher_exact(alternative="greater")`` computes)."""
    from scipy.stats import hypergeom

    return np.asarray(hypergeom.sf(errors - 1, n, total, size), dtype=np.float64)


def bin_column(name: str, values: NDArray[Any], max_bins: int) -> Binned:
    """Categories as they are; a numeric column with more than ``max_bins`` values cut at its deciles."""
    if values.dtype.kind in "iuf":
        x = values.astype(np.float64)
        present = x[~np.isnan(x)]
        distinct = np.unique(present)
        if distinct.size > max_bins:
            cuts = np.unique(np.quantile(present, np.linspace(0, 1, max_bins + 1))[1:-1])
            codes = np.searchsorted(cuts, x, side="right")
            bounds = [None, *cuts.tolist(), None]
            conditions = [Condition(name, None, bounds[i], bounds[i + 1]) for i in range(cuts.size + 1)]
            nulls = np.isnan(x)
            if nulls.any():
                codes = np.where(nulls, cuts.size + 1, codes)
                conditions.append(Condition(name, NULL, None, None))
            return Binned(name, codes.astype(np.intp), conditions)
    labels = _labels(values)
    found, codes = np.unique(labels, return_inverse=True)
    return Binned(name, codes.astype(np.intp), [Condition(name, str(v), None, None) for v in found.tolist()])


def _labels(values: NDArray[Any]) -> NDArray[Any]:
    """Values as the text a categorical condition compares (None and NaN as ``null``)."""
    if values.dtype.kind == "f":
        return np.where(np.isnan(values), NULL, values.astype(str))
    if values.dtype.kind == "O":
        return np.array([NULL if v is None else str(v) for v in values])
    return values.astype(str)


Candidate = tuple[tuple[Condition, ...], int, float, float | None]


def _level_one(binned: list[Binned], e: FloatArray, positive: FloatArray | None) -> list[Candidate]:
    found: list[Candidate] = []
    for column in binned:
        k = len(column.conditions)
        sizes = np.bincount(column.codes, minlength=k)
        errs = np.bincount(column.codes, weights=e, minlength=k)
        pos = None if positive is None else np.bincount(column.codes, weights=positive, minlength=k).astype(np.float64)
        for b in range(k):
            if sizes[b]:
                found.append(((column.conditions[b],), int(sizes[b]), float(errs[b]), _at(pos, b)))
    return found


def _level_two(
    binned: list[Binned], e: FloatArray, positive: FloatArray | None, parents: dict[tuple[Condition, ...], int]
) -> list[Candidate]:
    found: list[Candidate] = []
    for left, right in itertools.combinations(binned, 2):
        width = len(right.conditions)
        codes = left.codes * width + right.codes
        k = len(left.conditions) * width
        sizes = np.bincount(codes, minlength=k)
        errs = np.bincount(codes, weights=e, minlength=k)
        pos = None if positive is None else np.bincount(codes, weights=positive, minlength=k).astype(np.float64)
        for b in np.flatnonzero(sizes):
            a, c = left.conditions[b // width], right.conditions[b % width]
            if sizes[b] in (parents.get((a,)), parents.get((c,))):
                continue  # the same rows as one of its conditions alone: the same slice
            found.append(((a, c), int(sizes[b]), float(errs[b]), _at(pos, int(b))))
    return found


def _at(values: FloatArray | None, index: int) -> float | None:
    return None if values is None else float(values[index])
