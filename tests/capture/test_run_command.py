"""`custody run -- CMD` and SDK runs in real processes: capture, exit status, signals, durability."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from _cli import clean_env, finish, ok, ok_json, run, start
from conftest import write_tree

PY = sys.executable

TRAIN = """
import csv
import mlcustody as mc
from sklearn.linear_model import LogisticRegression

rows = list(csv.DictReader(open("data/loans.csv")))
X = [[float(r["income"]), float(r["amount"])] for r in rows]
y = [int(r["default"]) for r in rows]
model = LogisticRegression(max_iter=500).fit(X, y)
mc.log_metric("accuracy", model.score(X, y))
mc.log_param("rows", len(rows))
mc.save_model(model, "model.skops")
print("trained on", len(rows), "rows")
"""


def _git(root: Path, *args: str) -> str:
    env = {
        **clean_env(),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    done = subprocess.run(["git", "-C", str(root), *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git repository with loan data and a training script, initialised as a workspace."""
    return _make_project(tmp_path / "project")


@pytest.fixture
def project_on_each_backend(tmp_path: Path, db_url: str | None) -> Path:
    """``project`` with its metadata on SQLite and on a real PostgreSQL server."""
    return _make_project(tmp_path / "project", *(["--db", db_url] if db_url else []))


def _make_project(root: Path, *init: str) -> Path:
    lines = ["income,amount,default"] + [
        f"{1000 + 37 * i % 900},{100 + 53 * i % 700},{i % 3 == 0:d}" for i in range(120)
    ]
    write_tree(root, {"data/loans.csv": "\n".join(lines) + "\n", "train.py": TRAIN, "requirements.txt": "sklearn\n"})
    _git(root, "init", "-q")
    ok(root, "init", *init)
    _git(root, "add", "data", "train.py", "requirements.txt", ".custody")
    _git(root, "commit", "-qm", "first")
    return root


def test_acceptance_a_training_script_is_captured_and_its_metrics_are_sealed(project: Path) -> None:
    doc = _tracked(project, "--name", "train", "--", PY, "train.py")
    assert doc["run"]["status"] == "finished" and doc["run"]["exit_status"] == 0
    inputs = {item["path"]: item for item in doc["inputs"]}
    outputs = {item["path"]: item for item in doc["outputs"]}
    assert set(inputs) == {"data/loans.csv"} and set(outputs) == {"model.skops"}
    assert inputs["data/loans.csv"]["source"] == "captured" and len(inputs["data/loans.csv"]["digest"]) == 64
    assert (
        outputs["model.skops"]["digest"] and outputs["model.skops"]["size"] == (project / "model.skops").stat().st_size
    )
    git = doc["code"]["git"]
    assert git["commit"] == _git(project, "rev-parse", "HEAD") and git["dirty"] is False
    assert doc["code"]["entry"]["path"] == "train.py"
    python = doc["environment"]["python"]
    assert python["version"] == ".".join(map(str, sys.version_info[:3]))
    import sklearn

    assert python["packages"]["scikit-learn"] == sklearn.__version__
    assert doc["environment"]["files"]["requirements.txt"]
    assert doc["run"]["metrics"]["accuracy"] > 0.5 and doc["run"]["params"] == {"rows": 120}

    shown = ok_json(project, "show", doc["run"]["id"][:10])
    assert shown["run"]["seal"] == doc["run"]["seal"]
    assert ok_json(project, "verify")["ok"]
    with sqlite3.connect(project / ".custody" / "metadata.db") as conn:
        conn.execute("UPDATE run_metrics SET value = 0.999")
    result = run(project, "verify")
    assert result.returncode == 1 and "run_seal_mismatch" in result.stdout, str(result)


def test_a_failing_command_passes_its_exit_status_through_and_is_recorded_failed(project: Path) -> None:
    write_tree(project, {"fail.py": "import sys\nopen('data/loans.csv').read()\nsys.exit(3)\n"})
    result = run(project, "run", "--json", "--", PY, "fail.py")
    assert result.returncode == 3, str(result)
    assert result.json["run"]["status"] == "failed" and result.json["run"]["exit_status"] == 3
    assert result.json["run"]["error"] == "exited with status 3"
    assert [i["path"] for i in result.json["inputs"]] == ["data/loans.csv"]


def test_a_non_python_command_uses_declared_inputs_and_outputs(project: Path) -> None:
    write_tree(project, {"in.txt": "hello\n"})
    doc = _tracked(
        project,
        "--in",
        "in.txt",
        "--out",
        "out.txt",
        "-p",
        "mode=upper",
        "--",
        "sh",
        "-c",
        "tr a-z A-Z < in.txt > out.txt",
    )
    assert (project / "out.txt").read_text() == "HELLO\n"
    [used], [made] = doc["inputs"], doc["outputs"]
    assert (used["path"], used["source"]) == ("in.txt", "declared")
    assert (made["path"], made["artifact"], made["source"]) == ("out.txt", "out@1", "declared")
    assert doc["run"]["params"] == {"mode": "upper"} and doc["environment"]["python"] is None
    assert ok_json(project, "show", "out")["artifact"]["meta"]["run"] == doc["run"]["id"]


