"""Crash safety: a `custody add` killed at any moment leaves a store that verifies and accepts the retry.

Three layers:

* ``test_sigkill_during_add_at_random_moments`` SIGKILLs real ``custody add`` processes at seeded
  random moments over two kinds of input (a few large files, many small files in nested
  directories); after every kill ``custody verify`` must pass, the re-run ``custody add`` must
  succeed and record exactly the version the killed one did not, and ``verify`` and ``status`` must
  pass again. It ends with the stray temp files the kills left behind (``gc`` reports them only
  when they are old and ``gc --delete`` removes them) and a byte-for-byte checkout.
* ``test_sigkill_at_a_chosen_point`` kills a process at exact points that random timing rarely
  hits: half-way through writing a small or a large object, inside the metadata write transaction,
  and after the commit but before the witness file is advanced. The child signals when it is
  there; the parent then kills it.
* ``test_error_inside_the_write_transaction_commits_nothing`` and
  ``test_error_after_commit_before_the_witness`` do the same in-process with an exception.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from _cli import Forkserver, Run, assert_history, clean_env, finish, ok, ok_json, run, start
from conftest import BACKENDS
from mlcustody.metadata import artifacts, audit
from mlcustody.storage import snapshot
from mlcustody.workspace.facade import Workspace

SEED = 20_240_917
KILLS_PER_INPUT = 10  # two kinds of input: 20 SIGKILLs in all
MAX_ATTEMPTS = 30  # an add that finishes before its kill time does not count as a kill
MiB = 1 << 20
STALE_SECONDS = 3600  # gc's threshold for temp files (metadata/gc.py)

# --- inputs -------------------------------------------------------------------------------------


def make_large(data: Path, rng: random.Random) -> None:
    data.mkdir()
    for i in range(3):
        (data / f"shard-{i}.bin").write_bytes(os.urandom(24 * MiB))


def change_large(data: Path, rng: random.Random) -> None:
    """Overwrite a block in one of the big files: it becomes a new 24 MiB object."""
    with rng.choice(sorted(data.iterdir())).open("r+b") as handle:
        handle.seek(rng.randrange(24 * MiB - 65536))
        handle.write(os.urandom(65536))


def make_small(data: Path, rng: random.Random) -> None:
    for i in range(3000):
        path = data / f"part-{i % 12:02d}" / f"group-{i // 12 % 8}" / f"rec-{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(rng.randint(1024, 8192)))


def change_small(data: Path, rng: random.Random) -> None:
    """Rewrite a few files, and now and then add one and delete another."""
    files = sorted(data.rglob("*.bin"))
    for path in rng.sample(files, 20):
        path.write_bytes(os.urandom(rng.randint(1024, 8192)))
    if rng.random() < 0.5:
        rng.choice(files).unlink()
        (data / "part-00" / f"new-{rng.getrandbits(32):08x}.bin").write_bytes(os.urandom(rng.randint(1024, 8192)))


@dataclass(frozen=True)
class Input:
    name: str
    make: Callable[[Path, random.Random], None]
    change: Callable[[Path, random.Random], None]


INPUTS = (Input("large", make_large, change_large), Input("small", make_small, change_small))


# --- helpers --------------------------------------------------------------------------------------


def object_count(root: Path) -> int:
    objects = root / ".custody" / "objects"
    return sum(len(os.listdir(fan)) for fan in objects.iterdir())


def temp_files(root: Path) -> set[str]:
    return set(os.listdir(root / ".custody" / "tmp"))


def timed(action: Callable[[], Any]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def assert_verifies(cli: Forkserver, root: Path, when: str) -> dict[str, Any]:
    report = cli.run(root, "verify", "--json")
    assert report.returncode == 0 and report.json["ok"] is True, f"verify {when}:\n{report}"
    return report.json  # type: ignore[no-any-return]


def assert_same_tree(expected: Path, actual: Path) -> None:
    want = sorted(p.relative_to(expected) for p in expected.rglob("*") if p.is_file())
    got = sorted(p.relative_to(actual) for p in actual.rglob("*") if p.is_file())
    assert got == want
    for rel in want:
        assert (actual / rel).read_bytes() == (expected / rel).read_bytes(), f"{rel} differs"


# --- SIGKILL at random moments --------------------------------------------------------------------


def crash_campaign(root: Path, kind: Input, rng: random.Random, ready: threading.Barrier) -> Counter[str]:
    """Kill `custody add data` KILLS_PER_INPUT times; check the store after each kill and at the end.

    Every add that is killed is a fresh ``python -m mlcustody`` process, and so are the adds that
    calibrate the kill times. The other commands (set-up, the re-run adds but every fourth, verify,
    status, gc, ...) run through a :class:`Forkserver`: each in a process of its own, forked from
    one that has already imported mlcustody, which keeps 20 kills and ~100 other commands within a
    minute on two cores.
    """
    with Forkserver() as cli:
        return _campaign(cli, root, kind, rng, ready)


def _campaign(cli: Forkserver, root: Path, kind: Input, rng: random.Random, ready: threading.Barrier) -> Counter[str]:
    data = root / "data"
    root.mkdir()
    try:
        kind.make(data, rng)
        cli.ok(root, "init")
        cli.ok(root, "add", "data")
    except BaseException:
        ready.abort()  # the other input must not wait for this one
        raise
    versions = 1
    ready.wait()  # calibrate under the load the kills will see: both inputs running

    # Calibrate on normal adds of a little new content: how long one takes in all, and when it
    # commits (the witness file is rewritten right after the commit). Half the kill times are
    # drawn from the whole add; the other half from between start-up (a command that only opens
    # the store) and the commit, where objects are stored and metadata is written. Adds that finish
    # before their kill time, and every fourth re-add (run fresh), are timed too: the last three
    # timings keep the estimates current if the machine's load changes.
    witness = root / ".custody" / "audit-head"
    timings: list[tuple[float, float]] = []

    def timing(took: float, wall: float) -> tuple[float, float]:
        return took, min(took, max(0.0, witness.stat().st_mtime - wall))

    def normal_add(runner: Callable[..., Run], when: str) -> Run:
        started, wall = time.monotonic(), time.time()
        result = runner(root, "add", "data", "--json")
        took = time.monotonic() - started
        assert result.returncode == 0, f"add ({when}):\n{result}"
        if runner is run and result.json["results"][0]["created"]:
            timings.append(timing(took, wall))
        return result

    startup = timed(lambda: ok(root, "ls", "--json"))
    for _ in range(3):
        kind.change(data, rng)
        normal_add(run, "calibrating")
        versions += 1

    outcomes: Counter[str] = Counter()
    kills = 0
    for attempt in range(MAX_ATTEMPTS):
        if kills == KILLS_PER_INPUT:
            break
        kind.change(data, rng)
        normal = sorted(took for took, _ in timings[-3:])[1]
        commit = sorted(at for _, at in timings[-3:])[1]
        low, high = (0.0, normal) if attempt % 2 == 0 else (min(0.9 * startup, commit), commit)
        delay = rng.uniform(low, high)
        objects_before, temp_before = object_count(root), temp_files(root)

        started, wall = time.monotonic(), time.time()
        proc = start(root, "add", "data", "--json")
        try:
            proc.communicate(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.kill()  # SIGKILL
        killed_run = finish(proc)
        took = time.monotonic() - started
        killed = killed_run.returncode == -signal.SIGKILL
        assert killed or killed_run.returncode == 0, str(killed_run)
        when = f"{kind.name} attempt {attempt}: killed after {delay:.3f} s" if killed else "a completed add"

        state = assert_verifies(cli, root, f"after {when}")
        committed = state["checked"]["artifact_versions"] - versions
        assert committed in (0, 1), f"{when} left {committed} new versions"
        if not killed:
            outcomes["finished first"] += 1
            timings.append(timing(took, wall))
        else:
            kills += 1
            if committed:
                outcomes["after commit"] += 1
            elif object_count(root) > objects_before or temp_files(root) - temp_before:
                outcomes["while storing"] += 1
            else:
                outcomes["before storing"] += 1

        again = normal_add(run if attempt % 4 == 3 else cli.run, f"the re-add after {when}")
        (item,) = again.json["results"]
        # The re-run records exactly the version the killed add did not get to record.
        assert item["created"] is (committed == 0), f"re-add after {when}:\n{again}"
        assert item["artifact"]["version"] == versions + 1, f"re-add after {when}:\n{again}"
        versions += 1
        assert_verifies(cli, root, f"after the re-add ({when})")
        status = cli.run(root, "status", "--json")
        assert status.returncode == 0 and status.json["clean"] is True, f"status after re-add ({when}):\n{status}"

    assert kills == KILLS_PER_INPUT, (
        f"{kind.name}: only {kills} of {MAX_ATTEMPTS} adds were still running at their kill time "
        f"(start-up {startup:.3f} s, adds took/committed at {timings} s): {dict(outcomes)}"
    )
    check_stray_temp_files(cli, root)
    assert_history(root, {"data": versions}, cli.run)
    cli.ok(root, "status")
    restored = root / "restored"
    cli.ok(root, "checkout", "data", "--to", str(restored))
    assert_same_tree(data, restored)
    return outcomes


def check_stray_temp_files(cli: Forkserver, root: Path) -> None:
    """Temp files of dead processes: harmless to verify, stale for gc only when old, then deleted."""
    tmp = root / ".custody" / "tmp"
    leftovers = sorted(temp_files(root))  # from the killed adds, if any was caught mid-write
    dead = tmp / "4194304-140000000000000-0.tmp"  # named as ObjectStore names them, by a dead pid
    dead.write_bytes(os.urandom(100_000))  # a half-written object
    recent = tmp / "4194304-140000000000000-1.tmp"
    recent.write_bytes(os.urandom(1000))
    assert_verifies(cli, root, "with stray temp files")

    plan = cli.ok_json(root, "gc")
    assert plan["stale_tmp"] == [], "fresh temp files (maybe of a running add) must not be stale"

    now = time.time()
    old = now - 2 * STALE_SECONDS
    for name in [*leftovers, dead.name]:
        os.utime(tmp / name, (old, old))
    os.utime(recent, (now - STALE_SECONDS + 600, now - STALE_SECONDS + 600))  # 50 minutes: not yet stale
    stale = sorted([*leftovers, dead.name])
    plan = cli.ok_json(root, "gc")
    assert plan["deleted"] is False
    assert plan["stale_tmp"] == stale
    assert sorted(temp_files(root)) == sorted([*stale, recent.name]), "gc without --delete removed files"
    assert_verifies(cli, root, "with old stray temp files")

    done = cli.ok_json(root, "gc", "--delete")
    assert done["deleted"] is True
    assert done["stale_tmp"] == stale
    assert done["unreferenced"] == plan["unreferenced"]
    assert temp_files(root) == {recent.name}
    after = cli.ok_json(root, "gc")
    assert (after["stale_tmp"], after["unreferenced"]["count"]) == ([], 0)
    recent.unlink()


@pytest.mark.slow
def test_sigkill_during_add_at_random_moments(tmp_path: Path) -> None:
    # The two inputs run side by side, each in its own workspace, to use both cores.
    ready = threading.Barrier(len(INPUTS), timeout=120)
    with ThreadPoolExecutor(len(INPUTS)) as pool:
        futures = {
            kind.name: pool.submit(crash_campaign, tmp_path / kind.name, kind, random.Random(SEED + i), ready)
            for i, kind in enumerate(INPUTS)
        }
        outcomes = {name: future.result() for name, future in futures.items()}
    kills = sum(n for found in outcomes.values() for what, n in found.items() if what != "finished first")
    assert kills >= 20, outcomes
    # Not every kill may land in Python's start-up: some must hit an add at work (or committing).
    assert sum(found["while storing"] + found["after commit"] for found in outcomes.values()) > 0, outcomes
    print(f"SIGKILL outcomes: {outcomes}")


# --- SIGKILL at a chosen point ----------------------------------------------------------------------

_CHILD = r"""
import os
import sys
from pathlib import Path

