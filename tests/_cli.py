"""Run the `custody` CLI as a real subprocess (``python -m mlcustody``), the way a user does.

Every run gets an environment without ``CUSTODY_*`` variables, so the workspace's own config decides
where its metadata lives, and stdin closed, so nothing can wait for input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TIMEOUT = 120


def clean_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("CUSTODY_")}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlcustody", *args]


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except ValueError as exc:
            raise AssertionError(f"{self} did not print one JSON document") from exc

    def __str__(self) -> str:
        return (
            f"`custody {' '.join(self.args)}` exited {self.returncode}\n"
            f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}"
        )


def start(cwd: Path, *args: str) -> subprocess.Popen[str]:
    """Start ``custody ARGS`` in ``cwd`` without waiting for it."""
    return subprocess.Popen(
        command(*args),
        cwd=cwd,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = TIMEOUT) -> Run:
    """Wait for a process from :func:`start` and collect its output."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        raise AssertionError(f"custody {proc.args!r} did not finish in {timeout} s\n{stderr[-4000:]}") from None
    args = tuple(str(a) for a in proc.args[3:])  # type: ignore[index]
    return Run(args, proc.returncode, stdout, stderr)


def run(cwd: Path, *args: str, timeout: float = TIMEOUT) -> Run:
    return finish(start(cwd, *args), timeout)


def ok(cwd: Path, *args: str, timeout: float = TIMEOUT) -> Run:
    """``custody ARGS`` that must exit 0."""
    result = run(cwd, *args, timeout=timeout)
    assert result.returncode == 0, str(result)
    return result


def ok_json(cwd: Path, *args: str, timeout: float = TIMEOUT) -> Any:
    """The JSON document of ``custody ARGS --json``, which must exit 0."""
    return ok(cwd, *args, "--json", timeout=timeout).json


def assert_history(
    cwd: Path, expected: dict[str, int], runner: Callable[..., Run] | None = None
) -> list[dict[str, Any]]:
    """The store's versions and audit log are exactly consistent; returns ``ls --all`` artifacts.

    ``expected`` maps each artifact name to its number of versions: they must be numbered 1..n
    with no gap or duplicate, the audit log must run 1..N with each event linked to the one before,
    hold one ``artifact.add`` event per version and nothing else besides ``workspace.init``, and
    ``custody verify`` must find no problem. ``runner`` runs one command (default :func:`run`).
    """
    runner = runner or run

    def document(*args: str) -> Any:
        result = runner(cwd, *args, "--json")
        assert result.returncode == 0, str(result)
        return result.json

    artifacts: list[dict[str, Any]] = document("ls", "--all")["artifacts"]
    numbers: dict[str, list[int]] = {}
    for item in artifacts:
        numbers.setdefault(item["name"], []).append(item["version"])
    assert {name: sorted(found) for name, found in numbers.items()} == {
        name: list(range(1, count + 1)) for name, count in expected.items()
    }, f"versions are not numbered 1..n without gaps or duplicates: {numbers}"

    events = list(reversed(document("log")["events"]))  # oldest first
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), "audit seq numbers are not consecutive"
    previous = "0" * 64
    for event in events:
        assert event["prev_digest"] == previous, f"event {event['seq']} is not linked to its predecessor"
        previous = event["digest"]
    assert [e["action"] for e in events] == ["workspace.init"] + ["artifact.add"] * len(artifacts)
    recorded = sorted((e["payload"]["row"]["name"], e["payload"]["row"]["version"]) for e in events[1:])
    assert recorded == sorted((a["name"], a["version"]) for a in artifacts)

    report = runner(cwd, "verify", "--json")
    assert report.returncode == 0 and report.json["ok"] is True, str(report)
    assert report.json["checked"]["events"] == len(events)
    assert report.json["checked"]["artifact_versions"] == len(artifacts)
    return artifacts


