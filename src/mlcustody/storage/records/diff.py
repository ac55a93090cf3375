"""Record diff of two manifests, in DuckDB straight from the Parquet objects (no Python row objects).

With a key on both sides, records are matched by ``record_id``: *added*, *removed*, and *changed*
(same id, new fingerprint). Without a key the ids are positions, which an inserted line would shift,
so records are matched by fingerprint as multisets instead: *added* and *removed* only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

EXAMPLES = 5


@dataclass(frozen=True)
class RecordDiff:
    matched_by: str  # "record_id" | "fingerprint"
    added: int
    removed: int
    changed: int
    unchanged: int
    examples: dict[str, list[dict[str, Any]]]


def diff(old: Path, new: Path, *, keyed: bool, examples: int | None = EXAMPLES) -> RecordDiff:
    """Counts of records added, removed, changed and unchanged, with the first ``examples`` records
    of each kind in id order (None: all of them). A keyed diff's rows carry ``old_offset`` and
    ``new_offset``, the records' locators, to read their values back (see :func:`changed_columns`)."""
    con = duckdb.connect()
    try:
        con.execute("SET threads TO 2")
        con.execute("SET memory_limit = '1GB'")
        con.execute("SET preserve_insertion_order = false")
        con.execute(f"CREATE VIEW a AS SELECT * FROM read_parquet('{_path(old)}')")
        con.execute(f"CREATE VIEW b AS SELECT * FROM read_parquet('{_path(new)}')")
        return _by_id(con, examples) if keyed else _by_fingerprint(con, examples)
    finally:
        con.close()


def _path(path: Path) -> str:
    return str(path).replace("'", "''")


def _by_id(con: duckdb.DuckDBPyConnection, examples: int | None) -> RecordDiff:
    # Only the records that differ are kept (1 % of 10M is 100k rows); unchanged ones stream past.
    con.execute(
        "CREATE TEMP TABLE j AS SELECT coalesce(a.record_id, b.record_id) AS record_id,"
        " a.fingerprint AS old_fp, b.fingerprint AS new_fp, a.source AS old_source, b.source AS new_source,"
        ' a."offset" AS old_offset, b."offset" AS new_offset'
        " FROM a FULL OUTER JOIN b ON a.record_id = b.record_id WHERE a.fingerprint IS DISTINCT FROM b.fingerprint"
    )
    counts = con.execute(
        "SELECT count(*) FILTER (old_fp IS NULL), count(*) FILTER (new_fp IS NULL),"
        " count(*) FILTER (old_fp IS NOT NULL AND new_fp IS NOT NULL),"
        " (SELECT count(*) FROM a) - count(*) FILTER (old_fp IS NOT NULL) FROM j"
    ).fetchone()
    assert counts is not None
    shown = {
        "added": "old_fp IS NULL",
        "removed": "new_fp IS NULL",
        "changed": "old_fp <> new_fp",
    }
    found = {
        name: _rows(con, f"SELECT * FROM j WHERE {where} ORDER BY record_id{_limit(examples)}")
        for name, where in shown.items()
    }
    return RecordDiff("record_id", counts[0], counts[1], counts[2], counts[3], found)


def _by_fingerprint(con: duckdb.DuckDBPyConnection, examples: int | None) -> RecordDiff:
    # Number each fingerprint's occurrences so that duplicates are matched one for one.
    for side in ("a", "b"):
        con.execute(
            f"CREATE TEMP TABLE n{side} AS SELECT *, row_number() OVER (PARTITION BY fingerprint ORDER BY record_id)"
            f" AS k FROM {side}"
        )
    con.execute(
        "CREATE TEMP TABLE j AS SELECT na.record_id AS old_id, nb.record_id AS new_id,"
        " coalesce(na.fingerprint, nb.fingerprint) AS fingerprint, na.source AS old_source, nb.source AS new_source"
        " FROM na FULL OUTER JOIN nb ON na.fingerprint = nb.fingerprint AND na.k = nb.k"
    )
    counts = con.execute(
        "SELECT count(*) FILTER (old_id IS NULL), count(*) FILTER (new_id IS NULL),"
        " count(*) FILTER (old_id IS NOT NULL AND new_id IS NOT NULL) FROM j"
    ).fetchone()
    assert counts is not None
    found = {
        "added": _rows(con, f"SELECT * FROM j WHERE old_id IS NULL ORDER BY new_id{_limit(examples)}"),
        "removed": _rows(con, f"SELECT * FROM j WHERE new_id IS NULL ORDER BY old_id{_limit(examples)}"),
        "changed": [],
    }
    return RecordDiff("fingerprint", counts[0], counts[1], 0, counts[2], found)


def _rows(con: duckdb.DuckDBPyConnection, query: str) -> list[dict[str, Any]]:
    cursor = con.execute(query)
    names = [column[0] for column in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _limit(examples: int | None) -> str:
    return "" if examples is None else f" LIMIT {int(examples)}"


def changed_columns(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    """``{column: [old value, new value]}`` for each column whose value differs between two records
    (a column only one side has counts as None on the other), in the new record's column order."""
    names = [*new, *(name for name in old if name not in new)]
    return {name: [old.get(name), new.get(name)] for name in names if old.get(name) != new.get(name)}
