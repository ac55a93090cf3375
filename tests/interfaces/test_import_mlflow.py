"""`custody import mlflow`: a real MLflow store, built with MLflow itself, imported and compared back
value by value through ``MlflowClient`` (the source's own client is the oracle)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Cli, write_tree

from mlcustody.errors import UsageError
from mlcustody.storage import dir_manifest as manifest
from mlcustody.workspace.facade import Workspace
from mlcustody.workspace.import_mlflow import import_mlflow

mlflow = pytest.importorskip("mlflow")
blake3 = pytest.importorskip("blake3")

# MLflow's SQL store uses a loader strategy SQLAlchemy 2.1 deprecates: MLflow's code, not ours
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


def build_store(root: Path) -> tuple[str, Any, dict[str, str]]:
    """An MLflow SQLite store with experiments, finished/failed/killed/deleted/running runs, params, metric
    histories (a NaN among them), tags, nested artifacts, and registered models with a gap in their version
    numbers, a stage, an alias, a version whose run was deleted and a pickled model."""
    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    ids: dict[str, str] = {}
    with warnings.catch_warnings():  # MLflow's own deprecation notices (stages, file stores) are not ours
        warnings.simplefilter("ignore")
        exp_a = client.create_experiment("exp-a", artifact_location=(root / "artifacts-a").as_uri())
        exp_b = client.create_experiment("exp-b", artifact_location=(root / "artifacts-b").as_uri())

        def run(exp: str, name: str, files: dict[str, bytes | str], status: str = "FINISHED", **tags: str) -> str:
            made = client.create_run(exp, run_name=name, tags={"team": "risk", **tags}, start_time=1_700_000_000_000)
            rid = made.info.run_id
            client.log_param(rid, "lr", "0.1")
            client.log_param(rid, "layers", "[64, 32]")
            for step in range(5):
                client.log_metric(rid, "loss", 1.0 / (step + 1), step=step, timestamp=1_700_000_000_000 + step * 7)
            client.log_metric(rid, "loss", 0.25, step=2, timestamp=1_700_000_000_100)  # two points at one step
            client.log_metric(rid, "auc", float("nan"), step=0, timestamp=1_700_000_000_001)
            if files:
                src = write_tree(root / "src" / name, files)
                client.log_artifacts(rid, str(src))
            if status != "RUNNING":
                client.set_terminated(rid, status=status, end_time=1_700_000_360_000)
            ids[name] = rid
            return rid

        model_files = {"model/MLmodel": "flavors: {}\n", "model/weights.json": "[0.5, 0.25]", "plots/a/roc.txt": "x"}
        train = run(exp_a, "train", model_files)
        run(exp_a, "tune", {}, status="FAILED", **{"mlflow.parentRunId": train})
        old = run(exp_a, "old", {"model/MLmodel": "flavors: {}\n", "model/weights.json": "[1.0]"})
        run(exp_b, "stopped", {"notes.txt": "stopped by hand"}, status="KILLED")
        run(exp_b, "live", {}, status="RUNNING")
        pickled = run(exp_b, "pickled", {"model/model.pkl": b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00."})

        client.create_registered_model("credit", tags={"owner": "risk"}, description="credit scoring")
        client.create_model_version("credit", f"runs:/{train}/model", run_id=train, description="first")
        client.create_model_version("credit", f"runs:/{old}/model", run_id=old, tags={"note": "old run"})
        client.create_model_version("credit", f"runs:/{train}/model", run_id=train)
        client.delete_model_version("credit", "3")
        client.create_model_version("credit", f"runs:/{train}/model", run_id=train)
        client.transition_model_version_stage("credit", "1", "Production")
        client.set_registered_model_alias("credit", "champion", "2")
        client.delete_run(old)  # its model version stays registered
        client.create_registered_model("legacy")
        client.create_model_version("legacy", f"runs:/{pickled}/model", run_id=pickled)
    return uri, client, ids


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", "correct horse battery staple")


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, Any, dict[str, str]]:
    return build_store(tmp_path / "mlflow")


def _same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_import_keeps_every_value_the_source_client_reads(
    make_workspace: Callable[..., Workspace], store: tuple[str, Any, dict[str, str]], tmp_path: Path
) -> None:
    uri, client, ids = store
    ws = make_workspace()
    ws.generate_key()
    report = import_mlflow(ws, uri)

    unmapped = {(u.kind, u.item) for u in report.unmapped}
    assert ("run", ids["live"]) in unmapped  # still running in MLflow
    assert ("model_version", "legacy@1") in unmapped  # a pickle, not signed without trust_pickle
    assert report.imported["experiments"] == 2 and report.skipped["experiments"] == 1  # Default has no run
    imported = set(report.runs)
    assert imported == {ids[n] for n in ("train", "tune", "old", "stopped", "pickled")}

    for run_id in imported:
        source = client.get_run(run_id)
        ours = ws.run(run_id)
        assert ours.run.start.name == source.info.run_name
        assert ours.run.status == source.info.status.lower()
        assert ours.run.params == source.data.params
        assert {k: v for k, v in ours.run.tags.items() if not k.startswith("custody.import.")} == source.data.tags
        assert ours.run.tags["custody.import.lifecycle_stage"] == source.info.lifecycle_stage
        points = [(m.key, m.step, m.timestamp, m.value) for m in ours.metric_history]
        expected = [
            (key, m.step, m.timestamp, m.value)
            for key in source.data.metrics
            for m in client.get_metric_history(run_id, key)
        ]
        assert len(points) == len(expected)
        for got, want in zip(sorted(points, key=str), sorted(expected, key=str), strict=True):
            assert got[:3] == want[:3] and _same_float(got[3], want[3])
        _artifacts_match(ws, client, run_id, ours.run.files("output"), tmp_path / "oracle" / run_id)

    assert ws.run(ids["tune"]).run.start.parent_id == ids["train"]
    assert ws.run(ids["old"]).run.tags["custody.import.lifecycle_stage"] == "deleted"

    versions = {v.ref: v for v in ws.models()}
    assert sorted(versions) == ["credit@1", "credit@2", "credit@4"]  # the numbers MLflow gave, gap kept
    for ref, version in versions.items():
        source_version = client.get_model_version("credit", ref.split("@")[1])
        assert version.run_id == source_version.run_id
        meta = ws.resolve(version.artifact).meta["mlflow"]
        assert meta["stage"] == source_version.current_stage
        assert meta["description"] == source_version.description
        assert meta["tags"] == source_version.tags
        assert meta["registered_model"] == {"description": "credit scoring", "tags": {"owner": "risk"}}
    assert ws.resolve(versions["credit@2"].artifact).meta["mlflow"]["run_deleted"] is True
    assert ws.model("credit:champion").version.version == 2
    assert not ws.verify().problems
    assert not ws.verify_model("credit@2")[1]


def _artifacts_match(ws: Workspace, client: Any, run_id: str, outputs: list[Any], where: Path) -> None:
    """Every file MLflow lists for the run is stored with the BLAKE3 digest of the bytes MLflow serves."""
    listed: dict[str, int] = {}

    def walk(path: str | None) -> None:
        for item in client.list_artifacts(run_id, path):
            if item.is_dir:
                walk(item.path)
            else:
                listed[item.path] = item.file_size

    walk(None)
    if not listed:
        assert outputs == []
        return
    (output,) = outputs
    entries = {e.path: e for e in manifest.decode(ws.objects.read_bytes(output.digest))}
    assert {p: e.size for p, e in entries.items()} == listed
    root = Path(client.download_artifacts(run_id, "", str(where)))
    for path, entry in entries.items():
        assert entry.digest == blake3.blake3((root / path).read_bytes()).hexdigest()


def test_metrics_through_the_client_equal_the_sql_read(
    make_workspace: Callable[..., Workspace], store: tuple[str, Any, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stores other than SQL ones are read one metric at a time through the client: the same points."""
    from mlcustody.workspace import mlflow_metrics

    _, client, ids = store
    with mlflow_metrics.reader(client) as reader:
        fast = reader.history(ids["train"], ["auc", "loss"])
    monkeypatch.setattr(client._tracking_client.store, "engine", None)
    with mlflow_metrics.reader(client) as reader:
        slow = reader.history(ids["train"], ["auc", "loss"])
    points = [
        [
            (s.key, step, stamp, str(value))
            for s in found
            for step, stamp, value in zip(s.steps, s.timestamps, s.values, strict=True)
        ]
        for found in (fast, slow)
    ]
    assert points[0] == points[1] and len(points[0]) == 7 and ("auc", 0, 1_700_000_000_001, "nan") in points[0]


