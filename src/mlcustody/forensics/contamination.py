"""``investigate contamination``: what in a dataset version is not what it should be — exact and
conflicting duplicates, near-duplicates, overlap with another version (train/test leakage) — and,
through record lineage (recorded or inferred links alike), the raw sources and lines it came from.

- **Exact duplicates**: records whose content (every value column but the record key) has the same
  canonical record fingerprint. With ``label``, records equal on everything but the label that carry
  different labels are **conflicting duplicates**, the sharpest sign of flipped labels.
- **Near-duplicates**: ``near_duplicates`` (MinHash, bands chosen for ≥ 99 % recall at the threshold,
  exact Jaccard check) over one representative of each exact-duplicate group.
- **Leakage** (``against``): records of the other version whose content is in this one (the ratio is
  deepchecks' ``TrainTestSamplesMix``: its rows found here / its rows), those with a near-duplicate
  here, and — what only custody can tell — those made from the same raw source record as a record
  here, with the shared raw lines.
- **Suspect sources**: each raw source's share among the copies against the rest (lift, one-sided
  Fisher, Bonferroni). The first record of a group or pair, in the version's order, is taken as the
  original and the others as its copies, so a source that resells someone else's records shows up.
  With ``by_source``, each source's share of the dataset and of every one-condition slice (numeric
  columns at deciles), Bonferroni over sources × slices.

Over 400 lines on purpose: one investigation whose findings (duplicates, near-duplicates, leakage
across datasets, source profiles) are all computed over the same loaded ``_Table`` and fingerprints;
most of the length is its result types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from numpy.typing import NDArray
from sqlalchemy.engine import Connection

from mlcustody.errors import UsageError
from mlcustody.forensics import inputs, near_duplicates, slices, sources, suspects
from mlcustody.forensics.evidence import RawLine
from mlcustody.forensics.inputs import Cited, Dataset, Store
from mlcustody.storage.records import fingerprint as fp
from mlcustody.storage.records.table import ID_COLUMN

MAX_LISTED = 200  # groups, pairs and shared lines listed in full (the counts are always complete)
SIGNIFICANT = 1e-6  # corrected p below which a source is named a suspect
MIN_INSIDE = 5  # a source-in-slice share is tested only with at least this many records inside
MAX_BINS = 10


@dataclass(frozen=True)
class Member:
    """A record as the report lists it: its id, its label (when one was named) and its raw lines."""

    record_id: str
    label: Any
    raw: list[RawLine]


@dataclass(frozen=True)
class DuplicateGroup:
    fingerprint: str  # of the content compared (for conflicts: without the label)
    size: int
    labels: list[Any]  # the distinct labels in the group (empty without a label column)
    records: list[Member]


@dataclass(frozen=True)
class Duplicates:
    """Exact (or, for conflicts, exact-but-for-the-label) duplicate groups and whose records they are."""

    columns: list[str]  # what was compared
    groups: int
    records: int  # records in some group
    surplus: int  # records beyond the first of each group
    listed: list[DuplicateGroup]  # largest first, at most MAX_LISTED
    by_source: list[sources.SourceShare]  # inside = the copies: every record of a group but its first


@dataclass(frozen=True)
class NearPair:
    jaccard: float
    differing: list[str]  # the columns whose values differ
    first: Member
    second: Member


@dataclass(frozen=True)
class NearDuplicates:
    banding: near_duplicates.Banding
    compared: int  # distinct contents searched (one per exact-duplicate group)
    candidates: int  # candidate pairs verified exactly
    pairs: int  # accepted (exact Jaccard ≥ threshold)
    records: int  # records in some accepted pair
    truncated_buckets: int
    listed: list[NearPair]  # most similar first, at most MAX_LISTED
    by_source: list[sources.SourceShare]  # inside = the copies: the second record of each pair


@dataclass(frozen=True)
class SharedLine:
    """A raw source record that feeds records of both versions."""

    source: str
    record_id: str
    locator: str | None
    dataset_records: list[str]
    against_records: list[str]


@dataclass(frozen=True)
class SourceOverlap:
    source: str
    path: str | None
    shared: int  # raw records of this source feeding both versions
    against_records: int  # records of the other version reached through them


@dataclass(frozen=True)
class Leakage:
    against: str
    columns: list[str]  # content compared
    rows: int  # records of the other version
    exact: int  # its records whose content is here
    exact_ratio: float
    near: int  # its records (not exact) with a near-duplicate here
    near_ratio: float
    lineage: int  # its records made from a raw record that also made a record here
    lineage_ratio: float
    by_source: list[SourceOverlap]
    lines: list[SharedLine]  # at most MAX_LISTED


@dataclass(frozen=True)
class SliceSource:
    """One raw source's share of one slice of the dataset."""

    slice: str
    conditions: list[slices.Condition]
    size: int
    share: sources.SourceShare  # p_adjusted: Bonferroni over every source × slice tested


