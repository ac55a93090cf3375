"""`custody demo`'s compliance chapter: the plain pipeline's decision explained, and its subject erased.

Runs in the plain-script workspace after ``demo_plain`` imported its prediction log: the
right-to-explanation report of one decision as HTML and PDF (each signed beside it and checked with
``report verify``), the erasure impact of that decision's data subject, the erasure itself
(crypto-shredding their decision payloads), and ``verify`` passing afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from mlcustody.reports import render

Step = Callable[..., str]
DECISION = 7  # the line of the prediction log whose decision is explained (as demo_plain traces it)


def chapter(step: Step, where: Path) -> None:
    plain = where / "plain"
    logged = (plain / "predictions.jsonl").read_text(encoding="utf-8").splitlines()[DECISION]
    entry = json.loads(logged)
    decision, subject = entry["decision_id"], entry["subject"]
    step(
        "Its right-to-explanation report as a self-contained HTML page, every fact citing its evidence, signed",
        "report",
        "decision",
        decision,
        "--out",
        f"{decision}.html",
        cwd=plain,
    )
    missing = render.pdf_missing()  # a machine without the Pango library still runs the whole demo, in HTML
    handed = f"{decision}.html" if missing else f"{decision}.pdf"
    if not missing:
        step("The same report as a PDF to hand over", "report", "decision", decision, "--out", handed, cwd=plain)
    step(
        "Check the report against its signature, the decision's inclusion proof and every citation",
        "report",
        "verify",
        handed,
        cwd=plain,
    )
    erase = ("report", "erasure", subject, "--key", "application_id")
    step(
        "What erasing that data subject would reach: records, derived records, models, decisions",
        *erase,
        "--out",
        "erasure-impact.md",
        cwd=plain,
    )
    step(
        "Erase them: their data key is destroyed, their decision payloads unreadable, the erasure audited",
        *erase,
        "--execute",
        "--out",
        "erasure.md" if missing else "erasure.pdf",
        cwd=plain,
    )
    step("The store still verifies: chains keep digests, not content", "verify", cwd=plain)
