"""The erasure report of one data subject (GDPR Art. 17): what of theirs the store holds, what erasing it
reaches, and — with ``execute`` — the crypto-shredding done, as a certificate.

Found from the store: every record with the subject's record id in every dataset version with a
record manifest (the subject id itself, or the record ids given), the records derived from those
through record lineage, the models whose training runs read any version holding them (EDPB Opinion
28/2024: not anonymous by default; each gets a retrain/keep field for a person), and the decisions
about the subject (through their pseudonym). Executing destroys the subject's data key, so every
copy of their decision payloads becomes unreadable at once while every log entry, which commits to
the ciphertext's digest, still verifies; and it records an ``subject.erase`` audit event that marks
each of their records as erased, names the models to review and cites the shred event.

Before anything is destroyed the retention rules are checked: a hold (AI Act Art. 73(6): preserve
evidence after an incident; or a legal claim, Art. 17(3)(e)) placed with :func:`place_hold` blocks
execution; AI Act Art. 19/26(6) logs of the last six months are kept (only their payloads go, so the
log stays complete) and Art. 18 documentation is kept (it holds digests, not the subject's data).

The report never names the subject: it says ``subject-`` and the first 16 hex digits of their
pseudonym, and names record ids by their keyed hash (``citations.pseudonymiser``), as the decision
report does; neither lists a value or a fingerprint of the subject's records.

Over 400 lines on purpose: one use case, start to end (holds, finding a subject's records,
executing, and the report whose sections cite what was found and done); the sections read the same
``Found``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody._canonical import utc_now
from mlcustody.errors import UnknownRef, UsageError
from mlcustody.forensics.decision_records import Store
from mlcustody.ledger import kek
from mlcustody.ledger.decisions import queries as decision_queries
from mlcustody.ledger.decisions import subjects as decision_subjects
from mlcustody.ledger.registry import versions as registry
from mlcustody.lineage import record_trace
from mlcustody.metadata import artifacts, audit, decision_audit
from mlcustody.metadata.artifacts import ArtifactVersion
from mlcustody.metadata.schema import audit_events
from mlcustody.metadata.schema import decision_subjects as subjects_table
from mlcustody.reports import model_facts
from mlcustody.reports.citations import (
    PSEUDONYM_NOTE,
    REVIEW,
    Citations,
    blank,
    deadlines,
    fact,
    pseudonymiser,
    section,
)
from mlcustody.storage.records import lookup
from mlcustody.storage.records.table import ID_COLUMN

KIND = "erasure"
BASIS = [
    "GDPR Art. 17",
    "GDPR Art. 19",
    "GDPR Art. 12(3)",
    "EDPB Opinion 28/2024",
    "EU AI Act Art. 18, 19, 26(6), 73(6)",
]
ERASE_ACTION = "subject.erase"
HOLD_ACTION, RELEASE_ACTION = "erasure.hold", "erasure.release"
ALL = "*"  # a hold on every subject
LOG_RETENTION = timedelta(days=183)  # AI Act Art. 19(1), 26(6): at least six months
MAX_DEPTH = 64


@dataclass(frozen=True)
class Hold:
    scope: str  # a subject pseudonym, or ALL
    reason: str
    seq: int  # the audit event that placed it
    at: str
    actor: str


@dataclass(frozen=True)
class Found:
    """A subject's records, what was derived from them, the models and decisions they reached."""

    tag: str  # subject-<16 hex>: how the report names the subject
    records: list[dict[str, Any]]  # {ref, record (keyed pseudonym), source, derived: bool}
    versions: list[str]  # every version holding one of them
    models: list[registry.ModelVersion]
    decisions: list[decision_queries.Decision]
    key_state: str  # active | shredded | none
    shredded_at: str | None


def subject_tag(conn: Connection, subject: str, keyset: kek.Keyset | None) -> tuple[str, str]:
    """The subject's pseudonym (their HMAC under the store's key, else SHA-256) and its short tag."""
    hasher = decision_subjects.subject_hasher(conn, keyset)
    found = hasher(subject) if hasher is not None else hashlib.sha256(subject.encode("utf-8")).hexdigest()
    return found, f"subject-{found[:16]}"


# -- holds -------------------------------------------------------------------------------------------


