"""``custody report``: compliance reports whose every field cites its evidence, signed and stored.

Each command parses, calls ``interfaces.report_files`` and renders; the facts are gathered in
``mlcustody.reports``."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlcustody.interfaces import shapes
from mlcustody.interfaces.cli import output

if TYPE_CHECKING:
    from mlcustody.interfaces.report_files import Published, Verified
    from mlcustody.workspace.facade import Workspace

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
ReceivedOpt = Annotated[
    str | None,
    typer.Option("--received", metavar="YYYY-MM-DD", help="When the request arrived: the report gives the due date."),
]
_SUFFIXES = {".json": "json", ".md": "md", ".html": "html", ".htm": "html", ".pdf": "pdf"}


def _workspace() -> AbstractContextManager[Workspace]:
    from mlcustody.interfaces.cli.app import workspace  # app registers this module: imported when run

    return workspace()


def _received(text: str | None) -> date | None:
    from mlcustody.errors import UsageError

    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--received {text!r} is not a date", hint="write it as YYYY-MM-DD") from None


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
    received: ReceivedOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The right-to-explanation report of one decision: its model version, training data, the person's data
    used, per-factor contributions, principal reasons, counterfactuals, influential training records, fields
    for the human reviewer, and the decision's inclusion proof.

    For GDPR Art. 15(1)(h) and 22 and AI Act Art. 86."""
    from mlcustody.interfaces import report_files

    with _workspace() as ws:
        found = report_files.decision(ws, decision_id, _format(fmt, out), out, records, _received(received))
    show(found, as_json)


@report_app.command("erasure")
def erasure(
    subject: Annotated[
        str, typer.Argument(metavar="SUBJECT", help="The data subject's id (decision log, record key).")
    ],
    record: Annotated[
        list[str] | None, typer.Option("--record", metavar="ID", help="Another record id of theirs (repeat).")
    ] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", metavar="COLUMN", help="Find their records by this column (e.g. customer_id)."),
    ] = None,
    execute: Annotated[
        bool, typer.Option("--execute", help="Erase: destroy their data key (crypto-shredding), audited.")
    ] = False,
    fmt: FormatOpt = None,
    out: OutOpt = None,
    received: ReceivedOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The erasure report of one data subject: their records in every snapshot, the records derived from them,
    the models trained on them, the decisions about them, holds and retention, and what crypto-shredding does and
    does not reach. With --execute (refused while a hold applies) their decision payloads become unreadable and
    the erasure is recorded; `custody verify` still passes.

    For GDPR Art. 17."""
    from mlcustody.interfaces import report_files

    with _workspace() as ws:
        found = report_files.erasure(
            ws, subject, record or [], _format(fmt, out), out, execute=execute, key=key, received=_received(received)
        )
    show(found, as_json)


@report_app.command("annex-iv")
def annex_iv(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="Model version: NAME@VERSION, NAME:ALIAS or NAME.")],
    fmt: FormatOpt = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A draft of the EU AI Act Annex IV technical documentation: its nine sections filled from the store where
    it knows the facts (versions, software, development steps, training data and provenance, validation, logging,
    lifecycle), with marked blanks for what the provider must write (purpose, risk management, standards,
    declaration of conformity, monitoring plan)."""
    from mlcustody.interfaces import report_files

    with _workspace() as ws:
        found = report_files.annex_iv(ws, model, _format(fmt, out), out)
    show(found, as_json)


@report_app.command("inventory")
def inventory(fmt: FormatOpt = None, out: OutOpt = None, as_json: JsonOpt = False) -> None:
    """A model inventory in the spirit of SR 11-7 and SR 26-2: every model version with status and aliases,
    training data, validation, usage (decisions), last verification and open findings; blanks for purpose,
    materiality tier, scope, owners, validation dates and limitations."""
    from mlcustody.interfaces import report_files

    with _workspace() as ws:
        found = report_files.inventory(ws, _format(fmt, out), out)
    show(found, as_json)


@report_app.command("hold")
def hold(
    subject: Annotated[
        str | None, typer.Argument(metavar="[SUBJECT]", help="The data subject (default: --all).")
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Hold every subject (e.g. an incident: AI Act Art. 73(6)).")
    ] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (a legal claim, an incident).")] = "",
    release: Annotated[bool, typer.Option("--release", help="Release the hold instead.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Place (or --release) a hold that blocks `report erasure --execute` for a subject or for all; audited."""
    from mlcustody.errors import UsageError
    from mlcustody.interfaces import report_files

    if (subject is None) == (not every):
        raise UsageError("give a SUBJECT or --all, not both", hint="custody report hold SUBJECT --reason TEXT")
    with _workspace() as ws:
        event = report_files.hold(ws, subject, reason, release=release)
    if as_json:
        output.emit_json(shapes.document("report_hold", released=release, event=shapes.event(event)))
        return
    output.line(f"{'released' if release else 'placed'} hold (audit event #{event.seq})")


@report_app.command("holds")
def holds(as_json: JsonOpt = False) -> None:
    """The holds in force: what blocks erasure, since when, by whom, why."""
    from mlcustody.interfaces import report_files

    with _workspace() as ws:
        found = report_files.holds(ws)
    if as_json:
        output.emit_json(shapes.document("report_holds", holds=[h.__dict__ for h in found]))
        return
    output.table(
        ["event", "scope", "since", "by", "reason"], [[h.seq, h.scope[:16], h.at, h.actor, h.reason] for h in found]
    )


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
    output.line(
        f"OK: {found.file} is the signed {what}; {len(predicate.get('citations', []))} citations checked {where}"
    )
