"""What a caller logs, as columns: decisions from single records, frames or ``predict`` calls.

Everything here is column-wise (Arrow, polars) because batch ingest must keep up with 100,000
decisions a second: the inputs are fingerprinted as one table (the record-fingerprint spec), written
as one JSON document per row by polars for encryption, and ids and times are checked as columns.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from json.encoder import encode_basestring as _quote  # RFC 8785's string escaping, in C
from typing import TYPE_CHECKING, Any

from mlcustody._canonical import canonical_json, utc_now
from mlcustody.errors import UsageError

if TYPE_CHECKING:
    import pyarrow as pa

MAX_ID = 200
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
_UNSAFE = r'["\\\x00-\x1f]'  # characters RFC 8785 escapes in a string


@dataclass
class Batch:
    """Decisions to append, column by column (``subjects`` are HMACs; ``plaintexts`` None: inputs not kept)."""

    ids: list[str]
    times: list[str]
    versions: list[int]
    input_digests: list[str]
    outputs: list[str]  # canonical JSON text
    subjects: list[str | None]
    plaintexts: list[bytes] | None
    # The inputs as a table, when their fingerprints and plaintexts are still to be computed
    # (``resolved``): ``record_batch`` defers them so that a large batch's are computed segment by
    # segment while the worker processes seal the segments before. ``input_digests`` is empty then.
    inputs: pa.Table | None = None
    keep_inputs: bool = True

    def __len__(self) -> int:
        return len(self.ids)

    def without(self, ids: set[str]) -> Batch:
        keep = [i for i, d in enumerate(self.ids) if d not in ids]
        return self._pick(lambda values: [values[i] for i in keep], lambda table: table.take(keep))

    def slice(self, start: int, stop: int) -> Batch:
        return self._pick(lambda values: values[start:stop], lambda table: table.slice(start, stop - start))

    def resolved(self) -> Batch:
        """This batch with the fingerprints and (when kept) plaintexts of its inputs computed."""
        if self.inputs is None:
            return self
        digests, plaintexts = inputs_of(self.inputs, keep=self.keep_inputs)
        return replace(self, input_digests=digests, plaintexts=plaintexts, inputs=None)

    def _pick(self, part: Callable[[list[Any]], list[Any]], rows: Callable[[pa.Table], pa.Table]) -> Batch:
        picked: dict[str, Any] = {}
        for f in fields(self):
            values = getattr(self, f.name)
            if f.name == "inputs":
                values = None if values is None else rows(values)
            elif isinstance(values, list) and not (f.name == "input_digests" and self.inputs is not None):
                values = part(values)
            picked[f.name] = values
        return Batch(**picked)

    def check_unique(self) -> None:
        if len(set(self.ids)) != len(self.ids):
            seen: set[str] = set()
            for twice in self.ids:
                if twice in seen:
                    raise UsageError(f"decision {twice} appears twice", hint="give every decision its own id")
                seen.add(twice)


# -- values ----------------------------------------------------------------------------------------------


def canonical_output(value: Any) -> str:
    """``canonical_json(value)`` as text, with fast paths for the usual outputs (a test checks they agree).

    Strings, booleans, null, safe integers, floats printed the same by Python and ECMAScript, and
    lists and objects of those (ASCII keys, whose sort order is the same in UTF-16) skip the general
    encoder; anything else goes through it."""
    kind = type(value)
    if kind is str:
        return _quote(value)
    if kind is bool or value is None:
        return "true" if value is True else "false" if value is False else "null"
    if kind is int and -(2**53) < value < 2**53:
        return str(value)
    if kind is float and math.isfinite(value):
        size = abs(value)
        if value.is_integer() and size < 1e16:
            return str(int(value))
        if 1e-4 <= size < 1e16:
            return repr(value)
    elif kind is list:
        return "[" + ",".join(canonical_output(item) for item in value) + "]"
    elif kind is dict and all(type(k) is str and k.isascii() for k in value):
        parts = (_quote(k) + ":" + canonical_output(value[k]) for k in sorted(value))
        return "{" + ",".join(parts) + "}"
    return canonical_json(value).decode("utf-8")


def json_strings(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Each value as an RFC 8785 JSON string (``null`` for null), column-wise; only strings with a
    quote, backslash or control character go through the escaping encoder."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = pc.cast(column, pa.string())
    quoted = pc.binary_join_element_wise('"', column, '"', "")
    unsafe = pc.fill_null(pc.match_substring_regex(column, _UNSAFE), False)
    if pc.any(unsafe).as_py():
        escaped = [_quote(v) if v is not None else None for v in column.to_pylist()]
        quoted = pc.if_else(unsafe, pa.array(escaped, pa.string()), quoted)
    return pc.fill_null(quoted, "null")


def outputs_column(column: pa.ChunkedArray) -> list[str]:
    """``canonical_output`` of every value of a column: booleans, safe integers and strings by Arrow
    casts, anything else value by value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return list(json_strings(column).to_pylist())
    bounds = pc.min_max(column).values() if pa.types.is_integer(kind) else None
    safe = bounds is None or all(b.as_py() is None or abs(b.as_py()) < 2**53 for b in bounds)
    if pa.types.is_boolean(kind) or (pa.types.is_integer(kind) and safe):
        return list(pc.fill_null(pc.cast(column, pa.string()), "null").to_pylist())
    return [canonical_output(value) for value in column.to_pylist()]


