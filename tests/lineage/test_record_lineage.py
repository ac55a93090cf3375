"""Record lineage: ids kept through polars and pandas code, traced back to raw lines and down to models."""

from __future__ import annotations

import pandas as pd
import polars as pl
import pytest
import sqlalchemy as sa

from _record_pipeline import CUSTOMERS, LOANS, pipeline, raw_sources
from conftest import Cli, write_tree
from mlcustody import Workspace, lineage
from mlcustody.errors import UsageError
from mlcustody.metadata.schema import column_lineage
from mlcustody.workspace.results import RecordSpec


def test_a_training_sample_is_traced_to_its_raw_lines(workspace: Workspace) -> None:
    runs = pipeline(workspace)
    found = workspace.trace_record("trainset", "L-017")
    [root] = found.roots
    assert (root.ref, root.record_id, root.step.relation, root.step.run_id) == (  # type: ignore[union-attr]
        "trainset@1",
        "L-017",
        "map",
        runs["trainset"],
    )
    sources = sorted((n.ref, n.source) for n in root.sources())
    # loan 17 is line 19 of raw/loans.csv (header, then loans 0…); its customer 17 % 8 = 1 is line 3
    assert sources == [("raw/customers@1", "raw/customers.csv:3"), ("raw/loans@1", "raw/loans.csv:19")]
    [features] = root.links
    assert features.step is not None and features.step.relation == "join"
    assert sorted(link.ref for link in features.links) == ["clean@1", "raw/customers@1"]
    clean = next(link for link in features.links if link.ref == "clean@1")
    assert clean.step is not None and clean.step.relation == "filter" and clean.step.run_id == runs["clean"]


def test_every_record_traces_to_the_lines_it_was_built_from(workspace: Workspace) -> None:
    pipeline(workspace)
    kept = [i for i in range(LOANS) if i % 10 != 3]
    assert workspace.resolve("trainset").records["count"] == len(kept)  # type: ignore[index]
    for i in kept:
        root = workspace.trace_record("trainset@1", f"L-{i:03d}").roots[0]
        assert sorted(n.source for n in root.sources()) == [  # type: ignore[type-var]
            f"raw/customers.csv:{i % CUSTOMERS + 2}",
            f"raw/loans.csv:{i + 2}",
        ]
    with pytest.raises(UsageError, match="has no record 'L-003'"):  # cleaned away
        workspace.trace_record("trainset", "L-003")


def test_tracing_down_reaches_every_derived_record_and_the_model(workspace: Workspace) -> None:
    pipeline(workspace)
    found = workspace.trace_record("raw/customers", "raw/customers.csv:3", down=True)  # customer 1
    reached = set()
    stack = list(found.roots)
    while stack:
        node = stack.pop()
        reached.add((node.ref, node.record_id))
        stack += node.links
    expected_loans = {f"L-{i:03d}" for i in range(LOANS) if i % CUSTOMERS == 1 and i % 10 != 3}
    assert {rid for ref, rid in reached if ref == "trainset@1"} == expected_loans
    assert found.models == ["model@1"]


def test_aggregation_links_one_output_to_many_inputs_and_fingerprints_are_accepted(workspace: Workspace) -> None:
    raw_sources(workspace)
    with workspace.start_run("by-region") as run:
        loans = run.use_records("raw/loans.csv")
        totals = lineage.agg(loans.group_by("region"), pl.col("amount").sum().alias("total"))
        run.output_records(totals, name="regions", key=["region"])
    root = workspace.trace_record("regions", "north").roots[0]
    assert root.step is not None and root.step.relation == "aggregate"
    assert sorted(n.record_id for n in root.links) == [f"L-{i:03d}" for i in range(1, LOANS, 2)]
    fingerprint = workspace.find_records("raw/loans", record_id="L-005")[1][0].hit.fingerprint
    by_print = workspace.trace_record("raw/loans", fingerprint, down=True).roots[0]
    assert [(n.ref, n.record_id) for n in by_print.links] == [("regions@1", "north")]


def test_pandas_merge_and_groupby_keep_ids(workspace: Workspace) -> None:
    raw_sources(workspace)
    with workspace.start_run("pandas") as run:
        loans = run.use_records("raw/loans.csv", kind="pandas")
        customers = run.use_records("raw/customers.csv", kind="pandas")
        merged = loans.merge(customers, on="customer_id")
        assert isinstance(merged, pd.DataFrame) and {"_rid_x", "_rid_y"} <= set(merged.columns)
        per_customer = lineage.agg(merged.groupby("customer_id"), debt=("debt", "first"))
        run.output_records(per_customer, name="per-customer", key=["customer_id"])
    root = workspace.trace_record("per-customer", "2").roots[0]
    assert root.step is not None and root.step.relation == "aggregate"
    assert {n.source for n in root.sources()} == {"raw/customers.csv:4"} | {
        f"raw/loans.csv:{i + 2}" for i in range(LOANS) if i % CUSTOMERS == 2
    }


