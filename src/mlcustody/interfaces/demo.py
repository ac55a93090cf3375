"""`custody demo`: the story of one dataset told through real `custody` commands in a fresh workspace.

Every step runs the actual CLI in a subprocess, exactly as a user would type it, so the demo is also
an end-to-end smoke test of the installed package.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlcustody.errors import PathError
from mlcustody.interfaces import demo_investigate, demo_plain, demo_reports

Echo = Callable[[str, str, str], None]
_DEMO_PASSPHRASE = "demo-only passphrase"
_REGIONS = ("north", "south", "east", "west")
_PURPOSES = ("car", "home", "education", "business", "medical")


Step = Callable[..., str]


def run(directory: Path | None, echo: Echo | None) -> tuple[list[dict[str, Any]], Path]:
    """Run the tour; return the steps taken and where the workspace is."""
    where = _prepare(directory)
    steps: list[dict[str, Any]] = []

    def step(title: str, *args: str, cwd: Path = where, expect: int = 0) -> str:
        command = "custody " + " ".join(shlex.quote(a) for a in args)
        proc = _custody(cwd, *args)
        steps.append({"title": title, "command": command, "exit_code": proc.returncode})
        if echo:
            echo(title, command + ("" if cwd == where else f"   (in {cwd.name}/)"), proc.stdout + proc.stderr)
        if proc.returncode != expect:
            raise RuntimeError(f"demo step {command!r} exited {proc.returncode}, expected {expect}: {proc.stderr}")
        return proc.stdout

    _data_chapter(step, where)
    _runs_chapter(step, where)
    _registry_chapter(step, where)
    demo_plain.chapter(step, where)
    demo_reports.chapter(step, where)
    _tamper_chapter(step, where)
    demo_investigate.chapter(step, where)
    return steps, where


def _data_chapter(step: Step, where: Path) -> None:
    """Version a dataset record by record, change it, compare, verify, restore."""
    rng = random.Random(7)
    for month in ("2024-01", "2024-02", "2024-03"):
        _write_loans(where / "data" / f"loans_{month}.csv", month, rng)
    step("Create a workspace", "init")
    add = ("add", "data", "--records", "--key", "loan_id")
    step("Version the raw loan applications, record by record", *add, "--type", "dataset", "-m", "Jan–Mar")
    _write_loans(where / "data" / "loans_2024-04.csv", "2024-04", rng)
    _edit_row(where / "data" / "loans_2024-02.csv", 42)
    _delete_row(where / "data" / "loans_2024-01.csv", 7)
    step("April arrives, a February row is corrected, a January row withdrawn: status notices", "status", expect=1)
    step("Version the new state", *add, "-m", "April added, February correction, January withdrawal")
    step("What changed, file by file", "diff", "data@1", "data@2")
    step("What changed, record by record (with schema and statistic shifts)", "diff", "data@1", "data@2", "--records")
    step("The corrected record, read back from its source line", "show", "data@2", "--record", "2024-02-00041")
    step("Verify every object, row and audit event", "verify")
    step("The audit log: who changed what, hash-chained", "log")
    shutil.rmtree(where / "data")
    step("Data lost? Restore version 1 byte for byte", "checkout", "data@1")


def _runs_chapter(step: Step, where: Path) -> None:
    """A feature pipeline and a training run, traced record by record."""
    _write_regions(where / "reference" / "regions.csv")
    (where / "prepare.py").write_text(_PREPARE, encoding="utf-8")
    (where / "train.py").write_text(_TRAIN, encoding="utf-8")
    _commit_code(where)
    prepare = ("run", "--name", "prepare", "--", sys.executable, "prepare.py")
    step("A feature pipeline of three runs (clean, features, training set) keeps every record's id", *prepare)
    sample = ("trace", "record", "trainset", "2024-03-00007")
    step("Trace one training sample back through every run to its raw source lines", *sample)
    step(
        "Walk one feature back to the source columns it was computed from",
        "lineage",
        "features",
        "--column",
        "debt_ratio",
    )
    train = ("run", "--name", "train", "-p", "C=0.5", "--", sys.executable, "train.py")
    step("Train a model through `custody run`: code, environment, data read and model written are captured", *train)
    step("Runs are searchable by metric and param", "runs", "--where", "metrics.accuracy > 0.5 and params.C = 0.5")
    run_id = json.loads(_quiet(where, "runs", "--json", "--name", "train"))["runs"][0]["id"]
    step("Which data versions and which model bytes stand behind that run", "show", run_id[:12])
    step("The model's whole upstream lineage: runs, datasets, files", "lineage", "model", "--up")
    impact = ("trace", "record", "data@2", "2024-03-00007", "--down")
    step("Impact: every derived record and model that one raw loan line reached", *impact)


def _registry_chapter(step: Step, where: Path) -> None:
    """Register the model with a signed attestation, promote it, verify it."""
    step("A signing key for the registry (ECDSA P-256, encrypted at rest)", "keys", "generate", "--name", "registry")
    run_id = json.loads(_quiet(where, "runs", "--json", "--name", "train"))["runs"][0]["id"]
    register = ("model", "register", "credit", "--run", run_id[:12])
    step("Register the model: a signed in-toto/SLSA attestation binds it to its run, data and lineage", *register)
    promote = ("model", "alias", "credit", "production", "1", "--reason", "accuracy 0.89 on the April data")
    step("Promote it to production; the reason is kept in the alias's history", *promote)
    verify = ("model", "verify", "credit:production")
    step("Verify it: signature, model bytes, run, every dataset and the lineage digest", *verify)
    (where / "serve.py").write_text(_SERVE, encoding="utf-8")
    serve = ("run", "--name", "serve", "--", sys.executable, "serve.py")
    step("Serve 1,000 credit decisions; each is a leaf of a signed transparency log", *serve)
    contest = ("trace", "decision", "D-00042", "--records", "3")
    step(
        "A customer contests decision D-00042: which model, trained on what, and which records weighed most?", *contest
    )
    step("An offline receipt proving that decision is in the log", "decisions", "receipt", "D-00042")


def _tamper_chapter(step: Step, where: Path) -> None:
    """Tamper with copies of the workspace: verify names each change."""
    byte_copy = _copy_workspace(where, "tampered-object")
    _flip_byte(byte_copy)
    step("Tamper: flip one byte of a stored object in a copy — verify names it", "verify", cwd=byte_copy, expect=1)
    row_copy = _copy_workspace(where, "tampered-row")
    _edit_metadata(row_copy, "UPDATE artifact_versions SET message = 'nothing to see here' WHERE name = 'data'")
    step("Tamper: edit an artifact row with sqlite3 in a copy — verify names it", "verify", cwd=row_copy, expect=1)
    metric_copy = _copy_workspace(where, "tampered-metric")
    _edit_metadata(metric_copy, "UPDATE run_metrics SET value = 0.99 WHERE key = 'accuracy'")
    title = "Tamper: polish the run's accuracy in a copy — the run's seal no longer matches"
    step(title, "verify", cwd=metric_copy, expect=1)
    model_copy = _copy_workspace(where, "tampered-model")
    model = json.loads(_quiet(where, "model", "show", "credit@1", "--json"))["model"]["digest"]
    _flip_byte(model_copy, model)
    step(
        "Tamper: flip one byte of the registered model in a copy — model verify names it",
        "model",
        "verify",
        "credit@1",
        cwd=model_copy,
        expect=1,
    )
    log_copy = _copy_workspace(where, "tampered-decisions")
    _drop_from_segment(log_copy, 500)
    title = "Tamper: delete one line (decision D-00500) from a stored log segment in a copy — verify names it"
    step(title, "verify", "--decisions", cwd=log_copy, expect=1)


# A feature pipeline: three runs, each reading records with their ids and writing records with lineage.
_PREPARE = """\
import mlcustody as mc
import polars as pl

