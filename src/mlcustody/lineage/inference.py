"""Record links inferred between the tables a run read and the tables it wrote, without its code's help.

A plain script keeps no ``_rid`` column, so which input record each output record came from must
be read off the data. Two kinds of evidence are used, in this order, and each link says which:

``inferred-key``
    A key column shared by both tables: one of ``[capture] keys`` found in both, else every column
    present in both with the same type, neither float nor boolean, no nulls, and unique in both.
    Output record ↔ input record where their key values are equal. When several columns qualify
    and they pair records identically the link names them all; when they disagree nothing is linked
    by key, and the note names them and how to choose (``[capture] keys``).
``inferred-fingerprint``
    No usable key: the columns carried over unchanged (same name and type in both) are fingerprinted
    in both tables with the canonical record fingerprint, and records with equal fingerprints are
    linked. A record matching several input records (exact duplicates) is linked to each of them.

A pairing counts as evidence only when it covers at least half of one side (a filter keeps most of
its input's records; a concatenation carries all of each input's) and, for fingerprints, when at
most a tenth of the matched output records are ambiguous. Below that the pair is left unlinked with
a note saying why: a silent gap in a chain of custody is worse than a stated one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from mlcustody.storage.records import fingerprint as fp
from mlcustody.storage.records.table import ID_COLUMN

KEY = "inferred-key"
FINGERPRINT = "inferred-fingerprint"
RELATIONS = (KEY, FINGERPRINT)
MIN_COVERAGE = 0.5
MAX_AMBIGUOUS = 0.1


@dataclass(frozen=True)
class Inferred:
    """The links found from one input table to one output table, or why there are none."""

    relation: str | None  # KEY | FINGERPRINT | None (not linked)
    links: pl.DataFrame | None  # output_id, input_id — sorted by output_id
    evidence: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Uniqueness:
    """Which columns of which tables are unique, each found once: a run that wrote one table from
    three asks it of the output's columns three times, and hashing a million keys costs ~50 ms."""

    def __init__(self) -> None:
        self._found: dict[tuple[int, str], bool] = {}
        self._tables: dict[int, pa.Table] = {}  # held, so that an id is never reused while cached

    def __call__(self, table: pa.Table, column: str) -> bool:
        known = (id(table), column)
        if known not in self._found:
            self._tables[id(table)] = table
            self._found[known] = _unique(table, column)
        return self._found[known]


def infer(
    output: pa.Table,
    input: pa.Table,
    *,
    keys: Sequence[str] = (),
    names: tuple[str, str],
    unique: Uniqueness | None = None,
) -> Inferred:
    """Link the records of ``output`` to those of ``input`` (both with a ``record_id`` column).

    ``names`` are the two versions' references, used in notes only; ``unique`` shares what is known
    of the tables' columns between the pairs of one run."""
    out_name, in_name = names
    unique = unique or Uniqueness()
    shared = _shared_columns(output, input)
    counts = {"output_records": output.num_rows, "input_records": input.num_rows}
    if not shared:
        return Inferred(None, None, counts, [f"{out_name} shares no column with {in_name}: records not linked"])
    notes: list[str] = []
    declared = [k for k in keys if k in shared]
    candidates = declared[:1] if declared else [c for c in shared if _key_like(output, input, c, unique)]
    if declared and not unique(input, declared[0]):
        notes.append(f"key {declared[0]} is not unique in {in_name}; linking by carried-over columns instead")
        candidates = []
    paired = _pair_by(output, input, candidates[0], candidates[1:]) if candidates else None
    if paired is not None and paired[1]:
        column, links = candidates[0], paired[0]
        coverage = _coverage(links, output, input)
        if coverage >= MIN_COVERAGE:
            evidence = {**counts, "method": "key", "columns": [column], "candidates": candidates}
            return Inferred(KEY, links, evidence | {"matched": links.height}, notes)
        notes.append(f"key {column} pairs only {coverage:.0%} of the records of {out_name} and {in_name}")
    elif len(candidates) > 1:
        notes.append(
            f"candidate keys {', '.join(candidates)} pair {out_name} with {in_name} differently; "
            f'name the key in .custody/config.toml: [capture] keys = ["{candidates[0]}"]'
        )
    elif dropped := _dropped_key(input, output, unique):
        notes.append(f"{out_name} dropped or renamed the key of {in_name} ({dropped})")
    return _by_fingerprint(output, input, shared, counts, notes, names)


