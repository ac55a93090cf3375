"""File and process capture for ``custody run``: the child's environment, and reading back its log.

The child side is ``hook/sitecustomize.py`` (see its docstring for the log format). Here the parent
prepares the environment that puts the hook first on the child's path, and turns the log into what
the run read, wrote and started. Source code, compiled modules and the interpreter's own files are
left out: code is captured from git and the entry script, packages from the environment.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mlcustody.capture.context import Interpreter

HOOK_DIR = Path(__file__).parent / "hook"
_CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyd", ".so", ".pth")


@dataclass(frozen=True)
class ReadStat:
    """A file's size, mtime and inode when the run opened it; compared again before it is hashed."""

    size: int
    mtime_ns: int
    ino: int

    def unchanged(self, path: Path) -> bool:
        try:
            st = os.stat(path)
        except OSError:
            return False
        return (st.st_size, st.st_mtime_ns, st.st_ino) == (self.size, self.mtime_ns, self.ino)


@dataclass
class Captured:
    interpreters: list[Interpreter] = field(default_factory=list)
    reads: dict[str, ReadStat] = field(default_factory=dict)  # workspace-relative posix path → stat
    writes: set[str] = field(default_factory=set)
    processes: list[list[str]] = field(default_factory=list)


def child_environment(log: Path, root: Path, run_id: str, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` plus what makes a Python child report to ``log`` and attach SDK calls to the run."""
    env = dict(base)
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join([str(HOOK_DIR), existing] if existing else [str(HOOK_DIR)])
    env["CUSTODY_CAPTURE_LOG"] = str(log)
    env["CUSTODY_CAPTURE_ROOT"] = str(root)
    env["CUSTODY_RUN_ID"] = run_id
    return env


@contextmanager
def paused() -> Iterator[None]:
    """Inside ``custody run``, hide this thread's file and process activity from the capture hook:
    what mlcustody itself reads and starts is not the command's I/O. Elsewhere, does nothing."""
    watched: set[int] | None = getattr(sys, "_custody_capture_paused", None)
    ident = threading.get_ident()
    if watched is None or ident in watched:
        yield
        return
    watched.add(ident)
    try:
        yield
    finally:
        watched.discard(ident)


def read_log(log: Path, root: Path) -> Captured:
    """What the child processes reported; a torn last line (a killed child) is ignored."""
    return LogReader(log, root).finish()


class LogReader:
    """Reads the capture log as it grows, so that ``custody run`` can follow a command while it runs.

    Only complete lines are taken (the hook writes each line with one ``O_APPEND`` write, so a line
    without its newline is one being written, or torn by a kill); the rest waits for the next poll.
    """

    def __init__(self, log: Path, root: Path) -> None:
        self._log, self._root = log, root
        self._prefix = str(root).rstrip(os.sep) + os.sep
        self._offset = 0
        self._rest = b""
        self._real_root = Path(os.path.realpath(root))
        self._inside: set[str] = set()  # interpreter directories inside the workspace, relative to it
        self.captured = Captured()

    def poll(self) -> list[str]:
        """Take what was appended since the last call; the workspace paths read for the first time."""
        try:
            with open(self._log, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        complete, newline, self._rest = (self._rest + data).rpartition(b"\n")
        if not newline:
            self._rest = complete + self._rest
            return []
        found, new = self.captured, []
        for line in complete.decode("utf-8", "surrogateescape").splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            kind = item[0]
            if kind == "i":
                found.interpreters.append(Interpreter(item[1], item[2], item[3], tuple(item[4])))
                self._inside |= {
                    Path(real).relative_to(self._real_root).as_posix()
                    for real in map(os.path.realpath, item[5])
                    if Path(real).is_relative_to(self._real_root) and Path(real) != self._real_root
                }
            elif kind == "p":
                found.processes.append(item[1])
            elif kind in ("r", "w"):
                rel = self._relevant(item[1])
                if rel is None:
                    continue
                if kind == "w":
                    found.writes.add(rel)
                elif rel not in found.reads:
                    found.reads[rel] = ReadStat(item[2], item[3], item[4])
                    new.append(rel)
        return [rel for rel in new if not self.interpreter_file(rel)]

    def interpreter_file(self, rel: str) -> bool:
        """A file under an interpreter's own directories (a virtualenv inside the workspace) is not
        data. Only such directories inside the workspace count: a prefix that holds the whole
        workspace would hide everything, and one outside it holds no workspace path."""
        return any(rel == inside or rel.startswith(inside + "/") for inside in self._inside)

    def finish(self) -> Captured:
        """Everything the log holds, the interpreters' own files left out."""
        self.poll()
        found = self.captured
        for rel in [r for r in found.reads if self.interpreter_file(r)]:
            del found.reads[rel]
        for rel in [w for w in found.writes if self.interpreter_file(w)]:
            found.writes.discard(rel)
        return found

    def _relevant(self, name: str) -> str | None:
        if name.endswith(_CODE_SUFFIXES) or "/__pycache__/" in name:
            return None
        if name.startswith(self._prefix):  # the hook reports absolute paths under the root it was given
            return name[len(self._prefix) :]
        try:
            return Path(name).relative_to(self._root).as_posix()
        except ValueError:
            return None
