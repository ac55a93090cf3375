"""Reading tabular and log files into Arrow with, for every record, where it is in the raw bytes.

Every record keeps a **locator**: the physical line it starts on and its byte offset for line-based
formats (CSV, TSV, JSON Lines, text), its row index for Parquet. Locators are computed from the raw
bytes themselves (newlines outside quoted fields, empty lines skipped exactly as the parser skips
them), so ``loans.csv:1842`` is the line an investigator finds with ``sed -n 1842p``.

Parsing is pyarrow's (multi-threaded). When it refuses a file, a slower exact diagnosis with the
standard library finds the first offending line, so the error names ``file:line`` and the problem.

Over 400 lines on purpose: the readers of each format and the diagnosis of their failures (which
line, which column, which quote) share the memory-mapped record scanner.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import mmap
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from mlcustody.errors import UsageError

FORMATS = ("csv", "tsv", "parquet", "jsonl", "text")
SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "text",
    ".log": "text",
}
_SCAN_CHUNK = 64 << 20
_CHUNK_BYTES = 64 << 20
_CONVERSION = re.compile(r"In CSV column #(\d+): .*CSV conversion error")


@dataclass(frozen=True)
class Part:
    """The records of one file: their values, and where each one starts."""

    table: pa.Table
    lines: np.ndarray | None  # 1-based physical line of each record; None for Parquet
    offsets: np.ndarray  # byte offset of each record; row index for Parquet

    def locators(self, rel: str) -> pa.Array:
        """``rel:LINE`` for line formats, ``rel#ROW`` for Parquet (built vectorised)."""
        numbers = self.offsets if self.lines is None else self.lines
        mark = "#" if self.lines is None else ":"
        text = pc.cast(pa.array(numbers, pa.int64()), pa.string())
        return pc.binary_join_element_wise(pa.scalar(rel + mark), text, "")


def detect_format(path: Path, given: str | None) -> str:
    if given is not None:
        if given not in FORMATS:
            raise UsageError(f"unknown record format {given!r}", hint=f"use one of: {', '.join(FORMATS)}")
        return given
    found = SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise UsageError(
            f"cannot tell the record format of {path.name}",
            hint=f"pass --format ({', '.join(FORMATS)})",
        )
    return found


class Retype(Exception):
    """Records contradict the types inferred from earlier ones: the whole read starts over with ``schema``.

    pyarrow infers column types from the first block; a later ``n/a`` in an integer column, a file whose
    column is float where the first file's was integer, or a JSON field that appears late all widen the
    schema, and every record must then be read with the widened one so fingerprints stay comparable.
    """

    def __init__(self, schema: pa.Schema) -> None:
        super().__init__(str(schema))
        self.schema = schema


def iter_parts(path: Path, fmt: str, rel: str, schema: pa.Schema | None = None) -> Iterator[Part]:
    """The records of one file in batches of about 64 MiB (or 1 Mi Parquet rows), in file order.

    ``schema`` forces the column types; without it they are inferred from the first batch.
    """
    if fmt == "parquet":
        yield from _iter_parquet(path, rel, schema)
        return
    with _mapped(path) as data:
        yield from _iter_line_records(data, fmt, rel, schema)


def read_one(path: Path, fmt: str, rel: str, schema: pa.Schema, offset: int) -> tuple[pa.Table, str | None]:
    """Exactly one record — the one at byte ``offset`` (row index for Parquet) — typed by ``schema``,
    with its raw text for line formats."""
    if fmt == "parquet":
        handle = pq.ParquetFile(path)
        first = 0
        for group in range(handle.num_row_groups):
            rows = handle.metadata.row_group(group).num_rows
            if offset < first + rows:
                return handle.read_row_group(group).slice(offset - first, 1), None
            first += rows
        raise UsageError(f"{rel}#{offset} is past the end of the file", hint="the record manifest is damaged")
    with _mapped(path) as data:
        starts, _ = record_starts(data[offset : offset + (16 << 20)], quoted=fmt == "csv")
        end = offset + int(starts[1]) if starts.size > 1 else len(data)
        record = bytes(data[offset:end])
        header = _header(data, fmt)
    part = next(_iter_line_records(memoryview(header + record), fmt, rel, schema))
    return part.table, record.decode("utf-8").rstrip("\r\n")


