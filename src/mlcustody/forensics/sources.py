"""Where a set of records came from: every record of a dataset version walked back through record
lineage to the raw source records (and their ``file:LINE``), and the source mix of a subset against
the rest — each raw source's share inside and outside, its lift and a one-sided Fisher test.

``lineage.record_trace`` follows one record hop by hop, one look-up per link; an investigation needs all
records at once, so this walks whole link tables: for each run that made the version, its
``(output_id, input_id)`` pairs are joined to the origins of the input version, recursively, each
version's origins computed once. A version that no run made is a source: its records are their own
origins, located by its record manifest.

Source concentration of a subset S of N records, for source s with n_s records of which a in S:
lift = (a/|S|)/(n_s/N); p = P[X ≥ a] for X hypergeometric(N, n_s, |S|), which is
``fisher_exact([[a, |S|−a], [n_s−a, N−|S|−n_s+a]], alternative="greater")``; Bonferroni over sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import sqlalchemy as sa
from numpy.typing import NDArray
from sqlalchemy.engine import Connection

from mlcustody.errors import UsageError
from mlcustody.lineage.record_trace import MAX_DEPTH
from mlcustody.metadata import ref_resolution as refs
from mlcustody.metadata.schema import record_lineage
from mlcustody.storage.objects import ObjectStore

_SCHEMA = {"record_id": pl.String, "source_ref": pl.String, "source_id": pl.String}


@dataclass(frozen=True)
class SourceShare:
    """One raw source version's part in a subset of records against the rest."""

    source: str  # NAME@VERSION of the raw source version
    path: str | None  # its workspace path
    inside: int  # records of the subset with an origin in this source
    outside: int
    share_inside: float
    share_outside: float
    lift: float
    rate: float  # the share of this source's records that are in the subset (e.g. its flag rate)
    p_value: float  # one-sided Fisher exact: over-represented in the subset
    p_adjusted: float  # Bonferroni over the sources compared


class Origins:
    """Every record of one version with the raw source records it came from, and their locators."""

    def __init__(self, conn: Connection, objects: ObjectStore, ref: str) -> None:
        self.conn, self.objects = conn, objects
        self._walked: dict[str, pl.DataFrame] = {}
        self.version = refs.resolve(conn, ref)
        self.table = self._walk(self.version.ref, MAX_DEPTH)  # record_id, source_ref, source_id
        self._locators: dict[str, dict[str, str]] = {}

    @property
    def derived(self) -> bool:
        """True when some run made this version's records from others (else it is its own source)."""
        return bool(self._rows(self.version.ref))

    def sources(self) -> list[str]:
        return sorted(set(self.table["source_ref"].to_list()))

    def membership(self, record_ids: list[str], source: str) -> NDArray[np.bool_]:
        """For each of ``record_ids``, whether it has an origin in ``source``."""
        having = set(self.table.filter(pl.col("source_ref") == source)["record_id"].to_list())
        return np.fromiter((rid in having for rid in record_ids), dtype=bool, count=len(record_ids))

    def path(self, source: str) -> str | None:
        """The workspace path of a raw source version."""
        return refs.resolve(self.conn, source).path

    def raw(self, record_id: str) -> list[tuple[str, str, str | None]]:
        """The raw records behind one record: (source version, source record id, ``file:LINE``)."""
        rows = self.table.filter(pl.col("record_id") == record_id).sort("source_ref", "source_id")
        return [(ref, sid, self.locate(ref, sid)) for ref, sid in rows.select("source_ref", "source_id").iter_rows()]

    def locate(self, source: str, source_id: str) -> str | None:
        """``file:LINE`` (or ``file#ROW``) of a source record, from the source's record manifest."""
        if source not in self._locators:
            version = refs.resolve(self.conn, source)
            if version.records is None:
                self._locators[source] = {}
            else:
                manifest = pl.read_parquet(
                    self.objects.path(version.records["manifest"]), columns=["record_id", "source"]
                )
                self._locators[source] = dict(manifest.iter_rows())
        return self._locators[source].get(source_id)

    def _walk(self, ref: str, depth: int) -> pl.DataFrame:
        if ref in self._walked:
            return self._walked[ref]
        rows = self._rows(ref)
        if not rows or depth <= 0:
            found = self._own(ref)
        else:
            parts = []
            for row in rows:
                links = pl.read_parquet(self.objects.path(row.links), columns=["output_id", "input_id"])
                upstream = self._walk(row.input, depth - 1)
                joined = links.join(upstream, left_on="input_id", right_on="record_id", how="inner")
                parts.append(joined.select(pl.col("output_id").alias("record_id"), "source_ref", "source_id"))
            found = pl.concat(parts).unique() if parts else pl.DataFrame(schema=_SCHEMA)
        self._walked[ref] = found
        return found

    def _own(self, ref: str) -> pl.DataFrame:
        version = refs.resolve(self.conn, ref)
        if version.records is None:
            raise UsageError(
                f"{ref} has no record manifest, so its records cannot be traced to raw lines",
                hint=f"add it with records: `custody add {version.path or version.name} --records --key ID`",
            )
        ids = pl.read_parquet(self.objects.path(version.records["manifest"]), columns=["record_id"])
        return ids.with_columns(pl.lit(ref).alias("source_ref"), pl.col("record_id").alias("source_id"))

    def _rows(self, ref: str) -> list[Any]:
        query = sa.select(record_lineage).where(record_lineage.c.output == ref).order_by(record_lineage.c.input)
        return list(self.conn.execute(query))


def memberships(origins: Origins, record_ids: list[str]) -> dict[str, NDArray[np.bool_]]:
    """For every raw source, which of ``record_ids`` have an origin in it (to reuse over many subsets)."""
    return {source: origins.membership(record_ids, source) for source in origins.sources()}


def mix(
    origins: Origins,
    record_ids: list[str],
    inside: NDArray[np.bool_],
    members: dict[str, NDArray[np.bool_]] | None = None,
) -> list[SourceShare]:
    """The share of every raw source among the records ``inside`` and among the rest, most over-
    represented first. ``record_ids`` are records of ``origins.version``; ``members`` is their
    ``memberships`` when the caller already has it."""
    found = []
    members = members if members is not None else memberships(origins, record_ids)
    sources = sorted(members)
    total, size = len(record_ids), int(inside.sum())
    for source in sources:
        member = members[source]
        a, n_s = int((member & inside).sum()), int(member.sum())
        share_in = a / size if size else 0.0
        share_out = (n_s - a) / (total - size) if total > size else 0.0
        lift = share_in / (n_s / total) if n_s else 0.0
        p = fisher_greater(a, n_s, size, total)
        path = refs.resolve(origins.conn, source).path
        rate = a / n_s if n_s else 0.0
        adjusted = min(p * len(sources), 1.0)
        found.append(SourceShare(source, path, a, n_s - a, share_in, share_out, lift, rate, p, adjusted))
    found.sort(key=lambda s: (s.p_value, -s.lift, s.source))
    return found


def fisher_greater(a: int, n_s: int, size: int, total: int) -> float:
    """P[X ≥ a], X ~ hypergeometric(total, n_s, size): Fisher's one-sided exact test."""
    from scipy.stats import hypergeom

    return float(hypergeom.sf(a - 1, total, n_s, size))
