"""Record ids: the canonical text of a record's key, the same whichever library read the data.

A record id must survive the dtype differences that fingerprints already absorb: an integer key read
as float by pandas is still ``"42"``, a timestamp key read at any unit or time zone is the same UTC
instant. So the text is derived from the normalised value (the rules of normalise.py), never from a
library's ``str()``. Everything is vectorised: ids are made for every row of every dataset version.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import rfc8785

from mlcustody.errors import UsageError
from mlcustody.storage.records.layout import values_of
from mlcustody.storage.records.normalise import NS_PER, normalise_strings, plain

_MIN_DAY = -719_528  # 0000-01-01, in days since 1970-01-01
_MAX_DAY = 2_932_896  # 9999-12-31


def record_ids(table: pa.Table, key: Sequence[str]) -> pa.StringArray:
    """Canonical text of ``key`` for every row (docs/record-fingerprint.md, "Record ids").

    One key column gives its value's canonical text (``"L-00042"``, ``"42"``,
    ``"2024-03-01T12:00:00Z"``); several give the RFC 8785 JSON array of those texts
    (``["L-1","42"]``). Null keys (NaN counts as null) are refused, naming the first such row.
    """
    key = [key] if isinstance(key, str) else list(key)
    if not key:
        raise UsageError("a record key needs at least one column", hint="name the key column(s), or pass no key")
    unknown = [name for name in key if name not in table.column_names]
    if unknown:
        raise UsageError(
            f"unknown key column(s) {', '.join(map(repr, unknown))}",
            hint=f"the columns are: {', '.join(table.column_names)}",
        )
    if len(set(key)) != len(key):
        raise UsageError("a key column is named twice", hint="name each key column once")
    texts = [key_text(table.column(name).combine_chunks(), name) for name in key]
    if len(texts) == 1:
        return texts[0]
    return _json_array(texts)


def key_text(arr: pa.Array, name: str) -> pa.StringArray:  # noqa: PLR0912 - one branch per type family
    """Canonical text of every value of one key column; nulls and NaN are refused."""
    arr = plain(arr)
    kind = arr.type
    if pa.types.is_floating(kind):
        arr = arr.cast(pa.float64())
        arr = pc.if_else(pc.is_nan(arr), pa.scalar(None, pa.float64()), arr)
    if arr.null_count:
        row = int(np.flatnonzero(~np.asarray(arr.is_valid().to_numpy(zero_copy_only=False)))[0])
        raise UsageError(
            f"key column {name!r} is null at row {row}",
            hint="every record needs a key value; fill or drop rows without one, or choose another key",
        )
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return normalise_strings(arr).cast(pa.string())
    if pa.types.is_integer(kind):
        return pc.cast(arr, pa.string())
    if pa.types.is_boolean(kind):
        return pc.if_else(arr, "true", "false").cast(pa.string())
    if pa.types.is_floating(kind):
        return _float_text(arr)
    if pa.types.is_decimal(kind):
        return pa.array([_decimal_text(v) for v in arr.to_pylist()], pa.string())
    binary = (pa.types.is_binary, pa.types.is_large_binary, pa.types.is_fixed_size_binary, pa.types.is_binary_view)
    if any(check(kind) for check in binary):
        return pa.array([v.hex() for v in arr.to_pylist()], pa.string())
    if pa.types.is_date(kind):
        if pa.types.is_date32(kind):
            days = values_of(arr, np.int32).astype(np.int64)
        else:
            days = values_of(arr, np.int64) // 86_400_000
        return _format(days, np.zeros_like(days), name, date_only=True)
    if pa.types.is_timestamp(kind):
        days, within = _instant(arr)
        return _format(days, within, name)
    if pa.types.is_time(kind):
        storage = np.int32 if pa.types.is_time32(kind) else np.int64
        nanos = values_of(arr, storage).astype(np.int64) * NS_PER[kind.unit]
        return _format(np.zeros_like(nanos), nanos, name, time_only=True)
    raise UsageError(
        f"key column {name!r} has type {kind}, which cannot be a record key",
        hint="use strings, integers, decimals, booleans, dates, times, timestamps or binary as keys",
    )


def _float_text(arr: pa.Array) -> pa.StringArray:
    """Integral floats in int64 range read as integers; the rest in ECMAScript (RFC 8785) form."""
    values = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)
    integral = np.isfinite(values) & (values == np.floor(values)) & (values >= -(2.0**63)) & (values < 2.0**63)
    texts = pc.cast(pa.array(np.where(integral, values, 0.0).astype(np.int64)), pa.string())
    if integral.all():
        return texts
    other = np.flatnonzero(~integral)
    special = {float("inf"): "Infinity", float("-inf"): "-Infinity"}
    replacement = [special.get(v) or rfc8785.dumps(v).decode() for v in values[other].tolist()]
    mask = np.zeros(len(values), dtype=bool)
    mask[other] = True
    return pc.replace_with_mask(texts, pa.array(mask), pa.array(replacement, pa.string()))


def _decimal_text(value: Decimal) -> str:
    """Exact plain notation without trailing fractional zeros: 1.50 → "1.5", 42.00 → "42"."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _instant(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(days since 1970-01-01, nanoseconds into that day) of timestamps of any unit, exactly."""
    units_per_day = 86_400 * 10**9 // NS_PER[arr.type.unit]
    days, within = np.divmod(values_of(arr, np.int64), units_per_day)
    return days, within * NS_PER[arr.type.unit]


