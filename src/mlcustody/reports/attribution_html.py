"""The attribution investigation as one self-contained HTML page: inline CSS and SVG, nothing fetched.

It renders the ``mlcustody.investigation.attribution/v1`` document itself, so the page shows exactly
what ``--json`` prints: the model and training set with their digests, the prediction, a bar per
record (signed delta: red raised the prediction, blue lowered it), each record's label, values and raw
source lines, and the retrain check when ``--exact`` ran.
"""

from __future__ import annotations

from html import escape
from typing import Any

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left}
code{font-size:.9em;word-break:break-all}.muted{color:#666}
"""
_BAR_WIDTH = 240
_RAISED, _LOWERED, _SIMILAR = "#c0392b", "#2c6fbb", "#7f8c8d"


def render(doc: dict[str, Any]) -> str:
    """The page for one attribution document."""
    model, dataset = doc["model"], doc["dataset"]
    subject = f"decision {doc['decision']}" if doc["decision"] is not None else f"inputs from {doc['input_file']}"
    records = [*doc["raised"], *doc["lowered"], *doc["similar"]]
    scale = max((abs(r["delta"]) for r in records), default=0.0) or 1.0
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Attribution: {escape(subject)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Which training records made this prediction: {escape(subject)}</h1>",
        "<table>",
        _row("model", f"{model['ref']} <code>{model['digest']}</code>"),
        _row("training run", str(model["run"])),
        _row("training set", f"{dataset['ref']} <code>{dataset['digest']}</code>"),
        _row("method", doc["method"]),
        _row("prediction", _number(doc["prediction"])),
        _row("delta means", doc["measure"]),
        "</table>",
    ]
    sections = (
        ("Records that raised the prediction", doc["raised"], _RAISED),
        ("Records that lowered the prediction", doc["lowered"], _LOWERED),
        ("Most similar records (a baseline, not an effect)", doc["similar"], _SIMILAR),
    )
    for title, items, colour in sections:
        if items:
            parts.append(_records(title, items, colour, scale, doc["features"]))
    if doc["exact"] is not None:
        parts.append(_exact(doc["exact"]))
    parts.append("</body></html>\n")
    return "".join(parts)


def _row(name: str, html_value: str) -> str:
    return f"<tr><th>{escape(name)}</th><td>{html_value if '<code>' in html_value else escape(html_value)}</td></tr>"


def _number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _bar(delta: float, scale: float, colour: str) -> str:
    width = max(1, round(_BAR_WIDTH * abs(delta) / scale))
    return (
        f"<svg width='{_BAR_WIDTH}' height='14' role='img' aria-label='{delta:+.4g}'>"
        f"<rect width='{width}' height='14' fill='{colour}'/></svg>"
    )


def _records(title: str, items: list[dict[str, Any]], colour: str, scale: float, features: list[str]) -> str:
    head = "".join(f"<th>{escape(name)}</th>" for name in features)
    rows = []
    for item in items:
        values = "".join(f"<td>{escape(_number(item['features'][name]))}</td>" for name in features)
        sources = "<br>".join(escape(s["source"] or f"{s['ref']} {s['record_id']}") for s in item["sources"]) or "—"
        rows.append(
            f"<tr><td>{item['rank']}</td><td>{escape(str(item['record_id']))}</td>"
            f"<td>{item['delta']:+.4g}</td><td>{_bar(item['delta'], scale, colour)}</td>"
            f"<td>{escape(str(item['label']))}</td>{values}<td>{sources}</td></tr>"
        )
    return (
        f"<h2>{escape(title)}</h2><table><tr><th>rank</th><th>record</th><th>delta</th><th></th>"
        f"<th>label</th>{head}<th>raw source</th></tr>{''.join(rows)}</table>"
    )


def _exact(exact: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{escape(r['side'])}</td><td>{r['removed']}</td>"
        f"<td>{'—' if r['estimated'] is None else format(r['estimated'], '+.4g')}</td>"
        f"<td>{r['actual']:+.4g}</td></tr>"
        for r in exact["retrains"]
    )
    return (
        "<h2>Retrained without them (ground truth)</h2>"
        f"<p class='muted'>Same estimator and parameters, seed {exact['seed']} ({escape(exact['seed_from'])}); "
        f"a refit on all rows reproduces the model ({escape(exact['output'])} {exact['reproduced']:.6g}).</p>"
        "<table><tr><th>records left out</th><th>count</th><th>estimated change</th><th>actual change</th></tr>"
        f"{rows}</table>"
    )
