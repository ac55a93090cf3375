"""`custody investigate attribution`: the records that raised and lowered one prediction, with raw lines.

The workspace is the one of tests/lineage/test_trace_records.py (raw CSV → prepare run → trainset with record
lineage → models trained on exactly its rows), plus gradient-boosted and forest models for BoostIn,
its cache and ``--exact``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from _loans_world import CREDIT_INPUTS, build_loans_world
from _models import PASSPHRASE
from conftest import Cli, write_tree
from mlcustody import Workspace, load_model
from mlcustody.forensics.attribution import extremes, largest, prepare

FEATURES = ["income_k", "debt_ratio"]


def _more_models(ws: Workspace) -> None:
    """boost: gradient-boosted trees with the seed as a run param; forest: random, and no seed recorded;
    multi: a three-class booster (BoostIn covers binary ones)."""
    models: list[tuple[str, Any, dict[str, Any]]] = [
        ("boost", HistGradientBoostingClassifier(max_iter=20, max_leaf_nodes=4, early_stopping=False), {"seed": 5}),
        ("forest", RandomForestClassifier(n_estimators=5, max_features=1, bootstrap=True), {}),
    ]
    for name, estimator, params in models:
        with ws.start_run(f"train-{name}") as run:
            run.log_params(params)
            data = pl.read_parquet(run.use("trainset"))
            estimator.fit(data.select(FEATURES).to_numpy(), data["approved"].to_numpy())
            run.save_model(estimator, ws.root / f"{name}.skops")
        ws.register_model(name, run=run.id)
        with ws.decision_log(f"{name}@1") as log:
            log.record(f"{name}-1", CREDIT_INPUTS, {"approved": True})


@pytest.fixture
def world(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", PASSPHRASE)
    cli("init")
    cli("keys", "generate", "--name", "registry")
    ws = Workspace.open(cli.cwd)
    try:
        build_loans_world(ws)
        _more_models(ws)
    finally:
        ws.close()
    return cli


def _training(root: Path) -> pl.DataFrame:
    return pl.read_parquet(root / "trainset.parquet")


def _expected(root: Path, model_file: str, top: int, method: str | None = None) -> tuple[Any, Any, Any, Any]:
    """Attribution called directly on the model file and the training rows: prediction, raised, lowered, deltas."""
    data = _training(root)
    model = load_model(root / model_file)
    ready = prepare(model, data.select(FEATURES).to_numpy(), data["approved"].to_numpy(), method=method)
    prediction, delta = ready.deltas(list(CREDIT_INPUTS.values()))
    raised, lowered = extremes(delta, top)
    return prediction, raised, lowered, delta


def _ids(data: pl.DataFrame, items: list[Any]) -> list[str]:
    return [data["loan_id"][item.index] for item in items]


def test_a_decision_is_explained_by_the_records_that_raised_and_lowered_it(world: Cli) -> None:
    doc = world.json("investigate", "attribution", "credit@1", "--decision", "D-1", "--top", "4")
    data = _training(world.cwd)
    prediction, raised, lowered, _ = _expected(world.cwd, "model.skops", 4)
    assert doc["schema"] == "mlcustody.investigation.attribution/v1"
    assert (doc["model"]["ref"], doc["decision"], doc["input_file"]) == ("credit@1", "D-1", None)
    assert (doc["dataset"]["ref"], doc["features"], doc["label"], doc["method"]) == (
        "trainset@1",
        FEATURES,
        "approved",
        "influence",
    )
    assert doc["inputs"] == CREDIT_INPUTS and doc["prediction"] == pytest.approx(prediction, rel=1e-12)
    assert [r["record_id"] for r in doc["raised"]] == _ids(data, raised)
    assert [r["record_id"] for r in doc["lowered"]] == _ids(data, lowered)
    assert all(r["delta"] < 0 for r in doc["raised"]) and all(r["delta"] > 0 for r in doc["lowered"])
    assert [r["delta"] for r in doc["raised"]] == pytest.approx([i.delta for i in raised], rel=1e-12)
    for record in doc["raised"] + doc["lowered"]:
        row = data.filter(pl.col("loan_id") == record["record_id"]).row(0, named=True)
        assert record["label"] == row["approved"]
        assert record["features"] == {name: row[name] for name in FEATURES}
        line = int(record["record_id"].removeprefix("L-")) + 2
        assert [s["source"] for s in record["sources"]] == [f"raw/loans.csv:{line}"]
    assert (doc["similar"], doc["cache"], doc["exact"]) == ([], None, None)
    out, _ = world("investigate", "attribution", "credit@1", "--decision", "D-1", "--top", "4", "--json")
    assert json.loads(out) == doc
    again, _ = world("investigate", "attribution", "credit@1", "--decision", "D-1", "--top", "4", "--json")
    assert again == out  # byte-identical


def test_an_input_file_json_or_csv_is_explained_like_the_logged_decision(world: Cli) -> None:
    write_tree(world.cwd, {"x.json": json.dumps(CREDIT_INPUTS), "x.csv": "income_k,debt_ratio\n41.5,0.35\n"})
    logged = world.json("investigate", "attribution", "credit@1", "--decision", "D-1")
    for name in ("x.json", "x.csv"):
        given = world.json("investigate", "attribution", "credit@1", "--input", name)
        assert given["input_file"] == name and given["decision"] is None
        drop = {"decision", "input_file"}
        assert {k: v for k, v in given.items() if k not in drop} == {k: v for k, v in logged.items() if k not in drop}


def test_human_output_lists_both_sides_with_their_raw_lines(world: Cli) -> None:
    out, _ = world("investigate", "attribution", "credit@1", "--decision", "D-1", "--top", "2")
    data = _training(world.cwd)
    _, raised, lowered, _ = _expected(world.cwd, "model.skops", 2)
    assert "decision D-1: credit@1 predicted" in out and "raised it most" in out and "lowered it most" in out
    for item in raised + lowered:
        record_id = data["loan_id"][item.index]
        [row] = [line for line in out.splitlines() if f" {record_id} " in line]
        assert f"{item.delta:+.4g}" in row and f"raw/loans.csv:{int(record_id[2:]) + 2}" in row


def test_boostin_is_chosen_for_boosted_trees_precomputed_once_and_reused(world: Cli) -> None:
    first = world.json("investigate", "attribution", "boost@1", "--decision", "boost-1", "--top", "3")
    prediction, raised, lowered, _ = _expected(world.cwd, "boost.skops", 3)
    data = _training(world.cwd)
    assert first["method"] == "boostin" and first["prediction"] == pytest.approx(prediction, rel=1e-12)
    assert [r["record_id"] for r in first["raised"]] == _ids(data, raised)
    assert [r["record_id"] for r in first["lowered"]] == _ids(data, lowered)
    digest = first["cache"]["object"]
    assert (world.cwd / ".custody" / "objects" / digest[:2] / digest[2:]).is_file()
    out, _ = world("investigate", "attribution", "boost@1", "--decision", "boost-1", "--top", "3")
    assert f"precomputed:  reused (object {digest[:16]}" in out
    assert world.json("investigate", "attribution", "boost@1", "--decision", "boost-1", "--top", "3") == first


def test_knn_lists_similar_records_without_a_sign(world: Cli) -> None:
    doc = world.json("investigate", "attribution", "boost@1", "--decision", "boost-1", "--method", "knn")
    data = _training(world.cwd)
    _, _, _, similarity = _expected(world.cwd, "boost.skops", 10, method="knn")
    assert doc["method"] == "knn" and doc["raised"] == doc["lowered"] == []
    assert [r["record_id"] for r in doc["similar"]] == _ids(data, largest(similarity, 10))
    assert all(r["delta"] > 0 for r in doc["similar"])


def test_exact_retrains_without_the_top_records_and_reports_the_actual_change(world: Cli) -> None:
    doc = world.json("investigate", "attribution", "boost@1", "--decision", "boost-1", "--top", "5", "--exact")
    exact = doc["exact"]
    assert (exact["seed"], exact["seed_from"]) == (5, "run param seed")
    assert exact["reproduced"] == pytest.approx(doc["prediction"], abs=1e-9)
    data = _training(world.cwd)
    rows, labels = data.select(FEATURES).to_numpy(), data["approved"].to_numpy()
    model = load_model(world.cwd / "boost.skops")
    x = np.array([list(CREDIT_INPUTS.values())])
    assert [r["side"] for r in exact["retrains"]] == ["raised", "lowered"]
    for retrain in exact["retrains"]:
        ids = [r["record_id"] for r in doc[retrain["side"]]]
        keep = ~data["loan_id"].is_in(ids).to_numpy()
        refit = clone(model).set_params(random_state=5).fit(rows[keep], labels[keep])
        assert retrain["removed"] == len(ids) == 5
        assert retrain["actual"] == pytest.approx(refit.decision_function(x)[0] - doc["prediction"], abs=1e-12)
        assert retrain["estimated"] == pytest.approx(sum(r["delta"] for r in doc[retrain["side"]]), rel=1e-12)
    raised, lowered = exact["retrains"]
    assert raised["actual"] < 0 < lowered["actual"]  # leaving out what raised it lowers it, and vice versa
    out, _ = world("investigate", "attribution", "boost@1", "--decision", "boost-1", "--top", "5", "--exact")
    assert "without the 5 that raised it: actual" in out


def test_html_report_is_self_contained(world: Cli) -> None:
    out, _ = world("investigate", "attribution", "credit@1", "--decision", "D-1", "--top", "3", "--html", "r.html")
    page = (world.cwd / "r.html").read_text(encoding="utf-8")
    doc = world.json("investigate", "attribution", "credit@1", "--decision", "D-1", "--top", "3")
    assert "wrote the HTML report to r.html" in out
    assert page.startswith("<!doctype html>") and "<svg" in page and "<style>" in page
    assert "src=" not in page and "href=" not in page and "http" not in page
    for record in doc["raised"] + doc["lowered"]:
        assert record["record_id"] in page and record["sources"][0]["source"] in page
    assert doc["model"]["digest"] in page and doc["dataset"]["digest"] in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("credit@1", "--decision", "nosuch"), "no decision with id 'nosuch'"),
        (("legacy@1", "--decision", "legacy-1"), "legacy@1 is a pickle, which runs arbitrary code when loaded"),
        (
            ("credit@1", "--decision", "D-1", "--method", "boostin"),
            "method 'boostin' does not apply to LogisticRegression (its method is 'influence') — boostin covers "
            "binary or squared-error (Hist)GradientBoosting*",
        ),
        (("credit@1", "--decision", "D-1", "--method", "shap"), "unknown --method 'shap'"),
        (("credit@1", "--decision", "boost-1"), "decision boost-1 was made by boost@1, not credit@1"),
        (("credit@1",), "name one decision or one input file"),
        (("credit@1", "--decision", "D-1", "--input", "bad.json"), "name one decision or one input file"),
        (("credit@1", "--input", "bad.json"), "bad.json is not valid JSON"),
        (("credit@1", "--input", "list.json"), "list.json is not a JSON object of inputs"),
        (("credit@1", "--input", "two.csv"), "two.csv holds 2 row(s) under its header"),
        (
            ("narrow@1", "--input", "partial.json", "--label", "approved"),
            "the inputs in partial.json have no feature 'income_k'",
        ),
        (("credit@1", "--input", "salary.json"), "trainset@1 has no column(s) salary"),
        (("credit@1", "--input", "missing.json"), "cannot read missing.json"),
        (("forest@1", "--decision", "forest-1", "--exact"), "the seed (none recorded) or the row order"),
        (("credit@1", "--decision", "D-2"), "the inputs of decision D-2 were crypto-shredded"),
    ],
)
def test_bad_input_is_refused_with_one_line(world: Cli, args: tuple[str, ...], message: str) -> None:
    write_tree(
        world.cwd,
        {
            "bad.json": '{"income_k": 41.5,',
            "list.json": "[1, 2]",
            "two.csv": "income_k,debt_ratio\n1,2\n3,4\n",
            "partial.json": '{"debt_ratio": 0.35}',
            "salary.json": '{"income_k": 41.5, "salary": 0.35}',
        },
    )
    _, err = world("investigate", "attribution", *args, code=2)
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert "—" in err  # the hint
    assert not (world.cwd / "unpickled").exists()
