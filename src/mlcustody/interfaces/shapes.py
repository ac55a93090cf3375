"""Every JSON document that ``--json`` prints (and the server will return), built in one place.

Each document carries ``"schema": "mlcustody.<kind>/v1"``. ``FIELDS`` documents the top-level fields
of each kind; docs/cli.md is generated from it and a test checks every command's output against it,
so the documentation and the output cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcustody._canonical import json_number
from mlcustody.workspace.results import CAPTURE_TAG

if TYPE_CHECKING:  # the CLI imports this module before it knows whether it needs the database layer
    from mlcustody.capture.redact import Redaction
    from mlcustody.checks import Problem
    from mlcustody.errors import CustodyError
    from mlcustody.forensics.attribution_investigation import Investigation
    from mlcustody.forensics.decision_records import DecisionRecords, InfluentialRecord
    from mlcustody.ledger.bundle.check import BundleCheck
    from mlcustody.ledger.bundle.export import Exported
    from mlcustody.ledger.bundle.reproduce import Reproduction
    from mlcustody.ledger.decisions.queries import Decision, Receipt
    from mlcustody.ledger.keys import KeyChange, KeyInfo
    from mlcustody.ledger.registry.versions import AliasMove, ModelVersion
    from mlcustody.lineage.graph import ColumnLineage, Graph, Node
    from mlcustody.lineage.record_trace import RecordNode, Trace
    from mlcustody.metadata.artifacts import ArtifactVersion
    from mlcustody.metadata.audit import Event
    from mlcustody.metadata.gc import GcPlan
    from mlcustody.metadata.runs.store import IO, Run
    from mlcustody.storage.checkout import CheckoutResult
    from mlcustody.storage.diff import Change, TreeDiff
    from mlcustody.storage.dir_manifest import Entry
    from mlcustody.workspace.results import (
        DecisionTrace,
        FoundRecord,
        ImportReport,
        ModelDetails,
        RecordDiffReport,
        RunDetails,
        VerifyReport,
    )

ARTIFACT_FIELDS = [
    "ref",
    "name",
    "version",
    "type",
    "kind",
    "path",
    "digest",
    "size",
    "file_count",
    "meta",
    "tags",
    "author",
    "message",
    "created_at",
]

FIELDS: dict[str, dict[str, str]] = {
    "error": {"error": "{code, message, hint, exit_code}: what went wrong and how to fix it"},
    "init": {
        "root": "workspace directory",
        "db": "metadata database URL (password hidden)",
        "link_mode": "copy | hardlink | symlink | reflink",
        "revision": "schema revision",
    },
    "migrate": {"revision": "schema revision the database is at now"},
    "add": {
        "results": "list of {created: bool, artifact}; created is false when nothing changed "
        "and artifact is then the existing latest version"
    },
    "status": {
        "clean": "true when every artifact matches the version it is compared with",
        "artifacts": "list of {ref, path, state: unchanged|modified|missing, changes: diff summary "
        "(as in diff) or null, checked_out, latest}: ref is the version compared with — the one "
        "`checkout` restored at the path (checked_out true), else the latest — and latest the latest version's ref",
    },
    "ls": {"artifacts": "list of artifact (latest version of each name, or every version with --all)"},
    "show": {
        "artifact": "the artifact version (artifact.meta.records summarises a record manifest: manifest digest, "
        "scheme, count, format, key, columns, stats)",
        "history": "list of {version, digest, created_at, author, message} of every version of the name",
        "files": "list of {path, size, mode, digest}, with --files, else null",
        "stats": "with --stats: {column: {type, arrow_type, count, nulls, distinct_approx, min, max, mean, std, "
        "quantiles, top (null for mostly-distinct columns)}}, else null",
        "found": "with --record/--fingerprint: list of {record_id, fingerprint, source, values, raw (the line, "
        "for line formats), verified}, else null",
    },
    "record_diff": {
        "a": "artifact",
        "b": "artifact",
        "matched_by": "record_id (both versions keyed alike) or fingerprint (multiset match)",
        "summary": "{added, removed, changed, unchanged} record counts",
        "examples": "{added, removed, changed}: the records of each kind in id order — every one, or the first N "
        "with --limit N — with ids, fingerprints and sources; the first 100 changed records also have columns: "
        "{column: [old value, new value]} for each column that changed",
        "limit": "the most records listed of each kind (--limit N), or null when the lists are complete",
        "columns": "schema changes: {added_columns, removed_columns, type_changes}",
        "stats": "{column: {statistic: [old, new]}} for statistics that moved",
    },
    "diff": {
        "a": "artifact",
        "b": "artifact",
        "summary": "{added, removed, modified, unchanged} counts",
        "added": "list of file",
        "removed": "list of file",
        "modified": "list of {path, old: file, new: file}",
    },
    "checkout": {
        "artifact": "the version checked out",
        "target": "absolute path written",
        "written": "files written",
        "deleted": "files removed",
        "unchanged": "files already right",
    },
    "verify": {
        "ok": "true when no problem was found",
        "checked": "{events, artifact_versions, sealed_runs, objects, bytes, decisions, checkpoints}",
        "problems": "list of {kind, where, detail}; the decision log's anchors, checkpoints and key rows are "
        "checked too (decision_log_truncated, checkpoint_deleted, shred_unaudited, unsealed_tail, …; see "
        "decisions_verify)",
    },
    "log": {"events": "list of {seq, time, actor, action, payload, prev_digest, digest}, newest first"},
    "gc": {
        "deleted": "whether anything was removed (--delete)",
        "unreferenced": "{count, bytes, digests}",
        "stale_tmp": "temp files left by interrupted commands",
        "kept": "objects still referenced",
        "freed_bytes": "bytes removed",
    },
    "demo": {"workspace": "directory the demo ran in", "steps": "list of {title, command, exit_code}"},
    "keys": {
        "keys": "list of key, oldest first: {keyid (securesystemslib's), name, type: ecdsa-p256|ed25519, scheme "
        "(securesystemslib), status: active|retired|revoked, valid_from, valid_until (when retired or revoked, "
        "null while active), retired_at, revoked_at, reason (why revoked, else why retired), created_at, actor, "
        "public_pem}; a revoked key's signatures are never trusted"
    },
    "public_key": {
        "key": "the key (as in keys), its PEM in public_pem",
        "out": "the file the PEM was written to (--out), else null",
    },
    "key": {
        "action": "generated | rotated | revoked",
        "key": "the key generated, rotated in or revoked (as in keys)",
        "retired": "keys rotate: the key it replaced, now retired (as in keys); else null",
    },
    "run": {
        "run": "run summary: {id, name, status (running|finished|failed|killed), parent, started_at, ended_at, "
        "duration_seconds, exit_status, error, actor, host, command, seal, params, metrics}",
        "tags": "{key: value}",
        "metrics": "{key: {value, step, min, max, count}}: latest value of each metric and its range "
        "(NaN and infinities as the strings NaN, Infinity, -Infinity)",
        "inputs": "list of {path, kind, digest, size, artifact (NAME@VERSION or null), source: declared|captured|sdk}",
        "outputs": "list of {path, kind, digest, size, artifact, source}",
        "code": "{git: {commit, branch, remote, dirty, changed, diff (object digest of the dirty diff), root} "
        "or null, entry: {path, digest, size} or null}",
        "environment": "{python: {version, implementation, executable, packages: {name: version}} or null, os, "
        "hardware, container, files: {name: digest}, variables}; null while running or when the run was killed",
        "processes": "commands the run started (argv lists)",
        "children": "ids of runs started inside this one",
        "capture": "what `custody run` could not make whole versions of, or null: {files: [{path, role, state: "
        "deleted|changed|unstable|digest-only, why}], manifests: [{path, key, manifest, count, why}], links: [{output, "
        "input, relation: inferred-key|inferred-fingerprint|null, method, columns, matched, …}], notes: [text]}",
        "redacted": "list of {where (command[I], processes[P][I], environment.variables.NAME), rule "
        "(url-password, secret-option, secret-assignment, token, config)}: secrets replaced by [REDACTED:RULE] "
        "before the run was recorded (docs/runs.md)",
    },
    "runs": {"runs": "list of run summary (as in run.run), newest first unless --sort"},
    "trace_record": {
        "direction": "back (to raw sources) or down (to everything the record reached)",
        "records": "list of trace nodes, one per record matched (a fingerprint can match several): {ref, record_id, "
        "source (file:LINE or file#ROW of a source record, else null), step ({run, run_name, commit, relation} "
        "linking it to the next nodes, or null), links: [trace node]}",
        "sources": "back: the distinct source records reached, as {ref, record_id, source}; down: []",
        "models": "down: model versions trained on a dataset version the record reached; back: []",
    },
    "model": {
        "model": "model version: {ref, name, version, artifact (NAME@V of the model files), digest (BLAKE3), sha256, "
        "run, lineage_digest, attestation (object digest of the DSSE envelope), keyid, created_at, actor}",
        "aliases": "{alias: {version (current, null if removed), "
        "history: [{alias, seq, version, previous, reason, actor, at}]}}",
        "run": "summary of the training run (as in run.run), or null",
        "code": "the run's code record (git commit, branch, remote, dirty diff, entry script), or null",
        "environment": "{python, packages (count), os} of the run, or null",
        "datasets": "training inputs the attestation names: list of {name, uri, digest, annotations: {type, kind, "
        "role: input, learnt: captured|declared|sdk, recordManifest, records}}; a digest-only file has a file: uri",
        "sources": "raw sources at the roots of the model's lineage the attestation names (annotations.role "
        "raw-source): list of {name, uri, digest, annotations}",
        "envelope": "with --attestation: the DSSE envelope as stored (payload is the in-toto Statement), else null",
    },
    "models": {"models": "list of model version (as in model.model)"},
    "model_alias": {
        "name": "model name",
        "alias": "alias",
        "version": "version it points at now (null: removed)",
        "previous": "version it pointed at before",
        "reason": "why",
        "actor": "who",
        "at": "when",
    },
    "model_verify": {
        "model": "model version (as in model.model)",
        "ok": "true when every digest the attestation names still matches the store and the signature holds",
        "problems": "list of {kind, where, detail}: signature_invalid, model_modified, run_modified, "
        "dependency_modified, byproduct_modified, lineage_modified, parameters_modified, attestation_*",
    },
    "model_verify_oms": {
        "path": "the model file or directory checked",
        "ok": "true when the OMS bundle's signature verifies with the given key and every signed file matches",
        "problems": "list of {kind, where, detail}: file_modified, file_missing, file_unsigned, symlink_refused, "
        "algorithm_mismatch (where: the file), signature_invalid, key_mismatch, statement_invalid (where: the bundle's "
        "JSON path)",
    },
    "run_diff": {
        "a": "run summary",
        "b": "run summary",
        "differences": "{status, params, metrics, code, python, packages, inputs, outputs}: each {key: [a, b]} "
        "listing only what differs",
    },
    "lineage": {
        "origin": "the node the walk started from: NAME@VERSION for an artifact version, the id of a run",
        "direction": "up | down | both",
        "depth": "the --depth limit (entity→run and run→entity steps; with --column, runs), or null",
        "lineage_digest": "Merkle digest of the origin's whole upstream graph, whatever --depth says (docs/lineage.md)",
        "nodes": "list of {id, kind: artifact|file|run|agent, label, up, down (steps from the origin on that side, "
        "or null), attributes}; empty with --column",
        "edges": "list of {source, target, kind: used|generated|derived_from|associated_with, run (the run between "
        "the entities of a derived_from), relation (record lineage: map, filter, join, …)}, each from effect to "
        "cause; empty with --column",
        "sources": "raw sources at the roots of the upstream graph (nothing recorded made them): list of {id, kind: "
        "artifact|file, path, version, digest}; empty when not walking up",
        "columns": "with --column: {origin: {artifact, column}, hops: list of {distance, run, output, input}, sources "
        "(columns computed from nothing recorded), unexplored (left at the depth limit)}, else null",
    },
    "export": {
        "model": "the model version exported (NAME@VERSION)",
        "bundle": "path of the .tar.gz written",
        "size": "bytes of the .tar.gz",
        "members": "files in the bundle besides manifest.json",
        "content_bytes": "their total size before compression",
        "with_data": "true when the datasets' files are in the bundle",
    },
    "bundle_verify": {
        "bundle": "path of the bundle checked (verify --bundle, offline)",
        "model": "the model version it is of (NAME@VERSION), or null when unreadable",
        "ok": "true when every member, the signature, the model files, every attested digest, the run's seal "
        "and the lineage digest hold",
        "members": "members listed in manifest.json",
        "problems": "list of {kind, where (the member), detail}: member_missing, member_modified, member_unlisted, "
        "manifest_corrupt, attestation_corrupt, signature_invalid, key_revoked, model_modified, "
        "dependency_modified, byproduct_modified, run_modified, parameters_modified, code_modified, lineage_modified",
    },
    "reproduce": {
        "model": "the model version (NAME@VERSION)",
        "run": "id of the run that trained it",
        "to": "the directory everything was written to",
        "command": "the run's command line (list of arguments), to be run from `to`",
        "entry": "the entry script written (relative to `to`), or null when the store does not hold it",
        "params": "the params file written (relative to `to`): the run's params as JSON",
        "diff": "the dirty diff written (relative to `to`), or null when the code was clean",
        "git": "{commit, branch, remote, dirty} of the run's code",
        "inputs": "list of {ref, path}: input data versions checked out at their workspace-relative paths",
        "missing": "inputs that could not be materialised (files read that are no artifact version)",
    },
    "decisions": {
        "decisions": "list of decision, in log order: {position (leaf index in the log), decision_id, time, model, "
        "version, ref (NAME@VERSION), input_digest (record fingerprint of the inputs), output, subject (HMAC-SHA256 "
        "of the subject id, or null), payload_digest (SHA-256 of the encrypted inputs, or null), payload_key, "
        "entry_hash (RFC 6962 leaf hash)}"
    },
    "decision_import": {
        "path": "the prediction log imported",
        "count": "decisions imported",
        "first_position": "log position of the first one",
        "versions": "model versions (NAME@VERSION) the decisions were attributed to",
        "skipped": "with --resume: decisions already in the log with the same content, not logged again",
    },
    "decision_receipt": {
        "decision": "the decision (as in decisions)",
        "entry": "the canonical entry (RFC 8785 JSON) whose leaf hash the proof includes",
        "leaf_hash": "SHA-256(0x00 || entry), hex",
        "size": "tree size of the checkpoint the proof is against",
        "vkey": "note verifier key of the log (name+keyid+base64 key) to check the checkpoint's signature",
        "proof": "the c2sp.org/tlog-proof@v1 text (index, inclusion hashes, signed checkpoint)",
        "out": "file the proof was written to (--out), or null",
    },
    "decisions_verify": {
        "ok": "true when every entry, the tree and every signed checkpoint match and nothing is unsealed",
        "checked": "{decisions, checkpoints}",
        "problems": "list of {kind, where, detail}: decision_modified, decision_missing (deleted or reordered row, "
        "where = decisions[POSITION]), checkpoint_mismatch, checkpoint_modified, checkpoint_signature_invalid, "
        "checkpoint_inconsistent, checkpoint_deleted, checkpoint_unrecorded, decision_log_truncated (the log is "
        "shorter than a checkpoint the audit chain or the witnessed head file .custody/decision-head records), "
        "decision_head_corrupt, shred_unaudited, shred_undone, row_modified / row_unrecorded / row_deleted "
        "(decision_subjects[ID], store_info[decision_subject_key]), unsealed_tail",
    },
    "kek_rotate": {
        "previous": "KEK ids the keys were wrapped under before (unwrapped: stored before wrapping)",
        "current": "id of the KEK every key is wrapped under now",
        "rewrapped": "keys re-wrapped (data keys and the subject-HMAC key; shredded keys are gone)",
        "provider": "where the KEK is kept ($CUSTODY_KEK or the key file)",
    },
    "decisions_seal": {
        "sealed": "true when a checkpoint was signed now, false when the log was sealed (or empty) already",
        "size": "decisions the new checkpoint seals, or null",
    },
    "trace_decision": {
        "decision": "the decision (as in decisions)",
        "aliases": "aliases of the model that pointed at its version when the decision was made",
        "model": "the model version (as in model.model)",
        "attestation": "{ok, problems}: the model version's attestation re-verified now (as in model_verify)",
        "run": "the training run (as in run.run), or null",
        "code": "the run's code record, or null",
        "environment": "{python, packages (count), os} of the run, or null",
        "datasets": "training inputs the attestation names (as in model.datasets)",
        "sources": "raw sources at the roots of the model's lineage (as in model.sources)",
        "records": "with --records N: {dataset (the training set attributed over, NAME@VERSION), features, label "
        "(column names), method, measure (what delta and prediction mean), prediction (the model's own output), "
        "top: list of {rank, record_id, delta (signed), label, features ({column: value}), sources (the raw "
        "records it came from: {ref, record_id, source (file:LINE or file#ROW)}), reached_through (tracked | "
        "inferred | mixed | none: the kind of record links followed), trace (the record followed back, as a trace "
        "node of trace_record)}}, largest |delta| first; else null",
    },
    "decision_forget": {
        "subject": "the subject id given",
        "payloads": "encrypted decision inputs made unreadable (0 when the subject had no key)",
    },
    "investigation.attribution": {
        "model": "{ref, digest, run}: the model version attributed",
        "decision": "the decision id attributed (--decision), or null",
        "input_file": "the inputs file attributed (--input), or null",
        "inputs": "{feature: value}: the point explained, in the model's feature order",
        "dataset": "{ref, digest}: the training set attributed over, row for row the rows the model was fitted on",
        "features": "feature columns, in the model's order",
        "label": "the training set's label column",
        "method": "influence | loo-exact | forest-kernel | boostin | knn",
        "measure": "what delta and prediction mean for this method",
        "prediction": "the reloaded model's own output for the inputs",
        "raised": "the records that most raised the prediction (negative delta: leaving them out lowers it), "
        "largest effect first: list of {rank, record_id, delta, label, features, sources, trace} as in "
        "trace_decision.records.top; [] for knn",
        "lowered": "the records that most lowered it (positive delta), same items; [] for knn",
        "similar": "knn only: the most similar records of the predicted label (delta = similarity), same items",
        "cache": "boostin: {object}: the store object holding the precomputed leaves and derivatives; else null",
        "exact": "with --exact: {seed, seed_from, output (the output compared), reproduced (a refit on all rows, "
        "equal to the model's own), retrains: list of {side (raised|lowered), removed (count), estimated (sum "
        "of their deltas, null for knn), actual (the refit's change of output)}}; else null",
    },
}
# An artifact is {ref, name, version, type, kind, path, digest, size, file_count, meta, tags, author,
# message, created_at}; a file is {path, size, mode, digest}.


def document(kind: str, /, **fields: Any) -> dict[str, Any]:
    """A top-level document of ``kind``; refuses fields that FIELDS does not document."""
    undocumented = set(fields) - set(FIELDS[kind])
    if undocumented:
        raise KeyError(f"undocumented fields {sorted(undocumented)} in mlcustody.{kind}/v1")
    return {"schema": f"mlcustody.{kind}/v1", **fields}


def artifact(version: ArtifactVersion) -> dict[str, Any]:
    return {field: getattr(version, field) for field in ARTIFACT_FIELDS}


def file(entry: Entry) -> dict[str, Any]:
    return {"path": entry.path, "size": entry.size, "mode": f"{entry.mode:o}", "digest": entry.digest}


def error(exc: CustodyError) -> dict[str, Any]:
    return document(
        "error", error={"code": exc.code, "message": exc.message, "hint": exc.hint, "exit_code": exc.exit_code}
    )


def tree_diff(changes: TreeDiff) -> dict[str, Any]:
    def modified(change: Change) -> dict[str, Any]:
        assert change.old is not None and change.new is not None
        return {"path": change.path, "old": file(change.old), "new": file(change.new)}

    return {
        "summary": diff_summary(changes),
        "added": [file(c.new) for c in changes.added if c.new],
        "removed": [file(c.old) for c in changes.removed if c.old],
        "modified": [modified(c) for c in changes.modified],
    }


def diff_summary(changes: TreeDiff) -> dict[str, int]:
    return {
        "added": len(changes.added),
        "removed": len(changes.removed),
        "modified": len(changes.modified),
        "unchanged": changes.unchanged,
    }


def history_item(version: ArtifactVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "digest": version.digest,
        "created_at": version.created_at,
        "author": version.author,
        "message": version.message,
    }


def event(item: Event) -> dict[str, Any]:
    return item.as_dict()


def problems(items: Iterable[Problem]) -> list[dict[str, str]]:
    return [item.as_dict() for item in items]


def key(info: KeyInfo) -> dict[str, Any]:
    """One signing key (``keys ls``, ``keys generate|rotate|revoke``)."""
    return {
        "keyid": info.keyid,
        "name": info.name,
        "type": info.type,
        "scheme": info.scheme,
        "status": info.status,
        "valid_from": info.valid_from,
        "valid_until": info.valid_until,
        "retired_at": info.retired_at,
        "revoked_at": info.revoked_at,
        "reason": info.reason,
        "created_at": info.created_at,
        "actor": info.actor,
        "public_pem": info.public_pem,
    }


def keys(found: Iterable[KeyInfo]) -> dict[str, Any]:
    return document("keys", keys=[key(info) for info in found])


def key_change(action: str, change: KeyChange) -> dict[str, Any]:
    retired = key(change.retired) if change.retired is not None else None
    return document("key", action=action, key=key(change.key), retired=retired)


def checkout(version: ArtifactVersion, target: Path, result: CheckoutResult) -> dict[str, Any]:
    return document(
        "checkout",
        artifact=artifact(version),
        target=str(target),
        written=result.written,
        deleted=result.deleted,
        unchanged=result.unchanged,
    )


def gc(found: GcPlan, freed: int, deleted: bool) -> dict[str, Any]:
    return document(
        "gc",
        deleted=deleted,
        unreferenced={
            "count": len(found.unreferenced),
            "bytes": found.unreferenced_bytes,
            "digests": list(found.unreferenced),
        },
        stale_tmp=list(found.stale_tmp),
        kept=found.kept,
        freed_bytes=freed,
    )


def run_summary(item: Run) -> dict[str, Any]:
    start, end = item.start, item.end
    return {
        "id": start.id,
        "name": start.name,
        "status": item.status,
        "parent": start.parent_id,
        "started_at": start.started_at,
        "ended_at": end.ended_at if end else None,
        "duration_seconds": _seconds(start.started_at, end.ended_at) if end else None,
        "exit_status": end.exit_status if end else None,
        "error": end.error if end else "",
        "actor": start.actor,
        "host": start.host,
        "command": start.command,
        "seal": end.seal if end else None,
        "params": item.params,
        "metrics": {key: json_number(summary.value) for key, summary in sorted(item.metrics.items())},
    }


def run(details: RunDetails) -> dict[str, Any]:
    item = details.run
    return document(
        "run",
        run=run_summary(item),
        tags=item.tags,
        metrics={
            key: {
                "value": json_number(m.value),
                "step": m.step,
                "min": json_number(m.min),
                "max": json_number(m.max),
                "count": m.count,
            }
            for key, m in sorted(item.metrics.items())
        },
        inputs=[_io(x) for x in item.files("input")],
        outputs=[_io(x) for x in item.files("output")],
        code=details.code,
        environment=details.environment,
        processes=item.end.processes if item.end else [],
        children=details.children,
        capture=capture_report(item),
        redacted=[r.as_dict() for r in redactions(details)],
    )


def capture_report(item: Run) -> dict[str, Any] | None:
    """The run's ``custody.capture`` tag (files kept digest-only, manifests, inferred links, notes), parsed."""
    text = item.tags.get(CAPTURE_TAG)
    return json.loads(text) if text else None


