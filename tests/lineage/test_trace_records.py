"""`custody trace decision ID --records N`: the training records behind one decision, traced to raw lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from _loans_world import CREDIT_INPUTS, build_loans_world
from _models import PASSPHRASE
from conftest import Cli
from mlcustody import Workspace, load_model
from mlcustody.forensics.attribution import attribute


@pytest.fixture
def traced(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> tuple[Cli, str]:
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", PASSPHRASE)
    cli("init")
    cli("keys", "generate", "--name", "registry")
    ws = Workspace.open(cli.cwd)
    try:
        return cli, build_loans_world(ws)
    finally:
        ws.close()


def _oracle(root: Path, inputs: dict[str, Any], top: int) -> tuple[Any, pl.DataFrame]:
    """Attribution called directly on the model file and the training rows, in the order they were fitted."""
    data = pl.read_parquet(root / "trainset.parquet")
    rows = data.select("income_k", "debt_ratio").to_numpy()
    expected = attribute(
        load_model(root / "model.skops"), rows, data["approved"].to_numpy(), list(inputs.values()), top
    )
    return expected, data


def test_the_top_records_match_attribution_and_reach_their_raw_lines(traced: tuple[Cli, str]) -> None:
    cli, prepared = traced
    assert cli.json("trace", "decision", "D-1")["records"] is None  # not asked: the trace is as before

    doc = cli.json("trace", "decision", "D-1", "--records", "5")
    found = doc["records"]
    expected, data = _oracle(cli.cwd, CREDIT_INPUTS, 5)
    assert (found["dataset"], found["features"], found["label"]) == (
        "trainset@1",
        ["income_k", "debt_ratio"],
        "approved",
    )
    assert (found["method"], found["measure"]) == (expected.method, expected.measure)
    assert found["prediction"] == pytest.approx(expected.prediction, rel=1e-12)
    assert [r["rank"] for r in found["top"]] == [1, 2, 3, 4, 5]
    assert [r["record_id"] for r in found["top"]] == [data["loan_id"][i.index] for i in expected.top]
    assert [r["delta"] for r in found["top"]] == pytest.approx([i.delta for i in expected.top], rel=1e-12)
    for record, influence in zip(found["top"], expected.top, strict=True):
        row = data.row(influence.index, named=True)
        assert record["label"] == row["approved"]
        assert record["features"] == {"income_k": row["income_k"], "debt_ratio": row["debt_ratio"]}
        line = int(record["record_id"].removeprefix("L-")) + 2
        assert record["sources"] == [
            {"ref": "raw/loans@1", "record_id": record["record_id"], "source": f"raw/loans.csv:{line}"}
        ]
        hop = record["trace"]
        assert (hop["ref"], hop["step"]["run"], hop["step"]["relation"]) == ("trainset@1", prepared, "filter")
        assert hop["links"][0]["source"] == f"raw/loans.csv:{line}"

    again = cli.json("trace", "decision", "D-1", "--records", "5", "--label", "approved")["records"]
    assert again == found
    assert {k: v for k, v in doc.items() if k != "records"} == {
        k: v for k, v in cli.json("trace", "decision", "D-1").items() if k != "records"
    }


def test_the_human_trace_lists_the_records_with_their_first_raw_line(traced: tuple[Cli, str]) -> None:
    cli, _ = traced
    expected, data = _oracle(cli.cwd, CREDIT_INPUTS, 3)
    out, _ = cli("trace", "decision", "D-1", "--records", "3")
    assert "3 most influential of trainset@1 (influence; label approved" in out
    assert "if the record is left out of training" in out  # the measure says what delta means
    for rank, influence in enumerate(expected.top, start=1):
        record_id = data["loan_id"][influence.index]
        [row] = [line for line in out.splitlines() if f" {record_id} " in line]
        cells = [cell.strip() for cell in row.split("│")]
        source = f"raw/loans.csv:{int(record_id.removeprefix('L-')) + 2}"
        assert cells == [
            str(rank),
            record_id,
            f"{influence.delta:+.4g}",
            str(data["approved"][influence.index]),
            source,
            "tracked",  # followed through the SDK's _rid links, not inferred ones
        ]


def test_feature_names_of_the_model_choose_the_columns(traced: tuple[Cli, str]) -> None:
    cli, _ = traced
    found = cli.json("trace", "decision", "N-1", "--records", "3", "--label", "approved")["records"]
    assert (found["features"], found["label"], len(found["top"])) == (["income_k"], "approved", 3)
    assert set(found["top"][0]["features"]) == {"income_k"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("D-2", "--records", "5"), "the inputs of decision D-2 were crypto-shredded; attribution needs them"),
        (("D-secret", "--records", "5"), "the inputs of decision D-secret were not kept; attribution needs them"),
        (("N-1", "--records", "5"), "which column of trainset@1 is the label (candidates: debt_ratio, approved)"),
        (("N-1", "--records", "5", "--label", "nosuch"), "trainset@1 has no column 'nosuch'"),
        (("D-salary", "--records", "5"), "trainset@1 has no column(s) salary"),
        (("plain-1", "--records", "5"), "model version plain@1 has no training run"),
        (("bare-1", "--records", "5"), "of bare@1 read no dataset with a record manifest"),
        (("legacy-1", "--records", "5"), "legacy@1 is a pickle, which runs arbitrary code when loaded"),
        (("D-1", "--label", "approved"), "a label column was given without records"),
        (("D-1", "--records", "0"), "--records"),
    ],
)
def test_bad_input_is_refused_with_one_line(traced: tuple[Cli, str], args: tuple[str, ...], message: str) -> None:
    cli, _ = traced
    _, err = cli("trace", "decision", *args, code=2)
    assert message in err and len(err.strip().splitlines()) == 1
    assert "—" in err  # the hint
    assert not (cli.cwd / "unpickled").exists()
