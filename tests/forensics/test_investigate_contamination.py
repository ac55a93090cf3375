"""`custody investigate contamination`: near-duplicates against brute-force Jaccard and datasketch, exact
duplicates against pandas, and the planted resold copies of the credit world traced to their raw lines —
including leakage into a holdout written by a plain script whose record links were inferred."""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pyarrow as pa
import pytest

from conftest import Cli
from credit_world import build
from mlcustody import Workspace
from mlcustody.forensics import near_duplicates
from mlcustody.interfaces import demo_investigate as world

BRANCH_SOURCE, PURCHASED_SOURCE = "raw/branch_loans@1", "raw/purchased_loans@1"


def _planted_rows(rows: int, columns: int, seed: int) -> tuple[np.ndarray, dict[int, set[tuple[int, int]]]]:
    """Random integer rows with pairs planted that differ in 1, 2 and 4 columns."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 10_000, size=(rows, columns))
    planted: dict[int, set[tuple[int, int]]] = {1: set(), 2: set(), 4: set()}
    for k, differ in enumerate(itertools.islice(itertools.cycle(planted), rows // 4)):
        i, j = k, rows - 1 - k
        x[j] = x[i]
        x[j, rng.choice(columns, differ, replace=False)] = rng.integers(10_000, 20_000, differ)
        planted[differ].add((i, j))
    return x, planted


def _brute_force(x: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    """Every pair with set Jaccard of its col=value tokens ≥ threshold, from Python sets."""
    tokens = [{f"{c}={v}" for c, v in enumerate(row)} for row in x.tolist()]
    return {
        (i, j)
        for i, j in itertools.combinations(range(len(tokens)), 2)
        if len(tokens[i] & tokens[j]) / len(tokens[i] | tokens[j]) >= threshold
    }


def _codes(x: np.ndarray) -> np.ndarray:
    return near_duplicates.encode([pa.array(x[:, c]) for c in range(x.shape[1])])


def test_near_duplicates_equal_brute_force_jaccard_with_no_false_accepts() -> None:
    x, planted = _planted_rows(1200, 20, seed=3)
    truth = _brute_force(x, 0.8)
    assert truth == planted[1] | planted[2]  # d=1: 0.905, d=2: 0.818 (in), d=4: 0.667 (out)
    found = near_duplicates.find(_codes(x), 0.8)
    pairs = set(zip(found.left.tolist(), found.right.tolist(), strict=True))
    assert not pairs - truth  # exact verification: no false accept
    assert len(pairs & truth) / len(truth) >= 0.99
    for i, j, jaccard in zip(found.left, found.right, found.jaccard, strict=True):
        a, b = ({f"{c}={v}" for c, v in enumerate(x[k])} for k in (i, j))
        assert jaccard == pytest.approx(len(a & b) / len(a | b), abs=1e-12)
    assert found.banding.bands * found.banding.rows <= near_duplicates.NUM_PERM
    assert found.banding.p_candidate_at_threshold >= near_duplicates.TARGET_RECALL


def test_banding_beats_datasketch_defaults_and_matches_it_with_the_same_bands() -> None:
    datasketch = pytest.importorskip("datasketch")
    x, planted = _planted_rows(800, 20, seed=5)
    two = planted[2]  # J = 0.818, just above the threshold
    banding = near_duplicates.choose_banding(0.8)

    def sketch_pairs(**lsh: object) -> set[tuple[int, int]]:
        index = datasketch.MinHashLSH(num_perm=128, **lsh)
        hashes = datasketch.MinHash.bulk([[f"{c}={v}".encode() for c, v in enumerate(row)] for row in x.tolist()])
        for i, m in enumerate(hashes):
            index.insert(i, m)
        found = {tuple(sorted((i, j))) for i, m in enumerate(hashes) for j in index.query(m) if j != i}
        return {p for p in found if (x[p[0]] == x[p[1]]).sum() / (40 - (x[p[0]] == x[p[1]]).sum()) >= 0.8}

    default = sketch_pairs(threshold=0.8)
    chosen = sketch_pairs(params=(banding.bands, banding.rows))
    ours = near_duplicates.find(_codes(x), 0.8)
    mine = set(zip(ours.left.tolist(), ours.right.tolist(), strict=True))
    assert len(default & two) / len(two) < 0.8  # datasketch's own tuning misses many 2-of-20 pairs
    assert len(chosen & two) / len(two) >= 0.97 and len(mine & two) / len(two) >= 0.97
    assert len(mine ^ chosen) <= 0.03 * len(two)  # the same bands find the same pairs


def test_choose_banding_is_the_sharpest_that_keeps_recall() -> None:
    chosen = near_duplicates.choose_banding(0.8)
    assert (chosen.bands, chosen.rows) == (21, 6)
    sharper = near_duplicates.candidate_probability(0.8, 128 // 7, 7)
    assert sharper < near_duplicates.TARGET_RECALL <= chosen.p_candidate_at_threshold


HOLDOUT = """\
import pandas as pd

