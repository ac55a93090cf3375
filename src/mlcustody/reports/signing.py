"""A detached signature of a report file: an in-toto Statement in a DSSE envelope, ``FILE.dsse.json``.

The report file stays exactly the bytes rendered (so regenerating it gives the same file); the
Statement's subject is its SHA-256 and BLAKE3, and its predicate carries what a checker needs without
the store: the report's kind and subject, the digest of its body, every citation, the decision's
inclusion proof (for a decision report), when it was signed and the signer's public key. Offline,
:func:`verify` checks the envelope signature with that key (whose keyid must be the one signed), the
file's digests and the inclusion proof under the log's checkpoint key; :func:`verify_in_store` then
checks the key against the registry (registered, valid when it signed, not revoked), re-derives
every citation, and that the checkpoint key is the store's own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody._canonical import canonical_json, digest_bytes, utc_now
from mlcustody.errors import CustodyError, UsageError
from mlcustody.ledger import keys, tlog
from mlcustody.ledger.decisions import log as decisions
from mlcustody.ledger.registry import attestation
from mlcustody.metadata.schema import checkpoints
from mlcustody.reports import citations
from mlcustody.storage.objects import ObjectStore

PREDICATE_TYPE = "https://mlcustody.dev/report/v1"
SUFFIX = ".dsse.json"


@dataclass(frozen=True)
class Checked:
    """What checking a report file found: its Statement (None when unreadable) and the problems."""

    statement: dict[str, Any] | None
    problems: list[str]
    signed: bytes = b""  # the pre-authentication encoding that was signed
    signature: bytes = b""  # the signature that verifies (empty when none does)

    @property
    def predicate(self) -> dict[str, Any]:
        found: dict[str, Any] = (self.statement or {}).get("predicate", {})
        return found


def body_digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(body)).hexdigest()


def sign(signer: keys.Signer, name: str, data: bytes, body: dict[str, Any], fmt: str) -> bytes:
    """The envelope over the Statement about the rendered report ``data`` (file ``name``)."""
    predicate = {
        "kind": body["kind"],
        "subject": body["subject"],
        "format": fmt,
        "document": {"sha256": body_digest(body)},
        "citations": body["citations"],
        "inclusion": body.get("inclusion"),
        "signedAt": utc_now(),
        "signer": {"keyid": signer.keyid, "publicKey": signer.key.public_pem},
    }
    statement = canonical_json(
        {
            "_type": attestation.STATEMENT_TYPE,
            "subject": [{"name": name, "digest": _digests(data)}],
            "predicateType": PREDICATE_TYPE,
            "predicate": predicate,
        }
    )
    return attestation.envelope(
        statement, signer.keyid, signer.sign(attestation.pae(attestation.PAYLOAD_TYPE, statement))
    )


def verify(data: bytes, envelope: bytes) -> Checked:
    """Check a report file against its detached envelope, with nothing but the two files."""
    try:
        doc = json.loads(envelope)
        payload = base64.b64decode(doc["payload"], validate=True)
        sigs = [(s["keyid"], base64.b64decode(s["sig"], validate=True)) for s in doc["signatures"]]
        statement = json.loads(payload)
        predicate = statement["predicate"]
        signer = predicate["signer"]
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        return Checked(None, [f"the signature file is not a report envelope: {type(exc).__name__} {exc}"])
    problems = []
    if doc.get("payloadType") != attestation.PAYLOAD_TYPE or statement.get("predicateType") != PREDICATE_TYPE:
        problems.append(
            f"not a report statement (payloadType {doc.get('payloadType')}, "
            f"predicateType {statement.get('predicateType')})"
        )
    signed = attestation.pae(attestation.PAYLOAD_TYPE, payload)
    try:
        key_ok = keys.compute_keyid(signer["publicKey"]) == signer["keyid"]
        good = [s for k, s in sigs if k == signer["keyid"] and keys.verifies(signer["publicKey"], signed, s)]
    except UsageError as exc:
        key_ok, good = False, []
        problems.append(f"the signer's public key is unreadable: {exc.message}")
    if not key_ok:
        problems.append("the signer's public key does not have the keyid it claims")
    elif not good:
        problems.append(f"no signature verifies with key {signer['keyid']}")
    subject = (statement.get("subject") or [{}])[0].get("digest", {})
    if subject != _digests(data):
        problems.append("the report file's digest is not the one signed: the file was changed")
    if predicate.get("format") == "json":
        problems += _body_problems(data, predicate)
    inclusion = predicate.get("inclusion")
    if inclusion is not None:
        try:
            tlog.verify_proof_text(inclusion["proof"], inclusion["entry"].encode("utf-8"), inclusion["vkey"])
        except (UsageError, KeyError, TypeError) as exc:
            problems.append(f"the decision's inclusion proof does not verify: {exc}")
    return Checked(statement, problems, signed, good[0] if good else b"")


def verify_in_store(conn: Connection, objects: ObjectStore, found: Checked) -> list[str]:
    """With the store: the signing key's registry status then, each citation, the log key."""
    predicate = found.predicate
    problems: list[str] = []
    if not predicate:
        return problems
    if found.signature:  # a signature that does not verify was already reported
        try:
            why = keys.check(conn, predicate["signer"]["keyid"], found.signed, found.signature, predicate["signedAt"])
        except CustodyError as exc:
            why = exc.message
        if why is not None:
            problems.append(f"signing key: {why}")
    problems += [p for item in predicate.get("citations", []) if (p := citations.check(conn, objects, item))]
    inclusion = predicate.get("inclusion")
    if inclusion is not None:
        try:
            keyid = _checkpoint_keyid(conn, inclusion["size"])
            if decisions.verifier_key(conn, keyid) != inclusion["vkey"]:
                problems.append("the inclusion proof is under a log key that is not this store's")
        except CustodyError as exc:
            problems.append(f"the inclusion proof's checkpoint: {exc.message}")
    return problems


def _checkpoint_keyid(conn: Connection, size: int) -> str:
    keyid = conn.execute(sa.select(checkpoints.c.keyid).where(checkpoints.c.size == size)).scalar()
    if keyid is None:
        raise UsageError(f"the store has no checkpoint of size {size}", hint="verify against the store it came from")
    return str(keyid)


def _body_problems(data: bytes, predicate: dict[str, Any]) -> list[str]:
    """A JSON report is its body: it must be the body signed and hold the citations signed."""
    try:
        body = json.loads(data)
    except ValueError:
        return ["the JSON report does not parse"]
    problems = []
    if body_digest(body) != predicate.get("document", {}).get("sha256"):
        problems.append("the report body is not the one signed")
    if body.get("citations") != predicate.get("citations"):
        problems.append("the report's citations are not the ones signed")
    return problems


def _digests(data: bytes) -> dict[str, str]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "blake3": digest_bytes(data)}
