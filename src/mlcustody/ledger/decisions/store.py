"""Where the decision log lives: Parquet segments, an id index and the stored Merkle tree.

A *segment* is one Parquet blob (``decision_segments.data``) holding consecutive decisions, every
column of them: ids, times, digests, the canonical output, the encrypted inputs and the leaf hash.
It is written once, in the transaction that appends its decisions, and never changed. Segments sit
in the metadata database rather than as separate objects so that a segment, its index rows and the
tree's new tiles commit together or not at all, on SQLite and PostgreSQL alike.

The ``decisions`` table is only an index (position, id, subject number) for lookups by id; subject
postings (``decision_postings``, appended, then merged sorted) find a subject's decisions; other
filters (model, time) scan the segments' columns. ``decision_tiles`` keeps the root
of every completed perfect subtree of ``TILE_HEIGHT`` (4,096 leaves) and each segment row the tree's right edge after it
(``tlog.Frontier``): appending resumes from the last frontier, and a proof reads at most two tiles'
leaves plus the tile roots (``tlog.TiledTree``), whatever the log's size.
"""

from __future__ import annotations

import hashlib
import io
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring as _quote  # RFC 8785's string escaping, in C
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody._canonical import utc_now
from mlcustody.ledger import tlog
from mlcustody.ledger.decisions.batch import json_strings
from mlcustody.metadata.schema import (
    decision_postings,
    decision_postings_new,
    decision_segments,
    decision_tiles,
    decisions,
)

TILE_HEIGHT = 12
TILE = 1 << TILE_HEIGHT
ROW_GROUP = 1024  # rows per Parquet row group: reading one decision decodes at most this many rows
SEGMENT_ROWS = TILE  # the most decisions one segment holds (a large batch is cut into several)
MERGE_POSTINGS = 1_000_000  # appended subject postings merged into the clustered table at once

SCHEMA = pa.schema(
    [
        ("position", pa.int64()),
        ("decision_id", pa.string()),
        ("time", pa.string()),
        ("model", pa.string()),
        ("version", pa.int32()),
        ("input_digest", pa.string()),
        ("output", pa.string()),
        ("subject", pa.string()),
        ("payload", pa.binary()),
        ("payload_digest", pa.string()),
        ("payload_key", pa.int64()),
        ("entry_hash", pa.binary(32)),
    ]
)
_UNCOMPRESSED = {"payload", "entry_hash"}  # ciphertext and hashes do not compress
_COMPRESSION = {name: "none" if name in _UNCOMPRESSED else "zstd" for name in SCHEMA.names}
_REPEATED = ["time", "model", "version", "output", "subject", "payload_key"]  # worth a dictionary page


@dataclass(frozen=True)
class Tail:
    """The end of the log: its size and the tree's right edge there."""

    size: int
    frontier: bytes


# -- entries, column-wise -------------------------------------------------------------------------------


def entry_bytes(
    decision_id: str,
    time: str,
    model: str,
    version: int,
    input_digest: str,
    output_digest: str,
    payload_digest: str | None,
    subject: str | None,
) -> bytes:
    """The canonical entry: RFC 8785 JSON of the decision's ids and digests (what the leaf hashes).

    Written directly (key order is fixed, strings escaped as RFC 8785 does), ten times faster than
    the general encoder; a test checks it equals ``canonical_json`` of the same object."""
    return (
        f'{{"id":{_quote(decision_id)},"input_digest":{_quote(input_digest)},"model":{_quote(model)},'
        f'"output_digest":{_quote(output_digest)},"payload_digest":{_quote_or_null(payload_digest)},'
        f'"subject":{_quote_or_null(subject)},"time":{_quote(time)},"version":{int(version)}}}'
    ).encode()


def _quote_or_null(text: str | None) -> str:
    return "null" if text is None else _quote(text)


# The entry's keys in RFC 8785 order, the segment column each comes from, and whether its values may
# need escaping (ids and model names may; digests, subjects in hex and checked times do not).
_ENTRY = (
    ("id", "decision_id", True),
    ("input_digest", "input_digest", False),
    ("model", "model", True),
    ("output_digest", None, False),
    ("payload_digest", "payload_digest", False),
    ("subject", "subject", False),
    ("time", "time", False),
)


def entries(table: pa.Table, output_digests: Sequence[str]) -> list[bytes]:
    """The canonical entry of every row (what ``entry_bytes`` writes for one), built
    column by column in Arrow: a test checks both agree byte for byte."""
    parts: list[Any] = []
    for key, column, escaped in _ENTRY:
        values = table.column(column) if column else pa.array(output_digests, pa.string())
        parts += ("{" if not parts else ",") + f'"{key}":', json_strings(values) if escaped else _quoted(values)
    parts += [',"version":', pc.cast(table.column("version"), pa.string()), "}"]
    return list(pc.cast(pc.binary_join_element_wise(*parts, ""), pa.binary()).to_pylist())


