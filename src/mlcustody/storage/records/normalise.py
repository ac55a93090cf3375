"""The canonical binary encoding of record values (scheme ``mlcustody-record/v1``), built vectorised.

Every value becomes a 9-byte *slot* (a type tag and an 8-byte big-endian payload) plus, for
variable-length values, a *tail*. A record is ``header || slots of all columns || tails of all
columns``, which lets the fixed-width part of a whole batch be written as one numpy matrix and the
variable part be appended with a single ``binary_join_element_wise``: the row bytes are produced at
memory speed instead of value by value. Values are normalised by what they mean, not by the dtype a
library chose for them (NaN is null, an integral float is that integer, timestamps are UTC instants),
so pyarrow, polars and pandas give the same bytes. The rules are specified in
docs/record-fingerprint.md; ``fingerprint_sql.py`` writes the same encoding as SQL.
"""

from __future__ import annotations

import hashlib
import itertools
import unicodedata
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlcustody.errors import UsageError
from mlcustody.storage.records.layout import (
    Encoded,
    empty,
    join,
    large_binary,
    offsets_of,
    slot_matrix,
    validity,
    values_of,
)

SCHEME = "mlcustody-record/v1"

# Type tags: one ASCII byte at the start of every slot.
NULL, BOOL, INT, REAL, DECIMAL, STRING, BYTES = b"N", b"B", b"I", b"R", b"X", b"S", b"Y"
DATE, TIME, TS_NS, TS_US, DUR_NS, DUR_US, LIST, STRUCT = b"D", b"H", b"T", b"U", b"P", b"Q", b"L", b"O"
NULL_SLOT = NULL + bytes(8)

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_I128_LIMIT = 2**127
# Strings whose code points all lie below U+0300 (UTF-8 bytes below 0xCC) are NFC already: none of
# them decomposes, reorders or composes (checked exhaustively in tests), so only others are normalised.
_NFC_SAFE_BELOW = 0xCC
NS_PER = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_MS_PER_DAY = 86_400_000


def nfc(text: str) -> str:
    """NFC form of a name (column or struct field names are normalised like values)."""
    return unicodedata.normalize("NFC", text)


def string_bytes(text: str) -> bytes:
    """Encoding of a string known at plan time (names): slot ``S`` + byte length, then the bytes."""
    data = nfc(text).encode("utf-8")
    return STRING + len(data).to_bytes(8, "big") + data


def record_header(names: Sequence[str]) -> bytes:
    """SHA-256 of the scheme and the column names in record order: binds values to their columns."""
    digest = hashlib.sha256(string_bytes(SCHEME))
    for name in names:
        digest.update(string_bytes(name))
    return digest.digest()


def ordered_names(names: Sequence[str], what: str) -> list[str]:
    """Names sorted by the code points of their NFC form; two names equal after NFC are refused."""
    keyed = sorted((nfc(name), name) for name in names)
    for (a, original_a), (b, original_b) in itertools.pairwise(keyed):
        if a == b:
            raise UsageError(
                f"{what} {original_a!r} and {original_b!r} have the same name after Unicode NFC normalisation",
                hint="rename one of them: record fingerprints identify columns by name",
            )
    return [original for _, original in keyed]


# --- per-type encoders ---------------------------------------------------------------------------


def value_pieces(arr: pa.Array) -> pa.Array:
    """``slot || tail`` of every element (the self-delimiting form used inside lists and structs)."""
    encoded = encode(arr)
    matrix = slot_matrix(b"", [encoded], len(arr))
    return matrix if encoded.tail is None else join([matrix, encoded.tail])


# --- per-type encoders ---------------------------------------------------------------------------


def _tags(valid: np.ndarray, tag: bytes) -> np.ndarray:
    return np.where(valid, np.uint8(tag[0]), np.uint8(NULL[0]))


def _encode_ints(arr: pa.Array) -> Encoded:
    valid = validity(arr)
    if arr.type == pa.uint64():
        raw = values_of(arr, np.uint64)
        big = valid & (raw > np.uint64(_I64_MAX))
        if big.any():
            payload = np.where(valid & ~big, raw, 0).astype(np.int64)
            tags = np.where(big, np.uint8(DECIMAL[0]), _tags(valid, INT))
            payload[big] = 17
            tails: list[bytes | None] = [None] * len(arr)
            for i in np.flatnonzero(big):
                tails[i] = _decimal_tail(int(raw[i]), 0)
            return Encoded(tags, payload, pa.array(tails, pa.large_binary()))
        return Encoded(_tags(valid, INT), np.where(valid, raw, 0).astype(np.int64), None)
    storage = f"{'i' if pa.types.is_signed_integer(arr.type) else 'u'}{arr.type.bit_width // 8}"
    values = values_of(arr, storage).astype(np.int64)
    return Encoded(_tags(valid, INT), np.where(valid, values, 0), None)


