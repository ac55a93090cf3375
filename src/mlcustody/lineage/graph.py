"""The artifact lineage graph: which runs, versions and files stand behind a node, or came after it.

Nodes are artifact versions and files (PROV entities), runs (activities) and whoever ran them
(agents). Every edge points from effect to cause, as PROV's relations do, so "upstream" is always
"follow the edges" and "downstream" is "follow them backwards":

=================  ==========================  ==================================================
kind               source → target             learnt from
=================  ==========================  ==================================================
used               run → entity it read        ``run_io`` rows of role ``input``
generated          entity → run that wrote it  ``run_io`` rows of role ``output``; ``meta.run``
derived_from       entity → entity             each output of a run from each of its inputs (both
                                               in the graph), and every ``record_lineage`` row;
                                               the edge names the run between them
associated_with    run → agent                 the run's ``actor``
=================  ==========================  ==================================================

A run_io row that names an artifact version (``artifact``) is that version's node (``NAME@V``);
any other file is the node ``file:PATH@DIGEST12``, the same node wherever the same bytes at the
same path were read or written. A file whose bytes are unknown (it changed while it was read) is
never shared: ``file:PATH@?RUN12``.

**Depth** counts entity→run and run→entity steps from the origin: from a model, depth 1 is the run
that trained it and depth 2 that run's inputs. A record-lineage ``derived_from`` edge stands for
the run between its two versions, so it counts 2. Agents come with their runs and cost nothing.

Walks are breadth-first and read only what they reach: for each hop, one query per kind of lookup
(run_io by run, run_io by entity, record_lineage, artifact rows, run rows) with IN lists of the
whole frontier, so their cost follows the size of the answer, not of the store.

**Lineage digest** (``lineage_digest``): a Merkle digest of a node's whole upstream graph, which a
model's attestation signs. ``digest(n) = BLAKE3-256(JCS({"node": identity(n), "upstream":
sorted([digest(p) for p in parents(n)])}))`` where the parents are the targets of every edge out of
``n`` but ``associated_with`` (a run's seal already binds its actor). See docs/lineage.md.

Over 400 lines on purpose: the walker (one breadth-first pass over runs and versions, batched
queries), the graph it builds and the lineage digest over that graph share their node and edge types
and are read together.
"""

from __future__ import annotations

import difflib
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody._canonical import digest_json
from mlcustody.errors import UnknownRef, UsageError
from mlcustody.metadata import ref_resolution as refs
from mlcustody.metadata.artifacts import ArtifactVersion
from mlcustody.metadata.runs import store as runs
from mlcustody.metadata.schema import artifact_versions as av
from mlcustody.metadata.schema import column_lineage, record_lineage, run_ends, run_io
from mlcustody.metadata.schema import runs as run_starts

DIRECTIONS = ("up", "down", "both")
EDGE_KINDS = ("used", "generated", "derived_from", "associated_with")
_CHUNK = 500  # IN-list size: far below SQLite's and PostgreSQL's parameter limits

