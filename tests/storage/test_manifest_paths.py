"""The two ways a record manifest is built — from batches held in memory, or streamed through scratch
Parquet files and sorted out of core — must give the same manifest object (same digest) and the same
metadata (count, columns, statistics). ``in_memory_bytes=0`` forces the streamed path."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcustody.errors import UsageError
from mlcustody.storage.objects import ObjectStore
from mlcustody.storage.records import manifest, readers
from mlcustody.storage.records import table as record_table
from mlcustody.storage.records.manifest import RecordSource


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    objects = ObjectStore(tmp_path / "store")
    objects.create()
    return objects


def _both(
    store: ObjectStore, sources: Sequence[RecordSource], fmt: str, key: Sequence[str] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The metadata of the streamed build and of the in-memory build of the same sources; the records
    the in-memory build gives (when it read any) are those read back from the stored bytes
    (``custody run`` links them)."""
    given: list[pa.Table] = []
    streamed = manifest.build(sources, fmt, key, store, in_memory_bytes=0, on_records=given.append)
    assert not (given and streamed.count)  # streamed: the records are not in memory to give
    given.clear()
    held = manifest.build(sources, fmt, key, store, on_records=given.append)
    read_back = record_table.read_records(sources, fmt, key, manifest.values_schema(store.path(held.digest)))
    if held.count:
        assert len(given) == 1 and given[0].equals(read_back)
    return streamed.as_meta(), held.as_meta()


def _same(streamed: dict[str, Any], held: dict[str, Any]) -> None:
    assert json.dumps(held, sort_keys=True) == json.dumps(streamed, sort_keys=True)


def _loans_csv(path: Path, n: int, seed: int = 3, *, late_text: bool = False) -> None:
    rng = random.Random(seed)
    lines = ["loan_id,region,income,amount,approved,note"]
    for i in range(n):
        income = "" if rng.random() < 0.05 else f"{rng.lognormvariate(10, 0.6):.2f}"
        amount = "unknown" if late_text and i == n - 3 else str(rng.randint(100, 90_000))
        note = rng.choice(["", "ok", '"said ""no"", twice"', '"two\nlines"'])
        lines.append(f"L-{rng.randrange(10**9):09d}-{i},{rng.choice('NSEW')},{income},{amount},{i % 3 == 0},{note}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("key", [None, ["loan_id"]])
def test_csv_in_memory_and_streamed_give_the_same_manifest(store: ObjectStore, tmp_path: Path, key: Any) -> None:
    path = tmp_path / "loans.csv"
    _loans_csv(path, 3_000)
    streamed, held = _both(store, [RecordSource("loans.csv", path)], "csv", key)
    _same(streamed, held)
    assert held["count"] == 3_000
    assert set(held["stats"]) == {"loan_id", "region", "income", "amount", "approved", "note"}
    assert held["stats"]["region"]["top"]  # a repetitive column: its top five was computed


def test_many_batches_and_a_late_widened_type(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small read batches (so the held rows are many Arrow chunks, the streamed values many row
    groups) and an ``unknown`` near the end that makes ``amount`` text and restarts the read."""
    monkeypatch.setattr(readers, "_CHUNK_BYTES", 16 << 10)
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    _loans_csv(first, 4_000, seed=5, late_text=True)
    _loans_csv(second, 1_500, seed=6)
    sources = [RecordSource("a.csv", first), RecordSource("b.csv", second)]
    streamed, held = _both(store, sources, "csv", None)
    _same(streamed, held)
    # Past the budget after a few batches: those held so far are written out, the rest streamed.
    midway = manifest.build(sources, "csv", None, store, in_memory_bytes=200 << 10).as_meta()
    _same(streamed, midway)
    assert {c["name"]: c["type"] for c in held["columns"]}["amount"] == "string"
    assert held["count"] == 5_500


def test_parquet_with_types_the_csv_reader_never_makes(store: ObjectStore, tmp_path: Path) -> None:
    rng = random.Random(9)
    n = 2_500
    table = pa.table(
        {
            "id": pa.array(range(n), pa.int32()),
            "score": pa.array([None if i % 17 == 0 else rng.gauss(0, 1) for i in range(n)], pa.float32()),
            "when": pa.array([1_700_000_000_000_000 + i * 997 for i in range(n)], pa.timestamp("us", tz="UTC")),
            "tags": pa.array([[rng.choice("abc")] * (i % 3) for i in range(n)], pa.list_(pa.string())),
            "blob": pa.array([bytes([i % 256]) * (i % 5) for i in range(n)], pa.binary()),
            "price": pa.array([i * 3 for i in range(n)], pa.decimal128(12, 2)),
        }
    )
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=700)
    for key in (None, ["id"]):
        streamed, held = _both(store, [RecordSource("t.parquet", path)], "parquet", key)
        _same(streamed, held)


def test_no_records(store: ObjectStore, tmp_path: Path) -> None:
    header_only, empty = tmp_path / "h.csv", tmp_path / "e.csv"
    header_only.write_text("a,b\n", encoding="utf-8")
    empty.write_bytes(b"")
    for sources in ([RecordSource("h.csv", header_only)], [RecordSource("e.csv", empty)]):
        streamed, held = _both(store, sources, "csv", None)
        _same(streamed, held)
        assert held["count"] == 0


def test_duplicate_keys_are_refused_the_same_way(store: ObjectStore, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("k,v\n" + "".join(f"{i % 40},{i}\n" for i in range(100)), encoding="utf-8")
    messages = []
    for budget in (0, None):
        with pytest.raises(UsageError) as refused:
            manifest.build([RecordSource("d.csv", path)], "csv", ["k"], store, in_memory_bytes=budget)
        messages.append(str(refused.value))
    assert messages[0] == messages[1] and messages[0].startswith("60 duplicate values of key k")
    assert not any(store.tmp_dir.iterdir())  # scratch space removed, nothing left behind


def test_a_build_that_fits_writes_no_scratch_parquet(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "loans.csv"
    _loans_csv(path, 500)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a scratch Parquet file was opened")

    monkeypatch.setattr(manifest.pq, "ParquetWriter", refuse)
    assert manifest.build([RecordSource("loans.csv", path)], "csv", ["loan_id"], store).count == 500
    with pytest.raises(AssertionError, match="scratch Parquet"):
        manifest.build([RecordSource("loans.csv", path)], "csv", ["loan_id"], store, in_memory_bytes=0)
