"""Expectation suites: every expectation of docs/expectations.md on a frame where it passes and one
where it fails (with the exact count of unexpected values), suites that do not parse (file:line),
and `custody add --expect` keeping the signed result on the version."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conftest import Cli
from mlcustody.policy import expectations

FRAME = pd.DataFrame(
    {
        "id": [1, 2, 3, 4, 5],
        "age": [18, 25, 40, None, 90],
        "income": [1000.0, 2000.0, 3000.0, 4000.0, 5000.0],
        "debt": [100.0, 2500.0, 300.0, 400.0, 500.0],
        "country": ["DE", "FR", "DE", "XX", None],
        "code": ["A-1", "A-2", "B-3", "A-4", "bad"],
    }
)
OTHER = pd.DataFrame({"country": ["DE", "FR", "IT"]})

# expectation, arguments that pass, arguments that fail, unexpected values when it fails (None: a table-
# or aggregate-level expectation, which has no unexpected values)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], int | None]] = [
    ("expect_column_to_exist", {"column": "age"}, {"column": "height"}, None),
    (
        "expect_table_columns_to_match_set",
        {"column_set": list(FRAME.columns)},
        {"column_set": ["id", "age"], "exact_match": True},
        None,
    ),
    (
        "expect_table_columns_to_match_ordered_list",
        {"column_list": list(FRAME.columns)},
        {"column_list": ["age"]},
        None,
    ),
    ("expect_table_row_count_to_be_between", {"min_value": 1, "max_value": 5}, {"min_value": 6}, None),
    ("expect_table_row_count_to_equal", {"value": 5}, {"value": 4}, None),
    (
        "expect_column_values_to_be_of_type",
        {"column": "country", "type_": "str"},
        {"column": "income", "type_": "int"},
        5,
    ),
    ("expect_column_values_to_not_be_null", {"column": "id"}, {"column": "age"}, 1),
    ("expect_column_values_to_be_null", {"column": "age", "mostly": 0.2}, {"column": "age"}, 4),
    (
        "expect_column_values_to_be_between",
        {"column": "age", "min_value": 18, "max_value": 90},
        {"column": "age", "min_value": 20, "max_value": 80},
        2,
    ),
    (
        "expect_column_values_to_be_in_set",
        {"column": "country", "value_set": ["DE", "FR", "XX"]},
        {"column": "country", "value_set": ["DE", "FR"]},
        1,
    ),
    (
        "expect_column_values_to_not_be_in_set",
        {"column": "country", "value_set": ["IT"]},
        {"column": "country", "value_set": ["XX", "FR"]},
        2,
    ),
    ("expect_column_values_to_be_unique", {"column": "id"}, {"column": "country"}, 2),
    ("expect_compound_columns_to_be_unique", {"column_list": ["id", "country"]}, {"column_list": ["country"]}, 2),
    (
        "expect_column_values_to_match_regex",
        {"column": "code", "regex": r"^\w"},
        {"column": "code", "regex": r"^[A-Z]-\d$"},
        1,
    ),
    (
        "expect_column_values_to_not_match_regex",
        {"column": "code", "regex": "zzz"},
        {"column": "code", "regex": "^A"},
        3,
    ),
    (
        "expect_column_value_lengths_to_be_between",
        {"column": "code", "min_value": 3, "max_value": 3},
        {"column": "code", "max_value": 2},
        5,
    ),
    ("expect_column_min_to_be_between", {"column": "age", "min_value": 18}, {"column": "age", "min_value": 20}, None),
    ("expect_column_max_to_be_between", {"column": "age", "max_value": 90}, {"column": "age", "max_value": 80}, None),
    (
        "expect_column_mean_to_be_between",
        {"column": "income", "min_value": 3000, "max_value": 3000},
        {"column": "income", "max_value": 2000},
        None,
    ),
    (
        "expect_column_median_to_be_between",
        {"column": "income", "min_value": 3000, "max_value": 3000},
        {"column": "income", "min_value": 3500},
        None,
    ),
    (
        "expect_column_stdev_to_be_between",
        {"column": "income", "max_value": 2000},
        {"column": "income", "max_value": 1000},
        None,
    ),
    (
        "expect_column_sum_to_be_between",
        {"column": "income", "min_value": 15000, "max_value": 15000},
        {"column": "income", "max_value": 100},
        None,
    ),
    (
        "expect_column_unique_value_count_to_be_between",
        {"column": "country", "min_value": 3, "max_value": 3},
        {"column": "country", "min_value": 4},
        None,
    ),
    (
        "expect_column_proportion_of_unique_values_to_be_between",
        {"column": "country", "min_value": 0.75, "max_value": 0.75},
        {"column": "country", "min_value": 1.0},
        None,
    ),
    (
        "expect_column_pair_values_a_to_be_greater_than_b",
        {"column_A": "income", "column_B": "debt", "mostly": 0.8},
        {"column_A": "income", "column_B": "debt"},
        1,
    ),
    (
        "expect_column_values_to_be_in_version",
        {"column": "country", "ref": "countries", "mostly": 0.75},
        {"column": "country", "ref": "countries"},
        1,
    ),
    (
        "expect_query_to_return_no_rows",
        {"query": "SELECT * FROM data WHERE income < 0"},
        {"query": "SELECT * FROM data WHERE debt > income"},
        None,
    ),
]


def _run(tmp_path: Path, name: str, kwargs: dict[str, Any]) -> expectations.Outcome:
    suite = tmp_path / "suite.yaml"
    suite.write_text(json.dumps({"expectations": [{name: kwargs}]}), encoding="utf-8")  # JSON is YAML
    [outcome] = expectations.run(expectations.parse(suite), FRAME, lambda ref: OTHER).results
    return outcome


@pytest.mark.parametrize(("name", "passing", "failing", "unexpected"), CASES, ids=[c[0] for c in CASES])
def test_each_expectation_passes_and_fails(
    tmp_path: Path, name: str, passing: dict[str, Any], failing: dict[str, Any], unexpected: int | None
) -> None:
    good = _run(tmp_path, name, passing)
    assert good.success, good
    bad = _run(tmp_path, name, failing)
    assert not bad.success, bad
    if unexpected is not None:
        assert bad.unexpected_count == unexpected, bad


def test_every_expectation_is_documented_and_tested() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "expectations.md").read_text(encoding="utf-8")
    assert {c[0] for c in CASES} == set(expectations.SIGNATURES)
    missing = [name for name in expectations.SIGNATURES if f"`{name}`" not in doc]
    assert not missing, f"add {missing} to docs/expectations.md"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("expectations:\n  - expect_column_to_exist: {column: age\n", 3, "expected ','"),
        (
            "expectations:\n  - expect_column_to_exist: {column: age}\n  - expect_colum_to_exist: {column: x}\n",
            3,
            "expect_column_to_exist",
        ),
        ("expectations:\n  - expect_column_values_to_be_between:\n      colum: age\n", 3, "missing column"),
        ("checks: []\n", 1, "expectations"),
    ],
    ids=["yaml", "unknown-name", "bad-arguments", "no-list"],
)
def test_a_suite_that_does_not_parse_names_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    from mlcustody.errors import UsageError

    suite = tmp_path / "suite.yaml"
    suite.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        expectations.parse(suite)
    assert caught.value.one_line().startswith(f"{suite}:{line}:"), caught.value.one_line()
    assert words in caught.value.one_line()


SUITE = """\
expectations:
  - expect_table_row_count_to_be_between: {min_value: 2}
  - expect_column_values_to_be_between: {column: age, min_value: 18, max_value: 90}
  - expect_column_values_to_be_unique: {column: id}
