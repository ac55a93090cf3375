"""Runs in the database: start, batches of params/tags/metrics/inputs/outputs, and the seal.

A run is written in three kinds of transactions: its start (an audited ``runs`` row), any number of
batches from its writer, and its end, which builds the run's canonical record from the rows, stores
it as an object and records its digest (the *seal*) in an audited ``run_ends`` row. ``verify``
rebuilds every sealed record from the rows and compares digests, so an edited, added or deleted
param, tag, metric or input/output row of a sealed run is detected and named.

The canonical record (``mlcustody-run/v1``) is RFC 8785 JSON; metric values that JSON cannot hold
are written as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``.

Over 400 lines on purpose: a run's rows written, read, and rebuilt into the canonical record its
seal covers; writing and the check must agree on that record, so they stay side by side.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody._canonical import canonical_json, digest_json, json_number
from mlcustody.checks import CheckReport, Problem, ProblemKind
from mlcustody.errors import AmbiguousRef, UnknownRef, UsageError
from mlcustody.metadata import audit
from mlcustody.metadata.runs import metric_series
from mlcustody.metadata.runs.metric_series import MetricSummary
from mlcustody.metadata.runs.values import param_text
from mlcustody.metadata.schema import (
    column_lineage,
    record_lineage,
    run_ends,
    run_io,
    run_metric_latest,
    run_metrics,
    run_params,
    run_tags,
    runs,
)
from mlcustody.storage.objects import ObjectStore

RECORD_SCHEMA = "mlcustody-run/v1"
STATUSES = ("running", "finished", "failed", "killed")
_ID_PREFIX = re.compile(r"[0-9a-f]{4,32}")


@dataclass(frozen=True)
class RunStart:
    id: str
    name: str
    parent_id: str | None
    command: list[str]
    code: str
    actor: str
    host: str
    pid: int
    started_at: str

    def row(self) -> dict[str, Any]:
        row = dict(self.__dict__)
        row["command"] = canonical_json(self.command).decode("utf-8")
        return row


@dataclass(frozen=True)
class RunEnd:
    status: str
    exit_status: int | None
    error: str
    ended_at: str
    processes: list[list[str]]
    environment: str
    seal: str = ""


@dataclass(frozen=True)
class Metric:
    key: str
    value: float
    step: int
    timestamp: int  # milliseconds since the epoch, as MLflow keeps them


@dataclass(frozen=True)
class IO:
    role: str  # "input" | "output"
    path: str
    kind: str  # "file" | "dir"
    digest: str | None  # None: the file changed while the run read it
    size: int
    artifact: str | None  # NAME@VERSION when the bytes are a version of an artifact
    source: str  # "declared" | "captured" | "sdk"


@dataclass(frozen=True, order=True)
class RecordLink:
    """Which records of ``input`` each record of ``output`` came from: a Parquet object of links."""

    output: str  # NAME@VERSION
    input: str
    relation: str  # map | filter | join | aggregate | concat | explode | declared
    links: str  # object digest: (output_id, input_id) rows sorted by output_id
    count: int


@dataclass(frozen=True, order=True)
class ColumnLink:
    output: str
    column: str
    input: str
    input_column: str


@dataclass
class Batch:
    """What a run's writer accumulated since its last flush."""

    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)
    io: dict[tuple[str, str], IO] = field(default_factory=dict)
    records: dict[tuple[str, str], RecordLink] = field(default_factory=dict)
    columns: set[ColumnLink] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.params or self.tags or self.metrics or self.io or self.records or self.columns)


@dataclass(frozen=True)
class Run:
    start: RunStart
    end: RunEnd | None
    params: dict[str, Any]
    tags: dict[str, str]
    metrics: dict[str, MetricSummary]
    io: list[IO]

    @property
    def id(self) -> str:
        return self.start.id

    @property
    def status(self) -> str:
        return self.end.status if self.end else "running"

    def files(self, role: str) -> list[IO]:
        return [item for item in self.io if item.role == role]


