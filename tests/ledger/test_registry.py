"""The model registry: signed in-toto/SLSA attestations checked by securesystemslib, and model verify."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from _models import PASSPHRASE
from conftest import Cli
from mlcustody import Workspace


def test_acceptance_the_attestation_verifies_with_securesystemslib(registered_cli: tuple[Cli, str]) -> None:
    cli, run_id = registered_cli
    envelope, _ = cli("model", "show", "credit@1", "--attestation")
    public_pem, _ = cli("keys", "export-public", "registry")
    key = SSlibKey.from_crypto(load_pem_public_key(public_pem.encode()))
    verified = Envelope.from_dict(json.loads(envelope)).verify([key], 1)
    assert key.keyid in verified
    payload = json.loads(base64.b64decode(json.loads(envelope)["payload"]))
    model_sha256 = hashlib.sha256((cli.cwd / "model.skops").read_bytes()).hexdigest()
    assert payload["subject"] == [
        {"name": "model.skops", "digest": {"sha256": model_sha256, "blake3": payload["subject"][0]["digest"]["blake3"]}}
    ]
    predicate = payload["predicate"]
    assert payload["predicateType"] == "https://slsa.dev/provenance/v1"
    assert predicate["runDetails"]["metadata"]["invocationId"] == run_id
    assert predicate["buildDefinition"]["externalParameters"]["params"] == {"C": 0.5}
    names = {d["name"] for d in predicate["buildDefinition"]["resolvedDependencies"]}
    assert {"data/train@1", "code", "environment"} <= names
    [dataset] = [d for d in predicate["buildDefinition"]["resolvedDependencies"] if d["name"] == "data/train@1"]
    assert set(dataset["digest"]) == {"sha256", "blake3"} and dataset["annotations"]["records"] == 60
    assert {b["name"] for b in predicate["runDetails"]["byproducts"]} == {"lineage-graph", "run-record"}
    assert cli.json("model", "verify", "credit@1")["ok"] is True
    assert cli.json("verify")["ok"] is True


def test_aliases_keep_their_history(registered_cli: tuple[Cli, str]) -> None:
    cli, run_id = registered_cli
    cli.json("model", "register", "credit", "--run", run_id)
    cli.json("model", "alias", "credit", "production", "1", "--reason", "passed review")
    moved = cli.json("model", "alias", "credit", "production", "2", "--reason", "retrained")
    assert (moved["version"], moved["previous"], moved["reason"]) == (2, 1, "retrained")
    shown = cli.json("model", "show", "credit:production")
    assert shown["model"]["ref"] == "credit@2"
    history = shown["aliases"]["production"]["history"]
    assert [(h["version"], h["previous"], h["reason"]) for h in history] == [
        (1, None, "passed review"),
        (2, 1, "retrained"),
    ]
    assert [m["ref"] for m in cli.json("model", "ls")["models"]] == ["credit@1", "credit@2"]


def _objects(root: Path) -> Path:
    return root / ".custody" / "objects"


def _flip(path: Path) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def _object_of(root: Path, digest: str) -> Path:
    return _objects(root) / digest[:2] / digest[2:]


@pytest.mark.parametrize("tamper", ["model byte", "dataset object", "run param row", "attestation", "revoked key"])
def test_model_verify_names_each_kind_of_tampering(registered_cli: tuple[Cli, str], tamper: str) -> None:
    cli, _ = registered_cli
    model = cli.json("model", "show", "credit@1")
    root = cli.cwd
    expected = {
        "model byte": "model_modified",
        "dataset object": "dependency_modified",
        "run param row": "run_modified",
        "attestation": "attestation_modified",
        "revoked key": "signature_invalid",
    }[tamper]
    if tamper == "model byte":
        _flip(_object_of(root, model["model"]["digest"]))
    elif tamper == "dataset object":
        [dataset] = model["datasets"]
        _flip(_object_of(root, dataset["digest"]["blake3"]))
    elif tamper == "run param row":
        with sqlite3.connect(root / ".custody" / "metadata.db") as db:
            db.execute("UPDATE run_params SET value = '0.9', number = 0.9 WHERE key = 'C'")
        db.close()
    elif tamper == "attestation":
        _flip(_object_of(root, model["model"]["attestation"]))
    else:
        cli("keys", "revoke", "registry", "--reason", "laptop stolen")
    doc = cli.json("model", "verify", "credit@1", code=1)
    assert doc["ok"] is False
    assert expected in {p["kind"] for p in doc["problems"]}, doc["problems"]


def test_bad_registry_input_is_refused(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", PASSPHRASE)
    cli("init")
    cli("keys", "generate", "--name", "registry")
    ws = Workspace.open(cli.cwd)
    try:
        with ws.start_run("no-model") as run:
            pass
    finally:
        ws.close()
    for args, message in [
        (("model", "register", "credit", "--run", run.id), "wrote no model (it wrote nothing)"),
        (("model", "register", "credit"), "give a run or a model path"),
        (("model", "show", "nosuch"), "no registered model named 'nosuch'"),
        (("model", "verify", "credit:production"), "no registered model named 'credit'"),  # not "no alias"
        (("model", "alias", "credit", "production", "1", "--reason", "ok"), "no registered model named 'credit'"),
        (("model", "alias", "credit", "prod uction", "1", "--reason", "ok"), "alias 'prod uction' is not valid"),
        (("model", "alias", "credit", "production", "1"), "an alias move needs a reason"),
    ]:
        _, err = cli(*args, code=2)
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_the_decision_log_key_never_signs_attestations(registered_cli: tuple[Cli, str]) -> None:
    cli, run_id = registered_cli
    ws = Workspace.open(cli.cwd)
    try:
        with ws.decision_log("credit@1") as log:  # creates the Ed25519 decision-log key
            log.record("D-1", inputs={"x": 1}, output=0.5)
        registry_key = ws.key("registry").keyid
    finally:
        ws.close()
    second = cli.json("model", "register", "credit", "--run", run_id)
    assert second["model"]["keyid"] == registry_key
