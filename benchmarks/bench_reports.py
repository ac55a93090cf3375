"""Compliance-report benchmark: `report decision` (JSON, HTML, PDF) over a large decision log, and `report
erasure` of one subject across many dataset versions.

    python benchmarks/bench_reports.py [--quick] [--decisions N] [--versions N] [--records N] [--repeat N]
                                       [--workdir DIR] [--json FILE]

One workspace holds ``credit@1``, a logistic regression over the four inputs of bench_decisions' seeded
decisions (income, age, debt_ratio, score), trained by a run on a 10,000-record training set with a
record manifest; N decisions (default 10,000,000, bench_decisions' frames: 100 per subject) are
batch-logged. ``--versions`` versions (default 20) of a ``--records``-row customer table (default
1,000,000, keyed by ``customer_id``, one row changed per version) are added with record manifests, the
subject ``S-0000042`` in every one. Timed in-process with ``time.perf_counter``, the median of
``--repeat`` calls after one first call (which also stores the report artifact and its signature; later
calls find the same bytes stored and store nothing): ``report decision`` of a decision in the middle of
the log to JSON, HTML and PDF files (rendering, signing and writing included), and ``report erasure`` of
the subject (impact, not executed: every version's manifest is searched, the decisions listed).
Targets (the issue): decision ≤ 2 s (JSON/HTML), ≤ 5 s (PDF); erasure ≤ 5 s. No peer produces these
reports, so there is no ratio. A missed target is reported, never an error exit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from _harness import drop_tree, fmt_seconds, machine_info, render_table, source_revision
from bench_decisions import DECISIONS_PER_SUBJECT, INPUTS, PASSPHRASE, decision_frame

if TYPE_CHECKING:
    from mlcustody import Workspace

SUBJECT = "S-0000042"
TRAIN_ROWS = 10_000
BATCH = 100_000
TARGETS = {"decision json": 2.0, "decision html": 2.0, "decision pdf": 5.0, "erasure": 5.0}
_STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def build(root: Path, decisions: int, versions: int, records: int) -> Workspace:
    import numpy as np
    import polars as pl
    from sklearn.linear_model import LogisticRegression

    from mlcustody import Workspace
    from mlcustody.workspace.results import RecordSpec

    drop_tree(root)
    root.mkdir(parents=True)
    ws = Workspace.init(root)
    ws.generate_key("registry")
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, (TRAIN_ROWS, len(INPUTS)))
    train = pl.DataFrame({"id": [f"T-{i:05d}" for i in range(TRAIN_ROWS)], **dict(zip(INPUTS, x.T, strict=True))})
    train = train.with_columns(y=pl.Series((x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 0.5, TRAIN_ROWS) > 0).astype(int)))
    train.write_csv(root / "train.csv")
    ws.add([root / "train.csv"], records=RecordSpec(key=("id",)))
    with ws.start_run("train") as run:
        table = pl.read_csv(run.use("train.csv"))
        model = LogisticRegression().fit(table.select(INPUTS).to_numpy(), table["y"].to_numpy())
        run.save_model(model, root / "model.skops")
    ws.register_model("credit", run=run.id)
    subjects = max(1, decisions // DECISIONS_PER_SUBJECT)
    log(f"setup: logging {decisions:,} decisions ({subjects:,} subjects)")
    with ws.decision_log("credit@1") as decision_log:
        for start in range(0, decisions, BATCH):
            frame = decision_frame(start, min(BATCH, decisions - start), subjects)
            decision_log.record_batch(frame, id_col="decision_id", output_col="output", subject_col="subject")
    log(f"setup: {versions} versions of a {records:,}-record customer table")
    ids = [f"S-{i:07d}" for i in range(records)]
    customers = pl.DataFrame({"customer_id": ids, "balance": rng.normal(1000, 300, records)})
    path = root / "customers.parquet"
    for number in range(versions):
        changed = customers.with_columns(
            balance=pl.when(pl.int_range(records) == number).then(-1.0).otherwise(pl.col("balance"))
        )
        changed.write_parquet(path)
        ws.add([path], records=RecordSpec(key=("customer_id",)))
    return ws


def timed(call: Callable[[], object], repeat: int) -> dict[str, float]:
    started = time.perf_counter()
    call()
    first = time.perf_counter() - started
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return {"first": first, "median": statistics.median(times) if times else first}


def measure(ws: Workspace, decisions: int, repeat: int, out: Path) -> dict[str, dict[str, float]]:
    from mlcustody.interfaces import report_files

    decision = f"D-{decisions // 2:09d}"
    found: dict[str, dict[str, float]] = {}
    for fmt in ("json", "html", "pdf"):
        log(f"report decision {decision} --format {fmt}")
        target = out / f"{decision}.{fmt}"
        found[f"decision {fmt}"] = timed(
            lambda fmt=fmt, target=target: report_files.decision(ws, decision, fmt, target, 5), repeat
        )
    log(f"report erasure {SUBJECT}")
    found["erasure"] = timed(
        lambda: report_files.erasure(ws, SUBJECT, [], "json", out / "erasure.json", execute=False, key=None), repeat
    )
    body = json.loads((out / "erasure.json").read_text())
    held = next(f for s in body["sections"] for f in s["fields"] if f["name"] == "snapshots")["value"]
    found["erasure"]["snapshots"] = len(held)
    return found


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 decisions, 5 versions of 100,000 records")
    parser.add_argument("--decisions", type=int, default=None)
    parser.add_argument("--versions", type=int, default=None)
    parser.add_argument("--records", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    args.decisions = args.decisions or (100_000 if args.quick else 10_000_000)
    args.versions = args.versions or (5 if args.quick else 20)
    args.records = args.records or (100_000 if args.quick else 1_000_000)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("CUSTODY_")}
    os.environ["CUSTODY_KEY_PASSPHRASE"] = PASSPHRASE
    try:
        with tempfile.TemporaryDirectory(prefix="bench-reports-") as scratch:
            workdir = (args.workdir or Path(scratch)).resolve()
            os.environ["XDG_CONFIG_HOME"] = str(workdir / "home")  # the decision log's key file stays here
            ws = build(workdir / "workspace", args.decisions, args.versions, args.records)
            try:
                found = measure(ws, args.decisions, args.repeat, workdir)
            finally:
                ws.close()
    finally:
        os.environ.pop("CUSTODY_KEY_PASSPHRASE", None)
        os.environ.update(saved)
    rows = [
        [
            case,
            f"≤ {fmt_seconds(TARGETS[case])}",
            fmt_seconds(f["median"]),
            fmt_seconds(f["first"]),
            "yes" if f["median"] <= TARGETS[case] else "**no**",
        ]
        for case, f in found.items()
    ]
    print(render_table(["case", "target", "median", "first call", "met"], rows))
    print(
        f"\n{args.decisions:,} decisions; erasure across {args.versions} versions of {args.records:,} records; "
        f"{os.cpu_count()} CPUs; took {fmt_seconds(time.perf_counter() - _STARTED)}"
    )
    if args.json:
        doc = {
            "benchmark": "reports",
            "decisions": args.decisions,
            "versions": args.versions,
            "records": args.records,
            "figures": found,
            "targets": TARGETS,
            "machine": machine_info(),
            "mlcustody_checkout": source_revision(Path(__file__).resolve().parent),
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
