"""One investigation document as a self-contained HTML page: inline CSS, inline SVG, no network.

The page is rendered from the same JSON document ``--json`` prints, so what a reader sees is what
is stored and digested; every section starts from the versions and digests it was computed from.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from typing import Any

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:68rem;color:#1d232a;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d5dbe1}
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.2rem .6rem;border-bottom:1px solid #e5e9ed;
text-align:left;vertical-align:top}th{background:#f3f5f7}td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:12px;background:#f3f5f7;padding:0 .2rem}.warn{color:#a04000}.muted{color:#68737d}
svg text{font:11px system-ui,sans-serif}
"""


def page(doc: dict[str, Any]) -> str:
    """The whole page for an ``mlcustody.investigation.<kind>/v1`` document."""
    kind = doc["schema"].split("/")[0].removeprefix("mlcustody.investigation.")
    parts = [f"<h1>custody investigate {_e(kind)}</h1>", _report(doc)]
    parts += SECTIONS.get(kind, _generic)(doc)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>investigate {_e(kind)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )


# -- building blocks ---------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def number(value: Any, digits: int = 4) -> str:
    """A number as a report shows it: 4 significant digits, p-values in scientific notation."""
    if value is None:
        return "–"
    if isinstance(value, str | bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{_e(number(c))}</td>'
            if isinstance(c, int | float) and not isinstance(c, bool)
            else f"<td>{_e(c if c is not None else '–')}</td>"
            for c in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def bars(items: Sequence[tuple[str, float, float | None, float | None]], *, scale: float | None = None) -> str:
    """Horizontal bars with optional interval whiskers: (label, value, low, high)."""
    ends = [abs(x) for _, value, _, high in items for x in (value, high or 0.0)]
    finite = [x for x in ends if math.isfinite(x)]
    top = scale or max(finite, default=1.0) or 1.0
    width, left, row = 520, 170, 22
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + left + 60}" height="{row * len(items) + 8}">']
    for i, (label, value, low, high) in enumerate(items):
        y = i * row + 4
        size = 0.0 if not math.isfinite(value) else max(value, 0) / top * width
        out.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{_e(label[:28])}</text>')
        out.append(f'<rect x="{left}" y="{y + 3}" width="{size:.1f}" height="{row - 8}" fill="#4a78a8"/>')
        if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
            x1, x2 = left + low / top * width, left + high / top * width
            mid = y + row / 2 - 1
            out.append(f'<line x1="{x1:.1f}" x2="{x2:.1f}" y1="{mid}" y2="{mid}" stroke="#1d232a"/>')
            for x in (x1, x2):
                out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{mid - 4}" y2="{mid + 4}" stroke="#1d232a"/>')
        out.append(f'<text x="{left + size + 4:.1f}" y="{y + 14}">{_e(number(value, 3))}</text>')
    out.append("</svg>")
    return "".join(out)


def _report(doc: dict[str, Any]) -> str:
    report = doc.get("report") or {}
    cited = [[c["ref"], c["type"], c["digest"], c.get("records")] for c in doc.get("read", [])]
    return (
        f'<p class="muted">Stored as report <code>{_e(report.get("ref"))}</code> '
        f"(BLAKE3 <code>{_e(report.get('digest'))}</code>).</p>"
        "<h2>Evidence read</h2>" + table(["version", "type", "digest", "record manifest"], cited)
    )


def _warnings(items: Sequence[str]) -> str:
    return "".join(f'<p class="warn">⚠ {_e(text)}</p>' for text in items)


# -- sections per kind -------------------------------------------------------------------------------


def bias_sections(doc: dict[str, Any]) -> list[str]:
    result = doc["result"]
    groups = result["groups"]
    rows = [
        [g["group"], g["count"], g["positives"], g["selection_rate"], g["tpr"], g["fpr"], g["accuracy"]]
        for g in [*groups, result["overall"]]
    ]

    def whisker(g: dict[str, Any], metric: str) -> tuple[str, float, float | None, float | None]:
        interval = g["intervals"].get(metric) or {}
        return (g["group"], float(g[metric]), interval.get("low"), interval.get("high"))

    parts = [
        f"<h2>Groups of {_e(result['sensitive'])} ({_e(doc['source'])})</h2>",
        table(["group", "count", "positives", "selection rate", "TPR", "FPR", "accuracy"], rows),
        "<h3>Selection rate with 95 % interval</h3>",
        bars([whisker(g, "selection_rate") for g in groups], scale=1.0),
    ]
    if result["label"] is not None:
        parts += [
            "<h3>True positive rate with 95 % interval</h3>",
            bars([whisker(g, "tpr") for g in groups], scale=1.0),
        ]
    disparity = [
        [d["name"], d["between_groups"], d["to_overall"], *(_interval(d["interval"]))] for d in result["disparities"]
    ]
    parts += [
        "<h2>Disparities</h2>",
        table(["measure", "between groups", "to overall", "95 % low", "95 % high"], disparity),
        _warnings(result["warnings"]),
    ]
    return parts


