"""``verify``: recompute everything that can be recomputed and name exactly what does not match.

Three passes, each independent of the others' success:

1. the audit chain and every audited row against the events that vouch for it (``audit.verify``);
2. every sealed run's record rebuilt from its rows and compared with its seal (``runs.verify``), and
   no metric summary without logged values (``metric_check``);
3. every artifact version's object or manifest, and every object a run refers to: present,
   parseable, and every file a manifest names present with the recorded size;
4. every object in the store re-hashed (large ones memory-mapped on all cores, small ones on a
   thread pool) and compared with its name.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sqlalchemy as sa

from mlcustody._progress import NoProgress, Progress
from mlcustody.checks import CheckReport, Problem, ProblemKind
from mlcustody.metadata import artifacts, audit, metric_check
from mlcustody.metadata import referenced_objects as references
from mlcustody.metadata.engine import Database
from mlcustody.metadata.runs import store as runs
from mlcustody.metadata.schema import audit_events
from mlcustody.storage import dir_manifest as manifest
from mlcustody.storage.hashing import MMAP_THRESHOLD
from mlcustody.storage.objects import ObjectStore

_WORKERS = min(8, 2 * (os.cpu_count() or 1))


def verify_store(
    db: Database, objects: ObjectStore, witness: Path | None, progress: Progress | None = None
) -> CheckReport:
    """All problems found, and counts of what was checked."""
    progress = progress or NoProgress()
    with db.read() as conn:
        problems = audit.verify(conn, witness)
        run_report = runs.verify(conn, objects)
        run_problems = run_report.problems + metric_check.check(conn)
        run_objects = references.stored_digests(conn, with_artifacts=False)
        versions = artifacts.listing(conn, all_versions=True)
        events = conn.execute(sa.select(sa.func.count()).select_from(audit_events)).scalar_one()
    problems += run_problems
    present = {digest: _size(objects, digest) for digest in objects.iter_digests()}
    problems += _check_versions(versions, objects, present)
    problems += [
        Problem(ProblemKind.OBJECT_MISSING, role, f"{digest} is not in the store")
        for digest, role in run_objects
        if digest not in present
    ]
    problems += _rehash(objects, present, progress)
    counts = {
        "events": events,
        "artifact_versions": len(versions),
        "sealed_runs": run_report.checked["sealed_runs"],
        "objects": len(present),
        "bytes": sum(present.values()),
    }
    return CheckReport(sorted(set(problems)), counts)


def _size(objects: ObjectStore, digest: str) -> int:
    try:
        return os.stat(objects.path(digest)).st_size
    except OSError:
        return 0


def _check_versions(
    versions: list[artifacts.ArtifactVersion], objects: ObjectStore, present: dict[str, int]
) -> list[Problem]:
    problems: list[Problem] = []
    checked_manifests: set[str] = set()
    for version in versions:
        where = f"artifact_versions[{version.ref}]"
        missing = [(d, role) for d, role in version.objects() if d not in present]
        for digest, role in missing:
            problems.append(Problem(ProblemKind.OBJECT_MISSING, where, f"{role} {digest} is not in the store"))
        if version.kind != "dir" or version.digest in checked_manifests or version.digest not in present:
            continue
        checked_manifests.add(version.digest)
        try:
            entries = manifest.decode(objects.read_bytes(version.digest))
        except (ValueError, UnicodeDecodeError) as exc:
            problems.append(Problem(ProblemKind.MANIFEST_CORRUPT, where, str(exc)))
            continue
        for entry in entries:
            size = present.get(entry.digest)
            if size is None:
                problems.append(
                    Problem(ProblemKind.OBJECT_MISSING, f"{where}/{entry.path}", f"object {entry.digest} is missing")
                )
            elif size != entry.size:
                detail = f"object {entry.digest} has {size} bytes, manifest says {entry.size}"
                problems.append(Problem(ProblemKind.OBJECT_CORRUPT, f"{where}/{entry.path}", detail))
    return problems


def _rehash(objects: ObjectStore, present: dict[str, int], progress: Progress) -> list[Problem]:
    progress.start("verifying objects", sum(present.values()))
    small = [d for d, size in present.items() if size < MMAP_THRESHOLD]
    large = [d for d, size in present.items() if size >= MMAP_THRESHOLD]

    def check(digest: str) -> Problem | None:
        issue = objects.check(digest)
        progress.advance(present[digest])
        if issue is None:
            return None
        return Problem(ProblemKind.OBJECT_CORRUPT, f"objects/{digest[:2]}/{digest[2:]}", issue)

    with ThreadPoolExecutor(_WORKERS) as pool:
        found = list(pool.map(check, small, chunksize=64))
    found += [check(digest) for digest in large]
    progress.finish()
    return [problem for problem in found if problem is not None]