loans = pd.read_csv("raw/purchased_loans.csv").head(100)
rows = loans.merge(pd.read_csv("raw/customers.csv"), on="customer_id")
rows["income_k"] = rows["income"] / 1000
rows["debt_ratio"] = rows["debt"] / rows["income"]
columns = ["loan_id", "customer_id", "income_k", "debt_ratio", "age", "group", "region", "approved"]
rows[columns].to_csv("holdout.csv", index=False)
"""


def test_resold_copies_are_traced_to_their_raw_lines_and_source(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    planted = build(cli, monkeypatch, resold=60)
    (cli.cwd / "holdout.py").write_text(HOLDOUT, encoding="utf-8")
    cli("run", "--name", "holdout", "--", sys.executable, "holdout.py")
    args = ("investigate", "contamination", "credit-train", "--label", "approved", "--threshold", "0.7")
    doc = cli.json(*args, "--against", "holdout", "--by-source")

    def lines(group: list[dict[str, object]]) -> frozenset[str]:
        return frozenset(
            raw["locator"]
            for record in group
            for raw in record["raw"]  # type: ignore[attr-defined]
            if not raw["locator"].startswith(world.CUSTOMERS)
        )

    def expected(*kinds: str) -> set[frozenset[str]]:
        return {frozenset((c.original, c.copy)) for c in planted.copies if c.kind in kinds}

    assert {lines(g["records"]) for g in doc["exact"]["listed"]} == expected("exact")
    assert {lines(g["records"]) for g in doc["conflicting"]["listed"]} == expected("flipped")
    assert all(g["labels"] == ["0", "1"] for g in doc["conflicting"]["listed"])
    near = {lines([p["first"], p["second"]]) for p in doc["near"]["listed"]}
    assert near == expected("flipped", "retouched")  # one column of six differs: J = 5/7; nothing else
    assert doc["near"]["banding"]["threshold"] == 0.7

    suspects = {(s["path"], s["finding"]) for s in doc["suspects"]}
    assert {(world.PURCHASED, "exact"), (world.PURCHASED, "near"), (world.PURCHASED, "conflicting")} <= suspects
    assert not any(path == world.BRANCH for path, _ in suspects)

    leakage = doc["leakage"]
    # polars divides by a constant as a multiplication, pandas does not: a few income_k differ by one ulp,
    # so those copies are near (one column of six differs), not exact
    assert leakage["rows"] == 100 and leakage["exact"] > 80 and leakage["exact"] + leakage["near"] == 100
    assert leakage["exact_ratio"] == leakage["exact"] / 100
    assert leakage["lineage"] == 100  # through the links inferred from the plain script
    shared = {item["source"]: item["shared"] for item in leakage["by_source"]}
    assert shared[PURCHASED_SOURCE] == 100 and BRANCH_SOURCE not in shared
    first = next(line for line in leakage["lines"] if line["source"] == PURCHASED_SOURCE)
    assert first["locator"].startswith(world.PURCHASED + ":") and first["dataset_records"] and first["against_records"]

    top = doc["slices"][0]
    assert top["slice"] == "group = B" and top["share"]["source"] == PURCHASED_SOURCE
    assert top["share"]["p_adjusted"] < 1e-6
    profile = {s["path"]: s["records"] for s in doc["sources"]}
    assert profile[world.PURCHASED] == 660 and profile[world.BRANCH] == 1400

    again, _ = cli(*args, "--against", "holdout", "--by-source", "--json")
    assert cli(*args, "--against", "holdout", "--by-source", "--json")[0] == again  # reproducible bytes
    text, _ = cli(*args, "--html", str(cli.cwd / "contamination.html"))
    assert "suspect: raw/purchased_loans@1" in text
    assert "<svg" in (cli.cwd / "contamination.html").read_text(encoding="utf-8")


def test_exact_duplicates_equal_pandas_duplicated(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    build(cli, monkeypatch, branch=300, purchased=120, resold=30)
    doc = cli.json("investigate", "contamination", "credit-train")
    content = doc["exact"]["columns"]
    assert "loan_id" not in content and "approved" in content and doc["rows"] == 450
    ws = Workspace.open(cli.cwd)
    try:
        frame = ws.record_table(ws.resolve("credit-train")).to_pandas()
    finally:
        ws.close()
    oracle = frame[frame.duplicated(subset=content, keep=False)].groupby(content, dropna=False)["record_id"]
    expected = {frozenset(ids) for _, ids in oracle}
    found = {frozenset(r["record_id"] for r in g["records"]) for g in doc["exact"]["listed"]}
    assert found == expected and len(found) == doc["exact"]["groups"] == 10
    assert doc["exact"]["surplus"] == int(frame.duplicated(subset=content, keep="first").sum()) == 10


def test_bad_input_names_the_fix(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    build(cli, monkeypatch, branch=200, purchased=100)
    _, err = cli("investigate", "contamination", "credit-train", "--label", "nope", code=2)
    assert "its columns are" in err
    _, err = cli("investigate", "contamination", "credit-train", "--threshold", "1.5", code=2)
    assert "between 0 and 1" in err
    (cli.cwd / "notes.txt").write_text("plain text\n", encoding="utf-8")
    cli("add", "notes.txt")
    _, err = cli("investigate", "contamination", "notes", code=2)
    assert "record" in err
