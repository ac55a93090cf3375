"""`custody export openlineage`: runs sent as RunEvents to a Marquez-like endpoint on loopback, checked
against the spec's required shape and rebuilt with the official openlineage-python classes (whose
validators check run ids, times and event types)."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from tests.conftest import Cli, write_tree

from mlcustody.workspace.facade import Workspace

event_v2 = pytest.importorskip("openlineage.client.event_v2")
jsonschema = pytest.importorskip("jsonschema")
from openlineage.client.generated import (  # noqa: E402 - after the skip
    dataset_version_dataset,
    error_message_run,
    job_type_job,
    parent_run,
)

# The required shape of a RunEvent and its facets (OpenLineage spec 2-0-2, written out from the spec text).
_FACET = {"type": "object", "required": ["_producer", "_schemaURL"]}
_DATASET = {
    "type": "object",
    "required": ["namespace", "name"],
    "properties": {"facets": {"type": "object", "additionalProperties": _FACET}},
}
RUN_EVENT = {
    "type": "object",
    "required": ["eventTime", "producer", "schemaURL", "run", "job"],
    "properties": {
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "eventTime": {"type": "string", "format": "date-time"},
        "producer": {"type": "string", "format": "uri"},
        "schemaURL": {"type": "string", "format": "uri"},
        "run": {
            "type": "object",
            "required": ["runId"],
            "properties": {
                "runId": {"type": "string", "format": "uuid"},
                "facets": {"type": "object", "additionalProperties": _FACET},
            },
        },
        "job": {
            "type": "object",
            "required": ["namespace", "name"],
            "properties": {"facets": {"type": "object", "additionalProperties": _FACET}},
        },
        "inputs": {"type": "array", "items": _DATASET},
        "outputs": {"type": "array", "items": _DATASET},
    },
}


class _Marquez(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    answer: ClassVar[int] = 201

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path == "/api/v1/lineage" and self.headers["Content-Type"] == "application/json":
            type(self).received.append({"auth": self.headers.get("Authorization"), "event": json.loads(body)})
        self.send_response(type(self).answer if self.path == "/api/v1/lineage" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def endpoint() -> Iterator[tuple[str, type[_Marquez]]]:
    handler = type("Handler", (_Marquez,), {"received": [], "answer": 201})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def _runs(root: Path) -> tuple[str, str]:
    write_tree(root, {"data/raw.csv": "id,x\n1,2\n", "data/out.csv": "id,y\n1,4\n"})
    ws = Workspace.open(root)
    try:
        ws.add([root / "data/raw.csv"], type="dataset")
        with ws.start_run("prepare", params={"scale": 2}) as parent:
            parent.use("data/raw.csv")
            with ws.start_run("train") as child:
                child.log_metric("loss", 0.5)
            parent.output(root / "data/out.csv", type="dataset")
        with pytest.raises(RuntimeError), ws.start_run("broken"):
            raise RuntimeError("no memory left")
        return parent.id, child.id
    finally:
        ws.close()


def _rebuilt(event: dict[str, Any]) -> Any:
    """The event rebuilt with the official client's classes: their validators reject a bad runId,
    eventTime or eventType."""
    datasets = {
        "inputs": [event_v2.InputDataset(d["namespace"], d["name"]) for d in event["inputs"]],
        "outputs": [event_v2.OutputDataset(d["namespace"], d["name"]) for d in event["outputs"]],
    }
    return event_v2.RunEvent(
        eventType=event_v2.RunState(event["eventType"]),
        eventTime=event["eventTime"],
        run=event_v2.Run(runId=event["run"]["runId"]),
        job=event_v2.Job(namespace=event["job"]["namespace"], name=event["job"]["name"]),
        producer=event["producer"],
        **datasets,
    )


def test_runs_are_received_as_valid_run_events(cli: Cli, endpoint: tuple[str, type[_Marquez]]) -> None:
    url, server = endpoint
    cli("init")
    parent_id, child_id = _runs(cli.cwd)
    doc = cli.json("export", "openlineage", "--url", url, "--api-key", "s3cret")
    assert doc["statuses"] == [201] * 6 and len(doc["runs"]) == 3
    events = [r["event"] for r in server.received]
    assert all(r["auth"] == "Bearer s3cret" for r in server.received)
    validator = jsonschema.Draft202012Validator(RUN_EVENT, format_checker=jsonschema.FormatChecker())
    for event in events:
        validator.validate(event)
        _rebuilt(event)
    kinds = {(e["job"]["name"], e["eventType"]) for e in events}
    assert kinds == {(n, k) for n in ("prepare", "train", "broken") for k in ("START",)} | {
        ("prepare", "COMPLETE"),
        ("train", "COMPLETE"),
        ("broken", "FAIL"),
    }
    [prepare_end] = [e for e in events if e["job"]["name"] == "prepare" and e["eventType"] == "COMPLETE"]
    ws = Workspace.open(cli.cwd)
    try:
        run = ws.run(parent_id).run
    finally:
        ws.close()
    assert prepare_end["run"]["runId"].replace("-", "") == parent_id
    assert prepare_end["run"]["facets"]["mlcustody_run"]["seal"] == run.end.seal  # type: ignore[union-attr]
    [raw] = prepare_end["inputs"]
    [raw_io] = run.files("input")
    assert raw["name"] == "data/raw" and raw["facets"]["version"]["datasetVersion"] == f"blake3:{raw_io.digest}"
    [out] = prepare_end["outputs"]
    assert out["facets"]["version"]["datasetVersion"] == f"blake3:{run.files('output')[0].digest}"
    # standard facets carry the schema URLs of the client's own facet classes
    assert raw["facets"]["version"]["_schemaURL"] == dataset_version_dataset.DatasetVersionDatasetFacet._get_schema()
    assert prepare_end["job"]["facets"]["jobType"]["_schemaURL"] == job_type_job.JobTypeJobFacet._get_schema()
    [train_start] = [e for e in events if e["job"]["name"] == "train" and e["eventType"] == "START"]
    parent = train_start["run"]["facets"]["parent"]
    assert parent["_schemaURL"] == parent_run.ParentRunFacet._get_schema()
    assert parent["run"]["runId"].replace("-", "") == parent_id and parent["job"]["name"] == "prepare"
    assert train_start["run"]["runId"].replace("-", "") == child_id
    [failed] = [e for e in events if e["eventType"] == "FAIL"]
    error = failed["run"]["facets"]["errorMessage"]
    assert "no memory left" in error["message"]
    assert error["_schemaURL"] == error_message_run.ErrorMessageRunFacet._get_schema()


def test_one_run_to_a_file_and_refusals(cli: Cli, endpoint: tuple[str, type[_Marquez]], tmp_path: Path) -> None:
    url, server = endpoint
    cli("init")
    parent_id, _ = _runs(cli.cwd)
    target = tmp_path / "events.jsonl"
    cli("export", "openlineage", parent_id[:8], "--out", str(target))
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [e["eventType"] for e in lines] == ["START", "COMPLETE"]
    printed, _ = cli("export", "openlineage", parent_id)
    assert [json.loads(line) for line in printed.splitlines()] == lines
    server.answer = 400
    _, err = cli("export", "openlineage", parent_id, "--url", url, code=2)
    assert "HTTP 400" in err and len(err.strip().splitlines()) == 1
    _, err = cli("export", "openlineage", parent_id, "--url", "http://127.0.0.1:9", code=2)
    assert "cannot reach" in err
