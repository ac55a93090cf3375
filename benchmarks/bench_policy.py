"""Policy benchmarks: ``check terms`` through record lineage, and an expectation suite against Great
Expectations on the same frame.

1. A chain of ``--datasets`` versions of ``--rows`` records each (1:1 record links, as a cleaning step
   makes), the first carrying a non-commercial license and a per-record consent column; a model
   trained on the last. Times ``check terms MODEL --commercial`` (target: ≤ 1 s for 10 × 1M).
2. A suite of 20 expectations on a frame of ``--expect-rows`` rows (target: ≤ 10 s for 10M), run with
   mlcustody (pandera) and, when installed (``pip install -e '.[bench]'``), with Great Expectations'
   same 20 expectations; the ratio is printed.

Run: ``python benchmarks/bench_policy.py [--rows 1000000] [--datasets 10] [--expect-rows 10000000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PASSPHRASE = "bench policy passphrase"

SUITE: list[dict[str, Any]] = [
    {"expect_column_to_exist": {"column": "age"}},
    {"expect_table_row_count_to_be_between": {"min_value": 1}},
    {"expect_column_values_to_not_be_null": {"column": "id"}},
    {"expect_column_values_to_not_be_null": {"column": "income", "mostly": 0.9}},
    {"expect_column_values_to_be_between": {"column": "age", "min_value": 18, "max_value": 90}},
    {"expect_column_values_to_be_between": {"column": "income", "min_value": 0}},
    {"expect_column_values_to_be_between": {"column": "debt", "min_value": 0, "max_value": 1e6}},
    {"expect_column_values_to_be_in_set": {"column": "country", "value_set": ["DE", "FR", "IT", "ES"]}},
    {"expect_column_values_to_not_be_in_set": {"column": "country", "value_set": ["XX"]}},
    {"expect_column_values_to_be_unique": {"column": "id"}},
    {"expect_column_values_to_match_regex": {"column": "code", "regex": "^[A-Z]-[0-9]+$"}},
    {"expect_column_value_lengths_to_be_between": {"column": "code", "min_value": 3, "max_value": 12}},
    {"expect_column_min_to_be_between": {"column": "age", "min_value": 18}},
    {"expect_column_max_to_be_between": {"column": "age", "max_value": 90}},
    {"expect_column_mean_to_be_between": {"column": "income", "min_value": 0}},
    {"expect_column_median_to_be_between": {"column": "age", "min_value": 18, "max_value": 90}},
    {"expect_column_stdev_to_be_between": {"column": "income", "min_value": 0}},
    {"expect_column_sum_to_be_between": {"column": "debt", "min_value": 0}},
    {"expect_column_unique_value_count_to_be_between": {"column": "country", "max_value": 4}},
    {"expect_column_pair_values_a_to_be_greater_than_b": {"column_A": "income", "column_B": "debt", "mostly": 0.5}},
]


def frame(rows: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "age": rng.integers(18, 91, rows),
            "income": rng.lognormal(10, 0.5, rows),
            "debt": rng.uniform(0, 40_000, rows),
            "country": pd.Categorical(rng.choice(["DE", "FR", "IT", "ES"], rows)).astype(str),
            "code": np.char.add("A-", rng.integers(0, 10_000, rows).astype(str)),
        }
    )


def bench_terms(root: Path, rows: int, datasets: int) -> dict[str, float]:
    from mlcustody import Workspace
    from mlcustody.policy.terms import Terms
    from mlcustody.workspace import policy_cases

    os.environ["CUSTODY_KEY_PASSPHRASE"] = PASSPHRASE
    root.mkdir()
    ws = Workspace.init(root)
    started = time.perf_counter()
    ids = pa.array([str(i) for i in range(rows)])
    consent = pa.array(np.where(np.arange(rows) % 1000 == 0, "withdrawn", "consent"))
    first = root / "d0.parquet"
    pq.write_table(pa.table({"id": ids, "consent": consent}), first)
    from mlcustody.workspace.results import RecordSpec

    previous = ws.add([first], name="d0", type="dataset", records=RecordSpec(key=("id",), format="parquet"))[0].version
    policy_cases.set_terms(ws, previous.ref, Terms(license="CC-BY-NC-4.0", consent_column="consent"))
    record_ids = ws.record_table(previous)["record_id"].to_pylist()
    for number in range(1, datasets):
        with ws.start_run(f"step{number}") as run:
            run.use(previous.ref)
            path = root / f"d{number}.parquet"
            pq.write_table(pa.table({"id": ids, "step": pa.array(np.full(rows, number))}), path)
            version = ws.add(
                [path],
                name=f"d{number}",
                type="dataset",
                records=RecordSpec(key=("id",), format="parquet"),
                generated_by=run.id,
            )[0].version
            run.record_lineage(version.ref, previous.ref, record_ids, record_ids, "map")
        previous = version
    with ws.start_run("train") as run:
        run.use(previous.ref)
        (root / "model.onnx").write_bytes(b"model bytes")
        run.output(root / "model.onnx", name="model", type="model")
    setup = time.perf_counter() - started
    started = time.perf_counter()
    found = policy_cases.check_terms(ws, "model", commercial=True)
    took = time.perf_counter() - started
    assert found.tainted and found.findings[0].records == rows, found.findings
    ws.close()
    return {"setup_s": setup, "check_terms_s": took, "findings": len(found.findings)}


def bench_expectations(root: Path, rows: int) -> dict[str, float | None]:
    import pandera.pandas  # noqa: F401 - imported before timing, as Great Expectations is

    from mlcustody.policy import expectations

    data = frame(rows)
    suite = root / "suite.yaml"
    suite.write_text(json.dumps({"expectations": SUITE}), encoding="utf-8")
    parsed = expectations.parse(suite)
    started = time.perf_counter()
    result = expectations.run(parsed, data, lambda ref: data)
    ours = time.perf_counter() - started
    assert len(result.results) == 20
    return {"mlcustody_s": ours, "gx_s": _gx(data), "ours_success": float(result.success)}


def _gx(data: pd.DataFrame) -> float | None:
    try:
        import great_expectations as gx
    except ImportError:
        return None
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("bench")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": data})
    )
    suite = gx.ExpectationSuite(name="bench")
    for entry in SUITE:
        [(name, kwargs)] = entry.items()
        cls = getattr(gx.expectations, "".join(part.title() for part in name.split("_")))
        suite.add_expectation(cls(**kwargs))
    started = time.perf_counter()
    batch.validate(suite)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--datasets", type=int, default=10)
    parser.add_argument("--expect-rows", type=int, default=10_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        terms = bench_terms(Path(tmp) / "ws", args.rows, args.datasets)
        print(
            f"check terms: {args.datasets} datasets x {args.rows:,} records: {terms['check_terms_s']:.2f} s "
            f"(setup {terms['setup_s']:.1f} s) — target <= 1 s"
        )
        found = bench_expectations(Path(tmp), args.expect_rows)
        gx_s = found["gx_s"]
        ratio = (
            f", Great Expectations {gx_s:.2f} s, ratio GX/mlcustody {gx_s / found['mlcustody_s']:.2f}x" if gx_s else ""
        )
        print(
            f"expectations: 20 checks on {args.expect_rows:,} rows: mlcustody {found['mlcustody_s']:.2f} s{ratio}"
            " — target <= 10 s"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
