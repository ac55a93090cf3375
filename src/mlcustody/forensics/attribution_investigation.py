"""`custody investigate attribution`: which training records raised and lowered one prediction, and by how much.

The investigator names a model version and either a logged decision or a file of inputs. This reloads
the model safely and its exact training rows (``decision_records``), attributes the prediction over
them (``forensics.attribution``, the method chosen by model family or by ``--method``), and traces the
records that most raised it and most lowered it back to their raw ``file:line``.

BoostIn's per-model work (every training row's leaf and derivative in every tree) is the one part too
costly to redo per query at scale, so it is stored as an object and found again through a key file
named after the model's digest, the training set's digest and the layout: a second query of the same
model version only routes the decision through the trees. The object is a cache: ``custody gc`` may
collect it, and it is then recomputed.

``exact`` is the ground truth no estimate can give: the same estimator class and parameters (with the
seed the training run recorded) refitted on the stored rows, first on all of them — which must
reproduce the registered model's prediction, else the seed or the row order is not what the run used
and the comparison would be meaningless — then without the top records of each side.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.engine import Connection

from mlcustody._canonical import digest_bytes
from mlcustody.errors import PathError, UsageError
from mlcustody.forensics import attribution, decision_records
from mlcustody.forensics.attribution import boostin
from mlcustody.ledger import kek
from mlcustody.ledger.decisions import queries as decision_queries
from mlcustody.ledger.registry import versions as registry
from mlcustody.metadata.runs import store as runs

SEED_PARAMS = ("seed", "random_state")  # run params that record the training seed, first found wins
_REPRODUCED_TOLERANCE = 1e-9
_NONE: list[attribution.Influence] = []


@dataclass(frozen=True)
class Query:
    """What to attribute: a model version, one decision or one file of inputs, and how."""

    model: str
    decision: str | None = None
    input_file: Path | None = None
    top: int = 10
    method: str | None = None  # a name of attribution.METHODS; None: the model family's own
    label: str | None = None
    exact: bool = False


@dataclass(frozen=True)
class Retrain:
    """The actual change of the prediction when ``side``'s records are left out and the model refitted."""

    side: str  # "raised" | "lowered"
    removed: int
    estimated: float | None  # the sum of their deltas (None for the knn baseline, which has no effect)
    actual: float


@dataclass(frozen=True)
class Exact:
    seed: int | None
    seed_from: str  # "run param NAME", "the model's random_state" or "none needed"
    output: str  # which output was refitted and compared
    reproduced: float  # the refit-on-all-rows prediction, equal to the registered model's
    retrains: list[Retrain]


@dataclass(frozen=True)
class Investigation:
    model: registry.ModelVersion
    decision: str | None
    input_file: str | None
    inputs: dict[str, Any]
    found: decision_records.DecisionRecords  # dataset, features, label, method, measure, prediction, records = []
    dataset_digest: str
    raised: list[decision_records.InfluentialRecord]
    lowered: list[decision_records.InfluentialRecord]
    similar: list[decision_records.InfluentialRecord]  # the knn baseline's neighbours, which have no sign
    cache: dict[str, Any] | None  # BoostIn: {object, reused}
    exact: Exact | None


def investigate(
    conn: Connection, store: decision_records.Store, query: Query, cache_dir: Path, keys: kek.Keyset | None = None
) -> Investigation:
    """Attribute one prediction (``keys``: the key-encryption keys that decrypt a logged decision's inputs)."""
    attribution.extremes(np.zeros(1), query.top)  # checks top before any work
    version = registry.get(conn, query.model)
    inputs, where = _inputs(conn, version, query, keys)
    found = decision_records.training_set(conn, store, version, list(inputs), query.label)
    x = decision_records.point(found, inputs, where)
    method = attribution.choose_method(found.model, query.method)
    rows, labels = found.rows(), found.labels()
    with decision_records.quiet_feature_names():
        prepared, cache = _prepare(store, found, method, rows, labels, cache_dir)
        prediction, delta = prepared.deltas(x)
        if method == "knn":  # a similarity has no sign: neighbours, not records that raised or lowered it
            similar, raised, lowered = attribution.largest(delta, query.top), _NONE, _NONE
        else:
            similar = _NONE
            raised, lowered = attribution.extremes(delta, query.top)
        exact = _exact(conn, found, np.asarray(x, dtype=np.float64), delta, raised, lowered) if query.exact else None
    summary = decision_records.DecisionRecords(
        found.dataset.ref, found.features, found.label, method, prepared.measure, prediction, []
    )
    return Investigation(
        model=version,
        decision=query.decision,
        input_file=str(query.input_file) if query.input_file is not None else None,
        inputs={name: inputs[name] for name in found.features},
        found=summary,
        dataset_digest=found.dataset.digest,
        raised=decision_records.traced(conn, store, found, raised),
        lowered=decision_records.traced(conn, store, found, lowered),
        similar=decision_records.traced(conn, store, found, similar),
        cache=cache,
        exact=exact,
    )


