"""``investigate slices``: where a model errs most, and what its training data looks like there.

The slices are found on the data given (the model's own predictions against its labels, see
``slices``); for the top ones the training set of the model's run is examined (``evidence``):
which training records the slice's conditions select, which raw sources they came from, and which
of them confident learning flags, down to their raw lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.engine import Connection

from mlcustody.forensics import bias, evidence, inputs, slices
from mlcustody.forensics.decision_records import _label as infer_label
from mlcustody.forensics.inputs import Cited, CitedModel, Dataset, LoadedModel, Store

MAX_CATEGORIES = 50  # a text column with more distinct values is an identifier, not a slice dimension
EXPLAINED = 3  # top slices whose training records are examined


@dataclass(frozen=True)
class SliceInvestigation:
    model: CitedModel
    read: list[Cited]
    label: str
    columns: list[str]  # the columns sliced on
    search: slices.SliceSearch
    training: list[evidence.SliceEvidence]  # for the first EXPLAINED slices


@dataclass(frozen=True)
class Options:
    """How slices are searched and how the training-side model is fitted."""

    max_conditions: int = 2
    alpha: float = 0.6
    min_support: int = 32
    top: int = 5
    exclude: tuple[str, ...] = ()  # columns the label-issue model must not see (group, source markers)
    seed: int = 0


def investigate(
    conn: Connection,
    store: Store,
    model_ref: str,
    data_ref: str,
    *,
    label: str | None = None,
    options: Options | None = None,
    trust_pickle: bool = False,
) -> SliceInvestigation:
    chosen = options or Options()
    loaded = inputs.load_model(conn, store, model_ref, trust_pickle=trust_pickle)
    data = inputs.dataset(conn, store, data_ref)
    target, found = search(loaded, data, label, chosen)
    train = evidence.with_flags(evidence.training(conn, store, loaded, target), list(chosen.exclude), seed=chosen.seed)
    explained = [evidence.slice_evidence(train, item) for item in found.slices[:EXPLAINED]]
    read = list(dict.fromkeys([Cited.of(loaded.artifact), Cited.of(data.version), train.cited]))
    return SliceInvestigation(loaded.cited(), read, target, slice_columns(data, target), found, explained)


def search(loaded: LoadedModel, data: Dataset, label: str | None, options: Options) -> tuple[str, slices.SliceSearch]:
    """The label column of ``data`` and the slices on which the model's predictions miss it most."""
    features = loaded.features(data)
    keys = list((data.version.records or {}).get("key") or ())
    target = infer_label(data.table, data.ref, keys, features, label)
    truth = inputs.column(data, target, "label")
    predicted = inputs.predict(loaded, data)
    positive = predicted == bias.positive_label(np.concatenate([truth, predicted]))
    columns = {name: inputs.column(data, name, "slice") for name in slice_columns(data, target)}
    found = slices.search(
        columns,
        (predicted != truth).astype(np.float64),
        predicted_positive=positive,
        alpha=options.alpha,
        min_support=options.min_support,
        max_conditions=options.max_conditions,
        top=options.top,
    )
    return target, found


def slice_columns(data: Dataset, label: str) -> list[str]:
    """Every value column but the label, the record keys and identifier-like text columns."""
    keys = set((data.version.records or {}).get("key") or ())
    chosen = []
    for name in data.values():
        if name == label or name in keys:
            continue
        values: Any = data.table.column(name)
        if not _numeric(values.type) and len(values.unique()) > MAX_CATEGORIES:
            continue
        chosen.append(name)
    return chosen


def _numeric(kind: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind))
