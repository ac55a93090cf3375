"""Record links between the tables a ``custody run`` read and wrote, inferred beside their manifests.

Over big tables the two slowest steps after the command ends are an output's manifest (read,
fingerprint, then a DuckDB sort and Parquet write) and the links inferred from it (polars joins).
The output's records are in memory as soon as the manifest's read is done, and both the sort and
the joins release the GIL, so the links of each output are inferred on a thread while its manifest
is sorted and written: side by side on two cores instead of one after the other. They are recorded
once the versions exist, since a link names both versions by reference; the notes name tables by
path, which is what the user's scripts call them.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlcustody.metadata.artifacts import ArtifactVersion
from mlcustody.metadata.runs.store import RecordLink

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcustody.lineage import inference
    from mlcustody.workspace.facade import Workspace
    from mlcustody.workspace.run_files import Versioned

_LINK_ROW_GROUP = 64 * 1024  # as the SDK's links: tracing one id reads one row group


@dataclass
class _Input:
    """An input table with records: held in memory, or read from its version when first needed."""

    rel: str
    records: pa.Table | None = None
    version: ArtifactVersion | None = None


class TableLinks:
    """The links from every input table with records to each output table, begun as each output's
    records are read (``output_read``) and recorded by ``finish``.

    Inputs are registered before any output is read (``version_files`` builds input manifests
    first), so a job started for an output pairs it with every input there will be."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws
        self._inputs: dict[str, _Input] = {}
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="custody-links")
        self._jobs: dict[str, Future[list[tuple[str, inference.Inferred]]]] = {}
        self._unique: inference.Uniqueness | None = None

    def add_input(self, rel: str, records: pa.Table | None = None, version: ArtifactVersion | None = None) -> None:
        """An input table with records, in memory or to read from ``version``."""
        self._inputs[rel] = _Input(rel, records, version)

    def output_read(self, rel: str, records: pa.Table) -> None:
        """The records of an output table are read: infer its links on the thread (unless an input
        new to the store was too big to hold and has no version yet to read it from). A later call for
        the same output (a keyed manifest refused, rebuilt keyless) replaces the earlier job."""
        ready = all(i.records is not None or i.version is not None for i in self._inputs.values())
        if self._inputs and ready:
            self._jobs[rel] = self._pool.submit(self._infer, rel, records)

    def finish(
        self, outputs: Sequence[tuple[str, ArtifactVersion]], versions: Mapping[str, ArtifactVersion], done: Versioned
    ) -> None:
        """Record the links of every output version with records (``versions``: the run's versions
        by path); an output whose links were not begun on the thread is linked now."""
        for source in self._inputs.values():
            source.version = source.version or versions[source.rel]
        try:
            for rel, version in outputs:
                if version.records is None:
                    continue
                if not self._inputs:
                    done.notes.append(f"{version.ref}: the run read no table with records, so they link to nothing")
                    continue
                job = self._jobs.get(rel) or self._pool.submit(self._infer, rel, self._ws.record_table(version))
                for input_rel, inferred in job.result():  # one thread infers, so Uniqueness needs no lock
                    read = self._inputs[input_rel].version
                    assert read is not None
                    self._record(version.ref, read.ref, inferred, done)
        finally:
            self._pool.shutdown(cancel_futures=True)
        self._ws.objects.barrier()

    def _infer(self, rel: str, records: pa.Table) -> list[tuple[str, inference.Inferred]]:
        from mlcustody.lineage import inference

        self._unique = self._unique or inference.Uniqueness()
        keys = self._ws.config.capture.keys
        found = []
        for source in self._inputs.values():
            if source.records is None and source.version is not None:
                source.records = self._ws.record_table(source.version)
            assert source.records is not None
            inferred = inference.infer(records, source.records, keys=keys, names=(rel, source.rel), unique=self._unique)
            found.append((source.rel, inferred))
        return found

    def _record(self, output: str, input: str, found: inference.Inferred, done: Versioned) -> None:
        done.notes.extend(found.notes)
        done.linked.append({"output": output, "input": input, "relation": found.relation, **found.evidence})
        if found.links is not None and found.relation is not None:
            buffer = io.BytesIO()
            found.links.write_parquet(buffer, row_group_size=_LINK_ROW_GROUP, statistics=True)
            digest = self._ws.objects.put_bytes(buffer.getvalue())
            done.links.append(RecordLink(output, input, found.relation, digest, found.links.height))
