"""The decision log: every prediction a deployed model made, in an append-only, signed Merkle log.

A decision is one row of ``decisions`` at ``position`` — its leaf index in an RFC 6962 tree (SHA-256,
``tlog``), gap-free. Its *entry* is the RFC 8785 canonical JSON of ids and digests only::

    {id, time, model, version, input_digest, output_digest, payload_digest, subject}

``input_digest`` is the record fingerprint (docs/record-fingerprint.md) of the inputs as a one-row
record, ``output_digest`` the SHA-256 of the canonical JSON of the output, ``payload_digest`` the
SHA-256 of the encrypted inputs (so the entry commits to the ciphertext, and crypto-shredding leaves
the log verifiable), ``subject`` the HMAC-SHA256 of the subject id under a key kept in the store. The
leaf hash of the entry is stored as ``entry_hash``. A signed checkpoint (c2sp.org/tlog-checkpoint,
Ed25519 key ``decision-log`` of ``ledger.keys``) seals the log every N decisions or T seconds and on
``close``; a receipt for one decision is a c2sp.org/tlog-proof. ``verify`` recomputes every entry,
the tree and every checkpoint. See docs/decisions.md.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import socket
import threading
import time as clock
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring as _quote  # RFC 8785's string escaping, in C
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy.engine import Connection

from mlcustody._canonical import canonical_json, utc_now
from mlcustody.checks import Problem
from mlcustody.errors import UnknownRef, UsageError
from mlcustody.ledger import keys, registry, tlog
from mlcustody.metadata import audit
from mlcustody.metadata.schema import checkpoints, decision_keys, decisions, store_info

if TYPE_CHECKING:
    import pyarrow as pa

LOG_KEY_NAME = keys.LOG_KEY_NAME
LOG_KEY_TYPE = "ed25519"
SUBJECT_KEY_ROW = "decision_subject_key"  # store_info: hex of the 32-byte HMAC key for subject ids
ORIGIN_ROW = "decision_log_origin"  # store_info: the checkpoint origin line of this store's log
SHARED_KEY_ID = "shared"  # decision_keys row for decisions without a subject
FLUSH_EVERY = 10_000
CHECKPOINT_EVERY = 100_000
CHECKPOINT_SECONDS = 60.0
_IN_CHUNK = 500
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@dataclass(frozen=True)
class Decision:
    """One logged decision as stored (``subject`` is the HMAC, never the subject id)."""

    position: int
    decision_id: str
    time: str
    model: str
    version: int
    input_digest: str
    output: Any
    subject: str | None
    payload_digest: str | None
    payload_key: str | None
    entry_hash: str

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    def entry(self) -> bytes:
        return entry_bytes(
            self.decision_id,
            self.time,
            self.model,
            self.version,
            self.input_digest,
            _sha256(canonical_output(self.output).encode("utf-8")),
            self.payload_digest,
            self.subject,
        )


@dataclass(frozen=True)
class Receipt:
    """An offline proof that a decision is in the log: c2sp.org/tlog-proof text and how to check it."""

    decision: Decision
    entry: bytes
    leaf_hash: str
    size: int
    vkey: str
    proof: str


@dataclass(frozen=True)
class VerifyResult:
    problems: list[Problem]
    checked: dict[str, int]


@dataclass
class _Pending:
    decision_id: str
    time: str
    inputs: Mapping[str, Any]
    output: Any
    subject: str | None
    version: int


@dataclass
class _Batch:
    """Decisions to append, column by column."""

    ids: list[str] = field(default_factory=list)
    times: list[str] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    input_digests: list[str] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)
    subjects: list[str | None] = field(default_factory=list)


# -- entries -----------------------------------------------------------------------------------------


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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def normalise_time(value: Any) -> str:
    """An RFC 3339 instant (string or aware datetime) in the one stored form: UTC, µs, ``Z``."""
    if isinstance(value, str):
        if _TIME.fullmatch(value):
            return value
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            value = None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise UsageError(
            f"decision time {value!r} is not an RFC 3339 time with a zone", hint="e.g. 2026-01-31T12:00:00Z"
        )
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def input_digests(frame: object) -> list[str]:
    """Record fingerprints of every row of ``frame`` (the inputs of one decision per row), vectorised."""
    from mlcustody.storage.records.fingerprint import fingerprints

    return [str(d) for d in fingerprints(frame).to_pylist()]


def _digests_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Fingerprints of input mappings: rows with the same columns are fingerprinted as one table."""
    import pyarrow as pa

    groups: dict[tuple[str, ...], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(tuple(row), []).append(i)
    found: list[str] = [""] * len(rows)
    for members in groups.values():
        try:
            digests = input_digests(pa.Table.from_pylist([dict(rows[i]) for i in members]))
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # columns of mixed types: one table per row
            digests = [input_digests(pa.Table.from_pylist([dict(rows[i])]))[0] for i in members]
        for i, digest in zip(members, digests, strict=True):
            found[i] = digest
    return found


# -- store-held keys ------------------------------------------------------------------------------------


def _info(conn: Connection, key: str, make: Callable[[], str]) -> str:
    value = conn.execute(sa.select(store_info.c.value).where(store_info.c.key == key)).scalar()
    if value is None:
        value = make()
        conn.execute(store_info.insert().values(key=key, value=value))
    return str(value)


def _origin() -> str:
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "localhost"
    return f"{host}/mlcustody/decisions/{uuid.uuid4().hex}"


def subject_hasher(conn: Connection, *, create: bool = False) -> Callable[[str], str] | None:
    """HMAC-SHA256 (hex) of a subject id under the store's subject key; None when there is no key yet."""
    if create:
        secret = _info(conn, SUBJECT_KEY_ROW, lambda: secrets.token_hex(32))
    else:
        found = conn.execute(sa.select(store_info.c.value).where(store_info.c.key == SUBJECT_KEY_ROW)).scalar()
        if found is None:
            return None
        secret = str(found)
    key = bytes.fromhex(secret)
    cache: dict[str, str] = {}

    def pseudonym(subject: str) -> str:
        known = cache.get(subject)
        if known is None:
            known = cache[subject] = hmac.new(key, subject.encode("utf-8"), hashlib.sha256).hexdigest()
        return known

    return pseudonym


def _data_keys(conn: Connection, subjects: Iterable[str | None]) -> dict[str | None, tuple[str, bytes]]:
    """The data key (id, 32 bytes) of each subject HMAC (None: the shared key), made when missing."""
    wanted = set(subjects)
    found: dict[str | None, tuple[str, bytes]] = {}
    named = [s for s in wanted if s is not None]
    for start in range(0, len(named), _IN_CHUNK):
        query = sa.select(decision_keys).where(decision_keys.c.subject.in_(named[start : start + _IN_CHUNK]))
        found |= {r.subject: (r.key_id, bytes(r.key)) for r in conn.execute(query)}
    if None in wanted:
        row = conn.execute(sa.select(decision_keys).where(decision_keys.c.key_id == SHARED_KEY_ID)).first()
        if row is not None:
            found[None] = (row.key_id, bytes(row.key))
    made = {s: (SHARED_KEY_ID if s is None else uuid.uuid4().hex, os.urandom(32)) for s in wanted if s not in found}
    if made:
        now = utc_now()
        rows = [{"key_id": k, "subject": s, "key": key, "created_at": now} for s, (k, key) in made.items()]
        conn.execute(decision_keys.insert(), rows)
    return found | made


def _encrypt(cipher: AESGCM, decision_id: str, inputs: Mapping[str, Any]) -> bytes:
    plain = json.dumps(dict(inputs), sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    nonce = os.urandom(12)
    return nonce + cipher.encrypt(nonce, plain, decision_id.encode("utf-8"))


def read_inputs(conn: Connection, decision: Decision) -> dict[str, Any] | None:
    """The decision's inputs, decrypted; None when none were kept or their key was destroyed."""
    if decision.payload_key is None:
        return None
    key = conn.execute(sa.select(decision_keys.c.key).where(decision_keys.c.key_id == decision.payload_key)).scalar()
    payload = conn.execute(sa.select(decisions.c.payload).where(decisions.c.position == decision.position)).scalar()
    if key is None or payload is None:
        return None
    data = bytes(payload)
    try:
        plain = AESGCM(bytes(key)).decrypt(data[:12], data[12:], decision.decision_id.encode("utf-8"))
    except InvalidTag:
        return None
    found: dict[str, Any] = json.loads(plain)
    return found


def forget_subject(conn: Connection, subject: str, actor: str) -> tuple[int, audit.Event | None]:
    """Crypto-shred one subject: delete their data key (audited). Returns the payloads made unreadable."""
    pseudonym = subject_hasher(conn)
    hashed = pseudonym(subject) if pseudonym else None
    row = conn.execute(sa.select(decision_keys.c.key_id).where(decision_keys.c.subject == hashed)).first()
    if hashed is None or row is None:
        return 0, None
    count = conn.execute(
        sa.select(sa.func.count()).select_from(decisions).where(decisions.c.payload_key == row.key_id)
    ).scalar_one()
    conn.execute(decision_keys.delete().where(decision_keys.c.key_id == row.key_id))
    payload = {"subject": hashed, "key_id": row.key_id, "payloads": count}
    return count, audit.append(conn, actor=actor, action="decision.shred", payload=payload)


# -- the log key -----------------------------------------------------------------------------------------


def log_signer(ring: keys.Keyring) -> keys.Signer:
    """The signer of the decision log's Ed25519 key, made (``keys.generate``) on first use."""
    with ring.db.read() as conn:
        missing = not [k for k in keys.listing(conn) if k.name == LOG_KEY_NAME and k.status == "active"]
    if missing and not os.environ.get(keys.SIGNING_KEY_ENV):
        keys.generate(ring, LOG_KEY_NAME, LOG_KEY_TYPE)
    signer = keys.open_signer(ring, LOG_KEY_NAME)
    if signer.key.type != LOG_KEY_TYPE:
        raise UsageError(
            f"the decision log signs with Ed25519, key {signer.key.label} is {signer.key.type}",
            hint=f"unset {keys.SIGNING_KEY_ENV}, or set it to an Ed25519 key",
        )
    return signer


def public_raw(public_pem: str) -> bytes:
    public = load_pem_public_key(public_pem.encode("utf-8"))
    if not isinstance(public, Ed25519PublicKey):
        raise UsageError("the decision-log key is not Ed25519", hint="see `custody keys ls`")
    return public.public_bytes_raw()


def _sign(signer: keys.Signer, origin: str, body: str) -> str:
    """A signed note over ``body`` (c2sp.org/signed-note, Ed25519), signed through ``keys.Signer``."""
    kid = tlog.key_id(origin, public_raw(signer.key.public_pem))
    blob = base64.b64encode(kid + signer.sign(body.encode("utf-8"))).decode("ascii")
    return f"{body}\n— {origin} {blob}\n"


def verifier_key(conn: Connection, keyid: str | None = None) -> str:
    """The note verifier key (``name+id+key``) of the log key ``keyid`` (default: the latest checkpoint's)."""
    if keyid is None:
        keyid = conn.execute(sa.select(checkpoints.c.keyid).order_by(checkpoints.c.size.desc()).limit(1)).scalar()
    if keyid is None:
        raise UsageError("the decision log has no checkpoint yet", hint="close the log to write one")
    return tlog.format_vkey(origin(conn), public_raw(keys.get(conn, keyid).public_pem))


def origin(conn: Connection) -> str:
    found = conn.execute(sa.select(store_info.c.value).where(store_info.c.key == ORIGIN_ROW)).scalar()
    if found is None:
        raise UsageError("this store has no decision log yet", hint="log decisions with mlcustody.decision_log(MODEL)")
    return str(found)


# -- writing ---------------------------------------------------------------------------------------------


class DecisionLog:
    """Append decisions of one model to the store's decision log.

    ``record`` only checks and appends to a buffer (microseconds); every ``flush_every`` decisions, or
    on ``flush``, one write transaction assigns positions, fingerprints the inputs (vectorised),
    encrypts them under each subject's data key and inserts the rows. A signed checkpoint is written
    every ``checkpoint_every`` decisions or ``checkpoint_seconds`` seconds, and on ``close``.
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
        self._flush_every = max(1, flush_every)
        self._checkpoint_every = max(1, checkpoint_every)
        self._checkpoint_seconds = checkpoint_seconds
        self._keep_inputs = keep_inputs
        with self.db.read() as conn:
            self.model = registry.get(conn, ref)
            self._history = _alias_history(conn, ref)
        self._signer = log_signer(ring)
        with self.db.write() as conn:
            self.origin = _info(conn, ORIGIN_ROW, _origin)
            self._pseudonym = subject_hasher(conn, create=True)
        self._tree = tlog.Tree()
        self._pending: list[_Pending] = []
        self._buffered: set[str] = set()
        self._lock = threading.Lock()
        self._last_checkpoint = clock.monotonic()
        self._closed = False
        self._counter = 0
        self._prefix = uuid.uuid4().hex[:12]

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
        if not isinstance(decision_id, str) or not decision_id or len(decision_id) > 200:
            raise UsageError(f"decision id {decision_id!r} is not valid", hint="give a string of 1–200 characters")
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
            rows = _rows_of(features)
            outputs = _list_of(result)
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
    ) -> int:
        """Log one decision per row of a pyarrow, polars or pandas frame, in one transaction.

        Every column besides the id, time, subject and output columns is an input. Without an id
        column, ids are generated; without a time column, the time is now. ``where(i)`` names row i in
        errors (e.g. ``file:line``). Returns the number of decisions logged."""
        from mlcustody.storage.records.fingerprint import to_arrow

        table = to_arrow(frame)
        rows = table.num_rows
        special = [c for c in (id_col, time_col, subject_col) if c and c in table.column_names]
        if outputs is None:
            if output_col not in table.column_names:
                raise UsageError(f"no output column {output_col!r}", hint="name it with --output-col")
            outputs = table.column(output_col).to_pylist()
            special.append(output_col)
        inputs = table.drop_columns(special)
        name = where or (lambda i: f"row {i}")
        ids = _ids(table, id_col, rows, self.new_id, name)
        times = _times(table, time_col, rows, name)
        subjects = table.column(subject_col).to_pylist() if subject_col and subject_col in table.column_names else None
        batch = _Batch(
            ids=ids,
            times=times,
            versions=self._versions(times, name),
            input_digests=input_digests(inputs),
            outputs=list(outputs),
            subjects=[self._hash(s) for s in subjects] if subjects else [None] * rows,
        )
        payload_rows = inputs.to_pylist() if self._keep_inputs else None
        with self._lock:
            self._check_open()
            self._flush_pending()
            self._write(batch, payload_rows)
        return int(rows)

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
            self._flush_pending()
            self._checkpoint_now()
            self._closed = True

    def checkpoint(self) -> None:
        """Write what is buffered and a signed checkpoint now."""
        with self._lock:
            self._flush_pending()
            self._checkpoint_now()

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
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        try:
            self._write(
                _Batch(
                    ids=[p.decision_id for p in pending],
                    times=[p.time for p in pending],
                    versions=[p.version for p in pending],
                    input_digests=_digests_of([p.inputs for p in pending]),
                    outputs=[p.output for p in pending],
                    subjects=[self._hash(p.subject) for p in pending],
                ),
                [p.inputs for p in pending] if self._keep_inputs else None,
                drop_duplicates=True,
            )
        finally:
            self._buffered.difference_update(p.decision_id for p in pending)

    def _write(
        self, batch: _Batch, inputs: Sequence[Mapping[str, Any]] | None, *, drop_duplicates: bool = False
    ) -> None:
        """Insert a batch at the end of the log (one transaction); duplicate ids are refused."""
        outputs = [canonical_output(out) for out in batch.outputs]
        if len(set(batch.ids)) != len(batch.ids):
            seen: set[str] = set()
            for twice in batch.ids:
                if twice in seen:
                    raise UsageError(f"decision {twice} appears twice", hint="give every decision its own id")
                seen.add(twice)
        refused: list[str] = []
        with self.db.write() as conn:
            taken = _existing(conn, batch.ids)
            if taken and not drop_duplicates:
                raise UsageError(
                    f"decision {sorted(taken)[0]} is already in the log ({len(taken)} duplicate id(s))",
                    hint="decision ids are unique; give new ids or leave out the decisions already logged",
                )
            keep = [i for i, d in enumerate(batch.ids) if d not in taken]
            refused = [d for d in batch.ids if d in taken]
            start = self._sync_tree(conn)
            data_keys: dict[str | None, tuple[str, AESGCM]] = {}
            if inputs is not None:
                made = _data_keys(conn, (batch.subjects[i] for i in keep))
                data_keys = {s: (key_id, AESGCM(key)) for s, (key_id, key) in made.items()}
            rows: list[dict[str, Any]] = []
            for n, i in enumerate(keep):
                payload = payload_digest = key_id = None
                if inputs is not None:
                    key_id, cipher = data_keys[batch.subjects[i]]
                    payload = _encrypt(cipher, batch.ids[i], inputs[i])
                    payload_digest = _sha256(payload)
                entry = entry_bytes(
                    batch.ids[i],
                    batch.times[i],
                    self.model.name,
                    batch.versions[i],
                    batch.input_digests[i],
                    _sha256(outputs[i].encode("utf-8")),
                    payload_digest,
                    batch.subjects[i],
                )
                leaf = tlog.leaf_hash(entry)
                rows.append(
                    {
                        "position": start + n,
                        "decision_id": batch.ids[i],
                        "time": batch.times[i],
                        "model": self.model.name,
                        "version": batch.versions[i],
                        "input_digest": batch.input_digests[i],
                        "output": outputs[i],
                        "subject": batch.subjects[i],
                        "payload": payload,
                        "payload_digest": payload_digest,
                        "payload_key": key_id,
                        "entry_hash": leaf.hex(),
                    }
                )
            if rows:
                _insert_many(conn, rows)
            for row in rows:
                self._tree.append(bytes.fromhex(row["entry_hash"]))
            try:
                if len(self._tree) - _sealed(conn) >= self._checkpoint_every:
                    self._insert_checkpoint(conn)
            except BaseException:
                self._tree = tlog.Tree()  # the transaction rolls back: rebuild from the database next time
                raise
        if refused:
            raise UsageError(
                f"decision {refused[0]} is already in the log ({len(refused)} duplicate id(s) not logged again)",
                hint="give every decision its own id",
            )

    def _sync_tree(self, conn: Connection) -> int:
        """Bring the in-memory tree to the log's size (other writers may have appended)."""
        held = size(conn)
        if len(self._tree) > held:
            self._tree = tlog.Tree()
        if len(self._tree) < held:
            query = (
                sa.select(decisions.c.entry_hash)
                .where(decisions.c.position >= len(self._tree))
                .order_by(decisions.c.position)
            )
            for leaf in conn.execute(query).scalars():
                self._tree.append(bytes.fromhex(leaf))
        return held

    def _checkpoint_now(self) -> None:
        with self.db.write() as conn:
            self._sync_tree(conn)
            if len(self._tree) > _sealed(conn) or not _has_checkpoint(conn):
                self._insert_checkpoint(conn)
        self._last_checkpoint = clock.monotonic()

    def _insert_checkpoint(self, conn: Connection) -> None:
        size = len(self._tree)
        root = self._tree.root(size)
        note = _sign(self._signer, self.origin, tlog.checkpoint_body(self.origin, size, root))
        row = {"size": size, "root": root.hex(), "note": note, "keyid": self._signer.keyid, "at": utc_now()}
        conn.execute(checkpoints.insert().values(**row))
        self._last_checkpoint = clock.monotonic()


def _insert_many(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """``INSERT`` of many decision rows through the driver's executemany, compiled once: the ORM-free
    Core path still builds parameters row by row, which costs more than the insert itself."""
    compiled = decisions.insert().compile(dialect=conn.dialect, column_keys=list(rows[0]))
    if compiled.positional:
        order = compiled.positiontup or []
        conn.exec_driver_sql(str(compiled), [tuple(row[k] for k in order) for row in rows])
    else:
        conn.exec_driver_sql(str(compiled), rows)


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


def size(conn: Connection) -> int:
    """How many decisions the log holds: the next position (positions are gap-free; an index lookup,
    where ``count(*)`` would scan the table)."""
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(decisions.c.position), -1) + 1)).scalar_one())


