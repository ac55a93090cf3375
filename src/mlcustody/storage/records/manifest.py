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
import itertools
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
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
_counter = itertools.count()


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
    """Read every source, fingerprint its records and store the manifest; nothing is stored on error.

    Records stream through in batches (memory stays bounded by the batch, not the dataset): each
    batch's ids, fingerprints and locators go to a temporary Parquet file, its values to another,
    then DuckDB sorts the first into the manifest (out of core) and computes statistics from the
    second. When later records widen a column type, the read starts over with the widened schema.
    """
    schema: pa.Schema | None = None
    while True:
        with _Scratch(objects) as scratch:
            try:
                return _build_once(sources, fmt, key, objects, scratch, schema)
            except readers.Retype as retype:
                schema = retype.schema


class _Scratch:
    """A private temporary directory inside the store (same filesystem), removed on exit."""

    def __init__(self, objects: ObjectStore) -> None:
        self.path = objects.tmp_dir / f"records-{os.getpid()}-{next(_counter)}"

    def __enter__(self) -> Path:
        self.path.mkdir()
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _build_once(
    sources: Sequence[RecordSource],
    fmt: str,
    key: Sequence[str] | None,
    objects: ObjectStore,
    scratch: Path,
    schema: pa.Schema | None,
) -> RecordManifest:
    rows = pq.ParquetWriter(scratch / "rows.parquet", MANIFEST_SCHEMA)
    values: pq.ParquetWriter | None = None
    first_rel = ""
    try:
        for source in sources:
            for part in readers.iter_parts(source.path, fmt, source.rel, schema):
                if part.table.num_columns == 0:
                    continue  # an empty file: no records, no columns
                if values is None:
                    values, first_rel = pq.ParquetWriter(scratch / "values.parquet", part.table.schema), source.rel
                _check_columns(values.schema, part.table.schema, source.rel, first_rel)
                if part.table.schema != values.schema:
                    raise readers.Retype(
                        pa.unify_schemas([values.schema, part.table.schema], promote_options="permissive")
                    )
                locators = part.locators(source.rel)
                ids = fp.record_ids(part.table, key) if key else locators
                prints = fp.fingerprints(part.table)
                rows.write_table(
                    pa.table([ids, prints, locators, pa.array(part.offsets, pa.int64())], schema=MANIFEST_SCHEMA)
                )
                values.write_table(part.table)
    finally:
        rows.close()
        if values is not None:
            values.close()
    pa.default_memory_pool().release_unused()  # the batches are gone; DuckDB needs the memory next
    value_schema = values.schema if values is not None else pa.schema([])
    final = scratch / "manifest.parquet"
    count = _sort(scratch / "rows.parquet", final, value_schema, fmt, key)
    if key:
        _refuse_duplicates(final, key)
    columns = [{"name": f.name, "type": kind_of(f.type), "arrow_type": str(f.type)} for f in value_schema]
    stats = column_stats(scratch / "values.parquet") if values is not None else {}
    digest, _ = objects.put_file(final)
    return RecordManifest(digest, count, fmt, tuple(key) if key else None, columns, stats)


def _check_columns(expected: pa.Schema, found: pa.Schema, rel: str, first_rel: str) -> None:
    if found.names != expected.names:
        raise UsageError(
            f"{rel} has columns {found.names}, {first_rel} has {expected.names}",
            hint="version files with different columns as separate artifacts",
        )


def _sort(rows: Path, final: Path, values: pa.Schema, fmt: str, key: Sequence[str] | None) -> int:
    """Sort the manifest rows by record_id into the final Parquet file (DuckDB spills to disk if needed)."""
    meta = {
        "mlcustody.scheme": fp.SCHEME,
        "mlcustody.format": fmt,
        "mlcustody.key": json.dumps(list(key) if key else None),
        "mlcustody.values_schema": base64.b64encode(values.serialize().to_pybytes()).decode("ascii"),
    }
    kv = ", ".join(f"'{k}': '{v}'" for k, v in meta.items())
    con = duckdb.connect()
    try:
        con.execute("SET threads TO 2")
        con.execute("SET memory_limit = '512MB'")  # spill the sort to disk rather than grow past it
        con.execute("SET preserve_insertion_order = true")
        con.execute(f"SET temp_directory = '{_sql_path(rows.parent / 'spill')}'")
        con.execute(
            f"COPY (SELECT * FROM read_parquet('{_sql_path(rows)}') ORDER BY record_id) TO '{_sql_path(final)}'"
            f" (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP}, KV_METADATA {{{kv}}})"
        )
        counted = con.execute(f"SELECT count(*) FROM read_parquet('{_sql_path(final)}')").fetchone()
    finally:
        con.close()
    assert counted is not None
    return int(counted[0])


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _refuse_duplicates(final: Path, key: Sequence[str]) -> None:
    """Equal ids are neighbours in the sorted manifest: compare them row group by row group."""
    handle = pq.ParquetFile(final)
    shown: list[str] = []
    total = 0
    previous: tuple[str, str] | None = None
    for group in range(handle.num_row_groups):
        table = handle.read_row_group(group, columns=["record_id", "source"])
        ids, sources = table.column("record_id"), table.column("source")
        if previous is not None and len(ids) and ids[0].as_py() == previous[0]:
            total += 1
            shown.append(f"{previous[0]} ({previous[1]}, {sources[0].as_py()})")
        same = pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1)).to_numpy(zero_copy_only=False)
        where = np.flatnonzero(same)
        total += int(where.size)
        for index in where[: max(0, _SHOWN_DUPLICATES - len(shown))].tolist():
            shown.append(f"{ids[index + 1].as_py()} ({sources[index].as_py()}, {sources[index + 1].as_py()})")
        if len(ids):
            previous = (ids[-1].as_py(), sources[-1].as_py())
    if total:
        raise UsageError(
            f"{total} duplicate values of key {','.join(key)}: {'; '.join(shown[:_SHOWN_DUPLICATES])}",
            hint="choose key columns that identify each record (add columns with --key a,b), or omit --key",
        )


def values_schema(path: Path) -> pa.Schema:
    """The Arrow schema the values were read with (stored in the manifest's Parquet metadata)."""
    meta = pq.read_schema(path).metadata or {}
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(meta[b"mlcustody.values_schema"])))
