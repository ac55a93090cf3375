"""Runs through the SDK: logging, inputs and outputs, sealing, queries, and what verify catches."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import sqlalchemy as sa

import mlcustody as mc
from conftest import write_tree
from mlcustody import Workspace
from mlcustody.errors import UnknownRef, UsageError
from mlcustody.metadata.runs import store as runs


def _kinds(ws: Workspace) -> list[tuple[str, str]]:
    return sorted((p.kind, p.where) for p in ws.verify().problems)


def _sealed_run(ws: Workspace) -> str:
    write_tree(ws.root, {"data/loans.csv": "id,amount\n1,10\n2,20\n"})
    with ws.start_run("train", params={"lr": 0.1, "model": "logreg"}, tags={"team": "risk"}) as run:
        run.use(ws.root / "data/loans.csv")
        for step in range(5):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metric("auc", 0.91)
        (ws.root / "model.bin").write_bytes(b"weights")
        run.output(ws.root / "model.bin", type="model")
    return run.id


def test_a_run_records_params_metrics_tags_inputs_outputs_and_is_sealed(workspace: Workspace) -> None:
    run_id = _sealed_run(workspace)
    details = workspace.run(run_id[:8])
    run = details.run
    assert run.status == "finished" and run.end is not None and len(run.end.seal) == 64
    assert run.params == {"lr": 0.1, "model": "logreg"}
    assert run.tags == {"team": "risk"}
    assert run.metrics["loss"].value == pytest.approx(0.2) and run.metrics["loss"].step == 4
    assert (run.metrics["loss"].min, run.metrics["loss"].max, run.metrics["loss"].count) == (0.2, 1.0, 5)
    assert [m.value for m in details.metric_history if m.key == "loss"] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    [used] = run.files("input")
    [made] = run.files("output")
    assert (used.path, used.artifact, used.source) == ("data/loans.csv", "data/loans@1", "sdk")
    assert (made.path, made.artifact) == ("model.bin", "model@1")
    assert workspace.resolve("model").meta["run"] == run_id  # the version knows the run that made it
    assert details.environment is not None and details.environment["python"]["packages"]["sqlalchemy"]
    # the seal is the digest of a canonical record stored in the object store
    record = workspace.read_json(run.end.seal)
    assert record["schema"] == "mlcustody-run/v1" and record["params"] == run.params
    assert {key: series["count"] for key, series in record["metrics"].items()} == {"auc": 1, "loss": 5}
    assert workspace.verify().problems == []
    assert workspace.verify().checked["sealed_runs"] == 1


@pytest.mark.parametrize(
    ("statement", "detail"),
    [
        (
            "UPDATE run_metrics SET value = 0.99 WHERE key = 'loss' AND step = 2",
            "metric loss: logged values changed (5 rows now, 5 sealed)",
        ),
        ("DELETE FROM run_metrics WHERE key = 'loss' AND step = 0", "metric loss: logged values changed (4 rows now"),
        (
            "INSERT INTO run_metrics (run_id, key, step, timestamp, value) "
            "SELECT run_id, key, 9, timestamp, 0.0 FROM run_metrics WHERE key = 'auc'",
            "metric auc: logged values changed (2 rows now, 1 sealed)",
        ),
        ("UPDATE run_params SET value = '0.5', number = 0.5 WHERE key = 'lr'", "params.lr is 0.5, sealed as 0.1"),
        ("DELETE FROM run_tags", 'tags.team is null, sealed as "risk"'),
        ("UPDATE run_io SET digest = NULL WHERE role = 'input'", "inputs/outputs differ"),
        (
            "UPDATE run_metric_latest SET value = 0.99 WHERE key = 'auc'",
            "metric auc: latest value is 0.99, sealed as 0.91",
        ),
    ],
)
def test_verify_names_an_edited_param_metric_tag_or_file_row_of_a_sealed_run(
    workspace: Workspace, statement: str, detail: str
) -> None:
    run_id = _sealed_run(workspace)
    with workspace.db.engine.begin() as conn:
        conn.execute(sa.text(statement))
    problems = workspace.verify().problems
    assert problems, "verify missed the edit"
    assert {p.kind for p in problems} == {"run_seal_mismatch"}
    assert {p.where for p in problems} == {f"runs[{run_id}]"}
    assert any(detail in p.detail for p in problems), [p.detail for p in problems]


def test_verify_catches_an_edited_run_end_and_a_missing_record_object(workspace: Workspace) -> None:
    run_id = _sealed_run(workspace)
    with workspace.db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE run_ends SET status = 'failed'"))
    assert ("row_modified", f"run_ends[{run_id}]") in _kinds(workspace)
    with workspace.db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE run_ends SET status = 'finished'"))
    seal = workspace.run(run_id).run.end.seal  # type: ignore[union-attr]
    path = workspace.objects.path(seal)
    path.chmod(0o644)
    path.unlink()
    assert ("object_missing", "run record") in _kinds(workspace)


def test_bad_input_is_refused_with_a_usage_error(workspace: Workspace) -> None:
    with workspace.start_run("train", params={"lr": 0.1}) as run:
        run.log_param("lr", 0.1)  # the same value again is fine, as in MLflow
        with pytest.raises(UsageError, match=r"already logged as 0\.1"):
            run.log_param("lr", 0.2)
        with pytest.raises(UsageError, match="is not a number"):
            run.log_metric("auc", "high")  # type: ignore[arg-type]
        with pytest.raises(UsageError, match="is not a number"):
            run.log_metric("auc", True)
        with pytest.raises(UsageError, match="not an integer"):
            run.log_metric("auc", 0.5, step=1.5)  # type: ignore[arg-type]
        with pytest.raises(UsageError, match="name 'a;b' is not valid"):
            run.log_metric("a;b", 1.0)
        with pytest.raises(UsageError, match="cannot be recorded"):
            run.log_param("f", object())
        run.log_metric("nan", math.nan)
        run.log_metric("inf", math.inf)
    assert run.ended is not None and run.ended.status == "finished"
    finished = workspace.run(run.id).run
    assert math.isnan(finished.metrics["nan"].value) and finished.metrics["inf"].value == math.inf
    sealed = workspace.read_json(finished.end.seal)["metrics"]  # type: ignore[union-attr]
    assert (sealed["inf"]["latest"], sealed["nan"]["latest"]) == ("Infinity", "NaN")
    with pytest.raises(UsageError, match="has ended"):
        run.log_metric("late", 1.0)
    with pytest.raises(UnknownRef, match="no run with id"):
        workspace.run("abcdef12")
    with pytest.raises(UnknownRef, match="not a run id"):
        workspace.run("not-hex")
    assert workspace.verify().problems == []


def test_an_exception_fails_the_run_and_ctrl_c_kills_it(workspace: Workspace) -> None:
    with pytest.raises(ZeroDivisionError), workspace.start_run("boom") as failing:
        failing.log_metric("x", 1.0)
        _ = 1 / 0
    with pytest.raises(KeyboardInterrupt), workspace.start_run("stopped") as stopped:
        raise KeyboardInterrupt
    failed = workspace.run(failing.id).run
    assert failed.status == "failed" and failed.end is not None
    assert failed.end.error == "ZeroDivisionError: division by zero"
    assert failed.metrics["x"].count == 1  # what was logged before the failure is kept
    assert workspace.run(stopped.id).run.status == "killed"


def test_nested_runs_are_children(workspace: Workspace) -> None:
    with workspace.start_run("pipeline") as outer, workspace.start_run("step") as inner:
        assert mc.active_run(workspace) is inner
    assert workspace.run(inner.id).run.start.parent_id == outer.id
    assert workspace.run(outer.id).children == [inner.id]


def test_use_of_a_reference_returns_where_its_bytes_are(workspace: Workspace) -> None:
    write_tree(workspace.root, {"data/a.csv": "x\n1\n"})
    workspace.add([workspace.root / "data/a.csv"])
    (workspace.root / "data/a.csv").write_text("x\n2\n")  # the workspace moved on
    with workspace.start_run("eval") as run:
        path = run.use("data/a@1")
    assert path.read_text() == "x\n1\n" and path != workspace.root / "data/a.csv"
    [used] = workspace.run(run.id).run.files("input")
    assert used.artifact == "data/a@1"


def test_search_by_metric_param_tag_and_attribute(workspace: Workspace) -> None:
    for index, auc in enumerate([0.7, 0.95, 0.92, 0.81]):
        with workspace.start_run(f"r{index % 2}", params={"depth": index, "kind": "tree"}) as run:
            run.log_metric("auc", auc)
            run.set_tag("fold", str(index))
    found = workspace.runs(where="metrics.auc > 0.9", sort="-metrics.auc")
    assert [r.metrics["auc"].value for r in found] == [0.95, 0.92]
    assert [r.params["depth"] for r in workspace.runs(where="params.depth >= 2 and params.kind = 'tree'")] == [3, 2]
    assert len(workspace.runs(name="r0")) == 2
    assert len(workspace.runs(where="tags.fold = 3 and status = finished")) == 1
    assert len(workspace.runs(where="name like 'r%'")) == 4
    assert [r.metrics["auc"].value for r in workspace.runs(sort="metrics.auc", limit=2)] == [0.7, 0.81]
    for bad, message in [
        ("metrics.auc >", "incomplete condition"),
        ("metrics.auc ~ 3", "cannot read"),
        ("colour = 'red'", "unknown field"),
        ("metrics.auc > 'high'", "compared with a number"),
        ("metrics.auc > 0.9 or name = x", "expected 'and'"),
        ("metrics.auc > 0.9 and", "ends with .and."),
    ]:
        with pytest.raises(UsageError, match=message):
            workspace.runs(where=bad)
    with pytest.raises(UsageError, match="cannot sort"):
        workspace.runs(sort="-")


def test_a_process_that_vanished_is_sealed_as_killed_by_the_next_run(workspace: Workspace) -> None:
    with workspace.start_run("first") as first:
        first.log_metric("x", 1.0)
    # a run whose process died without ending it: a start row with a pid that no longer exists
    recorded = workspace.run(first.id).run.start
    dead = runs.RunStart("f" * 32, "ghost", None, ["x"], recorded.code, "me", recorded.host, 2**22 + 7, "t")
    with workspace.db.write() as conn:
        runs.insert_start(conn, dead)
    with workspace.start_run("next"):
        pass
    ghost = workspace.run("f" * 32).run
    assert ghost.status == "killed" and "ended without ending the run" in ghost.end.error  # type: ignore[union-attr]
    assert workspace.verify().problems == []


def test_safe_model_formats_and_refused_pickles(tmp_path: Path) -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    x, y = [[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]
    assert mc.save_model(LogisticRegression().fit(x, y), tmp_path / "m.skops") == "skops"
    assert mc.load_model(tmp_path / "m.skops").predict([[3.0]]).tolist() == [1]
    mc.save_model(RandomForestClassifier(n_estimators=2, random_state=0).fit(x, y), tmp_path / "f.skops")
    assert mc.load_model(tmp_path / "f.skops").n_estimators == 2  # sklearn's own types are trusted
    import numpy as np

    mc.save_model({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, tmp_path / "t.safetensors")
    assert mc.load_model(tmp_path / "t.safetensors")["w"].shape == (2, 3)
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07rest-of-protobuf")
    assert mc.load_model(tmp_path / "m.onnx") == b"\x08\x07rest-of-protobuf"
    import pickle

    (tmp_path / "model.bin").write_bytes(pickle.dumps({"a": 1}))  # a pickle under an innocent name
    with pytest.raises(UsageError, match="is a pickle"):
        mc.load_model(tmp_path / "model.bin")
    assert mc.load_model(tmp_path / "model.bin", trust_pickle=True) == {"a": 1}
    with pytest.raises(UsageError, match="not saved"):
        mc.save_model({"a": 1}, tmp_path / "m.pkl")
    with pytest.raises(UsageError, match="no safe model format"):
        mc.save_model({"a": 1}, tmp_path / "m.txt")


def test_skops_types_outside_sklearn_must_be_trusted_by_name(tmp_path: Path) -> None:
    import skops.io
    from sklearn.preprocessing import FunctionTransformer

    skops.io.dump(FunctionTransformer(func=math.sqrt), tmp_path / "f.skops")
    with pytest.raises(UsageError, match=r"not trusted: math\.sqrt"):
        mc.load_model(tmp_path / "f.skops")
    assert mc.load_model(tmp_path / "f.skops", trusted=("math.sqrt",)).func is math.sqrt


def test_run_diff_names_what_changed(workspace: Workspace) -> None:
    with workspace.start_run("a", params={"lr": 0.1, "depth": 3}) as a:
        a.log_metric("auc", 0.8)
    with workspace.start_run("b", params={"lr": 0.2, "depth": 3}) as b:
        b.log_metric("auc", 0.9)
    _, _, differences = workspace.run_diff(a.id, b.id)
    assert differences["params"] == {"lr": [0.1, 0.2]}
    assert differences["metrics"] == {"auc": [0.8, 0.9]}
    assert differences["packages"] == {} and differences["code"] == {}


def test_every_buffered_metric_arrives(workspace: Workspace) -> None:
    with workspace.start_run("many") as run:
        for step in range(60_000):  # more than one early flush's worth
            run.log_metric("loss", float(step), step=step)
    with workspace.db.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM run_metrics")).scalar() == 60_000
    assert workspace.run(run.id).run.metrics["loss"].count == 60_000
