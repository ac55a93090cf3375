"""A version's records as one Arrow table, each row with the record id its manifest gives it.

Record lineage needs the values *and* the ids: a transformation reads the table, keeps the ids
through its steps, and records which input ids each output record came from. The ids are computed
exactly as when the manifest was built (key columns, or the ``file:LINE`` / ``file#ROW`` locator),
from the stored bytes, with the manifest's value schema so that types match.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from mlcustody.storage.records import fingerprint as fp
from mlcustody.storage.records import readers
from mlcustody.storage.records.manifest import ID_COLUMN, RecordSource

__all__ = ["ID_COLUMN", "read_records"]  # ID_COLUMN: the id column of every record table


def read_records(sources: Sequence[RecordSource], fmt: str, key: Sequence[str] | None, schema: pa.Schema) -> pa.Table:
    """Every record of ``sources`` in file order: the value columns, then ``record_id``."""
    parts = []
    for source in sources:
        for part in readers.iter_parts(source.path, fmt, source.rel, schema):
            if part.table.num_columns == 0:
                continue
            ids = fp.record_ids(part.table, key) if key else part.locators(source.rel)
            parts.append(part.table.append_column(ID_COLUMN, ids.cast(pa.string())))
    if not parts:
        return schema.empty_table().append_column(ID_COLUMN, pa.array([], pa.string()))
    return pa.concat_tables(parts, promote_options="permissive")
