"""in-toto Statement v1 with a SLSA Provenance v1 predicate, in a DSSE envelope.

The Statement is serialised once (RFC 8785) and exactly those bytes are signed, through DSSE's
pre-authentication encoding; nothing re-serialises them (protobuf Structs would turn ``5`` into
``5.0``). Every digest set carries ``sha256``, which every in-toto consumer knows, beside our
``blake3``, which consumers that do not know it must ignore.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from mlcustody._canonical import canonical_json
from mlcustody.errors import UsageError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUILD_TYPE = "https://mlcustody.dev/training-run/v1"
BUILDER_ID = "https://mlcustody.dev/builder/custody@v1"


@dataclass(frozen=True)
class Subject:
    name: str
    sha256: str
    blake3: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "digest": {"sha256": self.sha256, "blake3": self.blake3}}


def statement(subjects: list[Subject], predicate: dict[str, Any]) -> bytes:
    """The Statement's bytes, as they will be signed and stored."""
    return canonical_json(
        {
            "_type": STATEMENT_TYPE,
            "subject": [s.as_dict() for s in subjects],
            "predicateType": PREDICATE_TYPE,
            "predicate": predicate,
        }
    )


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what is actually signed."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def envelope(payload: bytes, keyid: str, signature: bytes) -> bytes:
    return canonical_json(
        {
            "payloadType": PAYLOAD_TYPE,
            "payload": base64.b64encode(payload).decode("ascii"),
            "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode("ascii")}],
        }
    )


@dataclass(frozen=True)
class Opened:
    """An envelope taken apart: the signed bytes, the parsed Statement and each (keyid, signature)."""

    payload: bytes
    statement: dict[str, Any]
    signatures: list[tuple[str, bytes]]

    @property
    def signed_bytes(self) -> bytes:
        return pae(PAYLOAD_TYPE, self.payload)


def open_envelope(data: bytes) -> Opened:
    """Parse an envelope; anything malformed is a one-line usage error naming what is wrong."""
    try:
        doc = json.loads(data)
        if doc.get("payloadType") != PAYLOAD_TYPE:
            raise ValueError(f"payloadType is {doc.get('payloadType')!r}, not {PAYLOAD_TYPE}")
        payload = base64.b64decode(doc["payload"], validate=True)
        signatures = [(s["keyid"], base64.b64decode(s["sig"], validate=True)) for s in doc["signatures"]]
        parsed = json.loads(payload)
        if parsed.get("_type") != STATEMENT_TYPE or parsed.get("predicateType") != PREDICATE_TYPE:
            raise ValueError("the payload is not an in-toto Statement v1 with SLSA provenance")
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise UsageError(f"corrupt attestation envelope: {exc}", hint="re-register the model version") from exc
    return Opened(payload, parsed, signatures)


def dependency(name: str, digests: dict[str, str], uri: str | None = None, **annotations: Any) -> dict[str, Any]:
    """A SLSA ResourceDescriptor."""
    found: dict[str, Any] = {"name": name, "digest": digests}
    if uri:
        found["uri"] = uri
    if annotations:
        found["annotations"] = annotations
    return found
