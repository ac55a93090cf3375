"""The OpenLineage emitter: our runs as RunEvents, sent to a Marquez-compatible endpoint or written as
JSON Lines (``custody export openlineage``; ``emit_openlineage`` from Python)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcustody.errors import PathError
from mlcustody.metadata.runs import store as runs

if TYPE_CHECKING:
    from mlcustody.workspace.facade import Workspace

NAMESPACE = "mlcustody"


@dataclass(frozen=True)
class Emitted:
    runs: list[str]
    events: list[dict[str, Any]]
    url: str | None  # where they were sent
    out: Path | None  # where they were written as JSON Lines
    statuses: list[int]  # the endpoint's answer to each event sent


def emit_openlineage(
    ws: Workspace,
    refs: Sequence[str] = (),
    *,
    url: str | None = None,
    out: Path | None = None,
    namespace: str = NAMESPACE,
    api_key: str | None = None,
) -> Emitted:
    """The RunEvents of the runs named (default: every run, oldest first), sent to ``url`` and/or
    written to ``out``; with neither they are only returned. Sending stops at the first refusal."""
    from mlcustody import __version__
    from mlcustody.lineage import openlineage

    with ws.db.read() as conn:
        ids = [runs.resolve(conn, ref) for ref in refs] if refs else _all(ws)
        found = openlineage.events(
            conn, ids, namespace=namespace, producer=f"https://mlcustody.dev/custody/{__version__}"
        )
    if out is not None:
        text = "".join(json.dumps(event, sort_keys=True) + "\n" for event in found)
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise PathError(f"cannot write {out}: {exc.strerror}", hint="choose a writable file for --out") from exc
    statuses = [openlineage.send(event, url, api_key=api_key) for event in found] if url else []
    return Emitted(ids, found, url, out, statuses)


def _all(ws: Workspace) -> list[str]:
    return [run.id for run in reversed(ws.runs(limit=None))]
