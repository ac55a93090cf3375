"""What runs capture without being asked: git state, packages, environment, the I/O log."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
from pathlib import Path

from conftest import write_tree
from mlcustody._canonical import digest_bytes
from mlcustody.capture import context, iolog, launch


def _git(root: Path, *args: str) -> None:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}
    subprocess.run(["git", "-C", str(root), *args], env=env, check=True, capture_output=True)


def test_git_state_and_dirty_diff_and_entry_script(tmp_path: Path) -> None:
    write_tree(tmp_path, {"train.py": "print(1)\n", "my file.txt": "a\n"})
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "remote", "add", "origin", "https://alice:s3cret-token@example.org/team/repo.git")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "one")
    clean = context.capture_code(tmp_path, tmp_path / "train.py")
    git = clean.value["git"]
    assert re.fullmatch(r"[0-9a-f]{40}", git["commit"]) and git["branch"] == "main"
    assert git["remote"] == "https://example.org/team/repo.git"  # credentials never recorded
    assert (git["dirty"], git["diff"], git["changed"]) == (False, None, [])
    assert clean.value["entry"] == {"path": "train.py", "digest": digest_bytes(b"print(1)\n"), "size": 9}
    (tmp_path / "my file.txt").write_text("b\n")
    dirty = context.capture_code(tmp_path, None)
    assert dirty.value["git"]["dirty"] and dirty.value["git"]["changed"] == ["my file.txt"]
    [diff] = dirty.blobs
    assert dirty.value["git"]["diff"] == digest_bytes(diff) and b"+b" in diff


def test_outside_git_the_code_record_says_so(tmp_path: Path) -> None:
    assert context.capture_code(tmp_path, None).value == {"git": None, "entry": None}


def test_packages_agree_with_importlib_metadata() -> None:
    found = context.Interpreter.current().packages()
    expected: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
        expected.setdefault(name, dist.version)
    assert found == expected


def test_only_allowed_non_secret_variables_are_recorded() -> None:
    environ = {"PYTHONHASHSEED": "0", "HOME": "/home/x", "MY_SEED": "4", "MY_API_KEY": "k", "AWS_SECRET": "s"}
    assert context.allowed_variables(environ, ["MY_SEED", "MY_API_KEY", "AWS_SECRET"]) == {
        "MY_SEED": "4",
        "PYTHONHASHSEED": "0",
    }


def test_the_io_log_is_read_back_and_a_torn_line_is_ignored(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    venv = root / ".venv"
    log = tmp_path / "log"
    lines = [
        ["i", "3.11.7", "cpython", "/usr/bin/python3", [str(root)], [str(venv)]],
        ["r", str(root / "data/a.csv"), 3, 10, 1],
        ["r", str(root / "data/a.csv"), 3, 10, 1],
        ["r", str(root / "src/util.py"), 3, 10, 2],  # source code is not data
        ["r", str(venv / "lib/site.txt"), 3, 10, 3],  # the interpreter's own files are not data
        ["r", "/etc/hosts", 3, 10, 4],  # outside the workspace
        ["w", str(root / "model.skops")],
        ["p", ["git", "status"]],
    ]
    log.write_text("\n".join(json.dumps(line) for line in lines) + '\n["r", "/tor')
    found = iolog.read_log(log, root)
    assert list(found.reads) == ["data/a.csv"] and found.writes == {"model.skops"}
    assert found.processes == [["git", "status"]] and found.interpreters[0].version == "3.11.7"


def test_entry_script_of_common_command_lines(tmp_path: Path) -> None:
    script = write_tree(tmp_path, {"run.sh": "#!/bin/sh\n"}) / "run.sh"
    assert launch._entry_script(["python3", "-u", "-X", "dev", "train.py", "--lr", "1"]) == Path("train.py")
    assert launch._entry_script(["python", "-m", "pkg.train"]) is None
    assert launch._entry_script([str(script)]) == script
    assert launch._entry_script(["make", "train"]) is None
