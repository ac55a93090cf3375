"""The decision log's part of plain ``custody verify``: its anchors, checkpoints and key rows.

Re-hashing every decision (``decision_check.verify``, ``custody verify --decisions``) reads the whole
log; this reads only checkpoint rows, one stored right edge per checkpoint, the audit events about
the log and the key rows, so one ``custody verify`` answers "is anything tampered?" quickly.
"""

from __future__ import annotations

from pathlib import Path

from mlcustody.checks import CheckReport
from mlcustody.ledger.decisions import anchor as decision_anchor
from mlcustody.metadata import decision_audit
from mlcustody.metadata.engine import Database


def quick(db: Database, store_dir: Path) -> CheckReport:
    """Problems and counts (decisions, checkpoints) of the quick check of the decision log."""
    with db.read() as conn:
        found = decision_anchor.check(conn, decision_anchor.head_path(store_dir), quick=True)
        return CheckReport(found.problems + decision_audit.check(conn), found.checked)
