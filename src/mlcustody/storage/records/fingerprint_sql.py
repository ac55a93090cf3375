"""The record fingerprint as one DuckDB SQL expression, so the data's own engine can recompute it.

The same bytes as normalise.py, written with portable building blocks only: integers become
big-endian bytes through ``unhex(lpad(hex(x), 16, '0'))`` (``hex`` of a negative BIGINT is its
two's complement), IEEE-754 bits of a double are reconstructed arithmetically from ``log2`` and
exact powers of two (no engine exposes them directly), strings go through ``nfc_normalize``.
Spark SQL has the same functions (docs/record-fingerprint.md gives its shape); the tests check this
expression against the fast path on generated data.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from mlcustody.errors import UsageError
from mlcustody.storage.records.normalise import (
    BOOL,
    BYTES,
    DATE,
    DECIMAL,
    DUR_NS,
    DUR_US,
    INT,
    LIST,
    NULL_SLOT,
    REAL,
    STRING,
    STRUCT,
    TIME,
    TS_NS,
    TS_US,
    is_list_like,
    kept_columns,
    ordered_names,
    record_header,
    string_bytes,
)

_NULL_HEX = f"'{NULL_SLOT.hex()}'"
_TRUE_HEX = f"'{(BOOL + (1).to_bytes(8, 'big')).hex()}'"
_FALSE_HEX = f"'{(BOOL + bytes(8)).hex()}'"
_BIG_HEX = f"'{(DECIMAL + (17).to_bytes(8, 'big')).hex()}'"  # slot of an X value: its tail is 17 bytes
_US_FITS_NS = 9_223_372_036_854_775  # |µs| up to this many fit int64 nanoseconds
_TWO_52 = "4503599627370496.0"


def duckdb_fingerprint_sql(schema: pa.Schema, *, exclude: Sequence[str] = ()) -> str:
    """A DuckDB expression giving each row's fingerprint (lowercase hex) over a table with ``schema``."""
    names = kept_columns(schema.names, exclude)
    slots, tails = [f"'{record_header(names).hex()}'"], []
    for name in names:
        encoder = _Encoder(name)
        slot, tail = encoder.value(_quote(name), schema.field(name).type)
        slots.append(slot)
        if tail is not None:
            tails.append(f"coalesce({tail}, ''::BLOB)")
    record = " || ".join([f"unhex({' || '.join(slots)})", *tails])
    return f"sha256({record})"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _blob(data: bytes) -> str:
    return f"unhex('{data.hex()}')"


def _i64(expr: str) -> str:
    """16 hex digits of ``expr`` as a big-endian two's-complement int64."""
    return f"lpad(hex(CAST({expr} AS BIGINT)), 16, '0')"


def _i128(expr: str) -> str:
    """32 hex digits of ``expr`` as a big-endian two's-complement 128-bit integer."""
    return f"lpad(hex(CAST({expr} AS HUGEINT)), 32, '0')"


def _slot(tag: bytes, payload_expr: str) -> str:
    return f"'{tag.hex()}' || {_i64(payload_expr)}"


def _case_null(null_test: str, slot: str) -> str:
    return f"CASE WHEN {null_test} THEN {_NULL_HEX} ELSE {slot} END"