# -- writing ---------------------------------------------------------------------------------------


def insert_start(conn: Connection, start: RunStart) -> audit.Event:
    return audit.record_row(conn, runs, start.row(), actor=start.actor, action="run.start")


def write_batch(conn: Connection, run_id: str, batch: Batch) -> list[str]:
    """Insert a writer's batch. A param already recorded with another value (by another process) is
    left as it was and described in the returned list, so the rest of the batch is never lost."""
    conflicts = _write_params(conn, run_id, batch.params) if batch.params else []
    if batch.tags:
        conn.execute(run_tags.delete().where(run_tags.c.run_id == run_id, run_tags.c.key.in_(list(batch.tags))))
        conn.execute(run_tags.insert(), [{"run_id": run_id, "key": k, "value": v} for k, v in batch.tags.items()])
    if batch.metrics:
        _write_metrics(conn, run_id, batch.metrics)
    if batch.io:
        _replace(conn, run_io, run_id, ("role", "path"), list(batch.io))
        conn.execute(run_io.insert(), [{"run_id": run_id, **item.__dict__} for item in batch.io.values()])
    _write_lineage(conn, run_id, batch)
    return conflicts


def _replace(conn: Connection, table: sa.Table, run_id: str, columns: tuple[str, str], keys: list[Any]) -> None:
    """Delete the run's rows with these keys (so a batch can record them again), 500 keys a statement."""
    pair = sa.tuple_(*(table.c[name] for name in columns))
    for start in range(0, len(keys), 500):
        conn.execute(table.delete().where(table.c.run_id == run_id, pair.in_(keys[start : start + 500])))


def _write_params(conn: Connection, run_id: str, params: dict[str, Any]) -> list[str]:
    known = dict(
        conn.execute(
            sa.select(run_params.c.key, run_params.c.value).where(
                run_params.c.run_id == run_id, run_params.c.key.in_(list(params))
            )
        ).all()
    )
    conflicts, new = [], []
    for key, value in params.items():
        text = param_text(key, value)
        if key in known and known[key] != text:
            conflicts.append(f"param {key!r} was already logged as {known[key]}, cannot change it to {text}")
        elif key not in known:
            number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
            new.append({"run_id": run_id, "key": key, "value": text, "number": number})
    if new:
        conn.execute(run_params.insert(), new)
    return conflicts


def _write_lineage(conn: Connection, run_id: str, batch: Batch) -> None:
    if batch.records:
        _replace(conn, record_lineage, run_id, ("output", "input"), list(batch.records))
        conn.execute(record_lineage.insert(), [{"run_id": run_id, **r.__dict__} for r in batch.records.values()])
    if batch.columns:
        known = {ColumnLink(*row) for row in conn.execute(_column_rows(run_id))}
        new = [{"run_id": run_id, **link.__dict__} for link in batch.columns - known]
        if new:
            conn.execute(column_lineage.insert(), new)


def _write_metrics(conn: Connection, run_id: str, metrics: list[Metric]) -> None:
    conn.execute(
        run_metrics.insert(),
        [
            {"run_id": run_id, "key": m.key, "step": m.step, "timestamp": m.timestamp, "value": _storable(m.value)}
            for m in metrics
        ],
    )
    summaries: dict[str, MetricSummary] = {}
    for m in metrics:
        one = MetricSummary(m.value, m.step, m.timestamp, m.value, m.value, 1)
        summaries[m.key] = summaries[m.key].merge(one) if m.key in summaries else one
    latest = run_metric_latest.c
    where = sa.and_(latest.run_id == run_id, latest.key.in_(list(summaries)))
    for row in conn.execute(sa.select(run_metric_latest).where(where)):
        summaries[row.key] = _summary(row).merge(summaries[row.key])
    conn.execute(run_metric_latest.delete().where(where))
    conn.execute(
        run_metric_latest.insert(),
        [
            {
                "run_id": run_id,
                "key": key,
                "value": _storable(s.value),
                "step": s.step,
                "timestamp": s.timestamp,
                "min": _storable(s.min),
                "max": _storable(s.max),
                "count": s.count,
            }
            for key, s in summaries.items()
        ],
    )


