"""The stat cache: (device, inode, size, mtime_ns) → digest, so unchanged files cost one ``stat``.

It lives in ``.custody/cache/stat.db`` (plain SQLite, local to this machine even when metadata is on
a server) and is only ever an optimisation: losing or deleting it makes the next command re-hash,
never answer wrongly. Two rules keep it honest:

* an entry is stored only when the file's stat did not change while it was being hashed;
* an entry is trusted only when the file's mtime is older than the moment it was hashed by more than
  the filesystem's timestamp granularity — otherwise a write in the same clock tick as the hash
  could leave size and mtime unchanged (git's "racy clean" problem).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

# Coarse filesystem clocks tick every few milliseconds; stay well clear of them.
RACY_NS = 50_000_000
_CHUNK = 900  # stays under SQLite's default limit of 999 bound parameters on old builds


class StatKey(NamedTuple):
    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> StatKey:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class StatCache:
    """Digests of files as of their last stat, keyed by inode."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._open(path)

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA synchronous=OFF")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS entries (ino INTEGER, dev INTEGER, size INTEGER, mtime_ns INTEGER,"
                " digest TEXT, hashed_ns INTEGER, PRIMARY KEY (ino, dev)) WITHOUT ROWID"
            )
        except sqlite3.DatabaseError:
            db.close()
            path.unlink(missing_ok=True)  # a cache may always be thrown away
            return StatCache._open(path)
        return db

    def get_many(self, keys: Sequence[StatKey]) -> list[str | None]:
        """The cached digest for each key, or None where the file must be hashed."""
        found: dict[tuple[int, int], tuple[int, int, str, int]] = {}
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            rows = self._db.execute(
                "SELECT ino, dev, size, mtime_ns, digest, hashed_ns FROM entries"
                f" WHERE ino IN ({','.join('?' * len(chunk))})",
                [key.ino for key in chunk],
            )
            for ino, dev, size, mtime_ns, digest, hashed_ns in rows:
                found[(dev, ino)] = (size, mtime_ns, digest, hashed_ns)
        result: list[str | None] = []
        for key in keys:
            hit = found.get((key.dev, key.ino))
            trusted = (
                hit is not None and hit[0] == key.size and hit[1] == key.mtime_ns and key.mtime_ns + RACY_NS < hit[3]
            )
            result.append(hit[2] if trusted and hit is not None else None)
        return result

    def put_many(self, items: Iterable[tuple[StatKey, str]], hashed_ns: int | None = None) -> None:
        """Remember digests of files whose stat was taken before they were hashed at ``hashed_ns``."""
        when = hashed_ns if hashed_ns is not None else time.time_ns()
        rows = [(k.ino, k.dev, k.size, k.mtime_ns, digest, when) for k, digest in items]
        if rows:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO entries VALUES (?,?,?,?,?,?)", rows)
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()


class NoStatCache:
    """The null twin: every file is hashed. Used where nothing may be taken on trust (verify)."""

    def get_many(self, keys: Sequence[StatKey]) -> list[str | None]:
        return [None] * len(keys)

    def put_many(self, items: Iterable[tuple[StatKey, str]], hashed_ns: int | None = None) -> None:
        return None

    def close(self) -> None:
        return None
