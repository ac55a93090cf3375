"""What the workspace's use cases return: plain frozen values that the CLI renders and ``shapes`` serialises.

Importing this module costs nothing (every domain type is named for the type checker only; ``checks``
is stdlib-only), so the CLI and ``shapes`` can name these types before they know whether they need the
database layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlcustody.checks import CheckReport

if TYPE_CHECKING:
    from mlcustody.checks import Problem
    from mlcustody.forensics import decision_records
    from mlcustody.ledger.decisions import queries as decision_queries
    from mlcustody.ledger.registry import versions as registry
    from mlcustody.metadata.artifacts import ArtifactVersion
    from mlcustody.metadata.runs import store as runs
    from mlcustody.storage.diff import TreeDiff
    from mlcustody.storage.records import diff as record_diff
    from mlcustody.storage.records import lookup

CAPTURE_TAG = "custody.capture"  # the run tag that `custody run` writes its capture report to


@dataclass(frozen=True)
class AddResult:
    version: ArtifactVersion
    created: bool  # False when the content equals the latest version, which is returned instead


@dataclass(frozen=True)
class RecordSpec:
    """Ask ``add`` for a record manifest: optional key columns and format (default: by suffix)."""

    key: tuple[str, ...] | None = None
    format: str | None = None


@dataclass(frozen=True)
class FoundRecord:
    hit: lookup.Hit
    record: lookup.Record


@dataclass(frozen=True)
class RecordDiffReport:
    diff: record_diff.RecordDiff
    schema: dict[str, Any]
    stats: dict[str, dict[str, Any]]
    limit: int | None = None  # the most records listed of each kind (None: all)


@dataclass(frozen=True)
class ArtifactStatus:
    version: ArtifactVersion  # what the path is compared with: the checked-out version, else the latest
    state: str  # unchanged | modified | missing
    changes: TreeDiff | None
    latest: ArtifactVersion | None = None  # the latest version, when an older one is checked out


@dataclass(frozen=True)
class RunDetails:
    run: runs.Run
    code: dict[str, Any]
    environment: dict[str, Any] | None  # None while running, or for a run found killed
    metric_history: list[runs.Metric]
    children: list[str]


@dataclass(frozen=True)
class ModelDetails:
    version: registry.ModelVersion
    aliases: dict[str, list[registry.AliasMove]]
    envelope: bytes
    statement: dict[str, Any]
    run: RunDetails | None


VerifyReport = CheckReport  # the one report every check gives (mlcustody.checks)


@dataclass(frozen=True)
class DecisionColumns:
    """Columns of a prediction log to import; every other column is an input of the decision."""

    id: str = "decision_id"
    time: str | None = "time"
    subject: str | None = "subject"
    output: str = "output"


@dataclass(frozen=True)
class ImportReport:
    path: str
    count: int
    first_position: int
    versions: list[str]  # model versions the imported decisions were attributed to
    skipped: int = 0  # with resume: decisions already in the log with the same content


@dataclass(frozen=True)
class DecisionTrace:
    decision: decision_queries.Decision
    aliases: list[str]  # aliases of the model that pointed at its version when the decision was made
    problems: list[Problem]  # what verifying the model version's attestation found (none: intact)
    model: ModelDetails
    records: decision_records.DecisionRecords | None = None  # the most influential training records, if asked