def test_column_lineage_is_recorded_from_expressions_and_declarations(workspace: Workspace) -> None:
    pipeline(workspace)
    with workspace.db.read() as conn:
        c = column_lineage.c
        rows = conn.execute(sa.select(c.output, c.column, c.input, c.input_column)).all()
    links = {(o, c): set() for o, c, _, _ in rows}
    for output, column, source, source_column in rows:
        links[(output, column)].add((source, source_column))
    assert links[("features@1", "debt_ratio")] == {("raw/customers@1", "debt"), ("clean@1", "income")}
    assert links[("clean@1", "income")] == {("raw/loans@1", "income")}
    assert links[("trainset@1", "label")] == {("features@1", "debt_ratio")}
    assert links[("features@1", "debt")] == {("raw/customers@1", "debt")}


def test_lineage_is_sealed_and_a_tampered_link_is_named_by_verify(workspace: Workspace) -> None:
    runs = pipeline(workspace)
    assert workspace.verify().problems == []
    with workspace.db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE record_lineage SET relation = 'map' WHERE output = 'features@1'"))
    problems = workspace.verify().problems
    assert [(p.kind, p.where) for p in problems] == [("run_seal_mismatch", f"runs[{runs['features']}]")]
    assert "lineage differs" in problems[0].detail


def test_bad_lineage_input_is_refused(workspace: Workspace) -> None:
    raw_sources(workspace)
    with workspace.start_run("bad") as run:
        loans = run.use_records("raw/loans.csv")
        with pytest.raises(UsageError, match="no _rid column"):
            run.output_records(loans.drop("_rid"), name="lost")
        out = run.output_records(loans.head(3), name="head", key=["loan_id"])
        with pytest.raises(UsageError, match="would form a cycle"):
            run.record_lineage("raw/loans", out.ref, ["L-000"], ["L-000"])
        with pytest.raises(UsageError, match="1 output ids but 0 input ids"):
            run.record_lineage(out.ref, "raw/loans", ["L-000"], [])
    with pytest.raises(UsageError, match="has no record 'L-0O1'") as refused:
        workspace.trace_record("raw/loans", "L-0O1")
    assert "did you mean L-001" in refused.value.hint
    with pytest.raises(UsageError, match="depth must be at least 1"):
        workspace.trace_record("raw/loans", "L-001", depth=0)


def test_declared_record_lineage_for_other_engines(workspace: Workspace) -> None:
    raw_sources(workspace)
    write_tree(workspace.root, {"scores.csv": "loan_id,score\nL-000,0.5\nL-001,0.7\n"})
    with workspace.start_run("external") as run:
        run.use("raw/loans@1")
        scores = workspace.add(
            [workspace.root / "scores.csv"], records=RecordSpec(key=("loan_id",)), generated_by=run.id
        )
        run.record_lineage(scores[0].version.ref, "raw/loans@1", ["L-000", "L-001"], ["L-000", "L-001"])
    root = workspace.trace_record("scores", "L-001").roots[0]
    assert [n.source for n in root.sources()] == ["raw/loans.csv:3"]
    assert root.step is not None and root.step.relation == "declared"


def test_trace_record_cli(cli: Cli) -> None:
    cli("init")
    ws = Workspace.open(cli.cwd)
    try:
        pipeline(ws)
    finally:
        ws.close()
    doc = cli.json("trace", "record", "trainset", "L-017")
    assert doc["direction"] == "back"
    assert {s["source"] for s in doc["sources"]} == {"raw/customers.csv:3", "raw/loans.csv:19"}
    assert doc["records"][0]["step"]["relation"] == "map"
    down = cli.json("trace", "record", "raw/loans@1", "L-017", "--down")
    assert down["models"] == ["model@1"]
    out, _ = cli("trace", "record", "trainset", "L-017")
    assert "raw/loans.csv:19" in out and "join by run" in out
    _, err = cli("trace", "record", "trainset", "L-999", code=2)
    assert "has no record 'L-999'" in err and len(err.strip().splitlines()) == 1
    cli("trace", "record", "nosuch", "L-1", code=2)
    cli("trace", "record", "trainset", "L-017", "--depth", "0", code=2)