def holds(conn: Connection) -> list[Hold]:
    """The holds in force: placed and not released, oldest first (audit events, so they are tamper-evident)."""
    query = sa.select(audit_events).where(audit_events.c.action.in_([HOLD_ACTION, RELEASE_ACTION]))
    active: dict[str, Hold] = {}
    for event in _events(conn, query):
        scope = event.payload["scope"]
        if event.action == HOLD_ACTION:
            active[scope] = Hold(scope, event.payload["reason"], event.seq, event.time, event.actor)
        else:
            active.pop(scope, None)
    return sorted(active.values(), key=lambda h: h.seq)


def _events(conn: Connection, query: sa.Select[Any]) -> list[audit.Event]:
    import json

    return [
        audit.Event(r.seq, r.time, r.actor, r.action, json.loads(r.payload), r.prev_digest, r.digest)
        for r in conn.execute(query.order_by(audit_events.c.seq))
    ]


def place_hold(conn: Connection, scope: str, reason: str, actor: str, *, release: bool = False) -> audit.Event:
    """Place (or ``release``) a hold on a subject pseudonym or on ``ALL``; audited."""
    reason = " ".join(reason.split())
    if not reason:
        raise UsageError("a hold needs a reason", hint="say why, e.g. --reason 'incident 2026-11: preserve evidence'")
    placed = any(h.scope == scope for h in holds(conn))
    if release and not placed:
        raise UsageError("there is no hold to release on that subject", hint="list holds with `custody report holds`")
    if not release and placed:
        raise UsageError("that subject is already on hold", hint="release it first, or leave it")
    action = RELEASE_ACTION if release else HOLD_ACTION
    return audit.append(conn, actor=actor, action=action, payload={"scope": scope, "reason": reason})


# -- finding -------------------------------------------------------------------------------------------


def find(
    conn: Connection,
    store: Store,
    subject: str,
    record_ids: list[str],
    keyset: kek.Keyset | None,
    key: str | None = None,
) -> Found:
    """Everything of the subject the store holds (see the module docstring): records whose id is the
    subject or one of ``record_ids`` — or, with ``key``, whose column ``key`` holds one of them (for
    snapshots keyed by line, as captured files are)."""
    pseudo, tag = subject_tag(conn, subject, keyset)
    name = pseudonymiser(conn, keyset)
    ids = list(dict.fromkeys([subject, *record_ids]))
    found: list[dict[str, Any]] = []
    reached: set[str] = set()
    with record_trace.tracer(conn, store.objects) as walk:
        for version in artifacts.listing(conn, all_versions=True):
            if version.records is None:
                continue
            manifest = store.objects.path(version.records["manifest"])
            for record_id in _matching(store, version, ids, key):
                for hit in lookup.find(manifest, record_id=record_id):
                    found.append(_row(version.ref, name(hit.record_id), hit.source, derived=False))
                    _derived(walk.down(version.ref, hit.record_id, MAX_DEPTH, reached), found, walk, name)
        models = _models(conn, walk.models_trained_on(reached | {r["ref"] for r in found}))
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for item in found:  # a record found directly and through lineage is a derived one
        seen = merged.setdefault((item["ref"], item["record"]), item)
        seen["derived"] = seen["derived"] or item["derived"]
    records = [merged[k] for k in sorted(merged)]
    row = conn.execute(sa.select(subjects_table).where(subjects_table.c.subject == pseudo)).first()
    decisions = [] if row is None else decision_queries.listing(conn, subject=subject, limit=None, keys=keyset)
    state = "none" if row is None else "shredded" if row.key is None else "active"
    if not records and not decisions and row is None:
        raise UnknownRef(
            "the store holds no record, decision or data key of that subject",
            hint="give the id their records are keyed by, or their subject id in the decision log; "
            "add record ids with --record ID",
        )
    versions = sorted({r["ref"] for r in records})
    return Found(tag, records, versions, models, decisions, state, None if row is None else row.shredded_at)


def _matching(store: Store, version: ArtifactVersion, ids: list[str], key: str | None) -> list[str]:
    """The record ids of ``version`` that are the subject's: ``ids`` themselves, or with ``key`` the ids of
    the records whose ``key`` column holds one of ``ids`` (read only from versions that have the column)."""
    if key is None:
        return ids
    if key not in {c["name"] for c in (version.records or {}).get("columns") or []}:
        return []
    import pyarrow as pa
    import pyarrow.compute as pc

    table = store.record_table(version)
    values = pc.cast(table.column(key), pa.string())
    return [str(v) for v in table.filter(pc.is_in(values, pa.array(ids))).column(ID_COLUMN).to_pylist()]