@dataclass(frozen=True)
class SourceProfile:
    source: str
    path: str | None
    records: int
    share: float  # of the dataset's records


@dataclass(frozen=True)
class Suspect:
    """A raw source over-represented among the contaminated records."""

    source: str
    path: str | None
    finding: str  # exact | conflicting | near
    share: sources.SourceShare


@dataclass(frozen=True)
class ContaminationInvestigation:
    read: list[Cited]
    dataset: str
    rows: int
    label: str | None
    exact: Duplicates
    conflicting: Duplicates | None  # with a label only
    near: NearDuplicates
    leakage: Leakage | None
    suspects: list[Suspect]
    sources: list[SourceProfile] | None  # with by_source
    slices: list[SliceSource] | None  # with by_source: most significant first


@dataclass(frozen=True)
class _Table:
    """A version's records with their origins, as every part of the investigation needs them."""

    data: Dataset
    ids: list[str]
    origins: sources.Origins
    members: dict[str, NDArray[np.bool_]]
    label: NDArray[Any] | None

    def member(self, row: int) -> Member:
        label = None if self.label is None else _scalar(self.label[row])
        return Member(self.ids[row], label, [RawLine(*item) for item in self.origins.raw(self.ids[row])])

    def mix(self, inside: NDArray[np.bool_]) -> list[sources.SourceShare]:
        return sources.mix(self.origins, self.ids, inside, self.members)


def investigate(
    conn: Connection,
    store: Store,
    dataset_ref: str,
    *,
    against: str | None = None,
    label: str | None = None,
    threshold: float = 0.8,
    by_source: bool = False,
    seed: int = 0,
) -> ContaminationInvestigation:
    """Duplicates, near-duplicates, leakage into ``against`` and suspect sources of ``dataset_ref``."""
    if not 0 < threshold <= 1:
        raise UsageError(
            f"--threshold {threshold} is not a similarity", hint="give a Jaccard between 0 and 1, e.g. 0.8"
        )
    here = _load(conn, store, dataset_ref, label)
    columns = content_columns(here.data)
    fingerprints = np.asarray(fp.fingerprints(here.data.table.select(columns)).to_numpy(zero_copy_only=False))
    exact = _duplicates(here, fingerprints, columns, None)
    conflicting = None
    if label is not None:
        without = [c for c in columns if c != label]
        features = np.asarray(fp.fingerprints(here.data.table.select(without)).to_numpy(zero_copy_only=False))
        conflicting = _duplicates(here, features, without, label)
    near = _near(here, fingerprints, columns, threshold, seed)
    leakage, read = None, [Cited.of(here.data.version)]
    if against is not None:
        other = _load(conn, store, against, None)
        leakage = _leakage(here, other, threshold, seed)
        read.append(Cited.of(other.data.version))
    found: list[tuple[str, Duplicates | NearDuplicates]] = [("exact", exact), ("near", near)]
    if conflicting is not None:
        found.append(("conflicting", conflicting))
    suspects_found = [
        Suspect(share.source, share.path, name, share)
        for name, part in found
        for share in part.by_source
        if share.p_adjusted < SIGNIFICANT and share.lift > 1
    ]
    profile = _profile(here) if by_source else None
    in_slices = _slices(here, label) if by_source else None
    return ContaminationInvestigation(
        read, here.data.ref, len(here.ids), label, exact, conflicting, near, leakage, suspects_found, profile, in_slices
    )


def content_columns(data: Dataset) -> list[str]:
    """What makes two records the same: every value column but the record key."""
    keys = set((data.version.records or {}).get("key") or ())
    return [name for name in data.values() if name not in keys]


