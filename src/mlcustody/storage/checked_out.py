"""Which version a checkout restored at an artifact's own path, so ``status`` compares with that one.

After ``custody checkout data@1`` the workspace holds version 1 on purpose; comparing it with the
latest version would report a change nobody made. The store keeps a small JSON map, artifact name →
version number, in ``<store>/checked-out.json``: a checkout to the artifact's path sets its entry,
and any ``add`` of that name removes it (what is at the path is then what the latest version holds).
It is workspace state like the stat cache, not custody data: losing it only makes ``status`` compare
with the latest version again, so it is neither audited nor verified.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

FILENAME = "checked-out.json"


def read(store_dir: Path) -> dict[str, int]:
    """Artifact name → the version checked out at its path; empty when none (or unreadable)."""
    try:
        found = json.loads((store_dir / FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(found, dict):
        return {}
    return {name: number for name, number in found.items() if isinstance(number, int)}


def record(store_dir: Path, name: str, version: int) -> None:
    """Remember that ``name``'s version ``version`` is what its path now holds."""
    _write(store_dir, {**read(store_dir), name: version})


def forget(store_dir: Path, name: str) -> None:
    """Its path holds the latest version again (it was just added)."""
    found = read(store_dir)
    if found.pop(name, None) is not None:
        _write(store_dir, found)


def _write(store_dir: Path, found: dict[str, int]) -> None:
    """Replace the file atomically, so a crash leaves the old map or the new one, never half of one."""
    path = store_dir / FILENAME
    tmp = path.with_name(f".{FILENAME}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(found, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
