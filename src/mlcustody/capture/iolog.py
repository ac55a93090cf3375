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
    found = Captured()
    try:
        text = log.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return found
    prefixes: set[str] = set()
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        kind = item[0]
        if kind == "i":
            found.interpreters.append(Interpreter(item[1], item[2], item[3], tuple(item[4])))
            prefixes |= {os.path.realpath(p) for p in item[5]}
        elif kind == "p":
            found.processes.append(item[1])
        elif kind in ("r", "w"):
            rel = _relevant(item[1], root)
            if rel is None:
                continue
            if kind == "w":
                found.writes.add(rel)
            else:
                found.reads.setdefault(rel, ReadStat(item[2], item[3], item[4]))
    # A file under an interpreter's own directories (a virtualenv inside the workspace) is not data;
    # a prefix that holds the whole workspace would hide everything, so it is not used.
    prefixes = {p for p in prefixes if not root.is_relative_to(p)}
    for rel in [r for r in found.reads if _under(root / r, prefixes)]:
        del found.reads[rel]
    for rel in [w for w in found.writes if _under(root / w, prefixes)]:
        found.writes.discard(rel)
    return found


def _relevant(name: str, root: Path) -> str | None:
    if name.endswith(_CODE_SUFFIXES) or "/__pycache__/" in name:
        return None
    try:
        return Path(name).relative_to(root).as_posix()
    except ValueError:
        return None


def _under(path: Path, prefixes: set[str]) -> bool:
    real = os.path.realpath(path)
    return any(real.startswith(p.rstrip(os.sep) + os.sep) for p in prefixes if p and p != os.sep)
