"""The one canonical encoding and the one digest function that every layer hashes with.

Anything mlcustody hashes as structured data (audit events, artifact rows, run records,
attestation payloads) is first encoded with RFC 8785, the JSON Canonicalization Scheme (JCS):
UTF-8, object members sorted by their UTF-16 code units, no insignificant whitespace, numbers in
the ECMAScript shortest round-trip form. Integers beyond ±2**53 and non-finite floats are not
representable in JCS and are refused, so a value never hashes differently in another language.
Digests are BLAKE3-256, written as 64 lowercase hex characters. See docs/canonical-encoding.md.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import blake3
import rfc8785

from mlcustody.errors import UsageError

DIGEST_HEX_LEN = 64
ZERO_DIGEST = "0" * DIGEST_HEX_LEN


def canonical_json(value: Any) -> bytes:
    """Encode ``value`` (dicts, lists, str, int, float, bool, None) as RFC 8785 bytes."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError) as exc:
        raise UsageError(
            f"value cannot be canonically encoded: {exc}",
            hint="use JSON types only: strings, finite numbers, booleans, null, lists and objects",
        ) from exc


# Below this many bytes one thread hashes faster than handing work to a pool.
_THREADED_FROM = 4 << 20


def digest_bytes(data: bytes | memoryview) -> str:
    """BLAKE3-256 of ``data`` as lowercase hex (multi-threaded for large buffers)."""
    threads = blake3.blake3.AUTO if len(data) >= _THREADED_FROM else 1
    return blake3.blake3(data, max_threads=threads).hexdigest()


def digest_json(value: Any) -> str:
    """BLAKE3-256 of the canonical encoding of ``value``."""
    return digest_bytes(canonical_json(value))


def utc_now() -> str:
    """The current time in the one timestamp form mlcustody stores and hashes (RFC 3339, UTC, µs)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def json_number(value: float) -> float | str:
    """A float as JSON can hold it: NaN and infinities become the strings NaN, Infinity, -Infinity."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value
