"""Keeping record ids through ordinary dataframe code, so a run can say where each output record came from.

A frame from ``run.use_records`` carries one extra column, ``_rid``, holding ``NAME@VERSION|RECORD_ID``
for each row. Most dataframe code keeps it without being told: filters, sorts, ``with_columns``,
``explode`` and vertical concatenation keep the column, a join keeps both sides' (polars names the
right one ``_rid_right``, pandas ``_rid_x``/``_rid_y``). Only an aggregation needs help, because it
must collect the ids of each group: :func:`agg` does that (a list of ids per output row), and
:func:`join` gives the right side's id column a fresh name so that joins can be chained.

When the run stores the result, every column whose name starts with ``_rid`` is read back: a string
is one source record, a list is many; the pairs (output record, input record) per input version are
the run's record lineage. The relation is inferred from the shape: ``aggregate`` (a list column),
``join`` (several id columns), ``concat`` (one column, several input versions), ``explode`` (an input
record feeding several outputs), ``filter`` (fewer outputs than the input had) or ``map``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow as pa

from mlcustody.errors import UsageError

RID = "_rid"
_SEPARATOR = "|"
_JOIN_SUFFIXES = ("_right", "_x", "_y")
_fresh = itertools.count(1)


@dataclass(frozen=True)
class Links:
    """The records of one input version that the output records came from."""

    input: str  # NAME@VERSION
    relation: str
    table: pl.DataFrame  # output_id, input_id; sorted by output_id


def qualify(table: pa.Table, ref: str, id_column: str) -> pa.Table:
    """``table`` with its record id column replaced by a first column ``_rid`` = ``ref|id``."""
    ids = pl.from_arrow(table.column(id_column)).cast(pl.String)
    qualified = (pl.lit(ref + _SEPARATOR) + pl.col(id_column)).alias(RID)
    column = pl.DataFrame({id_column: ids}).select(qualified).to_arrow().column(RID)
    values = table.drop_columns([id_column])
    return values.add_column(0, RID, column)


def as_frame(table: pa.Table, kind: str) -> Any:
    """The table as a polars or pandas DataFrame (or left as Arrow)."""
    if kind == "polars":
        return pl.from_arrow(table)
    if kind == "pandas":
        return table.to_pandas()
    if kind == "arrow":
        return table
    raise UsageError(f"unknown frame kind {kind!r}", hint="use polars, pandas or arrow")


def to_arrow(frame: Any) -> pa.Table:
    if isinstance(frame, pa.Table):
        return frame
    if isinstance(frame, pl.DataFrame):
        return frame.to_arrow()
    if isinstance(frame, pl.LazyFrame):
        return frame.collect().to_arrow()
    if type(frame).__module__.startswith("pandas"):
        return pa.Table.from_pandas(frame, preserve_index=False)
    raise UsageError(
        f"cannot store a {type(frame).__qualname__} as records", hint="pass a polars, pandas or pyarrow table"
    )


def id_columns(table: pa.Table) -> list[str]:
    return [name for name in table.column_names if name.startswith(RID)]


def base_column(name: str) -> str:
    """The column a joined frame's suffixed column came from (``amount_right`` → ``amount``)."""
    for suffix in _JOIN_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def links(table: pa.Table, output_ids: list[str] | pa.Array, input_counts: dict[str, int]) -> list[Links]:
    """Per input version, the (output_id, input_id) pairs carried by the ``_rid*`` columns of ``table``."""
    columns = id_columns(table)
    if not columns:
        raise UsageError(
            "the frame has no _rid column: its records cannot be linked to their sources",
            hint="keep the _rid column through select(), and aggregate with mlcustody.lineage.agg()",
        )
    frame = pl.from_arrow(table.select(columns))
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(pl.Series("output_id", output_ids, dtype=pl.String))
    listed = [c for c in columns if isinstance(frame.schema[c], pl.List)]
    pieces = []
    for column in columns:
        piece = frame.select("output_id", pl.col(column).alias("qualified"))
        if column in listed:
            piece = piece.explode("qualified")
        pieces.append(piece.drop_nulls("qualified"))
    pairs = pl.concat(pieces).with_columns(
        pl.col("qualified").str.split_exact(_SEPARATOR, 1).struct.rename_fields(["input", "input_id"])
    )
    pairs = pairs.unnest("qualified")
    if listed or len(columns) > 1:  # only then can one (output, input) pair appear twice
        pairs = pairs.unique()
    found = []
    for (ref,), part in sorted(pairs.partition_by("input", as_dict=True).items()):
        mine = part.select("output_id", "input_id").sort("output_id")  # trace reads links by output id
        relation = _relation(listed, len(columns), pairs, mine, input_counts.get(str(ref)))
        found.append(Links(str(ref), relation, mine))
    return found


def _relation(
    listed: list[str], columns: int, every: pl.DataFrame, pairs: pl.DataFrame, input_count: int | None
) -> str:
    if listed:
        return "aggregate"
    if columns > 1:
        return "join"
    if every.height != pairs.height:
        return "concat"
    if pairs.get_column("input_id").is_duplicated().any():
        return "explode"
    if input_count is not None and pairs.height < input_count:
        return "filter"
    return "map"


def agg(grouped: Any, *exprs: Any, **named: Any) -> Any:
    """``grouped.agg(...)`` that also collects each group's record ids (polars or pandas group-by)."""
    if type(grouped).__module__.startswith("polars"):  # GroupBy or LazyGroupBy
        return grouped.agg(*exprs, pl.col(f"^{RID}.*$"), **named)
    frame_columns = getattr(getattr(grouped, "obj", None), "columns", None)
    if frame_columns is None:
        raise UsageError("agg() takes a polars or pandas group-by", hint="call it as agg(df.group_by(keys), ...)")
    if exprs:
        raise UsageError("pandas aggregations are given by name", hint="agg(df.groupby(k), total=('amount', 'sum'))")
    ids = {name: (name, list) for name in frame_columns if str(name).startswith(RID)}
    return grouped.agg(**named, **ids).reset_index()


def join(left: Any, right: Any, **options: Any) -> Any:
    """A polars join that gives the right side's ``_rid*`` columns fresh names, so joins chain."""
    if not isinstance(left, pl.DataFrame | pl.LazyFrame):
        raise UsageError("join() is for polars frames", hint="pandas merges keep _rid_x/_rid_y by themselves")
    columns = right.collect_schema().names() if isinstance(right, pl.LazyFrame) else right.columns
    renamed = {name: f"{RID}_{next(_fresh)}" for name in columns if name.startswith(RID)}
    return left.join(right.rename(renamed), **options)
