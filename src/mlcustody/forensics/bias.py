"""Group fairness of a model's decisions: per-group rates, their disparities, and bootstrap intervals.

Every number is fairlearn's (``fairlearn.metrics``: ``selection_rate``, ``true_positive_rate``,
``false_positive_rate``, ``MetricFrame.difference/ratio`` with both methods, demographic parity and
equalized odds), computed from the four confusion counts of each group instead of one pandas
group-by per metric: the rates depend on nothing else, so one ``bincount`` pass serves them all and
1M rows take a fraction of a second. fairlearn's edge cases are kept: a group without actual
positives has a TPR of 0 (not NaN), a ratio of two zero rates is NaN.

The 95 % intervals come from a bootstrap stratified by group: each replicate redraws every group's
confusion counts from a multinomial with that group's own proportions, which is exactly resampling
its rows with replacement, at a cost independent of the number of rows. The seed is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.engine import Connection

from mlcustody.errors import UsageError
from mlcustody.forensics import inputs
from mlcustody.forensics.inputs import Cited, CitedModel, Store
from mlcustody.ledger import kek
from mlcustody.ledger.decisions import queries as decision_queries

FloatArray = NDArray[np.float64]
METRICS = ("selection_rate", "tpr", "fpr", "accuracy")
_SMALL_GROUP = 30
_TP, _FP, _FN, _TN = range(4)


@dataclass(frozen=True)
class Interval:
    """A two-sided 95 % bootstrap percentile interval."""

    low: float
    high: float


@dataclass(frozen=True)
class GroupRates:
    """One group's count and rates; the label-based rates are None when no label was given."""

    group: str
    count: int
    positives: int | None
    selection_rate: float
    tpr: float | None
    fpr: float | None
    accuracy: float | None
    intervals: dict[str, Interval] = field(default_factory=dict)


@dataclass(frozen=True)
class Disparity:
    """One fairness measure across groups, by fairlearn's two methods, with the interval of the first."""

    name: str
    between_groups: float
    to_overall: float
    interval: Interval | None


@dataclass(frozen=True)
class Bias:
    sensitive: str
    label: str | None
    pos_label: Any
    overall: GroupRates
    groups: list[GroupRates]
    disparities: list[Disparity]
    warnings: list[str]
    bootstrap: dict[str, Any]


def measure(
    sensitive: NDArray[Any],
    y_pred: NDArray[Any],
    y_true: NDArray[Any] | None = None,
    *,
    name: str = "group",
    label: str | None = None,
    replicates: int = 200,
    seed: int = 0,
) -> Bias:
    """Rates per value of ``sensitive`` and the disparities between them, as fairlearn computes them."""
    pos = positive_label(y_pred if y_true is None else np.concatenate([y_true, y_pred]))
    values, codes = np.unique(sensitive, return_inverse=True)
    if values.size == 0:
        raise UsageError("there are no records to measure", hint="choose a dataset version with records")
    cells = confusion_cells(codes, values.size, y_pred == pos, None if y_true is None else y_true == pos)
    labelled = y_true is not None
    rates = cell_rates(cells)
    overall_rates = cell_rates(cells.sum(axis=0))
    draws = _bootstrap(cells, replicates, seed)
    boot = None if draws is None else (cell_rates(draws), cell_rates(draws.sum(axis=1)))
    groups = [
        _group(str(values[g]), cells[g], {m: rates[m][g] for m in METRICS}, labelled, boot and boot[0], g)
        for g in range(values.size)
    ]
    overall = _group("overall", cells.sum(axis=0), {m: overall_rates[m] for m in METRICS}, labelled, None, None)
    return Bias(
        name,
        label,
        pos.item() if isinstance(pos, np.generic) else pos,
        overall,
        groups,
        disparities(rates, overall_rates, boot, labelled),
        _warnings(groups, labelled, name),
        {"replicates": replicates, "seed": seed, "method": "multinomial, stratified by group", "level": 0.95},
    )


def positive_label(values: NDArray[Any]) -> Any:
    """fairlearn's positive label: 1 for 0/1 labels, else the larger of the two values."""
    found = np.unique(values)
    if found.size > 2:
        shown = ", ".join(str(v) for v in found[:5].tolist())
        raise UsageError(
            f"bias metrics need two classes, found {found.size} ({shown}…)",
            hint="investigate a binary decision, or binarise the label and the predictions first",
        )
    return 1 if set(found.tolist()) <= {0, 1} else found.max()


