"""Our runs as OpenLineage RunEvents (spec 2-0-2), and a sender to any Marquez-compatible endpoint.

Each sealed run becomes a START event at its start and a COMPLETE, FAIL or ABORT (killed) event at its
end; a run still running gives its START only. Run ids are UUIDs already (32 hex digits), so the
OpenLineage ``runId`` is the same id. Datasets are named by their artifact name in one namespace, and
carry the standard ``version`` facet (``blake3:<digest>``, our content address) plus an
``mlcustody_dataset`` facet (reference, digest, size, records); the run carries ``mlcustody_run``
(params, command, seal) and, when it failed, the standard ``errorMessage`` facet; a child run names its
parent in the standard ``parent`` facet. Consumers that know nothing of ours still see the lineage graph
and the versions; ours can match digests.

Sending speaks the wire contract of the official Python client: ``POST {url}/api/v1/lineage`` with a
JSON body, optional ``Authorization: Bearer``, any 2xx is success (Marquez answers 201).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import Connection

from mlcustody.errors import UsageError
from mlcustody.metadata.runs import store as runs

SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
_FACETS = "https://openlineage.io/spec/facets"
_OURS = "https://mlcustody.dev/spec/facets/1-0-0"
_TERMINAL = {"finished": "COMPLETE", "failed": "FAIL", "killed": "ABORT"}


def events(conn: Connection, run_ids: Iterable[str], *, namespace: str, producer: str) -> list[dict[str, Any]]:
    """The RunEvents of these runs, in order: each run's START, then its end when it has one."""
    ids = list(run_ids)
    found = runs.load(conn, ids)
    names = {r.id: r.start.name for r in runs.load(conn, [r.start.parent_id for r in found if r.start.parent_id])}
    out: list[dict[str, Any]] = []
    for run in found:
        out += _run_events(run, names, namespace, producer)
    return out


def _run_events(run: runs.Run, names: dict[str, str], namespace: str, producer: str) -> list[dict[str, Any]]:
    facets: dict[str, Any] = {
        "mlcustody_run": _facet(
            producer,
            f"{_OURS}/MlcustodyRunFacet.json#/$defs/MlcustodyRunFacet",
            id=run.id,
            params=run.params,
            command=run.start.command,
            actor=run.start.actor,
            **({"seal": run.end.seal} if run.end else {}),
        )
    }
    parent = run.start.parent_id
    if parent:
        facets["parent"] = _facet(
            producer,
            f"{_FACETS}/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
            run={"runId": _uuid(parent)},
            job={"namespace": namespace, "name": names.get(parent, parent)},
        )
    job = {
        "namespace": namespace,
        "name": run.start.name,
        "facets": {
            "jobType": _facet(
                producer,
                f"{_FACETS}/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
                processingType="BATCH",
                integration="MLCUSTODY",
                jobType="JOB",
            )
        },
    }
    inputs = [_dataset(io, namespace, producer, "inputFacets") for io in run.files("input")]
    start = _event("START", run.start.started_at, run.id, facets, job, producer, inputs, [])
    if run.end is None:
        return [start]
    end_facets = dict(facets)
    if run.end.status == "failed" and run.end.error:
        end_facets["errorMessage"] = _facet(
            producer,
            f"{_FACETS}/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
            message=run.end.error,
            programmingLanguage="python",
        )
    outputs = [_dataset(io, namespace, producer, "outputFacets") for io in run.files("output")]
    kind = _TERMINAL.get(run.end.status, "OTHER")
    return [start, _event(kind, run.end.ended_at, run.id, end_facets, job, producer, inputs, outputs)]


def _event(
    kind: str,
    at: str,
    run_id: str,
    facets: dict[str, Any],
    job: dict[str, Any],
    producer: str,
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "eventType": kind,
        "eventTime": at,
        "run": {"runId": _uuid(run_id), "facets": facets},
        "job": job,
        "inputs": inputs,
        "outputs": outputs,
        "producer": producer,
        "schemaURL": SCHEMA_URL,
    }


def _dataset(io: runs.IO, namespace: str, producer: str, io_facets: str) -> dict[str, Any]:
    """A run's input or output: named by its artifact (else its path), versioned by its digest."""
    name = io.artifact.rsplit("@", 1)[0] if io.artifact else io.path
    facets: dict[str, Any] = {}
    if io.digest:
        facets["version"] = _facet(
            producer,
            f"{_FACETS}/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet",
            datasetVersion=f"blake3:{io.digest}",
        )
    facets["mlcustody_dataset"] = _facet(
        producer,
        f"{_OURS}/MlcustodyDatasetFacet.json#/$defs/MlcustodyDatasetFacet",
        ref=io.artifact,
        path=io.path,
        kind=io.kind,
        blake3=io.digest,
        size=io.size,
        source=io.source,
    )
    return {"namespace": namespace, "name": name, "facets": facets, io_facets: {}}


def _facet(producer: str, schema_url: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": producer, "_schemaURL": schema_url, **fields}


def _uuid(run_id: str) -> str:
    return str(uuid.UUID(hex=run_id))


def send(event: dict[str, Any], url: str, *, api_key: str | None = None, timeout: float = 10.0) -> int:
    """POST one event as the official client does; the HTTP status (2xx), else a usage error."""
    target = url.rstrip("/") + "/api/v1/lineage"
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(target, data=json.dumps(event).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        body = exc.read(300).decode("utf-8", "replace").strip()
        raise UsageError(
            f"{target} refused the event of run {event['run']['runId']}: HTTP {exc.code} {body}".strip(),
            hint="check --url (the endpoint takes POST /api/v1/lineage) and --api-key",
        ) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UsageError(f"cannot reach {target}: {reason}", hint="check --url and that the server runs") from exc
