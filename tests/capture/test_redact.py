"""Secrets are redacted before a run is sealed, by documented rules, and ``show RUN`` says what was."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from _cli import ok, ok_json, run
from conftest import write_tree
from mlcustody.capture import redact
from mlcustody.capture.redact import Redactor

SECRET = "hunter2-s3cr3t-value"
R = "[REDACTED:{}]"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", f"--api-key={SECRET}"], ["train", f"--api-key={R.format('secret-option')}"]),
        (
            ["train", "--password", SECRET, "--lr", "0.1"],
            ["train", "--password", R.format("secret-option"), "--lr", "0.1"],
        ),
        (["train", "--token", "--verbose"], ["train", "--token", "--verbose"]),  # a flag without a value
        (["env", f"API_TOKEN={SECRET}", "cmd"], ["env", f"API_TOKEN={R.format('secret-assignment')}", "cmd"]),
        (["t", f"db.password={SECRET}"], ["t", f"db.password={R.format('secret-assignment')}"]),
        (["t", f"postgresql://app:{SECRET}@db/x"], ["t", f"postgresql://app:{R.format('url-password')}@db/x"]),
        (["t", "https://" + "a" * 40 + "@github.com/r"], ["t", f"https://{R.format('url-password')}@github.com/r"]),
        (
            ["t", "ssh://git@host/x", "--key", "id", "--max-tokens", "5"],
            ["t", "ssh://git@host/x", "--key", "id", "--max-tokens", "5"],
        ),
        (["t", "ghp_" + "A1" * 18], ["t", R.format("token")]),
        (["t", "--header=Bearer sk-" + "x" * 30], ["t", f"--header=Bearer {R.format('token')}"]),
        (["t", "AKIAABCDEFGHIJKLMNOP"], ["t", R.format("token")]),
    ],
)
def test_rules(args: list[str], expected: list[str]) -> None:
    assert Redactor().argv(args) == expected
    assert Redactor().argv(expected) == expected  # idempotent


def test_configured_patterns_and_variables() -> None:
    ours = Redactor(["^db[-_.]"])
    assert ours.argv(["t", "--db-host", "h1", "--host", "h2"]) == [
        "t",
        "--db-host",
        R.format("secret-option"),
        "--host",
        "h2",
    ]
    found = ours.variables({"DATABASE_URL": f"postgresql://app:{SECRET}@h/db", "DB_NAME": "x", "LANG": "C"})
    assert found == {
        "DATABASE_URL": f"postgresql://app:{R.format('url-password')}@h/db",
        "DB_NAME": R.format("config"),
        "LANG": "C",
    }
    doc = {
        "command": ours.argv(["t", f"--secret={SECRET}"]),
        "processes": [["x", "--pass", "y"]],
        "environment": {"variables": found},
    }
    where = [(r.where, r.rule) for r in redact.found(doc)]
    assert where == [
        ("command[1]", "secret-option"),
        ("environment.variables.DATABASE_URL", "url-password"),
        ("environment.variables.DB_NAME", "config"),
    ]


def test_a_bad_pattern_is_a_config_error(tmp_path: Path) -> None:
    ok(tmp_path, "init")
    config = tmp_path / ".custody" / "config.toml"
    config.write_text(config.read_text() + '[capture]\nredact = ["("]\n')
    result = run(tmp_path, "ls")
    assert result.returncode == 2 and "does not compile" in result.stderr


def test_custody_run_seals_no_secret_and_show_says_what_was_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(tmp_path, "init")
    config = tmp_path / ".custody" / "config.toml"
    config.write_text(config.read_text() + '[capture]\nenv = ["DATABASE_URL", "DB_NAME"]\nredact = ["^db_"]\n')
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:{SECRET}@db.internal/prod")
    monkeypatch.setenv("DB_NAME", f"prod-{SECRET}")
    script = """
    import subprocess, sys
    secret = sys.argv[1].split("=", 1)[1]  # the script itself (stored as the entry) holds no secret
    subprocess.run([sys.executable, "-c", "pass", "--password", secret], check=True)
    """
    write_tree(tmp_path, {"job.py": textwrap.dedent(script)})
    doc = ok(tmp_path, "run", "--json", "--", sys.executable, "job.py", f"--api-key={SECRET}").json
    run_id = doc["run"]["id"]
    shown = ok_json(tmp_path, "show", run_id)
    assert shown["run"]["command"][-1] == f"--api-key={R.format('secret-option')}"
    assert {(r["where"], r["rule"]) for r in shown["redacted"]} >= {
        ("command[2]", "secret-option"),
        ("environment.variables.DATABASE_URL", "url-password"),
        ("environment.variables.DB_NAME", "config"),
    }
    assert any(r["where"].startswith("processes[") for r in shown["redacted"])
    text = ok(tmp_path, "show", run_id).stdout
    assert "redacted:" in text and "command[2] (secret-option)" in text
    assert ok_json(tmp_path, "verify")["ok"] is True  # redacted before sealing: the seal holds
    store = tmp_path / ".custody"
    for path in [store / "metadata.db", *store.glob("metadata.db-*"), *(store / "objects").glob("*/*")]:
        assert SECRET.encode() not in path.read_bytes(), path
