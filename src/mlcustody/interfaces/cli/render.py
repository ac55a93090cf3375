"""How each command's result looks: a JSON document from ``shapes``, or a short human view."""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcustody.interfaces import shapes
from mlcustody.interfaces.cli import output, render_meta, render_policy

if TYPE_CHECKING:
    from mlcustody.metadata.artifacts import ArtifactVersion
    from mlcustody.metadata.audit import Event
    from mlcustody.metadata.gc import GcPlan
    from mlcustody.storage.checkout import CheckoutResult
    from mlcustody.storage.diff import TreeDiff
    from mlcustody.storage.dir_manifest import Entry
    from mlcustody.workspace.facade import Workspace
    from mlcustody.workspace.results import (
        AddResult,
        ArtifactStatus,
        FoundRecord,
        RecordDiffReport,
        VerifyReport,
    )

_SHOWN = 20  # changed files listed per category in human output by default; JSON lists all


def init(ws: Workspace, as_json: bool) -> None:
    from sqlalchemy import make_url

    db = make_url(ws.config.db_url).render_as_string(hide_password=True)
    revision = ws.db.revision()
    if as_json:
        output.emit_json(
            shapes.document("init", root=str(ws.root), db=db, link_mode=ws.config.link_mode, revision=revision)
        )
        return
    output.line(f"Initialised mlcustody workspace in {ws.root}")
    output.line(f"  metadata: {db} (schema {revision}), link mode: {ws.config.link_mode}")


def migrate(revision: str, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.document("migrate", revision=revision))
    else:
        output.line(f"Metadata schema is at revision {revision}.")


def add(results: list[AddResult], as_json: bool) -> None:
    if as_json:
        output.emit_json(
            shapes.document(
                "add", results=[{"created": r.created, "artifact": shapes.artifact(r.version)} for r in results]
            )
        )
        return
    for result in results:
        v = result.version
        what = f"{v.file_count} files, " if v.kind == "dir" else ""
        if result.created:
            output.line(f"added {v.ref} ({v.type}, {what}{output.human_size(v.size)})  {v.digest[:16]}")
        else:
            output.line(f"unchanged {v.ref}  {v.digest[:16]}")


def status(report: list[ArtifactStatus], as_json: bool) -> None:
    if as_json:
        items = [
            {
                "ref": s.version.ref,
                "path": s.version.path,
                "state": s.state,
                "changes": shapes.diff_summary(s.changes) if s.changes else None,
                "checked_out": s.latest is not None,
                "latest": (s.latest or s.version).ref,
            }
            for s in report
        ]
        output.emit_json(shapes.document("status", clean=all(s.state == "unchanged" for s in report), artifacts=items))
        return
    if not report:
        output.line("No artifacts yet; version data with `custody add PATH`.")
    for s in report:
        detail = ""
        if s.changes and s.version.kind == "dir":  # a file is modified or not: no file counts
            c = shapes.diff_summary(s.changes)
            files = "file" if c["added"] + c["removed"] + c["modified"] == 1 else "files"
            detail = f"  (+{c['added']} -{c['removed']} ~{c['modified']} {files})"
        style = {"unchanged": None, "modified": "yellow", "missing": "red"}[s.state]
        compared = f"{s.version.ref}, checked out; latest {s.latest.ref}" if s.latest else s.version.ref
        output.line(f"{s.state:<10} {s.version.path}  [{compared}]{detail}", style=style)


def listing(versions: list[ArtifactVersion], as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.document("ls", artifacts=[shapes.artifact(v) for v in versions]))
        return
    rows = [
        [v.ref, v.type, v.kind, v.file_count, output.human_size(v.size), v.digest[:12], v.created_at[:19]]
        for v in versions
    ]
    output.table(["ref", "type", "kind", "files", "size", "digest", "created (UTC)"], rows)


@dataclass(frozen=True)
class ShowDetails:
    """The optional parts of ``show``: files, column statistics, records found."""

    files: tuple[Entry, ...] | None = None
    stats: dict[str, dict[str, Any]] | None = None
    found: list[FoundRecord] | None = None
    policy: dict[str, Any] = dataclasses.field(default_factory=dict)  # terms, expectations (policy_cases.evidence_of)


