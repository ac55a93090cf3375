"""Record manifests: one row per record — ``record_id``, ``fingerprint``, ``source``, ``offset`` —
stored as a Parquet object and referenced by the artifact version.

``record_id`` is the canonical text of the key columns when a key is given, else the record's
locator (``path.csv:LINE``, ``path.parquet#ROW``), so every record can be found again in the raw
bytes. Rows are sorted by ``record_id`` and written in row groups of 128 Ki rows, so looking one
record up reads a single row group (Parquet min/max statistics prune the others). The Parquet
key-value metadata carries the fingerprint scheme, the format, the key and the Arrow schema of the
values, which is what re-reading one record exactly needs.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlcustody.errors import UsageError
from mlcustody.storage.objects import ObjectStore
from mlcustody.storage.records import fingerprint as fp
from mlcustody.storage.records import readers
from mlcustody.storage.records.stats import column_stats, kind_of

ROW_GROUP = 128 * 1024
MANIFEST_SCHEMA = pa.schema(
    [("record_id", pa.string()), ("fingerprint", pa.string()), ("source", pa.string()), ("offset", pa.int64())]
)
_SHOWN_DUPLICATES = 5


@dataclass(frozen=True)
class RecordSource:
    """One versioned file: its workspace-relative path (for locators) and where its bytes are."""

    rel: str
    path: Path


@dataclass(frozen=True)
class RecordManifest:
    digest: str
    count: int
    format: str
    key: tuple[str, ...] | None
    columns: list[dict[str, str]]
    stats: dict[str, dict[str, Any]]

    def as_meta(self) -> dict[str, Any]:
        """What the artifact version's metadata records (and the audit log vouches for)."""
        return {
            "manifest": self.digest,
            "scheme": fp.SCHEME,
            "count": self.count,
            "format": self.format,
            "key": list(self.key) if self.key else None,
            "columns": self.columns,
            "stats": self.stats,
        }


def build(sources: Sequence[RecordSource], fmt: str, key: Sequence[str] | None, objects: ObjectStore) -> RecordManifest:
    """Read every source, fingerprint its records and store the manifest; nothing is stored on error."""
    parts: list[pa.Table] = []
    values: list[pa.Table] = []
    for source in sources:
        part = readers.read(source.path, fmt, source.rel)
        if part.table.num_columns == 0:
            continue  # an empty file: no records, no columns
        if values and part.table.column_names != values[0].column_names:
            raise UsageError(
                f"{source.rel} has columns {part.table.column_names}, {sources[0].rel} has {values[0].column_names}",
                hint="version files with different columns as separate artifacts",
            )
        locators = part.locators(source.rel)
        ids = fp.record_ids(part.table, key) if key else locators
        prints = fp.fingerprints(part.table)
        parts.append(pa.table([ids, prints, locators, pa.array(part.offsets, pa.int64())], schema=MANIFEST_SCHEMA))
        values.append(part.table)
    table = pa.concat_tables(parts) if parts else MANIFEST_SCHEMA.empty_table()
    table = table.sort_by("record_id")
    if key:
        _refuse_duplicates(table, key)
    merged = pa.concat_tables(values, promote_options="permissive") if values else pa.table({})
    columns = [{"name": f.name, "type": kind_of(f.type), "arrow_type": str(f.type)} for f in merged.schema]
    digest = _store(table, merged.schema, fmt, key, objects)
    return RecordManifest(digest, table.num_rows, fmt, tuple(key) if key else None, columns, column_stats(merged))


def _refuse_duplicates(table: pa.Table, key: Sequence[str]) -> None:
    ids = table.column("record_id")
    if len(ids) < 2:
        return
    same = pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1)).to_numpy(zero_copy_only=False)
    where = np.flatnonzero(same)
    if where.size == 0:
        return
    shown = []
    for index in where[:_SHOWN_DUPLICATES].tolist():
        sources = table.column("source")
        shown.append(f"{ids[index + 1].as_py()} ({sources[index].as_py()}, {sources[index + 1].as_py()})")
    raise UsageError(
        f"{where.size} duplicate values of key {','.join(key)}: {'; '.join(shown)}",
        hint="choose key columns that identify each record (add columns with --key a,b), or omit --key",
    )


def _store(table: pa.Table, values: pa.Schema, fmt: str, key: Sequence[str] | None, objects: ObjectStore) -> str:
    meta = {
        b"mlcustody.scheme": fp.SCHEME.encode(),
        b"mlcustody.format": fmt.encode(),
        b"mlcustody.key": json.dumps(list(key) if key else None).encode(),
        b"mlcustody.values_schema": base64.b64encode(values.serialize().to_pybytes()),
    }
    tmp = objects.tmp_dir / f"records-{os.getpid()}-{id(table)}.parquet"
    try:
        pq.write_table(
            table.replace_schema_metadata(meta),
            tmp,
            row_group_size=ROW_GROUP,
            compression="zstd",
            write_statistics=["record_id", "fingerprint"],
        )
        digest, _ = objects.put_file(tmp)
    finally:
        tmp.unlink(missing_ok=True)
    return digest


def values_schema(path: Path) -> pa.Schema:
    """The Arrow schema the values were read with (stored in the manifest's Parquet metadata)."""
    meta = pq.read_schema(path).metadata or {}
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(meta[b"mlcustody.values_schema"])))