def _sealed(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(checkpoints.c.size), 0))).scalar_one())


def _has_checkpoint(conn: Connection) -> bool:
    return conn.execute(sa.select(checkpoints.c.size).limit(1)).first() is not None


def _ids(table: pa.Table, column: str, rows: int, new_id: Callable[[], str], where: Callable[[int], str]) -> list[str]:
    if column not in table.column_names:
        return [new_id() for _ in range(rows)]
    ids = table.column(column).to_pylist()
    for i, value in enumerate(ids):
        if value is None or value == "" or len(str(value)) > 200:
            raise UsageError(
                f"{where(i)}: no valid decision id in column {column!r}",
                hint="give every decision an id of 1–200 characters",
            )
    return [str(v) for v in ids]


def _times(table: pa.Table, column: str | None, rows: int, where: Callable[[int], str]) -> list[str]:
    if column is None or column not in table.column_names:
        return [utc_now()] * rows
    found = []
    for i, value in enumerate(table.column(column).to_pylist()):
        try:
            found.append(normalise_time(value))
        except UsageError as exc:
            raise UsageError(f"{where(i)}: {exc.message}", hint=exc.hint) from None
    return found


def _rows_of(features: Any) -> list[dict[str, Any]]:
    """The rows of what a model's predict receives: a frame, a list of mappings, or a 2-D array."""
    kind = type(features)
    if kind.__name__ in ("DataFrame", "Table", "RecordBatch"):
        from mlcustody.storage.records.fingerprint import to_arrow

        return list(to_arrow(features).to_pylist())
    if isinstance(features, Mapping):
        return [dict(features)]
    rows = features.tolist() if hasattr(features, "tolist") else list(features)
    return [dict(r) if isinstance(r, Mapping) else {f"x{j}": v for j, v in enumerate(_list_of(r))} for r in rows]