def redactions(details: RunDetails) -> list[Redaction]:
    """What was redacted from a run before it was recorded (the markers its values carry)."""
    from mlcustody.capture import redact

    item = details.run
    processes = item.end.processes if item.end else []
    return redact.found({"command": item.start.command, "processes": processes, "environment": details.environment})


def run_diff(a: RunDetails, b: RunDetails, differences: dict[str, Any]) -> dict[str, Any]:
    metrics = {k: [json_number(x) if isinstance(x, float) else x for x in v] for k, v in differences["metrics"].items()}
    return document(
        "run_diff", a=run_summary(a.run), b=run_summary(b.run), differences={**differences, "metrics": metrics}
    )


def trace_record(found: Trace, down: bool) -> dict[str, Any]:
    ends = {(n.ref, n.record_id): n for root in found.roots for n in root.sources()} if not down else {}
    return document(
        "trace_record",
        direction="down" if down else "back",
        records=[_trace_node(root) for root in found.roots],
        sources=[{"ref": n.ref, "record_id": n.record_id, "source": n.source} for _, n in sorted(ends.items())],
        models=found.models,
    )


def _trace_node(node: RecordNode) -> dict[str, Any]:
    step = node.step
    return {
        "ref": node.ref,
        "record_id": node.record_id,
        "source": node.source,
        "step": {"run": step.run_id, "run_name": step.run_name, "commit": step.commit, "relation": step.relation}
        if step
        else None,
        "links": [_trace_node(link) for link in node.links],
    }


