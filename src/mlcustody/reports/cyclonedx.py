"""A CycloneDX ML-BOM of a model version, built from what custody holds and signed like an attestation.

The model is a ``machine-learning-model`` component with SHA-256 and BLAKE3 hashes and a ``modelCard``:
``modelParameters`` (task, architecture and approach from the training run's ``modelcard.*`` tags, and
the datasets it read), ``quantitativeAnalysis`` (the run's metrics, latest values), ``considerations``
(``modelcard.considerations.<field>`` tags) and the run's params as properties. Every version the run
read is a ``data`` component; the signed attestation is a ``file`` component; ``formulation`` holds the
training run as a workflow (inputs: the data and params; output: the model).

Spec 1.6 is what most tools read. Spec 1.7 adds ``citations``: each model-card field, each dataset and
the model's hashes point (RFC 6901 pointers) at the training run that produced them (``process``) and at
the signed attestation that binds them (``attributedTo``), so an auditor can tell where each value came
from and check it with ``custody model verify``.

No cyclonedx-python-lib model covers ``modelCard``, ``data`` or ``formulation`` yet, so the document is
built as plain JSON and the library's strict JSON-schema validator is the oracle (see the tests).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from mlcustody._canonical import canonical_json, json_number
from mlcustody.errors import UsageError
from mlcustody.ledger.registry import versions as registry
from mlcustody.metadata import ref_resolution as refs
from mlcustody.metadata.artifacts import ArtifactVersion
from mlcustody.metadata.runs import store as runs
from mlcustody.storage.objects import ObjectStore

SPECS = ("1.6", "1.7")
PREDICATE_TYPE = "https://cyclonedx.org/bom"  # of the in-toto Statement a signed BOM travels in
_APPROACHES = {"supervised", "unsupervised", "reinforcement-learning", "semi-supervised", "self-supervised"}
_CONSIDERATIONS = ("users", "useCases", "technicalLimitations", "performanceTradeoffs")
_DATA_TYPES = {"dataset": "dataset", "config": "configuration", "code": "source-code"}
_NS = uuid.UUID("6f1c51a2-8c5e-4f0e-9d8b-0c3f4b7d2a10")  # serial numbers: one per model version and spec


@dataclass(frozen=True)
class _Facts:
    version: registry.ModelVersion
    model: ArtifactVersion
    run: runs.Run | None
    inputs: list[ArtifactVersion]


def build(conn: Connection, objects: ObjectStore, ref: str, *, spec: str = "1.6", tool: str = "") -> dict[str, Any]:
    """The ML-BOM of model version ``ref`` in CycloneDX ``spec`` (1.6, or 1.7 with citations); ``tool``
    is the version of mlcustody that writes it (named in the metadata)."""
    if spec not in SPECS:
        raise UsageError(f"CycloneDX {spec} is not written", hint=f"choose --spec {' or '.join(SPECS)}")
    facts = _facts(conn, ref)
    version, run = facts.version, facts.run
    model_ref = f"model:{version.ref}"
    data = [_data_component(objects, v) for v in facts.inputs]
    card, cited = _model_card(version, run, facts.inputs)
    model: dict[str, Any] = {
        "type": "machine-learning-model",
        "bom-ref": model_ref,
        "name": version.name,
        "version": str(version.version),
        "hashes": [{"alg": "SHA-256", "content": version.sha256}, {"alg": "BLAKE3", "content": version.digest}],
        "modelCard": card,
        "properties": _props({"artifact": version.artifact, "signer": version.keyid, "registered": version.created_at}),
    }
    envelope = objects.read_bytes(version.attestation)
    statement = {
        "type": "file",
        "bom-ref": f"attestation:{version.ref}",
        "name": f"attestation of {version.ref}",
        "mime-type": "application/vnd.dsse.envelope.v1+json",
        "description": "in-toto Statement v1 with a SLSA Provenance v1 predicate, DSSE-signed",
        "hashes": [
            {"alg": "SHA-256", "content": registry.sha256_of(objects, version.attestation)},
            {"alg": "BLAKE3", "content": version.attestation},
        ],
        "properties": _props({"keyid": version.keyid, "bytes": str(len(envelope))}),
    }
    doc: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": spec,
        "serialNumber": f"urn:uuid:{uuid.uuid5(_NS, f'{version.ref} {version.attestation} {spec}')}",
        "version": 1,
        "metadata": {
            "timestamp": version.created_at,
            "tools": {"components": [{"type": "application", "name": "mlcustody", "version": tool}]},
        },
        "components": [model, *data, statement],
        "dependencies": [
            {"ref": model_ref, "dependsOn": [d["bom-ref"] for d in data]},
            *({"ref": d["bom-ref"]} for d in data),
        ],
    }
    if run is not None:
        doc["formulation"] = [_formula(run, model_ref, data)]
    if spec != "1.6":
        doc["citations"] = _citations(cited, version, run)
    return doc


def _facts(conn: Connection, ref: str) -> _Facts:
    version = registry.get(conn, ref)
    model = refs.resolve(conn, version.artifact)
    run = runs.get(conn, version.run_id) if version.run_id else None
    inputs = [refs.resolve(conn, io.artifact) for io in (run.files("input") if run else []) if io.artifact]
    return _Facts(version, model, run, inputs)


def _props(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": f"mlcustody:{k}", "value": v} for k, v in values.items()]


def _data_component(objects: ObjectStore, version: ArtifactVersion) -> dict[str, Any]:
    """A version the training run read, as a ``data`` component (hashes of its bytes or manifest)."""
    details = {"kind": version.kind, "files": str(version.file_count), "bytes": str(version.size)}
    if version.records:
        details |= {"records": str(version.records["count"]), "record-manifest": version.records["manifest"]}
    return {
        "type": "data",
        "bom-ref": f"data:{version.ref}",
        "name": version.name,
        "version": str(version.version),
        "hashes": [
            {"alg": "SHA-256", "content": registry.sha256_of(objects, version.digest)},
            {"alg": "BLAKE3", "content": version.digest},
        ],
        "data": [
            {
                "type": _DATA_TYPES.get(version.type, "other"),
                "name": version.ref,
                "contents": {"url": f"mlcustody:artifact/{version.ref}", "properties": _props(details)},
            }
        ],
    }


def _model_card(
    version: registry.ModelVersion, run: runs.Run | None, inputs: list[ArtifactVersion]
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The model card and, for citations, (JSON pointer, what it came from) of each field filled."""
    base = "/components/0/modelCard"
    cited: list[tuple[str, str]] = [("/components/0/hashes", "the attestation's subject digests")]
    tags = run.tags if run else {}
    parameters: dict[str, Any] = {}
    for field in ("task", "architectureFamily", "modelArchitecture"):
        if tags.get(f"modelcard.{field}"):
            parameters[field] = tags[f"modelcard.{field}"]
            cited.append((f"{base}/modelParameters/{field}", f"run tag modelcard.{field}"))
    if tags.get("modelcard.approach") in _APPROACHES:
        parameters["approach"] = {"type": tags["modelcard.approach"]}
        cited.append((f"{base}/modelParameters/approach", "run tag modelcard.approach"))
    datasets = [v for v in inputs if v.type == "dataset"]
    if datasets:
        parameters["datasets"] = [{"ref": f"data:{v.ref}"} for v in datasets]
        cited += [(f"{base}/modelParameters/datasets/{i}", f"training input {v.ref}") for i, v in enumerate(datasets)]
    card: dict[str, Any] = {"bom-ref": f"modelcard:{version.ref}"}
    if parameters:
        card["modelParameters"] = parameters
    if run is not None and run.metrics:
        card["quantitativeAnalysis"] = {
            "performanceMetrics": [
                {"type": key, "value": str(json_number(m.value))} for key, m in sorted(run.metrics.items())
            ]
        }
        cited += [
            (f"{base}/quantitativeAnalysis/performanceMetrics/{i}", f"metric {key} (step {m.step})")
            for i, (key, m) in enumerate(sorted(run.metrics.items()))
        ]
    considerations = {
        field: [tags[f"modelcard.considerations.{field}"]]
        for field in _CONSIDERATIONS
        if tags.get(f"modelcard.considerations.{field}")
    }
    if considerations:
        card["considerations"] = considerations
        cited += [(f"{base}/considerations/{f}", f"run tag modelcard.considerations.{f}") for f in considerations]
    if run is not None and run.params:
        card["properties"] = [
            {"name": f"mlcustody:param:{k}", "value": canonical_json(v).decode()} for k, v in run.params.items()
        ]
        cited += [(f"{base}/properties/{i}", f"param {k}") for i, k in enumerate(run.params)]
    return card, cited


