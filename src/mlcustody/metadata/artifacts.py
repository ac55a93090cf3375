"""Artifact versions: named, typed, numbered pointers to an object (file) or a manifest (directory)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from mlcustody._canonical import canonical_json, utc_now
from mlcustody.errors import UsageError
from mlcustody.metadata import audit
from mlcustody.metadata.artifact_names import validate_name, validate_type
from mlcustody.metadata.schema import artifact_versions as av


@dataclass(frozen=True)
class ArtifactVersion:
    name: str
    version: int
    type: str
    kind: str  # "file" | "dir"
    path: str | None
    digest: str
    size: int
    file_count: int
    meta: dict[str, Any]
    tags: list[str]
    author: str
    message: str
    created_at: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def records(self) -> dict[str, Any] | None:
        """The record manifest summary (digest, count, key, columns, stats) when one was built."""
        found = self.meta.get("records")
        return found if isinstance(found, dict) else None

    def objects(self) -> list[tuple[str, str]]:
        """(digest, role) of every object this version refers to directly: content, record manifest."""
        found = [(self.digest, "manifest" if self.kind == "dir" else "file object")]
        if self.records:
            found.append((self.records["manifest"], "record manifest"))
        return found

    @classmethod
    def from_row(cls, row: Row[Any]) -> ArtifactVersion:
        return cls.from_mapping(dict(row._mapping))

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> ArtifactVersion:
        return cls(
            name=m["name"],
            version=m["version"],
            type=m["type"],
            kind=m["kind"],
            path=m["path"],
            digest=m["digest"],
            size=m["size"],
            file_count=m["file_count"],
            meta=json.loads(m["meta"]),
            tags=json.loads(m["tags"]),
            author=m["author"],
            message=m["message"],
            created_at=m["created_at"],
        )


class Stored(Protocol):
    """What stored bytes are as a version (a ``storage.snapshot.Snapshot``, say)."""

    @property
    def kind(self) -> str: ...
    @property
    def digest(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def file_count(self) -> int: ...


def insert_stored(
    conn: Connection, stored: Stored, *, name: str, type: str | None, path: str | None, actor: str, **more: Any
) -> tuple[ArtifactVersion, audit.Event]:
    """``insert`` of stored bytes: kind, digest, size and file count from ``stored``; ``more``: message,
    meta, tags."""
    return insert(
        conn,
        name=name,
        type=type,
        kind=stored.kind,
        path=path,
        digest=stored.digest,
        size=stored.size,
        file_count=stored.file_count,
        actor=actor,
        **more,
    )


def insert(
    conn: Connection,
    *,
    name: str,
    type: str | None,
    kind: str,
    path: str | None,
    digest: str,
    size: int,
    file_count: int,
    actor: str,
    message: str = "",
    meta: dict[str, Any] | None = None,
    tags: list[str] | None = None,
) -> tuple[ArtifactVersion, audit.Event]:
    """Create the next version of ``name`` (its type is kept from earlier versions)."""
    previous = latest(conn, name)
    validate_type(type)
    if previous and type and type != previous.type:
        raise UsageError(
            f"{name} is a {previous.type}, not a {type}",
            hint="keep the type of earlier versions, or choose another --name",
        )
    number = previous.version + 1 if previous else 1
    row = {
        "name": validate_name(name),
        "version": number,
        "type": type or (previous.type if previous else "other"),
        "kind": kind,
        "path": path,
        "digest": digest,
        "size": size,
        "file_count": file_count,
        "meta": canonical_json(meta or {}).decode("utf-8"),
        "tags": canonical_json(sorted(set(tags or []))).decode("utf-8"),
        "author": actor,
        "message": message,
        "created_at": utc_now(),
    }
    event = audit.record_row(conn, av, row, actor=actor, action="artifact.add")
    version = get(conn, name, number)
    assert version is not None
    return version, event


@dataclass(frozen=True)
class NewVersion:
    """One version to record with ``insert_many``; ``type`` None keeps the name's type (else ``other``)."""

    name: str
    type: str | None
    kind: str
    path: str | None
    digest: str
    size: int
    file_count: int
    meta: dict[str, Any]


