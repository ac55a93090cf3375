"""The decision log's key rows and checkpoints become audited: the rows an upgrade finds are vouched for.

No table changes. From this revision the audit chain records every checkpoint (``decision.checkpoint``),
the subject-HMAC key (``decision.subject_key``), every batch of subject rows with the digests of their
data keys (``decision.subjects``) and every shred with the digest of the destroyed key; ``verify``
names a key row or checkpoint that no event vouches for. This upgrade writes those events for the
rows already there, so a store upgraded from 0006 verifies as before (what was altered before the
upgrade cannot be told any more: it is adopted as it is).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ACTOR = "custody migrate (0007)"


def upgrade() -> None:
    from mlcustody.metadata import decision_audit
    from mlcustody.metadata.schema import checkpoints, decision_subjects, store_info

    conn = op.get_bind()
    secret = conn.execute(
        sa.select(store_info.c.value).where(store_info.c.key == decision_audit.SUBJECT_KEY_ROW)
    ).scalar()
    if secret is not None:
        decision_audit.record_hmac_key(conn, str(secret), ACTOR)
    columns = (
        decision_subjects.c.id,
        decision_subjects.c.subject,
        decision_subjects.c.created_at,
        decision_subjects.c.key,
    )
    rows = [
        (r.id, r.subject, r.created_at, None if r.key is None else bytes(r.key))
        for r in conn.execute(sa.select(*columns))
    ]
    if rows:
        decision_audit.record_rows(conn, rows, ACTOR)
    for row in conn.execute(sa.select(checkpoints).order_by(checkpoints.c.size)).all():
        decision_audit.record_checkpoint(conn, dict(row._mapping), ACTOR)


def downgrade() -> None:
    pass  # the events stay in the chain: an append-only log is not cut back
