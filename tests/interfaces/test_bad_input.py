"""The bad-input contract where it did not hold: a refusal is exit 2 with one line and changes nothing."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

import pytest

from conftest import Cli, write_tree
from mlcustody.storage import objects as object_store


def _objects(cli: Cli) -> set[str]:
    root = cli.cwd / ".custody" / "objects"
    return {p.parent.name + p.name for p in root.glob("*/*")}


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("files", "args"),
    [
        ({"t.csv": "id,x\n1,a\n1,b\n"}, ["--key", "id"]),  # duplicate key
        ({"t.csv": "id,x\n1,a\n"}, ["--key", "nope"]),  # missing key column
        ({"t.csv": "id,x\n1,a,b,c\n"}, ["--key", "id"]),  # malformed CSV (a ragged row)
        ({"t.csv": 'id,x\n1,"a\n2,b\n'}, ["--key", "id"]),  # malformed CSV (a quote never closed)
        ({"t.csv": b"\x00\x01\x02\xff\xfe" * 100}, []),  # a binary file
        ({"t.bin": "id,x\n1,a\n"}, []),  # unknown format
        ({"t.csv": "id,x\n1," + "a" * 3_000_000 + "\n"}, ["--key", "id"]),  # oversized field
    ],
)
def test_refused_records_add_leaves_no_object(cli: Cli, files: dict[str, str | bytes], args: list[str]) -> None:
    cli("init")
    write_tree(cli.cwd, files)
    before = _objects(cli)
    _, err = cli("add", next(iter(files)), "--records", *args, code=2)
    assert _one_line(err).startswith("error: ")
    assert _objects(cli) == before
    assert cli.json("ls")["artifacts"] == []


def test_an_enormous_version_number_is_unknown(cli: Cli) -> None:
    cli("init")
    write_tree(cli.cwd, {"data.csv": "a\n1\n"})
    cli("add", "data.csv")
    _, err = cli("diff", "data@1", "data@99999999999999999999", code=2)
    assert "no version 99999999999999999999" in _one_line(err)
    _, err = cli("show", "data@١", code=2)  # a non-ASCII digit is not a version number
    assert "not a number" in _one_line(err)
    _, err = cli("model", "show", "credit@99999999999999999999", code=2)
    _one_line(err)


def test_disk_full_is_exit_2_and_nothing_is_half_written(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("init")
    write_tree(cli.cwd, {"d/a.txt": "first", "d/b.txt": "second", "d/c.txt": "third"})
    before = _objects(cli)
    calls = {"n": 0}
    real = object_store._write_all

    def full_after_one(fd: int, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd, data)

    monkeypatch.setattr(object_store, "_write_all", full_after_one)
    _, err = cli("add", "d", code=2)
    line = _one_line(err)
    assert "no space left" in line and "nothing was recorded" in line
    assert _objects(cli) == before  # the one object written before the disk filled is taken back
    assert not list((cli.cwd / ".custody" / "tmp").glob("*.tmp"))
    assert cli.json("ls")["artifacts"] == []
    monkeypatch.setattr(object_store, "_write_all", real)
    assert cli.json("add", "d")["results"][0]["artifact"]["ref"] == "d@1"


def test_symlinks_follow_the_workspace_boundary(cli: Cli, tmp_path: Path) -> None:
    cli("init")
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    write_tree(cli.cwd, {"d/ok.txt": "fine", "inner.txt": "inside"})
    os.symlink(outside, cli.cwd / "d" / "passwd")
    before = _objects(cli)
    _, err = cli("add", "d", code=2)
    assert "outside the workspace" in _one_line(err) and "passwd" in err
    assert _objects(cli) == before
    os.symlink(outside, cli.cwd / "top-link")  # an added path that is itself a link out
    _, err = cli("add", "top-link", code=2)
    assert "outside the workspace" in _one_line(err)
    (cli.cwd / "d" / "passwd").unlink()
    os.symlink(cli.cwd / ".custody" / "metadata.db", cli.cwd / "d" / "db")  # into the store
    _, err = cli("add", "d", code=2)
    assert "into the store" in _one_line(err)
    (cli.cwd / "d" / "db").unlink()
    os.symlink(cli.cwd / "inner.txt", cli.cwd / "d" / "inner")  # inside: followed, its bytes stored
    os.symlink(cli.cwd / "d", cli.cwd / "d" / "loop")
    _, err = cli("add", "d", code=2)
    assert "links back" in _one_line(err)
    (cli.cwd / "d" / "loop").unlink()
    doc = cli.json("add", "d")
    assert doc["results"][0]["artifact"]["file_count"] == 2


def test_fifo_and_socket_are_named_not_skipped(cli: Cli) -> None:
    cli("init")
    write_tree(cli.cwd, {"d/ok.txt": "fine"})
    os.mkfifo(cli.cwd / "d" / "pipe")
    _, err = cli("add", "d", code=2)
    assert "pipe is a FIFO" in _one_line(err)
    (cli.cwd / "d" / "pipe").unlink()
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(os.fspath(cli.cwd / "d" / "sock"))
        _, err = cli("add", "d", code=2)
        assert "sock is a socket" in _one_line(err)
    finally:
        server.close()


@pytest.mark.parametrize("name", ["../../etc/evil", "/etc/evil", "a/../b", "a//b", "./a", "a\\b"])
def test_names_that_climb_are_refused(cli: Cli, name: str) -> None:
    cli("init")
    write_tree(cli.cwd, {"data.csv": "a\n1\n"})
    _, err = cli("add", "data.csv", "--name", name, code=2)
    assert "invalid artifact name" in _one_line(err)
    assert cli.json("add", "data.csv", "--name", "data/ok")["results"][0]["artifact"]["ref"] == "data/ok@1"


def test_read_only_store_says_what_is_read_only(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("init")
    write_tree(cli.cwd, {"data.csv": "a\n1\n"})
    db = cli.cwd / ".custody" / "metadata.db"
    monkeypatch.setenv("CUSTODY_DB_URL", f"sqlite:///file:{db}?mode=ro&uri=true")  # as a read-only mount is
    _, err = cli("add", "data.csv", code=2)
    line = _one_line(err)
    assert "is read-only" in line and "database server" not in line and "writable" in line
    monkeypatch.delenv("CUSTODY_DB_URL")
    if os.geteuid() != 0:  # root writes to read-only directories
        objects = cli.cwd / ".custody" / "objects"
        dirs = [objects, *objects.iterdir(), cli.cwd / ".custody" / "tmp"]
        for path in dirs:
            path.chmod(0o555)
        try:
            _, err = cli("add", "data.csv", code=2)
            assert "object store" in _one_line(err) and "read-only" in err
        finally:
            for path in dirs:
                path.chmod(0o755)


def test_a_pickled_model_is_signed_only_when_trusted(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    import json
    import pickle

    from mlcustody import Workspace

    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", "correct horse battery staple")
    cli("init")
    cli("keys", "generate", "--name", "registry")
    (cli.cwd / "model.bin").write_bytes(pickle.dumps({"weights": [1, 2]}))  # a pickle by its bytes, any name
    _, err = cli("model", "register", "evil", "--path", "model.bin", code=2)
    assert "is a pickle" in _one_line(err) and "--trust-pickle" in err
    assert cli.json("model", "ls")["models"] == []
    cli.json("model", "register", "evil", "--path", "model.bin", "--trust-pickle")
    with Workspace.open(cli.cwd) as ws:
        [version] = ws.models()
        envelope = json.loads(ws.objects.read_bytes(version.attestation))
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["predicate"]["buildDefinition"]["externalParameters"]["trustPickle"] == ["model.bin"]
    assert cli.json("model", "verify", "evil@1")["ok"] is True
