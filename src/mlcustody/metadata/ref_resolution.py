"""Turning a reference the user typed into the artifact version it names.

Grammar: ``NAME`` (latest version), ``NAME@VERSION``, or a digest prefix of at least 4 hex
characters. Names cannot contain ``@`` or ``:``, so the forms never overlap.
"""

from __future__ import annotations

import difflib
import re

from sqlalchemy.engine import Connection

from mlcustody.errors import AmbiguousRef, UnknownRef
from mlcustody.metadata import artifacts
from mlcustody.metadata.artifacts import ArtifactVersion

_PREFIX = re.compile(r"[0-9a-f]{4,64}")
_NUMBER = re.compile(r"[0-9]{1,30}")
MAX_VERSION = 2**31 - 1  # versions are 32-bit integer columns: a larger number names nothing


def version_number(ref: str, text: str, example: str) -> int:
    """The version number ``text`` of ``ref`` (ASCII digits); an unknown-ref error otherwise. A
    number beyond any column is returned as it is, for the caller to say that no such version exists."""
    if not _NUMBER.fullmatch(text):
        raise UnknownRef(f"{ref!r}: version {text!r} is not a number", hint=f"write NAME@VERSION, e.g. {example}")
    return int(text)


def resolve(conn: Connection, ref: str) -> ArtifactVersion:
    name, at, version = ref.rpartition("@")
    if at:
        number = version_number(ref, version, "data@2")
        found = artifacts.get(conn, name, number) if number <= MAX_VERSION else None
        if found is None:
            known = artifacts.history(conn, name)
            if not known:
                raise _unknown(conn, name)
            raise UnknownRef(f"{name} has no version {version}", hint=f"versions are 1…{known[-1].version}")
        return found
    if ":" in ref:
        raise UnknownRef(f"{ref!r}: artifacts have no aliases", hint="use NAME or NAME@VERSION")
    latest = artifacts.latest(conn, ref)
    if latest is not None:
        return latest
    if _PREFIX.fullmatch(ref):
        matches = artifacts.by_digest_prefix(conn, ref)
        digests = {m.digest for m in matches}
        if len(digests) > 1:
            shown = ", ".join(sorted(f"{m.ref} ({m.digest[:12]})" for m in matches)[:5])
            raise AmbiguousRef(f"digest prefix {ref} matches {len(digests)} objects: {shown}")
        if matches:
            return matches[-1]
    raise _unknown(conn, ref)


def _unknown(conn: Connection, ref: str) -> UnknownRef:
    close = difflib.get_close_matches(ref, artifacts.names(conn), n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return UnknownRef(f"no artifact named {ref!r}", hint=hint + "list what exists with `custody ls`")