def _by_fingerprint(
    output: pa.Table,
    input: pa.Table,
    shared: list[str],
    counts: dict[str, Any],
    notes: list[str],
    names: tuple[str, str],
) -> Inferred:
    out_name, in_name = names
    left = pl.DataFrame({"output_id": output.column(ID_COLUMN), "fp": fp.fingerprints(output.select(shared))})
    right = pl.DataFrame({"input_id": input.column(ID_COLUMN), "fp": fp.fingerprints(input.select(shared))})
    links = (
        left.join(right, on="fp", how="inner").select("output_id", "input_id").unique().sort("output_id", "input_id")
    )
    evidence = {**counts, "method": "fingerprint", "columns": shared, "matched": links.height}
    per_output = links.group_by("output_id").len()
    ambiguous = per_output.filter(pl.col("len") > 1).height
    evidence["ambiguous"] = ambiguous
    coverage = _coverage(links, output, input)
    if links.height and coverage >= MIN_COVERAGE and ambiguous <= MAX_AMBIGUOUS * per_output.height:
        return Inferred(FINGERPRINT, links, evidence, notes)
    why = (
        f"records of {out_name} match no record of {in_name} on the carried-over columns"
        if not links.height
        else f"carried-over columns {', '.join(shared)} pair only {coverage:.0%} of the records"
        if coverage < MIN_COVERAGE
        else f"carried-over columns {', '.join(shared)} do not tell records apart ({ambiguous} ambiguous)"
    )
    return Inferred(None, None, evidence, [*notes, f"{out_name} ← {in_name}: not linked: {why}"])


def _shared_columns(output: pa.Table, input: pa.Table) -> list[str]:
    """Columns of both tables, same name and comparable type, in the output's order."""
    types = {name: input.schema.field(name).type for name in input.column_names if name != ID_COLUMN}
    return [
        name
        for name in output.column_names
        if name != ID_COLUMN and name in types and _comparable(output.schema.field(name).type, types[name])
    ]


def _comparable(a: pa.DataType, b: pa.DataType) -> bool:
    if a == b:
        return True
    strings = (
        pa.types.is_string(a) or pa.types.is_large_string(a),
        pa.types.is_string(b) or pa.types.is_large_string(b),
    )
    return all(strings) or (pa.types.is_integer(a) and pa.types.is_integer(b))


def _key_like(output: pa.Table, input: pa.Table, column: str, unique: Uniqueness) -> bool:
    kind = output.schema.field(column).type
    if not (pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return False
    if not column.strip() or column.startswith("Unnamed"):  # a dataframe's index written out, not a key
        return False
    return unique(output, column) and unique(input, column)


def _unique(table: pa.Table, column: str) -> bool:
    """No nulls and no repeats. An integer column with more rows than values between its minimum and
    maximum repeats one (ages, flags, counts): known from one vectorised pass, without hashing."""
    values = table.column(column)
    if values.null_count:
        return False
    if pa.types.is_integer(values.type) and table.num_rows:
        bounds = pc.min_max(values)
        if bounds["max"].as_py() - bounds["min"].as_py() + 1 < table.num_rows:
            return False
    return bool(len(values.unique()) == table.num_rows)


def _pair_by(output: pa.Table, input: pa.Table, column: str, others: Sequence[str]) -> tuple[pl.DataFrame, bool]:
    """Output ↔ input record ids where ``column`` is equal (sorted), and whether each of ``others``
    pairs the records identically.

    Every candidate is unique in both tables, so pairing by another column gives the same pairs
    exactly when it gives as many and each pair found by ``column`` agrees on it too; that needs one
    join and one membership count per column, not a join and a sort per column and a comparison."""
    columns = [column, *others]
    left = pl.from_arrow(output.select([*columns, ID_COLUMN]))
    right = pl.from_arrow(input.select([*columns, ID_COLUMN]))
    assert isinstance(left, pl.DataFrame) and isinstance(right, pl.DataFrame)
    left = left.rename({ID_COLUMN: "output_id"}).with_columns(pl.col(columns).cast(pl.String))
    right = right.rename({ID_COLUMN: "input_id"}).with_columns(pl.col(columns).cast(pl.String))
    joined = left.join(right, on=column, how="inner", suffix="_input")
    agree = all(
        joined.height == int(left[other].is_in(right[other].implode()).sum())
        and bool((joined[other] == joined[f"{other}_input"]).all())
        for other in others
    )
    return joined.select("output_id", "input_id").sort("output_id", "input_id"), agree


def _coverage(links: pl.DataFrame, output: pa.Table, input: pa.Table) -> float:
    if not links.height:
        return 0.0
    out = links["output_id"].n_unique() / max(output.num_rows, 1)
    into = links["input_id"].n_unique() / max(input.num_rows, 1)
    return float(max(out, into))


def _dropped_key(input: pa.Table, output: pa.Table, unique: Uniqueness) -> str | None:
    """A column that identified the input's records and is missing from the output."""
    for name in input.column_names:
        if name != ID_COLUMN and name not in output.column_names and unique(input, name):
            kind = input.schema.field(name).type
            if pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind):
                return str(name)
    return None
