"""Per-column statistics of a dataset version, computed by DuckDB over its values in one scan.

For every column: rows, nulls, approximate distinct count (HyperLogLog), min and max; for numeric
columns mean, standard deviation and approximate (t-digest) 5/25/50/75/95 % quantiles; the five most
frequent values (none for mostly-distinct columns such as ids); and the inferred type. Values are
JSON-ready (numbers stay numbers; other values become strings).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
TOP = 5
# Columns whose approximate distinct count exceeds this share of their values get no top five.
_UNIQUE_SHARE = 0.5


def kind_of(dtype: pa.DataType) -> str:
    """The inferred type reported for a column, independent of bit widths and units."""
    checks = (
        (pa.types.is_boolean, "boolean"),
        (pa.types.is_integer, "integer"),
        (pa.types.is_floating, "float"),
        (pa.types.is_decimal, "decimal"),
        (pa.types.is_timestamp, "timestamp"),
        (pa.types.is_date, "date"),
        (pa.types.is_time, "time"),
        (pa.types.is_duration, "duration"),
        (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "string"),
        (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t), "binary"),
        (lambda t: pa.types.is_list(t) or pa.types.is_large_list(t), "list"),
        (pa.types.is_struct, "struct"),
        (pa.types.is_dictionary, "string"),
    )
    return next((name for check, name in checks if check(dtype)), "other")


def column_stats(values: Path | pa.Table) -> dict[str, dict[str, Any]]:
    """Statistics of every column of ``values``, a Parquet file or an in-memory Arrow table.

    All columns' aggregates come from one scan, read in row order by one thread. DuckDB's
    approximate aggregates (HyperLogLog, t-digest) and its floating-point sums depend on the order
    in which rows reach them: scanned by two threads, a file of several row groups gave a slightly
    different mean and quantiles from one run to the next. In row order the numbers are the same
    every time, and the same for the file and for the table it was written from. Only the exact
    top-five queries run on two threads.
    """
    con = duckdb.connect()
    try:
        con.execute("SET threads TO 2")
        con.execute("SET memory_limit = '512MB'")
        if isinstance(values, pa.Table):
            con.register("records", values)
            schema = values.schema
        else:
            schema = pq.read_schema(values)
            path = str(values).replace("'", "''")
            con.execute(f"CREATE VIEW records AS SELECT * FROM read_parquet('{path}')")
        return _all_in_one(con, schema)
    finally:
        con.close()


def _all_in_one(con: duckdb.DuckDBPyConnection, schema: pa.Schema) -> dict[str, dict[str, Any]]:
    """Every column's aggregates in one scan, in row order (one thread), then the top fives."""
    if not schema.names:
        return {}
    per_column = [_aggregates(_quoted(field.name), kind_of(field.type)) for field in schema]
    con.execute("SET threads TO 1")
    row = con.execute(f"SELECT {', '.join(part for parts in per_column for part in parts)} FROM records").fetchone()
    con.execute("SET threads TO 2")
    assert row is not None
    stats, start = {}, 0
    for field, parts in zip(schema, per_column, strict=True):
        stats[field.name] = _shaped(con, field.name, field.type, row[start : start + len(parts)])
        start += len(parts)
    return stats


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _orderable(kind: str) -> bool:
    return kind not in ("list", "struct", "binary", "other")


def _numeric(kind: str) -> bool:
    return kind in ("integer", "float", "decimal")


def _aggregates(col: str, kind: str) -> list[str]:
    """The aggregate expressions of one column, in the order ``_shaped`` reads them back."""
    parts = ["count(*)", f"count({col})", f"approx_count_distinct({col})"]
    if _orderable(kind):
        parts += [f"min({col})::VARCHAR", f"max({col})::VARCHAR"]
    if _numeric(kind):
        finite = f"CASE WHEN isfinite({col}::DOUBLE) THEN {col}::DOUBLE END"
        parts += [f"avg({finite})", f"stddev_samp({finite})"]
        # One t-digest answers all five quantiles: the same values as five digests, a fifth of the work.
        parts.append(f"approx_quantile({finite}, [{', '.join(map(str, QUANTILES))}])")
    return parts


def _shaped(con: duckdb.DuckDBPyConnection, name: str, dtype: pa.DataType, row: Sequence[Any]) -> dict[str, Any]:
    """One column's statistics from its aggregates (and, for repetitive columns, its top five)."""
    kind = kind_of(dtype)
    orderable, numeric = _orderable(kind), _numeric(kind)
    stats: dict[str, Any] = {
        "type": kind,
        "arrow_type": str(dtype),
        "count": row[0],
        "nulls": row[0] - row[1],
        "distinct_approx": row[2],
    }
    rest = list(row[3:])
    if orderable:
        stats["min"], stats["max"] = rest[0], rest[1]
        rest = rest[2:]
    if numeric:
        stats["mean"], stats["std"] = _number(rest[0]), _number(rest[1])
        quantiles = rest[2] if rest[2] is not None else [None] * len(QUANTILES)
        stats["quantiles"] = {str(q): _number(v) for q, v in zip(QUANTILES, quantiles, strict=True)}
    if orderable and stats["distinct_approx"] > _UNIQUE_SHARE * max(1, row[1]):
        stats["top"] = None  # mostly distinct values (ids, names): a top five would be arbitrary
    elif orderable:
        col = _quoted(name)
        top = con.execute(
            f"SELECT {col}::VARCHAR, count(*) AS n FROM records WHERE {col} IS NOT NULL "
            f"GROUP BY 1 ORDER BY n DESC, 1 LIMIT {TOP}"
        ).fetchall()
        stats["top"] = [{"value": value, "count": count} for value, count in top]
    return stats


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


_SHIFTED = ("count", "nulls", "distinct_approx", "mean", "std", "min", "max")


def compare_stats(old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Schema changes and, per common column, the statistics that moved ({stat: [old, new]})."""
    before = {c["name"]: c["type"] for c in old["columns"]}
    after = {c["name"]: c["type"] for c in new["columns"]}
    schema = {
        "added_columns": sorted(after.keys() - before.keys()),
        "removed_columns": sorted(before.keys() - after.keys()),
        "type_changes": {
            name: [before[name], after[name]]
            for name in sorted(before.keys() & after.keys())
            if before[name] != after[name]
        },
    }
    shifts: dict[str, dict[str, Any]] = {}
    for name in sorted(before.keys() & after.keys()):
        a, b = old["stats"].get(name, {}), new["stats"].get(name, {})
        moved = {stat: [a.get(stat), b.get(stat)] for stat in _SHIFTED if a.get(stat) != b.get(stat)}
        if moved:
            shifts[name] = moved
    return schema, shifts