def insert_many(
    conn: Connection, wanted: Sequence[NewVersion], *, actor: str, message: str = ""
) -> tuple[list[ArtifactVersion], audit.Event | None]:
    """Record the next version of each name in ``wanted`` (in order; a name may repeat) with one
    query for the current versions, one insert and one audit event."""
    if not wanted:
        return [], None
    names = sorted({item.name for item in wanted})
    current: dict[str, tuple[int, str]] = {}
    for start in range(0, len(names), 500):
        newest = (
            sa.select(av.c.name, sa.func.max(av.c.version).label("v"))
            .where(av.c.name.in_(names[start : start + 500]))
            .group_by(av.c.name)
            .subquery()
        )
        query = sa.select(av.c.name, av.c.version, av.c.type).join(
            newest, sa.and_(av.c.name == newest.c.name, av.c.version == newest.c.v)
        )
        current |= {row.name: (row.version, row.type) for row in conn.execute(query)}
    rows = []
    created_at = utc_now()
    for item in wanted:
        validate_name(item.name)
        validate_type(item.type)
        number, kept = current.get(item.name, (0, None))
        kind = kept or item.type or "other"  # a name keeps its type: a captured file never retypes it
        current[item.name] = (number + 1, kind)
        rows.append(
            {
                "name": item.name,
                "version": number + 1,
                "type": kind,
                "kind": item.kind,
                "path": item.path,
                "digest": item.digest,
                "size": item.size,
                "file_count": item.file_count,
                "meta": canonical_json(item.meta).decode("utf-8"),
                "tags": "[]",
                "author": actor,
                "message": message,
                "created_at": created_at,
            }
        )
    event = audit.record_rows(conn, av, rows, actor=actor, action="artifact.add")
    return [ArtifactVersion.from_mapping(row) for row in rows], event


def get(conn: Connection, name: str, version: int) -> ArtifactVersion | None:
    row = conn.execute(sa.select(av).where(av.c.name == name, av.c.version == version)).first()
    return ArtifactVersion.from_row(row) if row else None


def latest(conn: Connection, name: str) -> ArtifactVersion | None:
    row = conn.execute(sa.select(av).where(av.c.name == name).order_by(av.c.version.desc()).limit(1)).first()
    return ArtifactVersion.from_row(row) if row else None


def latest_at_path(conn: Connection, path: str) -> ArtifactVersion | None:
    """The newest version added from workspace path ``path`` (whatever its name)."""
    found = at_path(conn, path, limit=1)
    return found[0] if found else None


def at_path(conn: Connection, path: str, *, limit: int | None = None) -> list[ArtifactVersion]:
    """Every version added from workspace path ``path``, newest first."""
    query = sa.select(av).where(av.c.path == path).order_by(av.c.created_at.desc(), av.c.id.desc()).limit(limit)
    return [ArtifactVersion.from_row(row) for row in conn.execute(query)]


def at_paths(conn: Connection, paths: Sequence[str]) -> dict[str, list[ArtifactVersion]]:
    """Every version added from each of ``paths``, newest first, in one query per 500 paths."""
    found: dict[str, list[ArtifactVersion]] = {}
    for start in range(0, len(paths), 500):
        query = sa.select(av).where(av.c.path.in_(paths[start : start + 500]))
        for row in conn.execute(query.order_by(av.c.created_at.desc(), av.c.id.desc())):
            version = ArtifactVersion.from_row(row)
            found.setdefault(version.path or "", []).append(version)
    return found


def history(conn: Connection, name: str) -> list[ArtifactVersion]:
    rows = conn.execute(sa.select(av).where(av.c.name == name).order_by(av.c.version))
    return [ArtifactVersion.from_row(row) for row in rows]


def by_digest_prefix(conn: Connection, prefix: str) -> list[ArtifactVersion]:
    rows = conn.execute(sa.select(av).where(av.c.digest.startswith(prefix)).order_by(av.c.name, av.c.version))
    return [ArtifactVersion.from_row(row) for row in rows]


def listing(conn: Connection, *, all_versions: bool = False, type: str | None = None) -> list[ArtifactVersion]:
    """Latest version of every name (or every version), ordered by name then version."""
    query = sa.select(av)
    if not all_versions:
        newest = sa.select(av.c.name, sa.func.max(av.c.version).label("v")).group_by(av.c.name).subquery()
        query = query.join(newest, sa.and_(av.c.name == newest.c.name, av.c.version == newest.c.v))
    if type:
        query = query.where(av.c.type == type)
    return [ArtifactVersion.from_row(row) for row in conn.execute(query.order_by(av.c.name, av.c.version))]


def names(conn: Connection) -> list[str]:
    return list(conn.execute(sa.select(av.c.name).distinct().order_by(av.c.name)).scalars())


def stored_digests(conn: Connection) -> set[tuple[str, str]]:
    """(digest, role) of every object a version refers to directly — what ``gc`` must keep."""
    return {item for version in listing(conn, all_versions=True) for item in version.objects()}