class _Encoder:
    """Builds (slot hex expression, tail blob expression or None) per Arrow type, recursively."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.depth = 0

    def value(self, x: str, kind: pa.DataType) -> tuple[str, str | None]:  # noqa: PLR0912
        kind = _plain_type(kind)
        null = f"{x} IS NULL"
        if pa.types.is_null(kind):
            return _NULL_HEX, None
        if pa.types.is_boolean(kind):
            return _case_null(null, f"CASE WHEN {x} THEN {_TRUE_HEX} ELSE {_FALSE_HEX} END"), None
        if pa.types.is_integer(kind):
            return self._integer(x, kind, null)
        if pa.types.is_floating(kind):
            if kind == pa.float16():
                self._refuse(kind, "DuckDB cannot read half floats; cast the column to float32 first")
            return _case_null(f"{null} OR isnan({x})", _double(f"CAST({x} AS DOUBLE)")), None
        if pa.types.is_decimal(kind):
            return self._decimal(x, kind, null)
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            text = f"encode({self._nfc(x)})"
            return _case_null(null, _slot(STRING, f"octet_length({text})")), text
        if (
            pa.types.is_binary(kind)
            or pa.types.is_large_binary(kind)
            or pa.types.is_binary_view(kind)
            or (pa.types.is_fixed_size_binary(kind))
        ):
            return _case_null(null, _slot(BYTES, f"octet_length({x})")), x
        if pa.types.is_date(kind):
            return _case_null(null, _slot(DATE, f"({x} - DATE '1970-01-01')")), None
        if pa.types.is_time(kind):
            return _case_null(null, _slot(TIME, f"epoch_ns({x})")), None
        if pa.types.is_timestamp(kind):
            if kind.unit == "ns":
                return _case_null(null, _slot(TS_NS, f"epoch_ns({x})")), None
            if kind.unit in ("s", "ms") and kind.tz is None:
                # DuckDB converts TIMESTAMP_S/_MS through nanoseconds in epoch_us() and fails beyond
                # 1677-2262; the day and the time of day convert without that detour.
                micros = f"(({x})::DATE - DATE '1970-01-01') * 86400000000 + epoch_us(({x})::TIME)"
                return _case_null(null, _instant(micros, TS_NS, TS_US)), None
            return _case_null(null, _instant(f"epoch_us({x})", TS_NS, TS_US)), None
        if pa.types.is_duration(kind):
            if kind.unit == "ns":
                self._refuse(kind, "DuckDB reads duration[ns] as an INTERVAL of whole microseconds")
            return _case_null(null, _instant(f"epoch_us({x})", DUR_NS, DUR_US)), None
        if pa.types.is_map(kind):
            entry = pa.struct([pa.field("key", kind.key_type), pa.field("value", kind.item_type)])
            return self._list(f"map_entries({x})", entry, null)
        if is_list_like(kind):
            return self._list(x, kind.value_type, null)
        if pa.types.is_struct(kind):
            return self._struct(x, kind, null)
        return self._refuse(kind, "this type has no canonical encoding")

    def piece(self, x: str, kind: pa.DataType) -> str:
        """``slot || tail`` as one blob: the self-delimiting form inside lists and structs."""
        slot, tail = self.value(x, kind)
        return f"unhex({slot})" if tail is None else f"(unhex({slot}) || coalesce({tail}, ''::BLOB))"

    def _nfc(self, x: str) -> str:
        """NFC of ``x``. DuckDB's nfc_normalize stops at a NUL character, but NUL never combines, so
        the pieces between NULs are normalised one by one."""
        piece = f"p{self.depth}"
        pieces = f"list_transform(string_split({x}, chr(0)), lambda {piece}: nfc_normalize({piece}))"
        return f"CASE WHEN contains({x}, chr(0)) THEN array_to_string({pieces}, chr(0)) ELSE nfc_normalize({x}) END"

    def _integer(self, x: str, kind: pa.DataType, null: str) -> tuple[str, str | None]:
        if kind != pa.uint64():
            return _case_null(null, _slot(INT, x)), None
        big = f"{x} > 9223372036854775807"
        slot = f"CASE WHEN {big} THEN {_BIG_HEX} ELSE {_slot(INT, x)} END"
        tail = f"CASE WHEN {big} THEN unhex('00' || {_i128(x)}) END"
        return _case_null(null, slot), tail

    def _decimal(self, x: str, kind: pa.DataType, null: str) -> tuple[str, str | None]:
        """Exact unscaled value from the decimal's text, then trailing zeros removed (CASE per scale)."""
        scale = kind.scale
        if kind.precision > 38 or scale < 0:
            self._refuse(kind, "DuckDB decimals have at most 38 digits and a scale of at least 0")
        unscaled = f"CAST({x} AS HUGEINT)" if scale == 0 else f"CAST(replace(CAST({x} AS VARCHAR), '.', '') AS HUGEINT)"
        whole = f"({unscaled} // {10**scale})"
        integral = f"({unscaled} % {10**scale} = 0 AND {whole} BETWEEN -9223372036854775808 AND 9223372036854775807)"
        slot = f"CASE WHEN {integral} THEN {_slot(INT, whole)} ELSE {_BIG_HEX} END"
        branches = [
            f"WHEN {unscaled} % {10**drop} = 0 THEN '{scale - drop:02x}' || {_i128(f'{unscaled} // {10**drop}')}"
            for drop in range(scale, 0, -1)
        ]
        exact = f"'{scale:02x}' || {_i128(unscaled)}"
        if branches:
            exact = f"CASE {' '.join(branches)} ELSE {exact} END"
        return _case_null(null, slot), f"CASE WHEN NOT {integral} THEN unhex({exact}) END"

    def _list(self, x: str, element: pa.DataType, null: str) -> tuple[str, str | None]:
        self.depth += 1
        e, a, b = (f"{v}{self.depth}" for v in "eab")
        tail = (
            f"list_reduce(list_transform({x}, lambda {e}: {self.piece(e, element)}), "
            f"lambda {a}, {b}: {a} || {b}, ''::BLOB)"
        )
        self.depth -= 1
        return _case_null(null, _slot(LIST, f"octet_length({tail})")), f"CASE WHEN NOT ({null}) THEN {tail} END"

    def _struct(self, x: str, kind: pa.DataType, null: str) -> tuple[str, str | None]:
        fields = {kind.field(i).name: kind.field(i).type for i in range(kind.num_fields)}
        parts = []
        for name in ordered_names(list(fields), "struct fields"):
            literal = "'" + name.replace("'", "''") + "'"
            parts += [_blob(string_bytes(name)), self.piece(f"struct_extract({x}, {literal})", fields[name])]
        tail = " || ".join(parts) if parts else "''::BLOB"
        return _case_null(null, _slot(STRUCT, f"octet_length({tail})")), f"CASE WHEN NOT ({null}) THEN {tail} END"

    def _refuse(self, kind: pa.DataType, why: str) -> tuple[str, str | None]:
        raise UsageError(
            f"column {self.column!r} of type {kind} has no DuckDB fingerprint expression: {why}",
            hint="fingerprint it in Python (fingerprints()), or exclude the column",
        )