def test_bad_run_invocations_exit_2_and_record_nothing(project: Path) -> None:
    for args, message in [
        (("run",), "no command given"),
        (("run", "--", "no-such-program-xyz"), "command not found: no-such-program-xyz"),
        (("run", "--in", "missing.csv", "--", "true"), "input missing.csv does not exist"),
        (("run", "-p", "novalue", "--", "true"), "is not KEY=VALUE"),
        (("runs", "--where", "metrics.auc >> 1"), "expected a value"),
        (("show", "run:abcdef"), "no run with id"),
    ]:
        result = run(project, *args)
        assert result.returncode == 2, str(result)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, str(result)
    assert ok_json(project, "runs")["runs"] == []


def test_json_output_stays_one_document_when_the_command_prints(project: Path) -> None:
    result = run(project, "run", "--json", "--", PY, "-c", "print('noise on stdout')")
    assert result.returncode == 0 and result.json["run"]["status"] == "finished", str(result)
    assert "noise on stdout" in result.stderr


def test_processes_started_and_sdk_runs_inside_are_recorded(project: Path) -> None:
    script = """
    import subprocess, mlcustody as mc
    subprocess.run(["true"], check=True)
    with mc.start_run("inner") as inner:
        inner.log_metric("m", 1.0)
    mc.log_metric("outer", 2.0)
    """
    write_tree(project, {"nested.py": textwrap.dedent(script)})
    doc = _tracked(project, "--", PY, "nested.py")
    assert ["true"] in doc["processes"]
    [child] = doc["children"]
    assert ok_json(project, "show", child)["run"]["parent"] == doc["run"]["id"]
    assert doc["run"]["metrics"] == {"outer": 2.0}


