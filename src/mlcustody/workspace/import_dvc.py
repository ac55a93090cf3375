"""`custody import dvc PATH`: a DVC repository's whole git history brought under custody.

Every commit of ``HEAD``'s history is read, oldest first, straight from git (no checkout):

- each ``.dvc`` file's outs, and each ``dvc.lock`` stage's deps and outs, name content by MD5. The bytes
  are found in the DVC cache (3.x ``files/md5/`` and 2.x layouts), in a local remote from
  ``.dvc/config``, or, for a dependency git tracks (a script), in git at that commit; each file's MD5 is
  checked against its bytes and the bytes are stored under their BLAKE3 digest. Directories are read
  from their ``.dir`` listing into one of our manifests. Each distinct content of a path becomes a
  version of the artifact named by that path, its metadata holding the MD5 and the commit.
- each stage whose ``dvc.lock`` entry changed in a commit becomes a sealed run: its command, params,
  inputs and outputs (those versions), the commit as its code, the commit time as its times. Its id is
  derived from the repository's first commit, the commit and the stage, so a second import adds nothing.

Content whose bytes are nowhere local (or whose MD5 does not match) is kept digest-only: named with its
MD5 in the run's ``custody.import.digest_only`` tag and in the report, never silently dropped.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import subprocess
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from mlcustody.errors import PathError, UsageError
from mlcustody.metadata import artifacts, audit
from mlcustody.metadata.runs import store as runs
from mlcustody.metadata.schema import artifact_versions
from mlcustody.metadata.schema import runs as runs_table
from mlcustody.storage import dir_manifest as manifest
from mlcustody.workspace import peers
from mlcustody.workspace.import_mlflow import IMPORT_TAG, Unmapped

if TYPE_CHECKING:
    from mlcustody.workspace.facade import Workspace

_NS = uuid.UUID("2b0d7c8e-3f43-4c56-9a0e-6e1d5b1c8f27")  # run ids of imported stages
_MODE = manifest.normal_mode(0o100644)


@dataclass
class DvcImport:
    source: str
    commits: int = 0
    imported: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    unmapped: list[Unmapped] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Content:
    kind: str
    digest: str
    size: int
    file_count: int


class _Missing(Exception):
    """Content whose bytes cannot be had here (the reason is the message)."""


def import_dvc(ws: Workspace, path: Path | str) -> DvcImport:
    """Import every commit's ``.dvc`` outs and ``dvc.lock`` stages of the DVC repository at ``path``."""
    yaml = peers.need("yaml")
    repo = Path(path).resolve()
    if not (repo / ".dvc").is_dir():
        raise UsageError(f"{repo} is not a DVC repository", hint="give the directory that holds .dvc/ (dvc init)")
    history = [
        line.split(" ", 2) for line in _git(repo, "log", "--reverse", "--format=%H %ct %an", "HEAD").splitlines()
    ]
    if not history:
        raise UsageError(f"{repo} has no commits", hint="commit the .dvc files and dvc.lock first")
    importer = _Importer(ws, repo, yaml, DvcImport(str(repo)), history[0][0])
    for commit, seconds, author in history:
        importer.commit(commit, int(seconds), author)
    return importer.report


def _git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True)
    except FileNotFoundError as exc:
        raise UsageError("git is not installed", hint="install git to import a DVC repository") from exc
    except subprocess.CalledProcessError as exc:
        message = exc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UsageError(
            f"git {args[0]} failed in {repo}: {message[0] if message else exc.returncode}",
            hint="give the root of a git repository with DVC in it",
        ) from exc
    return done.stdout.decode("utf-8", "replace")


