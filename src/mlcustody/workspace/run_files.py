"""The files a command run by ``custody run`` read and wrote, made into versions, manifests and links.

This is what keeps the chain unbroken for a pipeline of plain scripts: every file the run touched
under the workspace becomes an artifact version (named by its path, typed by its content, stored
unless the ``[capture]`` policy keeps it digest-only), linked to the run as used or generated; tables
also get a record manifest, and record links to the run's input tables are inferred from shared keys
or carried-over columns (``lineage.inference``). Files declared with ``--in``/``--out`` take the same
path, so lineage, trace and register treat declared and captured files alike.

What could not be versioned, manifested or linked is said, with the reason, in the run's
``custody.capture`` tag (sealed with the run, shown by ``show RUN``), never left as a silent gap.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import importlib
import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from mlcustody._canonical import canonical_json
from mlcustody.capture import filetypes, iolog
from mlcustody.errors import CustodyError
from mlcustody.metadata import artifact_names, artifacts, audit
from mlcustody.metadata import ref_resolution as refs
from mlcustody.metadata.artifacts import ArtifactVersion, NewVersion
from mlcustody.metadata.runs.store import IO, RecordLink
from mlcustody.metadata.schema import run_io
from mlcustody.storage import dir_manifest as manifest
from mlcustody.storage import snapshot
from mlcustody.storage.statcache import StatCache
from mlcustody.workspace.run_links import TableLinks

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy.engine import Connection

    from mlcustody.config import CapturePolicy
    from mlcustody.workspace.facade import Workspace

_RECORD_SUFFIXES = frozenset({".csv", ".tsv", ".tab", ".parquet", ".pq", ".jsonl", ".ndjson"})


@dataclass(frozen=True)
class Seen:
    """One file the run touched: where, which way, how we know, and what is known already."""

    rel: str
    role: str  # input | output
    source: str  # declared | captured
    opened: iolog.ReadStat | None = None  # a captured read: its stat when the run opened it
    type: str | None = None  # declared with --out PATH:TYPE
    digest: str | None = None  # a declared input: stored before the command ran


@dataclass
class Versioned:
    """What the run's files became: IO rows, record links, and the capture report for its tag."""

    io: list[IO] = field(default_factory=list)
    links: list[RecordLink] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)  # files kept as less than a version, and why
    manifests: list[dict[str, Any]] = field(default_factory=list)  # record manifests built, or why not
    linked: list[dict[str, Any]] = field(default_factory=list)  # each (output, input) table pair and its evidence
    notes: list[str] = field(default_factory=list)

    def report(self) -> str | None:
        """The ``custody.capture`` tag value (canonical JSON), None when there is nothing to say."""
        if not (self.files or self.manifests or self.linked or self.notes):
            return None
        found = {"files": self.files, "manifests": self.manifests, "links": self.linked, "notes": self.notes}
        return canonical_json(found).decode("utf-8")


@dataclass
class _File:
    seen: Seen
    path: Path
    digest: str | None = None
    size: int = 0
    stored: bool = False
    ref: str | None = None
    version: ArtifactVersion | None = None
    new: NewVersion | None = None


@dataclass
class HeadStart:
    """What a ``Prefetch`` did while the command ran, by (path, digest): the manifests of input
    tables new to the store, and the records of input tables already versioned with records."""

    manifests: dict[tuple[str, str], _Manifest] = field(default_factory=dict)
    records: dict[tuple[str, str], pa.Table] = field(default_factory=dict)


