"""Directory manifests: the canonical listing whose digest is a directory's Merkle root.

Canonical encoding (docs/store-format.md): UTF-8 text, first line ``mlcustody-manifest/v1``, then one
line per regular file, sorted by the UTF-8 bytes of its path::

    <digest>␠<size>␠<mode>␠<path>\\n

``digest`` is the file's BLAKE3-256 (64 lowercase hex), ``size`` a decimal byte count, ``mode`` ``644``
or ``755`` (only the owner-execute bit is kept, as git does, so umask differences do not change the
digest), ``path`` relative with ``/`` separators, NFC-untouched, with ``\\`` written as ``\\\\`` and a
newline as ``\\n``. Empty directories are not recorded. The manifest is stored as an object, so its
digest covers every file's digest: changing any byte anywhere changes the root.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mlcustody.errors import UsageError

HEADER = "mlcustody-manifest/v1"


@dataclass(frozen=True, slots=True)
class Entry:
    """One file of a directory version."""

    path: str
    size: int
    mode: int
    digest: str

    @property
    def executable(self) -> bool:
        return self.mode == 0o755


def normal_mode(st_mode: int) -> int:
    """The only permission that is versioned: executable (755) or not (644)."""
    return 0o755 if st_mode & 0o100 else 0o644


def sort_key(path: str) -> bytes:
    return path.encode("utf-8")


def encode(entries: Iterable[Entry]) -> bytes:
    """Canonical bytes of a manifest; entries are sorted here, so callers need not."""
    ordered = sorted(entries, key=lambda entry: sort_key(entry.path))
    lines = [HEADER]
    previous = None
    for entry in ordered:
        if entry.path == previous:
            raise UsageError(f"duplicate path {entry.path!r} in manifest")
        previous = entry.path
        lines.append(f"{entry.digest} {entry.size} {entry.mode:o} {_escape(entry.path)}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def decode(data: bytes) -> list[Entry]:
    """Parse manifest bytes; raises ValueError on anything that is not canonical."""
    text = data.decode("utf-8")
    lines = text.split("\n")
    if lines[0] != HEADER or lines[-1] != "":
        raise ValueError("not an mlcustody manifest")
    entries = [_parse_line(line) for line in lines[1:-1]]
    if encode(entries) != data:
        raise ValueError("manifest is not in canonical form")
    return entries


def _parse_line(line: str) -> Entry:
    digest, size, mode, path = line.split(" ", 3)
    return Entry(path=_unescape(path), size=int(size), mode=int(mode, 8), digest=digest)


def _escape(path: str) -> str:
    return path.replace("\\", "\\\\").replace("\n", "\\n")


def _unescape(text: str) -> str:
    out: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            nxt = next(chars, "")
            out.append("\n" if nxt == "n" else nxt)
        else:
            out.append(char)
    return "".join(out)
