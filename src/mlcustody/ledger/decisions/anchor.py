"""Anchors of the decision log outside the rows that can be deleted with it.

A signed checkpoint proves what the log held at its size, but deleting the sealed tail together
with its latest checkpoints (segments, index rows, postings, tiles, checkpoint rows) leaves a
shorter log whose remaining checkpoints still verify. Two anchors make such a rollback visible:

* every checkpoint is an event of the audit chain (``decision.checkpoint``: size, root, keyid),
  whose own tail the workspace's audit witness protects — the checkpoint rows must hold every
  checkpoint the chain records, and the log at least the largest size;
* the workspace keeps a *witnessed head*, ``.custody/decision-head``: a copy of the largest signed
  checkpoint it committed, outside the database (as a C2SP witness keeps the latest checkpoint it
  cosigned). Its signature must verify, and the log must hold that checkpoint with that root.

:func:`check` compares both with the log; with ``quick`` it also checks every checkpoint's
signature and root against the stored right edge of the tree at its size, and names decisions no
checkpoint seals — what plain ``custody verify`` runs. ``decision_check.verify`` (``--decisions``)
recomputes everything else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy.engine import Connection

from mlcustody._canonical import canonical_json
from mlcustody.checks import CheckReport, Problem, ProblemKind
from mlcustody.errors import UsageError
from mlcustody.ledger import keys, tlog
from mlcustody.ledger.decisions import store as decision_store
from mlcustody.metadata import audit, decision_audit
from mlcustody.metadata.schema import audit_events, checkpoints, decision_segments, store_info

CHECKPOINT_ACTION = decision_audit.CHECKPOINT_ACTION
HEAD_FILE = "decision-head"
ORIGIN_ROW = "decision_log_origin"  # store_info: the checkpoint origin line of this store's log


@dataclass(frozen=True)
class Head:
    """A signed checkpoint as the witnessed head file keeps it."""

    size: int
    root: str
    keyid: str
    at: str
    note: str

    def text(self) -> str:
        return canonical_json(self.__dict__).decode("utf-8") + "\n"


def head_path(store_dir: Path) -> Path:
    """The witnessed head file of a workspace (next to its audit witness)."""
    return store_dir / HEAD_FILE


def record(conn: Connection, row: dict[str, Any], actor: str) -> audit.Event:
    """The audit event of a checkpoint row just inserted, in the same transaction."""
    return decision_audit.record_checkpoint(conn, row, actor)


def advance_head(path: Path, head: Head) -> None:
    """Keep the largest committed checkpoint in the head file (after the transaction commits)."""

    def newer(current: str | None) -> bool:
        seen = _parse(current) if current is not None else None
        return seen is None or seen.size < head.size

    audit.replace_if(path, newer, head.text())


def read_head(path: Path) -> Head | str | None:
    """The head file's checkpoint; None when there is none; a string saying why it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot be read ({exc})"
    found = _parse(text)
    return found if found is not None else "is not a checkpoint copy written by mlcustody"


def _parse(text: str) -> Head | None:
    try:
        value = json.loads(text)
        return Head(int(value["size"]), str(value["root"]), str(value["keyid"]), str(value["at"]), str(value["note"]))
    except (ValueError, KeyError, TypeError):
        return None


def public_raw(public_pem: str) -> bytes:
    """The raw Ed25519 public key of the decision log's key, as signed notes name it."""
    public = load_pem_public_key(public_pem.encode("utf-8"))
    if not isinstance(public, Ed25519PublicKey):
        raise UsageError("the decision-log key is not Ed25519", hint="see `custody keys ls`")
    return public.public_bytes_raw()


def check_note(conn: Connection, row: Any, log_origin: str, where: str) -> list[Problem]:
    """What is wrong with the signed note of a checkpoint (``row``: size, root, note, keyid, at)."""
    try:
        text = tlog.verify_note(row.note, log_origin, public_raw(keys.get(conn, row.keyid).public_pem))
        body = tlog.parse_checkpoint(text)
    except UsageError as exc:
        return [Problem(ProblemKind.CHECKPOINT_SIGNATURE_INVALID, where, exc.message)]
    if body.origin != log_origin or body.size != row.size or body.root.hex() != row.root:
        return [
            Problem(ProblemKind.CHECKPOINT_MODIFIED, where, "the signed note does not say the size and root of the row")
        ]
    signature = next(blob[4:] for name, blob in tlog.split_note(row.note)[1] if name == log_origin)
    why = keys.check(conn, row.keyid, text.encode("utf-8"), signature, row.at)
    return [Problem(ProblemKind.CHECKPOINT_SIGNATURE_INVALID, where, why)] if why else []


def origin(conn: Connection) -> str | None:
    found = conn.execute(sa.select(store_info.c.value).where(store_info.c.key == ORIGIN_ROW)).scalar()
    return None if found is None else str(found)


def check(conn: Connection, head: Path | None, *, quick: bool) -> CheckReport:
    """The log against its anchors (the audit chain's checkpoints, the witnessed head file); with
    ``quick`` also every checkpoint's signature and root and the unsealed tail. Returns problems and
    counts (decisions, checkpoints)."""
    log_origin = origin(conn)
    rows = {row.size: row for row in conn.execute(sa.select(checkpoints).order_by(checkpoints.c.size))}
    size = decision_store.tail(conn).size
    counts = {"decisions": size, "checkpoints": len(rows)}
    if log_origin is None and not rows and size == 0:
        return CheckReport(_check_head_absent(head), counts)
    problems = _check_audited(conn, rows, size)
    if head is not None:
        problems += _check_head(conn, head, rows, size, str(log_origin))
    if quick:
        problems += _check_rows(conn, rows, size, str(log_origin))
    return CheckReport(problems, counts)