def model_version(item: ModelVersion) -> dict[str, Any]:
    return {"ref": item.ref, **item.__dict__}


def model(details: ModelDetails, with_envelope: bool) -> dict[str, Any]:
    run = details.run
    environment = run.environment if run else None
    python = (environment or {}).get("python") or {}
    predicate = details.statement.get("predicate", {})
    dependencies = predicate.get("buildDefinition", {}).get("resolvedDependencies", [])
    return document(
        "model",
        model=model_version(details.version),
        aliases={
            alias: {"version": moves[-1].version, "history": [move.__dict__ for move in moves]}
            for alias, moves in sorted(details.aliases.items())
        },
        run=run_summary(run.run) if run else None,
        code=run.code if run else None,
        environment={
            "python": python.get("version"),
            "packages": len(python.get("packages") or {}),
            "os": (environment or {}).get("os"),
        }
        if environment
        else None,
        datasets=[d for d in dependencies if _role(d) == "input"],
        sources=[d for d in dependencies if _role(d) == "raw-source"],
        envelope=json.loads(details.envelope) if with_envelope else None,
    )


def _role(dependency: dict[str, Any]) -> str | None:
    """What an attested dependency is to the model: a training ``input``, a ``raw-source`` upstream, or
    neither (code, environment). Attestations made before roles were written name inputs by URI only."""
    annotations = dependency.get("annotations") or {}
    uri = str(dependency.get("uri", ""))
    if "role" in annotations:
        return str(annotations["role"])
    return "input" if uri.startswith("mlcustody:artifact/") else None


