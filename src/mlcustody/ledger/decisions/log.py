"""The decision log: every prediction a deployed model made, in an append-only, signed Merkle log.

A decision sits at ``position`` — its leaf index in an RFC 6962 tree (SHA-256, ``tlog``), gap-free —
in a Parquet segment (``decision_store``). Its *entry* is the RFC 8785 canonical JSON of ids and
digests only::

    {id, time, model, version, input_digest, output_digest, payload_digest, subject}

``input_digest`` is the record fingerprint (docs/record-fingerprint.md) of the inputs as a one-row
record, ``output_digest`` the SHA-256 of the canonical JSON of the output, ``payload_digest`` the
SHA-256 of the encrypted inputs (so the entry commits to the ciphertext, and crypto-shredding leaves
the log verifiable), ``subject`` the HMAC-SHA256 of the subject id (``decision_subjects``). A signed
checkpoint (c2sp.org/tlog-checkpoint, Ed25519 key ``decision-log`` of ``ledger.keys``) seals the log
every N decisions or T seconds and on ``close``; a receipt for one decision is a c2sp.org/tlog-proof.
This module writes (``DecisionLog``) and holds the log key; ``decision_queries`` reads,
``decision_check.verify`` recomputes every entry, the tree and every checkpoint. See docs/decisions.md.

Over 400 lines on purpose: ``DecisionLog`` is one writer with one buffer, one transaction discipline
and one checkpoint clock; its batch, store, seal and subject work already live in the sibling
modules.
"""

from __future__ import annotations

import base64
import bisect
import logging
import os
import re
import socket
import threading
import time as clock
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody._canonical import utc_now
from mlcustody.errors import UsageError
from mlcustody.ledger import kek, keys, tlog
from mlcustody.ledger.decisions import anchor as decision_anchor
from mlcustody.ledger.decisions import resume as decision_resume
from mlcustody.ledger.decisions import seal as decision_seal
from mlcustody.ledger.decisions import store as decision_store
from mlcustody.ledger.decisions import subjects as decision_subjects
from mlcustody.ledger.decisions.batch import (
    Batch,
    canonical_output,
    check_id,
    ids_column,
    inputs_of_rows,
    list_of,
    normalise_time,
    outputs_column,
    pseudonyms,
    rows_of,
    times_column,
)
from mlcustody.ledger.registry import versions as registry
from mlcustody.metadata import audit
from mlcustody.metadata.schema import checkpoints, decisions

if TYPE_CHECKING:
    import pyarrow as pa

_log = logging.getLogger(__name__)
LOG_KEY_NAME = keys.LOG_KEY_NAME
LOG_KEY_TYPE = "ed25519"
ORIGIN_ROW = decision_anchor.ORIGIN_ROW  # store_info: the checkpoint origin line of this store's log
FLUSH_EVERY = 10_000
CHECKPOINT_EVERY = 100_000
CHECKPOINT_SECONDS = 60.0
_IN_CHUNK = 500


@dataclass
class _Pending:
    decision_id: str
    time: str
    inputs: Mapping[str, Any]
    output: Any
    subject: str | None
    version: int


def _origin() -> str:
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "localhost"
    return f"{host}/mlcustody/decisions/{uuid.uuid4().hex}"


@dataclass(frozen=True)
class _Rows:
    """What each row of a batch says besides its inputs, checked: the id, the time and the output."""

    ids: list[str] | None  # None: the batch has no id column, the log generates them when it records
    times: list[str]
    outputs: list[str]
    output_col: str | None  # the column the outputs came from (None: given apart from the frame)

    @classmethod
    def of(
        cls,
        table: pa.Table,
        id_col: str,
        output_col: str,
        time_col: str | None,
        outputs: Sequence[Any] | None,
        where: Callable[[int], str],
        new_id: Callable[[], str] | None,
    ) -> _Rows:
        if outputs is None:
            if output_col not in table.column_names:
                raise UsageError(f"no output column {output_col!r}", hint="name it with --output-col")
            texts = outputs_column(table.column(output_col))
        else:
            texts = [canonical_output(out) for out in outputs]
        times = times_column(table, time_col, where)
        ids = None
        if new_id is not None or id_col in table.column_names:
            ids = ids_column(table, id_col, new_id or (lambda: ""), where)  # a present column needs no new_id
        return cls(ids, times, texts, output_col if outputs is None else None)


