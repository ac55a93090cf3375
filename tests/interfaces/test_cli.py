"""The CLI contract: exit codes, one-line errors, --json documents that match docs/cli.md."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Cli, write_tree
from mlcustody.interfaces import shapes
from mlcustody.interfaces.cli import docs
from mlcustody.metadata import schema

ROOT = Path(__file__).resolve().parents[2]


def test_every_command_round_trip_with_json(cli: Cli) -> None:
    assert cli.json("init")["revision"] == schema.REVISION
    write_tree(cli.cwd / "data", {"a.csv": "x,y\n1,2\n", "b/c.txt": "c"})
    added = cli.json("add", "data", "--type", "dataset", "-m", "first", "--tag", "raw")
    artifact = added["results"][0]["artifact"]
    assert added["results"][0]["created"] and artifact["ref"] == "data@1"
    assert set(artifact) == set(shapes.ARTIFACT_FIELDS)
    assert (artifact["type"], artifact["file_count"], artifact["tags"], artifact["message"]) == (
        "dataset",
        2,
        ["raw"],
        "first",
    )
    assert cli.json("status")["clean"] is True
    (cli.cwd / "data" / "a.csv").write_text("x,y\n1,3\n")
    (cli.cwd / "data" / "new.txt").write_text("n")
    status = cli.json("status", code=1)
    assert status["artifacts"][0]["state"] == "modified"
    assert status["artifacts"][0]["changes"] == {"added": 1, "removed": 0, "modified": 1, "unchanged": 1}
    assert cli.json("add", "data")["results"][0]["artifact"]["version"] == 2
    assert not cli.json("add", "data")["results"][0]["created"]
    diff = cli.json("diff", "data@1", "data@2")
    assert diff["summary"] == {"added": 1, "removed": 0, "modified": 1, "unchanged": 1}
    assert [f["path"] for f in diff["added"]] == ["new.txt"]
    assert diff["modified"][0]["path"] == "a.csv"
    assert [a["ref"] for a in cli.json("ls")["artifacts"]] == ["data@2"]
    assert [a["ref"] for a in cli.json("ls", "--all")["artifacts"]] == ["data@1", "data@2"]
    shown = cli.json("show", "data@1", "--files")
    assert [f["path"] for f in shown["files"]] == ["a.csv", "b/c.txt"]
    assert [h["version"] for h in shown["history"]] == [1, 2]
    assert cli.json("show", artifact["digest"][:8])["artifact"]["ref"] == "data@1"
    checkout = cli.json("checkout", "data@1", "--to", "old")
    assert checkout["written"] == 2 and (cli.cwd / "old" / "a.csv").read_text() == "x,y\n1,2\n"
    verify = cli.json("verify")
    assert verify["ok"] and verify["problems"] == [] and verify["checked"]["artifact_versions"] == 2
    events = cli.json("log")["events"]
    assert [e["action"] for e in events] == ["artifact.add", "artifact.add", "workspace.init"]
    gc = cli.json("gc")
    assert gc["deleted"] is False and gc["unreferenced"]["count"] == 0


def test_acceptance_checkout_restores_and_tampering_is_detected(cli: Cli) -> None:
    cli("init")
    files = {"big.bin": os.urandom(5 << 20), "small/a.txt": "alpha", "small/b.txt": "beta"}
    write_tree(cli.cwd / "data", files)
    cli("add", "data")
    cli("verify")
    shutil.rmtree(cli.cwd / "data")
    cli("checkout", "data")
    for rel, content in files.items():
        expected = content.encode() if isinstance(content, str) else content
        assert (cli.cwd / "data" / rel).read_bytes() == expected
    cli("status")

    objects = sorted((cli.cwd / ".custody" / "objects").rglob("*"), key=lambda p: p.stat().st_size)
    victim = objects[-1]
    victim.chmod(0o644)
    with victim.open("r+b") as handle:
        handle.seek(1234)
        byte = handle.read(1)
        handle.seek(1234)
        handle.write(bytes([byte[0] ^ 0xFF]))
    out, _ = cli("verify", code=1)
    assert "object_corrupt" in out and victim.name in out
    victim.write_bytes(files["big.bin"])  # type: ignore[arg-type]
    cli("verify")

    with sqlite3.connect(cli.cwd / ".custody" / "metadata.db") as db:
        db.execute("UPDATE artifact_versions SET digest = 'ff' || substr(digest, 3)")
    db.close()
    out, _ = cli("verify", code=1)
    assert "row_modified: artifact_versions[data, 1]: digest is" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add", "missing-path"), "missing-path does not exist"),
        (("add", "/"), "outside the workspace"),
        (("add", ".custody"), "inside the store"),
        (("add", "a", "b", "--name", "x"), "--name applies to a single path"),
        (("add", "data", "--type", "weights"), "unknown artifact type"),
        (("add", "data", "--name", "bad@name"), "invalid artifact name"),
        (("show", "nothing"), "no artifact named 'nothing'"),
        (("diff", "data", "data@7"), "data has no version 7"),
        (("checkout", "data", "--link", "teleport"), "unknown link mode"),
        (("add",), "Missing argument"),
        (("add", "data", "--bogus"), "No such option"),
        (("frobnicate",), "No such command"),
        (("init",), "already an mlcustody workspace"),
        (("log", "-n", "0"), "--limit"),
        (("status", "extra"), "unexpected extra argument"),
        (("verify", "--bogus"), "No such option"),
        (("gc", "--bogus"), "No such option"),
        (("ls", "--type"), "requires an argument"),
        (("migrate", "extra"), "unexpected extra argument"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(cli: Cli, args: tuple[str, ...], message: str) -> None:
    cli("init")
    write_tree(cli.cwd / "data", {"a": "1"})
    cli("add", "data")
    before = cli.json("log")["events"]
    out, err = cli(*args, code=2)
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err and " — " in err
    assert "Traceback" not in err
    assert cli.json("log")["events"] == before


def test_migrate_on_a_current_store_reports_its_revision(cli: Cli) -> None:
    cli("init")
    assert cli.json("migrate")["revision"] == schema.REVISION


def test_errors_with_json_also_print_an_error_document(cli: Cli) -> None:
    cli("init")
    doc = cli.json("show", "ghost", code=2)
    assert doc["error"]["code"] == "unknown_ref" and doc["error"]["exit_code"] == 2 and doc["error"]["hint"]


def test_outside_a_workspace_and_with_a_corrupt_config(cli: Cli) -> None:
    _, err = cli("ls", code=2)
    assert "no mlcustody workspace" in err and "custody init" in err
    cli("init")
    (cli.cwd / ".custody" / "config.toml").write_text("[core\nbroken")
    _, err = cli("ls", code=2)
    assert "config.toml" in err
    (cli.cwd / ".custody" / "config.toml").write_text('[core]\nlink_mode = "teleport"\n')
    _, err = cli("ls", code=2)
    assert "link_mode" in err


def test_checkout_refuses_to_lose_unsaved_edits_until_forced(cli: Cli) -> None:
    cli("init")
    write_tree(cli.cwd / "data", {"a.txt": "v1"})
    cli("add", "data")
    (cli.cwd / "data" / "a.txt").write_text("precious unsaved work")
    _, err = cli("checkout", "data", code=2)
    assert "--force" in err
    assert (cli.cwd / "data" / "a.txt").read_text() == "precious unsaved work"
    cli("checkout", "data", "--force")
    assert (cli.cwd / "data" / "a.txt").read_text() == "v1"


@pytest.mark.parametrize("link_mode", ["hardlink", "symlink"])
def test_link_modes_keep_one_copy_of_the_bytes(cli: Cli, link_mode: str) -> None:
    cli("init", "--link", link_mode)
    write_tree(cli.cwd / "data", {"a.bin": os.urandom(100_000)})
    cli("add", "data")
    path = cli.cwd / "data" / "a.bin"
    digest = cli.json("show", "data", "--files")["files"][0]["digest"]
    obj = cli.cwd / ".custody" / "objects" / digest[:2] / digest[2:]
    assert path.stat().st_ino == obj.stat().st_ino  # stat follows the symlink too
    cli("status")
    cli("verify")


def test_gc_reports_then_deletes_only_unreferenced_objects(cli: Cli) -> None:
    cli("init")
    write_tree(cli.cwd / "data", {"a": "1"})
    cli("add", "data")
    (cli.cwd / ".custody" / "objects" / "ab" / ("c" * 62)).write_bytes(b"orphan")
    plan = cli.json("gc")
    assert plan["unreferenced"]["count"] == 1 and plan["unreferenced"]["bytes"] == 6
    assert (cli.cwd / ".custody" / "objects" / "ab" / ("c" * 62)).exists()
    done = cli.json("gc", "--delete")
    assert done["deleted"] and done["freed_bytes"] == 6
    assert cli.json("gc")["unreferenced"]["count"] == 0
    cli("verify")


def test_docs_cli_md_is_generated_from_the_code() -> None:
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == docs.generate(), "docs/cli.md is stale: python -m mlcustody.interfaces.cli.docs > docs/cli.md"


def test_installed_console_script_and_demo(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "custody"
    assert script.exists(), "the console script `custody` is not installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    proc = subprocess.run(
        [str(script), "demo", "--dir", str(tmp_path / "demo"), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "mlcustody.demo/v1"
    codes = {step["command"].split()[1]: step["exit_code"] for step in doc["steps"] if "Tamper" in step["title"]}
    assert codes == {"verify": 1, "model": 1}
    assert all(step["exit_code"] in (0, 1) for step in doc["steps"])
