"""``custody model verify``: re-derive everything a model version's attestation names, and say what differs.

Five checks, each independent of the others: the envelope (present, intact, well-formed), its
signature (by the key recorded, valid when it signed, never revoked), the model bytes (re-hashed,
equal to the Statement's subjects), the training run (its rows still hash to its seal), and the
provenance (rebuilt from the store now and compared, dependency by dependency, with what was signed).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection

from mlcustody._canonical import digest_json
from mlcustody.checks import Problem, ProblemKind
from mlcustody.errors import UsageError
from mlcustody.ledger.registry import attestation
from mlcustody.ledger.registry import versions as registry
from mlcustody.lineage import graph
from mlcustody.metadata import artifacts
from mlcustody.metadata import ref_resolution as refs
from mlcustody.metadata.runs import store as runs
from mlcustody.storage import dir_manifest as manifest
from mlcustody.storage.objects import ObjectStore

KeyCheck = Callable[[Connection, str, bytes, bytes, str], "str | None"]


def check(conn: Connection, objects: ObjectStore, version: registry.ModelVersion, key_check: KeyCheck) -> list[Problem]:
    where = f"model {version.ref}"
    return [Problem(kind, where, detail) for kind, detail in _envelope_and_body(conn, objects, version, key_check)]


def _envelope_and_body(
    conn: Connection, objects: ObjectStore, version: registry.ModelVersion, key_check: KeyCheck
) -> list[tuple[ProblemKind, str]]:
    if not objects.exists(version.attestation):
        return [(ProblemKind.ATTESTATION_MISSING, f"envelope object {version.attestation} is not in the store")]
    damage = objects.check(version.attestation)
    if damage is not None:
        return [(ProblemKind.ATTESTATION_MODIFIED, f"envelope object: {damage}")]
    try:
        opened = attestation.open_envelope(objects.read_bytes(version.attestation))
    except UsageError as exc:
        return [(ProblemKind.ATTESTATION_CORRUPT, exc.message)]
    model = refs.resolve(conn, version.artifact)
    found = _signatures(conn, version, opened, key_check)
    found += _model_bytes(objects, model, opened.statement)
    found += _run(conn, version)
    found += _provenance(conn, objects, version, model, opened.statement)
    return found


def _signatures(
    conn: Connection, version: registry.ModelVersion, opened: attestation.Opened, key_check: KeyCheck
) -> list[tuple[ProblemKind, str]]:
    if not any(keyid == version.keyid for keyid, _ in opened.signatures):
        return [(ProblemKind.SIGNATURE_MISSING, f"no signature by key {version.keyid[:16]}")]
    found = []
    for keyid, signature in opened.signatures:
        if keyid == version.keyid:
            reason = key_check(conn, keyid, opened.signed_bytes, signature, version.created_at)
            if reason is not None:
                found.append((ProblemKind.SIGNATURE_INVALID, reason))
    return found


def _model_bytes(
    objects: ObjectStore, model: artifacts.ArtifactVersion, statement: dict[str, Any]
) -> list[tuple[ProblemKind, str]]:
    files = [model.digest]
    if model.kind == "dir":
        files = [entry.digest for entry in manifest.decode(objects.read_bytes(model.digest))]
    for digest in files:
        damage = objects.check(digest) if objects.exists(digest) else f"object {digest} is missing"
        if damage is not None:
            return [(ProblemKind.MODEL_MODIFIED, f"{model.ref}: {damage}")]
    now = {s.name: s.as_dict()["digest"] for s in registry.subjects(objects, model)}
    signed = {s["name"]: s["digest"] for s in statement.get("subject", [])}
    return [
        (ProblemKind.MODEL_MODIFIED, f"{name}: sha256 {_short(now.get(name))}, attested {_short(signed.get(name))}")
        for name in sorted(set(now) | set(signed))
        if now.get(name) != signed.get(name)
    ]


def _run(conn: Connection, version: registry.ModelVersion) -> list[tuple[ProblemKind, str]]:
    if version.run_id is None:
        return []
    run = runs.get(conn, version.run_id)
    if run.end is None:
        return [(ProblemKind.RUN_UNSEALED, f"run {run.id} has no seal")]
    record = runs.canonical_record(conn, run.id, run.end)
    if digest_json(record) != run.end.seal:
        return [(ProblemKind.RUN_MODIFIED, f"run {run.id}: its rows no longer hash to its seal (see `custody verify`)")]
    return []


def _provenance(
    conn: Connection,
    objects: ObjectStore,
    version: registry.ModelVersion,
    model: artifacts.ArtifactVersion,
    statement: dict[str, Any],
) -> list[tuple[ProblemKind, str]]:
    run = runs.get(conn, version.run_id) if version.run_id else None
    lineage = graph.lineage_digest(conn, model.ref)
    found = []
    if lineage != version.lineage_digest:
        found.append(
            (ProblemKind.LINEAGE_MODIFIED, f"lineage digest is {lineage[:16]}, attested {version.lineage_digest[:16]}")
        )
    signed = statement.get("predicate", {})
    format = _at(signed, "buildDefinition", "internalParameters", "provenanceFormat")
    now = registry.provenance(conn, objects, model, run, lineage, format if isinstance(format, int) else 1)
    sections = (
        ("resolvedDependencies", ProblemKind.DEPENDENCY_MODIFIED),
        ("byproducts", ProblemKind.BYPRODUCT_MODIFIED),
    )
    for section, kind in sections:
        before, after = _named(signed, section), _named(now, section)
        for name in sorted(set(before) | set(after)):
            if before.get(name) != after.get(name):
                found.append((kind, f"{name}: {_describe(before.get(name), after.get(name))}"))
    external = ("externalParameters",)
    if _at(signed, "buildDefinition", *external) != _at(now, "buildDefinition", *external):
        found.append((ProblemKind.PARAMETERS_MODIFIED, "the run's parameters differ from those attested"))
    return found


def _named(predicate: dict[str, Any], section: str) -> dict[str, Any]:
    parent = "runDetails" if section == "byproducts" else "buildDefinition"
    return {item.get("name"): item for item in _at(predicate, parent, section) or []}


def _at(value: Any, *path: str) -> Any:
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _describe(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    if before is None:
        return "not in the attestation"
    if after is None:
        return "attested but no longer in the store"
    if before.get("digest") == after.get("digest"):
        return f"now {json.dumps(after.get('annotations'))}, attested {json.dumps(before.get('annotations'))}"
    return f"now {json.dumps(after.get('digest'))}, attested {json.dumps(before.get('digest'))}"


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("sha256", "?"))[:16]
    return "nothing"
