"""Key custody: a copy of the database does not give the decision log's keys away; the KEK rotates."""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from conftest import Cli
from mlcustody import UsageError, Workspace
from mlcustody.ledger import kek


def _log(ws: Workspace) -> None:
    with ws.decision_log("credit@1") as log:
        for i in range(6):
            log.record(f"d{i}", {"income": 1000 + i}, i % 2, subject="alice" if i < 3 else "bob")


def _key_file(ws: Workspace) -> Path:
    with ws.db.read() as conn:
        store_id = conn.execute(sa_text("SELECT value FROM store_info WHERE key = 'store_id'")).scalar()
    return kek.default_file(str(store_id))


def sa_text(sql: str) -> object:
    import sqlalchemy as sa

    return sa.text(sql)


def test_a_database_copy_holds_no_key_in_the_clear(registered_cli: tuple[Cli, str]) -> None:
    cli, _ = registered_cli
    with Workspace.open(cli.cwd) as ws:
        _log(ws)
        path = _key_file(ws)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not path.is_relative_to(cli.cwd)  # outside the workspace and its store
    with sqlite3.connect(cli.cwd / ".custody" / "metadata.db") as conn:
        keys = [bytes(k) for (k,) in conn.execute("SELECT key FROM decision_subjects")]
        hmac_key = conn.execute("SELECT value FROM store_info WHERE key = 'decision_subject_key'").fetchone()[0]
        segment = conn.execute("SELECT data FROM decision_segments").fetchone()[0]
    assert keys and all(kek.is_wrapped(k) and len(k) > 32 for k in keys) and hmac_key.startswith("kek1:")
    import pyarrow as pa
    import pyarrow.parquet as pq

    payloads = [p for p in pq.read_table(pa.BufferReader(segment)).column("payload").to_pylist() if p]
    for key in keys:  # no slice of a stored value decrypts a payload
        for start in range(len(key) - 31):
            with pytest.raises((InvalidTag, ValueError)):
                AESGCM(key[start : start + 32]).decrypt(payloads[0][:12], payloads[0][12:], b"d0")
    # without the key file: no inputs, no lookup by subject id; with it back, both
    moved = path.with_suffix(".away")
    path.rename(moved)
    _, err = cli("decisions", "ls", "--subject", "alice", code=2)
    assert "key-encryption key" in err and "CUSTODY_KEK" in err
    _, err = cli("trace", "decision", "d0", "--records", "1", code=2)
    moved.rename(path)
    assert [d["decision_id"] for d in cli.json("decisions", "ls", "--subject", "alice")["decisions"]] == [
        "d0",
        "d1",
        "d2",
    ]
    assert cli.json("verify")["ok"] is True


def test_a_key_file_others_may_read_is_refused(model_ws: Workspace) -> None:
    _log(model_ws)
    path = _key_file(model_ws)
    path.chmod(0o644)
    with pytest.raises(UsageError, match="may be read by others"):
        model_ws.decision_inputs("d0")
    path.chmod(0o600)
    assert model_ws.decision_inputs("d0") == {"income": 1000}


def test_rotate_kek(registered_cli: tuple[Cli, str]) -> None:
    cli, _ = registered_cli
    with Workspace.open(cli.cwd) as ws:
        _log(ws)
        assert ws.forget_subject("bob") == 3
        path = _key_file(ws)
    old = path.read_text().split()
    doc = cli.json("keys", "rotate-kek")
    assert doc["previous"] == [kek.Kek(bytes.fromhex(old[0])).kek_id] and doc["current"] != doc["previous"][0]
    assert doc["rewrapped"] == 2  # alice's data key and the HMAC key; bob's was shredded and stays so
    new = path.read_text().split()
    assert len(new) == 1 and new[0] not in old  # the old KEK is dropped
    with Workspace.open(cli.cwd) as ws:
        assert ws.decision_inputs("d0") == {"income": 1000} and ws.decision_inputs("d4") is None
        assert [d.decision_id for d in ws.list_decisions(subject="alice")] == ["d0", "d1", "d2"]
    assert cli.json("verify")["ok"] is True and cli.json("verify", "--decisions")["ok"] is True
    # the key file holds only the new KEK, and the store records it as the one its keys are under
    with Workspace.open(cli.cwd) as ws, ws.db.read() as conn:
        assert kek.Keyset(kek.FileProvider(path, create=False)).current.kek_id == doc["current"]
        assert (
            conn.execute(sa_text("SELECT value FROM store_info WHERE key = 'decision_kek'")).scalar() == doc["current"]
        )


def test_env_provider_and_its_rotation(model_ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = secrets.token_hex(32), secrets.token_hex(32)
    monkeypatch.setenv(kek.KEK_ENV, first)
    _log(model_ws)
    assert not _key_file(model_ws).exists()  # the environment holds the KEK: no file is made
    monkeypatch.setenv(kek.KEK_ENV, second)
    with pytest.raises(UsageError, match="does not hold"):
        model_ws.decision_inputs("d0")
    monkeypatch.setenv(kek.KEK_ENV, f"{second},{first}")
    assert model_ws.decision_inputs("d0") == {"income": 1000}
    found = model_ws.rotate_kek()
    assert found.current == kek.Kek(bytes.fromhex(second)).kek_id and found.rewrapped == 3
    monkeypatch.setenv(kek.KEK_ENV, second)
    assert model_ws.decision_inputs("d5") == {"income": 1005}
    assert model_ws.verify().problems == [] and model_ws.verify_decisions().problems == []


def test_a_key_moved_to_another_row_does_not_unwrap_and_is_named(model_ws: Workspace) -> None:
    import sqlalchemy as sa

    _log(model_ws)
    with model_ws.db.engine.begin() as conn:
        rows = conn.execute(sa.text("SELECT id, key FROM decision_subjects WHERE subject != '' ORDER BY id")).all()
        (a, key_a), (b, key_b) = rows[0], rows[1]
        conn.execute(sa.text("UPDATE decision_subjects SET key = :k WHERE id = :i"), {"k": key_b, "i": a})
        conn.execute(sa.text("UPDATE decision_subjects SET key = :k WHERE id = :i"), {"k": key_a, "i": b})
    assert "row_modified" in {p.kind for p in model_ws.verify().problems}
    with pytest.raises(UsageError, match="does not unwrap"):
        model_ws.decision_inputs("d0")


def test_provider_copy_elsewhere(tmp_path: Path) -> None:
    source = kek.FileProvider(tmp_path / "a" / "k.key", create=True)
    [made] = source.keys()
    shutil.copy(source.path, tmp_path / "copy.key")
    os.chmod(tmp_path / "copy.key", 0o600)
    assert kek.FileProvider(tmp_path / "copy.key", create=False).keys() == [made]
    assert kek.FileProvider(tmp_path / "none.key", create=False).keys() == []