# The walk's queries, built once (SQLAlchemy caches their compiled form); ``ids`` is an IN list.
_io = run_io.c
_IO_COLUMNS = (_io.run_id, _io.path, _io.kind, _io.digest, _io.size, _io.artifact)
_IO_BY_RUN = sa.select(*_IO_COLUMNS).where(
    _io.run_id.in_(sa.bindparam("ids", expanding=True)), _io.role == sa.bindparam("role")
)
# run_io has no index on ``artifact`` (only on digest): this one scans run_io until it gets one.
_IO_BY_ARTIFACT = sa.select(*_IO_COLUMNS).where(
    _io.artifact.in_(sa.bindparam("ids", expanding=True)), _io.role == sa.bindparam("role")
)
_IO_BY_FILE = sa.select(*_IO_COLUMNS).where(
    _io.digest.in_(sa.bindparam("ids", expanding=True)), _io.artifact.is_(None), _io.role == sa.bindparam("role")
)
_rl = record_lineage.c
_RECORDS_BY_OUTPUT = sa.select(_rl.run_id, _rl.output, _rl.input, _rl.relation).where(
    _rl.output.in_(sa.bindparam("ids", expanding=True))
)
_RECORDS_BY_INPUT = sa.select(_rl.run_id, _rl.output, _rl.input, _rl.relation).where(
    _rl.input.in_(sa.bindparam("ids", expanding=True))
)
_VERSIONS = sa.select(av).where(sa.tuple_(av.c.name, av.c.version).in_(sa.bindparam("ids", expanding=True)))
_RUNS = (
    sa.select(
        run_starts.c.id,
        run_starts.c.name,
        run_starts.c.actor,
        run_starts.c.host,
        run_starts.c.started_at,
        run_ends.c.status,
        run_ends.c.ended_at,
        run_ends.c.seal,
    )
    .select_from(run_starts.outerjoin(run_ends, run_ends.c.run_id == run_starts.c.id))
    .where(run_starts.c.id.in_(sa.bindparam("ids", expanding=True)))
)
_cl = column_lineage.c
_COLUMNS = sa.select(_cl.run_id, _cl.output, _cl.column, _cl.input, _cl.input_column).where(
    sa.tuple_(_cl.output, _cl.column).in_(sa.bindparam("ids", expanding=True))
)


@dataclass(frozen=True)
class Node:
    id: str  # NAME@V | file:PATH@DIGEST12 | run id | agent:ACTOR
    kind: str  # artifact | file | run | agent
    label: str
    attributes: Mapping[str, Any]

    @property
    def identity(self) -> dict[str, Any]:
        """What the lineage digest binds for this node: its name and the digest of what it is."""
        a = self.attributes
        if self.kind == "artifact":
            return {"artifact": self.id, "digest": a.get("digest")}
        if self.kind == "run":
            return {"run": self.id, "seal": a.get("seal") or None}
        if self.kind == "file":
            return {"file": a["path"], "digest": a.get("digest")}
        return {"agent": a["name"]}


class Edge(NamedTuple):
    """One relation. A named tuple rather than a dataclass: a dense graph has tens of thousands."""

    source: str  # the effect: a run for used, an entity for generated and derived_from
    target: str  # the cause
    kind: str  # used | generated | derived_from | associated_with
    run: str | None = None  # derived_from: the run between the two entities
    relation: str | None = None  # derived_from from record lineage: map, filter, join, aggregate, …


@dataclass(frozen=True)
class Graph:
    """A walk's answer: the nodes reached within ``depth`` and the edges among them.

    ``up`` and ``down`` give each node's distance from the origin in that direction (the origin is
    0 in each direction walked; an agent has its run's distance)."""

    origin: str
    direction: str  # up | down | both
    depth: int | None  # None: no limit
    nodes: dict[str, Node]
    edges: list[Edge]
    up: dict[str, int]
    down: dict[str, int]

    @cached_property
    def _out(self) -> dict[str, list[Edge]]:
        found: dict[str, list[Edge]] = defaultdict(list)
        for edge in self.edges:
            found[edge.source].append(edge)
        return found

    @cached_property
    def _in(self) -> dict[str, list[Edge]]:
        found: dict[str, list[Edge]] = defaultdict(list)
        for edge in self.edges:
            found[edge.target].append(edge)
        return found

    def parents(self, node_id: str) -> list[Edge]:
        """Edges from ``node_id`` to what it came from (sorted)."""
        return self._out.get(node_id, [])

    def children(self, node_id: str) -> list[Edge]:
        """Edges into ``node_id`` from what came from it (sorted)."""
        return self._in.get(node_id, [])

    def sources(self) -> list[Node]:
        """The raw sources upstream: versions and files reached going up that nothing recorded made
        (no run generated them, no record lineage derives them), sorted by id."""
        entities = (self.nodes[i] for i in sorted(self.up) if i != self.origin)
        return [n for n in entities if n.kind in ("artifact", "file") and not self.parents(n.id)]

    def ids(self, kind: str | None = None, *, side: str | None = None) -> set[str]:
        """Node ids, optionally of one kind and one side (``up`` or ``down``) of the origin."""
        chosen = self.up if side == "up" else self.down if side == "down" else self.nodes
        return {i for i in chosen if kind is None or self.nodes[i].kind == kind}


