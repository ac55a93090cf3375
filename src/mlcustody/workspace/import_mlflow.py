"""`custody import mlflow URI`: bring an MLflow tracking store's whole history under custody.

Read through MLflow's own client (so any store it reads works: a file store, ``sqlite:///…``,
``postgresql://…``, a running ``mlflow server``), and written as our own rows:

- each run keeps its MLflow id (both are 32 hex digits), name, user, start and end times and status;
  its params, tags (MLflow's ``mlflow.*`` ones too) and every metric point (value, step, timestamp);
  its artifacts are stored and versioned as ``mlflow/<run id>`` (an output of the run), each file's
  size checked against what MLflow lists; then the run is sealed like any other, so ``verify``
  detects later edits. Where it came from is kept in ``custody.import.*`` tags (experiment, lifecycle
  stage — deleted runs are imported too — original status and artifact URI).
- each registered model version keeps its number, is stored as a version of ``mlflow-models/<name>``
  whose metadata holds everything MLflow says of it (stage, description, tags, source, whether its run
  was deleted), and is signed into our registry bound to its imported run; aliases are moved with the
  import as their reason.

Idempotent: a run or model version already present is skipped, so a second import adds nothing.
What cannot be mapped (a run still running, an artifact whose size differs, a pickled model without
``trust_pickle``, a name our registry refuses) is listed with the reason; the rest is still imported.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa

from mlcustody.errors import CustodyError, UsageError
from mlcustody.metadata import artifacts, audit, runs
from mlcustody.metadata.schema import model_versions
from mlcustody.metadata.schema import runs as runs_table
from mlcustody.storage import snapshot
from mlcustody.workspace import peers

if TYPE_CHECKING:
    from mlcustody.workspace.facade import Workspace

IMPORT_TAG = "custody.import."  # prefix of the tags that say where an imported run came from
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_STATUS = {"FINISHED": "finished", "FAILED": "failed", "KILLED": "killed"}
_HOST = "mlflow"  # imported runs belong to no process of this host: the reaper leaves them alone


@dataclass(frozen=True)
class Unmapped:
    kind: str  # run | artifact | model_version | alias | experiment
    item: str
    reason: str


@dataclass
class MlflowImport:
    """What one import did: counts per kind, what was already there, and what could not be mapped."""

    source: str  # the URI without credentials
    imported: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)  # already imported earlier
    unmapped: list[Unmapped] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    model_versions: list[str] = field(default_factory=list)

    def refuse(self, kind: str, item: str, reason: str) -> None:
        self.unmapped.append(Unmapped(kind, item, reason))


def import_mlflow(
    ws: Workspace,
    uri: str,
    *,
    experiments: Sequence[str] = (),
    trust_pickle: bool = False,
    key: str | None = None,
) -> MlflowImport:
    """Import the experiments named (by name or id; default: all) and every registered model."""
    client = _client(uri)
    report = MlflowImport(_display(uri))
    with tempfile.TemporaryDirectory(prefix="custody-mlflow-") as tmp:
        for experiment in _experiments(client, experiments):
            before = len(report.runs)
            for run in _pages(partial(_runs_page, client, experiment.experiment_id)):
                _import_run(ws, client, experiment, run, report, Path(tmp))
            # an experiment is its runs' tag (custody.import.experiment): imported when one of them is
            (report.imported if len(report.runs) > before else report.skipped)["experiments"] += 1
        _import_models(ws, client, uri, report, Path(tmp), trust_pickle=trust_pickle, key=key)
    return report


# -- the source ----------------------------------------------------------------------------------------


def _client(uri: str) -> Any:
    """An MlflowClient for ``uri``, refusing one that names no existing store: MLflow would create an
    empty store at a missing path or SQLite file, and importing from it would silently bring nothing."""
    mlflow = peers.need("mlflow")
    parts = urlsplit(uri)
    local = None
    if parts.scheme in ("", "file"):
        local = Path(parts.path if parts.scheme else uri)
    elif parts.scheme == "sqlite":
        local = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
    elif (
        parts.scheme not in ("http", "https", "postgresql", "mysql", "mssql", "databricks") and "+" not in parts.scheme
    ):
        raise UsageError(f"{_display(uri)} is not an MLflow tracking URI", hint=_URI_HINT)
    if local is not None and not local.exists():
        raise UsageError(f"no MLflow store at {local}", hint=_URI_HINT)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # an unreachable server fails at once
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


_SCHEMES = ("http", "https", "postgresql", "mysql", "mssql", "databricks")
_URI_HINT = "give a tracking URI MLflow reads: a store directory, sqlite:///FILE, postgresql://…, http://HOST:PORT"


def _display(uri: str) -> str:
    """The URI as it may be shown and recorded: without a password."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _pages(fetch: Callable[[str | None], Any]) -> Iterator[Any]:
    """Every item of a paged MLflow listing; an unreadable store is bad input."""
    token: str | None = None
    while True:
        try:
            page = fetch(token)
        except Exception as exc:  # MlflowException, connection and database errors alike
            raise UsageError(f"cannot read the MLflow store: {_first_line(exc)}", hint=_URI_HINT) from exc
        yield from page
        token = page.token
        if not token:
            return