def _inputs(
    conn: Connection, version: registry.ModelVersion, query: Query, keys: kek.Keyset | None
) -> tuple[dict[str, Any], str]:
    if (query.decision is None) == (query.input_file is None):
        raise UsageError("name one decision or one input file", hint="pass --decision ID or --input FILE")
    if query.decision is not None:
        decision = decision_queries.get(conn, query.decision)
        if decision.ref != version.ref:
            raise UsageError(
                f"decision {decision.decision_id} was made by {decision.ref}, not {version.ref}",
                hint=f"attribute it with the model that made it: `custody investigate attribution {decision.ref} …`",
            )
        return decision_records.decision_inputs(conn, decision, keys), f"the inputs of decision {decision.decision_id}"
    assert query.input_file is not None
    return read_input_file(query.input_file), f"the inputs in {query.input_file}"


def read_input_file(path: Path) -> dict[str, Any]:
    """One decision's inputs: a JSON object of feature → value, or a CSV header with exactly one row."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PathError(f"cannot read {path}: {exc}", hint="pass a readable .json or .csv file") from exc
    if path.suffix.lower() == ".csv":
        table = list(csv.reader(text.splitlines()))
        if len(table) != 2 or len(table[0]) != len(table[1]):
            raise UsageError(
                f"{path} holds {max(len(table) - 1, 0)} row(s) under its header; one decision needs exactly one",
                hint="write a header line and one line of values with as many fields",
            )
        return {name: _number(value) for name, value in zip(*table, strict=True)}
    try:
        found = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}", hint='write an object such as {"income": 41.5}') from exc
    if not isinstance(found, dict) or not found:
        raise UsageError(f"{path} is not a JSON object of inputs", hint='write an object such as {"income": 41.5}')
    return found


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _prepare(
    store: decision_records.Store,
    found: decision_records.TrainingSet,
    method: str,
    rows: NDArray[Any],
    labels: NDArray[Any],
    cache_dir: Path,
) -> tuple[attribution.Attributor, dict[str, Any] | None]:
    if method != "boostin":
        return attribution.prepare(found.model, rows, labels, method=method), None
    parts = [boostin.FORMAT, found.version.digest, found.dataset.digest, found.label, *found.features]
    key = digest_bytes("\n".join(parts).encode("utf-8"))
    index = cache_dir / key
    digest = index.read_text(encoding="ascii").strip() if index.exists() else None
    reused = digest is not None and store.objects.exists(digest)
    if reused:
        assert digest is not None
        precomputed = boostin.Precomputed.load(store.objects.path(digest))
    else:
        features, targets = attribution.checked_training_data(found.model, rows, labels)
        precomputed = boostin.precompute(found.model, features, targets)
        digest = store.objects.put_bytes(precomputed.to_bytes())
        _write_index(index, digest)
    return boostin.attributor(found.model, precomputed), {"object": digest, "reused": reused}


def _write_index(index: Path, digest: str) -> None:
    """The key file, written whole or not at all, so concurrent queries never read half a digest."""
    index.parent.mkdir(parents=True, exist_ok=True)
    partial = index.with_name(f".{index.name}.{os.getpid()}")
    partial.write_text(digest + "\n", encoding="ascii")
    os.replace(partial, index)


def _exact(
    conn: Connection,
    found: decision_records.TrainingSet,
    x: NDArray[np.float64],
    delta: NDArray[np.float64],
    raised: list[attribution.Influence],
    lowered: list[attribution.Influence],
) -> Exact:
    """Refit without each side's records; first check that a refit on all rows reproduces the model."""
    from sklearn.base import clone

    model = found.model
    if not hasattr(model, "get_params"):
        raise UsageError(
            f"{type(model).__name__} is not a scikit-learn estimator, so it cannot be refitted here",
            hint="drop --exact",
        )
    seed, seed_from = _seed(conn, found)
    params = {"random_state": seed} if seed is not None and "random_state" in model.get_params() else {}
    rows, labels = found.rows(), found.labels()
    output, name = _output(model, x)
    registered = output(model, x)
    refit = clone(model).set_params(**params).fit(rows, labels)
    reproduced = output(refit, x)
    same = np.allclose(_outputs(refit, rows), _outputs(model, rows), rtol=_REPRODUCED_TOLERANCE, atol=0.0)
    if not same or abs(reproduced - registered) > _REPRODUCED_TOLERANCE * max(1.0, abs(registered)):
        raise UsageError(
            f"refitting {type(model).__name__} on the {len(labels)} stored rows of {found.dataset.ref} does not "
            f"reproduce the registered model (here {reproduced:.10g}, registered {registered:.10g}): the seed "
            f"({seed_from}) or the row order is not what the training run used",
            hint="record the seed as a run param (seed=…) and fit on the stored rows in order; or drop --exact",
        )
    retrains = []
    for side, items in (("raised", raised), ("lowered", lowered)):
        if not items:
            continue
        removed = [item.index for item in items]
        keep = np.setdiff1d(np.arange(len(labels)), removed)
        refit = clone(model).set_params(**params).fit(rows[keep], labels[keep])
        retrains.append(Retrain(side, len(removed), float(delta[removed].sum()), output(refit, x) - registered))
    return Exact(seed, seed_from, name, reproduced, retrains)


