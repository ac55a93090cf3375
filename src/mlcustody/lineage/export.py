"""A lineage graph written out: a text tree, JSON, Graphviz DOT, Mermaid, or W3C PROV-JSON.

Every format is deterministic (nodes and edges in sorted order), so two exports of the same graph
are byte-identical and can be diffed or hashed. Edges keep the graph's orientation, effect → cause
(as PROV draws them); DOT and Mermaid lay them out bottom-to-top so that causes sit above effects.

PROV-JSON follows https://www.w3.org/submissions/prov-json/: artifact versions and files are
entities, runs activities (``prov:startTime``/``prov:endTime``), actors agents; ``used``,
``wasGeneratedBy``, ``wasDerivedFrom`` (with the run as ``prov:activity``) and ``wasAssociatedWith``
relate them, and mlcustody's own attributes (digest, type, status, seal, …) are in the ``mlc:``
namespace. Identifiers are percent-encoded where PROV-N could not write them.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from mlcustody.lineage.graph import ColumnLineage, ColumnRef, Edge, Graph, Node

FORMATS = ("tree", "json", "dot", "mermaid", "prov-json")

NAMESPACE = "urn:mlcustody:"
PREFIXES = {
    "mlc": f"{NAMESPACE}ns:",
    "artifact": f"{NAMESPACE}artifact:",
    "file": f"{NAMESPACE}file:",
    "run": f"{NAMESPACE}run:",
    "agent": f"{NAMESPACE}agent:",
}
_PROV_RELATIONS = {
    "used": ("used", "prov:activity", "prov:entity"),
    "generated": ("wasGeneratedBy", "prov:entity", "prov:activity"),
    "derived_from": ("wasDerivedFrom", "prov:generatedEntity", "prov:usedEntity"),
    "associated_with": ("wasAssociatedWith", "prov:activity", "prov:agent"),
}
_PROV_CLASS = {"artifact": "entity", "file": "entity", "run": "activity", "agent": "agent"}
# PROV's customary colours and shapes: entities yellow ellipses, activities blue boxes, agents orange houses.
_DOT_STYLE = {
    "artifact": 'shape=ellipse, style=filled, fillcolor="#fffc87"',
    "file": 'shape=ellipse, style="filled,dashed", fillcolor="#fffdc2"',
    "run": 'shape=box, style=filled, fillcolor="#9fb1fc"',
    "agent": 'shape=house, style=filled, fillcolor="#fed37f"',
}
_MERMAID_SHAPE = {"artifact": ('(["', '"])'), "file": ('(["', '"])'), "run": ('["', '"]'), "agent": ('[/"', '"\\]')}
_MERMAID_CLASS = {"artifact": "entity", "file": "entity", "run": "activity", "agent": "agent"}


# -- JSON ------------------------------------------------------------------------------------------


def as_dict(graph: Graph) -> dict[str, Any]:
    """``{"nodes": [...], "edges": [...]}`` with every attribute, in sorted order."""
    return {
        "nodes": [node_dict(graph, graph.nodes[i]) for i in sorted(graph.nodes)],
        "edges": [edge_dict(edge) for edge in graph.edges],
    }


def node_dict(graph: Graph, node: Node) -> dict[str, Any]:
    return {
        "id": node.id,
        "kind": node.kind,
        "label": node.label,
        "up": graph.up.get(node.id),
        "down": graph.down.get(node.id),
        "attributes": dict(node.attributes),
    }


def edge_dict(edge: Edge) -> dict[str, Any]:
    return {"source": edge.source, "target": edge.target, "kind": edge.kind, "run": edge.run, "relation": edge.relation}


def columns_dict(found: ColumnLineage) -> dict[str, Any]:
    def ref(item: ColumnRef) -> dict[str, str]:
        return {"artifact": item.artifact, "column": item.column}

    return {
        "origin": ref(found.origin),
        "hops": [
            {"distance": h.distance, "run": h.run, "output": ref(h.output), "input": ref(h.input)} for h in found.hops
        ],
        "sources": [ref(s) for s in found.sources],
        "unexplored": [ref(s) for s in found.unexplored],
    }


# -- text tree -------------------------------------------------------------------------------------


def tree(graph: Graph) -> list[str]:
    """The graph as indented trees from the origin: upstream, downstream, or both one after the other.

    A node reached a second time (a diamond in the DAG) is written once and then referred to."""
    lines: list[str] = []
    for side in ("up", "down"):
        if graph.direction not in (side, "both"):
            continue
        if graph.direction == "both":
            lines.append("upstream (what it came from):" if side == "up" else "downstream (what came from it):")
        lines += _tree(graph, side)
    return lines


def _tree(graph: Graph, side: str) -> list[str]:
    reached = graph.up if side == "up" else graph.down
    lines = [describe(graph.nodes[graph.origin])]
    shown = {graph.origin}
    stack = [(b, "", i == 0) for i, b in enumerate(reversed(_branches(graph, graph.origin, side, reached)))]
    while stack:
        (node_id, note), indent, last = stack.pop()
        repeat = node_id in shown
        suffix = f"  [{note}]" if note else ""
        lines.append(f"{indent}{'└── ' if last else '├── '}{describe(graph.nodes[node_id])}{suffix}")
        if repeat:
            lines[-1] += "  (shown above)"
            continue
        shown.add(node_id)
        inner = indent + ("    " if last else "│   ")
        branches = _branches(graph, node_id, side, reached)
        stack += [(b, inner, i == 0) for i, b in enumerate(reversed(branches))]
    if len(lines) == 1:
        lines.append("└── (nothing recorded " + ("upstream)" if side == "up" else "downstream)"))
    return lines


def _branches(graph: Graph, node_id: str, side: str, reached: dict[str, int]) -> list[tuple[str, str]]:
    """(neighbour, note) to draw under a node: runs and their entities alternate; a derived_from edge is
    drawn only when its run is not drawn between the two (record lineage through a run not reached)."""
    edges = graph.parents(node_id) if side == "up" else graph.children(node_id)
    runs = {_far(e, side) for e in edges if e.kind in ("used", "generated")}
    found = []
    for edge in edges:
        other = _far(edge, side)
        if other not in reached or edge.kind == "associated_with":
            continue
        if edge.kind == "derived_from":
            if edge.run in runs:
                continue
            how = f", {edge.relation}" if edge.relation else ""
            found.append((other, f"derived by run {(edge.run or '?')[:12]}{how}"))
        else:
            found.append((other, ""))
    return sorted(set(found))


def _far(edge: Edge, side: str) -> str:
    return edge.target if side == "up" else edge.source


def describe(node: Node) -> str:
    """One line about a node, as the tree draws it."""
    a = node.attributes
    if node.kind == "artifact":
        if a.get("missing"):
            return f"{node.id}  (not in this store)"
        return f"{node.id}  {a['type']} {a['digest'][:12]}"
    if node.kind == "file":
        return f"file {a['path']}  {a['digest'][:12] if a.get('digest') else '(bytes unknown)'}"
    if node.kind == "run":
        if a.get("status") == "missing":
            return f"run {node.id[:12]}  (not in this store)"
        return f"run {node.id[:12]} {a['name']}  {a['status']}, by {a['actor']}, {a['started_at'][:19]}"
    return f"agent {node.label}"


def column_tree(found: ColumnLineage) -> list[str]:
    """A column walk as a tree from the origin column back to its sources."""
    below: dict[ColumnRef, list[tuple[ColumnRef, str]]] = {}
    for hop in found.hops:
        below.setdefault(hop.output, []).append((hop.input, hop.run))
    sources, unexplored = set(found.sources), set(found.unexplored)

    def name(item: ColumnRef) -> str:
        mark = "  (source)" if item in sources else "  (depth limit)" if item in unexplored else ""
        return f"{item.artifact}:{item.column}{mark}"

    lines = [name(found.origin)]
    shown = {found.origin}
    stack = [
        (child, run, "", i == 0) for i, (child, run) in enumerate(sorted(below.get(found.origin, []), reverse=True))
    ]
    while stack:
        item, run, indent, last = stack.pop()
        lines.append(f"{indent}{'└── ' if last else '├── '}{name(item)}  [run {run[:12]}]")
        if item in shown:
            lines[-1] += "  (shown above)"
            continue
        shown.add(item)
        inner = indent + ("    " if last else "│   ")
        stack += [(c, r, inner, i == 0) for i, (c, r) in enumerate(sorted(below.get(item, []), reverse=True))]
    lines.append("sources: " + (", ".join(f"{s.artifact}:{s.column}" for s in found.sources) or "none reached"))
    return lines


# -- Graphviz DOT ----------------------------------------------------------------------------------


def dot(graph: Graph) -> str:
    """A ``digraph`` with one statement per line; ids are the node ids, quoted."""
    lines = ["digraph lineage {", "  rankdir=BT;", '  node [fontname="Helvetica", fontsize=10];']
    lines.append('  edge [fontname="Helvetica", fontsize=8];')
    for node_id in sorted(graph.nodes):
        node = graph.nodes[node_id]
        label = _dot_quote(f"{node.label}\n{_subtitle(node)}")
        lines.append(f"  {_dot_quote(node_id)} [label={label}, {_DOT_STYLE[node.kind]}];")
    for edge in graph.edges:
        style = ", style=dashed" if edge.kind == "derived_from" else ""
        lines.append(
            f"  {_dot_quote(edge.source)} -> {_dot_quote(edge.target)} [label={_dot_quote(edge.kind)}{style}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _subtitle(node: Node) -> str:
    a = node.attributes
    if node.kind == "artifact":
        return f"{a.get('type', '?')} {(a.get('digest') or '')[:12]}".strip()
    if node.kind == "file":
        return f"file {(a.get('digest') or 'bytes unknown')[:12]}"
    if node.kind == "run":
        return f"run {a.get('status', '?')}"
    return "agent"


# -- Mermaid ---------------------------------------------------------------------------------------


def mermaid(graph: Graph) -> str:
    """A ``flowchart BT``; node ids are n0, n1, … in sorted order, labels hold the real ids."""
    short = {node_id: f"n{i}" for i, node_id in enumerate(sorted(graph.nodes))}
    lines = ["flowchart BT"]
    for node_id, ident in short.items():
        node = graph.nodes[node_id]
        opening, closing = _MERMAID_SHAPE[node.kind]
        label = _mermaid_text(node.label) + "<br/>" + _mermaid_text(_subtitle(node))
        lines.append(f"  {ident}{opening}{label}{closing}")
    for edge in graph.edges:
        arrow = "-.->" if edge.kind == "derived_from" else "-->"
        lines.append(f"  {short[edge.source]} {arrow}|{edge.kind}| {short[edge.target]}")
    lines += [
        "  classDef entity fill:#fffc87,stroke:#808080",
        "  classDef activity fill:#9fb1fc,stroke:#0000ff",
        "  classDef agent fill:#fed37f,stroke:#808080",
    ]
    for css in ("entity", "activity", "agent"):
        members = [short[i] for i in sorted(graph.nodes) if _MERMAID_CLASS[graph.nodes[i].kind] == css]
        if members:
            lines.append(f"  class {','.join(members)} {css}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    """Text inside a quoted Mermaid label: quotes and markup characters as entity codes."""
    return re.sub(r'["<>#]', lambda m: f"#{ord(m.group(0))};", text)


# -- W3C PROV-JSON ---------------------------------------------------------------------------------


def prov_json(graph: Graph) -> dict[str, Any]:
    """The graph as a PROV-JSON document (a dict, ready for ``json.dumps``)."""
    doc: dict[str, Any] = {"prefix": dict(PREFIXES), "entity": {}, "activity": {}, "agent": {}}
    for node_id in sorted(graph.nodes):
        node = graph.nodes[node_id]
        doc[_PROV_CLASS[node.kind]][prov_id(node_id)] = _prov_attributes(node)
    counters: dict[str, int] = {}
    for edge in graph.edges:
        relation, first, second = _PROV_RELATIONS[edge.kind]
        counters[relation] = counters.get(relation, 0) + 1
        record: dict[str, Any] = {first: prov_id(edge.source), second: prov_id(edge.target)}
        if edge.kind == "derived_from" and edge.run:
            record["prov:activity"] = prov_id(edge.run)
        if edge.relation:
            record["mlc:relation"] = edge.relation
        doc.setdefault(relation, {})[f"_:{relation}{counters[relation]}"] = record
    return {key: value for key, value in doc.items() if value}


def prov_id(node_id: str) -> str:
    """The qualified name of a node: ``artifact:NAME@V``, ``file:PATH@DIGEST12``, ``run:ID``, ``agent:NAME``."""
    if node_id.startswith(("file:", "agent:")):
        prefix, _, local = node_id.partition(":")
    elif "@" in node_id:
        prefix, local = "artifact", node_id
    else:
        prefix, local = "run", node_id
    return f"{prefix}:{quote(local, safe='@/')}"


def _prov_attributes(node: Node) -> dict[str, Any]:
    a = node.attributes
    kind = {"artifact": "ArtifactVersion", "file": "File", "run": "Run", "agent": "Actor"}[node.kind]
    found: dict[str, Any] = {"prov:type": {"$": f"mlc:{kind}", "type": "prov:QUALIFIED_NAME"}, "prov:label": node.label}
    if node.kind == "run":
        if a.get("started_at"):
            found["prov:startTime"] = a["started_at"]
        if a.get("ended_at"):
            found["prov:endTime"] = a["ended_at"]
        chosen = {k: v for k, v in a.items() if k not in ("started_at", "ended_at")}
    else:
        chosen = dict(a)
    for key, value in sorted(chosen.items()):
        if value is not None:
            found[f"mlc:{key}"] = value
    return found


# -- one entry point -------------------------------------------------------------------------------


def render(graph: Graph, fmt: str) -> str:
    """The graph in a text format: tree, dot, mermaid (JSON forms are built as dicts: ``as_dict``,
    ``prov_json``)."""
    if fmt == "tree":
        return "\n".join(tree(graph)) + "\n"
    if fmt == "dot":
        return dot(graph)
    if fmt == "mermaid":
        return mermaid(graph)
    raise ValueError(f"{fmt!r} is not a text format of a lineage graph")
