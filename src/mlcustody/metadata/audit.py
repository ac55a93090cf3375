"""The audit chain: every metadata change is an event, appended in the caller's transaction.

An event is ``(seq, time, actor, action, payload, prev_digest, digest)`` where ``digest`` is the
BLAKE3-256 of the RFC 8785 encoding of all the other fields (``payload`` as a JSON value), and
``prev_digest`` is the previous event's digest (64 zeros for the first). ``audit_head`` holds the
last (seq, digest); appending locks that row, so events are gap-free and totally ordered even with
many writers on PostgreSQL. Audited rows are written only through :func:`record_row`, whose event
payload carries the full row; ``verify`` replays the payloads and names any row that was edited,
deleted or inserted behind the log's back.

The database alone cannot prove its tail was not cut off, so each workspace also keeps a witness
file, ``.custody/audit-head``: the highest (seq, digest) it has committed. ``verify`` requires the
chain to contain that event.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody._canonical import ZERO_DIGEST, canonical_json, digest_json, utc_now
from mlcustody.checks import Problem, ProblemKind
from mlcustody.metadata import schema
from mlcustody.metadata.schema import audit_events, audit_head


@dataclass(frozen=True)
class Event:
    seq: int
    time: str
    actor: str
    action: str
    payload: dict[str, Any]
    prev_digest: str
    digest: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "actor": self.actor,
            "action": self.action,
            "payload": self.payload,
            "prev_digest": self.prev_digest,
            "digest": self.digest,
        }


def event_digest(seq: int, time: str, actor: str, action: str, payload: Any, prev_digest: str) -> str:
    return digest_json(
        {"seq": seq, "time": time, "actor": actor, "action": action, "payload": payload, "prev": prev_digest}
    )


def append(conn: Connection, *, actor: str, action: str, payload: dict[str, Any]) -> Event:
    """Add one event at the end of the chain, inside ``conn``'s open transaction."""
    head = conn.execute(
        sa.select(audit_head.c.seq, audit_head.c.digest).where(audit_head.c.id == 1).with_for_update()
    ).first()
    seq, prev = (head.seq + 1, head.digest) if head else (1, ZERO_DIGEST)
    time = utc_now()
    text = canonical_json(payload).decode("utf-8")
    digest = event_digest(seq, time, actor, action, payload, prev)
    conn.execute(
        audit_events.insert().values(
            seq=seq, time=time, actor=actor, action=action, payload=text, prev_digest=prev, digest=digest
        )
    )
    if head:
        conn.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=seq, digest=digest))
    else:
        conn.execute(audit_head.insert().values(id=1, seq=seq, digest=digest))
    return Event(seq, time, actor, action, payload, prev, digest)


def record_row(conn: Connection, table: sa.Table, row: dict[str, Any], *, actor: str, action: str) -> Event:
    """Insert an audited row and the event that vouches for it, in one transaction."""
    conn.execute(table.insert().values(**row))
    return append(conn, actor=actor, action=action, payload={"table": table.name, "row": row})


def record_rows(conn: Connection, table: sa.Table, rows: list[dict[str, Any]], *, actor: str, action: str) -> Event:
    """Insert many audited rows vouched for by one event (``{"table", "rows"}``): a run that versions
    a thousand captured files appends one event, not a thousand."""
    conn.execute(table.insert(), rows)
    return append(conn, actor=actor, action=action, payload={"table": table.name, "rows": rows})


def iter_events(conn: Connection, *, since: int = 0, limit: int | None = None, desc: bool = False) -> Iterator[Event]:
    order = audit_events.c.seq.desc() if desc else audit_events.c.seq
    query = sa.select(audit_events).where(audit_events.c.seq > since).order_by(order).limit(limit)
    for row in conn.execute(query):
        yield Event(row.seq, row.time, row.actor, row.action, json.loads(row.payload), row.prev_digest, row.digest)


