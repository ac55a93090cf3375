"""`custody report decision` and `custody report verify`: a right-to-explanation report whose every field cites
the evidence it came from, signed with a detached DSSE envelope and stored as a report artifact."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import random
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from conftest import Cli, write_tree
from mlcustody import Workspace, load_model
from mlcustody.workspace.results import RecordSpec

PASSPHRASE = "report passphrase"
INPUTS = {"income_k": 41.5, "debt_ratio": 0.35}


def _world(ws: Workspace) -> None:
    """Raw loan applications → a prepare run with record lineage → a trainset → a logistic model registered and
    aliased, and decisions logged about two subjects (one of whom is then forgotten)."""
    rng = random.Random(11)
    lines = ["loan_id,income,amount,approved"]
    for i in range(60):
        income, amount = rng.randint(20_000, 90_000), rng.randint(1_000, 40_000)
        odds = 0.06 * (income / 1000 - 55) - 4 * (amount / income - 0.3)
        lines.append(
            f"L-{i:03d},{'' if i % 10 == 3 else income},{amount},{int(rng.random() < 1 / (1 + math.exp(-odds)))}"
        )
    write_tree(ws.root, {"raw/loans.csv": "\n".join(lines) + "\n"})
    ws.add([ws.root / "raw/loans.csv"], records=RecordSpec(key=("loan_id",)))
    with ws.start_run("prepare") as run:
        kept = run.use_records("raw/loans.csv").filter(pl.col("income").is_not_null())
        derived = run.derive(kept, income_k=pl.col("income") / 1000, debt_ratio=pl.col("amount") / pl.col("income"))
        columns = ["_rid", "loan_id", "income_k", "debt_ratio", "approved"]
        run.output_records(derived.select(columns), name="trainset", key=["loan_id"])
    from sklearn.linear_model import LogisticRegression

    with ws.start_run("train") as run:
        data = pl.read_parquet(run.use("trainset"))
        model = LogisticRegression(max_iter=1000).fit(
            data.select("income_k", "debt_ratio").to_numpy(), data["approved"]
        )
        run.save_model(model, ws.root / "model.skops")
    ws.register_model("credit", run=run.id)
    ws.alias_model("credit", "production", 1, "first release")
    with ws.decision_log("credit:production") as log:
        log.record("D-1", INPUTS, {"approved": False}, subject="S-1")
        log.record("D-2", INPUTS, {"approved": False}, subject="S-2")
    ws.forget_subject("S-2")


@pytest.fixture
def world(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", PASSPHRASE)
    cli("init")
    cli("keys", "generate", "--name", "compliance")
    with Workspace.open(cli.cwd) as ws:
        _world(ws)
    return cli


def _fields(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every field of a report by ``section.name``."""
    return {f"{s['id']}.{f['name']}": f for s in body["sections"] for f in s["fields"]}


def _citation(body: dict[str, Any], ident: str) -> dict[str, Any]:
    return next(c for c in body["citations"] if c["id"] == ident)


