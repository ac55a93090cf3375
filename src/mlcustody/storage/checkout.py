"""Materialising a stored version at a workspace path without ever losing unsaved bytes.

A file that checkout would overwrite or delete is safe when its current content is already an
object in the store (it is some earlier version); anything else is a conflict, and checkout refuses
before touching a single file unless ``force`` is given.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from mlcustody._progress import NoProgress, Progress
from mlcustody.errors import WouldOverwrite
from mlcustody.storage import links, snapshot
from mlcustody.storage.diff import diff_entries
from mlcustody.storage.manifest import Entry
from mlcustody.storage.objects import ObjectStore
from mlcustody.storage.statcache import StatCache, StatKey


@dataclass(frozen=True)
class CheckoutResult:
    written: int
    deleted: int
    unchanged: int


def checkout(
    kind: str,
    entries: tuple[Entry, ...],
    target: Path,
    *,
    objects: ObjectStore,
    cache: StatCache,
    link_mode: str = "copy",
    force: bool = False,
    progress: Progress | None = None,
) -> CheckoutResult:
    """Make ``target`` hold exactly ``entries`` (a single file when ``kind`` is ``file``)."""
    progress = progress or NoProgress()
    wanted = entries if kind == "dir" else (Entry(target.name, entries[0].size, entries[0].mode, entries[0].digest),)
    current: tuple[Entry, ...] = ()
    if target.exists() or target.is_symlink():
        if kind == "file" and target.is_dir():
            _refuse([target.name], target, "is a directory")
        current = snapshot.take(target, cache=cache).entries
    changes = diff_entries(current, wanted)
    at_risk = [c.old for c in (*changes.modified, *changes.removed) if c.old is not None]
    unsaved = [entry.path for entry in at_risk if not objects.exists(entry.digest, entry.size)]
    if unsaved and not force:
        _refuse(unsaved, target, "has changes that are not in the store")
    progress.start(f"checking out {target.name}", len(changes.added) + len(changes.modified))
    written: list[tuple[Path, Entry]] = []
    for change in (*changes.added, *changes.modified):
        entry = change.new
        assert entry is not None
        path = target if kind == "file" else target / entry.path
        links.place(objects.path(entry.digest), path, entry.mode, link_mode)
        written.append((path, entry))
        progress.advance()
    for change in changes.removed:
        removed = target / change.path
        removed.unlink()
        _prune_empty_dirs(removed.parent, target)
    progress.finish()
    if link_mode == "copy":
        cache.put_many((StatKey.of(os.stat(path)), entry.digest) for path, entry in written)
    return CheckoutResult(len(written), len(changes.removed), changes.unchanged)


def _refuse(paths: list[str], target: Path, why: str) -> None:
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    raise WouldOverwrite(f"checkout would overwrite {target}: {shown} {why}")


def _prune_empty_dirs(directory: Path, stop: Path) -> None:
    while directory != stop and stop in directory.parents:
        with contextlib.suppress(OSError):
            directory.rmdir()
            directory = directory.parent
            continue
        return