def _quoted(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Hex digits or a stored time as a JSON string (``null`` for null); a value that is not (a row
    altered in a segment) goes through ``json_strings``, so the entry is still RFC 8785."""
    plain = pc.match_substring_regex(column, r"^[0-9a-fA-F]*$|^[0-9T:.Z-]*$")
    if not pc.all(pc.fill_null(plain, True)).as_py():
        return json_strings(column)
    return pc.fill_null(pc.binary_join_element_wise('"', column, '"', ""), "null")


def leaf_hashes(entry_list: Sequence[bytes]) -> list[bytes]:
    sha256 = hashlib.sha256
    return [sha256(b"\x00" + entry).digest() for entry in entry_list]


# -- writing ---------------------------------------------------------------------------------------------


def tail(conn: Connection) -> Tail:
    row = conn.execute(
        sa.select(decision_segments.c.first, decision_segments.c.rows, decision_segments.c.frontier)
        .order_by(decision_segments.c.first.desc())
        .limit(1)
    ).first()
    return Tail(0, b"") if row is None else Tail(row.first + row.rows, bytes(row.frontier))


def encode(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(
        table.cast(SCHEMA), sink, row_group_size=ROW_GROUP, compression=_COMPRESSION, use_dictionary=_REPEATED
    )
    return sink.getvalue()


@dataclass(frozen=True)
class Segment:
    """One sealed segment ready to store: where it starts, its Parquet blob, the index columns of its
    decisions (id, subject row), the tree's right edge after it and the tiles it completed."""

    first: int
    data: bytes
    ids: list[str]
    subject_ids: list[int | None]
    frontier: bytes
    tiles: list[tuple[int, bytes]]


def append(conn: Connection, segment: Segment) -> None:
    """Store one segment, its index rows and the tiles it completed, in the caller's transaction."""
    count = len(segment.ids)
    conn.execute(
        decision_segments.insert().values(
            first=segment.first, rows=count, data=segment.data, frontier=segment.frontier, created_at=utc_now()
        )
    )
    if segment.tiles:
        conn.execute(decision_tiles.insert(), [{"tile": i, "root": root.hex()} for i, root in segment.tiles])
    positions = list(range(segment.first, segment.first + count))
    _insert_many(conn, decisions, {"position": positions, "decision_id": segment.ids, "subject": segment.subject_ids})
    postings = [(s, p) for s, p in zip(segment.subject_ids, positions, strict=True) if s is not None]
    if postings:
        subjects, where = zip(*postings, strict=True)
        _insert_many(conn, decision_postings_new, {"subject": list(subjects), "position": list(where)})


def merge_postings(conn: Connection, at: int = MERGE_POSTINGS) -> None:
    """Write the appended postings, sorted, as the next run of the clustered table once there are
    ``at`` of them: the new keys all sort after the old ones, so nothing written before is rewritten."""
    pending = conn.execute(sa.select(sa.func.count()).select_from(decision_postings_new)).scalar_one()
    if pending < at:
        return
    run = conn.execute(sa.select(sa.func.coalesce(sa.func.max(decision_postings.c.run) + 1, 0))).scalar_one()
    columns = [decision_postings_new.c.subject, decision_postings_new.c.position]
    sorted_rows = sa.select(sa.literal(run, sa.Integer), *columns).order_by(*columns)
    conn.execute(decision_postings.insert().from_select(["run", "subject", "position"], sorted_rows))
    conn.execute(decision_postings_new.delete())


def subject_positions(conn: Connection, subject: int) -> list[int]:
    """Where the decisions of one subject row are, in log order: one index seek per merged run, and a
    scan of the postings not merged yet."""
    runs = conn.execute(sa.select(sa.func.max(decision_postings.c.run))).scalar()
    merged = decision_postings.c.position
    query = sa.select(merged).where(
        decision_postings.c.run == sa.bindparam("run"), decision_postings.c.subject == subject
    )
    found: list[int] = []
    for run in range(0 if runs is None else runs + 1):
        found += conn.execute(query, {"run": run}).scalars()
    new = decision_postings_new
    found += conn.execute(sa.select(new.c.position).where(new.c.subject == subject)).scalars()
    return sorted(found)


def _insert_many(conn: Connection, table: sa.Table, columns: dict[str, list[Any]]) -> None:
    """Insert rows given column by column, on the driver's own cursor: ``COPY`` on PostgreSQL, else
    its executemany of a statement compiled once, fed by an iterator of tuples. SQLAlchemy's Core
    path, and even ``exec_driver_sql``, build and process parameters row by row, which costs more
    than the insert itself (and holds the GIL the writer's other thread needs)."""
    names = list(columns)
    postgres = conn.dialect.name == "postgresql"
    compiled = table.insert().compile(dialect=conn.dialect, column_keys=names)
    statement = f"COPY {table.name} ({', '.join(names)}) FROM STDIN" if postgres else str(compiled)
    cursor: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]  # the driver's
    try:
        if postgres:
            _copy(cursor, statement, columns)
        elif compiled.positional:
            cursor.executemany(statement, zip(*(columns[k] for k in compiled.positiontup or []), strict=True))
        else:  # a named paramstyle: the driver takes mappings
            cursor.executemany(
                statement, (dict(zip(names, r, strict=True)) for r in zip(*columns.values(), strict=True))
            )
    except conn.dialect.dbapi.IntegrityError as exc:  # type: ignore[union-attr]  # as SQLAlchemy raises it
        raise sa.exc.IntegrityError(statement, None, exc) from exc
    finally:
        cursor.close()