from mlcustody.workspace.facade import Workspace
from mlcustody.metadata import audit
from mlcustody.storage import objects

root, where = Path(sys.argv[1]), sys.argv[2]


def hold():
    sys.stdout.write("holding\n")
    sys.stdout.flush()
    sys.stdin.read()  # the parent kills us while we wait here
    sys.exit("the parent did not kill this process")


if where == "small object":
    real_write_all = objects._write_all
    writes = []

    def write_all(fd, data):
        writes.append(fd)
        if len(writes) == 5:  # the fifth small object: half of it is in its temp file
            real_write_all(fd, data[: len(data) // 2])
            hold()
        real_write_all(fd, data)

    objects._write_all = write_all
elif where == "large object":

    def copy_range(src_fd, dst_fd):  # half of the big file is in its temp file
        os.write(dst_fd, os.pread(src_fd, os.fstat(src_fd).st_size // 2, 0))
        hold()

    objects.copy_range = copy_range
elif where == "transaction":
    real_append = audit.append

    def append(conn, **kwargs):
        event = real_append(conn, **kwargs)  # version row, event row and head: written, not committed
        if kwargs["action"] == "artifact.add":
            hold()
        return event

    audit.append = append
elif where == "witness":
    audit.advance_witness = lambda path, event: hold()  # committed; the witness not yet advanced
else:
    sys.exit(f"unknown point {where}")

with Workspace.open(root) as ws:
    ws.add([root / "data"])
"""


def make_data(data: Path, rng: random.Random, files: int = 40) -> None:
    for i in range(files):
        path = data / f"sub-{i % 4}" / f"file-{i:03d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(rng.randint(100, 5000)))
    (data / "weights.bin").write_bytes(os.urandom(5 * MiB))  # above the 4 MiB large-file threshold


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "where"),
    [
        pytest.param("sqlite", "small object", id="sqlite-small-object"),
        pytest.param("sqlite", "large object", id="sqlite-large-object"),
        pytest.param("sqlite", "transaction", id="sqlite-transaction"),
        pytest.param("sqlite", "witness", id="sqlite-witness"),
        pytest.param("postgres", "transaction", id="postgres-transaction", marks=pytest.mark.postgres),
        pytest.param("postgres", "witness", id="postgres-witness", marks=pytest.mark.postgres),
    ],
)
def test_sigkill_at_a_chosen_point(request: pytest.FixtureRequest, tmp_path: Path, backend: str, where: str) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    rng = random.Random(SEED)
    make_data(root / "data", rng)
    if backend == "postgres":
        ok(root, "init", "--db", request.getfixturevalue("postgres_url"))
    else:
        ok(root, "init")
    ok(root, "add", "data")
    witness = (root / ".custody" / "audit-head").read_text()
    make_data(root / "data", rng)  # new content for every file
    assert temp_files(root) == set()

    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root), where],
        cwd=root,
        env=clean_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    # Wait for the child's line (it is then at the point) or its end; never for ever.
    readable, _, _ = select.select([child.stdout], [], [], 120)
    signalled = child.stdout.readline() if readable else ""
    child.kill()
    _, stderr = child.communicate()
    assert signalled == "holding\n", f"the child did not reach the {where} point:\n{stderr}"
    assert child.returncode == -signal.SIGKILL

    committed = where == "witness"
    with Forkserver() as cli:
        state = assert_verifies(cli, root, f"after a kill at the {where} point")
        assert state["checked"]["artifact_versions"] == (2 if committed else 1)
        assert state["checked"]["events"] == (3 if committed else 2)
        assert (root / ".custody" / "audit-head").read_text() == witness  # the witness only trails the chain
        if where == "large object":
            # The half-written object stays a temp file (never an object), which gc leaves alone
            # while it is fresh: it could belong to a running add.
            assert len(temp_files(root)) == 1
            assert cli.ok_json(root, "gc")["stale_tmp"] == []
        if where == "small object":  # written to an anonymous O_TMPFILE inode: nothing named is left
            assert temp_files(root) == set()

        again = ok_json(root, "add", "data")
        (item,) = again["results"]
        assert item["created"] is not committed
        assert item["artifact"]["ref"] == "data@2"
        assert_history(root, {"data": 2}, cli.run)
        cli.ok(root, "status")


# --- exceptions at library level ------------------------------------------------------------------


class Boom(Exception):
    """The injected failure."""


def fail_after(real: Callable[..., Any]) -> Callable[..., Any]:
    """``real`` that does its work and then raises, as a crash right after it would."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise Boom(real.__name__)

    return wrapper


@pytest.fixture(params=BACKENDS)
def workspace(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A workspace (SQLite or PostgreSQL) whose ``data`` has one version."""
    for key in list(os.environ):
        if key.startswith("CUSTODY_"):
            monkeypatch.delenv(key)
    root = tmp_path / "ws"
    root.mkdir()
    make_data(root / "data", random.Random(SEED))
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    ws = Workspace.init(root, db_url=url)
    try:
        (first,) = ws.add([root / "data"])
        assert first.created and first.version.ref == "data@1"
        yield ws
    finally:
        ws.close()


@pytest.mark.parametrize(
    ("module", "function"),
    [(audit, "append"), (artifacts, "insert")],
    ids=["audit.append", "artifacts.insert"],
)
def test_error_inside_the_write_transaction_commits_nothing(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, module: Any, function: str
) -> None:
    ws = workspace
    data = ws.root / "data"
    versions, events = ws.listing(all_versions=True), ws.log()
    witness = ws.witness.read_text()
    make_data(data, random.Random(SEED + 1))
    manifest_digest = snapshot.take(data).digest

    with monkeypatch.context() as patch:
        patch.setattr(module, function, fail_after(getattr(module, function)))
        with pytest.raises(Boom):
            ws.add([data])

    assert ws.listing(all_versions=True) == versions  # no version
    assert ws.log() == events  # no event
    assert ws.witness.read_text() == witness
    assert ws.verify().problems == []
    assert not ws.objects.exists(manifest_digest)  # the objects a refused add stored are taken back

    (result,) = ws.add([data])
    assert result.created and result.version.ref == "data@2" and result.version.digest == manifest_digest
    assert [e.seq for e in ws.log()] == [3, 2, 1]
    assert ws.verify().problems == []


def test_error_after_commit_before_the_witness(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = workspace
    data = ws.root / "data"
    witness = ws.witness.read_text()
    make_data(data, random.Random(SEED + 1))

    with monkeypatch.context() as patch:
        patch.setattr(audit, "advance_witness", fail_after(lambda path, event: None))
        with pytest.raises(Boom):
            ws.add([data])

    assert [v.ref for v in ws.listing(all_versions=True)] == ["data@1", "data@2"]  # committed
    assert [e.seq for e in ws.log()] == [3, 2, 1]
    assert ws.witness.read_text() == witness  # trailing the chain is allowed
    assert ws.verify().problems == []

    make_data(data, random.Random(SEED + 2))
    (result,) = ws.add([data])
    assert result.version.ref == "data@3"
    (head,) = ws.log(limit=1)
    assert ws.witness.read_text().split() == [str(head.seq), head.digest]
    assert ws.verify().problems == []
