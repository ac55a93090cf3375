"""Byte layout helpers: zero-copy views of Arrow buffers and the vectorised assembly of records.

A batch of records is assembled in two moves: every fixed-width slot of every row is written into one
numpy structured matrix (one strided copy per column, no Python per row), then the variable-length
tails are appended with one ``binary_join_element_wise``. This is what makes the encoding of
normalise.py run at memory speed; the layout itself is specified in docs/record-fingerprint.md.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@functools.cache
def empty() -> pa.Scalar:
    """The empty large-binary scalar (made on first use: ``pa.scalar`` imports pandas when present)."""
    return pa.scalar(b"", pa.large_binary())


@dataclass
class Encoded:
    """One column's encoding for a batch: per-row tag byte and payload, and the tails if any."""

    tags: np.ndarray  # uint8, one tag per row
    payload: np.ndarray  # int64, written big-endian (two's complement / IEEE bits)
    tail: pa.Array | None  # large_binary, null or empty where a row has no tail


def values_of(arr: pa.Array, dtype: Any) -> np.ndarray:
    """The fixed-width values of ``arr`` as numpy, zero-copy, respecting a slice offset."""
    buf = arr.buffers()[1]
    return np.frombuffer(buf, dtype=dtype, count=arr.offset + len(arr))[arr.offset :]


def validity(arr: pa.Array) -> np.ndarray:
    """Boolean mask of non-null rows."""
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    return np.asarray(arr.is_valid().to_numpy(zero_copy_only=False))


def offsets_of(arr: pa.Array) -> np.ndarray:
    """int64 offsets of a binary-like array (large or not)."""
    kind = np.int64 if pa.types.is_large_binary(arr.type) or pa.types.is_large_string(arr.type) else np.int32
    return _values_offsets(arr, kind)


def _values_offsets(arr: pa.Array, dtype: Any) -> np.ndarray:
    buf = arr.buffers()[1]
    return np.frombuffer(buf, dtype=dtype, count=arr.offset + len(arr) + 1)[arr.offset :].astype(np.int64)


def large_binary(offsets: np.ndarray, data: pa.Buffer | np.ndarray) -> pa.Array:
    """A large_binary array over ``data`` cut at ``offsets`` (int64), without copying."""
    buffer = data if isinstance(data, pa.Buffer) else pa.py_buffer(data)
    return pa.Array.from_buffers(pa.large_binary(), len(offsets) - 1, [None, pa.py_buffer(offsets), buffer])


def slot_matrix(prefix: bytes, columns: Sequence[Encoded], rows: int) -> pa.Array:
    """Rows of ``prefix || slot(column 1) || ...`` as a large_binary array, written as one matrix."""
    fields: list[tuple[str, Any]] = [("prefix", f"S{len(prefix)}")] if prefix else []
    for i in range(len(columns)):
        fields += [(f"t{i}", "u1"), (f"p{i}", ">i8")]
    if not fields:
        return large_binary(np.zeros(rows + 1, dtype=np.int64), np.zeros(0, dtype=np.uint8))
    matrix = np.empty(rows, dtype=np.dtype(fields))
    if prefix:
        matrix["prefix"] = prefix
    for i, column in enumerate(columns):
        matrix[f"t{i}"] = column.tags
        matrix[f"p{i}"] = column.payload
    width = matrix.dtype.itemsize
    return large_binary(np.arange(0, (rows + 1) * width, width, dtype=np.int64), matrix.view(np.uint8))


def join(parts: Sequence[pa.Array | pa.Scalar]) -> pa.Array:
    """Row-wise concatenation of large_binary arrays (nulls count as empty)."""
    if len(parts) == 1 and isinstance(parts[0], pa.Array):
        return parts[0]
    return pc.binary_join_element_wise(*parts, empty(), null_handling="replace", null_replacement=b"")