def test_the_report_names_what_trace_decision_names_and_cites_each_fact(world: Cli) -> None:
    out, _ = world("report", "decision", "D-1", "--format", "json")
    body = json.loads(out)
    traced = world.json("trace", "decision", "D-1")
    fields = _fields(body)
    assert body["schema"] == "mlcustody.report.decision/v1" and body["gaps"] == []
    assert fields["decision.model_version"]["value"] == traced["model"]["ref"] == "credit@1"
    assert fields["decision.aliases"]["value"] == traced["aliases"] == ["production"]
    assert fields["training.run"]["value"] == traced["run"]["id"]
    [dataset] = fields["training.datasets"]["value"]
    assert (dataset["ref"], dataset["digest"]) == (
        traced["datasets"][0]["name"],
        traced["datasets"][0]["digest"]["blake3"],
    )
    assert fields["model.attestation"]["value"] == traced["model"]["attestation"]
    # each fact cites evidence that names it
    run_cite = _citation(body, fields["training.run"]["cites"][0])
    assert (run_cite["kind"], run_cite["ref"], run_cite["digest"]) == (
        "run",
        traced["run"]["id"],
        traced["run"]["seal"],
    )
    entry = _citation(body, fields["decision.decision_id"]["cites"][0])
    assert (entry["kind"], entry["ref"], entry["digest"]) == ("decision", "D-1", body["inclusion"]["leaf_hash"])
    for field in fields.values():
        assert field["fill"] in {"store", "review", "human"}  # nothing given on the command line
        assert (field["value"] is None) == (field["fill"] == "human")
        assert field["cites"] or field["fill"] == "human", field["name"]
        assert all(any(c["id"] == ident for c in body["citations"]) for ident in field["cites"])
    assert {"oversight.reviewer", "logic.reason_wording", "logic.redactions"} <= {
        k for k, f in fields.items() if f["fill"] == "human"
    }
    assert fields["verification.attestation_verified"]["value"] is True
    assert fields["verification.log_inclusion_verified"]["value"] is True


def test_the_request_date_gives_the_deadlines(world: Cli) -> None:
    body = json.loads(world("report", "decision", "D-1", "--received", "2026-01-31", "--format", "json")[0])
    fields = _fields(body)
    assert [fields[f"decision.{n}"]["value"] for n in ("received", "due", "due_extended")] == [
        "2026-01-31",
        "2026-02-28",  # one month (GDPR Art. 12(3)), the month's last day
        "2026-04-30",
    ]
    assert {fields[f"decision.{n}"]["fill"] for n in ("received", "due", "due_extended")} == {"given"}
    erasure = json.loads(world("report", "erasure", "S-1", "--received", "2026-03-15", "--format", "json")[0])
    assert _fields(erasure)["request.due"]["value"] == "2026-04-15"
    assert "not a date" in world("report", "decision", "D-1", "--received", "yesterday", code=2)[1]


def test_contributions_are_shap_values_and_counterfactuals_change_the_result(world: Cli) -> None:
    shap = pytest.importorskip("shap")
    body = json.loads(world("report", "decision", "D-1", "--format", "json")[0])
    fields = _fields(body)
    model = load_model(world.cwd / "model.skops")
    data = pl.read_parquet(world.cwd / "trainset.parquet").select("income_k", "debt_ratio").to_numpy()
    x = np.array([[INPUTS["income_k"], INPUTS["debt_ratio"]]])
    mean = data.mean(axis=0, keepdims=True)
    oracle = shap.explainers.Exact(model.decision_function, shap.maskers.Independent(mean))(x).values[0]
    found = {c["feature"]: c["effect"] for c in fields["logic.contributions"]["value"]}
    assert [found["income_k"], found["debt_ratio"]] == pytest.approx(list(oracle), rel=1e-9)
    assert [found["income_k"], found["debt_ratio"]] == pytest.approx(list(model.coef_[0] * (x - mean)[0]), rel=1e-9)
    score = fields["logic.score"]["value"]
    assert score["this_decision"] - score["training_average"] == pytest.approx(sum(found.values()), rel=1e-9)
    # principal reasons: only scored factors that moved the score the way it went
    direction = math.copysign(1, score["this_decision"] - score["training_average"])
    pushing = [f for f, e in found.items() if math.copysign(1, e) == direction]
    assert [r.split(" = ")[0] for r in fields["logic.principal_reasons"]["value"]] == sorted(
        pushing, key=lambda f: -abs(found[f])
    )
    assert fields["logic.principal_reasons"]["fill"] == "review"
    predicted = model.predict(x)[0]
    texts = fields["logic.counterfactuals"]["value"]
    assert texts, "a single change of income flips a logistic credit model"
    names = ["income_k", "debt_ratio"]
    for change in texts:
        j = names.index(change["factor"])
        assert change["now"] == x[0, j]
        moved = x.copy()
        moved[0, j] = change["would_have_to_be"]
        assert model.predict(moved)[0] != predicted == model.predict(x)[0]
        assert change["result_then"] == model.predict(moved)[0]
        moved[0, j] -= (change["would_have_to_be"] - x[0, j]) * 1e-6  # a hair closer to the person's value
        assert model.predict(moved)[0] == predicted, "the change found is the nearest one"
    records = fields["records.records"]["value"]
    assert len(records) == 5 and all(len(r["record"]) == 16 and not r["record"].startswith("L-") for r in records)
    assert all(s.startswith("raw/loans@1 raw/loans.csv:") for r in records for s in r["sources"])