def version_files(ws: Workspace, run_id: str, seen: Sequence[Seen], head: HeadStart | None = None) -> Versioned:
    """Store, version and link what the run read and wrote (see the module docstring); ``head``:
    what a ``Prefetch`` built while the command ran."""
    head = head or HeadStart()
    done = Versioned()
    with ws.db.read() as conn:
        known = _recorded_by_sdk(conn, run_id)
    files = [_File(item, ws.root / item.rel) for item in seen if (item.role, item.rel) not in known]
    kept = _hash_all(ws, files, done)
    ws.objects.barrier()
    links = TableLinks(ws)
    # Links only go to output tables: a run that wrote none resolves none of its (maybe 1,000) inputs.
    writes_tables = bool(_tables([f.seen.rel for f in kept if f.seen.role == "output"]))
    with ws.db.read() as conn:
        _link_known(ws, conn, kept)
        for item in kept if writes_tables else []:  # inputs already versioned with records: linked from those
            known_version = _version(conn, item) if item.seen.role == "input" else None
            if known_version is not None and known_version.records is not None:
                links.add_input(item.seen.rel, head.records.get((item.seen.rel, item.digest or "")), known_version)
    for item in kept:
        if item.stored and (item.ref is None or item.seen.role == "output"):
            item.new = _new_version(ws, run_id, item, done)
    _manifests(ws, [f for f in kept if f.new is not None], done, head, links)
    _record_versions(ws, kept)
    for item in files:
        state = item.seen
        kind = "dir" if item.path.is_dir() else "file"
        done.io.append(IO(state.role, state.rel, kind, item.digest, item.size, item.ref, state.source))
    outputs = [(f.seen.rel, f.version) for f in kept if f.seen.role == "output" and f.version is not None]
    links.finish(outputs, {f.seen.rel: f.version for f in kept if f.version is not None}, done)
    return done


def _recorded_by_sdk(conn: Connection, run_id: str) -> set[tuple[str, str]]:
    """(role, path) the run's own SDK calls recorded: they know better than the capture."""
    query = sa.select(run_io.c.role, run_io.c.path).where(run_io.c.run_id == run_id, run_io.c.source == "sdk")
    return {(row.role, row.path) for row in conn.execute(query)}


def _hash_all(ws: Workspace, files: list[_File], done: Versioned) -> list[_File]:
    """Digest (and, within the policy, store) every file; the files to store go in one batch, so that
    a thousand unchanged inputs cost a thousand ``stat`` calls and one stat-cache query. Returns the
    files that have a digest to keep."""
    _store_stable(ws, [item for item in files if _needs_storing(ws, item, done)], done)
    return [item for item in files if item.digest is not None]


def _needs_storing(ws: Workspace, item: _File, done: Versioned) -> bool:
    """Settle every file that is not simply stored (gone, changed, declared, a directory, digest-only);
    True for the rest."""
    rel = item.seen.rel
    if not item.path.exists():
        done.files.append({"path": rel, "role": item.seen.role, "state": "deleted", "why": "gone when the run ended"})
        return False
    if item.seen.opened is not None and not item.seen.opened.unchanged(item.path):
        done.files.append({"path": rel, "role": "input", "state": "changed", "why": "changed after the run read it"})
        return False
    if item.seen.digest is not None:  # declared: stored by `custody run` before the command started
        item.digest, item.size, item.stored = item.seen.digest, _size(item.path), True
        return False
    if item.path.is_dir():
        snap = snapshot.take(item.path, objects=ws.objects, cache=ws.cache)
        item.digest, item.size, item.stored = snap.digest, snap.size, True
        return False
    why = _digest_only(ws.config.capture, rel, item.path)
    if why is None:
        return True
    item.digest, item.size = _stable(item.path, lambda: snapshot.take(item.path, cache=ws.cache).digest)
    done.files.append({"path": rel, "role": item.seen.role, "state": "digest-only", "why": why})
    return False


def _digest_only(policy: CapturePolicy, rel: str, path: Path) -> str | None:
    """Why the ``[capture]`` policy keeps this file digest-only, or None when it is stored."""
    pattern = next((p for p in policy.ignore if fnmatch.fnmatch(rel, p)), None)
    if pattern is not None:
        return f"matches ignore pattern {pattern}"
    if policy.store_max_bytes is not None and _size(path) > policy.store_max_bytes:
        return f"larger than store_max_bytes ({policy.store_max_bytes})"
    return None