def _row(ref: str, record: str, source: str | None, *, derived: bool) -> dict[str, Any]:
    """A record as the report lists it: no value and no fingerprint of it, only where it is."""
    return {"ref": ref, "record": record, "source": source, "derived": derived}


def _derived(
    node: record_trace.RecordNode, found: list[dict[str, Any]], walk: record_trace.Tracer, name: Callable[[str], str]
) -> None:
    for child in node.links:
        locator = walk._locate(child.ref, child.record_id)
        found.append(_row(child.ref, name(child.record_id), locator, derived=True))
        _derived(child, found, walk, name)


def _models(conn: Connection, artifact_refs: list[str]) -> list[registry.ModelVersion]:
    wanted = set(artifact_refs)
    return [v for v in registry.listing(conn) if v.artifact in wanted]


# -- executing -----------------------------------------------------------------------------------------


def blocking(conn: Connection, pseudo: str) -> list[Hold]:
    return [h for h in holds(conn) if h.scope in (pseudo, ALL)]


def execute(conn: Connection, subject: str, found: Found, actor: str, keyset: kek.Keyset | None) -> list[audit.Event]:
    """Destroy the subject's data key and record the erasure (in the caller's write transaction);
    refused, changing nothing, while a hold applies. The events written, last one last."""
    pseudo, _ = subject_tag(conn, subject, keyset)
    held = blocking(conn, pseudo)
    if held:
        first = held[0]
        raise UsageError(
            f"erasure is blocked by hold #{first.seq} placed {first.at} by {first.actor}: {first.reason}",
            hint="release the hold first (`custody report hold SUBJECT --release --reason TEXT`) when it may go",
        )
    events = []
    count, shred = decision_subjects.forget(conn, subject, actor, keyset)
    if shred is not None:
        events.append(shred)
    payload = {
        "subject": pseudo,
        "shred_event": shred.seq if shred is not None else None,
        "payloads": count,
        "records": [{k: r[k] for k in ("ref", "record")} for r in found.records],
        "models": [v.ref for v in found.models],
        "erased_at": utc_now(),
    }
    events.append(audit.append(conn, actor=actor, action=ERASE_ACTION, payload=payload))
    return events


def erased(conn: Connection, pseudo: str) -> list[audit.Event]:
    """The erasure events of a subject, oldest first."""
    query = sa.select(audit_events).where(audit_events.c.action == ERASE_ACTION)
    return [e for e in _events(conn, query) if e.payload.get("subject") == pseudo]


# -- the report ----------------------------------------------------------------------------------------


def build(
    conn: Connection,
    store: Store,
    subject: str,
    record_ids: list[str],
    keyset: kek.Keyset | None,
    key: str | None = None,
    received: date | None = None,
) -> dict[str, Any]:
    """The report's body (``mlcustody.report.erasure/v1``); after an execution, its certificate."""
    found = find(conn, store, subject, record_ids, keyset, key)
    pseudo, _ = subject_tag(conn, subject, keyset)
    cites, gaps = Citations(), []
    held = blocking(conn, pseudo)
    if held:
        gaps.append(f"on hold since {held[0].at} (#{held[0].seq}): {held[0].reason}; nothing may be destroyed")
    sections = [
        _inventory(conn, found, cites),
        _models_section(conn, found, cites),
        _decisions_section(found, cites),
        _retention_section(conn, found, held, cites),
        _reach_section(found),
        _execution_section(conn, pseudo, found, cites, gaps),
        section(
            "request",
            "The request",
            [
                *deadlines(received),
                blank("identity", "Identity verified", "how the requester's identity was checked (Art. 12(6))"),
                blank("ground", "Ground for erasure", "Art. 17(1)(a)–(f), or the Art. 17(3) exception that applies"),
                blank("recipients", "Recipients told", "every recipient informed of the erasure (Art. 17(2), 19)"),
                blank("reply", "Reply to the person", "what was done, or the reasons and the remedies (Art. 12(4))"),
            ],
            "GDPR Art. 12, 17, 19",
        ),
    ]
    return {
        "schema": f"mlcustody.report.{KIND}/v1",
        "kind": KIND,
        "title": f"Erasure of {found.tag}",
        "subject": found.tag,
        "basis": BASIS,
        "gaps": gaps,
        "sections": sections,
        "citations": cites.as_list(),
    }