def show(version: ArtifactVersion, history: list[ArtifactVersion], details: ShowDetails, as_json: bool) -> None:
    if as_json:
        output.emit_json(
            shapes.document(
                "show",
                artifact=shapes.artifact(version),
                history=[shapes.history_item(v) for v in history],
                files=[shapes.file(e) for e in details.files] if details.files is not None else None,
                stats=details.stats,
                found=[shapes.found_record(f) for f in details.found] if details.found is not None else None,
                terms=details.policy.get("terms"),
                expectations=details.policy.get("expectations", []),
            )
        )
        return
    if details.found is not None:
        _found(version, details.found)
        return
    for field in shapes.ARTIFACT_FIELDS:
        value = getattr(version, field)
        if field == "meta" and version.records:
            value = {**version.meta, "records": {k: v for k, v in version.records.items() if k != "stats"}}
        for text in render_meta.lines(field, value):
            output.line(text)
    output.line(f"{'history':>11}: " + ", ".join(f"@{v.version} {v.digest[:8]}" for v in history))
    for entry in details.files or ():
        output.line(f"  {entry.digest[:12]} {entry.size:>12} {entry.mode:o} {entry.path}")
    for text in render_policy.evidence_lines(details.policy):
        output.line(text)
    if details.stats is not None:
        _stats(details.stats)


def _found(version: ArtifactVersion, found: list[FoundRecord]) -> None:
    for item in found:
        check = "verified against the raw bytes" if item.record.verified else "MISMATCH with the raw bytes"
        output.line(f"{version.ref} record {item.hit.record_id}")
        output.line(f"  source:      {item.hit.source}")
        if item.record.raw is not None:
            output.line(f"  line:        {item.record.raw}")
        output.line(f"  fingerprint: {item.hit.fingerprint} ({check})")
        for name, value in item.record.values.items():
            output.line(f"  {name:>12} = {value!r}")


def _stats(stats: dict[str, dict[str, Any]]) -> None:
    rows = [
        [
            name,
            s["type"],
            s["count"],
            s["nulls"],
            s["distinct_approx"],
            s.get("min", ""),
            s.get("max", ""),
            _fmt(s.get("mean")),
            _fmt(s.get("std")),
        ]
        for name, s in stats.items()
    ]
    output.table(["column", "type", "count", "nulls", "distinct≈", "min", "max", "mean", "std"], rows)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def record_diff(a: ArtifactVersion, b: ArtifactVersion, report: RecordDiffReport, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.record_diff(a, b, report))
        return
    d = report.diff
    output.line(
        f"{a.ref} → {b.ref} (records matched by {d.matched_by}): {d.added} added, {d.removed} removed, "
        f"{d.changed} changed, {d.unchanged} unchanged"
    )
    for kind, style in (("added", "green"), ("removed", "red"), ("changed", "yellow")):
        rows = d.examples[kind]
        for row in rows:
            ident = row.get("record_id") or row.get("new_id") or row.get("old_id")
            where = row.get("new_source") or row.get("old_source")
            output.line(f"  {kind[0].upper()} {ident}  ({where})", style=style)
            for column, (old, new) in row.get("columns", {}).items():
                output.line(f"      {column}: {old!r} → {new!r}", style=style)
        _more(kind[0].upper(), getattr(d, kind) - len(rows), style, "more records")
    schema = report.schema
    if schema["added_columns"] or schema["removed_columns"] or schema["type_changes"]:
        output.line(f"schema: +{schema['added_columns']} -{schema['removed_columns']} ~{schema['type_changes']}")
    for column, moved in report.stats.items():
        shown = ", ".join(f"{k} {_short(v[0])} → {_short(v[1])}" for k, v in moved.items())
        output.line(f"  {column}: {shown}")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _more(sign: str, hidden: int, style: str, what: str) -> None:
    """The line that says how many a diff did not list, and how to list them."""
    if hidden > 0:
        output.line(f"  {sign} … and {hidden} more (--all or --limit N to list {what}, --json for all)", style=style)


