"""The decision log cannot be cut back, and its key rows cannot change, without ``verify`` naming it."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from conftest import Cli
from mlcustody import Workspace
from mlcustody.workspace import decisions as decision_cases

_ROLLBACK = (
    "DELETE FROM decision_segments WHERE first >= 8",
    "DELETE FROM decisions WHERE position >= 8",
    "DELETE FROM decision_postings WHERE position >= 8",
    "DELETE FROM decision_postings_new WHERE position >= 8",
    "DELETE FROM decision_tiles",
    "DELETE FROM checkpoints WHERE size > 8",
)


def _sql(ws: Workspace, *statements: str, **params: object) -> None:
    with ws.db.engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement), params)


def _found(problems: list[object]) -> set[tuple[str, str]]:
    return {(p.kind, p.where) for p in problems}  # type: ignore[attr-defined]


def _ten(ws: Workspace) -> None:
    """Ten decisions in segments of four, a checkpoint after each segment and one at close (4, 8, 10)."""
    with ws.decision_log("credit@1", flush_every=4, checkpoint_every=4) as log:
        for i in range(10):
            log.record(f"d{i}", {"x": i}, i, subject="alice" if i % 2 else "bob")


def test_rollback_of_the_sealed_tail_is_named(model_ws: Workspace) -> None:
    _ten(model_ws)
    assert model_ws.verify_decisions().problems == [] and model_ws.verify().problems == []
    with model_ws.db.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM audit_events WHERE action = 'decision.checkpoint'")).scalar()
    # the sealed tail cut off with its checkpoint: the rest of the log is consistent in itself
    _sql(model_ws, *_ROLLBACK)
    expected = {
        ("checkpoint_deleted", "checkpoints[10]"),
        ("decision_log_truncated", "decisions[8:10]"),
        ("decision_log_truncated", "decision-head"),
    }
    assert _found(model_ws.verify_decisions().problems) == expected
    assert _found(model_ws.verify().problems) == expected
    # the head file alone still tells, when the audit chain's record of checkpoints is gone too
    _sql(model_ws, "DELETE FROM audit_events WHERE action = 'decision.checkpoint' AND payload LIKE :p", p='%"size":10%')
    assert ("decision_log_truncated", "decision-head") in _found(model_ws.verify_decisions().problems)
    assert {"chain_gap", "chain_truncated"} & {p.kind for p in model_ws.verify().problems}


def test_a_checkpoint_row_altered_or_added_is_named(model_ws: Workspace) -> None:
    _ten(model_ws)
    _sql(model_ws, "UPDATE checkpoints SET root = :root WHERE size = 4", root="00" * 32)
    found = _found(model_ws.verify().problems)  # plain verify: signatures and roots of every checkpoint
    assert ("checkpoint_modified", "checkpoints[4]") in found
    _sql(model_ws, "DELETE FROM checkpoints WHERE size = 4")
    assert ("checkpoint_deleted", "checkpoints[4]") in _found(model_ws.verify().problems)


def test_plain_verify_names_an_unsealed_tail_and_a_writer_seals_it(model_ws: Workspace) -> None:
    log = model_ws.decision_log("credit@1", flush_every=1, checkpoint_every=10**6, checkpoint_seconds=1e9)
    log.record("d0", {"x": 0}, 0)  # flushed, never checkpointed: as a writer killed before close leaves it
    assert [p.kind for p in model_ws.verify().problems] == ["unsealed_tail"]
    assert model_ws.seal_decisions() == 1
    assert model_ws.verify().problems == [] and model_ws.seal_decisions() is None
    log.record("d1", {"x": 1}, 1)
    assert [p.kind for p in model_ws.verify().problems] == ["unsealed_tail"]
    model_ws.decision_log("credit@1").close()  # the next writer to open seals what it finds unsealed
    assert model_ws.verify().problems == [] and model_ws.verify_decisions().problems == []


def _subject_row(ws: Workspace, name: str = "alice") -> int:
    from mlcustody.ledger.decisions import subjects as decision_subjects

    with ws.db.read() as conn:
        found = decision_subjects.row_of(conn, name, decision_cases.decision_keys(ws, conn))
    assert found is not None
    return found


def test_key_rows_are_covered_by_the_audit_chain(model_ws: Workspace) -> None:
    _ten(model_ws)
    alice = _subject_row(model_ws)
    with model_ws.db.read() as conn:
        key = conn.execute(sa.text("SELECT key FROM decision_subjects WHERE id = :id"), {"id": alice}).scalar()
        hmac = conn.execute(sa.text("SELECT value FROM store_info WHERE key = 'decision_subject_key'")).scalar()
    where = f"decision_subjects[{alice}]"
    # a shred without its audit event
    _sql(model_ws, "UPDATE decision_subjects SET key = NULL WHERE id = :id", id=alice)
    assert ("shred_unaudited", where) in _found(model_ws.verify().problems)
    assert ("shred_unaudited", where) in _found(model_ws.verify_decisions().problems)
    # another data key put in its place
    _sql(model_ws, "UPDATE decision_subjects SET key = :key WHERE id = :id", key=b"k" * 32, id=alice)
    assert "row_modified" in {kind for kind, at in _found(model_ws.verify().problems) if at.startswith("decision_s")}
    _sql(model_ws, "UPDATE decision_subjects SET key = :key WHERE id = :id", key=key, id=alice)
    assert model_ws.verify().problems == []
    # the subject-HMAC key replaced: every pseudonym from now on would differ
    _sql(model_ws, "UPDATE store_info SET value = :v WHERE key = 'decision_subject_key'", v="ab" * 32)
    assert ("row_modified", "store_info[decision_subject_key]") in _found(model_ws.verify().problems)
    _sql(model_ws, "UPDATE store_info SET value = :v WHERE key = 'decision_subject_key'", v=hmac)
    # a subject row slipped in, one deleted
    _sql(model_ws, "INSERT INTO decision_subjects (subject, key, created_at) VALUES ('ff', :k, 'x')", k=b"k" * 32)
    assert "row_unrecorded" in {p.kind for p in model_ws.verify().problems}
    _sql(model_ws, "DELETE FROM decision_subjects WHERE subject = 'ff'")
    assert model_ws.verify().problems == []
    # a real shred is an audited event: everything still verifies, a key put back is named
    assert model_ws.forget_subject("alice") == 5
    assert model_ws.verify().problems == [] and model_ws.verify_decisions().problems == []
    assert model_ws.log(limit=1)[0].action == "decision.shred"
    _sql(model_ws, "UPDATE decision_subjects SET key = :key, shredded_at = NULL WHERE id = :id", key=key, id=alice)
    assert ("shred_undone", where) in _found(model_ws.verify().problems)


def test_cli_rollback_with_sqlite3_is_named_by_plain_verify(registered_cli: tuple[Cli, str]) -> None:
    cli, _ = registered_cli
    with Workspace.open(cli.cwd) as ws:
        _ten(ws)
    assert cli.json("verify")["ok"] is True
    with sqlite3.connect(cli.cwd / ".custody" / "metadata.db") as conn:
        for statement in _ROLLBACK:
            conn.execute(statement)
    doc = cli.json("verify", code=1)
    assert {(p["kind"], p["where"]) for p in doc["problems"]} >= {("decision_log_truncated", "decisions[8:10]")}
    out, _ = cli("verify", code=1)
    assert "decision_log_truncated" in out and "decision-head" in out


@pytest.mark.parametrize("name", ["decision-head"])
def test_a_corrupt_head_file_is_named(model_ws: Workspace, name: str) -> None:
    _ten(model_ws)
    (model_ws.config.store_dir / name).write_text("not json", encoding="utf-8")
    assert ("decision_head_corrupt", name) in _found(model_ws.verify().problems)


def test_cli_decisions_seal(registered_cli: tuple[Cli, str]) -> None:
    cli, _ = registered_cli
    assert cli.json("decisions", "seal") == {"schema": "mlcustody.decisions_seal/v1", "sealed": False, "size": None}
    with Workspace.open(cli.cwd) as ws:
        log = ws.decision_log("credit@1", flush_every=1, checkpoint_every=10**6, checkpoint_seconds=1e9)
        log.record("d0", {"x": 0}, 0)
        log.record("d1", {"x": 1}, 1)
    assert [p["kind"] for p in cli.json("verify", "--decisions", code=1)["problems"]] == ["unsealed_tail"]
    assert cli.json("decisions", "seal")["size"] == 2
    out, _ = cli("decisions", "seal")
    assert "nothing to do" in out
    assert cli.json("verify")["ok"] is True and cli.json("verify", "--decisions")["ok"] is True