def _load(conn: Connection, store: Store, ref: str, label: str | None) -> _Table:
    data = inputs.dataset(conn, store, ref)
    values = inputs.column(data, label, "label") if label is not None else None
    ids = [str(v) for v in data.table.column(ID_COLUMN).to_pylist()]
    origins = sources.Origins(conn, store.objects, data.ref)
    return _Table(data, ids, origins, sources.memberships(origins, ids), values)


def _duplicates(here: _Table, fingerprints: NDArray[Any], columns: list[str], label: str | None) -> Duplicates:
    """Groups of records with equal ``fingerprints``; with ``label``, only groups whose labels differ."""
    frame = pl.DataFrame({"fp": fingerprints, "row": np.arange(len(fingerprints))})
    if label is not None and here.label is not None:
        frame = frame.with_columns(label=pl.Series([str(v) for v in here.label]))
    grouped = frame.group_by("fp").agg(pl.col("row").sort(), *([pl.col("label").n_unique()] if label else []))
    grouped = grouped.filter(pl.col("row").list.len() > 1)
    if label is not None:
        grouped = grouped.filter(pl.col("label") > 1)
    grouped = grouped.with_columns(size=pl.col("row").list.len()).sort(["size", "fp"], descending=[True, False])
    rows_of = grouped["row"].to_list()
    later = np.zeros(len(here.ids), dtype=bool)  # every record of a group but its first: the copies
    for rows in rows_of:
        later[rows[1:]] = True
    listed = [
        DuplicateGroup(
            digest,
            len(rows),
            sorted({str(here.label[r]) for r in rows}) if here.label is not None and label is not None else [],
            [here.member(r) for r in rows],
        )
        for digest, rows in zip(grouped["fp"].to_list()[:MAX_LISTED], rows_of[:MAX_LISTED], strict=True)
    ]
    records = sum(len(rows) for rows in rows_of)
    return Duplicates(columns, len(rows_of), records, int(later.sum()), listed, here.mix(later))


def _near(here: _Table, fingerprints: NDArray[Any], columns: list[str], threshold: float, seed: int) -> NearDuplicates:
    """Near-duplicate pairs among the distinct contents (the first record of each exact group)."""
    first = _first_of_each(fingerprints)
    codes = near_duplicates.encode([here.data.table.column(c) for c in columns])[first]
    found = near_duplicates.find(codes, threshold, seed=seed)
    left, right = first[found.left], first[found.right]
    inside = np.zeros(len(here.ids), dtype=bool)
    inside[left] = inside[right] = True
    later = np.zeros(len(here.ids), dtype=bool)  # the second record of each pair: the copy
    later[right] = True
    order = np.lexsort((right, left, -found.jaccard))[:MAX_LISTED]
    table = here.data.table
    listed = [
        NearPair(
            float(found.jaccard[k]),
            _differing(table, columns, int(left[k]), int(right[k])),
            here.member(int(left[k])),
            here.member(int(right[k])),
        )
        for k in order
    ]
    return NearDuplicates(
        found.banding,
        int(first.size),
        found.candidates,
        int(found.left.size),
        int(inside.sum()),
        found.truncated_buckets,
        listed,
        here.mix(later),
    )


def _leakage(here: _Table, other: _Table, threshold: float, seed: int) -> Leakage:
    """Records of ``other`` whose content, near-content or raw origin is also ``here``'s."""
    mine = content_columns(here.data)
    columns = [c for c in content_columns(other.data) if c in mine]
    if not columns:
        raise UsageError(
            f"{here.data.ref} and {other.data.ref} share no value column to compare",
            hint=f"their columns are {', '.join(mine)} and {', '.join(other.data.values())}",
        )
    ours = np.asarray(fp.fingerprints(here.data.table.select(columns)).to_numpy(zero_copy_only=False))
    theirs = np.asarray(fp.fingerprints(other.data.table.select(columns)).to_numpy(zero_copy_only=False))
    exact = np.isin(theirs, ours)
    near = _near_across(here.data.table, other.data.table, columns, ours, exact, threshold, seed)
    shared, lines = _shared_origins(here, other)
    reached = np.isin(np.asarray(other.ids, dtype=object), np.asarray(sorted(set(shared["against_id"].to_list()))))
    by_source = [
        SourceOverlap(
            source, here.origins.path(source), int(part["source_id"].n_unique()), int(part["against_id"].n_unique())
        )
        for (source,), part in sorted(shared.group_by("source_ref"), key=lambda item: str(item[0][0]))
    ]
    n = len(other.ids)
    return Leakage(
        other.data.ref,
        columns,
        n,
        int(exact.sum()),
        _ratio(exact.sum(), n),
        int(near.sum()),
        _ratio(near.sum(), n),
        int(reached.sum()),
        _ratio(reached.sum(), n),
        by_source,
        lines,
    )


