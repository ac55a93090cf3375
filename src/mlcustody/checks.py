"""What a check (verify, status) reports instead of raising: a list of named problems."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing that does not match: what kind, where exactly, and how it differs."""

    kind: str  # e.g. object_corrupt, row_modified, chain_broken
    where: str  # e.g. objects/ab/cd…, artifact_versions[data@2], audit_events[17]
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "where": self.where, "detail": self.detail}
