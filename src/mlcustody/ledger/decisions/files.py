"""Prediction logs to import into the decision log: JSON Lines, CSV or Parquet, one decision a row.

A malformed line is a usage error naming ``file:line``; nothing is imported then.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcustody.errors import PathError, UsageError

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class DecisionFile:
    """The rows of a prediction log and how to name row ``i`` in an error (``file:line``)."""

    path: Path
    table: pa.Table
    lines: list[int] | None  # the line of each row (JSON Lines); None: row i is on line i + 2 (CSV)

    def where(self, row: int) -> str:
        if self.lines is not None:
            return f"{self.path}:{self.lines[row]}"
        return f"{self.path}:{row + 2}" if self.path.suffix.lower() == ".csv" else f"{self.path}#row{row}"


def read(path: Path) -> DecisionFile:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"{path}: unknown prediction-log format", hint=f"use one of: {', '.join(sorted(FORMATS))}")
    if not path.is_file():
        raise PathError(f"{path} is not a readable file", hint="give the path of the prediction log")
    reader: Callable[[Path], DecisionFile] = {"jsonl": _jsonl, "csv": _csv, "parquet": _parquet}[fmt]
    return reader(path)


def _jsonl(path: Path) -> DecisionFile:
    import pyarrow as pa

    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    with open(path, encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except ValueError as exc:
                raise UsageError(f"{path}:{number}: not JSON ({exc})", hint="fix or remove that line") from None
            if not isinstance(row, dict):
                raise UsageError(f"{path}:{number}: a line must hold one JSON object", hint="fix or remove that line")
            rows.append(row)
            lines.append(number)
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise UsageError(
            f"{path}: the lines do not share column types ({exc})", hint="give each field one type"
        ) from None
    return DecisionFile(path, table, lines)


def _csv(path: Path) -> DecisionFile:
    import pyarrow as pa
    from pyarrow import csv

    try:
        table = csv.read_csv(path, convert_options=csv.ConvertOptions(timestamp_parsers=[]))
    except (pa.ArrowInvalid, OSError) as exc:
        raise UsageError(f"{path}: cannot read as CSV ({exc})", hint="fix the line it names") from None
    return DecisionFile(path, table, None)


def _parquet(path: Path) -> DecisionFile:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UsageError(f"{path}: cannot read as Parquet ({exc})", hint="check the file") from None
    return DecisionFile(path, table, None)
