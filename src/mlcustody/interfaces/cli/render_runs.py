"""How run commands look: ``run``, ``runs``, ``show RUN`` and ``diff RUN RUN``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcustody.interfaces import shapes
from mlcustody.interfaces.cli import output
from mlcustody.workspace.results import CAPTURE_TAG

if TYPE_CHECKING:
    from mlcustody.metadata.runs.store import IO, Run
    from mlcustody.workspace.results import RunDetails

_STYLE = {"finished": "green", "failed": "red", "killed": "red", "running": "yellow"}
_PACKAGES_SHOWN = 8
_FILES_SHOWN = 20  # inputs/outputs listed by `show RUN`; --json lists all


def show(details: RunDetails, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.run(details))
        return
    summary = shapes.run_summary(details.run)
    took = f", {summary['duration_seconds']:.2f} s" if summary["duration_seconds"] is not None else ""
    exit_status = f", exit {summary['exit_status']}" if summary["exit_status"] is not None else ""
    output.line(
        f"run {summary['id']}  {summary['name']}  {summary['status']}{exit_status}{took}",
        style=_STYLE[summary["status"]],
    )
    if summary["error"]:
        output.line(f"  error:       {summary['error']}", style="red")
    output.line(f"  started:     {summary['started_at']} by {summary['actor']} on {summary['host']}")
    output.line(f"  command:     {' '.join(summary['command'])}")
    if summary["parent"]:
        output.line(f"  parent run:  {summary['parent']}")
    output.line(f"  code:        {_code(details.code)}")
    output.line(f"  environment: {_environment(details.environment)}")
    _mapping("params", details.run.params)
    _mapping("metrics", {k: f"{m.value:.6g} (step {m.step}, {m.count} values)" for k, m in details.run.metrics.items()})
    _mapping("tags", {k: v for k, v in details.run.tags.items() if k != CAPTURE_TAG})
    _files("inputs", details.run.files("input"))
    _files("outputs", details.run.files("output"))
    _capture(shapes.capture_report(details.run))
    for command in details.run.end.processes if details.run.end else []:
        output.line(f"  started process: {' '.join(command)}")
    if details.children:
        output.line(f"  child runs:  {', '.join(c[:12] for c in details.children)}")
    redacted = shapes.redactions(details)
    if redacted:
        output.line(f"  redacted:    {', '.join(f'{r.where} ({r.rule})' for r in redacted)}")
    output.line(f"  seal:        {summary['seal'] or '(not sealed: still running)'}")


def listing(found: list[Run], as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.document("runs", runs=[shapes.run_summary(r) for r in found]))
        return
    if not found:
        output.line("No runs match; track one with `custody run -- CMD` or mlcustody.start_run().")
        return
    rows = []
    for item in found:
        summary = shapes.run_summary(item)
        metrics = ", ".join(f"{k}={_number(v)}" for k, v in summary["metrics"].items())
        params = ", ".join(f"{k}={v}" for k, v in item.params.items())
        rows.append([item.id[:12], item.start.name, item.status, item.start.started_at[:19], params[:40], metrics[:60]])
    output.table(["id", "name", "status", "started (UTC)", "params", "metrics (latest)"], rows)


def diff(a: RunDetails, b: RunDetails, differences: dict[str, Any], as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.run_diff(a, b, differences))
        return
    output.line(f"{a.run.id[:12]} ({a.run.start.name}) → {b.run.id[:12]} ({b.run.start.name})")
    same = [section for section, changes in differences.items() if not changes]
    for section, changes in differences.items():
        for key, (old, new) in list(changes.items())[: _PACKAGES_SHOWN if section == "packages" else None]:
            output.line(f"  {section}.{key}: {_number(old)} → {_number(new)}", style="yellow")
        if section == "packages" and len(changes) > _PACKAGES_SHOWN:
            output.line(f"  packages: … and {len(changes) - _PACKAGES_SHOWN} more (use --json)", style="yellow")
    if same:
        output.line(f"  same: {', '.join(same)}")


def _code(code: dict[str, Any]) -> str:
    git, entry = code.get("git"), code.get("entry")
    parts = []
    if git:
        state = "dirty" if git["dirty"] else "clean"
        parts.append(f"git {(git['commit'] or 'no commit')[:12]} ({git['branch'] or 'detached'}, {state})")
    else:
        parts.append("not in a git repository")
    if entry:
        parts.append(f"entry {entry['path']} {entry['digest'][:12]}")
    return "; ".join(parts)


def _environment(environment: dict[str, Any] | None) -> str:
    if environment is None:
        return "(recorded when the run ends)"
    python = environment.get("python")
    system = environment["os"]
    where = f"{system['system']} {system['release']} {system['machine']}, {environment['hardware']['cpus']} CPUs"
    if python is None:
        return where
    return f"Python {python['version']} ({python['executable']}), {len(python['packages'])} packages; {where}"


def _mapping(title: str, values: dict[str, Any]) -> None:
    if values:
        output.line(f"  {title}:".ljust(15) + ", ".join(f"{k}={v}" for k, v in values.items()))


def _files(title: str, items: list[IO]) -> None:
    for item in items[:_FILES_SHOWN]:
        digest = item.digest[:12] if item.digest else "(changed while read)"
        artifact = f" [{item.artifact}]" if item.artifact else ""
        output.line(f"  {title[:-1]:<7} {digest}  {item.path}{artifact}  ({item.source})")
    if len(items) > _FILES_SHOWN:
        output.line(f"  {title[:-1]:<7} … and {len(items) - _FILES_SHOWN} more (use --json for all)")


def _capture(report: dict[str, Any] | None) -> None:
    """What `custody run` kept as less than a version, the record manifests and links it made, its notes."""
    if report is None:
        return
    for item in report["files"]:
        output.line(f"  {item['state']:<7} {item['path']} ({item['role']}): {item['why']}", style="yellow")
    for item in report["manifests"]:
        if item.get("manifest"):
            key = f"key {item['key']}" if item.get("key") else "ids file:LINE"
            output.line(f"  records  {item['path']}: {item['count']} records, {key}")
        if item.get("why"):
            output.line(f"  records  {item['path']}: {item['why']}", style="yellow")
    for item in report["links"]:
        if item["relation"]:
            how = f"{item['relation']} on {', '.join(item['columns'])}"
            output.line(f"  linked   {item['output']} ← {item['input']}: {item['matched']} links, {how}")
    for note in report["notes"]:
        output.line(f"  note:    {note}", style="yellow")


def _number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
