"""How the provenance bundle commands look: ``export``, ``verify --bundle`` and ``reproduce``."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from mlcustody.interfaces import shapes
from mlcustody.interfaces.cli import output

if TYPE_CHECKING:
    from mlcustody.ledger.bundle.check import BundleCheck
    from mlcustody.ledger.bundle.export import Exported
    from mlcustody.ledger.bundle.reproduce import Reproduction


def exported(found: Exported, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.export_bundle(found))
        return
    data = " with the datasets' files" if found.with_data else ""
    output.line(
        f"exported {found.model}{data} to {found.path}: {found.members} files, "
        f"{output.human_size(found.content_bytes)} → {output.human_size(found.size)}"
    )
    output.line(f"check it anywhere with: custody verify --bundle {shlex.quote(found.path.name)}")


def verified(found: BundleCheck, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.bundle_verify(found))
        return
    what = found.model or "unknown model"
    if not found.problems:
        output.line(
            f"OK: bundle of {what} — {found.members} members, signature, model files, run seal, data manifests "
            "and lineage digest all match.",
            style="green",
        )
        return
    output.failures([f"{p.kind}: {p.where}: {p.detail}" for p in found.problems], f" in the bundle of {what}")


def reproduced(found: Reproduction, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.reproduce(found))
        return
    output.line(f"materialised the training of {found.model} (run {found.run[:12]}) in {found.to}", style="bold")
    git = found.git
    if git.get("commit"):
        state = "dirty: apply the diff below" if git.get("dirty") else "clean"
        output.line(f"  code:    git {git['commit']} ({state}){'  ' + git['remote'] if git.get('remote') else ''}")
    output.line(f"  entry:   {found.entry or '(not in the store)'}")
    if found.diff:
        output.line(f"  diff:    {found.diff}")
    output.line(f"  params:  {found.params}")
    for ref, path in found.inputs:
        output.line(f"  data:    {ref} → {path}")
    for missing in found.missing:
        output.line(f"  missing: {missing}", style="yellow")
    output.line("run from that directory:")
    output.line(f"  {shlex.join(found.command)}")
