"""Every metric point of an MLflow run, read in bulk as column series (``metric_series.Series``).

A SQL tracking store (``sqlite:///…``, ``postgresql://…``) is read with one query per run on its
``metrics`` table — the table MLflow's own ``SqlAlchemyStore`` reads — ordered as our run record
orders points (key, step, timestamp, NaN last, value), so no point is sorted or wrapped in Python.
MLflow keeps a NaN there as ``value = 0, is_nan = 1``; it comes back as NaN, as ``MlflowClient``
returns it. A file store's metric files (one line ``timestamp value [step [dataset digest]]`` a point,
at the path MLflow's ``FileStore`` names) are read directly, one file per metric, without an MLflow
entity per point. Any other store (a tracking server) is read through the client, one
``get_metric_history`` call per metric. Both are then sorted in record order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import groupby
from operator import itemgetter
from typing import Any

import sqlalchemy as sa

from mlcustody.metadata.runs.metric_series import Series

_QUERY = (
    "SELECT key, step, timestamp, value, is_nan FROM metrics WHERE run_uuid = {mark} "
    "ORDER BY key, step, timestamp, is_nan, value"
)


class HistoryReader:
    """Reads runs' metric histories from one MLflow store (one database connection for all runs)."""

    def __init__(self, client: Any, raw: Any | None, mark: str, files: Any | None = None) -> None:
        self._client = client
        self._raw = raw  # a DBAPI connection to the store's database, or None: go through the client
        self._query = _QUERY.format(mark=mark)
        self._files = files  # a FileStore whose metric files are read directly

    def history(self, run_id: str, keys: list[str], experiment_id: str | None = None) -> list[Series]:
        """The run's series, one per metric key that has points."""
        if not keys:
            return []
        if self._files is not None and experiment_id is not None:
            return _file_history(self._files, experiment_id, run_id, keys)
        if self._raw is None:
            return _client_history(self._client, run_id, keys)
        cursor = self._raw.cursor()
        try:
            cursor.execute(self._query, (run_id,))
            rows = cursor.fetchall()
        finally:
            cursor.close()
        return _columns(rows)


@contextmanager
def reader(client: Any) -> Iterator[HistoryReader]:
    """A reader for the client's store: direct SQL when it is a SQL store, else the client."""
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    engine = getattr(store, "engine", None)
    if not isinstance(engine, sa.engine.Engine):
        from mlflow.store.tracking.file_store import FileStore

        yield HistoryReader(client, None, "", store if isinstance(store, FileStore) else None)
        return
    raw = engine.raw_connection()
    try:
        yield HistoryReader(client, raw, "?" if engine.dialect.paramstyle == "qmark" else "%s")
    finally:
        raw.close()


def _columns(rows: list[Any]) -> list[Series]:
    """Rows (key, step, timestamp, value, is_nan) sorted by key then record order, as series."""
    found = []
    for key, group in groupby(rows, itemgetter(0)):
        _, steps, stamps, values, nans = zip(*group, strict=True)
        if any(nans):
            values = tuple(math.nan if nan else value for value, nan in zip(values, nans, strict=True))
        found.append(Series(key, steps, stamps, values))
    return found


def _client_history(client: Any, run_id: str, keys: list[str]) -> list[Series]:
    found = []
    for key in keys:
        points = [(int(p.step), int(p.timestamp), float(p.value)) for p in client.get_metric_history(run_id, key)]
        found += _series(key, points)
    return found


def _file_history(store: Any, experiment_id: str, run_id: str, keys: list[str]) -> list[Series]:
    found = []
    for key in keys:
        with open(store._get_metric_path(experiment_id, run_id, key), encoding="utf-8") as lines:
            found += _series(key, [_file_point(key, line) for line in lines if line.strip()])
    return found


def _file_point(key: str, line: str) -> tuple[int, int, float]:
    """One line of a file store's metric file: ``timestamp value``, then the step (0 when absent)."""
    parts = line.split()
    if len(parts) not in (2, 3, 5):
        raise ValueError(f"metric {key!r} has a malformed line: {line.strip()[:80]!r}")
    return (int(parts[2]) if len(parts) > 2 else 0, int(parts[0]), float(parts[1]))


def _series(key: str, points: list[tuple[int, int, float]]) -> list[Series]:
    if not points:
        return []
    points.sort(key=_record_order)
    steps, stamps, values = zip(*points, strict=True)
    return [Series(key, steps, stamps, values)]


def _record_order(point: tuple[int, int, float]) -> tuple[int, int, bool, float]:
    """The run record's order of a metric's points: step, timestamp, NaN last, value."""
    step, stamp, value = point
    nan = math.isnan(value)
    return (step, stamp, nan, 0.0 if nan else value)
