"""How ``custody trace record`` looks: one line per hop, indented by depth."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlcustody.interfaces import shapes
from mlcustody.interfaces.cli import output

if TYPE_CHECKING:
    from mlcustody.lineage.record_trace import RecordNode, Trace


def trace(found: Trace, down: bool, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.trace_record(found, down))
        return
    for root in found.roots:
        _node(root, 0, down)
    if not down:
        ends = {(n.ref, n.record_id): n for root in found.roots for n in root.sources()}
        output.line(f"{len(ends)} source record(s)")
    for model in found.models:
        output.line(f"model trained on it: {model}", style="yellow")


def _node(node: RecordNode, depth: int, down: bool) -> None:
    pad = "  " * depth
    where = f"  ← {node.source}" if node.source and node.source != node.record_id else ""
    via = ""
    if node.step is not None:
        commit = f" @ {node.step.commit[:10]}" if node.step.commit else ""
        via = f"   [{node.step.relation} by run {node.step.run_id[:12]} {node.step.run_name}{commit}]"
    output.line(f"{pad}{node.ref} {node.record_id}{where}{via}", style="green" if node.source else None)
    for link in node.links:
        _node(link, depth + 1, down)