_SERVER = r"""
import json, os, sys, tempfile, traceback

from mlcustody.interfaces.cli import app  # what every fresh `custody` process imports first

for module in sys.argv[1:]:  # and what the caller asked to preload
    __import__(module)


def kill_at(point):
    # SIGKILL this process at `point`: before or after the nth call of a function whose audit action
    # (an `action` keyword, or an argument's `action`) is point["action"] (any call if None).
    import importlib
    import signal

    module, _, path = point["target"].partition(":")
    owner = importlib.import_module(module)
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    real = getattr(owner, name)
    calls = []

    def action(args, kwargs):
        found = [kwargs.get("action"), *(getattr(arg, "action", None) for arg in args)]
        return next((a for a in found if isinstance(a, str)), None)

    def patched(*args, **kwargs):
        matches = point["action"] is None or action(args, kwargs) == point["action"]
        if matches:
            calls.append(None)
        due = matches and len(calls) == point["nth"]
        if due and point["before"]:
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if due:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, patched)


replies = sys.stdout
for line in sys.stdin:
    request = json.loads(line)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        replies.flush()
        pid = os.fork()
        if pid == 0:  # the command runs in its own process, as if `custody` had just started
            code = 99
            try:
                os.chdir(request["cwd"])
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                if request.get("kill_at"):
                    kill_at(request["kill_at"])
                code = app.run(request["args"])
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        reply = {
            "returncode": os.waitstatus_to_exitcode(status),
            "stdout": out.read().decode("utf-8", "replace"),
            "stderr": err.read().decode("utf-8", "replace"),
        }
    replies.write(json.dumps(reply) + "\n")
    replies.flush()
"""


class Forkserver:
    """Runs `custody` commands in processes forked from one that has already imported mlcustody.

    A fresh ``python -m mlcustody`` spends most of its ~0.6 s importing; tests that run hundreds of
    read-only checks (verify, status, ls, gc) use this to pay that once. Each command still runs in
    a process of its own, through the same entry point (``cli.app.run``) as the console script, with
    the same clean environment; only the import is shared. Not thread-safe: one per thread.
    """

    def __init__(self, env: dict[str, str] | None = None, preload: tuple[str, ...] = ()) -> None:
        """``env``: the commands' environment (default: :func:`clean_env`); ``preload``: modules the
        server imports besides the CLI's own (each command then starts without importing them)."""
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, *preload],
            env=clean_env() if env is None else env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a group of its own: `strays` must not see another test worker's server
        )

    def run(self, cwd: Path, *args: str, kill_at: dict[str, Any] | None = None) -> Run:
        """``custody ARGS`` in ``cwd``; with ``kill_at`` (see ``kill_at`` in the server's code) the
        command's process SIGKILLs itself at that point, and the result's returncode says whether it
        got there (``-SIGKILL``)."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        request = {"cwd": str(cwd), "args": list(args), "kill_at": kill_at}
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        assert line, "the custody fork server died"
        reply = json.loads(line)
        return Run(tuple(args), reply["returncode"], reply["stdout"], reply["stderr"])

    def strays(self) -> list[int]:
        """Processes forked from this server (or from its commands) that outlived their command: the
        other processes of its process group running its command line (Linux's /proc)."""
        mine = Path(f"/proc/{self._proc.pid}")
        cmdline, group = (mine / "cmdline").read_bytes(), os.getpgid(self._proc.pid)
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == self._proc.pid:
                continue
            try:
                if (entry / "cmdline").read_bytes() == cmdline and os.getpgid(int(entry.name)) == group:
                    found.append(int(entry.name))
            except (OSError, ProcessLookupError):
                continue  # gone meanwhile
        return found

    def ok(self, cwd: Path, *args: str) -> Run:
        result = self.run(cwd, *args)
        assert result.returncode == 0, str(result)
        return result

    def ok_json(self, cwd: Path, *args: str) -> Any:
        return self.ok(cwd, *args, "--json").json

    def close(self) -> None:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=TIMEOUT)
        finally:
            self._proc.stdout.close()

    def __enter__(self) -> Forkserver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
