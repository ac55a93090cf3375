"""Several `custody add` processes writing into one store at the same time.

Each round starts two real CLI processes back to back and only then waits for both, so their
snapshots, object writes and metadata transactions overlap. Afterwards every process must have
exited 0, each artifact's versions must run 1..n without a gap or a duplicate, the audit log must be
one unbroken chain with consecutive seq numbers and `custody verify` must pass — on the embedded
SQLite store and on PostgreSQL (`custody init --db URL`). Two processes adding the same path must
agree: one records the version, the other finds it recorded.

Process timing makes the same-name race likely but not certain, so
``test_two_writers_of_one_name_cannot_both_read_the_latest_version`` forces the interleaving
in-process: it fails every time on a store that lets two writers read the latest version number
at once (PostgreSQL before writers took a lock at the start of the transaction).
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from _cli import Forkserver, Run, assert_history, finish, ok, start
from mlcustody.metadata import artifacts
from mlcustody.workspace.facade import Workspace

pytestmark = pytest.mark.slow

ROUNDS = 4
SMALL_FILES = 300
BIG_FILE = 6 << 20  # above the 4 MiB threshold, so the large-file path (copy_file_range) runs too


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        ok(root, "init", "--db", url)
    else:
        ok(root, "init")
    return root


def make_tree(directory: Path, rng: random.Random) -> None:
    for i in range(SMALL_FILES):
        path = directory / f"d{i % 7}" / f"e{i % 3}" / f"f{i:04d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(rng.randint(1024, 8192)))
    (directory / "big.bin").write_bytes(os.urandom(BIG_FILE))


def change_tree(directory: Path, rng: random.Random) -> None:
    """Rewrite a few small files and one block of the big one: new content for the next add."""
    small = sorted(p for p in directory.rglob("f*.bin"))
    for path in rng.sample(small, 5):
        path.write_bytes(os.urandom(rng.randint(1024, 8192)))
    with (directory / "big.bin").open("r+b") as handle:
        handle.seek(rng.randrange(BIG_FILE - 4096))
        handle.write(os.urandom(4096))


def add_concurrently(root: Path, *paths: str) -> list[Run]:
    """Start one `custody add PATH --json` per path, then wait for all; each must exit 0."""
    procs = [start(root, "add", path, "--json") for path in paths]
    runs = [finish(proc) for proc in procs]
    for result in runs:
        assert result.returncode == 0, str(result)
    return runs


def check_store(root: Path, expected: dict[str, int]) -> None:
    """Versions 1..n per name, an unbroken audit chain with consecutive seqs, verify and status pass."""
    with Forkserver() as cli:
        assert_history(root, expected, cli.run)
        cli.ok(root, "status")


def test_concurrent_adds_of_different_data(workspace: Path) -> None:
    rng = random.Random(1001)
    for name in ("alpha", "beta"):
        make_tree(workspace / name, rng)
    for round_ in range(1, ROUNDS + 1):
        if round_ > 1:
            change_tree(workspace / "alpha", rng)
            change_tree(workspace / "beta", rng)
        runs = add_concurrently(workspace, "alpha", "beta")
        for name, result in zip(("alpha", "beta"), runs, strict=True):
            (item,) = result.json["results"]
            assert item["created"] is True, str(result)
            assert item["artifact"]["ref"] == f"{name}@{round_}", str(result)
    check_store(workspace, {"alpha": ROUNDS, "beta": ROUNDS})


def test_concurrent_adds_of_the_same_path(workspace: Path) -> None:
    rng = random.Random(2002)
    make_tree(workspace / "shared", rng)
    for round_ in range(1, ROUNDS + 1):
        if round_ > 1:
            change_tree(workspace / "shared", rng)
        runs = add_concurrently(workspace, "shared", "shared")
        items = [result.json["results"][0] for result in runs]
        # Both saw the same bytes: one records the version, the other finds it already recorded.
        assert sorted(item["created"] for item in items) == [False, True], items
        assert {item["artifact"]["ref"] for item in items} == {f"shared@{round_}"}, items
        assert len({item["artifact"]["digest"] for item in items}) == 1, items
    check_store(workspace, {"shared": ROUNDS})


def test_concurrent_adds_of_different_and_same_paths_together(workspace: Path) -> None:
    """Three writers at once: two on one name, one on another."""
    rng = random.Random(3003)
    for name in ("left", "right"):
        make_tree(workspace / name, rng)
    for round_ in range(1, 4):
        if round_ > 1:
            change_tree(workspace / "left", rng)
            change_tree(workspace / "right", rng)
        runs = add_concurrently(workspace, "left", "right", "left")
        left = [runs[0].json["results"][0], runs[2].json["results"][0]]
        assert sorted(item["created"] for item in left) == [False, True], left
        assert {item["artifact"]["ref"] for item in left} == {f"left@{round_}"}, left
        assert runs[1].json["results"][0]["artifact"]["ref"] == f"right@{round_}"
    check_store(workspace, {"left": 3, "right": 3})


# --- the same race, made deterministic in-process -------------------------------------------------

BARRIER_SECONDS = 1.5


@pytest.mark.parametrize(
    "backend",
    [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)],
)
def test_two_writers_of_one_name_cannot_both_read_the_latest_version(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """Two Workspaces (each with its own engine) add the same path from two threads.

    Each writer's first ``artifacts.latest`` waits at a barrier for the other writer's. A store that
    serialises writers before that read (SQLite's BEGIN IMMEDIATE) never lets the second one get
    there while the first is in its transaction, so the barrier times out after BARRIER_SECONDS
    and the first commits alone; a store that lets both read the same latest version now makes
    them insert the same version number.
    """
    for key in list(os.environ):
        if key.startswith("CUSTODY_"):
            monkeypatch.delenv(key)
    root = tmp_path / "ws"
    root.mkdir()
    rng = random.Random(4004)
    data = root / "shared"
    for i in range(20):
        (data / f"f{i}").parent.mkdir(exist_ok=True)
        (data / f"f{i}").write_bytes(os.urandom(rng.randint(100, 4000)))
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    Workspace.init(root, db_url=url).close()

    real_latest = artifacts.latest
    local = threading.local()
    barrier = threading.Barrier(2)

    def latest(conn: Any, name: str) -> Any:
        found = real_latest(conn, name)
        if not getattr(local, "waited", False):
            local.waited = True
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=BARRIER_SECONDS)
        return found

    monkeypatch.setattr(artifacts, "latest", latest)

    def add() -> Any:
        local.waited = False
        with Workspace.open(root) as ws:
            return ws.add([data])

    for round_ in (1, 2):
        if round_ > 1:
            (data / "f0").write_bytes(os.urandom(5000))
        barrier.reset()
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(add) for _ in range(2)]
            results = [future.result()[0] for future in futures]  # re-raises a writer's exception
        assert sorted(r.created for r in results) == [False, True]
        assert {r.version.ref for r in results} == {f"shared@{round_}"}

    monkeypatch.undo()
    with Workspace.open(root) as ws:
        assert [v.ref for v in ws.listing(all_versions=True)] == ["shared@1", "shared@2"]
        assert [e.seq for e in ws.log()] == [3, 2, 1]
        assert ws.verify().problems == []
