"""Which records of which termed versions stand behind a model: terms travel down the lineage.

At artifact level a termed version upstream of the model (``lineage.graph``) taints all of it. Where
record links exist (``record_lineage``), the walk goes back record by record from every record of the
model's training inputs, so a model trained on 10 records of a 1M-record source is named with those
10. Link objects are read with DuckDB; each version's reached ids are a DuckDB table, so 10 datasets
of 1M records cost a few scans, not Python loops.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import duckdb
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody.lineage import graph
from mlcustody.metadata import ref_resolution as refs
from mlcustody.metadata.schema import record_lineage
from mlcustody.storage.objects import ObjectStore

SAMPLE = 100  # record ids named per finding; the count is always exact


@dataclass(frozen=True)
class Reach:
    """How much of a version reaches the model: every record (``level`` artifact: no record links lead
    there) or the records the links lead to (``level`` record)."""

    ref: str
    level: str  # artifact | record
    records: int | None  # None: the version has no record manifest, so its records are not counted
    table: str | None  # the DuckDB table of reached record ids (level record)


class Walk:
    """One propagation: the model's upstream graph and a DuckDB connection holding reached ids."""

    def __init__(self, conn: Connection, objects: ObjectStore, origin: str) -> None:
        self.conn = conn
        self.objects = objects
        self.graph = graph.walk(conn, origin, direction="up")
        self.duck = duckdb.connect()
        self._tables: dict[str, str] = {}
        self._whole: dict[str, str] = {}  # versions reached with every record: a query of their manifest
        self._reach: dict[str, Reach] | None = None

    def close(self) -> None:
        self.duck.close()

    def artifacts(self) -> list[str]:
        return sorted(self.graph.ids("artifact", side="up") - {self.graph.origin})

    def reach(self) -> dict[str, Reach]:
        """Every artifact version upstream of the model, with how many of its records reach it."""
        if self._reach is None:
            self._reach = self._walk()
        return self._reach

    def ids(
        self, reach: Reach, where: str = "", params: list[object] | None = None, limit: int | None = None
    ) -> list[str]:
        """Reached record ids of a version, optionally filtered (``where`` over column ``record_id``)."""
        if reach.table is None:
            return []
        query = f"SELECT record_id FROM {reach.table} {where} ORDER BY 1" + (f" LIMIT {limit}" if limit else "")
        return [row[0] for row in self.duck.execute(query, params or []).fetchall()]

    def count(self, reach: Reach, where: str = "", params: list[object] | None = None) -> int:
        if reach.table is None:
            return 0
        found = self.duck.execute(f"SELECT count(*) FROM {reach.table} {where}", params or []).fetchone()
        return int(found[0]) if found else 0

    def _walk(self) -> dict[str, Reach]:
        starts = self._training_inputs()
        rows = self._links(starts)
        # Kahn's order over output → input, so a version is read only once all that came from it is in.
        pending: dict[str, int] = defaultdict(int)
        for row in rows.values():
            for item in row:
                pending[item[0]] += 1
        ready = sorted(v for v in starts if pending[v] == 0)
        full: set[str] = set(starts)  # versions reached with all of their records
        while ready:
            version = ready.pop()
            for input_ref, links in rows.get(version, []):
                if self._follow(version, input_ref, links, version in full):
                    full.add(input_ref)
                pending[input_ref] -= 1
                if pending[input_ref] == 0:
                    ready.append(input_ref)
        found: dict[str, Reach] = {}
        for ref in self.artifacts():
            found_version = refs.resolve(self.conn, ref)
            total = int(found_version.records["count"]) if found_version.records else None
            table = self._tables.get(ref)
            if ref in self._whole:  # every record reached: its record manifest lists them
                found[ref] = Reach(ref, "record", total, self._whole[ref])
            elif table is None:
                found[ref] = Reach(ref, "artifact", total, None)
            else:
                counted = self.duck.execute(f"SELECT count(*) FROM {table}").fetchone()
                found[ref] = Reach(ref, "record", int(counted[0]) if counted else 0, table)
        return found

    def _training_inputs(self) -> list[str]:
        """The versions the runs that made the model read (or the origin itself for a dataset)."""
        origin = self.graph.origin
        made = [e.target for e in self.graph.parents(origin) if e.kind == "generated"]
        inputs = {
            e.target
            for run in made
            for e in self.graph.parents(run)
            if e.kind == "used" and self.graph.nodes[e.target].kind == "artifact"
        }
        return sorted(inputs) if inputs else [origin]

    def _links(self, starts: list[str]) -> dict[str, list[tuple[str, str]]]:
        """Record-lineage rows reachable from ``starts``: output → [(input, links object)]."""
        found: dict[str, list[tuple[str, str]]] = {}
        frontier = set(starts)
        while frontier:
            query = sa.select(record_lineage.c.output, record_lineage.c.input, record_lineage.c.links).where(
                record_lineage.c.output.in_(sorted(frontier))
            )
            nxt: set[str] = set()
            for row in self.conn.execute(query):
                found.setdefault(row.output, []).append((row.input, row.links))
                if row.input not in found:
                    nxt.add(row.input)
            frontier = nxt - set(found)
        return found

    def _follow(self, output: str, input_ref: str, links: str, every: bool) -> bool:
        """Add to ``input_ref``'s reached ids the inputs of the links whose output was reached; True when
        that is every record of ``input_ref`` (then no table of ids is kept: its manifest is the list)."""
        path = str(self.objects.path(links))
        if input_ref in self._whole:
            return True
        if every and input_ref not in self._tables:
            version = refs.resolve(self.conn, input_ref)
            row = self.duck.execute("SELECT count(DISTINCT input_id) FROM read_parquet(?)", [path]).fetchone()
            if version.records is not None and row is not None and int(row[0]) == int(version.records["count"]):
                manifest = str(self.objects.path(version.records["manifest"])).replace("'", "''")
                self._whole[input_ref] = f"(SELECT record_id FROM read_parquet('{manifest}'))"
                return True
        table = self._table(input_ref)
        if every or output not in self._tables:
            select = "SELECT DISTINCT input_id FROM read_parquet(?)"
        else:
            select = (
                f"SELECT DISTINCT l.input_id FROM read_parquet(?) l SEMI JOIN {self._tables[output]} r "
                "ON l.output_id = r.record_id"
            )
        self.duck.execute(f"INSERT INTO {table} SELECT * FROM ({select}) EXCEPT SELECT record_id FROM {table}", [path])
        return False

    def _table(self, ref: str) -> str:
        if ref not in self._tables:
            name = f"reached_{len(self._tables)}"
            self.duck.execute(f"CREATE TEMP TABLE {name} (record_id VARCHAR)")
            self._tables[ref] = name
        return self._tables[ref]