def _iter_parquet(path: Path, rel: str, schema: pa.Schema | None) -> Iterator[Part]:
    try:
        handle = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UsageError(f"{rel}: not a readable Parquet file ({exc})", hint="check the file or --format") from exc
    row = 0
    for batch in handle.iter_batches(batch_size=1 << 20):
        table = pa.Table.from_batches([batch])
        if schema is not None and table.schema != schema:
            table = table.cast(schema)
        yield Part(table, None, np.arange(row, row + table.num_rows, dtype=np.int64))
        row += table.num_rows
    if row == 0:
        yield Part(schema.empty_table() if schema else handle.schema_arrow.empty_table(), None, np.empty(0, np.int64))


def _header(data: memoryview, fmt: str) -> bytes:
    """The header line of a delimited file (with its line end); nothing for other formats."""
    if fmt not in ("csv", "tsv") or len(data) == 0:
        return b""
    starts, _ = record_starts(data[: 1 << 20], quoted=fmt == "csv")
    header = bytes(data[: int(starts[1])]) if starts.size > 1 else bytes(data[: 1 << 20])
    return header if header.endswith(b"\n") else header + b"\n"


def _iter_line_records(data: memoryview, fmt: str, rel: str, schema: pa.Schema | None) -> Iterator[Part]:
    try:
        starts, lines = record_starts(data, quoted=fmt == "csv", whole=True)
    except Unclosed as err:
        raise UsageError(
            f"{rel}:{err.line}: a quoted field opened on this line is never closed",
            hint='close it with a quote (a quote inside a quoted field is written "")',
        ) from err
    except Misquoted as err:
        raise UsageError(
            f"{rel}:{err.line}: a closing quote must be followed by a comma or the end of the line",
            hint='fix the quoting on that line (a quote inside a quoted field is written "")',
        ) from err
    header = _header(data, fmt)
    if header:
        starts, lines = starts[1:], lines[1:]
    if starts.size == 0:
        if header:  # a header and no records: the columns are known, the records are none
            yield Part(_parse(fmt, header, rel, schema, data), np.empty(0, np.int64), np.empty(0, np.int64))
        return
    ends = np.append(starts[1:], len(data))
    begin = 0
    while begin < starts.size:
        stop = max(begin + 1, int(np.searchsorted(starts, starts[begin] + _CHUNK_BYTES)))
        buffer = header + bytes(data[int(starts[begin]) : int(ends[stop - 1])])
        table = _parse(fmt, buffer, rel, schema, data)
        if table.num_rows != stop - begin:
            raise _diagnose(fmt, data, rel, None)
        if schema is None:
            schema = table.schema  # later batches must fit the types of the first
        yield Part(table, lines[begin:stop], starts[begin:stop])
        _drop_pages(data, int(starts[begin]), int(ends[stop - 1]))
        begin = stop


def _parse(fmt: str, buffer: bytes, rel: str, schema: pa.Schema | None, data: memoryview) -> pa.Table:
    """One batch of records; ``data`` (the whole file) is only used to diagnose an error exactly."""
    if fmt in ("csv", "tsv"):
        return _parse_delimited(buffer, fmt, rel, schema, data)
    if fmt == "jsonl":
        options = pajson.ParseOptions(explicit_schema=schema) if schema is not None else None
        try:
            table = pajson.read_json(pa.BufferReader(pa.py_buffer(buffer)), parse_options=options)
        except pa.ArrowInvalid as exc:
            raise _diagnose(fmt, data, rel, exc) from exc
        if schema is not None and table.schema != schema:
            raise Retype(pa.unify_schemas([schema, table.schema], promote_options="permissive"))
        return table
    try:
        text = buffer.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _diagnose(fmt, data, rel, exc) from exc
    records = [line.rstrip("\r") for line in text.split("\n") if line not in ("", "\r")]
    return pa.table({"line": pa.array(records, pa.string())})


def _parse_delimited(buffer: bytes, fmt: str, rel: str, schema: pa.Schema | None, data: memoryview) -> pa.Table:
    delimiter, quoted = ("," if fmt == "csv" else "\t"), fmt == "csv"
    parse = pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoted else False)
    column_types = dict(zip(schema.names, schema.types, strict=True)) if schema is not None else {}
    while True:
        convert = pacsv.ConvertOptions(column_types=column_types, strings_can_be_null=False)
        try:
            table = pacsv.read_csv(pa.py_buffer(buffer), parse_options=parse, convert_options=convert)
            break
        except pa.ArrowInvalid as exc:
            column = _conversion_column(exc, buffer, delimiter, quoted)
            if column is None or column_types.get(column) == pa.string():
                raise _diagnose(fmt, data, rel, exc) from exc
            if schema is not None:  # types were fixed by earlier records: widen and start over
                index = schema.get_field_index(column)
                raise Retype(schema.set(index, pa.field(column, pa.string()))) from exc
            column_types[column] = pa.string()  # contradicted within the first batch
    try:
        table.schema.names  # noqa: B018  (column names are decoded only when asked for)
    except UnicodeDecodeError as exc:
        raise _diagnose(fmt, data, rel, exc) from exc
    if schema is None and any(pa.types.is_binary(t) or pa.types.is_large_binary(t) for t in table.schema.types):
        raise _diagnose(fmt, data, rel, None)  # pyarrow falls back to binary for invalid UTF-8
    return table