def _encode_floats(arr: pa.Array) -> Encoded:
    if arr.type != pa.float64():
        arr = arr.cast(pa.float64())
    values = values_of(arr, np.float64)
    valid = validity(arr) & ~np.isnan(values)
    integral = valid & np.isfinite(values) & (values == np.floor(values))
    integral &= (values >= -(2.0**63)) & (values < 2.0**63)
    as_int = np.where(integral, values, 0.0).astype(np.int64)
    payload = np.where(integral, as_int, np.where(valid, values, 0.0).view(np.int64))
    tags = np.where(integral, np.uint8(INT[0]), _tags(valid, REAL))
    return Encoded(tags, payload, None)


def _decimal_tail(unscaled: int, scale: int) -> bytes:
    if not -_I128_LIMIT <= unscaled < _I128_LIMIT:
        raise UsageError(
            f"decimal value with {len(str(abs(unscaled)))} digits is too large for a record fingerprint",
            hint="decimals must fit in 38 digits (a 128-bit unscaled integer) after removing trailing zeros",
        )
    return scale.to_bytes(1, "big") + unscaled.to_bytes(16, "big", signed=True)


def _exact_decimal(value: Decimal) -> tuple[int, int]:
    """(unscaled, scale) of a decimal with trailing fractional zeros removed and scale >= 0."""
    sign, digits, exponent = value.as_tuple()
    unscaled = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    scale = -int(exponent)
    if scale < 0:
        return unscaled * 10**-scale, 0
    while scale > 0 and unscaled % 10 == 0:
        unscaled //= 10
        scale -= 1
    return unscaled, scale