def _list_of(value: Any) -> list[Any]:
    if hasattr(value, "tolist"):
        found = value.tolist()
        return found if isinstance(found, list) else [found]
    if hasattr(value, "to_pylist"):
        return list(value.to_pylist())
    return list(value) if isinstance(value, list | tuple) else [value]


# -- reading ---------------------------------------------------------------------------------------------


def row_decision(row: Any) -> Decision:
    return Decision(
        position=row.position,
        decision_id=row.decision_id,
        time=row.time,
        model=row.model,
        version=row.version,
        input_digest=row.input_digest,
        output=json.loads(row.output),
        subject=row.subject,
        payload_digest=row.payload_digest,
        payload_key=row.payload_key,
        entry_hash=row.entry_hash,
    )


def row_entry(row: Any) -> bytes:
    """The entry of a ``decisions`` row as stored (the output digest over the stored canonical text)."""
    return entry_bytes(
        row.decision_id,
        row.time,
        row.model,
        row.version,
        row.input_digest,
        _sha256(row.output.encode("utf-8")),
        row.payload_digest,
        row.subject,
    )


_COLUMNS = [c for c in decisions.columns if c.name != "payload"]


def get(conn: Connection, decision_id: str) -> Decision:
    row = conn.execute(sa.select(*_COLUMNS).where(decisions.c.decision_id == decision_id)).first()
    if row is None:
        raise UnknownRef(
            f"no decision with id {decision_id!r}",
            hint="list decisions with `custody decisions ls`, or import them with `custody decisions import`",
        )
    return row_decision(row)


