"""`custody trace decision ID --records N`: the training records behind one decision, traced to raw lines."""

from __future__ import annotations

import math
import pickle
import random
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from conftest import Cli, write_tree
from mlcustody import Workspace, load_model, save_model
from mlcustody.forensics.attribution import attribute
from mlcustody.interfaces.sdk import RecordSpec
from test_registry import PASSPHRASE

LOANS = 60
CREDIT_INPUTS = {"income_k": 41.5, "debt_ratio": 0.35}


def _raw_loans(root: Path) -> None:
    """Loan applications keyed by loan_id; loan i is line i + 2 of the file, every tenth lacks an income."""
    rng = random.Random(11)
    lines = ["loan_id,income,amount,approved"]
    for i in range(LOANS):
        income, amount = rng.randint(20_000, 90_000), rng.randint(1_000, 40_000)
        odds = 0.06 * (income / 1000 - 55) - 4 * (amount / income - 0.3)
        approved = int(rng.random() < 1 / (1 + math.exp(-odds)))
        lines.append(f"L-{i:03d},{'' if i % 10 == 3 else income},{amount},{approved}")
    write_tree(root, {"raw/loans.csv": "\n".join(lines) + "\n"})


def _build(ws: Workspace) -> str:
    """raw CSV → prepare (filter, derive) → trainset with record lineage → models trained on exactly its rows,
    registered, and decisions logged; returns the prepare run's id."""
    _raw_loans(ws.root)
    ws.add([ws.root / "raw/loans.csv"], records=RecordSpec(key=("loan_id",)))
    with ws.start_run("prepare") as run:
        kept = run.use_records("raw/loans.csv").filter(pl.col("income").is_not_null())
        derived = run.derive(kept, income_k=pl.col("income") / 1000, debt_ratio=pl.col("amount") / pl.col("income"))
        columns = ["_rid", "loan_id", "income_k", "debt_ratio", "approved"]
        run.output_records(derived.select(columns), name="trainset", key=["loan_id"])
    _register_models(ws)
    _log_decisions(ws)
    return run.id


def _register_models(ws: Workspace) -> None:
    """credit (numpy, no feature names), narrow (pandas: feature_names_in_ = [income_k]), and models the
    attribution must refuse: one without a training run, one whose run read no records, a pickle."""
    from sklearn.linear_model import LogisticRegression

    with ws.start_run("train") as run:
        data = pl.read_parquet(run.use("trainset"))
        model = LogisticRegression(max_iter=1000).fit(
            data.select("income_k", "debt_ratio").to_numpy(), data["approved"]
        )
        run.save_model(model, ws.root / "model.skops")
    ws.register_model("credit", run=run.id)
    with ws.start_run("train-narrow") as run:
        data = pl.read_parquet(run.use("trainset")).to_pandas()
        run.save_model(LogisticRegression().fit(data[["income_k"]], data["approved"]), ws.root / "narrow.skops")
    ws.register_model("narrow", run=run.id)
    save_model(model, ws.root / "plain.skops")
    ws.register_model("plain", path=ws.root / "plain.skops")
    write_tree(ws.root, {"raw/bare.csv": "income_k,debt_ratio\n1,2\n"})
    ws.add([ws.root / "raw/bare.csv"])
    with ws.start_run("train-bare") as run:
        run.use("raw/bare.csv")
        run.save_model(model, ws.root / "bare.skops")
    ws.register_model("bare", run=run.id)
    (ws.root / "legacy.pkl").write_bytes(pickle.dumps(_Touch(ws.root / "unpickled")))
    ws.register_model("legacy", path=ws.root / "legacy.pkl", trust_pickle=True)


class _Touch:
    """Unpickling this creates a file: the proof that a pickled model was never loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[Path]]:
        return Path.touch, (self.path,)


def _log_decisions(ws: Workspace) -> None:
    with ws.decision_log("credit@1") as log:
        log.record("D-1", CREDIT_INPUTS, {"approved": True}, subject="S-1")
        log.record("D-2", CREDIT_INPUTS, {"approved": True}, subject="S-2")
        log.record("D-salary", {"income_k": 41.5, "salary": 0.35}, {"approved": False})
    with ws.decision_log("credit@1", keep_inputs=False) as log:
        log.record("D-secret", CREDIT_INPUTS, {"approved": True})
    with ws.decision_log("narrow@1") as log:
        log.record("N-1", {"income_k": 41.5}, {"approved": False})
    for name in ("plain", "bare", "legacy"):
        with ws.decision_log(f"{name}@1") as log:
            log.record(f"{name}-1", CREDIT_INPUTS, {"approved": True})
    ws.forget_subject("S-2")


@pytest.fixture
def traced(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> tuple[Cli, str]:
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", PASSPHRASE)
    cli("init")
    cli("keys", "generate", "--name", "registry")
    ws = Workspace.open(cli.cwd)
    try:
        return cli, _build(ws)
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
