"""What a check (verify, status) reports instead of raising: a list of named problems.

Every verification (store, runs, decisions, models, bundles, OMS signatures, reports) reports a
``CheckReport``: the problems it found (none: intact) and how much it looked at. A problem's kind is
one of ``ProblemKind``, so a consumer can branch on it; its JSON value is the kind's string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ProblemKind(StrEnum):
    """What kind of damage a check found; the value is what JSON documents carry."""

    ALGORITHM_MISMATCH = "algorithm_mismatch"
    ATTESTATION_CORRUPT = "attestation_corrupt"
    ATTESTATION_MISSING = "attestation_missing"
    ATTESTATION_MODIFIED = "attestation_modified"
    BYPRODUCT_MODIFIED = "byproduct_modified"
    CHAIN_BROKEN = "chain_broken"
    CHAIN_GAP = "chain_gap"
    CHAIN_TRUNCATED = "chain_truncated"
    CHECKPOINT_DELETED = "checkpoint_deleted"
    CHECKPOINT_INCONSISTENT = "checkpoint_inconsistent"
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"
    CHECKPOINT_MODIFIED = "checkpoint_modified"
    CHECKPOINT_SIGNATURE_INVALID = "checkpoint_signature_invalid"
    CHECKPOINT_UNRECORDED = "checkpoint_unrecorded"
    CODE_MODIFIED = "code_modified"
    DECISION_HEAD_CORRUPT = "decision_head_corrupt"
    DECISION_INDEX = "decision_index"
    DECISION_INSERTED = "decision_inserted"
    DECISION_LOG_TRUNCATED = "decision_log_truncated"
    DECISION_MISSING = "decision_missing"
    DECISION_MODIFIED = "decision_modified"
    DECISION_POSTINGS = "decision_postings"
    DECISION_REORDERED = "decision_reordered"
    DEPENDENCY_MODIFIED = "dependency_modified"
    EVENT_CORRUPT = "event_corrupt"
    EVENT_MODIFIED = "event_modified"
    FILE_MISSING = "file_missing"
    FILE_MODIFIED = "file_modified"
    FILE_UNSIGNED = "file_unsigned"
    FRONTIER_MISMATCH = "frontier_mismatch"
    KEY_MISMATCH = "key_mismatch"
    KEY_REVOKED = "key_revoked"
    LINEAGE_MODIFIED = "lineage_modified"
    MANIFEST_CORRUPT = "manifest_corrupt"
    MEMBER_CORRUPT = "member_corrupt"
    MEMBER_MISSING = "member_missing"
    MEMBER_MODIFIED = "member_modified"
    MEMBER_UNLISTED = "member_unlisted"
    METRIC_SUMMARY_MISMATCH = "metric_summary_mismatch"
    MODEL_MODIFIED = "model_modified"
    OBJECT_CORRUPT = "object_corrupt"
    OBJECT_MISSING = "object_missing"
    PARAMETERS_MODIFIED = "parameters_modified"
    ROW_DELETED = "row_deleted"
    ROW_MODIFIED = "row_modified"
    ROW_UNRECORDED = "row_unrecorded"
    RUN_MODIFIED = "run_modified"
    RUN_SEAL_MISMATCH = "run_seal_mismatch"
    RUN_UNSEALED = "run_unsealed"
    SHRED_UNAUDITED = "shred_unaudited"
    SHRED_UNDONE = "shred_undone"
    SIGNATURE_INVALID = "signature_invalid"
    SIGNATURE_MISSING = "signature_missing"
    STATEMENT_INVALID = "statement_invalid"
    SYMLINK_REFUSED = "symlink_refused"
    TILE_MISMATCH = "tile_mismatch"
    UNSEALED_TAIL = "unsealed_tail"


@dataclass(frozen=True, order=True)
class Problem:
    """One thing that does not match: what kind, where exactly, and how it differs."""

    kind: ProblemKind
    where: str  # e.g. objects/ab/cd…, artifact_versions[data@2], audit_events[17]
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind.value, "where": self.where, "detail": self.detail}


@dataclass(frozen=True)
class CheckReport:
    """What one verification found (``problems``; none: intact) and counted (``checked``: what → how many)."""

    problems: list[Problem] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems
