"""The decision log: import, trace, receipts, verification against tampering, crypto-shredding."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from _models import PASSPHRASE
from conftest import Cli
from mlcustody import UsageError, Workspace
from mlcustody._canonical import canonical_json, utc_now
from mlcustody.errors import UnknownRef
from mlcustody.ledger import tlog
from mlcustody.ledger.decisions import batch as decision_batch
from mlcustody.ledger.decisions import log as decisions
from mlcustody.ledger.decisions import queries as decision_queries
from mlcustody.ledger.decisions import store as decision_store
from mlcustody.metadata.schema import decision_postings, decision_postings_new, decision_segments, decision_subjects
from mlcustody.metadata.schema import decisions as decision_rows


def _tamper(ws: Workspace, statement: sa.Executable) -> None:
    with ws.db.engine.begin() as conn:
        conn.execute(statement)


def _kinds(ws: Workspace) -> list[tuple[str, str]]:
    return [(p.kind, p.where) for p in ws.verify_decisions().problems]


@given(
    st.text(min_size=1, max_size=30),
    st.text(min_size=1, max_size=30),
    st.integers(0, 2**31),
    st.one_of(st.none(), st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)),
)
def test_entry_bytes_are_rfc8785(decision_id: str, model: str, version: int, subject: str | None) -> None:
    digest = "ab" * 32
    when = "2026-01-02T03:04:05.000006Z"
    fast = decision_store.entry_bytes(decision_id, when, model, version, digest, digest, subject, subject)
    expected = {
        "id": decision_id,
        "time": when,
        "model": model,
        "version": version,
        "input_digest": digest,
        "output_digest": digest,
        "payload_digest": subject,
        "subject": subject,
    }
    assert fast == canonical_json(expected)


@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=20),
            st.text(min_size=1, max_size=12),
            st.integers(0, 2**31 - 1),
            st.one_of(st.none(), st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)),
        ),
        min_size=1,
        max_size=8,
    )
)
@settings(deadline=None)  # the first example imports pyarrow.compute
def test_segment_entries_equal_entry_bytes(rows: list[tuple[str, str, int, str | None]]) -> None:
    """The column-wise entries of a segment are the single-decision entries, byte for byte."""
    when, digest = "2026-01-02T03:04:05.000006Z", "cd" * 32
    table = pa.table(
        {
            "decision_id": [r[0] for r in rows],
            "time": [when] * len(rows),
            "model": [r[1] for r in rows],
            "version": pa.array([r[2] for r in rows], pa.int32()),
            "input_digest": [digest] * len(rows),
            "payload_digest": pa.array([r[3] for r in rows], pa.string()),
            "subject": pa.array([r[3] for r in rows], pa.string()),
        }
    )
    found = decision_store.entries(table, [digest] * len(rows))
    assert found == [decision_store.entry_bytes(r[0], when, r[1], r[2], digest, digest, r[3], r[3]) for r in rows]


def test_record_flush_close_and_verify(model_ws: Workspace) -> None:
    with model_ws.decision_log("credit@1", flush_every=3) as log:
        for i in range(10):
            log.record(f"d{i}", {"x": i, "name": f"n{i}"}, {"score": i / 10}, subject=f"s{i % 3}")
        with pytest.raises(UsageError, match="already logged"):
            log.record("d9", {"x": 9}, 0)  # still buffered
    found = model_ws.list_decisions()
    assert [d.position for d in found] == list(range(10))
    assert found[3].output == {"score": 0.3} and found[3].ref == "credit@1"
    assert model_ws.verify_decisions().problems == []
    assert model_ws.decision_inputs("d4") == {"x": 4, "name": "n4"}
    assert [d.decision_id for d in model_ws.list_decisions(subject="s1")] == ["d1", "d4", "d7"]
    # the same inputs give the same digest, however they were batched
    again = decision_batch.inputs_of(pa.table({"x": [4], "name": ["n4"]}), keep=False)[0][0]
    assert found[4].input_digest == again
    with model_ws.decision_log("credit@1") as log, pytest.raises(UsageError, match="already in the log"):
        log.record("d2", {"x": 2}, 0)
        log.flush()
    assert len(model_ws.list_decisions()) == 10


def test_unregistered_model_is_refused(model_ws: Workspace) -> None:
    with pytest.raises(UnknownRef):
        model_ws.decision_log("nope@1")
    with pytest.raises(UnknownRef):
        model_ws.decision_log("credit:production")


def test_wrap_logs_every_row(model_ws: Workspace) -> None:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0], [1], [2], [3]], [0, 0, 1, 1])
    with model_ws.decision_log("credit@1") as log:
        predict = log.wrap(model.predict)
        assert list(predict([[0], [3]])) == [0, 1]
    found = model_ws.list_decisions()
    assert [d.output for d in found] == [0, 1] and len({d.decision_id for d in found}) == 2
    assert model_ws.decision_inputs(found[1].decision_id) == {"x0": 3}


def _edit_segment(ws: Workspace, position: int, edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
    """Rewrite the segment holding ``position``: ``edit`` gets and returns its rows as dicts."""
    query = sa.select(decision_segments).where(decision_segments.c.first <= position)
    with ws.db.engine.begin() as conn:
        row = conn.execute(query.order_by(decision_segments.c.first.desc()).limit(1)).one()
        rows = edit(decision_store.decode(bytes(row.data)).to_pylist())
        data = decision_store.encode(pa.Table.from_pylist(rows, schema=decision_store.SCHEMA))
        conn.execute(decision_segments.update().where(decision_segments.c.first == row.first).values(data=data))


def _set(position: int, **values: Any) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    return lambda rows: [{**r, **values} if r["position"] == position else r for r in rows]


def test_tampering_is_named_by_position(model_ws: Workspace) -> None:
    with model_ws.decision_log("credit@1", flush_every=4, checkpoint_every=4) as log:
        for i in range(10):
            log.record(f"d{i}", {"x": i}, i, subject="alice" if i % 2 else "bob")
    assert model_ws.verify_decisions().problems == []
    # an altered output
    _edit_segment(model_ws, 5, _set(5, output="99"))
    assert ("decision_modified", "decisions[5]") in _kinds(model_ws)
    _edit_segment(model_ws, 5, _set(5, output="5"))
    assert _kinds(model_ws) == []
    # an altered payload (the entry commits to the ciphertext)
    _edit_segment(model_ws, 6, _set(6, payload=b"x" * 40))
    assert ("decision_modified", "decisions[6]") in _kinds(model_ws)
    _edit_segment(model_ws, 6, _set(6, payload_digest="0" * 64))
    kinds = _kinds(model_ws)
    assert ("decision_modified", "decisions[6]") in kinds and ("checkpoint_mismatch", "checkpoints[8]") in kinds
    # a row deleted from its segment
    _edit_segment(model_ws, 2, lambda rows: [r for r in rows if r["position"] != 2])
    assert ("decision_missing", "decisions[2]") in _kinds(model_ws)
    # an index row changed or deleted: a lookup by id would find the wrong decision
    _tamper(model_ws, decision_rows.update().where(decision_rows.c.position == 9).values(decision_id="dX"))
    assert ("decision_index", "decisions[9]") in _kinds(model_ws)
    _tamper(model_ws, decision_rows.delete().where(decision_rows.c.position == 8))
    assert ("decision_index", "decisions[8]") in _kinds(model_ws)
    # a whole segment deleted
    _tamper(model_ws, decision_segments.delete().where(decision_segments.c.first == 4))
    assert ("decision_missing", "decisions[4]") in _kinds(model_ws)


def test_reordered_rows_and_unsealed_tail(model_ws: Workspace) -> None:
    log = model_ws.decision_log("credit@1")
    for i in range(6):
        log.record(f"d{i}", {"x": i}, i)
    log.close()
    with model_ws.decision_log("credit@1", flush_every=1, checkpoint_seconds=1e9, checkpoint_every=10**6) as log2:
        log2.record("tail", {"x": 1}, 1)
        assert [p.kind for p in model_ws.verify_decisions().problems] == ["unsealed_tail"]
    assert model_ws.verify_decisions().problems == []
    # two rows moved within their segment, positions and all
    _edit_segment(model_ws, 1, lambda rows: [rows[0], rows[2], rows[1], *rows[3:]])
    assert ("decision_reordered", "decisions[1]") in _kinds(model_ws)
    # swap the contents of two rows, positions kept: every row still hashes to its entry hash, the
    # signed root and the index do not match
    _edit_segment(model_ws, 1, lambda rows: [rows[0], rows[2], rows[1], *rows[3:]])
    _edit_segment(
        model_ws, 1, lambda rows: [rows[0], {**rows[2], "position": 1}, {**rows[1], "position": 2}, *rows[3:]]
    )
    kinds = [p.kind for p in model_ws.verify_decisions().problems]
    assert "checkpoint_mismatch" in kinds and "decision_index" in kinds and "decision_modified" not in kinds


def test_crypto_shredding_keeps_the_log_verifiable(model_ws: Workspace) -> None:
    with model_ws.decision_log("credit@1") as log:
        for i in range(6):
            log.record(f"d{i}", {"income": 1000 + i}, i % 2, subject="alice" if i < 3 else "bob")
    assert model_ws.decision_inputs("d0") == {"income": 1000}
    assert model_ws.forget_subject("alice") == 3
    assert [model_ws.decision_inputs(f"d{i}") for i in range(6)] == [None] * 3 + [
        {"income": 1003 + i} for i in range(3)
    ]
    assert model_ws.verify_decisions().problems == []
    assert model_ws.verify().problems == []  # the audit chain holds the shredding event
    with model_ws.db.read() as conn:
        keys = conn.execute(sa.select(decision_subjects.c.key, decision_subjects.c.shredded_at)).all()
        assert sorted(key is None for key, _ in keys) == [False, True] and next(w for k, w in keys if k is None)
    assert model_ws.log(limit=1)[0].action == "decision.shred"


def test_alias_resolved_at_each_decision_time(model_ws: Workspace, tmp_path: Path) -> None:
    model_ws.register_model("credit", path=model_ws.root / "model.skops")  # credit@2: same bytes, no run
    model_ws.alias_model("credit", "production", 1, "first")
    time.sleep(0.01)
    middle = utc_now()
    time.sleep(0.01)
    model_ws.alias_model("credit", "production", 2, "better")
    after = utc_now()
    log_file = tmp_path / "log.jsonl"
    lines = [
        {"decision_id": "a", "time": middle, "x": 1, "output": 0},
        {"decision_id": "b", "time": after, "x": 2, "output": 1},
    ]
    log_file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = model_ws.import_decisions(log_file, "credit:production")
    assert report.count == 2 and report.versions == ["credit@1", "credit@2"]
    assert [d.ref for d in model_ws.list_decisions()] == ["credit@1", "credit@2"]
    assert model_ws.trace_decision("a").aliases == ["production"]  # what served it then, not now
    assert model_ws.trace_decision("b").aliases == ["production"]
    with model_ws.decision_log("credit:production") as log:  # live: the version it names now, or at `time`
        log.record("live", {"x": 3}, 1)
        log.record("late", {"x": 4}, 0, time=middle)
    assert [d.ref for d in model_ws.list_decisions()][2:] == ["credit@2", "credit@1"]
    early = tmp_path / "early.jsonl"
    early.write_text(json.dumps({"decision_id": "c", "time": "2000-01-01T00:00:00Z", "x": 1, "output": 0}) + "\n")
    with pytest.raises(UsageError, match=r"early.jsonl:1: credit:production pointed at no version"):
        model_ws.import_decisions(early, "credit:production")


# -- the CLI, on SQLite -----------------------------------------------------------------------------------


def _prediction_log(path: Path, count: int) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(count):
            line = {
                "decision_id": f"D-{i:05d}",
                "time": f"2026-03-{1 + i // 86400 % 28:02d}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
                "income": 1000 + i % 977,
                "age": 18 + i % 60,
                "subject": f"S-{i % 5000}",
                "output": {"approved": i % 3 != 0, "score": round((i % 100) / 100, 2)},
            }
            handle.write(json.dumps(line) + "\n")


def test_acceptance_import_trace_receipt_verify(registered_cli: tuple[Cli, str], tmp_path: Path) -> None:
    cli, run_id = registered_cli
    log_file = tmp_path / "predictions.jsonl"
    _prediction_log(log_file, 100_000)
    started = time.perf_counter()
    doc = cli.json("decisions", "import", str(log_file), "--model", "credit@1")
    elapsed = time.perf_counter() - started
    assert doc["count"] == 100_000 and doc["versions"] == ["credit@1"], elapsed
    print(f"imported 100,000 decisions in {elapsed:.2f} s ({100_000 / elapsed:,.0f}/s)")

    trace = cli.json("trace", "decision", "D-04217")
    assert trace["decision"]["decision_id"] == "D-04217" and trace["decision"]["position"] == 4217
    assert trace["model"]["ref"] == "credit@1" and trace["attestation"]["ok"] is True
    assert trace["run"]["id"] == run_id and trace["run"]["params"] == {"C": 0.5}
    [dataset] = trace["datasets"]
    shown = cli.json("show", "data/train@1")["artifact"]
    assert dataset["name"] == "data/train@1"
    assert dataset["annotations"]["recordManifest"]["blake3"] == shown["meta"]["records"]["manifest"]
    out, _ = cli("trace", "decision", "D-04217")
    assert "credit@1" in out and shown["meta"]["records"]["manifest"] in out

    receipt_file = tmp_path / "D-04217.tlog-proof"
    receipt = cli.json("decisions", "receipt", "D-04217", "--out", str(receipt_file))
    assert receipt_file.read_text() == receipt["proof"]
    tlog.verify_proof_text(receipt["proof"], receipt["entry"].encode(), receipt["vkey"])
    tlog.verify_proof_text(receipt["proof"], bytes.fromhex(receipt["leaf_hash"]), receipt["vkey"], prehashed=True)
    with pytest.raises(UsageError):
        tlog.verify_proof_text(receipt["proof"], receipt["entry"].replace("credit", "debit").encode(), receipt["vkey"])

    listed = cli.json("decisions", "ls", "--subject", "S-4217", "--model", "credit@1")["decisions"]
    assert [d["decision_id"] for d in listed] == [f"D-{i:05d}" for i in range(4217, 100_000, 5000)]
    assert cli.json("decisions", "ls", "--since", "2026-03-02T03:00:00Z", "--limit", "2")["decisions"][0]["time"] == (
        "2026-03-02T03:00:00.000000Z"
    )
    assert cli.json("verify", "--decisions")["ok"] is True
    assert cli.json("decisions", "forget", "S-4217")["payloads"] == 20  # crypto-shredded: the log still verifies
    assert cli.json("verify", "--decisions")["ok"] is True
    assert cli.json("verify")["ok"] is True

    # one line deleted from a stored log segment, with standard tools: verify names its position and exits 1
    with sqlite3.connect(cli.cwd / ".custody" / "metadata.db") as conn:
        _drop_from_segment(conn, 4217)
    doc = cli.json("verify", "--decisions", code=1)
    assert doc["problems"][0]["kind"] == "decision_missing" and doc["problems"][0]["where"] == "decisions[4217]"
    out, _ = cli("verify", "--decisions", code=1)
    assert "decisions[4217]" in out


def _drop_from_segment(conn: sqlite3.Connection, position: int) -> None:
    """Rewrite the Parquet segment holding ``position`` without that row (pyarrow, outside mlcustody)."""
    import pyarrow.parquet as pq

    first, data = conn.execute(
        "SELECT first, data FROM decision_segments WHERE first <= ? ORDER BY first DESC LIMIT 1", (position,)
    ).fetchone()
    table = pq.read_table(pa.BufferReader(data))
    kept = table.filter(pa.compute.not_equal(table.column("position"), position))
    sink = pa.BufferOutputStream()
    pq.write_table(kept, sink)
    conn.execute("UPDATE decision_segments SET data = ? WHERE first = ?", (sink.getvalue().to_pybytes(), first))


def test_cli_errors(registered_cli: tuple[Cli, str], tmp_path: Path) -> None:
    cli, _ = registered_cli
    _, err = cli("trace", "decision", "D-nope", code=2)
    assert "no decision with id 'D-nope'" in err and "custody decisions ls" in err
    doc = cli.json("decisions", "receipt", "D-nope", code=2)
    assert doc["error"]["code"] == "unknown_ref"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"decision_id": "a", "x": 1, "output": 0}\n{"decision_id": "b", "x": \n')
    _, err = cli("decisions", "import", str(bad), "--model", "credit@1", code=2)
    assert f"{bad}:2" in err
    assert cli.json("decisions", "ls")["decisions"] == []
    no_output = tmp_path / "no_output.jsonl"
    no_output.write_text('{"decision_id": "a", "x": 1}\n')
    _, err = cli("decisions", "import", str(no_output), "--model", "credit@1", code=2)
    assert "no output column 'output'" in err
    assert "decision-log" not in {key["name"] for key in cli.json("keys", "ls")["keys"]}  # refused: no key made
    good = tmp_path / "good.jsonl"
    good.write_text('{"decision_id": "a", "x": 1, "output": 0}\n')
    cli("decisions", "import", str(good), "--model", "credit@1")
    _, err = cli("decisions", "import", str(good), "--model", "credit@1", code=2)
    assert "decision a is already in the log" in err
    _, err = cli("decisions", "import", str(good), "--model", "other@1", code=2)
    assert "no registered model named 'other'" in err
    assert cli.json("decisions", "forget", "nobody")["payloads"] == 0
    csv_file = tmp_path / "log.csv"
    csv_file.write_text("id,x,prediction\nz1,1,0.5\nz2,2,0.25\n")
    cli("decisions", "import", str(csv_file), "--model", "credit", "--id-col", "id", "--output-col", "prediction")
    assert [d["output"] for d in cli.json("decisions", "ls", "--model", "credit")["decisions"]] == [0, 0.5, 0.25]
    assert cli.json("verify", "--decisions")["ok"] is True


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(1 - 2**53, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(_json)
def test_canonical_output_is_rfc8785(value: object) -> None:
    assert decisions.canonical_output(value) == canonical_json(value).decode("utf-8")


def test_module_level_decision_log(model_ws: Workspace) -> None:
    import mlcustody

    with mlcustody.decision_log("credit", workspace=model_ws, flush_every=1) as log:
        log.record("m1", {"x": 1}, True, context={"channel": "web"}, time="2026-01-01T00:00:00+01:00")
    [found] = model_ws.list_decisions(since="2025-12-31T23:00:00Z")
    assert found.time == "2025-12-31T23:00:00.000000Z" and found.output is True
    assert model_ws.decision_inputs("m1") == {"x": 1, "context.channel": "web"}
    assert model_ws.decision_receipt("m1").size == 1


def test_upgrade_moves_one_row_decisions_into_segments(tmp_path: Path) -> None:
    """A store whose log was written one row per decision (revision 0005) keeps it, in segments."""
    from mlcustody.ledger.decisions import check as decision_check
    from mlcustody.metadata import migrate
    from mlcustody.metadata.engine import Database

    db = Database(f"sqlite:///{tmp_path / 'metadata.db'}")
    migrate.upgrade(db, "0005")
    digest, subject = "ab" * 32, "cd" * 32
    rows = []
    for i in range(5):
        output = decisions.canonical_output({"score": i / 4})
        entry = decision_store.entry_bytes(
            f"d{i}", utc_now(), "credit", 1, digest, hashlib.sha256(output.encode()).hexdigest(), None, subject
        )
        rows.append(
            {
                "position": i,
                "decision_id": f"d{i}",
                "time": json.loads(entry)["time"],
                "model": "credit",
                "version": 1,
                "input_digest": digest,
                "output": output,
                "subject": subject,
                "payload": None,
                "payload_digest": None,
                "payload_key": None,
                "entry_hash": tlog.leaf_hash(entry).hex(),
            }
        )
    old = sa.table("decisions", *(sa.column(name) for name in rows[0]))
    with db.write() as conn:
        conn.execute(old.insert(), rows)
    migrate.upgrade(db)
    with db.read() as conn:
        assert [p.kind for p in decision_check.verify(conn).problems] == ["unsealed_tail"]  # never checkpointed
        assert decision_queries.get(conn, "d3").output == {"score": 0.75} and decision_queries.size(conn) == 5
        assert [d.decision_id for d in decision_queries.listing(conn)] == [f"d{i}" for i in range(5)]
        expected = tlog.Tree(bytes.fromhex(r["entry_hash"]) for r in rows)
        assert decision_store.tree(conn, 5).root() == expected.root()


def test_large_batch_sealed_by_workers(model_ws: Workspace) -> None:
    """A batch of several segments is sealed by worker processes and stored in order (SQLite and
    PostgreSQL); a duplicate id anywhere in it refuses all of it, and the writer goes on."""
    from mlcustody.ledger.decisions import seal as decision_seal

    rows = decision_seal.POOL_FROM + 123
    frame = pa.table(
        {
            "decision_id": [f"B-{i}" for i in range(rows)],
            "income": [float(i % 997) for i in range(rows)],
            "output": [i % 3 == 0 for i in range(rows)],
            "subject": [f"S-{i % 50}" for i in range(rows)],
        }
    )
    with model_ws.decision_log("credit@1") as log:
        log.record("first", {"income": 1.0}, True)
        log.flush()
        assert log.record_batch(frame, subject_col="subject") == rows
        again = frame.set_column(0, "decision_id", pa.array([f"C-{i}" for i in range(rows - 1)] + ["B-7"]))
        with pytest.raises(UsageError, match="decision B-7 is already in the log"):
            log.record_batch(again, subject_col="subject")
        log.record("last", {"income": 2.0}, False)
    assert model_ws.verify_decisions().problems == []
    with model_ws.db.read() as conn:
        assert decision_queries.size(conn) == rows + 2
        # the batch's first segment ends at a tile boundary; the others are whole tiles (their roots by the workers)
        segments = sa.select(decision_segments.c.first, decision_segments.c.rows).order_by(decision_segments.c.first)
        cuts = [(s.first, s.rows) for s in conn.execute(segments)]
        assert cuts[:3] == [(0, 1), (1, decision_store.TILE - 1), (decision_store.TILE, decision_store.TILE)]
        found = decision_queries.get(conn, f"B-{rows - 1}")
        assert found.position == rows and found.output == ((rows - 1) % 3 == 0)
    assert model_ws.decision_inputs(f"B-{rows - 1}") == {"income": float((rows - 1) % 997)}
    assert [d.decision_id for d in model_ws.list_decisions(subject="S-7", limit=3)] == ["B-7", "B-57", "B-107"]
    with model_ws.db.write() as conn:  # the appended subject postings merged into the clustered table
        decision_store.merge_postings(conn, at=1)
        assert conn.execute(sa.select(sa.func.count()).select_from(decision_postings_new)).scalar_one() == 0
    assert len(model_ws.list_decisions(subject="S-7", limit=None)) == len(range(7, rows, 50))
    assert model_ws.verify_decisions().problems == []
    # a posting dropped: the subject's decisions would be listed incompletely
    with model_ws.db.read() as conn:
        subject = conn.execute(sa.select(decision_rows.c.subject).where(decision_rows.c.position == 57)).scalar_one()
    _tamper(model_ws, decision_postings.delete().where(decision_postings.c.position == 57))
    assert ("decision_postings", "decision_postings") in _kinds(model_ws)
    _tamper(model_ws, decision_postings.insert().values(run=0, subject=subject, position=57))
    receipt = model_ws.decision_receipt(f"B-{rows // 2}")
    tlog.verify_proof_text(receipt.proof, receipt.entry, receipt.vkey)
    # a stored tile root or right edge changed: verify names it, and a receipt built from it fails
    from mlcustody.metadata.schema import decision_tiles

    _tamper(model_ws, decision_tiles.update().where(decision_tiles.c.tile == 3).values(root="00" * 32))
    assert _kinds(model_ws) == [("tile_mismatch", "tiles[3]")]
    bad = model_ws.decision_receipt("B-100")
    with pytest.raises(UsageError):
        tlog.verify_proof_text(bad.proof, bad.entry, bad.vkey)
    last = sa.select(sa.func.max(decision_segments.c.first)).scalar_subquery()
    _tamper(model_ws, decision_segments.update().where(decision_segments.c.first == last).values(frontier=b"\0" * 32))
    assert ("frontier_mismatch", f"decisions[{rows + 2}]") in _kinds(model_ws)


def test_wrong_key_is_refused_and_changes_nothing(
    registered_cli: tuple[Cli, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong passphrase for the log key, or a signing key that is not Ed25519, refuses the import
    (exit 2, one line) before anything is written; a receipt does not verify under another log's key."""
    cli, _ = registered_cli
    good = tmp_path / "good.jsonl"
    good.write_text('{"decision_id": "a", "x": 1, "output": 0}\n')
    cli("decisions", "import", str(good), "--model", "credit@1")
    more = tmp_path / "more.jsonl"
    more.write_text('{"decision_id": "b", "x": 2, "output": 1}\n')
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", "not the passphrase")
    _, err = cli("decisions", "import", str(more), "--model", "credit@1", code=2)
    assert len(err.strip().splitlines()) <= 2 and "passphrase" in err.lower()
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", PASSPHRASE)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "ecdsa.pem").write_bytes(pem)
    monkeypatch.setenv("CUSTODY_SIGNING_KEY", str(tmp_path / "ecdsa.pem"))
    _, err = cli("decisions", "import", str(more), "--model", "credit@1", code=2)
    assert "Ed25519" in err
    monkeypatch.delenv("CUSTODY_SIGNING_KEY")
    assert [d["decision_id"] for d in cli.json("decisions", "ls")["decisions"]] == ["a"]
    receipt = cli.json("decisions", "receipt", "a")
    other = tlog.format_vkey(receipt["vkey"].split("+")[0], bytes(32))
    with pytest.raises(UsageError):
        tlog.verify_proof_text(receipt["proof"], receipt["entry"].encode(), other)