def drift_sections(doc: dict[str, Any]) -> list[str]:
    columns = doc["columns"]
    rows = [
        [
            c["column"],
            c["kind"],
            c["psi"],
            c["ks"],
            c["ks_p"],
            c["chi2_p"],
            c["jensen_shannon"],
            c["wasserstein_normed"],
        ]
        for c in columns
    ]
    parts = [
        "<h2>Columns</h2>",
        table(["column", "kind", "PSI", "KS", "KS p", "χ² p", "Jensen–Shannon", "W₁ / std"], rows),
        "<h3>PSI per column (0.1 moderate, 0.25 major)</h3>",
        bars([(c["column"], float(c["psi"]), None, None) for c in columns]),
    ]
    found = doc.get("evidently")
    if found:
        verdicts = [
            [c["column"], c["column_type"], c["test"], c["score"], c["threshold"], str(c["drifted"])]
            for c in found["columns"]
        ]
        parts += [
            f"<h2>As Evidently's defaults decide: {found['drifted_columns']} of {len(verdicts)} columns drifted, "
            f"dataset {'drifted' if found['dataset_drift'] else 'not drifted'}</h2>",
            table(["column", "type", "test", "score", "threshold", "drifted"], verdicts),
        ]
    return parts


def slices_sections(doc: dict[str, Any]) -> list[str]:
    search = doc["search"]
    parts = [
        f"<h2>Slices where the model misses {_e(doc['label'])}</h2>",
        f"<p>{search['evaluated']:,} slices of at most {search['max_conditions']} conditions tested over "
        f"{search['rows']:,} rows; SliceLine α = {search['alpha']}, support ≥ {search['min_support']}, "
        f"{_e(search['correction'])} at {search['significance']}. Overall error rate "
        f"{_e(number(search['error_rate']))}.</p>",
        *slice_list(search["slices"]),
    ]
    for item in doc["training"]:
        parts += evidence_sections(item)
    return parts


def slice_list(items: Sequence[dict[str, Any]]) -> list[str]:
    rows = [
        [
            s["rank"],
            condition_text(s["conditions"]),
            s["size"],
            s["error_rate"],
            s["positive_rate"],
            s["score"],
            s["p_adjusted"],
        ]
        for s in items
    ]
    return [
        table(["#", "slice", "size", "error rate", "positive rate", "score", "p (Bonferroni)"], rows),
        bars([(condition_text(s["conditions"]), float(s["error_rate"]), None, None) for s in items], scale=1.0),
    ]


def condition_text(conditions: Sequence[dict[str, Any]]) -> str:
    parts = []
    for c in conditions:
        if c["value"] is not None:
            parts.append(f"{c['column']} = {c['value']}")
        else:
            low = "" if c["low"] is None else f"{number(c['low'])} ≤ "
            high = "" if c["high"] is None else f" < {number(c['high'])}"
            parts.append(f"{low}{c['column']}{high}")
    return " ∧ ".join(parts)


def evidence_sections(item: dict[str, Any]) -> list[str]:
    return [
        f"<h2>Training records of [{_e(item['slice'])}] in {_e(item['training_set'])}</h2>",
        f"<p>{item['inside']:,} inside, {item['outside']:,} outside; positive label rate "
        f"{_e(number(item['label_rate_inside']))} inside against {_e(number(item['label_rate_outside']))} outside.</p>",
        "<h3>Source mix through record lineage</h3>",
        *share_sections(item["source_mix"]),
        "<h3>Flagged records of the slice, least believed label first</h3>",
        flagged_table(item["flagged"]),
    ]


def share_sections(shares: Sequence[dict[str, Any]]) -> list[str]:
    rows = [
        [
            s["source"],
            s["path"],
            s["inside"],
            s["outside"],
            s["share_inside"],
            s["share_outside"],
            s["lift"],
            s["rate"],
            s["p_value"],
            s["p_adjusted"],
        ]
        for s in shares
    ]
    headers = ["source", "path", "inside", "outside", "share inside", "share outside", "lift", "rate", "p", "p adj."]
    return [table(headers, rows), bars([(s["source"], float(s["lift"]), None, None) for s in shares])]


def flagged_table(records: Sequence[dict[str, Any]], shown: int = 500) -> str:
    rows = [
        [r["record_id"], r["label"], r["given_probability"], " ".join(x["locator"] or x["record_id"] for x in r["raw"])]
        for r in records[:shown]
    ]
    more = f'<p class="muted">… {len(records) - shown} more in the JSON document.</p>' if len(records) > shown else ""
    return table(["record", "label", "p(given label)", "raw lines"], rows) + more