def verify(conn: Connection, witness: Path | None = None) -> list[Problem]:
    """Recompute the chain and compare every audited table with the rows its events vouch for."""
    problems: list[Problem] = []
    expected: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {name: {} for name in schema.AUDITED}
    prev, last_seq = ZERO_DIGEST, 0
    for row in conn.execute(sa.select(audit_events).order_by(audit_events.c.seq)):
        where = f"audit_events[{row.seq}]"
        if row.seq != last_seq + 1:
            problems.append(Problem(ProblemKind.CHAIN_GAP, where, f"events {last_seq + 1}…{row.seq - 1} are missing"))
        try:
            payload = json.loads(row.payload)
        except ValueError:
            problems.append(Problem(ProblemKind.EVENT_CORRUPT, where, "payload is not JSON"))
            payload = None
        if payload is not None and canonical_json(payload).decode("utf-8") != row.payload:
            problems.append(Problem(ProblemKind.EVENT_CORRUPT, where, "payload is not in canonical form"))
        if row.prev_digest != prev:
            problems.append(Problem(ProblemKind.CHAIN_BROKEN, where, "prev_digest does not match the previous event"))
        if event_digest(row.seq, row.time, row.actor, row.action, payload, row.prev_digest) != row.digest:
            problems.append(
                Problem(ProblemKind.EVENT_MODIFIED, where, f"{row.action} event does not hash to its digest")
            )
        if isinstance(payload, dict) and payload.get("table") in expected:
            table = payload["table"]
            vouched = payload["rows"] if "rows" in payload else [payload.get("row")]
            for item in vouched if isinstance(vouched, list) else []:
                if isinstance(item, dict):
                    expected[table][tuple(item.get(col) for col in schema.AUDITED[table])] = item
        prev, last_seq = row.digest, row.seq
    problems += _check_head(conn, last_seq, prev)
    if witness is not None:
        problems += _check_witness(conn, witness)
    for table_name, rows in expected.items():
        problems += _check_rows(conn, schema.metadata.tables[table_name], rows)
    return problems


def _check_head(conn: Connection, last_seq: int, last_digest: str) -> list[Problem]:
    head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.digest)).first()
    if last_seq == 0 and head is None:
        return []
    if head is None or (head.seq, head.digest) != (last_seq, last_digest):
        found = f"{head.seq}" if head else "nothing"
        return [
            Problem(ProblemKind.CHAIN_TRUNCATED, "audit_head", f"head says event {found}, chain ends at {last_seq}")
        ]
    return []


def _check_witness(conn: Connection, witness: Path) -> list[Problem]:
    seen = read_witness(witness)
    if seen is None:
        return []
    seq, digest = seen
    found = conn.execute(sa.select(audit_events.c.digest).where(audit_events.c.seq == seq)).scalar()
    if found != digest:
        what = "is missing" if found is None else "differs"
        return [
            Problem(ProblemKind.CHAIN_TRUNCATED, str(witness.name), f"event {seq} committed by this workspace {what}")
        ]
    return []


def _check_rows(conn: Connection, table: sa.Table, expected: dict[tuple[Any, ...], dict[str, Any]]) -> list[Problem]:
    key_cols = schema.AUDITED[table.name]
    columns = schema.hashed_columns(table)
    problems: list[Problem] = []
    seen: set[tuple[Any, ...]] = set()
    for row in conn.execute(sa.select(*columns)):
        actual = dict(row._mapping)
        key = tuple(actual[col] for col in key_cols)
        where = f"{table.name}[{', '.join(map(str, key))}]"
        seen.add(key)
        vouched = expected.get(key)
        if vouched is None:
            problems.append(Problem(ProblemKind.ROW_UNRECORDED, where, "row is not in the audit log"))
            continue
        changed = [col for col in actual if actual[col] != vouched.get(col)]
        for col in changed:
            problems.append(
                Problem(
                    ProblemKind.ROW_MODIFIED, where, f"{col} is {actual[col]!r}, audit log says {vouched.get(col)!r}"
                )
            )
    for key in sorted(expected.keys() - seen, key=repr):
        problems.append(Problem(ProblemKind.ROW_DELETED, f"{table.name}[{', '.join(map(str, key))}]", "row is missing"))
    return problems


def read_witness(path: Path) -> tuple[int, str] | None:
    try:
        return _parse_witness(path.read_text(encoding="ascii"))
    except (FileNotFoundError, ValueError):
        return None


def _parse_witness(text: str) -> tuple[int, str] | None:
    try:
        seq, digest = text.split()
        return int(seq), digest
    except ValueError:
        return None


def advance_witness(path: Path, event: Event) -> None:
    """Record a committed event in the witness file, keeping the highest seq under a lock."""

    def newer(current: str | None) -> bool:
        seen = None if current is None else _parse_witness(current)
        return seen is None or seen[0] < event.seq

    replace_if(path, newer, f"{event.seq} {event.digest}\n")


def replace_if(path: Path, newer: Callable[[str | None], bool], text: str) -> bool:
    """Write ``text`` to the witness file ``path`` (whole: temp file, rename) when ``newer`` says the
    text it holds now (None: no file) is older, under a lock so that concurrent writers keep the
    newest. Returns whether it wrote."""
    lock = path.with_suffix(".lock")
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            current: str | None = path.read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            current = None
        if not newer(current):
            return False
        tmp = path.parent / "tmp" / f"{path.name}.{os.getpid()}.tmp"  # gc removes it if we die here
        tmp.parent.mkdir(exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        return True
