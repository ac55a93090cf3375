"""Every object the metadata refers to directly, with its role: what ``gc`` keeps and ``verify`` expects."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody.metadata import artifacts
from mlcustody.metadata.runs import store as runs
from mlcustody.metadata.schema import model_versions


def stored_digests(conn: Connection, *, with_artifacts: bool = True) -> set[tuple[str, str]]:
    """(digest, role) pairs; ``with_artifacts=False`` leaves out artifact versions' own objects."""
    found = runs.stored_digests(conn)
    found |= {(d, "attestation") for d in conn.execute(sa.select(model_versions.c.attestation)).scalars()}
    if with_artifacts:
        found |= artifacts.stored_digests(conn)
    return found