def _near_across(
    ours: pa.Table,
    theirs: pa.Table,
    columns: list[str],
    fingerprints: NDArray[Any],
    exact: NDArray[np.bool_],
    threshold: float,
    seed: int,
) -> NDArray[np.bool_]:
    """For each record of ``theirs`` not exactly ours, whether it has a near-duplicate among ours."""
    first = _first_of_each(fingerprints)
    pending = np.flatnonzero(~exact)
    both = near_duplicates.encode([_concat(ours.column(c), theirs.column(c)) for c in columns])
    codes = np.concatenate([both[first], both[ours.num_rows + pending]])
    found = near_duplicates.find(codes, threshold, seed=seed)
    across = (found.left < first.size) & (found.right >= first.size)
    near = np.zeros(theirs.num_rows, dtype=bool)
    near[pending[found.right[across] - first.size]] = True
    return near


def _shared_origins(here: _Table, other: _Table) -> tuple[pl.DataFrame, list[SharedLine]]:
    """Raw source records behind records of both versions: the joined table and the listed lines."""
    mine = here.origins.table.rename({"record_id": "dataset_id"})
    theirs = other.origins.table.rename({"record_id": "against_id"})
    shared = mine.join(theirs, on=["source_ref", "source_id"], how="inner")
    grouped = (
        shared.group_by("source_ref", "source_id")
        .agg(pl.col("dataset_id").unique().sort(), pl.col("against_id").unique().sort())
        .sort("source_ref", "source_id")
        .head(MAX_LISTED)
    )
    lines = [
        SharedLine(source, sid, here.origins.locate(source, sid), list(ours), list(theirs_))
        for source, sid, ours, theirs_ in grouped.iter_rows()
    ]
    return shared, lines


def _profile(here: _Table) -> list[SourceProfile]:
    total = max(len(here.ids), 1)
    return [
        SourceProfile(source, here.origins.path(source), int(mask.sum()), float(mask.sum() / total))
        for source, mask in sorted(here.members.items())
    ]


def _slices(here: _Table, label: str | None) -> list[SliceSource]:
    """Every raw source's share of every one-condition slice, Bonferroni over all tested, most significant first."""
    found: list[tuple[slices.Condition, int, sources.SourceShare]] = []
    for name in suspects.slice_columns(here.data, label or ""):
        binned = slices.bin_column(name, inputs.column(here.data, name, "slice"), MAX_BINS)
        for code, condition in enumerate(binned.conditions):
            inside = binned.codes == code
            found += [(condition, int(inside.sum()), s) for s in here.mix(inside) if s.inside >= MIN_INSIDE]
    tests = max(len(found), 1)
    listed = [
        SliceSource(condition.text, [condition], size, _replace_adjusted(share, min(share.p_value * tests, 1.0)))
        for condition, size, share in found
    ]
    listed.sort(key=lambda s: (s.share.p_value, -s.share.lift, s.slice, s.share.source))
    return listed


def _replace_adjusted(share: sources.SourceShare, adjusted: float) -> sources.SourceShare:
    import dataclasses

    return dataclasses.replace(share, p_adjusted=adjusted)


def _concat(ours: pa.ChunkedArray, theirs: pa.ChunkedArray) -> pa.ChunkedArray:
    """One column of both versions, in our type where theirs converts to it, else both as text."""
    try:
        theirs = theirs.cast(ours.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        ours, theirs = ours.cast(pa.large_string()), theirs.cast(pa.large_string())
    return pa.chunked_array([*ours.chunks, *theirs.chunks], type=ours.type)


def _first_of_each(fingerprints: NDArray[Any]) -> NDArray[np.int64]:
    """The row of the first record of each distinct content, in row order."""
    _, first = np.unique(fingerprints, return_index=True)
    return np.sort(first).astype(np.int64)


def _differing(table: pa.Table, columns: list[str], a: int, b: int) -> list[str]:
    return [c for c in columns if table.column(c)[a].as_py() != table.column(c)[b].as_py()]


def _ratio(count: Any, total: int) -> float:
    return float(count) / total if total else 0.0


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
