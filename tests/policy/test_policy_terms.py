"""Terms through lineage: a non-commercial vendor file joined into a commercial credit model by a
pipeline of plain scripts (no mlcustody import) run by `custody run`; the check names the vendor file
and exactly the vendor records that reached the model; the production alias is gated."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import Cli
from mlcustody.workspace import plain_pipeline

PASSPHRASE = "policy test passphrase"
VENDOR = "raw/broker_feed"


@pytest.fixture
def credit(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The plain pipeline run stage by stage and its model registered as credit@1."""
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", PASSPHRASE)
    plain_pipeline.write(cli.cwd, rows_per_source=120)
    cli("init")
    for stage in plain_pipeline.STAGES:
        cli("run", "--name", stage, "--", sys.executable, f"{stage}.py")
    cli("keys", "generate")
    runs = json.loads(cli("runs", "--json", "--name", "train")[0])["runs"]
    cli("model", "register", "credit", "--run", runs[0]["id"][:12])
    return cli


def _vendor_rows_in_model(root: Path) -> int:
    """The oracle: the vendor's rows that survive clean.py's filters, read with pandas."""
    raw = pd.read_csv(root / f"{VENDOR}.csv")
    return int((raw["income"].notna() & (raw["income"] > 0)).sum())


def test_non_commercial_vendor_taints_a_commercial_model(credit: Cli) -> None:
    cli = credit
    set_doc = cli.json("terms", "set", f"{VENDOR}@1", "--license", "CC-BY-NC-4.0", "--purpose", "research")
    assert set_doc["terms"]["license"] == "CC-BY-NC-4.0" and set_doc["seq"] == 1

    clean = cli.json("check", "terms", "credit@1")  # no commercial use asked: nothing to flag
    assert clean["ok"] and [s["ref"] for s in clean["sources"]] == [f"{VENDOR}@1"]

    doc = cli.json("check", "terms", "credit@1", "--commercial", code=1)
    [finding] = doc["findings"]
    expected = _vendor_rows_in_model(cli.cwd)
    assert finding["rule"] == "non_commercial" and finding["source"] == f"{VENDOR}@1"
    assert finding["path"] == f"{VENDOR}.csv" and finding["level"] == "record"
    assert finding["records"] == expected and expected < 120
    assert len(finding["record_ids"]) == min(expected, 100)
    out, _ = cli("check", "terms", "credit@1", "--commercial", code=1)
    assert f"{VENDOR}.csv" in out and f"{expected} records" in out

    purpose = cli.json("check", "terms", "credit@1", "--purpose", "credit-scoring", code=1)
    assert [f["rule"] for f in purpose["findings"]] == ["purpose_not_covered"]

    _, err = cli("model", "alias", "credit", "production", "1", "--reason", "go live", code=2)
    assert "non_commercial" in err and f"{VENDOR}.csv" in err and len(err.strip().splitlines()) == 1
    _, err = cli("model", "alias", "credit", "production", "1", "--override-terms", code=2)
    assert "reason" in err
    cli("model", "alias", "credit", "staging", "1", "--reason", "not gated")  # only production is gated

    cli("model", "alias", "credit", "production", "1", "--override-terms", "--reason", "licensed by contract 42")
    events = json.loads(cli("log", "--json")[0])["events"]
    [override] = [e for e in events if e["action"] == "terms.override"]
    row = override["payload"]["row"]
    assert row["reason"] == "licensed by contract 42" and row["actor"] == override["actor"] and row["version"] == 1
    assert json.loads(cli("model", "show", "credit@1", "--json")[0])["aliases"]["production"]

    log = cli.cwd / "predictions.jsonl"
    plain_pipeline.decisions(cli.cwd, log, count=5)
    _, err = cli("decisions", "import", str(log), "--model", "credit@1", "--purpose", "credit-scoring", code=2)
    assert "purpose_not_covered" in err and f"{VENDOR}.csv" in err
    assert json.loads(cli("decisions", "ls", "--json")[0])["decisions"] == []
    cli("decisions", "import", str(log), "--model", "credit@1", "--purpose", "research")
    cli("verify")


def test_consent_column_withdrawn_records_are_named(credit: Cli) -> None:
    cli = credit
    raw = pd.read_csv(cli.cwd / f"{VENDOR}.csv")
    # a second version of the vendor file with a consent column, added with records and linked nowhere:
    # its own check names exactly the withdrawn rows (artifact level: every record is its own)
    consent = ["withdrawn" if i % 10 == 0 else "consent" for i in range(len(raw))]
    raw.assign(consent=consent).to_csv(cli.cwd / "vendor_consent.csv", index=False)
    cli("add", "vendor_consent.csv", "--records", "--key", "application_id")
    done = cli.json("terms", "set", "vendor_consent", "--consent-column", "consent", "--purpose", "credit-scoring")
    assert done["consent_counts"] == {"withdrawn": 12, "consent": 108}
    doc = cli.json("check", "terms", "vendor_consent@1", code=1)
    [finding] = doc["findings"]
    assert finding["rule"] == "consent_withdrawn" and finding["records"] == 12
    assert sorted(finding["record_ids"]) == sorted(raw["application_id"][::10].tolist())


def test_bad_terms_change_nothing(credit: Cli) -> None:
    cli = credit
    before = json.loads(cli("log", "--json")[0])["events"][0]["seq"]
    _, err = cli("terms", "set", f"{VENDOR}@1", "--license", "CC-BY-NC-4", code=2)
    assert "CC-BY-NC-4.0" in err and len(err.strip().splitlines()) == 1  # the closest id is suggested
    _, err = cli("terms", "set", f"{VENDOR}@1", "--consent", "maybe", code=2)
    assert "legitimate-interests" in err
    raw = pd.read_csv(cli.cwd / f"{VENDOR}.csv")
    raw.assign(consent=["yes" if i % 2 else "consent" for i in range(len(raw))]).to_csv(
        cli.cwd / "bad_consent.csv", index=False
    )
    cli("add", "bad_consent.csv", "--records")
    after_add = json.loads(cli("log", "--json")[0])["events"][0]["seq"]
    _, err = cli("terms", "set", "bad_consent", "--consent-column", "consent", code=2)
    assert "'yes'" in err and "unknown values" in err
    _, err = cli("terms", "set", f"{VENDOR}@1", "--retention", "soon", code=2)
    assert "YYYY-MM-DD" in err
    assert json.loads(cli("log", "--json")[0])["events"][0]["seq"] == after_add > before


def test_terms_toml_beside_the_data_and_retention(credit: Cli) -> None:
    cli = credit
    folder = cli.cwd / "vendor"
    folder.mkdir()
    (folder / "terms.toml").write_text(
        'license = "CC-BY-4.0"\nconsent = "contract"\npurposes = ["credit-scoring"]\nretention = "2020-01-01"\n',
        encoding="utf-8",
    )
    (folder / "feed.csv").write_text("id,x\n1,2\n", encoding="utf-8")
    cli("add", "vendor/feed.csv")
    shown = cli.json("show", "vendor/feed")
    assert shown["terms"]["license"] == "CC-BY-4.0" and shown["terms"]["purposes"] == ["credit-scoring"]
    doc = cli.json("check", "terms", "vendor/feed@1", "--commercial", "--purpose", "credit-scoring", code=1)
    assert [f["rule"] for f in doc["findings"]] == ["retention_expired"]