def _seed(conn: Connection, found: decision_records.TrainingSet) -> tuple[int | None, str]:
    """The seed to refit with: the model's own integer random_state, else the one the run recorded."""
    own = found.model.get_params().get("random_state", None)
    if isinstance(own, int | np.integer):
        return int(own), "the model's random_state"
    assert found.version.run_id is not None  # training_set refused models without a run
    params = runs.get(conn, found.version.run_id).params
    for name in SEED_PARAMS:
        if isinstance(params.get(name), int):
            return int(params[name]), f"run param {name}"
    return None, "none recorded"


def _outputs(model: Any, rows: NDArray[Any]) -> NDArray[np.float64]:
    """Every output a model gives the training rows: two fits that agree on all of them are the same model."""
    found = model.predict_proba(rows) if hasattr(model, "predict_proba") else model.predict(rows)
    return np.asarray(found, dtype=np.float64)


def _output(model: Any, x: NDArray[np.float64]) -> tuple[Any, str]:
    """The model output a refit is compared on, as attribution explains it: the logit where there is
    one, else the probability, of the positive class (binary) or of the class the model predicts on x;
    else the predicted value."""
    rows = x[None, :]
    if boostin.is_lightgbm(model):  # its logit is the raw score

        def raw(fitted: Any, point: NDArray[np.float64]) -> float:
            return float(np.ravel(fitted.predict(point[None, :], raw_score=True))[0])

        return raw, "raw score (logit or value)"
    if boostin.is_xgboost(model):  # its logit is the margin

        def margin(fitted: Any, point: NDArray[np.float64]) -> float:
            return float(np.ravel(fitted.predict(point[None, :], output_margin=True))[0])

        return margin, "raw score (logit or value)"
    if hasattr(model, "decision_function"):
        method, name = "decision_function", "logit"
    elif hasattr(model, "predict_proba"):
        method, name = "predict_proba", "probability"
    else:
        method, name = "predict", "predicted value"
    found = np.atleast_2d(getattr(model, method)(rows))
    column = found.shape[1] - 1 if found.shape[1] <= 2 else int(np.argmax(found[0]))
    if method != "predict" and hasattr(model, "classes_"):
        name += f" of class {model.classes_[max(column, 0) if found.shape[1] > 1 else -1]!r}"

    def score(fitted: Any, point: NDArray[np.float64]) -> float:
        return float(np.atleast_2d(getattr(fitted, method)(point[None, :]))[0, column])

    return score, name
