"""The decision log in Parquet segments: segments, tree tiles, a slim index, subject postings, data subjects.

Decisions logged under 0005 (one wide row each) are moved into segments in log order, with their
leaf hashes, the tree's tiles and frontier rebuilt from them; their data keys become subject rows.
The signed checkpoints are kept as they are: the leaves, hence the roots, do not change.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_OLD = sa.table(
    "decisions",
    *(
        sa.column(name)
        for name in (
            "position",
            "decision_id",
            "time",
            "model",
            "version",
            "input_digest",
            "output",
            "subject",
            "payload",
            "payload_digest",
            "payload_key",
            "entry_hash",
        )
    ),
)
_OLD_KEYS = sa.table("decision_keys", *(sa.column(name) for name in ("key_id", "subject", "key", "created_at")))


def upgrade() -> None:
    op.create_table(
        "decision_segments",
        sa.Column("first", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("first", name="pk_decision_segments"),
    )
    op.create_table(
        "decision_tiles",
        sa.Column("tile", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("tile", name="pk_decision_tiles"),
    )
    subjects = op.create_table(
        "decision_subjects",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("shredded_at", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_decision_subjects"),
        sa.UniqueConstraint("subject", name="uq_decision_subjects_subject"),
    )
    conn = op.get_bind()
    old_keys = list(conn.execute(sa.select(_OLD_KEYS)))
    if old_keys:
        rows = [{"subject": k.subject or "", "key": k.key, "created_at": k.created_at} for k in old_keys]
        conn.execute(subjects.insert(), rows)
    ids = {row.subject: row.id for row in conn.execute(sa.select(subjects.c.id, subjects.c.subject))}
    number = {k.key_id: ids[k.subject or ""] for k in old_keys}
    old_rows = list(conn.execute(sa.select(_OLD).order_by(_OLD.c.position)))
    op.drop_table("decision_keys")
    op.drop_index("ix_decisions_time", table_name="decisions")
    op.drop_index("ix_decisions_model_version", table_name="decisions")
    op.drop_index("ix_decisions_subject", table_name="decisions")
    op.drop_table("decisions")
    op.create_table(
        "decisions",
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("decision_id", sa.String(200), nullable=False),
        sa.Column("subject", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("position", name="pk_decisions"),
        sa.UniqueConstraint("decision_id", name="uq_decisions_decision_id"),
    )
    op.create_table(
        "decision_postings",
        sa.Column("run", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("subject", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("run", "subject", "position", name="pk_decision_postings"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "decision_postings_new",
        sa.Column("subject", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    if old_rows:
        _move_into_segments(conn, old_rows, number, ids)


def _move_into_segments(conn: Any, old_rows: list[Any], number: dict[str, int], ids: dict[str, int]) -> None:
    from mlcustody._canonical import utc_now
    from mlcustody.ledger import tlog
    from mlcustody.ledger.decisions import store as decision_store

    subjects = sa.table("decision_subjects", sa.column("id"), sa.column("subject"), sa.column("created_at"))
    for hashed in sorted({r.subject for r in old_rows if r.subject is not None} - set(ids)):
        conn.execute(subjects.insert().values(subject=hashed, created_at=utc_now()))
    ids = {row.subject: row.id for row in conn.execute(sa.select(subjects.c.id, subjects.c.subject))}
    frontier = tlog.Frontier(keep_from=decision_store.TILE_HEIGHT)
    for start in range(0, len(old_rows), decision_store.SEGMENT_ROWS):
        chunk = old_rows[start : start + decision_store.SEGMENT_ROWS]
        leaves = [bytes.fromhex(r.entry_hash) for r in chunk]
        frontier.extend(leaves)
        columns: dict[str, list[Any]] = {name: [] for name in decision_store.SCHEMA.names}
        for row, leaf in zip(chunk, leaves, strict=True):
            for name in decision_store.SCHEMA.names:
                columns[name].append(getattr(row, name) if name not in ("payload_key", "entry_hash") else None)
            columns["payload_key"][-1] = number.get(row.payload_key) if row.payload_key else None
            columns["entry_hash"][-1] = leaf
        table = pa.table(columns, schema=decision_store.SCHEMA)
        subject_ids = [ids[r.subject] if r.subject is not None else None for r in chunk]
        tiles = frontier.take(decision_store.TILE_HEIGHT)
        data = decision_store.encode(table)
        decision_ids = [r.decision_id for r in chunk]
        segment = decision_store.Segment(chunk[0].position, data, decision_ids, subject_ids, frontier.packed(), tiles)
        decision_store.append(conn, segment)


def downgrade() -> None:
    raise NotImplementedError("the decision log cannot go back to one row per decision; restore a backup instead")
