"""Record fingerprints: a SHA-256 per row of a documented, library-independent encoding of its values.

A record manifest names every row of a dataset version by a fingerprint. It has to come out the same
whether the rows were read through pyarrow, polars or pandas, today or in five years, and has to be
recomputable by a SQL engine next to the data. So the fingerprint is a digest of a canonical encoding
of the row's *values* (normalise.py), never of a library's in-memory layout: ``polars.DataFrame.hash_rows``
and ``pandas.util.hash_pandas_object`` are documented as unstable across releases and cannot serve.
The encoding is specified in docs/record-fingerprint.md and mirrored as SQL by
``duckdb_fingerprint_sql`` (fingerprint_sql.py).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlcustody.errors import UsageError
from mlcustody.storage.records.fingerprint_sql import duckdb_fingerprint_sql
from mlcustody.storage.records.layout import join, offsets_of, slot_matrix
from mlcustody.storage.records.normalise import SCHEME, encode, kept_columns, record_header
from mlcustody.storage.records.record_text import record_ids

__all__ = ["SCHEME", "duckdb_fingerprint_sql", "fingerprint", "fingerprints", "record_ids", "to_arrow"]

# Rows per batch. Small batches keep every temporary below glibc's mmap threshold and in cache:
# fresh multi-MB allocations cost more in page faults than the encoding itself.
BATCH_ROWS = 1 << 16
THREADS = 2
HEX = 64  # characters of a fingerprint: the full SHA-256, see docs/record-fingerprint.md
_local = threading.local()  # one DuckDB connection per thread
_HASHER: Callable[[pa.Array], pa.Array] | None = None


def to_arrow(frame: object) -> pa.Table:
    """A pyarrow Table of ``frame``: a pyarrow Table or RecordBatch, a polars or a pandas DataFrame.

    pandas' index is dropped (a record is its columns, as with ``hash_pandas_object(index=False)``).
    polars and pandas are imported only by their own frames, so neither is needed for Arrow data.
    """
    if isinstance(frame, pa.Table):
        return frame
    if isinstance(frame, pa.RecordBatch):
        return pa.Table.from_batches([frame])
    kind = type(frame)
    if kind.__name__ == "DataFrame" and kind.__module__.split(".")[0] == "pandas":
        return _from_pandas(frame)
    if kind.__name__ == "DataFrame" and kind.__module__.split(".")[0] == "polars":
        return _from_polars(frame)
    raise UsageError(
        f"cannot fingerprint a {kind.__module__}.{kind.__qualname__}",
        hint="pass a pyarrow Table or RecordBatch, a polars DataFrame or a pandas DataFrame",
    )


def _from_pandas(frame: Any) -> pa.Table:
    names = [str(name) for name in frame.columns]
    if len(set(names)) != len(names):
        raise UsageError("the pandas DataFrame has duplicate column names", hint="rename the duplicate columns")
    try:
        with warnings.catch_warnings():
            # pyarrow reads tz-aware columns through Series.values, which pandas 3.1 deprecates; the
            # values it gets are the UTC instants we want, so the warning is about pyarrow, not us.
            warnings.filterwarnings("ignore", message="Series.values returning an ndarray that drops timezone")
            return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise UsageError(
            f"a pandas column cannot be read as typed values: {exc}",
            hint="give each object column one type (strings, numbers, dates or bytes), or convert it",
        ) from exc


def _from_polars(frame: Any) -> pa.Table:
    try:
        table: pa.Table = frame.to_arrow()
    except Exception as exc:  # polars' exception classes are not importable without polars
        raise UsageError(
            f"a polars column cannot be converted to Arrow: {exc}",
            hint="cast Object columns to a concrete type before fingerprinting",
        ) from exc
    return table


def record_columns(table: pa.Table, exclude: Sequence[str] = ()) -> list[str]:
    """The columns that make up a record, in record order (code points of the NFC names)."""
    if len(set(table.column_names)) != len(table.column_names):
        raise UsageError("the table has duplicate column names", hint="rename the duplicate columns")
    return kept_columns(table.column_names, exclude)


def fingerprints(table: pa.Table, *, exclude: Sequence[str] = ()) -> pa.StringArray:
    """One fingerprint per row, in row order: 64 lowercase hex digits of SHA-256.

    ``exclude`` names columns left out of the record (e.g. a load timestamp). Beyond 33 million rows
    the hex no longer fits a 32-bit-offset array and a ``LargeStringArray`` is returned instead.
    """
    table = to_arrow(table)
    names = record_columns(table, exclude)
    header = record_header(names)
    rows = table.num_rows
    if not names:  # every row is the empty record
        return pa.array([sha256_hex(pa.array([header], pa.large_binary()))[0].as_py()] * rows, pa.string())
    selected = table.select(names)
    # The hex of all rows goes into one numpy buffer: numpy maps large arrays with transparent huge
    # pages, which makes the page faults of a multi-hundred-MB result an order of magnitude cheaper.
    out = np.empty(rows * HEX, dtype=np.uint8)

    def run(start: int) -> None:
        batch = selected.slice(start, BATCH_ROWS)
        columns = [encode(column.combine_chunks()) for column in batch.columns]
        records = join([slot_matrix(header, columns, batch.num_rows), *(c.tail for c in columns if c.tail is not None)])
        hexes = sha256_hex(records)
        data = np.frombuffer(hexes.buffers()[2], dtype=np.uint8)
        first = int(offsets_of(hexes)[0])
        out[start * HEX : (start + batch.num_rows) * HEX] = data[first : first + batch.num_rows * HEX]

    starts = range(0, rows, BATCH_ROWS)
    if len(starts) <= 1:
        for start in starts:
            run(start)
    else:
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(run, starts))
    large = rows * HEX >= 2**31
    offsets = np.arange(0, (rows + 1) * HEX, HEX, dtype=np.int64 if large else np.int32)
    kind = pa.large_string() if large else pa.string()
    return pa.Array.from_buffers(kind, rows, [None, pa.py_buffer(offsets), pa.py_buffer(out)])


def sha256_hex(records: pa.Array) -> pa.Array:
    """Lowercase hex SHA-256 of every binary value as large_string, vectorised (no Python call per row)."""
    return _hasher()(records).cast(pa.large_string())


def _hasher() -> Callable[[pa.Array], pa.Array]:
    """polars-hash when installed (it uses the CPU's SHA instructions), else DuckDB's sha256."""
    global _HASHER  # noqa: PLW0603 - chosen once per process, on first use
    if _HASHER is None:
        _HASHER = _duckdb_sha256
        try:
            import polars_hash  # noqa: F401 - probing only; imported again where used

            _HASHER = _polars_sha256
        except ImportError:  # polars and polars-hash are optional
            pass
    return _HASHER


def _duckdb_sha256(records: pa.Array) -> pa.Array:
    import duckdb

    con = getattr(_local, "duckdb", None)
    if con is None:  # one connection per thread: a connection is not shared across threads
        con = _local.duckdb = duckdb.connect(config={"threads": 1})
    con.register("mlcustody_records", pa.table({"r": records}))
    try:
        result = con.sql("SELECT sha256(r) AS h FROM mlcustody_records").to_arrow_table()
    finally:
        con.unregister("mlcustody_records")
    return result.column("h").combine_chunks()


def _polars_sha256(records: pa.Array) -> pa.Array:
    import polars as pl
    import polars_hash as plh

    frame = cast("pl.DataFrame", pl.from_arrow(pa.table({"r": records})))
    return frame.select(plh.col("r").chash.sha2_256()).to_series().to_arrow()


def fingerprint(frame: object, key: Sequence[str] | str | None = None, *, exclude: Sequence[str] = ()) -> pa.Table:
    """``record_id`` and ``fingerprint`` for every row of ``frame``, in row order.

    ``record_id`` is the canonical text of the key (``record_ids``) or, without a key, ``#<row>``
    with the 0-based row number. Key columns stay part of the fingerprint; ``exclude`` removes columns.
    """
    table = to_arrow(frame)
    if key is None:
        numbers = pc.cast(pa.array(np.arange(table.num_rows, dtype=np.int64)), pa.string())
        ids = pc.binary_join_element_wise("#", numbers, "")
    else:
        ids = record_ids(table, [key] if isinstance(key, str) else key)
    return pa.table({"record_id": ids, "fingerprint": fingerprints(table, exclude=exclude)})
