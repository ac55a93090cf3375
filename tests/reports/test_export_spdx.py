"""`custody export spdx`: the SPDX 3.0.1 document is read back by spdx-python-model (typed classes of the
AI and Dataset profiles; every id it names resolves) and carries what custody holds."""

from __future__ import annotations

import base64
import hashlib
import io
import json

import pytest
from tests.conftest import Cli

spdx3 = pytest.importorskip("spdx_python_model.bindings.v3_0_1")


def _read(text: str) -> object:
    objects = spdx3.SHACLObjectSet()
    spdx3.JSONLDDeserializer().read(io.BytesIO(text.encode()), objects)
    return objects


def test_spdx_3_document_reads_back_with_the_ai_and_dataset_profiles(bom_registered: tuple[Cli, str]) -> None:
    cli, run_id = bom_registered
    text, _ = cli("export", "spdx", "credit@1")
    objects = _read(text)
    assert not objects.missing_ids  # type: ignore[attr-defined]
    [model] = objects.foreach_type(spdx3.ai_AIPackage)  # type: ignore[attr-defined]
    assert model.name == "credit" and model.software_packageVersion == "1"
    hashes = {str(h.algorithm).rsplit("/", 1)[-1]: h.hashValue for h in model.verifiedUsing}
    assert hashes["sha256"] == hashlib.sha256((cli.cwd / "model.skops").read_bytes()).hexdigest()
    assert {e.key: e.value for e in model.ai_hyperparameter} == {"C": "0.5", "solver": '"lbfgs"'}
    assert {e.key: e.value for e in model.ai_metric} == {"accuracy": "0.95", "loss": "0.2"}
    assert run_id in model.ai_informationAboutTraining
    [dataset] = objects.foreach_type(spdx3.dataset_DatasetPackage)  # type: ignore[attr-defined]
    assert dataset.name == "data/train"
    data_sha = hashlib.sha256((cli.cwd / "data/train.csv").read_bytes()).hexdigest()
    assert data_sha in {h.hashValue for h in dataset.verifiedUsing}
    [trained] = list(objects.foreach_type(spdx3.Relationship))  # type: ignore[attr-defined]
    assert str(trained.relationshipType).endswith("trainedOn")
    assert trained.from_ is model and list(trained.to) == [dataset]
    [document] = objects.foreach_type(spdx3.SpdxDocument)  # type: ignore[attr-defined]
    assert list(document.rootElement) == [model]
    again, _ = cli("export", "spdx", "credit@1")
    assert again == text


def test_spdx_reader_refuses_a_wrong_value(bom_registered: tuple[Cli, str]) -> None:
    cli, _ = bom_registered
    doc = json.loads(cli("export", "spdx", "credit@1")[0])
    [model] = [e for e in doc["@graph"] if e["type"] == "ai_AIPackage"]
    model["software_primaryPurpose"] = "not-a-purpose"  # the oracle must say so
    with pytest.raises(Exception, match=r"not-a-purpose|purpose|enum|Invalid"):
        _read(json.dumps(doc))


def test_signed_spdx_and_json_summary(bom_registered: tuple[Cli, str], tmp_path: object) -> None:
    cli, _ = bom_registered
    out = cli.cwd / "credit.spdx.dsse.json"
    doc = cli.json("export", "spdx", "credit@1", "--sign", "--out", str(out))
    assert doc["format"] == "spdx" and doc["spec"] == "3.0.1" and doc["components"] == 2 and doc["signed"]
    statement = json.loads(base64.b64decode(json.loads(out.read_text())["payload"]))
    assert statement["predicateType"] == "https://spdx.dev/Document/v3"
    assert not _read(json.dumps(statement["predicate"])).missing_ids  # type: ignore[attr-defined]
