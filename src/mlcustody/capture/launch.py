"""Starting the command of ``custody run``: everything that must happen before it runs, and nothing more.

The time ``custody run`` adds to a training script is mostly Python importing the database layer.
So the command is started as soon as what describes its start is safe: the arguments are checked,
the code (git state, entry script) is captured and the declared inputs are stored, all without
SQLAlchemy. Recording the start in the database then overlaps with the command running. The child
learns its run through the environment: ``CUSTODY_RUN_ID``, ``CUSTODY_RUN_NAME`` and
``CUSTODY_RUN_PARAMS`` (the ``--param`` values as JSON, readable by any program).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from mlcustody._canonical import canonical_json, utc_now
from mlcustody.capture import context, iolog
from mlcustody.config import Config
from mlcustody.errors import PathError, UsageError
from mlcustody.metadata import artifact_names
from mlcustody.metadata.runs import values as run_values
from mlcustody.storage import snapshot
from mlcustody.storage.objects import ObjectStore
from mlcustody.storage.statcache import StatCache

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_STOP_GRACE_SECONDS = 10


@dataclass
class Launch:
    """A command started as run ``run_id``, with what was recorded before it started."""

    run_id: str
    name: str
    command: list[str]
    params: dict[str, Any]
    started_at: str
    code: context.Code
    inputs: list[tuple[str, snapshot.Snapshot]]  # declared inputs, stored before the command ran
    outputs: dict[str, str | None]  # declared outputs and the type given with PATH:TYPE
    log: Path
    child: subprocess.Popen[bytes]
    received: list[int] = field(default_factory=list)
    _previous: dict[int, Any] = field(default_factory=dict)

    def wait(self) -> tuple[int, bool]:
        """(exit status as a shell reports it, whether a signal ended or was sent to the command)."""
        try:
            code = self.child.wait()
        finally:
            self._restore_signals()
        if code < 0:
            return 128 - code, True
        return code, bool(self.received)

    def stop(self) -> None:
        """Stop the command (SIGTERM, then SIGKILL after a grace period): its run cannot be recorded."""
        if self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(_STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()
        self._restore_signals()
        self.log.unlink(missing_ok=True)

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)
        if self.child.poll() is None:
            self.child.send_signal(signum)

    def _restore_signals(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def start(
    cfg: Config,
    command: Sequence[str],
    *,
    name: str | None = None,
    inputs: Sequence[str | Path] = (),
    outputs: Sequence[str | Path] = (),
    params: Mapping[str, Any] | None = None,
    stdout_to_stderr: bool = False,
) -> Launch:
    """Check the arguments, capture code, store declared inputs, then start the command."""
    if not command:
        raise UsageError("no command given", hint="write the command after --, e.g. custody run -- python train.py")
    if shutil.which(command[0]) is None:
        raise UsageError(f"command not found: {command[0]}", hint="check the spelling, or give its path")
    name = run_values.validate_key(name or default_name(command), "run")
    params = dict(params or {})
    for key, value in params.items():
        run_values.validate_key(key, "param")
        run_values.param_text(key, value)
    declared_in = [cfg.relpath(p) for p in inputs]
    declared_out = dict(_typed_output(cfg, str(p)) for p in outputs)
    for rel in declared_in:
        if not (cfg.root / rel).exists():
            raise PathError(f"input {rel} does not exist", hint="create it first, or drop --in")
    objects = ObjectStore(cfg.store_dir)
    with contextlib.closing(StatCache(cfg.stat_cache_path)) as cache:
        stored = [(rel, snapshot.take(cfg.root / rel, objects=objects, cache=cache)) for rel in declared_in]
    code = context.capture_code(cfg.root, _entry_script(command))  # stored with the start record
    run_id = uuid.uuid4().hex
    log = cfg.store_dir / "tmp" / f"run-{run_id}.log"
    env = iolog.child_environment(log, cfg.root, run_id, os.environ)
    env |= {"CUSTODY_RUN_NAME": name, "CUSTODY_RUN_PARAMS": canonical_json(params).decode("utf-8")}
    started_at = utc_now()
    child = subprocess.Popen(list(command), env=env, stdout=sys.stderr if stdout_to_stderr else None)
    launch = Launch(run_id, name, list(command), params, started_at, code, stored, declared_out, log, child)
    if threading.current_thread() is threading.main_thread():
        for signum in _FORWARDED:
            launch._previous[signum] = signal.signal(signum, launch._forward)
    return launch


@contextlib.contextmanager
def stopped_on_error(launch: Launch) -> Iterator[Launch]:
    """Stop the command if recording its run fails (e.g. the database needs ``custody migrate``)."""
    try:
        yield launch
    except BaseException:
        launch.stop()
        raise


def _typed_output(cfg: Config, given: str) -> tuple[str, str | None]:
    """``PATH`` or ``PATH:TYPE`` (``--out model.bin:model``) → (workspace path, type or None)."""
    path, colon, kind = given.rpartition(":")
    if colon and kind in artifact_names.TYPES and path:
        return cfg.relpath(path), kind
    if colon and path and "/" not in kind and not Path(given).exists():
        raise UsageError(
            f"--out {given}: unknown type {kind!r}", hint=f"use PATH:TYPE with one of {', '.join(artifact_names.TYPES)}"
        )
    return cfg.relpath(given), None


def default_name(command: Sequence[str]) -> str:
    """The name of a run not given ``--name``: what the command runs, as users call it — the script's
    stem (``python train.py`` → ``train``, ``./prepare.sh`` → ``prepare``), the module's last part
    (``python -m pkg.train`` → ``train``), else the program (``make``), never merely ``python``."""
    script = _entry_script(command)
    stem = script.stem if script is not None else _module(command)
    if stem and run_values.valid_key(stem):
        return stem
    return Path(command[0]).name


def _module(command: Sequence[str]) -> str | None:
    """The module of ``python [opts] -m pkg.mod``, by its last dotted part."""
    if not Path(command[0]).name.startswith("python"):
        return None
    args = list(command[1:])
    if "-m" in args[:-1]:
        return args[args.index("-m") + 1].rpartition(".")[2]
    return None


def _entry_script(command: Sequence[str]) -> Path | None:
    """The script a command runs: ``python [opts] script.py`` → script.py; ``./train.sh`` → itself."""
    if Path(command[0]).name.startswith("python"):
        args = iter(command[1:])
        for arg in args:
            if arg in ("-m", "-c"):
                return None
            if arg in ("-W", "-X"):
                next(args, None)
            elif not arg.startswith("-"):
                return Path(arg)
        return None
    candidate = Path(command[0])
    return candidate if "/" in command[0] and candidate.is_file() else None