@dataclass(frozen=True, order=True)
class ColumnRef:
    artifact: str  # NAME@VERSION
    column: str


@dataclass(frozen=True, order=True)
class ColumnHop:
    distance: int  # 1 for the origin's own inputs, 2 for theirs, …
    run: str
    output: ColumnRef
    input: ColumnRef


@dataclass(frozen=True)
class ColumnLineage:
    origin: ColumnRef
    hops: list[ColumnHop]
    sources: list[ColumnRef]  # columns reached that were computed from nothing recorded
    unexplored: list[ColumnRef]  # columns at the depth limit whose own lineage was not read


# -- resolving the origin ----------------------------------------------------------------------------


def resolve(conn: Connection, ref: str) -> str:
    """The node ``ref`` names: an artifact version (``NAME``, ``NAME@V``, a digest prefix) or a run
    (its id or an id prefix; ``run:`` in front forces a run). An artifact wins, as in ``show``."""
    if ref.startswith("run:"):
        return runs.resolve(conn, ref)
    try:
        return refs.resolve(conn, ref).ref
    except UnknownRef as missing:
        try:
            return runs.resolve(conn, ref)
        except UnknownRef:
            hint = f"{missing.hint}; or give a run id (`custody runs`)" if missing.hint else None
            raise UnknownRef(missing.message, hint=hint) from None


def check_depth(depth: int | None) -> None:
    """Refuse rather than clamp: a depth of 0 or less would show the origin alone, never what was meant."""
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth <= 0):
        raise UsageError(
            f"depth must be a whole number of at least 1, not {depth!r}",
            hint="pass --depth 1 for direct neighbours, or leave it out for the whole lineage",
        )


# -- walking ---------------------------------------------------------------------------------------


def walk(conn: Connection, ref: str, *, direction: str = "up", depth: int | None = None) -> Graph:
    """The nodes within ``depth`` hops of ``ref`` upstream, downstream or both, and their edges."""
    if direction not in DIRECTIONS:
        raise UsageError(f"unknown direction {direction!r}", hint=f"use one of: {', '.join(DIRECTIONS)}")
    check_depth(depth)
    origin = resolve(conn, ref)
    walker = _Walker(conn)
    walker.load([origin])
    up = walker.walk(origin, "up", depth) if direction in ("up", "both") else {}
    down = walker.walk(origin, "down", depth) if direction in ("down", "both") else {}
    return walker.graph(origin, direction, depth, up, down)