class Prefetch:
    """Head starts taken on a thread of ``custody run`` while the command is still running.

    The command mostly computes after it has read its inputs, and the machine has a core to spare
    meanwhile: the files it read are hashed and stored then, which leaves ``version_files`` a ``stat``
    per file (a stat-cache hit) when the command ends; and once it touches a table, the record layer
    (pyarrow, DuckDB, polars: about a second) is imported then, not after. It is only ever a head
    start: ``version_files`` decides, checks every file again, and reports what went wrong, so a
    failure here is left for it to meet.
    """

    _POLL_SECONDS = 0.05
    _RECORD_MODULES = ("mlcustody.storage.records.manifest", "mlcustody.lineage.inference")

    def __init__(self, ws: Workspace, reader: iolog.LogReader) -> None:
        self._ws, self._reader = ws, reader
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="custody-prefetch", daemon=True)
        self._imported = False  # the record layer, once the command touches a table
        self._table_reads = 0  # tables read so far (counted as they come, not recounted each poll)
        self.head = HeadStart()

    def __enter__(self) -> Prefetch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _follow(self) -> None:
        policy, root = self._ws.config.capture, self._ws.root
        with contextlib.closing(StatCache(self._ws.config.stat_cache_path)) as cache:  # its own connection
            while not self._stop.wait(self._POLL_SECONDS):
                fresh = self._reader.poll()
                self._table_reads += len(_tables(fresh))
                read = [rel for rel in fresh if _digest_only(policy, rel, root / rel) is None]
                tables = self._table_reads + len(_tables(list(self._reader.captured.writes)))
                within = policy.records and tables <= policy.records_max_files  # else no manifest is built
                if within and tables and not self._imported:
                    self._imported = True
                    for name in self._RECORD_MODULES:
                        importlib.import_module(name)
                with contextlib.suppress(CustodyError, OSError):
                    self._take(read, cache, manifests=within)

    def _take(self, read: list[str], cache: StatCache, *, manifests: bool) -> None:
        """Store what was read; with ``manifests``, build those of the tables new to the store (they
        will be new versions) and read the records of those versioned with records (links to the
        run's output tables will be inferred from them)."""
        root, objects = self._ws.root, self._ws.objects
        fresh: list[tuple[str, str, int]] = []
        known: list[tuple[str, str, int]] = []
        for rel in _tables(read) if manifests else []:
            snap = snapshot.take(root / rel, cache=cache)
            (known if objects.exists(snap.digest) else fresh).append((rel, snap.digest, snap.size))
        if read:
            snapshot.take_files([root / rel for rel in read], objects=objects, cache=cache)
            objects.barrier()  # flushed now, the final barrier has little left to do
        for rel, digest, size in fresh:
            given = functools.partial(self.head.records.__setitem__, (rel, digest))
            self.head.manifests[(rel, digest)] = _manifest(self._ws, rel, digest, size, given)
        if not known:
            return  # no query on the polls that read no versioned table
        with self._ws.db.read() as conn:
            versions = artifacts.at_paths(conn, [rel for rel, _, _ in known])
        for rel, digest, _ in known:
            version = next((v for v in versions.get(rel, []) if v.digest == digest and v.records), None)
            if version is not None:
                self.head.records[(rel, digest)] = self._ws.record_table(version)


def _tables(rels: Sequence[str]) -> list[str]:
    """The paths among ``rels`` that ``custody run`` gives record manifests (by suffix)."""
    return [rel for rel in rels if os.path.splitext(rel)[1].lower() in _RECORD_SUFFIXES]


def _store_stable(ws: Workspace, items: list[_File], done: Versioned) -> None:
    """Store the files in one batch and keep each digest taken while the file's stat stayed the same;
    a file that moved meanwhile is read once more alone, then recorded as unstable."""
    before = [_stat(item.path) for item in items]
    found = snapshot.take_files([item.path for item in items], objects=ws.objects, cache=ws.cache)
    for item, stat, got in zip(items, before, found, strict=True):
        if got is not None and stat is not None and stat == _stat(item.path):
            item.digest, item.size = got[0], stat[0]
        else:
            item.digest, item.size = _once(item.path, functools.partial(_store, ws, item.path))
        item.stored = item.digest is not None
        if item.digest is None:
            done.files.append(
                {"path": item.seen.rel, "role": item.seen.role, "state": "unstable", "why": "changed while hashed"}
            )