def _runs_page(client: Any, experiment_id: str, token: str | None) -> Any:
    """One page of an experiment's runs, deleted ones too (view type ALL), oldest first: parents first."""
    order = ["attributes.start_time ASC"]
    return client.search_runs([experiment_id], run_view_type=3, max_results=1000, order_by=order, page_token=token)


def _versions_page(client: Any, name: str, token: str | None) -> Any:
    quoted = name.replace("'", "\\'")
    return client.search_model_versions(f"name='{quoted}'", page_token=token)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _experiments(client: Any, wanted: Sequence[str]) -> list[Any]:
    found = list(_pages(lambda token: client.search_experiments(view_type=3, max_results=1000, page_token=token)))
    if not wanted:
        return found
    chosen = [e for e in found if e.name in wanted or e.experiment_id in wanted]
    missing = set(wanted) - {e.name for e in chosen} - {e.experiment_id for e in chosen}
    if missing:
        names = ", ".join(sorted(e.name for e in found)) or "none"
        raise UsageError(f"no MLflow experiment {sorted(missing)[0]!r}", hint=f"the store has: {names}")
    return chosen


# -- runs --------------------------------------------------------------------------------------------


def _import_run(ws: Workspace, client: Any, experiment: Any, run: Any, report: MlflowImport, tmp: Path) -> None:
    info = run.info
    run_id = info.run_id
    if not _RUN_ID.fullmatch(run_id):
        report.refuse("run", run_id, "the run id is not 32 hex digits")
        return
    with ws.db.read() as conn:
        if conn.execute(sa.select(runs_table.c.id).where(runs_table.c.id == run_id)).first():
            report.skipped["runs"] += 1
            return
    if info.status not in _STATUS:
        report.refuse("run", run_id, f"it is {info.status} in MLflow; import it again once it has ended")
        return
    history = _history(client, run_id, sorted(run.data.metrics))
    tags = dict(run.data.tags) | {
        f"{IMPORT_TAG}source": report.source,
        f"{IMPORT_TAG}experiment": f"{experiment.experiment_id} {experiment.name}",
        f"{IMPORT_TAG}lifecycle_stage": info.lifecycle_stage,
        f"{IMPORT_TAG}status": info.status,
        f"{IMPORT_TAG}artifact_uri": info.artifact_uri or "",
    }
    stored = _run_artifacts(ws, client, run_id, report, tmp / run_id)
    batch = runs.Batch(params=dict(run.data.params), tags=tags, metrics=history)
    start = runs.RunStart(
        run_id,
        info.run_name or "run",
        _parent(tags),
        [],
        ws.store_json(_code(tags)),
        info.user_id or "mlflow",
        _HOST,
        0,
        _time(info.start_time),
    )
    end = runs.RunEnd(_STATUS[info.status], None, "", _time(info.end_time or info.start_time), [], "")
    ws.objects.barrier()
    with ws.db.write() as conn:
        runs.insert_start(conn, start)
        if stored is not None:
            meta = {"run": run_id, "mlflow": {"artifact_uri": info.artifact_uri}}
            version = _version(ws, conn, f"mlflow/{run_id}", "other", stored, f"artifacts of MLflow run {run_id}", meta)
            io = runs.IO("output", version.name, version.kind, version.digest, version.size, version.ref, "declared")
            batch.io[("output", io.path)] = io
        runs.write_batch(conn, run_id, batch)
        _, event = runs.seal(conn, ws.objects, run_id, end, ws.config.actor)
    audit.advance_witness(ws.witness, event)
    report.runs.append(run_id)
    report.imported["runs"] += 1
    report.imported["params"] += len(batch.params)
    report.imported["tags"] += len(run.data.tags)
    report.imported["metric_points"] += len(history)
    if stored is not None:
        report.imported["artifact_files"] += stored.file_count


