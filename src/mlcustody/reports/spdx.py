"""An SPDX 3.0.1 document (JSON-LD) of a model version, with the AI and Dataset profiles.

The model is an ``ai_AIPackage`` (version, SHA-256 and BLAKE3 hashes, the training run's params as
``ai_hyperparameter``, its metrics as ``ai_metric``, ``modelcard.*`` tags as type of model, domain and
limitation, the run and its seal as ``ai_informationAboutTraining``); every dataset version the run read
is a ``dataset_DatasetPackage`` (hashes, size, structured when it has a record manifest); a ``trainedOn``
relationship joins them. Element ids are derived from the version's attestation digest, so the same
model version always gives the same document. Built as plain JSON-LD in the shape spdx-python-model
serialises; the tests read it back with that library.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from mlcustody._canonical import canonical_json, json_number
from mlcustody.ledger.registry import versions as registry
from mlcustody.metadata import ref_resolution as refs
from mlcustody.metadata.artifacts import ArtifactVersion
from mlcustody.metadata.runs import store as runs
from mlcustody.storage.objects import ObjectStore

CONTEXT = "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"
PREDICATE_TYPE = "https://spdx.dev/Document/v3"  # of the in-toto Statement a signed document travels in
_CREATION = "_:creationinfo"


def build(conn: Connection, objects: ObjectStore, ref: str, *, tool: str = "") -> dict[str, Any]:
    """The SPDX 3.0.1 document of model version ``ref``; ``tool`` is the mlcustody version writing it."""
    version = registry.get(conn, ref)
    run = runs.get(conn, version.run_id) if version.run_id else None
    datasets = [
        found
        for io in (run.files("input") if run else [])
        if io.artifact and (found := refs.resolve(conn, io.artifact)).type == "dataset"
    ]
    base = f"urn:mlcustody:{version.attestation[:32]}"
    agent, maker = f"{base}#agent", f"{base}#tool"
    creation = {
        "type": "CreationInfo",
        "@id": _CREATION,
        "created": _time(version.created_at),
        "createdBy": [agent],
        "createdUsing": [maker],
        "specVersion": "3.0.1",
    }
    model = _model(objects, version, run, base, agent)
    data = [_dataset(objects, v, f"{base}#data-{i}", agent) for i, v in enumerate(datasets)]
    graph: list[dict[str, Any]] = [
        creation,
        {"type": "Agent", "spdxId": agent, "creationInfo": _CREATION, "name": version.actor},
        {"type": "Tool", "spdxId": maker, "creationInfo": _CREATION, "name": f"mlcustody {tool}".strip()},
        model,
        *data,
    ]
    if data:
        graph.append(
            {
                "type": "Relationship",
                "spdxId": f"{base}#trained-on",
                "creationInfo": _CREATION,
                "from": model["spdxId"],
                "relationshipType": "trainedOn",
                "to": [d["spdxId"] for d in data],
            }
        )
    document = {
        "type": "SpdxDocument",
        "spdxId": f"{base}#document",
        "creationInfo": _CREATION,
        "name": f"{version.ref} (AI and Dataset profiles)",
        "profileConformance": ["core", "software", "ai", "dataset"],
        "rootElement": [model["spdxId"]],
        "element": [e["spdxId"] for e in graph[1:]],
    }
    return {"@context": CONTEXT, "@graph": [*graph, document]}


def _model(
    objects: ObjectStore, version: registry.ModelVersion, run: runs.Run | None, base: str, agent: str
) -> dict[str, Any]:
    model: dict[str, Any] = {
        "type": "ai_AIPackage",
        "spdxId": f"{base}#model",
        "creationInfo": _CREATION,
        "name": version.name,
        "software_packageVersion": str(version.version),
        "software_primaryPurpose": "model",
        "software_downloadLocation": f"mlcustody:artifact/{version.artifact}",
        "releaseTime": _time(version.created_at),
        "suppliedBy": agent,
        "verifiedUsing": _hashes(version.sha256, version.digest),
    }
    if run is None:
        return model
    tags = run.tags
    if run.params:
        model["ai_hyperparameter"] = [_entry(k, canonical_json(v).decode()) for k, v in run.params.items()]
    if run.metrics:
        model["ai_metric"] = [_entry(k, str(json_number(m.value))) for k, m in sorted(run.metrics.items())]
    if tags.get("modelcard.architectureFamily"):
        model["ai_typeOfModel"] = [tags["modelcard.architectureFamily"]]
    if tags.get("modelcard.task"):
        model["ai_domain"] = [tags["modelcard.task"]]
    if tags.get("modelcard.considerations.technicalLimitations"):
        model["ai_limitation"] = tags["modelcard.considerations.technicalLimitations"]
    training = f"run {run.id} ({run.start.name}), started {run.start.started_at}"
    if run.end is not None:
        model["builtTime"] = _time(run.end.ended_at)
        training += f", {run.end.status} {run.end.ended_at}, sealed as {run.end.seal}"
    model["ai_informationAboutTraining"] = training + f"; attestation {version.attestation}"
    return model


def _dataset(objects: ObjectStore, version: ArtifactVersion, spdx_id: str, agent: str) -> dict[str, Any]:
    found: dict[str, Any] = {
        "type": "dataset_DatasetPackage",
        "spdxId": spdx_id,
        "creationInfo": _CREATION,
        "name": version.name,
        "software_packageVersion": str(version.version),
        "software_primaryPurpose": "data",
        "software_downloadLocation": f"mlcustody:artifact/{version.ref}",
        "releaseTime": _time(version.created_at),
        "builtTime": _time(version.created_at),
        "originatedBy": [agent],
        "verifiedUsing": _hashes(registry.sha256_of(objects, version.digest), version.digest),
        "dataset_datasetSize": version.size,
        "dataset_datasetType": ["structured" if version.records else "noAssertion"],
    }
    if version.message:
        found["comment"] = version.message
    return found


def _hashes(sha256: str, blake3: str) -> list[dict[str, str]]:
    return [
        {"type": "Hash", "algorithm": "sha256", "hashValue": sha256},
        {"type": "Hash", "algorithm": "blake3", "hashValue": blake3},
    ]


def _entry(key: str, value: str) -> dict[str, str]:
    return {"type": "DictionaryEntry", "key": key, "value": value}


def _time(stamp: str) -> str:
    """SPDX 3 date-times have whole seconds: ``2026-01-01T00:00:00Z``."""
    return stamp.split(".", 1)[0].removesuffix("Z") + "Z"
