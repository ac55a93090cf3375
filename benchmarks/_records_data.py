"""Deterministic tabular data for bench_records.py: a 10-column table and a second version with 1% changes.

The table is generated chunk by chunk from a seeded numpy generator (chunk ``k`` always comes from the
seed ``[seed, k]``), so the data is the same on every run and machine, and memory stays bounded by one
chunk however many rows are written. Columns: ``id`` (int64, unique, the record key), three float64
columns, two int64 columns, a low- and a high-cardinality string, a timestamp and a boolean; about 2%
of the values of every column except ``id``, ``n1`` and ``name`` are null.

Version 2 takes every chunk of version 1 and, from a second seed, edits 0.6% of its rows (one value
each, always to a different value), deletes 0.2% and inserts 0.2% new rows (ids beyond those of
version 1) at random positions: 1% of the rows change, and the expected record diff is known exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

CHUNK_ROWS = 1_000_000  # rows per generated chunk = rows per Parquet row group
NULL_FRACTION = 0.02
EDIT_FRACTION = 0.006
DELETE_FRACTION = 0.002
INSERT_FRACTION = 0.002
SEED = 20_240_601

_EPOCH_2020_US = 1_577_836_800_000_000
_SPAN_US = 5 * 365 * 86_400 * 1_000_000  # five years of microseconds
_CATEGORIES = pa.array(
    [
        "retail",
        "wholesale",
        "online",
        "partner",
        "staff",
        "export",
        "import",
        "refund",
        "credit",
        "debit",
        "promo",
        "other",
    ],
    pa.string(),
)
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("amount", pa.float64()),
        ("price", pa.float64()),
        ("score", pa.float64()),
        ("n1", pa.int64()),
        ("n2", pa.int64()),
        ("category", pa.string()),
        ("name", pa.string()),
        ("ts", pa.timestamp("us")),
        ("flag", pa.bool_()),
    ]
)


@dataclass
class Columns:
    """One chunk as numpy arrays (strings as integer codes) with a null mask per nullable column."""

    values: dict[str, np.ndarray]
    nulls: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.values["id"])

    def take(self, index: np.ndarray) -> Columns:
        return Columns(
            {name: array[index] for name, array in self.values.items()},
            {name: mask[index] for name, mask in self.nulls.items()},
        )

    @staticmethod
    def concat(parts: list[Columns]) -> Columns:
        return Columns(
            {name: np.concatenate([p.values[name] for p in parts]) for name in parts[0].values},
            {name: np.concatenate([p.nulls[name] for p in parts]) for name in parts[0].nulls},
        )

    def to_arrow(self) -> pa.Table:
        v, m = self.values, self.nulls
        name_numbers = pa.array(v["name"], pa.int64())
        names = pc.binary_join_element_wise("cust-", pc.cast(name_numbers, pa.string()), "")
        category = _CATEGORIES.take(pa.array(v["category"], pa.int32(), mask=m["category"]))
        arrays = [
            pa.array(v["id"], pa.int64()),
            pa.array(v["amount"], pa.float64(), mask=m["amount"]),
            pa.array(v["price"], pa.float64(), mask=m["price"]),
            pa.array(v["score"], pa.float64(), mask=m["score"]),
            pa.array(v["n1"], pa.int64()),
            pa.array(v["n2"], pa.int64(), mask=m["n2"]),
            category,
            names,
            pa.array(v["ts"], pa.timestamp("us"), mask=m["ts"]),
            pa.array(v["flag"], pa.bool_(), mask=m["flag"]),
        ]
        return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _rows(rng: np.random.Generator, ids: np.ndarray) -> Columns:
    n = len(ids)
    values: dict[str, np.ndarray] = {
        "id": ids.astype(np.int64),
        "amount": rng.normal(0.0, 1_000.0, n),
        "price": np.round(rng.uniform(0.0, 10_000.0, n), 2),
        "score": rng.exponential(1.0, n),
        "n1": rng.integers(0, 1_000, n, dtype=np.int64),
        "n2": rng.integers(-(10**9), 10**9, n, dtype=np.int64),
        "category": rng.integers(0, len(_CATEGORIES), n, dtype=np.int32),
        "name": rng.integers(0, 10**12, n, dtype=np.int64),
        "ts": _EPOCH_2020_US + rng.integers(0, _SPAN_US, n, dtype=np.int64),
        "flag": rng.random(n) < 0.5,
    }
    nullable = ("amount", "price", "score", "n2", "category", "ts", "flag")
    nulls = {name: rng.random(n) < NULL_FRACTION for name in nullable}
    return Columns(values, nulls)


def chunk_v1(rows: int, k: int, seed: int = SEED) -> Columns:
    start = k * CHUNK_ROWS
    size = min(CHUNK_ROWS, rows - start)
    return _rows(np.random.default_rng([seed, k]), np.arange(start + 1, start + size + 1, dtype=np.int64))


@dataclass
class Changes:
    """What version 2 changed, so the diff can be checked against the construction."""

    edited: int = 0
    deleted: int = 0
    inserted: int = 0
    rows_v2: int = 0
    sample_edited: list[int] = field(default_factory=list)
    sample_inserted: list[int] = field(default_factory=list)
    sample_deleted: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "edited": self.edited,
            "deleted": self.deleted,
            "inserted": self.inserted,
            "rows_v2": self.rows_v2,
            "sample_edited": self.sample_edited,
            "sample_inserted": self.sample_inserted,
            "sample_deleted": self.sample_deleted,
        }


def _edit(rng: np.random.Generator, cols: Columns, rows: np.ndarray) -> None:
    """Change exactly one value of each of ``rows``, always to a different value."""
    kind = rng.integers(0, 5, len(rows))
    v, m = cols.values, cols.nulls
    amount = rows[kind == 0]  # a null amount becomes a number; a number moves by 0.5
    v["amount"][amount] = np.where(m["amount"][amount], 1.0, v["amount"][amount] + 0.5)
    m["amount"][amount] = False
    n1 = rows[kind == 1]
    v["n1"][n1] = v["n1"][n1] + 1
    name = rows[kind == 2]
    v["name"][name] = v["name"][name] + 1
    ts = rows[kind == 3]
    v["ts"][ts] = np.where(m["ts"][ts], _EPOCH_2020_US, v["ts"][ts] + 1_000_000)
    m["ts"][ts] = False
    category = rows[kind == 4]
    v["category"][category] = np.where(m["category"][category], 0, (v["category"][category] + 1) % len(_CATEGORIES))
    m["category"][category] = False


def chunk_v2(rows: int, k: int, changes: Changes, seed: int = SEED) -> Columns:
    """Chunk ``k`` of version 2; ``changes`` accumulates the counts (chunks must come in order)."""
    cols = chunk_v1(rows, k, seed)
    rng = np.random.default_rng([seed, 2, k])
    n = len(cols)
    n_edit, n_del, n_ins = round(n * EDIT_FRACTION), round(n * DELETE_FRACTION), round(n * INSERT_FRACTION)
    picked = rng.choice(n, n_edit + n_del, replace=False)
    edit_rows, delete_rows = np.sort(picked[:n_edit]), np.sort(picked[n_edit:])
    _edit(rng, cols, edit_rows)
    kept = np.setdiff1d(np.arange(n), delete_rows, assume_unique=True)
    first_new = rows + 1 + changes.inserted  # new ids lie beyond every id of version 1
    inserted = _rows(rng, np.arange(first_new, first_new + n_ins, dtype=np.int64))
    # Insert the new rows at random positions among the kept ones.
    positions = np.sort(rng.integers(0, len(kept) + 1, n_ins))
    order = np.insert(np.arange(len(kept)), positions, np.arange(len(kept), len(kept) + n_ins))
    out = Columns.concat([cols.take(kept), inserted]).take(order)
    if k == 0 or len(changes.sample_edited) < 5:
        changes.sample_edited += cols.values["id"][edit_rows[:2]].tolist()
        changes.sample_deleted += cols.values["id"][delete_rows[:2]].tolist()
        changes.sample_inserted += inserted.values["id"][:2].tolist()
    changes.edited += n_edit
    changes.deleted += n_del
    changes.inserted += n_ins
    changes.rows_v2 += len(out)
    return out


def write_version(rows: int, version: int, parquet: Path, csv: Path, seed: int = SEED) -> Changes:
    """Write version 1 or 2 as Parquet (one row group per chunk) and as CSV, chunk by chunk."""
    changes = Changes()
    parquet.parent.mkdir(parents=True, exist_ok=True)
    csv.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(parquet, SCHEMA) as pw, pacsv.CSVWriter(csv, SCHEMA) as cw:
        for k in range((rows + CHUNK_ROWS - 1) // CHUNK_ROWS):
            cols = chunk_v1(rows, k, seed) if version == 1 else chunk_v2(rows, k, changes, seed)
            table = cols.to_arrow()
            pw.write_table(table, row_group_size=len(table))
            cw.write_table(table)
            if version == 1:
                changes.rows_v2 += len(table)
    return changes
