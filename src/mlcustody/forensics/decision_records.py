"""The training records that most influenced one decision, each followed back to its raw source lines.

An investigator starts from a contested decision, and the chain of custody already names the model
version and training run behind it. This goes one step further: it reloads the registered model
through a safe format (never unpickled), reads the training set that run used with its record ids,
attributes the decision's logged inputs over it (``forensics.attribution``), and walks each of the
most influential records back through record lineage to the raw ``file:LINE`` it came from.

Attribution indexes its deltas by training row, so the stored training set must be exactly the rows
the model was fitted on, in their stored order: a run that fits on ``read_parquet(run.use("trainset"))``
is; one that filters or shuffles the rows first is not, and would get plausible but wrong records.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray
from sqlalchemy.engine import Connection

from mlcustody.capture import frames, models
from mlcustody.errors import UsageError
from mlcustody.forensics import attribution
from mlcustody.ledger import kek
from mlcustody.ledger.decisions import queries as decision_queries
from mlcustody.ledger.registry import versions as registry
from mlcustody.lineage import record_trace
from mlcustody.metadata import ref_resolution as refs
from mlcustody.metadata.artifacts import ArtifactVersion
from mlcustody.metadata.runs import store as runs
from mlcustody.storage.objects import ObjectStore
from mlcustody.storage.records import manifest as record_manifest
from mlcustody.storage.records.table import ID_COLUMN

_FEATURES_ARE = "the features are the model's feature_names_in_, or else the names of the decision's inputs"


class Store(Protocol):
    """What is read from the workspace besides the database: a version's records and its files."""

    @property
    def objects(self) -> ObjectStore: ...

    def record_table(self, version: ArtifactVersion) -> pa.Table: ...

    def materialise(self, version: ArtifactVersion) -> Path: ...


@dataclass(frozen=True)
class InfluentialRecord:
    """One training record's part in the decision, its values, and where it came from."""

    rank: int
    record_id: str
    delta: float
    label: Any
    features: dict[str, Any]
    trace: record_trace.RecordNode  # the record followed back hop by hop, each hop with its run
    sources: list[record_trace.RecordNode]  # the distinct raw records at the ends of ``trace``


@dataclass(frozen=True)
class DecisionRecords:
    """The ``records`` most influential on one decision; ``measure`` says what their ``delta`` means."""

    dataset: str  # NAME@VERSION of the training set attributed over
    features: list[str]
    label: str
    method: str
    measure: str
    prediction: float | int | str  # the reloaded model's own output for the decision's inputs
    records: list[InfluentialRecord]


@dataclass(frozen=True)
class TrainingSet:
    """A registered model reloaded safely, with the stored training set it was fitted on, row for row."""

    version: registry.ModelVersion
    model: Any
    dataset: ArtifactVersion
    table: pa.Table
    features: list[str]
    label: str

    def rows(self) -> NDArray[Any]:
        """The feature matrix, columns in the model's feature order, rows in stored order."""
        return np.column_stack([self.table.column(name).to_numpy() for name in self.features])

    def labels(self) -> NDArray[Any]:
        return np.asarray(self.table.column(self.label).to_numpy())


def influential(
    conn: Connection,
    store: Store,
    decision: decision_queries.Decision,
    *,
    top: int,
    label: str | None = None,
    keys: kek.Keyset | None = None,
) -> DecisionRecords:
    """The ``top`` training records with the largest effect on ``decision``, traced to their sources
    (``keys``: the store's key-encryption keys, to decrypt the decision's inputs)."""
    inputs = decision_inputs(conn, decision, keys)
    found = training_set(conn, store, registry.get(conn, decision.ref), list(inputs), label)
    x = point(found, inputs, f"the inputs of decision {decision.decision_id}")
    with quiet_feature_names():  # the columns are in feature_names_in_ order: the names were checked here
        result = attribution.attribute(found.model, found.rows(), found.labels(), x, top)
    ranked = traced(conn, store, found, result.top)
    return DecisionRecords(
        found.dataset.ref, found.features, found.label, result.method, result.measure, result.prediction, ranked
    )


def training_set(
    conn: Connection, store: Store, version: registry.ModelVersion, inputs: list[str], label: str | None
) -> TrainingSet:
    """``version``'s model and the one training set with records its run read that holds every feature
    (the model's ``feature_names_in_``, else ``inputs``), with its label column (``label`` or the one
    column left)."""
    model = _load_model(conn, store, version)
    features = _feature_names(model, inputs)
    dataset, key = _training_set(conn, store.objects, version, features)
    table = store.record_table(dataset)
    return TrainingSet(version, model, dataset, table, features, _label(table, dataset.ref, key, features, label))


def point(found: TrainingSet, inputs: dict[str, Any], where: str) -> list[Any]:
    """One decision's inputs as the model's feature vector; ``where`` names them in an error."""
    return [_input(inputs, where, name) for name in found.features]


def traced(
    conn: Connection, store: Store, found: TrainingSet, items: list[attribution.Influence]
) -> list[InfluentialRecord]:
    """Each influential row with its values, walked back through record lineage to its raw sources."""
    if not items:
        return []
    values = found.table.take([item.index for item in items]).to_pylist()
    with record_trace.tracer(conn, store.objects) as walk:
        return [
            _traced(walk, found.dataset.ref, rank, item.delta, row, found.features, found.label)
            for rank, (item, row) in enumerate(zip(items, values, strict=True), start=1)
        ]