def check_rows(
    table: pa.Table,
    *,
    id_col: str = "decision_id",
    output_col: str = "output",
    time_col: str | None = None,
    where: Callable[[int], str] | None = None,
) -> _Rows:
    """Refuse a batch whose rows ``record_batch`` would refuse, before any log is opened: a bad file
    then makes nothing (the log's signing key, the subject key and the key file are made on first use).
    The checked rows go to ``record_batch(checked=…)``, so that they are not checked twice."""
    return _Rows.of(table, id_col, output_col, time_col, None, where or (lambda i: f"row {i}"), None)


# -- the log key -----------------------------------------------------------------------------------------


def log_signer(ring: keys.Keyring) -> keys.Signer:
    """The signer of the decision log's Ed25519 key, made (``keys.generate``) on first use."""
    with ring.db.read() as conn:
        missing = not [k for k in keys.listing(conn) if k.name == LOG_KEY_NAME and k.status == "active"]
    if missing and not os.environ.get(keys.SIGNING_KEY_ENV):
        purpose = f"the decision log's own signing key {LOG_KEY_NAME}, made on first use"
        made = keys.generate(ring, LOG_KEY_NAME, LOG_KEY_TYPE, purpose=purpose).key
        _log.warning(  # a new private key the user did not ask for: say so once, where it is, what it guards
            "made the decision log's signing key %s (%s, keyid %s) on first use: it signs decision-log "
            "checkpoints, encrypted with %s like your other keys; see `custody keys ls`",
            LOG_KEY_NAME,
            LOG_KEY_TYPE,
            made.keyid[:12],
            keys.PASSPHRASE_ENV,
        )
    signer = keys.open_signer(ring, LOG_KEY_NAME)
    if signer.key.type != LOG_KEY_TYPE:
        raise UsageError(
            f"the decision log signs with Ed25519, key {signer.key.label} is {signer.key.type}",
            hint=f"unset {keys.SIGNING_KEY_ENV}, or set it to an Ed25519 key",
        )
    return signer


def _sign(signer: keys.Signer, origin: str, body: str) -> str:
    """A signed note over ``body`` (c2sp.org/signed-note, Ed25519), signed through ``keys.Signer``."""
    kid = tlog.key_id(origin, decision_anchor.public_raw(signer.key.public_pem))
    blob = base64.b64encode(kid + signer.sign(body.encode("utf-8"))).decode("ascii")
    return f"{body}\n— {origin} {blob}\n"


def verifier_key(conn: Connection, keyid: str | None = None) -> str:
    """The note verifier key (``name+id+key``) of the log key ``keyid`` (default: the latest checkpoint's)."""
    if keyid is None:
        keyid = conn.execute(sa.select(checkpoints.c.keyid).order_by(checkpoints.c.size.desc()).limit(1)).scalar()
    if keyid is None:
        raise UsageError("the decision log has no checkpoint yet", hint="close the log to write one")
    return tlog.format_vkey(origin(conn), decision_anchor.public_raw(keys.get(conn, keyid).public_pem))


def origin(conn: Connection) -> str:
    found = decision_subjects.store_value(conn, ORIGIN_ROW)
    if found is None:
        raise UsageError("this store has no decision log yet", hint="log decisions with mlcustody.decision_log(MODEL)")
    return str(found)


# -- writing ---------------------------------------------------------------------------------------------