def seal(
    conn: Connection,
    objects: ObjectStore,
    run_id: str,
    end: RunEnd,
    actor: str,
    metrics: dict[str, Any] | None = None,
    *,
    barrier: bool = True,
) -> tuple[RunEnd, audit.Event]:
    """End a run: store its canonical record as an object, then record the end row with its digest.
    ``metrics``: the record's metrics section when the caller built it from the points it has just
    written (``metric_series.record_section``), so millions of rows are not read back. ``barrier``
    False: the caller sealing many runs in one transaction flushes the object store once before it
    commits."""
    if conn.execute(sa.select(run_ends.c.run_id).where(run_ends.c.run_id == run_id)).first():
        raise UsageError(f"run {run_id} has already ended", hint="start a new run")
    record = canonical_record(conn, run_id, end, metrics)
    digest = objects.put_bytes(canonical_json(record))
    if barrier:
        objects.barrier()  # the record is durable before the row that names it commits
    sealed = RunEnd(end.status, end.exit_status, end.error, end.ended_at, end.processes, end.environment, digest)
    row = {"run_id": run_id, **sealed.__dict__}
    row["processes"] = canonical_json(sealed.processes).decode("utf-8")
    event = audit.record_row(conn, run_ends, row, actor=actor, action=f"run.{end.status}")
    return sealed, event


# -- reading ---------------------------------------------------------------------------------------


def resolve(conn: Connection, ref: str) -> str:
    """The id of the run ``ref`` names: a whole run id or a prefix of at least 4 hex characters."""
    ref = ref.removeprefix("run:")
    if not _ID_PREFIX.fullmatch(ref):
        raise UnknownRef(f"{ref!r} is not a run id", hint="run ids are hex; list them with `custody runs`")
    found = conn.execute(sa.select(runs.c.id).where(runs.c.id.startswith(ref)).limit(6)).scalars().all()
    if len(found) > 1:
        raise AmbiguousRef(f"run id prefix {ref} matches {len(found)} runs: {', '.join(found[:5])}")
    if not found:
        raise UnknownRef(f"no run with id {ref!r}", hint="list runs with `custody runs`")
    return str(found[0])


def get(conn: Connection, run_id: str) -> Run:
    return load(conn, [run_id])[0]


def load(conn: Connection, ids: Sequence[str]) -> list[Run]:
    """Whole runs, in the order of ``ids``, fetched with one query per table (chunked)."""
    starts: dict[str, RunStart] = {}
    ends: dict[str, RunEnd] = {}
    params: dict[str, dict[str, Any]] = {i: {} for i in ids}
    tags: dict[str, dict[str, str]] = {i: {} for i in ids}
    metrics: dict[str, dict[str, MetricSummary]] = {i: {} for i in ids}
    io: dict[str, list[IO]] = {i: [] for i in ids}
    for chunk in _chunks(ids, 500):
        for row in conn.execute(sa.select(runs).where(runs.c.id.in_(chunk))):
            starts[row.id] = _start(row)
        for row in conn.execute(sa.select(run_ends).where(run_ends.c.run_id.in_(chunk))):
            ends[row.run_id] = _end(row)
        for row in conn.execute(sa.select(run_params).where(run_params.c.run_id.in_(chunk))):
            params[row.run_id][row.key] = json.loads(row.value)
        for row in conn.execute(sa.select(run_tags).where(run_tags.c.run_id.in_(chunk))):
            tags[row.run_id][row.key] = row.value
        for row in conn.execute(sa.select(run_metric_latest).where(run_metric_latest.c.run_id.in_(chunk))):
            metrics[row.run_id][row.key] = _summary(row)
        query = sa.select(run_io).where(run_io.c.run_id.in_(chunk)).order_by(run_io.c.role, run_io.c.path)
        for row in conn.execute(query):
            io[row.run_id].append(_io(row))
    return [
        Run(starts[i], ends.get(i), dict(sorted(params[i].items())), dict(sorted(tags[i].items())), metrics[i], io[i])
        for i in ids
        if i in starts
    ]


