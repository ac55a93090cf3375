"""``custody terms`` and ``custody check terms``: the license, consent, purposes and retention data came
under, and whether a model's use meets them. Each command parses, calls ``workspace.policy_cases`` and
renders (``render_policy``)."""

from __future__ import annotations

from typing import Annotated

import typer

from mlcustody.interfaces.cli import render_policy

terms_app = typer.Typer(help="The terms a source came under: license, consent basis, purposes, retention.")
check_app = typer.Typer(help="Checks over the chain of custody; exit 1 when one finds a problem.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document (see docs/cli.md).")]


@terms_app.command("set")
def terms_set(
    ref: Annotated[str, typer.Argument(help="The version (NAME@VERSION, NAME, a path) the terms apply to.")],
    license: Annotated[
        str | None, typer.Option("--license", help="SPDX id (CC-BY-NC-4.0, CC0-1.0, …) or LicenseRef-NAME.")
    ] = None,
    commercial: Annotated[
        bool | None,
        typer.Option(
            "--commercial/--no-commercial", help="Whether a LicenseRef-… custom license allows commercial use."
        ),
    ] = None,
    consent: Annotated[
        str | None, typer.Option("--consent", help="GDPR basis: consent, contract, legitimate-interests, withdrawn, …")
    ] = None,
    purpose: Annotated[
        list[str] | None, typer.Option("--purpose", help="A purpose the data may serve (repeatable).")
    ] = None,
    retention: Annotated[
        str | None, typer.Option("--retention", help="Keep until YYYY-MM-DD, or NNNd after the version was added.")
    ] = None,
    consent_column: Annotated[
        str | None, typer.Option("--consent-column", help="A column holding each record's consent basis.")
    ] = None,
    notes: Annotated[str, typer.Option("--notes", help="Free text: the contract, the custom license's terms.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Set the terms of a version (audited). With no option, read the terms.toml beside its data."""
    from mlcustody.interfaces.cli.app import workspace
    from mlcustody.policy.terms import Terms
    from mlcustody.workspace import policy_cases

    given = None
    if any(v is not None for v in (license, commercial, consent, purpose, retention, consent_column)) or notes:
        given = Terms(license, commercial, consent, tuple(purpose or ()), retention, consent_column, notes)
    with workspace() as ws:
        render_policy.terms_set(policy_cases.set_terms(ws, ref, given), as_json)


@terms_app.command("show")
def terms_show(
    ref: Annotated[str, typer.Argument(help="The version (NAME@VERSION, NAME, a path).")],
    as_json: JsonOpt = False,
) -> None:
    """The terms in force on a version, and its signed expectation results."""
    from mlcustody.interfaces.cli.app import workspace
    from mlcustody.workspace import policy_cases

    with workspace() as ws:
        version = ws.resolve(ref)
        render_policy.evidence(version.ref, policy_cases.evidence_of(ws, version), as_json)


@check_app.command("terms")
def check_terms(
    ref: Annotated[str, typer.Argument(help="A model version (NAME@V, NAME:ALIAS) or any artifact version.")],
    purpose: Annotated[str | None, typer.Option("--purpose", help="The purpose it is to serve.")] = None,
    commercial: Annotated[bool, typer.Option("--commercial", help="It is to be used commercially.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Whether the terms of every source upstream allow this use; exit 1 naming each source, rule and
    the records responsible."""
    from mlcustody.interfaces.cli.app import _fail_if, workspace
    from mlcustody.workspace import policy_cases

    with workspace() as ws:
        found = policy_cases.check_terms(ws, ref, purpose=purpose, commercial=commercial)
        render_policy.checked(found, as_json)
        _fail_if(found.tainted)


def register(app: typer.Typer) -> None:
    app.add_typer(terms_app, name="terms")
    app.add_typer(check_app, name="check")
