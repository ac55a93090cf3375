"""metric_series: the bulk digest is the generic canonical digest, and bulk rows read back as written."""

from __future__ import annotations

import math
from pathlib import Path

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from mlcustody._canonical import digest_json, json_number
from mlcustody.metadata import schema
from mlcustody.metadata.engine import Database
from mlcustody.metadata.runs import metric_series
from mlcustody.metadata.runs import store as runs

_INT = st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
_POINTS = st.lists(st.tuples(_INT, _INT, st.floats(allow_nan=True, allow_infinity=True)), max_size=40)


def _series(points: list[tuple[int, int, float]]) -> metric_series.Series:
    return metric_series.Series("m", [p[0] for p in points], [p[1] for p in points], [p[2] for p in points])


def _expected(points: list[tuple[int, int, float]]) -> str:
    return digest_json([[step, stamp, json_number(value)] for step, stamp, value in points])


@settings(max_examples=200, deadline=None)
@given(_POINTS)
def test_series_digest_is_the_canonical_digest(points: list[tuple[int, int, float]]) -> None:
    assert metric_series.series_digest(_series(points)) == _expected(points)


def test_series_digest_edge_values() -> None:
    values = [1.0, -0.0, 0.0, 1e-7, 1e-6, 1e16, 1e21, 123456789012345680.0, 0.1, -2.5, 5e-324, math.inf, math.nan]
    for value in values:
        points = [(0, 1, value), (1, 2, 3.0)]
        assert metric_series.series_digest(_series(points)) == _expected(points), value
    assert metric_series.series_digest(_series([])) == _expected([])


def test_summary_is_what_merging_point_by_point_keeps() -> None:
    points = [(0, 5, 1.0), (2, 3, math.nan), (2, 7, 4.0), (2, 7, 9.0), (1, 9, -3.0)]
    points.sort(key=lambda p: runs._metric_order(runs.Metric("m", p[2], p[0], p[1])))
    merged: metric_series.MetricSummary | None = None
    for step, stamp, value in points:
        one = metric_series.MetricSummary(value, step, stamp, value, value, 1)
        merged = one if merged is None else merged.merge(one)
    assert merged is not None and metric_series.summarize(_series(points)) == merged


def test_insert_series_rows_read_back(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    schema.metadata.create_all(db.engine)
    points = [(0, 10, 0.5), (1, 11, math.nan), (2, 12, math.inf)]
    with db.write() as conn:
        summaries = metric_series.insert_series(conn, "a" * 32, [_series(points)])
    with db.read() as conn:
        history = runs.metric_history(conn, "a" * 32)
        latest = conn.execute(sa.select(runs.run_metric_latest)).all()
    assert [(m.step, m.timestamp) for m in history] == [(0, 10), (1, 11), (2, 12)]
    assert history[0].value == 0.5 and math.isnan(history[1].value) and history[2].value == math.inf
    assert [(row.key, row.value, row.step, row.count) for row in latest] == [("m", math.inf, 2, 3)]
    assert summaries[0].min == 0.5 and summaries[0].max == math.inf