def metric_history(conn: Connection, run_id: str, key: str | None = None) -> list[Metric]:
    query = sa.select(run_metrics).where(run_metrics.c.run_id == run_id)
    if key is not None:
        query = query.where(run_metrics.c.key == key)
    rows = [Metric(r.key, _readable(r.value), r.step, r.timestamp) for r in conn.execute(query)]
    return sorted(rows, key=_metric_order)


def children(conn: Connection, run_id: str) -> list[str]:
    query = sa.select(runs.c.id).where(runs.c.parent_id == run_id).order_by(runs.c.started_at)
    return list(conn.execute(query).scalars())


def unended(conn: Connection, host: str) -> list[RunStart]:
    """Runs started on ``host`` that have no end row (their process may have died)."""
    query = sa.select(runs).where(runs.c.host == host, ~sa.exists().where(run_ends.c.run_id == runs.c.id))
    return [_start(row) for row in conn.execute(query)]


def stored_digests(conn: Connection) -> set[tuple[str, str]]:
    """(digest, role) of every object runs refer to: records, code, environments, inputs, outputs."""
    found = {(d, "run code") for d in conn.execute(sa.select(runs.c.code)).scalars()}
    for seal, env in conn.execute(sa.select(run_ends.c.seal, run_ends.c.environment)):
        found |= {(seal, "run record"), (env, "run environment")} if env else {(seal, "run record")}
    query = sa.select(run_io.c.digest, run_io.c.kind).where(run_io.c.digest.is_not(None)).distinct()
    found |= {(d, "manifest" if kind == "dir" else "run file") for d, kind in conn.execute(query)}
    found |= {(d, "record links") for d in conn.execute(sa.select(record_lineage.c.links).distinct()).scalars()}
    return found


def record_links(conn: Connection, run_id: str) -> list[RecordLink]:
    c = record_lineage.c
    query = sa.select(c.output, c.input, c.relation, c.links, c.count).where(c.run_id == run_id)
    return sorted(RecordLink(*row) for row in conn.execute(query))


def column_links(conn: Connection, run_id: str) -> list[ColumnLink]:
    return sorted(ColumnLink(*row) for row in conn.execute(_column_rows(run_id)))


def _column_rows(run_id: str) -> sa.Select[Any]:
    c = column_lineage.c
    return sa.select(c.output, c.column, c.input, c.input_column).where(c.run_id == run_id)


def code_objects(code: dict[str, Any]) -> list[str]:
    """The objects a run's code record refers to: the dirty diff and the entry script."""
    git, entry = code.get("git") or {}, code.get("entry") or {}
    return [d for d in (git.get("diff"), entry.get("digest")) if d]


# -- the canonical record and its check ------------------------------------------------------------


