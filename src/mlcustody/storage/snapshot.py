"""Turning a file or directory of the workspace into digests — and, when adding, into objects.

A snapshot walks the path, takes one ``stat`` per file, asks the stat cache for digests it already
knows, and hashes (or hashes and stores) only the rest, many small files at once on a thread pool
(file I/O and BLAKE3 release the GIL) and large files one at a time with BLAKE3's own threads.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mlcustody._canonical import digest_bytes
from mlcustody._progress import NoProgress, Progress
from mlcustody.errors import PathError
from mlcustody.storage import dir_manifest as manifest
from mlcustody.storage.boundary import Boundary, refuse_special
from mlcustody.storage.dir_manifest import Entry
from mlcustody.storage.hashing import MMAP_THRESHOLD, hash_file
from mlcustody.storage.objects import ObjectStore
from mlcustody.storage.statcache import NoStatCache, StatCache, StatKey

IGNORED_NAMES = frozenset({".custody", ".git"})
# Measured on 2 cores: more threads than cores + 1 only add GIL contention for small files.
_WORKERS = (os.cpu_count() or 1) + 1
_BATCH = 256


@dataclass(frozen=True)
class Snapshot:
    """What a path holds: a single file, or a directory whose digest is its manifest's."""

    kind: str  # "file" | "dir"
    digest: str
    size: int
    entries: tuple[Entry, ...]

    @property
    def file_count(self) -> int:
        return len(self.entries)

    def manifest_bytes(self) -> bytes:
        return manifest.encode(self.entries)


@dataclass(frozen=True, slots=True)
class _Found:
    rel: str
    path: str
    st: os.stat_result


def scan(path: Path, boundary: Boundary | None = None) -> tuple[str, list[_Found]]:
    """Kind of ``path`` and its regular files (symlinks followed; .custody and .git skipped). With a
    ``boundary`` (``add``), links leaving it, link loops and special files are refused (``boundary``)."""
    if boundary is not None:
        boundary.check(os.fspath(path))
    try:
        st = os.stat(path)
    except FileNotFoundError as exc:
        raise PathError(f"{path} does not exist") from exc
    except OSError as exc:
        raise PathError(f"cannot read {path}: {exc.strerror}") from exc
    if os.path.isfile(path):
        return "file", [_Found(path.name, os.fspath(path), st)]
    if boundary is not None:
        refuse_special(os.fspath(path), st.st_mode)
    found: list[_Found] = []
    _walk(os.fspath(path), "", found, boundary, frozenset({(st.st_dev, st.st_ino)}))
    found.sort(key=lambda item: manifest.sort_key(item.rel))
    return "dir", found


def _walk(
    directory: str,
    prefix: str,
    found: list[_Found],
    boundary: Boundary | None = None,
    above: frozenset[tuple[int, int]] = frozenset(),
) -> None:
    try:
        entries = list(os.scandir(directory))
    except OSError as exc:
        raise PathError(f"cannot list {directory}: {exc.strerror}") from exc
    for entry in entries:
        if entry.name in IGNORED_NAMES:
            continue
        rel = prefix + entry.name
        try:
            rel.encode("utf-8")
            is_dir = entry.is_dir()
            st = entry.stat()
        except UnicodeEncodeError as exc:
            raise PathError(f"{entry.path!r} is not valid UTF-8", hint="rename the file") from exc
        except FileNotFoundError as exc:
            raise PathError(f"{entry.path} is a broken symbolic link", hint="remove or fix the link") from exc
        except OSError as exc:
            raise PathError(f"cannot read {entry.path}: {exc.strerror}") from exc
        if boundary is not None and entry.is_symlink():
            boundary.check(entry.path)
        if is_dir:
            here = (st.st_dev, st.st_ino)
            if here in above:
                raise PathError(f"{entry.path} links back to a directory that contains it", hint="remove the link")
            _walk(entry.path, rel + "/", found, boundary, above | {here})
        elif entry.is_file():
            found.append(_Found(rel, entry.path, st))
        elif boundary is not None:
            refuse_special(entry.path, st.st_mode)


