"""`investigate drift --evidently-compatible`: the test Evidently's data-drift preset picks by default for
each column type and size, its score and verdict — each score checked against scipy computed Evidently's
way (Evidently itself does not import against this pandas, so its definitions are the oracle)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import distance
from scipy.stats import chi2_contingency, chisquare, ks_2samp, wasserstein_distance

from conftest import Cli
from mlcustody.forensics import evidently_compat


def _shares(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = sorted(set(ref.tolist()) | set(cur.tolist()))
    return (
        np.array([np.sum(ref == v) for v in values], dtype=float),
        np.array([np.sum(cur == v) for v in values], dtype=float),
    )


def test_small_reference_uses_p_value_tests() -> None:
    rng = np.random.default_rng(0)
    x_ref, x_cur = rng.normal(size=800), rng.normal(0.3, 1, size=900)
    found = evidently_compat.verdict("x", x_ref, x_cur)
    assert (found.test, found.column_type, found.threshold) == ("ks", "num", 0.05)
    assert found.score == pytest.approx(ks_2samp(x_ref, x_cur).pvalue, rel=1e-12) and found.drifted

    c_ref, c_cur = rng.choice(["a", "b", "c", "d"], 800), rng.choice(["a", "b", "c", "d"], 900, p=[0.4, 0.2, 0.2, 0.2])
    found = evidently_compat.verdict("c", c_ref, c_cur)
    ref, cur = _shares(c_ref, c_cur)
    expected = chisquare(cur, ref * cur.sum() / ref.sum()).pvalue  # goodness of fit, not homogeneity
    assert (found.test, found.column_type) == ("chisquare", "cat") and found.score == pytest.approx(expected, rel=1e-9)

    few_ref, few_cur = rng.integers(0, 4, 800), rng.integers(0, 4, 900)  # numeric, ≤ 5 values: categorical tests
    assert evidently_compat.verdict("few", few_ref, few_cur).test == "chisquare"

    b_ref, b_cur = rng.random(800) < 0.3, rng.random(900) < 0.4
    found = evidently_compat.verdict("b", b_ref.astype(int), b_cur.astype(int))
    table = np.array([_shares(b_ref, b_cur)[0], _shares(b_ref, b_cur)[1]])
    assert found.test == "z"  # the pooled two-proportion z test is the uncorrected 2×2 chi-square
    assert found.score == pytest.approx(chi2_contingency(table, correction=False).pvalue, rel=1e-9)
    assert found.drifted == (found.score < 0.05)
    same = evidently_compat.verdict("s", np.zeros(10, dtype=int), np.zeros(12, dtype=int))
    assert (same.score, same.drifted) == (1.0, False)


def test_large_reference_uses_distances() -> None:
    rng = np.random.default_rng(1)
    x_ref, x_cur = rng.normal(10, 2, size=5000), rng.normal(10.5, 2, size=4000)
    found = evidently_compat.verdict("x", x_ref, x_cur)
    assert (found.test, found.threshold) == ("wasserstein", 0.1)
    assert found.score == pytest.approx(wasserstein_distance(x_ref, x_cur) / np.std(x_ref), rel=1e-12)
    assert found.drifted

    c_ref, c_cur = rng.choice(["a", "b", "c"], 5000), rng.choice(["a", "b", "c"], 4000, p=[0.34, 0.33, 0.33])
    found = evidently_compat.verdict("c", c_ref, c_cur)
    ref, cur = _shares(c_ref, c_cur)
    assert found.test == "jensenshannon"
    assert found.score == pytest.approx(distance.jensenshannon(ref / ref.sum(), cur / cur.sum()), rel=1e-12)
    assert not found.drifted

    whole = evidently_compat.report([("x", x_ref, x_cur), ("c", c_ref, c_cur), ("y", x_ref, x_ref + 5.0)])
    assert (whole.drifted_columns, whole.dataset_drift) == (2, True)


def _write(path: Path, rows: list[list[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "income", "region", "member"])
        writer.writerows(rows)


def test_cli_reports_evidently_verdicts(cli: Cli) -> None:
    rng = np.random.default_rng(2)
    cli("init")
    for name, shift, count in (("april.csv", 0.0, 1500), ("may.csv", 800.0, 1200)):
        rows = [
            [
                f"{name}-{i}",
                round(float(rng.normal(3000 + shift, 400)), 2),
                str(rng.choice(["n", "s", "e"])),
                int(rng.random() < 0.5),
            ]
            for i in range(count)
        ]
        _write(cli.cwd / name, rows)
        cli("add", name, "--records", "--key", "id", "--type", "dataset")
    chosen = ("--columns", "income", "--columns", "region", "--columns", "member")
    doc = cli.json("investigate", "drift", "april", "may", *chosen, "--evidently-compatible")
    verdicts = {c["column"]: c for c in doc["evidently"]["columns"]}
    assert verdicts["income"]["test"] == "wasserstein" and verdicts["income"]["drifted"]
    assert verdicts["region"]["test"] == "jensenshannon" and not verdicts["region"]["drifted"]
    assert verdicts["member"]["test"] == "jensenshannon"  # numeric with two values, large reference
    assert doc["evidently"]["drifted_columns"] == 1 and not doc["evidently"]["dataset_drift"]
    plain = cli.json("investigate", "drift", "april", "may", *chosen)
    assert plain["evidently"] is None and plain["columns"] == doc["columns"]
    text, _ = cli("investigate", "drift", "april", "may", *chosen, "--evidently-compatible")
    assert "as Evidently: 1 of 3 columns drifted" in text
