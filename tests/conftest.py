"""Shared pytest fixtures."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from _postgres import postgres_session, temporary_database
from mlcustody import Workspace
from mlcustody.interfaces import shapes
from mlcustody.interfaces.cli.app import run


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


# The two metadata backends every store-level test runs on (ids ``sqlite`` and ``postgres``).
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
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


# --- The CLI, in-process ---------------------------------------------------------------


class Cli:
    """Runs `custody` in-process in a directory and captures what it prints."""

    def __init__(self, cwd: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.cwd, self.capsys, self.monkeypatch = cwd, capsys, monkeypatch

    def __call__(self, *args: str, code: int = 0) -> tuple[str, str]:
        self.monkeypatch.chdir(self.cwd)
        self.capsys.readouterr()
        status = run(list(args))
        out, err = self.capsys.readouterr()
        assert status == code, f"custody {' '.join(args)} exited {status}, expected {code}\n{out}\n{err}"
        return out, err

    def json(self, *args: str, code: int = 0) -> dict[str, Any]:
        out, _ = self(*args, "--json", code=code)
        doc = json.loads(out)  # exactly one document
        kind = doc["schema"].removeprefix("mlcustody.").removesuffix("/v1")
        assert set(doc) == {"schema", *shapes.FIELDS[kind]}, f"{kind} output differs from docs/cli.md"
        return doc


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    for key in ("CUSTODY_DB_URL", "CUSTODY_LINK_MODE", "CUSTODY_ACTOR", "CUSTODY_DIR"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "ws").mkdir()
    return Cli(tmp_path / "ws", capsys, monkeypatch)


@pytest.fixture(autouse=True)
def _private_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Key files made on first use (the decision log's key-encryption key) go under the test's own
    directory, never the user's ~/.config."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    monkeypatch.delenv("CUSTODY_KEK", raising=False)
    monkeypatch.delenv("CUSTODY_KEK_FILE", raising=False)


@pytest.fixture
def model_ws(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A workspace (SQLite and PostgreSQL) with ``credit@1`` registered."""
    from _models import PASSPHRASE, train_model

    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", PASSPHRASE)
    workspace.generate_key("registry")
    workspace.register_model("credit", run=train_model(workspace.root))
    return workspace


@pytest.fixture
def registered_cli(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> tuple[Cli, str]:
    """A CLI workspace with ``credit@1`` registered by ``--run``; the training run's id."""
    from _models import PASSPHRASE, train_model

    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", PASSPHRASE)
    cli("init")
    cli("keys", "generate", "--name", "registry")
    run_id = train_model(cli.cwd)
    doc = cli.json("model", "register", "credit", "--run", run_id)
    assert doc["model"]["ref"] == "credit@1" and doc["model"]["run_id"] == run_id
    return cli, run_id


# --- A registered model for the BOM exports (CycloneDX, SPDX) -------------------------
BOM_PASSPHRASE = "correct horse battery staple"


def _train_for_boms(root: Path) -> str:
    from sklearn.linear_model import LogisticRegression

    rows = "\n".join(f"{i},{i % 7},{int(i % 7 > 3)}" for i in range(40))
    write_tree(root, {"data/train.csv": "id,x,y\n" + rows + "\n", "conf/train.json": '{"C": 0.5}'})
    ws = Workspace.open(root)
    try:
        ws.add([root / "data/train.csv"], type="dataset")
        ws.add([root / "conf/train.json"], type="config")
        tags = {
            "modelcard.task": "classification",
            "modelcard.approach": "supervised",
            "modelcard.considerations.useCases": "credit pre-screening",
        }
        with ws.start_run("train", params={"C": 0.5, "solver": "lbfgs"}, tags=tags) as run:
            run.use("data/train.csv")
            run.use("conf/train.json")
            run.log_metric("accuracy", 0.9, step=1)
            run.log_metric("accuracy", 0.95, step=2)
            run.log_metric("loss", 0.2)
            x = [[i % 7] for i in range(40)]
            y = [int(i % 7 > 3) for i in range(40)]
            run.save_model(LogisticRegression(C=0.5).fit(x, y), root / "model.skops")
        return run.id
    finally:
        ws.close()


@pytest.fixture
def bom_registered(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> tuple[Cli, str]:
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", BOM_PASSPHRASE)
    cli("init")
    cli("keys", "generate", "--name", "registry")
    run_id = _train_for_boms(cli.cwd)
    cli("model", "register", "credit", "--run", run_id)
    return cli, run_id
