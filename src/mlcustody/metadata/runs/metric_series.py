"""Whole metric series at once: their digest, their summary, and their rows, written in bulk.

A run's writer sends metric points a few at a time; an importer (``custody import mlflow``) holds a
run's whole history, millions of points, in hand. Going point by point — a ``Metric`` object, a
dict of bind parameters and a canonical-JSON walk each — cost ~80 µs a point; here a series is kept
as columns (steps, timestamps, values) and everything per point runs in C (``map``, ``str.join``,
the DB driver's ``executemany``).

``series_digest`` is byte-for-byte the digest ``runs.canonical_record`` seals (RFC 8785 of
``[[step, timestamp, value], …]``, non-finite values as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"``), so ``verify`` rebuilding a sealed run from its rows finds the same digest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any

from sqlalchemy.engine import Connection

from mlcustody._canonical import digest_bytes, digest_json, json_number
from mlcustody.metadata.schema import run_metric_latest, run_metrics

_SAFE = 2**53  # RFC 8785 refuses integers beyond ±2**53; the generic encoder names the bad value
_ROW = "[{},{},{!r}]".format


@dataclass(frozen=True)
class MetricSummary:
    value: float
    step: int
    timestamp: int
    min: float
    max: float
    count: int

    def merge(self, other: MetricSummary) -> MetricSummary:
        newest = other if (other.step, other.timestamp) >= (self.step, self.timestamp) else self
        return MetricSummary(
            newest.value,
            newest.step,
            newest.timestamp,
            _nan_min(self.min, other.min),
            _nan_max(self.max, other.max),
            self.count + other.count,
        )


@dataclass(frozen=True)
class Series:
    """One metric's points in record order (step, timestamp, NaN last, value), as parallel columns."""

    key: str
    steps: Sequence[int]
    timestamps: Sequence[int]
    values: Sequence[float]

    def __len__(self) -> int:
        return len(self.steps)


def series_digest(series: Series) -> str:
    """The digest of ``[[step, timestamp, value], …]`` as the run record holds it.

    Python's ``repr`` of a float is the shortest round-trip form, as RFC 8785 wants; it differs only
    in writing ``1.0`` (RFC 8785: ``1``), exponents (``1e-05``, ``1e+16``: RFC 8785 spells out up to
    21 digits), ``-0.0``, and non-finite values. The first is fixed with one ``replace`` on the joined
    text; a series holding any of the others is encoded by the generic canonical encoder."""
    steps, stamps = series.steps, series.timestamps
    if not len(steps):
        return digest_json([])
    if not all(-_SAFE < bound < _SAFE for bound in (min(steps), max(steps), min(stamps), max(stamps))):
        return _generic(series)
    text = ",".join(map(_ROW, steps, stamps, series.values)).replace(".0]", "]")
    if "e" in text or "n" in text or ",-0]" in text:
        return _generic(series)  # an exponent, nan/inf, or a negative zero
    return digest_bytes(f"[{text}]".encode("ascii"))


def _generic(series: Series) -> str:
    points = zip(series.steps, series.timestamps, series.values, strict=True)
    return digest_json([[step, stamp, json_number(value)] for step, stamp, value in points])


def latest_index(series: Series) -> int:
    """Which point is the metric's latest: the greatest (step, timestamp), the last of equals — the
    one a writer merging the points in record order keeps (``MetricSummary.merge``)."""
    steps, stamps = series.steps, series.timestamps
    last = len(steps) - 1
    top = steps[last]  # record order sorts by step first: the latest has the last step
    i = last
    while i > 0 and steps[i - 1] == top:
        i -= 1
    return max(range(i, last + 1), key=lambda j: (stamps[j], j))


def _has_nan(values: Sequence[float]) -> bool:
    """Whether any value is NaN, summed in C: a NaN (or +inf and -inf together) makes the sum NaN."""
    return math.isnan(sum(values))


def _nan_free(values: Sequence[float]) -> Sequence[float]:
    return [v for v in values if not math.isnan(v)] if _has_nan(values) else values


def summarize(series: Series) -> MetricSummary:
    """Latest value, range (NaN ignored unless every value is NaN) and count, as ``run_metric_latest``
    keeps them."""
    at = latest_index(series)
    finite = _nan_free(series.values)
    low = min(finite) if finite else math.nan
    high = max(finite) if finite else math.nan
    return MetricSummary(series.values[at], series.steps[at], series.timestamps[at], low, high, len(series))


def record_section(series: Sequence[Series], summaries: Sequence[MetricSummary]) -> dict[str, Any]:
    """The ``metrics`` part of the run record for these series (as ``runs.canonical_record`` builds it)."""
    return {
        s.key: {"count": len(s), "digest": series_digest(s), "latest": json_number(summary.value)}
        for s, summary in zip(series, summaries, strict=True)
    }


def _placeholders(conn: Connection, count: int) -> str:
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return ", ".join([mark] * count)


def _storable(values: Sequence[float]) -> Sequence[float | None]:
    return [None if math.isnan(v) else v for v in values] if _has_nan(values) else values


def insert_series(
    conn: Connection, run_id: str, series: Sequence[Series], summaries: Sequence[MetricSummary] | None = None
) -> Sequence[MetricSummary]:
    """Insert every point of a run's series and their summaries (``summarize``'s, computed here when not
    given), one ``executemany`` a table. For a whole history (the run has no metric rows yet), not a
    batch to merge; each series has points."""
    if not series:
        return []
    columns = "run_id, key, step, timestamp, value"
    sql = f"INSERT INTO {run_metrics.name} ({columns}) VALUES ({_placeholders(conn, 5)})"
    rows = chain.from_iterable(
        zip(repeat(run_id), repeat(s.key), s.steps, s.timestamps, _storable(s.values), strict=False) for s in series
    )
    cursor: Any = conn.connection.cursor()  # the driver's own executemany (it takes any iterable), in this transaction
    try:
        cursor.executemany(sql, rows)
    finally:
        cursor.close()
    if summaries is None:
        summaries = [summarize(s) for s in series]
    latest_sql = (
        f'INSERT INTO {run_metric_latest.name} (run_id, key, value, step, timestamp, min, max, "count") '
        f"VALUES ({_placeholders(conn, 8)})"
    )
    conn.exec_driver_sql(
        latest_sql,
        [
            (run_id, s.key, *_storable([m.value]), m.step, m.timestamp, *_storable([m.min, m.max]), m.count)
            for s, m in zip(series, summaries, strict=True)
        ],
    )
    return summaries


def _nan_min(a: float, b: float) -> float:
    return b if math.isnan(a) else a if math.isnan(b) else min(a, b)


def _nan_max(a: float, b: float) -> float:
    return b if math.isnan(a) else a if math.isnan(b) else max(a, b)
