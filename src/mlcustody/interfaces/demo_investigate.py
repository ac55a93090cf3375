"""The demo's forensic chapter, and the synthetic credit world it investigates.

A bank trains a credit model on its own branch loans and on a purchased file of loans. The vendor's
file mostly covers applicants of group B, and for half of those its approval labels are flipped; in
the demo it also resells some of the bank's own loans as new ones (some relabelled, some retouched).
A plain-script pipeline concatenates both files, joins the customer register (where the group is
recorded) and writes the training set with record lineage; a training script fits the model. The
chapter then walks ``custody investigate case`` from the biased model to the purchased file's lines.

The same world serves the acceptance tests, which run the very scripts the demo runs.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BRANCH = "raw/branch_loans.csv"
PURCHASED = "raw/purchased_loans.csv"
CUSTOMERS = "raw/customers.csv"
_GROUP_B_SHARE = {BRANCH: 0.3, PURCHASED: 0.85}
_FLIP_SHARE = 0.5

# The feature pipeline: both loan files concatenated, the customer register joined, features derived.
PIPELINE = """\
import mlcustody as mc
import polars as pl

with mc.start_run("credit-features") as run:
    loans = pl.concat([run.use_records("raw/branch_loans.csv"), run.use_records("raw/purchased_loans.csv")])
    customers = run.use_records("raw/customers.csv")
    joined = mc.lineage.join(loans, customers, on="customer_id", how="inner")
    features = run.derive(joined, income_k=pl.col("income") / 1000, debt_ratio=pl.col("debt") / pl.col("income"))
    ids = [name for name in features.columns if name.startswith("_rid")]
    columns = [*ids, "loan_id", "income_k", "debt_ratio", "age", "group", "region", "approved"]
    run.output_records(features.select(columns).sort("loan_id"), name="credit-train", key=["loan_id"])
print("credit-train written with record lineage to both loan files and the customer register")
"""

# Training: a logistic regression on the features (not the group), saved with skops.
TRAIN = """\
import mlcustody as mc
import polars as pl
from sklearn.linear_model import LogisticRegression

with mc.start_run("credit-train-model") as run:
    data = pl.read_parquet(run.use("credit-train")).to_pandas()
    model = LogisticRegression(max_iter=1000).fit(data[["income_k", "debt_ratio", "age"]], data["approved"])
    run.save_model(model, "credit-model.skops")
print("credit model trained")
"""


@dataclass(frozen=True)
class Copy:
    """A branch loan the vendor resold as its own: ``exact``, with its label ``flipped``, or ``retouched``
    (another region), with the raw lines of the original and of the copy."""

    kind: str
    original: str  # raw/branch_loans.csv:LINE
    copy: str  # raw/purchased_loans.csv:LINE


@dataclass(frozen=True)
class Planted:
    """What was planted: the loan ids whose labels the vendor flipped, and their raw lines."""

    flipped: frozenset[str]
    lines: frozenset[str]  # ``raw/purchased_loans.csv:LINE`` of each flipped loan
    copies: tuple[Copy, ...] = ()


_COPY_KINDS = ("exact", "flipped", "retouched")


def write_sources(root: Path, *, branch: int = 1400, purchased: int = 600, resold: int = 0, seed: int = 0) -> Planted:
    """Write the two loan files and the customer register under ``root``; return what was flipped.

    ``resold`` branch loans are appended to the purchased file under new loan and customer ids
    (cycling through the kinds of ``Copy``), as a vendor reselling a bank's own data would."""
    rng = np.random.default_rng(seed)
    customers: list[list[object]] = []
    flipped: set[str] = set()
    lines: set[str] = set()
    start = 0
    written: dict[str, list[list[object]]] = {}
    copies: tuple[Copy, ...] = ()
    for path, count in ((BRANCH, branch), (PURCHASED, purchased)):
        rows: list[list[object]] = []
        for i in range(start, start + count):
            group = "B" if rng.random() < _GROUP_B_SHARE[path] else "A"
            good = bool(rng.random() < 0.5)
            income = rng.normal(72_000 if good else 34_000, 7_000)
            debt = max(rng.normal(9_000 if good else 21_000, 3_500), 0.0)
            approved = int(good)
            loan = f"L-{i:05d}"
            if path == PURCHASED and group == "B" and rng.random() < _FLIP_SHARE:
                approved = 1 - approved
                flipped.add(loan)
                lines.add(f"{path}:{len(rows) + 2}")  # line 1 is the header
            rows.append([loan, f"C-{i:05d}", round(income, 2), round(debt, 2), approved])
            customers.append([f"C-{i:05d}", int(rng.integers(21, 70)), group, f"r{int(rng.integers(0, 4))}"])
        if path == PURCHASED:
            copies = _resell(written[BRANCH], rows, customers, resold, start + count, seed)
        written[path] = rows
        _write(root / path, ["loan_id", "customer_id", "income", "debt", "approved"], rows)
        start += count
    _write(root / CUSTOMERS, ["customer_id", "age", "group", "region"], customers)
    return Planted(frozenset(flipped), frozenset(lines), copies)


