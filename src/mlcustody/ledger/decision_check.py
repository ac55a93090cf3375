"""``verify --decisions``: recompute every entry, the Merkle tree and every signed checkpoint of the log.

Each row is re-encoded into its entry and hashed (an altered field or payload shows at its position,
a deleted row as a gap), the tree is rebuilt from those recomputed leaves, and each checkpoint's
signature (by a key valid at the time and not revoked), root and consistency with the checkpoint
before it are checked; decisions after the last checkpoint are an ``unsealed_tail``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody.checks import Problem
from mlcustody.errors import UsageError
from mlcustody.ledger import keys, tlog
from mlcustody.ledger.decisions import ORIGIN_ROW, VerifyResult, public_raw, row_entry
from mlcustody.metadata.schema import checkpoints, decisions, store_info

_MAX_REPORTED = 20  # problems named one by one; a mass change is clear from the first ones


def verify(conn: Connection) -> VerifyResult:
    """Recompute every entry from its row, the tree, every checkpoint's root and signature, and the
    consistency of consecutive checkpoints; a tail no checkpoint covers is reported too."""
    problems: list[Problem] = []
    tree = tlog.Tree()
    expected = 0  # the position the next row should have; a gap is reported once, then skipped over
    query = sa.select(decisions).order_by(decisions.c.position)
    for row in conn.execute(query).yield_per(10_000):
        if len(problems) < _MAX_REPORTED:
            problems += _check_row(row, expected)
        expected = max(expected, row.position) + 1
        try:
            leaf = tlog.leaf_hash(row_entry(row))
        except (UsageError, ValueError):
            leaf = bytes(32)
        tree.append(leaf)
    problems += _check_checkpoints(conn, tree)
    count = conn.execute(sa.select(sa.func.count()).select_from(checkpoints)).scalar_one()
    return VerifyResult(problems, {"decisions": len(tree), "checkpoints": int(count)})


def _check_row(row: Any, expected: int) -> list[Problem]:
    """What is wrong with the row at log index ``expected``: its position, its entry hash, its payload."""
    where = f"decisions[{expected}]"
    if row.position > expected:
        gap = f"position {expected}" if row.position == expected + 1 else f"positions {expected}…{row.position - 1}"
        return [Problem("decision_missing", where, f"{gap} missing (deleted)")]
    try:
        leaf = tlog.leaf_hash(row_entry(row)).hex()
    except (UsageError, ValueError) as exc:
        return [Problem("decision_modified", where, f"decision {row.decision_id}: the row cannot be encoded ({exc})")]
    if leaf != row.entry_hash:
        return [
            Problem("decision_modified", where, f"decision {row.decision_id}: the row no longer hashes to its entry")
        ]
    stored = None if row.payload is None else hashlib.sha256(bytes(row.payload)).hexdigest()
    if stored != row.payload_digest:
        return [Problem("decision_modified", where, f"decision {row.decision_id}: the encrypted inputs were altered")]
    return []


def _check_checkpoints(conn: Connection, tree: tlog.Tree) -> list[Problem]:
    problems: list[Problem] = []
    rows = list(conn.execute(sa.select(checkpoints).order_by(checkpoints.c.size)))
    log_origin = conn.execute(sa.select(store_info.c.value).where(store_info.c.key == ORIGIN_ROW)).scalar()
    previous: Any = None
    for row in rows:
        where = f"checkpoints[{row.size}]"
        problems += _check_note(conn, row, str(log_origin), where)
        if row.size > len(tree):
            problems.append(
                Problem("checkpoint_mismatch", where, f"seals {row.size} decisions, the log holds {len(tree)}")
            )
            continue
        if tree.root(row.size).hex() != row.root:
            low = previous.size if previous is not None else 0
            detail = f"the decisions at positions {low}…{row.size - 1} no longer hash to the signed root"
            problems.append(Problem("checkpoint_mismatch", where, detail))
        if previous is not None and previous.size <= len(tree):
            proof = tree.consistency_proof(previous.size, row.size)
            if not tlog.verify_consistency(
                previous.size, row.size, bytes.fromhex(previous.root), bytes.fromhex(row.root), proof
            ):
                detail = f"not consistent with the checkpoint at size {previous.size}"
                problems.append(Problem("checkpoint_inconsistent", where, detail))
        previous = row
    sealed = rows[-1].size if rows else 0
    if len(tree) > sealed:
        detail = f"{len(tree) - sealed} decision(s) after the last checkpoint are not sealed by any signature"
        problems.append(Problem("unsealed_tail", f"decisions[{sealed}:{len(tree)}]", detail))
    return problems


def _check_note(conn: Connection, row: Any, log_origin: str, where: str) -> list[Problem]:
    try:
        text = tlog.verify_note(row.note, log_origin, public_raw(keys.get(conn, row.keyid).public_pem))
        body = tlog.parse_checkpoint(text)
    except UsageError as exc:
        return [Problem("checkpoint_signature_invalid", where, exc.message)]
    if body.origin != log_origin or body.size != row.size or body.root.hex() != row.root:
        return [Problem("checkpoint_modified", where, "the signed note does not say the size and root of the row")]
    signature = next(blob[4:] for name, blob in tlog.split_note(row.note)[1] if name == log_origin)
    why = keys.check(conn, row.keyid, text.encode("utf-8"), signature, row.at)
    return [Problem("checkpoint_signature_invalid", where, why)] if why else []