def take(
    path: Path,
    *,
    objects: ObjectStore | None = None,
    cache: StatCache | NoStatCache | None = None,
    link_mode: str = "copy",
    progress: Progress | None = None,
    boundary: Boundary | None = None,
) -> Snapshot:
    """Digest ``path``; with ``objects``, also store every file (and the manifest) in the store."""
    progress = progress or NoProgress()
    kind, found = scan(path, boundary)
    progress.start(f"{'adding' if objects else 'checking'} {path.name}", sum(f.st.st_size for f in found))
    digests = _digest_all(found, objects, cache, link_mode, progress)
    progress.finish()
    entries = tuple(
        Entry(item.rel, item.st.st_size, manifest.normal_mode(item.st.st_mode), digest)
        for item, digest in zip(found, digests, strict=True)
    )
    size = sum(entry.size for entry in entries)
    if kind == "file":
        return Snapshot("file", entries[0].digest, size, entries)
    data = manifest.encode(entries)
    digest = objects.put_bytes(data) if objects is not None else digest_bytes(data)
    return Snapshot("dir", digest, size, entries)


def take_files(
    paths: list[Path], *, objects: ObjectStore, cache: StatCache | NoStatCache | None = None
) -> list[tuple[str, int] | None]:
    """Store many single files at once: (digest, size) of each, None for one that is gone or unreadable."""
    found: list[_Found] = []
    where: list[int | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            where.append(None)
            continue
        if not os.path.isfile(path):
            where.append(None)
            continue
        where.append(len(found))
        found.append(_Found(path.name, os.fspath(path), st))
    digests = _digest_all(found, objects, cache, "copy", NoProgress())
    return [None if i is None else (digests[i], found[i].st.st_size) for i in where]


def _digest_all(
    found: list[_Found],
    objects: ObjectStore | None,
    cache: StatCache | NoStatCache | None,
    link_mode: str,
    progress: Progress,
) -> list[str]:
    """Digest (and with ``objects`` store) each file, skipping what the stat cache already knows."""
    cache = cache if cache is not None else NoStatCache()
    keys = [StatKey.of(item.st) for item in found]
    known = cache.get_many(keys)
    started_ns = time.time_ns()

    def digest_one(index: int) -> str:
        item = found[index]
        digest = known[index]
        if objects is None:
            result = digest or hash_file(item.path)
        elif digest is not None and objects.exists(digest, item.st.st_size):
            result = digest
        else:
            result, _ = objects.put_file(Path(item.path), link_mode)
        progress.advance(item.st.st_size)
        return result

    digests = _run_all(digest_one, found)
    _remember(cache, found, keys, known, digests, started_ns)
    return digests


def _run_all(digest_one: Callable[[int], str], found: list[_Found]) -> list[str]:
    """Small files on a thread pool in batches; large ones in order, each using BLAKE3's threads."""
    digests = [""] * len(found)
    small = [i for i, item in enumerate(found) if item.st.st_size < MMAP_THRESHOLD]
    large = [i for i, item in enumerate(found) if item.st.st_size >= MMAP_THRESHOLD]

    def batch(indices: list[int]) -> None:
        for index in indices:
            digests[index] = digest_one(index)

    if len(small) > _BATCH:
        with ThreadPoolExecutor(_WORKERS) as pool:
            batches = [small[i : i + _BATCH] for i in range(0, len(small), _BATCH)]
            for _ in pool.map(batch, batches):
                pass
    else:
        batch(small)
    batch(large)
    return digests


def _remember(
    cache: StatCache | NoStatCache,
    found: list[_Found],
    keys: list[StatKey],
    known: list[str | None],
    digests: list[str],
    started_ns: int,
) -> None:
    """Cache newly hashed files whose stat is still what it was before they were read."""
    fresh = []
    for item, key, was_known, digest in zip(found, keys, known, digests, strict=True):
        if was_known is None:
            try:
                now = StatKey.of(os.stat(item.path))
            except OSError:
                continue
            if now == key:
                fresh.append((key, digest))
    cache.put_many(fresh, started_ns)
