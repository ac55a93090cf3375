"""Sealing segments of the decision log: the per-decision work, done on plain data in worker processes.

Encrypting every decision's inputs, digesting outputs and ciphertexts, writing the canonical entries,
hashing the leaves and encoding the Parquet blob cost about seven microseconds a decision, nearly all
of it Python holding the GIL. ``seal`` therefore takes and returns plain data (no connection, no
tree): the writer sends the segments of a large batch to a pool of worker processes, one per core,
and only appends the leaves to its tree and stores the blobs itself, in log order. Small batches are
sealed in the writer's own process by the same function.
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from mlcustody.ledger import tlog
from mlcustody.ledger.decisions import store as decision_store
from mlcustody.ledger.decisions import subjects as decision_subjects
from mlcustody.ledger.decisions.batch import Batch

AHEAD = 8  # segments sealed ahead of the writer (about 12 MB of blobs)
WATCH_SECONDS = 0.1  # how often a worker checks that its writer is alive
POOL_FROM = 32_768  # smaller batches (and ``record`` flushes) are sealed in process: no pool to start


@dataclass(frozen=True)
class Job:
    """One segment to seal: its decisions (``batch``), where it starts, and each decision's subject row
    with the data keys of those rows (a shredded subject has none)."""

    first: int
    model: str
    batch: Batch
    key_rows: list[int]
    keys: dict[int, bytes]

    @property
    def subject_ids(self) -> list[int | None]:
        """The subject row of each decision for the index (None where it has no subject)."""
        return [r if s is not None else None for r, s in zip(self.key_rows, self.batch.subjects, strict=True)]


@dataclass(frozen=True)
class Sealed:
    """A sealed segment: its Parquet blob and its leaf hashes, 32 bytes each, in order."""

    data: bytes
    leaves: bytes
    tile_root: bytes | None = None  # the root over the leaves when they are exactly one tile

    def leaf_list(self) -> list[bytes]:
        return [self.leaves[i : i + 32] for i in range(0, len(self.leaves), 32)]

    def add_to(self, frontier: tlog.Frontier) -> None:
        """Append this segment's leaves to the writer's tree: a whole tile as its root, hashed by the
        worker that sealed it (4,095 hashes fewer on the writer, whose GIL is the ingest's bottleneck)."""
        if self.tile_root is not None:
            frontier.extend_perfect(self.tile_root, decision_store.TILE_HEIGHT)
        else:
            frontier.extend(self.leaf_list())


def seal(job: Job) -> Sealed:
    """Encrypt, digest, build the entries and leaves of one segment and encode it (``SCHEMA``)."""
    import pyarrow as pa

    batch, count, sha256 = job.batch, len(job.batch), hashlib.sha256
    payloads: list[bytes | None] = [None] * count
    if batch.plaintexts is not None:
        keys = [job.keys.get(row) for row in job.key_rows]
        payloads = decision_subjects.encrypt(keys, batch.ids, batch.plaintexts)
    table = pa.table(
        {
            "position": pa.array(range(job.first, job.first + count), pa.int64()),
            "decision_id": pa.array(batch.ids, pa.string()),
            "time": pa.array(batch.times, pa.string()),
            "model": pa.array([job.model] * count, pa.string()),
            "version": pa.array(batch.versions, pa.int32()),
            "input_digest": pa.array(batch.input_digests, pa.string()),
            "output": pa.array(batch.outputs, pa.string()),
            "subject": pa.array(batch.subjects, pa.string()),
            "payload": pa.array(payloads, pa.binary()),
            "payload_digest": pa.array([None if p is None else sha256(p).hexdigest() for p in payloads], pa.string()),
            "payload_key": pa.array(
                [row if p is not None else None for row, p in zip(job.key_rows, payloads, strict=True)], pa.int64()
            ),
        }
    )
    distinct = {out: sha256(out.encode("utf-8")).hexdigest() for out in set(batch.outputs)}  # outputs repeat
    output_digests = [distinct[out] for out in batch.outputs]
    leaves = decision_store.leaf_hashes(decision_store.entries(table, output_digests))
    table = table.append_column("entry_hash", pa.array(leaves, pa.binary(32)))
    whole_tile = count == decision_store.TILE and job.first % decision_store.TILE == 0
    return Sealed(decision_store.encode(table), b"".join(leaves), tlog.perfect_root(leaves) if whole_tile else None)


def jobs(first: int, model: str, batch: Batch, subject_rows: dict[str, tuple[int, bytes | None]]) -> Iterator[Job]:
    """``batch`` cut into segments from position ``first``, each with the keys it needs. The first
    segment ends at the next tile boundary, so that every later one is a whole tile (``Sealed.add_to``)."""
    step = decision_store.SEGMENT_ROWS
    lead = (-first) % step
    cuts = [0, *range(lead or step, len(batch), step), len(batch)]
    for start, stop in itertools.pairwise(cuts):
        if start == stop:  # an empty batch
            continue
        part = batch.slice(start, stop).resolved()  # its inputs computed now, while earlier ones are sealed
        # each distinct subject looked up once (a segment holds a few hundred, not 4,096)
        pairs = {s: subject_rows[s if s is not None else decision_subjects.SHARED] for s in set(part.subjects)}
        keys = {row: key for row, key in pairs.values() if key is not None}
        rows = {s: row for s, (row, _) in pairs.items()}
        yield Job(first + start, model, part, [rows[s] for s in part.subjects], keys)


def seal_all(pool: Executor | None, work: Iterable[Job]) -> Iterator[tuple[Job, Sealed]]:
    """Each job with its sealed segment, in order: by the pool when given (at most ``AHEAD`` segments
    in flight, so a batch of millions never holds all its blobs at once), else here."""
    if pool is None:
        yield from ((job, seal(job)) for job in work)
        return
    flight: deque[tuple[Job, Future[Sealed]]] = deque()
    for job in work:
        flight.append((job, pool.submit(seal, job)))
        if len(flight) > AHEAD:
            done, sealed = flight.popleft()
            yield done, sealed.result()
    while flight:
        done, sealed = flight.popleft()
        yield done, sealed.result()


def start_pool() -> Executor | None:
    """Worker processes for sealing, one per core, started now (None on one core, or where processes
    cannot be forked).

    ``fork``, because ``spawn`` and ``forkserver`` re-import the caller's main script in each worker,
    which breaks any serving script without an ``if __name__ == "__main__"`` guard. The workers are
    forked here, before the writer opens its transaction and its storing thread, and only ever run
    ``seal`` (pyarrow, which re-creates its thread pool after a fork, cryptography and hashlib); they
    leave through ``os._exit``, so nothing inherited from the writer (database connections) is closed
    by them. Each worker exits as soon as the writer dies (``follow_writer``)."""
    if multiprocessing.cpu_count() < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return None
    try:
        pool = ProcessPoolExecutor(
            max_workers=multiprocessing.cpu_count(),
            mp_context=multiprocessing.get_context("fork"),
            initializer=follow_writer,
            initargs=(os.getpid(),),
        )
        pool.submit(int).result()  # forks every worker now (fork pools start all workers at once)
    except (OSError, BrokenProcessPool):
        return None
    return pool


def follow_writer(writer: int) -> None:
    """Worker initializer: exit once the writer that forked this worker is gone (re-parented).

    A worker does not notice by itself when its writer is SIGKILLed: it blocks reading the call
    queue, whose write end it inherited too, so it never reads end-of-file and lives for ever. It
    also holds the writer's inherited database sockets: on PostgreSQL the server then never learns
    that the writer's transaction died, and the transaction's advisory lock blocks every later
    writer of the store. (``PR_SET_PDEATHSIG`` would fire when the forking *thread* ends, which in
    a serving process may be long before the writer does.)"""

    def watch() -> None:
        while os.getppid() == writer:
            time.sleep(WATCH_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="follow-writer", daemon=True).start()
