"""Comparing two file listings: what was added, removed or modified, by path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlcustody.storage.dir_manifest import Entry


@dataclass(frozen=True)
class Change:
    path: str
    old: Entry | None
    new: Entry | None


@dataclass(frozen=True)
class TreeDiff:
    added: tuple[Change, ...]
    removed: tuple[Change, ...]
    modified: tuple[Change, ...]
    unchanged: int

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.modified)


def diff_entries(old: Sequence[Entry], new: Sequence[Entry]) -> TreeDiff:
    """Changes from ``old`` to ``new``; a mode change alone counts as a modification."""
    before = {entry.path: entry for entry in old}
    after = {entry.path: entry for entry in new}
    added = tuple(Change(p, None, after[p]) for p in sorted(after.keys() - before.keys()))
    removed = tuple(Change(p, before[p], None) for p in sorted(before.keys() - after.keys()))
    modified = []
    unchanged = 0
    for path in sorted(before.keys() & after.keys()):
        a, b = before[path], after[path]
        if (a.digest, a.mode) == (b.digest, b.mode):
            unchanged += 1
        else:
            modified.append(Change(path, a, b))
    return TreeDiff(added, removed, tuple(modified), unchanged)
