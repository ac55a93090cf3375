"""The decision log: log and import decisions, list and show them, erase a subject, seal, verify, trace one.

Each function is the whole of one use case over the workspace handle; ``Workspace`` delegates to it in
one line. The domain modules are imported inside the functions that use them: the ledger (cryptography)
and forensics (numpy, scikit-learn) load only for the commands that need them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcustody.errors import UsageError
from mlcustody.metadata import audit
from mlcustody.workspace import keys as key_cases
from mlcustody.workspace import models as model_cases
from mlcustody.workspace.results import (
    DecisionColumns,
    DecisionTrace,
    ImportReport,
    VerifyReport,
)

if TYPE_CHECKING:
    from mlcustody.forensics import decision_records
    from mlcustody.ledger import kek
    from mlcustody.ledger.decisions import log as decisions
    from mlcustody.ledger.decisions import queries as decision_queries
    from mlcustody.workspace.facade import Workspace


def decision_log(ws: Workspace, ref: str, **options: Any) -> decisions.DecisionLog:
    """A log of the decisions a registered model (``NAME@V``, ``NAME:ALIAS``, ``NAME``) makes; close it
    (or use it as a context manager) to write a signed checkpoint. See ``ledger.decisions.log``."""
    from mlcustody.ledger.decisions import log as decisions

    return decisions.DecisionLog(key_cases.keyring(ws), ref, **options)


def import_decisions(
    ws: Workspace,
    path: Path | str,
    ref: str,
    *,
    columns: DecisionColumns | None = None,
    resume: bool = False,
    purpose: str | None = None,
) -> ImportReport:
    """Import a prediction log (JSON Lines, CSV, Parquet) into the decision log, sealed by a checkpoint.
    With an alias (``NAME:ALIAS``) each decision gets the version the alias pointed at at its time.
    With ``resume``, decisions already logged with the same content are skipped (an interrupted
    import run again), one logged with other content refuses the import. A declared ``purpose`` the
    model's data does not cover (its consent, its sources' purposes) refuses the import."""
    from mlcustody.ledger.decisions import files as decision_files
    from mlcustody.ledger.decisions import log as decisions
    from mlcustody.ledger.decisions import queries as decision_queries
    from mlcustody.workspace import policy_cases

    policy_cases.check_purpose(ws, ref, purpose)  # a declared purpose the model's data must cover
    cols = columns or DecisionColumns()
    found = decision_files.read(Path(path))
    checked = decisions.check_rows(
        found.table, id_col=cols.id, output_col=cols.output, time_col=cols.time, where=found.where
    )
    with ws.db.read() as conn:
        start = decision_queries.size(conn)
    with decisions.DecisionLog(key_cases.keyring(ws), ref, checkpoint_seconds=float("inf")) as log:
        count = log.record_batch(
            found.table,
            id_col=cols.id,
            output_col=cols.output,
            time_col=cols.time,
            subject_col=cols.subject,
            where=found.where,
            resume=resume,
            checked=checked,
        )
    with ws.db.read() as conn:
        versions = decision_queries.versions_from(conn, start)
    return ImportReport(str(found.path), count, start, versions, found.table.num_rows - count)


def list_decisions(
    ws: Workspace, *, model: str | None = None, subject: str | None = None, since: str | None = None, limit: int = 1000
) -> list[decision_queries.Decision]:
    """Logged decisions in log order, by model (``NAME``, ``NAME@V``, ``NAME:ALIAS``), subject id, time."""
    from mlcustody.ledger.decisions import queries as decision_queries

    with ws.db.read() as conn:
        keys = decision_keys(ws, conn) if subject is not None else None
        return decision_queries.listing(conn, model=model, subject=subject, since=since, limit=limit, keys=keys)


def decision_receipt(ws: Workspace, decision_id: str) -> decision_queries.Receipt:
    """A c2sp.org/tlog-proof that the decision is in the signed log, to check offline."""
    from mlcustody.ledger.decisions import queries as decision_queries

    with ws.db.read() as conn:
        return decision_queries.receipt(conn, decision_id)


def decision_inputs(ws: Workspace, decision_id: str) -> dict[str, Any] | None:
    """The inputs of a decision, decrypted; None when not kept or crypto-shredded."""
    from mlcustody.ledger.decisions import queries as decision_queries

    with ws.db.read() as conn:
        return decision_queries.read_inputs(conn, decision_queries.get(conn, decision_id), decision_keys(ws, conn))


def forget_subject(ws: Workspace, subject: str) -> int:
    """Crypto-shred a data subject's decision inputs (their data key is deleted, audited); the log
    still verifies. Returns the number of payloads made unreadable."""
    from mlcustody.ledger.decisions import subjects as decision_subjects

    with ws.db.write() as conn:
        count, event = decision_subjects.forget(conn, subject, ws.config.actor, decision_keys(ws, conn))
    if event is not None:
        audit.advance_witness(ws.witness, event)
    return count


def seal_decisions(ws: Workspace) -> int | None:
    """Sign a checkpoint over decisions a killed writer left unsealed; the size sealed, else None."""
    from mlcustody.ledger.decisions import log as decisions

    return decisions.seal(key_cases.keyring(ws))


def verify_decisions(ws: Workspace) -> VerifyReport:
    """Recompute every decision entry, the Merkle tree and every signed checkpoint."""
    from mlcustody.ledger.decisions import check as decision_check

    with ws.db.read() as conn:
        return decision_check.verify(conn, ws.config.store_dir / "decision-head")


def trace_decision(ws: Workspace, decision_id: str, records: int = 0, label: str | None = None) -> DecisionTrace:
    """Decision → model version (and the aliases serving it) → attestation checked → training run →
    code, config, environment → datasets with their record-manifest digests; with ``records`` also
    the ``records`` training records that most influenced it, traced to their raw source lines
    (``label`` names the training set's label column when it cannot be told)."""
    from mlcustody.ledger.decisions import queries as decision_queries

    if label is not None and not records:
        raise UsageError("a label column was given without records to attribute", hint="add --records N")
    with ws.db.read() as conn:
        decision = decision_queries.get(conn, decision_id)
        aliases = decision_queries.aliases_at(conn, decision)
    _, problems = model_cases.verify_model(ws, decision.ref)
    found = _decision_records(ws, decision, records, label) if records else None
    return DecisionTrace(decision, aliases, problems, model_cases.model(ws, decision.ref), found)


def _decision_records(
    ws: Workspace, decision: decision_queries.Decision, top: int, label: str | None
) -> decision_records.DecisionRecords:
    from mlcustody.forensics import decision_records

    with ws.db.read() as conn:
        keys = decision_keys(ws, conn)
        return decision_records.influential(conn, ws, decision, top=top, label=label, keys=keys)


def decision_keys(ws: Workspace, conn: Any) -> kek.Keyset | None:
    """The key-encryption keys that unwrap the decision log's keys (``ledger.kek``)."""
    from mlcustody.ledger.decisions import subjects as decision_subjects

    return decision_subjects.keyset(conn, ws.config.kek_file)