def _version(
    ws: Workspace, conn: Any, name: str, type: str, stored: snapshot.Snapshot, message: str, meta: dict[str, Any]
) -> artifacts.ArtifactVersion:
    """Record stored bytes as the next version of ``name`` (not a workspace path: ``path`` is None)."""
    version, _ = artifacts.insert(
        conn,
        name=name,
        type=type,
        kind=stored.kind,
        path=None,
        digest=stored.digest,
        size=stored.size,
        file_count=stored.file_count,
        actor=ws.config.actor,
        message=message,
        meta=meta,
    )
    return version


def _history(client: Any, run_id: str, keys: list[str]) -> list[runs.Metric]:
    """Every point of every metric of a run. A SQL store is read with one query per run (its ``metrics``
    table, as MLflow's own store reads it); any other store through the client, one call per metric,
    which costs a round trip each (100 metrics: 100 calls)."""
    engine = getattr(getattr(getattr(client, "_tracking_client", None), "store", None), "engine", None)
    if keys and isinstance(engine, sa.engine.Engine):
        query = sa.text("SELECT key, value, step, timestamp, is_nan FROM metrics WHERE run_uuid = :run")
        with engine.connect() as conn:
            rows = conn.execute(query, {"run": run_id}).all()
        return [
            runs.Metric(key, float("nan") if is_nan else float(value), int(step), int(stamp))
            for key, value, step, stamp, is_nan in sorted(rows, key=lambda row: (row[0], row[2], row[3]))
        ]
    return [
        runs.Metric(key, float(point.value), int(point.step), int(point.timestamp))
        for key in keys
        for point in client.get_metric_history(run_id, key)
    ]


def _parent(tags: dict[str, str]) -> str | None:
    parent = tags.get("mlflow.parentRunId")
    return parent if parent and _RUN_ID.fullmatch(parent) else None


def _code(tags: dict[str, str]) -> dict[str, Any]:
    """The code record of an imported run: what MLflow's source tags say (git commit, entry point)."""
    commit = tags.get("mlflow.source.git.commit")
    git: dict[str, Any] | None = None
    if commit:
        git = {
            "commit": commit,
            "branch": tags.get("mlflow.source.git.branch"),
            "remote": tags.get("mlflow.source.git.repoURL"),
            "dirty": None,  # MLflow does not record it
            "changed": [],
            "root": None,
        }
    source = {"name": tags.get("mlflow.source.name"), "type": tags.get("mlflow.source.type")}
    return {"git": git, "entry": None, "imported": {"from": "mlflow", "source": source}}


