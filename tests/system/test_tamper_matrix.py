"""The tamper matrix: every stored table, object kind and witness file, with the verify finding that
names its tampering. A table added to the schema without a row here fails the test."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from _models import PASSPHRASE, train_model
from _record_pipeline import pipeline
from mlcustody import Workspace
from mlcustody.metadata import schema
from mlcustody.policy import terms
from mlcustody.workspace import policy_cases

Tamper = Callable[[sqlite3.Connection], None]


def _sql(statement: str) -> Tamper:
    def run(conn: sqlite3.Connection) -> None:
        assert conn.execute(statement).rowcount, statement  # the edit must hit a row

    return run


def _twice(first: str, second: str) -> Tamper:
    return lambda conn: (_sql(first)(conn), _sql(second)(conn))  # type: ignore[func-returns-value]


# table → (tampering with plain SQL, the finding kind that names it, the start of its `where`)
TABLES: dict[str, tuple[Tamper, str, str]] = {
    "store_info": (
        _sql("UPDATE store_info SET value = 'kek1:AAAA' WHERE key = 'decision_subject_key'"),
        "row_modified",
        "store_info[decision_subject_key]",
    ),
    "audit_head": (_sql("UPDATE audit_head SET seq = seq - 1"), "chain_truncated", "audit_head"),
    "audit_events": (
        _sql("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2"),
        "event_modified",
        "audit_events[2]",
    ),
    "artifact_versions": (
        _sql("UPDATE artifact_versions SET message = 'edited' WHERE name = 'raw/loans'"),
        "row_modified",
        "artifact_versions[raw/loans",
    ),
    "runs": (_sql("UPDATE runs SET command = '[]' WHERE name = 'clean'"), "row_modified", "runs["),
    "run_ends": (_sql("UPDATE run_ends SET exit_status = 7"), "row_modified", "run_ends["),
    "run_params": (_sql("UPDATE run_params SET value = '0.9' WHERE key = 'C'"), "run_seal_mismatch", "runs["),
    "run_tags": (
        _sql("INSERT INTO run_tags SELECT run_id, 'injected', 'yes' FROM run_ends LIMIT 1"),
        "run_seal_mismatch",
        "runs[",
    ),
    "run_metrics": (
        _sql(
            "INSERT INTO run_metrics (run_id, key, step, timestamp, value) "
            "SELECT run_id, 'm', 0, 0, 1 FROM run_ends LIMIT 1"
        ),
        "run_seal_mismatch",
        "runs[",
    ),
    "run_metric_latest": (
        _sql(
            "INSERT INTO run_metric_latest (run_id, key, value, step, timestamp, min, max, count) "
            "SELECT run_id, 'faked', 1, 0, 0, 1, 1, 1 FROM run_ends LIMIT 1"
        ),
        "metric_summary_mismatch",
        "run_metric_latest[",
    ),
    "run_io": (_sql("UPDATE run_io SET size = size + 1 WHERE role = 'input'"), "run_seal_mismatch", "runs["),
    "record_lineage": (_sql("UPDATE record_lineage SET relation = 'map'"), "run_seal_mismatch", "runs["),
    "column_lineage": (_sql("DELETE FROM column_lineage"), "run_seal_mismatch", "runs["),
    "signing_keys": (_sql("UPDATE signing_keys SET actor = 'mallory'"), "row_modified", "signing_keys["),
    "key_events": (
        _sql(
            "INSERT INTO key_events SELECT keyid, 'revoked', created_at, 'forged', 'mallory' FROM signing_keys LIMIT 1"
        ),
        "row_unrecorded",
        "key_events[",
    ),
    "source_terms": (_sql("UPDATE source_terms SET actor = 'mallory'"), "row_modified", "source_terms["),
    "expectation_results": (
        _sql("UPDATE expectation_results SET success = 1 - success"),
        "row_modified",
        "expectation_results[",
    ),
    "terms_overrides": (_sql("UPDATE terms_overrides SET reason = 'edited'"), "row_modified", "terms_overrides["),
    "model_versions": (_sql("UPDATE model_versions SET run_id = NULL"), "row_modified", "model_versions[credit"),
    "model_aliases": (
        _sql("INSERT INTO model_aliases VALUES ('credit', 'production', 9, 1, NULL, 'forged', 'mallory', 'x')"),
        "row_unrecorded",
        "model_aliases[credit",
    ),
    "decision_segments": (_sql("DELETE FROM decision_segments WHERE first = 4"), "decision_missing", "decisions[4]"),
    "decision_tiles": (
        _sql("INSERT INTO decision_tiles VALUES (99, '" + "00" * 32 + "')"),
        "tile_mismatch",
        "tiles[99]",
    ),
    "decisions": (_sql("UPDATE decisions SET decision_id = 'dX' WHERE position = 1"), "decision_index", "decisions[1]"),
    "decision_postings": (
        _sql("INSERT INTO decision_postings VALUES (99, 1, 0)"),
        "decision_postings",
        "decision_postings",
    ),
    "decision_postings_new": (
        _sql("INSERT INTO decision_postings_new VALUES (1, 0)"),
        "decision_postings",
        "decision_postings",
    ),
    "decision_subjects": (
        _sql("UPDATE decision_subjects SET key = NULL WHERE subject != '' AND key IS NOT NULL"),
        "shred_unaudited",
        "decision_subjects[",
    ),
    "checkpoints": (
        _sql("DELETE FROM checkpoints WHERE size = (SELECT max(size) FROM checkpoints)"),
        "checkpoint_deleted",
        "checkpoints[",
    ),
}


def _object_of(ws: Workspace, what: str) -> str:
    """The digest of one stored object of each kind."""
    with ws.db.read() as conn:
        if what == "file":
            return str(
                conn.execute(sa.text("SELECT digest FROM artifact_versions WHERE kind = 'file' LIMIT 1")).scalar()
            )
        if what == "record manifest":
            meta = conn.execute(sa.text("SELECT meta FROM artifact_versions WHERE meta LIKE '%manifest%'")).scalar()
            return str(json.loads(str(meta))["records"]["manifest"])
        if what == "run record":
            return str(conn.execute(sa.text("SELECT seal FROM run_ends LIMIT 1")).scalar())
        if what == "code record":
            return str(conn.execute(sa.text("SELECT code FROM runs LIMIT 1")).scalar())
        if what == "environment":
            return str(
                conn.execute(sa.text("SELECT environment FROM run_ends WHERE environment != '' LIMIT 1")).scalar()
            )
        if what == "attestation":
            return str(conn.execute(sa.text("SELECT attestation FROM model_versions LIMIT 1")).scalar())
        if what == "record lineage links":
            return str(conn.execute(sa.text("SELECT links FROM record_lineage LIMIT 1")).scalar())
    raise AssertionError(what)


OBJECTS = ("file", "record manifest", "run record", "code record", "environment", "attestation", "record lineage links")


@pytest.fixture
def full(make_workspace: Callable[..., Workspace], monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A SQLite workspace holding every kind of row and object."""
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", PASSPHRASE)
    ws = make_workspace()
    pipeline(ws)
    ws.generate_key("registry")
    ws.register_model("credit", run=train_model(ws.root))
    # terms, a signed expectation result and a terms override: the policy tables' rows
    policy_cases.set_terms(ws, "data/train@1", terms.Terms(license="CC-BY-NC-4.0", purposes=("credit-scoring",)))
    suite = ws.root / "suite.yaml"
    suite.write_text(json.dumps({"expectations": [{"expect_column_values_to_not_be_null": {"column": "id"}}]}))
    policy_cases.run_expectations(ws, "data/train@1", suite)
    ws.alias_model("credit", "production", 1, "first", override_terms=True)
    with ws.decision_log("credit@1", flush_every=4, checkpoint_every=4) as log:
        for i in range(10):
            log.record(f"d{i}", {"x": i}, i, subject="alice" if i % 2 else "bob")
    ws.forget_subject("bob")
    ws.rotate_key("registry")
    assert _findings(ws) == set()
    return ws