def _check_audited(conn: Connection, rows: dict[int, Any], size: int) -> list[Problem]:
    """Every checkpoint the audit chain records is a row with the same root; every row is recorded."""
    problems: list[Problem] = []
    query = sa.select(audit_events.c.seq, audit_events.c.payload).where(audit_events.c.action == CHECKPOINT_ACTION)
    recorded: dict[int, tuple[int, str]] = {}
    for seq, payload in conn.execute(query.order_by(audit_events.c.seq)):
        try:
            value = json.loads(payload)
            recorded[int(value["size"])] = (seq, str(value["root"]))
        except (ValueError, KeyError, TypeError):
            continue  # audit.verify names a corrupt event
    for at, (seq, root) in sorted(recorded.items()):
        row = rows.get(at)
        where = f"checkpoints[{at}]"
        if row is None:
            detail = f"the audit log records this checkpoint (event {seq}); its row is gone"
            problems.append(Problem(ProblemKind.CHECKPOINT_DELETED, where, detail))
        elif row.root != root:
            problems.append(Problem(ProblemKind.CHECKPOINT_MODIFIED, where, f"the root differs from audit event {seq}"))
    for at in sorted(rows.keys() - recorded.keys()):
        problems.append(Problem(ProblemKind.CHECKPOINT_UNRECORDED, f"checkpoints[{at}]", "no audit event records it"))
    largest = max(recorded, default=0)
    if largest > size:
        detail = f"the audit log records a checkpoint of {largest} decisions, the log holds {size}: it was cut back"
        problems.append(Problem(ProblemKind.DECISION_LOG_TRUNCATED, f"decisions[{size}:{largest}]", detail))
    return problems


def _check_head(conn: Connection, path: Path, rows: dict[int, Any], size: int, log_origin: str) -> list[Problem]:
    """The witnessed head: signed, held by the log with the same root, not beyond its end."""
    found = read_head(path)
    if found is None:
        return []
    if isinstance(found, str):
        return [Problem(ProblemKind.DECISION_HEAD_CORRUPT, path.name, found)]
    problems = check_note(conn, found, log_origin, path.name)
    row = rows.get(found.size)
    if found.size > size or row is None:
        detail = f"this workspace committed a checkpoint of {found.size} decisions; the log holds {size}"
        if found.size <= size:
            detail = f"this workspace committed a checkpoint of {found.size} decisions; its row is gone"
        problems.append(Problem(ProblemKind.DECISION_LOG_TRUNCATED, path.name, detail))
    elif row.root != found.root:
        detail = f"the checkpoint of {found.size} decisions this workspace committed has another root"
        problems.append(Problem(ProblemKind.CHECKPOINT_MODIFIED, path.name, detail))
    return problems


def _check_head_absent(head: Path | None) -> list[Problem]:
    """A store without any decision: a head file means its whole log was deleted."""
    found = read_head(head) if head is not None else None
    if isinstance(found, Head) and head is not None:
        detail = f"this workspace committed a checkpoint of {found.size} decisions; the log is gone"
        return [Problem(ProblemKind.DECISION_LOG_TRUNCATED, head.name, detail)]
    return []


def _check_rows(conn: Connection, rows: dict[int, Any], size: int, log_origin: str) -> list[Problem]:
    """Each checkpoint's signature, and its root against the stored right edge of the tree at its
    size (the frontier of the segment ending there); decisions after the last one are unsealed."""
    problems: list[Problem] = []
    for at, row in rows.items():
        where = f"checkpoints[{at}]"
        problems += check_note(conn, row, log_origin, where)
        if at > size:
            problems.append(
                Problem(ProblemKind.CHECKPOINT_MISMATCH, where, f"seals {at} decisions, the log holds {size}")
            )
            continue
        root = _root_at(conn, at)
        if root is None:
            problems.append(Problem(ProblemKind.CHECKPOINT_MISMATCH, where, f"no segment of the log ends at {at}"))
        elif root != row.root:
            problems.append(
                Problem(ProblemKind.CHECKPOINT_MISMATCH, where, "the stored tree has another root at this size")
            )
    sealed = max(rows, default=0)
    if size > sealed:
        detail = f"{size - sealed} decision(s) after the last checkpoint are not sealed by any signature"
        problems.append(Problem(ProblemKind.UNSEALED_TAIL, f"decisions[{sealed}:{size}]", detail))
    return problems


def _root_at(conn: Connection, size: int) -> str | None:
    if size == 0:
        return tlog.EMPTY_ROOT.hex()
    query = sa.select(decision_segments.c.first, decision_segments.c.rows, decision_segments.c.frontier)
    found = conn.execute(
        query.where(decision_segments.c.first < size).order_by(decision_segments.c.first.desc()).limit(1)
    ).first()
    if found is None or found.first + found.rows != size:
        return None
    try:
        return tlog.Frontier.unpack(size, bytes(found.frontier)).root().hex()
    except UsageError:
        return "unreadable"
