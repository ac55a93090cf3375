"""Runs from Python (``start_run``) and from the shell (``custody run -- CMD``).

A run records its code and environment when it starts, logs through a background writer, and is
sealed when it ends — finished, failed (with the exception or exit status) or killed (SIGTERM,
Ctrl-C, or found dead later: a run whose process vanished is sealed as killed by the next run that
starts on the same host). Inside ``custody run``, SDK calls attach to the command's run: a
``start_run`` there becomes its child, and ``active_run()`` logs to the command's run itself.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from mlcustody._canonical import utc_now
from mlcustody.capture import context, iolog, models
from mlcustody.capture.launch import Launch
from mlcustody.capture.redact import Redactor
from mlcustody.capture.writer import RunWriter
from mlcustody.errors import CustodyError, UsageError
from mlcustody.metadata import audit
from mlcustody.metadata.artifacts import ArtifactVersion
from mlcustody.metadata.runs import store as runs
from mlcustody.metadata.runs import values as run_values
from mlcustody.metadata.runs.store import IO, Metric, RunEnd, RunStart
from mlcustody.workspace import run_files
from mlcustody.workspace.results import CAPTURE_TAG, RecordSpec

if TYPE_CHECKING:
    from mlcustody.workspace.facade import Workspace
    from mlcustody.workspace.run_lineage import RecordLineage

P = ParamSpec("P")
T = TypeVar("T")
_HOST = socket.gethostname()
_ACTIVE: list[Run] = []
_TERMINATED: list[int] = []  # signals that ended this process (SystemExit does not reach excepthook)


def _unwatched(func: Callable[P, T]) -> Callable[P, T]:
    """mlcustody's own reads and subprocesses (hashing, git) are not the command's I/O (``iolog.paused``)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with iolog.paused():
            return func(*args, **kwargs)

    return wrapper


