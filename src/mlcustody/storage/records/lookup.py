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


@dataclass(frozen=True)
class Record:
    values: dict[str, Any]
    raw: str | None  # the record's text in the file (line formats)
    verified: bool  # the values re-read from the raw bytes hash to the manifest's fingerprint


def read_record(raw: Path, fmt: str, hit: Hit, schema: pa.Schema) -> Record:
    """The record at ``hit``, parsed with the version's schema, checked against its fingerprint."""
    table, text = readers.read_one(raw, fmt, hit.rel, schema, hit.offset)
    verified = fp.fingerprints(table)[0].as_py() == hit.fingerprint
    row = table.to_pylist()[0]
    return Record({name: _jsonable(value) for name, value in row.items()}, text, verified)


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
