"""Finding one record in a manifest by id or fingerprint, and reading it back from the raw bytes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from mlcustody.storage.records import fingerprint as fp
from mlcustody.storage.records import readers


@dataclass(frozen=True)
class Hit:
    record_id: str
    fingerprint: str
    source: str
    offset: int

    @property
    def rel(self) -> str:
        """The file part of the locator."""
        for mark in (":", "#"):
            head, sep, tail = self.source.rpartition(mark)
            if sep and tail.isdigit():
                return head
        return self.source


def find(manifest: Path, *, record_id: str | None = None, fingerprint: str | None = None) -> list[Hit]:
    """Every manifest row with that id (at most one) or that fingerprint (duplicates possible)."""
    column, value = ("record_id", record_id) if record_id is not None else ("fingerprint", fingerprint)
    con = duckdb.connect()
    try:
        rows = con.execute(
            f'SELECT record_id, fingerprint, source, "offset" FROM read_parquet(?) WHERE {column} = ? '
            "ORDER BY record_id LIMIT 100",
            [str(manifest), value],
        ).fetchall()
    finally:
        con.close()
    return [Hit(*row) for row in rows]


def read_values(raw: Path, fmt: str, hit: Hit, schema: pa.Schema) -> tuple[dict[str, Any], bool]:
    """The record's values as parsed with the version's schema, and whether its fingerprint matches."""
    table = readers.read_one(raw, fmt, hit.rel, schema, hit.offset)
    verified = fp.fingerprints(table)[0].as_py() == hit.fingerprint
    row = table.to_pylist()[0]
    return {name: _jsonable(value) for name, value in row.items()}, verified


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return str(value)
