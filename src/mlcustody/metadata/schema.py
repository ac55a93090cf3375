"""Every table of the metadata database, in SQLAlchemy Core; Alembic migrations must match this file.

Times are stored as RFC 3339 UTC strings (``_canonical.utc_now``) so they sort, compare and hash the
same on SQLite and PostgreSQL. JSON columns hold RFC 8785 canonical text for the same reason.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# Alembic revision this release's code expects; tests check it is the single head.
REVISION = "0001"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

store_info = Table(
    "store_info",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("digest", String(64), nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time", String(32), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("payload", Text, nullable=False),
    Column("prev_digest", String(64), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
)

artifact_versions = Table(
    "artifact_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(300), nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String(20), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("path", Text, nullable=True),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("file_count", Integer, nullable=False),
    Column("meta", Text, nullable=False),
    Column("tags", Text, nullable=False),
    Column("author", String(200), nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
    UniqueConstraint("name", "version"),
    Index(None, "digest"),
)

# Tables whose every row is written through ``audit.record_row`` and re-checked by ``verify``,
# with the columns that identify a row (surrogate ids are not part of what is hashed).
AUDITED: dict[str, tuple[str, ...]] = {
    "artifact_versions": ("name", "version"),
}
SURROGATE_COLUMNS = frozenset({"id"})
