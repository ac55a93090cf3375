"""Reading tabular and log files into Arrow with, for every record, where it is in the raw bytes.

Every record keeps a **locator**: the physical line it starts on and its byte offset for line-based
formats (CSV, TSV, JSON Lines, text), its row index for Parquet. Locators are computed from the raw
bytes themselves (newlines outside quoted fields, empty lines skipped exactly as the parser skips
them), so ``loans.csv:1842`` is the line an investigator finds with ``sed -n 1842p``.

Parsing is pyarrow's (multi-threaded). When it refuses a file, a slower exact diagnosis with the
standard library finds the first offending line, so the error names ``file:line`` and the problem.
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
_CONVERSION = re.compile(r"In CSV column #(\d+): .*CSV conversion error")


@dataclass(frozen=True)
class Part:
    """The records of one file: their values, and where each one starts."""

    table: pa.Table
    lines: np.ndarray | None  # 1-based physical line of each record; None for Parquet
    offsets: np.ndarray  # byte offset of each record; row index for Parquet

    def locators(self, rel: str) -> pa.Array:
        """``rel:LINE`` for line formats, ``rel#ROW`` for Parquet."""
        if self.lines is None:
            return pa.array([f"{rel}#{row}" for row in self.offsets.tolist()], pa.string())
        return pa.array([f"{rel}:{line}" for line in self.lines.tolist()], pa.string())


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


def read(path: Path, fmt: str, rel: str, schema: pa.Schema | None = None) -> Part:
    """All records of one file; ``schema`` forces column types (used to re-read one record exactly)."""
    if fmt == "parquet":
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise UsageError(f"{rel}: not a readable Parquet file ({exc})", hint="check the file or --format") from exc
        return Part(table, None, np.arange(table.num_rows, dtype=np.int64))
    with _mapped(path) as data:
        if fmt in ("csv", "tsv"):
            return _read_delimited(data, fmt, rel, schema)
        if fmt == "jsonl":
            return _read_jsonl(data, rel, schema)
        return _read_text(data, rel)


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
        if fmt in ("csv", "tsv"):
            header_end = int(record_starts(data[: 1 << 20], quoted=fmt == "csv")[0][1])
            part = _read_delimited(memoryview(bytes(data[:header_end]) + record), fmt, rel, schema)
        elif fmt == "jsonl":
            part = _read_jsonl(memoryview(record), rel, schema)
        else:
            part = _read_text(memoryview(record), rel)
    return part.table, record.decode("utf-8").rstrip("\r\n")


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


