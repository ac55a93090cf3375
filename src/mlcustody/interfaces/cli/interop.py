"""``custody import mlflow`` and ``custody export cyclonedx``: other tools' histories in, standard bills
of materials out. Each command parses, calls one library function and renders what it returns.

``custody export`` was one command (``export REF --bundle FILE``); it is now a group whose first word
may be a format, and any other first word still means the provenance bundle, so scripts that called
``custody export MODEL --bundle B`` keep working (``_ExportGroup``).
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from mlcustody.interfaces import shapes
from mlcustody.interfaces.cli import output

if TYPE_CHECKING:
    from mlcustody.workspace.boms import Bom
    from mlcustody.workspace.facade import Workspace
    from mlcustody.workspace.import_dvc import DvcImport
    from mlcustody.workspace.import_mlflow import MlflowImport

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document (see docs/cli.md).")]
KeyOpt = Annotated[str | None, typer.Option("--key", help="Signing key name (default: the active key).")]

import_app = typer.Typer(help="Bring another tool's history under custody: MLflow tracking stores.")


class _ExportGroup(TyperGroup):
    """An export group whose unknown first word is the model of a provenance bundle (``bundle``)."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:  # typer vendors its click: Any keeps it private
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["bundle", *args]
        return super().resolve_command(ctx, args)


export_app = typer.Typer(
    cls=_ExportGroup,
    help="Write what custody holds for others: provenance bundles (`export MODEL --bundle FILE`, also "
    "`export bundle …`) and CycloneDX ML-BOMs.",
)


def _workspace() -> AbstractContextManager[Workspace]:
    from mlcustody.interfaces.cli.app import workspace  # app registers this module: imported when run

    return workspace()