def confusion_cells(
    codes: NDArray[np.intp], groups: int, selected: NDArray[Any], actual: NDArray[Any] | None
) -> FloatArray:
    """(groups, 4) counts of TP, FP, FN, TN; without labels every record counts as an actual negative."""
    truth = np.zeros_like(selected, dtype=bool) if actual is None else actual.astype(bool)
    cell = np.where(selected, np.where(truth, _TP, _FP), np.where(truth, _FN, _TN))
    return np.bincount(codes * 4 + cell, minlength=groups * 4).reshape(groups, 4).astype(np.float64)


def cell_rates(cells: FloatArray) -> dict[str, FloatArray]:
    """The four rates from confusion counts of any leading shape; 0 where a rate has no denominator,
    as scikit-learn's normalised confusion matrix (and so fairlearn) gives."""
    tp, fp, fn, tn = (cells[..., i] for i in range(4))
    n = tp + fp + fn + tn
    return {
        "selection_rate": _ratio(tp + fp, n),
        "tpr": _ratio(tp, tp + fn),
        "fpr": _ratio(fp, fp + tn),
        "accuracy": _ratio(tp + tn, n),
    }


def disparities(
    rates: dict[str, FloatArray],
    overall: dict[str, FloatArray],
    boot: tuple[dict[str, FloatArray], dict[str, FloatArray]] | None,
    labelled: bool,
) -> list[Disparity]:
    """Demographic parity and (with labels) equalized odds and equal opportunity, difference and ratio."""

    def diff(metric: str, r: dict[str, FloatArray], o: dict[str, FloatArray]) -> tuple[FloatArray, FloatArray]:
        return difference(r[metric], o[metric])

    def ratio_(metric: str, r: dict[str, FloatArray], o: dict[str, FloatArray]) -> tuple[FloatArray, FloatArray]:
        return ratio(r[metric], o[metric])

    def odds_diff(r: dict[str, FloatArray], o: dict[str, FloatArray]) -> tuple[FloatArray, FloatArray]:
        (tb, to), (fb, fo) = difference(r["tpr"], o["tpr"]), difference(r["fpr"], o["fpr"])
        return np.maximum(tb, fb), np.maximum(to, fo)

    def odds_ratio(r: dict[str, FloatArray], o: dict[str, FloatArray]) -> tuple[FloatArray, FloatArray]:
        (tb, to), (fb, fo) = ratio(r["tpr"], o["tpr"]), ratio(r["fpr"], o["fpr"])
        return np.minimum(tb, fb), np.minimum(to, fo)

    measures: list[tuple[str, Any]] = [
        ("demographic_parity_difference", lambda r, o: diff("selection_rate", r, o)),
        ("demographic_parity_ratio", lambda r, o: ratio_("selection_rate", r, o)),
    ]
    if labelled:
        measures += [
            ("equalized_odds_difference", odds_diff),
            ("equalized_odds_ratio", odds_ratio),
            ("equal_opportunity_difference", lambda r, o: diff("tpr", r, o)),
            ("equal_opportunity_ratio", lambda r, o: ratio_("tpr", r, o)),
        ]
    found = []
    for name, compute in measures:
        between, to_overall = compute(rates, overall)
        interval = None if boot is None else _interval(compute(*boot)[0])
        found.append(Disparity(name, float(between), float(to_overall), interval))
    return found


def difference(by_group: FloatArray, overall: FloatArray) -> tuple[FloatArray, FloatArray]:
    """fairlearn's ``difference``: max − min across groups, and the largest |group − overall|."""
    between = by_group.max(axis=-1) - by_group.min(axis=-1)
    return between, np.abs(by_group - np.asarray(overall)[..., None]).max(axis=-1)


def ratio(by_group: FloatArray, overall: FloatArray) -> tuple[FloatArray, FloatArray]:
    """fairlearn's ``ratio``: min / max across groups, and the smallest group/overall folded below 1
    (NaN where both sides are 0, and groups with NaN skipped, as pandas' ``min`` skips them)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        between = by_group.min(axis=-1) / by_group.max(axis=-1)
        each = by_group / np.asarray(overall)[..., None]
        folded = np.where(each > 1, 1 / each, each)
    nan = np.isnan(folded)
    lowest = np.where(nan, np.inf, folded).min(axis=-1)
    return between, np.where(nan.all(axis=-1), np.nan, lowest)


def _ratio(top: FloatArray, bottom: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1), 0.0)


def _bootstrap(cells: FloatArray, replicates: int, seed: int) -> FloatArray | None:
    """(replicates, groups, 4) confusion counts, each group's rows redrawn with replacement."""
    if replicates <= 0:
        return None
    rng = np.random.default_rng(seed)
    draws = np.empty((replicates, *cells.shape))
    for g, counts in enumerate(cells):
        total = int(counts.sum())
        draws[:, g, :] = rng.multinomial(total, counts / total, size=replicates)
    return draws


def _interval(values: FloatArray) -> Interval:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return Interval(float("nan"), float("nan"))
    low, high = np.percentile(finite, [2.5, 97.5])
    return Interval(float(low), float(high))