def listing(
    conn: Connection,
    *,
    model: str | None = None,
    subject: str | None = None,
    since: str | None = None,
    limit: int | None = 1000,
) -> list[Decision]:
    """Decisions in log order, filtered by model (``NAME`` or ``NAME@V``), subject id and time."""
    query = sa.select(*_COLUMNS).order_by(decisions.c.position)
    if model is not None:
        name, at, number = model.partition("@")
        if ":" in model:
            version = registry.get(conn, model)
            name, at, number = version.name, "@", str(version.version)
        query = query.where(decisions.c.model == name)
        if at:
            query = query.where(decisions.c.version == int(number) if number.isdigit() else sa.false())
    if subject is not None:
        pseudonym = subject_hasher(conn)
        query = query.where(decisions.c.subject == (pseudonym(subject) if pseudonym else ""))
    if since is not None:
        query = query.where(decisions.c.time >= normalise_time(since))
    if limit is not None:
        query = query.limit(limit)
    return [row_decision(row) for row in conn.execute(query)]


def versions_from(conn: Connection, position: int) -> list[str]:
    """The model versions (``NAME@VERSION``) of the decisions from ``position`` on."""
    query = sa.select(decisions.c.model, decisions.c.version).where(decisions.c.position >= position).distinct()
    return sorted(f"{name}@{version}" for name, version in conn.execute(query))