def _encode_decimals(arr: pa.Array) -> Encoded:
    """Integral decimals that fit int64 encode as integers; others as ``X`` with an exact tail.

    Values whose unscaled integer fits int64 (every decimal of up to 18 digits) are normalised with
    numpy; the rest, and scales above 18, go value by value through Python's exact ``Decimal``.
    """
    valid = validity(arr)
    scale, width = arr.type.scale, arr.type.byte_width
    if not 0 <= scale <= 18 or width > 16:
        return _encode_decimals_exactly(arr, valid, np.zeros(len(arr), dtype=bool))
    words = np.frombuffer(
        arr.buffers()[1], dtype=f"<i{min(width, 8)}", count=(arr.offset + len(arr)) * max(width // 8, 1)
    )
    if width == 16:
        pairs = words.reshape(-1, 2)[arr.offset :]
        unscaled, fits = pairs[:, 0].copy(), pairs[:, 1] == (pairs[:, 0] >> 63)
    else:
        unscaled, fits = words[arr.offset :].astype(np.int64), np.ones(len(arr), dtype=bool)
    slow = valid & ~fits
    fast = valid & fits
    unscaled = np.where(fast, unscaled, 0)
    power = np.int64(10**scale)
    integral = fast & (unscaled % power == 0)
    tags = np.where(integral | ~valid, _tags(valid, INT), np.uint8(DECIMAL[0]))
    payload = np.where(integral, unscaled // power, np.where(valid, 17, 0))
    exact = fast & ~integral
    if not exact.any() and not slow.any():
        return Encoded(tags, payload, None)
    reduced, kept = unscaled.copy(), np.full(len(arr), scale, dtype=np.int64)
    for _ in range(scale):  # strip trailing fractional zeros, keeping scale >= 1 (integral ones are done)
        strip = exact & (reduced % 10 == 0) & (kept > 0)
        reduced, kept = np.where(strip, reduced // 10, reduced), np.where(strip, kept - 1, kept)
    rows = np.empty((len(arr), 17), dtype=np.uint8)
    rows[:, 0] = kept
    rows[:, 1:9] = np.where(reduced < 0, 0xFF, 0)[:, None]
    rows[:, 9:] = reduced.astype(">i8").view(np.uint8).reshape(-1, 8)
    lengths = np.where(exact, 17, 0)
    tail = large_binary(np.concatenate(([0], np.cumsum(lengths))), rows[exact].reshape(-1))
    if slow.any():
        return _encode_decimals_exactly(arr, slow, exact, Encoded(tags, payload, tail))
    return Encoded(tags, payload, tail)


def _encode_decimals_exactly(
    arr: pa.Array, rows: np.ndarray, done: np.ndarray, partial: Encoded | None = None
) -> Encoded:
    """Python's exact ``Decimal`` for the ``rows`` the vectorised path cannot take."""
    valid = validity(arr)
    tags = _tags(valid, INT) if partial is None else partial.tags
    payload = np.zeros(len(arr), dtype=np.int64) if partial is None else partial.payload
    known = [None] * len(arr) if partial is None or partial.tail is None else partial.tail.to_pylist()
    tails: list[bytes | None] = [t if done[i] else None for i, t in enumerate(known)]
    values = arr.to_pylist()
    for i in np.flatnonzero(rows):
        unscaled, scale = _exact_decimal(values[i])
        if scale == 0 and _I64_MIN <= unscaled <= _I64_MAX:
            tags[i], payload[i] = INT[0], unscaled
        else:
            tags[i], payload[i], tails[i] = DECIMAL[0], 17, _decimal_tail(unscaled, scale)
    tail = pa.array(tails, pa.large_binary()) if any(t is not None for t in tails) else None
    return Encoded(tags, payload, tail)


def _encode_strings(arr: pa.Array, tag: bytes) -> Encoded:
    if tag == STRING:
        arr = normalise_strings(arr)
    arr = arr.cast(pa.large_binary())
    valid = validity(arr)
    offsets = offsets_of(arr)
    return Encoded(_tags(valid, tag), np.where(valid, np.diff(offsets), 0), arr)


def normalise_strings(arr: pa.Array) -> pa.Array:
    """The strings in NFC, as large_string; only rows with code points from U+0300 up are touched."""
    arr = arr.cast(pa.large_string())
    offsets = offsets_of(arr)
    if len(arr) == 0 or offsets[-1] == offsets[0]:
        return arr
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    suspect = data >= _NFC_SAFE_BELOW
    if not suspect.any():
        return arr
    counts = np.concatenate(([0], np.cumsum(suspect, dtype=np.int64)))
    rows = np.flatnonzero(counts[offsets[1:] - offsets[0]] > counts[offsets[:-1] - offsets[0]])
    # Python's unicodedata, not pc.utf8_normalize: the latter silently returns its input in some
    # pyarrow releases (18.x), and the standard library is there on every install.
    suspects = arr.take(pa.array(rows)).to_pylist()
    normalised = pa.array([None if t is None else unicodedata.normalize("NFC", t) for t in suspects], pa.large_string())
    mask = np.zeros(len(arr), dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(arr, pa.array(mask), normalised)


def _scaled(arr: pa.Array, storage: Any) -> np.ndarray:
    return values_of(arr, storage).astype(np.int64)


def _encode_instants(arr: pa.Array, ns_tag: bytes, us_tag: bytes) -> Encoded:
    """Timestamps and durations: nanoseconds when they fit int64, else exact microseconds."""
    valid = validity(arr)
    values = np.where(valid, _scaled(arr, np.int64), 0)
    factor = NS_PER[arr.type.unit]
    fits_ns = (values >= -(2**63 // factor)) & (values <= _I64_MAX // factor)
    payload = values * factor if factor > 1 else values.copy()
    tags = _tags(valid, ns_tag)
    outside = ~fits_ns
    if outside.any():
        to_us = max(factor // 1000, 1)
        far = values[outside]
        if ((far < -(2**63 // to_us)) | (far > _I64_MAX // to_us)).any():
            raise UsageError(
                f"a {arr.type} value lies beyond ±292,000 years and has no exact microsecond form",
                hint="such instants cannot be fingerprinted; check the column for corrupt values",
            )
        payload[outside] = far * to_us
        tags[outside] = us_tag[0]
    return Encoded(tags, payload, None)


def _encode_dates(arr: pa.Array) -> Encoded:
    valid = validity(arr)
    if pa.types.is_date32(arr.type):
        days = _scaled(arr, np.int32)
    else:
        millis = _scaled(arr, np.int64)
        if (valid & (millis % _MS_PER_DAY != 0)).any():
            raise UsageError(
                "a date64 value is not a whole number of days",
                hint="Arrow requires date64 values to be multiples of 86,400,000 ms; cast the column to a timestamp",
            )
        days = millis // _MS_PER_DAY
    return Encoded(_tags(valid, DATE), np.where(valid, days, 0), None)


def _encode_times(arr: pa.Array) -> Encoded:
    valid = validity(arr)
    storage = np.int32 if pa.types.is_time32(arr.type) else np.int64
    nanos = _scaled(arr, storage) * NS_PER[arr.type.unit]
    return Encoded(_tags(valid, TIME), np.where(valid, nanos, 0), None)


def _encode_bools(arr: pa.Array) -> Encoded:
    valid = validity(arr)
    values = np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=np.int64)
    return Encoded(_tags(valid, BOOL), values, None)


def _encode_lists(arr: pa.Array) -> Encoded:
    """A list's tail is the concatenation of its elements' pieces: a zero-copy window per row."""
    valid = validity(arr)
    lengths = np.asarray(pc.fill_null(pc.list_value_length(arr), 0).to_numpy(), dtype=np.int64)
    pieces = value_pieces(pc.list_flatten(arr))
    piece_offsets = offsets_of(pieces)
    bounds = piece_offsets[np.concatenate(([0], np.cumsum(lengths)))]
    tail = large_binary(bounds, pieces.buffers()[2])
    return Encoded(_tags(valid, LIST), np.diff(bounds), tail)


def _encode_structs(arr: pa.Array) -> Encoded:
    valid = validity(arr)
    fields = {arr.type.field(i).name: child for i, child in enumerate(arr.flatten())}
    parts: list[pa.Array | pa.Scalar] = []
    for name in ordered_names(list(fields), "struct fields"):
        parts += [pa.scalar(string_bytes(name), pa.large_binary()), value_pieces(fields[name])]
    tail = join(parts) if parts else pa.array([b""] * len(arr), pa.large_binary())
    if not valid.all():
        tail = pc.if_else(pa.array(valid), tail, empty())
    lengths = np.where(valid, np.diff(offsets_of(tail)), 0)
    return Encoded(_tags(valid, STRUCT), lengths, tail)


def _map_as_list(arr: pa.Array) -> pa.Array:
    """A map is the list of its entries, each a struct {key, value} (polars reads maps that way)."""
    entry = pa.struct([pa.field("key", arr.type.key_type), pa.field("value", arr.type.item_type)])
    return arr.cast(pa.large_list(entry))


def plain(arr: pa.Array) -> pa.Array:
    """Strip representations that carry no meaning: extension, dictionary and run-end encodings."""
    while True:
        if isinstance(arr.type, pa.ExtensionType):
            arr = arr.storage
        elif pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        elif pa.types.is_run_end_encoded(arr.type):
            arr = pc.run_end_decode(arr)
        else:
            return arr


def encode(arr: pa.Array) -> Encoded:  # noqa: PLR0912 - one branch per Arrow type family
    """The slots and tails of every value of ``arr`` under the rules of docs/record-fingerprint.md."""
    arr = plain(arr)
    kind = arr.type
    if pa.types.is_null(kind):
        return Encoded(np.full(len(arr), NULL[0], dtype=np.uint8), np.zeros(len(arr), dtype=np.int64), None)
    if pa.types.is_boolean(kind):
        return _encode_bools(arr)
    if pa.types.is_integer(kind):
        return _encode_ints(arr)
    if pa.types.is_floating(kind):
        return _encode_floats(arr)
    if pa.types.is_decimal(kind):
        return _encode_decimals(arr)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return _encode_strings(arr, STRING)
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind):
        return _encode_strings(arr, BYTES)
    if pa.types.is_fixed_size_binary(kind):
        return _encode_strings(arr, BYTES)
    if pa.types.is_date(kind):
        return _encode_dates(arr)
    if pa.types.is_time(kind):
        return _encode_times(arr)
    if pa.types.is_timestamp(kind):
        return _encode_instants(arr, TS_NS, TS_US)
    if pa.types.is_duration(kind):
        return _encode_instants(arr, DUR_NS, DUR_US)
    if pa.types.is_map(kind):
        return _encode_lists(_map_as_list(arr))
    if is_list_like(kind):
        return _encode_lists(arr)
    if pa.types.is_struct(kind):
        return _encode_structs(arr)
    raise UsageError(
        f"values of type {kind} cannot be fingerprinted",
        hint="supported: null, booleans, numbers, decimals, strings, binary, dates, times, timestamps,"
        " durations, lists, maps and structs; cast or exclude the column",
    )


def is_list_like(kind: pa.DataType) -> bool:
    """Lists of any layout (plain, large, fixed-size, view) encode alike."""
    checks = ("is_list", "is_large_list", "is_fixed_size_list", "is_list_view", "is_large_list_view")
    return any(getattr(pa.types, check, lambda _: False)(kind) for check in checks)


def kept_columns(names: Sequence[str], exclude: Sequence[str] | str) -> list[str]:
    """The column names that make up a record, in record order, refusing unknown exclusions."""
    excluded = [exclude] if isinstance(exclude, str) else list(exclude)
    unknown = [name for name in excluded if name not in names]
    if unknown:
        raise UsageError(
            f"cannot exclude unknown column(s) {', '.join(map(repr, unknown))}",
            hint=f"the columns are: {', '.join(names)}",
        )
    return ordered_names([name for name in names if name not in excluded], "columns")
