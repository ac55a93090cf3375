"""How the decision-log commands look: ``decisions ls|import|receipt``, ``verify --decisions``,
``trace decision``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcustody.interfaces import shapes
from mlcustody.interfaces.cli import output, render_models

if TYPE_CHECKING:
    from mlcustody.ledger.decisions.queries import Decision, Receipt
    from mlcustody.ledger.kek_rotate import Rotation
    from mlcustody.workspace.results import DecisionTrace, ImportReport, VerifyReport


def listing(found: list[Decision], as_json: bool, *, filtered: bool = False) -> None:
    """The decisions as a table; none found is said in words (an empty table reads as a failure)."""
    if as_json:
        output.emit_json(shapes.decisions(found))
        return
    if not found and filtered:
        output.line("No decisions match; drop --model, --subject or --since to list them all.")
        return
    if not found:
        output.line(
            "No decisions logged yet; import a prediction log with `custody decisions import FILE --model "
            "NAME@VERSION`, or log them from Python with mlcustody.decision_log(MODEL)."
        )
        return
    rows = [
        [d.position, d.decision_id, d.time[:19], d.ref, json.dumps(d.output), (d.subject or "")[:12]] for d in found
    ]
    output.table(["position", "decision", "time (UTC)", "model", "output", "subject"], rows)


def imported(report: ImportReport, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.decision_import(report))
        return
    last = report.first_position + report.count - 1
    output.line(
        f"imported {report.count} decision(s) from {report.path} at positions {report.first_position}…{last} "
        f"({', '.join(report.versions) or 'no model version'}); sealed by a signed checkpoint"
        + (f"; {report.skipped} already logged, skipped" if report.skipped else "")
    )


def receipt(found: Receipt, out: Path | None, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.decision_receipt(found, out))
        return
    if out is None:
        output.line(found.proof.rstrip("\n"))
        return
    output.line(f"wrote the receipt of decision {found.decision.decision_id} to {out}")
    output.line(f"  entry:  {found.entry.decode('utf-8')}")
    output.line(f"  vkey:   {found.vkey}")


def verified(report: VerifyReport, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.decisions_verify(report))
        return
    counts = report.checked
    if not report.problems:
        output.line(
            f"OK: {counts['decisions']} decision(s) and {counts['checkpoints']} signed checkpoint(s) match.",
            style="green",
        )
        return
    output.failures([f"{p.kind}: {p.where}: {p.detail}" for p in report.problems], " in the decision log")


def trace(found: DecisionTrace, as_json: bool) -> None:
    doc = shapes.trace_decision(found)
    if as_json:
        output.emit_json(doc)
        return
    decision = found.decision
    served = f" (served as {', '.join(found.aliases)})" if found.aliases else ""
    output.line(f"decision {decision.decision_id}  at {decision.time}, position {decision.position}", style="bold")
    output.line(f"  output:       {json.dumps(decision.output)}")
    output.line(f"  model:        {decision.ref}{served}")
    state = "verified" if not found.problems else f"FAILED ({len(found.problems)} problem(s))"
    output.line(f"  attestation:  {state}", style=None if not found.problems else "red")
    render_models.training_chain(doc)
    if doc["records"] is not None:
        _influential(doc["records"])


def _influential(found: dict[str, Any]) -> None:
    """The most influential training records, each with the first raw line it came from."""
    prediction = found["prediction"]
    shown = f"{prediction:.4g}" if isinstance(prediction, float) else prediction
    output.line(
        f"  records:      {len(found['top'])} most influential of {found['dataset']} ({found['method']}; "
        f"label {found['label']}, prediction {shown})"
    )
    output.line(f"                delta: {found['measure']}")
    rows = [
        [
            item["rank"],
            item["record_id"],
            f"{item['delta']:+.4g}",
            item["label"],
            _first_source(item["sources"]),
            item["reached_through"],
        ]
        for item in found["top"]
    ]
    output.table(["rank", "record", "delta", "label", "raw source", "links"], rows)


def _first_source(sources: list[dict[str, Any]]) -> str:
    located = [s["source"] for s in sources if s["source"]]
    more = f" (+{len(located) - 1} more)" if len(located) > 1 else ""
    return located[0] + more if located else "—"


def forgotten(subject: str, payloads: int, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.document("decision_forget", subject=subject, payloads=payloads))
        return
    if not payloads:
        output.line(f"no decision inputs of subject {subject} were kept; nothing to shred")
        return
    output.line(f"destroyed the data key of subject {subject}: {payloads} decision input(s) are unreadable now")


def sealed(size: int | None, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.decisions_seal(size))
    elif size is None:
        output.line("the decision log is sealed: nothing to do")
    else:
        output.line(f"sealed the decision log at {size} decision(s) with a signed checkpoint")


def kek_rotated(found: Rotation, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.document("kek_rotate", **found.__dict__))
        return
    before = ", ".join(found.previous) or "nothing"
    output.line(f"re-wrapped {found.rewrapped} key(s) from {before} to key-encryption key {found.current}")
    output.line(f"  kept in {found.provider}; the old key-encryption key is no longer needed")