def model_alias(name: str, move: AliasMove) -> dict[str, Any]:
    return document(
        "model_alias",
        name=name,
        alias=move.alias,
        version=move.version,
        previous=move.previous,
        reason=move.reason,
        actor=move.actor,
        at=move.at,
    )


def _io(item: IO) -> dict[str, Any]:
    return {k: v for k, v in item.__dict__.items() if k != "role"}


def _seconds(start: str, end: str) -> float:
    begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
    return round((datetime.fromisoformat(end.replace("Z", "+00:00")) - begin).total_seconds(), 6)


def found_record(item: FoundRecord) -> dict[str, Any]:
    """One record found by ``show --record/--fingerprint``."""
    return {
        "record_id": item.hit.record_id,
        "fingerprint": item.hit.fingerprint,
        "source": item.hit.source,
        "values": item.record.values,
        "raw": item.record.raw,
        "verified": item.record.verified,
    }


def record_diff(a: ArtifactVersion, b: ArtifactVersion, report: RecordDiffReport) -> dict[str, Any]:
    found = report.diff
    return document(
        "record_diff",
        a=artifact(a),
        b=artifact(b),
        matched_by=found.matched_by,
        summary={
            "added": found.added,
            "removed": found.removed,
            "changed": found.changed,
            "unchanged": found.unchanged,
        },
        examples=found.examples,
        limit=report.limit,
        columns=report.schema,
        stats=report.stats,
    )