def _time(millis: int | None) -> str:
    """MLflow's epoch milliseconds in the one timestamp form we store (RFC 3339, UTC, µs)."""
    return datetime.fromtimestamp((millis or 0) / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _listing(client: Any, run_id: str, path: str | None = None) -> dict[str, int | None]:
    """Every artifact file of a run with the size MLflow lists for it."""
    found: dict[str, int | None] = {}
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            found |= _listing(client, run_id, item.path)
        else:
            found[item.path] = item.file_size
    return found


def _run_artifacts(
    ws: Workspace, client: Any, run_id: str, report: MlflowImport, where: Path
) -> snapshot.Snapshot | None:
    """Download a run's artifacts, drop each file whose size is not what MLflow lists, store the rest."""
    try:
        listed = _listing(client, run_id)
        if not listed:
            return None
        root = Path(client.download_artifacts(run_id, "", str(where)))
    except Exception as exc:  # a missing artifact store, a permission error, a network error
        report.refuse("artifact", f"{run_id}/", f"cannot download the run's artifacts: {_first_line(exc)}")
        return None
    for path, size in sorted(listed.items()):
        file = root / path
        actual = file.stat().st_size if file.is_file() else None
        if actual is None or (size is not None and actual != size):
            report.refuse("artifact", f"{run_id}/{path}", f"MLflow lists {size} bytes, the download has {actual}")
            file.unlink(missing_ok=True)
    if not any(p.is_file() for p in root.rglob("*")):
        return None
    return snapshot.take(root, objects=ws.objects)


# -- registered models -----------------------------------------------------------------------------


def _import_models(
    ws: Workspace, client: Any, uri: str, report: MlflowImport, tmp: Path, *, trust_pickle: bool, key: str | None
) -> None:
    for model in _pages(lambda token: client.search_registered_models(max_results=100, page_token=token)):
        name = model.name
        versions = _pages(partial(_versions_page, client, name))
        for mv in sorted(versions, key=lambda v: int(v.version)):
            try:
                _import_version(ws, client, uri, model, mv, report, tmp, trust_pickle=trust_pickle, key=key)
            except CustodyError as exc:
                report.refuse("model_version", f"{name}@{mv.version}", f"{exc} — {exc.hint}" if exc.hint else str(exc))
        for alias, version in sorted(dict(model.aliases).items()):
            _import_alias(ws, name, alias, int(version), report)


def _import_version(
    ws: Workspace,
    client: Any,
    uri: str,
    model: Any,
    mv: Any,
    report: MlflowImport,
    tmp: Path,
    *,
    trust_pickle: bool,
    key: str | None,
) -> None:
    from mlcustody.ledger import attestation, keys, registry

    mlflow = peers.need("mlflow")
    number = int(mv.version)
    ref = f"{model.name}@{number}"
    registry.validate_name(model.name)
    with ws.db.read() as conn:
        present = sa.select(model_versions.c.version).where(
            model_versions.c.name == model.name, model_versions.c.version == number
        )
        if conn.execute(present).first():
            report.skipped["model_versions"] += 1
            return
        run_known = bool(
            mv.run_id and conn.execute(sa.select(runs_table.c.id).where(runs_table.c.id == mv.run_id)).first()
        )
    try:
        source = client.get_model_version_download_uri(model.name, mv.version)
        where = tmp / "models" / model.name / str(number)
        files = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(where), tracking_uri=uri))
    except Exception as exc:
        report.refuse("model_version", ref, f"cannot download its files from {mv.source}: {_first_line(exc)}")
        return
    stored = snapshot.take(files, objects=ws.objects)
    meta = {"mlflow": _version_meta(client, model, mv), **({"run": mv.run_id} if run_known else {})}
    ws.objects.barrier()
    with ws.db.write() as conn:
        version = _version(
            ws, conn, f"mlflow-models/{model.name}", "model", stored, f"MLflow model version {ref}", meta
        )
        run_id = mv.run_id if run_known else None
        prepared = registry.prepare(conn, ws.objects, model.name, version, run_id, trust_pickle=trust_pickle)
        signer = keys.signer(conn, ws.config.store_dir, key)
        signature = signer.sign(attestation.pae(attestation.PAYLOAD_TYPE, prepared.statement))
        envelope = ws.objects.put_bytes(attestation.envelope(prepared.statement, signer.keyid, signature))
        ws.objects.barrier()
        _, event = registry.record(conn, prepared, envelope, signer.keyid, ws.config.actor, number=number)
    audit.advance_witness(ws.witness, event)
    if not run_known and mv.run_id:
        report.refuse("model_version", ref, f"its run {mv.run_id} was not imported: the version is kept without it")
    report.model_versions.append(ref)
    report.imported["model_versions"] += 1


def _version_meta(client: Any, model: Any, mv: Any) -> dict[str, Any]:
    """Everything MLflow says of a model version and its registered model, kept with its files."""
    run_deleted = False
    if mv.run_id:
        try:
            run_deleted = client.get_run(mv.run_id).info.lifecycle_stage == "deleted"
        except Exception:  # the run was deleted for good
            run_deleted = True
    return {
        "version": int(mv.version),
        "source": mv.source,
        "run_id": mv.run_id,
        "run_deleted": run_deleted,
        "stage": mv.current_stage,
        "status": mv.status,
        "description": mv.description,
        "tags": dict(mv.tags),
        "user_id": mv.user_id,
        "creation_timestamp": mv.creation_timestamp,
        "last_updated_timestamp": mv.last_updated_timestamp,
        "registered_model": {"description": model.description, "tags": dict(model.tags)},
    }


def _import_alias(ws: Workspace, name: str, alias: str, version: int, report: MlflowImport) -> None:
    from mlcustody.ledger import registry

    try:
        with ws.db.write() as conn:
            history = registry.aliases(conn, name).get(alias, [])
            if history and history[-1].version == version:
                report.skipped["aliases"] += 1
                return
            _, event = registry.move_alias(
                conn, name, alias, version, f"imported from MLflow ({report.source})", ws.config.actor
            )
    except CustodyError as exc:
        report.refuse("alias", f"{name}:{alias}", str(exc))
        return
    audit.advance_witness(ws.witness, event)
    report.imported["aliases"] += 1