def diff(a: ArtifactVersion, b: ArtifactVersion, changes: TreeDiff, as_json: bool, shown: int | None = _SHOWN) -> None:
    if as_json:
        output.emit_json(
            shapes.document("diff", a=shapes.artifact(a), b=shapes.artifact(b), **shapes.tree_diff(changes))
        )
        return
    summary = shapes.diff_summary(changes)
    output.line(
        f"{a.ref} → {b.ref}: {summary['added']} added, {summary['removed']} removed, "
        f"{summary['modified']} modified, {summary['unchanged']} unchanged"
    )
    for sign, style, items in (
        ("+", "green", changes.added),
        ("-", "red", changes.removed),
        ("~", "yellow", changes.modified),
    ):
        listed = items if shown is None else items[:shown]
        for change in listed:
            output.line(f"  {sign} {change.path}", style=style)
        _more(sign, len(items) - len(listed), style, "more files")


def checkout(version: ArtifactVersion, target: Path, result: CheckoutResult, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.checkout(version, target, result))
        return
    output.line(
        f"checked out {version.ref} to {target}: {result.written} written, {result.deleted} removed, "
        f"{result.unchanged} already up to date"
    )


def verify(report: VerifyReport, as_json: bool) -> None:
    if as_json:
        output.emit_json(
            shapes.document(
                "verify", ok=not report.problems, checked=report.checked, problems=shapes.problems(report.problems)
            )
        )
        return
    c = report.checked
    output.line(
        f"checked {c['events']} audit events, {c['artifact_versions']} artifact versions, {c['sealed_runs']} sealed "
        f"runs, {c['objects']} objects ({output.human_size(c['bytes'])}), {c['decisions']} decisions and "
        f"{c['checkpoints']} checkpoints (their anchors and key rows; every entry with --decisions)"
    )
    if not report.problems:
        output.line("OK: everything matches.", style="green")
        return
    output.failures([f"{p.kind}: {p.where}: {p.detail}" for p in report.problems])


def log(events: list[Event], as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.document("log", events=[shapes.event(e) for e in events]))
        return
    rows = [[e.seq, e.time[:19], e.actor, e.action, _summary(e), e.digest[:12]] for e in events]
    output.table(["seq", "time (UTC)", "actor", "action", "subject", "digest"], rows)


def _summary(event: Event) -> str:
    row = event.payload.get("row")
    if isinstance(row, dict) and "version" in row:
        return f"{row['name']}@{row['version']}"
    if isinstance(row, dict) and ("run_id" in row or "id" in row):
        run_id = row.get("run_id") or row["id"]
        return f"run {run_id[:12]}" + (f" ({row['name']})" if "name" in row else f" seal {row['seal'][:12]}")
    return ", ".join(f"{k}={v}" for k, v in event.payload.items() if not isinstance(v, dict | list))[:60]


def gc(found: GcPlan, freed: int, deleted: bool, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.gc(found, freed, deleted))
        return
    verb = "removed" if deleted else "would remove"
    output.line(
        f"{verb} {len(found.unreferenced)} unreferenced objects ({output.human_size(found.unreferenced_bytes)}) "
        f"and {len(found.stale_tmp)} stale temp files; {found.kept} objects referenced"
    )
    if not deleted and (found.unreferenced or found.stale_tmp):
        output.line("run `custody gc --delete` to delete them")


def demo_step(title: str, command: str, text: str) -> None:
    output.markup(f"\n[bold cyan]▶ {title}[/]\n[dim]$ {command}[/]")
    if text:
        output.line(text.rstrip())


def demo_end(where: Path) -> None:
    """Where the tour left its workspace, and the commands to look around in it."""
    output.markup(f"\n[bold green]Done.[/] The demo workspace is kept in {where}")
    output.line(
        f"Explore it: cd {shlex.quote(str(where))} && custody log   (or custody ls, custody runs, custody model ls)"
    )