class _Importer:
    """The state of one import: where bytes are found, what is already stored, what each stage was."""

    def __init__(self, ws: Workspace, repo: Path, yaml: Any, report: DvcImport, root_commit: str) -> None:
        self.ws, self.repo, self.yaml, self.report, self.root = ws, repo, yaml, report, root_commit
        self.places = _object_places(repo)
        self.objects: dict[str, tuple[str, int]] = {}  # md5 → (digest, size) of files stored this import
        self.contents: dict[str, _Content] = {}  # md5 (file or .dir) → what it was stored as
        self.missing: dict[str, str] = {}  # md5 → why its bytes cannot be had
        self.blobs: dict[str, Any] = {}  # git blob → parsed YAML
        self.lock_entries: dict[tuple[str, str], str] = {}  # (lock file, stage) → its last entry, canonical
        with ws.db.read() as conn:
            self.known = _imported_versions(conn)
        self.earlier = set(self.known)  # imported before: counted as skipped, once each

    # -- one commit -----------------------------------------------------------------------------------

    def commit(self, commit: str, seconds: int, author: str) -> None:
        self.report.commits += 1
        for line in _git(self.repo, "ls-tree", "-r", commit).splitlines():
            meta, path = line.split("\t", 1)
            blob = meta.split()[2]
            name = PurePosixPath(path).name
            if name.endswith(".dvc") and name != ".dvc":
                self._dvc_file(path, blob, commit)
            elif name == "dvc.lock":
                self._lock_file(path, blob, commit, seconds, author)

    def _parsed(self, blob: str) -> Any:
        if blob not in self.blobs:
            self.blobs[blob] = self.yaml.safe_load(_git(self.repo, "cat-file", "blob", blob)) or {}
        return self.blobs[blob]

    def _dvc_file(self, path: str, blob: str, commit: str) -> None:
        base = PurePosixPath(path).parent
        for out in self._parsed(blob).get("outs") or []:
            target = str(base / out["path"]) if str(base) != "." else out["path"]
            try:
                self._version(target, out, commit, "dataset")
            except _Missing as exc:
                self._digest_only(target, out, str(exc))

    def _lock_file(self, path: str, blob: str, commit: str, seconds: int, author: str) -> None:
        base = PurePosixPath(path).parent
        for stage, entry in sorted((self._parsed(blob).get("stages") or {}).items()):
            key = json.dumps(entry, sort_keys=True, default=str)
            if self.lock_entries.get((path, stage)) == key:
                continue  # unchanged since the previous commit: not run again
            self.lock_entries[(path, stage)] = key
            self._stage_run(path, base, stage, entry, commit, seconds, author)

    # -- stages as runs -----------------------------------------------------------------------------------

    def _stage_run(
        self, lock: str, base: PurePosixPath, stage: str, entry: dict[str, Any], commit: str, seconds: int, author: str
    ) -> None:
        run_id = uuid.uuid5(_NS, f"{self.root} {commit} {lock} {stage}").hex
        with self.ws.db.read() as conn:
            if conn.execute(sa.select(runs_table.c.id).where(runs_table.c.id == run_id)).first():
                self.report.skipped["runs"] += 1
                return
        batch = runs.Batch(params=_params(entry.get("params") or {}))
        digest_only: list[dict[str, Any]] = []
        for role, items in (("input", entry.get("deps") or []), ("output", entry.get("outs") or [])):
            for item in items:
                target = str(base / item["path"]) if str(base) != "." else item["path"]
                try:
                    version = self._version(target, item, commit, None)
                except _Missing as exc:
                    digest_only.append({"role": role, "path": target, "md5": _md5(item), "reason": str(exc)})
                    self._digest_only(target, item, str(exc))
                    continue
                io = runs.IO(role, target, version.kind, version.digest, version.size, version.ref, "declared")
                batch.io[(role, target)] = io
        batch.tags = {
            f"{IMPORT_TAG}source": f"dvc {self.repo.name}",
            f"{IMPORT_TAG}commit": commit,
            f"{IMPORT_TAG}stage": f"{lock}:{stage}",
        }
        if digest_only:
            batch.tags[f"{IMPORT_TAG}digest_only"] = json.dumps(digest_only, sort_keys=True)
        cmd = entry.get("cmd") or ""
        command = [str(c) for c in cmd] if isinstance(cmd, list) else ["sh", "-c", str(cmd)]
        git: dict[str, Any] = {
            "commit": commit,
            "branch": None,
            "remote": None,
            "dirty": False,
            "changed": [],
            "root": None,
        }
        code = self.ws.store_json({"git": git, "entry": None, "imported": {"from": "dvc", "lock": lock}})
        at = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        start = runs.RunStart(run_id, stage, None, command, code, author, "dvc", 0, at)
        self.ws.objects.barrier()
        with self.ws.db.write() as conn:
            runs.insert_start(conn, start)
            runs.write_batch(conn, run_id, batch)
            _, event = runs.seal(conn, self.ws.objects, run_id, runs.RunEnd("finished", 0, "", at, [], ""), "dvc")
        audit.advance_witness(self.ws.witness, event)
        self.report.runs.append(run_id)
        self.report.imported["runs"] += 1

    # -- content ----------------------------------------------------------------------------------------

    def _version(self, name: str, out: dict[str, Any], commit: str, type: str | None) -> artifacts.ArtifactVersion:
        """The version of ``name`` holding ``out``'s MD5: found, or stored and recorded now."""
        md5 = _md5(out)
        if (name, md5) in self.known:
            if (name, md5) in self.earlier:
                self.earlier.discard((name, md5))
                self.report.skipped["versions"] += 1
            return self.known[(name, md5)]
        content = self._content(md5, name, commit)
        meta = {"dvc": {"md5": md5, "commit": commit, "path": name}}
        with self.ws.db.write() as conn:
            version, event = artifacts.insert_stored(
                conn,
                content,
                name=name,
                type=type,
                path=None,  # not a path of this workspace: the DVC repository's
                actor=self.ws.config.actor,
                message=f"imported from DVC at {commit[:12]}",
                meta=meta,
            )
        audit.advance_witness(self.ws.witness, event)
        self.known[(name, md5)] = version
        self.report.versions.append(version.ref)
        self.report.imported["versions"] += 1
        return version

    def _content(self, md5: str, name: str, commit: str) -> _Content:
        if md5 in self.missing:
            raise _Missing(self.missing[md5])
        if md5 not in self.contents:
            try:
                if md5.endswith(".dir"):
                    self.contents[md5] = self._directory(md5)
                else:
                    digest, size = self._file(md5, name, commit)
                    self.contents[md5] = _Content("file", digest, size, 1)
            except _Missing as exc:
                self.missing[md5] = str(exc)
                raise
        return self.contents[md5]

    def _directory(self, md5: str) -> _Content:
        listing = json.loads(self._bytes(md5))
        entries = []
        for item in listing:
            digest, size = self._file(item["md5"], None, None)
            entries.append(manifest.Entry(item["relpath"], size, _MODE, digest))
        data = manifest.encode(entries)
        self.ws.objects.barrier()
        return _Content("dir", self.ws.objects.put_bytes(data), sum(e.size for e in entries), len(entries))

    def _file(self, md5: str, name: str | None, commit: str | None) -> tuple[str, int]:
        if md5 not in self.objects:
            try:
                data = self._bytes(md5)
            except _Missing:
                if name is None or commit is None:
                    raise
                data = self._from_git(md5, name, commit)
            self.objects[md5] = (self.ws.objects.put_bytes(data), len(data))
            self.report.imported["files"] += 1
        return self.objects[md5]

    def _bytes(self, md5: str) -> bytes:
        """The bytes of a DVC object from the cache or a local remote, checked against their MD5."""
        value = md5.removesuffix(".dir")
        suffix = ".dir" if md5.endswith(".dir") else ""
        for place in self.places:
            for candidate in (
                place / "files" / "md5" / value[:2] / (value[2:] + suffix),
                place / value[:2] / (value[2:] + suffix),
            ):
                if candidate.is_file():
                    data = candidate.read_bytes()
                    actual = hashlib.md5(data, usedforsecurity=False).hexdigest()
                    if actual != value:
                        raise _Missing(f"the cached object {candidate.name} has MD5 {actual}, not {value}")
                    return data
        raise _Missing("not in the DVC cache or a local remote")

    def _from_git(self, md5: str, name: str, commit: str) -> bytes:
        """A dependency git tracks (a script): its bytes at that commit, if their MD5 matches."""
        try:
            done = subprocess.run(
                ["git", "-C", str(self.repo), "cat-file", "blob", f"{commit}:{name}"], capture_output=True, check=True
            )
        except subprocess.CalledProcessError as exc:
            raise _Missing("not in the DVC cache, a local remote or git") from exc
        if hashlib.md5(done.stdout, usedforsecurity=False).hexdigest() != md5:
            raise _Missing("not in the DVC cache or a local remote, and git holds other bytes")
        return done.stdout

    def _digest_only(self, name: str, out: dict[str, Any], reason: str) -> None:
        md5 = _md5(out)
        item = f"{name} md5:{md5}"
        if not any(u.item == item for u in self.report.unmapped):
            self.report.unmapped.append(Unmapped("object", item, f"{reason}: imported as digest-only"))