with mc.start_run("clean") as run:
    loans = run.use_records("data@2")  # the loan applications, with a hidden _rid column per record
    clean = loans.filter((pl.col("income") < 90_000) & (pl.col("amount") > 0))
    run.output_records(clean, name="clean", key=["loan_id"])

with mc.start_run("features") as run:
    clean = run.use_records("clean")
    regions = run.use_records("reference/regions.csv")
    joined = mc.lineage.join(clean, regions, on="region", how="left")
    features = run.derive(
        joined,
        debt_ratio=pl.col("amount") / pl.col("income"),
        income_vs_region=pl.col("income") / pl.col("median_income"),
    )
    run.output_records(features, name="features", key=["loan_id"])

with mc.start_run("trainset") as run:
    features = run.use_records("features")
    columns = ["_rid", "loan_id", "debt_ratio", "income_vs_region", "unemployment", "term_months", "approved"]
    run.output_records(features.select(columns), name="trainset", key=["loan_id"])
print("clean → features → trainset written with record lineage")
"""


# Serving: the production model scores applications; every decision is logged, with the customer pseudonymised.
_SERVE = """\
import mlcustody as mc
import polars as pl

model = mc.load_model("model")
rows = pl.read_parquet(mc.active_run().use("trainset")).head(1000)
features = rows.select("debt_ratio", "income_vs_region", "unemployment", "term_months")
scores = model.predict_proba(features.to_numpy())[:, 1]
with mc.decision_log("credit:production") as log:
    for i, (row, score) in enumerate(zip(features.iter_rows(named=True), scores)):
        log.record(f"D-{i:05d}", inputs=row, output={"score": float(score), "approved": bool(score > 0.5)},
                   subject=rows["loan_id"][i])
print("1,000 decisions logged and sealed by a signed checkpoint")
"""

# A small training script: fits a logistic regression on the training set, saves it with skops.
_TRAIN = """\
import mlcustody as mc
import polars as pl
from sklearn.linear_model import LogisticRegression

