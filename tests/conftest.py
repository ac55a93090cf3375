"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

try:  # tests/ is a plain directory: pytest put it on sys.path
    from _postgres import postgres_session, temporary_database
except ModuleNotFoundError:  # tests/ is a package
    from tests._postgres import postgres_session, temporary_database


# --- PostgreSQL (mark tests that use these with @pytest.mark.postgres) -------------
@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Base SQLAlchemy URL of a throwaway PostgreSQL server started for this session."""
    with postgres_session() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty database on that server, dropped after the test."""
    with temporary_database(postgres_server) as url:
        yield url