def test_same_store_same_bytes_and_later_decisions_change_nothing(world: Cli) -> None:
    first = world.cwd / "a.json"
    world("report", "decision", "D-1", "--out", str(first))
    stored = world.json("report", "decision", "D-1")["stored"]
    with Workspace.open(world.cwd) as ws, ws.decision_log("credit@1") as log:
        log.record("D-3", INPUTS, {"approved": True}, subject="S-3")  # a later checkpoint, a moved audit head
    second = world.cwd / "b.json"
    world("report", "decision", "D-1", "--out", str(second))
    assert first.read_bytes() == second.read_bytes()
    assert world.json("report", "decision", "D-1")["stored"] == stored  # not stored again


def test_pdf_renders_signed_and_verifies_offline_and_against_the_store(world: Cli) -> None:
    pypdf = pytest.importorskip("pypdf")
    pdf = world.cwd / "D-1.pdf"
    doc = world.json("report", "decision", "D-1", "--out", str(pdf))
    assert doc["format"] == "pdf" and doc["signature"] == f"{pdf}.dsse.json"
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf.read_bytes())).pages)
    assert "D-1" in text and "credit@1" in text
    checked = world.json("report", "verify", str(pdf))
    assert checked["ok"] and checked["with_store"] and checked["kind"] == "decision" and checked["citations"] > 5
    assert world.json("report", "verify", str(pdf), "--offline")["ok"]
    html = world.cwd / "D-1.html"
    world("report", "decision", "D-1", "--out", str(html))
    page = html.read_text()
    assert "<svg" in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")  # self-contained
    html.write_text(page.replace("credit@1", "credit@9"))
    found = world.json("report", "verify", str(html), "--offline", code=1)
    assert found["problems"] == ["the report file's digest is not the one signed: the file was changed"]
    for garbage in ("[]", "not json", '{"payload": "%%%"}'):
        (world.cwd / "D-1.html.dsse.json").write_text(garbage)
        [problem] = world.json("report", "verify", str(html), code=1)["problems"]
        assert problem.startswith("the signature file is not a report envelope")