def record_starts(data: memoryview, *, quoted: bool) -> tuple[np.ndarray, np.ndarray]:
    """Byte offsets and 1-based line numbers where records start (empty lines skipped).

    A newline inside a quoted field (odd number of quote characters before it — RFC 4180 escapes a
    quote by doubling it, which keeps the parity) does not end a record.
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    size = raw.size
    newlines, quotes = [], []
    for start in range(0, size, _SCAN_CHUNK):
        chunk = raw[start : start + _SCAN_CHUNK]
        newlines.append(np.flatnonzero(chunk == 0x0A) + start)
        if quoted:
            quotes.append(np.flatnonzero(chunk == 0x22) + start)
    every_newline = np.concatenate(newlines) if newlines else np.empty(0, np.int64)
    ends = every_newline
    if quoted and quotes:
        quote_at = np.concatenate(quotes)
        _check_closing_quotes(raw, quote_at, every_newline)
        ends = every_newline[np.searchsorted(quote_at, every_newline) % 2 == 0]
    starts = np.concatenate([np.zeros(1, np.int64), ends.astype(np.int64) + 1])
    starts = starts[starts < size]
    if starts.size:
        first = raw[starts]
        second = raw[np.minimum(starts + 1, size - 1)]
        empty = (first == 0x0A) | ((first == 0x0D) & (second == 0x0A))
        starts = starts[~empty]
    lines = np.searchsorted(every_newline, starts, side="left") + 1
    return starts, lines


class Misquoted(ValueError):
    """A closing quote followed by something other than a delimiter or the end of the line."""

    def __init__(self, line: int) -> None:
        super().__init__(f"line {line}")
        self.line = line


def _check_closing_quotes(raw: np.ndarray, quote_at: np.ndarray, newlines: np.ndarray) -> None:
    """RFC 4180: a quote that closes a field must be followed by a comma, a line end or the end of data.

    Quotes alternate open/close; a closing-position quote directly followed by another quote is an
    escaped quote (``""``) instead. pyarrow accepts ``"x"y`` silently, so this check is ours.
    """
    closing = quote_at[1::2]
    closing = closing[~np.isin(closing + 1, quote_at)]
    after = closing + 1
    inside = after < raw.size
    follower = raw[after[inside]]
    bad = ~np.isin(follower, np.array([0x2C, 0x0A, 0x0D], dtype=np.uint8))
    if bad.any():
        position = int(after[inside][np.argmax(bad)])
        raise Misquoted(int(np.searchsorted(newlines, position)) + 1)


def _read_delimited(data: memoryview, fmt: str, rel: str, schema: pa.Schema | None) -> Part:
    delimiter = "," if fmt == "csv" else "\t"
    quoted = fmt == "csv"
    try:
        starts, lines = record_starts(data, quoted=quoted)
    except Misquoted as err:
        raise UsageError(
            f"{rel}:{err.line}: a closing quote must be followed by a comma or the end of the line",
            hint='fix the quoting on that line (a quote inside a quoted field is written "")',
        ) from err
    if starts.size == 0:
        return Part(pa.table({}), np.empty(0, np.int64), np.empty(0, np.int64))
    column_types = dict(zip(schema.names, schema.types, strict=True)) if schema is not None else {}
    parse = pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoted else False)
    while True:
        convert = pacsv.ConvertOptions(column_types=column_types, strings_can_be_null=False)
        try:
            table = pacsv.read_csv(pa.py_buffer(data), parse_options=parse, convert_options=convert)
            break
        except pa.ArrowInvalid as exc:
            column = _conversion_column(exc, data, delimiter, quoted)
            if column is None or column in column_types:
                raise _diagnose_delimited(data, rel, delimiter, quoted, exc) from exc
            column_types[column] = pa.string()  # inferred from the first block, contradicted later
    undecodable = any(pa.types.is_binary(t) or pa.types.is_large_binary(t) for t in table.schema.types)
    if table.num_rows != starts.size - 1 or (undecodable and schema is None):
        raise _diagnose_delimited(data, rel, delimiter, quoted, None)
    return Part(table, lines[1:], starts[1:])


def _conversion_column(exc: Exception, data: memoryview, delimiter: str, quoted: bool) -> str | None:
    match = _CONVERSION.search(str(exc))
    if not match:
        return None
    header = next(csv.reader(io.StringIO(_first_line(data)), delimiter=delimiter, quoting=_quoting(quoted)))
    index = int(match.group(1))
    return header[index] if index < len(header) else None


def _first_line(data: memoryview) -> str:
    end = bytes(data[: 1 << 20]).find(b"\n")
    return bytes(data[: end if end >= 0 else 1 << 20]).decode("utf-8", errors="replace")


def _quoting(quoted: bool) -> Literal[0, 3]:
    return csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE


def _diagnose_delimited(data: memoryview, rel: str, delimiter: str, quoted: bool, exc: Exception | None) -> UsageError:
    """Find the first bad line exactly (slow path, only on error) and say what is wrong with it."""
    bad = _first_undecodable(data)
    if bad is not None:
        line = int(np.count_nonzero(np.frombuffer(data[:bad], dtype=np.uint8) == 0x0A)) + 1
        return UsageError(f"{rel}:{line}: bytes that are not UTF-8", hint="re-encode the file as UTF-8")
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


def _read_jsonl(data: memoryview, rel: str, schema: pa.Schema | None) -> Part:
    starts, lines = record_starts(data, quoted=False)
    if starts.size == 0:
        return Part(pa.table({}), np.empty(0, np.int64), np.empty(0, np.int64))
    options = pajson.ParseOptions(explicit_schema=schema) if schema is not None else None
    try:
        table = pajson.read_json(pa.BufferReader(pa.py_buffer(data)), parse_options=options)
    except pa.ArrowInvalid as exc:
        raise _diagnose_jsonl(data, rel, starts, lines, exc) from exc
    if table.num_rows != starts.size:
        raise _diagnose_jsonl(data, rel, starts, lines, None)
    return Part(table, lines, starts)


def _diagnose_jsonl(
    data: memoryview, rel: str, starts: np.ndarray, lines: np.ndarray, exc: Exception | None
) -> UsageError:
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


def _read_text(data: memoryview, rel: str) -> Part:
    bad = _first_undecodable(data)
    if bad is not None:
        line = int(np.count_nonzero(np.frombuffer(data[:bad], dtype=np.uint8) == 0x0A)) + 1
        raise UsageError(f"{rel}:{line}: bytes that are not UTF-8", hint="re-encode the file as UTF-8")
    starts, lines = record_starts(data, quoted=False)
    text = codecs.decode(bytes(data), "utf-8")
    records = [line.rstrip("\r") for line in text.split("\n") if line not in ("", "\r")]
    return Part(pa.table({"line": pa.array(records, pa.string())}), lines, starts)
