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
from mlcustody.metadata import artifacts, audit
from mlcustody.metadata.runs import metric_series
from mlcustody.metadata.runs import store as runs
from mlcustody.metadata.schema import model_versions
from mlcustody.metadata.schema import runs as runs_table
from mlcustody.storage import snapshot
from mlcustody.workspace import mlflow_metrics, peers
from mlcustody.workspace.terminal import ask_secret

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
    with tempfile.TemporaryDirectory(prefix="custody-mlflow-") as tmp, mlflow_metrics.reader(client) as metrics:
        writer = _RunWriter(ws, report)
        for experiment in _experiments(client, experiments):
            before = len(report.runs)
            for run in _pages(partial(_runs_page, client, experiment.experiment_id)):
                read = _read_run(ws, client, metrics, experiment, run, report, Path(tmp))
                if read is not None:
                    writer.add(read)
            writer.flush()
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
    if parts.scheme in ("", "file"):
        # MLflow 3 refuses file stores unless told otherwise; reading one to move it elsewhere is the point
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # an unreachable server fails at once
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:  # a SQL store is opened (and its schema checked) here: a file that is no MLflow database fails
        return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    except Exception as exc:
        raise UsageError(f"cannot open the MLflow store {_display(uri)}: {_first_line(exc)}", hint=_URI_HINT) from exc


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


@dataclass
class _Run:
    """One MLflow run read and its artifacts stored, ready to be written with others in one transaction."""

    start: runs.RunStart
    end: runs.RunEnd
    batch: runs.Batch
    history: list[metric_series.Series]
    summaries: list[metric_series.MetricSummary]
    section: dict[str, Any]  # the metrics part of the run record, built before any row is written
    stored: snapshot.Snapshot | None
    artifact_uri: str | None
    source_tags: int  # how many tags MLflow had (ours are added)

    @property
    def points(self) -> int:
        return sum(len(series) for series in self.history)


# Runs are written in groups: one transaction, one commit and one object-store flush per group
# instead of per run (each costs a filesystem sync); a group is bounded so memory stays small.
_GROUP_POINTS = 500_000
_GROUP_RUNS = 200


class _RunWriter:
    """Collects read runs and writes them a group at a time."""

    def __init__(self, ws: Workspace, report: MlflowImport) -> None:
        self._ws, self._report = ws, report
        self._pending: list[_Run] = []
        self._points = 0

    def add(self, run: _Run) -> None:
        self._pending.append(run)
        self._points += run.points
        if self._points >= _GROUP_POINTS or len(self._pending) >= _GROUP_RUNS:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        ws, group = self._ws, self._pending
        self._pending, self._points = [], 0
        ws.objects.barrier()  # code records and artifacts are durable before rows name them
        with ws.db.write() as conn:
            for run in group:
                event = _write_run(ws, conn, run)
            ws.objects.barrier()  # and so are the sealed records
        audit.advance_witness(ws.witness, event)  # the witness keeps the highest event: the last
        for run in group:
            self._count(run)

    def _count(self, run: _Run) -> None:
        report = self._report
        report.runs.append(run.start.id)
        report.imported["runs"] += 1
        report.imported["params"] += len(run.batch.params)
        report.imported["tags"] += run.source_tags
        report.imported["metric_points"] += run.points
        if run.stored is not None:
            report.imported["artifact_files"] += run.stored.file_count


def _write_run(ws: Workspace, conn: Any, run: _Run) -> audit.Event:
    run_id = run.start.id
    runs.insert_start(conn, run.start)
    if run.stored is not None:
        meta = {"run": run_id, "mlflow": {"artifact_uri": run.artifact_uri}}
        version = _version(ws, conn, f"mlflow/{run_id}", "other", run.stored, f"artifacts of MLflow run {run_id}", meta)
        io = runs.IO("output", version.name, version.kind, version.digest, version.size, version.ref, "declared")
        run.batch.io[("output", io.path)] = io
    runs.write_batch(conn, run_id, run.batch)
    metric_series.insert_series(conn, run_id, run.history, run.summaries)  # a whole history: in bulk
    _, event = runs.seal(conn, ws.objects, run_id, run.end, ws.config.actor, run.section, barrier=False)
    return event