def _inventory(conn: Connection, found: Found, cites: Citations) -> dict[str, Any]:
    manifests = {}
    for ref in found.versions:
        version = artifacts.get(conn, *_split(ref))
        if version is not None and version.records is not None:
            manifests[ref] = cites.records(ref, version.records["manifest"])
    rows = [{**r, "cites": [manifests[r["ref"]]] if r["ref"] in manifests else []} for r in found.records]
    fields = [
        fact(
            "records",
            "Their records (pseudonymised ids), by snapshot",
            rows,
            sorted(set(manifests.values())),
            note=PSEUDONYM_NOTE,
        ),
        fact(
            "raw_records", "Records at the source", sum(not r["derived"] for r in rows), sorted(set(manifests.values()))
        ),
        fact(
            "derived_records",
            "Records derived from them",
            sum(r["derived"] for r in rows),
            sorted(set(manifests.values())),
        ),
        fact("snapshots", "Dataset snapshots holding them", found.versions, sorted(set(manifests.values()))),
    ]
    return section("inventory", "What the store holds of them", fields, "GDPR Art. 17(1), 30")


def _models_section(conn: Connection, found: Found, cites: Citations) -> dict[str, Any]:
    rows = []
    for version in found.models:
        aliases = sorted(
            a for a, moves in registry.aliases(conn, version.name).items() if moves[-1].version == version.version
        )
        rows.append({"model": version.ref, "aliases_now": aliases, "cites": [cites.attestation(version)]})
    fields = [
        fact(
            "models",
            "Models trained on their records",
            rows,
            sorted({c for r in rows for c in r["cites"]}),
            note="models trained on personal data are not anonymous by default (EDPB Opinion 28/2024)",
        ),
        blank(
            "retrain_decision",
            "Retrain or keep, per model",
            "for each model: no action (with the anonymity "
            "evidence), retrain at the next cycle by a date, retrain now, unlearn, or retire",
        ),
        blank("retrain_date", "Decided on, and by when", "the date of the decision and of the action"),
    ]
    return section("models", "Models affected", fields, "EDPB Opinion 28/2024; ICO guidance on AI")


def _decisions_section(found: Found, cites: Citations) -> dict[str, Any]:
    rows = []
    for item in found.decisions:
        rows.append(
            {
                "decision": item.decision_id,
                "time": item.time,
                "model": item.ref,
                "payload": "not kept" if item.payload_digest is None else "encrypted under their key",
                "cites": [cites.decision(item)],
            }
        )
    fields = [
        fact("decisions", "Decisions about them", rows, sorted({c for r in rows for c in r["cites"]})),
        fact(
            "data_key",
            "Their data key",
            found.key_state,
            [c for r in rows for c in r["cites"]][:1],
            note=f"destroyed at {found.shredded_at}" if found.shredded_at else "",
        ),
    ]
    return section("decisions", "Decisions about them", fields, "GDPR Art. 15, 17, 22")


def _retention_section(conn: Connection, found: Found, held: list[Hold], cites: Citations) -> dict[str, Any]:
    now = datetime.fromisoformat(utc_now())
    recent = [d for d in found.decisions if now - datetime.fromisoformat(d.time) < LOG_RETENTION]
    hold_cites = [
        cites.event(e) for h in held for e in _events(conn, sa.select(audit_events).where(audit_events.c.seq == h.seq))
    ]
    fields = [
        fact(
            "holds",
            "Holds in force",
            [{"hold": h.seq, "placed": h.at, "by": h.actor, "reason": h.reason} for h in held],
            hold_cites,
            note="a hold (AI Act Art. 73(6), a legal claim) blocks erasure until released",
        ),
        fact(
            "recent_log_entries",
            "Log entries under the six-month retention",
            len(recent),
            [cites.decision(d) for d in recent],
            note="AI Act Art. 19, 26(6): the entries stay (they hold digests, "
            "not data); only the payloads are shredded, so the log stays complete",
        ),
        fact(
            "documentation",
            "Technical documentation kept",
            "attestations and reports: digests, not their data",
            fill=REVIEW,
            note="AI Act Art. 18: ten years",
        ),
    ]
    return section("retention", "Retention checked before erasure", fields, "AI Act Art. 18, 19, 26(6), 73(6)")


