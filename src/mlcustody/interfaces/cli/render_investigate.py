"""How ``custody investigate`` looks: a short readable summary, the JSON document, the HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcustody.errors import PathError
from mlcustody.interfaces.cli import output
from mlcustody.interfaces.investigation_html import condition_text, number, page

if TYPE_CHECKING:
    from mlcustody.interfaces.investigations import Investigation


def show(found: Investigation, as_json: bool, html: Path | None) -> None:
    """The document as JSON, or the summary of its kind; and the HTML page when ``html`` is given."""
    if html is not None:
        try:
            html.write_text(page(found.document), encoding="utf-8")
        except OSError as exc:
            raise PathError(f"cannot write {html}: {exc.strerror}", hint="choose a writable file for --html") from exc
    if as_json:
        output.emit_json(found.document)
        return
    SUMMARIES[found.kind](found.document)
    output.line(f"report {found.report.ref} ({found.report.digest[:16]})" + (f", page {html}" if html else ""))


def cited(doc: dict[str, Any]) -> None:
    for item in doc["read"]:
        output.line(f"  read {item['ref']} ({item['type']}) {item['digest'][:16]}", style="dim")


def bias(doc: dict[str, Any]) -> None:
    result = doc["result"]
    output.line(f"bias of {doc['model']['ref']} by {result['sensitive']} on {doc['source']}", style="bold")
    cited(doc)
    rows = [
        [g["group"], g["count"], *(number(g[m]) for m in ("selection_rate", "tpr", "fpr", "accuracy"))]
        for g in [*result["groups"], result["overall"]]
    ]
    output.table(["group", "count", "selection", "TPR", "FPR", "accuracy"], rows)
    for item in result["disparities"]:
        interval = item["interval"]
        ci = f"  95 % [{number(interval['low'])}, {number(interval['high'])}]" if interval else ""
        output.line(f"  {item['name']}: {number(item['between_groups'])} (to overall {number(item['to_overall'])}){ci}")
    for text in result["warnings"]:
        output.line(f"  warning: {text}", style="yellow")
    if doc["decisions"]:
        output.line("  decisions: " + ", ".join(f"{k} {v}" for k, v in doc["decisions"].items()))


def drift(doc: dict[str, Any]) -> None:
    a, b = (item["ref"] for item in doc["read"])
    output.line(f"drift of {b} against {a}", style="bold")
    cited(doc)
    drift_table(doc)


def decision_drift(doc: dict[str, Any]) -> None:
    window = doc["window"]
    span = f" from {window['since'] or 'the first'} to {window['until'] or 'the last'}"
    output.line(f"drift of {doc['model']['ref']}'s decision inputs{span} against {doc['training_set']}", style="bold")
    cited(doc)
    output.line("  decisions: " + ", ".join(f"{k} {v}" for k, v in doc["decisions"].items()))
    drift_table(doc)


def evidently_table(doc: dict[str, Any]) -> None:
    found = doc.get("evidently")
    if not found:
        return
    rows = [
        [c["column"], c["column_type"], c["test"], number(c["score"]), c["threshold"], c["drifted"]]
        for c in found["columns"]
    ]
    output.table(["column", "type", "Evidently's test", "score", "threshold", "drifted"], rows)
    verdict = "drifted" if found["dataset_drift"] else "not drifted"
    output.line(
        f"  as Evidently: {found['drifted_columns']} of {len(found['columns'])} columns drifted; dataset {verdict}"
    )


def drift_table(doc: dict[str, Any]) -> None:
    rows = [
        [
            c["column"],
            c["kind"],
            *(number(c[k]) for k in ("psi", "ks", "ks_p", "chi2_p", "jensen_shannon")),
            number(c["wasserstein_normed"]),
        ]
        for c in doc["columns"]
    ]
    output.table(["column", "kind", "PSI", "KS", "KS p", "χ² p", "JS", "W₁/std"], rows)
    evidently_table(doc)


def slices(doc: dict[str, Any]) -> None:
    search = doc["search"]
    output.line(
        f"slices where {doc['model']['ref']} misses {doc['label']} (error rate {number(search['error_rate'])}, "
        f"{search['evaluated']:,} slices tested, {search['correction']})",
        style="bold",
    )
    cited(doc)
    slice_table(search["slices"])
    for item in doc["training"]:
        evidence(item)


def slice_table(items: list[dict[str, Any]]) -> None:
    rows = [
        [
            s["rank"],
            condition_text(s["conditions"]),
            s["size"],
            number(s["error_rate"]),
            number(s["score"]),
            number(s["p_adjusted"]),
        ]
        for s in items
    ]
    output.table(["#", "slice", "size", "error rate", "score", "p (Bonferroni)"], rows)


def evidence(item: dict[str, Any]) -> None:
    output.line(
        f"training records of [{item['slice']}] in {item['training_set']}: {item['inside']:,} inside, "
        f"{item['outside']:,} outside; label rate {number(item['label_rate_inside'])} vs "
        f"{number(item['label_rate_outside'])}",
        style="bold",
    )
    share_table(item["source_mix"])
    flagged(item["flagged"], 10)


def share_table(shares: list[dict[str, Any]]) -> None:
    rows = [
        [
            s["source"],
            s["inside"],
            number(s["share_inside"]),
            number(s["share_outside"]),
            number(s["lift"]),
            number(s["p_adjusted"]),
        ]
        for s in shares
    ]
    output.table(["raw source", "inside", "share inside", "share outside", "lift", "p (Bonferroni)"], rows)


def flagged(records: list[dict[str, Any]], shown: int) -> None:
    if not records:
        return
    output.line(f"  {len(records)} flagged record(s), least believed label first:")
    for record in records[:shown]:
        lines = ", ".join(raw["locator"] or raw["record_id"] for raw in record["raw"])
        output.line(
            f"    {record['record_id']} label {record['label']} (p {number(record['given_probability'])}) ← {lines}"
        )
    if len(records) > shown:
        output.line(f"    … {len(records) - shown} more in --json / --html")


def case(doc: dict[str, Any]) -> None:
    output.line(f"the case of {doc['model']['ref']}", style="bold")
    cited(doc)
    for number_, sentence in enumerate(doc["findings"], start=1):
        output.line(f"{number_}. {sentence}")
    slice_table(doc["slices"]["slices"][:3])
    if doc["top_slice"]:
        evidence(doc["top_slice"])


def labels(doc: dict[str, Any]) -> None:
    report = doc["label_issues"]
    output.line(
        f"label issues of {report['label']} in {doc['dataset']}: {report['flagged']:,} of {report['rows']:,} "
        f"({number(report['rate'])})",
        style="bold",
    )
    cited(doc)
    share_table(report["by_source"])
    flagged(report["records"], 10)


def contamination(doc: dict[str, Any]) -> None:
    output.line(f"contamination of {doc['dataset']} ({doc['rows']:,} records)", style="bold")
    cited(doc)
    near = doc["near"]
    banding = near["banding"]
    parts = [("exact duplicates", doc["exact"]), ("conflicting labels", doc["conflicting"])]
    for title, part in parts:
        if part is not None:
            output.line(f"  {title}: {part['groups']:,} groups, {part['records']:,} records")
    output.line(
        f"  near-duplicates (Jaccard ≥ {banding['threshold']:g}; {banding['bands']} bands × {banding['rows']} "
        f"hashes, P(candidate at threshold) {number(banding['p_candidate_at_threshold'])}): {near['pairs']:,} pairs, "
        f"{near['records']:,} records, {near['candidates']:,} candidates checked"
    )
    leakage = doc["leakage"]
    if leakage is not None:
        output.line(
            f"  leakage into {leakage['against']} ({leakage['rows']:,} records): same content {leakage['exact']:,} "
            f"({number(leakage['exact_ratio'])}), near {leakage['near']:,}, same raw source record "
            f"{leakage['lineage']:,} ({number(leakage['lineage_ratio'])})"
        )
        for item in leakage["by_source"]:
            output.line(f"    {item['source']}: {item['shared']:,} raw records feed both", style="dim")
    for suspect in doc["suspects"]:
        share = suspect["share"]
        output.line(
            f"  suspect: {suspect['source']} ({suspect['path']}) holds {share['share_inside']:.0%} of the "
            f"{suspect['finding']} copies against {share['share_outside']:.0%} of the rest, lift "
            f"{number(share['lift'])}, p {number(share['p_adjusted'])}",
            style="yellow",
        )
    groups = (doc["conflicting"] or doc["exact"])["listed"]
    for group in groups[:5]:
        lines = ", ".join(raw["locator"] or raw["record_id"] for record in group["records"] for raw in record["raw"])
        output.line(f"    {group['size']} records ({', '.join(map(str, group['labels'])) or 'same'}) ← {lines}")
    if doc["slices"]:
        rows = [
            [
                s["slice"],
                s["share"]["source"],
                s["size"],
                number(s["share"]["share_inside"]),
                number(s["share"]["lift"]),
                number(s["share"]["p_adjusted"]),
            ]
            for s in doc["slices"][:10]
        ]
        output.table(["slice", "raw source", "size", "share inside", "lift", "p (Bonferroni)"], rows)


SUMMARIES = {
    "labels": labels,
    "bias": bias,
    "drift": drift,
    "slices": slices,
    "case": case,
    "contamination": contamination,
    "decision-drift": decision_drift,
}
