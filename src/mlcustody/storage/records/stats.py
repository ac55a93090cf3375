"""Per-column statistics of a dataset version, computed by DuckDB over the stored values.

For every column: rows, nulls, approximate distinct count (HyperLogLog), min and max; for numeric
columns mean, standard deviation and approximate (t-digest) 5/25/50/75/95 % quantiles; the five most
frequent values (none for mostly-distinct columns such as ids); and the inferred type. Values are
JSON-ready (numbers stay numbers; other values become strings).
"""

from __future__ import annotations

import math
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


def column_stats(values: Path) -> dict[str, dict[str, Any]]:
    """Statistics of every column of the Parquet file ``values`` (one DuckDB aggregate pass per column)."""
    schema = pq.read_schema(values)
    con = duckdb.connect()
    try:
        con.execute("SET threads TO 2")
        con.execute("SET memory_limit = '512MB'")
        con.execute(f"CREATE VIEW records AS SELECT * FROM read_parquet('{str(values).replace(chr(39), chr(39) * 2)}')")
        return {field.name: _one(con, field.name, field.type) for field in schema}
    finally:
        con.close()


def _one(con: duckdb.DuckDBPyConnection, name: str, dtype: pa.DataType) -> dict[str, Any]:
    col = '"' + name.replace('"', '""') + '"'
    kind = kind_of(dtype)
    numeric = kind in ("integer", "float", "decimal")
    orderable = kind not in ("list", "struct", "binary", "other")
    parts = ["count(*)", f"count({col})", f"approx_count_distinct({col})"]
    if orderable:
        parts += [f"min({col})::VARCHAR", f"max({col})::VARCHAR"]
    if numeric:
        finite = f"CASE WHEN isfinite({col}::DOUBLE) THEN {col}::DOUBLE END"
        parts += [f"avg({finite})", f"stddev_samp({finite})"]
        parts += [f"approx_quantile({finite}, {q})" for q in QUANTILES]
    row = con.execute(f"SELECT {', '.join(parts)} FROM records").fetchone()
    assert row is not None
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
        stats["quantiles"] = {str(q): _number(v) for q, v in zip(QUANTILES, rest[2:], strict=True)}
    if orderable and stats["distinct_approx"] > _UNIQUE_SHARE * max(1, row[1]):
        stats["top"] = None  # mostly distinct values (ids, names): a top five would be arbitrary
    elif orderable:
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