def _plain_type(kind: pa.DataType) -> pa.DataType:
    while True:
        if isinstance(kind, pa.ExtensionType):
            kind = kind.storage_type
        elif pa.types.is_dictionary(kind) or pa.types.is_run_end_encoded(kind):
            kind = kind.value_type
        else:
            return kind


def _instant(micros: str, ns_tag: bytes, us_tag: bytes) -> str:
    """Nanoseconds when they fit int64, else microseconds (the two-tier instant rule)."""
    micros = f"({micros})"
    return (
        f"CASE WHEN {micros} BETWEEN -{_US_FITS_NS} AND {_US_FITS_NS} "
        f"THEN {_slot(ns_tag, f'{micros} * 1000')} ELSE {_slot(us_tag, micros)} END"
    )


def _double(d: str) -> str:
    """Slot of a non-NaN double: an integer when integral and within int64, else its IEEE-754 bits."""
    integral = f"isfinite({d}) AND {d} = floor({d}) AND {d} >= -9223372036854775808.0 AND {d} < 9223372036854775808.0"
    return f"CASE WHEN {integral} THEN {_slot(INT, d)} ELSE {_slot(REAL, _bits(d))} END"


def _bits(d: str) -> str:
    """IEEE-754 bits of a non-zero, non-NaN double as a signed BIGINT, from exact arithmetic.

    ``floor(log2(|d|))`` can be off by one near powers of two, so it is corrected against exact
    powers of two. Scaling by powers of two is exact, so the mantissa is recovered without rounding.
    """
    a = f"abs({d})"
    e0 = f"CAST(floor(log2({a})) AS INTEGER)"
    e = (
        f"({e0} - CASE WHEN pow(2.0, {e0}) > {a} THEN 1 ELSE 0 END"
        f" + CASE WHEN pow(2.0, {e0} + 1) <= {a} THEN 1 ELSE 0 END)"
    )
    mantissa = f"CAST(({a} / pow(2.0, {e}) - 1.0) * {_TWO_52} AS BIGINT)"
    normal = f"(CAST({e} + 1023 AS BIGINT) * 4503599627370496 + {mantissa})"
    subnormal = f"CAST(({a} * pow(2.0, 1022)) * {_TWO_52} AS BIGINT)"
    magnitude = (
        f"CASE WHEN isinf({d}) THEN 9218868437227405312 WHEN {a} < pow(2.0, -1022) THEN {subnormal} ELSE {normal} END"
    )
    return f"({magnitude}) + CASE WHEN {d} < 0 THEN -9223372036854775807 - 1 ELSE 0 END"
