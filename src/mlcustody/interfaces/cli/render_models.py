"""How the model registry commands look: ``model register|alias|ls|show|verify|verify-oms``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcustody.interfaces import shapes
from mlcustody.interfaces.cli import output

if TYPE_CHECKING:
    from mlcustody.checks import Problem
    from mlcustody.ledger.registry.versions import AliasMove, ModelVersion
    from mlcustody.workspace.results import ModelDetails


def show(details: ModelDetails, with_envelope: bool, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.model(details, with_envelope))
        return
    if with_envelope:
        output.line(details.envelope.decode("utf-8"))
        return
    doc = shapes.model(details, False)
    version = details.version
    output.line(f"model {version.ref}  ({version.artifact})", style="bold")
    output.line(f"  files:        sha256 {version.sha256}  blake3 {version.digest}")
    training_chain(doc)
    output.line(f"  lineage:      {version.lineage_digest}")
    output.line(f"  signed by:    key {version.keyid[:16]} at {version.created_at}")
    for alias, state in doc["aliases"].items():
        output.line(f"  alias {alias} → {state['version']}  ({len(state['history'])} move(s))")


def training_chain(doc: dict[str, Any]) -> None:
    """The run, config, code, environment and data behind a model (from a ``model``-shaped document)."""
    run, code = doc["run"], doc["code"]
    if run:
        output.line(f"  trained by:   run {run['id']} {run['name']} ({run['status']}), seal {run['seal']}")
        output.line(f"  config:       {', '.join(f'{k}={v}' for k, v in run['params'].items()) or '(no params)'}")
    git = (code or {}).get("git") or {}
    if git:
        output.line(f"  code:         git {git.get('commit')} ({'dirty' if git.get('dirty') else 'clean'})")
    if doc["environment"]:
        env = doc["environment"]
        output.line(f"  environment:  Python {env['python']}, {env['packages']} packages")
    for dataset in doc["datasets"]:
        annotations = dataset.get("annotations", {})
        records = annotations.get("recordManifest")
        manifest = f"\n                record manifest {records['blake3']}" if records else ""
        learnt = f" ({annotations['learnt']})" if "learnt" in annotations else ""
        output.line(f"  data:         {dataset['name']} {dataset['digest']['blake3']}{learnt}{manifest}")
    if not doc["datasets"]:
        output.line("  data:         (no training data recorded)", style="yellow")
    for source in doc["sources"]:
        output.line(f"  raw source:   {source['name']} {source['digest']['blake3']}")


def alias(name: str, move: AliasMove, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.model_alias(name, move))
        return
    before = "new alias" if move.previous is None else f"was {move.previous}"
    output.line(f"{name}:{move.alias} → {move.version} ({before}); {move.reason}")


def listing(versions: list[ModelVersion], as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.document("models", models=[shapes.model_version(v) for v in versions]))
        return
    rows = [[v.ref, v.artifact, (v.run_id or "")[:12], v.sha256[:16], v.created_at[:19]] for v in versions]
    output.table(["model", "artifact", "run", "sha256", "registered (UTC)"], rows)


def verified(version: ModelVersion, problems: list[Problem], as_json: bool) -> None:
    if as_json:
        output.emit_json(
            shapes.document(
                "model_verify",
                model=shapes.model_version(version),
                ok=not problems,
                problems=shapes.problems(problems),
            )
        )
        return
    if not problems:
        output.line(f"OK: {version.ref} — signature, model bytes, run, data and lineage all match.", style="green")
        return
    output.failures([f"{p.kind}: {p.detail}" for p in problems], f" in {version.ref}")


def oms_bundle(bundle: bytes) -> None:
    """The OMS bundle exactly as signed, for `> model.sig`."""
    output.line(bundle.decode("utf-8"))


def oms_verified(path: Path, problems: list[Problem], as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.model_verify_oms(path, problems))
        return
    if not problems:
        output.line(f"OK: {path} — the OMS signature holds and every signed file matches.", style="green")
        return
    output.failures([f"{p.kind}: {p.where}: {p.detail}" for p in problems], f" in {path}")