def _store(ws: Workspace, path: Path) -> str | None:
    found = snapshot.take_files([path], objects=ws.objects, cache=ws.cache)[0]
    return found[0] if found else None


def _stable(path: Path, digest: Callable[[], str | None]) -> tuple[str | None, int]:
    """A digest taken while the file's stat stayed the same; tried twice, then None (never a wrong digest)."""
    found, size = _once(path, digest)
    return (found, size) if found is not None else _once(path, digest)


def _once(path: Path, digest: Callable[[], str | None]) -> tuple[str | None, int]:
    """(digest, size) when the file's stat did not move while ``digest`` ran, else (None, size)."""
    before = _stat(path)
    found = digest()
    if before is not None and before == _stat(path):
        return found, before[0]
    return None, _size(path)


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _link_known(ws: Workspace, conn: Connection, files: list[_File]) -> None:
    """Reads of bytes already versioned (at their path, or inside a versioned directory) keep that version."""
    linker = _ArtifactLinker(ws, conn, [f.seen.rel for f in files])
    for item in files:
        if item.seen.role == "input":
            item.ref = linker.ref(item.seen.rel, item.digest)


def _new_version(ws: Workspace, run_id: str, item: _File, done: Versioned) -> NewVersion:
    kind_type = item.seen.type or (filetypes.artifact_type(item.path) if item.path.is_file() else None)
    if kind_type == "model" and filetypes.pickle_risk(item.path):
        done.notes.append(f"{item.seen.rel} is a pickle: loading it can run code (registering it needs --trust-pickle)")
    meta: dict[str, Any] = {"run": run_id} if item.seen.role == "output" else {}
    digest = item.digest or ""
    kind, count = ("dir", len(manifest.decode(ws.objects.read_bytes(digest)))) if item.path.is_dir() else ("file", 1)
    return NewVersion(
        artifact_names.default_name(item.path, item.seen.rel),
        kind_type,
        kind,
        item.seen.rel,
        digest,
        item.size,
        count,
        meta,
    )


@dataclass(frozen=True)
class _Manifest:
    """A table's record manifest as ``custody run`` built it: the capture report's entry, and the
    version's ``records`` metadata when one was built."""

    entry: dict[str, Any]
    meta: dict[str, Any] | None


def _manifests(ws: Workspace, files: list[_File], done: Versioned, head: HeadStart, links: TableLinks) -> None:
    """Record manifests for the tables among the new versions, within the ``[capture]`` limits; those
    the prefetch built while the command ran are taken as they are. Inputs come first, so that the
    links of each output can be inferred while its manifest is sorted (``run_links``)."""
    policy = ws.config.capture
    named = set(_tables([f.seen.rel for f in files]))
    tables = [f for f in files if f.seen.rel in named and f.path.is_file()]
    tables.sort(key=lambda f: f.seen.role != "input")
    if not policy.records or not tables:
        return  # before the record layer (pyarrow, DuckDB) is imported: most runs write no table
    if len(tables) > policy.records_max_files:
        done.notes.append(
            f"{len(tables)} tables read or written (more than records_max_files = {policy.records_max_files}): "
            "no record manifests; add the directory with `custody add DIR --records`, or raise the limit"
        )
        return
    for item in tables:
        assert item.new is not None and item.digest is not None
        rel, held = item.seen.rel, head.records
        given = functools.partial(held.__setitem__, (rel, item.digest))
        if item.seen.role == "output":
            given = functools.partial(links.output_read, rel)
        found = head.manifests.get((rel, item.digest)) or _manifest(ws, rel, item.digest, item.size, given)
        done.manifests.append(found.entry)
        if found.meta is not None:
            item.new.meta["records"] = found.meta
            if item.seen.role == "input":
                links.add_input(rel, held.get((rel, item.digest)))
    ws.objects.barrier()


