"""What an artifact may be called and typed: pure rules, free of SQLAlchemy, so that ``custody run``
checks its arguments and starts the command before the database layer has loaded."""

from __future__ import annotations

from pathlib import Path

from mlcustody.errors import UsageError

TYPES = ("dataset", "model", "config", "code", "environment", "report", "other")


def validate_name(name: str) -> str:
    """Names are what references are made of, so they may not contain reference syntax; they read
    like workspace paths (``data/train``) and end up in paths (checkout, exports), so a name that
    would climb out of a directory (``../x``, ``/etc/x``, ``a//b``, a backslash, NUL) is refused too."""
    bad = [c for c in "@:\n\t\\\x00" if c in name]
    parts = name.split("/")
    climbs = any(part in ("", ".", "..") for part in parts)
    if not name or bad or climbs or name != name.strip() or len(name) > 300:
        raise UsageError(
            f"invalid artifact name {name!r}",
            hint="use 1–300 characters without '@', ':', '\\', tabs, newlines or surrounding spaces, and "
            "path segments that are not empty, '.' or '..'",
        )
    return name


def default_name(path: Path, rel: str) -> str:
    """A directory is named by its path, a file by its path without the extension (loans.csv → loans)."""
    if path.is_dir():
        return rel
    stem = rel.rsplit("/", 1)[-1]
    if "." in stem.lstrip("."):
        return rel[: rel.rindex(".")]
    return rel


def validate_type(type: str | None) -> None:
    if type is not None and type not in TYPES:
        raise UsageError(f"unknown artifact type {type!r}", hint=f"use one of: {', '.join(TYPES)}")