def _group(
    name: str,
    counts: FloatArray,
    rates: dict[str, Any],
    labelled: bool,
    boot: dict[str, FloatArray] | None,
    index: int | None,
) -> GroupRates:
    intervals = {}
    if boot is not None and index is not None:
        shown = METRICS if labelled else ("selection_rate",)
        intervals = {m: _interval(boot[m][:, index]) for m in shown}
    positives = int(counts[_TP] + counts[_FN]) if labelled else None
    return GroupRates(
        name,
        int(counts.sum()),
        positives,
        float(rates["selection_rate"]),
        float(rates["tpr"]) if labelled else None,
        float(rates["fpr"]) if labelled else None,
        float(rates["accuracy"]) if labelled else None,
        intervals,
    )


def _warnings(groups: list[GroupRates], labelled: bool, name: str) -> list[str]:
    found = []
    for group in groups:
        if labelled and group.positives == 0:
            found.append(
                f"{name}={group.group} has no actual positives: its TPR is 0, as fairlearn sets it, "
                "which makes equal-opportunity and equalized-odds ratios 0"
            )
        if group.count < _SMALL_GROUP:
            found.append(f"{name}={group.group} has only {group.count} records: its rates are uncertain")
    return found


@dataclass(frozen=True)
class BiasInvestigation:
    """``investigate bias``: the model version, what was measured on, and the result."""

    model: CitedModel
    read: list[Cited]  # every version the numbers came from: the model file, the dataset (if any)
    source: str  # "dataset NAME@V" or "decision log of NAME@V"
    result: Bias
    decisions: dict[str, int] | None  # with --decisions: {used, not_kept, shredded, without_label}


def investigate(
    conn: Connection,
    store: Store,
    model_ref: str,
    *,
    sensitive: str,
    data_ref: str | None = None,
    label: str | None = None,
    from_decisions: bool = False,
    trust_pickle: bool = False,
    replicates: int = 200,
    seed: int = 0,
    keys: kek.Keyset | None = None,
) -> BiasInvestigation:
    """Bias of ``model_ref`` on a dataset version (its own predictions) or on its logged decisions."""
    if from_decisions == (data_ref is not None):
        raise UsageError("give either --data REF or --decisions", hint="--data measures the model on a dataset")
    loaded = inputs.load_model(conn, store, model_ref, trust_pickle=trust_pickle)
    cited, model = inputs.Cited.of(loaded.artifact), loaded.cited()
    if data_ref is not None:
        data = inputs.dataset(conn, store, data_ref)
        groups = inputs.column(data, sensitive, "sensitive")
        truth = inputs.column(data, label, "label") if label is not None else None
        predicted = inputs.predict(loaded, data)
        found = measure(groups, predicted, truth, name=sensitive, label=label, replicates=replicates, seed=seed)
        return BiasInvestigation(model, [cited, inputs.Cited.of(data.version)], f"dataset {data.ref}", found, None)
    groups, predicted, truth, counts = _logged(conn, loaded.version.ref, sensitive, label, keys)
    found = measure(groups, predicted, truth, name=sensitive, label=label, replicates=replicates, seed=seed)
    return BiasInvestigation(model, [cited], f"decision log of {loaded.version.ref}", found, counts)


def _logged(
    conn: Connection, ref: str, sensitive: str, label: str | None, keys: kek.Keyset | None
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any] | None, dict[str, int]]:
    """Sensitive value, output and (if logged as an input) label of every readable decision of ``ref``."""
    counts = {"used": 0, "not_kept": 0, "shredded": 0, "without_label": 0}
    groups: list[Any] = []
    outputs: list[Any] = []
    labels: list[Any] = []
    seen: set[str] = set()
    for decision in decision_queries.listing(conn, model=ref, limit=None):
        found = decision_queries.read_inputs(conn, decision, keys)
        if found is None:
            counts["not_kept" if decision.payload_key is None else "shredded"] += 1
            continue
        seen.update(found)
        if sensitive not in found or (label is not None and label not in found):
            counts["without_label" if sensitive in found else "not_kept"] += 1
            continue
        groups.append(found[sensitive])
        outputs.append(decision.output)
        labels.append(found[label] if label is not None else None)
        counts["used"] += 1
    if not groups:
        names = ", ".join(sorted(seen)) or "none readable"
        raise UsageError(
            f"no logged decision of {ref} has an input {sensitive!r}" + (f" and {label!r}" if label else ""),
            hint=f"the logged inputs are {names}; log the sensitive column as an input, or use --data",
        )
    truth = np.asarray(labels) if label is not None else None
    return np.asarray(groups), np.asarray(outputs), truth, counts
