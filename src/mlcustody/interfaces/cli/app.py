"""The `custody` command: parse arguments, call one Workspace method, render what it returns.

Exit status: 0 success, 1 a check found a problem, 2 bad usage or input (one-line error with the
fix), 3 an unexpected internal error (traceback with --debug).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.exceptions import TyperException

from mlcustody.errors import CustodyError, PathError, UsageError
from mlcustody.interfaces import shapes
from mlcustody.interfaces.cli import (
    investigate_attribution,
    output,
    render,
    render_bundles,
    render_decisions,
    render_keys,
    render_lineage,
    render_lineage_records,
    render_models,
    render_runs,
)

if TYPE_CHECKING:  # the database layer is imported by the commands that use it (see `run`)
    from mlcustody.workspace.facade import Workspace

app = typer.Typer(
    name="custody",
    help="Chain of custody for machine-learning models: version data, verify it, trace it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document (see docs/cli.md).")]


class State:
    directory: Path | None = None


def _print_version(asked: bool) -> None:
    if asked:
        from mlcustody import __version__

        output.line(f"custody (mlcustody) {__version__}")
        raise typer.Exit(0)


@app.callback()
def _global(
    directory: Annotated[
        Path | None, typer.Option("--dir", "-C", help="Workspace directory (default: current or a parent).")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit.")
    ] = False,
) -> None:
    State.directory = directory or (Path(os.environ["CUSTODY_DIR"]) if os.environ.get("CUSTODY_DIR") else None)


@contextmanager
def workspace() -> Iterator[Workspace]:
    from mlcustody.workspace.facade import Workspace

    ws = Workspace.open(State.directory)
    try:
        yield ws
    finally:
        ws.close()


def _write_out(path: Path, text: str) -> None:
    """Write an ``--out`` file; an unwritable path is bad input, not a crash."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise PathError(f"cannot write {path}: {exc.strerror}", hint="choose a writable file for --out") from exc


def _fail_if(problem_found: bool) -> None:
    if problem_found:
        raise typer.Exit(1)


@app.command()
def init(
    db: Annotated[str | None, typer.Option(help="Metadata database URL (default: SQLite in .custody/).")] = None,
    link: Annotated[str, typer.Option(help="Link mode: copy, hardlink, symlink or reflink.")] = "copy",
    as_json: JsonOpt = False,
) -> None:
    """Create a workspace store (.custody/) in the current directory or --dir."""
    from mlcustody.workspace.facade import Workspace

    db_url = db or os.environ.get("CUSTODY_DB_URL") or None
    with Workspace.init(State.directory or Path.cwd(), db_url=db_url, link_mode=link) as ws:
        render.init(ws, as_json)


@app.command()
def migrate(as_json: JsonOpt = False) -> None:
    """Upgrade the metadata database to this release's schema."""
    from mlcustody import config
    from mlcustody.workspace.facade import Workspace

    root = config.find_root(State.directory or Path.cwd())
    with Workspace(config.load(root)) as ws:
        render.migrate(ws.migrate(), as_json)