def _read_run(
    ws: Workspace,
    client: Any,
    metrics: mlflow_metrics.HistoryReader,
    experiment: Any,
    run: Any,
    report: MlflowImport,
    tmp: Path,
) -> _Run | None:
    """The run as we will record it, or None when it is already imported or cannot be mapped."""
    info = run.info
    run_id = info.run_id
    if not _RUN_ID.fullmatch(run_id):
        report.refuse("run", run_id, "the run id is not 32 hex digits")
        return None
    with ws.db.read() as conn:
        if conn.execute(sa.select(runs_table.c.id).where(runs_table.c.id == run_id)).first():
            report.skipped["runs"] += 1
            return None
    if info.status not in _STATUS:
        report.refuse("run", run_id, f"it is {info.status} in MLflow; import it again once it has ended")
        return None
    try:
        history = metrics.history(run_id, sorted(run.data.metrics), experiment.experiment_id)
    except Exception as exc:  # a database error, a malformed metric file
        raise UsageError(f"cannot read the MLflow store: {_first_line(exc)}", hint=_URI_HINT) from exc
    summaries = [metric_series.summarize(series) for series in history]
    try:
        section = metric_series.record_section(history, summaries)
    except UsageError as exc:  # a step or timestamp beyond ±2**53, which a canonical record cannot hold
        report.refuse("run", run_id, f"a metric point cannot be sealed: {exc}")
        return None
    tags = dict(run.data.tags) | {
        f"{IMPORT_TAG}source": report.source,
        f"{IMPORT_TAG}experiment": f"{experiment.experiment_id} {experiment.name}",
        f"{IMPORT_TAG}lifecycle_stage": info.lifecycle_stage,
        f"{IMPORT_TAG}status": info.status,
        f"{IMPORT_TAG}artifact_uri": info.artifact_uri or "",
    }
    stored = _run_artifacts(ws, client, run_id, info.artifact_uri, report, tmp / run_id)
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
    batch = runs.Batch(params=dict(run.data.params), tags=tags)
    return _Run(start, end, batch, history, summaries, section, stored, info.artifact_uri, len(run.data.tags))


def _version(
    ws: Workspace, conn: Any, name: str, type: str, stored: snapshot.Snapshot, message: str, meta: dict[str, Any]
) -> artifacts.ArtifactVersion:
    """Record stored bytes as the next version of ``name`` (not a workspace path: ``path`` is None)."""
    version, _ = artifacts.insert_stored(
        conn, stored, name=name, type=type, path=None, actor=ws.config.actor, message=message, meta=meta
    )
    return version


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


def _listing(list_artifacts: Callable[[str | None], Any], path: str | None = None) -> dict[str, int | None]:
    """Every artifact file of a run with the size MLflow lists for it."""
    found: dict[str, int | None] = {}
    for item in list_artifacts(path):
        if item.is_dir:
            found |= _listing(list_artifacts, item.path)
        else:
            found[item.path] = item.file_size
    return found


def _artifact_repository(client: Any, run_id: str, artifact_uri: str | None) -> tuple[Any, Any]:
    """How to list and download a run's artifacts. A local artifact store is read through MLflow's own
    ``LocalArtifactRepository`` at the run's artifact URI, which ``MlflowClient.list_artifacts`` would
    reach only after fetching the whole run again (34 ms a run on a SQL store); any other store
    (S3, a proxied ``mlflow-artifacts:`` server) goes through the client, which resolves it."""
    scheme = urlsplit(artifact_uri or "").scheme
    if artifact_uri and scheme in ("", "file"):
        from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

        repo = LocalArtifactRepository(artifact_uri)
        return repo.list_artifacts, partial(_copy_local, repo)
    return partial(client.list_artifacts, run_id), partial(client.download_artifacts, run_id, "")


def _copy_local(repo: Any, dst: str) -> str:
    """Copy the run's artifacts out of a local artifact store: files whose size is wrong are then dropped
    from the copy, never from the store."""
    Path(dst).mkdir(parents=True, exist_ok=True)
    return str(repo.download_artifacts("", dst))


def _run_artifacts(
    ws: Workspace, client: Any, run_id: str, artifact_uri: str | None, report: MlflowImport, where: Path
) -> snapshot.Snapshot | None:
    """Download a run's artifacts, drop each file whose size is not what MLflow lists, store the rest."""
    list_artifacts, download = _artifact_repository(client, run_id, artifact_uri)
    try:
        listed = _listing(list_artifacts)
        if not listed:
            return None
        root = Path(download(str(where)))
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
    from mlcustody.ledger import keys
    from mlcustody.ledger.registry import attestation
    from mlcustody.ledger.registry import versions as registry

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
        signer = keys.signer(conn, ws.config.store_dir, key, prompt=ask_secret)
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
    from mlcustody.ledger.registry import versions as registry

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