def lineage(
    origin: str,
    direction: str,
    depth: int | None,
    digest: str,
    found: Graph | None,
    columns: ColumnLineage | None = None,
) -> dict[str, Any]:
    """``custody lineage``: the graph around a node, or with --column the walk of one column."""
    from mlcustody.lineage import export

    graph = export.as_dict(found) if found is not None else {"nodes": [], "edges": []}
    return document(
        "lineage",
        origin=origin,
        direction=direction,
        depth=depth,
        lineage_digest=digest,
        nodes=graph["nodes"],
        edges=graph["edges"],
        sources=[source_node(n) for n in found.sources()] if found is not None and found.up else [],
        columns=export.columns_dict(columns) if columns is not None else None,
    )


def source_node(node: Node) -> dict[str, Any]:
    """A raw source at the root of a lineage graph: what it is and the digest of its bytes."""
    a = node.attributes
    return {
        "id": node.id,
        "kind": node.kind,
        "path": a.get("path"),
        "version": a.get("version"),
        "digest": a.get("digest"),
    }


def export_bundle(found: Exported) -> dict[str, Any]:
    return document(
        "export",
        model=found.model,
        bundle=str(found.path),
        size=found.size,
        members=found.members,
        content_bytes=found.content_bytes,
        with_data=found.with_data,
    )


def bundle_verify(found: BundleCheck) -> dict[str, Any]:
    return document(
        "bundle_verify",
        bundle=str(found.path),
        model=found.model,
        ok=not found.problems,
        members=found.members,
        problems=problems(found.problems),
    )


def reproduce(found: Reproduction) -> dict[str, Any]:
    return document(
        "reproduce",
        model=found.model,
        run=found.run,
        to=str(found.to),
        command=found.command,
        entry=found.entry,
        params=found.params,
        diff=found.diff,
        git=found.git,
        inputs=[{"ref": ref, "path": path} for ref, path in found.inputs],
        missing=found.missing,
    )


def decision(item: Decision) -> dict[str, Any]:
    return {**item.__dict__, "ref": item.ref}


def decisions(items: Iterable[Decision]) -> dict[str, Any]:
    return document("decisions", decisions=[decision(d) for d in items])


def decisions_seal(size: int | None) -> dict[str, Any]:
    return document("decisions_seal", sealed=size is not None, size=size)


def decision_import(report: ImportReport) -> dict[str, Any]:
    return document("decision_import", **report.__dict__)


def decision_receipt(found: Receipt, out: Path | None) -> dict[str, Any]:
    return document(
        "decision_receipt",
        decision=decision(found.decision),
        entry=found.entry.decode("utf-8"),
        leaf_hash=found.leaf_hash,
        size=found.size,
        vkey=found.vkey,
        proof=found.proof,
        out=str(out) if out is not None else None,
    )


def decisions_verify(report: VerifyReport) -> dict[str, Any]:
    return document(
        "decisions_verify", ok=not report.problems, checked=report.checked, problems=problems(report.problems)
    )


def trace_decision(found: DecisionTrace) -> dict[str, Any]:
    details = model(found.model, False)
    return document(
        "trace_decision",
        decision=decision(found.decision),
        aliases=found.aliases,
        model=details["model"],
        attestation={"ok": not found.problems, "problems": problems(found.problems)},
        run=details["run"],
        code=details["code"],
        environment=details["environment"],
        datasets=details["datasets"],
        sources=details["sources"],
        records=_decision_records(found.records) if found.records is not None else None,
    )


def _link_kinds(node: RecordNode) -> str:
    """How a record was followed back: ``tracked`` links (``_rid``, declared), ``inferred`` ones (shared
    keys or fingerprints of a plain script), ``mixed``, or ``none`` (it is itself a raw record)."""
    kinds: set[str] = set()
    pending = [node]
    while pending:
        current = pending.pop()
        if current.step is not None:
            kinds.add("inferred" if current.step.relation.startswith("inferred-") else "tracked")
        pending.extend(current.links)
    return "mixed" if len(kinds) > 1 else next(iter(kinds), "none")


