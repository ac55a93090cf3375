"""Put first on a child's ``sys.path`` by ``custody run``: reports what the Python process touches.

Python imports ``sitecustomize`` at start-up; this one installs an audit hook (PEP 578) that appends
one JSON line per new fact to the file named by ``CUSTODY_CAPTURE_LOG``: the interpreter (``i``),
each file under ``CUSTODY_CAPTURE_ROOT`` opened for reading (``r``, with its size, mtime and inode
at open time, so the parent can tell whether it changed before it was hashed) or writing (``w``),
and each process started (``p``). Lines are written with ``O_APPEND`` as they happen, so they
survive a crash and interleave safely across processes. mlcustody's own work inside the process
(hashing a file it versions, asking git for the commit) is not the command's I/O: threads listed in
``sys._custody_capture_paused`` are not watched (see ``iolog.paused``). Then any ``sitecustomize``
that this one shadows is run, so the user's own start-up code still runs.
"""

from __future__ import annotations

import json
import os
import sys
from _thread import get_ident
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_PROCESS_EVENTS = {
    "subprocess.Popen": 1,  # (executable, args, cwd, env)
    "os.exec": 1,  # (path, args, env)
    "os.posix_spawn": 1,  # (path, argv, env)
    "os.spawn": 2,  # (mode, path, args, env)
    "os.system": 0,  # (command,)
}


def _install(log: str, root: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    prefix = root.rstrip(os.sep) + os.sep
    skipped = (prefix + ".custody" + os.sep, prefix + ".git" + os.sep)
    seen: set[tuple[str, str]] = set()
    paused: set[int] = set()
    sys._custody_capture_paused = paused  # type: ignore[attr-defined]

    def emit(item: list[Any]) -> None:
        os.write(fd, (json.dumps(item) + "\n").encode("utf-8", "surrogateescape"))

    def on_open(path: Any, flags: int) -> None:
        if isinstance(path, int) or path is None:
            return
        name = os.path.abspath(os.fsdecode(path))
        if not name.startswith(prefix) or name.startswith(skipped):
            return
        writes = bool(flags & _WRITE_FLAGS)
        fact = ("w" if writes else "r", name)
        if fact in seen:
            return
        seen.add(fact)
        if writes:
            emit(["w", name])
            return
        try:
            st = os.stat(name)
        except OSError:
            seen.discard(fact)  # the open itself will fail: nothing was read
            return
        emit(["r", name, st.st_size, st.st_mtime_ns, st.st_ino])

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and paused and get_ident() in paused:
            return
        if event == "open":
            on_open(args[0], args[2] or 0)
        elif event in _PROCESS_EVENTS and get_ident() not in paused:
            found = args[_PROCESS_EVENTS[event]]
            command = [found] if isinstance(found, str | bytes) else list(found or [])
            emit(["p", [os.fsdecode(part) if isinstance(part, bytes) else str(part) for part in command]])

    paths = [p for p in sys.path if p and os.path.abspath(p) != _HERE]
    prefixes = sorted({sys.prefix, sys.base_prefix, sys.exec_prefix})
    emit(["i", sys.version.split()[0], sys.implementation.name, sys.executable, paths, prefixes])
    sys.addaudithook(hook)


def _run_shadowed() -> None:
    """Run the ``sitecustomize`` this module hides, if the environment has one."""
    import importlib.machinery
    import importlib.util

    others = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", others)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules[__name__] = module
    spec.loader.exec_module(module)


_log, _root = os.environ.get("CUSTODY_CAPTURE_LOG"), os.environ.get("CUSTODY_CAPTURE_ROOT")
if _log and _root:
    _install(_log, _root)
_run_shadowed()
