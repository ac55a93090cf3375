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
    return [
        "<h2>Columns</h2>",
        table(["column", "kind", "PSI", "KS", "KS p", "χ² p", "Jensen–Shannon", "W₁ / std"], rows),
        "<h3>PSI per column (0.1 moderate, 0.25 major)</h3>",
        bars([(c["column"], float(c["psi"]), None, None) for c in columns]),
    ]


def _interval(found: dict[str, Any] | None) -> list[Any]:
    return [None, None] if not found else [found["low"], found["high"]]


def _generic(doc: dict[str, Any]) -> list[str]:
    import json

    return [f"<pre>{_e(json.dumps(doc, indent=2))}</pre>"]


SECTIONS: dict[str, Callable[[dict[str, Any]], list[str]]] = {"bias": bias_sections, "drift": drift_sections}