def _decision_records(found: DecisionRecords) -> dict[str, Any]:
    top = [_influential_record(item) for item in found.records]
    return {
        "dataset": found.dataset,
        "features": found.features,
        "label": found.label,
        "method": found.method,
        "measure": found.measure,
        "prediction": found.prediction,
        "top": top,
    }


def _influential_record(item: InfluentialRecord) -> dict[str, Any]:
    return {
        "rank": item.rank,
        "record_id": item.record_id,
        "delta": item.delta,
        "label": item.label,
        "features": item.features,
        "sources": [{"ref": n.ref, "record_id": n.record_id, "source": n.source} for n in item.sources],
        "reached_through": _link_kinds(item.trace),
        "trace": _trace_node(item.trace),
    }


def investigation_attribution(found: Investigation) -> dict[str, Any]:
    summary, exact = found.found, found.exact
    return document(
        "investigation.attribution",
        model={"ref": found.model.ref, "digest": found.model.digest, "run": found.model.run_id},
        decision=found.decision,
        input_file=found.input_file,
        inputs=found.inputs,
        dataset={"ref": summary.dataset, "digest": found.dataset_digest},
        features=summary.features,
        label=summary.label,
        method=summary.method,
        measure=summary.measure,
        prediction=summary.prediction,
        raised=[_influential_record(item) for item in found.raised],
        lowered=[_influential_record(item) for item in found.lowered],
        similar=[_influential_record(item) for item in found.similar],
        cache={"object": found.cache["object"]} if found.cache is not None else None,
        exact=None
        if exact is None
        else {
            "seed": exact.seed,
            "seed_from": exact.seed_from,
            "output": exact.output,
            "reproduced": exact.reproduced,
            "retrains": [
                {"side": r.side, "removed": r.removed, "estimated": r.estimated, "actual": r.actual}
                for r in exact.retrains
            ],
        },
    )


# -- custody investigate: every investigation is one document, stored as a report artifact ----------------

_CITED = "list of {ref, type, digest (BLAKE3 of the bytes), records (digest of the record manifest, or null)}: every "
_CITED += "version the findings were computed from"
_MODEL = "{ref (NAME@VERSION in the registry), artifact (its file's version), digest, run (training run id), "
_MODEL += "attestation (digest of the signed DSSE envelope), lineage_digest}"
_SLICE = "{rank, conditions: [{column, value (a category) or low/high (a bin, null: unbounded)}], size, errors, "
_SLICE += "error_rate, positive_rate (of predictions), score (SliceLine's), p_value (one-sided Fisher), p_adjusted}"
_SHARE = "{source (raw source version), path, inside, outside (its records in and outside the subset), share_inside, "
_SHARE += "share_outside, lift, rate (its records' share in the subset), p_value (one-sided Fisher), p_adjusted}"
_FLAGGED = "{record_id, label, given_probability (out-of-fold), raw: [{source, record_id, locator (file:LINE)}]}"
_EVIDENCE = "{slice, training_set, missing_columns, inside, outside, label_rate_inside, label_rate_outside, "
_EVIDENCE += "source_mix: [" + _SHARE + "], label_issues: [share of the slice's flagged records per source], "
_EVIDENCE += "flagged: [" + _FLAGGED + "]}"
_LABELS = "{label, features (what the out-of-fold model saw), model, rows, flagged, rate, by_source: [" + _SHARE
_LABELS += "] (inside = flagged; rate = the source's flag rate), records: [" + _FLAGGED + "], listed_limit}"
_REPORT = "{ref, digest}: the report artifact version this document is stored as (linked to the versions it read)"
FIELDS.update(
    {
        "investigation.bias": {
            "model": _MODEL,
            "read": _CITED,
            "source": "what was measured: `dataset NAME@V` (the model's own predictions) or the decision log",
            "result": "{sensitive, label, pos_label, overall, groups: list of {group, count, positives, "
            "selection_rate, tpr, fpr, accuracy (null without a label), intervals: {metric: {low, high}}}, "
            "disparities: list of {name, between_groups, to_overall, interval (bootstrap 95 % of between_groups)}, "
            "warnings, bootstrap: {replicates, seed, method, level}} — fairlearn's definitions",
            "decisions": "with --decisions: {used, not_kept, shredded, without_label} decision counts, else null",
            "report": _REPORT,
        },
        "investigation.slices": {
            "model": _MODEL,
            "read": _CITED,
            "label": "the label column the errors are counted against",
            "columns": "the columns sliced on (numeric ones binned at deciles)",
            "search": "{alpha, min_support, max_conditions, significance, correction, rows, evaluated (slices with "
            "enough support), error_rate, positive_rate, slices: list of " + _SLICE + "}",
            "training": "for the top slices: list of " + _EVIDENCE,
            "report": _REPORT,
        },
        "investigation.case": {
            "model": _MODEL,
            "read": _CITED,
            "run": "the training run: {id, name, status, seal, commit}, or null",
            "training_set": "the training set of that run (as in read)",
            "bias": "as investigation.bias's result, on the data given",
            "slices": "as investigation.slices' search",
            "top_slice": "the training-side evidence of the top slice, as in investigation.slices' training, or null",
            "label_issues": _LABELS,
            "findings": "the story as sentences, in order, each citing the versions and digests it rests on",
            "report": _REPORT,
        },
        "investigation.labels": {
            "read": _CITED,
            "dataset": "the dataset version examined",
            "label_issues": _LABELS,
            "report": _REPORT,
        },
        "investigation.drift": {
            "read": _CITED + " (reference first)",
            "columns": "list of {column, kind, reference_count, current_count, nulls, bins, reference_share, "
            "current_share, psi, chi2, chi2_p, chi2_dof, jensen_shannon, ks, ks_p, ks_mode (exact | asymp | "
            "asymp-bound), wasserstein, wasserstein_normed} — scipy.stats' definitions",
            "report": _REPORT,
        },
    }
)


def plain(value: Any) -> Any:
    """A result value as JSON holds it: dataclasses as objects, tuples as lists, NaN as a string."""
    import dataclasses

    import numpy as np

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return json_number(value)
    return value


def investigation(kind: str, result: Any, report: dict[str, str] | None) -> dict[str, Any]:
    """The document of an investigation; ``report`` None gives the body that is stored and digested."""
    body = plain(result)
    return document(f"investigation.{kind}", **body, **({"report": report} if report is not None else {}))


