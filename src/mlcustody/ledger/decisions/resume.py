"""Resuming an interrupted ingest: decisions already logged are skipped when identical, refused when not.

An import killed half-way has committed some of its batches; run again, its first batch would fail
on the first id already logged. With ``resume``, each batch first looks its ids up in the log: a
decision logged with the same time, model, version, input digest, output and subject pseudonym is
the same decision and is left out; one logged with other content is a different decision under a
reused id, and the batch is refused (nothing written), naming it and what differs.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody.errors import UsageError
from mlcustody.ledger.decisions import store as decision_store
from mlcustody.ledger.decisions.batch import Batch
from mlcustody.metadata.schema import decisions

_IN_CHUNK = 500
_COMPARED = ("time", "model", "version", "input_digest", "output", "subject")


def positions(conn: Connection, ids: Sequence[str]) -> dict[str, int]:
    """The log positions of those of ``ids`` already in the log."""
    found: dict[str, int] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        query = sa.select(decisions.c.decision_id, decisions.c.position).where(decisions.c.decision_id.in_(chunk))
        found |= {decision_id: int(position) for decision_id, position in conn.execute(query)}
    return found


def already_logged(conn: Connection, batch: Batch, model: str) -> set[str]:
    """The ids of ``batch`` logged already with identical content; a usage error for one logged
    with other content."""
    logged = positions(conn, batch.ids)
    if not logged:
        return set()
    table = decision_store.rows(conn, sorted(logged.values()), ["decision_id", *_COMPARED])
    stored = {row["decision_id"]: row for row in table.to_pylist()}
    index = {decision_id: i for i, decision_id in enumerate(batch.ids)}
    for decision_id in sorted(logged, key=lambda d: logged[d]):
        i = index[decision_id]
        mine = {
            "time": batch.times[i],
            "model": model,
            "version": batch.versions[i],
            "input_digest": batch.input_digests[i],
            "output": batch.outputs[i],
            "subject": batch.subjects[i],
        }
        row = stored.get(decision_id, {})
        differ = [name for name in _COMPARED if row.get(name) != mine[name]]
        if differ:
            raise UsageError(
                f"decision {decision_id} is already in the log with another {', '.join(differ)}",
                hint="a resumed import must re-read the same log; give new decisions new ids",
            )
    return set(logged)
