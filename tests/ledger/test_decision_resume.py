"""An interrupted ingest run again: identical decisions skipped, a reused id with other content refused."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from conftest import Cli
from mlcustody import UsageError, Workspace


def _frame(ids: range, score: float = 0.5) -> pa.Table:
    return pa.table(
        {
            "decision_id": [f"d{i}" for i in ids],
            "time": [f"2026-03-01T00:00:{i:02d}Z" for i in ids],
            "income": [1000 + i for i in ids],
            "subject": [f"s{i % 3}" for i in ids],
            "output": [json.dumps({"score": score}) for _ in ids],
        }
    )


def test_record_batch_resume(model_ws: Workspace) -> None:
    with model_ws.decision_log("credit@1") as log:
        assert log.record_batch(_frame(range(6)), time_col="time", subject_col="subject") == 6
    with model_ws.decision_log("credit@1") as log:
        with pytest.raises(UsageError, match="already in the log"):  # without resume: refused, as before
            log.record_batch(_frame(range(10)), time_col="time", subject_col="subject")
        assert log.record_batch(_frame(range(10)), time_col="time", subject_col="subject", resume=True) == 4
        assert log.record_batch(_frame(range(10)), time_col="time", subject_col="subject", resume=True) == 0
        with pytest.raises(UsageError, match="decision d3 is already in the log with another output"):
            log.record_batch(_frame(range(3, 12), score=0.9), time_col="time", subject_col="subject", resume=True)
    assert [d.decision_id for d in model_ws.list_decisions()] == [f"d{i}" for i in range(10)]
    assert model_ws.verify_decisions().problems == [] and model_ws.verify().problems == []


def test_cli_import_resume(registered_cli: tuple[Cli, str], tmp_path: Path) -> None:
    cli, _ = registered_cli
    lines = [
        {"decision_id": f"D-{i}", "time": f"2026-03-01T00:00:{i:02d}Z", "income": i, "output": i % 2} for i in range(8)
    ]
    first, whole = tmp_path / "first.jsonl", tmp_path / "whole.jsonl"
    first.write_text("".join(json.dumps(line) + "\n" for line in lines[:5]))  # as far as a killed import got
    whole.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert cli.json("decisions", "import", str(first), "--model", "credit@1")["count"] == 5
    _, err = cli("decisions", "import", str(whole), "--model", "credit@1", code=2)
    assert "already in the log" in err
    doc = cli.json("decisions", "import", str(whole), "--model", "credit@1", "--resume")
    assert (doc["count"], doc["skipped"], doc["first_position"]) == (3, 5, 5)
    lines[2]["output"] = 7
    whole.write_text("".join(json.dumps(line) + "\n" for line in lines))
    _, err = cli("decisions", "import", str(whole), "--model", "credit@1", "--resume", code=2)
    assert "D-2 is already in the log with another output" in err
    assert cli.json("verify")["ok"] is True and cli.json("verify", "--decisions")["checked"]["decisions"] == 8
