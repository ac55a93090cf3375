"""The throwaway PostgreSQL server and per-test databases from conftest.py work."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.postgres

_seen_databases: list[str] = []


def _roundtrip(url: str) -> tuple[str, str, list[tuple[int, str]]]:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE item (id integer PRIMARY KEY, name text NOT NULL)"))
            conn.execute(
                sa.text("INSERT INTO item (id, name) VALUES (:id, :name)"),
                [{"id": 1, "name": "alpha"}, {"id": 2, "name": "beta"}],
            )
        with engine.connect() as conn:
            database = conn.execute(sa.text("SELECT current_database()")).scalar_one()
            version = conn.execute(sa.text("SHOW server_version")).scalar_one()
            rows = [tuple(r) for r in conn.execute(sa.text("SELECT id, name FROM item ORDER BY id"))]
    finally:
        engine.dispose()
    return database, version, rows


def test_server_url_points_at_postgres_database(postgres_server: str) -> None:
    assert postgres_server.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    assert postgres_server.endswith("/postgres")


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_a_fresh_empty_database(postgres_url: str, run: int) -> None:
    # The table is created without IF NOT EXISTS: this fails if the database is reused.
    database, version, rows = _roundtrip(postgres_url)
    assert postgres_url.endswith(f"/{database}")
    assert int(version.split(".")[0]) >= 15
    assert rows == [(1, "alpha"), (2, "beta")]
    assert database not in _seen_databases
    _seen_databases.append(database)


def test_databases_of_earlier_tests_were_dropped(postgres_server: str, postgres_url: str) -> None:
    engine = sa.create_engine(postgres_server)
    try:
        with engine.connect() as conn:
            names = set(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())
    finally:
        engine.dispose()
    assert postgres_url.rsplit("/", 1)[1] in names
    assert not names & set(_seen_databases)