def _findings(ws: Workspace) -> set[tuple[str, str]]:
    found = ws.verify().problems + ws.verify_decisions().problems
    return {(p.kind, p.where) for p in found}


def _check(ws: Workspace, tamper: Callable[[], None], kind: str, where: str) -> str | None:
    store = ws.config.store_dir
    backup = store.parent / "store-backup"
    shutil.copytree(store, backup, symlinks=True)
    try:
        tamper()
        found = _findings(ws)
        if not any(k == kind and w.startswith(where) for k, w in found):
            return f"expected {kind} at {where}…, verify found {sorted(found)}"
        return None
    finally:
        ws.db.engine.dispose()
        shutil.rmtree(store)
        shutil.move(backup, store)


def test_every_table_object_and_witness_is_covered(full: Workspace) -> None:
    assert set(TABLES) == set(schema.metadata.tables), "add the new table to the tamper matrix"
    failures = []
    db = full.config.store_dir / "metadata.db"
    for table, (edit, kind, where) in TABLES.items():

        def in_sqlite(edit: Tamper = edit) -> None:
            with sqlite3.connect(db) as conn:
                edit(conn)

        if (problem := _check(full, in_sqlite, kind, where)) is not None:
            failures.append(f"table {table}: {problem}")
    for what in OBJECTS:
        digest = _object_of(full, what)
        path = full.objects.path(digest)

        def corrupt(path: Path = path) -> None:
            path.chmod(0o644)
            path.write_bytes(path.read_bytes() + b"x")

        if (problem := _check(full, corrupt, "object_corrupt", f"objects/{digest[:2]}/")) is not None:
            failures.append(f"object {what}: {problem}")
        if (problem := _check(full, path.unlink, "object_missing", "")) is not None:
            failures.append(f"object {what} deleted: {problem}")
    witnesses = {
        "audit-head": lambda: (full.config.store_dir / "audit-head").write_text(f"999999 {'0' * 64}\n"),
        "decision-head": lambda: (full.config.store_dir / "decision-head").write_text("{}"),
    }
    expected = {"audit-head": "chain_truncated", "decision-head": "decision_head_corrupt"}
    for name, tamper in witnesses.items():
        if (problem := _check(full, tamper, expected[name], name)) is not None:
            failures.append(f"file {name}: {problem}")
    assert not failures, "\n".join(failures)