def _formula(run: runs.Run, model_ref: str, data: list[dict[str, Any]]) -> dict[str, Any]:
    workflow: dict[str, Any] = {
        "bom-ref": f"run:{run.id}",
        "uid": run.id,
        "name": run.start.name,
        "taskTypes": ["build"],  # training builds the model: the SLSA view our attestations take
        "timeStart": run.start.started_at,
        "inputs": [{"resource": {"ref": d["bom-ref"]}} for d in data],
        "outputs": [{"resource": {"ref": model_ref}}],
        "properties": _props({"status": run.status, "command": canonical_json(run.start.command).decode()}),
    }
    if run.params:
        parameters = [{"name": k, "value": canonical_json(v).decode()} for k, v in run.params.items()]
        workflow["inputs"].append({"parameters": parameters})
    if run.end is not None:
        workflow["timeEnd"] = run.end.ended_at
        workflow["properties"] += _props({"seal": run.end.seal})
    return {"bom-ref": f"formula:{run.id}", "workflows": [workflow]}


def _citations(cited: list[tuple[str, str]], version: registry.ModelVersion, run: runs.Run | None) -> list[Any]:
    """One citation per field: made by the run (``process``), vouched for by the attestation."""
    found = []
    for pointer, what in cited:
        citation: dict[str, Any] = {
            "bom-ref": f"citation:{pointer}",
            "pointers": [pointer],
            "timestamp": version.created_at,
            "attributedTo": f"attestation:{version.ref}",
            "note": f"{what}; signed in attestation {version.attestation} by key {version.keyid}",
        }
        if run is not None:
            citation["process"] = f"run:{run.id}"
            if run.end is not None:
                citation["note"] += f"; run {run.id} sealed as {run.end.seal}"
        found.append(citation)
    return found
