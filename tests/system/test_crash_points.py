"""Crash safety of the writes of ingest besides ``add`` — decision import, model registration, run
seal, crypto-shredding, KEK rotation — on SQLite and on a real PostgreSQL server.

Each write is killed with SIGKILL at chosen points: inside its write transaction (nothing may be
left of it), after its commit but before the witness files or the next step (all of it must be
there), and in between for the steps that commit more than once (a decision import commits its
decisions, then a checkpoint that seals them; a key-encryption-key rotation makes the new KEK
before it re-wraps). The process kills itself there (``Forkserver.run(kill_at=...)``), which is what
an external ``kill -9`` at that instant does: no ``finally``, no ``atexit``, the database connection
dropped mid-transaction. After every kill:

* no process the killed command forked outlives it (the decision log's sealing workers once did,
  holding its database connection: on PostgreSQL its transaction then kept the writers' lock);
* ``custody verify`` finds the store consistent (after a decision import killed before its
  checkpoint, it names exactly the ``unsealed_tail``, until the next writer seals it);
* the killed operation happened wholly or not at all (what it writes is all there or none of it);
* running it again (``--resume`` for an import) completes it, and the store verifies;
* tampering with what it wrote is still named by ``verify``.

``test_crash_safety`` kills ``custody add`` (at chosen points on both backends, at random moments on
SQLite); ``test_run_command`` kills ``custody run`` at random moments on both.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from _cli import Forkserver, Run, clean_env
from _models import PASSPHRASE, train_model
from conftest import BACKENDS
from mlcustody.ledger import kek
from mlcustody.ledger.decisions import seal as decision_seal
from mlcustody.ledger.decisions import store as decision_store
from mlcustody.ledger.decisions import subjects as decision_subjects
from mlcustody.ledger.keys import PASSPHRASE_ENV
from mlcustody.metadata.schema import checkpoints, decision_segments, model_versions, run_ends
from mlcustody.metadata.schema import decision_subjects as subject_rows
from mlcustody.workspace.facade import Workspace

TWO_SEGMENTS = decision_store.SEGMENT_ROWS + 4  # decisions that fill two segments of the log
MODEL = "credit@1"
# What the commands here import (not polars: it warns when a process that imported it forks).
PRELOAD = ("mlcustody.workspace.facade", "mlcustody.ledger.decisions.log", "mlcustody.metadata.verify")


@dataclass(frozen=True)
class Point:
    """Where the process dies: at the ``nth`` call of ``target`` (``module:function`` or
    ``module:Class.method``) whose audit action is ``action`` (any call if None), right after it
    returns or, with ``before``, right before it runs."""

    target: str
    action: str | None = None
    nth: int = 1
    before: bool = False


@dataclass(frozen=True)
class Kill:
    """A point and what a kill there must leave: the operation ``committed`` or not at all, and for
    a decision import whether its decisions are ``sealed`` by a checkpoint yet."""

    what: str
    point: Point
    committed: bool
    sealed: bool = True


def in_transaction(action: str) -> Kill:
    """Killed inside the write transaction, right after its audit event was appended."""
    return Kill(f"inside the {action} transaction", Point("mlcustody.metadata.audit:append", action), False)


def before_witness(action: str) -> Kill:
    """Killed after the commit, before the audit witness file is advanced."""
    point = Point("mlcustody.metadata.audit:advance_witness", action, before=True)
    return Kill(f"after the {action} commit, before the witness", point, True)


@dataclass
class Store:
    """A workspace on one backend with ``credit@1`` registered, and a fork server for its commands."""

    root: Path
    run_id: str
    cli: Forkserver

    @contextmanager
    def opened(self) -> Iterator[Workspace]:
        ws = Workspace.open(self.root)
        try:
            yield ws
        finally:
            ws.close()

    def json(self, *args: str) -> Any:
        return self.cli.ok_json(self.root, *args)

    def verify(self, when: str, *, allow: tuple[str, ...] = ()) -> dict[str, Any]:
        """``custody verify``, which must find nothing but the problem kinds in ``allow``."""
        report = self.cli.run(self.root, "verify", "--json")
        found = [p["kind"] for p in report.json["problems"]]
        assert found == list(allow) and report.returncode == (1 if allow else 0), f"verify {when}:\n{report}"
        return report.json  # type: ignore[no-any-return]

    def no_strays(self, when: str, wait: float = 5) -> None:
        """No process the killed command forked outlives it (for long): they would keep its database
        connection, and on PostgreSQL its transaction and the writers' lock, for ever."""
        deadline = time.monotonic() + wait
        while self.cli.strays() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.cli.strays() == [], f"processes of the killed command outlived it after {when}"

    def problems(self, when: str) -> list[str]:
        """The problem kinds ``custody verify`` names (it must name some: exit 1)."""
        report = self.cli.run(self.root, "verify", "--json")
        assert report.returncode == 1, f"verify did not see {when}:\n{report}"
        return [p["kind"] for p in report.json["problems"]]

    def crash(
        self, kill: Kill, args: tuple[str, ...], state: Callable[[], Any], again: tuple[str, ...] = ()
    ) -> tuple[Run, dict[str, Any]]:
        """Kill ``custody ARGS`` at ``kill``'s point; check that no process of it is left, the store,
        that ``state()`` changed exactly when the operation committed, and that the operation run
        again (``again``, default ARGS) succeeds. Returns the run again and ``verify``'s report after it."""
        before = state()
        killed = self.cli.run(self.root, *args, kill_at=asdict(kill.point))
        assert killed.returncode == -signal.SIGKILL, f"never got {kill.what}:\n{killed}"
        self.no_strays(f"a kill {kill.what}")
        unsealed = ("unsealed_tail",) if kill.committed and not kill.sealed else ()
        self.verify(f"after a kill {kill.what}", allow=unsealed)
        assert (state() != before) is kill.committed, f"killed {kill.what}: {before} → {state()}"
        rerun = self.cli.run(self.root, *(again or args), "--json")
        assert rerun.returncode == 0, f"the rerun after a kill {kill.what}:\n{rerun}"
        return rerun, self.verify(f"after the rerun ({kill.what})")

    @contextmanager
    def tampered(self, column: sa.Column[Any], where: sa.ColumnElement[bool], value: Any) -> Iterator[None]:
        """``column`` set to ``value`` in the row ``where`` selects, behind the store's back; put back after."""
        with self.opened() as ws:
            table = column.table
            with ws.db.engine.begin() as conn:
                original = conn.execute(sa.select(column).where(where)).scalar_one()
                conn.execute(sa.update(table).where(where).values({column.name: value}))
            try:
                yield
            finally:
                with ws.db.engine.begin() as conn:
                    conn.execute(sa.update(table).where(where).values({column.name: original}))


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    for key in list(os.environ):
        if key.startswith("CUSTODY_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    root = tmp_path / "ws"
    root.mkdir()
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    ws = Workspace.init(root, db_url=url)
    try:
        ws.generate_key("registry")
    finally:
        ws.close()
    run_id = train_model(root)
    with Forkserver({**clean_env(), PASSPHRASE_ENV: PASSPHRASE}, PRELOAD) as cli:
        found = Store(root, run_id, cli)
        found.json("model", "register", "credit", "--run", run_id)
        yield found


def prediction_log(path: Path, batch: str, rows: int) -> list[str]:
    """A JSON Lines prediction log of ``rows`` decisions with ids ``<batch>-<i>``; returns the ids."""
    ids = [f"{batch}-{i:05d}" for i in range(rows)]
    with open(path, "w", encoding="utf-8") as handle:
        for i, decision_id in enumerate(ids):
            line = {"decision_id": decision_id, "time": "2026-03-01T00:00:00Z", "income": i, "subject": f"s{i % 5}"}
            handle.write(json.dumps({**line, "output": i % 2}) + "\n")
    return ids


# --- decision import ------------------------------------------------------------------------------------

# Each kill with the size of the import it kills (two segments where the second one matters).
IMPORT_KILLS = [
    (in_transaction("decision.subject_key"), 100),  # the first writer makes the KEK file, then this key
    (Kill("writing its second segment", Point("mlcustody.ledger.decisions.store:append", nth=2), False), TWO_SEGMENTS),
    (
        Kill(
            "after its decisions commit, before their checkpoint",
            Point("mlcustody.ledger.decisions.log:DecisionLog._checkpoint_now", before=True),
            committed=True,
            sealed=False,
        ),
        TWO_SEGMENTS,
    ),
    (before_witness("decision.checkpoint"), 100),  # and before the decision-log head file
]


@pytest.mark.slow
def test_kill_during_decision_import(store: Store, tmp_path: Path) -> None:
    def size() -> int:
        with store.opened() as ws:
            return len(ws.list_decisions(limit=10 * TWO_SEGMENTS))

    logged = 0
    for n, (kill, rows) in enumerate(IMPORT_KILLS):
        path = tmp_path / f"batch-{n}.jsonl"
        ids = prediction_log(path, f"B{n}", rows)
        args = ("decisions", "import", str(path), "--model", MODEL)
        rerun, report = store.crash(kill, args, size, again=(*args, "--resume"))
        assert (rerun.json["count"], rerun.json["skipped"]) == ((0, rows) if kill.committed else (rows, 0)), kill.what
        logged += rows
        assert (report["checked"]["decisions"], size()) == (logged, logged)
        with store.opened() as ws:
            assert ws.decision_inputs(ids[-1]) == {"income": rows - 1}

        latest = checkpoints.c.size == logged
        with store.tampered(checkpoints.c.root, latest, "00" * 32):
            assert "checkpoint_modified" in store.problems(f"a checkpoint altered after a kill {kill.what}")

    assert store.json("verify", "--decisions")["checked"]["decisions"] == logged
    with store.opened() as ws, ws.db.engine.begin() as conn:  # cut the log back by its last segment
        last = conn.execute(sa.select(sa.func.max(decision_segments.c.first))).scalar_one()
        conn.execute(decision_segments.delete().where(decision_segments.c.first == last))
    assert "decision_log_truncated" in store.problems("a segment deleted")


@pytest.mark.slow
@pytest.mark.parametrize("store", [p for p in BACKENDS if p.id == "postgres"], indirect=True)
def test_kill_while_worker_processes_seal_a_large_import(store: Store, tmp_path: Path) -> None:
    # A batch this large is sealed by worker processes (decision_seal.POOL_FROM), which must die
    # with the killed writer (``Store.crash`` checks that none is left): else they keep its database
    # connection open, and on PostgreSQL its transaction holds the writers' lock, so the rerun
    # would wait for ever. (The workers are the same on SQLite, where they would only leak.)
    rows = decision_seal.POOL_FROM + 1000
    path = tmp_path / "large.jsonl"
    prediction_log(path, "L", rows)
    args = ("decisions", "import", str(path), "--model", MODEL)
    kill = Kill("storing its second segment", Point("mlcustody.ledger.decisions.store:append", nth=2), False)
    rerun, report = store.crash(kill, args, lambda: store.verify("")["checked"]["decisions"])
    assert rerun.json["count"] == rows == report["checked"]["decisions"]
    store.no_strays("the rerun")


# --- register, run seal, shred, KEK rotation ------------------------------------------------------------


@pytest.mark.slow
def test_kill_during_register_run_shred_and_kek_rotation(store: Store, tmp_path: Path) -> None:
    # The model registry: a version is registered with its attestation, or not at all.
    def versions() -> int:
        with store.opened() as ws:
            return len(ws.models())

    register = ("model", "register", "credit", "--run", store.run_id)
    for kill in (in_transaction("model.register"), before_witness("model.register")):
        store.crash(kill, register, versions)
    assert versions() == 4
    with store.tampered(model_versions.c.sha256, model_versions.c.version == 4, "0" * 64):
        assert store.problems("a registered model's digest altered") == ["row_modified"]

    # A run's seal: the run ends sealed, or stays unended until the next run reaps it as killed.
    def statuses() -> list[str]:
        with store.opened() as ws:
            return sorted(run.status for run in ws.runs())

    command = ("run", "--", sys.executable, "-c", "pass")
    for kill in (in_transaction("run.finished"), before_witness("run.finished")):
        store.crash(kill, command, lambda: statuses().count("finished"))
    assert statuses() == ["finished"] * 4 + ["killed"]  # the training run, 2 reruns, 1 killed after its commit
    with store.tampered(run_ends.c.exit_status, run_ends.c.status == "killed", 9):
        assert "run_seal_mismatch" in store.problems("a killed run's exit status altered")

    # Crypto-shredding: a subject's data key is destroyed (audited), or their inputs stay readable.
    ids = prediction_log(tmp_path / "few.jsonl", "F", 10)
    store.json("decisions", "import", str(tmp_path / "few.jsonl"), "--model", MODEL)

    def readable(decision_id: str) -> Callable[[], bool]:
        def inputs() -> bool:
            with store.opened() as ws:
                return ws.decision_inputs(decision_id) is not None

        return inputs

    for subject, kill in enumerate((in_transaction("decision.shred"), before_witness("decision.shred")), start=1):
        store.crash(kill, ("decisions", "forget", f"s{subject}"), readable(ids[subject]))
        assert not readable(ids[subject])()
    with store.opened() as ws, ws.db.read() as conn:
        kept = conn.execute(sa.select(sa.func.min(subject_rows.c.id)).where(subject_rows.c.key.is_not(None))).scalar()
    with store.tampered(subject_rows.c.key, subject_rows.c.id == kept, None):  # a shred without its audit event
        assert "shred_unaudited" in store.problems("a data key set to NULL")

    # Rotating the key-encryption key: every key re-wrapped under the new KEK, or none; the inputs
    # of a subject not shredded stay readable at every point.
    def kek_in_use() -> str | None:
        with store.opened() as ws, ws.db.read() as conn:
            return decision_subjects.store_value(conn, kek.KEK_ROW)

    rotations = [
        Kill(
            "after the new KEK is made, before the re-wrap",
            Point("mlcustody.ledger.kek_rotate:_rewrap", before=True),
            False,
        ),
        in_transaction("decision.kek_rotate"),
        Kill(
            "after the re-wrap commits, before the old KEK is retired",
            Point("mlcustody.ledger.kek:FileProvider.retire", before=True),
            True,
        ),
    ]
    for kill in rotations:
        store.crash(kill, ("keys", "rotate-kek"), kek_in_use)
        assert readable(ids[0])(), f"inputs unreadable after a kill {kill.what} and a rerun"
    assert store.json("verify", "--decisions")["checked"]["decisions"] == 10