def test_the_signature_is_dsse_that_securesystemslib_verifies(world: Cli) -> None:
    sslib = pytest.importorskip("securesystemslib.dsse")
    from securesystemslib.signer import SSlibKey

    out = world.cwd / "D-1.json"
    world("report", "decision", "D-1", "--out", str(out))
    envelope = json.loads((world.cwd / "D-1.json.dsse.json").read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    signer = statement["predicate"]["signer"]
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    key = SSlibKey.from_crypto(load_pem_public_key(signer["publicKey"].encode()))
    assert key.keyid == signer["keyid"]
    sslib.Envelope.from_dict(envelope).verify([key], 1)
    assert statement["subject"][0]["name"] == "D-1.json"


def test_a_citation_that_no_longer_matches_the_store_is_named(world: Cli) -> None:
    out = world.cwd / "D-1.md"
    world("report", "decision", "D-1", "--out", str(out))
    body = json.loads(world("report", "decision", "D-1", "--format", "json")[0])
    run = _citation(body, _fields(body)["training.run"]["cites"][0])
    with sqlite3.connect(world.cwd / ".custody" / "metadata.db") as db:
        db.execute("UPDATE run_ends SET seal = ? WHERE run_id = ?", ("0" * 64, run["ref"]))
    found = world.json("report", "verify", str(out), code=1)
    assert any(p.startswith(f"{run['id']} run {run['ref']}: the store has {'0' * 64}") for p in found["problems"])
    assert world.json("report", "verify", str(out), "--offline")["ok"]  # the files alone are intact


def test_gaps_are_stated_and_bad_input_changes_nothing(world: Cli) -> None:
    body = json.loads(world("report", "decision", "D-2", "--format", "json")[0])
    assert any("crypto-shredded" in gap for gap in body["gaps"])
    assert _fields(body)["data_used.inputs"]["value"].startswith("crypto-shredded")
    before = world.json("ls", "--all")["artifacts"]
    err = world("report", "decision", "D-404", code=2)[1]
    assert "no decision with id 'D-404'" in err and "custody decisions ls" in err
    assert "--out FILE.pdf" in world("report", "decision", "D-1", "--format", "pdf", code=2)[1]
    assert "writable" in world("report", "decision", "D-1", "--out", str(world.cwd / "no" / "such.md"), code=2)[1]
    assert "unknown report format" in world("report", "decision", "D-1", "--format", "docx", code=2)[1]
    assert world.json("ls", "--all")["artifacts"] == before
    assert "cannot read" in world("report", "verify", str(world.cwd / "missing.pdf"), code=2)[1]


# -- erasure -------------------------------------------------------------------------------------------


def test_erasure_impact_finds_their_records_models_and_decisions_and_destroys_nothing(world: Cli) -> None:
    body = json.loads(world("report", "erasure", "S-1", "--record", "L-004", "--format", "json")[0])
    assert body["schema"] == "mlcustody.report.erasure/v1"
    assert body["subject"].startswith("subject-") and "S-1" not in json.dumps(body) and "L-004" not in json.dumps(body)
    fields = _fields(body)
    rows = fields["inventory.records"]["value"]
    assert {(r["ref"], r["derived"]) for r in rows} == {("raw/loans@1", False), ("trainset@1", True)}
    assert {r["source"] for r in rows} == {"raw/loans.csv:6", "trainset.parquet#3"}  # L-004 is line 6; row 3 kept
    unkeyed = hashlib.sha256(b"L-004").hexdigest()[:16]
    assert {r["record"] for r in rows} != {unkeyed} and len({r["record"] for r in rows}) == 1  # keyed, one id
    assert [m["model"] for m in fields["models.models"]["value"]] == ["credit@1"]
    assert fields["models.retrain_decision"]["fill"] == "human"
    assert [d["decision"] for d in fields["decisions.decisions"]["value"]] == ["D-1"]
    assert fields["decisions.data_key"]["value"] == "active"
    assert any("not executed" in gap for gap in body["gaps"])
    assert world.json("decisions", "receipt", "D-1")["decision"]["payload_key"] is not None
    with Workspace.open(world.cwd) as ws:
        assert ws.decision_inputs("D-1") == INPUTS  # an impact report destroys nothing


def test_erasure_by_a_column_finds_the_records_of_line_keyed_snapshots(world: Cli) -> None:
    by_id = json.loads(world("report", "erasure", "S-1", "--record", "L-004", "--format", "json")[0])
    by_column = json.loads(world("report", "erasure", "L-004", "--key", "loan_id", "--format", "json")[0])
    assert _fields(by_column)["inventory.records"]["value"] == _fields(by_id)["inventory.records"]["value"]
    assert _fields(by_column)["decisions.decisions"]["value"] == []  # L-004 is no decision subject
    assert "holds no record" in world("report", "erasure", "L-004", "--key", "income", code=2)[1]


def test_erasure_execute_shreds_their_payloads_keeps_verify_green_and_is_audited(world: Cli) -> None:
    out = world.cwd / "erasure.md"
    doc = world.json("report", "erasure", "S-1", "--record", "L-004", "--execute", "--out", str(out))
    with Workspace.open(world.cwd) as ws:
        assert ws.decision_inputs("D-1") is None  # cannot be decrypted any more
        assert ws.decision_inputs("D-2") is None  # S-2 was forgotten before; no one else's data was touched
    fields = _fields(doc["report"])
    assert fields["execution.executed"]["value"] is True and fields["execution.payloads_shredded"]["value"] == 1
    assert fields["execution.retrain"]["value"] == ["credit@1"]
    assert fields["decisions.data_key"]["value"] == "shredded"
    world("verify")
    world("verify", "--decisions")
    actions = [e["action"] for e in world.json("log")["events"]]
    assert "subject.erase" in actions and "decision.shred" in actions
    assert world.json("report", "verify", str(out))["ok"]
    with sqlite3.connect(world.cwd / ".custody" / "metadata.db") as db:
        stored = "".join(str(row) for table in ("runs", "audit_events") for row in db.execute(f"SELECT * FROM {table}"))
    assert "S-1" not in stored and "L-004" not in stored  # the subject's ids never reach the store


def test_a_snapshot_made_after_the_erasure_that_still_holds_their_records_is_a_gap(world: Cli) -> None:
    world("report", "erasure", "S-1", "--record", "L-004", "--execute", "--format", "json")
    body = json.loads(world("report", "erasure", "S-1", "--record", "L-004", "--format", "json")[0])
    assert _fields(body)["execution.later_snapshots"]["value"] == []
    raw = world.cwd / "raw" / "loans.csv"
    raw.write_text(raw.read_text() + "L-999,50000,1000,1\n")
    with Workspace.open(world.cwd) as ws:
        ws.add([raw], records=RecordSpec(key=("loan_id",)))  # the new snapshot keeps L-004
    body = json.loads(world("report", "erasure", "S-1", "--record", "L-004", "--format", "json")[0])
    [later] = _fields(body)["execution.later_snapshots"]["value"]
    assert (later["snapshot"], later["records"]) == ("raw/loans@2", 1)
    assert any("made after the erasure still hold their records: raw/loans@2" in gap for gap in body["gaps"])


def test_a_hold_blocks_execution_until_released(world: Cli) -> None:
    world("report", "hold", "--all", "--reason", "incident 2026-11: preserve evidence")
    assert [h["reason"] for h in world.json("report", "holds")["holds"]] == ["incident 2026-11: preserve evidence"]
    before = world.json("log")["events"]
    err = world("report", "erasure", "S-1", "--execute", code=2)[1]
    assert "blocked by hold" in err and "--release" in err
    assert world.json("log")["events"] == before  # refused: nothing destroyed, nothing recorded
    body = json.loads(world("report", "erasure", "S-1", "--format", "json")[0])
    assert any("on hold" in gap for gap in body["gaps"])
    world("report", "hold", "--all", "--release", "--reason", "incident closed")
    world("report", "erasure", "S-1", "--execute", "--format", "json")
    with Workspace.open(world.cwd) as ws:
        assert ws.decision_inputs("D-1") is None


def test_an_unknown_subject_is_bad_input(world: Cli) -> None:
    assert world.json("decisions", "ls", "--subject", "nobody")["decisions"] == []  # was an internal error
    err = world("report", "erasure", "nobody", code=2)[1]
    assert "holds no record, decision or data key of that subject" in err and "--record" in err
    assert "SUBJECT or --all" in world("report", "hold", "--reason", "x", code=2)[1]
    assert "needs a reason" in world("report", "hold", "S-1", code=2)[1]


# -- Annex IV and inventory ----------------------------------------------------------------------------


def test_annex_iv_fills_what_the_store_knows_and_marks_what_a_person_must_write(world: Cli) -> None:
    body = json.loads(world("report", "annex-iv", "credit:production", "--format", "json")[0])
    assert body["subject"] == "credit@1"
    assert [s["title"].split(".")[0] for s in body["sections"]] == [str(n) for n in range(1, 10)]
    fields = _fields(body)
    for name in (
        "risk.risk_management",
        "standards.standards",
        "conformity.declaration",
        "general.purpose",
        "post_market.monitoring_plan",
    ):
        assert fields[name]["fill"] == "human" and fields[name]["value"] is None
    shown = world.json("show", "trainset@1")["artifact"]
    [data] = fields["development.training_data"]["value"]
    assert (data["ref"], data["digest"], data["records"]) == ("trainset@1", shown["digest"], 54)
    assert [s["step"] for s in fields["development.steps"]["value"]] == ["prepare", "train"]
    model = world.json("model", "show", "credit@1")
    assert fields["general.software"]["value"]["python"] == model["environment"]["python"]
    assert [(m["alias"], m["to"], m["why"]) for m in fields["lifecycle.alias_history"]["value"]] == [
        ("production", 1, "first release")
    ]
    assert fields["monitoring.decisions"]["value"] == 2
    assert any("no investigation is stored" in gap for gap in body["gaps"])
    out = world.cwd / "annex.html"
    world("report", "annex-iv", "credit@1", "--out", str(out))
    assert world.json("report", "verify", str(out))["ok"]
    assert "no registered model named 'nope'" in world("report", "annex-iv", "nope", code=2)[1]


def test_inventory_lists_every_version_with_status_usage_and_integrity(world: Cli) -> None:
    with Workspace.open(world.cwd) as ws:
        ws.register_model("credit", path=ws.root / "model.skops")
        ws.alias_model("credit", "production", 2, "second release")
        with ws.decision_log("credit@2") as log:
            log.record("D-9", INPUTS, {"approved": True})
    body = json.loads(world("report", "inventory", "--format", "json")[0])
    rows = {r["model"]: r for r in _fields(body)["inventory.models"]["value"]}
    assert set(rows) == {"credit@1", "credit@2"}
    assert (rows["credit@1"]["status"], rows["credit@2"]["status"]) == ("retired", "production")
    listed = world.json("decisions", "ls", "--model", "credit@1")["decisions"]
    assert rows["credit@1"]["decisions"] == len(listed) == 2 and rows["credit@2"]["decisions"] == 1
    assert rows["credit@1"]["training_data"] == rows["credit@2"]["training_data"] == ["trainset@1"]
    assert all(r["attestation_verified"] and r["open_findings"] == [] for r in rows.values())
    assert _fields(body)["inventory.materiality"]["fill"] == "human"


def test_a_report_signed_by_a_key_revoked_since_fails_against_the_store(world: Cli) -> None:
    out = world.cwd / "D-1.json"
    world("report", "decision", "D-1", "--out", str(out))
    keyid = world.json("report", "verify", str(out))["keyid"]
    world("keys", "revoke", keyid, "--reason", "laptop stolen")
    found = world.json("report", "verify", str(out), code=1)
    [problem] = found["problems"]
    assert problem.startswith(f"signing key: key compliance (keyid {keyid}) was revoked on ")
    assert "laptop stolen" in found["problems"][0]
    assert world.json("report", "verify", str(out), "--offline")["ok"]  # the file alone cannot know
    body = json.loads(out.read_text())
    body["sections"][0]["fields"][2]["value"] = {"approved": True}  # a JSON report edited, signature kept
    out.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    problems = world.json("report", "verify", str(out), "--offline", code=1)["problems"]
    assert "the report body is not the one signed" in problems


def test_a_tree_ensemble_is_explained_by_exact_shapley_values_of_its_probability(world: Cli) -> None:
    shap = pytest.importorskip("shap")
    from sklearn.ensemble import RandomForestClassifier

    with Workspace.open(world.cwd) as ws:
        with ws.start_run("train-forest") as run:
            data = pl.read_parquet(run.use("trainset"))
            forest = RandomForestClassifier(n_estimators=25, max_depth=4, random_state=0)
            forest.fit(data.select("income_k", "debt_ratio").to_numpy(), data["approved"])
            run.save_model(forest, ws.root / "forest.skops")
        ws.register_model("forest", run=run.id)
        with ws.decision_log("forest@1") as log:
            log.record("F-1", INPUTS, {"approved": False})
    body = json.loads(world("report", "decision", "F-1", "--format", "json")[0])
    fields = _fields(body)
    model = load_model(world.cwd / "forest.skops")
    rows = pl.read_parquet(world.cwd / "trainset.parquet").select("income_k", "debt_ratio").to_numpy()
    x = np.array([[INPUTS["income_k"], INPUTS["debt_ratio"]]])
    masker = shap.maskers.Independent(rows.mean(axis=0, keepdims=True))
    oracle = shap.explainers.Exact(lambda r: model.predict_proba(r)[:, 1], masker)(x).values[0]
    found = {c["feature"]: c["effect"] for c in fields["logic.contributions"]["value"]}
    assert [found["income_k"], found["debt_ratio"]] == pytest.approx(list(oracle), abs=1e-12)
    assert fields["logic.score"]["value"]["unit"] == "probability of the positive class"
    assert fields["logic.model_type"]["value"] == "RandomForestClassifier"


def test_a_version_whose_attestation_is_gone_is_reported_with_the_gap_stated(world: Cli) -> None:
    attestation = world.json("model", "show", "credit@1")["model"]["attestation"]
    (world.cwd / ".custody" / "objects" / attestation[:2] / attestation[2:]).unlink()
    out = world.cwd / "D-1.json"
    world("report", "decision", "D-1", "--out", str(out))
    body = json.loads(out.read_text())
    assert body["gaps"][0].startswith("the attestation of credit@1 does not verify: envelope object")
    assert _fields(body)["verification.attestation_verified"]["value"] is False
    problems = world.json("report", "verify", str(out), code=1)["problems"]
    assert any("attestation credit@1" in p for p in problems), problems


def test_custody_verify_checks_a_report_file_against_the_store_or_offline_outside_one(
    world: Cli, tmp_path: Path
) -> None:
    out = world.cwd / "D-1.json"
    world("report", "decision", "D-1", "--out", str(out))
    inside = world.json("verify", str(out))
    assert inside["ok"] and inside["with_store"] and inside["kind"] == "decision"
    elsewhere, home = tmp_path / "elsewhere", world.cwd
    elsewhere.mkdir()
    world.cwd = elsewhere
    try:
        outside = world.json("verify", str(out))
    finally:
        world.cwd = home
    assert outside["ok"] and not outside["with_store"]
    assert "give one of them" in world("verify", str(out), "--decisions", code=2)[1]


def test_without_the_pango_library_a_pdf_is_a_one_line_error_and_changes_nothing(
    world: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """weasyprint installs from PyPI but loads Pango from the system: where it is missing, asking for a
    PDF says so and how to fix it (exit 2), stores nothing, and HTML still works."""
    import builtins

    real = builtins.__import__

    def without_pango(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "weasyprint":
            raise OSError("cannot load library 'libpango-1.0-0'")
        return real(name, *args, **kwargs)

    before = world.json("ls")["artifacts"]
    monkeypatch.setattr(builtins, "__import__", without_pango)
    _, err = world("report", "decision", "D-1", "--out", str(world.cwd / "D-1.pdf"), code=2)
    assert "need the Pango library" in err and "--format html" in err and len(err.strip().splitlines()) == 1
    assert not (world.cwd / "D-1.pdf").exists()
    assert world.json("ls")["artifacts"] == before
    world("report", "decision", "D-1", "--out", str(world.cwd / "D-1.html"))