def test_a_users_own_sitecustomize_still_runs(project: Path, tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    write_tree(theirs, {"sitecustomize.py": "import os\nos.environ['THEIRS'] = 'ran'\n"})
    write_tree(
        project, {"check.py": "import os\nopen('data/loans.csv').read()\nassert os.environ['THEIRS'] == 'ran'\n"}
    )
    env = {**clean_env(), "PYTHONPATH": str(theirs)}
    done = subprocess.run(
        [PY, "-m", "mlcustody", "run", "--json", "--", PY, "check.py"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "data/loans.csv" in done.stdout


def test_sigterm_is_passed_to_the_command_and_the_run_is_killed(project: Path) -> None:
    write_tree(
        project, {"slow.py": "import time\nopen('data/loans.csv').read()\nprint('ready', flush=True)\ntime.sleep(60)\n"}
    )
    proc = start(project, "run", "--json", "--", PY, "slow.py")
    assert proc.stderr is not None
    _wait_for_line(proc.stderr, "ready")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    import json

    doc = json.loads(out)
    assert doc["run"]["status"] == "killed" and "SIGTERM" in doc["run"]["error"]
    assert [i["path"] for i in doc["inputs"]] == ["data/loans.csv"]


SDK_CHILD = """
import os, sys, time, mlcustody as mc
run = mc.start_run("child")
for step in range(1000):
    run.log_metric("loss", 1.0, step=step)
time.sleep(2.5)  # longer than the writer's flush interval
print("flushed", flush=True)
for step in range(1000, 1500):
    run.log_metric("loss", 1.0, step=step)
mode = sys.argv[1]
if mode == "exit":
    sys.exit(0)  # no end(): the run is ended at exit
print("waiting", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("mode", ["exit", "sigterm", "sigkill"])
def test_buffered_metrics_survive_exit_and_sigterm_and_at_most_a_second_is_lost_on_sigkill(
    project: Path, mode: str
) -> None:
    write_tree(project, {"child.py": SDK_CHILD})
    with subprocess.Popen(
        [PY, "child.py", mode], cwd=project, env=clean_env(), stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        _wait_for_line(proc.stdout, "flushed")
        if mode != "exit":
            _wait_for_line(proc.stdout, "waiting")
            proc.send_signal(signal.SIGTERM if mode == "sigterm" else signal.SIGKILL)
        proc.wait(timeout=60)
    if mode == "sigkill":
        time.sleep(0.1)
        ok(project, "run", "--", "true")  # the next run on this host reaps the dead one
    [doc] = [r for r in ok_json(project, "runs")["runs"] if r["name"] == "child"]
    shown = ok_json(project, "show", doc["id"])
    status, at_least = {"exit": ("finished", 1500), "sigterm": ("killed", 1500), "sigkill": ("killed", 1000)}[mode]
    assert doc["status"] == status, shown
    assert at_least <= shown["metrics"]["loss"]["count"] <= 1500, shown
    assert ok_json(project, "verify")["ok"]


def test_runs_queries_and_run_diff_from_the_cli(project: Path) -> None:
    ids = []
    for lr in ("0.1", "0.3"):
        code = f"import mlcustody as mc\nmc.log_metric('auc', {lr} + 0.6)\n"
        ids.append(_tracked(project, "-p", f"lr={lr}", "--", PY, "-c", code)["run"]["id"])
    found = ok_json(project, "runs", "--where", "metrics.auc > 0.8", "--sort", "-metrics.auc")
    assert [r["id"] for r in found["runs"]] == [ids[1]]
    diff: dict[str, Any] = ok_json(project, "diff", ids[0], ids[1])
    assert diff["differences"]["params"] == {"lr": [0.1, 0.3]}
    assert diff["differences"]["metrics"]["auc"] == [pytest.approx(0.7), pytest.approx(0.9)]
    text = ok(project, "runs").stdout
    assert ids[0][:12] in text and "auc=0.9" in text
    assert "lr=0.3" in ok(project, "show", ids[1]).stdout


def _tracked(root: Path, *args: str) -> Any:
    """The JSON document of ``custody run --json ARGS`` (options before ``--``), which must exit 0."""
    return ok(root, "run", "--json", *args).json


def _wait_for_line(stream: Any, expected: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    os.set_blocking(stream.fileno(), True)
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            raise AssertionError(f"stream ended before {expected!r}")
        if expected in line:
            return
    raise AssertionError(f"no {expected!r} within {timeout} s")


@pytest.mark.slow
def test_killing_custody_run_at_any_moment_leaves_a_consistent_store(project_on_each_backend: Path) -> None:
    project = project_on_each_backend
    step = "import time\nopen('data/loans.csv').read()\ntime.sleep(0.3)\nopen('o.txt', 'w')\n"
    write_tree(project, {"step.py": step})
    for delay in (0.05, 0.15, 0.25, 0.4, 0.6, 0.8, 1.0, 1.3):
        proc = subprocess.Popen(
            [PY, "-m", "mlcustody", "run", "--", PY, "step.py"],
            cwd=project,
            env=clean_env(),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)  # custody and the command it runs
        proc.wait()
        assert ok_json(project, "verify")["ok"], f"inconsistent after a kill at {delay} s"
    ok(project, "run", "--", "true")  # reaps the runs whose custody process died
    statuses = {r["status"] for r in ok_json(project, "runs")["runs"]}
    assert statuses <= {"finished", "killed"}, statuses
    assert ok_json(project, "verify")["ok"]


def test_gc_keeps_every_object_a_run_refers_to(project: Path) -> None:
    (project / "train.py").write_text(TRAIN + "# tuned\n")  # a dirty tree: the diff is stored
    doc = _tracked(project, "--", PY, "train.py")
    assert doc["code"]["git"]["dirty"] and doc["code"]["git"]["diff"]
    plan = ok_json(project, "gc")
    assert plan["unreferenced"]["count"] == 0, plan
    ok(project, "gc", "--delete")
    assert ok_json(project, "verify")["ok"]


def test_the_command_starts_before_the_database_layer_loads() -> None:
    """What `custody run` imports before it starts the command must not pull in SQLAlchemy (about a
    third of a second): the database layer is meant to load while the command runs."""
    probe = "import sys, mlcustody.interfaces.cli.app, mlcustody.capture.launch; print('sqlalchemy' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "False"


def test_what_the_command_reads_is_stored_while_it_still_runs(project: Path) -> None:
    """The prefetch: the input's object is in the store before the command has ended, so the work
    left after it ends is a stat per file."""
    from mlcustody.storage.hashing import hash_file

    assert _appears_while_running(project, hash_file(project / "data" / "loans.csv"))


def test_a_new_input_table_gets_its_record_manifest_while_the_command_runs(project: Path, tmp_path: Path) -> None:
    """The prefetch builds the manifest of a table new to the store as soon as the command reads it:
    the manifest (the same `custody add --records` builds) is in the store before the command ends."""
    other = tmp_path / "other"
    write_tree(other, {"data/loans.csv": (project / "data" / "loans.csv").read_text()})
    ok(other, "init")
    ok(other, "add", "data/loans.csv", "--records")
    expected = ok_json(other, "show", "data/loans@1", "--json")["artifact"]["meta"]["records"]["manifest"]
    assert _appears_while_running(project, expected)
    assert ok_json(project, "show", "data/loans@1", "--json")["artifact"]["meta"]["records"]["manifest"] == expected


def _appears_while_running(project: Path, digest: str) -> bool:
    """Run a command that reads data/loans.csv and then waits to be let go: whether the object
    ``digest`` was in the store while it still ran (it is let go once seen, or after a minute)."""
    waiting = "import pathlib, time\nopen('data/loans.csv').read()\n"
    waiting += "for _ in range(1200):\n    if pathlib.Path('go').exists(): break\n    time.sleep(0.05)\n"
    (project / "wait.py").write_text(waiting)
    stored = project / ".custody" / "objects" / digest[:2] / digest[2:]
    proc = start(project, "run", "--name", "wait", "--", sys.executable, "wait.py")
    deadline = time.monotonic() + 60
    while not stored.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    seen = stored.exists() and proc.poll() is None
    (project / "go").touch()
    assert finish(proc).returncode == 0
    return seen
