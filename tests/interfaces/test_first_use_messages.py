"""What a new user reads on a first pass: messages, defaults and the demo's last words (issue 24, items 1, 7, 8)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Cli, write_tree
from mlcustody import UsageError, Workspace
from mlcustody.capture import launch
from mlcustody.ledger.decisions import batch as decision_batch

PASSPHRASE = "first use passphrase"


@pytest.fixture
def credit(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """A workspace with ``credit@1`` registered and no decision logged (so no decision-log key yet)."""
    pytest.importorskip("sklearn")
    from _models import train_model

    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", PASSPHRASE)
    cli("init")
    cli("keys", "generate")
    cli("model", "register", "credit", "--run", train_model(cli.cwd))
    return cli


# -- the decision log's key, made on first use (item 1) ----------------------------------------------


def test_the_decision_log_key_is_named_when_it_cannot_be_made_and_announced_when_it_is(
    credit: Cli, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    log = tmp_path / "predictions.jsonl"
    log.write_text('{"decision_id": "D-1", "time": "2026-03-01T10:00:00Z", "x": 1, "output": 0}\n')
    monkeypatch.delenv("CUSTODY_KEY_PASSPHRASE")
    _, err = credit("decisions", "import", str(log), "--model", "credit@1", code=2)
    assert err.count("\n") == 1, err
    assert "no passphrase for the decision log's own signing key decision-log, made on first use" in err
    assert "set CUSTODY_KEY_PASSPHRASE" in err
    assert [k["name"] for k in credit.json("keys", "ls")["keys"]] == ["default"]  # the failed import made nothing

    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", PASSPHRASE)
    caplog.set_level("WARNING", logger="mlcustody")
    credit("decisions", "import", str(log), "--model", "credit@1")
    said = [r.getMessage() for r in caplog.records if r.name.startswith("mlcustody")]
    assert len(said) == 1 and said[0].startswith("made the decision log's signing key decision-log (ed25519, keyid ")
    assert "CUSTODY_KEY_PASSPHRASE" in said[0]
    assert sorted(k["name"] for k in credit.json("keys", "ls")["keys"]) == ["decision-log", "default"]
    caplog.clear()
    log.write_text('{"decision_id": "D-2", "time": "2026-03-01T10:00:01Z", "x": 2, "output": 1}\n')
    credit("decisions", "import", str(log), "--model", "credit@1")
    assert not [r for r in caplog.records if r.name.startswith("mlcustody")]  # said once, when made


# -- messages (item 7) -----------------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["yesterday", "2026-03-01 10:00", 1740000000])
def test_a_decision_time_that_is_not_rfc3339_is_named_as_given(given: object) -> None:
    with pytest.raises(UsageError) as caught:
        decision_batch.normalise_time(given)
    assert caught.value.message == f"decision time {given!r} is not an RFC 3339 time with a zone"


def test_decision_messages_and_model_did_you_mean(credit: Cli, tmp_path: Path) -> None:
    out, _ = credit("decisions", "ls")
    assert out.startswith("No decisions logged yet; import a prediction log with `custody decisions import FILE")
    assert "┃" not in out  # not an empty table

    log = tmp_path / "predictions.jsonl"
    log.write_text('{"decision_id": "D-1", "time": "yesterday", "x": 1, "output": 0}\n')
    _, err = credit("decisions", "import", str(log), "--model", "credit@1", code=2)
    assert f"{log}:1: decision time 'yesterday' is not an RFC 3339 time with a zone" in err

    log.write_text('{"decision_id": "D-1", "time": "2026-03-01T10:00:00Z", "x": 1, "output": 0}\n')
    credit("decisions", "import", str(log), "--model", "credit@1")
    out, _ = credit("decisions", "ls", "--subject", "nobody")  # was an internal error on an empty match
    assert out.strip() == "No decisions match; drop --model, --subject or --since to list them all."
    assert "D-1" in credit("decisions", "ls")[0]

    for command in (("model", "verify", "credt"), ("model", "show", "credt:production"), ("model", "show", "credt@1")):
        _, err = credit(*command, code=2)
        assert "no registered model named 'credt' — did you mean credit? list them with `custody model ls`" in err
    _, err = credit("model", "verify", "zzzz", code=2)
    assert "did you mean" not in err


def _loans(path: Path, rows: int) -> None:
    path.write_text("loan_id,amount\n" + "".join(f"L-{i:03d},{100 + i}\n" for i in range(rows)), encoding="utf-8")


def test_show_prints_metadata_in_words_not_a_python_dict(cli: Cli) -> None:
    cli("init")
    _loans(cli.cwd / "loans.csv", 20)
    manifest = cli.json("add", "loans.csv", "--records", "--key", "loan_id")["results"][0]["artifact"]["meta"]
    out, _ = cli("show", "loans", "--stats")
    assert "{'" not in out and "[]" not in out, out
    lines = out.splitlines()
    meta = next(i for i, line in enumerate(lines) if line.startswith("       meta: "))
    digest = manifest["records"]["manifest"][:12]
    assert lines[meta] == f"       meta: records: 20 (csv, key loan_id, mlcustody-record/v1), manifest {digest}"
    assert lines[meta + 1] == "             columns: loan_id string, amount integer"
    assert lines[meta + 2] == "       tags: none"
    assert any(line.split()[:3] == ["amount", "│", "integer"] for line in lines)  # the statistics table

    (cli.cwd / "notes.txt").write_text("n")
    cli("add", "notes.txt", "--tag", "reviewed", "--tag", "q3")
    out, _ = cli("show", "notes")
    assert "       meta: none" in out.splitlines() and "       tags: q3, reviewed" in out.splitlines()


def test_checkout_says_which_files_it_would_delete_and_which_overwrite(cli: Cli) -> None:
    cli("init")
    write_tree(cli.cwd / "data", {"a.txt": "one"})
    cli("add", "data")
    write_tree(cli.cwd / "data", {"new.csv": "n", "scratch.txt": "s"})
    _, err = cli("checkout", "data@1", code=2)
    assert f"checkout of {cli.cwd / 'data'} would delete new.csv and scratch.txt, which are not in the store" in err
    (cli.cwd / "data" / "scratch.txt").unlink()
    (cli.cwd / "data" / "a.txt").write_text("edited")
    _, err = cli("checkout", "data@1", code=2)
    assert (
        "would overwrite a.txt, whose changes are not in the store, and delete new.csv, which is not in the store"
    ) in err
    assert "has changes" not in err
    (cli.cwd / "loans.csv").write_text("a\n1\n")
    cli("add", "loans.csv")
    (cli.cwd / "loans.csv").write_text("a\n2\n")
    _, err = cli("checkout", "loans@1", code=2)
    assert f"checkout would overwrite {cli.cwd / 'loans.csv'}, whose changes are not in the store" in err


@pytest.mark.parametrize(
    ("command", "name"),
    [
        (["python", "train.py"], "train"),
        (["python3", "-u", "src/train_model.py", "--epochs", "3"], "train_model"),
        (["python", "-m", "pipeline.evaluate"], "evaluate"),
        (["./prepare.sh"], "prepare"),
        (["make", "all"], "make"),
        (["python", "-c", "print(1)"], "python"),
    ],
)
def test_a_run_is_named_after_what_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str], name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prepare.sh").write_text("#!/bin/sh\n")
    assert launch.default_name(command) == name


def test_custody_run_without_name_is_named_after_the_script(cli: Cli) -> None:
    cli("init")
    (cli.cwd / "train.py").write_text("print('trained')\n")
    cli("run", "--", sys.executable, "train.py")
    assert [run["name"] for run in cli.json("runs")["runs"]] == ["train"]


# -- the demo's last words (item 8) ----------------------------------------------------------------------


def test_the_demo_says_where_its_workspace_is_and_how_to_explore_it(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The tour itself is tested in test_cli; here only what it says at the end, and that it works."""
    from mlcustody.interfaces import demo

    where = tmp_path / "demo place"  # a space: the printed command must quote it

    def tour(directory: Path | None, echo: object) -> tuple[list[dict[str, object]], Path]:
        assert directory == where
        where.mkdir()  # as the tour does: a new directory
        Workspace.init(where).close()
        return [], where

    monkeypatch.setattr(demo, "run", tour)
    out, _ = cli("demo", "--dir", str(where))
    lines = out.strip().splitlines()
    assert lines[-2] == f"Done. The demo workspace is kept in {where}"
    explore = lines[-1]
    assert explore.startswith(f"Explore it: cd '{where}' && custody log")
    command = explore.removeprefix("Explore it: ").split("   (")[0]
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["sh", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "workspace.init" in done.stdout, done.stdout + done.stderr


def test_status_counts_changed_files_in_words(cli: Cli) -> None:
    write_tree(cli.cwd, {"data/a.csv": "x\n1\n", "data/b.csv": "x\n2\n"})
    cli("init")
    cli("add", "data")
    (cli.cwd / "data" / "a.csv").write_text("x\n3\n")
    assert "(+0 -0 ~1 file)" in cli("status", code=1)[0]
    (cli.cwd / "data" / "c.csv").write_text("x\n4\n")
    assert "(+1 -0 ~1 files)" in cli("status", code=1)[0]
