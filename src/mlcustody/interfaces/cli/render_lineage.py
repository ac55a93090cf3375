"""How ``custody lineage`` looks: a tree on the terminal, or JSON, DOT, Mermaid or PROV-JSON to pipe on.

The export formats live in ``mlcustody.lineage.export`` (the server will serve the same text); this
module only checks that the options agree and prints. It is imported when the CLI starts, so the
graph modules (and SQLAlchemy behind them) are imported only when something is rendered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlcustody.errors import UsageError
from mlcustody.interfaces import shapes
from mlcustody.interfaces.cli import output

if TYPE_CHECKING:
    from mlcustody.lineage.graph import ColumnLineage, Graph

FORMATS = ("tree", "json", "dot", "mermaid", "prov-json")
_COLUMN_FORMATS = ("tree", "json")


@dataclass(frozen=True)
class View:
    """What the options ask for, once they are known to agree."""

    direction: str  # up | down | both
    format: str  # one of FORMATS

    @classmethod
    def of(cls, *, up: bool, down: bool, both: bool, fmt: str | None, as_json: bool, column: str | None) -> View:
        chosen = [name for name, flag in (("up", up), ("down", down), ("both", both)) if flag]
        if len(chosen) > 1:
            raise UsageError(f"--{chosen[0]} and --{chosen[1]} contradict each other", hint="give one of them")
        if fmt is not None and fmt not in FORMATS:
            raise UsageError(f"unknown lineage format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
        if as_json and fmt not in (None, "json"):
            raise UsageError(f"--json and --format {fmt} contradict each other", hint="give one of them")
        view = cls(chosen[0] if chosen else "up", "json" if as_json else fmt or "tree")
        if column is not None and view.direction != "up":
            raise UsageError("--column walks a column back to its sources only", hint="leave out --down/--both")
        if column is not None and view.format not in _COLUMN_FORMATS:
            raise UsageError(f"--column cannot be drawn as {view.format}", hint="use --format tree or --json")
        return view

    @property
    def needs_digest(self) -> bool:
        """The lineage digest is in the JSON document and under an upstream tree, not in the exchange
        formats (it is an upstream property, so a tree of what came from the origin does not show it)."""
        return self.format == "json" or (self.format == "tree" and self.direction != "down")


def graph(found: Graph, digest: str | None, view: View) -> None:
    from mlcustody.lineage import export

    if view.format == "json":
        output.emit_json(shapes.lineage(found.origin, found.direction, found.depth, digest or "", found))
    elif view.format == "prov-json":
        output.emit_json(export.prov_json(found))
    elif view.format == "tree":
        for line in export.tree(found):
            output.line(line)
        if digest:
            output.line(f"lineage digest: {digest}")
    else:
        for line in export.render(found, view.format).splitlines():
            output.line(line)


def columns(found: ColumnLineage, digest: str | None, depth: int | None, view: View) -> None:
    from mlcustody.lineage import export

    if view.format == "json":
        output.emit_json(shapes.lineage(found.origin.artifact, "up", depth, digest or "", None, found))
        return
    for line in export.column_tree(found):
        output.line(line)