run = mc.active_run()
data = pl.read_parquet(run.use("trainset"))  # polars reads natively: the SDK records the input
features = data.select("debt_ratio", "income_vs_region", "unemployment", "term_months").to_numpy()
model = LogisticRegression(C=run.params.get("C", 1.0), max_iter=1000).fit(features, data["approved"].to_numpy())
run.log_metric("accuracy", model.score(features, data["approved"].to_numpy()))
run.save_model(model, "model.skops")
print(f"trained on {data.height} loan applications")
"""


def _write_regions(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["region,median_income,unemployment"]
    rows += [f"{region},{30_000 + 4_000 * i},{0.04 + 0.01 * i:.2f}" for i, region in enumerate(_REGIONS)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def _commit_code(where: Path) -> None:
    """Make the demo directory a git repository holding the training script, when git is installed."""
    if shutil.which("git") is None:
        return
    env = {**os.environ, "GIT_AUTHOR_NAME": "demo", "GIT_AUTHOR_EMAIL": "demo@example.org"}
    env |= {"GIT_COMMITTER_NAME": "demo", "GIT_COMMITTER_EMAIL": "demo@example.org"}
    for args in (["init", "-q"], ["add", "train.py"], ["commit", "-q", "-m", "training script"]):
        subprocess.run(["git", *args], cwd=where, env=env, capture_output=True, check=False)


def _quiet(where: Path, *args: str) -> str:
    proc = _custody(where, *args)
    if proc.returncode != 0:
        raise RuntimeError(f"demo step custody {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def _custody(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed CLI, run as a user would, with the workspace's own config (no CUSTODY_* overrides)
    and the demo's key passphrase (a real one belongs in a secret store, not in code)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    env["CUSTODY_KEY_PASSPHRASE"] = _DEMO_PASSPHRASE
    command = [sys.executable, "-m", "mlcustody", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def _prepare(directory: Path | None) -> Path:
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="custody-demo-"))
    directory = directory.resolve()
    if directory.exists() and any(directory.iterdir()):
        raise PathError(f"{directory} is not empty", hint="give a new or empty directory, or omit --dir")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _write_loans(path: Path, month: str, rng: random.Random) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["loan_id", "applied", "region", "purpose", "income", "amount", "term_months", "approved"])
        for i in range(500):
            income = round(rng.lognormvariate(10.5, 0.5), 2)
            amount = round(income * rng.uniform(0.1, 1.5), 2)
            approved = int(amount < income * 0.8 and rng.random() > 0.1)
            day = rng.randint(1, 28)
            writer.writerow(
                [
                    f"{month}-{i:05d}",
                    f"{month}-{day:02d}",
                    rng.choice(_REGIONS),
                    rng.choice(_PURPOSES),
                    income,
                    amount,
                    rng.choice((12, 24, 36, 60)),
                    approved,
                ]
            )


def _edit_row(path: Path, index: int) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    fields = lines[index].split(",")
    fields[4] = "99999.0"
    lines[index] = ",".join(fields)
    path.write_text("".join(lines), encoding="utf-8")


def _delete_row(path: Path, index: int) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    del lines[index]
    path.write_text("".join(lines), encoding="utf-8")


def _copy_workspace(where: Path, name: str) -> Path:
    target = where / name
    shutil.copytree(where, target, ignore=shutil.ignore_patterns("tampered-*"), symlinks=True)
    return target


def _flip_byte(workspace: Path, digest: str | None = None) -> None:
    """Flip one bit in the middle of an object: the one named, or the largest."""
    objects = sorted(p for p in (workspace / ".custody" / "objects").rglob("*") if p.is_file())
    victim = max(objects, key=lambda p: p.stat().st_size)
    if digest is not None:
        victim = workspace / ".custody" / "objects" / digest[:2] / digest[2:]
    victim.chmod(0o644)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))


def _drop_from_segment(workspace: Path, position: int) -> None:
    """Rewrite the Parquet segment holding ``position`` without that row, with sqlite3 and pyarrow only."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    with sqlite3.connect(workspace / ".custody" / "metadata.db") as db:
        query = "SELECT first, data FROM decision_segments WHERE first <= ? ORDER BY first DESC LIMIT 1"
        first, data = db.execute(query, (position,)).fetchone()
        table = pq.read_table(pa.BufferReader(data))
        sink = pa.BufferOutputStream()
        pq.write_table(table.filter(pc.not_equal(table.column("position"), position)), sink)
        db.execute("UPDATE decision_segments SET data = ? WHERE first = ?", (sink.getvalue().to_pybytes(), first))
    db.close()


def _edit_metadata(workspace: Path, statement: str) -> None:
    with sqlite3.connect(workspace / ".custody" / "metadata.db") as db:
        db.execute(statement)
    db.close()