_MEMBER = "{record_id, label (null without --label), raw: [{source, record_id, locator (file:LINE)}]}"
_DUPLICATES = "{columns (compared), groups, records (in some group), surplus (beyond the first of each), listed: "
_DUPLICATES += "[{fingerprint, size, labels, records: [" + _MEMBER + "]}] (largest first, at most 200), by_source: ["
_DUPLICATES += _SHARE + "] (inside = the copies: every record of a group but its first, in the version's order)}"
FIELDS["investigation.contamination"] = {
    "read": _CITED + " (the dataset first, then --against)",
    "dataset": "the dataset version examined",
    "rows": "its records",
    "label": "the label column given, or null",
    "exact": "exact duplicates by content fingerprint (every value column but the record key): " + _DUPLICATES,
    "conflicting": "with --label: groups equal on everything but the label whose labels differ, as exact; else null",
    "near": "{banding: {threshold, bands, rows, num_perm, seed, p_candidate_at_threshold}, compared (distinct "
    "contents), candidates (pairs verified), pairs (exact Jaccard ≥ threshold), records, truncated_buckets, listed: "
    "[{jaccard, differing (columns), first, second: " + _MEMBER + "}], by_source: [" + _SHARE + "] (inside = the "
    "second record of each pair)}",
    "leakage": "with --against: {against, columns, rows, exact, exact_ratio (its records whose content is here / its "
    "records), near, near_ratio, lineage, lineage_ratio (its records made from a raw record that made one here), "
    "by_source: [{source, path, shared, against_records}], lines: [{source, record_id, locator, dataset_records, "
    "against_records}]}; else null",
    "suspects": "raw sources over-represented among exact, conflicting or near-duplicate records (Bonferroni p < "
    "1e-6): [{source, path, finding, share: " + _SHARE + "}]",
    "sources": "with --by-source: [{source, path, records, share}] of the dataset; else null",
    "slices": "with --by-source: [{slice, conditions, size, share: " + _SHARE + " (p_adjusted over every source × "
    "slice)}], most significant first; else null",
    "report": _REPORT,
}
FIELDS["investigation.decision-drift"] = {
    "model": _MODEL,
    "read": _CITED + " (the model file, then its training set: the reference)",
    "training_set": "the training set its run read",
    "window": "{since, until (exclusive)} of the decisions compared, null: unbounded",
    "decisions": "{used, not_kept, shredded, incomplete (readable but without a compared input)} decision counts",
    "columns": "as investigation.drift's columns, the decisions' inputs being the current sample",
    "report": _REPORT,
}
_EVIDENTLY = "with --evidently-compatible: {columns: [{column, column_type (num | cat), test (ks | chisquare | z | "
_EVIDENTLY += "wasserstein | jensenshannon: Evidently's default for the column's type and size), score, threshold, "
_EVIDENTLY += "drifted}], drifted_columns, share, drift_share, dataset_drift}; else null"
FIELDS["investigation.drift"]["evidently"] = _EVIDENTLY
FIELDS["investigation.decision-drift"]["evidently"] = _EVIDENTLY

# -- interop: imports from MLflow and DVC, exports to CycloneDX, SPDX and OpenLineage ---------------------

_IMPORT_COUNTS = "counts per kind of what this import added"
FIELDS.update(
    {
        "import_mlflow": {
            "source": "the tracking URI read (password hidden)",
            "imported": f"{_IMPORT_COUNTS}: experiments, runs, params, tags, metric_points, artifact_files, "
            "model_versions, aliases",
            "skipped": "counts per kind of what an earlier import had already added (a second import adds nothing)",
            "unmapped": "list of {kind, item, reason}: what could not be imported as it is, and why",
            "runs": "ids of the runs imported (the MLflow run ids)",
            "model_versions": "NAME@VERSION of each model version imported, with MLflow's version number",
        },
    }
)


def mlflow_import(report: Any) -> dict[str, Any]:
    """The document of ``custody import mlflow`` (an ``import_mlflow.MlflowImport``)."""
    return _import("import_mlflow", report, model_versions=list(report.model_versions))


def _import(kind: str, report: Any, **more: Any) -> dict[str, Any]:
    """What every import report holds: source, counts added and skipped, what was not mapped, runs."""
    return document(
        kind,
        source=report.source,
        imported=dict(sorted(report.imported.items())),
        skipped=dict(sorted(report.skipped.items())),
        unmapped=[plain(u) for u in report.unmapped],
        runs=list(report.runs),
        **more,
    )


FIELDS.update(
    {
        "export_cyclonedx": {
            "model": "NAME@VERSION the document describes",
            "format": "cyclonedx (or spdx)",
            "spec": "the format's version: 1.6, or 1.7 (with citations); SPDX 3.0.1",
            "serial": "the document's identity: CycloneDX serial number (urn:uuid), SPDX document id; the same "
            "for the same model version and spec",
            "components": "how many things it describes: CycloneDX components (model, data, attestation), SPDX "
            "packages (model, datasets)",
            "signed": "whether it was written inside a DSSE envelope signed by a registry key",
            "out": "the file written",
        },
    }
)
FIELDS["export_spdx"] = FIELDS["export_cyclonedx"]


def bom_export(bom: Any, out: Path | None) -> dict[str, Any]:
    """The document of ``custody export cyclonedx|spdx --json`` (a ``boms.Bom``)."""
    return document(
        f"export_{bom.format}",
        model=bom.model,
        format=bom.format,
        spec=bom.spec,
        serial=bom.serial,
        components=bom.components,
        signed=bom.envelope is not None,
        out=str(out) if out is not None else None,
    )


FIELDS.update(
    {
        "export_openlineage": {
            "runs": "ids of the runs exported, in the order their events were sent",
            "events": "the RunEvents (OpenLineage 2-0-2), as sent",
            "url": "the endpoint they were sent to, or null",
            "out": "the JSON Lines file they were written to, or null",
            "statuses": "the endpoint's HTTP status for each event sent",
        },
    }
)


def openlineage_export(emitted: Any) -> dict[str, Any]:
    """The document of ``custody export openlineage --json`` (a ``lineage_events.Emitted``)."""
    return document(
        "export_openlineage",
        runs=emitted.runs,
        events=emitted.events,
        url=emitted.url,
        out=str(emitted.out) if emitted.out is not None else None,
        statuses=emitted.statuses,
    )


