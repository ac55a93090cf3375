"""What every investigation reads: a registered model loaded safely, a dataset version's records with
their ids, the columns it is asked about, and the model's predictions on those records.

The investigations differ in what they compute, not in how they reach the evidence, so the look-ups
and their one-line errors live here once. Model loading and training-set discovery are those of
``decision_records`` (the same refusal of pickles, the same rule for which dataset a run trained on).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray
from sqlalchemy.engine import Connection

from mlcustody.capture import frames, models
from mlcustody.errors import UsageError
from mlcustody.forensics.decision_records import Store
from mlcustody.forensics.decision_records import _load_model as load_safely
from mlcustody.ledger.registry import versions as registry
from mlcustody.metadata import ref_resolution as refs
from mlcustody.metadata.artifacts import ArtifactVersion
from mlcustody.storage.records.table import ID_COLUMN

__all__ = ["Cited", "CitedModel", "Dataset", "LoadedModel", "Store", "column", "dataset", "load_model", "predict"]


@dataclass(frozen=True)
class Cited:
    """A version an investigation read, as its findings cite it: reference, type and digests."""

    ref: str
    type: str | None
    digest: str
    records: str | None  # digest of the record manifest, when the version has one

    @classmethod
    def of(cls, version: ArtifactVersion) -> Cited:
        return cls(version.ref, version.type, version.digest, (version.records or {}).get("manifest"))


@dataclass(frozen=True)
class CitedModel:
    """A registered model version as findings cite it: the version, its file, its run and attestation."""

    ref: str
    artifact: str
    digest: str
    run: str | None
    attestation: str  # object digest of the signed DSSE envelope
    lineage_digest: str


@dataclass(frozen=True)
class Dataset:
    """A dataset version and every one of its records, with the record id in ``record_id``."""

    version: ArtifactVersion
    table: pa.Table

    @property
    def ref(self) -> str:
        return self.version.ref

    def values(self) -> list[str]:
        """The value columns: neither the record id nor a lineage id column."""
        skip = {ID_COLUMN, *frames.id_columns(self.table)}
        return [name for name in self.table.column_names if name not in skip]


@dataclass(frozen=True)
class LoadedModel:
    """A registered model version, the artifact version of its file, and the fitted model itself."""

    version: registry.ModelVersion
    artifact: ArtifactVersion
    model: Any

    def cited(self) -> CitedModel:
        v = self.version
        return CitedModel(v.ref, v.artifact, v.digest, v.run_id, v.attestation, v.lineage_digest)

    def features(self, data: Dataset) -> list[str]:
        """The model's feature names, each checked to be a column of ``data``."""
        names = getattr(self.model, "feature_names_in_", None)
        if names is None:
            raise UsageError(
                f"{self.version.ref} does not record the names of its features",
                hint="fit the model on a pandas or polars frame so that feature_names_in_ names the columns",
            )
        features = [str(name) for name in names]
        for name in features:
            column(data, name, "feature")
        return features


def load_model(conn: Connection, store: Store, ref: str, *, trust_pickle: bool = False) -> LoadedModel:
    """The model version ``ref`` loaded through a safe format; a pickle only with ``trust_pickle``."""
    version = registry.get(conn, ref)
    artifact = refs.resolve(conn, version.artifact)
    if not trust_pickle:
        model = load_safely(conn, store, version)
    else:
        model = models.load_model(store.materialise(artifact), trust_pickle=True)
    return LoadedModel(version, artifact, model)


def dataset(conn: Connection, store: Store, ref: str) -> Dataset:
    """The version ``ref`` with its records; one without a record manifest says how to add one."""
    version = refs.resolve(conn, ref)
    return Dataset(version, store.record_table(version))


def column(data: Dataset, name: str, role: str) -> NDArray[Any]:
    """Column ``name`` of ``data`` as a numpy array; an unknown column names those there are."""
    if name not in data.values():
        raise UsageError(
            f"{data.ref} has no {role} column {name!r}", hint=f"its columns are {', '.join(data.values())}"
        )
    return np.asarray(data.table.column(name).to_numpy(zero_copy_only=False))


def predict(loaded: LoadedModel, data: Dataset) -> NDArray[Any]:
    """The model's own predictions for every record of ``data``, from its named feature columns."""
    import pandas as pd

    features = loaded.features(data)
    frame = pd.DataFrame({name: column(data, name, "feature") for name in features})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="sklearn")
        return np.asarray(loaded.model.predict(frame))