def _diagnose(fmt: str, data: memoryview, rel: str, exc: Exception | None) -> UsageError:
    if fmt in ("csv", "tsv"):
        return _diagnose_delimited(data, rel, "," if fmt == "csv" else "\t", fmt == "csv", exc)
    bad = _first_undecodable(data)
    if bad is not None:
        return _undecodable(data, rel, bad)
    if fmt == "jsonl":
        return _diagnose_jsonl(data, rel, exc)
    return UsageError(f"{rel}: cannot read ({exc})", hint="check the file, or pass --format")


def _undecodable(data: memoryview, rel: str, offset: int) -> UsageError:
    line = int(np.count_nonzero(np.frombuffer(data[:offset], dtype=np.uint8) == 0x0A)) + 1
    return UsageError(f"{rel}:{line}: bytes that are not UTF-8", hint="re-encode the file as UTF-8")


@contextmanager
def _mapped(path: Path) -> Iterator[memoryview]:
    """The file's bytes, memory-mapped. The map is left to the garbage collector rather than closed
    here: Arrow buffers and NumPy views made from it may outlive this block, and closing a map that
    still has views raises BufferError."""
    with path.open("rb") as handle:
        if path.stat().st_size == 0:
            yield memoryview(b"")
            return
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    yield memoryview(mapped)


def _drop_pages(data: memoryview, start: int, end: int) -> None:
    """Tell the kernel this process is done with part of a mapped file: the pages leave our resident
    set (they stay in the page cache), so scanning a 10 GB CSV does not look like 10 GB of memory."""
    owner = data.obj
    if not isinstance(owner, mmap.mmap) or len(data) != len(owner):
        return
    start -= start % mmap.PAGESIZE
    if end > start:
        owner.madvise(mmap.MADV_DONTNEED, start, end - start)


