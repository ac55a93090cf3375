"""Reading the decision log: one decision by id, listings, inputs, receipts.

A decision is found through the index (``decisions``: by id) or the subject postings, then read from
its segment (``decision_store.rows`` decodes only the row groups that hold it); model and time filters
scan the segments' columns in log order. See docs/decisions.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody.errors import UnknownRef, UsageError
from mlcustody.ledger import kek, tlog
from mlcustody.ledger.decisions import store as decision_store
from mlcustody.ledger.decisions import subjects as decision_subjects
from mlcustody.ledger.decisions.batch import canonical_output, normalise_time
from mlcustody.ledger.decisions.log import verifier_key
from mlcustody.ledger.registry import versions as registry
from mlcustody.metadata.schema import checkpoints, decisions

if TYPE_CHECKING:
    import pyarrow as pa


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
    payload_key: int | None
    entry_hash: str

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    def entry(self) -> bytes:
        return decision_store.entry_bytes(
            self.decision_id,
            self.time,
            self.model,
            self.version,
            self.input_digest,
            hashlib.sha256(canonical_output(self.output).encode("utf-8")).hexdigest(),
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


def size(conn: Connection) -> int:
    """How many decisions the log holds (the next position)."""
    return decision_store.tail(conn).size


def _decisions(table: pa.Table) -> list[Decision]:
    """Decisions from segment rows of ``_DECISION_COLUMNS`` (named as ``Decision``'s fields)."""
    return [
        Decision(**{**row, "output": json.loads(row["output"]), "entry_hash": row["entry_hash"].hex()})
        for row in table.to_pylist()
    ]


_DECISION_COLUMNS = [name for name in decision_store.SCHEMA.names if name != "payload"]


def at_positions(conn: Connection, positions: Sequence[int]) -> list[Decision]:
    return _decisions(decision_store.rows(conn, positions, _DECISION_COLUMNS))


def get(conn: Connection, decision_id: str) -> Decision:
    position = conn.execute(sa.select(decisions.c.position).where(decisions.c.decision_id == decision_id)).scalar()
    if position is None:
        raise UnknownRef(
            f"no decision with id {decision_id!r}",
            hint="list decisions with `custody decisions ls`, or import them with `custody decisions import`",
        )
    return at_positions(conn, [position])[0]


def listing(
    conn: Connection,
    *,
    model: str | None = None,
    subject: str | None = None,
    since: str | None = None,
    limit: int | None = 1000,
    keys: kek.Keyset | None = None,
) -> list[Decision]:
    """Decisions in log order, filtered by model (``NAME``, ``NAME@V``, ``NAME:ALIAS``), subject id and
    time: a subject through the index, the rest by scanning the segments' columns. A subject id is
    found through its pseudonym, which needs the subject-HMAC key, wrapped under ``keys``."""
    keep = _filter(conn, model, since)
    if subject is None:
        return _decisions(decision_store.scan(conn, _DECISION_COLUMNS, keep, limit))
    import pyarrow.compute as pc

    row = decision_subjects.row_of(conn, subject, keys)
    if row is None:  # never a decision about them (no rows to filter: an empty read has no column types)
        return []
    table = decision_store.rows(conn, decision_store.subject_positions(conn, row), _DECISION_COLUMNS)
    pseudonym = decision_subjects.subject_hasher(conn, keys)
    theirs = pc.equal(table.column("subject"), pseudonym(subject) if pseudonym else "")  # as the segment says
    table = table.filter(pc.and_(keep(table), theirs))
    return _decisions(table if limit is None else table.slice(0, limit))


def _filter(conn: Connection, model: str | None, since: str | None) -> Callable[[pa.Table], pa.Array]:
    """A mask over segment rows: of model ``NAME``, ``NAME@V`` or ``NAME:ALIAS`` (its version now), and
    made at or after ``since``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    name = version = None
    if model is not None:
        name, at, number = model.partition("@")
        if ":" in model:
            found = registry.get(conn, model)
            name, at, number = found.name, "@", str(found.version)
        version = (int(number) if number.isdigit() else -1) if at else None
    start = None if since is None else normalise_time(since)

    def keep(table: pa.Table) -> pa.Array:
        mask = pa.array([True] * table.num_rows, pa.bool_())  # typed: an empty list alone makes a null array
        if name is not None:
            mask = pc.and_(mask, pc.equal(table.column("model"), name))
        if version is not None:
            mask = pc.and_(mask, pc.equal(table.column("version"), version))
        if start is not None:
            mask = pc.and_(mask, pc.greater_equal(table.column("time"), start))
        return mask

    return keep


def read_inputs(conn: Connection, decision: Decision, keys: kek.Keyset | None = None) -> dict[str, Any] | None:
    """The decision's inputs, decrypted (their data key unwrapped with ``keys``); None when none were
    kept or their key was destroyed."""
    if decision.payload_key is None:
        return None
    payload = decision_store.rows(conn, [decision.position], ["payload"]).column("payload")[0].as_py()
    if payload is None:
        return None
    return decision_subjects.decrypt(conn, decision.payload_key, decision.decision_id, payload, keys)


def versions_from(conn: Connection, position: int) -> list[str]:
    """The model versions (``NAME@VERSION``) of the decisions from ``position`` on."""
    table = decision_store.span(conn, position, size(conn), ["model", "version"])
    return sorted({f"{name}@{version}" for name, version in zip(*table.to_pydict().values(), strict=True)})


def aliases_at(conn: Connection, decision: Decision) -> list[str]:
    """The aliases of the decision's model that pointed at its version when it was made."""
    found = []
    for alias, moves in registry.aliases(conn, decision.model).items():
        before = [m for m in moves if m.at <= decision.time]
        if before and before[-1].version == decision.version:
            found.append(alias)
    return sorted(found)


def receipt(conn: Connection, decision_id: str) -> Receipt:
    """A c2sp.org/tlog-proof that the decision is in the log, against the latest checkpoint."""
    decision = get(conn, decision_id)
    row = conn.execute(sa.select(checkpoints).order_by(checkpoints.c.size.desc()).limit(1)).first()
    if row is None or row.size <= decision.position:
        raise UsageError(
            f"decision {decision_id} is not sealed by a checkpoint yet",
            hint="close the decision log (DecisionLog.close) to write a checkpoint",
        )
    proof = decision_store.tree(conn, row.size).inclusion_proof(decision.position, row.size)
    text = tlog.inclusion_proof_text(decision.position, proof, row.note)
    entry = decision.entry()
    return Receipt(decision, entry, tlog.leaf_hash(entry).hex(), row.size, verifier_key(conn, row.keyid), text)
