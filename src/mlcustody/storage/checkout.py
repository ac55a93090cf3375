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
from mlcustody.storage.dir_manifest import Entry
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
    overwritten, deleted = (
        [c.old.path for c in found if c.old is not None and not objects.exists(c.old.digest, c.old.size)]
        for found in (changes.modified, changes.removed)
    )
    if (overwritten or deleted) and not force:
        _refuse_unsaved(kind, target, overwritten, deleted)
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
    raise WouldOverwrite(f"checkout would overwrite {target}: {_names(paths)} {why}")


def _refuse_unsaved(kind: str, target: Path, overwritten: list[str], deleted: list[str]) -> None:
    """Say which files a checkout would lose and how: overwritten (edited) or deleted (new files)."""
    if kind == "file":
        raise WouldOverwrite(f"checkout would overwrite {target}, whose changes are not in the store")
    losses = []
    if overwritten:
        losses.append(f"overwrite {_names(overwritten)}, whose changes are not in the store")
    if deleted:
        losses.append(f"delete {_names(deleted)}, {'which is' if len(deleted) == 1 else 'which are'} not in the store")
    raise WouldOverwrite(f"checkout of {target} would " + ", and ".join(losses))


def _names(paths: list[str]) -> str:
    """``a``, ``a and b``, ``a, b, c, d, e and 3 more``."""
    if len(paths) > 5:
        return ", ".join(paths[:5]) + f" and {len(paths) - 5} more"
    return paths[0] if len(paths) == 1 else ", ".join(paths[:-1]) + " and " + paths[-1]


def _prune_empty_dirs(directory: Path, stop: Path) -> None:
    while directory != stop and stop in directory.parents:
        with contextlib.suppress(OSError):
            directory.rmdir()
            directory = directory.parent
            continue
        return
