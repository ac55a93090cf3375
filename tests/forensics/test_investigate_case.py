"""Acceptance: on the planted credit world, `custody investigate case` ranks the contaminated group's slice
first, names the purchased loan file as over-represented (Fisher p < 1e-6) and lists its flipped raw
lines with recall ≥ 0.9 and precision ≥ 0.8 — reproducibly, as a report in the chain of custody."""

from __future__ import annotations

import pytest

from conftest import Cli
from credit_world import build
from mlcustody.interfaces import demo_investigate as world

CASE = ("investigate", "case", "credit-risk@1", "--data", "credit-train", "--sensitive", "group", "--label", "approved")


def test_the_case_leads_to_the_flipped_raw_lines(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    planted = build(cli, monkeypatch)
    doc = cli.json(*CASE)
    top = doc["slices"]["slices"][0]
    assert {"column": "group", "value": "B", "low": None, "high": None} in top["conditions"]
    first = doc["top_slice"]["source_mix"][0]
    assert first["path"] == world.PURCHASED and first["p_value"] < 1e-6
    listed = {
        raw["locator"]
        for record in doc["top_slice"]["flagged"]
        for raw in record["raw"]
        if raw["locator"].startswith(world.PURCHASED)
    }
    hits = len(listed & planted.lines)
    assert hits / len(planted.lines) >= 0.9 and hits / len(listed) >= 0.8, (hits, len(listed), len(planted.lines))
    by_source = {s["path"]: s for s in doc["label_issues"]["by_source"]}
    assert by_source[world.PURCHASED]["rate"] > 5 * by_source[world.BRANCH]["rate"]
    assert doc["run"]["name"] == "credit-train-model" and doc["training_set"]["ref"] == "credit-train@1"
    story = " ".join(doc["findings"])
    assert "raw/purchased_loans@1 (raw/purchased_loans.csv) is over-represented" in story
    assert doc["model"]["digest"] in story and doc["training_set"]["records"][:16] in story

    out, _ = cli(*CASE, "--json")
    again, _ = cli(*CASE, "--json")
    assert out == again  # byte-identical; the report is reused, not recorded twice
    lineage = cli.json("lineage", doc["report"]["ref"])
    assert {"credit-train@1", "credit-model@1"} <= {node["label"] for node in lineage["nodes"]}
    page = cli.cwd / "case.html"
    text, _ = cli(*CASE, "--html", str(page))
    assert "over-represented" in text
    html = page.read_text(encoding="utf-8")
    assert "<svg" in html and world.PURCHASED in html and "<script" not in html
    assert cli.json("verify")["ok"]
