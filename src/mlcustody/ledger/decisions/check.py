"""``verify --decisions``: recompute every entry, the Merkle tree and every signed checkpoint of the log.

Each segment is read back and every row re-encoded into its entry and hashed: a row altered in a
segment shows at its position, a row deleted from, inserted into or moved within a segment as the
first position whose row is not where it should be, a lost segment as a gap; the index is checked
against the segments row by row. The tree is rebuilt from the recomputed leaves (a leaf of zeros
stands for a missing row, so later positions keep their index), its stored tiles and frontier are
compared with it, and each checkpoint's signature (by a key valid at the time and not revoked), root
and consistency with the checkpoint before it are checked; decisions after the last checkpoint are
an ``unsealed_tail``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody.checks import CheckReport, Problem, ProblemKind
from mlcustody.errors import UsageError
from mlcustody.ledger import tlog
from mlcustody.ledger.decisions import anchor as decision_anchor
from mlcustody.ledger.decisions import store as decision_store
from mlcustody.metadata import decision_audit
from mlcustody.metadata.schema import (
    checkpoints,
    decision_postings,
    decision_postings_new,
    decision_subjects,
    decision_tiles,
    decisions,
)

_MAX_REPORTED = 20  # problems named one by one; a mass change is clear from the first ones
_NO_LEAF = bytes(32)
_INDEXED = ("decision_id", "subject")


def verify(conn: Connection, head: Path | None = None) -> CheckReport:
    """Recompute every entry from its segment row, the tree, every checkpoint's root and signature, and
    the consistency of consecutive checkpoints; a tail no checkpoint covers is reported too, and so is
    a log shorter than its anchors (``decision_anchor``) or a key row the audit chain does not vouch
    for (``metadata.decision_audit``)."""
    problems = decision_anchor.check(conn, head, quick=False).problems + decision_audit.check(conn)
    tree = tlog.Tree()
    subjects = {
        row.id: row.subject for row in conn.execute(sa.select(decision_subjects.c.id, decision_subjects.c.subject))
    }
    for first, count, table in decision_store.segments(conn):
        if first > len(tree):
            problems.append(_missing(len(tree), first, "its segment is gone"))
            tree.extend([_NO_LEAF] * (first - len(tree)))
        elif first < len(tree):
            problems.append(
                Problem(ProblemKind.DECISION_MODIFIED, f"decisions[{first}]", "two segments hold this position")
            )
            continue
        try:
            found, leaves = _check_segment(conn, first, count, table, subjects)
        except (KeyError, TypeError, pa.ArrowException, UsageError, ValueError) as exc:
            found, leaves = [_unreadable(first, count, exc)], [_NO_LEAF] * count
        problems += found[: max(0, _MAX_REPORTED - len(problems))]
        tree.extend(leaves)
    extra = conn.execute(sa.select(sa.func.count()).where(decisions.c.position >= len(tree))).scalar_one()
    if extra:
        detail = f"{extra} index row(s) name decisions no segment holds"
        problems.append(Problem(ProblemKind.DECISION_INDEX, f"decisions[{len(tree)}:]", detail))
    problems += _check_postings(conn)
    if not problems:  # with a row wrong, stored tiles and the right edge differ from the rebuilt tree too
        problems += _check_tree(conn, tree)
    problems += _check_checkpoints(conn, tree)
    count = conn.execute(sa.select(sa.func.count()).select_from(checkpoints)).scalar_one()
    return CheckReport(problems, {"decisions": len(tree), "checkpoints": int(count)})


def _check_segment(
    conn: Connection, first: int, count: int, table: pa.Table | None, subjects: dict[int, str]
) -> tuple[list[Problem], list[bytes]]:
    """What is wrong with the segment holding positions ``first`` … ``first + count - 1``, and the
    recomputed leaf of each of those positions."""
    if table is None:
        raise UsageError("it is not a Parquet file any more")
    positions = table.column("position").to_pylist()
    problems = _check_positions(first, count, positions)
    outputs = table.column("output").to_pylist()
    recomputed = decision_store.leaf_hashes(
        decision_store.entries(table, [hashlib.sha256(out.encode("utf-8")).hexdigest() for out in outputs])
    )
    stored = table.column("entry_hash").to_pylist()
    payloads = table.column("payload").to_pylist()
    digests = table.column("payload_digest").to_pylist()
    ids = table.column("decision_id").to_pylist()
    for i, position in enumerate(positions):
        where = f"decisions[{position}]"
        if recomputed[i] != stored[i]:
            detail = f"decision {ids[i]}: the row no longer hashes to its entry"
            problems.append(Problem(ProblemKind.DECISION_MODIFIED, where, detail))
        elif (None if payloads[i] is None else hashlib.sha256(payloads[i]).hexdigest()) != digests[i]:
            detail = f"decision {ids[i]}: the encrypted inputs were altered"
            problems.append(Problem(ProblemKind.DECISION_MODIFIED, where, detail))
    problems += _check_index(conn, first, count, table, subjects)
    by_position = dict(zip(positions, recomputed, strict=True))
    return problems, [by_position.get(p, _NO_LEAF) for p in range(first, first + count)]


def _check_positions(first: int, count: int, positions: list[int]) -> list[Problem]:
    """The first position whose row is missing, extra or out of place in a segment."""
    expected = list(range(first, first + count))
    if positions == expected:
        return []
    k = next((i for i, (p, e) in enumerate(zip(positions, expected, strict=False)) if p != e), len(positions))
    position = first + k
    if len(positions) < count and (k == len(positions) or positions[k] > position):
        return [_missing(position, position + count - len(positions), "deleted from its segment")]
    if len(positions) > count:
        return [Problem(ProblemKind.DECISION_INSERTED, f"decisions[{position}]", "a row was inserted into its segment")]
    return [Problem(ProblemKind.DECISION_REORDERED, f"decisions[{position}]", "the rows of its segment were reordered")]


def _check_index(conn: Connection, first: int, count: int, table: pa.Table, subjects: dict[int, str]) -> list[Problem]:
    """Index rows that do not say what the segment holds (a lookup by id, subject or model would mislead)."""
    query = sa.select(decisions.c.position, *(decisions.c[name] for name in _INDEXED)).where(
        decisions.c.position >= first, decisions.c.position < first + count
    )
    index = {row[0]: (row[1], subjects.get(row[2]) if row[2] is not None else None) for row in conn.execute(query)}
    columns = [table.column(name).to_pylist() for name in ("position", *_INDEXED)]
    problems = []
    for position, *stored in zip(*columns, strict=True):
        held = index.get(position)
        if held is None:
            problems.append(
                Problem(ProblemKind.DECISION_INDEX, f"decisions[{position}]", "the index has no row for it")
            )
        elif tuple(held) != tuple(stored):
            names = [n for n, a, b in zip(_INDEXED, held, stored, strict=True) if a != b]
            detail = f"the index differs from the segment in {', '.join(names)}"
            problems.append(Problem(ProblemKind.DECISION_INDEX, f"decisions[{position}]", detail))
    return problems


def _check_postings(conn: Connection) -> list[Problem]:
    """Each decision with a subject has one posting, and each posting names such a decision (else a
    subject's decisions would be listed incompletely)."""
    count = sa.func.count()
    with_subject = conn.execute(sa.select(count).where(decisions.c.subject.is_not(None))).scalar_one()
    held = matched = 0
    for table in (decision_postings, decision_postings_new):
        held += conn.execute(sa.select(count).select_from(table)).scalar_one()
        same = sa.and_(decisions.c.position == table.c.position, decisions.c.subject == table.c.subject)
        matched += conn.execute(sa.select(count).select_from(table.join(decisions, same))).scalar_one()
    if held == matched == with_subject:
        return []
    detail = f"{with_subject} decisions have a subject; {held} postings, {matched} of them naming one"
    return [Problem(ProblemKind.DECISION_POSTINGS, "decision_postings", detail)]


def _missing(low: int, high: int, how: str) -> Problem:
    gap = f"position {low}" if high == low + 1 else f"positions {low}…{high - 1}"
    return Problem(ProblemKind.DECISION_MISSING, f"decisions[{low}]", f"{gap} missing ({how})")


def _unreadable(first: int, count: int, exc: Exception) -> Problem:
    detail = f"the segment of positions {first}…{first + count - 1} cannot be read ({exc})"
    return Problem(ProblemKind.DECISION_MODIFIED, f"decisions[{first}]", detail)


def _check_tree(conn: Connection, tree: tlog.Tree) -> list[Problem]:
    """Stored tiles and the last frontier against the rebuilt tree (receipts and appends use them)."""
    problems = []
    for tile, root in conn.execute(sa.select(decision_tiles).order_by(decision_tiles.c.tile)):
        low, high = tile * decision_store.TILE, (tile + 1) * decision_store.TILE
        if high > len(tree) or tree.subtree_root(low, high).hex() != root:
            problems.append(
                Problem(ProblemKind.TILE_MISMATCH, f"tiles[{tile}]", f"the stored root of leaves {low}…{high - 1}")
            )
    tail = decision_store.tail(conn)
    if tail.size == len(tree) and tail.frontier != tree.frontier():
        problems.append(
            Problem(ProblemKind.FRONTIER_MISMATCH, f"decisions[{len(tree)}]", "the stored right edge of the tree")
        )
    return problems


def _check_checkpoints(conn: Connection, tree: tlog.Tree) -> list[Problem]:
    problems: list[Problem] = []
    rows = list(conn.execute(sa.select(checkpoints).order_by(checkpoints.c.size)))
    log_origin = decision_anchor.origin(conn)
    previous: Any = None
    for row in rows:
        where = f"checkpoints[{row.size}]"
        problems += decision_anchor.check_note(conn, row, str(log_origin), where)
        if row.size > len(tree):
            problems.append(
                Problem(
                    ProblemKind.CHECKPOINT_MISMATCH, where, f"seals {row.size} decisions, the log holds {len(tree)}"
                )
            )
            continue
        if tree.root(row.size).hex() != row.root:
            low = previous.size if previous is not None else 0
            detail = f"the decisions at positions {low}…{row.size - 1} no longer hash to the signed root"
            problems.append(Problem(ProblemKind.CHECKPOINT_MISMATCH, where, detail))
        if previous is not None and previous.size <= len(tree):
            proof = tree.consistency_proof(previous.size, row.size)
            if not tlog.verify_consistency(
                previous.size, row.size, bytes.fromhex(previous.root), bytes.fromhex(row.root), proof
            ):
                detail = f"not consistent with the checkpoint at size {previous.size}"
                problems.append(Problem(ProblemKind.CHECKPOINT_INCONSISTENT, where, detail))
        previous = row
    sealed = rows[-1].size if rows else 0
    if len(tree) > sealed:
        detail = f"{len(tree) - sealed} decision(s) after the last checkpoint are not sealed by any signature"
        problems.append(Problem(ProblemKind.UNSEALED_TAIL, f"decisions[{sealed}:{len(tree)}]", detail))
    return problems