FIELDS.update(
    {
        "import_dvc": {
            "source": "the DVC repository read",
            "commits": "how many commits of its history were read",
            "imported": f"{_IMPORT_COUNTS}: versions, files (stored), runs (changed stages)",
            "skipped": "counts per kind of what an earlier import had already added",
            "unmapped": "list of {kind, item, reason}: content kept digest-only (no bytes here, or a wrong MD5)",
            "runs": "ids of the runs imported (one per stage whose dvc.lock entry changed, per commit)",
            "versions": "NAME@VERSION of each artifact version imported",
        },
    }
)


def dvc_import(report: Any) -> dict[str, Any]:
    """The document of ``custody import dvc`` (an ``import_dvc.DvcImport``)."""
    return _import("import_dvc", report, commits=report.commits, versions=list(report.versions))


# -- custody report ------------------------------------------------------------------------------------

_REPORT_BODY = {
    "kind": "decision | erasure | annex-iv | inventory",
    "title": "the report's title",
    "subject": "what it is about: the decision id, the data subject, the model version, or `all`",
    "basis": "the legal texts it answers to",
    "gaps": "what could not be established, stated prominently (an unsealed decision, shredded inputs, an "
    "attestation that does not verify, …); [] when none",
    "sections": "list of {id, title, basis, fields: list of {name, label, value, fill (store: read from the store | "
    "review: computed, a person must review it | human: null, for a person to write, note says what | given: from "
    "the command line, e.g. --received), cites (citation ids), note}}",
    "citations": "list of {id, kind (decision | checkpoint | attestation | artifact | record-manifest | run | alias | "
    "audit-event), ref, digest, …}: the evidence, each re-derivable from the store (`custody report verify`)",
}
FIELDS.update(
    {
        "report.decision": {
            **_REPORT_BODY,
            "inclusion": "{entry, leaf_hash, size, vkey, proof}: the decision's c2sp.org/tlog-proof against the first "
            "signed checkpoint that sealed it (it never changes), or null when not sealed yet",
        },
        "report.erasure": _REPORT_BODY,
        "report.annex-iv": _REPORT_BODY,
        "report.inventory": _REPORT_BODY,
        "report_hold": {"released": "true when a hold was released", "event": "the audit event written"},
        "report_holds": {
            "holds": "list of {scope (a subject pseudonym, or * for all), reason, seq (the audit "
            "event that placed it), at, actor}"
        },
        "report": {
            "kind": "the report's kind",
            "subject": "what it is about",
            "format": "json | md | html | pdf",
            "out": "the file written (--out), or null",
            "signature": "its detached DSSE envelope (FILE.dsse.json), or null",
            "stored": "{ref, digest}: the report artifact version holding the body (its signature: NAME-signature)",
            "gaps": "as in the report body",
            "report": "the report body (mlcustody.report.KIND/v1)",
        },
        "report_verify": {
            "file": "the report file checked",
            "signature": "the envelope it was checked against",
            "ok": "true when nothing is wrong",
            "with_store": "false with --offline: only the files were checked",
            "kind": "the signed report's kind, or null when unreadable",
            "subject": "its subject, or null",
            "signed_at": "when it was signed, or null",
            "keyid": "the key that signed it, or null",
            "citations": "how many citations it carries (each re-derived when with_store)",
            "problems": "list of one-line problems",
        },
    }
)


def report(found: Any) -> dict[str, Any]:
    """``custody report KIND --json``: what was written and stored, with the body."""
    return document(
        "report",
        kind=found.body["kind"],
        subject=found.body["subject"],
        format=found.format,
        out=str(found.out) if found.out is not None else None,
        signature=str(found.signature) if found.signature is not None else None,
        stored={"ref": found.stored.ref, "digest": found.stored.digest},
        gaps=found.body["gaps"],
        report=found.body,
    )


def report_verify(found: Any) -> dict[str, Any]:
    predicate = found.checked.predicate
    return document(
        "report_verify",
        file=str(found.file),
        signature=str(found.signature),
        ok=not found.problems,
        with_store=found.with_store,
        kind=predicate.get("kind"),
        subject=predicate.get("subject"),
        signed_at=predicate.get("signedAt"),
        keyid=(predicate.get("signer") or {}).get("keyid"),
        citations=len(predicate.get("citations") or []),
        problems=found.problems,
    )


def model_verify_oms(path: Path, found: Iterable[Problem]) -> dict[str, Any]:
    """``model verify-oms``: the OMS bundle's problems as objects, like every other check's."""
    items = problems(found)
    return document("model_verify_oms", path=str(path), ok=not items, problems=items)


# -- policy: terms, check terms, expectation results (workspace.policy_cases) -------------------------

FIELDS |= {
    "terms_set": {
        "ref": "the version the terms apply to",
        "seq": "which setting of its terms this is (the newest is in force)",
        "terms": "{license, commercial, consent, purposes, retention, consent_column, notes}",
        "consent_table": "digest of the per-record consent table (record_id, consent), or null",
        "consent_counts": "records per consent value, with --consent-column, else {}",
        "actor": "who set them",
        "at": "when (UTC)",
    },
    "policy_evidence": {
        "ref": "the version",
        "terms": "the terms in force ({license, consent, purposes, retention, …, seq, actor, at}) or null",
        "expectations": "list of signed suite results {seq, success, suite, envelope, keyid, actor, at, results}",
    },
    "terms_check": {
        "subject": "what was checked (a model version, or an artifact version)",
        "artifact": "its artifact version",
        "purpose": "the purpose checked, or null",
        "commercial": "whether a commercial use was checked",
        "ok": "true when no finding",
        "sources": "list of {ref, path, terms, level (record | artifact), records (reaching it)} of termed versions",
        "findings": "list of {rule, source, path, records, record_ids (up to 100), level, detail}",
    },
}
FIELDS["show"] = {
    **FIELDS["show"],
    "terms": "the terms in force on the version (see `custody terms show`), or null",
    "expectations": "its signed expectation suite results (see `custody terms show`)",
}


def terms_set(done: Any) -> dict[str, Any]:
    return document(
        "terms_set",
        ref=done.ref,
        seq=done.seq,
        terms=done.terms.as_dict(),
        consent_table=done.consent,
        consent_counts=done.counts,
        actor=done.actor,
        at=done.at,
    )


def policy_evidence(ref: str, found: dict[str, Any]) -> dict[str, Any]:
    return document("policy_evidence", ref=ref, terms=found["terms"], expectations=found["expectations"])


def terms_check(found: Any) -> dict[str, Any]:
    return document(
        "terms_check",
        subject=found.subject,
        artifact=found.artifact,
        purpose=found.purpose,
        commercial=found.commercial,
        ok=not found.findings,
        sources=[dict(s.__dict__) for s in found.sources],
        findings=[f.as_dict() for f in found.findings],
    )
