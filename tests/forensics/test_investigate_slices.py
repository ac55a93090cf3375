"""`custody investigate slices` on the credit world: the planted group's slice first, the purchased file
over-represented in its training records, its flagged records traced to raw lines."""

from __future__ import annotations

import pytest

from conftest import Cli
from credit_world import build
from mlcustody.interfaces import demo_investigate as world


def test_the_planted_slice_and_its_source(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    planted = build(cli, monkeypatch)
    doc = cli.json(
        "investigate", "slices", "credit-risk@1", "--data", "credit-train", "--label", "approved", "--exclude", "group"
    )
    top = doc["search"]["slices"][0]
    assert {"column": "group", "value": "B", "low": None, "high": None} in top["conditions"]
    evidence = doc["training"][0]
    first = evidence["source_mix"][0]
    assert first["path"] == world.PURCHASED and first["p_value"] < 1e-6 and first["lift"] > 1.5
    lines = {raw["locator"] for record in evidence["flagged"] for raw in record["raw"]}
    listed = {line for line in lines if line.startswith(world.PURCHASED)}
    recall = len(listed & planted.lines) / len(planted.lines)
    precision = len(listed & planted.lines) / len(listed)
    assert recall >= 0.9 and precision >= 0.8, (recall, precision)
    out, _ = cli("investigate", "slices", "credit-risk@1", "--data", "credit-train", "--label", "approved")
    assert "group = B" in out and world.PURCHASED in out
