"""Rotating the key-encryption key: every data key and the subject-HMAC key re-wrapped under a new KEK.

The provider makes the new KEK first and keeps the old ones (a crash before the re-wrap commits
leaves the store readable with the old KEK, one after it with the new); one write transaction
re-wraps every stored key (keys stored before wrapping existed are wrapped now), records the store's
KEK id, and writes the audit events that vouch for the new stored values (all subject rows as one
batch, the HMAC key, a ``decision.kek_rotate`` event naming the KEKs); only after the commit does
the provider drop the old KEKs. A shredded key stays shredded: it is not in the database to re-wrap.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from mlcustody.errors import UsageError
from mlcustody.ledger import kek, keys
from mlcustody.ledger.decisions import subjects as decision_subjects
from mlcustody.metadata import audit, decision_audit
from mlcustody.metadata.schema import decision_subjects as subject_rows
from mlcustody.metadata.schema import store_info

ROTATE_ACTION = "decision.kek_rotate"


@dataclass(frozen=True)
class Rotation:
    """What ``rotate`` did: the KEK ids before (those keys were found under) and after, and how many
    keys it re-wrapped."""

    previous: list[str]
    current: str
    rewrapped: int
    provider: str


def rotate(ring: keys.Keyring) -> Rotation:
    """Re-wrap the decision log's keys under a new KEK (see the module docstring)."""
    with ring.db.read() as conn:
        store_id = decision_subjects.store_value(conn, "store_id") or "default"
        in_use = decision_subjects.store_value(conn, kek.KEK_ROW)
    source = kek.provider(store_id, ring.kek_file, create=in_use is None)
    kek.open_keyset(store_id, ring.kek_file, in_use, create=in_use is None)  # refuses a provider lacking in_use
    new = source.rotate()
    keyset = kek.Keyset(source)
    if keyset.current != new:
        raise UsageError(f"{source.describe()} did not make {new.kek_id} its current key", hint="check the provider")
    with ring.db.write() as conn:
        previous, count, event = _rewrap(conn, keyset, ring.actor)
    audit.advance_witness(ring.witness, event)
    source.retire(new)
    return Rotation(previous, new.kek_id, count, source.describe())


def _rewrap(conn: sa.Connection, keyset: kek.Keyset, actor: str) -> tuple[list[str], int, audit.Event]:
    found: set[str] = set()
    rows = conn.execute(
        sa.select(subject_rows.c.id, subject_rows.c.subject, subject_rows.c.key, subject_rows.c.created_at)
    )
    recorded: list[tuple[int, str, str, bytes | None]] = []
    updates = []
    for row_id, subject, stored, created_at in rows.all():
        if stored is None:  # shredded: nothing to re-wrap, ever
            recorded.append((row_id, subject, created_at, None))
            continue
        blob = bytes(stored)
        found.add(kek.kek_id_of(blob) or "unwrapped")
        context = kek.data_key_context(subject)
        wrapped = keyset.wrap(keyset.unwrap(blob, context), context)
        updates.append({"row_id": row_id, "wrapped": wrapped})
        recorded.append((row_id, subject, created_at, wrapped))
    if updates:
        statement = subject_rows.update().where(subject_rows.c.id == sa.bindparam("row_id"))
        conn.execute(statement.values(key=sa.bindparam("wrapped")), updates)
        decision_audit.record_rows(conn, recorded, actor)
    secret = decision_subjects.store_value(conn, decision_audit.SUBJECT_KEY_ROW)
    if secret is not None:
        blob = kek.text_blob(secret)
        found.add(kek.kek_id_of(blob) or "unwrapped")
        text = keyset.wrap_text(keyset.unwrap(blob, kek.HMAC_CONTEXT), kek.HMAC_CONTEXT)
        conn.execute(store_info.update().where(store_info.c.key == decision_audit.SUBJECT_KEY_ROW).values(value=text))
        decision_audit.record_hmac_key(conn, text, actor)
    marker = decision_subjects.store_value(conn, kek.KEK_ROW, lambda: keyset.current.kek_id)
    if marker != keyset.current.kek_id:
        conn.execute(store_info.update().where(store_info.c.key == kek.KEK_ROW).values(value=keyset.current.kek_id))
    payload = {"from": sorted(found), "to": keyset.current.kek_id, "rewrapped": len(updates) + (secret is not None)}
    event = audit.append(conn, actor=actor, action=ROTATE_ACTION, payload=payload)
    return sorted(found), len(updates) + (secret is not None), event
