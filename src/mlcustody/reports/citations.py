"""Citations: every fact in a report names the evidence it was read from, so each field can be checked.

A report's body is a list of sections of fields; each field carries its value, how it was filled
(``store``: read from the store; ``review``: computed, a person must review it; ``human``: left blank
for a person to write) and the ids of the citations it rests on. A citation names one piece of
evidence by kind, reference and digest — a decision-log entry (its RFC 6962 leaf hash), the signed
checkpoint that seals it (SHA-256 of the note), a model version's attestation (the DSSE envelope's
object digest and signing key), a run's seal, a dataset version and its record manifest, an alias
move, an audit event. :func:`check` re-derives each one from a store and says what no longer matches.

Citation ids are given in the order facts are first cited, so the same inputs give the same ids and
the same bytes. The moving heads (the audit head, the log's latest checkpoint) are never cited: a
report about yesterday's decision must not change because today's decisions were logged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody._canonical import canonical_json, digest_bytes
from mlcustody.errors import CustodyError
from mlcustody.ledger import kek, tlog
from mlcustody.ledger.decisions import queries as decision_queries
from mlcustody.ledger.decisions import subjects as decision_subjects
from mlcustody.ledger.registry import versions as registry
from mlcustody.metadata import audit
from mlcustody.metadata import ref_resolution as refs
from mlcustody.metadata.runs import store as runs
from mlcustody.metadata.schema import checkpoints
from mlcustody.storage.objects import ObjectStore

STORE, REVIEW, HUMAN, GIVEN = "store", "review", "human", "given"  # how a field is filled (GIVEN: by the caller)


@dataclass(frozen=True)
class Citation:
    """One piece of evidence: ``kind`` says how ``ref`` and ``digest`` are re-derived from a store."""

    id: str
    kind: str
    ref: str
    digest: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "ref": self.ref, "digest": self.digest, **self.detail}


@dataclass
class Citations:
    """The citations of one report, each given an id (``c1``, ``c2``, …) the first time it is cited."""

    items: list[Citation] = field(default_factory=list)

    def cite(self, kind: str, ref: str, digest: str, **detail: Any) -> str:
        for item in self.items:
            if (item.kind, item.ref, item.digest) == (kind, ref, digest):
                return item.id
        found = Citation(f"c{len(self.items) + 1}", kind, ref, digest, detail)
        self.items.append(found)
        return found.id

    def decision(self, decision: decision_queries.Decision) -> str:
        return self.cite(
            "decision", decision.decision_id, tlog.leaf_hash(decision.entry()).hex(), position=decision.position
        )

    def checkpoint(self, size: int, note: str) -> str:
        return self.cite("checkpoint", f"decision-log@{size}", note_digest(note), size=size)

    def attestation(self, version: registry.ModelVersion) -> str:
        return self.cite("attestation", version.ref, version.attestation, keyid=version.keyid)

    def artifact(self, ref: str, digest: str) -> str:
        return self.cite("artifact", ref, digest)

    def records(self, ref: str, manifest: str) -> str:
        return self.cite("record-manifest", ref, manifest)

    def run(self, run_id: str, seal: str) -> str:
        return self.cite("run", run_id, seal)

    def alias(self, name: str, move: registry.AliasMove) -> str:
        return self.cite("alias", f"{name}:{move.alias}#{move.seq}", alias_digest(name, move))

    def event(self, item: audit.Event) -> str:
        return self.cite("audit-event", str(item.seq), item.digest, action=item.action)

    def as_list(self) -> list[dict[str, Any]]:
        return [item.as_dict() for item in self.items]


def fact(
    name: str, label: str, value: Any, cites: list[str] | tuple[str, ...] = (), fill: str = STORE, note: str = ""
) -> dict[str, Any]:
    """One field of a report."""
    return {"name": name, "label": label, "value": value, "fill": fill, "cites": list(cites), "note": note}


def blank(name: str, label: str, note: str) -> dict[str, Any]:
    """A field a person must write: ``note`` says what goes there."""
    return fact(name, label, None, fill=HUMAN, note=note)


def deadlines(received: date | None) -> list[dict[str, Any]]:
    """When a request was received and the answer is due: one month (GDPR Art. 12(3)), at most three
    with an extension the person is told of in the first month; blanks when ``received`` is not given."""
    if received is None:
        return [
            blank(
                "received",
                "Request received on",
                "the date; the answer is due within one month "
                "(GDPR Art. 12(3)), extendable by two months with reasons (give it with --received)",
            )
        ]
    note = "as given with --received"
    return [
        fact("received", "Request received on", received.isoformat(), fill=GIVEN, note=note),
        fact("due", "Answer due by (one month)", _months(received, 1).isoformat(), fill=GIVEN, note="GDPR Art. 12(3)"),
        fact(
            "due_extended",
            "At the latest, if extended",
            _months(received, 3).isoformat(),
            fill=GIVEN,
            note="only if the person is told within the first month, with the reasons",
        ),
    ]


def _months(day: date, months: int) -> date:
    """The same day ``months`` later, or the month's last day when it has none (31 Jan → 28/29 Feb)."""
    import calendar

    year, month = divmod(day.month - 1 + months, 12)
    year, month = day.year + year, month + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def section(ident: str, title: str, fields: list[dict[str, Any]], basis: str = "") -> dict[str, Any]:
    return {"id": ident, "title": title, "basis": basis, "fields": fields}