class _Walker:
    """One breadth-first walk's state: nodes loaded so far and edges found, shared by both directions."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.nodes: dict[str, Node] = {}
        self.edges: dict[tuple[Any, ...], Edge] = {}
        self.meta_run: dict[str, str] = {}  # artifact ref → the run its meta names as generating it
        self.pending_files: dict[str, Node] = {}  # file nodes seen in run_io rows, not yet in the graph

    def walk(self, origin: str, direction: str, depth: int | None) -> dict[str, int]:
        """Distances of the nodes reached; levels are expanded in order, each with a few queries."""
        distance = {origin: 0}
        levels: dict[int, set[str]] = {0: {origin}}
        level = 0
        while levels and (depth is None or level < depth):
            frontier = levels.pop(level, set())
            for target, weight, edge in self._step(frontier, direction):
                self._add_edge(edge)
                reach = level + weight
                if (depth is not None and reach > depth) or distance.get(target, math.inf) <= reach:
                    continue
                if target in distance:
                    levels.get(distance[target], set()).discard(target)
                distance[target] = reach
                levels.setdefault(reach, set()).add(target)
            self.load(list(levels.get(level + 1, ())))
            level += 1
        self.load(list(distance))
        return distance

    def _step(self, frontier: set[str], direction: str) -> list[tuple[str, int, Edge]]:
        artifacts = sorted(i for i in frontier if self.nodes[i].kind == "artifact")
        files = sorted(i for i in frontier if self.nodes[i].kind == "file")
        run_ids = sorted(i for i in frontier if self.nodes[i].kind == "run")
        found: list[tuple[str, int, Edge]] = []
        if direction == "up":
            found += self._runs_of(artifacts, files, "output")
            found += [(run, 1, Edge(a, run, "generated")) for a in artifacts if (run := self.meta_run.get(a))]
            found += self._record_links(artifacts, "output")
            found += self._io_of(run_ids, "input")
        else:
            found += self._runs_of(artifacts, files, "input")
            found += self._record_links(artifacts, "input")
            found += self._io_of(run_ids, "output")
            found += self._generated_by_meta(run_ids)
        return found

    def _runs_of(self, artifacts: list[str], files: list[str], role: str) -> list[tuple[str, int, Edge]]:
        """Runs that read (role input) or wrote (role output) these entities: a query per kind of entity."""
        wanted = {(self.nodes[f].attributes["path"], self.nodes[f].attributes["digest"]): f for f in files}
        digests = sorted({d for _, d in wanted if d is not None})
        rows = self._rows(_IO_BY_ARTIFACT, artifacts, role=role) + self._rows(_IO_BY_FILE, digests, role=role)
        found = []
        for row in rows:
            entity = row.artifact or wanted.get((row.path, row.digest))
            if entity is None:
                continue  # the same bytes at another path: another file
            edge = Edge(row.run_id, entity, "used") if role == "input" else Edge(entity, row.run_id, "generated")
            found.append((row.run_id, 1, edge))
        return found

    def _io_of(self, run_ids: list[str], role: str) -> list[tuple[str, int, Edge]]:
        """What these runs read (input) or wrote (output)."""
        found = []
        for row in self._rows(_IO_BY_RUN, run_ids, role=role):
            entity = row.artifact or self._file(row)
            edge = Edge(row.run_id, entity, "used") if role == "input" else Edge(entity, row.run_id, "generated")
            found.append((entity, 1, edge))
        return found

    def _record_links(self, artifacts: list[str], side: str) -> list[tuple[str, int, Edge]]:
        """Record lineage between versions: ``side`` output follows it back, input forward."""
        found = []
        for row in self._rows(_RECORDS_BY_OUTPUT if side == "output" else _RECORDS_BY_INPUT, artifacts):
            edge = Edge(row.output, row.input, "derived_from", row.run_id, row.relation)
            found.append((row.input if side == "output" else row.output, 2, edge))
        return found

    def _rows(self, query: sa.Select[Any], ids: Sequence[Any], **params: str) -> list[Any]:
        """A prepared query over ``ids`` (its expanding ``ids`` parameter), in chunks."""
        return [row for chunk in _chunks(ids) for row in self.conn.execute(query, {"ids": chunk, **params})]

    def _generated_by_meta(self, run_ids: list[str]) -> list[tuple[str, int, Edge]]:
        """Versions whose ``meta.run`` names one of these runs, even with no run_io row (added with
        ``generated_by``). ``meta`` is JSON text with no index: one scan per hop, not per run."""
        if not run_ids:
            return []
        postgres = self.conn.dialect.name == "postgresql"  # SQLite's CAST(... AS JSON) would make it a number
        meta = sa.cast(av.c.meta, sa.JSON) if postgres else sa.type_coerce(av.c.meta, sa.JSON)
        generated_by = meta["run"].as_string()
        query = sa.select(av.c.name, av.c.version, generated_by.label("run"))
        found = []
        for row in self._rows(query.where(generated_by.in_(sa.bindparam("ids", expanding=True))), run_ids):
            ref = f"{row.name}@{row.version}"
            found.append((ref, 1, Edge(ref, row.run, "generated")))
        return found

    def _file(self, row: Any) -> str:
        """The node of a file that is no artifact version (remembered until it joins the graph)."""
        digest = row.digest
        node_id = f"file:{row.path}@{digest[:12]}" if digest else f"file:{row.path}@?{row.run_id[:12]}"
        if node_id not in self.nodes and node_id not in self.pending_files:
            attributes = {"path": row.path, "digest": digest, "kind": row.kind, "size": row.size}
            self.pending_files[node_id] = Node(node_id, "file", node_id, attributes)
        return node_id

    def _add_edge(self, edge: Edge) -> None:
        key = edge[:4]
        if edge.relation is not None or key not in self.edges:
            self.edges[key] = edge

    # -- loading nodes -----------------------------------------------------------------------------

    def load(self, ids: Sequence[str]) -> None:
        """Make nodes of ids not loaded yet: one query for versions, one for runs."""
        new = [i for i in ids if i not in self.nodes]
        for node_id in new:
            if node_id in self.pending_files:
                self.nodes[node_id] = self.pending_files.pop(node_id)
        versions = [i for i in new if "@" in i and not i.startswith("file:") and i not in self.nodes]
        run_ids = [i for i in new if "@" not in i and not i.startswith(("file:", "agent:"))]
        self._load_versions(versions)
        self._load_runs(run_ids)

    def _load_versions(self, ids: list[str]) -> None:
        keys = [(name, int(version)) for name, _, version in (i.rpartition("@") for i in ids) if version.isdigit()]
        for row in self._rows(_VERSIONS, keys):
            version = ArtifactVersion.from_row(row)
            self.nodes[version.ref] = _artifact_node(version)
            generated_by = version.meta.get("run")
            if isinstance(generated_by, str) and generated_by:
                self.meta_run[version.ref] = generated_by
        for node_id in ids:  # named by a run_io row but not in artifact_versions: keep the name
            self.nodes.setdefault(node_id, Node(node_id, "artifact", node_id, {"missing": True, "digest": None}))

    def _load_runs(self, ids: list[str]) -> None:
        for row in self._rows(_RUNS, ids):
            attributes = {
                "name": row.name,
                "status": row.status or "running",
                "actor": row.actor,
                "host": row.host,
                "started_at": row.started_at,
                "ended_at": row.ended_at,
                "seal": row.seal or None,
            }
            self.nodes[row.id] = Node(row.id, "run", f"{row.name} {row.id[:12]}", attributes)
        for node_id in ids:  # named by a version's meta but never started here
            self.nodes.setdefault(node_id, Node(node_id, "run", node_id[:12], {"status": "missing", "seal": None}))

    # -- the answer --------------------------------------------------------------------------------

    def graph(self, origin: str, direction: str, depth: int | None, up: dict[str, int], down: dict[str, int]) -> Graph:
        """The reached nodes with their agents, and the edges among them, plus derived_from edges
        composed from each run's generated and used edges. Edges sort as plain tuples: they are unique
        by (source, target, kind, run), and only derived_from edges, which always name a run, can share
        the first three."""
        up, down = dict(up), dict(down)
        kept = set(up) | set(down)
        nodes = {i: self.nodes[i] for i in kept}
        edges = {k: e for k, e in self.edges.items() if e.source in kept and e.target in kept}
        for run_id in [i for i in kept if nodes[i].kind == "run"]:
            actor = nodes[run_id].attributes.get("actor")
            if actor:
                agent = f"agent:{actor}"
                nodes.setdefault(agent, Node(agent, "agent", actor, {"name": actor}))
                edges.setdefault((run_id, agent, "associated_with", None), Edge(run_id, agent, "associated_with"))
                for side in (up, down):
                    if run_id in side:
                        side[agent] = min(side.get(agent, side[run_id]), side[run_id])
        outputs: dict[str, set[str]] = defaultdict(set)
        inputs: dict[str, set[str]] = defaultdict(set)
        for edge in list(edges.values()):
            if edge.kind == "generated":
                outputs[edge.target].add(edge.source)
            elif edge.kind == "used":
                inputs[edge.source].add(edge.target)
        for run_id, made in outputs.items():
            for output in made:
                for used in inputs.get(run_id, ()):
                    if output != used:
                        edge = Edge(output, used, "derived_from", run_id)
                        edges.setdefault((output, used, "derived_from", run_id), edge)
        return Graph(origin, direction, depth, nodes, sorted(edges.values()), up, down)


def _artifact_node(version: ArtifactVersion) -> Node:
    attributes = {
        "name": version.name,
        "version": version.version,
        "type": version.type,
        "kind": version.kind,
        "path": version.path,
        "digest": version.digest,
        "size": version.size,
        "created_at": version.created_at,
        "author": version.author,
    }
    return Node(version.ref, "artifact", version.ref, attributes)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


# -- the lineage digest ----------------------------------------------------------------------------


def lineage_digest(conn: Connection, ref: str) -> str:
    """The Merkle digest of ``ref``'s whole upstream graph (see the module docstring)."""
    found = walk(conn, ref, direction="up")
    return merkle(found)[found.origin]


