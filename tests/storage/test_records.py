"""Record manifests end to end: ids, locators, statistics, record diff, lookup, bad input."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import Cli

HEADER = ["loan_id", "applied", "region", "income", "amount", "approved"]


def _loans(n: int = 20) -> list[list[str]]:
    return [
        [
            f"L-{i:05d}",
            f"2024-03-{1 + i % 28:02d}",
            ["north", "south"][i % 2],
            f"{1000 + i * 10.5}",
            str(500 + i),
            ["true", "false"][i % 3 == 0],
        ]
        for i in range(n)
    ]


def _write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def test_acceptance_keyed_csv_versions_and_record_diff(cli: Cli) -> None:
    cli("init")
    rows = _loans()
    _write_csv(cli.cwd / "loans.csv", rows)
    added = cli.json("add", "loans.csv", "--records", "--key", "loan_id")["results"][0]["artifact"]
    records = added["meta"]["records"]
    assert records["count"] == 20 and len(records["manifest"]) == 64 and records["key"] == ["loan_id"]
    assert {c["name"] for c in records["columns"]} == set(HEADER)

    for i in (3, 7, 11):  # edit 3
        rows[i][3] = "99999.5"
    del rows[5]  # delete 1
    rows += [
        ["L-90000", "2024-04-01", "east", "1.5", "2", "true"],
        ["L-90001", "2024-04-02", "west", "2", "3", "false"],
    ]
    _write_csv(cli.cwd / "loans.csv", rows)
    cli("add", "loans.csv", "--records", "--key", "loan_id")
    diff = cli.json("diff", "loans@1", "loans@2", "--records")
    assert diff["matched_by"] == "record_id"
    assert diff["summary"] == {"added": 2, "removed": 1, "changed": 3, "unchanged": 16}
    assert [r["record_id"] for r in diff["examples"]["changed"]] == ["L-00003", "L-00007", "L-00011"]
    assert [r["record_id"] for r in diff["examples"]["removed"]] == ["L-00005"]
    assert "income" in diff["stats"]

    found = cli.json("show", "loans@1", "--record", "L-00007")["found"]
    assert found[0]["source"] == "loans.csv:9" and found[0]["verified"] is True
    assert found[0]["values"]["region"] == "south" and found[0]["values"]["amount"] == 507
    line = (cli.cwd / "loans.csv").read_text().splitlines()  # v2 on disk; v1 comes from the store
    assert line[0].startswith("loan_id")
    by_fp = cli.json("show", "loans@1", "--fingerprint", found[0]["fingerprint"])["found"]
    assert by_fp[0]["record_id"] == "L-00007"
    stats = cli.json("show", "loans@2", "--stats")["stats"]
    assert stats["income"]["type"] == "float" and stats["income"]["count"] == 21 and stats["income"]["nulls"] == 0
    assert stats["region"]["top"][0]["count"] >= 10


def test_unkeyed_records_are_located_by_line_and_diffed_by_fingerprint(cli: Cli) -> None:
    cli("init")
    (cli.cwd / "logs").mkdir()
    (cli.cwd / "logs" / "a.log").write_text("boot\n\nlogin alice\r\nlogout alice\n")
    (cli.cwd / "logs" / "b.log").write_text("boot\n")
    cli("add", "logs", "--records")
    (cli.cwd / "logs" / "a.log").write_text("inserted first\nboot\n\nlogin alice\r\nlogout alice\n")
    cli("add", "logs", "--records")
    diff = cli.json("diff", "logs@1", "logs@2", "--records")
    assert diff["matched_by"] == "fingerprint"
    assert diff["summary"] == {"added": 1, "removed": 0, "changed": 0, "unchanged": 4}
    found = cli.json("show", "logs@1", "--record", "logs/a.log:3")["found"][0]
    assert found["values"] == {"line": "login alice"} and found["verified"]


def test_quoted_newlines_and_parquet_locators(cli: Cli) -> None:
    cli("init")
    (cli.cwd / "notes.csv").write_text('id,text\n1,"two\nlines"\n2,plain\n\n3,"a ""quote"""\n')
    cli("add", "notes.csv", "--records")
    found = cli.json("show", "notes.csv", "--record", "notes.csv:6")["found"][0]
    assert found["values"] == {"id": 3, "text": 'a "quote"'} and found["verified"]
    assert cli.json("show", "notes.csv", "--record", "notes.csv:4")["found"][0]["values"]["text"] == "plain"
    pq.write_table(pa.table({"k": [1, 2, 3], "v": ["x", "y", None]}), cli.cwd / "t.parquet", row_group_size=2)
    cli("add", "t.parquet", "--records", "--key", "k")
    hit = cli.json("show", "t.parquet", "--record", "3")["found"][0]
    assert hit["source"] == "t.parquet#2" and hit["values"] == {"k": 3, "v": None} and hit["verified"]


def test_empty_file_gives_a_valid_empty_manifest(cli: Cli) -> None:
    cli("init")
    (cli.cwd / "empty.csv").write_text("")
    records = cli.json("add", "empty.csv", "--records")["results"][0]["artifact"]["meta"]["records"]
    assert records["count"] == 0
    cli("verify")


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("a,b\n1,2\n3,4,5\n", (), "data.csv:3: expected 2 fields, found 3"),
        ('a,b\n1,2\n3,"x"y\n', (), "data.csv:3"),
        (b"a,b\n1,2\n3,\xff\xfe\n", (), "data.csv:3: bytes that are not UTF-8"),
        ("a,b\n1,2\n1,3\n", ("--key", "a"), "duplicate values of key a: 1 (data.csv:2, data.csv:3)"),
        ("a,b\n1,2\n", ("--key", "nope"), "nope"),
        ("a,b\n1,2\n", ("--format", "xlsx"), "unknown record format"),
    ],
)
def test_bad_record_input_exits_2_naming_the_place_and_stores_nothing(
    cli: Cli, content: str | bytes, args: tuple[str, ...], message: str
) -> None:
    cli("init")
    path = cli.cwd / "data.csv"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    _, err = cli("add", "data.csv", "--records", *args, code=2)
    assert message in err and err.count("\n") == 1
    assert cli.json("ls")["artifacts"] == []


def test_asking_for_records_of_a_version_without_them_says_how(cli: Cli) -> None:
    cli("init")
    _write_csv(cli.cwd / "loans.csv", _loans(3))
    cli("add", "loans.csv")
    _, err = cli("show", "loans.csv", "--stats", code=2)
    assert "--records" in err
    again = cli.json("add", "loans.csv", "--records")["results"][0]
    assert again["created"] and again["artifact"]["version"] == 2  # same bytes, now with a manifest
