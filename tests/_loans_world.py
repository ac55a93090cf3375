"""The traced-loans world: raw loans → prepare (record lineage) → trainset → models trained on exactly its
rows (and ones the attribution must refuse), registered, with decisions logged. ``build_loans_world``
returns the prepare run's id. Tests of `trace decision --records` and of attribution start from it."""

from __future__ import annotations

import math
import pickle
import random
from pathlib import Path
from typing import Any

import polars as pl

from conftest import write_tree
from mlcustody import Workspace, save_model
from mlcustody.workspace.results import RecordSpec

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


def build_loans_world(ws: Workspace) -> str:
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
