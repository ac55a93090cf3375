"""Signed policy evidence: an expectation suite's result on a version, and an override of the terms
gate. Each is an in-toto Statement v1 (subject: the version's digest) in a DSSE envelope signed with a
registry key, stored as an object; an audited row points at it, so ``verify`` vouches for the row and
the signature vouches for what it says."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody._canonical import canonical_json, utc_now
from mlcustody.ledger.registry import attestation
from mlcustody.metadata import audit
from mlcustody.metadata.schema import expectation_results, terms_overrides

EXPECTATIONS_TYPE = "https://mlcustody.dev/expectations/v1"
OVERRIDE_TYPE = "https://mlcustody.dev/terms-override/v1"


def statement(name: str, blake3: str, predicate_type: str, predicate: dict[str, Any]) -> bytes:
    return canonical_json(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": name, "digest": {"blake3": blake3}}],
            "predicateType": predicate_type,
            "predicate": predicate,
        }
    )


def pae(payload: bytes) -> bytes:
    """What the signer signs for ``payload`` (DSSE pre-authentication encoding)."""
    return attestation.pae(attestation.PAYLOAD_TYPE, payload)


def envelope(payload: bytes, keyid: str, signature: bytes) -> bytes:
    return attestation.envelope(payload, keyid, signature)


def _next_seq(conn: Connection, table: sa.Table, **key: Any) -> int:
    where = [table.c[k] == v for k, v in key.items()]
    return int(conn.execute(sa.select(sa.func.max(table.c.seq)).where(*where)).scalar() or 0) + 1


def _record(
    conn: Connection, table: sa.Table, key: dict[str, Any], fields: dict[str, Any], actor: str, action: str
) -> tuple[dict[str, Any], audit.Event]:
    """Append the next ``seq`` row under ``key`` with who and when (audited)."""
    row = {**key, "seq": _next_seq(conn, table, **key), **fields, "actor": actor, "at": utc_now()}
    return row, audit.record_row(conn, table, row, actor=actor, action=action)


def record_expectations(
    conn: Connection,
    name: str,
    version: int,
    *,
    suite: str,
    result: str,
    success: bool,
    envelope_digest: str,
    keyid: str,
    actor: str,
) -> tuple[dict[str, Any], audit.Event]:
    fields = {"suite": suite, "result": result, "success": int(success), "envelope": envelope_digest, "keyid": keyid}
    key = {"name": name, "version": version}
    return _record(conn, expectation_results, key, fields, actor, "expectations.result")


def expectation_rows(conn: Connection, name: str, version: int) -> list[dict[str, Any]]:
    query = (
        sa.select(expectation_results)
        .where(expectation_results.c.name == name, expectation_results.c.version == version)
        .order_by(expectation_results.c.seq)
    )
    return [dict(row._mapping) for row in conn.execute(query)]


def record_override(
    conn: Connection,
    name: str,
    alias: str,
    version: int,
    *,
    reason: str,
    findings: str,
    envelope_digest: str,
    keyid: str,
    actor: str,
) -> tuple[dict[str, Any], audit.Event]:
    fields = {"version": version, "reason": reason, "findings": findings, "envelope": envelope_digest, "keyid": keyid}
    return _record(conn, terms_overrides, {"name": name, "alias": alias}, fields, actor, "terms.override")
