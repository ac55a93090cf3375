"""Runs: start and end (audited), params, tags, metrics with their latest values, inputs and outputs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("parent_id", sa.String(32), nullable=True),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_name", "runs", ["name"])
    op.create_index("ix_runs_started_at", "runs", ["started_at"])
    op.create_table(
        "run_ends",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("exit_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("ended_at", sa.String(32), nullable=False),
        sa.Column("processes", sa.Text(), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("seal", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_run_ends"),
    )
    op.create_table(
        "run_params",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("number", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "key", name="pk_run_params"),
    )
    op.create_table(
        "run_tags",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "key", name="pk_run_tags"),
    )
    op.create_table(
        "run_metrics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_run_metrics"),
    )
    op.create_index("ix_run_metrics_run_id_key", "run_metrics", ["run_id", "key"])
    op.create_table(
        "run_metric_latest",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("min", sa.Float(), nullable=True),
        sa.Column("max", sa.Float(), nullable=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "key", name="pk_run_metric_latest"),
    )
    op.create_index("ix_run_metric_latest_key_value", "run_metric_latest", ["key", "value"])
    op.create_table(
        "run_io",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("digest", sa.String(64), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("artifact", sa.String(310), nullable=True),
        sa.Column("source", sa.String(10), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "role", "path", name="pk_run_io"),
    )
    op.create_index("ix_run_io_digest", "run_io", ["digest"])


def downgrade() -> None:
    op.drop_index("ix_run_io_digest", table_name="run_io")
    op.drop_table("run_io")
    op.drop_index("ix_run_metric_latest_key_value", table_name="run_metric_latest")
    op.drop_table("run_metric_latest")
    op.drop_index("ix_run_metrics_run_id_key", table_name="run_metrics")
    op.drop_table("run_metrics")
    op.drop_table("run_tags")
    op.drop_table("run_params")
    op.drop_table("run_ends")
    op.drop_index("ix_runs_started_at", table_name="runs")
    op.drop_index("ix_runs_name", table_name="runs")
    op.drop_table("runs")