def merkle(graph: Graph) -> dict[str, str]:
    """The lineage digest of every node of an unlimited upstream graph, each node hashed once.

    Only an upstream walk without a depth limit holds every ancestor of each of its nodes. A cycle
    (a run that read back a file it wrote, unchanged) is cut where the walk meets a node already
    on its path: that parent contributes the digest of ``{"cycle": identity}`` instead."""
    if graph.direction != "up" or graph.depth is not None:
        raise ValueError("lineage digests need an upstream graph without a depth limit")
    done: dict[str, str] = {}
    on_path: set[str] = set()
    stack: list[tuple[str, bool]] = [(graph.origin, False)]
    while stack:
        node_id, expanded = stack.pop()
        if node_id in done or (not expanded and node_id in on_path):
            continue
        parents = sorted({e.target for e in graph.parents(node_id) if e.kind != "associated_with"})
        if not expanded:
            on_path.add(node_id)
            stack.append((node_id, True))
            stack.extend((p, False) for p in reversed(parents) if p not in done and p not in on_path)
            continue
        upstream = []
        for parent in parents:
            if parent in done:
                upstream.append(done[parent])
            else:  # still on the path: a cycle
                upstream.append(digest_json({"cycle": graph.nodes[parent].identity}))
        done[node_id] = digest_json({"node": graph.nodes[node_id].identity, "upstream": sorted(upstream)})
        on_path.discard(node_id)
    return done