def _md5(out: dict[str, Any]) -> str:
    md5 = out.get("md5")
    if not md5:
        raise _Missing(f"no MD5 recorded (DVC keeps {', '.join(sorted(set(out) - {'path'})) or 'nothing'})")
    return str(md5)


def _params(params: dict[str, Any]) -> dict[str, Any]:
    """A stage's params (``{file: {key: value}}``): keys of params.yaml as they are, others ``file/key``."""
    flat: dict[str, Any] = {}
    for source, values in sorted(params.items()):
        for key, value in sorted((values or {}).items()):
            flat[key if source == "params.yaml" else f"{source}/{key}"] = value
    return flat


def _object_places(repo: Path) -> list[Path]:
    """The DVC cache directory and every local remote named in ``.dvc/config`` (and config.local)."""
    places = [repo / ".dvc" / "cache"]
    config = configparser.ConfigParser()
    try:
        config.read([repo / ".dvc" / "config", repo / ".dvc" / "config.local"])
    except configparser.Error as exc:
        raise PathError(f"cannot read {repo / '.dvc' / 'config'}: {exc}", hint="fix the DVC config") from exc
    for section in config.sections():
        url = config[section].get("url") if section.startswith(("'remote", "remote")) else None
        if section == "cache" and config[section].get("dir"):
            url = config[section]["dir"]
        if url and "://" not in url:
            place = Path(url) if Path(url).is_absolute() else (repo / ".dvc" / url)
            places.append(place.resolve())
    return places


def _imported_versions(conn: Any) -> dict[tuple[str, str], artifacts.ArtifactVersion]:
    """Versions an earlier DVC import recorded, by (name, MD5): what a second import must not add again."""
    found = {}
    for row in conn.execute(sa.select(artifact_versions).where(artifact_versions.c.meta.like('%"dvc":%'))):
        version = artifacts.ArtifactVersion.from_row(row)
        dvc = version.meta.get("dvc")
        if isinstance(dvc, dict) and "md5" in dvc:
            found[(version.name, dvc["md5"])] = version
    return found
