"""Data subjects of the decision log: pseudonyms, per-subject data keys, encryption and crypto-shredding.

A subject id (a customer number…) is never stored: decisions carry the HMAC-SHA256 of it under a key
kept in the store (``store_info``). Each subject has a ``decision_subjects`` row with its own
AES-256-GCM data key; a decision's inputs are encrypted under it (the decision id as associated
data), so erasing one subject's data (GDPR Art. 17) is deleting one key: their payloads become
unreadable while every entry, which commits to the ciphertext's digest, still verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Connection

from mlcustody._canonical import utc_now
from mlcustody.ledger import kek
from mlcustody.ledger.decisions import store as decision_store
from mlcustody.metadata import audit, decision_audit
from mlcustody.metadata.schema import decision_subjects, store_info

SUBJECT_KEY_ROW = decision_audit.SUBJECT_KEY_ROW  # store_info: hex of the 32-byte HMAC key for subject ids
SHRED_COUNT_ROW = "decision_subjects_shredded"  # store_info: how many data keys were destroyed
SHARED = ""  # the subject row whose key encrypts the inputs of decisions without a subject
_IN_CHUNK = 2000
_CACHE_LIMIT = 1_000_000  # subjects a writer keeps between batches (about 150 MB)
_NONCE = 12


def store_value(conn: Connection, key: str, make: Callable[[], str] | None = None) -> str | None:
    """A ``store_info`` value, made (and stored) with ``make`` when missing and ``make`` is given."""
    value = conn.execute(sa.select(store_info.c.value).where(store_info.c.key == key)).scalar()
    if value is None and make is not None:
        value = make()
        conn.execute(store_info.insert().values(key=key, value=value))
    return None if value is None else str(value)


def keyset(conn: Connection, kek_file: str | None, *, create: bool = False) -> kek.Keyset | None:
    """The key-encryption keys of this store (``ledger.kek``); a writer (``create``) gets a key file
    made when the store has no wrapped key yet. None when none is configured and none is needed."""
    store_id = store_value(conn, "store_id") or "default"
    return kek.open_keyset(store_id, kek_file, store_value(conn, kek.KEK_ROW), create=create)


def ensure_hmac_key(conn: Connection, actor: str, keys: kek.Keyset) -> audit.Event | None:
    """Make the store's subject-HMAC key (wrapped under the KEK) when it has none; its digest is an
    audit event (returned)."""
    if store_value(conn, SUBJECT_KEY_ROW) is not None:
        return None
    secret = str(store_value(conn, SUBJECT_KEY_ROW, lambda: keys.wrap_text(secrets.token_bytes(32), kek.HMAC_CONTEXT)))
    store_value(conn, kek.KEK_ROW, lambda: keys.current.kek_id)
    return decision_audit.record_hmac_key(conn, secret, actor)


def subject_hasher(conn: Connection, keys: kek.Keyset | None) -> Callable[[str], str] | None:
    """HMAC-SHA256 (hex) of a subject id under the store's subject key; None when there is no key yet."""
    secret = store_value(conn, SUBJECT_KEY_ROW)
    if secret is None:
        return None
    key = kek.unwrap(keys, kek.text_blob(secret), kek.HMAC_CONTEXT)
    cache: dict[str, str] = {}

    def pseudonym(subject: str) -> str:
        known = cache.get(subject)
        if known is None:
            known = cache[subject] = hmac.new(key, subject.encode("utf-8"), hashlib.sha256).hexdigest()
        return known

    return pseudonym


class SubjectRows:
    """The (row id, data key) of subject HMACs for one writer, kept between its batches.

    A key is None once its subject was shredded. ``forget`` moves a counter in ``store_info`` in the
    same transaction as it destroys a key; a writer reads the counter once a batch and drops what it
    holds when the counter moved, so a destroyed key is never used again. New rows are an audit event
    by ``actor`` (``metadata.decision_audit``); ``event`` is the last one written."""

    def __init__(self, actor: str, keys: kek.Keyset) -> None:
        self._known: dict[str, tuple[int, bytes | None]] = {}
        self._shredded: str | None = None
        self.actor = actor
        self.keys = keys  # new data keys are stored wrapped under the current KEK
        self.event: audit.Event | None = None

    def lookup(self, conn: Connection, subjects: Iterable[str]) -> dict[str, tuple[int, bytes | None]]:
        """The rows of ``subjects`` (``SHARED`` for none), made when missing; may hold others too."""
        shredded = store_value(conn, SHRED_COUNT_ROW) or "0"
        if shredded != self._shredded or len(self._known) > _CACHE_LIMIT:
            self._known, self._shredded = {}, shredded
        wanted = set(subjects).difference(self._known)
        if wanted:
            self._known |= self._rows(conn, wanted)
        return self._known

    def _rows(self, conn: Connection, wanted: set[str]) -> dict[str, tuple[int, bytes | None]]:
        found = _select(conn, wanted)
        missing = wanted.difference(found)
        if missing:
            now, wrap = utc_now(), self.keys.wrap
            rows = [
                {"subject": s, "key": wrap(os.urandom(32), kek.data_key_context(s)), "created_at": now} for s in missing
            ]
            conn.execute(decision_subjects.insert(), rows)
            store_value(conn, kek.KEK_ROW, lambda: self.keys.current.kek_id)
            made = _select(conn, missing)
            new_rows = [(row, subject, now, key) for subject, (row, key) in made.items()]
            self.event = decision_audit.record_rows(conn, new_rows, self.actor)
            found |= made
        unwrap = self.keys.unwrap
        return {
            s: (row, None if key is None else unwrap(key, kek.data_key_context(s))) for s, (row, key) in found.items()
        }