"""


def test_add_expect_keeps_a_signed_result_and_strict_refuses(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", "expectations passphrase")
    cli("init")
    cli("keys", "generate")
    (cli.cwd / "suite.yaml").write_text(SUITE, encoding="utf-8")
    (cli.cwd / "people.csv").write_text("id,age\n1,30\n2,40\n3,50\n", encoding="utf-8")
    cli("add", "people.csv", "--records", "--key", "id", "--expect", "suite.yaml", "--strict")
    shown = cli.json("show", "people")
    [result] = shown["expectations"]
    assert result["success"] and len(result["results"]) == 3
    from mlcustody import Workspace
    from mlcustody.ledger.registry import attestation

    with Workspace.open(cli.cwd) as ws:
        envelope = json.loads(ws.objects.read_bytes(result["envelope"]))
        payload = base64.b64decode(envelope["payload"])
        statement = json.loads(payload)
        assert statement["predicate"]["result"]["success"] is True
        assert statement["subject"][0]["digest"]["blake3"] == shown["artifact"]["digest"]
        [sig] = envelope["signatures"]
        signed = attestation.pae(attestation.PAYLOAD_TYPE, payload)
        assert ws.check_signature(result["keyid"], signed, base64.b64decode(sig["sig"]), result["at"]) is None
        assert ws.check_signature(result["keyid"], signed + b"x", base64.b64decode(sig["sig"]), result["at"])

    (cli.cwd / "people.csv").write_text("id,age\n1,130\n2,140\n", encoding="utf-8")
    _, err = cli("add", "people.csv", "--expect", "suite.yaml", "--strict", code=2)
    assert "fails 1 expectation(s)" in err and len(err.strip().splitlines()) == 1
    out, _ = cli("show", "people@2")
    assert "FAILED 1 of 3" in out and "expect_column_values_to_be_between" in out
    cli("verify")


def test_config_runs_a_suite_on_matching_names_and_bad_suites_change_nothing(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", "expectations passphrase")
    cli("init")
    cli("keys", "generate")
    (cli.cwd / "suite.yaml").write_text(SUITE, encoding="utf-8")
    with (cli.cwd / ".custody" / "config.toml").open("a", encoding="utf-8") as handle:
        handle.write('\n[expectations]\nstrict = true\n[expectations.suites]\n"raw/*" = "suite.yaml"\n')
    (cli.cwd / "raw").mkdir()
    (cli.cwd / "raw" / "a.csv").write_text("id,age\n1,30\n2,12\n", encoding="utf-8")
    _, err = cli("add", "raw/a.csv", code=2)
    assert "fails 1 expectation(s)" in err
    (cli.cwd / "broken.yaml").write_text("expectations:\n  - [\n", encoding="utf-8")
    (cli.cwd / "b.csv").write_text("id\n1\n", encoding="utf-8")
    before = json.loads(cli("log", "--json")[0])["events"][0]["seq"]
    _, err = cli("add", "b.csv", "--expect", "broken.yaml", code=2)
    assert "broken.yaml:3:" in err
    assert json.loads(cli("log", "--json")[0])["events"][0]["seq"] == before
    assert "b" not in {a["name"] for a in json.loads(cli("ls", "--json")[0])["artifacts"]}