def _manifest(
    ws: Workspace, rel: str, digest: str, size: int, on_records: Callable[[pa.Table], None] | None = None
) -> _Manifest:
    """The manifest of one stored table, keyed by the first ``[capture] keys`` column it has; a key
    that does not identify its records falls back to keyless, and the reason is kept. ``on_records``:
    see ``record_manifest.build``."""
    policy = ws.config.capture
    if size > policy.records_max_bytes:
        return _Manifest(
            {"path": rel, "manifest": None, "why": f"larger than records_max_bytes ({policy.records_max_bytes})"}, None
        )
    from mlcustody.storage.records import manifest as record_manifest
    from mlcustody.storage.records import readers

    fmt = readers.SUFFIXES[os.path.splitext(rel)[1].lower()]
    source = [record_manifest.RecordSource(rel, ws.objects.path(digest))]
    columns = _column_names(source[0].path, fmt)
    key = next((k for k in policy.keys if k in columns), None)
    entry: dict[str, Any] = {"path": rel, "key": key}
    try:
        try:
            built = record_manifest.build(source, fmt, [key] if key else None, ws.objects, on_records=on_records)
        except CustodyError as exc:
            if key is None:
                raise
            entry |= {"key": None, "why": f"key {key} not usable: {exc.one_line()}"}
            built = record_manifest.build(source, fmt, None, ws.objects, on_records=on_records)
    except CustodyError as exc:
        return _Manifest({**entry, "manifest": None, "why": exc.one_line()}, None)
    return _Manifest({**entry, "manifest": built.digest, "count": built.count}, built.as_meta())


def _column_names(path: Path, fmt: str) -> list[str]:
    """The column names of a table from its first line or footer, without reading it."""
    import pyarrow.parquet as pq

    if fmt == "parquet":
        return list(pq.read_schema(path).names)
    with open(path, encoding="utf-8", errors="replace") as handle:
        first = handle.readline()
    if fmt == "jsonl":
        try:
            found = json.loads(first)
        except ValueError:
            return []
        return list(found) if isinstance(found, dict) else []
    import csv

    return next(csv.reader([first], delimiter="\t" if fmt == "tsv" else ","), [])


def _record_versions(ws: Workspace, files: list[_File]) -> None:
    """Insert every new version in one transaction and one audit event; inputs before outputs, so that
    a version never derives from a younger one."""
    ordered = sorted((f for f in files if f.new is not None), key=lambda f: f.seen.role != "input")
    if not ordered:
        return
    with ws.db.write() as conn:
        versions, event = artifacts.insert_many(conn, [f.new for f in ordered if f.new], actor=ws.config.actor)
    if event is not None:
        audit.advance_witness(ws.witness, event)
    for item, version in zip(ordered, versions, strict=True):
        item.version, item.ref = version, version.ref


def _version(conn: Connection, item: _File) -> ArtifactVersion | None:
    if item.version is not None:
        return item.version
    return refs.resolve(conn, item.ref) if item.ref else None


class _ArtifactLinker:
    """Which artifact version holds a file with given bytes: a version at its path, or a version of a
    directory above it (newest first), so a run that read an older checkout links to that version."""

    def __init__(self, ws: Workspace, conn: Connection, rels: Sequence[str]) -> None:
        self.ws = ws
        self._versions: dict[str, list[tuple[str, dict[str, str]]]] = {}
        candidates = {"/".join(rel.split("/")[:depth]) for rel in rels for depth in range(1, rel.count("/") + 2)}
        found = artifacts.at_paths(conn, sorted(candidates))  # one query, not one per file
        for path in candidates:
            self._versions[path] = [self._files(version) for version in found.get(path, [])]

    def ref(self, rel: str, digest: str | None) -> str | None:
        if digest is None:
            return None
        parts = rel.split("/")
        for depth in range(len(parts), 0, -1):
            inside = "/".join(parts[depth:]) or None
            for ref, files in self._versions.get("/".join(parts[:depth]), []):
                if files.get(inside or "") == digest:
                    return ref
        return None

    def _files(self, version: ArtifactVersion) -> tuple[str, dict[str, str]]:
        """(ref, {path inside: digest}) of a version; a file's own entry is keyed ""."""
        if version.kind == "file":
            return version.ref, {"": version.digest}
        entries = manifest.decode(self.ws.objects.read_bytes(version.digest))
        return version.ref, {e.path: e.digest for e in entries}