def _civil(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(year, month, day) of days since 1970-01-01, proleptic Gregorian (H. Hinnant's algorithm)."""
    z = days + 719_468
    era = np.floor_divide(z, 146_097)
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day


def _put(matrix: np.ndarray, column: int, values: np.ndarray, width: int) -> None:
    for i in range(width):
        matrix[:, column + width - 1 - i] = 48 + (values // 10**i) % 10


def _format(
    days: np.ndarray, within: np.ndarray, name: str, *, date_only: bool = False, time_only: bool = False
) -> pa.StringArray:
    """RFC 3339 text in UTC: ``YYYY-MM-DD``, ``HH:MM:SS[.f]`` or ``YYYY-MM-DDTHH:MM:SS[.f]Z``.

    ``within`` is nanoseconds into the day. Fractions have as many digits as needed (trailing zeros
    removed), so the text does not depend on the unit the value was stored in.
    """
    if not time_only and ((days < _MIN_DAY) | (days > _MAX_DAY)).any():
        raise UsageError(
            f"key column {name!r} holds a date outside the years 0000–9999",
            hint="record keys must be dates that RFC 3339 can write",
        )
    seconds, fraction = np.divmod(within, 10**9)
    rows = len(days)
    layout = "0000-00-00" if date_only else "00:00:00.000000000" if time_only else "0000-00-00T00:00:00.000000000Z"
    matrix = np.empty((rows, len(layout)), dtype=np.uint8)
    matrix[:] = np.frombuffer(layout.encode(), dtype=np.uint8)
    at = 0
    if not time_only:
        year, month, day = _civil(days)
        _put(matrix, 0, year, 4)
        _put(matrix, 5, month, 2)
        _put(matrix, 8, day, 2)
        if date_only:
            return _from_matrix(matrix, np.full(rows, 10))
        at = 11
    _put(matrix, at, seconds // 3600, 2)
    _put(matrix, at + 3, seconds // 60 % 60, 2)
    _put(matrix, at + 6, seconds % 60, 2)
    _put(matrix, at + 9, fraction, 9)
    # Keep the fraction up to its last non-zero digit (and the dot only if there is one).
    digits = np.full(rows, 9)
    for i in range(1, 10):
        digits = np.where((fraction % 10**i == 0), 9 - i, digits)
    keep = np.ones(matrix.shape, dtype=bool)
    fraction_columns = np.arange(at + 9, at + 18)
    keep[:, fraction_columns] = (fraction_columns - (at + 9))[None, :] < digits[:, None]
    keep[:, at + 8] = digits > 0
    return _from_matrix(matrix, keep.sum(axis=1), keep)


def _from_matrix(matrix: np.ndarray, lengths: np.ndarray, keep: np.ndarray | None = None) -> pa.StringArray:
    data = matrix[keep] if keep is not None else matrix.reshape(-1)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
    return pa.Array.from_buffers(pa.string(), len(lengths), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _json_array(texts: list[pa.StringArray]) -> pa.StringArray:
    """RFC 8785 JSON array of strings; only texts that need escaping go through the encoder."""
    quoted = []
    for text in texts:
        needs = pc.fill_null(pc.match_substring_regex(text, r'[\x00-\x1f"\\]'), False)
        plain_quoted = pc.binary_join_element_wise('"', text, '"', "")
        if pc.any(needs).as_py():
            rows = np.flatnonzero(np.asarray(needs.to_numpy(zero_copy_only=False)))
            escaped = [rfc8785.dumps(value).decode() for value in text.take(pa.array(rows)).to_pylist()]
            plain_quoted = pc.replace_with_mask(plain_quoted, needs, pa.array(escaped, pa.string()))
        quoted.append(plain_quoted)
    separated = [part for q in quoted for part in (q, ",")][:-1]
    return pc.binary_join_element_wise("[", *separated, "]", "")
