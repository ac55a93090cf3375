"""The chain on the plain path: a pipeline of scripts that never import mlcustody, run through
`custody run`, gives versions, record manifests, inferred record links, a model registered by
--run and a decision traced to raw source lines."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import Cli
from mlcustody.workspace import plain_pipeline

PASSPHRASE = "continuity test passphrase"


@pytest.fixture
def pipeline(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The four stages run one by one; the ids of their runs."""
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", PASSPHRASE)
    plain_pipeline.write(cli.cwd, rows_per_source=150)
    cli("init")
    return {stage: _run(cli, stage, f"{stage}.py")["run"]["id"] for stage in plain_pipeline.STAGES}


def _run(cli: Cli, name: str, script: str, *options: str) -> Any:
    """Run a script through `custody run` and return its run document (`show RUN --json`)."""
    cli("run", "--name", name, *options, "--", sys.executable, script)
    newest = _json(cli("runs", "--json", "--name", name)[0])["runs"][0]["id"]
    return _json(cli("show", newest, "--json")[0])


def _configure(cli: Cli, text: str) -> None:
    with cli.cwd.joinpath(".custody", "config.toml").open("a", encoding="utf-8") as handle:
        handle.write(text)


def _json(text: str) -> Any:
    import json

    return json.loads(text)


def test_a_plain_pipeline_gives_the_whole_chain(cli: Cli, pipeline: dict[str, str]) -> None:
    listed = {item["ref"]: item for item in _json(cli("ls", "--json")[0])["artifacts"]}
    assert {"raw/branch_north@1", "data/applications@1", "data/clean@1", "data/features@1", "model@1"} <= set(listed)
    assert listed["model@1"]["type"] == "model" and listed["data/features@1"]["type"] == "dataset"

    cli("keys", "generate")
    cli("model", "register", "credit", "--run", pipeline["train"][:12])
    shown = _json(cli("model", "show", "credit@1", "--json")[0])
    [features] = shown["datasets"]
    assert features["name"] == "data/features@1" and features["annotations"]["learnt"] == "captured"
    assert {s["name"] for s in shown["sources"]} == {f"raw/{s}@1" for s in plain_pipeline.SOURCES}
    assert shown["model"]["digest"] == listed["model@1"]["digest"]
    cli("model", "verify", "credit@1")

    graph = _json(cli("lineage", "credit@1", "--up", "--json")[0])
    assert {s["path"] for s in graph["sources"]} == {f"raw/{s}.csv" for s in plain_pipeline.SOURCES}

    ingest = _json(cli("show", pipeline["ingest"][:12], "--json")[0])
    relations = {link["input"]: link["relation"] for link in ingest["capture"]["links"]}
    assert relations == {f"raw/{s}@1": "inferred-key" for s in plain_pipeline.SOURCES}

    log = cli.cwd / "predictions.jsonl"
    ids = plain_pipeline.decisions(cli.cwd, log, count=20)
    cli("decisions", "import", str(log), "--model", "credit@1")
    traced = _json(cli("trace", "decision", ids[3], "--records", "3", "--json")[0])
    assert traced["datasets"][0]["digest"]["blake3"] == features["digest"]["blake3"]
    assert len(traced["sources"]) == len(plain_pipeline.SOURCES)
    for item in traced["records"]["top"]:
        assert item["reached_through"] == "inferred"
        [source] = item["sources"]
        assert source["source"].startswith("raw/") and ":" in source["source"]
        raw_file, line = source["source"].rsplit(":", 1)
        raw_line = (cli.cwd / raw_file).read_text().splitlines()[int(line) - 1]
        application = raw_line.split(",")[0]
        record = (cli.cwd / "data" / "features.csv").read_text().splitlines()[int(item["record_id"].rsplit(":")[1]) - 1]
        assert record.split(",")[0] == application  # the raw line is the same application as the training row


def test_register_by_run_names_what_the_run_wrote(cli: Cli, pipeline: dict[str, str]) -> None:
    _, err = cli("model", "register", "credit", "--run", pipeline["features"][:12], code=2)
    assert "wrote no model (it wrote data/features.csv (dataset))" in err and len(err.strip().splitlines()) == 1
    cli("keys", "generate")
    out, _ = cli("model", "register", "credit", "--run", pipeline["train"][:12], "--path", "model.skops")
    assert "model credit@1" in out
    _, err = cli("model", "register", "credit", "--run", pipeline["train"][:12], "--path", "data/clean.csv", code=2)
    assert "did not write a version of data/clean.csv" in err


def test_two_disagreeing_candidate_keys_are_named(cli: Cli) -> None:
    (cli.cwd / "a.csv").write_text("id,code,v\n1,z,10\n2,y,20\n3,x,30\n")
    script = (
        "rows = open('a.csv').read().splitlines()\nopen('b.csv', 'w').write('id,code,w\\n1,x,1\\n2,y,2\\n3,z,3\\n')\n"
    )
    (cli.cwd / "step.py").write_text(script)
    cli("init")
    report = _run(cli, "step", "step.py")["capture"]
    assert any("candidate keys id, code pair" in note and "[capture] keys" in note for note in report["notes"])
    _configure(cli, '[capture]\nkeys = ["id"]\n')
    [link] = _run(cli, "step", "step.py")["capture"]["links"]
    assert link["relation"] == "inferred-key" and link["columns"] == ["id"]


