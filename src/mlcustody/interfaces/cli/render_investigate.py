"""How ``custody investigate`` looks: a short readable summary, the JSON document, the HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcustody.errors import PathError
from mlcustody.interfaces.cli import output
from mlcustody.interfaces.investigation_html import number, page

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


SUMMARIES = {"bias": bias, "drift": drift}
