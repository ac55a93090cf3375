"""The audit chain's vouching for decision-log rows not written through ``audit.record_row``.

Checkpoints: each one is an event ``decision.checkpoint`` (size, root, keyid), so the log cannot be
cut back with its checkpoint rows unnoticed (``ledger.decisions.anchor`` compares).

Key rows: the subject-HMAC key and each data key.

A subject's data key decides whether their inputs can be read; the HMAC key decides which
pseudonym a subject id gets. Setting a data key to NULL outside ``forget`` is a shred nobody can
account for, and replacing either key silently changes what the log says about a subject. So:

* the HMAC key, when made, is an event ``decision.subject_key`` carrying the SHA-256 of the key;
* each batch of new ``decision_subjects`` rows is one event ``decision.subjects`` carrying the row
  ids (as ranges) and the SHA-256 of the lines ``id, subject, created_at, SHA-256(key)`` of those
  rows in id order — one event per batch, not per subject, so ingest keeps its speed;
* a shred is an event ``decision.shred`` carrying the row and the SHA-256 of the destroyed key, so
  the batch digest still recomputes after the key is gone.

:func:`check` replays those events against the rows and names every row written, changed, deleted
or shredded behind the log's back. Key digests are of the stored (wrapped) value, so ``verify``
needs no key-encryption key; re-wrapping under a new one (``ledger.kek_rotate``) records every row
again as one batch, and the last batch that names a row is the one that vouches for it. A SHA-256
of a wrapped key reveals nothing of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody.checks import Problem, ProblemKind
from mlcustody.metadata import audit
from mlcustody.metadata.schema import audit_events, decision_subjects, store_info

CHECKPOINT_ACTION = "decision.checkpoint"
SUBJECT_KEY_ROW = "decision_subject_key"  # store_info: hex of the 32-byte HMAC key for subject ids
HMAC_ACTION = "decision.subject_key"
ROWS_ACTION = "decision.subjects"
SHRED_ACTION = "decision.shred"
_MAX_REPORTED = 20


def key_digest(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()


def record_checkpoint(conn: Connection, row: dict[str, Any], actor: str) -> audit.Event:
    """The event of a checkpoint row just inserted, in the same transaction."""
    payload = {"size": row["size"], "root": row["root"], "keyid": row["keyid"]}
    return audit.append(conn, actor=actor, action=CHECKPOINT_ACTION, payload=payload)


def record_hmac_key(conn: Connection, stored: str, actor: str) -> audit.Event:
    """The event of a new (or re-wrapped) subject-HMAC key: the digest of its stored value, in the
    transaction that stores it."""
    payload = {"row": SUBJECT_KEY_ROW, "digest": key_digest(stored.encode("utf-8"))}
    return audit.append(conn, actor=actor, action=HMAC_ACTION, payload=payload)


def record_rows(conn: Connection, rows: Sequence[tuple[int, str, str, bytes | None]], actor: str) -> audit.Event:
    """The event of new subject rows ``(id, subject, created_at, key)``, in the transaction that
    inserted them (a row without a key, as an upgrade may find, is listed as ``keyless``)."""
    ordered = sorted(rows, key=lambda row: row[0])
    lines = [(i, subject, at, "" if key is None else key_digest(key)) for i, subject, at, key in ordered]
    payload: dict[str, Any] = {"ids": _ranges(row[0] for row in ordered), "count": len(ordered)}
    payload["digest"] = _digest(lines)
    keyless = _ranges(row[0] for row in ordered if row[3] is None)
    if keyless:
        payload["keyless"] = keyless
    return audit.append(conn, actor=actor, action=ROWS_ACTION, payload=payload)


def shred_payload(row_id: int, subject: str, key: bytes, shredded_at: str, payloads: int) -> dict[str, Any]:
    """What the shred event of one subject says: enough to recompute its batch digest later."""
    return {
        "subject": subject,
        "row": row_id,
        "key_digest": key_digest(key),
        "shredded_at": shredded_at,
        "payloads": payloads,
    }


def _ranges(ids: Iterable[int]) -> list[list[int]]:
    """Sorted ids as inclusive ``[low, high]`` runs (one run on SQLite; interleaved writers on
    PostgreSQL may leave gaps)."""
    runs: list[list[int]] = []
    for row_id in ids:
        if runs and runs[-1][1] + 1 == row_id:
            runs[-1][1] = row_id
        else:
            runs.append([row_id, row_id])
    return runs


def _digest(lines: Iterable[tuple[int, str, str, str]]) -> str:
    h = hashlib.sha256()
    for row_id, subject, created_at, digest in lines:
        h.update(f"{row_id}\t{subject}\t{created_at}\t{digest}\n".encode())
    return h.hexdigest()


def check(conn: Connection) -> list[Problem]:
    """Every key row against the events that vouch for it (see the module docstring)."""
    batches, shreds, hmac_event = _events(conn)
    rows = {
        row.id: row
        for row in conn.execute(
            sa.select(
                decision_subjects.c.id,
                decision_subjects.c.subject,
                decision_subjects.c.key,
                decision_subjects.c.created_at,
                decision_subjects.c.shredded_at,
            )
        )
    }
    latest: dict[int, Batch] = {}  # a re-wrap records every row again: the last batch naming a row vouches for it
    for batch in batches:
        latest.update(dict.fromkeys(batch.ids, batch))
    problems = _check_hmac(conn, hmac_event)
    for row_id, row in rows.items():
        problems += _check_shred(row_id, row, shreds.get(row_id), latest.get(row_id))
    for batch in batches:
        if any(latest[i] is not batch for i in batch.ids):
            continue  # superseded by a later record of the same rows
        span = f"decision_subjects[{batch.ids[0]}…{batch.ids[-1]}]" if batch.ids else "decision_subjects"
        gone = [i for i in batch.ids if i not in rows]
        if gone:
            detail = f"{len(gone)} row(s) of audit event {batch.seq} missing, e.g. {gone[0]}"
            problems.append(Problem(ProblemKind.ROW_DELETED, span, detail))
            continue
        lines = (
            (i, rows[i].subject, rows[i].created_at, _row_digest(rows[i], batch, shreds.get(i))) for i in batch.ids
        )
        if _digest(lines) != batch.digest:
            detail = f"a subject, time or data key differs from what audit event {batch.seq} vouches for"
            problems.append(Problem(ProblemKind.ROW_MODIFIED, span, detail))
    unrecorded = sorted(rows.keys() - latest.keys())
    for row_id in unrecorded[:_MAX_REPORTED]:
        problems.append(
            Problem(ProblemKind.ROW_UNRECORDED, f"decision_subjects[{row_id}]", "row is not in the audit log")
        )
    return problems


@dataclass(frozen=True)
class Batch:
    """A ``decision.subjects`` event: the rows it records, their digest, those recorded without a key."""

    seq: int
    ids: list[int]
    digest: str
    keyless: frozenset[int]


def _row_digest(row: Any, batch: Batch, shred: tuple[int, str, str] | None) -> str:
    """The key digest a batch recorded for a row: of its stored key; "" when recorded without one;
    for a key shredded since, the digest its shred event kept."""
    if row.key is not None:
        return key_digest(bytes(row.key))
    if row.id in batch.keyless:
        return ""
    return shred[1] if shred is not None else ""


def _check_shred(row_id: int, row: Any, shred: tuple[int, str, str] | None, batch: Batch | None) -> list[Problem]:
    where = f"decision_subjects[{row_id}]"
    if row.key is None:
        if shred is None and (batch is None or row_id not in batch.keyless):
            return [Problem(ProblemKind.SHRED_UNAUDITED, where, "its data key was destroyed without an audit event")]
        if shred is not None and row.shredded_at != shred[2]:
            return [Problem(ProblemKind.ROW_MODIFIED, where, f"shredded_at differs from audit event {shred[0]}")]
    elif shred is not None:
        return [
            Problem(
                ProblemKind.SHRED_UNDONE, where, f"audit event {shred[0]} destroyed its data key, but a key is there"
            )
        ]
    return []


def _ranges_ids(runs: Any) -> list[int]:
    return [i for low, high in runs for i in range(int(low), int(high) + 1)]


def _events(
    conn: Connection,
) -> tuple[list[Batch], dict[int, tuple[int, str, str]], tuple[int, str] | None]:
    """Subject batches, shreds by row (seq, key digest, time), the latest HMAC key event."""
    query = sa.select(audit_events.c.seq, audit_events.c.action, audit_events.c.payload).where(
        audit_events.c.action.in_([HMAC_ACTION, ROWS_ACTION, SHRED_ACTION])
    )
    batches: list[Batch] = []
    shreds: dict[int, tuple[int, str, str]] = {}
    hmac_event: tuple[int, str] | None = None
    for seq, action, text in conn.execute(query.order_by(audit_events.c.seq)):
        try:
            value = json.loads(text)
            if action == ROWS_ACTION:
                keyless = frozenset(_ranges_ids(value.get("keyless", [])))
                batches.append(Batch(seq, _ranges_ids(value["ids"]), str(value["digest"]), keyless))
            elif action == SHRED_ACTION and "row" in value:
                shreds[int(value["row"])] = (seq, str(value["key_digest"]), str(value["shredded_at"]))
            elif action == HMAC_ACTION:
                hmac_event = (seq, str(value["digest"]))
        except (ValueError, KeyError, TypeError):
            continue  # audit.verify names a corrupt event
    return batches, shreds, hmac_event


def _check_hmac(conn: Connection, event: tuple[int, str] | None) -> list[Problem]:
    where = f"store_info[{SUBJECT_KEY_ROW}]"
    value = conn.execute(sa.select(store_info.c.value).where(store_info.c.key == SUBJECT_KEY_ROW)).scalar()
    if value is None:
        gone = f"the subject-HMAC key of audit event {event[0]} is gone" if event else ""
        return [Problem(ProblemKind.ROW_DELETED, where, gone)] if event else []
    if event is None:
        return [Problem(ProblemKind.ROW_UNRECORDED, where, "the subject-HMAC key is not in the audit log")]
    if key_digest(str(value).encode("utf-8")) != event[1]:
        return [Problem(ProblemKind.ROW_MODIFIED, where, f"the subject-HMAC key differs from audit event {event[0]}")]
    return []
