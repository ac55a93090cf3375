"""``gc``: find (and on request delete) objects no metadata refers to, and stale temp files.

Deleting takes the store's exclusive lock, which ``add`` holds shared from its first object write to
its commit, so an object that an in-flight ``add`` is about to reference is never collected.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass

from mlcustody.metadata import referenced_objects as references
from mlcustody.metadata.engine import Database
from mlcustody.metadata.runs import store as runs
from mlcustody.storage import dir_manifest as manifest
from mlcustody.storage.objects import ObjectStore

# A temp file this old belongs to a process that died (a live add renames its files in seconds).
STALE_TMP_SECONDS = 3600


@dataclass(frozen=True)
class GcPlan:
    unreferenced: tuple[str, ...]
    unreferenced_bytes: int
    stale_tmp: tuple[str, ...]
    kept: int


def plan(db: Database, objects: ObjectStore) -> GcPlan:
    keep: set[str] = set()
    with db.read() as conn:
        stored = references.stored_digests(conn)
    for digest, role in stored:
        keep.add(digest)
        if role in ("manifest", "run code") and objects.exists(digest):
            try:
                keep.update(_referenced(objects.read_bytes(digest), role))
            except (ValueError, UnicodeDecodeError):
                continue  # verify reports the damage; gc must not guess
    present = list(objects.iter_digests())
    unreferenced = tuple(sorted(d for d in present if d not in keep))
    size = sum(os.stat(objects.path(d)).st_size for d in unreferenced)
    cutoff = time.time() - STALE_TMP_SECONDS
    stale = tuple(sorted(name for name, mtime in _tmp_entries(objects) if mtime < cutoff))
    return GcPlan(unreferenced, size, stale, len(present) - len(unreferenced))


def _referenced(data: bytes, role: str) -> list[str]:
    """Objects a manifest or a run's code record names (its dirty diff and entry script)."""
    if role == "manifest":
        return [entry.digest for entry in manifest.decode(data)]
    return runs.code_objects(json.loads(data))


def _tmp_entries(objects: ObjectStore) -> list[tuple[str, float]]:
    """Names and mtimes in tmp/; entries a running command renames away meanwhile are skipped."""
    found = []
    for entry in os.scandir(objects.tmp_dir):
        try:
            found.append((entry.name, entry.stat().st_mtime))
        except FileNotFoundError:
            continue
    return found


def collect(objects: ObjectStore, gc_plan: GcPlan) -> int:
    """Delete what ``plan`` found; return bytes freed. Call with the store's exclusive lock held."""
    freed = sum(objects.remove(digest) for digest in gc_plan.unreferenced)
    for name in gc_plan.stale_tmp:
        path = objects.tmp_dir / name
        if path.is_dir():  # scratch space of an interrupted record-manifest build
            freed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path)
        else:
            freed += path.stat().st_size
            path.unlink()
    return freed


def discard(db: Database, objects: ObjectStore, written: set[str]) -> int:
    """Remove the objects a refused command wrote (``written``) that no metadata refers to, so that a
    refusal leaves the store as it was; call it under the store's exclusive lock (no add in flight
    may be about to reference one). Returns the bytes freed."""
    if not written:
        return 0
    unreferenced = set(plan(db, objects).unreferenced)
    return sum(objects.remove(digest) for digest in sorted(written & unreferenced))
