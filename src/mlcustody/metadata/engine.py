"""URL → engine, with the same code for the embedded SQLite store and a shared PostgreSQL server.

SQLite runs in WAL mode with a 30 s busy timeout and full fsync on commit; write transactions start
with ``BEGIN IMMEDIATE`` so two processes queue for the write lock instead of failing halfway
through (a deferred transaction that later upgrades to a writer gets SQLITE_BUSY with no retry).
On PostgreSQL a write transaction starts by taking a transaction-scoped advisory lock, so writers
queue exactly as on SQLite: a version number or audit sequence read inside the transaction cannot be
taken by another writer before it commits. Readers are never blocked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from mlcustody.errors import ConfigError, DiskFull, SchemaError, StoreBusy, StoreReadOnly
from mlcustody.metadata import schema

_WRITE = "custody_write"
# Key of the advisory lock that serialises writers on PostgreSQL ("custody" in ASCII).
_WRITER_LOCK = 0x637573746F6479


def make_engine(url: str) -> Engine:
    """An engine for ``url``; a malformed URL or missing driver is a usage error, not a crash."""
    try:
        parsed = sa.make_url(url)
        if parsed.get_backend_name() == "sqlite":
            engine = sa.create_engine(parsed, connect_args={"timeout": 30}, poolclass=sa.pool.NullPool)
            _tune_sqlite(engine)
            return engine
        if parsed.get_backend_name() != "postgresql":
            raise ConfigError(f"database {parsed.get_backend_name()!r} is not supported; use sqlite or postgresql")
        return sa.create_engine(parsed, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigError(
            f"cannot use database URL {url!r}: {exc}",
            hint="use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB (pip install 'mlcustody[postgres]')",
        ) from exc


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below issue BEGIN itself
        cursor = dbapi_connection.cursor()
        # a 64 MiB page cache (taken only as pages are read): the decision log's id and subject indexes
        # grow to hundreds of MB and are written at random places, which the 2 MiB default turns into I/O
        pragmas = ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=30000", "foreign_keys=ON", "cache_size=-65536")
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


class Database:
    """The metadata database of one store: read and write transactions, schema revision checks."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One atomic transaction: everything in it, audit events included, commits or none does."""
        with self._connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                if not self.is_sqlite:
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _WRITER_LOCK})
                yield conn

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            conn = self.engine.connect()
        except OperationalError as exc:
            raise _operational(exc, self.url) from exc
        try:
            yield conn
        except OperationalError as exc:
            raise _operational(exc, self.url) from exc
        finally:
            conn.close()

    def revision(self) -> str | None:
        """The Alembic revision the database is at, or None when it has no mlcustody schema."""
        with self.read() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()

    def check_revision(self) -> None:
        found = self.revision()
        if found != schema.REVISION:
            raise SchemaError(
                f"the metadata database is at schema revision {found or 'none'}, this release needs {schema.REVISION}"
            )

    def close(self) -> None:
        self.engine.dispose()


def _operational(exc: OperationalError, url: str) -> Exception:
    text = str(exc.orig)
    shown = sa.make_url(url).render_as_string(hide_password=True)
    if "locked" in text or "busy" in text:
        return StoreBusy(f"the metadata database is busy: {text}")
    if "readonly" in text or "read-only" in text:
        where = sa.make_url(url).database or shown
        return StoreReadOnly(
            f"the metadata database {where} is read-only ({text}): nothing was written",
            hint=f"make {where} and its directory writable by this user (SQLite writes a journal beside it), "
            "or work on a writable copy",
        )
    if "disk is full" in text or "No space left" in text or "could not extend file" in text:
        return DiskFull(f"no space left for the metadata database {shown} ({text}): the transaction was rolled back")
    if sa.make_url(url).get_backend_name() == "sqlite":
        return ConfigError(
            f"cannot open the metadata database {shown}: {text}",
            hint="check that the file exists and is a readable SQLite database, and the URL in CUSTODY_DB_URL "
            "or config.toml",
        )
    return ConfigError(
        f"cannot open the metadata database {shown}: {text}",
        hint="check that the database server is running and the URL in CUSTODY_DB_URL or config.toml is right",
    )