def test_a_file_deleted_by_the_run_is_recorded_as_deleted(cli: Cli) -> None:
    script = "from pathlib import Path\nPath('tmp.txt').write_text('x')\nPath('tmp.txt').unlink()\n"
    (cli.cwd / "job.py").write_text(script)
    cli("init")
    doc = _run(cli, "job", "job.py")
    [written] = doc["outputs"]
    assert written["path"] == "tmp.txt" and written["digest"] is None and written["artifact"] is None
    assert doc["capture"]["files"] == [
        {"path": "tmp.txt", "role": "output", "state": "deleted", "why": "gone when the run ended"}
    ]


@pytest.mark.parametrize("moves", [1, 99])
def test_a_file_that_changes_while_hashed_is_read_again_once_then_unstable(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, moves: int
) -> None:
    """The file grows while `custody run` hashes it: the first ``moves`` hashes see it move. Once, and
    the second reading is kept (the digest of what is there now); always, and it is recorded unstable."""
    from mlcustody.storage.hashing import hash_file
    from mlcustody.workspace import run_files

    (cli.cwd / "job.py").write_text("from pathlib import Path\nPath('out.txt').write_text('first')\n")
    cli("init")
    real, calls = run_files.snapshot.take_files, []

    def growing(paths: list[Path], **kwargs: Any) -> Any:
        if len(calls) < moves and any(p.name == "out.txt" for p in paths):
            calls.append(1)
            with (cli.cwd / "out.txt").open("a") as handle:
                handle.write(" and more")
        return real(paths, **kwargs)

    monkeypatch.setattr(run_files.snapshot, "take_files", growing)
    doc = _run(cli, "job", "job.py")
    [written] = doc["outputs"]
    if moves == 1:
        assert written["digest"] == hash_file(cli.cwd / "out.txt") and written["artifact"] == "out@1"
    else:
        assert written["digest"] is None and len(calls) == 2  # the batch, then one reading alone
        assert doc["capture"]["files"] == [
            {"path": "out.txt", "role": "output", "state": "unstable", "why": "changed while hashed"}
        ]


def test_store_policy_keeps_large_and_ignored_files_digest_only(cli: Cli) -> None:
    (cli.cwd / "big.bin").write_bytes(b"x" * 5000)
    (cli.cwd / "scratch").mkdir()
    (cli.cwd / "scratch" / "s.txt").write_text("scratch")
    (cli.cwd / "small.txt").write_text("small")
    script = "for p in ('big.bin', 'scratch/s.txt', 'small.txt'):\n    open(p, 'rb').read()\n"
    (cli.cwd / "job.py").write_text(script)
    cli("init")
    _configure(cli, '[capture]\nstore_max_bytes = 1000\nignore = ["scratch/**"]\n')
    doc = _run(cli, "job", "job.py")
    inputs = {item["path"]: item for item in doc["inputs"]}
    assert inputs["small.txt"]["artifact"] == "small@1"
    assert inputs["big.bin"]["artifact"] is None and inputs["big.bin"]["digest"]
    states = {item["path"]: item["why"] for item in doc["capture"]["files"]}
    assert states == {
        "big.bin": "larger than store_max_bytes (1000)",
        "scratch/s.txt": "matches ignore pattern scratch/**",
    }
    human, _ = cli("show", doc["run"]["id"][:12])
    assert "digest-only big.bin (input): larger than store_max_bytes" in human


def test_declared_output_with_a_type(cli: Cli) -> None:
    (cli.cwd / "job.py").write_text("open('weights.bin', 'wb').write(b'w')\n")
    cli("init")
    cli("run", "--out", "weights.bin:model", "--", sys.executable, "job.py")
    listed = {item["ref"]: item for item in _json(cli("ls", "--json")[0])["artifacts"]}
    assert listed["weights@1"]["type"] == "model"
    _, err = cli("run", "--out", "weights.bin:modle", "--", sys.executable, "job.py", code=2)
    assert "unknown type 'modle'" in err


def test_keys_export_public_defaults_to_the_active_key(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", PASSPHRASE)
    cli("init")
    cli("keys", "generate")
    out, _ = cli("keys", "export-public")
    assert out.startswith("-----BEGIN PUBLIC KEY-----")


def test_captured_files_by_content_type(tmp_path: Path) -> None:
    from mlcustody.capture import filetypes

    (tmp_path / "m.txt").write_bytes(b"tree\nversion=v4\n")
    (tmp_path / "notes.txt").write_text("hello")
    assert filetypes.artifact_type(tmp_path / "m.txt") == "model"
    assert filetypes.artifact_type(tmp_path / "notes.txt") is None
    assert filetypes.artifact_type(Path("x.parquet")) == "dataset"
    assert filetypes.artifact_type(Path("x.safetensors")) == "model"


def test_custody_add_types_files_by_content_as_a_run_does(cli: Cli) -> None:
    (cli.cwd / "loans.csv").write_text("id,amount\n1,10\n")
    (cli.cwd / "notes.md").write_text("# notes\n")
    cli("init")
    cli("add", "loans.csv", "notes.md")
    listed = {item["ref"]: item["type"] for item in _json(cli("ls", "--json")[0])["artifacts"]}
    assert listed == {"loans@1": "dataset", "notes@1": "other"}
    cli("add", "loans.csv", "--name", "loans_as_config", "--type", "config")  # a given type still rules
    (cli.cwd / "loans.csv").write_text("id,amount\n1,10\n2,20\n")
    cli("add", "loans.csv")
    listed = {item["ref"]: item["type"] for item in _json(cli("ls", "--json")[0])["artifacts"]}
    assert listed["loans@2"] == "dataset" and listed["loans_as_config@1"] == "config"
