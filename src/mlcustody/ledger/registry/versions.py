"""The model registry: named, numbered model versions bound by a signed attestation to their lineage.

Registering a version writes an in-toto/SLSA attestation (``attestation``) naming, with digests,
the model file(s), the training run's seal, its code commit and dirty diff, its environment, every
dataset version it read with its record manifest, and the digest of the model's whole upstream
lineage graph; signs it with a registry key (``keys``); stores the envelope as an object; and
records the version in an audited row. ``verify`` re-derives every one of those digests from the
store and names each that no longer matches.

Aliases (``production``, ``staging``, …) are an append-only history: each move is a row with who,
when, from which version, to which, and why.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody._canonical import utc_now
from mlcustody.capture.models import detect_format
from mlcustody.errors import UnknownRef, UsageError
from mlcustody.ledger.registry import attestation
from mlcustody.lineage import graph
from mlcustody.metadata import audit
from mlcustody.metadata import ref_resolution as refs
from mlcustody.metadata.artifacts import ArtifactVersion
from mlcustody.metadata.runs import store as runs
from mlcustody.metadata.schema import model_aliases, model_versions, run_io
from mlcustody.storage import dir_manifest as manifest
from mlcustody.storage.objects import ObjectStore

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,99}")


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    artifact: str
    digest: str
    sha256: str
    run_id: str | None
    lineage_digest: str
    attestation: str
    keyid: str
    created_at: str
    actor: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class AliasMove:
    alias: str
    seq: int
    version: int | None
    previous: int | None
    reason: str
    actor: str
    at: str


@dataclass(frozen=True)
class Prepared:
    """Everything a registration signs, gathered before the signing key is asked for."""

    name: str
    artifact: ArtifactVersion
    run_id: str | None
    lineage_digest: str
    subjects: list[attestation.Subject]
    statement: bytes


# -- registering -------------------------------------------------------------------------------------


def validate_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise UsageError(f"model name {name!r} is not valid", hint="use letters, digits, _ . - (up to 200)")
    return name


def model_of_run(conn: Connection, run_id: str, path: str | None = None) -> ArtifactVersion:
    """The model version a run generated: its one model output, or the output at ``path``."""
    query = sa.select(run_io.c.path, run_io.c.artifact).where(run_io.c.run_id == run_id, run_io.c.role == "output")
    rows = list(conn.execute(query.order_by(run_io.c.path)))
    written = {row.path: refs.resolve(conn, row.artifact) if row.artifact else None for row in rows}
    listed = ", ".join(f"{p} ({v.type})" if v else f"{p} (not versioned)" for p, v in written.items()) or "nothing"
    if path is not None:
        chosen = written.get(path)
        if chosen is None:
            raise UsageError(f"run {run_id} did not write a version of {path} (it wrote {listed})", hint=_PICK)
        return chosen
    found = [v for v in written.values() if v is not None and v.type == "model"]
    if not found:
        raise UsageError(
            f"run {run_id} wrote no model (it wrote {listed})",
            hint="save it in a model format (.skops, .safetensors, .onnx, …), declare `custody run --out FILE:model`, "
            "or pass --path FILE",
        )
    if len(found) > 1:
        shown = ", ".join(f"{v.path or v.name} ({v.ref})" for v in found)
        raise UsageError(f"run {run_id} wrote several models: {shown}", hint=_PICK)
    return found[0]


_PICK = "choose one with --run RUN --path FILE"


def prepare(
    conn: Connection,
    objects: ObjectStore,
    name: str,
    model: ArtifactVersion,
    run_id: str | None,
    *,
    trust_pickle: bool = False,
) -> Prepared:
    """Gather the model's digests and lineage into the Statement to sign. A model holding a pickle
    (which runs arbitrary code when loaded) is refused unless ``trust_pickle``; then the attestation
    says so (``externalParameters.trustPickle``: the pickled files), so whoever loads it knows."""
    validate_name(name)
    found = subjects(objects, model)
    pickled = pickles(objects, model)
    if pickled and not trust_pickle:
        raise UsageError(
            f"{model.ref}: {pickled[0]} is a pickle, which runs arbitrary code when loaded; refusing to sign it",
            hint="re-save it with skops, safetensors or ONNX, or pass --trust-pickle (trust_pickle=True) "
            "if you trust where it came from",
        )
    run = runs.get(conn, run_id) if run_id else None
    lineage_digest = graph.lineage_digest(conn, model.ref)
    predicate = provenance(conn, objects, model, run, lineage_digest)
    return Prepared(name, model, run_id, lineage_digest, found, attestation.statement(found, predicate))


def record(
    conn: Connection, prepared: Prepared, envelope_digest: str, keyid: str, actor: str, *, number: int | None = None
) -> tuple[ModelVersion, audit.Event]:
    """Insert the next version of the model name (in the caller's write transaction), or version
    ``number`` when an import keeps the number the version had at its source."""
    current = (
        (number - 1)
        if number is not None
        else conn.execute(
            sa.select(sa.func.max(model_versions.c.version)).where(model_versions.c.name == prepared.name)
        ).scalar()
    )
    sha256 = next(s.sha256 for s in prepared.subjects) if len(prepared.subjects) == 1 else _root(prepared.subjects)
    row: dict[str, Any] = {
        "name": prepared.name,
        "version": (current or 0) + 1,
        "artifact": prepared.artifact.ref,
        "digest": prepared.artifact.digest,
        "sha256": sha256,
        "run_id": prepared.run_id,
        "lineage_digest": prepared.lineage_digest,
        "attestation": envelope_digest,
        "keyid": keyid,
        "created_at": utc_now(),
        "actor": actor,
    }
    event = audit.record_row(conn, model_versions, row, actor=actor, action="model.register")
    return ModelVersion(**row), event


def move_alias(
    conn: Connection, name: str, alias: str, version: int | None, reason: str, actor: str
) -> tuple[AliasMove, audit.Event]:
    """Point ``alias`` at ``version`` (None removes it), keeping the history."""
    if not _ALIAS.fullmatch(alias):
        raise UsageError(f"alias {alias!r} is not valid", hint="use a word such as production or staging")
    if not reason.strip():
        raise UsageError("an alias move needs a reason", hint='pass --reason "why this version"')
    if version is not None:
        get(conn, f"{name}@{version}")
    history = aliases(conn, name).get(alias, [])
    previous = history[-1].version if history else None
    row: dict[str, Any] = {
        "name": name,
        "alias": alias,
        "seq": (history[-1].seq if history else 0) + 1,
        "version": version,
        "previous": previous,
        "reason": reason,
        "actor": actor,
        "at": utc_now(),
    }
    event = audit.record_row(conn, model_aliases, row, actor=actor, action="model.alias")
    move = AliasMove(alias, row["seq"], version, previous, reason, actor, row["at"])
    return move, event


# -- reading -----------------------------------------------------------------------------------------


def get(conn: Connection, ref: str) -> ModelVersion:
    """``NAME@VERSION``, ``NAME:ALIAS`` or ``NAME`` (its latest version)."""
    name, version = _parse(conn, ref)
    row = conn.execute(
        sa.select(model_versions).where(model_versions.c.name == name, model_versions.c.version == version)
    ).first()
    if row is None:
        known = conn.execute(sa.select(model_versions.c.version).where(model_versions.c.name == name)).scalars().all()
        if not known:
            raise _no_model(conn, name)
        raise UnknownRef(f"{name} has no version {version}", hint=f"versions are 1…{max(known)}")
    return ModelVersion(**row._mapping)


def listing(conn: Connection) -> list[ModelVersion]:
    query = sa.select(model_versions).order_by(model_versions.c.name, model_versions.c.version)
    return [ModelVersion(**row._mapping) for row in conn.execute(query)]


def aliases(conn: Connection, name: str) -> dict[str, list[AliasMove]]:
    """Every alias of a model name with its whole history, oldest move first."""
    query = sa.select(model_aliases).where(model_aliases.c.name == name).order_by(model_aliases.c.seq)
    found: dict[str, list[AliasMove]] = {}
    for r in conn.execute(query):
        move = AliasMove(r.alias, r.seq, r.version, r.previous, r.reason, r.actor, r.at)
        found.setdefault(r.alias, []).append(move)
    return found


def _parse(conn: Connection, ref: str) -> tuple[str, int]:
    if ":" in ref:
        name, alias = ref.split(":", 1)
        history = aliases(conn, name).get(alias)
        if not history and not _registered(conn, name):
            raise _no_model(conn, name)
        if not history or history[-1].version is None:
            hint = f"set one with `custody model alias {name} {alias} VERSION --reason TEXT`"
            raise UnknownRef(f"{name} has no alias {alias!r}", hint=hint)
        return name, history[-1].version
    name, at, number = ref.partition("@")
    if at:
        found = refs.version_number(ref, number, "credit@1")
        return name, min(found, refs.MAX_VERSION + 1)  # beyond any column: names no version
    latest = conn.execute(sa.select(sa.func.max(model_versions.c.version)).where(model_versions.c.name == ref)).scalar()
    if latest is None:
        raise _no_model(conn, ref)
    return ref, int(latest)


def _no_model(conn: Connection, name: str) -> UnknownRef:
    """The error for a model name nothing is registered under, naming the closest registered names
    (``model verify credt`` → did you mean credit?)."""
    names = conn.execute(sa.select(model_versions.c.name).distinct()).scalars().all()
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return UnknownRef(f"no registered model named {name!r}", hint=hint + "list them with `custody model ls`")


def _registered(conn: Connection, name: str) -> bool:
    query = sa.select(model_versions.c.name).where(model_versions.c.name == name).limit(1)
    return conn.execute(query).first() is not None


# -- what the attestation names ------------------------------------------------------------------------


def subjects(objects: ObjectStore, model: ArtifactVersion) -> list[attestation.Subject]:
    """The model file, or each file of a model directory, with sha256 and BLAKE3 digests."""
    if model.kind == "file":
        name = (model.path or model.name).rsplit("/", 1)[-1]
        return [attestation.Subject(name, sha256_of(objects, model.digest), model.digest)]
    entries = manifest.decode(objects.read_bytes(model.digest))
    return [attestation.Subject(e.path, sha256_of(objects, e.digest), e.digest) for e in entries]


def pickles(objects: ObjectStore, model: ArtifactVersion) -> list[str]:
    """The names of the model's files that are pickles (by their bytes or their suffix)."""
    if model.kind == "file":
        files = [((model.path or model.name).rsplit("/", 1)[-1], model.digest)]
    else:
        files = [(e.path, e.digest) for e in manifest.decode(objects.read_bytes(model.digest))]
    return [name for name, digest in files if detect_format(objects.path(digest), name) == "pickle"]


def _root(subjects: list[attestation.Subject]) -> str:
    """One sha256 for a multi-file model: over the sorted ``name sha256`` lines."""
    lines = "".join(f"{s.name} {s.sha256}\n" for s in sorted(subjects, key=lambda s: s.name))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def sha256_of(objects: ObjectStore, digest: str) -> str:
    with open(objects.path(digest), "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


PROVENANCE_FORMAT = 2  # 2: inputs carry role and how they were learnt, digest-only files and raw sources are named


def provenance(
    conn: Connection,
    objects: ObjectStore,
    model: ArtifactVersion,
    run: runs.Run | None,
    lineage_digest: str,
    format: int = PROVENANCE_FORMAT,
) -> dict[str, Any]:
    """The SLSA predicate of a model version. ``format`` 1 re-derives attestations signed before format
    2 (training inputs by artifact only), so that they still verify after an upgrade."""
    dependencies: list[dict[str, Any]] = []
    external: dict[str, Any] = {"model": model.ref}
    pickled = pickles(objects, model)
    if pickled:  # signed only with trust_pickle: whoever loads it must know it runs code
        external["trustPickle"] = pickled
    metadata: dict[str, Any] = {}
    byproducts = [attestation.dependency("lineage-graph", {"blake3": lineage_digest})]
    if run is not None:
        external |= {"run": run.start.name, "command": run.start.command, "params": run.params}
        metadata = {"invocationId": run.id, "startedOn": run.start.started_at}
        if run.end is not None:
            metadata["finishedOn"] = run.end.ended_at
            byproducts.append(_object_dependency(objects, "run-record", run.end.seal))
            if run.end.environment:
                dependencies.append(_object_dependency(objects, "environment", run.end.environment))
        dependencies += _code_dependencies(objects, run.start.code)
        dependencies += _inputs(conn, objects, model, run, format)
    internal: dict[str, Any] = {"lineageDigestAlgorithm": "mlcustody-lineage/v1"}
    if format > 1:
        internal["provenanceFormat"] = format
    return {
        "buildDefinition": {
            "buildType": attestation.BUILD_TYPE,
            "externalParameters": external,
            "internalParameters": internal,
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {"id": attestation.BUILDER_ID},
            "metadata": metadata,
            "byproducts": byproducts,
        },
    }


def _inputs(
    conn: Connection, objects: ObjectStore, model: ArtifactVersion, run: runs.Run, format: int
) -> list[dict[str, Any]]:
    """The run's training inputs (versions, and files kept digest-only) and the raw sources upstream."""
    inputs = run.files("input")
    if format == 1:
        return [_dataset(conn, objects, item.artifact) for item in inputs if item.artifact is not None]
    found = []
    for item in inputs:
        if item.artifact is not None:
            found.append(_dataset(conn, objects, item.artifact, role="input", learnt=item.source))
        elif item.digest is not None:  # kept digest-only by the capture policy: named, not stored
            digest = {"blake3": item.digest}
            found.append(
                attestation.dependency(item.path, digest, f"file:{item.path}", role="input", learnt=item.source)
            )
    named = {item.artifact for item in inputs}
    for source in graph.walk(conn, model.ref, direction="up").sources():
        if source.kind == "artifact" and source.id not in named:
            found.append(_dataset(conn, objects, source.id, role="raw-source"))
    return found


def _object_dependency(objects: ObjectStore, name: str, digest: str, **annotations: Any) -> dict[str, Any]:
    return attestation.dependency(
        name, {"sha256": sha256_of(objects, digest), "blake3": digest}, f"mlcustody:object/{digest}", **annotations
    )


def _code_dependencies(objects: ObjectStore, code_digest: str) -> list[dict[str, Any]]:
    code = json.loads(objects.read_bytes(code_digest))
    found = [_object_dependency(objects, "code", code_digest)]
    git = code.get("git") or {}
    if git.get("commit"):
        uri = f"git+{git['remote']}@{git['commit']}" if git.get("remote") else None
        found.append(attestation.dependency("source", {"gitCommit": git["commit"]}, uri))
    if git.get("diff"):
        found.append(_object_dependency(objects, "dirty-diff", git["diff"]))
    return found


def _dataset(conn: Connection, objects: ObjectStore, ref: str, **more: Any) -> dict[str, Any]:
    """A version the model depends on: a training input (``learnt``: captured, declared or sdk) or a raw
    source at the root of its lineage (``role``)."""
    version = refs.resolve(conn, ref)
    annotations: dict[str, Any] = {"type": version.type, "kind": version.kind, **more}
    if version.records is not None:
        record_manifest = version.records["manifest"]
        annotations["recordManifest"] = {"blake3": record_manifest, "sha256": sha256_of(objects, record_manifest)}
        annotations["records"] = version.records["count"]
    return attestation.dependency(
        ref,
        {"sha256": sha256_of(objects, version.digest), "blake3": version.digest},
        f"mlcustody:artifact/{ref}",
        **annotations,
    )
