"""`custody investigate attribution`: the training records that most raised and lowered one prediction.

``register`` adds the command to whichever ``investigate`` group the application builds, so the
command lives apart from the other investigations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from mlcustody.errors import PathError, UsageError
from mlcustody.interfaces import shapes
from mlcustody.interfaces.cli import output, render_decisions

METHODS = {  # the CLI's short names → the attribution package's
    "auto": None,
    "influence": "influence",
    "loo": "loo-exact",
    "forest": "forest-kernel",
    "boostin": "boostin",
    "knn": "knn",
}


def register(app: typer.Typer) -> None:
    """Add the ``attribution`` command to ``app``."""
    app.command("attribution")(attribution)


def attribution(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="NAME@VERSION, NAME:ALIAS or NAME of a model.")],
    decision: Annotated[str | None, typer.Option("--decision", help="A logged decision of that model.")] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input", help="One decision's inputs: a JSON object, or a one-row CSV.")
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="How many records of each side to list.")] = 10,
    method: Annotated[
        str, typer.Option("--method", help="auto (by model family), influence, loo, forest, boostin or knn.")
    ] = "auto",
    label: Annotated[
        str | None, typer.Option("--label", help="The training set's label column (default: the one non-feature).")
    ] = None,
    exact: Annotated[
        bool, typer.Option("--exact", help="Also refit without the top records and report the actual change.")
    ] = False,
    html: Annotated[Path | None, typer.Option("--html", help="Also write a self-contained HTML report here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document (see docs/cli.md).")] = False,
) -> None:
    """The training records that most raised and most lowered one prediction, each with its signed
    effect, label, values and raw source file:line (see docs/attribution.md); --exact retrains."""
    from mlcustody.forensics.attribution_investigation import Query
    from mlcustody.interfaces.cli.app import workspace

    if method not in METHODS:
        raise UsageError(f"unknown --method {method!r}", hint=f"choose one of {', '.join(METHODS)}")
    query = Query(model, decision, input_file, top, METHODS[method], label, exact)
    with workspace() as ws:
        found = ws.investigate_attribution(query)
    doc = shapes.investigation_attribution(found)
    if html is not None:
        from mlcustody.reports import attribution_html

        try:
            html.write_text(attribution_html.render(doc), encoding="utf-8")
        except OSError as exc:
            raise PathError(f"cannot write {html}: {exc.strerror}", hint="choose a writable file for --html") from exc
    if as_json:
        output.emit_json(doc)
        return
    _summary(doc, bool(found.cache and found.cache["reused"]))
    if html is not None:
        output.line(f"wrote the HTML report to {html}")


def _summary(doc: dict[str, Any], reused: bool) -> None:
    subject = f"decision {doc['decision']}" if doc["decision"] is not None else f"the inputs in {doc['input_file']}"
    prediction = doc["prediction"]
    shown = f"{prediction:.4g}" if isinstance(prediction, float) else json.dumps(prediction)
    output.line(f"{subject}: {doc['model']['ref']} predicted {shown}", style="bold")
    output.line(f"  training set: {doc['dataset']['ref']} (label {doc['label']}), method {doc['method']}")
    output.line(f"  delta:        {doc['measure']}")
    if doc["cache"] is not None:
        state = "reused" if reused else "computed and stored"
        output.line(f"  precomputed:  {state} (object {doc['cache']['object'][:16]}…)")
    for title, key in (("raised it most", "raised"), ("lowered it most", "lowered"), ("most similar", "similar")):
        if doc[key]:
            output.table(["rank", "record", "delta", "label", "raw source"], [_row(r) for r in doc[key]], title=title)
    if doc["exact"] is not None:
        exact = doc["exact"]
        output.line(
            f"  retrained (seed {exact['seed']}, {exact['seed_from']}): a refit on all rows gives "
            f"{exact['reproduced']:.6g}, as the model does"
        )
        for item in exact["retrains"]:
            estimate = "—" if item["estimated"] is None else f"{item['estimated']:+.4g}"
            output.line(
                f"    without the {item['removed']} that {item['side']} it: actual {item['actual']:+.4g}, "
                f"estimated {estimate}"
            )


def _row(item: dict[str, Any]) -> list[Any]:
    source = render_decisions._first_source(item["sources"])
    return [item["rank"], item["record_id"], f"{item['delta']:+.4g}", item["label"], source]
