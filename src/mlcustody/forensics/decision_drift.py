"""``investigate drift --decisions MODEL``: the inputs a model saw in service against the data it was
trained on — the training set its run read (``decision_records``' rule) as the reference, the inputs
of its logged decisions in a time window as the current sample, every statistic of ``drift``.

Only readable inputs count: a decision logged without inputs, or whose inputs were crypto-shredded,
is counted and left out, so the result states how much of the window it rests on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.engine import Connection

from mlcustody.errors import UsageError
from mlcustody.forensics import drift, inputs
from mlcustody.forensics.decision_records import _training_set as training_version
from mlcustody.forensics.inputs import Cited, CitedModel, Dataset, Store
from mlcustody.ledger import kek
from mlcustody.ledger.decisions import queries as decision_queries
from mlcustody.ledger.decisions.batch import normalise_time


@dataclass(frozen=True)
class Window:
    since: str | None
    until: str | None  # exclusive


@dataclass(frozen=True)
class DecisionCounts:
    used: int  # decisions whose inputs were read and compared
    not_kept: int  # logged without inputs
    shredded: int  # inputs crypto-shredded (their subject forgotten)
    incomplete: int  # readable, but without some compared column


@dataclass(frozen=True)
class DecisionDrift:
    """Drift of a model's served inputs against its training set."""

    model: CitedModel
    read: list[Cited]  # the model file, then the training set (the reference)
    training_set: str
    window: Window
    decisions: DecisionCounts
    columns: list[drift.ColumnDrift]
    evidently: Any  # evidently_compat.EvidentlyReport with --evidently-compatible, else None


def investigate(
    conn: Connection,
    store: Store,
    model_ref: str,
    *,
    since: str | None = None,
    until: str | None = None,
    columns: list[str] | None = None,
    trust_pickle: bool = False,
    keys: kek.Keyset | None = None,
    evidently: bool = False,
) -> DecisionDrift:
    """Every drift statistic of the decisions' inputs (in ``[since, until)``) against the training set;
    ``keys`` unwrap the log's data keys (``decision_subjects.keyset``)."""
    loaded = inputs.load_model(conn, store, model_ref, trust_pickle=trust_pickle)
    features = [str(f) for f in getattr(loaded.model, "feature_names_in_", [])]
    version, _ = training_version(conn, store.objects, loaded.version, features)
    training = Dataset(version, store.record_table(version))
    window = Window(_moment(since), _moment(until))
    logged = [
        d
        for d in decision_queries.listing(conn, model=loaded.version.ref, since=window.since, limit=None)
        if window.until is None or d.time < window.until
    ]
    if not logged:
        raise UsageError(
            f"{loaded.version.ref} has no logged decision in that window",
            hint="widen --since/--until, or list them with `custody decisions ls --model " + loaded.version.ref + "`",
        )
    rows, (not_kept, shredded) = _readable(conn, logged, keys)
    seen = sorted({name for row in rows for name in row})
    chosen = columns or features or [name for name in training.values() if name in seen]
    for name in chosen:
        inputs.column(training, name, "compared")
    complete = [row for row in rows if all(name in row for name in chosen)]
    counts = DecisionCounts(len(complete), not_kept, shredded, len(rows) - len(complete))
    if not complete or not chosen:
        raise UsageError(
            f"no readable decision of {loaded.version.ref} has the input(s) {', '.join(chosen) or '(none shared)'}",
            hint=f"the logged inputs are {', '.join(seen) or 'none readable'}; choose among them with --columns",
        )
    current = {name: np.asarray([row[name] for row in complete]) for name in chosen}
    pairs = [(name, inputs.column(training, name, "compared"), current[name]) for name in chosen]
    found = [drift.column(*pair) for pair in pairs]
    verdicts = drift.evidently_verdicts(pairs) if evidently else None
    read = [Cited.of(loaded.artifact), Cited.of(version)]
    return DecisionDrift(loaded.cited(), read, version.ref, window, counts, found, verdicts)


def _readable(
    conn: Connection, logged: list[decision_queries.Decision], keys: kek.Keyset | None
) -> tuple[list[dict[str, Any]], tuple[int, int]]:
    """The inputs of every decision that still has them; and how many had none kept, or shredded."""
    rows, not_kept, shredded = [], 0, 0
    for decision in logged:
        found = decision_queries.read_inputs(conn, decision, keys)
        if found is None:
            not_kept += decision.payload_key is None
            shredded += decision.payload_key is not None
            continue
        rows.append(found)
    return rows, (not_kept, shredded)


def _moment(value: str | None) -> str | None:
    """An RFC 3339 time as the log stores it; a bare date (``2026-04-01``) is its midnight UTC."""
    if value is None:
        return None
    return normalise_time(f"{value}T00:00:00Z" if len(value) == len("2026-04-01") else value)
