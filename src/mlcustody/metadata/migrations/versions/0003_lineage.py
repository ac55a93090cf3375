"""Record and column lineage of runs; run inputs and outputs indexed by artifact for graph walks.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_run_io_artifact", "run_io", ["artifact"])
    op.create_table(
        "record_lineage",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("output", sa.String(310), nullable=False),
        sa.Column("input", sa.String(310), nullable=False),
        sa.Column("relation", sa.String(20), nullable=False),
        sa.Column("links", sa.String(64), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "output", "input", name="pk_record_lineage"),
    )
    op.create_index("ix_record_lineage_output", "record_lineage", ["output"])
    op.create_index("ix_record_lineage_input", "record_lineage", ["input"])
    op.create_table(
        "column_lineage",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("output", sa.String(310), nullable=False),
        sa.Column("column", sa.String(250), nullable=False),
        sa.Column("input", sa.String(310), nullable=False),
        sa.Column("input_column", sa.String(250), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "output", "column", "input", "input_column", name="pk_column_lineage"),
    )
    op.create_index("ix_column_lineage_output_column", "column_lineage", ["output", "column"])


def downgrade() -> None:
    op.drop_index("ix_column_lineage_output_column", table_name="column_lineage")
    op.drop_table("column_lineage")
    op.drop_index("ix_record_lineage_input", table_name="record_lineage")
    op.drop_index("ix_record_lineage_output", table_name="record_lineage")
    op.drop_table("record_lineage")
    op.drop_index("ix_run_io_artifact", table_name="run_io")
