"""A report body as JSON, Markdown, self-contained HTML (inline CSS and SVG, nothing fetched) or PDF.

Every format is rendered from the same body, so they carry the same facts; each is deterministic, so
the same body gives the same bytes (weasyprint writes no creation time unless the page names one).
JSON is the body itself, indented, with a final newline.
"""

from __future__ import annotations

import json
import warnings
from functools import cache
from html import escape
from typing import Any

from mlcustody.errors import UsageError

FORMATS = ("json", "md", "html", "pdf")
_BAR, _RAISED, _LOWERED = 220, "#c0392b", "#2c6fbb"


def render(body: dict[str, Any], fmt: str) -> bytes:
    """The report in ``fmt`` (one of ``FORMATS``)."""
    if fmt == "json":
        return (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    if fmt == "md":
        text: str = _template("report.md.j2", autoescape=False).render(doc=body, value=_md_value)
        return text.encode("utf-8")
    html: str = _template("report.html.j2", autoescape=True).render(doc=body, value=_html_value, bars=_bars)
    if fmt == "html":
        return html.encode("utf-8")
    weasyprint = _weasyprint()
    with warnings.catch_warnings():  # a system-library notice of weasyprint, nothing the user can act on here
        warnings.filterwarnings("ignore", "HarfBuzz-Subset", DeprecationWarning)
        found: bytes = weasyprint.HTML(string=html).write_pdf()
    return found


def pdf_missing() -> str | None:
    """Why PDF reports cannot be made on this machine (weasyprint needs the Pango system library), or None."""
    try:
        require_pdf()
    except UsageError as exc:
        return exc.one_line()
    return None


def require_pdf() -> None:
    """Refuse, before anything is stored, a PDF this machine cannot make."""
    _weasyprint()


def _weasyprint() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "HarfBuzz-Subset", DeprecationWarning)
            import weasyprint
    except OSError as exc:  # the Python package is there; the system libraries it loads are not
        raise UsageError(
            f"PDF reports need the Pango library, which this machine lacks ({exc})",
            hint="install it (Debian/Ubuntu: apt install libpango-1.0-0 libpangoft2-1.0-0), or use --format html",
        ) from exc
    return weasyprint


@cache
def _template(name: str, *, autoescape: bool) -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mlcustody.reports", "templates"),
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template(name)


def _scalar(value: Any) -> str:
    if value is None or value == {}:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _html_value(value: Any) -> str:
    if isinstance(value, dict) and value:
        rows = "".join(f"<tr><td>{escape(str(k))}</td><td>{_html_value(v)}</td></tr>" for k, v in value.items())
        return f"<table>{rows}</table>"
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            columns = list(dict.fromkeys(k for v in value for k in v))
            head = "".join(f"<th>{escape(c)}</th>" for c in columns)
            body = "".join(
                "<tr>" + "".join(f"<td>{_html_value(v.get(c, ''))}</td>" for c in columns) + "</tr>" for v in value
            )
            return f"<table><tr>{head}</tr>{body}</table>"
        return "<ul>" + "".join(f"<li>{_html_value(v)}</li>" for v in value) + "</ul>" if value else "none"
    text = escape(_scalar(value))
    return f"<code>{text}</code>" if isinstance(value, str) and len(value) == 64 else text


def _md_value(value: Any) -> str:
    """A field's value in Markdown: a table for a list of objects, a nested list for a list."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        columns = list(dict.fromkeys(k for v in value for k in v))
        lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        lines += ["| " + " | ".join(_md_cell(v.get(c, "")) for c in columns) + " |" for v in value]
        return "\n\n" + "\n".join(f"    {line}" for line in lines) + "\n"
    if isinstance(value, list):
        return "".join(f"\n    - {_md_cell(v)}" for v in value) if value else "none"
    return _md_cell(value)


def _md_cell(value: Any) -> str:
    if isinstance(value, dict) and value:
        return "; ".join(f"{k}: {_md_cell(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_md_cell(v) for v in value) or "none"
    return _scalar(value).replace("|", "\\|").replace("\n", " ")


def _bars(contributions: list[dict[str, Any]]) -> str:
    """An inline SVG bar per feature: red raised the score, blue lowered it."""
    scale = max((abs(c["effect"]) for c in contributions), default=0.0) or 1.0
    height = 18 * len(contributions) + 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * _BAR + 160}" height="{height}">']
    for i, c in enumerate(contributions):
        width = abs(c["effect"]) / scale * _BAR
        x = 150 + _BAR if c["effect"] >= 0 else 150 + _BAR - width
        colour = _RAISED if c["effect"] >= 0 else _LOWERED
        y = 18 * i + 2
        parts.append(f'<text x="0" y="{y + 12}" font-size="11">{escape(str(c["feature"]))}</text>')
        parts.append(f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="14" fill="{colour}"/>')
    parts.append(f'<line x1="{150 + _BAR}" y1="0" x2="{150 + _BAR}" y2="{height}" stroke="#333"/></svg>')
    return "".join(parts)
