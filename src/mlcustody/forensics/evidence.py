"""The training-side evidence behind a suspect slice: the slice's training records against the rest —
label rate, source mix through record lineage, label issues per source — and the flagged training
records with the raw ``file:LINE`` each came from.

The training set is the one the model's run read (``decision_records``' rule: the dataset version
with records that holds every feature), so the evidence is about exactly the rows it was fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.engine import Connection

from mlcustody.forensics import bias, inputs, labels, sources
from mlcustody.forensics.decision_records import _label as infer_label
from mlcustody.forensics.decision_records import _training_set as training_version
from mlcustody.forensics.inputs import Cited, Dataset, LoadedModel, Store
from mlcustody.forensics.slices import Slice
from mlcustody.storage.records.table import ID_COLUMN

MAX_LISTED = 1000


@dataclass(frozen=True)
class RawLine:
    source: str  # NAME@VERSION of the raw source version
    record_id: str
    locator: str | None  # file:LINE (or file#ROW)


@dataclass(frozen=True)
class FlaggedRecord:
    """A training record whose label confident learning doubts, with where it came from."""

    record_id: str
    label: Any
    given_probability: float  # the out-of-fold probability of its given label
    raw: list[RawLine]


@dataclass(frozen=True)
class LabelReport:
    """Label issues of a set of training records: counts, per raw source, the records themselves."""

    label: str
    features: list[str]  # the columns the out-of-fold model used
    model: str
    rows: int
    flagged: int
    rate: float
    by_source: list[sources.SourceShare]  # inside = flagged; rate = the source's flag rate
    records: list[FlaggedRecord]  # lowest probability of the given label first, at most MAX_LISTED
    listed_limit: int


@dataclass(frozen=True)
class SliceEvidence:
    """The training records a slice's conditions select, against the rest of the training set."""

    slice: str
    training_set: str
    missing_columns: list[str]  # slice columns the training set lacks (then nothing is selected)
    inside: int
    outside: int
    label_rate_inside: float  # share of positive labels
    label_rate_outside: float
    source_mix: list[sources.SourceShare]
    label_issues: list[sources.SourceShare]  # flagged records of the slice, per raw source
    flagged: list[FlaggedRecord]  # the slice's flagged records, lowest given-label probability first


@dataclass(frozen=True)
class Training:
    """A model's training set with its records' origins and (once computed) its label issues."""

    data: Dataset
    label: str
    origins: sources.Origins
    record_ids: list[str]
    flags: labels.Flags | None = None

    @property
    def cited(self) -> Cited:
        return Cited.of(self.data.version)


def training(conn: Connection, store: Store, loaded: LoadedModel, label: str | None) -> Training:
    """The training set of ``loaded``'s run, its label column, and every record's raw origins."""
    features = [str(f) for f in getattr(loaded.model, "feature_names_in_", [])]
    version, key = training_version(conn, store.objects, loaded.version, features)
    data = Dataset(version, store.record_table(version))
    chosen = label if label is not None and label in data.values() else None
    target = infer_label(data.table, version.ref, key, features, chosen)
    ids = [str(v) for v in data.table.column(ID_COLUMN).to_pylist()]
    return Training(data, target, sources.Origins(conn, store.objects, version.ref), ids)


def with_flags(found: Training, exclude: list[str], *, folds: int = 5, seed: int = 0) -> Training:
    """``found`` with confident-learning flags from a model that leaves ``exclude`` and the keys out."""
    flags = labels.flag(model_columns(found.data, found.label, exclude), _label_values(found), folds=folds, seed=seed)
    return Training(found.data, found.label, found.origins, found.record_ids, flags)


def model_columns(data: Dataset, label: str, exclude: list[str]) -> dict[str, NDArray[Any]]:
    """The columns a label-issue model may see: not the label, the record keys or ``exclude``."""
    keys = set((data.version.records or {}).get("key") or ())
    for name in exclude:
        inputs.column(data, name, "excluded")
    skip = {label, *keys, *exclude}
    return {name: inputs.column(data, name, "feature") for name in data.values() if name not in skip}


def label_report(found: Training, inside: NDArray[np.bool_] | None = None) -> LabelReport:
    """The flags of ``found`` (restricted to ``inside``, when given) per raw source, with their records."""
    assert found.flags is not None, "with_flags() first"
    flags = found.flags
    subset = np.ones(len(found.record_ids), dtype=bool) if inside is None else inside
    flagged = flags.mask & subset
    by_source = sources.mix(found.origins, found.record_ids, flagged) if subset.all() else []
    count = int(flagged.sum())
    return LabelReport(
        found.label,
        flags.features,
        f"standardised logistic regression, {flags.folds}-fold out-of-fold (seed {flags.seed}); cleanlab "
        "find_label_issues, prune by noise rate",
        int(subset.sum()),
        count,
        count / max(int(subset.sum()), 1),
        by_source,
        flagged_records(found, flagged),
        MAX_LISTED,
    )


def flagged_records(found: Training, mask: NDArray[np.bool_]) -> list[FlaggedRecord]:
    """The records under ``mask``, least believed label first, each with its raw lines."""
    assert found.flags is not None
    rows = np.flatnonzero(mask)
    order = rows[np.lexsort((rows, found.flags.given_probability[rows]))][:MAX_LISTED]
    values = _label_values(found)
    return [
        FlaggedRecord(
            found.record_ids[i],
            values[i].item() if isinstance(values[i], np.generic) else values[i],
            float(found.flags.given_probability[i]),
            [RawLine(*item) for item in found.origins.raw(found.record_ids[i])],
        )
        for i in order
    ]


def slice_evidence(found: Training, item: Slice) -> SliceEvidence:
    """What the training records inside ``item`` look like against the rest."""
    columns = {c.column for c in item.conditions}
    missing = sorted(columns - set(found.data.values()))
    inside = (
        np.zeros(len(found.record_ids), dtype=bool)
        if missing
        else item.mask({name: inputs.column(found.data, name, "slice") for name in columns})
    )
    values = _label_values(found)
    positive = values == bias.positive_label(values)
    share_sources = sources.mix(found.origins, found.record_ids, inside)
    issues: list[sources.SourceShare] = []
    flagged: list[FlaggedRecord] = []
    if found.flags is not None and inside.any():
        in_slice_flags = found.flags.mask & inside
        issues = sources.mix(found.origins, found.record_ids, in_slice_flags)
        flagged = flagged_records(found, in_slice_flags)
    return SliceEvidence(
        item.text,
        found.data.ref,
        missing,
        int(inside.sum()),
        int((~inside).sum()),
        float(positive[inside].mean()) if inside.any() else 0.0,
        float(positive[~inside].mean()) if (~inside).any() else 0.0,
        share_sources,
        issues,
        flagged,
    )


def _label_values(found: Training) -> NDArray[Any]:
    return inputs.column(found.data, found.label, "label")