def pseudonymiser(conn: Connection, keyset: kek.Keyset | None) -> Callable[[str], str]:
    """How reports name a record id: the first 16 hex digits of its HMAC-SHA256 under the store's
    subject key (a keyed hash, so a guessable id cannot be found by hashing guesses), or of its SHA-256
    when the store has no such key."""
    keyed = decision_subjects.subject_hasher(conn, keyset)

    def name(record_id: str) -> str:
        found = keyed(record_id) if keyed is not None else hashlib.sha256(record_id.encode("utf-8")).hexdigest()
        return found[:16]

    return name


PSEUDONYM_NOTE = "record ids are shown as the first 16 hex digits of their HMAC-SHA256 under the store's subject key"


def note_digest(note: str) -> str:
    return hashlib.sha256(note.encode("utf-8")).hexdigest()


def alias_digest(name: str, move: registry.AliasMove) -> str:
    """SHA-256 of the alias move's row (RFC 8785), the row ``verify`` checks against its audit event."""
    row = {"name": name, **move.__dict__}
    return hashlib.sha256(canonical_json(row)).hexdigest()


# -- checking ---------------------------------------------------------------------------------------


def check(conn: Connection, objects: ObjectStore, item: dict[str, Any]) -> str | None:
    """None when the citation ``item`` (as a report holds it) still matches the store; else why not."""
    try:
        found = _derive(conn, objects, item)
    except CustodyError as exc:
        return f"{item.get('id')} {item.get('kind')} {item.get('ref')}: {exc.message}"
    except OSError as exc:
        return f"{item.get('id')} {item.get('kind')} {item.get('ref')}: its evidence cannot be read ({exc.strerror})"
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return f"a malformed citation {item!r}: {type(exc).__name__} {exc}"
    if found != item.get("digest"):
        return f"{item['id']} {item['kind']} {item['ref']}: the store has {found}, the report cites {item['digest']}"
    return None


def _derive(conn: Connection, objects: ObjectStore, item: dict[str, Any]) -> str | None:
    kind, ref = item["kind"], item["ref"]
    if kind == "decision":
        return tlog.leaf_hash(decision_queries.get(conn, ref).entry()).hex()
    if kind == "checkpoint":
        note = conn.execute(sa.select(checkpoints.c.note).where(checkpoints.c.size == item["size"])).scalar()
        return None if note is None else note_digest(note)
    if kind == "attestation":
        digest = registry.get(conn, ref).attestation
        return digest if digest_bytes(objects.read_bytes(digest)) == digest else "a corrupt envelope object"
    if kind == "artifact":
        return refs.resolve(conn, ref).digest
    if kind == "record-manifest":
        return (refs.resolve(conn, ref).records or {}).get("manifest")
    if kind == "run":
        run = runs.get(conn, ref)
        return None if run.end is None else run.end.seal
    if kind == "alias":
        name, _, rest = ref.partition(":")
        alias, _, seq = rest.partition("#")
        moves = [m for m in registry.aliases(conn, name).get(alias, []) if str(m.seq) == seq]
        return alias_digest(name, moves[0]) if moves else None
    if kind == "audit-event":
        events = list(audit.iter_events(conn, since=int(ref) - 1, limit=1))
        return events[0].digest if events and events[0].seq == int(ref) else None
    return f"an unknown kind of citation {kind!r}"
