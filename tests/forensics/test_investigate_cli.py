"""`custody investigate bias|drift` on the credit world: fairlearn/scipy numbers through the CLI, the report
artifact in the chain of custody, byte-identical JSON, and one-line errors for bad input."""

from __future__ import annotations

import pickle

import numpy as np
import polars as pl
import pytest
from fairlearn import metrics as fm

from conftest import Cli
from credit_world import build
from mlcustody import Workspace, load_model


@pytest.fixture
def credit(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    build(cli, monkeypatch, branch=700, purchased=300)
    return cli


def test_bias_equals_fairlearn_and_is_stored_as_a_report(credit: Cli, tmp_path: object) -> None:
    args = ("investigate", "bias", "credit-risk@1", "--data", "credit-train", "--sensitive", "group")
    doc = credit.json(*args, "--label", "approved")
    data = pl.read_parquet(credit.cwd / "credit-train.parquet").to_pandas()
    model = load_model(credit.cwd / "credit-model.skops")
    y_pred = model.predict(data[["income_k", "debt_ratio", "age"]])
    sensitive, y_true = data["group"].to_numpy(), data["approved"].to_numpy()
    frame = fm.MetricFrame(
        metrics={"tpr": fm.true_positive_rate, "selection_rate": fm.selection_rate},
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=sensitive,
    )
    for group in doc["result"]["groups"]:
        assert abs(group["tpr"] - frame.by_group.loc[group["group"], "tpr"]) <= 1e-9
        assert abs(group["selection_rate"] - frame.by_group.loc[group["group"], "selection_rate"]) <= 1e-9
    eod = {d["name"]: d for d in doc["result"]["disparities"]}["equalized_odds_difference"]
    assert (
        abs(eod["between_groups"] - fm.equalized_odds_difference(y_true, y_pred, sensitive_features=sensitive)) <= 1e-9
    )
    assert [c["ref"] for c in doc["read"]] == ["credit-model@1", "credit-train@1"]
    assert doc["model"]["ref"] == "credit-risk@1"

    again = credit(*args, "--label", "approved", "--json")[0]
    assert again == credit(*args, "--label", "approved", "--json")[0]  # byte-identical, the report reused
    report = doc["report"]["ref"]
    lineage = credit.json("lineage", report)
    labels = {node["label"] for node in lineage["nodes"]}
    assert {"credit-train@1", "credit-model@1", "raw/purchased_loans@1"} <= labels
    assert credit.json("verify")["ok"]
    page = credit.cwd / "bias.html"
    out, _ = credit(*args, "--label", "approved", "--html", str(page))
    assert "equalized_odds_difference" in out
    text = page.read_text(encoding="utf-8")
    assert "<svg" in text and "http" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_drift_between_two_versions(credit: Cli) -> None:
    ws = Workspace.open(credit.cwd)
    try:
        frame = pl.read_parquet(credit.cwd / "credit-train.parquet")
        shifted = frame.with_columns(pl.col("income_k") * 1.2).drop([c for c in frame.columns if c.startswith("_")])
        shifted.write_csv(credit.cwd / "later.csv")
        from mlcustody.workspace.results import RecordSpec

        ws.add([credit.cwd / "later.csv"], records=RecordSpec(key=("loan_id",)))
    finally:
        ws.close()
    doc = credit.json("investigate", "drift", "credit-train@1", "later@1", "--columns", "income_k", "--columns", "age")
    by = {c["column"]: c for c in doc["columns"]}
    from scipy import stats

    a, b = frame["income_k"].to_numpy(), shifted["income_k"].to_numpy()
    assert abs(by["income_k"]["ks"] - stats.ks_2samp(a, b).statistic) <= 1e-9
    assert abs(by["income_k"]["wasserstein"] - stats.wasserstein_distance(a, b)) <= 1e-9
    assert by["income_k"]["psi"] > 0.25 and by["age"]["psi"] < 0.01


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--sensitive", "gender"), "has no sensitive column 'gender' — its columns are loan_id, income_k"),
        (("--sensitive", "group", "--label", "outcome"), "has no label column 'outcome'"),
    ],
)
def test_unknown_columns_are_named(credit: Cli, args: tuple[str, ...], message: str) -> None:
    _, err = credit("investigate", "bias", "credit-risk@1", "--data", "credit-train", *args, code=2)
    assert message in err and len(err.strip().splitlines()) == 1


def test_data_without_records_says_how_to_add_them(credit: Cli) -> None:
    (credit.cwd / "plain.csv").write_text("group,income_k\nA,1\n", encoding="utf-8")
    credit("add", "plain.csv")
    _, err = credit("investigate", "bias", "credit-risk@1", "--data", "plain", "--sensitive", "group", code=2)
    assert "plain@1 has no record manifest" in err and "--records" in err


def test_a_pickled_model_needs_the_opt_in(credit: Cli) -> None:
    model = load_model(credit.cwd / "credit-model.skops")
    (credit.cwd / "legacy.pkl").write_bytes(pickle.dumps(model))
    credit("model", "register", "legacy", "--path", "legacy.pkl", "--trust-pickle")
    args = ("investigate", "bias", "legacy@1", "--data", "credit-train", "--sensitive", "group")
    _, err = credit(*args, code=2)
    assert "pickle" in err and len(err.strip().splitlines()) == 1
    doc = credit.json(*args, "--trust-pickle")
    assert doc["result"]["groups"][0]["group"] == "A"


def test_a_group_without_positives_gets_tpr_zero_and_a_warning(credit: Cli) -> None:
    ws = Workspace.open(credit.cwd)
    try:
        frame = pl.read_parquet(credit.cwd / "credit-train.parquet")
        frame = frame.drop([c for c in frame.columns if c.startswith("_")])
        frame = frame.with_columns(
            pl.when(pl.col("group") == "B").then(0).otherwise(pl.col("approved")).alias("approved")
        )
        frame.write_csv(credit.cwd / "nob.csv")
        from mlcustody.workspace.results import RecordSpec

        ws.add([credit.cwd / "nob.csv"], records=RecordSpec(key=("loan_id",)))
    finally:
        ws.close()
    doc = credit.json(
        "investigate", "bias", "credit-risk@1", "--data", "nob", "--sensitive", "group", "--label", "approved"
    )
    group_b = next(g for g in doc["result"]["groups"] if g["group"] == "B")
    assert group_b["tpr"] == 0.0 and group_b["positives"] == 0
    assert any("group=B has no actual positives" in w for w in doc["result"]["warnings"])
    assert np.isfinite(group_b["fpr"])