def _resell(
    branch: list[list[object]],
    rows: list[list[object]],
    customers: list[list[object]],
    count: int,
    start: int,
    seed: int,
) -> tuple[Copy, ...]:
    """Append ``count`` copies of distinct branch loans to ``rows`` (and their customers); what was copied."""
    rng = np.random.default_rng(seed + 1)  # its own stream: the world without copies stays as it was
    register = {row[0]: row for row in customers}
    copies = []
    for k, original in enumerate(rng.choice(len(branch), size=count, replace=False).tolist()):
        _, customer_id, income, debt, approved = branch[original]
        kind = _COPY_KINDS[k % len(_COPY_KINDS)]
        label = 1 - int(str(approved)) if kind == "flipped" else approved
        _, age, group, region = register[customer_id]
        region = f"r{(int(str(region)[1:]) + 1) % 4}" if kind == "retouched" else region
        rows.append([f"L-{start + k:05d}", f"C-{start + k:05d}", income, debt, label])
        customers.append([f"C-{start + k:05d}", age, group, region])
        copies.append(Copy(kind, f"{BRANCH}:{original + 2}", f"{PURCHASED}:{len(rows) + 1}"))
    return tuple(copies)


def _write(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


Step = Callable[..., str]


def chapter(step: Step, where: Path) -> None:
    """Plant the contaminating source, train on it, and walk ``investigate case`` to its raw lines."""
    write_sources(where, resold=30)
    (where / "credit_pipeline.py").write_text(PIPELINE, encoding="utf-8")
    (where / "credit_train.py").write_text(TRAIN, encoding="utf-8")
    for path, key in ((BRANCH, "loan_id"), (PURCHASED, "loan_id"), (CUSTOMERS, "customer_id")):
        step(f"Version {path} record by record", "add", path, "--records", "--key", key, "--type", "dataset")
    pipeline = ("run", "--", sys.executable, "credit_pipeline.py")
    step("A feature pipeline joins the purchased loans into training, with record lineage", *pipeline)
    step("Train the credit model on it", "run", "--", sys.executable, "credit_train.py")
    step("Register it from the training run", "model", "register", "credit-risk", "--run", _training_run(where))
    bias = ("investigate", "bias", "credit-risk@1", "--data", "credit-train", "--sensitive", "group")
    step("Group B is approved less often: how much, with intervals", *bias, "--label", "approved")
    case = ("investigate", "case", "credit-risk@1", "--data", "credit-train", "--sensitive", "group")
    step(
        "The whole case: model → run → snapshot → bias → top slice → source mix → label issues → raw lines",
        *case,
        "--label",
        "approved",
        "--html",
        "case.html",
    )
    step(
        "The report is in the chain of custody, linked to what it read", "lineage", "investigation-case-credit-risk-v1"
    )
    contamination = ("investigate", "contamination", "credit-train", "--label", "approved", "--threshold", "0.7")
    step(
        "Contamination: the vendor also resold the bank's own loans — duplicates, conflicting labels, their raw lines",
        *contamination,
        "--by-source",
    )


def _training_run(where: Path) -> str:
    """The id of the run the training script opened, read from the workspace (not from CLI output)."""
    from mlcustody.workspace.facade import Workspace

    ws = Workspace.open(where)
    try:
        return ws.runs(name="credit-train-model")[0].id[:12]
    finally:
        ws.close()