def labels_sections(report: dict[str, Any]) -> list[str]:
    return [
        f"<h2>Label issues of {_e(report['label'])}</h2>",
        f"<p>{report['flagged']:,} of {report['rows']:,} records flagged ({_e(number(report['rate']))}); "
        f"{_e(report['model'])}; features {_e(', '.join(report['features']))}.</p>",
        "<h3>Per raw source (rate = the share of its records flagged)</h3>",
        *share_sections(report["by_source"]),
        "<h3>Flagged records</h3>",
        flagged_table(report["records"]),
    ]


def case_sections(doc: dict[str, Any]) -> list[str]:
    parts = ["<h2>Findings</h2><ol>" + "".join(f"<li>{_e(s)}</li>" for s in doc["findings"]) + "</ol>"]
    parts += bias_sections({"result": doc["bias"], "source": doc["read"][1]["ref"]})
    parts += ["<h2>Suspect slices</h2>", *slice_list(doc["slices"]["slices"])]
    if doc["top_slice"]:
        parts += evidence_sections(doc["top_slice"])
    parts += labels_sections(doc["label_issues"])
    return parts


def contamination_sections(doc: dict[str, Any]) -> list[str]:
    parts = []
    if doc["suspects"]:
        rows = [
            [x["source"], x["path"], x["finding"], x["share"]["lift"], x["share"]["p_adjusted"]]
            for x in doc["suspects"]
        ]
        parts += ["<h2>Suspect sources</h2>", table(["source", "path", "finding", "lift", "p adj."], rows)]
    for title, key in (("Exact duplicates", "exact"), ("Conflicting labels", "conflicting")):
        part = doc[key]
        if part is None:
            continue
        rows = [
            [g["size"], ", ".join(map(str, g["labels"])), " ".join(_lines(r) for r in g["records"])]
            for g in part["listed"]
        ]
        parts += [f"<h2>{title}: {part['groups']:,} groups, {part['records']:,} records</h2>"]
        parts += [table(["records", "labels", "raw lines"], rows), "<h3>Per raw source</h3>"]
        parts += share_sections(part["by_source"])
    near, banding = doc["near"], doc["near"]["banding"]
    parts.append(
        f"<h2>Near-duplicates: {near['pairs']:,} pairs</h2><p>Jaccard ≥ {_e(banding['threshold'])}, "
        f"{banding['bands']} bands × {banding['rows']} MinHash values (P(candidate) at the threshold "
        f"{_e(number(banding['p_candidate_at_threshold']))}), {near['candidates']:,} candidates checked exactly.</p>"
    )
    rows = [[p["jaccard"], ", ".join(p["differing"]), _lines(p["first"]), _lines(p["second"])] for p in near["listed"]]
    parts += [table(["Jaccard", "differing", "first", "second"], rows), *share_sections(near["by_source"])]
    leakage = doc["leakage"]
    if leakage is not None:
        parts.append(
            f"<h2>Leakage into {_e(leakage['against'])}</h2><p>same content {leakage['exact']:,} of "
            f"{leakage['rows']:,}, near {leakage['near']:,}, same raw source record {leakage['lineage']:,}.</p>"
        )
        rows = [
            [x["source"], x["locator"], " ".join(x["dataset_records"]), " ".join(x["against_records"])]
            for x in leakage["lines"]
        ]
        parts.append(table(["source", "raw line", "records here", f"records of {leakage['against']}"], rows))
    if doc["slices"]:
        rows = [
            [
                x["slice"],
                x["share"]["source"],
                x["size"],
                x["share"]["share_inside"],
                x["share"]["lift"],
                x["share"]["p_adjusted"],
            ]
            for x in doc["slices"][:50]
        ]
        parts += ["<h2>Raw sources by slice</h2>", table(["slice", "source", "size", "share", "lift", "p adj."], rows)]
    return parts


def _lines(record: dict[str, Any]) -> str:
    return " ".join(x["locator"] or x["record_id"] for x in record["raw"])


def _interval(found: dict[str, Any] | None) -> list[Any]:
    return [None, None] if not found else [found["low"], found["high"]]


def _generic(doc: dict[str, Any]) -> list[str]:
    import json

    return [f"<pre>{_e(json.dumps(doc, indent=2))}</pre>"]


SECTIONS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "bias": bias_sections,
    "drift": drift_sections,
    "slices": slices_sections,
    "case": case_sections,
    "labels": lambda doc: labels_sections(doc["label_issues"]),
    "contamination": contamination_sections,
    "decision-drift": drift_sections,
}