def _copy(cursor: Any, statement: str, columns: dict[str, list[Any]]) -> None:
    with cursor.copy(statement) as copy:
        for row in zip(*columns.values(), strict=True):
            copy.write_row(row)


# -- reading ---------------------------------------------------------------------------------------------


def decode(data: bytes, columns: Sequence[str] | None = None) -> pa.Table:
    return pq.read_table(pa.BufferReader(data), columns=list(columns) if columns else None)


def rows(conn: Connection, positions: Sequence[int], columns: Sequence[str] | None = None) -> pa.Table:
    """The stored rows at ``positions`` (in that order), decoding only the row groups that hold them."""
    names = list(columns or SCHEMA.names)
    read = names if "position" in names else ["position", *names]
    holder = sa.select(sa.func.max(decision_segments.c.first)).where(decision_segments.c.first <= sa.bindparam("p"))
    by_segment: dict[int, set[int]] = defaultdict(set)
    for position in positions:  # one index seek each, whatever the number of segments
        by_segment[conn.execute(holder, {"p": position}).scalar_one()].add(position)
    parts = [SCHEMA.empty_table().select(read)]
    for first, wanted in by_segment.items():
        data = conn.execute(sa.select(decision_segments.c.data).where(decision_segments.c.first == first)).scalar_one()
        groups = sorted({(p - first) // ROW_GROUP for p in wanted})
        parts.append(pq.ParquetFile(pa.BufferReader(bytes(data))).read_row_groups(groups, columns=read))
    table = pa.concat_tables(parts)
    index = {p: i for i, p in enumerate(table.column("position").to_pylist())}
    return table.take(pa.array([index[p] for p in positions], pa.int64())).select(names)


def span(conn: Connection, low: int, high: int, columns: Sequence[str]) -> pa.Table:
    """The stored rows at positions ``low`` to ``high - 1``, in order."""
    query = sa.select(decision_segments.c.first, decision_segments.c.data).where(
        decision_segments.c.first < high, decision_segments.c.first + decision_segments.c.rows > low
    )
    parts = [SCHEMA.empty_table().select(list(columns))]
    for row in conn.execute(query.order_by(decision_segments.c.first)):
        table = decode(bytes(row.data), columns)
        parts.append(table.slice(max(0, low - row.first), high - max(low, row.first)))
    return pa.concat_tables(parts)


def scan(conn: Connection, columns: Sequence[str], keep: Callable[[pa.Table], pa.Array], limit: int | None) -> pa.Table:
    """The rows, in log order, for which ``keep`` (a boolean mask over a segment's ``columns``) holds,
    up to ``limit``: reads only those columns, segment by segment, and stops at the limit."""
    parts = [SCHEMA.empty_table().select(list(columns))]
    found = 0
    for _, _, table in segments(conn, columns):
        if table is None:
            continue
        kept = table.filter(keep(table))
        parts.append(kept)
        found += kept.num_rows
        if limit is not None and found >= limit:
            break
    whole = pa.concat_tables(parts)
    return whole if limit is None else whole.slice(0, limit)


def segments(conn: Connection, columns: Sequence[str] | None = None) -> Iterator[tuple[int, int, pa.Table | None]]:
    """Every segment in log order as (first, count, rows); rows is None for a blob that cannot be read."""
    query = sa.select(decision_segments.c.first, decision_segments.c.rows, decision_segments.c.data)
    for row in conn.execution_options(yield_per=8).execute(query.order_by(decision_segments.c.first)):
        try:
            table: pa.Table | None = decode(bytes(row.data), columns)
        except (pa.ArrowInvalid, OSError):
            table = None
        yield row.first, row.rows, table


def tree(conn: Connection, size: int) -> tlog.TiledTree:
    """The log's tree at ``size`` from the stored tiles, reading leaves only where a proof needs them."""
    query = sa.select(decision_tiles.c.root).where(decision_tiles.c.tile < size >> TILE_HEIGHT)
    tiles = [bytes.fromhex(root) for root in conn.execute(query.order_by(decision_tiles.c.tile)).scalars()]

    def tile_leaves(tile: int) -> list[bytes]:
        low, high = tile * TILE, min((tile + 1) * TILE, size)
        return list(span(conn, low, high, ["entry_hash"]).column("entry_hash").to_pylist())

    return tlog.TiledTree(size, TILE_HEIGHT, tiles, tile_leaves)