def _reach_section(found: Found) -> dict[str, Any]:
    plain = len(found.records)
    fields = [
        fact(
            "reaches",
            "What crypto-shredding reaches",
            f"every copy of their {sum(d.payload_digest is not None for d in found.decisions)} encrypted decision "
            "payload(s) — replicas, backups, exported bundles — unreadable at once, without rewriting the log",
            fill=REVIEW,
            note="encrypted data stays personal data while any copy of the key exists: include key backups and escrow",
        ),
        fact(
            "does_not_reach",
            "What it does not reach",
            [
                f"{plain} plaintext record(s) in {len(found.versions)} dataset snapshot(s), listed above",
                f"the weights of {len(found.models)} model(s) trained on them",
                "copies outside this store: exports, caches, analytics, third parties",
                "their pseudonym in decision entries, linkable while the store's subject-HMAC key exists",
            ],
            fill=REVIEW,
            note="no regulator treats crypto-shredding alone as erasure: it is erasure plus evidence",
        ),
    ]
    return section(
        "reach",
        "What erasure by crypto-shredding does and does not do",
        fields,
        "EDPB Guidelines 02/2025; EDPB CEF 2025 report",
    )


def _execution_section(
    conn: Connection, pseudo: str, found: Found, cites: Citations, gaps: list[str]
) -> dict[str, Any]:
    done = erased(conn, pseudo)
    if not done:
        gaps.append("not executed: this is the impact of an erasure, nothing was destroyed")
        return section("execution", "Erasure executed", [fact("executed", "Executed", False)])
    last = done[-1]
    cited = [cites.event(last)]
    shred_seq = last.payload.get("shred_event")
    if shred_seq is not None:
        shred = _events(conn, sa.select(audit_events).where(audit_events.c.seq == shred_seq))
        cited += [cites.event(e) for e in shred if e.action == decision_audit.SHRED_ACTION]
    fields = [
        fact("executed", "Executed", True, cited),
        fact("erased_at", "Erased at", last.payload["erased_at"], cited),
        fact("payloads_shredded", "Decision payloads made unreadable", last.payload["payloads"], cited),
        fact(
            "records_marked",
            "Records marked as erased",
            len(last.payload["records"]),
            cited,
            note="the snapshots above still hold them: the next snapshot of each must leave them out",
        ),
        fact("retrain", "Models to review for retraining", last.payload["models"], cited),
    ]
    fields.append(_later_snapshots(conn, found, last, cites, gaps))
    return section("execution", "Erasure executed", fields, "GDPR Art. 5(2), 17")


def _later_snapshots(
    conn: Connection, found: Found, last: audit.Event, cites: Citations, gaps: list[str]
) -> dict[str, Any]:
    """The snapshots made after the erasure that still hold a record it marked: each one is a gap."""
    marked = {(r["ref"], r["record"]) for r in last.payload["records"]}
    later: list[dict[str, Any]] = []
    for ref in found.versions:
        version = artifacts.get(conn, *_split(ref))
        if version is None or version.created_at <= last.payload["erased_at"] or version.records is None:
            continue
        held = [r["record"] for r in found.records if r["ref"] == ref and (ref, r["record"]) not in marked]
        if held:
            later.append(
                {
                    "snapshot": ref,
                    "made": version.created_at,
                    "records": len(held),
                    "cites": [cites.records(ref, version.records["manifest"])],
                }
            )
    if later:
        gaps.append(
            f"{len(later)} snapshot(s) made after the erasure still hold their records: "
            + ", ".join(item["snapshot"] for item in later)
        )
    return fact(
        "later_snapshots",
        "Snapshots made since that still hold their records",
        later,
        model_facts.cited(later) or [cites.event(last)],
        note="a snapshot made after the erasure must leave the marked records out",
    )


def _split(ref: str) -> tuple[str, int]:
    name, _, number = ref.rpartition("@")
    return name, int(number)