def _select(conn: Connection, subjects: set[str]) -> dict[str, tuple[int, bytes | None]]:
    """The row and stored (wrapped) data key of each subject HMAC that has a row."""
    ordered = sorted(subjects)
    found: dict[str, tuple[int, bytes | None]] = {}
    columns = (decision_subjects.c.subject, decision_subjects.c.id, decision_subjects.c.key)
    for start in range(0, len(ordered), _IN_CHUNK):
        query = sa.select(*columns).where(decision_subjects.c.subject.in_(ordered[start : start + _IN_CHUNK]))
        found |= {subject: (row, None if key is None else bytes(key)) for subject, row, key in conn.execute(query)}
    return found


def encrypt(keys: Sequence[bytes | None], ids: Sequence[str], plaintexts: Sequence[bytes]) -> list[bytes | None]:
    """AES-256-GCM of each plaintext under its key (None: not kept), the decision id as associated data."""
    ciphers = {key: AESGCM(key) for key in set(keys) if key is not None}
    blob = os.urandom(_NONCE * len(ids))
    nonces = [blob[i : i + _NONCE] for i in range(0, len(blob), _NONCE)]
    return [
        None if key is None else nonce + ciphers[key].encrypt(nonce, plain, decision_id.encode("utf-8"))
        for key, decision_id, plain, nonce in zip(keys, ids, plaintexts, nonces, strict=True)
    ]


def decrypt(
    conn: Connection, key_row: int, decision_id: str, payload: bytes, keys: kek.Keyset | None
) -> dict[str, Any] | None:
    """The inputs in ``payload``; None when the subject's key was destroyed or the payload altered."""
    query = sa.select(decision_subjects.c.key, decision_subjects.c.subject).where(decision_subjects.c.id == key_row)
    found_row = conn.execute(query).first()
    if found_row is None or found_row.key is None:
        return None
    key = kek.unwrap(keys, bytes(found_row.key), kek.data_key_context(found_row.subject))
    try:
        plain = AESGCM(key).decrypt(payload[:_NONCE], payload[_NONCE:], decision_id.encode("utf-8"))
    except InvalidTag:
        return None
    found: dict[str, Any] = json.loads(plain)
    return found


def row_of(conn: Connection, subject: str, keys: kek.Keyset | None) -> int | None:
    """The row id of a subject id (not its HMAC), or None when the subject never had a decision."""
    pseudonym = subject_hasher(conn, keys)
    if pseudonym is None:
        return None
    query = sa.select(decision_subjects.c.id).where(decision_subjects.c.subject == pseudonym(subject))
    found = conn.execute(query).scalar()
    return None if found is None else int(found)


def forget(conn: Connection, subject: str, actor: str, keys: kek.Keyset | None) -> tuple[int, audit.Event | None]:
    """Crypto-shred one subject: destroy their data key (audited). Returns their decisions' count."""
    row = row_of(conn, subject, keys)
    if row is None:
        return 0, None
    current = conn.execute(sa.select(decision_subjects).where(decision_subjects.c.id == row)).one()
    if current.key is None:
        return 0, None
    count = len(decision_store.subject_positions(conn, row))
    now = utc_now()
    shred = decision_subjects.update().where(decision_subjects.c.id == row)
    conn.execute(shred.values(key=None, shredded_at=now))
    shredded = int(store_value(conn, SHRED_COUNT_ROW, lambda: "0") or 0) + 1
    conn.execute(store_info.update().where(store_info.c.key == SHRED_COUNT_ROW).values(value=str(shredded)))
    payload = decision_audit.shred_payload(row, current.subject, bytes(current.key), now, count)
    return count, audit.append(conn, actor=actor, action=decision_audit.SHRED_ACTION, payload=payload)
