"""`custody export cyclonedx`: the ML-BOM passes cyclonedx-python-lib's strict JSON validator (1.6 and
1.7), carries what custody holds (hashes, datasets, metrics, params, the run), every 1.7 citation points at
a field that exists, and the signed form verifies with the registry key."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.signer import SSlibKey
from tests.conftest import Cli, write_tree

from mlcustody.workspace.facade import Workspace

validation = pytest.importorskip("cyclonedx.validation.json")
schema = pytest.importorskip("cyclonedx.schema")
PASSPHRASE = "correct horse battery staple"


def _train(root: Path) -> str:
    from sklearn.linear_model import LogisticRegression

    rows = "\n".join(f"{i},{i % 7},{int(i % 7 > 3)}" for i in range(40))
    write_tree(root, {"data/train.csv": "id,x,y\n" + rows + "\n", "conf/train.json": '{"C": 0.5}'})
    ws = Workspace.open(root)
    try:
        ws.add([root / "data/train.csv"], type="dataset")
        ws.add([root / "conf/train.json"], type="config")
        tags = {
            "modelcard.task": "classification",
            "modelcard.approach": "supervised",
            "modelcard.considerations.useCases": "credit pre-screening",
        }
        with ws.start_run("train", params={"C": 0.5, "solver": "lbfgs"}, tags=tags) as run:
            run.use("data/train.csv")
            run.use("conf/train.json")
            run.log_metric("accuracy", 0.9, step=1)
            run.log_metric("accuracy", 0.95, step=2)
            run.log_metric("loss", 0.2)
            x = [[i % 7] for i in range(40)]
            y = [int(i % 7 > 3) for i in range(40)]
            run.save_model(LogisticRegression(C=0.5).fit(x, y), root / "model.skops")
        return run.id
    finally:
        ws.close()


@pytest.fixture
def registered(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> tuple[Cli, str]:
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", PASSPHRASE)
    cli("init")
    cli("keys", "generate", "--name", "registry")
    run_id = _train(cli.cwd)
    cli("model", "register", "credit", "--run", run_id)
    return cli, run_id


def _strictly_valid(text: str, spec: str) -> None:
    version = {"1.6": schema.SchemaVersion.V1_6, "1.7": schema.SchemaVersion.V1_7}[spec]
    error = validation.JsonStrictValidator(version).validate_str(text)
    assert error is None, str(error)


def _pointer(doc: Any, pointer: str) -> Any:
    for part in pointer.lstrip("/").split("/"):
        doc = doc[int(part)] if isinstance(doc, list) else doc[part.replace("~1", "/").replace("~0", "~")]
    return doc


def test_ml_bom_1_6_is_strictly_valid_and_holds_the_chain(registered: tuple[Cli, str]) -> None:
    cli, run_id = registered
    text, _ = cli("export", "cyclonedx", "credit@1")
    _strictly_valid(text, "1.6")
    bom = json.loads(text)
    wrong = json.loads(text)
    wrong["components"][0]["modelCard"]["accuracy"] = "0.95"  # not a model-card field: the oracle must say so
    assert validation.JsonStrictValidator(schema.SchemaVersion.V1_6).validate_str(json.dumps(wrong)) is not None
    model, *data, attestation = bom["components"]
    assert model["type"] == "machine-learning-model" and model["name"] == "credit" and model["version"] == "1"
    sha256 = hashlib.sha256((cli.cwd / "model.skops").read_bytes()).hexdigest()
    assert {"alg": "SHA-256", "content": sha256} in model["hashes"]
    names = {d["name"]: d for d in data}
    assert set(names) == {"data/train", "conf/train"}
    train_sha = hashlib.sha256((cli.cwd / "data/train.csv").read_bytes()).hexdigest()
    assert {"alg": "SHA-256", "content": train_sha} in names["data/train"]["hashes"]
    assert names["conf/train"]["data"][0]["type"] == "configuration"
    card = model["modelCard"]
    assert card["modelParameters"]["datasets"] == [{"ref": "data:data/train@1"}]  # the config is no dataset
    assert card["modelParameters"]["task"] == "classification"
    assert card["modelParameters"]["approach"] == {"type": "supervised"}
    metrics = {m["type"]: m["value"] for m in card["quantitativeAnalysis"]["performanceMetrics"]}
    assert metrics == {"accuracy": "0.95", "loss": "0.2"}  # the latest value of each
    assert card["considerations"] == {"useCases": ["credit pre-screening"]}
    assert {"name": "mlcustody:param:C", "value": "0.5"} in card["properties"]
    (workflow,) = bom["formulation"][0]["workflows"]
    assert workflow["uid"] == run_id
    assert {"resource": {"ref": "data:data/train@1"}} in workflow["inputs"]
    assert workflow["outputs"] == [{"resource": {"ref": "model:credit@1"}}]
    envelope, _ = cli("model", "show", "credit@1", "--attestation")
    assert {"alg": "SHA-256", "content": hashlib.sha256(envelope.strip().encode()).hexdigest()} in attestation["hashes"]
    assert "citations" not in bom
    again, _ = cli("export", "cyclonedx", "credit@1")
    assert again == text  # the same model version gives the same document


def test_ml_bom_1_7_cites_every_model_card_field(registered: tuple[Cli, str]) -> None:
    cli, run_id = registered
    text, _ = cli("export", "cyclonedx", "credit", "--spec", "1.7")
    _strictly_valid(text, "1.7")
    bom = json.loads(text)
    refs = {c["bom-ref"] for c in bom["components"]} | {w["bom-ref"] for w in bom["formulation"][0]["workflows"]}
    pointers = {p for c in bom["citations"] for p in c["pointers"]}
    card = bom["components"][0]["modelCard"]
    every = {f"/components/0/modelCard/quantitativeAnalysis/performanceMetrics/{i}" for i in range(2)}
    every |= {f"/components/0/modelCard/properties/{i}" for i in range(len(card["properties"]))}
    every |= {"/components/0/modelCard/modelParameters/datasets/0", "/components/0/hashes"}
    assert every <= pointers
    for citation in bom["citations"]:
        for pointer in citation["pointers"]:
            _pointer(bom, pointer)  # names a field that exists
        assert citation["process"] == f"run:{run_id}" and citation["process"] in refs
        assert citation["attributedTo"] == "attestation:credit@1" and citation["attributedTo"] in refs


def test_signed_bom_verifies_with_the_registry_key(registered: tuple[Cli, str], tmp_path: Path) -> None:
    cli, _ = registered
    out = tmp_path / "credit.cdx.dsse.json"
    doc = cli.json("export", "cyclonedx", "credit@1", "--spec", "1.7", "--sign", "--out", str(out))
    assert doc["signed"] is True and doc["out"] == str(out) and doc["components"] == 4
    from securesystemslib.dsse import Envelope

    public_pem, _ = cli("keys", "export-public", "registry")
    key = SSlibKey.from_crypto(load_pem_public_key(public_pem.encode()))
    envelope = json.loads(out.read_text())
    assert key.keyid in Envelope.from_dict(envelope).verify([key], 1)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["predicateType"] == "https://cyclonedx.org/bom"
    _strictly_valid(json.dumps(statement["predicate"]), "1.7")


def test_bad_spec_and_unknown_model_are_one_line_errors(registered: tuple[Cli, str], tmp_path: Path) -> None:
    cli, _ = registered
    _, err = cli("export", "cyclonedx", "credit@1", "--spec", "1.4", code=2)
    assert "1.4" in err and len(err.strip().splitlines()) == 1
    _, err = cli("export", "cyclonedx", "nosuch@1", "--out", str(tmp_path / "x.json"), code=2)
    assert "nosuch" in err and not (tmp_path / "x.json").exists()


def test_export_model_bundle_still_works_without_the_word_bundle(registered: tuple[Cli, str], tmp_path: Path) -> None:
    cli, _ = registered
    for args in (("credit@1",), ("bundle", "credit@1")):
        target = tmp_path / f"{len(args)}.tar.gz"
        assert cli.json("export", *args, "--bundle", str(target))["model"] == "credit@1"
        assert target.exists()