def aliases_at(conn: Connection, decision: Decision) -> list[str]:
    """The aliases of the decision's model that pointed at its version when it was made."""
    found = []
    for alias, moves in registry.aliases(conn, decision.model).items():
        before = [m for m in moves if m.at <= decision.time]
        if before and before[-1].version == decision.version:
            found.append(alias)
    return sorted(found)


def _leaves(conn: Connection, size: int | None = None) -> Iterator[bytes]:
    query = sa.select(decisions.c.entry_hash).order_by(decisions.c.position)
    if size is not None:
        query = query.where(decisions.c.position < size)
    for leaf in conn.execute(query).scalars():
        yield bytes.fromhex(leaf)


def receipt(conn: Connection, decision_id: str) -> Receipt:
    """A c2sp.org/tlog-proof that the decision is in the log, against the latest checkpoint."""
    decision = get(conn, decision_id)
    row = conn.execute(sa.select(checkpoints).order_by(checkpoints.c.size.desc()).limit(1)).first()
    if row is None or row.size <= decision.position:
        raise UsageError(
            f"decision {decision_id} is not sealed by a checkpoint yet",
            hint="close the decision log (DecisionLog.close) to write a checkpoint",
        )
    tree = tlog.Tree(_leaves(conn, row.size))
    proof = tree.inclusion_proof(decision.position, row.size)
    text = tlog.inclusion_proof_text(decision.position, proof, row.note)
    entry = decision.entry()
    return Receipt(decision, entry, tlog.leaf_hash(entry).hex(), row.size, verifier_key(conn, row.keyid), text)
