"""One run's record and column lineage, kept while its dataframe code runs.

Record lineage travels with the data (the ``_rid`` columns, see ``capture.frames``). Column lineage
cannot: a frame does not remember how a column was computed. So the run keeps a map from column
name to the (version, column) pairs it was computed from: every column of a frame from
``use_records`` maps to itself, ``derive`` maps a new column to the sources of the columns its
expressions read (``Expr.meta.root_names()``), ``columns_from`` declares it for any other code.
Names are matched as they are when stored, or without a join suffix (``amount_right`` → ``amount``).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow.parquet as pq

from mlcustody.capture import frames
from mlcustody.errors import UsageError
from mlcustody.metadata.runs.store import ColumnLink, RecordLink
from mlcustody.workspace.results import RecordSpec

if TYPE_CHECKING:
    from mlcustody.metadata.artifacts import ArtifactVersion
    from mlcustody.workspace.tracking import Run

_LINK_ROW_GROUP = 64 * 1024  # small row groups: tracing one id reads one group


class RecordLineage:
    def __init__(self, run: Run) -> None:
        self.run = run
        self.origins: dict[str, set[tuple[str, str]]] = {}
        self.input_counts: dict[str, int] = {}
        self.inputs: dict[str, ArtifactVersion] = {}

    def read(self, version: ArtifactVersion, kind: str) -> Any:
        from mlcustody.storage.records.table import ID_COLUMN

        table = self.run.workspace.record_table(version)
        self.inputs[version.ref] = version
        self.input_counts[version.ref] = table.num_rows
        for column in table.column_names:
            if column != ID_COLUMN:
                self.origins.setdefault(column, set()).add((version.ref, column))
        return frames.as_frame(frames.qualify(table, version.ref, ID_COLUMN), kind)

    def derive(self, frame: Any, exprs: dict[str, Any]) -> Any:
        if not isinstance(frame, pl.DataFrame | pl.LazyFrame):
            raise UsageError("derive() takes a polars frame", hint="for pandas, assign then call run.columns_from()")
        for name, expr in exprs.items():
            roots = expr.meta.root_names() if isinstance(expr, pl.Expr) else []
            self.declare_columns(name, roots)
        return frame.with_columns(**exprs)

    def declare_columns(self, column: str, sources: Sequence[str]) -> None:
        found: set[tuple[str, str]] = set()
        for source in sources:
            found |= self._origin(source)
        self.origins[column] = found

    def write(
        self, frame: Any, *, name: str, path: str | Path | None, key: Sequence[str] | None, message: str
    ) -> ArtifactVersion:
        from mlcustody.storage.records import fingerprint as fp

        ws = self.run.workspace
        table = frames.to_arrow(frame)
        if not frames.id_columns(table):
            frames.links(table, [], {})  # raises the error that says how to keep the ids
        data = table.drop_columns(frames.id_columns(table))
        target = Path(os.path.abspath(path or ws.root / f"{name}.parquet"))
        rel = ws.relpath(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        pq.write_table(data, tmp)
        os.replace(tmp, target)
        spec = RecordSpec(key=tuple(key) if key else None, format="parquet")
        version = ws.add([target], name=name, type="dataset", message=message, records=spec, generated_by=self.run.id)
        output = version[0].version
        ids = fp.record_ids(data, key).to_pylist() if key else [f"{rel}#{i}" for i in range(data.num_rows)]
        records = [
            self._link(output, found.input, found.relation, found.table)
            for found in frames.links(table, ids, self.input_counts)
        ]
        columns = [
            ColumnLink(output.ref, column, ref, source)
            for column in data.column_names
            for ref, source in sorted(self._origin(column))
        ]
        self.run._writer.lineage(records, columns)
        return output

    def declare_records(
        self, output: str, input: str, output_ids: Sequence[str], input_ids: Sequence[str], relation: str
    ) -> None:
        if len(output_ids) != len(input_ids):
            raise UsageError(
                f"{len(output_ids)} output ids but {len(input_ids)} input ids",
                hint="give one input id per output id (repeat ids for joins and aggregations)",
            )
        ws = self.run.workspace
        table = pl.DataFrame(
            {"output_id": list(output_ids), "input_id": list(input_ids)},
            schema=pl.Schema({"output_id": pl.String, "input_id": pl.String}),
        )
        link = self._link(ws.resolve(output), ws.resolve(input).ref, relation, table.unique().sort("output_id"))
        self.run._writer.lineage([link], [])

    def _link(self, output: ArtifactVersion, input_ref: str, relation: str, table: pl.DataFrame) -> RecordLink:
        """Store the links of one (output, input) pair (``table`` sorted by output id), refusing lineage
        that would run backwards in time."""
        ws = self.run.workspace
        source = ws.resolve(input_ref)
        if source.ref == output.ref or (source.created_at, source.ref) > (output.created_at, output.ref):
            raise UsageError(
                f"{output.ref} cannot derive from {source.ref}: it is not older, so the lineage would form a cycle",
                hint="record lineage from the versions a run read to the versions it wrote",
            )
        buffer = io.BytesIO()
        table.write_parquet(buffer, row_group_size=_LINK_ROW_GROUP, statistics=True)
        digest = ws.objects.put_bytes(buffer.getvalue())
        return RecordLink(output.ref, source.ref, relation, digest, table.height)

    def _origin(self, column: str) -> set[tuple[str, str]]:
        return self.origins.get(column) or self.origins.get(frames.base_column(column)) or set()