@contextmanager
def quiet_feature_names() -> Iterator[None]:
    """Models fitted on a named frame warn when given plain rows; the columns were matched by name here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "X does not have valid feature names", UserWarning)
        yield


def decision_inputs(
    conn: Connection, decision: decision_queries.Decision, keys: kek.Keyset | None = None
) -> dict[str, Any]:
    """The decision's logged inputs: the point attribution explains, so without them there is nothing to do."""
    found = decision_queries.read_inputs(conn, decision, keys)
    if found is not None:
        return found
    if decision.payload_digest is None:
        state, hint = "not kept", "log decisions with their inputs (keep_inputs=True, the default) to attribute them"
    else:
        state, hint = "crypto-shredded", "their subject's data key was destroyed; by design they cannot be recovered"
    raise UsageError(f"the inputs of decision {decision.decision_id} were {state}; attribution needs them", hint=hint)


def _load_model(conn: Connection, store: Store, version: registry.ModelVersion) -> Any:
    """The registered model, read through ``capture.models`` so that a pickle is refused, not run."""
    artifact = refs.resolve(conn, version.artifact)
    if artifact.kind != "file":
        raise UsageError(
            f"{version.ref} is a directory of {artifact.file_count} files; attribution loads one model file",
            hint="register the fitted model as a single .skops file",
        )
    path = store.materialise(artifact)
    if models.detect_format(path) == "pickle":  # refused here, where no --trust-pickle is offered
        raise UsageError(
            f"{version.ref} is a pickle, which runs arbitrary code when loaded; attribution does not load it",
            hint="re-save the model with skops (mlcustody.save_model(model, 'model.skops')) and register that",
        )
    return models.load_model(path)


def _feature_names(model: Any, inputs: list[str]) -> list[str]:
    names = getattr(model, "feature_names_in_", None)
    return [str(name) for name in names] if names is not None else list(inputs)


def _input(inputs: dict[str, Any], where: str, name: str) -> Any:
    if name not in inputs:
        raise UsageError(
            f"{where} have no feature {name!r} (they have {', '.join(inputs)})",
            hint="the model was fitted with feature names: log every one of them as an input",
        )
    return inputs[name]


def _training_set(
    conn: Connection, objects: ObjectStore, version: registry.ModelVersion, features: list[str]
) -> tuple[ArtifactVersion, list[str]]:
    """The one dataset version with records, read by the training run, that holds every feature; and
    its record key columns."""
    if version.run_id is None:
        raise UsageError(
            f"model version {version.ref} has no training run, so its training data is not known",
            hint="register the model from the run that trained it: `custody model register NAME --run RUN`",
        )
    candidates = _read_with_records(conn, runs.get(conn, version.run_id))
    if not candidates:
        raise UsageError(
            f"training run {version.run_id} of {version.ref} read no dataset with a record manifest",
            hint="version the training set with records (`custody add PATH --records`, or run.output_records) "
            "and read it in the training run",
        )
    missing = {v.ref: [f for f in features if f not in _columns(objects, summary)] for v, summary in candidates}
    complete = [(v, summary) for v, summary in candidates if not missing[v.ref]]
    if not complete:
        lacking = "; ".join(f"{ref} has no column(s) {', '.join(names)}" for ref, names in missing.items())
        raise UsageError(f"no training set of {version.ref} holds every feature: {lacking}", hint=_FEATURES_ARE)
    if len(complete) > 1:
        raise UsageError(
            f"several training sets of {version.ref} hold every feature: {', '.join(v.ref for v, _ in complete)}",
            hint="attribution needs the one set of rows the model was fitted on; train from one dataset version",
        )
    dataset, summary = complete[0]
    return dataset, list(summary["key"] or ())


def _read_with_records(conn: Connection, run: runs.Run) -> list[tuple[ArtifactVersion, dict[str, Any]]]:
    """The versions the run read that have a record manifest, each with its manifest summary."""
    read = dict.fromkeys(item.artifact for item in run.files("input") if item.artifact is not None)
    versions = [refs.resolve(conn, ref) for ref in read]
    return [(v, v.records) for v in versions if v.records is not None]


def _columns(objects: ObjectStore, summary: dict[str, Any]) -> list[str]:
    """A version's value columns, from its record manifest, without reading the records themselves."""
    return list(record_manifest.values_schema(objects.path(summary["manifest"])).names)


def _label(table: pa.Table, ref: str, ids: list[str], features: list[str], label: str | None) -> str:
    """``label`` if the set has it, else the one column that is neither a feature nor a record id."""
    if label is not None:
        if label not in table.column_names or label == ID_COLUMN:
            choices = [c for c in table.column_names if c != ID_COLUMN]
            raise UsageError(f"{ref} has no column {label!r}", hint=f"choose one of {', '.join(choices)}")
        return label
    skip = {ID_COLUMN, *ids, *frames.id_columns(table), *features}
    left: list[str] = [c for c in table.column_names if c not in skip and not _identifier(table.column(c))]
    if len(left) == 1:
        return left[0]
    found = f"candidates: {', '.join(left)}" if left else "no column is left besides the features and record keys"
    raise UsageError(f"cannot tell which column of {ref} is the label ({found})", hint="name it with --label COL")


def _identifier(column: pa.ChunkedArray) -> bool:
    """A text column with a distinct value on every row names records (an application id), it labels none."""
    text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    return text and len(column) > 1 and column.null_count == 0 and len(column.unique()) == len(column)


def _traced(
    walk: record_trace.Tracer,
    ref: str,
    rank: int,
    delta: float,
    row: dict[str, Any],
    features: list[str],
    label: str,
) -> InfluentialRecord:
    record_id = str(row[ID_COLUMN])
    node = walk.back(ref, record_id, record_trace.MAX_DEPTH)
    ends = {(end.ref, end.record_id): end for end in node.sources()}
    sources = [ends[key] for key in sorted(ends)]
    return InfluentialRecord(rank, record_id, delta, row[label], {f: row[f] for f in features}, node, sources)
