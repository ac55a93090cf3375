"""Reproducing a model version: what trained it (entry script, params, code record, dirty diff, input
dataset versions) materialised into an empty directory from the store. Nothing is run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.engine import Connection

from mlcustody.errors import PathError, UsageError
from mlcustody.ledger.bundle.export import json_bytes
from mlcustody.ledger.registry import versions as registry
from mlcustody.metadata import ref_resolution as refs
from mlcustody.metadata.runs import store as runs
from mlcustody.storage import dir_manifest as manifest
from mlcustody.storage.checkout import checkout
from mlcustody.storage.objects import ObjectStore
from mlcustody.storage.statcache import StatCache

# -- reproduce ---------------------------------------------------------------------------------------

REPRODUCE_DIR = ".custody-reproduce"


@dataclass(frozen=True)
class Reproduction:
    model: str  # NAME@V
    run: str
    to: Path
    command: list[str]  # the run's command line, to be run from ``to``
    entry: str | None  # workspace-relative path of the entry script written, if the store has it
    params: str  # params.json, relative to ``to``
    diff: str | None  # the dirty diff written, relative to ``to``
    git: dict[str, Any]  # commit, branch, remote, dirty of the run's code
    inputs: list[tuple[str, str]]  # (NAME@V, path relative to ``to``) checked out
    missing: list[str]  # inputs that could not be materialised (files that are no artifact version)


def reproduce(
    conn: Connection, objects: ObjectStore, cache: StatCache, version: registry.ModelVersion, to: Path
) -> Reproduction:
    """Materialise what trained ``version`` into the empty directory ``to``: the entry script, the
    params (``.custody-reproduce/params.json``), the code record and dirty diff, and each input dataset
    version at its workspace-relative path. Nothing is run."""
    if version.run_id is None:
        raise UsageError(
            f"{version.ref} has no training run", hint="only a model registered from a run can be reproduced"
        )
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise PathError(f"{to} is not an empty directory", hint="pass --to a new or empty directory")
    run = runs.get(conn, version.run_id)
    code = json.loads(objects.read_bytes(run.start.code))
    git, entry = code.get("git") or {}, code.get("entry") or {}
    plan: list[tuple[str, Path, str, tuple[manifest.Entry, ...]]] = []
    missing: list[str] = []
    for item in run.files("input"):
        if item.artifact is None:
            missing.append(f"{item.path} (read by the run, not an artifact version)")
            continue
        dataset = refs.resolve(conn, item.artifact)
        rel = _inside(to, dataset.path or dataset.name)
        plan.append((dataset.ref, to / rel, dataset.kind, _entries(objects, dataset)))
    meta = to / REPRODUCE_DIR
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "params.json").write_bytes(json_bytes(run.params))
    (meta / "code.json").write_bytes(json_bytes(code))
    (meta / "command.json").write_bytes(json_bytes(run.start.command))
    diff = None
    if git.get("diff") and objects.exists(git["diff"]):
        diff = f"{REPRODUCE_DIR}/dirty.diff"
        (to / diff).write_bytes(objects.read_bytes(git["diff"]))
    entry_path = None
    if entry.get("digest") and objects.exists(entry["digest"]):
        entry_path = _inside(to, entry["path"]) if not PurePosixPath(entry["path"]).is_absolute() else None
        entry_path = entry_path or PurePosixPath(entry["path"]).name
        (to / entry_path).parent.mkdir(parents=True, exist_ok=True)
        (to / entry_path).write_bytes(objects.read_bytes(entry["digest"]))
    inputs = []
    for ref, target, kind, entries in plan:
        checkout(kind, entries, target, objects=objects, cache=cache, link_mode="copy")
        inputs.append((ref, target.relative_to(to).as_posix()))
    git_info = {k: git.get(k) for k in ("commit", "branch", "remote", "dirty")}
    return Reproduction(
        version.ref,
        run.id,
        to,
        list(run.start.command),
        entry_path,
        f"{REPRODUCE_DIR}/params.json",
        diff,
        git_info,
        inputs,
        missing,
    )


def _inside(to: Path, rel: str) -> str:
    """A workspace-relative path that stays inside ``to``."""
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        raise PathError(
            f"{rel!r} is not a relative path inside the workspace", hint="this version cannot be materialised"
        )
    return PurePosixPath(*parts).as_posix()


def _entries(objects: ObjectStore, version: Any) -> tuple[manifest.Entry, ...]:
    if version.kind == "dir":
        return tuple(manifest.decode(objects.read_bytes(version.digest)))
    return (manifest.Entry(PurePosixPath(version.path or version.name).name, version.size, 0o644, version.digest),)