def test_second_import_adds_nothing(
    make_workspace: Callable[..., Workspace], store: tuple[str, Any, dict[str, str]]
) -> None:
    uri, _, _ = store
    ws = make_workspace()
    ws.generate_key()
    first = import_mlflow(ws, uri)
    events = len(ws.log())
    second = import_mlflow(ws, uri)
    assert second.runs == [] and second.model_versions == []
    assert second.skipped["runs"] == len(first.runs)
    assert second.skipped["model_versions"] == 3 and second.skipped["aliases"] == 1
    assert len(ws.log()) == events


def test_trust_pickle_imports_the_pickled_version(
    make_workspace: Callable[..., Workspace], store: tuple[str, Any, dict[str, str]]
) -> None:
    uri, _, _ = store
    ws = make_workspace()
    ws.generate_key()
    report = import_mlflow(ws, uri, experiments=["exp-b"], trust_pickle=True)
    assert "legacy@1" in report.model_versions
    # exp-a was not imported: its model versions are kept, without a run, and named in the report
    assert ws.model("credit@1").version.run_id is None
    assert any(u.item == "credit@1" and "was not imported" in u.reason for u in report.unmapped)


def test_a_wrong_artifact_size_is_named_and_left_out(
    make_workspace: Callable[..., Workspace],
    store: tuple[str, Any, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    uri, _, ids = store
    real = LocalArtifactRepository.list_artifacts

    def inflated(self: Any, path: str | None = None) -> list[Any]:
        found = real(self, path)
        return [type(f)(f.path, f.is_dir, (f.file_size or 0) + 1) if f.path == "plots/a/roc.txt" else f for f in found]

    # the artifact store's listing, which MlflowClient.list_artifacts also goes through
    monkeypatch.setattr(LocalArtifactRepository, "list_artifacts", inflated)
    ws = make_workspace()
    ws.generate_key()
    report = import_mlflow(ws, uri, experiments=["exp-a"])
    bad = [u for u in report.unmapped if u.kind == "artifact"]
    assert [u.item for u in bad] == [f"{ids['train']}/plots/a/roc.txt"]
    (output,) = ws.run(ids["train"]).run.files("output")
    paths = {e.path for e in manifest.decode(ws.objects.read_bytes(output.digest))}
    assert paths == {"model/MLmodel", "model/weights.json"}


@pytest.mark.parametrize(
    "uri", ["sqlite:///{tmp}/missing.db", "{tmp}/no-such-store", "ftp://example/x", "http://127.0.0.1:9"]
)
def test_a_uri_that_names_no_store_changes_nothing(
    make_workspace: Callable[..., Workspace], tmp_path: Path, uri: str
) -> None:
    ws = make_workspace()
    events = len(ws.log())
    with pytest.raises(UsageError, match="MLflow"):
        import_mlflow(ws, uri.format(tmp=tmp_path))
    assert len(ws.log()) == events
    assert not (tmp_path / "missing.db").exists() and not (tmp_path / "no-such-store").exists()


def test_a_file_that_is_no_mlflow_database_is_bad_input(cli: Cli, tmp_path: Path) -> None:
    cli("init")
    events = cli.json("log")["events"]
    (tmp_path / "garbage.db").write_bytes(b"this is not an SQLite database" * 100)
    _, err = cli("import", "mlflow", f"sqlite:///{tmp_path / 'garbage.db'}", code=2)
    assert "MLflow store" in err and len(err.strip().splitlines()) == 1
    assert cli.json("log")["events"] == events


def test_cli_import_mlflow_json(cli: Cli, tmp_path: Path) -> None:
    uri, _, _ = build_store(tmp_path / "mlflow")
    cli("init")
    cli("keys", "generate")
    doc = cli.json("import", "mlflow", uri, "--experiments", "exp-b")
    assert doc["imported"]["runs"] == 2 and doc["source"] == uri
    assert {u["kind"] for u in doc["unmapped"]} >= {"run", "model_version"}
    again = cli.json("import", "mlflow", uri, "--experiments", "exp-b")
    assert again["imported"].get("runs", 0) == 0
    _, err = cli("import", "mlflow", str(tmp_path / "nothing"), code=2)
    assert "no MLflow store" in err and len(err.strip().splitlines()) == 1


def test_a_step_no_record_can_hold_refuses_only_that_run(
    make_workspace: Callable[..., Workspace], tmp_path: Path
) -> None:
    """MLflow keeps steps as 64-bit integers; a canonical record holds integers up to ±2**53."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        experiment = client.create_experiment("big", artifact_location=(tmp_path / "artifacts").as_uri())
        fine, huge = (client.create_run(experiment, run_name=name).info.run_id for name in ("fine", "huge"))
        client.log_metric(fine, "loss", 0.5, step=3, timestamp=1_700_000_000_000)
        client.log_metric(huge, "loss", 0.5, step=2**60, timestamp=1_700_000_000_000)
        for run_id in (fine, huge):
            client.set_terminated(run_id)
    ws = make_workspace()
    report = import_mlflow(ws, uri)
    assert report.runs == [fine]
    [refused] = [u for u in report.unmapped if u.kind == "run"]
    assert refused.item == huge and "cannot be sealed" in refused.reason
    assert not ws.verify().problems
