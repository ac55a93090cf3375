"""A polars/pandas pipeline with record lineage: raw loans (keyed) and customers (keyless, ids are
``file:LINE``) → clean (filter) → features (join, derived column) → trainset (1:1) → model. Tests of
record lineage and of tampering start from it."""

from __future__ import annotations

import polars as pl

from conftest import write_tree
from mlcustody import Workspace, lineage
from mlcustody.workspace.results import RecordSpec

LOANS = 30
CUSTOMERS = 8


def raw_sources(ws: Workspace) -> None:
    """Loan applications (keyed by loan_id) and customers (no key: ids are file:LINE locators)."""
    loans = ["loan_id,customer_id,income,amount,region"]
    for i in range(LOANS):
        income = "" if i % 10 == 3 else str(1000 + 10 * i)  # every tenth row lacks an income: cleaned away
        loans.append(f"L-{i:03d},{i % CUSTOMERS},{income},{100 + i},{'north' if i % 2 else 'south'}")
    customers = ["customer_id,debt,age"] + [f"{c},{50 * c},{30 + c}" for c in range(CUSTOMERS)]
    write_tree(ws.root, {"raw/loans.csv": "\n".join(loans) + "\n", "raw/customers.csv": "\n".join(customers) + "\n"})
    ws.add([ws.root / "raw/loans.csv"], records=RecordSpec(key=("loan_id",)))
    ws.add([ws.root / "raw/customers.csv"], records=RecordSpec(key=None))


def pipeline(ws: Workspace) -> dict[str, str]:
    """clean (filter) → features (join with customers, derived column) → trainset (1:1) → model."""
    raw_sources(ws)
    runs = {}
    with ws.start_run("clean") as run:
        loans = run.use_records("raw/loans.csv")
        clean = loans.filter(pl.col("income").is_not_null())
        run.output_records(clean, name="clean", key=["loan_id"])
        runs["clean"] = run.id
    with ws.start_run("features") as run:
        clean = run.use_records("clean")
        customers = run.use_records("raw/customers.csv")
        joined = lineage.join(clean, customers, on="customer_id", how="left")
        features = run.derive(joined, debt_ratio=pl.col("debt") / pl.col("income"))
        run.output_records(features, name="features", key=["loan_id"])
        runs["features"] = run.id
    with ws.start_run("trainset") as run:
        features = run.use_records("features", kind="pandas")
        features["label"] = (features["debt_ratio"] > 0.1).astype(int)
        run.columns_from("label", ["debt_ratio"])
        run.output_records(features, name="trainset", key=["loan_id"])
        runs["trainset"] = run.id
    with ws.start_run("train") as run:
        run.use("trainset")
        (ws.root / "model.bin").write_bytes(b"weights")
        run.output(ws.root / "model.bin", type="model")
    return runs