@import_app.command("mlflow")
def import_mlflow(
    uri: Annotated[
        str,
        typer.Argument(
            metavar="URI", help="Tracking store: a directory, sqlite:///FILE, postgresql://…, http://HOST:PORT."
        ),
    ],
    experiments: Annotated[
        list[str] | None,
        typer.Option("--experiments", help="Only this experiment, by name or id (repeat; default: all)."),
    ] = None,
    trust_pickle: Annotated[
        bool, typer.Option("--trust-pickle", help="Also sign pickled model versions (named as such).")
    ] = False,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import experiments, runs (params, every metric point, tags, artifacts) and registered model versions
    with their numbers, stages and aliases. A second import adds nothing; what cannot be mapped is listed."""
    from mlcustody.workspace.import_mlflow import import_mlflow as run_import

    with _workspace() as ws:
        report = run_import(ws, uri, experiments=experiments or (), trust_pickle=trust_pickle, key=key)
    _imported(shapes.mlflow_import(report) if as_json else None, report, f"from {report.source}")


def _imported(doc: dict[str, Any] | None, report: MlflowImport | DvcImport, source: str) -> None:
    """An import report: its --json document when given, else counts, what was there, what was not mapped."""
    if doc is not None:
        output.emit_json(doc)
        return
    added = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(report.imported.items())) or "nothing"
    output.line(f"imported {source}: {added}")
    if report.skipped:
        kept = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(report.skipped.items()))
        output.line(f"already imported: {kept}")
    for item in report.unmapped:
        output.line(f"not mapped: {item.kind} {item.item}: {item.reason}", style="yellow")


def register(app: Any, export_bundle: Any) -> None:
    """Add ``import`` and ``export`` to the ``custody`` app; ``export_bundle`` is the bundle command."""
    export_app.command("bundle")(export_bundle)
    app.add_typer(import_app, name="import")
    app.add_typer(export_app, name="export")


@export_app.command("cyclonedx")
def export_cyclonedx(
    ref: Annotated[str, typer.Argument(metavar="MODEL", help="NAME@VERSION, NAME:ALIAS or NAME (latest).")],
    spec: Annotated[str, typer.Option("--spec", help="CycloneDX 1.6, or 1.7 with per-field citations.")] = "1.6",
    out: Annotated[Path | None, typer.Option("--out", help="Write it here (default: print it).")] = None,
    sign: Annotated[bool, typer.Option("--sign", help="Wrap it in a DSSE envelope signed by a registry key.")] = False,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A CycloneDX ML-BOM of a model version: model card (params, datasets, metrics, considerations),
    the data it was trained on, the training run as formulation, hashes in SHA-256 and BLAKE3."""
    from mlcustody.workspace import boms

    with _workspace() as ws:
        bom = boms.cyclonedx(ws, ref, spec=spec, sign=sign, key=key)
    _written(bom, out, as_json)


def _written(bom: Bom, out: Path | None, as_json: bool) -> None:
    from mlcustody.interfaces.cli.app import _write_out

    if out is None and not as_json:
        output.line(bom.text().rstrip("\n"))
        return
    if out is not None:
        _write_out(out, bom.text())
    if as_json:
        output.emit_json(shapes.bom_export(bom, out))
        return
    signed = " (signed)" if bom.envelope is not None else ""
    output.line(f"wrote the {bom.format} {bom.spec} document of {bom.model}{signed} to {out}")


@export_app.command("openlineage")
def export_openlineage(
    refs: Annotated[list[str] | None, typer.Argument(metavar="RUN", help="Run ids (default: every run).")] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="Marquez-compatible endpoint; events go to URL/api/v1/lineage.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the events here, one per line.")] = None,
    namespace: Annotated[str, typer.Option("--namespace", help="OpenLineage namespace of jobs and datasets.")] = (
        "mlcustody"
    ),
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar="OPENLINEAGE_API_KEY", help="Bearer token of the endpoint.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Send runs as OpenLineage RunEvents (START, then COMPLETE, FAIL or ABORT) whose datasets carry our
    digests as their version; without --url or --out, print them one per line."""
    from mlcustody.workspace.lineage_events import emit_openlineage

    with _workspace() as ws:
        emitted = emit_openlineage(ws, refs or (), url=url, out=out, namespace=namespace, api_key=api_key)
    if as_json:
        output.emit_json(shapes.openlineage_export(emitted))
    elif url is None and out is None:
        for event in emitted.events:
            output.line(json.dumps(event, sort_keys=True))
    else:
        where = " and ".join(w for w in (url, str(out) if out else None) if w)
        output.line(f"{len(emitted.events)} OpenLineage events of {len(emitted.runs)} runs → {where}")


@import_app.command("dvc")
def import_dvc(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="A git repository with DVC in it (holding .dvc/).")],
    as_json: JsonOpt = False,
) -> None:
    """Import a DVC repository's git history: each content of every `.dvc` out and `dvc.lock` dep/out as
    a version (MD5 checked, re-hashed to BLAKE3), each changed stage of each commit as a sealed run."""
    from mlcustody.workspace.import_dvc import import_dvc as run_import

    with _workspace() as ws:
        report = run_import(ws, path)
    _imported(shapes.dvc_import(report) if as_json else None, report, f"{report.commits} commits of {report.source}")


@export_app.command("spdx")
def export_spdx(
    ref: Annotated[str, typer.Argument(metavar="MODEL", help="NAME@VERSION, NAME:ALIAS or NAME (latest).")],
    out: Annotated[Path | None, typer.Option("--out", help="Write it here (default: print it).")] = None,
    sign: Annotated[bool, typer.Option("--sign", help="Wrap it in a DSSE envelope signed by a registry key.")] = False,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """An SPDX 3.0.1 document (JSON-LD) of a model version with the AI and Dataset profiles: the model with
    its hyperparameters and metrics, the datasets it was trained on, hashes in SHA-256 and BLAKE3."""
    from mlcustody.workspace import boms

    with _workspace() as ws:
        bom = boms.spdx(ws, ref, sign=sign, key=key)
    _written(bom, out, as_json)
