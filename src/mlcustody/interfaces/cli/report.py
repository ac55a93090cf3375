"""``custody report``: compliance reports whose every field cites its evidence, signed and stored.

Each command parses, calls ``interfaces.report_files`` and renders; the facts are gathered in
``mlcustody.reports``."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlcustody.interfaces import shapes
from mlcustody.interfaces.cli import output

if TYPE_CHECKING:
    from mlcustody.interfaces.report_files import Published, Verified
    from mlcustody.interfaces.sdk import Workspace

report_app = typer.Typer(
    help="Compliance reports (right to explanation, erasure, AI Act Annex IV, model inventory): every field "
    "cites the evidence it came from; each report is signed (DSSE) and stored."
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document (see docs/cli.md).")]
FormatOpt = Annotated[
    str | None,
    typer.Option("--format", metavar="json|md|html|pdf", help="Output format (default: from --out's suffix, else md)."),
]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", metavar="FILE", help="Write the report here, its signature beside it (FILE.dsse.json)."),
]
_SUFFIXES = {".json": "json", ".md": "md", ".html": "html", ".htm": "html", ".pdf": "pdf"}


def _workspace() -> AbstractContextManager[Workspace]:
    from mlcustody.interfaces.cli.app import workspace  # app registers this module: imported when run

    return workspace()


def _format(fmt: str | None, out: Path | None) -> str:
    if fmt is not None:
        return fmt
    return _SUFFIXES.get(out.suffix.lower(), "md") if out is not None else "md"


@report_app.command("decision")
def decision(
    decision_id: Annotated[str, typer.Argument(metavar="ID", help="The decision id.")],
    fmt: FormatOpt = None,
    out: OutOpt = None,
    records: Annotated[int, typer.Option("--records", min=0, help="Influential training records to list.")] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Right to explanation of one decision (GDPR Art. 15(1)(h), 22; AI Act Art. 86): model version, training
    data, the person's data used, per-factor contributions, principal reasons, counterfactuals, influential
    training records, human-oversight fields to fill, and the decision's inclusion proof."""
    from mlcustody.interfaces import report_files

    with _workspace() as ws:
        found = report_files.decision(ws, decision_id, _format(fmt, out), out, records)
    show(found, as_json)


@report_app.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A report file written with --out.")],
    signature: Annotated[
        Path | None, typer.Option("--signature", metavar="FILE", help="Its envelope (default: FILE.dsse.json).")
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Check only the files: signature, digests, inclusion proof.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check a report file against its detached DSSE signature and, for a decision report, the decision's
    inclusion proof; in a workspace (unless --offline) also the signing key and every citation. Exit 1 on
    any mismatch."""
    from mlcustody.interfaces import report_files

    if offline:
        checked = report_files.verify(None, file, signature)
    else:
        with _workspace() as ws:
            checked = report_files.verify(ws, file, signature)
    verified(checked, as_json)
    if checked.problems:
        raise typer.Exit(1)


# -- rendering -----------------------------------------------------------------------------------------


def show(found: Published, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.report(found))
        return
    for gap in found.body["gaps"]:
        output.warning(f"gap in the report: {gap}")
    if found.out is None:
        output.raw(found.data.decode("utf-8"))
        return
    output.line(f"wrote {found.out} ({found.format}), signature {found.signature}")
    output.line(f"stored as {found.stored.ref} ({found.stored.digest[:16]})", style="dim")


def verified(found: Verified, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.report_verify(found))
        return
    predicate: dict[str, Any] = found.checked.predicate
    what = f"{predicate.get('kind', '?')} report of {predicate.get('subject', '?')}"
    if found.problems:
        output.failures(found.problems, f" in {found.file}")
        return
    where = "against the store" if found.with_store else "offline"
    output.line(f"OK: {found.file} is the signed {what}; {len(predicate.get('citations', []))} citations checked {where}")
