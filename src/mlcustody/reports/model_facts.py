"""What the store knows about a model version, gathered once for the Annex IV draft and the inventory:
its training run and environment, its training data, its usage in the decision log, the
investigations stored about it, and whether its attestation still verifies — each as a cited fact.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody.checks import Problem
from mlcustody.ledger import keys
from mlcustody.ledger.decisions import store as decision_store
from mlcustody.ledger.registry import check as model_check
from mlcustody.ledger.registry import versions as registry
from mlcustody.lineage import graph
from mlcustody.metadata import ref_resolution as refs
from mlcustody.metadata.runs import store as runs
from mlcustody.metadata.schema import run_io
from mlcustody.reports.citations import Citations
from mlcustody.storage.objects import ObjectStore

KEY_PACKAGES = ("scikit-learn", "numpy", "scipy", "pandas", "polars", "lightgbm", "xgboost", "torch", "mlcustody")


@dataclass(frozen=True)
class Training:
    """A version's training run, what it read, its environment and its metrics, with their citations."""

    run: runs.Run | None
    cite: list[str]  # the run's seal
    datasets: list[dict[str, Any]]  # {ref, digest, records, columns, cites}
    environment: dict[str, Any] | None


def usage(conn: Connection) -> Counter[str]:
    """Decisions logged per model version (``NAME@V``), over the whole log, reading two columns."""
    counts: Counter[str] = Counter()
    for _, _, table in decision_store.segments(conn, ["model", "version"]):
        if table is not None:
            counts.update(f"{m}@{v}" for m, v in zip(*table.to_pydict().values(), strict=True))
    return counts


def verified(conn: Connection, objects: ObjectStore, version: registry.ModelVersion) -> list[Problem]:
    return model_check.check(conn, objects, version, keys.check)


def training(conn: Connection, objects: ObjectStore, version: registry.ModelVersion, cites: Citations) -> Training:
    if version.run_id is None:
        return Training(None, [], [], None)
    run = runs.get(conn, version.run_id)
    cite = [cites.run(run.id, run.end.seal)] if run.end is not None and run.end.seal else []
    datasets = []
    for item in run.files("input"):
        if item.artifact is None:
            continue
        found = refs.resolve(conn, item.artifact)
        cited = [cites.artifact(found.ref, found.digest)]
        summary = found.records or {}
        if summary:
            cited.append(cites.records(found.ref, summary["manifest"]))
        columns = [f"{c['name']} ({c['type']})" for c in summary.get("columns") or []]
        datasets.append(
            {
                "ref": found.ref,
                "digest": found.digest,
                "records": summary.get("count"),
                "columns": columns,
                "cites": cited,
            }
        )
    environment = None
    if run.end is not None and run.end.environment and objects.exists(run.end.environment):
        environment = json.loads(objects.read_bytes(run.end.environment))
    return Training(run, cite, datasets, environment)


def sources(conn: Connection, version: registry.ModelVersion, cites: Citations) -> list[dict[str, Any]]:
    """The raw sources upstream of the model: the versions nothing recorded made."""
    found = []
    for node in graph.walk(conn, version.artifact, direction="up").sources():
        if node.kind == "artifact":
            source = refs.resolve(conn, node.id)
            found.append(
                {
                    "ref": source.ref,
                    "path": source.path,
                    "digest": source.digest,
                    "cites": [cites.artifact(source.ref, source.digest)],
                }
            )
    return found


def software(environment: dict[str, Any] | None) -> dict[str, Any] | None:
    """Interpreter, OS, hardware and the versions of the packages that matter to a model."""
    if environment is None:
        return None
    python = environment.get("python") or {}
    packages = python.get("packages") or {}
    return {
        "python": python.get("version"),
        "packages": {name: packages[name] for name in KEY_PACKAGES if name in packages},
        "installed": len(packages),
        "os": environment.get("os"),
        "hardware": environment.get("hardware"),
    }


def investigations(conn: Connection, version: registry.ModelVersion, cites: Citations) -> list[dict[str, Any]]:
    """The investigation reports stored about the model: runs named ``investigate …`` that read it."""
    readers = sa.select(run_io.c.run_id).where(run_io.c.role == "input", run_io.c.artifact == version.artifact)
    query = sa.select(run_io.c.artifact).where(
        run_io.c.role == "output", run_io.c.run_id.in_(readers), run_io.c.artifact.is_not(None)
    )
    found = []
    for ref in sorted(set(conn.execute(query).scalars())):
        report = refs.resolve(conn, ref)
        if report.type == "report" and report.name.startswith("investigation-"):
            found.append(
                {"report": report.ref, "digest": report.digest, "cites": [cites.artifact(report.ref, report.digest)]}
            )
    return found


def cited(rows: list[dict[str, Any]]) -> list[str]:
    """Every citation the rows of a table field carry, once each."""
    return sorted({c for row in rows for c in row.get("cites", [])}, key=lambda c: int(c[1:]))
