"""What a new user trips over on a first pass through the README: help, messages, defaults (issue 24)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import mlcustody
from conftest import Cli
from mlcustody.interfaces.cli.app import click_command
from mlcustody.interfaces.cli.docs import _commands

ROOT = Path(__file__).resolve().parents[1]


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
