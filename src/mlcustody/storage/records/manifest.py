"""Record manifests: one row per record — ``record_id``, ``fingerprint``, ``source``, ``offset`` —
stored as a Parquet object and referenced by the artifact version.

``record_id`` is the canonical text of the key columns when a key is given, else the record's
locator (``path.csv:LINE``, ``path.parquet#ROW``), so every record can be found again in the raw
bytes. Rows are sorted by ``record_id`` and written in row groups of 128 Ki rows, so looking one
record up reads a single row group (Parquet min/max statistics prune the others). The Parquet
key-value metadata carries the fingerprint scheme, the format, the key and the Arrow schema of the
values, which is what re-reading one record exactly needs.

A build holds its batches in memory while they fit ``IN_MEMORY_BYTES`` and streams them through
scratch Parquet files past it; DuckDB sorts and writes the manifest either way, so the object (and
its digest) does not depend on which way was taken.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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
# Arrow bytes of values and manifest rows held in memory before a build streams to scratch files:
# about 2M rows of a 10-column table. Up to it the build skips two Parquet writes and re-reads.
IN_MEMORY_BYTES = 384 << 20
ID_COLUMN = "record_id"
MANIFEST_SCHEMA = pa.schema(
    [(ID_COLUMN, pa.string()), ("fingerprint", pa.string()), ("source", pa.string()), ("offset", pa.int64())]
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


def build(
    sources: Sequence[RecordSource],
    fmt: str,
    key: Sequence[str] | None,
    objects: ObjectStore,
    *,
    in_memory_bytes: int | None = None,
    on_records: Callable[[pa.Table], None] | None = None,
) -> RecordManifest:
    """Read every source, fingerprint its records and store the manifest; nothing is stored on error.

    Records are read in batches. While the batches (values, ids, fingerprints, locators) stay under
    ``in_memory_bytes`` (default ``IN_MEMORY_BYTES``) they are kept in memory, and the manifest is
    sorted and the statistics computed straight from them. Past it, every batch goes to temporary
    Parquet files and DuckDB sorts the manifest out of core, so memory stays bounded by the budget,
    not the dataset. Both ways give the same bytes (tests/storage/test_manifest_paths.py compares them).
    When later records widen a column type, the read starts over with the widened schema.

    ``on_records`` is given every record with its id (the value columns, then ``record_id``: what
    ``table.read_records`` reads back from the stored bytes) when the build holds them in memory,
    before the sort, so that a caller can work on them while DuckDB sorts (it releases the GIL).
    """
    budget = IN_MEMORY_BYTES if in_memory_bytes is None else in_memory_bytes
    schema: pa.Schema | None = None
    while True:
        with _Scratch(objects) as scratch:
            try:
                return _build_once(sources, fmt, key, objects, _Batches(scratch, budget), schema, on_records)
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


class _Batches:
    """The manifest rows and the values read so far: held in memory up to ``budget`` bytes, then
    streamed (those held first) to ``rows.parquet`` and ``values.parquet`` in ``scratch``."""

    def __init__(self, scratch: Path, budget: int) -> None:
        self.scratch, self.budget = scratch, budget
        self.schema: pa.Schema | None = None  # of the values, set by the first batch
        self.held: list[tuple[pa.Table, pa.Table]] = []
        self.held_bytes = 0
        self.rows: pq.ParquetWriter | None = None
        self.values: pq.ParquetWriter | None = None

    @property
    def spilled(self) -> bool:
        return self.rows is not None

    def add(self, rows: pa.Table, values: pa.Table) -> None:
        if self.schema is None:
            self.schema = values.schema
        if not self.spilled:
            self.held.append((rows, values))
            self.held_bytes += rows.nbytes + values.nbytes
            if self.held_bytes <= self.budget:
                return
            self.rows = pq.ParquetWriter(self.scratch / "rows.parquet", MANIFEST_SCHEMA)
            self.values = pq.ParquetWriter(self.scratch / "values.parquet", self.schema)
            held, self.held = self.held, []
        else:
            held = [(rows, values)]
        assert self.rows is not None and self.values is not None
        for batch_rows, batch_values in held:
            self.rows.write_table(batch_rows)
            self.values.write_table(batch_values)

    def close(self) -> None:
        if self.spilled:
            assert self.rows is not None and self.values is not None
            self.rows.close()
            self.values.close()

    def rows_table(self) -> pa.Table:
        return pa.concat_tables([rows for rows, _ in self.held]) if self.held else MANIFEST_SCHEMA.empty_table()

    def values_table(self) -> pa.Table | None:
        return pa.concat_tables([values for _, values in self.held]) if self.held else None


def _build_once(
    sources: Sequence[RecordSource],
    fmt: str,
    key: Sequence[str] | None,
    objects: ObjectStore,
    batches: _Batches,
    schema: pa.Schema | None,
    on_records: Callable[[pa.Table], None] | None,
) -> RecordManifest:
    first_rel = ""
    try:
        for source in sources:
            for part in readers.iter_parts(source.path, fmt, source.rel, schema):
                if part.table.num_columns == 0:
                    continue  # an empty file: no records, no columns
                if batches.schema is None:
                    first_rel = source.rel
                else:
                    _check_columns(batches.schema, part.table.schema, source.rel, first_rel)
                    if part.table.schema != batches.schema:
                        raise readers.Retype(
                            pa.unify_schemas([batches.schema, part.table.schema], promote_options="permissive")
                        )
                locators = part.locators(source.rel)
                ids = fp.record_ids(part.table, key) if key else locators
                prints = fp.fingerprints(part.table)
                offsets = pa.array(part.offsets, pa.int64())
                batches.add(pa.table([ids, prints, locators, offsets], schema=MANIFEST_SCHEMA), part.table)
    finally:
        batches.close()
    value_schema = batches.schema if batches.schema is not None else pa.schema([])
    final = batches.scratch / "manifest.parquet"
    stats: dict[str, dict[str, Any]] = {}
    if batches.spilled:
        pa.default_memory_pool().release_unused()  # the batches are gone; DuckDB needs the memory next
        count = _sort(batches.scratch / "rows.parquet", final, value_schema, fmt, key)
        stats = column_stats(batches.scratch / "values.parquet")
    else:
        values, rows = batches.values_table(), batches.rows_table()
        if values is not None and on_records is not None:
            on_records(values.append_column(ID_COLUMN, rows.column(ID_COLUMN)))
        # The statistics scan (one thread) runs beside the sort, whose Parquet writer keeps one core
        # busy: both are DuckDB calls that release the GIL.
        with ThreadPoolExecutor(1) as pool:
            scanned = pool.submit(column_stats, values) if values is not None else None
            count = _sort(rows, final, value_schema, fmt, key)
            stats = scanned.result() if scanned is not None else {}
    if key:
        _refuse_duplicates(final, key)
    columns = [{"name": f.name, "type": kind_of(f.type), "arrow_type": str(f.type)} for f in value_schema]
    digest, _ = objects.put_file(final)
    return RecordManifest(digest, count, fmt, tuple(key) if key else None, columns, stats)


def _check_columns(expected: pa.Schema, found: pa.Schema, rel: str, first_rel: str) -> None:
    if found.names != expected.names:
        raise UsageError(
            f"{rel} has columns {found.names}, {first_rel} has {expected.names}",
            hint="version files with different columns as separate artifacts",
        )


def _sort(rows: Path | pa.Table, final: Path, values: pa.Schema, fmt: str, key: Sequence[str] | None) -> int:
    """Sort the manifest rows by record_id into the final Parquet file (DuckDB spills to disk if needed).

    ``rows`` is the scratch Parquet file or the rows held in memory. Held rows are first loaded into
    a DuckDB table: its column statistics, like a Parquet file's, tell the writer that no value is
    null, so both ways the columns are written REQUIRED and the file comes out byte for byte the
    same (a scan of the Arrow table itself would write them OPTIONAL).
    """
    meta = {
        "mlcustody.scheme": fp.SCHEME,
        "mlcustody.format": fmt,
        "mlcustody.key": json.dumps(list(key) if key else None),
        "mlcustody.values_schema": base64.b64encode(values.serialize().to_pybytes()).decode("ascii"),
    }
    kv = ", ".join(f"'{k}': '{v}'" for k, v in meta.items())
    spill = final.parent / "spill"
    con = duckdb.connect()
    try:
        con.execute("SET threads TO 2")
        con.execute("SET memory_limit = '512MB'")  # spill the sort to disk rather than grow past it
        con.execute("SET preserve_insertion_order = true")
        con.execute(f"SET temp_directory = '{_sql_path(spill)}'")
        if isinstance(rows, pa.Table):
            con.register("manifest_batches", rows)
            con.execute("CREATE TABLE manifest_rows AS SELECT * FROM manifest_batches")
            con.unregister("manifest_batches")
            source = "manifest_rows"
        else:
            source = f"read_parquet('{_sql_path(rows)}')"
        con.execute(
            f"COPY (SELECT * FROM {source} ORDER BY record_id) TO '{_sql_path(final)}'"
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
