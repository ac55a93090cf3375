"""The Workspace: one object through which the CLI, the server and Python users reach every capability.

Each method is the whole of one user-facing operation: it combines the storage layer (bytes) and the
metadata layer (versions, audit chain) and returns plain values; it never prints. The CLI renders
what it returns, the server will serialise the same values through ``shapes``.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from mlcustody import config as config_module
from mlcustody._canonical import canonical_json
from mlcustody._progress import Progress
from mlcustody.capture import filetypes, launch
from mlcustody.checks import CheckReport, Problem
from mlcustody.config import STORE_DIRNAME, Config
from mlcustody.errors import PathError, UnknownRef, UsageError, WorkspaceExists
from mlcustody.metadata import artifact_names, artifacts, audit, gc, verify
from mlcustody.metadata import ref_resolution as refs
from mlcustody.metadata.artifacts import ArtifactVersion
from mlcustody.metadata.engine import Database
from mlcustody.metadata.runs import diff as run_diff
from mlcustody.metadata.runs import query as run_query
from mlcustody.metadata.runs import store as runs
from mlcustody.metadata.schema import store_info
from mlcustody.storage import checked_out, links, snapshot
from mlcustody.storage import dir_manifest as manifest
from mlcustody.storage.boundary import Boundary
from mlcustody.storage.checkout import CheckoutResult, checkout
from mlcustody.storage.diff import TreeDiff, diff_entries
from mlcustody.storage.dir_manifest import Entry
from mlcustody.storage.lock import store_lock
from mlcustody.storage.objects import ObjectStore
from mlcustody.storage.statcache import StatCache
from mlcustody.workspace import bundles as bundle_cases
from mlcustody.workspace import decisions as decision_cases
from mlcustody.workspace import graph as graph_cases
from mlcustody.workspace import keys as key_cases
from mlcustody.workspace import models as model_cases
from mlcustody.workspace import tracking
from mlcustody.workspace.results import (
    AddResult,
    ArtifactStatus,
    DecisionColumns,
    DecisionTrace,
    FoundRecord,
    ImportReport,
    ModelDetails,
    RecordDiffReport,
    RecordSpec,
    RunDetails,
    VerifyReport,
)

if TYPE_CHECKING:  # the record layer pulls in pyarrow, DuckDB and polars: imported when first used
    import pyarrow as pa

    from mlcustody.forensics import attribution_investigation
    from mlcustody.ledger import kek_rotate, keys
    from mlcustody.ledger.bundle import check as bundle_check
    from mlcustody.ledger.bundle import export as bundle
    from mlcustody.ledger.bundle import reproduce as bundle_reproduce
    from mlcustody.ledger.decisions import log as decisions
    from mlcustody.ledger.decisions import queries as decision_queries
    from mlcustody.ledger.registry import versions as registry
    from mlcustody.lineage import graph as lineage_graph
    from mlcustody.lineage import record_trace
    from mlcustody.storage.records import lookup
    from mlcustody.storage.records import manifest as record_manifest


# Changed records whose old and new values are re-read from the raw bytes to name the changed
# columns; each read costs ~10 ms, so a complete --json list of 10,000 changes names ids only past this.
_COLUMN_DETAIL = 100


class Workspace:
    """A directory under mlcustody's custody: its store (.custody/) and metadata database."""

    def __init__(self, cfg: Config) -> None:
        self.config = cfg
        self.root = cfg.root
        self.db = Database(cfg.db_url)
        self.objects = ObjectStore(cfg.store_dir)
        self._cache: StatCache | None = None

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def init(cls, root: Path, *, db_url: str | None = None, link_mode: str = "copy") -> Workspace:
        """Create a store in ``root``: directories, config, schema (Alembic), first audit event."""
        root = root.resolve()
        store = root / STORE_DIRNAME
        if (store / config_module.CONFIG_FILENAME).exists():
            raise WorkspaceExists(f"{root} is already an mlcustody workspace")
        if not root.is_dir():
            raise PathError(f"{root} is not a directory", hint="create it first, or pass an existing --dir")
        store.mkdir(exist_ok=True)
        try:
            # Git keeps the settings, not the data (as DVC does for .dvc/): the store is not source code.
            (store / ".gitignore").write_text("/*\n!/.gitignore\n!/config.toml\n", encoding="utf-8")
            config_module.write_initial(root, db_url, link_mode)
            ws = cls(config_module.load(root))
            ws.objects.create()
            ws.migrate()
            ws._record_init()
        except BaseException:
            shutil.rmtree(store, ignore_errors=True)  # a failed init leaves nothing behind
            raise
        return ws

    @classmethod
    def open(cls, start: Path | None = None) -> Workspace:
        """The workspace at or above ``start`` (default: the current directory); checks the schema."""
        root = config_module.find_root(start or Path.cwd())
        ws = cls(config_module.load(root))
        ws.db.check_revision()
        return ws

    def _record_init(self) -> None:
        with self.db.write() as conn:
            existing = conn.execute(sa.select(store_info.c.value).where(store_info.c.key == "store_id")).scalar()
            store_id = existing or uuid.uuid4().hex
            if not existing:
                conn.execute(store_info.insert().values(key="store_id", value=store_id))
            event = audit.append(
                conn,
                actor=self.config.actor,
                action="workspace.init",
                payload={"store_id": store_id, "root": str(self.root)},
            )
        audit.advance_witness(self.witness, event)

    def migrate(self) -> str:
        from mlcustody.metadata import migrate  # Alembic is needed only to create or upgrade

        migrate.upgrade(self.db)
        return self.db.revision() or ""

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
        self.db.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def witness(self) -> Path:
        """The file that remembers the last audit event this workspace committed (see ``audit``)."""
        return self.config.store_dir / "audit-head"

    def store_json(self, value: Any) -> str:
        """Store ``value`` as a canonical JSON object; its digest is the digest of the value."""
        return self.objects.put_bytes(canonical_json(value))

    def read_json(self, digest: str) -> Any:
        return json.loads(self.objects.read_bytes(digest))

    @property
    def cache(self) -> StatCache:
        if self._cache is None:
            self._cache = StatCache(self.config.stat_cache_path)
        return self._cache

    def _lock(self, *, exclusive: bool) -> Any:
        return store_lock(self.config.store_dir / "gc.lock", exclusive=exclusive)

    # -- paths and references --------------------------------------------------------------------

    def relpath(self, path: Path | str) -> str:
        """``path`` relative to the workspace root (posix), refusing anything outside it."""
        return self.config.relpath(path)

    def resolve(self, ref: str) -> ArtifactVersion:
        """A reference, or failing that a workspace path something was added from (its latest version)."""
        with self.db.read() as conn:
            try:
                return refs.resolve(conn, ref)
            except UsageError:
                candidate = Path(os.path.abspath(ref))
                if candidate.is_relative_to(self.root) and candidate != self.root:
                    found = artifacts.latest_at_path(conn, candidate.relative_to(self.root).as_posix())
                    if found is not None:
                        return found
                raise

    def entries(self, version: ArtifactVersion) -> tuple[Entry, ...]:
        """The files of a version (a single entry named after its path for a file)."""
        if version.kind == "dir":
            return tuple(manifest.decode(self.objects.read_bytes(version.digest)))
        name = Path(version.path or version.name).name
        return (Entry(name, version.size, 0o644, version.digest),)

    # -- operations ------------------------------------------------------------------------------

    def add(
        self,
        paths: Sequence[Path | str],
        *,
        name: str | None = None,
        type: str | None = None,
        message: str = "",
        tags: Sequence[str] = (),
        records: RecordSpec | None = None,
        generated_by: str | None = None,
        progress: Progress | None = None,
    ) -> list[AddResult]:
        """Version each path: store its bytes (and, asked, a record manifest), then record a new version
        unless nothing changed. ``generated_by`` names the run that produced the bytes."""
        if not paths:
            raise UsageError("no path given", hint="name the files or directories to add")
        if name is not None and len(paths) > 1:
            raise UsageError("--name applies to a single path", hint="add the paths one at a time")
        artifact_names.validate_type(type)
        targets = [(Path(p), self.relpath(p)) for p in paths]
        names = [name or artifact_names.default_name(path, rel) for path, rel in targets]
        for (path, _), chosen in zip(targets, names, strict=True):  # checked before anything is stored
            if not os.access(path, os.R_OK):
                raise PathError(f"{path} does not exist" if not path.exists() else f"cannot read {path}")
            artifact_names.validate_name(chosen)
        results = []
        boundary = Boundary(self.root)
        with self.objects.recording() as written:
            try:
                with self._lock(exclusive=False):
                    for (path, rel), chosen in zip(targets, names, strict=True):
                        snap = snapshot.take(
                            path,
                            objects=self.objects,
                            cache=self.cache,
                            link_mode=self.config.link_mode,
                            progress=progress,
                            boundary=boundary,
                        )
                        meta: dict[str, Any] = {"run": generated_by} if generated_by else {}
                        kept = self._records_meta(chosen, rel, snap, records)
                        if kept is not None:
                            meta["records"] = kept
                        self.objects.barrier()
                        results.append(self._record(chosen, rel, snap, type, message, list(tags), meta))
                        self._link_workspace(path, snap)  # once recorded: a refusal leaves the files as they were
                        checked_out.forget(self.config.store_dir, chosen)
            except BaseException:
                with self._lock(exclusive=True):  # a refusal changes nothing: its objects go again
                    gc.discard(self.db, self.objects, written)
                raise
        return results

    def _link_workspace(self, path: Path, snap: snapshot.Snapshot) -> None:
        """In hardlink/symlink mode, make the workspace files point at the stored objects."""
        mode = self.config.link_mode
        if mode not in ("hardlink", "symlink"):
            return
        for entry in snap.entries:
            target = path if snap.kind == "file" else path / entry.path
            obj = self.objects.path(entry.digest)
            if mode == "hardlink" and os.stat(target).st_ino == os.stat(obj).st_ino:
                continue
            if mode == "symlink" and target.is_symlink() and Path(os.readlink(target)) == obj:
                continue
            links.place(obj, target, entry.mode, mode)

    def _records_meta(
        self, name: str, rel: str, snap: snapshot.Snapshot, spec: RecordSpec | None
    ) -> dict[str, Any] | None:
        """The record manifest of the next version of ``name``: built with the settings asked for, else
        with those of its latest version (a plain re-add keeps the records); the latest's own manifest
        when the bytes and the settings are the same, so that such a re-add makes no new version."""
        with self.db.read() as conn:
            latest = artifacts.latest(conn, name)
        kept = latest.records if latest is not None else None
        if spec is None:
            if kept is None:
                return None
            spec = RecordSpec(key=tuple(kept["key"]) if kept["key"] else None, format=kept["format"])
        if latest is not None and kept is not None and latest.digest == snap.digest and latest.kind == snap.kind:
            same_key = tuple(kept["key"] or ()) == tuple(spec.key or ())
            if same_key and self._record_format(rel, snap, spec) == kept["format"]:
                return kept
        return self._build_records(rel, snap, spec).as_meta()

    def _record_format(self, rel: str, snap: snapshot.Snapshot, spec: RecordSpec) -> str:
        from mlcustody.storage.records import readers

        if snap.kind == "file":
            return readers.detect_format(Path(rel), spec.format)
        return _record_files(rel, snap.entries, spec.format)[0]

    def _build_records(self, rel: str, snap: snapshot.Snapshot, spec: RecordSpec) -> record_manifest.RecordManifest:
        """Fingerprint the records of the bytes just stored (not of the workspace, which may move on)."""
        from mlcustody.storage.records import manifest as record_manifest
        from mlcustody.storage.records import readers

        if snap.kind == "file":
            fmt = readers.detect_format(Path(rel), spec.format)
            sources = [record_manifest.RecordSource(rel, self.objects.path(snap.digest))]
        else:
            fmt, chosen = _record_files(rel, snap.entries, spec.format)
            sources = [record_manifest.RecordSource(f"{rel}/{e.path}", self.objects.path(e.digest)) for e in chosen]
        return record_manifest.build(sources, fmt, spec.key, self.objects)

    def _record(
        self,
        name: str,
        rel: str,
        snap: snapshot.Snapshot,
        type: str | None,
        message: str,
        tags: list[str],
        meta: dict[str, Any],
    ) -> AddResult:
        with self.db.write() as conn:
            latest = artifacts.latest(conn, name)
            same = latest is not None and latest.digest == snap.digest and latest.meta == meta
            if latest is not None and same and (type is None or type == latest.type):
                return AddResult(latest, created=False)
            if type is None and latest is None and snap.kind == "file":  # typed by content, as a run's files
                type = filetypes.artifact_type(self.root / rel)
            version, event = artifacts.insert_stored(
                conn,
                snap,
                name=name,
                type=type,
                path=rel,
                actor=self.config.actor,
                message=message,
                tags=tags,
                meta=meta,
            )
        audit.advance_witness(self.witness, event)
        return AddResult(version, created=True)

    def status(self, progress: Progress | None = None) -> list[ArtifactStatus]:
        """How each artifact's latest version — or the version ``checkout`` restored at its path —
        compares with what is at its path now."""
        pinned = checked_out.read(self.config.store_dir)
        with self.db.read() as conn:
            versions = [
                (artifacts.get(conn, v.name, pinned.get(v.name, v.version)), v) for v in artifacts.listing(conn)
            ]
        report = []
        for found, latest in versions:
            version = found or latest
            older = latest if version.version != latest.version else None
            target = self.root / (version.path or version.name)
            if not (target.exists() or target.is_symlink()):
                report.append(ArtifactStatus(version, "missing", None, older))
                continue
            snap = snapshot.take(target, cache=self.cache, progress=progress)
            if snap.digest == version.digest and snap.kind == version.kind:
                report.append(ArtifactStatus(version, "unchanged", None, older))
                continue
            changes = diff_entries(self.entries(version), snap.entries) if version.kind == snap.kind else None
            report.append(ArtifactStatus(version, "modified", changes, older))
        return report

    def listing(self, *, all_versions: bool = False, type: str | None = None) -> list[ArtifactVersion]:
        with self.db.read() as conn:
            return artifacts.listing(conn, all_versions=all_versions, type=type)

    def history(self, name: str) -> list[ArtifactVersion]:
        with self.db.read() as conn:
            return artifacts.history(conn, name)

    def diff(self, ref_a: str, ref_b: str) -> tuple[ArtifactVersion, ArtifactVersion, TreeDiff]:
        a, b = self.resolve(ref_a), self.resolve(ref_b)
        return a, b, diff_entries(self.entries(a), self.entries(b))

    def checkout(
        self,
        ref: str,
        *,
        to: Path | str | None = None,
        force: bool = False,
        link_mode: str | None = None,
        progress: Progress | None = None,
    ) -> tuple[ArtifactVersion, Path, CheckoutResult]:
        """Restore a version at its original path (or ``to``), refusing to destroy unsaved data."""
        version = self.resolve(ref)
        mode = link_mode or self.config.link_mode
        if mode not in config_module.LINK_MODES:
            raise UsageError(f"unknown link mode {mode!r}", hint=f"use one of: {', '.join(config_module.LINK_MODES)}")
        if to is not None:
            target = Path(os.path.abspath(to))
            if version.kind == "file" and target.is_dir():
                target = target / Path(version.path or version.name).name
        else:
            target = self.root / (version.path or version.name)
        if STORE_DIRNAME in target.parts:
            raise PathError(f"{target} is inside the store", hint="check out somewhere else")
        result = checkout(
            version.kind,
            self.entries(version),
            target,
            objects=self.objects,
            cache=self.cache,
            link_mode=mode,
            force=force,
            progress=progress,
        )
        if to is None:  # its own path now holds this version: `status` compares with it
            with self.db.read() as conn:
                latest = artifacts.latest(conn, version.name)
            if latest is not None and latest.version != version.version:
                checked_out.record(self.config.store_dir, version.name, version.version)
            else:
                checked_out.forget(self.config.store_dir, version.name)
        return version, target, result

    # -- records -----------------------------------------------------------------------------------

    def record_manifest(self, version: ArtifactVersion) -> dict[str, Any]:
        """The record manifest summary of a version; a usage error when it was added without --records."""
        if version.records is None:
            raise UsageError(
                f"{version.ref} has no record manifest",
                hint=f"add it again with records: `custody add {version.path or version.name} --records`",
            )
        return version.records

    def record_diff(
        self, ref_a: str, ref_b: str, *, limit: int | None = 5
    ) -> tuple[ArtifactVersion, ArtifactVersion, RecordDiffReport]:
        """Records added, removed and changed, schema changes and statistic shifts between two versions;
        the first ``limit`` records of each kind (None: all), each changed one with the columns that
        changed, old and new values re-read from the stored raw bytes."""
        from mlcustody.storage.records import diff as record_diff
        from mlcustody.storage.records import lookup
        from mlcustody.storage.records.stats import compare_stats

        a, b = self.resolve(ref_a), self.resolve(ref_b)
        old, new = self.record_manifest(a), self.record_manifest(b)
        keyed = bool(old["key"]) and old["key"] == new["key"]
        found = record_diff.diff(
            self.objects.path(old["manifest"]), self.objects.path(new["manifest"]), keyed=keyed, examples=limit
        )
        read_old, read_new = self._record_reader(a), self._record_reader(b)
        for kind, rows in found.examples.items():
            for index, row in enumerate(rows):
                old_at, new_at = row.pop("old_offset", None), row.pop("new_offset", None)
                if kind == "changed" and index < _COLUMN_DETAIL:
                    before = read_old(lookup.Hit(row["record_id"], row["old_fp"], row["old_source"], old_at))
                    after = read_new(lookup.Hit(row["record_id"], row["new_fp"], row["new_source"], new_at))
                    row["columns"] = record_diff.changed_columns(before.values, after.values)
        schema_changes, stat_shifts = compare_stats(old, new)
        return a, b, RecordDiffReport(found, schema_changes, stat_shifts, limit)

    def _record_reader(self, version: ArtifactVersion) -> Callable[[lookup.Hit], lookup.Record]:
        """Reads a record of ``version`` back from its stored raw bytes, given its manifest row."""
        from mlcustody.storage.records import lookup
        from mlcustody.storage.records import manifest as record_manifest

        summary = self.record_manifest(version)
        schema = record_manifest.values_schema(self.objects.path(summary["manifest"]))
        files = {f"{version.path}/{e.path}": e.digest for e in self.entries(version)} if version.kind == "dir" else {}

        def read(hit: lookup.Hit) -> lookup.Record:
            raw = self.objects.path(files.get(hit.rel, version.digest))
            return lookup.read_record(raw, summary["format"], hit, schema)

        return read

    def find_records(
        self, ref: str, *, record_id: str | None = None, fingerprint: str | None = None
    ) -> tuple[ArtifactVersion, list[FoundRecord]]:
        """A record by id or fingerprint: its locator and its values re-read from the stored raw bytes."""
        from mlcustody.storage.records import lookup

        version = self.resolve(ref)
        summary = self.record_manifest(version)
        hits = lookup.find(self.objects.path(summary["manifest"]), record_id=record_id, fingerprint=fingerprint)
        if not hits:
            what = f"record id {record_id!r}" if record_id is not None else f"fingerprint {fingerprint!r}"
            raise UsageError(f"{version.ref} has no {what}", hint="record ids are shown by `custody diff --records`")
        read = self._record_reader(version)
        return version, [FoundRecord(hit, read(hit)) for hit in hits]

    def record_table(self, version: ArtifactVersion) -> pa.Table:
        """Every record of a version (added with records) with its record id, read from the stored bytes."""
        from mlcustody.storage.records import manifest as record_manifest
        from mlcustody.storage.records import table as record_table

        summary = self.record_manifest(version)
        schema = record_manifest.values_schema(self.objects.path(summary["manifest"]))
        if version.kind == "file":
            sources = [record_manifest.RecordSource(version.path or version.name, self.objects.path(version.digest))]
        else:
            _, chosen = _record_files(version.path or version.name, self.entries(version), summary["format"])
            rel = version.path or version.name
            sources = [record_manifest.RecordSource(f"{rel}/{e.path}", self.objects.path(e.digest)) for e in chosen]
        return record_table.read_records(sources, summary["format"], summary["key"], schema)

    def trace_record(self, ref: str, ident: str, *, down: bool = False, depth: int = 64) -> record_trace.Trace:
        """Follow a record (id or fingerprint) back to its raw source lines, or down to what it reached."""
        from mlcustody.lineage import record_trace as trace

        with self.db.read() as conn:
            return trace.trace(conn, self.objects, ref, ident, down=down, depth=depth)

    # -- runs ----------------------------------------------------------------------------------------

    def start_run(
        self,
        name: str = "run",
        *,
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        parent: str | None = None,
    ) -> tracking.Run:
        """Start a tracked run in this process (use it as a context manager to end it)."""
        return tracking.start_run(self, name, params=params, tags=tags, parent=parent)

    def run_command(
        self,
        command: Sequence[str],
        *,
        name: str | None = None,
        inputs: Sequence[str | Path] = (),
        outputs: Sequence[str | Path] = (),
        params: dict[str, Any] | None = None,
        stdout_to_stderr: bool = False,
    ) -> tracking.CommandResult:
        """Run a command as a tracked run, capturing the files it reads and writes."""
        started = launch.start(
            self.config,
            command,
            name=name,
            inputs=inputs,
            outputs=outputs,
            params=params,
            stdout_to_stderr=stdout_to_stderr,
        )
        return self.finish_command(started)

    def finish_command(self, started: launch.Launch) -> tracking.CommandResult:
        """Record and seal the run of a command already started by ``launch.start``."""
        with launch.stopped_on_error(started):
            return tracking.finish_command(self, started)

    def is_run(self, ref: str) -> bool:
        """Whether ``ref`` names a run rather than an artifact (an artifact wins unless ``run:`` is written)."""
        if ref.startswith("run:"):
            return True
        try:
            self.resolve(ref)
            return False
        except UnknownRef:
            with self.db.read() as conn:
                try:
                    runs.resolve(conn, ref)
                except UnknownRef:
                    return False
            return True

    def runs(
        self,
        *,
        name: str | None = None,
        where: str | None = None,
        sort: str | None = None,
        limit: int | None = 1000,
    ) -> list[runs.Run]:
        """Runs matching ``where`` (see ``run_query``), newest first unless ``sort`` says otherwise."""
        conditions = run_query.parse_where(where) if where else []
        order = run_query.parse_sort(sort) if sort else None
        with self.db.read() as conn:
            ids = run_query.search(conn, name=name, where=conditions, sort=order, limit=limit)
            return runs.load(conn, ids)

    def run(self, ref: str) -> RunDetails:
        """One run with its code and environment records, metric history and child runs."""
        with self.db.read() as conn:
            run = runs.get(conn, runs.resolve(conn, ref))
            history = runs.metric_history(conn, run.id)
            children = runs.children(conn, run.id)
        environment = self.read_json(run.end.environment) if run.end and run.end.environment else None
        return RunDetails(run, self.read_json(run.start.code), environment, history, children)

    def run_diff(self, ref_a: str, ref_b: str) -> tuple[RunDetails, RunDetails, dict[str, Any]]:
        a, b = self.run(ref_a), self.run(ref_b)
        return a, b, run_diff.compare(a, b)

    def current_version(self, path: Path, *, records: bool = False) -> ArtifactVersion | None:
        """The latest version added from ``path`` if its bytes (and, asked, a record manifest) are what is
        there now; else None. Costs a stat per file when nothing changed (the stat cache)."""
        with self.db.read() as conn:
            found = artifacts.latest_at_path(conn, self.relpath(path))
        if found is None or (records and found.records is None):
            return None
        return found if snapshot.take(path, cache=self.cache).digest == found.digest else None

    def materialise(self, version: ArtifactVersion) -> Path:
        """Where ``version``'s bytes can be read: its workspace path if unchanged, else a cached copy."""
        target = self.root / (version.path or version.name)
        if target.exists() and snapshot.take(target, cache=self.cache).digest == version.digest:
            return target
        copy = self.config.store_dir / "cache" / "versions" / version.digest / target.name
        if not copy.exists():
            checkout(
                version.kind,
                self.entries(version),
                copy,
                objects=self.objects,
                cache=self.cache,
                link_mode="copy",
                force=True,
            )
        return copy

    # -- model registry ----------------------------------------------------------------------------

    def register_model(
        self,
        name: str,
        *,
        run: str | None = None,
        path: Path | str | None = None,
        key: str | None = None,
        trust_pickle: bool = False,
    ) -> registry.ModelVersion:
        """Register the next version of a model: the model a run produced (``run``) or the file at
        ``path``, bound by a signed in-toto/SLSA attestation to its run, data and lineage. A pickle
        is refused unless ``trust_pickle`` (the attestation then names it)."""
        return model_cases.register_model(self, name, run=run, path=path, key=key, trust_pickle=trust_pickle)

    def alias_model(
        self, name: str, alias: str, version: int | None, reason: str, *, override_terms: bool = False
    ) -> registry.AliasMove:
        """Point an alias at a version (None removes it); the move is kept in the alias's history. A gated
        alias (production) refuses a version whose data's terms its use breaks, unless ``override_terms``:
        then the reason is signed and recorded with the move (``workspace.policy_cases``)."""
        return model_cases.alias_model(self, name, alias, version, reason, override_terms=override_terms)

    def models(self) -> list[registry.ModelVersion]:
        return model_cases.models(self)

    def model(self, ref: str) -> ModelDetails:
        """A model version (``NAME@V``, ``NAME:ALIAS``, ``NAME``) with its chain of custody."""
        return model_cases.model(self, ref)

    def verify_model(self, ref: str) -> tuple[registry.ModelVersion, list[Problem]]:
        """Re-derive every digest the version's attestation names; the problems found (none: intact)."""
        return model_cases.verify_model(self, ref)

    def model_oms_bundle(self, ref: str, *, key: str | None = None) -> bytes:
        """An OpenSSF model-signing (OMS) bundle for a model version, to save as ``model.sig`` beside it.

        Signed on demand (the registry keeps no copy: no schema change) with the active key of ``key``,
        by default of the name whose key signed the version, over the per-file sha256 digests the
        version's attestation signed — refused if ``verify_model`` finds those broken. Needs an ECDSA
        P-256 key: OMS verifiers accept no Ed25519."""
        return model_cases.model_oms_bundle(self, ref, key=key)

    @staticmethod
    def verify_oms_bundle(bundle: Path | str, public_key: Path | str, model: Path | str) -> list[Problem]:
        """Check an OMS ``model.sig`` signed by anyone, with no workspace: the signature with the PEM
        public key in ``public_key``, and every file digest it signs against the model on disk."""
        return model_cases.verify_oms_bundle(bundle, public_key, model)

    # -- provenance bundles ------------------------------------------------------------------------

    def export_bundle(self, ref: str, path: Path | str, *, with_data: bool = False) -> bundle.Exported:
        """Write a model version's offline provenance bundle (``FILE.tar.gz``): attestation, public key,
        model, run record, code, environment, dataset and record manifests, lineage; the data if asked."""
        return bundle_cases.export_bundle(self, ref, path, with_data=with_data)

    @staticmethod
    def verify_bundle(path: Path | str) -> bundle_check.BundleCheck:
        """Check a bundle offline, with no workspace: members, signature, digests, seal, lineage digest."""
        return bundle_cases.verify_bundle(path)

    def reproduce(self, ref: str, to: Path | str) -> bundle_reproduce.Reproduction:
        """Materialise what trained a model version into an empty directory: entry script, params, code
        record and dirty diff, and its input data versions at their workspace-relative paths."""
        return bundle_cases.reproduce(self, ref, to)

    # -- decisions ---------------------------------------------------------------------------------

    def decision_log(self, ref: str, **options: Any) -> decisions.DecisionLog:
        """A log of the decisions a registered model (``NAME@V``, ``NAME:ALIAS``, ``NAME``) makes; close it
        (or use it as a context manager) to write a signed checkpoint. See ``ledger.decisions``."""
        return decision_cases.decision_log(self, ref, **options)

    def import_decisions(
        self,
        path: Path | str,
        ref: str,
        *,
        columns: DecisionColumns | None = None,
        resume: bool = False,
        purpose: str | None = None,
    ) -> ImportReport:
        """Import a prediction log (JSON Lines, CSV, Parquet) into the decision log, sealed by a checkpoint.
        With an alias (``NAME:ALIAS``) each decision gets the version the alias pointed at at its time.
        With ``resume``, decisions already logged with the same content are skipped (an interrupted
        import run again), one logged with other content refuses the import. A declared ``purpose`` the
        model's data does not cover (its consent, its sources' purposes) refuses the import."""
        return decision_cases.import_decisions(self, path, ref, columns=columns, resume=resume, purpose=purpose)

    def list_decisions(
        self, *, model: str | None = None, subject: str | None = None, since: str | None = None, limit: int = 1000
    ) -> list[decision_queries.Decision]:
        """Logged decisions in log order, by model (``NAME``, ``NAME@V``, ``NAME:ALIAS``), subject id, time."""
        return decision_cases.list_decisions(self, model=model, subject=subject, since=since, limit=limit)

    def decision_receipt(self, decision_id: str) -> decision_queries.Receipt:
        """A c2sp.org/tlog-proof that the decision is in the signed log, to check offline."""
        return decision_cases.decision_receipt(self, decision_id)

    def decision_inputs(self, decision_id: str) -> dict[str, Any] | None:
        """The inputs of a decision, decrypted; None when not kept or crypto-shredded."""
        return decision_cases.decision_inputs(self, decision_id)

    def forget_subject(self, subject: str) -> int:
        """Crypto-shred a data subject's decision inputs (their data key is deleted, audited); the log
        still verifies. Returns the number of payloads made unreadable."""
        return decision_cases.forget_subject(self, subject)

    def seal_decisions(self) -> int | None:
        """Sign a checkpoint over decisions a killed writer left unsealed; the size sealed, else None."""
        return decision_cases.seal_decisions(self)

    def verify_decisions(self) -> VerifyReport:
        """Recompute every decision entry, the Merkle tree and every signed checkpoint."""
        return decision_cases.verify_decisions(self)

    def trace_decision(self, decision_id: str, records: int = 0, label: str | None = None) -> DecisionTrace:
        """Decision → model version (and the aliases serving it) → attestation checked → training run →
        code, config, environment → datasets with their record-manifest digests; with ``records`` also
        the ``records`` training records that most influenced it, traced to their raw source lines
        (``label`` names the training set's label column when it cannot be told)."""
        return decision_cases.trace_decision(self, decision_id, records, label)

    # -- lineage graph -----------------------------------------------------------------------------

    def lineage(self, ref: str, *, direction: str = "up", depth: int | None = None) -> lineage_graph.Graph:
        """The runs, versions, files and agents upstream (``up``), downstream (``down``) or on both sides
        of a version or run, within ``depth`` entity→run / run→entity steps (None: all)."""
        return graph_cases.lineage(self, ref, direction=direction, depth=depth)

    def lineage_digest(self, ref: str) -> str:
        """The Merkle digest of everything upstream of a version or run (what an attestation signs)."""
        return graph_cases.lineage_digest(self, ref)

    def column_lineage(self, ref: str, column: str, *, depth: int | None = None) -> lineage_graph.ColumnLineage:
        """The input columns one column of a version was computed from, back to its source columns."""
        return graph_cases.column_lineage(self, ref, column, depth=depth)

    # -- keys ----------------------------------------------------------------------------------------

    def rotate_kek(self) -> kek_rotate.Rotation:
        """Re-wrap the decision log's data keys and subject-HMAC key under a new key-encryption key."""
        return key_cases.rotate_kek(self)

    def generate_key(self, name: str | None = None, type: str | None = None) -> keys.KeyChange:
        """Make a signing key pair (default name ``default``, type ``ecdsa-p256``; see ``ledger.keys``)."""
        return key_cases.generate_key(self, name, type)

    def list_keys(self) -> list[keys.KeyInfo]:
        """Every registered signing key with its status and validity, oldest first."""
        return key_cases.list_keys(self)

    def key(self, ref: str | None = None) -> keys.KeyInfo:
        """The key a name (its active key, else its newest), a keyid or a keyid prefix names; by default
        the active key that signs attestations."""
        return key_cases.key(self, ref)

    def rotate_key(self, ref: str) -> keys.KeyChange:
        """Replace a name's active key by a new one; the old one is retired, its signatures stay valid."""
        return key_cases.rotate_key(self, ref)

    def revoke_key(self, ref: str, reason: str) -> keys.KeyChange:
        """Revoke a key: none of its signatures is trusted any more."""
        return key_cases.revoke_key(self, ref, reason)

    def signer(self, name: str | None = None) -> keys.Signer:
        """The signer of a name's active key (default: the newest active key, or CUSTODY_SIGNING_KEY)."""
        return key_cases.signer(self, name)

    def check_signature(self, keyid: str, data: bytes, signature: bytes, signed_at: str) -> str | None:
        """None when the signature verifies and the key was valid at ``signed_at``, else why not."""
        return key_cases.check_signature(self, keyid, data, signature, signed_at)

    def verify(self, progress: Progress | None = None) -> VerifyReport:
        """Objects, rows, the audit chain and runs; the decision log's anchors, checkpoints and key rows
        (the full re-hash of every decision is ``verify_decisions``)."""
        from mlcustody.ledger.decisions import verify as decision_verify

        store = verify.verify_store(self.db, self.objects, self.witness, progress)
        log = decision_verify.quick(self.db, self.config.store_dir)
        return CheckReport(sorted(set(store.problems + log.problems)), store.checked | log.checked)

    def log(self, *, limit: int | None = None, since: int = 0) -> list[audit.Event]:
        """Audit events, newest first."""
        with self.db.read() as conn:
            return list(audit.iter_events(conn, since=since, limit=limit, desc=True))

    def gc(self, *, delete: bool = False) -> tuple[gc.GcPlan, int]:
        """Unreferenced objects and stale temp files; deleted only when asked. Returns (plan, freed)."""
        if not delete:
            return gc.plan(self.db, self.objects), 0
        with self._lock(exclusive=True):
            found = gc.plan(self.db, self.objects)
            return found, gc.collect(self.objects, found)

    def investigate_attribution(
        self, query: attribution_investigation.Query
    ) -> attribution_investigation.Investigation:
        """The training records that most raised and lowered one prediction (``custody investigate attribution``)."""
        from mlcustody.forensics import attribution_investigation

        with self.db.read() as conn:
            cache = self.config.store_dir / "cache" / "attribution"
            return attribution_investigation.investigate(
                conn, self, query, cache, decision_cases.decision_keys(self, conn)
            )


def _record_files(rel: str, entries: tuple[Entry, ...], fmt: str | None) -> tuple[str, list[Entry]]:
    """The files of a directory that hold records, all of one format."""
    from mlcustody.storage.records import readers

    by_format: dict[str, list[Entry]] = {}
    for entry in entries:
        detected = readers.SUFFIXES.get(Path(entry.path).suffix.lower())
        if detected is not None:
            by_format.setdefault(detected, []).append(entry)
    if fmt is not None:
        readers.detect_format(Path(rel), fmt)
        if fmt not in by_format:
            raise UsageError(f"{rel} holds no {fmt} files", hint="check --format, or add the files themselves")
        return fmt, by_format[fmt]
    if len(by_format) != 1:
        found = ", ".join(sorted(by_format)) or "none"
        raise UsageError(
            f"{rel} must hold record files of one format (found: {found})",
            hint="pass --format to choose one",
        )
    return next(iter(by_format.items()))
