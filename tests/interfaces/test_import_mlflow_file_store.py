"""`custody import mlflow` of an MLflow file store: its metric files are read directly, and every point
equals what MlflowClient reads from the same store."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlcustody.workspace import mlflow_metrics
from mlcustody.workspace.facade import Workspace
from mlcustody.workspace.import_mlflow import import_mlflow

mlflow = pytest.importorskip("mlflow")

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def _file_stores_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 refuses to write one otherwise


def _file_store(root: Path) -> tuple[str, Any, str]:
    uri = (root / "mlruns").as_uri()
    with warnings.catch_warnings():  # MLflow deprecates file stores: its notice, not ours
        warnings.simplefilter("ignore")
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment = client.create_experiment("files")
        run_id = client.create_run(experiment, run_name="fit").info.run_id
        for step in range(4):
            client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step, timestamp=1_700_000_000_000 + step)
        client.log_metric(run_id, "loss", 0.125, step=1, timestamp=1_700_000_000_050)  # two points at one step
        client.log_metric(run_id, "eval/auc", float("nan"), step=0, timestamp=1_700_000_000_002)
        client.log_metric(run_id, "eval/auc", 1e-7, step=1, timestamp=1_700_000_000_003)
        client.set_terminated(run_id)
    return uri, client, run_id


def _points(client: Any, run_id: str, key: str) -> list[tuple[int, int, str]]:
    return sorted((m.step, m.timestamp, repr(m.value)) for m in client.get_metric_history(run_id, key))


def test_file_store_metrics_are_read_directly_and_equal_the_client(
    make_workspace: Callable[..., Workspace], tmp_path: Path, db_url: str | None
) -> None:
    """On both metadata backends: the bulk rows and seal go through each driver's own executemany."""
    uri, client, run_id = _file_store(tmp_path)
    experiment = client.get_run(run_id).info.experiment_id
    with mlflow_metrics.reader(client) as reader:
        assert reader._files is not None  # the direct path, not one client call per metric
        series = reader.history(run_id, ["eval/auc", "loss"], experiment)
    got = {s.key: sorted(zip(s.steps, s.timestamps, map(repr, s.values), strict=True)) for s in series}
    assert got == {key: _points(client, run_id, key) for key in ("eval/auc", "loss")}
    assert len(got["loss"]) == 5

    ws = make_workspace(db_url=db_url)
    report = import_mlflow(ws, uri)
    assert report.runs == [run_id] and report.imported["metric_points"] == 7
    ours = [(m.key, m.step, m.timestamp, m.value) for m in ws.run(run_id).metric_history]
    assert ("eval/auc", 1, 1_700_000_000_003, 1e-7) in ours and math.isnan(ours[0][3])
    assert not ws.verify().problems  # the bulk seal equals the record rebuilt from the rows


def test_a_malformed_metric_file_is_bad_input(make_workspace: Callable[..., Workspace], tmp_path: Path) -> None:
    from mlcustody.errors import UsageError

    uri, client, run_id = _file_store(tmp_path)
    experiment = client.get_run(run_id).info.experiment_id
    (tmp_path / "mlruns" / experiment / run_id / "metrics" / "loss").write_text("1700000000000\n")
    ws = make_workspace()
    events = len(ws.log())
    with pytest.raises(UsageError, match="malformed"):
        import_mlflow(ws, uri)
    assert len(ws.log()) == events
