"""``investigate labels``: confident-learning label issues of a dataset version, per raw source, each
flagged record with its raw line (the numbers are ``labels``', the tracing ``evidence``')."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection

from mlcustody.forensics import evidence, inputs, sources
from mlcustody.forensics.inputs import Cited, Store
from mlcustody.storage.records.table import ID_COLUMN


@dataclass(frozen=True)
class LabelInvestigation:
    read: list[Cited]
    dataset: str
    label_issues: evidence.LabelReport


def investigate(
    conn: Connection, store: Store, dataset_ref: str, *, label: str, exclude: tuple[str, ...] = (), seed: int = 0
) -> LabelInvestigation:
    """Label issues of ``label`` in ``dataset_ref`` from a model that sees neither keys nor ``exclude``."""
    data = inputs.dataset(conn, store, dataset_ref)
    inputs.column(data, label, "label")
    ids = [str(v) for v in data.table.column(ID_COLUMN).to_pylist()]
    found = evidence.Training(data, label, sources.Origins(conn, store.objects, data.ref), ids)
    report = evidence.label_report(evidence.with_flags(found, list(exclude), seed=seed))
    return LabelInvestigation([Cited.of(data.version)], data.ref, report)