def record_starts(data: memoryview, *, quoted: bool, whole: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Byte offsets and 1-based line numbers where records start (empty lines skipped).

    A newline inside a quoted field (odd number of quote characters before it — RFC 4180 escapes a
    quote by doubling it, which keeps the parity) does not end a record. When ``data`` is the
    ``whole`` file, a field still quoted at its end is an error (``Unclosed``); pyarrow would read
    the rest of the file into it.
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    size = raw.size
    newlines, quotes = [], []
    for start in range(0, size, _SCAN_CHUNK):
        chunk = raw[start : start + _SCAN_CHUNK]
        newlines.append(np.flatnonzero(chunk == 0x0A) + start)
        if quoted:
            quotes.append(np.flatnonzero(chunk == 0x22) + start)
        _drop_pages(data, start, start + chunk.size)
    every_newline = np.concatenate(newlines) if newlines else np.empty(0, np.int64)
    ends = every_newline
    if quoted and quotes:
        quote_at = np.concatenate(quotes)
        _check_closing_quotes(raw, quote_at, every_newline)
        if whole and quote_at.size % 2:
            raise Unclosed(int(np.searchsorted(every_newline, quote_at[-1])) + 1)
        ends = every_newline[np.searchsorted(quote_at, every_newline) % 2 == 0]
    starts = np.concatenate([np.zeros(1, np.int64), ends.astype(np.int64) + 1])
    starts = starts[starts < size]
    if starts.size:
        starts = starts[~_empty_lines(raw, starts, every_newline)]
    lines = np.searchsorted(every_newline, starts, side="left") + 1
    return starts, lines


def _empty_lines(raw: np.ndarray, starts: np.ndarray, newlines: np.ndarray) -> np.ndarray:
    """Which record starts begin an empty line (``\\n`` or ``\\r\\n``), found from the newline positions
    so that the file's pages are not touched again (only one-byte lines are looked at)."""
    at = np.searchsorted(newlines, starts)
    found = at < newlines.size
    following = np.full(starts.size, -1, dtype=np.int64)
    following[found] = newlines[at[found]]
    crlf = np.flatnonzero(following == starts + 1)
    empty: np.ndarray = following == starts
    empty[crlf] = raw[starts[crlf]] == 0x0D
    return empty


class Misquoted(ValueError):
    """A closing quote followed by something other than a delimiter or the end of the line."""

    def __init__(self, line: int) -> None:
        super().__init__(f"line {line}")
        self.line = line


class Unclosed(Misquoted):
    """A quoted field still open at the end of the file (on ``line``, where its quote opens it)."""


def _check_closing_quotes(raw: np.ndarray, quote_at: np.ndarray, newlines: np.ndarray) -> None:
    """RFC 4180: a quote that closes a field must be followed by a comma, a line end or the end of data.

    Quotes alternate open/close; a closing-position quote directly followed by another quote is an
    escaped quote (``""``) instead. pyarrow accepts ``"x"y`` silently, so this check is ours.
    """
    closing = quote_at[1::2]
    after = closing[closing + 1 < raw.size] + 1
    follower = raw[after]
    # A doubled quote is an escape; anything else after a closing quote must end the field.
    bad = (follower != 0x22) & (follower != 0x2C) & (follower != 0x0A) & (follower != 0x0D)
    if bad.any():
        position = int(after[np.argmax(bad)])
        raise Misquoted(int(np.searchsorted(newlines, position)) + 1)


def _conversion_column(exc: Exception, data: bytes | memoryview, delimiter: str, quoted: bool) -> str | None:
    match = _CONVERSION.search(str(exc))
    if not match:
        return None
    header = next(csv.reader(io.StringIO(_first_line(data)), delimiter=delimiter, quoting=_quoting(quoted)))
    index = int(match.group(1))
    return header[index] if index < len(header) else None


def _first_line(data: bytes | memoryview) -> str:
    end = bytes(data[: 1 << 20]).find(b"\n")
    return bytes(data[: end if end >= 0 else 1 << 20]).decode("utf-8", errors="replace")


def _quoting(quoted: bool) -> Literal[0, 3]:
    return csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE


def _diagnose_delimited(data: memoryview, rel: str, delimiter: str, quoted: bool, exc: Exception | None) -> UsageError:
    """Find the first bad line exactly (slow path, only on error) and say what is wrong with it."""
    bad = _first_undecodable(data)
    if bad is not None:
        return _undecodable(data, rel, bad)
    text = io.StringIO(codecs.decode(bytes(data), "utf-8"), newline="")
    reader = csv.reader(text, delimiter=delimiter, quoting=_quoting(quoted), strict=True)
    expected = None
    try:
        for row in reader:
            if not row:
                continue
            if expected is None:
                expected = len(row)
            elif len(row) != expected:
                return UsageError(
                    f"{rel}:{reader.line_num}: expected {expected} fields, found {len(row)}",
                    hint="fix that line (quote fields that contain the delimiter)",
                )
    except csv.Error as err:
        return UsageError(f"{rel}:{reader.line_num}: {err}", hint="fix the quoting on that line")
    detail = str(exc).splitlines()[0] if exc else "records and lines disagree"
    return UsageError(f"{rel}: cannot parse ({detail})", hint="check the file, or pass --format")


def _first_undecodable(data: memoryview) -> int | None:
    """Byte offset of the first invalid UTF-8 sequence, or None."""
    try:
        codecs.decode(bytes(data), "utf-8")
    except UnicodeDecodeError as err:
        return int(err.start)
    return None


def _diagnose_jsonl(data: memoryview, rel: str, exc: Exception | None) -> UsageError:
    starts, lines = record_starts(data, quoted=False)
    ends = [*starts[1:].tolist(), len(data)]
    for start, end, line in zip(starts.tolist(), ends, lines.tolist(), strict=True):
        try:
            value = json.loads(bytes(data[start:end]))
        except UnicodeDecodeError:
            return UsageError(f"{rel}:{line}: bytes that are not UTF-8", hint="re-encode the file as UTF-8")
        except ValueError as err:
            return UsageError(f"{rel}:{line}: not valid JSON ({err.args[0]})", hint="fix that line")
        if not isinstance(value, dict):
            return UsageError(f"{rel}:{line}: a JSON Lines record must be an object", hint="fix that line")
    detail = str(exc).splitlines()[0] if exc else "records and lines disagree"
    return UsageError(f"{rel}: cannot read JSON Lines ({detail})", hint="make every line one JSON object")