class DecisionLog:
    """Append decisions of one model to the store's decision log.

    ``record`` only checks and appends to a buffer (microseconds); every ``flush_every`` decisions, or
    on ``flush``, one write transaction assigns positions, fingerprints the inputs (vectorised),
    encrypts them under each subject's data key and stores them as a segment. A signed checkpoint is
    written every ``checkpoint_every`` decisions or ``checkpoint_seconds`` seconds, and on ``close``.
    """

    def __init__(
        self,
        ring: keys.Keyring,
        ref: str,
        *,
        flush_every: int = FLUSH_EVERY,
        checkpoint_every: int = CHECKPOINT_EVERY,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
        keep_inputs: bool = True,
    ) -> None:
        self.db = ring.db
        self._ring = ring
        self._head = decision_anchor.head_path(ring.store_dir)
        self._flush_every = max(1, flush_every)
        self._checkpoint_every = max(1, checkpoint_every)
        self._checkpoint_seconds = checkpoint_seconds
        self._keep_inputs = keep_inputs
        with self.db.read() as conn:
            self.model = registry.get(conn, ref)
            self._history = _alias_history(conn, ref)
        self._signer = log_signer(ring)
        with self.db.read() as conn:
            keyset = decision_subjects.keyset(conn, ring.kek_file, create=True)
        if keyset is None:  # a writer always gets one: the key file is made on first use
            raise UsageError("no key-encryption key for the decision log", hint=f"set {kek.KEK_ENV}")
        self._subjects = decision_subjects.SubjectRows(ring.actor, keyset)
        self._events: list[audit.Event] = []  # written in the open transaction, witnessed after commit
        self._head_due: decision_anchor.Head | None = None
        with self._transaction() as conn:
            self.origin = str(decision_subjects.store_value(conn, ORIGIN_ROW, _origin))
            made = decision_subjects.ensure_hmac_key(conn, ring.actor, keyset)
            self._events += [made] if made is not None else []
            self._pseudonym = decision_subjects.subject_hasher(conn, keyset)
        self._frontier: tlog.Frontier | None = None  # the tree's right edge, read from the log's tail
        self._pool: Executor | None = None  # worker processes sealing the segments of large batches
        self._pending: list[_Pending] = []
        self._buffered: set[str] = set()
        self._lock = threading.Lock()
        self._last_checkpoint = clock.monotonic()
        self._closed = False
        self._counter = 0
        self._prefix = uuid.uuid4().hex[:12]
        self.seal()  # a writer that died before its checkpoint left an unsealed tail

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one at a time ---------------------------------------------------------------------------------

    def record(
        self,
        decision_id: str,
        inputs: Mapping[str, Any],
        output: Any,
        subject: str | None = None,
        context: Mapping[str, Any] | None = None,
        time: str | datetime | None = None,
    ) -> None:
        """Log one decision (buffered). ``context`` values join the inputs under ``context.`` names."""
        check_id(decision_id)
        if context:
            inputs = {**inputs, **{f"context.{k}": v for k, v in context.items()}}
        stamp = utc_now() if time is None else normalise_time(time)
        version = self.model.version
        if time is not None and self._history is not None:  # an alias: the version it named at that time
            version = self._versions([stamp], lambda _: f"decision {decision_id}")[0]
        with self._lock:
            self._check_open()
            if decision_id in self._buffered:
                raise UsageError(f"decision {decision_id} was already logged", hint="give every decision its own id")
            self._buffered.add(decision_id)
            self._pending.append(_Pending(decision_id, stamp, inputs, output, subject, version))
            full = len(self._pending) >= self._flush_every
        if full or clock.monotonic() - self._last_checkpoint >= self._checkpoint_seconds:
            self.flush()

    def wrap(self, predict: Callable[..., Any]) -> Callable[..., Any]:
        """``predict`` that logs every row of its first argument as a decision with a generated id."""

        def logged(features: Any, *args: Any, **kwargs: Any) -> Any:
            result = predict(features, *args, **kwargs)
            rows = rows_of(features)
            outputs = list_of(result)
            if len(outputs) != len(rows):
                raise UsageError(
                    f"the model returned {len(outputs)} outputs for {len(rows)} rows",
                    hint="wrap a function that returns one output per row",
                )
            for row, out in zip(rows, outputs, strict=True):
                self.record(self.new_id(), row, out)
            return result

        return logged

    def new_id(self) -> str:
        with self._lock:
            self._counter += 1
            return f"{self._prefix}-{self._counter}"

    # -- many at once ----------------------------------------------------------------------------------

    def record_batch(
        self,
        frame: object,
        *,
        id_col: str = "decision_id",
        output_col: str = "output",
        time_col: str | None = None,
        subject_col: str | None = None,
        outputs: Sequence[Any] | None = None,
        where: Callable[[int], str] | None = None,
        resume: bool = False,
        checked: _Rows | None = None,
    ) -> int:
        """Log one decision per row of a pyarrow, polars or pandas frame, in one transaction.

        Every column besides the id, time, subject and output columns is an input. Without an id
        column, ids are generated; without a time column, the time is now. ``where(i)`` names row i in
        errors (e.g. ``file:line``). With ``resume`` (re-running an interrupted ingest), decisions
        already logged with identical content are skipped and one logged with other content refuses
        the batch (``decision_resume``). ``checked``: what ``check_rows`` returned for this frame. Returns the
        number of decisions logged now."""
        from mlcustody.storage.records.fingerprint import to_arrow

        table = to_arrow(frame)
        name = where or (lambda i: f"row {i}")
        rows = checked or _Rows.of(table, id_col, output_col, time_col, outputs, name, self.new_id)
        special = [c for c in (id_col, time_col, subject_col, rows.output_col) if c and c in table.column_names]
        times, texts = rows.times, rows.outputs
        subjects: list[str | None] = [None] * table.num_rows
        if subject_col and subject_col in table.column_names and self._pseudonym is not None:
            subjects = pseudonyms(table.column(subject_col), self._pseudonym)
        batch = Batch(
            ids=rows.ids if rows.ids is not None else ids_column(table, id_col, self.new_id, name),
            times=times,
            versions=self._versions(times, name),
            input_digests=[],
            outputs=texts,
            subjects=subjects,
            plaintexts=None,
            inputs=table.drop_columns(special),  # fingerprinted and written segment by segment (``jobs``)
            keep_inputs=self._keep_inputs,
        )
        with self._lock:
            self._check_open()
            self._flush_pending()
            if resume:
                batch.check_unique()
                batch = batch.resolved()
                with self.db.read() as conn:
                    batch = batch.without(decision_resume.already_logged(conn, batch, self.model.name))
            if len(batch):
                self._write(batch)
        return len(batch)

    # -- writing ---------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write what is buffered (one transaction), and a checkpoint when one is due."""
        with self._lock:
            self._flush_pending()
            if clock.monotonic() - self._last_checkpoint >= self._checkpoint_seconds:
                self._checkpoint_now()

    def close(self) -> None:
        """Write what is buffered and a signed checkpoint of the whole log."""
        with self._lock:
            if self._closed:
                return
            try:
                self._flush_pending()
                self._checkpoint_now()
            finally:
                self._closed = True
                if self._pool is not None:
                    self._pool.shutdown()

    def checkpoint(self) -> None:
        """Write what is buffered and a signed checkpoint now."""
        with self._lock:
            self._flush_pending()
            self._checkpoint_now()

    def seal(self) -> int | None:
        """A signed checkpoint of the whole log when decisions after the last one are unsealed (see
        :func:`seal`); returns the size sealed, None when nothing was to seal."""
        with self._lock:
            return seal(self._ring, self._signer)

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A write transaction; the audit events and the checkpoint it wrote are witnessed (the
        workspace's audit witness, the decision-log head file) once it commits."""
        self._events, self._head_due, self._subjects.event = [], None, None
        try:
            with self.db.write() as conn:
                yield conn
                if self._subjects.event is not None:
                    self._events.append(self._subjects.event)
        except BaseException:
            self._events, self._head_due = [], None
            raise
        if self._events:
            audit.advance_witness(self._ring.witness, max(self._events, key=lambda e: e.seq))
        if self._head_due is not None:
            decision_anchor.advance_head(self._head, self._head_due)
        self._events, self._head_due = [], None

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("the decision log is closed", hint="open a new one with mlcustody.decision_log(MODEL)")

    def _hash(self, subject: Any) -> str | None:
        return None if subject is None else self._pseudonym(str(subject)) if self._pseudonym else None

    def _versions(self, times: list[str], where: Callable[[int], str]) -> list[int]:
        if self._history is None:
            return [self.model.version] * len(times)
        moments = [move.at for move in self._history]
        found = []
        for i, at in enumerate(times):
            index = bisect.bisect_right(moments, at) - 1
            version = self._history[index].version if index >= 0 else None
            if version is None:
                alias = self._history[0].alias
                raise UsageError(
                    f"{where(i)}: {self.model.name}:{alias} pointed at no version at {at}",
                    hint="give the version (NAME@VERSION) for decisions made before the alias was set",
                )
            found.append(version)
        return found

    def _flush_pending(self) -> None:
        """Write the buffered decisions; one whose id is already in the log is left out and reported
        after the others are written (each ``record`` call had already returned)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        try:
            digests, plaintexts = inputs_of_rows([p.inputs for p in pending], keep=self._keep_inputs)
            batch = Batch(
                ids=[p.decision_id for p in pending],
                times=[p.time for p in pending],
                versions=[p.version for p in pending],
                input_digests=digests,
                outputs=[canonical_output(p.output) for p in pending],
                subjects=[self._hash(p.subject) for p in pending],
                plaintexts=plaintexts,
            )
            taken = self._write(batch, leave_out_logged=True)
        finally:
            self._buffered.difference_update(p.decision_id for p in pending)
        if taken:
            raise UsageError(
                f"decision {sorted(taken)[0]} is already in the log ({len(taken)} duplicate id(s) not logged again)",
                hint="give every decision its own id",
            )

    def _write(self, batch: Batch, *, leave_out_logged: bool = False) -> set[str]:
        """Append ``batch`` in one transaction; an id already in the log refuses it (or, with
        ``leave_out_logged``, the others are appended and the ids already logged returned)."""
        batch.check_unique()
        try:
            self._append(batch)
            return set()
        except sa.exc.IntegrityError:
            with self.db.read() as conn:
                taken = _existing(conn, batch.ids)
            if not taken:
                raise
        if not leave_out_logged:
            raise UsageError(
                f"decision {sorted(taken)[0]} is already in the log ({len(taken)} duplicate id(s))",
                hint="decision ids are unique; give new ids or leave out the decisions already logged",
            )
        self._append(batch.without(taken))
        return taken

    def _append(self, batch: Batch) -> None:
        """Append ``batch`` as segments in one transaction. Segments are sealed by worker processes
        for a large batch (``decision_seal``); storing one (the index insert, mostly outside the GIL)
        runs on a thread while the next is taken in."""
        if len(batch) >= decision_seal.POOL_FROM and self._pool is None:
            self._pool = decision_seal.start_pool()
        pool = self._pool if len(batch) >= decision_seal.POOL_FROM else None
        with self._transaction() as conn, ThreadPoolExecutor(1, thread_name_prefix="decision-log") as storer:
            frontier = self._resume(conn)
            try:
                named = [s if s is not None else decision_subjects.SHARED for s in batch.subjects]
                subject_rows = self._subjects.lookup(conn, named)
                work = decision_seal.jobs(frontier.size, self.model.name, batch, subject_rows)
                stored: Future[None] | None = None
                for job, sealed in decision_seal.seal_all(pool, work):
                    sealed.add_to(frontier)
                    tiles = frontier.take(decision_store.TILE_HEIGHT)
                    segment = decision_store.Segment(
                        job.first, sealed.data, job.batch.ids, job.subject_ids, frontier.packed(), tiles
                    )
                    if stored is not None:
                        stored.result()
                    stored = storer.submit(decision_store.append, conn, segment)
                if stored is not None:
                    stored.result()
                decision_store.merge_postings(conn)
                if frontier.size - (_sealed(conn) or 0) >= self._checkpoint_every:
                    self._insert_checkpoint(conn, frontier)
            except BaseException:
                self._frontier = None  # the transaction rolls back: read the tail again next time
                raise

    def _resume(self, conn: Connection) -> tlog.Frontier:
        """The tree's right edge at the log's end (another writer may have appended since)."""
        tail = decision_store.tail(conn)
        if self._frontier is None or self._frontier.size != tail.size:
            self._frontier = tlog.Frontier.unpack(tail.size, tail.frontier, keep_from=decision_store.TILE_HEIGHT)
        return self._frontier

    def _checkpoint_now(self) -> None:
        with self._transaction() as conn:
            frontier = self._resume(conn)
            sealed = _sealed(conn)
            if sealed is None or frontier.size > sealed:  # an empty log gets its checkpoint of size 0 too
                self._insert_checkpoint(conn, frontier)
        self._last_checkpoint = clock.monotonic()

    def _insert_checkpoint(self, conn: Connection, frontier: tlog.Frontier) -> None:
        event, self._head_due = _insert_checkpoint(conn, self._signer, self.origin, frontier, self._ring.actor)
        self._events.append(event)
        self._last_checkpoint = clock.monotonic()


def _insert_checkpoint(
    conn: Connection, signer: keys.Signer, log_origin: str, frontier: tlog.Frontier, actor: str
) -> tuple[audit.Event, decision_anchor.Head]:
    """Sign and store a checkpoint of the tree ``frontier`` ends, with its audit event; the head to
    witness once the transaction commits."""
    root = frontier.root()
    note = _sign(signer, log_origin, tlog.checkpoint_body(log_origin, frontier.size, root))
    head = decision_anchor.Head(frontier.size, root.hex(), signer.keyid, utc_now(), note)
    row = {"size": head.size, "root": head.root, "note": note, "keyid": head.keyid, "at": head.at}
    conn.execute(checkpoints.insert().values(**row))
    return decision_anchor.record(conn, row, actor), head


def seal(ring: keys.Keyring, signer: keys.Signer | None = None) -> int | None:
    """Sign a checkpoint of the whole log when decisions after the last checkpoint are unsealed (a
    writer killed before its checkpoint leaves them so; ``custody decisions seal``, and every writer
    when it opens). Returns the size sealed; None when the log was sealed (or empty) already."""
    with ring.db.read() as conn:
        size, sealed = decision_store.tail(conn).size, _sealed(conn)
    if size == 0 or (sealed is not None and sealed >= size):
        return None
    signer = signer or log_signer(ring)
    with ring.db.write() as conn:
        tail, sealed = decision_store.tail(conn), _sealed(conn)
        if sealed is not None and sealed >= tail.size:
            return None  # another writer sealed it meanwhile
        frontier = tlog.Frontier.unpack(tail.size, tail.frontier, keep_from=decision_store.TILE_HEIGHT)
        event, head = _insert_checkpoint(conn, signer, origin(conn), frontier, ring.actor)
    audit.advance_witness(ring.witness, event)
    decision_anchor.advance_head(decision_anchor.head_path(ring.store_dir), head)
    return tail.size


def _alias_history(conn: Connection, ref: str) -> list[registry.AliasMove] | None:
    if ":" not in ref:
        return None
    name, alias = ref.split(":", 1)
    return registry.aliases(conn, name).get(alias)


def _existing(conn: Connection, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        found |= set(
            conn.execute(sa.select(decisions.c.decision_id).where(decisions.c.decision_id.in_(chunk))).scalars()
        )
    return found


def _sealed(conn: Connection) -> int | None:
    """The size of the latest checkpoint (None: no checkpoint yet)."""
    found = conn.execute(sa.select(sa.func.max(checkpoints.c.size))).scalar()
    return None if found is None else int(found)
