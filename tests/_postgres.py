"""A real, throwaway PostgreSQL server for the test session.

`postgres_session()` runs ``initdb`` in a fresh temporary directory, starts the
server with ``pg_ctl`` on 127.0.0.1 (free port, unix socket inside the temporary
directory, trust authentication for loopback only) and yields its base
SQLAlchemy URL; on exit it stops the server and deletes the directory.
`temporary_database()` creates an empty database with a unique name on that
server and drops it afterwards.

``initdb`` and ``postgres`` refuse to run as root, so when the tests run as root
every server command runs as the ``postgres`` system user (the temporary
directory is then owned by that user); otherwise they run as the current user.

Cleanup is layered so that no server outlives the test run: the pytest fixture
finalizer (which also runs on Ctrl-C), an ``atexit`` hook, and a small watchdog
process that stops the server and deletes the directory as soon as the test
process dies, even from SIGKILL or SIGTERM.

If no PostgreSQL binaries are found the fixture skips, unless
``CUSTODY_REQUIRE_POSTGRES=1`` is set (as in CI), in which case it fails.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REQUIRE_ENV = "CUSTODY_REQUIRE_POSTGRES"
SERVER_USER_WHEN_ROOT = "postgres"
_BINARIES = ("initdb", "pg_ctl", "postgres")
# Speed over durability: this server's data is thrown away after the run.
_SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "100",
    "jit": "off",
}
# Unix socket paths are limited to 107 bytes; leave room for "/.s.PGSQL.65535".
_MAX_SOCKET_DIR = 90


class PostgresUnavailableError(Exception):
    """No usable PostgreSQL installation (the tests skip, or fail in CI)."""


def postgres_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes"}


def _has_binaries(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in _BINARIES)


def find_bindir() -> Path | None:
    """Directory with initdb, pg_ctl and postgres, or None.

    Tries ``pg_config --bindir``, then the highest /usr/lib/postgresql/<version>/bin
    (Debian and Ubuntu), then the PATH.
    """
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=30
            ).stdout.strip()
            if out and _has_binaries(Path(out)):
                return Path(out)
    versions = sorted(
        (Path(p) for p in Path("/usr/lib/postgresql").glob("*/bin")),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)] or [-1],
        reverse=True,
    )
    for bindir in versions:
        if _has_binaries(bindir):
            return bindir
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl and _has_binaries(Path(pg_ctl).resolve().parent):
        return Path(pg_ctl).resolve().parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env() -> dict[str, str]:
    # PGPORT, PGDATA, PGHOST... from the caller's environment must not leak in.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


class PostgresServer:
    """One throwaway PostgreSQL server; use `start()` and `stop()`."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = 0
        self.tmpdir: Path | None = None
        self._user: pwd.struct_passwd | None = None
        self._owner_pid = os.getpid()
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._running = False

    # -- running commands -------------------------------------------------
    def _as_server_user(self) -> dict[str, Any]:
        """subprocess keyword arguments that run a command as the server's user."""
        kwargs: dict[str, Any] = {"env": _clean_env(), "cwd": self.tmpdir}
        if self._user is not None:
            kwargs.update(user=self._user.pw_uid, group=self._user.pw_gid, extra_groups=[])
            kwargs["env"].update(HOME=self._user.pw_dir, USER=self._user.pw_name, LOGNAME=self._user.pw_name)
        return kwargs

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **self._as_server_user(),
        )

    def _bin(self, name: str) -> str:
        return str(self.bindir / name)

    @property
    def datadir(self) -> Path:
        assert self.tmpdir is not None
        return self.tmpdir / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> str:
        try:
            self._make_tmpdir()
            self._start_watchdog()
            atexit.register(self.stop)
            self._initdb()
            self._start_server()
            self._wait_until_accepting()
        except BaseException:
            self.stop()
            raise
        return self.url

    def _make_tmpdir(self) -> None:
        if os.geteuid() == 0:
            try:
                self._user = pwd.getpwnam(SERVER_USER_WHEN_ROOT)
            except KeyError:
                raise PostgresUnavailableError(
                    f"running as root but there is no {SERVER_USER_WHEN_ROOT!r} system user to run "
                    "PostgreSQL as (initdb and postgres refuse to run as root)"
                ) from None
        base = tempfile.gettempdir()
        if len(base) > _MAX_SOCKET_DIR - 30 or (self._user is not None and not _world_traversable(base)):
            base = "/tmp"
        self.tmpdir = Path(tempfile.mkdtemp(prefix="custody-pg-", dir=base))
        if self._user is not None:
            os.chown(self.tmpdir, self._user.pw_uid, self._user.pw_gid)

    def _initdb(self) -> None:
        result = self._run(
            self._bin("initdb"),
            "--pgdata", str(self.datadir),
            "--username", "postgres",
            "--auth", "trust",
            "--encoding", "UTF8",
            "--no-locale",
            "--no-sync",
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        # Trust, but only over the unix socket in our private directory and loopback TCP.
        (self.datadir / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n", encoding="utf-8"
        )
        settings = {**_SERVER_SETTINGS, "unix_socket_directories": f"'{self.tmpdir}'"}
        with (self.datadir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# throwaway test server (tests/_postgres.py)\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def _start_server(self, attempts: int = 5) -> None:
        assert self.tmpdir is not None
        log = self.tmpdir / "server.log"
        result, server_log = None, ""
        for _ in range(attempts):
            # Another process may grab the port between probing and binding: retry.
            self.port = _free_port()
            result = self._run(
                self._bin("pg_ctl"), "start", "--wait", "--timeout", "60",
                "--pgdata", str(self.datadir), "--log", str(log), "-o", f"-p {self.port}",
            )  # fmt: skip
            if result.returncode == 0:
                self._running = True
                return
            server_log = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
            if "could not bind" not in server_log and "already in use" not in server_log:
                break
            log.unlink(missing_ok=True)
        assert result is not None
        raise RuntimeError(
            f"pg_ctl start failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n"
            f"--- server log ---\n{server_log[-4000:]}"
        )

    def _wait_until_accepting(self, timeout: float = 30) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(**self.conninfo("postgres"), connect_timeout=5) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def conninfo(self, dbname: str) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.port, "user": "postgres", "dbname": dbname}

    def stop(self) -> None:
        """Stop the server and delete its directory; idempotent, never raises."""
        if os.getpid() != self._owner_pid:  # a forked child running atexit hooks
            return
        atexit.unregister(self.stop)
        if self._running:
            self._running = False
            for mode in ("fast", "immediate"):
                with contextlib.suppress(subprocess.SubprocessError, OSError):
                    stop = self._run(
                        self._bin("pg_ctl"), "stop", "--pgdata", str(self.datadir),
                        "--mode", mode, "--wait", "--timeout", "30",
                    )  # fmt: skip
                    if stop.returncode == 0:
                        break
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None
        self._stop_watchdog()

    # -- watchdog -------------------------------------------------------------
    def _start_watchdog(self) -> None:
        """Start a process that cleans up if this process dies without doing so.

        It holds the read end of a pipe whose write end only this process holds:
        end-of-file (or being re-parented) means we died; a byte means we cleaned up.
        It runs in its own session so a Ctrl-C at the terminal does not reach it.
        """
        user = self._user
        config = {
            "pg_ctl": self._bin("pg_ctl"),
            "datadir": str(self.datadir),
            "tmpdir": str(self.tmpdir),
            "user": None if user is None else [user.pw_uid, user.pw_gid],
            "parent": os.getpid(),
        }
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            cwd="/",
            env=_clean_env(),
        )

    def _stop_watchdog(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is None:
            return
        assert watchdog.stdin is not None
        with contextlib.suppress(OSError):
            watchdog.stdin.write(b"x")
            watchdog.stdin.flush()
        with contextlib.suppress(OSError):
            watchdog.stdin.close()
        try:
            watchdog.wait(timeout=10)
        except subprocess.TimeoutExpired:
            watchdog.kill()
            watchdog.wait()


def _world_traversable(path: str) -> bool:
    """Whether another (unprivileged) user can reach entries inside `path`."""
    p = Path(path).resolve()
    return all(d.stat().st_mode & 0o001 for d in (p, *p.parents))


_WATCHDOG = r"""
import json, os, select, shutil, subprocess, sys
cfg = json.loads(sys.argv[1])
fd = sys.stdin.fileno()
while True:
    ready, _, _ = select.select([fd], [], [], 1.0)
    if ready:
        if os.read(fd, 1):
            sys.exit(0)  # the test process cleaned up by itself
        break  # end of file: the test process is gone
    if os.getppid() != cfg["parent"]:
        break  # re-parented: the test process is gone (forked children may hold the pipe)
kwargs = {}
if cfg["user"] is not None:
    kwargs = {"user": cfg["user"][0], "group": cfg["user"][1], "extra_groups": []}
if os.path.exists(os.path.join(cfg["datadir"], "postmaster.pid")):
    try:
        subprocess.run(
            [cfg["pg_ctl"], "stop", "-D", cfg["datadir"], "-m", "immediate", "-w", "-t", "30"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd="/", timeout=60, **kwargs,
        )
    except Exception:
        pass
shutil.rmtree(cfg["tmpdir"], ignore_errors=True)
"""


@contextlib.contextmanager
def postgres_session() -> Iterator[str]:
    """Start a server for the session and yield its base SQLAlchemy URL.

    Skips when PostgreSQL is not installed, unless CUSTODY_REQUIRE_POSTGRES=1.
    """
    try:
        bindir = find_bindir()
        if bindir is None:
            raise PostgresUnavailableError(
                "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found via pg_config, "
                "/usr/lib/postgresql/*/bin or PATH; install postgresql-15"
            )
        server = PostgresServer(bindir)
        url = server.start()
    except PostgresUnavailableError as exc:
        if postgres_required():
            pytest.fail(f"{REQUIRE_ENV}=1 but PostgreSQL is unavailable: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield url
    finally:
        server.stop()


@contextlib.contextmanager
def temporary_database(server_url: str) -> Iterator[str]:
    """Create an empty database with a unique name; yield its SQLAlchemy URL; drop it."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    base = make_url(server_url)
    admin = {"host": base.host, "port": base.port, "user": base.username, "dbname": base.database}
    name = f"test_{uuid.uuid4().hex[:20]}"
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(**admin, autocommit=True) as conn:
            # FORCE: terminate connections a test left open, so the drop cannot fail.
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