# -- column lineage --------------------------------------------------------------------------------


def columns(conn: Connection, ref: str, column: str, *, depth: int | None = None) -> ColumnLineage:
    """Walk ``column_lineage`` back from one column of a version, one query per hop, to the source
    columns: those no recorded run computed from anything."""
    check_depth(depth)
    version = refs.resolve(conn, ref)
    _check_column(conn, version, column)
    origin = ColumnRef(version.ref, column)
    seen, frontier = {origin}, [origin]
    hops: list[ColumnHop] = []
    sources: list[ColumnRef] = []
    distance = 0
    while frontier and (depth is None or distance < depth):
        distance += 1
        found: dict[ColumnRef, list[Any]] = defaultdict(list)
        for chunk in _chunks([(x.artifact, x.column) for x in frontier]):
            for row in conn.execute(_COLUMNS, {"ids": chunk}):
                found[ColumnRef(row.output, row.column)].append(row)
        following = []
        for item in frontier:
            if not found.get(item):
                sources.append(item)
                continue
            for row in found[item]:
                parent = ColumnRef(row.input, row.input_column)
                hops.append(ColumnHop(distance, row.run_id, item, parent))
                if parent not in seen:
                    seen.add(parent)
                    following.append(parent)
        frontier = following
    return ColumnLineage(origin, sorted(hops), sorted(sources), sorted(frontier))


def _check_column(conn: Connection, version: ArtifactVersion, column: str) -> None:
    """Refuse a column the version is known not to have (by its record manifest or its lineage)."""
    known = {item["name"] for item in (version.records or {}).get("columns") or []}
    c = column_lineage.c
    known |= set(conn.execute(sa.select(c.column).where(c.output == version.ref).distinct()).scalars())
    known |= set(conn.execute(sa.select(c.input_column).where(c.input == version.ref).distinct()).scalars())
    if known and column not in known:
        close = difflib.get_close_matches(column, sorted(known), n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UsageError(
            f"{version.ref} has no column {column!r}", hint=hint + f"its columns are: {', '.join(sorted(known))}"
        )