class Run:
    """An active run: log to it, declare what it used and produced, end it (or use it as a context)."""

    def __init__(
        self,
        ws: Workspace,
        run_id: str,
        name: str,
        environment: str,
        *,
        owned: bool = True,
        given: Mapping[str, Any] | None = None,
    ) -> None:
        self.workspace = ws
        self.id = run_id
        self.name = name
        self.environment = environment
        self._owned = owned  # False when attached to the run of `custody run`, which seals it
        self._given = dict(given or {})
        self._writer = RunWriter(ws.db, run_id)
        self.ended: RunEnd | None = None
        self._records: RecordLineage | None = None

    @property
    def _lineage(self) -> RecordLineage:
        """The run's record and column lineage; created on first use (it needs polars)."""
        if self._records is None:
            from mlcustody.workspace.run_lineage import RecordLineage  # lazy: it imports polars

            self._records = RecordLineage(self)
        return self._records

    @property
    @_unwatched
    def params(self) -> dict[str, Any]:
        """The params recorded so far, including those given to ``custody run --param``."""
        self._writer.flush()
        with self.workspace.db.read() as conn:
            found = runs.load(conn, [self.id])
        return {**self._given, **(found[0].params if found else {})}

    # -- logging ------------------------------------------------------------------------------------

    def log_metric(self, key: str, value: float, step: int = 0, timestamp: int | None = None) -> None:
        run_values.validate_key(key, "metric")
        if isinstance(step, bool) or not isinstance(step, int):
            raise UsageError(f"metric {key!r} step {step!r} is not an integer", hint="pass step=0, 1, 2, …")
        when = int(time.time() * 1000) if timestamp is None else timestamp
        self._writer.metric(Metric(key, run_values.metric_value(key, value), step, when))

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        for key, value in metrics.items():
            self.log_metric(key, value, step)

    def log_param(self, key: str, value: Any) -> None:
        self._writer.param(key, value)

    def log_params(self, params: Mapping[str, Any]) -> None:
        for key, value in params.items():
            self._writer.param(key, value)

    def set_tag(self, key: str, value: str) -> None:
        self._writer.tag(key, value)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self._writer.tag(key, value)

    def flush(self) -> None:
        self._writer.flush()

    # -- inputs and outputs -------------------------------------------------------------------------

    @_unwatched
    def use(self, ref_or_path: str | Path, *, name: str | None = None, type: str | None = None) -> Path:
        """Record an input: a workspace path (versioned if new) or a reference. Returns where its bytes are."""
        _, target = self._input(ref_or_path, name=name, type=type, records=False)
        return target

    @_unwatched
    def use_records(self, ref_or_path: str | Path, *, kind: str = "polars", key: Sequence[str] | None = None) -> Any:
        """Record an input and return its records as a frame (polars, pandas or arrow) whose ``_rid``
        column keeps each record's id through the run's code (see ``capture.frames``)."""
        version, _ = self._input(ref_or_path, name=None, type=None, records=True, key=key)
        return self._lineage.read(version, kind)

    def _input(
        self,
        ref_or_path: str | Path,
        *,
        name: str | None,
        type: str | None,
        records: bool,
        key: Sequence[str] | None = None,
    ) -> tuple[ArtifactVersion, Path]:
        ws = self.workspace
        candidate = Path(os.path.abspath(ref_or_path))
        if not candidate.exists() and not Path(ref_or_path).is_absolute():
            candidate = ws.root / ref_or_path  # a path relative to the workspace, wherever the script runs
        if candidate.exists() and candidate.is_relative_to(ws.root):
            version = ws.current_version(candidate, records=records)
            if version is None:
                spec = RecordSpec(key=tuple(key) if key else None) if records else None
                version = ws.add([candidate], name=name, type=type, records=spec)[0].version
            target = candidate
        else:
            version = ws.resolve(str(ref_or_path))
            target = ws.materialise(version)
        self._writer.io(_io_of(version, "input", "sdk"))
        return version, target

    @_unwatched
    def output(
        self, path: str | Path, *, name: str | None = None, type: str | None = None, message: str = ""
    ) -> ArtifactVersion:
        """Version ``path`` as generated by this run and record it as an output."""
        version = self.workspace.add([Path(path)], name=name, type=type, message=message, generated_by=self.id)[0]
        self._writer.io(_io_of(version.version, "output", "sdk"))
        return version.version

    @_unwatched
    def output_records(
        self,
        frame: Any,
        *,
        name: str,
        path: str | Path | None = None,
        key: Sequence[str] | None = None,
        message: str = "",
    ) -> ArtifactVersion:
        """Store a frame's records as a dataset version generated by this run (Parquet at ``path``,
        default ``NAME.parquet``) with the record and column lineage its ``_rid`` columns carry."""
        version = self._lineage.write(frame, name=name, path=path, key=key, message=message)
        self._writer.io(_io_of(version, "output", "sdk"))
        return version

    def derive(self, frame: Any, **exprs: Any) -> Any:
        """``frame.with_columns(**exprs)`` for polars, recording each new column's source columns."""
        return self._lineage.derive(frame, exprs)

    def columns_from(self, column: str, sources: Sequence[str]) -> None:
        """Declare that frame column ``column`` was computed from the frame columns ``sources``."""
        self._lineage.declare_columns(column, sources)

    @_unwatched
    def record_lineage(
        self, output: str, input: str, output_ids: Sequence[str], input_ids: Sequence[str], relation: str = "declared"
    ) -> None:
        """Declare, for any other engine, that record ``output_ids[i]`` of version ``output`` came from
        record ``input_ids[i]`` of version ``input``."""
        self._lineage.declare_records(output, input, output_ids, input_ids, relation)

    @_unwatched
    def save_model(self, model: Any, path: str | Path, *, name: str | None = None) -> ArtifactVersion:
        """Save ``model`` in a safe format (by suffix: .skops, .safetensors, .onnx) and record it."""
        models.save_model(model, Path(path))
        return self.output(path, name=name, type="model")

    # -- ending -------------------------------------------------------------------------------------

    @_unwatched
    def end(self, status: str = "finished", *, error: str = "", exit_status: int | None = None) -> RunEnd | None:
        """Write what is buffered and seal the run (an attached run is sealed by its command)."""
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        if self.ended is not None:
            return self.ended
        try:
            self._writer.close()
        finally:
            if self._owned:
                end = RunEnd(status, exit_status, error, utc_now(), [], self.environment)
                self.ended = seal(self.workspace, self.id, end)
        return self.ended

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        status, error, code = _outcome(exc)
        self.end(status, error=error, exit_status=code)


