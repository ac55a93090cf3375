"""Layer 2 on SQLite and on a real PostgreSQL server: schema, audit chain, versions, references."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from conftest import Cli, write_tree
from mlcustody import Workspace
from mlcustody._canonical import digest_bytes
from mlcustody.errors import AmbiguousRef, SchemaError, UnknownRef, UsageError
from mlcustody.metadata import migrate, schema


def _add(ws: Workspace, rel: str, files: dict[str, str], **kw: object) -> str:
    write_tree(ws.root / rel, files)
    return ws.add([ws.root / rel], **kw)[0].version.ref  # type: ignore[arg-type]


def _problems(ws: Workspace) -> list[tuple[str, str]]:
    return [(p.kind, p.where) for p in ws.verify().problems]


def test_migrations_have_one_head_matching_the_code() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert script.get_heads() == [schema.REVISION], (
        "schema.REVISION must name the single Alembic head; after adding a migration, update REVISION"
    )


def test_migrated_schema_equals_schema_py(workspace: Workspace) -> None:
    with workspace.db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    assert diffs == [], f"migrations and schema.py disagree; write a migration for: {diffs}"


def test_versions_are_numbered_per_name_and_unchanged_content_is_not_a_new_version(workspace: Workspace) -> None:
    assert _add(workspace, "data", {"a": "1"}, type="dataset") == "data@1"
    again = workspace.add([workspace.root / "data"])[0]
    assert not again.created and again.version.ref == "data@1"
    assert _add(workspace, "data", {"a": "2"}) == "data@2"
    v2 = workspace.resolve("data")
    assert (v2.version, v2.type, v2.kind, v2.file_count, v2.size) == (2, "dataset", "dir", 1, 1)
    assert [v.version for v in workspace.history("data")] == [1, 2]
    with pytest.raises(UsageError, match="is a dataset, not a model"):
        workspace.add([workspace.root / "data"], type="model")


def test_every_change_is_an_event_in_one_unbroken_chain(workspace: Workspace) -> None:
    _add(workspace, "data", {"a": "1"})
    _add(workspace, "data", {"a": "2"})
    events = list(reversed(workspace.log()))
    assert [e.action for e in events] == ["workspace.init", "artifact.add", "artifact.add"]
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[0].prev_digest == "0" * 64
    assert all(b.prev_digest == a.digest for a, b in itertools.pairwise(events))
    assert events[2].payload["row"]["version"] == 2
    assert workspace.verify().problems == []


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (
            "UPDATE artifact_versions SET size = size + 1 WHERE version = 1",
            ("row_modified", "artifact_versions[data, 1]"),
        ),
        ("DELETE FROM artifact_versions WHERE version = 2", ("row_deleted", "artifact_versions[data, 2]")),
        (
            "INSERT INTO artifact_versions (name, version, type, kind, path, digest, size, file_count, meta, tags,"
            " author, message, created_at) SELECT name, 3, type, kind, path, digest, size, file_count, meta, tags,"
            " author, message, created_at FROM artifact_versions WHERE version = 2",
            ("row_unrecorded", "artifact_versions[data, 3]"),
        ),
        ("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2", ("event_modified", "audit_events[2]")),
        ("DELETE FROM audit_events WHERE seq = 2", ("chain_gap", "audit_events[3]")),
        ("UPDATE audit_head SET seq = 2", ("chain_truncated", "audit_head")),
    ],
)
def test_verify_names_each_direct_edit_of_the_database(
    workspace: Workspace, statement: str, expected: tuple[str, str]
) -> None:
    _add(workspace, "data", {"a": "1"})
    _add(workspace, "data", {"a": "2"})
    with workspace.db.engine.begin() as conn:
        conn.execute(sa.text(statement))
    assert expected in _problems(workspace)


def test_cutting_off_the_tail_of_the_chain_is_caught_by_the_witness(workspace: Workspace) -> None:
    _add(workspace, "data", {"a": "1"})
    _add(workspace, "data", {"a": "2"})
    with workspace.db.engine.begin() as conn:  # a consistent-looking rollback of the last change
        last = conn.execute(sa.text("SELECT seq, prev_digest FROM audit_events ORDER BY seq DESC")).first()
        assert last is not None
        conn.execute(sa.text("DELETE FROM audit_events WHERE seq = :s"), {"s": last.seq})
        conn.execute(sa.text("DELETE FROM artifact_versions WHERE version = 2"))
        conn.execute(sa.text("UPDATE audit_head SET seq = :s, digest = :d"), {"s": last.seq - 1, "d": last.prev_digest})
    assert ("chain_truncated", "audit-head") in _problems(workspace)


def test_references(workspace: Workspace) -> None:
    _add(workspace, "data", {"a": "1"})
    _add(workspace, "data", {"a": "2"})
    _add(workspace, "dat", {"a": "3"})
    v1 = workspace.resolve("data@1")
    assert workspace.resolve("data").version == 2
    assert workspace.resolve(v1.digest[:10]).ref == "data@1"
    with pytest.raises(UnknownRef, match="data has no version 9"):
        workspace.resolve("data@9")
    with pytest.raises(UnknownRef) as err:
        workspace.resolve("daat")
    assert "did you mean" in err.value.hint
    with pytest.raises(UnknownRef):
        workspace.resolve("data@x")


def _colliding(prefix_length: int) -> tuple[bytes, bytes]:
    """Two contents whose BLAKE3 digests share their first ``prefix_length`` hex digits (a birthday
    search: about 300 tries for 4 digits)."""
    seen: dict[str, bytes] = {}
    for i in range(1_000_000):
        content = f"row {i}\n".encode()
        prefix = digest_bytes(content)[:prefix_length]
        if prefix in seen:
            return seen[prefix], content
        seen[prefix] = content
    raise AssertionError("no collision found")


def test_a_digest_prefix_shared_by_two_versions_is_ambiguous(workspace: Workspace) -> None:
    first, second = _colliding(4)
    (workspace.root / "one.txt").write_bytes(first)
    (workspace.root / "two.txt").write_bytes(second)
    one, two = (workspace.add([workspace.root / name])[0].version for name in ("one.txt", "two.txt"))
    shared = one.digest[:4]
    assert two.digest.startswith(shared) and one.digest != two.digest
    with pytest.raises(AmbiguousRef, match=f"digest prefix {shared} matches 2 objects") as err:
        workspace.resolve(shared)
    assert "more characters" in (err.value.hint or "")
    longer = next(n for n in range(5, 64) if one.digest[:n] != two.digest[:n])
    assert workspace.resolve(one.digest[:longer]).ref == one.ref
    assert workspace.resolve(two.digest[:longer]).ref == two.ref


def test_opening_a_store_at_another_schema_revision_says_how_to_upgrade(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path)
    with ws.db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0000'"))
    ws.close()
    with pytest.raises(SchemaError, match="revision 0000") as err:
        Workspace.open(tmp_path)
    assert "custody migrate" in err.value.hint


def test_the_cli_names_an_ambiguous_prefix_and_how_to_choose(cli: Cli) -> None:
    first, second = _colliding(4)
    write_tree(cli.cwd, {"one.txt": first.decode(), "two.txt": second.decode()})
    cli("init")
    cli("add", "one.txt", "two.txt")
    shared = digest_bytes(first)[:4]
    _, err = cli("show", shared, code=2)
    assert f"digest prefix {shared} matches 2 objects" in err and "NAME@VERSION" in err