def canonical_record(
    conn: Connection, run_id: str, end: RunEnd, metrics: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The run as one JSON value, built from its rows; its digest is the seal."""
    run = get(conn, run_id)
    if metrics is None:
        metrics = {
            key: _series(rows, run.metrics.get(key)) for key, rows in _by_key(metric_history(conn, run_id)).items()
        }
    return {
        "schema": RECORD_SCHEMA,
        "run": {**run.start.__dict__},
        "end": {k: v for k, v in end.__dict__.items() if k != "seal"},
        "params": run.params,
        "tags": run.tags,
        "metrics": metrics,
        "io": [item.__dict__ for item in run.io],
        "lineage": {
            "records": [link.__dict__ for link in record_links(conn, run_id)],
            "columns": [link.__dict__ for link in column_links(conn, run_id)],
        },
    }


def _by_key(history: list[Metric]) -> dict[str, list[Metric]]:
    found: dict[str, list[Metric]] = {}
    for metric in history:
        found.setdefault(metric.key, []).append(metric)
    return found


def _series(rows: list[Metric], latest: MetricSummary | None) -> dict[str, Any]:
    """One metric in the record: how many values, the digest of all of them, and the latest."""
    return {
        "count": len(rows),
        "digest": metric_series.series_digest(
            metric_series.Series(
                rows[0].key, [m.step for m in rows], [m.timestamp for m in rows], [m.value for m in rows]
            )
        ),
        "latest": json_number(latest.value) if latest else None,
    }


def verify(conn: Connection, objects: ObjectStore) -> CheckReport:
    """Rebuild every sealed run's record and compare it with its seal; name what differs (counts ``sealed_runs``)."""
    problems: list[Problem] = []
    sealed = 0
    for row in conn.execute(sa.select(run_ends)):
        sealed += 1
        where = f"runs[{row.run_id}]"
        if conn.execute(sa.select(runs.c.id).where(runs.c.id == row.run_id)).first() is None:
            continue  # the audit check already names the missing start row
        end = _end(row)
        record = canonical_record(conn, row.run_id, end)
        if digest_json(record) == row.seal:
            continue
        sealed_record = _read_record(objects, row.seal)
        if sealed_record is None:
            problems.append(Problem(ProblemKind.RUN_SEAL_MISMATCH, where, "rows no longer match the seal"))
            continue
        for part in _differences(sealed_record, record):
            problems.append(Problem(ProblemKind.RUN_SEAL_MISMATCH, where, part))
    return CheckReport(problems, {"sealed_runs": sealed})


def _read_record(objects: ObjectStore, digest: str) -> dict[str, Any] | None:
    try:
        found = json.loads(objects.read_bytes(digest))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _differences(sealed: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What changed between the sealed record and the rows, one readable line per difference."""
    found = []
    for section in ("run", "end", "params", "tags", "metrics"):
        old, new = sealed.get(section, {}), now.get(section, {})
        for key in sorted(set(old) | set(new)):
            before, after = old.get(key), new.get(key)
            if before == after:
                continue
            if section == "metrics" and before and after:
                found += _metric_change(key, before, after)
            else:
                found.append(f"{section}.{key} is {_short(after)}, sealed as {_short(before)}")
    if sealed.get("io") != now.get("io"):
        found.append("inputs/outputs differ from the sealed record")
    if sealed.get("lineage") != now.get("lineage"):
        found.append("record or column lineage differs from the sealed record")
    return found or ["rows no longer match the seal"]


def _metric_change(key: str, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    found = []
    if before["digest"] != after["digest"]:
        found.append(f"metric {key}: logged values changed ({after['count']} rows now, {before['count']} sealed)")
    if before["latest"] != after["latest"]:
        found.append(f"metric {key}: latest value is {_short(after['latest'])}, sealed as {_short(before['latest'])}")
    return found


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "…"


# -- row conversion --------------------------------------------------------------------------------


def _start(row: Any) -> RunStart:
    return RunStart(
        row.id,
        row.name,
        row.parent_id,
        json.loads(row.command),
        row.code,
        row.actor,
        row.host,
        row.pid,
        row.started_at,
    )


def _end(row: Any) -> RunEnd:
    return RunEnd(
        row.status, row.exit_status, row.error, row.ended_at, json.loads(row.processes), row.environment, row.seal
    )


def _summary(row: Any) -> MetricSummary:
    return MetricSummary(
        _readable(row.value), row.step, row.timestamp, _readable(row.min), _readable(row.max), row.count
    )


def _io(row: Any) -> IO:
    return IO(row.role, row.path, row.kind, row.digest, row.size, row.artifact, row.source)


def _storable(value: float) -> float | None:
    return None if math.isnan(value) else value


def _readable(value: float | None) -> float:
    return math.nan if value is None else value


def _metric_order(m: Metric) -> tuple[str, int, int, bool, float]:
    return (m.key, m.step, m.timestamp, math.isnan(m.value), 0.0 if math.isnan(m.value) else m.value)


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])
