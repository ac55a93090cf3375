"""Inferred key links: several candidate keys are checked for agreement with one join (and a
membership count per extra column). The oracle is the direct definition: pair the records by every
candidate separately and compare the sorted pairs."""

from __future__ import annotations

import random

import polars as pl
import pyarrow as pa
import pytest

from mlcustody.lineage import inference
from mlcustody.storage.records.table import ID_COLUMN


def _by_definition(output: pa.Table, input: pa.Table, columns: list[str]) -> dict[str, pl.DataFrame]:
    pairs = {}
    for column in columns:
        left = pl.DataFrame({"k": output.column(column).cast(pa.string()), "output_id": output.column(ID_COLUMN)})
        right = pl.DataFrame({"k": input.column(column).cast(pa.string()), "input_id": input.column(ID_COLUMN)})
        pairs[column] = left.join(right, on="k").select("output_id", "input_id").sort("output_id", "input_id")
    return pairs


def _tables(rng: random.Random, n: int, mode: str) -> tuple[pa.Table, pa.Table]:
    """An input with two unique columns ``a`` (int) and ``b`` (text), and an output keeping most rows,
    whose ``b`` agrees with ``a`` (``same``), is permuted (``swapped``), or pairs extra rows (``extra``)."""
    a = rng.sample(range(10 * n), n)
    b = [f"B{value:07d}" for value in rng.sample(range(10 * n), n)]
    input = pa.table({"a": a, "b": b, ID_COLUMN: [f"in.csv:{i + 2}" for i in range(n)]})
    kept = sorted(rng.sample(range(n), int(n * 0.8)))
    out_a, out_b = [a[i] for i in kept], [b[i] for i in kept]
    if mode == "swapped":
        out_b[0], out_b[1] = out_b[1], out_b[0]
    if mode == "extra":  # a row whose a matches nothing but whose b matches a dropped input row
        dropped = next(i for i in range(n) if i not in set(kept))
        out_a.append(-1)
        out_b.append(b[dropped])
    output = pa.table(
        {"a": pa.array(out_a, pa.int32()), "b": out_b, ID_COLUMN: [f"out.csv:{i + 2}" for i in range(len(out_a))]}
    )
    return output, input


@pytest.mark.parametrize("mode", ["same", "swapped", "extra"])
@pytest.mark.parametrize("seed", [1, 2])
def test_candidate_keys_agree_exactly_when_their_pairs_are_equal(mode: str, seed: int) -> None:
    output, input = _tables(random.Random(seed), 500, mode)
    found = inference.infer(output, input, names=("out@1", "in@1"))
    expected = _by_definition(output, input, ["a", "b"])
    agree = expected["a"].equals(expected["b"])
    assert agree == (mode == "same")
    if agree:
        assert found.relation == inference.KEY and found.links is not None
        assert found.links.equals(expected["a"])
        assert found.evidence["candidates"] == ["a", "b"] and found.evidence["matched"] == expected["a"].height
    else:
        assert any("candidate keys a, b pair out@1 with in@1 differently" in note for note in found.notes)
        assert found.relation != inference.KEY


def test_an_integer_column_is_unique_exactly_when_no_value_repeats() -> None:
    """The pigeonhole shortcut agrees with counting distinct values, both ways and at the edges."""
    import pyarrow as pa

    from mlcustody.lineage import inference

    cases = {
        "ages": [30, 41, 30, 55],  # range 26 ≥ 4 rows, but 30 repeats: counted, not short-cut
        "flags": [0, 1, 1, 0, 1],  # range 2 < 5 rows: short-cut
        "ids": [7, 5, 6, 8],  # range exactly the rows: unique
        "wide": [1, 1_000_000, -5, 42],  # unique with a wide range
        "one": [3],
    }
    for name, values in cases.items():
        table = pa.table({name: pa.array(values, pa.int64())})
        assert inference._unique(table, name) == (len(set(values)) == len(values)), name
    assert not inference._unique(pa.table({"x": pa.array([1, None], pa.int64())}), "x")
    assert inference._unique(pa.table({"x": pa.array([], pa.int64())}), "x")
