"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlcustody import Workspace

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


# --- Workspaces -------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str | None:
    """Run a metadata test on the embedded SQLite store (None) and on a real PostgreSQL server."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return None


@pytest.fixture
def make_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Workspace]]:
    """Factory: a fresh initialised workspace in a new directory under tmp_path."""
    for key in ("CUSTODY_DB_URL", "CUSTODY_LINK_MODE", "CUSTODY_ACTOR", "CUSTODY_DIR"):
        monkeypatch.delenv(key, raising=False)
    opened: list[Workspace] = []

    def make(name: str = "ws", *, db_url: str | None = None, link_mode: str = "copy") -> Workspace:
        root = tmp_path / name
        root.mkdir()
        ws = Workspace.init(root, db_url=db_url, link_mode=link_mode)
        opened.append(ws)
        return ws

    yield make
    for ws in opened:
        ws.close()


@pytest.fixture
def workspace(make_workspace: Callable[..., Workspace], db_url: str | None) -> Workspace:
    """An initialised workspace on each metadata backend."""
    return make_workspace(db_url=db_url)


def write_tree(root: Path, files: dict[str, bytes | str]) -> Path:
    """Create files (relative path → content) under root; returns root."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root