@dataclass(frozen=True)
class CommandResult:
    run: runs.Run
    exit_status: int


@_unwatched
def start_run(
    ws: Workspace,
    name: str = "run",
    *,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    parent: str | None = None,
) -> Run:
    """Start a run in this process: capture code and environment, record the start, return the run."""
    run_values.validate_key(name, "run")
    reap(ws)
    entry = Path(sys.argv[0]) if sys.argv and sys.argv[0] not in ("", "-c", "-m") else None
    code = context.capture_code(ws.root, entry)
    environment = context.capture_environment(
        ws.root, context.Interpreter.current(), ws.config.capture_env, redact=ws.config.capture_redact
    )
    parent = parent or (_ACTIVE[-1].id if _ACTIVE else os.environ.get("CUSTODY_RUN_ID"))
    start = _record_start(ws, uuid.uuid4().hex, name, parent, list(sys.argv), code, utc_now())
    run = Run(ws, start.id, name, ws.store_json(environment))
    _ACTIVE.append(run)
    _install_process_hooks()
    if params:
        run.log_params(params)
    if tags:
        run.set_tags(tags)
    return run


def active_run(ws: Workspace) -> Run | None:
    """The innermost run started in this process, else (inside ``custody run``) the command's run."""
    if _ACTIVE:
        return _ACTIVE[-1]
    run_id = os.environ.get("CUSTODY_RUN_ID")
    if not run_id:
        return None
    given = json.loads(os.environ.get("CUSTODY_RUN_PARAMS") or "{}")
    attached = Run(ws, run_id, os.environ.get("CUSTODY_RUN_NAME", "run"), "", owned=False, given=given)
    _ACTIVE.append(attached)
    _install_process_hooks()
    return attached


def seal(ws: Workspace, run_id: str, end: RunEnd) -> RunEnd:
    with ws.db.write() as conn:
        sealed, event = runs.seal(conn, ws.objects, run_id, end, ws.config.actor)
    audit.advance_witness(ws.witness, event)
    return sealed


def reap(ws: Workspace) -> list[str]:
    """Seal as killed the runs of this host whose process is gone without ending them."""
    with ws.db.read() as conn:
        orphans = [start for start in runs.unended(conn, _HOST) if not _alive(start.pid)]
    reaped = []
    for start in orphans:
        end = RunEnd("killed", None, f"process {start.pid} ended without ending the run", utc_now(), [], "")
        try:
            seal(ws, start.id, end)
        except UsageError:
            continue  # another process reaped it first
        reaped.append(start.id)
    return reaped


# -- custody run -- CMD ------------------------------------------------------------------------------


def finish_command(ws: Workspace, launch: Launch) -> CommandResult:
    """Record the run of a command started by ``launch.start`` while it runs, then seal it when it ends."""
    reader = iolog.LogReader(launch.log, ws.root)
    with run_files.Prefetch(ws, reader) as prefetch:
        reap(ws)
        parent = os.environ.get("CUSTODY_RUN_ID")
        start = _record_start(ws, launch.run_id, launch.name, parent, launch.command, launch.code, launch.started_at)
        writer = RunWriter(ws.db, start.id)
        for key, value in launch.params.items():
            writer.param(key, value)
        exit_status, signalled = launch.wait()
    captured = reader.finish()
    versioned = run_files.version_files(ws, start.id, _seen(launch, captured), prefetch.head)
    for item in versioned.io:
        writer.io(item)
    writer.lineage(versioned.links, [])
    report = versioned.report()
    if report is not None:
        writer.tag(CAPTURE_TAG, report)
    writer.close()
    interpreter = captured.interpreters[0] if captured.interpreters else None
    environment = ws.store_json(
        context.capture_environment(ws.root, interpreter, ws.config.capture_env, redact=ws.config.capture_redact)
    )
    status, error = _command_outcome(exit_status, signalled)
    processes = Redactor(ws.config.capture_redact).processes(captured.processes)
    seal(ws, start.id, RunEnd(status, exit_status, error, utc_now(), processes, environment))
    launch.log.unlink(missing_ok=True)
    with ws.db.read() as conn:
        return CommandResult(runs.get(conn, start.id), exit_status)