@app.command()
def add(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories inside the workspace.")],
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Artifact name (default: the path; a file without its extension)."),
    ] = None,
    type: Annotated[
        str | None, typer.Option("--type", "-t", help="dataset, model, config, code, environment, report, other.")
    ] = None,
    message: Annotated[str, typer.Option("--message", "-m", help="Why this version exists.")] = "",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag to attach (repeatable).")] = None,
    records: Annotated[
        bool, typer.Option("--records", help="Also build a record manifest (ids, fingerprints, statistics).")
    ] = False,
    key: Annotated[str | None, typer.Option("--key", help="Key column(s) of the records, comma-separated.")] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="Record format: csv, tsv, parquet, jsonl, text (default: suffix).")
    ] = None,
    expect: Annotated[
        Path | None, typer.Option("--expect", help="Run this expectation suite (YAML) and keep its signed result.")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="With --expect: exit 2 if the suite fails.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Version files or directories: store their bytes and record a new artifact version."""
    from mlcustody.workspace import policy_cases
    from mlcustody.workspace.results import RecordSpec

    policy_cases.check_suite(expect)

    spec = None
    if records or key or fmt:
        spec = RecordSpec(key=tuple(k.strip() for k in key.split(",") if k.strip()) if key else None, format=fmt)
    with workspace() as ws:
        results = ws.add(
            paths,
            name=name,
            type=type,
            message=message,
            tags=tag or [],
            records=spec,
            progress=output.progress(not as_json),
        )
        policy_cases.after_add(ws, [r.version for r in results], expect, strict)  # terms.toml, expectations
        render.add(results, as_json)


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """Compare every artifact's path with its latest version (or with the version `checkout` restored
    there); exit 1 if anything changed."""
    with workspace() as ws:
        report = ws.status(progress=output.progress(not as_json))
        render.status(report, as_json)
        _fail_if(any(item.state != "unchanged" for item in report))


@app.command("ls")
def ls(
    all_versions: Annotated[bool, typer.Option("--all", "-a", help="Every version, not only the latest.")] = False,
    type: Annotated[str | None, typer.Option("--type", "-t", help="Only artifacts of this type.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List artifacts."""
    with workspace() as ws:
        render.listing(ws.listing(all_versions=all_versions, type=type), as_json)


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION, a digest prefix, or a run id (prefix).")],
    files: Annotated[bool, typer.Option("--files", help="List the files of a directory version.")] = False,
    stats: Annotated[bool, typer.Option("--stats", help="Per-column statistics of the records.")] = False,
    record: Annotated[str | None, typer.Option("--record", help="Show the record with this id.")] = None,
    fingerprint: Annotated[
        str | None, typer.Option("--fingerprint", help="Show records with this fingerprint.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one artifact version (its history, files, stats, terms, expectations or a record), or one run."""
    from mlcustody.workspace import policy_cases

    with workspace() as ws:
        if ws.is_run(ref):
            render_runs.show(ws.run(ref), as_json)
            return
        version = ws.resolve(ref)
        found = None
        if record is not None or fingerprint is not None:
            version, found = ws.find_records(ref, record_id=record, fingerprint=fingerprint)
        details = render.ShowDetails(
            files=ws.entries(version) if files else None,
            stats=ws.record_manifest(version)["stats"] if stats else None,
            found=found,
            policy=policy_cases.evidence_of(ws, version),  # terms and signed expectation results
        )
        render.show(version, ws.history(version.name), details, as_json)


@app.command()
def diff(
    ref_a: Annotated[str, typer.Argument(help="Old version (or run).")],
    ref_b: Annotated[str, typer.Argument(help="New version (or run).")],
    records: Annotated[
        bool, typer.Option("--records", help="Compare records (added, removed, changed), schema and statistics.")
    ] = False,
    show_all: Annotated[bool, typer.Option("--all", help="List every file or record that differs.")] = False,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="List at most N of each kind (default 20 files, 5 records; --json: all)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Files (or, with --records, records) added, removed and modified between two versions, or what
    differs between two runs (params, metrics, code, packages, inputs, outputs). A changed record is
    shown with the columns that changed, old and new values."""
    with workspace() as ws:
        if ws.is_run(ref_a) and ws.is_run(ref_b):
            render_runs.diff(*ws.run_diff(ref_a, ref_b), as_json)
        elif records:
            found = ws.record_diff(ref_a, ref_b, limit=_listed(show_all, limit, as_json, 5))
            render.record_diff(*found, as_json)
        else:
            render.diff(*ws.diff(ref_a, ref_b), as_json, shown=_listed(show_all, limit, as_json, 20))


def _listed(show_all: bool, limit: int | None, as_json: bool, default: int) -> int | None:
    """How many of each kind a diff lists: --limit N, else every one with --all or --json, else ``default``."""
    if show_all and limit is not None:
        raise UsageError("--all and --limit contradict each other", hint="give one of them")
    if limit is not None:
        return limit
    return None if show_all or as_json else default


@app.command()
def checkout(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or a digest prefix.")],
    to: Annotated[Path | None, typer.Option("--to", help="Write here instead of the original path.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite changes that are not in the store.")] = False,
    link: Annotated[str | None, typer.Option(help="Link mode for this checkout (default: config).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore a version's files at its path (or --to), never silently losing unsaved data."""
    with workspace() as ws:
        version, target, result = ws.checkout(
            ref, to=to, force=force, link_mode=link, progress=output.progress(not as_json)
        )
        render.checkout(version, target, result, as_json)


@app.command("run", context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True})
def run_command(
    command: Annotated[list[str] | None, typer.Argument(help="The command to run, after --.")] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Run name (default: the program's name).")] = None,
    inputs: Annotated[
        list[Path] | None, typer.Option("--in", help="Input path, stored before the command runs (repeatable).")
    ] = None,
    outputs: Annotated[
        list[Path] | None, typer.Option("--out", help="Output path, versioned after the command ran (repeatable).")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE recorded as a param (repeatable).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a command as a tracked run: code, environment, files read and written, exit status.

    Python commands are watched through an audit hook (every file opened under the workspace and
    every process started); for other commands declare --in and --out. The command's exit status
    is passed through; with --json its standard output goes to standard error.
    """
    from mlcustody.workspace import command as tracked  # light: the database layer loads once the child runs

    status = tracked.run(
        State.directory,
        command or [],
        name=name,
        inputs=inputs or [],
        outputs=outputs or [],
        params=_params(param or []),
        stdout_to_stderr=as_json,
        show=lambda ws, result: render_runs.show(ws.run(result.run.id), as_json),
    )
    raise typer.Exit(status)


def _params(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a value that parses as JSON (0.1, true, [1,2]) is kept typed."""
    found: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"--param {item!r} is not KEY=VALUE", hint="write e.g. --param lr=0.1")
        try:
            found[key] = json.loads(value)
        except ValueError:
            found[key] = value
    return found


@app.command()
def runs(
    name: Annotated[str | None, typer.Option("--name", "-n", help="Only runs with this name.")] = None,
    where: Annotated[
        str | None, typer.Option("--where", "-w", help='Filter, e.g. "metrics.auc > 0.9 and params.lr < 0.1".')
    ] = None,
    sort: Annotated[str | None, typer.Option("--sort", "-s", help="Order by a field; -FIELD for descending.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most N runs.")] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """List and search runs (newest first unless --sort)."""
    with workspace() as ws:
        render_runs.listing(ws.runs(name=name, where=where, sort=sort, limit=limit), as_json)


@app.command()
def lineage(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION, a digest prefix, or a run id (prefix).")],
    up: Annotated[bool, typer.Option("--up", help="What it came from (the default).")] = False,
    down: Annotated[bool, typer.Option("--down", help="What came from it.")] = False,
    both: Annotated[bool, typer.Option("--both", help="Both sides.")] = False,
    depth: Annotated[
        int | None,
        typer.Option("--depth", "-d", help="At most N steps, entity→run or run→entity (with --column: N runs)."),
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help="tree (default), json, dot, mermaid or prov-json.")
    ] = None,
    column: Annotated[
        str | None, typer.Option("--column", "-c", help="Walk this column back to the columns it was computed from.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """What an artifact version or run came from (runs, versions, files, people) or what came from it:
    a tree, JSON, Graphviz DOT, Mermaid or W3C PROV-JSON (see docs/lineage.md)."""
    view = render_lineage.View.of(up=up, down=down, both=both, fmt=fmt, as_json=as_json, column=column)
    with workspace() as ws:
        if column is not None:
            found = ws.column_lineage(ref, column, depth=depth)
            render_lineage.columns(found, ws.lineage_digest(ref) if view.needs_digest else None, depth, view)
            return
        graph = ws.lineage(ref, direction=view.direction, depth=depth)
        render_lineage.graph(graph, ws.lineage_digest(ref) if view.needs_digest else None, view)


@app.command()
def verify(
    report_file: Annotated[
        Path | None,
        typer.Argument(
            metavar="[REPORT_FILE]",
            help="A signed report (`custody report … --out`): its signature and, in a workspace, every citation.",
        ),
    ] = None,
    bundle: Annotated[
        Path | None,
        typer.Option("--bundle", help="Check this provenance bundle (.tar.gz) offline instead; no workspace needed."),
    ] = None,
    decisions: Annotated[
        bool,
        typer.Option("--decisions", help="Check the decision log instead: entries, Merkle tree, signed checkpoints."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Recompute every object, manifest, row and audit event; exit 1 on any mismatch.

    With --bundle, check an exported provenance bundle alone: its members, the signature with the
    bundled public key, every digest the attestation names, the run's seal and the lineage digest.
    With REPORT_FILE, check a report as `custody report verify` does (offline outside a workspace)."""
    if sum((report_file is not None, bundle is not None, decisions)) > 1:
        raise UsageError("REPORT_FILE, --bundle and --decisions check different things", hint="give one of them")
    if report_file is not None:
        from mlcustody import config
        from mlcustody.interfaces.cli import report as report_cli

        report_cli.verify(report_file, offline=not config.is_workspace(State.directory or Path.cwd()), as_json=as_json)
        return
    if bundle is not None:
        from mlcustody.workspace.facade import Workspace

        found = Workspace.verify_bundle(bundle)
        render_bundles.verified(found, as_json)
        _fail_if(bool(found.problems))
        return
    if decisions:
        with workspace() as ws:
            checked = ws.verify_decisions()
            render_decisions.verified(checked, as_json)
            _fail_if(bool(checked.problems))
        return
    with workspace() as ws:
        report = ws.verify(progress=output.progress(not as_json))
        render.verify(report, as_json)
        _fail_if(bool(report.problems))


@app.command()
def log(
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=1, help="Show at most N events.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The audit log: every metadata change, newest first."""
    with workspace() as ws:
        render.log(ws.log(limit=limit), as_json)


@app.command()
def gc(
    delete: Annotated[bool, typer.Option("--delete", help="Really delete (default: only report).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Find objects no version refers to (and stale temp files); delete them with --delete."""
    with workspace() as ws:
        found, freed = ws.gc(delete=delete)
        render.gc(found, freed, delete, as_json)


trace_app = typer.Typer(help="Follow one record or one decision through the chain of custody.")
app.add_typer(trace_app, name="trace")


@trace_app.command("record")
def trace_record(
    ref: Annotated[str, typer.Argument(help="The dataset version holding the record (NAME, NAME@VERSION, …).")],
    ident: Annotated[str, typer.Argument(metavar="ID", help="The record id, or its fingerprint.")],
    down: Annotated[
        bool, typer.Option("--down", help="Everything the record reached: dataset records and models.")
    ] = False,
    depth: Annotated[int, typer.Option("--depth", help="Follow at most N runs (default: all).")] = 64,
    as_json: JsonOpt = False,
) -> None:
    """Walk a record back through every transforming run to its raw source lines (or --down)."""
    with workspace() as ws:
        render_lineage_records.trace(ws.trace_record(ref, ident, down=down, depth=depth), down, as_json)


@trace_app.command("decision")
def trace_decision(
    decision_id: Annotated[str, typer.Argument(metavar="ID", help="The decision id.")],
    records: Annotated[
        int | None,
        typer.Option(
            "--records", min=1, help="Also the N training records that most influenced it, traced to raw lines."
        ),
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="The training set's label column (default: the one non-feature).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Follow a decision to the model version that made it, its verified attestation, training run,
    code, config, environment, and the datasets with their record manifests; with --records N, to the
    N training records that most influenced it and their raw source lines (see docs/decisions.md)."""
    with workspace() as ws:
        render_decisions.trace(ws.trace_decision(decision_id, records or 0, label), as_json)


keys_app = typer.Typer(help="Signing keys: make, list, export, rotate and revoke the keys that sign attestations.")
app.add_typer(keys_app, name="keys")


@keys_app.command("generate")
def keys_generate(
    name: Annotated[str, typer.Option("--name", "-n", help="Key name (one active key per name).")] = "default",
    type: Annotated[str, typer.Option("--type", "-t", help="ecdsa-p256 (default) or ed25519.")] = "ecdsa-p256",
    as_json: JsonOpt = False,
) -> None:
    """Make a key pair: the private half encrypted with CUSTODY_KEY_PASSPHRASE (or a prompted
    passphrase) under .custody/keys/, the public half registered in the audit log.

    Scripts and CI, which have no terminal to prompt on, set CUSTODY_KEY_PASSPHRASE in the
    environment (every command that signs reads it too), or give a ready-made private key in
    CUSTODY_SIGNING_KEY (PEM text or a path) instead of generating one. The decision log signs with
    its own Ed25519 key, decision-log, made with the same passphrase on first use."""
    with workspace() as ws:
        render_keys.change("generated", ws.generate_key(name, type), as_json)


@keys_app.command("ls")
def keys_ls(as_json: JsonOpt = False) -> None:
    """List signing keys with their status (active, retired, revoked) and validity."""
    with workspace() as ws:
        render_keys.listing(ws.list_keys(), as_json)


@keys_app.command("export-public")
def keys_export_public(
    ref: Annotated[
        str | None,
        typer.Argument(
            metavar="[NAME_OR_KEYID]", help="Key name (its active key) or keyid (prefix); default: the active key."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the PEM to this file.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a public key as PEM (SubjectPublicKeyInfo), or write it to --out; without a name, the
    active key that signs attestations."""
    with workspace() as ws:
        key = ws.key(ref)
    if out is not None:
        _write_out(out, key.public_pem)
    render_keys.public_key(key, out, as_json)


@keys_app.command("rotate")
def keys_rotate(
    name: Annotated[str, typer.Argument(help="Name of the key to replace.")],
    as_json: JsonOpt = False,
) -> None:
    """Replace a key by a new one of the same name and type; the old one is retired, and the
    signatures it made before stay valid."""
    with workspace() as ws:
        render_keys.change("rotated", ws.rotate_key(name), as_json)


@keys_app.command("rotate-kek")
def keys_rotate_kek(as_json: JsonOpt = False) -> None:
    """Re-wrap the decision log's data keys and subject-HMAC key under a new key-encryption key (a new
    key in the key file; with CUSTODY_KEK=NEW,OLD the first one), then drop the old one."""
    with workspace() as ws:
        render_decisions.kek_rotated(ws.rotate_kek(), as_json)


@keys_app.command("revoke")
def keys_revoke(
    ref: Annotated[str, typer.Argument(metavar="NAME_OR_KEYID", help="Key name (its active key) or keyid (prefix).")],
    reason: Annotated[str, typer.Option("--reason", help="Why, e.g. 'laptop stolen' (kept in the audit log).")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a compromised key: none of its signatures is trusted any more, whenever made."""
    with workspace() as ws:
        render_keys.change("revoked", ws.revoke_key(ref, reason), as_json)


@app.command()
def demo(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Run in this (new or empty) directory instead of a temp one.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """A tour in a fresh workspace: version loan data record by record, diff and restore it, run a
    feature pipeline and a training run with record lineage, sign and register the model, log and
    trace decisions, then catch tampering in copies. The workspace is kept to explore afterwards."""
    from mlcustody.interfaces import demo as tour

    steps, where = tour.run(directory, echo=None if as_json else render.demo_step)
    if as_json:
        output.emit_json(shapes.document("demo", workspace=str(where), steps=steps))
    else:
        render.demo_end(where)


def export_bundle(  # registered as `export` (and `export bundle`) by cli.interop
    ref: Annotated[str, typer.Argument(help="NAME@VERSION, NAME:ALIAS or NAME (latest) of a registered model.")],
    bundle: Annotated[Path, typer.Option("--bundle", help="The .tar.gz to write.")],
    with_data: Annotated[bool, typer.Option("--with-data", help="Also include the datasets' files.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a model version's offline provenance bundle: attestation, public key, model, run record,
    code, environment, dataset and record manifests, lineage (check it with `verify --bundle`)."""
    with workspace() as ws:
        render_bundles.exported(ws.export_bundle(ref, bundle, with_data=with_data), as_json)


@app.command()
def reproduce(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION, NAME:ALIAS or NAME (latest) of a registered model.")],
    to: Annotated[Path, typer.Option("--to", help="A new or empty directory to materialise into.")],
    as_json: JsonOpt = False,
) -> None:
    """Materialise what trained a model version (entry script, params, dirty diff, input data versions)
    into a directory and print the command that was run, to run from there."""
    with workspace() as ws:
        render_bundles.reproduced(ws.reproduce(ref, to), as_json)


model_app = typer.Typer(help="The model registry: signed model versions, aliases with history, verification.")
app.add_typer(model_app, name="model")


@model_app.command("register")
def model_register(
    name: Annotated[str, typer.Argument(help="Model name in the registry.")],
    run: Annotated[str | None, typer.Option("--run", help="The run that trained it (its model output).")] = None,
    path: Annotated[Path | None, typer.Option("--path", help="The model file or directory instead.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="Signing key name (default: the active key).")] = None,
    trust_pickle: Annotated[
        bool, typer.Option("--trust-pickle", help="Sign a pickled model (named as such in the attestation).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Register the next version of a model, bound by a signed in-toto/SLSA attestation to its lineage."""
    with workspace() as ws:
        version = ws.register_model(name, run=run, path=path, key=key, trust_pickle=trust_pickle)
        render_models.show(ws.model(version.ref), False, as_json)


@model_app.command("alias")
def model_alias(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias, e.g. production or staging.")],
    version: Annotated[int, typer.Argument(help="Version the alias points at from now on.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the alias's history).")] = "",
    override_terms: Annotated[
        bool,
        typer.Option("--override-terms", help="Move a gated alias despite the data's terms (signed, with --reason)."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Point an alias at a version; every move is kept (who, when, from, to, why). A gated alias
    (production) refuses a version whose data's terms the use breaks (see `custody check terms`)."""
    with workspace() as ws:
        render_models.alias(name, ws.alias_model(name, alias, version, reason, override_terms=override_terms), as_json)


@model_app.command("ls")
def model_ls(as_json: JsonOpt = False) -> None:
    """List registered model versions."""
    with workspace() as ws:
        render_models.listing(ws.models(), as_json)


@model_app.command("show")
def model_show(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION, NAME:ALIAS or NAME (latest).")],
    attestation: Annotated[
        bool, typer.Option("--attestation", help="Print the signed DSSE envelope (in-toto/SLSA).")
    ] = False,
    oms_signature: Annotated[
        bool,
        typer.Option(
            "--oms-signature",
            help="Print an OpenSSF model-signing bundle, signed now with the registry key; save it as model.sig.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """The chain of custody of a model version: model digest, run, code, config, environment, data, signer."""
    if oms_signature and (attestation or as_json):
        raise UsageError("--oms-signature prints the bundle alone", hint="drop --attestation and --json")
    with workspace() as ws:
        if oms_signature:
            render_models.oms_bundle(ws.model_oms_bundle(ref))
            return
        render_models.show(ws.model(ref), attestation, as_json)


@model_app.command("verify")
def model_verify(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION, NAME:ALIAS or NAME (latest).")],
    as_json: JsonOpt = False,
) -> None:
    """Re-derive every digest the attestation names and check its signature; exit 1 on any mismatch."""
    with workspace() as ws:
        version, problems = ws.verify_model(ref)
        render_models.verified(version, problems, as_json)
        _fail_if(bool(problems))


@model_app.command("verify-oms")
def model_verify_oms(
    path: Annotated[Path, typer.Argument(help="The model file or directory the bundle signs.")],
    bundle: Annotated[Path, typer.Option("--bundle", help="The OMS signature bundle (model.sig).")],
    key: Annotated[Path, typer.Option("--key", help="The signer's PEM public key (ECDSA P-256/384/521).")],
    as_json: JsonOpt = False,
) -> None:
    """Check an OpenSSF model-signing bundle signed by anyone against the files on disk; no workspace
    needed. Exit 1 on any mismatch."""
    from mlcustody.workspace.facade import Workspace

    problems = Workspace.verify_oms_bundle(bundle, key, path)
    render_models.oms_verified(path, problems, as_json)
    _fail_if(bool(problems))


decisions_app = typer.Typer(help="The decision log: every prediction a deployed model made, signed and verifiable.")
app.add_typer(decisions_app, name="decisions")


@decisions_app.command("ls")
def decisions_ls(
    model: Annotated[
        str | None, typer.Option("--model", help="Only this model (NAME, NAME@VERSION, NAME:ALIAS).")
    ] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="Only decisions about this subject id.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only decisions at or after this RFC 3339 time.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most N decisions.")] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """List logged decisions in log order."""
    with workspace() as ws:
        found = ws.list_decisions(model=model, subject=subject, since=since, limit=limit)
        render_decisions.listing(found, as_json, filtered=(model, subject, since) != (None, None, None))


@decisions_app.command("import")
def decisions_import(
    path: Annotated[Path, typer.Argument(metavar="FILE", help="Prediction log: .jsonl, .csv or .parquet.")],
    model: Annotated[
        str, typer.Option("--model", help="NAME@VERSION, or NAME:ALIAS resolved at each decision's time.")
    ],
    id_col: Annotated[str, typer.Option("--id-col", help="Column of decision ids.")] = "decision_id",
    time_col: Annotated[str, typer.Option("--time-col", help="Column of decision times (RFC 3339).")] = "time",
    subject_col: Annotated[
        str, typer.Option("--subject-col", help="Column of subject ids (pseudonymised).")
    ] = "subject",
    output_col: Annotated[str, typer.Option("--output-col", help="Column of model outputs.")] = "output",
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip decisions already logged with the same content (a rerun).")
    ] = False,
    purpose: Annotated[
        str | None,
        typer.Option("--purpose", help="The purpose the decisions serve; refused if the data does not cover it."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import a prediction log into the decision log (every other column is an input) and seal it
    with a signed checkpoint; a malformed line is refused with its file:line."""
    from mlcustody.workspace.results import DecisionColumns

    columns = DecisionColumns(id=id_col, time=time_col, subject=subject_col, output=output_col)
    with workspace() as ws:
        found = ws.import_decisions(path, model, columns=columns, resume=resume, purpose=purpose)
        render_decisions.imported(found, as_json)


@decisions_app.command("receipt")
def decisions_receipt(
    decision_id: Annotated[str, typer.Argument(metavar="ID", help="The decision id.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the .tlog-proof to this file.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """A c2sp.org/tlog-proof that a decision is in the signed log, with its checkpoint."""
    with workspace() as ws:
        found = ws.decision_receipt(decision_id)
    if out is not None:
        _write_out(out, found.proof)
    render_decisions.receipt(found, out, as_json)


@decisions_app.command("forget")
def decisions_forget(
    subject: Annotated[str, typer.Argument(help="The subject id whose decision inputs to crypto-shred.")],
    as_json: JsonOpt = False,
) -> None:
    """Crypto-shred a data subject's decision inputs: their data key is destroyed (audited), every
    copy of the encrypted inputs becomes unreadable, and the log still verifies."""
    with workspace() as ws:
        render_decisions.forgotten(subject, ws.forget_subject(subject), as_json)


@decisions_app.command("seal")
def decisions_seal(as_json: JsonOpt = False) -> None:
    """Sign a checkpoint over decisions a killed writer left unsealed (every writer also does so when
    it opens); nothing to do when the log is sealed."""
    with workspace() as ws:
        render_decisions.sealed(ws.seal_decisions(), as_json)


def click_command() -> Any:
    """The click command tree of ``app``, its values named for users (``PATH…``, ``REF``: ``metavars``)."""
    from mlcustody.interfaces.cli import metavars

    return metavars.apply(typer.main.get_command(app))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: maps every outcome to the documented exit status."""
    args = sys.argv[1:] if argv is None else argv
    sys.exit(run(args))


def run(args: list[str]) -> int:
    ours = args[: args.index("--")] if "--" in args else args  # what follows -- belongs to `custody run`'s command
    want_json, debug = "--json" in ours, "--debug" in ours
    try:
        result = click_command().main(args=args, prog_name="custody", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        output.error("aborted")
        return 130
    except TyperException as exc:  # usage errors of the parser: unknown option, missing argument, …
        code = getattr(exc, "exit_code", 2)
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "custody"
        output.error(f"{exc.format_message()} — see `{where} --help`")
        return int(code)
    except CustodyError as exc:
        if debug and exc.exit_code == 3:
            raise
        output.error(exc.one_line())
        if want_json:
            output.emit_json(shapes.error(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        output.error("interrupted")
        return 130
    except Exception as exc:
        if debug:
            raise
        output.error(f"internal error: {type(exc).__name__}: {exc} — rerun with --debug for the traceback")
        return 3


from mlcustody.interfaces.cli import interop, policy  # noqa: E402 - registered after app exists
from mlcustody.interfaces.cli.investigate import investigate_app  # noqa: E402 - registered after app exists
from mlcustody.interfaces.cli.report import report_app  # noqa: E402 - registered after app exists

investigate_attribution.register(investigate_app)
app.add_typer(investigate_app, name="investigate")
interop.register(app, export_bundle)
policy.register(app)
app.add_typer(report_app, name="report")
