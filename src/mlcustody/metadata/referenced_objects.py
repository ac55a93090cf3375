"""Every object the metadata refers to directly, with its role: what ``gc`` keeps and ``verify`` expects."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody.metadata import artifacts
from mlcustody.metadata.runs import store as runs
from mlcustody.metadata.schema import expectation_results, model_versions, source_terms, terms_overrides


def stored_digests(conn: Connection, *, with_artifacts: bool = True) -> set[tuple[str, str]]:
    """(digest, role) pairs; ``with_artifacts=False`` leaves out artifact versions' own objects."""
    found = runs.stored_digests(conn)
    found |= {(d, "attestation") for d in conn.execute(sa.select(model_versions.c.attestation)).scalars()}
    found |= _policy_digests(conn)
    if with_artifacts:
        found |= artifacts.stored_digests(conn)
    return found


def _policy_digests(conn: Connection) -> set[tuple[str, str]]:
    """Per-record consent tables, expectation suites, results and envelopes, overridden findings."""
    columns = [
        (source_terms.c.consent, "consent"),
        (expectation_results.c.suite, "expectation suite"),
        (expectation_results.c.result, "expectation result"),
        (expectation_results.c.envelope, "expectation envelope"),
        (terms_overrides.c.findings, "override findings"),
        (terms_overrides.c.envelope, "override envelope"),
    ]
    found: set[tuple[str, str]] = set()
    for column, role in columns:
        found |= {(d, role) for d in conn.execute(sa.select(column).where(column.is_not(None))).scalars()}
    return found
