"""A bill of materials signed like our attestations: the document as the predicate of an in-toto
Statement whose subject is the model version's digests, in a DSSE envelope signed by a registry key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlcustody._canonical import canonical_json
from mlcustody.ledger.registry import attestation
from mlcustody.ledger.registry import versions as registry


def signed(
    document: dict[str, Any],
    version: registry.ModelVersion,
    predicate_type: str,
    sign: Callable[[bytes], bytes],
    keyid: str,
) -> bytes:
    """The DSSE envelope; ``sign`` turns the pre-authentication encoding into a signature."""
    subject = {"name": version.ref, "digest": {"sha256": version.sha256, "blake3": version.digest}}
    payload = canonical_json(
        {
            "_type": attestation.STATEMENT_TYPE,
            "subject": [subject],
            "predicateType": predicate_type,
            "predicate": document,
        }
    )
    return attestation.envelope(payload, keyid, sign(attestation.pae(attestation.PAYLOAD_TYPE, payload)))
