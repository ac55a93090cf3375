"""The lineage graph: what came before and after a version, run or model, its digest, one column's walk.

Each function is the whole of one use case over the workspace handle; ``Workspace`` delegates to it in
one line. The domain modules are imported inside the functions that use them: the ledger (cryptography)
and forensics (numpy, scikit-learn) load only for the commands that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from mlcustody.errors import UnknownRef

if TYPE_CHECKING:
    from mlcustody.lineage import graph as lineage_graph
    from mlcustody.workspace.facade import Workspace


def lineage(ws: Workspace, ref: str, *, direction: str = "up", depth: int | None = None) -> lineage_graph.Graph:
    """The runs, versions, files and agents upstream (``up``), downstream (``down``) or on both sides
    of a version or run, within ``depth`` entity→run / run→entity steps (None: all)."""
    from mlcustody.lineage import graph

    with ws.db.read() as conn:
        return graph.walk(conn, _lineage_origin(ws, conn, ref), direction=direction, depth=depth)


def _lineage_origin(ws: Workspace, conn: sa.Connection, ref: str) -> str:
    """A version, a run, or a registered model (``credit@1``, ``credit:production``) as its artifact."""
    from mlcustody.ledger.registry import versions as registry
    from mlcustody.lineage import graph

    try:
        return graph.resolve(conn, ref)
    except UnknownRef as missing:
        try:
            return registry.get(conn, ref).artifact
        except UnknownRef:
            raise missing from None


def lineage_digest(ws: Workspace, ref: str) -> str:
    """The Merkle digest of everything upstream of a version or run (what an attestation signs)."""
    from mlcustody.lineage import graph

    with ws.db.read() as conn:
        return graph.lineage_digest(conn, _lineage_origin(ws, conn, ref))


def column_lineage(ws: Workspace, ref: str, column: str, *, depth: int | None = None) -> lineage_graph.ColumnLineage:
    """The input columns one column of a version was computed from, back to its source columns."""
    from mlcustody.lineage import graph

    with ws.db.read() as conn:
        return graph.columns(conn, _lineage_origin(ws, conn, ref), column, depth=depth)