def _seen(launch: Launch, captured: iolog.Captured) -> list[run_files.Seen]:
    """Every file of the run: declared inputs, then what the process read and wrote, then declared
    outputs; a path declared with --in/--out is recorded as declared, not as captured."""
    declared = {rel for rel, _ in launch.inputs} | set(launch.outputs)
    found = [run_files.Seen(rel, "input", "declared", digest=snap.digest) for rel, snap in launch.inputs]
    found += [
        run_files.Seen(rel, "input", "captured", opened=captured.reads[rel])
        for rel in sorted(captured.reads)
        if rel not in declared
    ]
    found += [run_files.Seen(rel, "output", "captured") for rel in sorted(captured.writes) if rel not in declared]
    found += [run_files.Seen(rel, "output", "declared", type=kind) for rel, kind in launch.outputs.items()]
    return found


def _command_outcome(exit_status: int, signalled: bool) -> tuple[str, str]:
    if signalled:
        name = signal.Signals(exit_status - 128).name if 128 < exit_status < 160 else f"status {exit_status}"
        return "killed", f"killed by {name}"
    if exit_status == 0:
        return "finished", ""
    return "failed", f"exited with status {exit_status}"


# -- shared pieces -----------------------------------------------------------------------------------


def _record_start(
    ws: Workspace,
    run_id: str,
    name: str,
    parent: str | None,
    command: list[str],
    code: context.Code,
    started_at: str,
) -> RunStart:
    """Store the code record (dirty diff and entry script too) and record the run's start, audited; the
    command line is recorded with its secrets redacted (``capture.redact``)."""
    for blob in code.blobs:
        ws.objects.put_bytes(blob)
    command = Redactor(ws.config.capture_redact).argv(command)
    start = RunStart(
        run_id, name, parent, command, ws.store_json(code.value), ws.config.actor, _HOST, os.getpid(), started_at
    )
    ws.objects.barrier()  # the objects (code, declared inputs) are durable before the row that names them
    with ws.db.write() as conn:
        event = runs.insert_start(conn, start)
    audit.advance_witness(ws.witness, event)
    return start


def _io_of(version: ArtifactVersion, role: str, source: str) -> IO:
    return IO(role, version.path or version.name, version.kind, version.digest, version.size, version.ref, source)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _outcome(exc: BaseException | None) -> tuple[str, str, int | None]:
    """(status, error, exit status) of a run whose block ended with ``exc``."""
    if exc is None:
        return "finished", "", None
    if isinstance(exc, _Terminated):
        return "killed", "terminated by SIGTERM", exc.code if isinstance(exc.code, int) else None
    if isinstance(exc, KeyboardInterrupt):
        return "killed", "interrupted (KeyboardInterrupt)", None
    if isinstance(exc, SystemExit):
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return ("finished", "", code) if code == 0 else ("failed", f"SystemExit({exc.code!r})", code)
    summary = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return "failed", summary, None


class _Terminated(SystemExit):
    """Raised in the main thread on SIGTERM so that runs end (as killed) while the stack unwinds."""


@functools.cache
def _install_process_hooks() -> None:
    """Once per process: SIGTERM unwinds (ending runs as killed), exit ends what is still active."""
    atexit.register(_end_all)
    previous_hook = sys.excepthook

    def excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        _end_all(exc)
        previous_hook(kind, exc, tb)

    sys.excepthook = excepthook
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:

        def terminated(signum: int, _frame: FrameType | None) -> None:
            _TERMINATED.append(signum)
            raise _Terminated(128 + signum)

        signal.signal(signal.SIGTERM, terminated)


def _end_all(exc: BaseException | None = None) -> None:
    status, error, code = _outcome(exc if exc is not None or not _TERMINATED else _Terminated(128 + _TERMINATED[0]))
    for run in reversed(list(_ACTIVE)):
        try:
            run.end(status, error=error, exit_status=code)
        except CustodyError as problem:  # at exit there is no caller left to raise to
            print(f"mlcustody: could not end run {run.id}: {problem.one_line()}", file=sys.stderr)