def pseudonyms(column: pa.ChunkedArray, pseudonym: Callable[[str], str]) -> list[str | None]:
    """The pseudonym of every subject of a column, each distinct subject hashed once."""
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(pc.cast(column, pa.string())).combine_chunks()
    hashed = pa.array([pseudonym(v) for v in encoded.dictionary.to_pylist()], pa.string())
    return list(hashed.take(encoded.indices).to_pylist())


def normalise_time(value: Any) -> str:
    """An RFC 3339 instant (string or aware datetime) in the one stored form: UTC, µs, ``Z``."""
    parsed = value
    if isinstance(value, str):
        if _TIME.fullmatch(value):
            return value
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
    if not isinstance(parsed, datetime) or parsed.tzinfo is None:
        raise UsageError(  # the value as given, not what parsing made of it: that is what the user can find
            f"decision time {value!r} is not an RFC 3339 time with a zone", hint="e.g. 2026-01-31T12:00:00Z"
        )
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_id(decision_id: object) -> str:
    if not isinstance(decision_id, str) or not decision_id or len(decision_id) > MAX_ID:
        raise UsageError(f"decision id {decision_id!r} is not valid", hint=f"give a string of 1–{MAX_ID} characters")
    return decision_id


# -- inputs ----------------------------------------------------------------------------------------------


def inputs_of(table: pa.Table, *, keep: bool) -> tuple[list[str], list[bytes] | None]:
    """Record fingerprints of every row (the inputs of one decision a row) and, when ``keep``, each row
    as a JSON object (keys in column order, which is usually the model's feature order) to encrypt."""
    from mlcustody.storage.records.fingerprint import fingerprints

    digests = [str(d) for d in fingerprints(table).to_pylist()]
    if not keep:
        return digests, None
    if table.num_columns == 0 or table.num_rows == 0:
        return digests, [b"{}"] * table.num_rows
    import polars as pl

    text = pl.DataFrame(table).write_ndjson()  # the columns in the order given: the model's feature order
    return digests, [line.encode("utf-8") for line in text.splitlines()]


def inputs_of_rows(rows: Sequence[Mapping[str, Any]], *, keep: bool) -> tuple[list[str], list[bytes] | None]:
    """``inputs_of`` for mappings: rows with the same columns are taken as one table (a row whose
    values do not fit one Arrow type with the others' is taken alone)."""
    import pyarrow as pa

    groups: dict[tuple[str, ...], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(tuple(row), []).append(i)
    digests: list[str] = [""] * len(rows)
    plain: list[bytes] = [b""] * len(rows)
    for members in groups.values():
        try:
            tables = [(members, pa.Table.from_pylist([dict(rows[i]) for i in members]))]
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            tables = [([i], pa.Table.from_pylist([dict(rows[i])])) for i in members]
        for where, table in tables:
            found, texts = inputs_of(table, keep=keep)
            for n, i in enumerate(where):
                digests[i] = found[n]
                if texts is not None:
                    plain[i] = texts[n]
    return digests, plain if keep else None


# -- columns of a frame ----------------------------------------------------------------------------------


def ids_column(table: pa.Table, column: str, new_id: Callable[[], str], where: Callable[[int], str]) -> list[str]:
    """The decision ids of ``column`` (generated when there is none), each of 1–200 characters."""
    import pyarrow.compute as pc

    if column not in table.column_names:
        return [new_id() for _ in range(table.num_rows)]
    ids = pc.cast(table.column(column), "string")
    length = pc.fill_null(pc.utf8_length(ids), 0)
    bad = pc.or_(pc.equal(length, 0), pc.greater(length, MAX_ID))
    if pc.any(bad).as_py():
        first = pc.index(bad, True).as_py()
        raise UsageError(
            f"{where(first)}: no valid decision id in column {column!r}",
            hint=f"give every decision an id of 1–{MAX_ID} characters",
        )
    return list(ids.to_pylist())


def times_column(table: pa.Table, column: str | None, where: Callable[[int], str]) -> list[str]:
    """The times of ``column`` in the stored form (now when there is no time column)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column is None or column not in table.column_names:
        return [utc_now()] * table.num_rows
    values = table.column(column)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        stored = pc.fill_null(pc.match_substring_regex(values, f"^{_TIME.pattern}$"), False)
        if pc.all(stored).as_py():
            return list(values.to_pylist())
    found = []
    for i, value in enumerate(values.to_pylist()):
        try:
            found.append(normalise_time(value))
        except UsageError as exc:
            raise UsageError(f"{where(i)}: {exc.message}", hint=exc.hint) from None
    return found


def rows_of(features: Any) -> list[dict[str, Any]]:
    """The rows of what a model's predict receives: a frame, a list of mappings, or a 2-D array."""
    kind = type(features)
    if kind.__name__ in ("DataFrame", "Table", "RecordBatch"):
        from mlcustody.storage.records.fingerprint import to_arrow

        return list(to_arrow(features).to_pylist())
    if isinstance(features, Mapping):
        return [dict(features)]
    rows = features.tolist() if hasattr(features, "tolist") else list(features)
    return [dict(r) if isinstance(r, Mapping) else {f"x{j}": v for j, v in enumerate(list_of(r))} for r in rows]


def list_of(value: Any) -> list[Any]:
    """A model's outputs as a list: one item per row."""
    if hasattr(value, "tolist"):
        found = value.tolist()
        return found if isinstance(found, list) else [found]
    if hasattr(value, "to_pylist"):
        return list(value.to_pylist())
    return list(value) if isinstance(value, list | tuple) else [value]
