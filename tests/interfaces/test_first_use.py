"""What a new user trips over on a first pass through the README: help, messages, defaults (issue 24)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import mlcustody
from conftest import Cli, write_tree
from mlcustody import Workspace
from mlcustody.interfaces.cli.app import click_command
from mlcustody.interfaces.cli.docs import _commands

ROOT = Path(__file__).resolve().parents[2]


# -- help and docs -----------------------------------------------------------------------------------


def _help_pages() -> list[tuple[str, ...]]:
    group = click_command()
    return [(), *[tuple(name.split()) for name, _ in _commands(group)]]


@pytest.mark.parametrize("command", _help_pages(), ids=lambda c: " ".join(c) or "custody")
def test_help_names_values_for_users_not_python_types(cli: Cli, command: tuple[str, ...]) -> None:
    out, _ = cli(*command, "--help")
    assert not re.search(r"<(list\[|str>|int|path>|Path>|float)", out), out
    assert not re.search(r"\{[a-z_]+\}", out), out  # typer's {ref_a}
    usage = out.splitlines()[0]
    if command == ("add",):
        assert usage == "Usage: custody add [OPTIONS] PATH…"
    if command == ("diff",):
        assert usage == "Usage: custody diff [OPTIONS] REF REF"


def test_top_level_help_and_demo_help_describe_today(cli: Cli) -> None:
    out, _ = cli("--help")
    assert "later" not in out and "one record or one decision" in " ".join(out.split())
    out, _ = cli("demo", "--help")
    text = " ".join(out.split())
    assert "version a dataset twice" not in text
    assert all(word in text for word in ("record by record", "register", "decisions", "tampering"))


def test_version_option(cli: Cli) -> None:
    out, _ = cli("--version")
    assert out.strip() == f"custody (mlcustody) {mlcustody.__version__}"


def test_cli_reference_names_run_ids_and_aliases() -> None:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    references = next(line for line in text.split("\n- ") if line.startswith("References"))
    assert "run id" in references and "NAME:ALIAS" in references


# -- dev extras -------------------------------------------------------------------------------------


def test_pydot_is_a_dev_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert any(re.match(r"pydot\b", requirement) for requirement in extras["dev"])


# -- re-adding keeps the record settings -------------------------------------------------------------


def _write_loans(path: Path, rows: int, changed: dict[int, str] | None = None) -> None:
    lines = ["loan_id,amount,region"]
    for i in range(rows):
        lines.append(f"L-{i:05d},{(changed or {}).get(i, str(1000 + 7 * i))},{('north', 'south')[i % 2]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_re_adding_keeps_the_record_manifest_and_identical_bytes_make_no_version(cli: Cli) -> None:
    cli("init")
    _write_loans(cli.cwd / "loans.csv", 20)
    first = cli.json("add", "loans.csv", "--records", "--key", "loan_id")["results"][0]["artifact"]
    again = cli.json("add", "loans.csv")["results"][0]
    assert not again["created"] and again["artifact"]["ref"] == "loans@1"
    same = cli.json("add", "loans.csv", "--records", "--key", "loan_id")["results"][0]
    assert not same["created"] and same["artifact"]["meta"] == first["meta"]

    _write_loans(cli.cwd / "loans.csv", 21, changed={3: "999"})
    second = cli.json("add", "loans.csv")["results"][0]["artifact"]
    assert second["ref"] == "loans@2"
    assert second["meta"]["records"]["key"] == ["loan_id"] and second["meta"]["records"]["count"] == 21
    found = cli.json("show", "loans", "--record", "L-00003")["found"][0]
    assert found["values"]["amount"] == 999
    changed = cli.json("diff", "loans@1", "loans@2", "--records")
    assert (changed["summary"]["added"], changed["summary"]["changed"]) == (1, 1)


# -- status after a checkout -------------------------------------------------------------------------


def test_status_compares_with_the_checked_out_version_and_says_which(cli: Cli) -> None:
    cli("init")
    write_tree(cli.cwd / "data", {"a.txt": "one"})
    cli("add", "data")
    (cli.cwd / "data" / "b.txt").write_text("two")
    cli("add", "data")
    cli("checkout", "data@1")
    out, _ = cli("status")
    assert out.split() == ["unchanged", "data", "[data@1,", "checked", "out;", "latest", "data@2]"]
    item = cli.json("status")["artifacts"][0]
    assert (item["ref"], item["state"], item["checked_out"], item["latest"]) == ("data@1", "unchanged", True, "data@2")

    (cli.cwd / "data" / "a.txt").write_text("edited")
    item = cli.json("status", code=1)["artifacts"][0]
    assert (item["ref"], item["state"], item["changes"]["modified"]) == ("data@1", "modified", 1)
    cli("add", "data")  # data@3: the path holds the latest version again
    item = cli.json("status")["artifacts"][0]
    assert (item["ref"], item["checked_out"]) == ("data@3", False)

    cli("checkout", "data@1", "--to", "elsewhere")  # another place: the path is still data@3
    assert cli.json("status")["artifacts"][0]["ref"] == "data@3"
    cli("checkout", "data@2", "--force")
    cli("checkout", "data", "--force")  # back to the latest
    assert cli.json("status")["artifacts"][0]["checked_out"] is False


def test_status_of_a_modified_file_gives_no_file_counts(cli: Cli) -> None:
    cli("init")
    (cli.cwd / "loans.csv").write_text("a\n1\n")
    cli("add", "loans.csv")
    (cli.cwd / "loans.csv").write_text("a\n2\n")
    out, _ = cli("status", code=1)
    assert out.split() == ["modified", "loans.csv", "[loans@1]"]


# -- a typo'd metric or param --------------------------------------------------------------------------


def test_an_unknown_metric_or_param_is_exit_2_naming_the_closest(cli: Cli) -> None:
    cli("init")
    out, _ = cli("runs", "--where", "metrics.acuracy > 0.8")
    assert "No runs match" in out  # no runs yet: nothing to be a typo of
    with Workspace.open(cli.cwd) as ws, ws.start_run("train", params={"learning_rate": 0.1}) as run:
        run.log_metric("accuracy", 0.9)
        run.log_metric("val_loss", 0.3)
    _, err = cli("runs", "--where", "metrics.acuracy > 0.8", code=2)
    assert err.count("\n") == 1 and "no run has a metric named 'acuracy'" in err
    assert "did you mean metrics.accuracy?" in err
    _, err = cli("runs", "--where", "params.learning_rat < 1", code=2)
    assert "did you mean params.learning_rate?" in err
    _, err = cli("runs", "--sort", "-metrics.zzz", code=2)
    assert "known metrics: metrics.accuracy, metrics.val_loss" in err
    assert len(cli.json("runs", "--where", "metrics.accuracy > 0.8")["runs"]) == 1


# -- record diff output ------------------------------------------------------------------------------


def test_record_diff_says_how_many_more_lists_all_and_names_changed_columns(cli: Cli) -> None:
    cli("init")
    _write_loans(cli.cwd / "loans.csv", 10)
    cli("add", "loans.csv", "--records", "--key", "loan_id")
    _write_loans(cli.cwd / "loans.csv", 510, changed={2: "42", 4: "44"})
    cli("add", "loans.csv")

    out, _ = cli("diff", "loans@1", "loans@2", "--records")
    lines = out.splitlines()
    assert "500 added, 0 removed, 2 changed, 8 unchanged" in lines[0]
    assert sum(line.startswith("  A L-") for line in lines) == 5
    assert "  A … and 495 more (--all or --limit N to list more records, --json for all)" in lines
    changed = lines.index("  C L-00002  (loans.csv:4)")
    assert lines[changed + 1].split() == ["amount:", "1014", "→", "42"]
    assert "C … and" not in out

    out, _ = cli("diff", "loans@1", "loans@2", "--records", "--all")
    assert sum(line.startswith("  A L-") for line in out.splitlines()) == 500 and "more" not in out
    out, _ = cli("diff", "loans@1", "loans@2", "--records", "--limit", "12")
    assert sum(line.startswith("  A L-") for line in out.splitlines()) == 12 and "… and 488 more" in out

    doc = cli.json("diff", "loans@1", "loans@2", "--records")
    assert doc["limit"] is None and len(doc["examples"]["added"]) == 500
    assert [(r["record_id"], r["columns"]) for r in doc["examples"]["changed"]] == [
        ("L-00002", {"amount": [1014, 42]}),
        ("L-00004", {"amount": [1028, 44]}),
    ]
    paged = cli.json("diff", "loans@1", "loans@2", "--records", "--limit", "3")
    assert paged["limit"] == 3 and len(paged["examples"]["added"]) == 3
    _, err = cli("diff", "loans@1", "loans@2", "--records", "--all", "--limit", "3", code=2)
    assert "--all and --limit" in err


def test_file_diff_lists_all_with_all(cli: Cli) -> None:
    cli("init")
    write_tree(cli.cwd / "data", {"a": "1"})
    cli("add", "data")
    write_tree(cli.cwd / "data", {f"f{i:02d}": str(i) for i in range(25)})
    cli("add", "data")
    out, _ = cli("diff", "data@1", "data@2")
    assert "+ … and 5 more (--all or --limit N to list more files, --json for all)" in out
    out, _ = cli("diff", "data@1", "data@2", "--all")
    assert sum(line.startswith("  + f") for line in out.splitlines()) == 25
